//! Whose signature is this? A plain key's (recovered here, no RPC), a deployed contract
//! wallet's (ERC-1271 `isValidSignature` by `eth_call`), or a not-yet-deployed wallet's
//! (ERC-6492: the `SignatureCheck` contract's creation code run in an `eth_call`, which
//! deploys the wallet inside the simulation and asks it).

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, Signature},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    sol,
    sol_types::{SolCall, SolConstructor},
};

use crate::chain::bindings::SignatureCheck;

sol! {
    /// ERC-1271.
    interface IERC1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4 magicValue);
    }
}

/// ERC-1271's answer for a valid signature.
const ERC1271_MAGIC: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];

/// The last 32 bytes of an ERC-6492 wrapped signature.
pub const ERC6492_SUFFIX: [u8; 32] = [
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
];

/// What kind of wallet signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerKind {
    /// A plain key (ECDSA, recovered).
    Key,
    /// A deployed contract wallet (ERC-1271).
    Contract,
    /// A contract wallet not deployed yet (ERC-6492).
    Counterfactual,
}

impl SignerKind {
    /// The name shown in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "eoa",
            Self::Contract => "erc1271",
            Self::Counterfactual => "erc6492",
        }
    }
}

/// Why a signature is not the wallet's.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The signature recovers to another address.
    #[error("the message was signed by {0}, not by the address it names")]
    OtherSigner(Address),
    /// Not a valid signature of the wallet.
    #[error("the signature is not valid for this wallet")]
    Invalid,
    /// The chain could not be asked (contract wallets).
    #[error("cannot check a contract wallet's signature: {0}")]
    Rpc(#[source] alloy::transports::TransportError),
}

/// Checks that `signature` is `signer`'s over `hash` on the chain `provider` reads.
pub async fn verify(provider: &DynProvider, signer: Address, hash: B256, signature: &[u8]) -> Result<SignerKind, SignatureError> {
    if signature.len() > 32 && signature[signature.len() - 32..] == ERC6492_SUFFIX {
        return if deployless_check(provider, signer, hash, signature).await? { Ok(SignerKind::Counterfactual) } else { Err(SignatureError::Invalid) };
    }
    let recovered = (signature.len() == 65).then(|| Signature::try_from(signature).ok()).flatten().and_then(|s| s.recover_address_from_prehash(&hash).ok());
    if recovered == Some(signer) {
        return Ok(SignerKind::Key);
    }
    let code = provider.get_code_at(signer).await.map_err(SignatureError::Rpc)?;
    if !code.is_empty() {
        let call = IERC1271::isValidSignatureCall { hash, signature: Bytes::copy_from_slice(signature) };
        let request = TransactionRequest::default().with_to(signer).with_input(call.abi_encode());
        // A wallet that reverts or answers garbage has not approved the signature.
        let approved = match provider.call(request).await {
            Ok(out) => out.len() >= 4 && out[..4] == ERC1271_MAGIC,
            Err(alloy::transports::RpcError::ErrorResp(_)) => false,
            Err(e) => return Err(SignatureError::Rpc(e)),
        };
        return if approved { Ok(SignerKind::Contract) } else { Err(SignatureError::Invalid) };
    }
    match recovered {
        Some(other) => Err(SignatureError::OtherSigner(other)),
        None => Err(SignatureError::Invalid),
    }
}

/// Runs `SignatureCheck`'s creation code in an `eth_call`: its return data is one byte,
/// 1 when the signature is valid.
async fn deployless_check(provider: &DynProvider, signer: Address, hash: B256, signature: &[u8]) -> Result<bool, SignatureError> {
    let args = SignatureCheck::constructorCall { signer, hash, signature: Bytes::copy_from_slice(signature) }.abi_encode();
    let mut code = SignatureCheck::BYTECODE.to_vec();
    code.extend_from_slice(&args);
    let request = TransactionRequest::default().with_deploy_code(code);
    match provider.call(request).await {
        Ok(out) => Ok(out.as_ref() == [1]),
        Err(alloy::transports::RpcError::ErrorResp(_)) => Ok(false),
        Err(e) => Err(SignatureError::Rpc(e)),
    }
}
