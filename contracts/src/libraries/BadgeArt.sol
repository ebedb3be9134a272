// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/// @title BadgeArt
/// @notice Renders a membership badge as on-chain JSON metadata with an SVG card that
/// shows the tier, the expiry date and whether the membership is active.
/// @dev Pure functions only; called from `tokenURI` (an `eth_call`), so gas is no concern.
library BadgeArt {
    using Strings for uint256;

    /// @notice Returns `data:application/json;base64,…` metadata for one badge.
    function tokenURI(uint256 tokenId, address owner, uint8 tier, uint64 expiry, uint256 nowTs)
        internal
        pure
        returns (string memory)
    {
        string memory name = tierName(tier);
        bool active = expiry > nowTs;
        string memory json = string.concat(
            '{"name":"TMAI ',
            name,
            ' Membership","description":"Soulbound TMAI membership badge. It cannot be transferred; its tier and expiry live on-chain.","image":"data:image/svg+xml;base64,',
            Base64.encode(bytes(svg(tokenId, owner, tier, expiry, active))),
            '","attributes":[{"trait_type":"Tier","value":"',
            name,
            '"},{"trait_type":"Tier rank","value":',
            uint256(tier).toString(),
            '},{"display_type":"date","trait_type":"Expires","value":',
            uint256(expiry).toString(),
            '},{"trait_type":"Status","value":"',
            active ? "Active" : "Expired",
            '"}]}'
        );
        return string.concat("data:application/json;base64,", Base64.encode(bytes(json)));
    }

    /// @notice Returns the SVG card of one badge.
    function svg(uint256 tokenId, address owner, uint8 tier, uint64 expiry, bool active)
        internal
        pure
        returns (string memory)
    {
        (string memory from, string memory to) = tierColors(tier);
        string memory head = string.concat(
            '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400">',
            '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="',
            from,
            '"/><stop offset="1" stop-color="',
            to,
            '"/></linearGradient></defs>',
            '<rect width="400" height="400" rx="28" fill="url(#g)"/>',
            '<circle cx="330" cy="70" r="120" fill="#ffffff" fill-opacity="0.08"/>',
            '<circle cx="60" cy="360" r="90" fill="#ffffff" fill-opacity="0.06"/>'
        );
        string memory body = string.concat(
            '<g font-family="Helvetica,Arial,sans-serif" fill="#ffffff">',
            '<text x="32" y="58" font-size="22" font-weight="700" letter-spacing="4">TMAI</text>',
            '<text x="32" y="82" font-size="13" letter-spacing="3" fill-opacity="0.8">MEMBERSHIP</text>',
            '<text x="32" y="200" font-size="54" font-weight="700">',
            tierName(tier),
            "</text>",
            '<text x="32" y="240" font-size="16" fill-opacity="0.9">Valid until ',
            date(expiry),
            "</text>"
        );
        string memory foot = string.concat(
            '<rect x="32" y="270" width="',
            active ? "92" : "104",
            '" height="30" rx="15" fill="',
            active ? "#16a34a" : "#dc2626",
            '"/><text x="',
            active ? "78" : "84",
            '" y="290" font-size="13" font-weight="700" text-anchor="middle" letter-spacing="1">',
            active ? "ACTIVE" : "EXPIRED",
            "</text>",
            '<text x="32" y="360" font-size="12" fill-opacity="0.75" font-family="monospace">',
            Strings.toHexString(owner),
            "</text>",
            '<text x="368" y="58" font-size="12" fill-opacity="0.75" text-anchor="end">SOULBOUND</text>',
            "</g></svg>"
        );
        tokenId; // the id is in the JSON; the card shows the holder instead
        return string.concat(head, body, foot);
    }

    /// @notice Returns the display name of a tier rank.
    function tierName(uint8 tier) internal pure returns (string memory) {
        if (tier == 1) return "Basic";
        if (tier == 2) return "Advanced";
        if (tier == 3) return "Premium";
        if (tier == 4) return "VIP";
        return string.concat("Tier ", uint256(tier).toString());
    }

    /// @notice Returns the card's gradient colors for a tier rank.
    function tierColors(uint8 tier) internal pure returns (string memory from, string memory to) {
        if (tier == 1) return ("#64748b", "#1e293b");
        if (tier == 2) return ("#14b8a6", "#0f4c5c");
        if (tier == 3) return ("#8b5cf6", "#3b0764");
        if (tier == 4) return ("#f59e0b", "#7c2d12");
        return ("#6b7280", "#111827");
    }

    /// @notice Formats unix seconds as an ISO date (YYYY-MM-DD, UTC).
    /// @dev Days-to-civil conversion from Howard Hinnant's public-domain date algorithms.
    function date(uint64 timestamp) internal pure returns (string memory) {
        uint256 z = uint256(timestamp) / 86400 + 719468;
        uint256 era = z / 146097;
        uint256 doe = z - era * 146097;
        uint256 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        uint256 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        uint256 mp = (5 * doy + 2) / 153;
        uint256 day = doy - (153 * mp + 2) / 5 + 1;
        uint256 month = mp < 10 ? mp + 3 : mp - 9;
        uint256 year = yoe + era * 400 + (month <= 2 ? 1 : 0);
        return string.concat(year.toString(), "-", _two(month), "-", _two(day));
    }

    function _two(uint256 v) private pure returns (string memory) {
        return v < 10 ? string.concat("0", v.toString()) : v.toString();
    }
}
