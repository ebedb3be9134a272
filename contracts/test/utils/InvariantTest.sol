// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";

/// @title InvariantTest
/// @notice Base for handler-based invariant tests: tells forge's invariant fuzzer which
/// contracts and which of their functions to call.
/// @dev forge reads the public getters below by name (`targetContracts()`,
/// `targetSelectors()`); the return shapes follow forge's invariant-test ABI, where a
/// selector target is `(address addr, bytes4[] selectors)`. Without them forge would call
/// every contract deployed in `setUp`, including the contracts under test directly.
abstract contract InvariantTest is Test {
    /// @notice Functions of one contract that the fuzzer may call.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetedContracts;
    FuzzSelector[] private _targetedSelectors;

    /// @notice Adds `target` to the contracts the fuzzer calls.
    function targetContract(address target) internal {
        _targetedContracts.push(target);
    }

    /// @notice Restricts the fuzzer to `selectors` on `target`.
    function targetSelector(address target, bytes4[] memory selectors) internal {
        _targetedSelectors.push(FuzzSelector(target, selectors));
    }

    /// @notice Read by forge: the contracts to fuzz.
    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    /// @notice Read by forge: the functions to fuzz, per contract.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }
}
