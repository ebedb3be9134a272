// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {MembershipBadge} from "../src/MembershipBadge.sol";
import {IMembershipBadge} from "../src/interfaces/IMembershipBadge.sol";
import {IERC5192} from "../src/interfaces/IERC5192.sol";
import {IERC5643} from "../src/interfaces/IERC5643.sol";
import {Vm} from "./utils/Vm.sol";
import {BadgeFixture} from "./utils/BadgeFixture.sol";

/// @title MembershipBadgeTest
/// @notice Unit tests of MembershipBadge's issuer and admin lifecycle: `issue` (single and
/// batch, its Transfer / Locked / SubscriptionUpdate events, wallet-derived token ids, one
/// badge per wallet, tier and zero-address checks), `update` (SubscriptionUpdate,
/// MetadataUpdate, and TierChanged only on a tier change), `revoke` (burn with Transfer /
/// SubscriptionUpdate(0) / MetadataUpdate, re-issue), the
/// gating views `isActive` / `tierOf` / `membershipOf` around expiry, the ERC-5192 and
/// ERC-5643 views, and role checks on issue and update.
/// `move` and the soulbound checks live in MembershipBadge.move.t.sol; metadata and
/// interface ids in MembershipBadge.metadata.t.sol; the delayed admin transfer in
/// MembershipBadge.admin.t.sol.
contract MembershipBadgeTest is BadgeFixture {
    // ================================================================ issue

    function test_issue_mintsBadgeWithWalletDerivedTokenId() public {
        // Arrange
        uint64 expiry = _inAMonth();

        // Act
        vm.prank(issuer);
        badge.issue(_one(alice, PREMIUM, expiry));

        // Assert
        uint256 tokenId = uint256(uint160(alice));
        _assertHolds(alice, tokenId);
        (, uint8 tier, uint64 expiresAt) = badge.membershipOf(alice);
        assertEq(tier, PREMIUM, "tier");
        assertEq(expiresAt, expiry, "expiry");
        assertEq(badge.expiresAt(tokenId), expiry, "expiresAt");
    }

    function test_issue_emitsTransferLockedAndSubscriptionUpdate() public {
        // Arrange
        uint256 tokenId = uint256(uint160(alice));
        uint64 expiry = _inAMonth();

        // Assert (expectations first, in emission order), Act
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC721.Transfer(address(0), alice, tokenId);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC5192.Locked(tokenId);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC5643.SubscriptionUpdate(tokenId, expiry);
        vm.prank(issuer);
        badge.issue(_one(alice, BASIC, expiry));
    }

    function test_issue_mintsWholeBatch() public {
        // Arrange
        IMembershipBadge.Membership[] memory batch = new IMembershipBadge.Membership[](3);
        batch[0] = IMembershipBadge.Membership(alice, 1, _inAMonth());
        batch[1] = IMembershipBadge.Membership(bob, 2, _inAMonth() + 1);
        batch[2] = IMembershipBadge.Membership(carol, 4, _inAMonth() + 2);

        // Act
        vm.recordLogs();
        vm.prank(issuer);
        badge.issue(batch);

        // Assert
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 9, "three events per badge");
        for (uint256 i; i < batch.length; ++i) {
            uint256 tokenId = uint256(uint160(batch[i].wallet));
            _assertHolds(batch[i].wallet, tokenId);
            assertEq(badge.tierOf(batch[i].wallet), batch[i].tier, "tier");
            assertEq(badge.expiresAt(tokenId), batch[i].expiresAt, "expiry");
            assertEq(logs[3 * i].topics[0], IERC721.Transfer.selector, "Transfer");
            assertEq(logs[3 * i + 1].topics[0], IERC5192.Locked.selector, "Locked");
            assertEq(logs[3 * i + 2].topics[0], IERC5643.SubscriptionUpdate.selector, "SubscriptionUpdate");
        }
    }

    function test_issue_acceptsEmptyBatch() public {
        vm.prank(issuer);
        badge.issue(new IMembershipBadge.Membership[](0));
    }

    function test_issue_revertsWhen_walletAlreadyHasBadge() public {
        // Arrange
        _issue(alice);

        // Act + Assert
        vm.prank(issuer);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__AlreadyHasBadge.selector, alice));
        badge.issue(_one(alice, PREMIUM, _inAMonth()));
    }

    function test_issue_revertsWhen_walletRepeatsInBatch() public {
        // Arrange
        IMembershipBadge.Membership[] memory batch = new IMembershipBadge.Membership[](3);
        batch[0] = IMembershipBadge.Membership(alice, 1, _inAMonth());
        batch[1] = IMembershipBadge.Membership(bob, 1, _inAMonth());
        batch[2] = IMembershipBadge.Membership(alice, 2, _inAMonth());

        // Act + Assert: the whole batch reverts, including the earlier mints
        vm.prank(issuer);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__AlreadyHasBadge.selector, alice));
        badge.issue(batch);
        _assertHoldsNone(alice);
        _assertHoldsNone(bob);
    }

    function test_issue_revertsWhen_tierIsZero() public {
        vm.prank(issuer);
        vm.expectRevert(IMembershipBadge.MembershipBadge__InvalidTier.selector);
        badge.issue(_one(alice, 0, _inAMonth()));
    }

    function test_issue_revertsWhen_walletIsZero() public {
        vm.prank(issuer);
        vm.expectRevert(IMembershipBadge.MembershipBadge__ZeroAddress.selector);
        badge.issue(_one(address(0), BASIC, _inAMonth()));
    }

    function test_issue_revertsWhen_callerIsNotIssuer() public {
        // Arrange (read the role before pranking: a prank applies to the next call only)
        bytes32 role = badge.ISSUER_ROLE();

        // Act + Assert
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role)
        );
        badge.issue(_one(alice, BASIC, _inAMonth()));
    }

    function test_issue_revertsWhen_callerIsAdminWithoutIssuerRole() public {
        // Arrange
        bytes32 role = badge.ISSUER_ROLE();

        // Act + Assert
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, role));
        badge.issue(_one(alice, BASIC, _inAMonth()));
    }

    function test_issue_worksForNewIssuerGrantedByAdmin() public {
        // Arrange
        address newIssuer = makeAddr("new issuer");
        bytes32 role = badge.ISSUER_ROLE();
        vm.prank(admin);
        badge.grantRole(role, newIssuer);

        // Act
        vm.prank(newIssuer);
        badge.issue(_one(alice, BASIC, _inAMonth()));

        // Assert
        _assertHolds(alice, uint160(alice));
    }

    // ================================================================ update

    function test_update_setsTierAndExpiryAndEmitsEvents() public {
        // Arrange
        uint256 tokenId = _issue(alice);
        uint64 newExpiry = _inAMonth() + MONTH;

        // Assert (expectations first, in emission order), Act
        vm.expectEmit(true, true, true, true, address(badge));
        emit IMembershipBadge.TierChanged(tokenId, PREMIUM);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC5643.SubscriptionUpdate(tokenId, newExpiry);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC4906.MetadataUpdate(tokenId);
        _update(alice, PREMIUM, newExpiry);

        (uint256 id, uint8 tier, uint64 expiry) = badge.membershipOf(alice);
        assertEq(id, tokenId, "same token");
        assertEq(tier, PREMIUM, "tier");
        assertEq(expiry, newExpiry, "expiry");
    }

    function test_update_emitsNoTierChangedWhen_tierUnchanged() public {
        // Arrange
        uint256 tokenId = _issue(alice, PREMIUM, _inAMonth());
        uint64 newExpiry = _inAMonth() + MONTH;

        // Act
        vm.recordLogs();
        _update(alice, PREMIUM, newExpiry);

        // Assert: exactly SubscriptionUpdate then MetadataUpdate
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "two events");
        assertEq(logs[0].topics[0], IERC5643.SubscriptionUpdate.selector);
        assertEq(logs[0].topics[1], bytes32(tokenId));
        assertEq(abi.decode(logs[0].data, (uint64)), newExpiry);
        assertEq(logs[1].topics[0], IERC4906.MetadataUpdate.selector);
        assertEq(abi.decode(logs[1].data, (uint256)), tokenId);
    }

    function test_update_canShortenExpiry() public {
        // Arrange: an expiry in the past ends the membership now (e.g. a refund)
        _issue(alice);

        // Act
        _update(alice, BASIC, uint64(block.timestamp));

        // Assert
        assertFalse(badge.isActive(alice));
        assertEq(badge.balanceOf(alice), 1, "still holds the badge");
    }

    function test_update_appliesWholeBatch() public {
        // Arrange
        _issue(alice);
        _issue(bob);
        IMembershipBadge.Membership[] memory batch = new IMembershipBadge.Membership[](2);
        batch[0] = IMembershipBadge.Membership(alice, 2, _inAMonth() + 5);
        batch[1] = IMembershipBadge.Membership(bob, 4, _inAMonth() + 6);

        // Act
        vm.prank(issuer);
        badge.update(batch);

        // Assert
        assertEq(badge.tierOf(alice), 2);
        assertEq(badge.tierOf(bob), 4);
        assertEq(badge.expiresAt(uint160(bob)), _inAMonth() + 6);
    }

    function test_update_revertsWhen_walletHasNoBadge() public {
        vm.prank(issuer);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__NoBadge.selector, alice));
        badge.update(_one(alice, BASIC, _inAMonth()));
    }

    function test_update_revertsWhen_tierIsZero() public {
        _issue(alice);
        vm.prank(issuer);
        vm.expectRevert(IMembershipBadge.MembershipBadge__InvalidTier.selector);
        badge.update(_one(alice, 0, _inAMonth()));
    }

    function test_update_revertsWhen_callerIsNotIssuer() public {
        // Arrange
        _issue(alice);
        bytes32 role = badge.ISSUER_ROLE();

        // Act + Assert: neither a stranger, the holder nor the admin may update
        address[3] memory callers = [stranger, alice, admin];
        for (uint256 i; i < callers.length; ++i) {
            vm.prank(callers[i]);
            vm.expectRevert(
                abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, callers[i], role)
            );
            badge.update(_one(alice, PREMIUM, _inAMonth()));
        }
    }

    // ================================================================ revoke

    function test_revoke_burnsBadgeAndEmitsTransferSubscriptionUpdateAndMetadataUpdate() public {
        // Arrange
        uint256 tokenId = _issue(alice);

        // Assert (expectations first, in emission order), Act
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC721.Transfer(alice, address(0), tokenId);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC5643.SubscriptionUpdate(tokenId, 0);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC4906.MetadataUpdate(tokenId);
        _revoke(alice);

        _assertHoldsNone(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, tokenId));
        badge.ownerOf(tokenId);
    }

    function test_revoke_thenIssueAgainReusesWalletId() public {
        // Arrange
        _issue(alice, PREMIUM, _inAMonth());
        _revoke(alice);

        // Act
        uint256 tokenId = _issue(alice, BASIC, _inAMonth() + 7);

        // Assert: fresh data, not leftovers of the burnt badge
        _assertHolds(alice, uint160(alice));
        assertEq(tokenId, uint160(alice));
        assertEq(badge.tierOf(alice), BASIC);
        assertEq(badge.expiresAt(tokenId), _inAMonth() + 7);
    }

    function test_revoke_byIssuerIsAllowed() public {
        _issue(alice);
        vm.prank(issuer);
        badge.revoke(_wallets(alice));
        _assertHoldsNone(alice);
    }

    function test_revoke_burnsWholeBatch() public {
        // Arrange
        _issue(alice);
        _issue(bob);
        _issue(carol);
        address[] memory wallets = new address[](2);
        wallets[0] = alice;
        wallets[1] = carol;

        // Act
        vm.prank(admin);
        badge.revoke(wallets);

        // Assert
        _assertHoldsNone(alice);
        _assertHoldsNone(carol);
        _assertHolds(bob, uint160(bob));
    }

    function test_revoke_emitsExactlyThreeEventsPerBadgeOfBatch() public {
        // Arrange
        uint256 aliceId = _issue(alice);
        uint256 carolId = _issue(carol);
        address[] memory wallets = new address[](2);
        wallets[0] = alice;
        wallets[1] = carol;

        // Act
        vm.recordLogs();
        vm.prank(issuer);
        badge.revoke(wallets);

        // Assert: Transfer to zero, SubscriptionUpdate(0), MetadataUpdate, per badge, in order
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 6, "three logs per badge");
        uint256[2] memory ids = [aliceId, carolId];
        for (uint256 i; i < 2; ++i) {
            Vm.Log memory transfer = logs[3 * i];
            Vm.Log memory subscription = logs[3 * i + 1];
            Vm.Log memory metadata = logs[3 * i + 2];
            assertEq(transfer.topics[0], IERC721.Transfer.selector, "Transfer");
            assertEq(uint256(transfer.topics[3]), ids[i], "Transfer id");
            assertEq(subscription.topics[0], IERC5643.SubscriptionUpdate.selector, "SubscriptionUpdate");
            assertEq(uint256(subscription.topics[1]), ids[i], "SubscriptionUpdate id");
            assertEq(abi.decode(subscription.data, (uint64)), 0, "expiration 0");
            assertEq(metadata.topics[0], IERC4906.MetadataUpdate.selector, "MetadataUpdate");
            assertEq(abi.decode(metadata.data, (uint256)), ids[i], "MetadataUpdate id");
            assertEq(metadata.emitter, address(badge), "emitter");
        }
    }

    function test_revoke_revertsWhen_walletHasNoBadge() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__NoBadge.selector, alice));
        badge.revoke(_wallets(alice));
    }

    function test_revoke_revertsWhen_walletRepeatsInBatch() public {
        // Arrange
        _issue(alice);
        address[] memory wallets = new address[](2);
        wallets[0] = alice;
        wallets[1] = alice;

        // Act + Assert
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__NoBadge.selector, alice));
        badge.revoke(wallets);
        _assertHolds(alice, uint160(alice));
    }

    function test_revoke_revertsWhen_callerIsStranger() public {
        _issue(alice);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Unauthorized.selector, stranger));
        badge.revoke(_wallets(alice));
    }

    function test_revoke_revertsWhen_callerIsHolder() public {
        _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Unauthorized.selector, alice));
        badge.revoke(_wallets(alice));
    }

    // ================================================================ gating views

    function test_isActive_andTierOf_followExpiry() public {
        // Arrange
        uint64 expiry = _inAMonth();
        _issue(alice, PREMIUM, expiry);

        // Assert: active up to the second before expiry
        vm.warp(expiry - 1);
        assertTrue(badge.isActive(alice), "active before expiry");
        assertEq(badge.tierOf(alice), PREMIUM, "tier before expiry");

        // Assert: inactive from the expiry second on, but still held and still described
        vm.warp(expiry);
        assertFalse(badge.isActive(alice), "inactive at expiry");
        assertEq(badge.tierOf(alice), 0, "no tier at expiry");
        (uint256 id, uint8 tier, uint64 expiresAt) = badge.membershipOf(alice);
        assertEq(id, uint160(alice));
        assertEq(tier, PREMIUM, "membershipOf keeps tier");
        assertEq(expiresAt, expiry);
        assertEq(badge.balanceOf(alice), 1);
    }

    function test_isActive_isFalseForWalletWithoutBadge() public view {
        _assertHoldsNone(alice);
        assertFalse(badge.isActive(address(0)), "zero address");
        assertEq(badge.tokenOf(address(0)), 0, "zero address");
    }

    function test_update_reactivatesExpiredBadge() public {
        // Arrange
        uint64 expiry = _inAMonth();
        _issue(alice, BASIC, expiry);
        uint64 later = expiry + 1 days;
        vm.warp(later);

        // Act (via-IR folds repeated `block.timestamp` reads within one call, so the test
        // uses the warped time it computed rather than reading it back)
        _update(alice, BASIC, later + MONTH);

        // Assert
        assertTrue(badge.isActive(alice));
        assertEq(badge.tierOf(alice), BASIC);
    }

    function test_balanceOf_revertsWhen_ownerIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidOwner.selector, address(0)));
        badge.balanceOf(address(0));
    }

    // ================================================================ ERC-5192 and ERC-5643 views

    function test_locked_isTrueForExistingBadge() public {
        uint256 tokenId = _issue(alice);
        assertTrue(badge.locked(tokenId));
    }

    function test_locked_revertsWhen_tokenDoesNotExist() public {
        uint256 missing = uint160(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, missing));
        badge.locked(missing);
    }

    function test_expiresAt_revertsWhen_tokenDoesNotExist() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 123));
        badge.expiresAt(123);
    }

    function test_isRenewable_isFalse() public {
        uint256 tokenId = _issue(alice);
        assertFalse(badge.isRenewable(tokenId));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 7));
        badge.isRenewable(7);
    }

    function test_renewSubscription_reverts() public {
        uint256 tokenId = _issue(alice);
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(IMembershipBadge.MembershipBadge__ManagedByIssuer.selector);
        badge.renewSubscription{value: 1 ether}(tokenId, MONTH);
    }

    function test_cancelSubscription_reverts() public {
        uint256 tokenId = _issue(alice);
        vm.prank(issuer);
        vm.expectRevert(IMembershipBadge.MembershipBadge__ManagedByIssuer.selector);
        badge.cancelSubscription(tokenId);
    }

    // ================================================================ constructor

    function test_constructor_grantsRoles() public view {
        assertTrue(badge.hasRole(badge.DEFAULT_ADMIN_ROLE(), admin), "admin role");
        assertTrue(badge.hasRole(badge.ISSUER_ROLE(), issuer), "issuer role");
        assertFalse(badge.hasRole(badge.ISSUER_ROLE(), admin), "admin is not issuer");
        assertFalse(badge.hasRole(badge.DEFAULT_ADMIN_ROLE(), issuer), "issuer is not admin");
    }

    function test_constructor_revertsWhen_adminIsZero() public {
        vm.expectRevert(IMembershipBadge.MembershipBadge__ZeroAddress.selector);
        new MembershipBadge(address(0), issuer, ADMIN_DELAY);
    }

    function test_constructor_revertsWhen_issuerIsZero() public {
        vm.expectRevert(IMembershipBadge.MembershipBadge__ZeroAddress.selector);
        new MembershipBadge(admin, address(0), ADMIN_DELAY);
    }
}
