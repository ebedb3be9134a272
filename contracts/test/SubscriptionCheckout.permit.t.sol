// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {ISubscriptionCheckout} from "../src/interfaces/ISubscriptionCheckout.sol";
import {TestToken} from "../devnet/TestToken.sol";
import {CheckoutFixture} from "./utils/CheckoutFixture.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";

/// @title SubscriptionCheckoutPermitTest
/// @notice Unit tests of `payWithPermit`: the one-transaction checkout with an EIP-2612
/// permit signed over TestToken's digest (built independently here), a permit front-run by a
/// third party, tokens without `permit`, and the cases where a failed permit leaves no
/// allowance and the payment must revert. Also checks TestToken's own permit domain.
contract SubscriptionCheckoutPermitTest is CheckoutFixture {
    // ================================================================ TestToken's permit

    function test_testToken_domainSeparatorMatchesIndependentComputation() public view {
        bytes32 expected =
            keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("Test USD"), keccak256("1"), block.chainid, address(usd)));
        assertEq(usd.DOMAIN_SEPARATOR(), expected);
        assertEq(usd.decimals(), 6);
    }

    function test_testToken_mintRevertsWhen_callerIsNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        usd.mint(stranger, 1);
    }

    // ================================================================ happy path

    function test_payWithPermit_paysWithoutPriorApproval() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        uint256 permitDeadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, permitDeadline);
        assertEq(usd.allowance(payer, address(checkout)), 0, "no approval before");

        // Act
        vm.prank(payer);
        checkout.payWithPermit(q, signature, permitDeadline, v, r, s);

        // Assert
        assertEq(usd.balanceOf(treasury), q.amount, "treasury");
        assertEq(usd.nonces(payer), 1, "permit consumed");
        assertEq(usd.allowance(payer, address(checkout)), 0, "allowance spent");
        assertTrue(checkout.isOrderPaid(1));
    }

    function test_payWithPermit_emitsOrderPaid() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(8);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, q.deadline);

        // Assert (expectation first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit ISubscriptionCheckout.OrderPaid(8, payer, PLAN, address(usd), PRICE, PERIODS);
        vm.prank(payer);
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
    }

    function test_payWithPermit_succeedsWhen_permitFrontRunByThirdParty() public {
        // Arrange: a watcher copies the permit from the mempool and submits it first
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        uint256 permitDeadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, permitDeadline);
        vm.prank(stranger);
        usd.permit(payer, address(checkout), q.amount, permitDeadline, v, r, s);
        assertEq(usd.allowance(payer, address(checkout)), q.amount, "front-run applied the permit");

        // Act: the payer's transaction replays a now-used permit
        vm.prank(payer);
        checkout.payWithPermit(q, signature, permitDeadline, v, r, s);

        // Assert
        assertEq(usd.balanceOf(treasury), q.amount);
        assertTrue(checkout.isOrderPaid(1));
    }

    function test_payWithPermit_usesExistingAllowanceWhen_tokenHasNoPermit() public {
        // Arrange: a token without EIP-2612; the permit call reverts and is skipped
        FeeOnTransferToken plain = new FeeOnTransferToken(0);
        plain.mint(payer, 500);
        ISubscriptionCheckout.Quote memory q = _quote(1, payer, 500);
        q.token = address(plain);
        bytes memory signature = _sign(q);
        vm.prank(payer);
        plain.approve(address(checkout), 500);

        // Act
        vm.prank(payer);
        checkout.payWithPermit(q, signature, 0, 0, bytes32(0), bytes32(0));

        // Assert
        assertEq(plain.balanceOf(treasury), 500);
    }

    function test_payWithPermit_worksFor18DecimalToken() public {
        // Arrange: the TMAI test token
        TestToken tmai = new TestToken("TMAI", "TMAI", 18, owner);
        vm.prank(owner);
        tmai.mint(payer, 100 ether);
        ISubscriptionCheckout.Quote memory q = _quote(3, payer, 42 ether);
        q.token = address(tmai);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(tmai, payerKey, q.amount, q.deadline);

        // Act
        vm.prank(payer);
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);

        // Assert
        assertEq(tmai.balanceOf(treasury), 42 ether);
        assertEq(tmai.balanceOf(payer), 58 ether);
    }

    // ================================================================ reverts

    function test_payWithPermit_revertsWhen_permitInvalidAndNoAllowance() public {
        // Arrange: the permit is signed by someone other than the payer
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, signerKey, q.amount, q.deadline);

        // Act + Assert: the permit failure is swallowed; the transfer fails on allowance
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), 0, q.amount)
        );
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
    }

    function test_payWithPermit_revertsWhen_permitIsForLessThanQuote() public {
        // Arrange: permit signed for one unit less than the quote
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount - 1, q.deadline);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), 0, q.amount)
        );
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
    }

    function test_payWithPermit_revertsWhen_permitExpired() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        uint256 permitDeadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, permitDeadline);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(checkout), 0, q.amount)
        );
        checkout.payWithPermit(q, signature, permitDeadline, v, r, s);
        assertEq(usd.nonces(payer), 0, "permit not used");
    }

    function test_payWithPermit_revertsWhen_callerIsNotPayer() public {
        // Arrange: the stranger relays the payer's permit and quote
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, q.deadline);

        // Act + Assert
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__WrongPayer.selector, payer, stranger)
        );
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
        assertEq(usd.balanceOf(payer), 1_000_000 * 1e6, "payer keeps funds");
    }

    function test_payWithPermit_revertsWhen_quoteSignatureInvalid() public {
        // Arrange: a good permit does not rescue a bad quote signature
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _signDigest(payerKey, _digest(q));
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, q.deadline);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
        assertEq(usd.allowance(payer, address(checkout)), 0, "permit rolled back");
    }

    function test_payWithPermit_revertsWhen_orderAlreadyPaid() public {
        // Arrange
        _approveAndPay(_quote(1));
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, q.deadline);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__OrderAlreadyPaid.selector, 1)
        );
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
    }

    function test_payWithPermit_revertsWhen_paused() public {
        // Arrange
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory signature = _sign(q);
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usd, payerKey, q.amount, q.deadline);
        vm.prank(owner);
        checkout.pause();

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        checkout.payWithPermit(q, signature, q.deadline, v, r, s);
    }

    function test_payWithPermit_revertsWhen_tokenTakesFeeOnTransfer() public {
        // Arrange
        FeeOnTransferToken feeToken = new FeeOnTransferToken(250); // 2.5%
        feeToken.mint(payer, 1_000);
        ISubscriptionCheckout.Quote memory q = _quote(1, payer, 1_000);
        q.token = address(feeToken);
        bytes memory signature = _sign(q);
        vm.prank(payer);
        feeToken.approve(address(checkout), 1_000);

        // Act + Assert
        vm.prank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(ISubscriptionCheckout.SubscriptionCheckout__AmountMismatch.selector, 1_000, 975)
        );
        checkout.payWithPermit(q, signature, 0, 0, bytes32(0), bytes32(0));
    }
}
