// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISubscriptionCheckout} from "../src/interfaces/ISubscriptionCheckout.sol";
import {CheckoutFixture} from "./utils/CheckoutFixture.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";

/// @title SubscriptionCheckoutFuzzTest
/// @notice Fuzz tests of SubscriptionCheckout over amounts, deadlines, plans, periods, order
/// ids and signatures: a valid quote pays exactly its amount to the treasury, and a quote
/// signed by another key, for another chain, for another verifying contract, paid by another
/// account, paid late, or replayed under the same order id always reverts.
/// @dev Runs and seed come from foundry.toml (`[fuzz]`), so failures reproduce.
contract SubscriptionCheckoutFuzzTest is CheckoutFixture {
    uint256 private constant MAX_AMOUNT = 1e30;
    uint64 private constant DEADLINE = uint64(START) + TTL;

    /// @dev Builds a valid, unexpired quote for `payer` from fuzzed fields (amount, periods and
    /// deadline bounded into their valid ranges), and funds and approves the payer for it.
    function _fuzzQuote(uint256 orderId, uint256 amount, uint32 planId, uint32 periods, uint64 deadline)
        private
        returns (ISubscriptionCheckout.Quote memory q)
    {
        q = _quote(orderId, payer, bound(amount, 1, MAX_AMOUNT));
        q.planId = planId;
        q.periods = uint32(bound(periods, 1, type(uint32).max));
        q.deadline = uint64(bound(deadline, block.timestamp, type(uint64).max));
        _fund(payer, q.amount);
        _approve(payer, q.amount);
    }

    // ================================================================ valid quotes

    function testFuzz_pay_treasuryReceivesExactlyQuotedAmount(
        uint256 orderId,
        uint256 amount,
        uint32 planId,
        uint32 periods,
        uint64 deadline
    ) public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, amount, planId, periods, deadline);
        bytes memory signature = _sign(q);
        uint256 payerBefore = usd.balanceOf(payer);
        uint256 treasuryBefore = usd.balanceOf(treasury);

        // Assert (event expectation first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit ISubscriptionCheckout.OrderPaid(q.orderId, payer, q.planId, address(usd), q.amount, q.periods);
        vm.prank(payer);
        checkout.pay(q, signature);

        // Assert
        assertEq(usd.balanceOf(treasury) - treasuryBefore, q.amount, "treasury gain");
        assertEq(payerBefore - usd.balanceOf(payer), q.amount, "payer loss");
        assertTrue(checkout.isOrderPaid(q.orderId), "paid");
    }

    function testFuzz_pay_succeedsAnyTimeUpToDeadline(uint64 deadline, uint256 wait) public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(1, PRICE, PLAN, PERIODS, deadline);
        bytes memory signature = _sign(q);
        vm.warp(bound(wait, block.timestamp, q.deadline));

        // Act
        vm.prank(payer);
        checkout.pay(q, signature);

        // Assert
        assertTrue(checkout.isOrderPaid(1));
    }

    function testFuzz_quoteDigest_matchesIndependentDigest(
        uint256 orderId,
        address who,
        address token,
        uint256 amount,
        uint32 planId,
        uint32 periods,
        uint64 deadline
    ) public view {
        ISubscriptionCheckout.Quote memory q =
            ISubscriptionCheckout.Quote(orderId, who, token, amount, planId, periods, deadline);
        assertEq(checkout.quoteDigest(q), _digest(q, block.chainid, address(checkout)));
    }

    function testFuzz_isOrderPaid_marksOnlyThePaidOrder(uint256 orderId, uint256 otherId) public {
        // Arrange
        vm.assume(orderId != otherId);

        // Act
        _approveAndPay(_quote(orderId));

        // Assert
        assertTrue(checkout.isOrderPaid(orderId));
        assertFalse(checkout.isOrderPaid(otherId));
    }

    // ================================================================ forged or misdirected signatures

    function testFuzz_pay_revertsWhen_signedByWrongKey(uint256 key, uint256 orderId, uint256 amount) public {
        // Arrange
        key = boundPrivateKey(key);
        vm.assume(key != signerKey);
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, amount, PLAN, PERIODS, DEADLINE);
        bytes memory signature = _signDigest(key, _digest(q));

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    function testFuzz_pay_revertsWhen_signatureIsRandomBytes(bytes calldata signature, uint256 orderId) public {
        // Arrange: random bytes are not the signer's signature (recovering the signer by
        // chance would mean breaking secp256k1)
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, PRICE, PLAN, PERIODS, DEADLINE);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    function testFuzz_pay_revertsWhen_signedForAnotherChain(uint256 otherChainId, uint256 orderId) public {
        // Arrange: the digest is computed for another chain id
        vm.assume(otherChainId != block.chainid);
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, PRICE, PLAN, PERIODS, DEADLINE);
        bytes memory signature = _signDigest(signerKey, _digest(q, otherChainId, address(checkout)));

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    function testFuzz_pay_revertsWhen_chainIdChangesAfterSigning(uint64 newChainId, uint256 orderId) public {
        // Arrange: a valid signature, then the chain forks to a new id
        vm.assume(newChainId != block.chainid);
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, PRICE, PLAN, PERIODS, DEADLINE);
        bytes memory signature = _sign(q);
        vm.chainId(newChainId);

        // Act + Assert: the contract rebuilds its domain for the new chain
        assertEq(checkout.quoteDigest(q), _digest(q, newChainId, address(checkout)), "digest follows chain id");
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    function testFuzz_pay_revertsWhen_signedForAnotherContract(address otherCheckout, uint256 orderId) public {
        // Arrange: the digest names another verifying contract (e.g. a staging deployment)
        vm.assume(otherCheckout != address(checkout));
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, PRICE, PLAN, PERIODS, DEADLINE);
        bytes memory signature = _signDigest(signerKey, _digest(q, block.chainid, otherCheckout));

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    // ================================================================ payer, deadline, replay

    function testFuzz_pay_revertsWhen_callerIsNotPayer(address caller, uint256 orderId, uint256 amount) public {
        // Arrange
        vm.assume(caller != payer);
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, amount, PLAN, PERIODS, DEADLINE);
        bytes memory signature = _sign(q);

        // Act + Assert
        vm.prank(caller);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__WrongPayer.selector, payer, caller)
        );
        checkout.pay(q, signature);
    }

    function testFuzz_pay_revertsWhen_deadlinePassed(uint64 deadline, uint256 lateBy, uint256 orderId) public {
        // Arrange: any deadline, paid at least one second after it
        ISubscriptionCheckout.Quote memory q = _fuzzQuote(orderId, PRICE, PLAN, PERIODS, 0);
        q.deadline = uint64(bound(deadline, 0, type(uint64).max - 1));
        bytes memory signature = _sign(q);
        uint256 paidAt = bound(lateBy, uint256(q.deadline) + 1, uint256(type(uint64).max));
        vm.warp(paidAt);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISubscriptionCheckout.SubscriptionCheckout__QuoteExpired.selector, q.deadline, paidAt
            )
        );
        checkout.pay(q, signature);
    }

    function testFuzz_pay_revertsWhen_orderIdReplayed(uint256 orderId, uint256 firstAmount, uint256 secondAmount)
        public
    {
        // Arrange: pay once, then get a fresh, validly signed quote for the same order id
        ISubscriptionCheckout.Quote memory first = _fuzzQuote(orderId, firstAmount, PLAN, PERIODS, DEADLINE);
        _approveAndPay(first);
        uint256 treasuryAfterFirst = usd.balanceOf(treasury);
        ISubscriptionCheckout.Quote memory second = _fuzzQuote(orderId, secondAmount, PLAN + 1, PERIODS, DEADLINE);
        bytes memory signature = _sign(second);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, orderId)
        );
        checkout.pay(second, signature);
        assertEq(usd.balanceOf(treasury), treasuryAfterFirst, "treasury unchanged by replay");
    }

    // ================================================================ token behaviour

    function testFuzz_pay_revertsWhen_tokenTakesAnyFee(uint256 feeBps, uint256 amount) public {
        // Arrange: a non-zero fee that rounds up to at least one unit
        feeBps = bound(feeBps, 1, 10_000);
        amount = bound(amount, 1, MAX_AMOUNT);
        FeeOnTransferToken feeToken = new FeeOnTransferToken(feeBps);
        feeToken.mint(payer, amount);
        ISubscriptionCheckout.Quote memory q = _quote(1, payer, amount);
        q.token = address(feeToken);
        bytes memory signature = _sign(q);
        vm.prank(payer);
        feeToken.approve(address(checkout), amount);
        uint256 fee = (amount * feeBps + 9_999) / 10_000;

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISubscriptionCheckout.SubscriptionCheckout__AmountMismatch.selector, amount, amount - fee
            )
        );
        checkout.pay(q, signature);
    }

    function testFuzz_payWithPermit_treasuryReceivesExactlyQuotedAmount(
        uint256 orderId,
        uint256 amount,
        uint256 permitDeadline
    ) public {
        // Arrange: no approval, only a permit
        amount = bound(amount, 1, MAX_AMOUNT);
        permitDeadline = bound(permitDeadline, block.timestamp, type(uint256).max);
        _fund(payer, amount);
        ISubscriptionCheckout.Quote memory q = _quote(orderId, payer, amount);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, amount, permitDeadline);

        // Act
        vm.prank(payer);
        checkout.payWithPermit(q, signature, permitDeadline, v, r, s);

        // Assert
        assertEq(usd.balanceOf(treasury), amount);
        assertEq(usd.allowance(payer, address(checkout)), 0);
    }
}
