//! Issuing quotes: an order with the next order id, the amount for plan × token × periods,
//! an EIP-712 signature by the quote signer, and its expiry, stored in one transaction with
//! the `checkout.created` event.

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use rand::Rng;
use serde::Serialize;
use sqlx::Row;

use super::plans::Catalog;
use crate::{
    chain::{
        bindings::ISubscriptionCheckout::Quote,
        signing::{quote_domain, sign_quote},
    },
    store::{Db, StoreError, address_bytes, outbox, u256_bytes},
};

/// Longest purchase in one checkout, in periods.
pub const MAX_PERIODS: u32 = 36;

/// What a subscriber asks to buy.
#[derive(Debug, Clone)]
pub struct QuoteRequest {
    /// Plan id.
    pub plan_id: u32,
    /// Token symbol (`TMAI`, `USD`).
    pub token: String,
    /// The wallet that will pay (and receive the plan).
    pub payer: Address,
    /// Number of billing periods.
    pub periods: u32,
}

/// A stored, signed quote, ready for the wallet.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedQuote {
    /// Public checkout id (unguessable).
    pub checkout_id: String,
    /// Order id (on-chain `Quote.orderId`).
    pub order_id: u64,
    /// The EIP-712 quote.
    #[serde(skip)]
    pub quote: Quote,
    /// The quote signer's signature.
    pub signature: Bytes,
    /// Checkout contract.
    pub checkout: Address,
    /// Chain id.
    pub chain_id: u64,
    /// Amount in the token's smallest unit.
    pub amount: U256,
    /// Token address.
    pub token: Address,
    /// Unix time after which the quote cannot be paid.
    pub expires_at: u64,
}

/// Why a quote was refused; each is bad input except [`QuoteError::Store`] and
/// [`QuoteError::Sign`].
#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    /// No plan with that id.
    #[error("unknown plan {0}")]
    UnknownPlan(u32),
    /// The token is not one the checkout takes.
    #[error("unsupported token {0:?}")]
    UnsupportedToken(String),
    /// The plan has no price in that token.
    #[error("plan {plan} is not sold in {token}")]
    NotSoldInToken {
        /// Plan id.
        plan: u32,
        /// Token symbol.
        token: String,
    },
    /// Periods out of range.
    #[error("periods must be between 1 and {MAX_PERIODS}")]
    BadPeriods,
    /// The payer is the zero address.
    #[error("payer must not be the zero address")]
    ZeroPayer,
    /// Storing the order failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("signing the quote failed: {0}")]
    Sign(String),
}

impl From<sqlx::Error> for QuoteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

/// Signs quotes for one checkout contract.
#[derive(Debug, Clone)]
pub struct QuoteIssuer {
    signer: PrivateKeySigner,
    domain: Eip712Domain,
    chain_id: u64,
    checkout: Address,
    ttl_secs: u64,
}

impl QuoteIssuer {
    /// Returns an issuer signing with `signer` for `checkout` on `chain_id`.
    pub fn new(signer: PrivateKeySigner, chain_id: u64, checkout: Address, ttl_secs: u64) -> Self {
        Self { domain: quote_domain(chain_id, checkout), signer, chain_id, checkout, ttl_secs }
    }

    /// Returns the signer's address (must be the checkout's quote signer).
    pub fn signer_address(&self) -> Address {
        self.signer.address()
    }

    /// Validates `request`, stores the order and returns the signed quote.
    pub async fn issue(&self, db: &Db, catalog: &Catalog, request: &QuoteRequest, now: u64) -> Result<IssuedQuote, QuoteError> {
        let plan = catalog.get(request.plan_id).ok_or(QuoteError::UnknownPlan(request.plan_id))?;
        let token = catalog.token(&request.token).ok_or_else(|| QuoteError::UnsupportedToken(request.token.clone()))?;
        if request.periods == 0 || request.periods > MAX_PERIODS {
            return Err(QuoteError::BadPeriods);
        }
        if request.payer == Address::ZERO {
            return Err(QuoteError::ZeroPayer);
        }
        let amount = plan
            .price(token.address, request.periods)
            .ok_or_else(|| QuoteError::NotSoldInToken { plan: plan.id, token: token.symbol.clone() })?;
        let deadline = now + self.ttl_secs;
        let checkout_id = new_checkout_id();

        let mut tx = db.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO orders (checkout_id, chain_id, payer, token, amount, plan_id, periods, deadline, signature, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING order_id",
        )
        .bind(&checkout_id)
        .bind(self.chain_id as i64)
        .bind(address_bytes(request.payer))
        .bind(address_bytes(token.address))
        .bind(u256_bytes(amount))
        .bind(i64::from(plan.id))
        .bind(i64::from(request.periods))
        .bind(deadline as i64)
        .bind(Vec::<u8>::new())
        .bind(now as i64)
        .fetch_one(&mut *tx)
        .await?;
        let order_id: i64 = row.try_get("order_id")?;
        let quote = Quote {
            orderId: U256::from(order_id as u64),
            payer: request.payer,
            token: token.address,
            amount,
            planId: plan.id,
            periods: request.periods,
            deadline,
        };
        let signature = sign_quote(&self.signer, &quote, &self.domain).await.map_err(|e| QuoteError::Sign(e.to_string()))?;
        sqlx::query("UPDATE orders SET signature = $1 WHERE order_id = $2")
            .bind(signature.to_vec())
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        let issued = IssuedQuote {
            checkout_id,
            order_id: order_id as u64,
            quote,
            signature,
            checkout: self.checkout,
            chain_id: self.chain_id,
            amount,
            token: token.address,
            expires_at: deadline,
        };
        let payload = serde_json::json!({
            "checkout_id": issued.checkout_id,
            "order_id": issued.order_id.to_string(),
            "payer": request.payer,
            "plan_id": plan.id,
            "token": token.address,
            "amount": amount.to_string(),
            "periods": request.periods,
            "expires_at": deadline,
        });
        outbox::write(&mut tx, &outbox::event_id(&["checkout.created", &issued.checkout_id]), "checkout.created", &payload)
            .await?;
        tx.commit().await?;
        Ok(issued)
    }
}

/// Returns a new public checkout id: `chk_` and 32 random hex digits.
fn new_checkout_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("chk_{}", alloy::hex::encode(bytes))
}
