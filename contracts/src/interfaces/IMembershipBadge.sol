// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IMembershipBadge
/// @notice One soulbound badge per wallet that records the member's plan tier and
/// expiry on-chain, so that any contract or dApp can gate on {isActive} and {tierOf}.
interface IMembershipBadge {
    /// @notice One wallet's membership as the issuer sets it.
    struct Membership {
        /// The member's wallet.
        address wallet;
        /// Plan tier rank, 1 (Basic) to 255; 0 is not a tier.
        uint8 tier;
        /// Unix time at which the membership stops being active.
        uint64 expiresAt;
    }

    /// @notice Emitted when an admin moves a badge to a member's new wallet.
    event BadgeMoved(uint256 indexed tokenId, address indexed from, address indexed to);

    /// @notice Emitted when a badge's tier changes.
    event TierChanged(uint256 indexed tokenId, uint8 tier);

    /// @notice Holders cannot transfer or approve: the badge is soulbound.
    error MembershipBadge__Soulbound(uint256 tokenId);

    /// @notice The wallet already holds a badge.
    error MembershipBadge__AlreadyHasBadge(address wallet);

    /// @notice The wallet holds no badge.
    error MembershipBadge__NoBadge(address wallet);

    /// @notice Tier 0 is not a tier.
    error MembershipBadge__InvalidTier();

    /// @notice The zero address cannot hold a badge.
    error MembershipBadge__ZeroAddress();

    /// @notice Renewal and cancellation happen through checkout, not on the token.
    error MembershipBadge__ManagedByIssuer();

    /// @notice The caller holds neither the issuer nor the admin role.
    error MembershipBadge__Unauthorized(address caller);

    /// @notice Mints one badge for each membership.
    function issue(Membership[] calldata memberships) external;

    /// @notice Sets the tier and expiry of existing badges.
    function update(Membership[] calldata memberships) external;

    /// @notice Burns the badges of `wallets`.
    function revoke(address[] calldata wallets) external;

    /// @notice Moves `from`'s badge to `to`, for a member who lost a key.
    function move(address from, address to) external;

    /// @notice Returns whether `wallet` holds a badge that has not expired.
    function isActive(address wallet) external view returns (bool);

    /// @notice Returns the tier of `wallet`'s badge while it is active, 0 otherwise.
    function tierOf(address wallet) external view returns (uint8);

    /// @notice Returns the token id of `wallet`'s badge, 0 when it holds none.
    function tokenOf(address wallet) external view returns (uint256);

    /// @notice Returns `wallet`'s badge id, tier and expiry (zeros when it holds none), active or not.
    function membershipOf(address wallet) external view returns (uint256 tokenId, uint8 tier, uint64 expiresAt);
}
