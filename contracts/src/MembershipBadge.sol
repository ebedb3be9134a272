// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

import {IERC5192} from "./interfaces/IERC5192.sol";
import {IERC5643} from "./interfaces/IERC5643.sol";
import {IMembershipBadge} from "./interfaces/IMembershipBadge.sol";
import {BadgeArt} from "./libraries/BadgeArt.sol";

/// @title MembershipBadge
/// @notice A soulbound (ERC-5192) ERC-721 badge, one per wallet, that records the member's
/// plan tier and expiry on-chain (ERC-5643-style `expiresAt`, ERC-4906 metadata updates).
/// Contracts and dApps gate on {isActive} and {tierOf} without calling the service.
///
/// @dev Storage packing — one slot per badge, which is what makes a batch mint cost one
/// fresh SSTORE per member:
/// - `_records[tokenId]`: bits 0-159 owner, 160-167 tier, 168-231 expiry (unix seconds),
///   bit 255 the alias flag (below). OpenZeppelin's `_owners` and `_balances` are never
///   written: `_ownerOf` and `balanceOf` read this record instead.
/// - A badge minted for wallet `w` gets token id `uint160(w)`, so a wallet finds its own
///   badge with one SLOAD and needs no wallet-to-token mapping.
/// - A badge that cannot use that id (an admin moved it to another wallet, or the id is held
///   by a badge that was moved away and a new one is minted) is found through
///   `_aliasTokenOf[wallet]`, and the wallet's own record gets the alias flag, which is never
///   cleared, so {tokenOf} only reads the alias mapping for flagged wallets. Alias entries
///   are checked against the record's owner, so a stale entry is harmless.
/// - Ids minted when the natural id is taken count up from 2^160 (`_nextAliasId`), so they
///   never collide with wallet-derived ids.
/// - AccessControlDefaultAdminRules adds two slots ahead of these (slot 7: pending admin,
///   its schedule and the current delay; slot 8: current admin, pending delay and its
///   schedule). Only admin-transfer functions read them; the role checks of
///   issue/update/revoke/move read `_roles` as before (the extra functions only lengthen
///   the selector dispatch: about 150-250 gas per transaction).
///
/// Invariants:
/// - A wallet holds at most one badge; {tokenOf} and {ownerOf} agree.
/// - A badge never moves except by {move}: holder transfers and approvals revert.
/// - Only ISSUER_ROLE issues and updates; ISSUER_ROLE or DEFAULT_ADMIN_ROLE revokes and moves.
/// - DEFAULT_ADMIN_ROLE has one holder (none only after a delayed renounce). It changes hands
///   only by {beginDefaultAdminTransfer}, then the new admin's {acceptDefaultAdminTransfer}
///   once {defaultAdminDelay} has passed; {grantRole} and {revokeRole} refuse it.
/// - {update}, {revoke} and {move} each emit {SubscriptionUpdate} and {MetadataUpdate} for
///   every token id they change (a revoked badge's expiration reads 0); {issue} emits
///   {SubscriptionUpdate}, its mint's {Transfer} announcing the new token.
contract MembershipBadge is
    IMembershipBadge,
    ERC721,
    AccessControlDefaultAdminRules,
    IERC5192,
    IERC4906,
    IERC5643
{
    /// @notice Role of the service key that issues and updates badges.
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");

    uint256 private constant _OWNER_MASK = (1 << 160) - 1;
    uint256 private constant _TIER_SHIFT = 160;
    uint256 private constant _EXPIRY_SHIFT = 168;
    uint256 private constant _ALIAS_FLAG = 1 << 255;
    uint256 private constant _DATA_MASK = ((1 << 72) - 1) << _TIER_SHIFT;

    mapping(uint256 tokenId => uint256 record) private _records;
    mapping(address wallet => uint256 tokenId) private _aliasTokenOf;
    uint256 private _nextAliasId = 1 << 160;

    /// @param admin Account holding DEFAULT_ADMIN_ROLE (revoke, move, role management).
    /// @param issuer Account holding ISSUER_ROLE (the service's issuer key).
    /// @param adminDelay Seconds between beginning and accepting a transfer of
    /// DEFAULT_ADMIN_ROLE ({defaultAdminDelay}); the admin can change it later, itself delayed.
    constructor(address admin, address issuer, uint48 adminDelay)
        ERC721("TMAI Membership", "TMAIM")
        AccessControlDefaultAdminRules(adminDelay, _nonZero(admin))
    {
        _grantRole(ISSUER_ROLE, _nonZero(issuer));
    }

    /// @dev Reverts unless the caller holds ISSUER_ROLE or DEFAULT_ADMIN_ROLE.
    modifier onlyIssuerOrAdmin() {
        if (!hasRole(ISSUER_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert MembershipBadge__Unauthorized(msg.sender);
        }
        _;
    }

    // ------------------------------------------------------------------ issuer

    /// @inheritdoc IMembershipBadge
    /// @dev Requirements: caller has ISSUER_ROLE; each wallet is non-zero, holds no badge
    /// (also not earlier in the same batch) and has a non-zero tier.
    ///
    /// Emits {Transfer}, {Locked} and {SubscriptionUpdate} per badge.
    function issue(Membership[] calldata memberships) external onlyRole(ISSUER_ROLE) {
        for (uint256 i; i < memberships.length; ++i) {
            Membership calldata m = memberships[i];
            if (m.tier == 0) revert MembershipBadge__InvalidTier();
            if (tokenOf(m.wallet) != 0) revert MembershipBadge__AlreadyHasBadge(m.wallet);
            uint256 tokenId = uint160(m.wallet);
            if (tokenId == 0) revert MembershipBadge__ZeroAddress();
            if (_records[tokenId] & _OWNER_MASK != 0) {
                // The wallet's natural id belongs to a badge that was moved away.
                tokenId = _nextAliasId++;
                _linkAlias(m.wallet, tokenId);
            }
            _mint(m.wallet, tokenId);
            _records[tokenId] |= _pack(m.tier, m.expiresAt);
            emit Locked(tokenId);
            emit SubscriptionUpdate(tokenId, m.expiresAt);
        }
    }

    /// @inheritdoc IMembershipBadge
    /// @dev Requirements: caller has ISSUER_ROLE; each wallet holds a badge; each tier is
    /// non-zero.
    ///
    /// Emits {SubscriptionUpdate} and {MetadataUpdate} per badge, and {TierChanged} when
    /// the tier changes.
    function update(Membership[] calldata memberships) external onlyRole(ISSUER_ROLE) {
        for (uint256 i; i < memberships.length; ++i) {
            Membership calldata m = memberships[i];
            if (m.tier == 0) revert MembershipBadge__InvalidTier();
            uint256 tokenId = tokenOf(m.wallet);
            if (tokenId == 0) revert MembershipBadge__NoBadge(m.wallet);
            uint256 record = _records[tokenId];
            if (uint8(record >> _TIER_SHIFT) != m.tier) emit TierChanged(tokenId, m.tier);
            _records[tokenId] = (record & ~_DATA_MASK) | _pack(m.tier, m.expiresAt);
            emit SubscriptionUpdate(tokenId, m.expiresAt);
            emit MetadataUpdate(tokenId);
        }
    }

    /// @inheritdoc IMembershipBadge
    /// @dev Requirements: caller has ISSUER_ROLE or DEFAULT_ADMIN_ROLE; each wallet holds a
    /// badge.
    ///
    /// Emits {Transfer} to the zero address, {SubscriptionUpdate} with expiration 0 (what
    /// the cleared record holds) and {MetadataUpdate} per badge.
    function revoke(address[] calldata wallets) external onlyIssuerOrAdmin {
        for (uint256 i; i < wallets.length; ++i) {
            uint256 tokenId = tokenOf(wallets[i]);
            if (tokenId == 0) revert MembershipBadge__NoBadge(wallets[i]);
            _burn(tokenId);
            emit SubscriptionUpdate(tokenId, 0);
            emit MetadataUpdate(tokenId);
        }
    }

    /// @inheritdoc IMembershipBadge
    /// @dev Requirements: caller has ISSUER_ROLE or DEFAULT_ADMIN_ROLE; `from` holds a badge;
    /// `to` is non-zero and holds none. The token id, tier and expiry stay the same.
    ///
    /// Emits {Transfer}, {BadgeMoved}, {SubscriptionUpdate} (the kept expiry, now `to`'s) and
    /// {MetadataUpdate}, all for the one moved token id: the badge keeps its id, so there is
    /// no second token to report, and the id derived from `to` (if minted) is another
    /// badge, which the move does not change.
    function move(address from, address to) external onlyIssuerOrAdmin {
        uint256 tokenId = tokenOf(from);
        if (tokenId == 0) revert MembershipBadge__NoBadge(from);
        if (to == address(0)) revert MembershipBadge__ZeroAddress();
        if (tokenOf(to) != 0) revert MembershipBadge__AlreadyHasBadge(to);
        if (tokenId != uint160(to)) _linkAlias(to, tokenId);
        uint256 record = _records[tokenId];
        _update(to, tokenId, address(0));
        emit BadgeMoved(tokenId, from, to);
        emit SubscriptionUpdate(tokenId, uint64(record >> _EXPIRY_SHIFT));
        emit MetadataUpdate(tokenId);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IMembershipBadge
    function isActive(address wallet) external view returns (bool) {
        (uint256 tokenId,, uint64 expiry) = membershipOf(wallet);
        return tokenId != 0 && expiry > block.timestamp;
    }

    /// @inheritdoc IMembershipBadge
    function tierOf(address wallet) external view returns (uint8) {
        (uint256 tokenId, uint8 tier, uint64 expiry) = membershipOf(wallet);
        return tokenId != 0 && expiry > block.timestamp ? tier : 0;
    }

    /// @inheritdoc IMembershipBadge
    function tokenOf(address wallet) public view returns (uint256) {
        uint256 natural = uint160(wallet);
        uint256 record = _records[natural];
        if (natural != 0 && address(uint160(record)) == wallet) return natural;
        if (record & _ALIAS_FLAG == 0) return 0;
        uint256 aliasId = _aliasTokenOf[wallet];
        return aliasId != 0 && address(uint160(_records[aliasId])) == wallet ? aliasId : 0;
    }

    /// @inheritdoc IMembershipBadge
    function membershipOf(address wallet) public view returns (uint256 tokenId, uint8 tier, uint64 expiresAt_) {
        tokenId = tokenOf(wallet);
        if (tokenId != 0) {
            uint256 record = _records[tokenId];
            tier = uint8(record >> _TIER_SHIFT);
            expiresAt_ = uint64(record >> _EXPIRY_SHIFT);
        }
    }

    /// @inheritdoc IERC5192
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return true;
    }

    /// @inheritdoc IERC5643
    function expiresAt(uint256 tokenId) external view returns (uint64) {
        _requireOwned(tokenId);
        return uint64(_records[tokenId] >> _EXPIRY_SHIFT);
    }

    /// @inheritdoc IERC5643
    /// @dev Always false: members renew through checkout and the issuer updates the badge.
    function isRenewable(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return false;
    }

    /// @inheritdoc IERC5643
    /// @dev Always reverts: renewals are paid through SubscriptionCheckout.
    function renewSubscription(uint256, uint64) external payable {
        revert MembershipBadge__ManagedByIssuer();
    }

    /// @inheritdoc IERC5643
    /// @dev Always reverts: cancellation is a service action; the badge runs to its expiry.
    function cancelSubscription(uint256) external payable {
        revert MembershipBadge__ManagedByIssuer();
    }

    /// @notice Returns on-chain JSON metadata with an SVG picture of the tier and expiry.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        address owner = _requireOwned(tokenId);
        uint256 record = _records[tokenId];
        return BadgeArt.tokenURI(
            tokenId, owner, uint8(record >> _TIER_SHIFT), uint64(record >> _EXPIRY_SHIFT), block.timestamp
        );
    }

    /// @notice Returns 1 when `owner` holds a badge, 0 otherwise.
    function balanceOf(address owner) public view override(ERC721, IERC721) returns (uint256) {
        if (owner == address(0)) revert ERC721InvalidOwner(address(0));
        return tokenOf(owner) != 0 ? 1 : 0;
    }

    /// @notice Returns whether this contract implements `interfaceId`: ERC-165, ERC-721,
    /// ERC-721 Metadata, AccessControl, AccessControlDefaultAdminRules, ERC-5192, ERC-4906
    /// and ERC-5643.
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, AccessControlDefaultAdminRules, IERC165)
        returns (bool)
    {
        return interfaceId == type(IERC5192).interfaceId || interfaceId == bytes4(0x49064906)
            || interfaceId == type(IERC5643).interfaceId || ERC721.supportsInterface(interfaceId)
            || AccessControlDefaultAdminRules.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ soulbound

    /// @notice Always reverts: badges cannot be approved.
    function approve(address, uint256 tokenId) public pure override(ERC721, IERC721) {
        revert MembershipBadge__Soulbound(tokenId);
    }

    /// @notice Always reverts: badges cannot be approved.
    function setApprovalForAll(address, bool) public pure override(ERC721, IERC721) {
        revert MembershipBadge__Soulbound(0);
    }

    /// @dev Reads the owner from the packed record.
    function _ownerOf(uint256 tokenId) internal view override returns (address) {
        return address(uint160(_records[tokenId]));
    }

    /// @dev The one hook for every badge move. A holder-initiated move (`auth` set by
    /// `transferFrom`/`safeTransferFrom`) reverts; mint, burn and admin {move} pass no
    /// `auth`. A burn clears the record but keeps the alias flag.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        uint256 record = _records[tokenId];
        from = address(uint160(record));
        if (auth != address(0)) revert MembershipBadge__Soulbound(tokenId);
        _records[tokenId] = to == address(0) ? record & _ALIAS_FLAG : (record & ~_OWNER_MASK) | uint160(to);
        emit Transfer(from, to, tokenId);
    }

    /// @dev Records that `wallet` holds `tokenId` under an id that is not its own address.
    function _linkAlias(address wallet, uint256 tokenId) private {
        _aliasTokenOf[wallet] = tokenId;
        _records[uint160(wallet)] |= _ALIAS_FLAG;
    }

    /// @dev Returns `account`, reverting when it is the zero address (run before the base
    /// constructors, so a zero admin fails with this contract's error too).
    function _nonZero(address account) private pure returns (address) {
        if (account == address(0)) revert MembershipBadge__ZeroAddress();
        return account;
    }

    /// @dev Packs a tier and an expiry into their record bits.
    function _pack(uint8 tier, uint64 expiry) private pure returns (uint256) {
        return (uint256(tier) << _TIER_SHIFT) | (uint256(expiry) << _EXPIRY_SHIFT);
    }
}
