// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title SignatureCheck
/// @notice Never deployed: the service runs its creation code in an `eth_call` (no `to`),
/// and the constructor's return data is the answer, one byte, 0x01 when `signature` is
/// `signer`'s over `hash` and 0x00 otherwise. It accepts a plain ECDSA signature, an
/// ERC-1271 contract wallet's, and an ERC-6492 wrapped signature of a wallet that is not
/// deployed yet: the wrapper names the wallet's factory and the call that deploys it, which
/// runs first inside the same simulated call, so nothing is ever written on the chain.
contract SignatureCheck {
    /// The ERC-6492 marker: the last 32 bytes of a wrapped signature.
    bytes32 private constant ERC6492_SUFFIX = 0x6492649264926492649264926492649264926492649264926492649264926492;

    /// @param signer The account that claims to have signed.
    /// @param hash The signed digest (EIP-191 for Sign-In with Ethereum).
    /// @param signature The signature, possibly ERC-6492 wrapped.
    constructor(address signer, bytes32 hash, bytes memory signature) {
        bool valid = _check(signer, hash, signature);
        assembly ("memory-safe") {
            mstore(0, valid)
            return(31, 1)
        }
    }

    function _check(address signer, bytes32 hash, bytes memory signature) private returns (bool) {
        uint256 length = signature.length;
        if (length >= 32 && _tail(signature) == ERC6492_SUFFIX) {
            bytes memory wrapped = new bytes(length - 32);
            for (uint256 i = 0; i < length - 32; ++i) {
                wrapped[i] = signature[i];
            }
            (address factory, bytes memory factoryCall, bytes memory inner) = abi.decode(wrapped, (address, bytes, bytes));
            if (signer.code.length == 0) {
                // The deployment's own result does not matter: the wallet's code does.
                (bool deployed,) = factory.call(factoryCall);
                deployed;
            }
            return signer.code.length > 0 && SignatureChecker.isValidERC1271SignatureNow(signer, hash, inner);
        }
        return SignatureChecker.isValidSignatureNow(signer, hash, signature);
    }

    function _tail(bytes memory data) private pure returns (bytes32 tail) {
        assembly ("memory-safe") {
            tail := mload(add(data, mload(data)))
        }
    }
}
