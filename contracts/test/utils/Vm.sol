// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Vm
/// @notice The subset of Foundry's cheatcodes that tmai-pay's tests use. forge-std is not a
/// dependency of this project, so the interface is declared here; each signature matches the
/// cheatcode's, since forge dispatches on the selector.
/// @dev The cheatcode contract lives at `address(uint160(uint256(keccak256("hevm cheat code"))))`,
/// i.e. 0x7109709ECfa91a80626fF3989D68f67F5b1DD12D. View-only cheatcodes are declared `pure` or
/// `view` so that helpers using them can be `pure`/`view` too.
interface Vm {
    /// @notice One log captured after {recordLogs}.
    struct Log {
        /// topics[0] is the event signature hash (for non-anonymous events).
        bytes32[] topics;
        /// ABI-encoded non-indexed arguments.
        bytes data;
        /// The contract that emitted the log.
        address emitter;
    }

    /// @notice Gas figures of the last call (see {lastCallGas}).
    struct Gas {
        uint64 gasLimit;
        uint64 gasTotalUsed;
        uint64 gasMemoryUsed;
        int64 gasRefunded;
        uint64 gasRemaining;
    }

    // ----------------------------------------------------------------- environment

    /// @notice Sets `block.timestamp`.
    function warp(uint256 newTimestamp) external;

    /// @notice Sets `block.number`.
    function roll(uint256 newHeight) external;

    /// @notice Sets `block.chainid`.
    function chainId(uint256 newChainId) external;

    /// @notice Sets the ETH balance of `account`.
    function deal(address account, uint256 newBalance) external;

    /// @notice Sets `msg.sender` for the next call only.
    function prank(address msgSender) external;

    /// @notice Sets `msg.sender` for every call until {stopPrank}.
    function startPrank(address msgSender) external;

    /// @notice Ends a {startPrank}.
    function stopPrank() external;

    /// @notice Names `account` in traces.
    function label(address account, string calldata newLabel) external;

    // ----------------------------------------------------------------- gas

    /// @notice Returns the gas figures of the last call made by the test.
    function lastCallGas() external view returns (Gas memory gas);

    /// @notice Returns the creation bytecode of an artifact (a path to its JSON, which the
    /// configuration's `fs_permissions` must allow reading).
    function getCode(string calldata artifactPath) external view returns (bytes memory creationBytecode);

    // ----------------------------------------------------------------- keys

    /// @notice Returns the address of `privateKey`.
    function addr(uint256 privateKey) external pure returns (address keyAddr);

    /// @notice Signs `digest` with `privateKey` (secp256k1, low-s).
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);

    // ----------------------------------------------------------------- expectations

    /// @notice Expects the next call to revert with exactly `revertData`.
    function expectRevert(bytes calldata revertData) external;

    /// @notice Expects the next call to revert with exactly the 4 bytes `revertData` (a custom
    /// error without arguments; errors with arguments need the bytes overload).
    function expectRevert(bytes4 revertData) external;

    /// @notice Expects an event like the next one emitted in this test to be emitted by the
    /// next call, comparing the chosen topics and the data.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;

    /// @notice As above, and also requires `emitter` to be the emitting contract.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;

    // ----------------------------------------------------------------- logs

    /// @notice Starts recording every emitted log.
    function recordLogs() external;

    /// @notice Returns (and consumes) the logs recorded since {recordLogs} or the last call.
    function getRecordedLogs() external returns (Log[] memory logs);

    // ----------------------------------------------------------------- fuzzing

    /// @notice Discards the current fuzz input when `condition` is false.
    function assume(bool condition) external pure;

    // ----------------------------------------------------------------- formatting

    /// @notice Returns the decimal string of `value`.
    function toString(uint256 value) external pure returns (string memory stringifiedValue);

    /// @notice Returns the checksummed hex string of `value`.
    function toString(address value) external pure returns (string memory stringifiedValue);

    /// @notice Returns the 0x-prefixed hex string of `value`.
    function toString(bytes32 value) external pure returns (string memory stringifiedValue);

    /// @notice Returns "true" or "false".
    function toString(bool value) external pure returns (string memory stringifiedValue);

    /// @notice Returns the 0x-prefixed hex string of `value`.
    function toString(bytes calldata value) external pure returns (string memory stringifiedValue);
}
