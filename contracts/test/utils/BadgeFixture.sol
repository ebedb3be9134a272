// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {MembershipBadge} from "../../src/MembershipBadge.sol";
import {IMembershipBadge} from "../../src/interfaces/IMembershipBadge.sol";

/// @title BadgeFixture
/// @notice Shared setup for the MembershipBadge tests: a badge contract with separate admin
/// and issuer accounts, named member wallets, and helpers that build one-element batches.
abstract contract BadgeFixture is Test {
    uint256 internal constant START = 1_750_000_000;
    uint64 internal constant MONTH = 30 days;
    uint8 internal constant BASIC = 1;
    uint8 internal constant PREMIUM = 3;

    /// @dev Delay of a DEFAULT_ADMIN_ROLE transfer (what `tmai-pay deploy` uses by default).
    uint48 internal constant ADMIN_DELAY = 2 days;

    /// @dev First id handed out when a wallet's natural id (its address) is taken.
    uint256 internal constant FIRST_ALIAS_ID = 1 << 160;

    MembershipBadge internal badge;

    address internal admin;
    address internal issuer;
    address internal alice;
    address internal bob;
    address internal carol;
    address internal stranger;

    function setUp() public virtual {
        vm.warp(START);
        admin = makeAddr("admin");
        issuer = makeAddr("issuer");
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        carol = makeAddr("carol");
        stranger = makeAddr("stranger");
        badge = new MembershipBadge(admin, issuer, ADMIN_DELAY);
        vm.label(address(badge), "badge");
    }

    /// @dev Expiry one month from now.
    function _inAMonth() internal view returns (uint64) {
        return uint64(block.timestamp) + MONTH;
    }

    /// @dev A one-element membership batch.
    function _one(address wallet, uint8 tier, uint64 expiresAt)
        internal
        pure
        returns (IMembershipBadge.Membership[] memory batch)
    {
        batch = new IMembershipBadge.Membership[](1);
        batch[0] = IMembershipBadge.Membership(wallet, tier, expiresAt);
    }

    /// @dev A one-element wallet list.
    function _wallets(address wallet) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = wallet;
    }

    /// @dev Issues a badge to `wallet` as the issuer and returns its token id.
    function _issue(address wallet, uint8 tier, uint64 expiresAt) internal returns (uint256 tokenId) {
        vm.prank(issuer);
        badge.issue(_one(wallet, tier, expiresAt));
        tokenId = badge.tokenOf(wallet);
    }

    /// @dev Issues a Basic badge valid for a month.
    function _issue(address wallet) internal returns (uint256) {
        return _issue(wallet, BASIC, _inAMonth());
    }

    /// @dev Updates `wallet`'s badge as the issuer.
    function _update(address wallet, uint8 tier, uint64 expiresAt) internal {
        vm.prank(issuer);
        badge.update(_one(wallet, tier, expiresAt));
    }

    /// @dev Moves `from`'s badge to `to` as the admin.
    function _move(address from, address to) internal {
        vm.prank(admin);
        badge.move(from, to);
    }

    /// @dev Revokes `wallet`'s badge as the admin.
    function _revoke(address wallet) internal {
        vm.prank(admin);
        badge.revoke(_wallets(wallet));
    }

    /// @dev Checks that `wallet` holds exactly `tokenId` through every view that reports it.
    function _assertHolds(address wallet, uint256 tokenId) internal view {
        assertEq(badge.tokenOf(wallet), tokenId, "tokenOf");
        assertEq(badge.ownerOf(tokenId), wallet, "ownerOf");
        assertEq(badge.balanceOf(wallet), 1, "balanceOf");
        (uint256 id,,) = badge.membershipOf(wallet);
        assertEq(id, tokenId, "membershipOf id");
    }

    /// @dev Checks that `wallet` holds no badge through every view that reports it.
    function _assertHoldsNone(address wallet) internal view {
        assertEq(badge.tokenOf(wallet), 0, "tokenOf");
        assertEq(badge.balanceOf(wallet), 0, "balanceOf");
        assertFalse(badge.isActive(wallet), "isActive");
        assertEq(badge.tierOf(wallet), 0, "tierOf");
        (uint256 id, uint8 tier, uint64 expiry) = badge.membershipOf(wallet);
        assertEq(id + tier + expiry, 0, "membershipOf zeros");
    }
}
