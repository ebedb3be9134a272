// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title TestStrings
/// @notice String helpers for tests that inspect on-chain metadata: standard base64
/// decoding (RFC 4648, with `=` padding), prefix and substring checks, and extracting the
/// text between two markers.
/// @dev Plain loops: gas does not matter in tests and clarity does.
library TestStrings {
    /// @notice Decodes standard base64 `input`; reverts on bad length or characters.
    function decodeBase64(string memory input) internal pure returns (bytes memory out) {
        bytes memory data = bytes(input);
        require(data.length % 4 == 0, "base64: length not a multiple of 4");
        if (data.length == 0) return out;
        uint256 padding;
        if (data[data.length - 1] == "=") ++padding;
        if (data[data.length - 2] == "=") ++padding;
        out = new bytes((data.length / 4) * 3 - padding);
        uint256 o;
        for (uint256 i; i < data.length; i += 4) {
            uint256 quad = (_sextet(data[i]) << 18) | (_sextet(data[i + 1]) << 12) | (_sextet(data[i + 2]) << 6)
                | _sextet(data[i + 3]);
            for (uint256 k; k < 3 && o < out.length; ++k) {
                out[o++] = bytes1(uint8(quad >> (16 - 8 * k)));
            }
        }
    }

    /// @notice Returns whether `text` starts with `prefix`.
    function startsWith(string memory text, string memory prefix) internal pure returns (bool) {
        return _matchesAt(bytes(text), bytes(prefix), 0);
    }

    /// @notice Returns `text` without `prefix`; reverts when `text` does not start with it.
    function stripPrefix(string memory text, string memory prefix) internal pure returns (string memory) {
        require(startsWith(text, prefix), "stripPrefix: prefix missing");
        return _slice(bytes(text), bytes(prefix).length, bytes(text).length);
    }

    /// @notice Returns whether `needle` occurs in `text`.
    function contains(string memory text, string memory needle) internal pure returns (bool) {
        return indexOf(text, needle, 0) != type(uint256).max;
    }

    /// @notice Returns the first index of `needle` in `text` at or after `from`, or
    /// `type(uint256).max` when absent.
    function indexOf(string memory text, string memory needle, uint256 from) internal pure returns (uint256) {
        bytes memory t = bytes(text);
        bytes memory n = bytes(needle);
        if (n.length > t.length) return type(uint256).max;
        for (uint256 i = from; i + n.length <= t.length; ++i) {
            if (_matchesAt(t, n, i)) return i;
        }
        return type(uint256).max;
    }

    /// @notice Returns the text between the first `open` marker and the next `close` marker
    /// after it; reverts when either is missing.
    function between(string memory text, string memory open, string memory close)
        internal
        pure
        returns (string memory)
    {
        uint256 start = indexOf(text, open, 0);
        require(start != type(uint256).max, "between: open marker missing");
        start += bytes(open).length;
        uint256 end = indexOf(text, close, start);
        require(end != type(uint256).max, "between: close marker missing");
        return _slice(bytes(text), start, end);
    }

    function _slice(bytes memory text, uint256 start, uint256 end) private pure returns (string memory) {
        bytes memory slice = new bytes(end - start);
        for (uint256 i; i < slice.length; ++i) {
            slice[i] = text[start + i];
        }
        return string(slice);
    }

    function _matchesAt(bytes memory text, bytes memory needle, uint256 at) private pure returns (bool) {
        if (at + needle.length > text.length) return false;
        for (uint256 i; i < needle.length; ++i) {
            if (text[at + i] != needle[i]) return false;
        }
        return true;
    }

    function _sextet(bytes1 char) private pure returns (uint256) {
        uint8 c = uint8(char);
        if (c >= 0x41 && c <= 0x5a) return c - 0x41; // A-Z: 0-25
        if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26; // a-z: 26-51
        if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52; // 0-9: 52-61
        if (c == 0x2b) return 62; // +
        if (c == 0x2f) return 63; // /
        if (c == 0x3d) return 0; // = (padding, dropped by the output length)
        revert("base64: invalid character");
    }
}
