//! Whose signature is this? A plain key's (recovered here, no RPC), a deployed contract
//! wallet's (ERC-1271 `isValidSignature` by `eth_call`), or a not-yet-deployed wallet's
//! (ERC-6492: the `SignatureCheck` contract's creation code run in an `eth_call`, which
//! deploys the wallet inside the simulation and asks it).
//!
//! [`by_key`] answers without the chain; only when it cannot does [`on_chain`] ask the node,
//! with an explicit gas limit on every `eth_call`, so that a wallet (or a signature built to
//! loop) costs the node a bounded amount. How many such checks run at once is
//! [`ContractChecks`]'s business.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, Signature},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    sol,
    sol_types::{SolCall, SolConstructor},
};

use crate::chain::bindings::SignatureCheck;

/// Sign-in's own share of the node: at most a configured number of contract-wallet checks
/// in flight, service-wide, apart from the watcher's and the minter's calls (which never
/// wait here), each `eth_call` with a gas limit. A check that finds the share full is
/// refused at once ([`SignatureError::Busy`]) rather than queued: a queue would only move
/// the flood from the node to memory.
#[derive(Debug)]
pub struct ContractChecks {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    gas: u64,
}

/// One contract-wallet check's place in [`ContractChecks`], given back when dropped.
#[derive(Debug)]
pub struct CheckPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ContractChecks {
    /// Allows `in_flight` checks at once (at least one), each `eth_call` limited to `gas`.
    pub fn new(in_flight: u32, gas: u64) -> Self {
        Self { permits: std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight.max(1) as usize)), gas }
    }

    /// Returns a place for one check, or [`SignatureError::Busy`] when all are taken.
    pub fn try_permit(&self) -> Result<CheckPermit, SignatureError> {
        self.permits.clone().try_acquire_owned().map(|p| CheckPermit { _permit: p }).map_err(|_| SignatureError::Busy)
    }

    /// The gas limit of each check's `eth_call`.
    pub fn gas(&self) -> u64 {
        self.gas
    }
}

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
    /// Sign-in's share of the node is in use by other checks ([`ContractChecks`]).
    #[error("too many contract-wallet sign-ins are being checked; try again shortly")]
    Busy,
}

/// What a signature is, as far as can be told without the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// A plain signature by the wallet's own key.
    Signed,
    /// Not the wallet's plain signature; only the chain can tell more. `recovered` is the
    /// key a plain signature recovers to, if any.
    AskChain {
        /// The signer of a plain signature.
        recovered: Option<Address>,
    },
}

/// Tells, without the chain, whether `signature` is `signer`'s plain-key signature of
/// `hash`. An ERC-6492 wrapped signature always needs the chain.
pub fn by_key(signer: Address, hash: B256, signature: &[u8]) -> KeyCheck {
    if is_erc6492(signature) {
        return KeyCheck::AskChain { recovered: None };
    }
    let recovered = (signature.len() == 65).then(|| Signature::try_from(signature).ok()).flatten().and_then(|s| s.recover_address_from_prehash(&hash).ok());
    if recovered == Some(signer) { KeyCheck::Signed } else { KeyCheck::AskChain { recovered } }
}

fn is_erc6492(signature: &[u8]) -> bool {
    signature.len() > 32 && signature[signature.len() - 32..] == ERC6492_SUFFIX
}

/// Checks on the chain `provider` reads, with `gas` for each `eth_call`, that `signature`
/// is `signer`'s over `hash`, once [`by_key`] answered [`KeyCheck::AskChain`] with
/// `recovered`. The caller holds a [`CheckPermit`].
pub async fn on_chain(
    provider: &DynProvider,
    gas: u64,
    signer: Address,
    hash: B256,
    signature: &[u8],
    recovered: Option<Address>,
) -> Result<SignerKind, SignatureError> {
    if is_erc6492(signature) {
        return if deployless_check(provider, gas, signer, hash, signature).await? { Ok(SignerKind::Counterfactual) } else { Err(SignatureError::Invalid) };
    }
    let code = provider.get_code_at(signer).await.map_err(SignatureError::Rpc)?;
    if !code.is_empty() {
        let call = IERC1271::isValidSignatureCall { hash, signature: Bytes::copy_from_slice(signature) };
        let request = TransactionRequest::default().with_to(signer).with_input(call.abi_encode()).with_gas_limit(gas);
        // A wallet that reverts, runs out of gas or answers garbage has not approved it.
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
async fn deployless_check(provider: &DynProvider, gas: u64, signer: Address, hash: B256, signature: &[u8]) -> Result<bool, SignatureError> {
    let args = SignatureCheck::constructorCall { signer, hash, signature: Bytes::copy_from_slice(signature) }.abi_encode();
    let mut code = SignatureCheck::BYTECODE.to_vec();
    code.extend_from_slice(&args);
    let request = TransactionRequest::default().with_deploy_code(code).with_gas_limit(gas);
    match provider.call(request).await {
        Ok(out) => Ok(out.as_ref() == [1]),
        Err(alloy::transports::RpcError::ErrorResp(_)) => Ok(false),
        Err(e) => Err(SignatureError::Rpc(e)),
    }
}
