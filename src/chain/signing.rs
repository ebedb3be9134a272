//! EIP-712 signatures the chain code needs: the service's checkout quotes and, for tests,
//! benchmarks and scripted payers, EIP-2612 token permits.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    signers::{Signer, local::PrivateKeySigner},
    sol,
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use super::bindings::ISubscriptionCheckout::Quote;

sol! {
    /// EIP-2612 `Permit`, as OpenZeppelin's ERC20Permit hashes it.
    #[derive(Debug)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

/// Returns the EIP-712 domain of the `SubscriptionCheckout` at `checkout` on `chain_id`.
pub fn quote_domain(chain_id: u64, checkout: Address) -> Eip712Domain {
    eip712_domain! {
        name: "TMAI Checkout",
        version: "1",
        chain_id: chain_id,
        verifying_contract: checkout,
    }
}

/// Returns the digest the checkout contract recovers the quote signer from.
pub fn quote_digest(quote: &Quote, domain: &Eip712Domain) -> B256 {
    quote.eip712_signing_hash(domain)
}

/// Signs `quote` for the checkout `domain`; returns the 65-byte signature `pay` takes.
pub async fn sign_quote(
    signer: &PrivateKeySigner,
    quote: &Quote,
    domain: &Eip712Domain,
) -> Result<Bytes, alloy::signers::Error> {
    let signature = signer.sign_hash(&quote_digest(quote, domain)).await?;
    Ok(Bytes::from(signature.as_bytes().to_vec()))
}

/// An EIP-2612 permit signature split as `permit(…, v, r, s)` takes it.
#[derive(Debug, Clone, Copy)]
pub struct PermitSignature {
    /// Recovery id, 27 or 28.
    pub v: u8,
    /// Signature `r`.
    pub r: B256,
    /// Signature `s`.
    pub s: B256,
}

/// What a permit allows and on which token.
#[derive(Debug, Clone)]
pub struct PermitRequest {
    /// Token name (its EIP-712 domain name).
    pub token_name: String,
    /// Token contract.
    pub token: Address,
    /// Chain id.
    pub chain_id: u64,
    /// Account allowed to spend.
    pub spender: Address,
    /// Allowance granted.
    pub value: U256,
    /// The owner's current permit nonce.
    pub nonce: U256,
    /// Unix time after which the permit is void.
    pub deadline: U256,
}

/// Signs an EIP-2612 permit from `owner` for `request`.
pub async fn sign_permit(
    owner: &PrivateKeySigner,
    request: &PermitRequest,
) -> Result<PermitSignature, alloy::signers::Error> {
    let domain = eip712_domain! {
        name: request.token_name.clone(),
        version: "1",
        chain_id: request.chain_id,
        verifying_contract: request.token,
    };
    let permit = Permit {
        owner: owner.address(),
        spender: request.spender,
        value: request.value,
        nonce: request.nonce,
        deadline: request.deadline,
    };
    let signature = owner.sign_hash(&permit.eip712_signing_hash(&domain)).await?;
    Ok(PermitSignature {
        v: 27 + u8::from(signature.v()),
        r: signature.r().into(),
        s: signature.s().into(),
    })
}
