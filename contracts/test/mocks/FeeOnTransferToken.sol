// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title FeeOnTransferToken
/// @notice Test-only ERC-20 that burns a fee (in basis points, rounded up) from every
/// transfer between two accounts, so the recipient gets less than `value`. It has no
/// `permit`. With a zero fee it behaves as a plain ERC-20 without EIP-2612.
/// @dev Anyone may mint; never deploy outside tests.
contract FeeOnTransferToken is ERC20 {
    uint256 private constant _BPS = 10_000;

    /// @notice Fee charged on each transfer, in basis points of the value.
    uint256 public feeBps;

    constructor(uint256 feeBps_) ERC20("Fee Token", "FEE") {
        feeBps = feeBps_;
    }

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Changes the transfer fee.
    function setFeeBps(uint256 newFeeBps) external {
        require(newFeeBps <= _BPS, "fee > 100%");
        feeBps = newFeeBps;
    }

    /// @dev Burns the fee from the sender, then moves the rest.
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0) || feeBps == 0) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = Math.mulDiv(value, feeBps, _BPS, Math.Rounding.Ceil);
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
