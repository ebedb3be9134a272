// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title ReferenceBadge
/// @notice Benchmark-only baseline: the straightforward OpenZeppelin way to store a badge
/// with a tier and an expiry (`ERC721._mint` plus a struct per token and a wallet index).
/// The gas benchmark compares MembershipBadge's issue, update, revoke and move against this
/// contract's.
contract ReferenceBadge is ERC721 {
    struct Data {
        uint8 tier;
        uint64 expiresAt;
    }

    mapping(uint256 tokenId => Data) public dataOf;
    uint256 private _nextId = 1;

    constructor() ERC721("Reference", "REF") {}

    /// @notice Mints a badge with `tier` and `expiresAt` to `to`.
    function issue(address to, uint8 tier, uint64 expiresAt) external {
        uint256 id = _nextId++;
        _mint(to, id);
        dataOf[id] = Data(tier, expiresAt);
    }

    /// @notice Sets the tier and expiry of badge `id`.
    function update(uint256 id, uint8 tier, uint64 expiresAt) external {
        _requireOwned(id);
        dataOf[id] = Data(tier, expiresAt);
    }

    /// @notice Burns badge `id` and clears its data.
    function revoke(uint256 id) external {
        _burn(id);
        delete dataOf[id];
    }

    /// @notice Moves badge `id` to `to` without an approval (an admin move), keeping its data.
    function move(uint256 id, address to) external {
        _transfer(_requireOwned(id), to, id);
    }
}
