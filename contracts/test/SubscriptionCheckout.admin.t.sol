// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {SubscriptionCheckout} from "../src/SubscriptionCheckout.sol";
import {ISubscriptionCheckout} from "../src/interfaces/ISubscriptionCheckout.sol";
import {CheckoutFixture} from "./utils/CheckoutFixture.sol";

/// @title SubscriptionCheckoutAdminTest
/// @notice Unit tests of SubscriptionCheckout's constructor and owner functions: zero-address
/// checks, {QuoteSignerChanged} / {TreasuryChanged} / `Paused` / `Unpaused` events, signer
/// rotation invalidating old quotes, treasury rotation redirecting payments, OpenZeppelin's
/// `OwnableUnauthorizedAccount` for every owner function, the two-step ownership handover, and
/// `renounceOwnership` refused (an ownerless checkout could never unpause or rotate keys).
contract SubscriptionCheckoutAdminTest is CheckoutFixture {
    // ================================================================ constructor

    function test_constructor_setsOwnerSignerAndTreasury() public view {
        assertEq(checkout.owner(), owner);
        assertEq(checkout.quoteSigner(), signer);
        assertEq(checkout.treasury(), treasury);
        assertFalse(checkout.paused());
    }

    function test_constructor_emitsSignerAndTreasuryEvents() public {
        // Assert (expectations first), Act
        vm.expectEmit(true, true, true, true);
        emit ISubscriptionCheckout.QuoteSignerChanged(address(0), signer);
        vm.expectEmit(true, true, true, true);
        emit ISubscriptionCheckout.TreasuryChanged(address(0), treasury);
        new SubscriptionCheckout(owner, signer, treasury);
    }

    function test_constructor_revertsWhen_signerIsZero() public {
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__ZeroAddress.selector);
        new SubscriptionCheckout(owner, address(0), treasury);
    }

    function test_constructor_revertsWhen_treasuryIsZero() public {
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__ZeroAddress.selector);
        new SubscriptionCheckout(owner, signer, address(0));
    }

    function test_constructor_revertsWhen_ownerIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new SubscriptionCheckout(address(0), signer, treasury);
    }

    // ================================================================ quote signer

    function test_setQuoteSigner_emitsQuoteSignerChanged() public {
        // Arrange
        address newSigner = makeAddr("new signer");

        // Assert (expectation first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit ISubscriptionCheckout.QuoteSignerChanged(signer, newSigner);
        vm.prank(owner);
        checkout.setQuoteSigner(newSigner);

        assertEq(checkout.quoteSigner(), newSigner);
    }

    function test_setQuoteSigner_invalidatesQuotesOfOldSigner() public {
        // Arrange: a quote signed by the old key, then the key is rotated
        ISubscriptionCheckout.Quote memory q = _quote(1);
        bytes memory oldSignature = _sign(q);
        _approve(payer, q.amount);
        (address newSigner, uint256 newKey) = makeAddrAndKey("new signer");
        vm.prank(owner);
        checkout.setQuoteSigner(newSigner);

        // Act + Assert: the old signature no longer pays
        vm.prank(payer);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__InvalidSignature.selector);
        checkout.pay(q, oldSignature);

        // ...and the new key's signature over the same quote does
        vm.prank(payer);
        checkout.pay(q, _signDigest(newKey, _digest(q)));
        assertTrue(checkout.isOrderPaid(1));
    }

    function test_setQuoteSigner_revertsWhen_zeroAddress() public {
        vm.prank(owner);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__ZeroAddress.selector);
        checkout.setQuoteSigner(address(0));
    }

    function test_setQuoteSigner_revertsWhen_callerIsNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.setQuoteSigner(stranger);
    }

    function test_setQuoteSigner_revertsWhen_callerIsTheSigner() public {
        // The service key signs quotes but cannot rotate itself.
        vm.prank(signer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, signer));
        checkout.setQuoteSigner(stranger);
    }

    // ================================================================ treasury

    function test_setTreasury_emitsTreasuryChanged() public {
        // Arrange
        address newTreasury = makeAddr("new treasury");

        // Assert (expectation first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit ISubscriptionCheckout.TreasuryChanged(treasury, newTreasury);
        vm.prank(owner);
        checkout.setTreasury(newTreasury);

        assertEq(checkout.treasury(), newTreasury);
    }

    function test_setTreasury_redirectsLaterPayments() public {
        // Arrange
        address newTreasury = makeAddr("new treasury");
        vm.prank(owner);
        checkout.setTreasury(newTreasury);

        // Act
        _approveAndPay(_quote(1));

        // Assert
        assertEq(usd.balanceOf(newTreasury), PRICE);
        assertEq(usd.balanceOf(treasury), 0);
    }

    function test_setTreasury_revertsWhen_zeroAddress() public {
        vm.prank(owner);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__ZeroAddress.selector);
        checkout.setTreasury(address(0));
    }

    function test_setTreasury_revertsWhen_callerIsNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.setTreasury(stranger);
    }

    // ================================================================ pause

    function test_pause_emitsPausedAndSetsFlag() public {
        vm.expectEmit(true, true, true, true, address(checkout));
        emit Pausable.Paused(owner);
        vm.prank(owner);
        checkout.pause();

        assertTrue(checkout.paused());
    }

    function test_unpause_emitsUnpausedAndClearsFlag() public {
        // Arrange
        vm.prank(owner);
        checkout.pause();

        // Assert (expectation first), Act
        vm.expectEmit(true, true, true, true, address(checkout));
        emit Pausable.Unpaused(owner);
        vm.prank(owner);
        checkout.unpause();

        assertFalse(checkout.paused());
    }

    function test_pause_revertsWhen_alreadyPaused() public {
        vm.startPrank(owner);
        checkout.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        checkout.pause();
        vm.stopPrank();
    }

    function test_unpause_revertsWhen_notPaused() public {
        vm.prank(owner);
        vm.expectRevert(Pausable.ExpectedPause.selector);
        checkout.unpause();
    }

    function test_pause_revertsWhen_callerIsNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.pause();
    }

    function test_unpause_revertsWhen_callerIsNotOwner() public {
        // Arrange
        vm.prank(owner);
        checkout.pause();

        // Act + Assert
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.unpause();
    }

    function test_pause_doesNotBlockOwnerFunctions() public {
        // Arrange
        vm.startPrank(owner);
        checkout.pause();

        // Act: rotating keys is exactly what an owner may need to do while paused
        checkout.setQuoteSigner(stranger);
        checkout.setTreasury(stranger);
        vm.stopPrank();

        // Assert
        assertEq(checkout.quoteSigner(), stranger);
        assertEq(checkout.treasury(), stranger);
    }

    // ================================================================ ownership

    function test_transferOwnership_takesEffectOnlyWhenAccepted() public {
        // Arrange
        address newOwner = makeAddr("new owner");
        vm.prank(owner);
        checkout.transferOwnership(newOwner);

        // Assert: still the old owner until accepted
        assertEq(checkout.owner(), owner);
        assertEq(checkout.pendingOwner(), newOwner);
        vm.prank(newOwner);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, newOwner));
        checkout.pause();

        // Act
        vm.prank(newOwner);
        checkout.acceptOwnership();

        // Assert
        assertEq(checkout.owner(), newOwner);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        checkout.pause();
        vm.prank(newOwner);
        checkout.pause();
    }

    function test_transferOwnership_revertsWhen_callerIsNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.transferOwnership(stranger);
    }

    function test_acceptOwnership_revertsWhen_callerIsNotPendingOwner() public {
        // Arrange
        vm.prank(owner);
        checkout.transferOwnership(makeAddr("new owner"));

        // Act + Assert
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.acceptOwnership();
    }

    function test_renounceOwnership_revertsWhen_callerIsOwner() public {
        vm.prank(owner);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__RenounceOwnershipDisabled.selector);
        checkout.renounceOwnership();

        assertEq(checkout.owner(), owner, "owner kept");
    }

    function test_renounceOwnership_revertsWhen_paused() public {
        // Arrange: renouncing now would leave the checkout paused for good
        vm.prank(owner);
        checkout.pause();

        // Act + Assert
        vm.prank(owner);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__RenounceOwnershipDisabled.selector);
        checkout.renounceOwnership();

        // ...and the owner can still unpause
        assertEq(checkout.owner(), owner, "owner kept");
        vm.prank(owner);
        checkout.unpause();
        assertFalse(checkout.paused());
    }

    function test_renounceOwnership_revertsWhen_ownershipTransferIsPending() public {
        // Arrange: a handover in progress stays in progress
        address newOwner = makeAddr("new owner");
        vm.prank(owner);
        checkout.transferOwnership(newOwner);

        // Act + Assert
        vm.prank(owner);
        vm.expectRevert(ISubscriptionCheckout.SubscriptionCheckout__RenounceOwnershipDisabled.selector);
        checkout.renounceOwnership();
        assertEq(checkout.pendingOwner(), newOwner, "pending owner kept");
        vm.prank(newOwner);
        checkout.acceptOwnership();
        assertEq(checkout.owner(), newOwner);
    }

    function test_renounceOwnership_revertsWhen_callerIsNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        checkout.renounceOwnership();
    }
}
