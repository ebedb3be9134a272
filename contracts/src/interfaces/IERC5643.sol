// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ERC-5643: Subscription NFTs.
interface IERC5643 {
    /// @notice Emitted when a subscription's expiration date changes.
    event SubscriptionUpdate(uint256 indexed tokenId, uint64 expiration);

    /// @notice Renews the subscription of `tokenId` by `duration` seconds.
    function renewSubscription(uint256 tokenId, uint64 duration) external payable;

    /// @notice Cancels the subscription of `tokenId`.
    function cancelSubscription(uint256 tokenId) external payable;

    /// @notice Returns the expiration date (unix seconds) of `tokenId`'s subscription.
    function expiresAt(uint256 tokenId) external view returns (uint64);

    /// @notice Returns whether `tokenId`'s subscription can be renewed through {renewSubscription}.
    function isRenewable(uint256 tokenId) external view returns (bool);
}
