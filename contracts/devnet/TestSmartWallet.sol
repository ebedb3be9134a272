// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title TestSmartWallet
/// @notice For tests only: a contract wallet whose one owner's ECDSA signature over a
/// digest is the wallet's ERC-1271 signature.
contract TestSmartWallet is IERC1271 {
    /// The key that signs for the wallet.
    address public immutable owner;

    /// @param owner_ The key that signs for the wallet.
    constructor(address owner_) {
        owner = owner_;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(hash, signature);
        if (error == ECDSA.RecoverError.NoError && recovered == owner) {
            return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }
}

/// @title TestSmartWalletFactory
/// @notice For tests only: deploys `TestSmartWallet`s at CREATE2 addresses known before
/// deployment (the counterfactual wallets of ERC-6492).
contract TestSmartWalletFactory {
    /// Deploys the wallet of `owner` and `salt` (when it is not there yet) and returns it.
    function deployWallet(address owner, bytes32 salt) external returns (address wallet) {
        wallet = addressOf(owner, salt);
        if (wallet.code.length == 0) {
            wallet = address(new TestSmartWallet{salt: salt}(owner));
        }
    }

    /// Returns the address the wallet of `owner` and `salt` has, deployed or not.
    function addressOf(address owner, bytes32 salt) public view returns (address) {
        bytes32 code = keccak256(abi.encodePacked(type(TestSmartWallet).creationCode, abi.encode(owner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, code)))));
    }
}
