// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/// @title Test
/// @notice Minimal base for tmai-pay's forge tests (the project does not depend on forge-std):
/// the cheatcode handle `vm`, assertions, `bound` for fuzz inputs and deterministic
/// test accounts.
/// @dev A failed assertion reverts with a message naming the assertion and both values;
/// forge reports any revert escaping a `test…`/`invariant…` function as a failure, so no
/// global failure flag is needed.
abstract contract Test {
    /// @dev The cheatcode address: `address(uint160(uint256(keccak256("hevm cheat code"))))`.
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    /// @dev secp256k1 group order: private keys must be in [1, N).
    uint256 internal constant SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    // ================================================================ failures

    /// @notice Fails the current test with `reason`.
    function fail(string memory reason) internal pure {
        revert(string.concat("test failed: ", reason));
    }

    function _failPair(string memory what, string memory left, string memory right, string memory err) private pure {
        string memory text = string.concat(what, " failed: left=", left, " right=", right);
        if (bytes(err).length != 0) text = string.concat(text, " (", err, ")");
        revert(text);
    }

    // ================================================================ booleans

    /// @notice Fails unless `condition` is true.
    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "");
    }

    /// @notice Fails unless `condition` is true, with `err` in the message.
    function assertTrue(bool condition, string memory err) internal pure {
        if (!condition) revert(string.concat("assertTrue failed", bytes(err).length != 0 ? ": " : "", err));
    }

    /// @notice Fails unless `condition` is false.
    function assertFalse(bool condition) internal pure {
        assertFalse(condition, "");
    }

    /// @notice Fails unless `condition` is false, with `err` in the message.
    function assertFalse(bool condition, string memory err) internal pure {
        if (condition) revert(string.concat("assertFalse failed", bytes(err).length != 0 ? ": " : "", err));
    }

    // ================================================================ equality

    function assertEq(uint256 left, uint256 right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(uint256 left, uint256 right, string memory err) internal pure {
        if (left != right) _failPair("assertEq(uint256)", vm.toString(left), vm.toString(right), err);
    }

    function assertEq(address left, address right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(address left, address right, string memory err) internal pure {
        if (left != right) _failPair("assertEq(address)", vm.toString(left), vm.toString(right), err);
    }

    function assertEq(bytes32 left, bytes32 right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(bytes32 left, bytes32 right, string memory err) internal pure {
        if (left != right) _failPair("assertEq(bytes32)", vm.toString(left), vm.toString(right), err);
    }

    function assertEq(bool left, bool right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(bool left, bool right, string memory err) internal pure {
        if (left != right) _failPair("assertEq(bool)", vm.toString(left), vm.toString(right), err);
    }

    function assertEq(string memory left, string memory right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(string memory left, string memory right, string memory err) internal pure {
        if (keccak256(bytes(left)) != keccak256(bytes(right))) _failPair("assertEq(string)", left, right, err);
    }

    function assertEq(bytes memory left, bytes memory right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(bytes memory left, bytes memory right, string memory err) internal pure {
        if (keccak256(left) != keccak256(right)) {
            _failPair("assertEq(bytes)", vm.toString(left), vm.toString(right), err);
        }
    }

    function assertNotEq(uint256 left, uint256 right) internal pure {
        if (left == right) _failPair("assertNotEq(uint256)", vm.toString(left), vm.toString(right), "");
    }

    function assertNotEq(address left, address right) internal pure {
        if (left == right) _failPair("assertNotEq(address)", vm.toString(left), vm.toString(right), "");
    }

    function assertNotEq(bytes32 left, bytes32 right) internal pure {
        if (left == right) _failPair("assertNotEq(bytes32)", vm.toString(left), vm.toString(right), "");
    }

    function assertNotEq(string memory left, string memory right) internal pure {
        if (keccak256(bytes(left)) == keccak256(bytes(right))) _failPair("assertNotEq(string)", left, right, "");
    }

    // ================================================================ ordering (uint256)

    function assertGt(uint256 left, uint256 right) internal pure {
        if (left <= right) _failPair("assertGt", vm.toString(left), vm.toString(right), "");
    }

    function assertGe(uint256 left, uint256 right) internal pure {
        if (left < right) _failPair("assertGe", vm.toString(left), vm.toString(right), "");
    }

    function assertLt(uint256 left, uint256 right) internal pure {
        if (left >= right) _failPair("assertLt", vm.toString(left), vm.toString(right), "");
    }

    function assertLe(uint256 left, uint256 right) internal pure {
        if (left > right) _failPair("assertLe", vm.toString(left), vm.toString(right), "");
    }

    // ================================================================ fuzzing

    /// @notice Maps `x` into [lo, hi]. Values already in range are returned unchanged so that
    /// the fuzzer's edge-case dictionary (0, 1, max, …) still lands on the bounds.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        uint256 span = hi - lo;
        if (span == type(uint256).max) return x;
        return lo + x % (span + 1);
    }

    /// @notice Maps `x` to a valid secp256k1 private key.
    function boundPrivateKey(uint256 x) internal pure returns (uint256) {
        return bound(x, 1, SECP256K1_ORDER - 1);
    }

    // ================================================================ accounts

    /// @notice Returns a deterministic, labelled address derived from `name`.
    function makeAddr(string memory name) internal returns (address account) {
        (account,) = makeAddrAndKey(name);
    }

    /// @notice Returns a deterministic, labelled address derived from `name` and its private key.
    function makeAddrAndKey(string memory name) internal returns (address account, uint256 privateKey) {
        privateKey = boundPrivateKey(uint256(keccak256(bytes(name))));
        account = vm.addr(privateKey);
        vm.label(account, name);
    }
}
