// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IAccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {IERC5192} from "../src/interfaces/IERC5192.sol";
import {IERC5643} from "../src/interfaces/IERC5643.sol";
import {BadgeArt} from "../src/libraries/BadgeArt.sol";
import {BadgeFixture} from "./utils/BadgeFixture.sol";
import {TestStrings} from "./utils/TestStrings.sol";

/// @title MembershipBadgeMetadataTest
/// @notice Tests of what wallets and explorers read from MembershipBadge: ERC-165
/// `supportsInterface` for every advertised interface, name and symbol, and the on-chain
/// `tokenURI` — decoded here from base64 so the JSON fields and the SVG card (tier name,
/// expiry date, holder, status) are checked, not just the prefix. Also checks BadgeArt's date
/// formatting and the test's own base64 decoder.
contract MembershipBadgeMetadataTest is BadgeFixture {
    using TestStrings for string;

    string private constant JSON_PREFIX = "data:application/json;base64,";
    string private constant SVG_PREFIX = "data:image/svg+xml;base64,";

    /// @dev Returns the decoded JSON of `tokenId`'s metadata.
    function _json(uint256 tokenId) private view returns (string memory) {
        string memory uri = badge.tokenURI(tokenId);
        assertTrue(uri.startsWith(JSON_PREFIX), "tokenURI prefix");
        return string(TestStrings.decodeBase64(uri.stripPrefix(JSON_PREFIX)));
    }

    /// @dev Returns the decoded SVG card embedded in `json`.
    function _svg(string memory json) private pure returns (string memory) {
        return string(TestStrings.decodeBase64(json.between(SVG_PREFIX, '"')));
    }

    // ================================================================ ERC-165

    function test_supportsInterface_advertisedInterfaces() public view {
        assertTrue(badge.supportsInterface(0x01ffc9a7), "ERC-165");
        assertTrue(badge.supportsInterface(0x80ac58cd), "ERC-721");
        assertTrue(badge.supportsInterface(0x5b5e139f), "ERC-721 Metadata");
        assertTrue(badge.supportsInterface(0xb45a3c0e), "ERC-5192");
        assertTrue(badge.supportsInterface(0x49064906), "ERC-4906");
        assertTrue(badge.supportsInterface(type(IERC5643).interfaceId), "ERC-5643");
        assertTrue(badge.supportsInterface(type(IAccessControl).interfaceId), "AccessControl");
        assertTrue(
            badge.supportsInterface(type(IAccessControlDefaultAdminRules).interfaceId), "AccessControlDefaultAdminRules"
        );
    }

    function test_supportsInterface_rejectsOthers() public view {
        assertFalse(badge.supportsInterface(0xffffffff), "0xffffffff");
        assertFalse(badge.supportsInterface(0x780e9d63), "ERC-721 Enumerable");
        assertFalse(badge.supportsInterface(0x00000000), "zero id");
    }

    function test_interfaceIds_matchStandards() public pure {
        assertEq(bytes32(type(IERC5192).interfaceId), bytes32(bytes4(0xb45a3c0e)), "ERC-5192 id");
    }

    // ================================================================ name and symbol

    function test_nameAndSymbol() public view {
        assertEq(badge.name(), "TMAI Membership");
        assertEq(badge.symbol(), "TMAIM");
    }

    // ================================================================ tokenURI

    function test_tokenURI_isBase64JsonWithTierExpiryAndStatus() public {
        // Arrange: 2026-01-01T00:00:00Z
        uint64 expiry = 1_767_225_600;
        uint256 tokenId = _issue(alice, PREMIUM, expiry);

        // Act
        string memory json = _json(tokenId);

        // Assert
        assertTrue(json.startsWith('{"name":"TMAI Premium Membership"'), "name");
        assertTrue(json.contains('"trait_type":"Tier","value":"Premium"'), "tier trait");
        assertTrue(json.contains('"trait_type":"Tier rank","value":3}'), "tier rank");
        assertTrue(json.contains('"trait_type":"Expires","value":1767225600}'), "expires");
        assertTrue(json.contains('"trait_type":"Status","value":"Active"'), "status");
        assertTrue(json.contains(SVG_PREFIX), "embedded image");
    }

    function test_tokenURI_svgShowsTierExpiryDateAndHolder() public {
        // Arrange
        uint256 tokenId = _issue(alice, PREMIUM, 1_767_225_600);

        // Act
        string memory svg = _svg(_json(tokenId));

        // Assert
        assertTrue(svg.startsWith("<svg "), "svg root");
        assertTrue(svg.contains(">Premium</text>"), "tier name");
        assertTrue(svg.contains("Valid until 2026-01-01"), "expiry date");
        assertTrue(svg.contains(">ACTIVE</text>"), "status");
        assertTrue(svg.contains(Strings.toHexString(alice)), "holder");
        assertTrue(svg.contains("</svg>"), "closed");
    }

    function test_tokenURI_showsExpiredAfterExpiry() public {
        // Arrange
        uint64 expiry = _inAMonth();
        uint256 tokenId = _issue(alice, BASIC, expiry);
        string memory before = badge.tokenURI(tokenId);

        // Act
        vm.warp(expiry);

        // Assert
        string memory json = _json(tokenId);
        assertNotEq(badge.tokenURI(tokenId), before);
        assertTrue(json.contains('"trait_type":"Status","value":"Expired"'), "status trait");
        assertTrue(_svg(json).contains(">EXPIRED</text>"), "status badge");
    }

    function test_tokenURI_changesWhenTierChanges() public {
        // Arrange
        uint64 expiry = _inAMonth();
        uint256 tokenId = _issue(alice, BASIC, expiry);
        string memory basicUri = badge.tokenURI(tokenId);

        // Act
        _update(alice, 4, expiry);

        // Assert
        string memory vipUri = badge.tokenURI(tokenId);
        assertNotEq(vipUri, basicUri);
        assertTrue(_json(tokenId).startsWith('{"name":"TMAI VIP Membership"'), "new tier name");
    }

    function test_tokenURI_namesEveryTier() public {
        // Arrange
        string[6] memory names = ["Basic", "Advanced", "Premium", "VIP", "Tier 5", "Tier 255"];
        uint8[6] memory tiers = [1, 2, 3, 4, 5, 255];
        uint256 tokenId = _issue(alice);

        for (uint256 i; i < tiers.length; ++i) {
            // Act
            _update(alice, tiers[i], _inAMonth());

            // Assert
            string memory json = _json(tokenId);
            assertTrue(json.startsWith(string.concat('{"name":"TMAI ', names[i], ' Membership"')), names[i]);
        }
    }

    function test_tokenURI_showsNewHolderAfterMove() public {
        // Arrange
        uint256 tokenId = _issue(alice);

        // Act
        _move(alice, bob);

        // Assert
        string memory svg = _svg(_json(tokenId));
        assertTrue(svg.contains(Strings.toHexString(bob)), "new holder");
        assertFalse(svg.contains(Strings.toHexString(alice)), "old holder gone");
    }

    function test_tokenURI_revertsWhen_tokenDoesNotExist() public {
        uint256 missing = uint160(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, missing));
        badge.tokenURI(missing);
    }

    function test_tokenURI_revertsWhen_tokenRevoked() public {
        uint256 tokenId = _issue(alice);
        _revoke(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, tokenId));
        badge.tokenURI(tokenId);
    }

    // ================================================================ BadgeArt.date

    function test_date_formatsUtcDates() public pure {
        assertEq(BadgeArt.date(0), "1970-01-01");
        assertEq(BadgeArt.date(86_399), "1970-01-01");
        assertEq(BadgeArt.date(86_400), "1970-01-02");
        assertEq(BadgeArt.date(951_782_400), "2000-02-29"); // leap day of a /400 year
        assertEq(BadgeArt.date(1_709_164_800), "2024-02-29");
        assertEq(BadgeArt.date(1_735_689_599), "2024-12-31");
        assertEq(BadgeArt.date(4_107_542_400), "2100-03-01"); // 2100 is not a leap year
        assertEq(BadgeArt.date(253_402_300_799), "9999-12-31");
    }

    function test_date_handlesLargestExpiry() public pure {
        // Must not revert for any uint64 (the badge's expiry type).
        assertTrue(bytes(BadgeArt.date(type(uint64).max)).length >= 10);
    }

    // ================================================================ test helper

    function testFuzz_decodeBase64_roundTripsOpenZeppelinEncoding(bytes memory data) public pure {
        assertEq(TestStrings.decodeBase64(Base64.encode(data)), data);
    }
}
