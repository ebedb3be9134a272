// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title TestToken
/// @notice ERC-20 with EIP-2612 `permit` and owner minting, for local chains and tests
/// only (TMAI with 18 decimals, a USD stablecoin with 6). A real deployment configures
/// existing token addresses instead.
contract TestToken is ERC20, ERC20Permit, Ownable {
    uint8 private immutable _decimals;

    /// @param name_ Token name (also the EIP-712 domain name of `permit`).
    /// @param symbol_ Token symbol.
    /// @param decimals_ Display decimals.
    /// @param owner_ Account allowed to mint.
    constructor(string memory name_, string memory symbol_, uint8 decimals_, address owner_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
        Ownable(owner_)
    {
        _decimals = decimals_;
    }

    /// @notice Mints `amount` to `to`. @dev Requirements: caller is the owner.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}
