// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SubscriptionCheckout} from "../../src/SubscriptionCheckout.sol";
import {ISubscriptionCheckout} from "../../src/interfaces/ISubscriptionCheckout.sol";
import {TestToken} from "../../devnet/TestToken.sol";
import {Test} from "../utils/Test.sol";

/// @title CheckoutHandler
/// @notice Drives SubscriptionCheckout for the invariant fuzzer: payers pay freshly signed
/// quotes (with an approval or a permit, in an 18- or a 6-decimal token), replay order ids
/// that were already paid under new, validly signed quotes, submit invalid quotes (wrong
/// signer, wrong payer, expired), and time passes.
/// @dev The handler owns both test tokens and mints each payer exactly what a quote costs,
/// so every token's supply is accounted for. Ghost state counts successful payments per
/// order id and sums quoted amounts per token. A call whose outcome differs from the
/// prediction is recorded in {violations}, because the invariant fuzzer ignores handler
/// reverts.
contract CheckoutHandler is Test {
    SubscriptionCheckout public immutable checkout;
    address public immutable treasury;
    uint256 private immutable _signerKey;

    TestToken[2] private _tokens;
    address[] private _payers;
    uint256[] private _payerKeys;

    // ------------------------------------------------------------ ghost state
    uint256 public nextOrderId = 1;
    uint256[] private _paidIds;
    uint256[] private _rejectedIds;
    mapping(uint256 orderId => uint256) public timesPaid;
    mapping(address token => uint256) public quotedSum;
    uint256 public currentTime;

    // ------------------------------------------------------------ outcome bookkeeping
    uint256 public violations;
    string public lastViolation;
    uint256 public replaysRejected;

    constructor(SubscriptionCheckout checkout_, uint256 signerKey_, uint256 payerCount) {
        require(payerCount >= 2, "need two payers");
        checkout = checkout_;
        treasury = checkout_.treasury();
        _signerKey = signerKey_;
        _tokens[0] = new TestToken("TMAI", "TMAI", 18, address(this));
        _tokens[1] = new TestToken("Test USD", "tUSD", 6, address(this));
        for (uint256 i; i < payerCount; ++i) {
            (address payer, uint256 key) = makeAddrAndKey(string.concat("payer ", vm.toString(i)));
            _payers.push(payer);
            _payerKeys.push(key);
        }
        currentTime = block.timestamp;
    }

    /// @dev Block time does not carry over between fuzzer calls; replay the handler's clock.
    modifier useCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    // ================================================================ payments that must succeed

    /// @dev Pays the next order id after an ERC-20 approval.
    function pay(uint256 payerSeed, uint256 tokenSeed, uint256 amount, uint32 planId, uint32 periods)
        external
        useCurrentTime
    {
        (ISubscriptionCheckout.Quote memory q,) =
            _newQuote(nextOrderId++, payerSeed, tokenSeed, amount, planId, periods);
        bytes memory signature = _sign(q, _signerKey);
        TestToken(q.token).mint(q.payer, q.amount);

        vm.startPrank(q.payer);
        TestToken(q.token).approve(address(checkout), q.amount);
        try checkout.pay(q, signature) {
            _recordPaid(q);
        } catch (bytes memory reason) {
            _violate("pay: valid quote reverted", reason);
        }
        vm.stopPrank();
    }

    /// @dev Pays the next order id with an EIP-2612 permit instead of an approval.
    function payWithPermit(uint256 payerSeed, uint256 tokenSeed, uint256 amount, uint32 planId, uint32 periods)
        external
        useCurrentTime
    {
        (ISubscriptionCheckout.Quote memory q, uint256 payerKey) =
            _newQuote(nextOrderId++, payerSeed, tokenSeed, amount, planId, periods);
        bytes memory signature = _sign(q, _signerKey);
        TestToken token = TestToken(q.token);
        token.mint(q.payer, q.amount);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, payerKey, q.amount, q.deadline);

        vm.prank(q.payer);
        try checkout.payWithPermit(q, signature, q.deadline, v, r, s) {
            _recordPaid(q);
        } catch (bytes memory reason) {
            _violate("payWithPermit: valid quote reverted", reason);
        }
    }

    // ================================================================ attempts that must fail

    /// @dev Signs a brand-new quote for an order id that was already paid (possibly for
    /// another payer, token or amount) and tries to pay it.
    function replay(uint256 indexSeed, uint256 payerSeed, uint256 tokenSeed, uint256 amount) external useCurrentTime {
        if (_paidIds.length == 0) return;
        uint256 orderId = _paidIds[indexSeed % _paidIds.length];
        (ISubscriptionCheckout.Quote memory q,) = _newQuote(orderId, payerSeed, tokenSeed, amount, 1, 1);
        bytes memory signature = _sign(q, _signerKey);
        TestToken(q.token).mint(q.payer, q.amount);

        vm.startPrank(q.payer);
        TestToken(q.token).approve(address(checkout), q.amount);
        try checkout.pay(q, signature) {
            _recordPaid(q);
            _violate("replay: a paid order id was paid again");
        } catch (bytes memory reason) {
            bytes memory expected =
                abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, orderId);
            if (keccak256(reason) != keccak256(expected)) _violate("replay: wrong revert", reason);
            ++replaysRejected;
        }
        // The unspent tokens stay with the payer; the supply invariant counts them.
        TestToken(q.token).approve(address(checkout), 0);
        vm.stopPrank();
    }

    /// @dev Tries a fresh order id with a forged signature, the wrong caller or a passed
    /// deadline; the order must stay unpaid.
    function payInvalid(uint256 payerSeed, uint256 tokenSeed, uint256 amount, uint256 kind) external useCurrentTime {
        uint256 orderId = nextOrderId++;
        (ISubscriptionCheckout.Quote memory q, uint256 payerKey) =
            _newQuote(orderId, payerSeed, tokenSeed, amount, 1, 1);
        address caller = q.payer;
        bytes memory signature;
        kind %= 3;
        if (kind == 0) {
            signature = _sign(q, payerKey); // the payer signs its own quote
        } else if (kind == 1) {
            signature = _sign(q, _signerKey);
            caller = q.payer == _payers[0] ? _payers[1] : _payers[0]; // another payer pays
        } else {
            q.deadline = uint64(currentTime) - 1;
            signature = _sign(q, _signerKey);
        }
        TestToken(q.token).mint(caller, q.amount);

        vm.startPrank(caller);
        TestToken(q.token).approve(address(checkout), q.amount);
        try checkout.pay(q, signature) {
            _recordPaid(q);
            _violate("payInvalid: an invalid quote was paid");
        } catch {
            _rejectedIds.push(orderId);
        }
        TestToken(q.token).approve(address(checkout), 0);
        vm.stopPrank();
    }

    function warp(uint256 secondsSeed) external {
        currentTime += bound(secondsSeed, 0, 7 days);
    }

    // ================================================================ views for the invariants

    function tokens() external view returns (TestToken[2] memory) {
        return _tokens;
    }

    function payers() external view returns (address[] memory) {
        return _payers;
    }

    function paidIds() external view returns (uint256[] memory) {
        return _paidIds;
    }

    function rejectedIds() external view returns (uint256[] memory) {
        return _rejectedIds;
    }

    // ================================================================ internals

    function _newQuote(
        uint256 orderId,
        uint256 payerSeed,
        uint256 tokenSeed,
        uint256 amount,
        uint32 planId,
        uint32 periods
    ) private view returns (ISubscriptionCheckout.Quote memory q, uint256 payerKey) {
        uint256 p = payerSeed % _payers.length;
        payerKey = _payerKeys[p];
        q = ISubscriptionCheckout.Quote({
            orderId: orderId,
            payer: _payers[p],
            token: address(_tokens[tokenSeed % 2]),
            amount: bound(amount, 1, 1e30),
            planId: planId,
            periods: uint32(bound(periods, 1, 36)),
            deadline: uint64(currentTime) + 30 minutes
        });
    }

    function _sign(ISubscriptionCheckout.Quote memory q, uint256 key) private view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, checkout.quoteDigest(q));
        return abi.encodePacked(r, s, v);
    }

    function _signPermit(TestToken token, uint256 key, uint256 value, uint256 deadline)
        private
        view
        returns (uint8, bytes32, bytes32)
    {
        address holder = vm.addr(key);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                holder,
                address(checkout),
                value,
                token.nonces(holder),
                deadline
            )
        );
        return vm.sign(key, keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash)));
    }

    function _recordPaid(ISubscriptionCheckout.Quote memory q) private {
        if (timesPaid[q.orderId]++ == 0) _paidIds.push(q.orderId);
        quotedSum[q.token] += q.amount;
    }

    function _violate(string memory what) private {
        ++violations;
        lastViolation = what;
    }

    function _violate(string memory what, bytes memory reason) private {
        _violate(string.concat(what, " with ", vm.toString(reason)));
    }
}
