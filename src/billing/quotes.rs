//! Issuing quotes: an order with the next order id, the amount for plan × token × periods,
//! an EIP-712 signature by the quote signer, and its expiry, stored in one transaction with
//! the `checkout.created` event (a transaction shared by the checkouts of that moment:
//! [`crate::store::orders`]).

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::local::PrivateKeySigner,
};
use serde::Serialize;

use super::plans::Catalog;
use crate::{
    chain::{
        bindings::ISubscriptionCheckout::Quote,
        signing::{DigestSigner, QuoteHasher, quote_domain},
    },
    events::EventType,
    ids::{CheckoutId, OrderId},
    store::{
        Db, StoreError, address_bytes,
        orders::{self, NewOrder},
        outbox::{self, NewEvent},
        u256_bytes,
    },
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
    pub checkout_id: CheckoutId,
    /// Order id (on-chain `Quote.orderId`).
    pub order_id: OrderId,
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

/// Why a quote was refused; each is bad input except [`QuoteError::Store`].
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
}

impl From<sqlx::Error> for QuoteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

/// The `data` of `checkout.created` (fields sorted, as the stored JSON has always had them).
#[derive(Serialize)]
struct CreatedData<'a> {
    amount: String,
    checkout_id: &'a CheckoutId,
    expires_at: u64,
    order_id: OrderId,
    payer: Address,
    periods: u32,
    plan_id: u32,
    token: Address,
}

/// Signs quotes for one checkout contract.
#[derive(Debug, Clone)]
pub struct QuoteIssuer {
    signer_address: Address,
    digests: DigestSigner,
    hasher: QuoteHasher,
    chain_id: u64,
    checkout: Address,
    ttl_secs: u64,
}

impl QuoteIssuer {
    /// Returns an issuer signing with `signer` for `checkout` on `chain_id`.
    pub fn new(signer: PrivateKeySigner, chain_id: u64, checkout: Address, ttl_secs: u64) -> Self {
        Self {
            hasher: QuoteHasher::new(&quote_domain(chain_id, checkout)),
            digests: DigestSigner::new(&signer),
            signer_address: signer.address(),
            chain_id,
            checkout,
            ttl_secs,
        }
    }

    /// Returns the signer's address (must be the checkout's quote signer).
    pub fn signer_address(&self) -> Address {
        self.signer_address
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
        let amount = plan.price(token.address, request.periods).ok_or_else(|| QuoteError::NotSoldInToken { plan: plan.id, token: token.symbol.clone() })?;
        let deadline = now + self.ttl_secs;

        let order_id = orders::next_id(db).await?;
        let checkout_id = CheckoutId::new(order_id);
        let quote =
            Quote { orderId: order_id.as_u256(), payer: request.payer, token: token.address, amount, planId: plan.id, periods: request.periods, deadline };
        // Signed before anything is written, outside any transaction: checkouts sign in
        // parallel and only share the commit (store::orders). The quote leaves this
        // function only once its order is stored.
        let signature = self.digests.sign_hashed(&quote, &self.hasher);
        let issued = IssuedQuote {
            checkout_id: checkout_id.clone(),
            order_id,
            quote,
            signature: signature.clone(),
            checkout: self.checkout,
            chain_id: self.chain_id,
            amount,
            token: token.address,
            expires_at: deadline,
        };
        let event = NewEvent::new(
            outbox::ordered_event_id(order_id.sort_key(), &[EventType::CheckoutCreated.as_str(), checkout_id.as_str()]),
            EventType::CheckoutCreated,
            &CreatedData {
                amount: amount.to_string(),
                checkout_id: &checkout_id,
                expires_at: deadline,
                order_id,
                payer: request.payer,
                periods: request.periods,
                plan_id: plan.id,
                token: token.address,
            },
        );
        orders::insert_order(
            db,
            NewOrder {
                order_id,
                checkout_id: checkout_id.clone(),
                chain_id: self.chain_id as i64,
                payer: address_bytes(request.payer),
                token: address_bytes(token.address),
                amount: u256_bytes(amount),
                plan_id: i64::from(plan.id),
                periods: i64::from(request.periods),
                deadline: deadline as i64,
                signature: signature.to_vec(),
                created_at: now as i64,
                event,
            },
        )
        .await?;
        Ok(issued)
    }
}
