// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {SubscriptionCheckout} from "../../src/SubscriptionCheckout.sol";
import {ISubscriptionCheckout} from "../../src/interfaces/ISubscriptionCheckout.sol";
import {TestToken} from "../../devnet/TestToken.sol";

/// @title CheckoutFixture
/// @notice Shared setup for the SubscriptionCheckout tests: a deployed checkout, a 6-decimal
/// test stablecoin with EIP-2612 permit, named accounts, and helpers that build quotes and
/// sign them.
/// @dev The EIP-712 digests here are computed from the type strings, independently of the
/// contract's own `quoteDigest`, so tests can check the contract against the spec.
abstract contract CheckoutFixture is Test {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant QUOTE_TYPEHASH = keccak256(
        "Quote(uint256 orderId,address payer,address token,uint256 amount,uint32 planId,uint32 periods,uint64 deadline)"
    );
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// @dev A realistic "now" so that deadlines in the past are representable.
    uint256 internal constant START = 1_750_000_000;
    uint256 internal constant PRICE = 9_990_000; // 9.99 USD at 6 decimals
    uint32 internal constant PLAN = 3;
    uint32 internal constant PERIODS = 1;
    uint64 internal constant TTL = 30 minutes;

    SubscriptionCheckout internal checkout;
    TestToken internal usd;

    address internal owner;
    address internal treasury;
    address internal signer;
    uint256 internal signerKey;
    address internal payer;
    uint256 internal payerKey;
    address internal stranger;

    function setUp() public virtual {
        vm.warp(START);
        owner = makeAddr("owner");
        treasury = makeAddr("treasury");
        (signer, signerKey) = makeAddrAndKey("quote signer");
        (payer, payerKey) = makeAddrAndKey("payer");
        stranger = makeAddr("stranger");

        checkout = new SubscriptionCheckout(owner, signer, treasury);
        usd = new TestToken("Test USD", "tUSD", 6, owner);
        vm.label(address(checkout), "checkout");
        vm.label(address(usd), "tUSD");
        _fund(payer, 1_000_000 * 1e6);
    }

    // ---------------------------------------------------------------- quotes

    /// @dev Returns a fresh quote for `payer` in tUSD that expires in TTL.
    function _quote(uint256 orderId) internal view returns (ISubscriptionCheckout.Quote memory) {
        return _quote(orderId, payer, PRICE);
    }

    function _quote(uint256 orderId, address who, uint256 amount)
        internal
        view
        returns (ISubscriptionCheckout.Quote memory q)
    {
        q = ISubscriptionCheckout.Quote({
            orderId: orderId,
            payer: who,
            token: address(usd),
            amount: amount,
            planId: PLAN,
            periods: PERIODS,
            deadline: uint64(block.timestamp) + TTL
        });
    }

    /// @dev EIP-712 domain separator of a checkout at `verifyingContract` on `chainId`.
    function _domainSeparator(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return
            keccak256(
                abi.encode(DOMAIN_TYPEHASH, keccak256("TMAI Checkout"), keccak256("1"), chainId, verifyingContract)
            );
    }

    /// @dev EIP-712 struct hash of `q`, field by field.
    function _structHash(ISubscriptionCheckout.Quote memory q) internal pure returns (bytes32) {
        return
            keccak256(
                abi.encode(QUOTE_TYPEHASH, q.orderId, q.payer, q.token, q.amount, q.planId, q.periods, q.deadline)
            );
    }

    /// @dev The digest the signer signs, for any chain and verifying contract.
    function _digest(ISubscriptionCheckout.Quote memory q, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked("\x19\x01", _domainSeparator(chainId, verifyingContract), _structHash(q)));
    }

    /// @dev The digest for this chain and the deployed checkout.
    function _digest(ISubscriptionCheckout.Quote memory q) internal view returns (bytes32) {
        return _digest(q, block.chainid, address(checkout));
    }

    /// @dev Signs `digest` with `key` as a 65-byte `r ‖ s ‖ v` signature.
    function _signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev The quote signer's signature over `q` for the deployed checkout.
    function _sign(ISubscriptionCheckout.Quote memory q) internal view returns (bytes memory) {
        return _signDigest(signerKey, _digest(q));
    }

    // ---------------------------------------------------------------- tokens

    function _fund(address who, uint256 amount) internal {
        vm.prank(owner);
        usd.mint(who, amount);
    }

    function _approve(address who, uint256 amount) internal {
        vm.prank(who);
        usd.approve(address(checkout), amount);
    }

    /// @dev Signs an EIP-2612 permit of `value` from `holder` to the checkout on `token`,
    /// building the token's domain (name, version "1") independently.
    function _signPermit(TestToken token, uint256 holderKey, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        address holder = vm.addr(holderKey);
        bytes32 domain = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(token.name())), keccak256("1"), block.chainid, address(token))
        );
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, holder, address(checkout), value, token.nonces(holder), deadline));
        (v, r, s) = vm.sign(holderKey, keccak256(abi.encodePacked("\x19\x01", domain, structHash)));
    }

    /// @dev Pays `q` as its payer after approving exactly its amount.
    function _approveAndPay(ISubscriptionCheckout.Quote memory q) internal {
        bytes memory signature = _sign(q);
        vm.startPrank(q.payer);
        usd.approve(address(checkout), q.amount);
        checkout.pay(q, signature);
        vm.stopPrank();
    }
}
