// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";

import {IMembershipBadge} from "../src/interfaces/IMembershipBadge.sol";
import {IERC5643} from "../src/interfaces/IERC5643.sol";
import {Vm} from "./utils/Vm.sol";
import {BadgeFixture} from "./utils/BadgeFixture.sol";

/// @title MembershipBadgeMoveTest
/// @notice Tests that a badge moves only through the admin/issuer `move`: moving keeps the
/// token id, tier and expiry and emits Transfer / BadgeMoved / SubscriptionUpdate /
/// MetadataUpdate for that one id; the alias ids
/// (>= 2**160) that a wallet gets when its natural id is held elsewhere keep `tokenOf`,
/// `ownerOf` and `balanceOf` consistent through chains of moves, revokes and re-issues; and
/// every holder-initiated transfer or approval reverts with MembershipBadge__Soulbound.
/// Ends with fuzz tests of issue, move and expiry.
contract MembershipBadgeMoveTest is BadgeFixture {
    // ================================================================ move

    function test_move_keepsTokenIdTierAndExpiry() public {
        // Arrange
        uint64 expiry = _inAMonth();
        uint256 tokenId = _issue(alice, PREMIUM, expiry);

        // Act
        _move(alice, bob);

        // Assert
        _assertHolds(bob, tokenId);
        _assertHoldsNone(alice);
        (uint256 id, uint8 tier, uint64 expiresAt) = badge.membershipOf(bob);
        assertEq(id, uint160(alice), "id is still alice's address");
        assertEq(tier, PREMIUM, "tier kept");
        assertEq(expiresAt, expiry, "expiry kept");
        assertTrue(badge.isActive(bob), "bob active");
        assertTrue(badge.locked(tokenId), "still locked");
    }

    function test_move_emitsTransferBadgeMovedSubscriptionUpdateAndMetadataUpdate() public {
        // Arrange
        uint64 expiry = _inAMonth();
        uint256 tokenId = _issue(alice, PREMIUM, expiry);

        // Assert (expectations first, in emission order), Act
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC721.Transfer(alice, bob, tokenId);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IMembershipBadge.BadgeMoved(tokenId, alice, bob);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC5643.SubscriptionUpdate(tokenId, expiry);
        vm.expectEmit(true, true, true, true, address(badge));
        emit IERC4906.MetadataUpdate(tokenId);
        _move(alice, bob);
    }

    function test_move_reportsOnlyTheMovedTokenId() public {
        // Arrange: bob holds alice's natural id; carol's badge then goes to alice, whose
        // natural id (bob's badge) must not be reported as changed
        _issue(alice);
        _move(alice, bob);
        uint64 expiry = _inAMonth() + 5;
        uint256 carolId = _issue(carol, BASIC, expiry);

        // Act
        vm.recordLogs();
        _move(carol, alice);

        // Assert: Transfer, BadgeMoved, SubscriptionUpdate, MetadataUpdate, all for carol's id
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 4, "four logs");
        assertEq(logs[0].topics[0], IERC721.Transfer.selector, "Transfer");
        assertEq(uint256(logs[0].topics[3]), carolId, "Transfer id");
        assertEq(logs[1].topics[0], IMembershipBadge.BadgeMoved.selector, "BadgeMoved");
        assertEq(uint256(logs[1].topics[1]), carolId, "BadgeMoved id");
        assertEq(logs[2].topics[0], IERC5643.SubscriptionUpdate.selector, "SubscriptionUpdate");
        assertEq(uint256(logs[2].topics[1]), carolId, "SubscriptionUpdate id");
        assertEq(abi.decode(logs[2].data, (uint64)), expiry, "expiry kept");
        assertEq(logs[3].topics[0], IERC4906.MetadataUpdate.selector, "MetadataUpdate");
        assertEq(abi.decode(logs[3].data, (uint256)), carolId, "MetadataUpdate id");
    }

    function test_move_byIssuerIsAllowed() public {
        uint256 tokenId = _issue(alice);
        vm.prank(issuer);
        badge.move(alice, bob);
        _assertHolds(bob, tokenId);
    }

    function test_move_revertsWhen_targetHasBadge() public {
        // Arrange
        _issue(alice);
        _issue(bob);

        // Act + Assert
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__AlreadyHasBadge.selector, bob));
        badge.move(alice, bob);
    }

    function test_move_revertsWhen_targetIsSource() public {
        _issue(alice);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__AlreadyHasBadge.selector, alice));
        badge.move(alice, alice);
    }

    function test_move_revertsWhen_sourceHasNoBadge() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__NoBadge.selector, alice));
        badge.move(alice, bob);
    }

    function test_move_revertsWhen_targetIsZero() public {
        _issue(alice);
        vm.prank(admin);
        vm.expectRevert(IMembershipBadge.MembershipBadge__ZeroAddress.selector);
        badge.move(alice, address(0));
    }

    function test_move_revertsWhen_callerIsStranger() public {
        _issue(alice);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Unauthorized.selector, stranger));
        badge.move(alice, stranger);
    }

    function test_move_revertsWhen_callerIsHolder() public {
        _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Unauthorized.selector, alice));
        badge.move(alice, bob);
    }

    // ================================================================ alias ids

    function test_issue_givesAliasIdWhen_walletIdHeldByMovedBadge() public {
        // Arrange: alice's badge (id = alice) now belongs to bob
        uint256 original = _issue(alice);
        _move(alice, bob);

        // Act
        uint256 fresh = _issue(alice, PREMIUM, _inAMonth());

        // Assert
        assertEq(fresh, FIRST_ALIAS_ID, "first alias id");
        assertGe(fresh, 1 << 160);
        _assertHolds(alice, fresh);
        _assertHolds(bob, original);
        assertEq(badge.tierOf(alice), PREMIUM, "alias badge has its own data");
        assertEq(badge.tierOf(bob), BASIC, "moved badge unchanged");
    }

    function test_issue_countsAliasIdsUp() public {
        // Arrange: both alice's and bob's natural ids end up held by other wallets
        _issue(alice);
        _issue(bob);
        _move(alice, carol);
        _move(bob, stranger);

        // Act
        uint256 aliceId = _issue(alice);
        uint256 bobId = _issue(bob);

        // Assert
        assertEq(aliceId, FIRST_ALIAS_ID);
        assertEq(bobId, FIRST_ALIAS_ID + 1);
        _assertHolds(alice, aliceId);
        _assertHolds(bob, bobId);
        _assertHolds(carol, uint160(alice));
        _assertHolds(stranger, uint160(bob));
    }

    function test_move_backAndForthChains() public {
        // Arrange
        uint256 tokenId = _issue(alice, PREMIUM, _inAMonth());
        address[4] memory path = [alice, bob, carol, alice];

        for (uint256 i = 1; i < path.length; ++i) {
            // Act
            _move(path[i - 1], path[i]);

            // Assert: exactly one holder along the whole path
            _assertHolds(path[i], tokenId);
            for (uint256 j; j < path.length; ++j) {
                if (path[j] != path[i]) _assertHoldsNone(path[j]);
            }
        }
        assertEq(badge.tierOf(alice), PREMIUM, "data survived the round trip");
    }

    function test_issue_afterMoveBackUsesNaturalIdForStaleAlias() public {
        // Arrange: bob holds alice's id for a while (linking bob to it), then it goes back
        _issue(alice);
        _move(alice, bob);
        _move(bob, alice);

        // Act: bob's stale alias points at a badge he no longer holds
        uint256 bobId = _issue(bob);

        // Assert
        assertEq(bobId, uint160(bob));
        _assertHolds(bob, bobId);
        _assertHolds(alice, uint160(alice));
    }

    function test_move_revertsWhen_originalWalletHasAliasBadge() public {
        // Arrange: alice lost her key, bob got the badge, then alice got a new one anyway
        _issue(alice);
        _move(alice, bob);
        _issue(alice);

        // Act + Assert: moving the old badge back would give alice two badges
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__AlreadyHasBadge.selector, alice));
        badge.move(bob, alice);
    }

    function test_move_backToOriginalWalletAfterItsAliasBadgeRevoked() public {
        // Arrange
        uint256 original = _issue(alice);
        _move(alice, bob);
        uint256 aliasId = _issue(alice);
        _revoke(alice);

        // Act
        _move(bob, alice);

        // Assert
        _assertHolds(alice, original);
        _assertHoldsNone(bob);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, aliasId));
        badge.ownerOf(aliasId);
    }

    function test_move_aliasBadgeToAnotherWallet() public {
        // Arrange: alice holds an alias badge
        _issue(alice);
        _move(alice, bob);
        uint256 aliasId = _issue(alice, PREMIUM, _inAMonth());

        // Act
        _move(alice, carol);

        // Assert
        _assertHolds(carol, aliasId);
        _assertHolds(bob, uint160(alice));
        _assertHoldsNone(alice);
        assertEq(badge.tierOf(carol), PREMIUM);

        // ...and alice can be issued once more, again under a new alias id
        uint256 second = _issue(alice);
        assertEq(second, FIRST_ALIAS_ID + 1);
        _assertHolds(alice, second);
    }

    function test_move_toWalletWhoseIdIsHeldElsewhere() public {
        // Arrange: bob holds alice's natural id; carol has her own badge
        _issue(alice);
        _move(alice, bob);
        uint256 carolId = _issue(carol);

        // Act: carol's badge goes to alice
        _move(carol, alice);

        // Assert
        _assertHolds(alice, carolId);
        _assertHolds(bob, uint160(alice));
        _assertHoldsNone(carol);
    }

    function test_revoke_movedBadgeFreesOriginalWalletId() public {
        // Arrange
        _issue(alice);
        _move(alice, bob);

        // Act
        _revoke(bob);
        uint256 aliceId = _issue(alice);
        uint256 bobId = _issue(bob);

        // Assert: both get their natural ids
        assertEq(aliceId, uint160(alice));
        assertEq(bobId, uint160(bob));
        _assertHolds(alice, aliceId);
        _assertHolds(bob, bobId);
    }

    function test_update_changesMovedBadge() public {
        // Arrange
        uint256 tokenId = _issue(alice);
        _move(alice, bob);
        uint64 newExpiry = _inAMonth() + MONTH;

        // Act
        _update(bob, PREMIUM, newExpiry);

        // Assert
        assertEq(badge.tierOf(bob), PREMIUM);
        assertEq(badge.expiresAt(tokenId), newExpiry);
        vm.prank(issuer);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__NoBadge.selector, alice));
        badge.update(_one(alice, PREMIUM, newExpiry));
    }

    // ================================================================ soulbound

    function test_transferFrom_revertsWhen_holderTransfers() public {
        uint256 tokenId = _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, tokenId));
        badge.transferFrom(alice, bob, tokenId);
        _assertHolds(alice, tokenId);
    }

    function test_safeTransferFrom_revertsWhen_holderTransfers() public {
        uint256 tokenId = _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, tokenId));
        badge.safeTransferFrom(alice, bob, tokenId);
    }

    function test_safeTransferFromWithData_revertsWhen_holderTransfers() public {
        uint256 tokenId = _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, tokenId));
        badge.safeTransferFrom(alice, bob, tokenId, "hello");
    }

    function test_transferFrom_revertsWhen_adminOrIssuerTransfers() public {
        // Only `move` moves a badge; the ERC-721 transfer path is closed to everyone.
        uint256 tokenId = _issue(alice);
        address[2] memory callers = [admin, issuer];
        for (uint256 i; i < callers.length; ++i) {
            vm.prank(callers[i]);
            vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, tokenId));
            badge.transferFrom(alice, bob, tokenId);
        }
    }

    function test_transferFrom_revertsWhen_receiverIsZero() public {
        uint256 tokenId = _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(0)));
        badge.transferFrom(alice, address(0), tokenId);
    }

    function test_approve_reverts() public {
        uint256 tokenId = _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, tokenId));
        badge.approve(bob, tokenId);
        assertEq(badge.getApproved(tokenId), address(0));
    }

    function test_setApprovalForAll_reverts() public {
        _issue(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, 0));
        badge.setApprovalForAll(bob, true);
        assertFalse(badge.isApprovedForAll(alice, bob));
    }

    // ================================================================ fuzz

    function testFuzz_issue_tokenIdIsWalletAddress(address wallet, uint8 tier, uint64 expiry) public {
        // Arrange
        vm.assume(wallet != address(0));
        tier = uint8(bound(tier, 1, type(uint8).max));

        // Act
        uint256 tokenId = _issue(wallet, tier, expiry);

        // Assert
        _assertHolds(wallet, uint160(wallet));
        assertEq(tokenId, uint160(wallet));
        (, uint8 storedTier, uint64 storedExpiry) = badge.membershipOf(wallet);
        assertEq(storedTier, tier, "tier");
        assertEq(storedExpiry, expiry, "expiry");
    }

    function testFuzz_move_keepsIdTierAndExpiry(address from, address to, uint8 tier, uint64 expiry) public {
        // Arrange
        vm.assume(from != address(0) && to != address(0) && from != to);
        tier = uint8(bound(tier, 1, type(uint8).max));
        uint256 tokenId = _issue(from, tier, expiry);

        // Act
        _move(from, to);

        // Assert
        _assertHolds(to, tokenId);
        assertEq(badge.tokenOf(from), 0, "from holds none");
        assertEq(badge.balanceOf(from), 0, "from balance");
        (, uint8 storedTier, uint64 storedExpiry) = badge.membershipOf(to);
        assertEq(storedTier, tier, "tier");
        assertEq(storedExpiry, expiry, "expiry");
    }

    function testFuzz_isActive_matchesExpiry(uint64 expiry, uint256 at) public {
        // Arrange
        _issue(alice, PREMIUM, expiry);
        at = bound(at, 0, uint256(type(uint64).max) + 1);

        // Act
        vm.warp(at);

        // Assert
        bool active = uint256(expiry) > at;
        assertEq(badge.isActive(alice), active, "isActive");
        assertEq(badge.tierOf(alice), active ? PREMIUM : 0, "tierOf");
    }

    function testFuzz_holderCannotTransfer(address to) public {
        // Arrange
        vm.assume(to != address(0));
        uint256 tokenId = _issue(alice);

        // Act + Assert
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Soulbound.selector, tokenId));
        badge.transferFrom(alice, to, tokenId);
    }
}
