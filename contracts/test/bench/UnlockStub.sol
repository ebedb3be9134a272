// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title UnlockStub
/// @notice Stands in for the Unlock factory a PublicLock reports to in the gas comparisons
/// (test/bench/UnlockRenewal.t.sol and benches/gas.rs): no protocol fee, nothing recorded.
/// @dev The real `recordKeyPurchase` also updates Unlock's gross network product (and may
/// mint UDT), so a lock's figures measured against this stub are a lower bound of a deployed
/// lock's.
contract UnlockStub {
    function protocolFee() external pure returns (uint256) {
        return 0;
    }

    function recordKeyPurchase(uint256, address) external {}
}
