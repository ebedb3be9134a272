//! Issuing quotes: an order with the next order id, the amount for plan × token × periods,
//! an EIP-712 signature by the quote signer, and its expiry, stored in one transaction with
//! the `checkout.created` event (a transaction shared by the checkouts of that moment:
//! [`crate::store::orders`]).

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::local::PrivateKeySigner,
};
use serde::Serialize;

use super::{
    customers::CustomerRef,
    plans::{Catalog, Plan},
    rates::{RateBook, RateUnavailable, RefusalCode},
};
use crate::chain::deployment::TokenInfo;
use crate::{
    chain::{
        bindings::ISubscriptionCheckout::Quote,
        signing::{DigestSigner, QuoteHasher, quote_domain},
    },
    events::{CheckoutCreated, EventType},
    ids::{CheckoutId, OrderId},
    money::{Discount, TokenAmount, Usd, UsdRate},
    store::{
        Db, StoreError, address_bytes,
        orders::{self, NewOrder, OrderPricing},
        outbox::{self, NewEvent},
        u256_bytes,
    },
};

/// Returns the id of the `checkout.created` event of `order_id`'s checkout: stable, so the
/// pruning of unpaid checkouts ([`super::retention`]) finds the event of an order it deletes.
pub fn checkout_created_id(order_id: OrderId, checkout_id: &CheckoutId) -> String {
    outbox::ordered_event_id(order_id.sort_key(), &[EventType::CheckoutCreated.as_str(), checkout_id.as_str()])
}

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
    /// The market rate the amount was priced at, for a plan priced in dollars.
    pub pricing: Option<QuotePricing>,
}

/// How a USD-priced quote was priced: locked with the order for the quote's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotePricing {
    /// The plan's USD price for the periods bought, after discount (rounded up).
    pub price_usd: Usd,
    /// The USD value of the quoted amount at the rate (≥ the price: the amount is rounded
    /// up, its value down).
    pub usd_value: Usd,
    /// The discount taken off the USD price.
    pub discount: Discount,
    /// USD per whole token.
    pub rate: UsdRate,
    /// The rate's source.
    pub source: &'static str,
    /// Unix time the rate was read.
    pub rate_at: u64,
    /// Whether the rate moves with a market: the quote then lives
    /// `pricing.market_quote_ttl_secs` at most.
    #[serde(skip)]
    pub market: bool,
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
    /// The token's market rate cannot be used now (503 `rate_unavailable`).
    #[error(transparent)]
    RateUnavailable(#[from] RateUnavailable),
    /// Storing the order failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for QuoteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
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
    rates: Option<std::sync::Arc<RateBook>>,
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
            rates: None,
        }
    }

    /// Returns the issuer pricing USD plans from `rates`.
    pub fn with_rates(mut self, rates: std::sync::Arc<RateBook>) -> Self {
        self.rates = Some(rates);
        self
    }

    /// Returns the amount `periods` of `plan` cost in `token` ([`price_plan`]).
    pub fn price(&self, plan: &Plan, token: &TokenInfo, periods: u32) -> Result<(TokenAmount, Option<QuotePricing>), QuoteError> {
        price_plan(self.rates.as_deref(), plan, token, periods)
    }

    /// Returns the signer's address (must be the checkout's quote signer).
    pub fn signer_address(&self) -> Address {
        self.signer_address
    }

    /// Validates `request`, stores the order and returns the signed quote.
    pub async fn issue(&self, db: &Db, catalog: &Catalog, request: &QuoteRequest, now: u64) -> Result<IssuedQuote, QuoteError> {
        self.issue_for(db, catalog, request, None, now).await
    }

    /// [`Self::issue`] for the merchant's `customer` (checked by the caller: the reference
    /// is stored with the order and carried into every event the checkout causes).
    pub async fn issue_for(
        &self,
        db: &Db,
        catalog: &Catalog,
        request: &QuoteRequest,
        customer: Option<CustomerRef>,
        now: u64,
    ) -> Result<IssuedQuote, QuoteError> {
        let plan = catalog.get(request.plan_id).ok_or(QuoteError::UnknownPlan(request.plan_id))?;
        let token = catalog.token(&request.token).ok_or_else(|| QuoteError::UnsupportedToken(request.token.clone()))?;
        if request.periods == 0 || request.periods > MAX_PERIODS {
            return Err(QuoteError::BadPeriods);
        }
        if request.payer == Address::ZERO {
            return Err(QuoteError::ZeroPayer);
        }
        let (amount, priced) = self.price(plan, token, request.periods)?;
        let amount = amount.units();
        // A market rate moves while the quote is open: its quote lives shorter than a fixed
        // price's, just long enough to approve, swap and pay.
        let ttl = match (priced, &self.rates) {
            (Some(p), Some(rates)) if p.market => self.ttl_secs.min(rates.settings().market_quote_ttl_secs),
            _ => self.ttl_secs,
        };
        let deadline = now + ttl;

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
            pricing: priced,
        };
        let event = NewEvent::for_customer(
            checkout_created_id(order_id, &checkout_id),
            CheckoutCreated {
                amount: amount.to_string(),
                checkout_id: checkout_id.clone(),
                expires_at: deadline,
                order_id,
                payer: request.payer,
                periods: request.periods,
                plan_id: plan.id,
                rate_source: priced.map(|p| p.source),
                rate_usd: priced.map(|p| p.rate.to_decimal()),
                token: token.address,
                usd_value: priced.map(|p| p.usd_value.to_string()),
            },
            customer.as_ref(),
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
                pricing: priced.map(|p| OrderPricing { usd_value: p.usd_value, rate: p.rate, rate_source: p.source.to_string(), rate_at: p.rate_at }),
                customer_ref: customer,
                event,
            },
        )
        .await?;
        Ok(issued)
    }
}

/// Returns the amount `periods` of `plan` cost in `token`: its explicit token price, or
/// its USD price at the token's cached market rate in `rates` (with the pricing used),
/// rounded up to the configured significant digits (never below the discounted price).
pub fn price_plan(rates: Option<&RateBook>, plan: &Plan, token: &TokenInfo, periods: u32) -> Result<(TokenAmount, Option<QuotePricing>), QuoteError> {
    let out_of_range = || RateUnavailable::new(&token.symbol, RefusalCode::AmountOutOfRange, "");
    if let Some(price) = plan.prices.get(&token.address) {
        return Ok((price.checked_mul(periods).ok_or_else(out_of_range)?, None));
    }
    let not_sold = || QuoteError::NotSoldInToken { plan: plan.id, token: token.symbol.clone() };
    let (Some(usd), Some(rates)) = (plan.price_usd, rates) else { return Err(not_sold()) };
    if !rates.prices(token.address) {
        return Err(not_sold());
    }
    let reading = rates.current(token.address)?;
    let settings = rates.settings();
    let discount = if token.symbol.eq_ignore_ascii_case(&settings.discount_token) { plan.tmai_discount.unwrap_or(Discount::NONE) } else { Discount::NONE };
    let total = usd.checked_mul(periods).ok_or_else(out_of_range)?;
    let amount = TokenAmount::owed(total, discount, reading.rate, token.decimals)
        .and_then(|a| a.round_up_significant(settings.significant_digits))
        .ok_or_else(out_of_range)?;
    Ok((
        amount,
        Some(QuotePricing {
            price_usd: total.less(discount),
            usd_value: amount.usd_value(reading.rate).ok_or_else(out_of_range)?,
            discount,
            rate: reading.rate,
            source: reading.source,
            rate_at: reading.read_at,
            market: reading.market,
        }),
    ))
}
