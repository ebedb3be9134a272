// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MembershipBadge} from "../../src/MembershipBadge.sol";
import {IMembershipBadge} from "../../src/interfaces/IMembershipBadge.sol";
import {Test} from "../utils/Test.sol";

/// @title BadgeHandler
/// @notice Drives MembershipBadge for the invariant fuzzer: issues (single and in batches
/// with possible duplicates), updates, revokes and moves badges through the issuer and admin,
/// lets holders and strangers try transfers, approvals, moves and revokes, and lets time pass.
/// @dev Ghost state is an independent model of who holds which token id, including the id a
/// fresh badge must get (the wallet's address, or the next alias id from 2**160 when that id
/// is held by a moved badge). Every call predicts success or failure from the model; a wrong
/// prediction is recorded in {violations} (the invariant fuzzer ignores handler reverts, so a
/// revert here could not report anything). The invariant test then compares the model with
/// the contract's views.
contract BadgeHandler is Test {
    MembershipBadge public immutable badge;
    address public immutable admin;
    address public immutable issuer;
    address public immutable stranger;

    address[] private _actors;

    // ------------------------------------------------------------ ghost model
    mapping(uint256 tokenId => address) public ghostOwnerOf;
    mapping(address wallet => uint256) public ghostTokenOf;
    mapping(uint256 tokenId => uint8) public ghostTier;
    mapping(uint256 tokenId => uint64) public ghostExpiry;
    uint256[] private _mintedIds;
    mapping(uint256 tokenId => bool) private _known;
    uint256 public ghostNextAliasId = 1 << 160;
    uint256 public currentTime;

    // ------------------------------------------------------------ outcome bookkeeping
    uint256 public violations;
    string public lastViolation;
    mapping(string action => uint256) public successes;

    constructor(MembershipBadge badge_, address admin_, address issuer_, address stranger_, address[] memory actors_) {
        badge = badge_;
        admin = admin_;
        issuer = issuer_;
        stranger = stranger_;
        _actors = actors_;
        currentTime = block.timestamp;
    }

    /// @dev Block time does not carry over between fuzzer calls; replay the handler's clock.
    modifier useCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    // ================================================================ issuer actions

    function issue(uint256 walletSeed, uint256 tierSeed, uint256 expirySeed) external useCurrentTime {
        address wallet = _actor(walletSeed);
        (uint8 tier, uint64 expiry) = _tierAndExpiry(tierSeed, expirySeed);
        bool ok = tier != 0 && ghostTokenOf[wallet] == 0;

        vm.prank(issuer);
        try badge.issue(_one(wallet, tier, expiry)) {
            if (!ok) {
                _violate("issue: succeeded for a wallet with a badge or tier 0");
                return;
            }
            _ghostMint(wallet, tier, expiry);
            ++successes["issue"];
        } catch (bytes memory reason) {
            if (ok) _violate("issue: reverted", reason);
        }
    }

    /// @dev A two-wallet batch; the wallets may be the same, which must revert the batch.
    function issueBatch(uint256 seedA, uint256 seedB, uint256 tierSeed, uint256 expirySeed) external useCurrentTime {
        address a = _actor(seedA);
        address b = _actor(seedB);
        (uint8 tier, uint64 expiry) = _tierAndExpiry(tierSeed, expirySeed);
        bool ok = tier != 0 && a != b && ghostTokenOf[a] == 0 && ghostTokenOf[b] == 0;
        IMembershipBadge.Membership[] memory batch = new IMembershipBadge.Membership[](2);
        batch[0] = IMembershipBadge.Membership(a, tier, expiry);
        batch[1] = IMembershipBadge.Membership(b, tier, expiry + 1);

        vm.prank(issuer);
        try badge.issue(batch) {
            if (!ok) {
                _violate("issueBatch: succeeded for a duplicate or a holder");
                return;
            }
            _ghostMint(a, tier, expiry);
            _ghostMint(b, tier, expiry + 1);
            ++successes["issueBatch"];
        } catch (bytes memory reason) {
            if (ok) _violate("issueBatch: reverted", reason);
        }
    }

    function update(uint256 walletSeed, uint256 tierSeed, uint256 expirySeed) external useCurrentTime {
        address wallet = _actor(walletSeed);
        (uint8 tier, uint64 expiry) = _tierAndExpiry(tierSeed, expirySeed);
        uint256 tokenId = ghostTokenOf[wallet];
        bool ok = tier != 0 && tokenId != 0;

        vm.prank(issuer);
        try badge.update(_one(wallet, tier, expiry)) {
            if (!ok) {
                _violate("update: succeeded without a badge or with tier 0");
                return;
            }
            ghostTier[tokenId] = tier;
            ghostExpiry[tokenId] = expiry;
            ++successes["update"];
        } catch (bytes memory reason) {
            if (ok) _violate("update: reverted", reason);
        }
    }

    // ================================================================ admin actions

    function revoke(uint256 walletSeed, bool asAdmin) external useCurrentTime {
        address wallet = _actor(walletSeed);
        uint256 tokenId = ghostTokenOf[wallet];
        address[] memory wallets = new address[](1);
        wallets[0] = wallet;

        vm.prank(asAdmin ? admin : issuer);
        try badge.revoke(wallets) {
            if (tokenId == 0) {
                _violate("revoke: succeeded without a badge");
                return;
            }
            delete ghostOwnerOf[tokenId];
            delete ghostTokenOf[wallet];
            delete ghostTier[tokenId];
            delete ghostExpiry[tokenId];
            ++successes["revoke"];
        } catch (bytes memory reason) {
            if (tokenId != 0) _violate("revoke: reverted", reason);
        }
    }

    /// @dev Moves between actors; one seed in 16 targets the zero address, which must revert.
    function move(uint256 fromSeed, uint256 toSeed, bool asAdmin) external useCurrentTime {
        address from = _actor(fromSeed);
        address to = toSeed % 16 == 0 ? address(0) : _actor(toSeed);
        uint256 tokenId = ghostTokenOf[from];
        bool ok = tokenId != 0 && to != address(0) && ghostTokenOf[to] == 0;

        vm.prank(asAdmin ? admin : issuer);
        try badge.move(from, to) {
            if (!ok) {
                _violate("move: succeeded to a holder, to zero or without a badge");
                return;
            }
            ghostOwnerOf[tokenId] = to;
            delete ghostTokenOf[from];
            ghostTokenOf[to] = tokenId;
            ++successes["move"];
        } catch (bytes memory reason) {
            if (ok) _violate("move: reverted", reason);
        }
    }

    // ================================================================ attempts that must fail

    /// @dev A holder (or anyone) tries every ERC-721 way of moving or delegating a badge.
    function holderTransfer(uint256 fromSeed, uint256 toSeed, uint256 kind) external useCurrentTime {
        address from = _actor(fromSeed);
        address to = _actor(toSeed);
        uint256 tokenId = ghostTokenOf[from];
        if (tokenId == 0) tokenId = uint160(from);
        bool succeeded;

        vm.startPrank(from);
        kind %= 5;
        if (kind == 0) {
            try badge.transferFrom(from, to, tokenId) {
                succeeded = true;
            } catch {}
        } else if (kind == 1) {
            try badge.safeTransferFrom(from, to, tokenId) {
                succeeded = true;
            } catch {}
        } else if (kind == 2) {
            try badge.safeTransferFrom(from, to, tokenId, "") {
                succeeded = true;
            } catch {}
        } else if (kind == 3) {
            try badge.approve(to, tokenId) {
                succeeded = true;
            } catch {}
        } else {
            try badge.setApprovalForAll(to, true) {
                succeeded = true;
            } catch {}
        }
        vm.stopPrank();
        if (succeeded) _violate("holderTransfer: a transfer or approval succeeded");
    }

    /// @dev Someone without a role (a stranger or a holder) tries move, revoke, issue, update.
    function unauthorized(uint256 callerSeed, uint256 walletSeed, uint256 toSeed, uint256 kind)
        external
        useCurrentTime
    {
        address caller = callerSeed % 2 == 0 ? stranger : _actor(callerSeed);
        address wallet = _actor(walletSeed);
        address to = _actor(toSeed);
        address[] memory wallets = new address[](1);
        wallets[0] = wallet;
        bool succeeded;

        vm.startPrank(caller);
        kind %= 4;
        if (kind == 0) {
            try badge.move(wallet, to) {
                succeeded = true;
            } catch {}
        } else if (kind == 1) {
            try badge.revoke(wallets) {
                succeeded = true;
            } catch {}
        } else if (kind == 2) {
            try badge.issue(_one(to, 1, uint64(currentTime) + 1 days)) {
                succeeded = true;
            } catch {}
        } else {
            try badge.update(_one(wallet, 1, uint64(currentTime) + 1 days)) {
                succeeded = true;
            } catch {}
        }
        vm.stopPrank();
        if (succeeded) _violate("unauthorized: a call without a role succeeded");
    }

    function warp(uint256 secondsSeed) external {
        currentTime += bound(secondsSeed, 0, 60 days);
    }

    // ================================================================ views for the invariants

    function actors() external view returns (address[] memory) {
        return _actors;
    }

    function mintedIds() external view returns (uint256[] memory) {
        return _mintedIds;
    }

    // ================================================================ internals

    function _ghostMint(address wallet, uint8 tier, uint64 expiry) private {
        uint256 tokenId = uint160(wallet);
        if (ghostOwnerOf[tokenId] != address(0)) tokenId = ghostNextAliasId++;
        ghostOwnerOf[tokenId] = wallet;
        ghostTokenOf[wallet] = tokenId;
        ghostTier[tokenId] = tier;
        ghostExpiry[tokenId] = expiry;
        if (!_known[tokenId]) {
            _known[tokenId] = true;
            _mintedIds.push(tokenId);
        }
    }

    function _actor(uint256 seed) private view returns (address) {
        return _actors[seed % _actors.length];
    }

    /// @dev Tier 0 (invalid) one time in 16; expiries from 30 days ago to a year ahead.
    function _tierAndExpiry(uint256 tierSeed, uint256 expirySeed) private view returns (uint8 tier, uint64 expiry) {
        tier = tierSeed % 16 == 0 ? 0 : uint8(bound(tierSeed, 1, 255));
        expiry = uint64(bound(expirySeed, currentTime - 30 days, currentTime + 365 days));
    }

    function _one(address wallet, uint8 tier, uint64 expiry)
        private
        pure
        returns (IMembershipBadge.Membership[] memory batch)
    {
        batch = new IMembershipBadge.Membership[](1);
        batch[0] = IMembershipBadge.Membership(wallet, tier, expiry);
    }

    function _violate(string memory what) private {
        ++violations;
        lastViolation = what;
    }

    function _violate(string memory what, bytes memory reason) private {
        _violate(string.concat(what, " with ", vm.toString(reason)));
    }
}
