// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {ISubscriptionCheckout} from "../src/interfaces/ISubscriptionCheckout.sol";
import {CheckoutFixture} from "./utils/CheckoutFixture.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";

/// @title SubscriptionCheckoutTest
/// @notice Unit tests of `SubscriptionCheckout.pay`: the happy path and its {OrderPaid} event,
/// every revert path (signature, signer, payer, deadline, replay, empty quote, fee-on-transfer
/// token, allowance, balance, pause), the paid-order bitmap behind `isOrderPaid`, and
/// `quoteDigest` against an EIP-712 digest built independently in the test.
/// Owner functions live in SubscriptionCheckout.admin.t.sol, `payWithPermit` in
/// SubscriptionCheckout.permit.t.sol, fuzz tests in SubscriptionCheckout.fuzz.t.sol.
contract SubscriptionCheckoutTest is CheckoutFixture {
    // ================================================================ happy path

    function test_pay_movesAmountFromPayerToTreasury() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);
        uint256 payerBefore = usd.balanceOf(payer);

        // Act
        vm.prank(payer);
        checkout.pay(q, signature);

        // Assert
        assertEq(usd.balanceOf(treasury), q.amount, "treasury balance");
        assertEq(usd.balanceOf(payer), payerBefore - q.amount, "payer balance");
        assertEq(usd.balanceOf(address(checkout)), 0, "checkout holds nothing");
        assertEq(usd.allowance(payer, address(checkout)), 0, "allowance used up");
        assertTrue(checkout.isOrderPaid(1), "order marked paid");
    }

    function test_pay_emitsOrderPaidWithQuoteFields() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(42, payer, 123_456_789);
        q.planId = 7;
        q.periods = 12;
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);

        // Assert (expectations first), Act
        vm.expectEmit(true, true, true, true, address(usd));
        emit IERC20.Transfer(payer, treasury, q.amount);
        vm.expectEmit(true, true, true, true, address(checkout));
        emit ISubscriptionCheckout.OrderPaid(42, payer, 7, address(usd), 123_456_789, 12);
        vm.prank(payer);
        checkout.pay(q, signature);
    }

    function test_pay_succeedsAtExactDeadline() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);
        vm.warp(q.deadline);

        // Act
        vm.prank(payer);
        checkout.pay(q, signature);

        // Assert
        assertTrue(checkout.isOrderPaid(1));
    }

    function test_pay_acceptsTokenWithoutPermit() public {
        // Arrange: a plain ERC-20 (fee 0, no EIP-2612)
        FeeOnTransferToken plain = new FeeOnTransferToken(0);
        plain.mint(payer, 100);
        ISubscriptionCheckout.Quote memory q = _quote(5, payer, 100);
        q.token = address(plain);
        bytes memory signature = _sign(q);
        vm.prank(payer);
        plain.approve(address(checkout), 100);

        // Act
        vm.prank(payer);
        checkout.pay(q, signature);

        // Assert
        assertEq(plain.balanceOf(treasury), 100);
    }

    function test_pay_acceptsLargestOrderIdAndAmount() public {
        // Arrange
        uint256 amount = type(uint256).max - usd.totalSupply();
        _fund(payer, amount - usd.balanceOf(payer));
        ISubscriptionCheckout.Quote memory q = _quote(type(uint256).max, payer, amount);

        // Act
        _approveAndPay(q);

        // Assert
        assertTrue(checkout.isOrderPaid(type(uint256).max));
        assertEq(usd.balanceOf(treasury), amount);
    }

    // ================================================================ isOrderPaid

    function test_isOrderPaid_isFalseForUnpaidOrders() public view {
        assertFalse(checkout.isOrderPaid(0));
        assertFalse(checkout.isOrderPaid(1));
        assertFalse(checkout.isOrderPaid(type(uint256).max));
    }

    function test_isOrderPaid_tracksEachOrderOfOneBitmapWordSeparately() public {
        // Arrange: ids 0, 1 and 255 share a bitmap word; 256 starts the next one
        uint256[4] memory ids = [uint256(0), 1, 255, 256];

        for (uint256 i; i < ids.length; ++i) {
            // Act
            _approveAndPay(_quote(ids[i]));

            // Assert: this order and the earlier ones are paid, the later ones are not
            for (uint256 j; j < ids.length; ++j) {
                assertEq(checkout.isOrderPaid(ids[j]), j <= i, "bitmap bit");
            }
        }
        assertFalse(checkout.isOrderPaid(2), "neighbour in same word");
        assertFalse(checkout.isOrderPaid(257), "neighbour in next word");
        assertFalse(checkout.isOrderPaid(512), "same bit, other word");
    }

    function test_isOrderPaid_staysFalseWhen_paymentReverts() public {
        // Arrange: no allowance
        ISubscriptionCheckout.Quote memory q = _quote(9);
        bytes memory signature = _sign(q);

        // Act
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), 0, q.amount)
        );
        checkout.pay(q, signature);

        // Assert: the bit set before the transfer was rolled back with it
        assertFalse(checkout.isOrderPaid(9));
    }

    // ================================================================ signature reverts

    function test_pay_revertsWhen_signatureIsGarbage() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        _approve(payer, q.amount);
        bytes memory signature = abi.encodePacked(bytes32(uint256(1)), bytes32(uint256(2)), uint8(27));

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_signatureHasWrongLength() public {
        // Arrange: a valid signature with its `v` byte cut off, and an empty one
        ISubscriptionCheckout.Quote memory q = _quote(1);
        _approve(payer, q.amount);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(signerKey, _digest(q));
        v; // unused: dropped on purpose

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, abi.encodePacked(r, s));

        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, "");
    }

    function test_pay_revertsWhen_signatureIsMalleated() public {
        // Arrange: the signer's own signature turned into its high-s twin
        ISubscriptionCheckout.Quote memory q = _quote(1);
        _approve(payer, q.amount);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(signerKey, _digest(q));
        bytes32 highS = bytes32(SECP256K1_ORDER - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, abi.encodePacked(r, highS, flippedV));
    }

    function test_pay_revertsWhen_signedByWrongKey() public {
        // Arrange: the payer signs its own quote
        ISubscriptionCheckout.Quote memory q = _quote(1);
        _approve(payer, q.amount);
        bytes memory signature = _signDigest(payerKey, _digest(q));

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_quoteAlteredAfterSigning() public {
        // Arrange: each field of a signed quote changed in turn
        ISubscriptionCheckout.Quote memory signed = _quote(1);
        bytes memory signature = _sign(signed);
        _approve(payer, type(uint256).max);
        ISubscriptionCheckout.Quote[] memory altered = new ISubscriptionCheckout.Quote[](6);
        for (uint256 i; i < altered.length; ++i) {
            altered[i] = _quote(1);
        }
        altered[0].orderId = 2;
        altered[1].token = address(0xdead);
        altered[2].amount = signed.amount - 1;
        altered[3].planId = signed.planId + 1;
        altered[4].periods = signed.periods + 1;
        altered[5].deadline = signed.deadline + 1;

        for (uint256 i; i < altered.length; ++i) {
            // Act + Assert
            vm.prank(payer);
            vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
            checkout.pay(altered[i], signature);
        }
    }

    // ================================================================ payer, deadline, quote

    function test_pay_revertsWhen_callerIsNotPayer() public {
        // Arrange: the stranger has funds and an allowance, but the quote names the payer
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _fund(stranger, q.amount);
        _approve(stranger, q.amount);

        // Act + Assert
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__WrongPayer.selector, payer, stranger)
        );
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_deadlinePassed() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);
        vm.warp(uint256(q.deadline) + 1);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISubscriptionCheckout.SubscriptionCheckout__QuoteExpired.selector, q.deadline, block.timestamp
            )
        );
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_amountIsZero() public {
        // Arrange: validly signed, but empty
        ISubscriptionCheckout.Quote memory q = _quote(1, payer, 0);
        bytes memory signature = _sign(q);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__EmptyQuote.selector);
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_periodsIsZero() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        q.periods = 0;
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__EmptyQuote.selector);
        checkout.pay(q, signature);
    }

    // ================================================================ replay

    function test_pay_revertsWhen_orderAlreadyPaid() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _approve(payer, 2 * q.amount);
        vm.prank(payer);
        checkout.pay(q, signature);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, 1)
        );
        checkout.pay(q, signature);
        assertEq(usd.balanceOf(treasury), q.amount, "paid once");
    }

    function test_pay_revertsWhen_orderAlreadyPaidUnderAnotherQuote() public {
        // Arrange: a second, validly signed quote that reuses the order id for another payer
        _approveAndPay(_quote(1));
        ISubscriptionCheckout.Quote memory again = _quote(1, stranger, 1);
        bytes memory signature = _sign(again);
        _fund(stranger, 1);
        _approve(stranger, 1);

        // Act + Assert
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, 1)
        );
        checkout.pay(again, signature);
    }

    // ================================================================ token behaviour

    function test_pay_revertsWhen_tokenTakesFeeOnTransfer() public {
        // Arrange: 1% fee, so the treasury would receive 99
        FeeOnTransferToken feeToken = new FeeOnTransferToken(100);
        feeToken.mint(payer, 100);
        ISubscriptionCheckout.Quote memory q = _quote(1, payer, 100);
        q.token = address(feeToken);
        bytes memory signature = _sign(q);
        vm.prank(payer);
        feeToken.approve(address(checkout), 100);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__AmountMismatch.selector, 100, 99)
        );
        checkout.pay(q, signature);
        assertFalse(checkout.isOrderPaid(1));
    }

    function test_pay_revertsWhen_payerIsTheTreasury() public {
        // Arrange: the treasury's balance cannot grow when it pays itself, so the
        // exact-amount check rejects the payment (documents current behaviour)
        _fund(treasury, PRICE);
        ISubscriptionCheckout.Quote memory q = _quote(1, treasury, PRICE);
        bytes memory signature = _sign(q);
        _approve(treasury, PRICE);

        // Act + Assert
        vm.prank(treasury);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__AmountMismatch.selector, PRICE, 0)
        );
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_allowanceMissing() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), 0, q.amount)
        );
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_allowanceTooLow() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount - 1);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), q.amount - 1, q.amount
            )
        );
        checkout.pay(q, signature);
    }

    function test_pay_revertsWhen_balanceTooLow() public {
        // Arrange
        uint256 balance = usd.balanceOf(payer);
        ISubscriptionCheckout.Quote memory q = _quote(1, payer, balance + 1);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, payer, balance, balance + 1)
        );
        checkout.pay(q, signature);
    }

    // ================================================================ pause

    function test_pay_revertsWhen_paused() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        _approve(payer, q.amount);
        vm.prank(owner);
        checkout.pause();

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        checkout.pay(q, signature);
    }

    function test_pay_succeedsAfterUnpause() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        vm.startPrank(owner);
        checkout.pause();
        checkout.unpause();
        vm.stopPrank();

        // Act
        _approveAndPay(q);

        // Assert
        assertTrue(checkout.isOrderPaid(1));
    }

    // ================================================================ digest

    function test_quoteDigest_matchesIndependentEip712Digest() public view {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(77, payer, 5e6);
        q.planId = 2;
        q.periods = 6;

        // Act
        bytes32 digest = checkout.quoteDigest(q);

        // Assert
        assertEq(digest, _digest(q, block.chainid, address(checkout)));
        assertEq(checkout.QUOTE_TYPEHASH(), QUOTE_TYPEHASH, "type hash");
    }

    function test_eip712Domain_reportsNameVersionChainAndContract() public view {
        // Act
        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            checkout.eip712Domain();

        // Assert
        assertEq(name, "TMAI Checkout");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifyingContract, address(checkout));
    }
}
