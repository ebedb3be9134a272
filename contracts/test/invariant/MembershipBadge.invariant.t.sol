// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MembershipBadge} from "../../src/MembershipBadge.sol";
import {InvariantTest} from "../utils/InvariantTest.sol";
import {BadgeHandler} from "./BadgeHandler.sol";

/// @title MembershipBadgeInvariantTest
/// @notice Invariant tests of MembershipBadge under random sequences of issue, batch issue,
/// update, revoke, admin/issuer move, holder transfers and approvals, unauthorized calls and
/// time passing (see BadgeHandler):
/// - a badge never moves except by `move`: `ownerOf` of every id ever minted and `tokenOf` of
///   every wallet equal the handler's independent model, including alias ids;
/// - each wallet holds at most one badge, and `balanceOf` agrees with the ids it owns;
/// - `isActive` / `tierOf` follow the stored expiry;
/// - every call succeeded or reverted exactly as the model predicted.
contract MembershipBadgeInvariantTest is InvariantTest {
    uint256 private constant START = 1_750_000_000;
    uint256 private constant ACTORS = 6;

    MembershipBadge private badge;
    BadgeHandler private handler;

    function setUp() public {
        vm.warp(START);
        address admin = makeAddr("admin");
        address issuer = makeAddr("issuer");
        address[] memory actors = new address[](ACTORS);
        for (uint256 i; i < ACTORS; ++i) {
            actors[i] = makeAddr(string.concat("member ", vm.toString(i)));
        }
        badge = new MembershipBadge(admin, issuer, 2 days);
        handler = new BadgeHandler(badge, admin, issuer, makeAddr("stranger"), actors);

        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = BadgeHandler.issue.selector;
        selectors[1] = BadgeHandler.issueBatch.selector;
        selectors[2] = BadgeHandler.update.selector;
        selectors[3] = BadgeHandler.revoke.selector;
        selectors[4] = BadgeHandler.move.selector;
        selectors[5] = BadgeHandler.move.selector; // moves weigh double: they create alias ids
        selectors[6] = BadgeHandler.holderTransfer.selector;
        selectors[7] = BadgeHandler.unauthorized.selector;
        selectors[8] = BadgeHandler.warp.selector;
        targetContract(address(handler));
        targetSelector(address(handler), selectors);
    }

    function invariant_everyCallMatchedTheModel() public view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }

    /// @notice A badge never moves except by `move`: each id's owner is the modelled one.
    function invariant_ownerOfMatchesModel() public view {
        uint256[] memory ids = handler.mintedIds();
        for (uint256 i; i < ids.length; ++i) {
            address expected = handler.ghostOwnerOf(ids[i]);
            try badge.ownerOf(ids[i]) returns (address actual) {
                assertEq(actual, expected, "ownerOf");
                assertTrue(badge.locked(ids[i]), "locked");
                assertEq(badge.expiresAt(ids[i]), handler.ghostExpiry(ids[i]), "expiresAt");
            } catch {
                assertEq(expected, address(0), "ownerOf reverted for a held badge");
            }
        }
    }

    /// @notice `tokenOf`, `balanceOf` and `membershipOf` of every wallet match the model.
    function invariant_tokenOfMatchesModel() public view {
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            uint256 expected = handler.ghostTokenOf(actors[i]);
            assertEq(badge.tokenOf(actors[i]), expected, "tokenOf");
            assertEq(badge.balanceOf(actors[i]), expected == 0 ? 0 : 1, "balanceOf");
            (uint256 id, uint8 tier, uint64 expiry) = badge.membershipOf(actors[i]);
            assertEq(id, expected, "membershipOf id");
            assertEq(tier, handler.ghostTier(expected), "membershipOf tier");
            assertEq(expiry, handler.ghostExpiry(expected), "membershipOf expiry");
            if (expected != 0) assertEq(badge.ownerOf(expected), actors[i], "tokenOf and ownerOf agree");
        }
    }

    /// @notice Counted from `ownerOf` alone (not the model): no wallet owns two ids.
    function invariant_eachWalletHoldsAtMostOneBadge() public view {
        address[] memory actors = handler.actors();
        uint256[] memory ids = handler.mintedIds();
        for (uint256 a; a < actors.length; ++a) {
            uint256 owned;
            for (uint256 i; i < ids.length; ++i) {
                try badge.ownerOf(ids[i]) returns (address owner) {
                    if (owner == actors[a]) ++owned;
                } catch {}
            }
            assertLe(owned, 1);
            assertEq(owned, badge.balanceOf(actors[a]), "balanceOf counts owned ids");
        }
    }

    /// @notice Gating views follow the stored expiry at the handler's current time.
    function invariant_isActiveAndTierOfFollowExpiry() public {
        vm.warp(handler.currentTime());
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            uint256 tokenId = handler.ghostTokenOf(actors[i]);
            bool active = tokenId != 0 && handler.ghostExpiry(tokenId) > block.timestamp;
            assertEq(badge.isActive(actors[i]), active, "isActive");
            assertEq(badge.tierOf(actors[i]), active ? handler.ghostTier(tokenId) : 0, "tierOf");
        }
    }
}
