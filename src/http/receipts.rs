//! Receipts and credit notes ([`crate::billing::receipts`] has the rules):
//! `GET /v1/receipts/{id}` as JSON or, for a browser (`Accept: text/html`), as a printable
//! page; `GET /v1/me/receipts`, the member's own; `PUT /v1/receipts/{id}/buyer`, the
//! member's name, address and tax id on a receipt.
//!
//! A receipt is the merchant's (API key) and its member's (membership token or the account
//! session); anyone else gets the same 404 as for a receipt that does not exist, so ids
//! cannot be probed.

use alloy::primitives::Address;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{Html, IntoResponse, Response},
    routing::{get, put},
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
};
use crate::{
    billing::receipts::{display_number, receipt_url},
    config::MerchantSettings,
    money::{TokenAmount, Usd},
    store::receipts::{self, BuyerDetails, DocumentKind, PaidWith, Receipt},
};

/// Longest buyer detail accepted, in characters.
const MAX_DETAIL: usize = 200;

/// Who asks for a receipt.
enum Reader {
    /// The merchant (a live API key).
    Merchant,
    /// A signed-in member.
    Member(Address),
}

/// The reader of a request: a live API key, else a membership token or session; 401
/// without either.
async fn reader(state: &AppState, headers: &HeaderMap) -> Result<Reader, ApiError> {
    if let Some(key) = super::keys::bearer(headers)
        && receipts_key(state, key).await?
    {
        return Ok(Reader::Merchant);
    }
    Ok(Reader::Member(super::auth::signed_in_wallet(state, headers).await?))
}

/// Whether `key` is a live API key (a membership token never is).
async fn receipts_key(state: &AppState, key: &str) -> Result<bool, ApiError> {
    Ok(key.starts_with("tmai_sk_") && super::keys::verify(&state.db, key).await?.is_some())
}

fn not_found() -> ApiError {
    ApiError::not_found("no such receipt (or not yours)")
}

/// The merchant, as a document shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantView {
    /// Name (`merchant.name`).
    pub name: Option<String>,
    /// Postal address, lines separated by newlines (`merchant.address`).
    pub address: Option<String>,
    /// Tax id (`merchant.tax_id`).
    pub tax_id: Option<String>,
}

/// The buyer's own details, as a document shows them (each null when not given).
#[derive(Debug, Serialize, ToSchema)]
pub struct BuyerView {
    /// Name or company.
    pub name: Option<String>,
    /// Postal address (newlines allowed).
    pub address: Option<String>,
    /// Tax id (VAT number and the like).
    pub tax_id: Option<String>,
}

/// A buyer detail's text: up to 200 characters, no control characters but newlines, at
/// least one that is not a space (what [`detail`] checks).
const DETAIL_PATTERN: &str = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*$";

/// The buyer details a member adds: at least one of them. Its schema is written out below
/// (the derive cannot say `minProperties`), with [`DETAIL_PATTERN`] for each field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyerRequest {
    /// Name or company.
    #[serde(default, deserialize_with = "text_if_present")]
    pub name: Option<String>,
    /// Postal address (newlines allowed).
    #[serde(default, deserialize_with = "text_if_present")]
    pub address: Option<String>,
    /// Tax id (VAT number and the like).
    #[serde(default, deserialize_with = "text_if_present")]
    pub tax_id: Option<String>,
}

/// A detail is text when present: `null` is refused like any other non-string (the schema
/// says string; leave the field out to leave it as it is).
fn text_if_present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    <String as Deserialize>::deserialize(deserializer).map(Some)
}

impl utoipa::PartialSchema for BuyerRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let text = |description: &str| {
            ObjectBuilder::new().schema_type(Type::String).max_length(Some(MAX_DETAIL)).pattern(Some(DETAIL_PATTERN)).description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The buyer details a member adds: at least one of them."))
            .property("name", text("Name or company."))
            .property("address", text("Postal address (newlines allowed)."))
            .property("tax_id", text("Tax id (VAT number and the like)."))
            .min_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for BuyerRequest {}

/// An on-chain payment on a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainPaymentView {
    /// Chain id.
    pub chain_id: u64,
    /// The payment's transaction.
    #[schema(pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: String,
    /// Its block.
    pub block_number: u64,
    /// Token paid in.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: String,
    /// Its symbol.
    pub token_symbol: String,
    /// Amount, in the token's smallest unit (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub amount: String,
    /// Amount in whole tokens (`"16072.5"`).
    pub amount_display: String,
}

/// A card payment on a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardPaymentView {
    /// The processor's payment (payment intent, invoice or charge id).
    pub payment: Option<String>,
    /// Amount, in cents (a credit note: the cents credited).
    pub amount_cents: u64,
    /// Currency, ISO 4217 lower case.
    pub currency: String,
}

/// A receipt or credit note.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptView {
    /// Its id.
    pub id: String,
    /// Its number as printed (`R-000042`, `CN-000043`).
    pub number: String,
    /// Its place in the merchant's one gap-free sequence of receipts and credit notes.
    pub sequence: u64,
    /// `receipt` or `credit_note`.
    #[schema(pattern = "^(receipt|credit_note)$")]
    pub kind: String,
    /// A receipt: `issued`, or `cancelled` once credit notes credit all of it.
    pub status: String,
    /// A credit note: the receipt it credits.
    pub credits: Option<String>,
    /// A credit note: why (`reorged`: the chain dropped the payment; `refunded`).
    pub reason: Option<String>,
    /// A receipt: the credit note that cancelled it.
    pub cancelled_by: Option<String>,
    /// The merchant (from the configuration).
    pub merchant: MerchantView,
    /// The member's wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: String,
    /// The merchant's customer the payment belongs to.
    pub customer_ref: Option<String>,
    /// The buyer's own details, when added.
    pub buyer: BuyerView,
    /// Plan bought.
    pub plan_id: u32,
    /// Its name.
    pub plan_name: String,
    /// Periods bought.
    pub periods: u32,
    /// Unix time the period covered starts.
    pub period_start: u64,
    /// Unix time it ends.
    pub period_end: u64,
    /// `chain` or `card`.
    pub method: String,
    /// The on-chain payment.
    pub chain: Option<ChainPaymentView>,
    /// The card payment.
    pub card: Option<CardPaymentView>,
    /// Value in US dollars (at the quote's locked rate for a dollar-priced on-chain order;
    /// card payments in USD).
    pub usd_value: Option<String>,
    /// The locked rate, USD per whole token.
    pub rate_usd: Option<String>,
    /// Unix time issued.
    pub issued_at: u64,
    /// Where it is served.
    pub url: String,
}

impl ReceiptView {
    pub(crate) fn of(r: &Receipt, merchant: &MerchantSettings, base: &str) -> Self {
        let i = &r.issued;
        let (chain, card) = match &i.paid_with {
            PaidWith::Chain { chain_id, tx_hash, block_number, token, symbol, decimals, amount, .. } => (
                Some(ChainPaymentView {
                    chain_id: *chain_id,
                    tx_hash: tx_hash.to_string(),
                    block_number: *block_number,
                    token: token.to_string(),
                    token_symbol: symbol.clone(),
                    amount: amount.to_string(),
                    amount_display: TokenAmount::new(*amount, *decimals).to_string(),
                }),
                None,
            ),
            PaidWith::Card { payment, cents, currency, .. } => {
                (None, Some(CardPaymentView { payment: payment.clone(), amount_cents: *cents, currency: currency.clone() }))
            }
        };
        Self {
            id: r.id.clone(),
            number: display_number(r.kind, r.number),
            sequence: r.number,
            kind: r.kind.as_str().into(),
            status: if r.cancelled_by.is_some() { "cancelled" } else { "issued" }.into(),
            credits: r.credits.clone(),
            reason: r.reason.clone(),
            cancelled_by: r.cancelled_by.clone(),
            merchant: MerchantView { name: merchant.name.clone(), address: merchant.address.clone(), tax_id: merchant.tax_id.clone() },
            wallet: i.wallet.to_string(),
            customer_ref: i.customer_ref.clone(),
            buyer: BuyerView { name: r.buyer.name.clone(), address: r.buyer.address.clone(), tax_id: r.buyer.tax_id.clone() },
            plan_id: i.plan_id,
            plan_name: i.plan_name.clone(),
            periods: i.periods,
            period_start: i.period_start,
            period_end: i.period_end,
            method: if chain.is_some() { "chain" } else { "card" }.into(),
            chain,
            card,
            usd_value: i.usd_micro.and_then(|m| Usd::from_micro(m as u64)).map(|u| u.to_string()),
            rate_usd: i.rate_usd.clone(),
            issued_at: r.issued_at,
            url: receipt_url(base, &r.id),
        }
    }
}

/// Reads receipt `id` for `reader`: the merchant sees every one, a member their own.
async fn readable(state: &AppState, headers: &HeaderMap, id: &str) -> Result<Receipt, ApiError> {
    let reader = reader(state, headers).await?;
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(not_found());
    }
    let receipt = receipts::get(&state.db, id).await?.ok_or_else(not_found)?;
    match reader {
        Reader::Merchant => Ok(receipt),
        Reader::Member(wallet) if wallet == receipt.issued.wallet => Ok(receipt),
        Reader::Member(_) => Err(not_found()),
    }
}

/// Whether the request prefers a page to JSON (a browser's `Accept`).
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.contains("text/html") && !accept.starts_with("application/json")
}

/// Answers a receipt or credit note: JSON, or the printable page when the request
/// accepts `text/html` first (a browser opening the link).
#[utoipa::path(get, path = "/v1/receipts/{id}", tag = "public", security(("api_key" = []), ("membership_token" = [])),
    params(("id" = String, Path, description = "Receipt or credit note id (`rcpt_…`, `cn_…`)")),
    responses(
        (status = 200, description = "The document as JSON, or its printable page when the request accepts `text/html` first",
            content((ReceiptView = "application/json"), (String = "text/html"))),
        (status = 401, body = ErrorBody, description = "Neither an API key nor a membership token or account session"),
        (status = 404, body = ErrorBody, description = "No such receipt, or another wallet's"), (status = 429, body = ErrorBody),
))]
pub async fn receipt(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let receipt = readable(&state, &headers, &id).await?;
    let view = ReceiptView::of(&receipt, &state.merchant, state.http.public_url());
    let cache = [(header::CACHE_CONTROL, "private, no-store")];
    if wants_html(&headers) {
        Ok((cache, Html(super::receipt_page::page(&view).into_string())).into_response())
    } else {
        Ok((cache, Json(view)).into_response())
    }
}

/// The member's receipts and credit notes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptList {
    /// Newest first (at most 100).
    pub receipts: Vec<ReceiptView>,
}

/// Answers the signed-in member's receipts and credit notes, newest first.
#[utoipa::path(get, path = "/v1/me/receipts", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = ReceiptList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "Sign-in is not configured"),
    (status = 429, body = ErrorBody),
))]
pub async fn my_receipts(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::signed_in_wallet(&state, &headers).await?;
    let list = receipts::of_wallet(&state.db, wallet, 100).await?;
    let base = state.http.public_url();
    let receipts = list.iter().map(|r| ReceiptView::of(r, &state.merchant, base)).collect();
    Ok(([(header::CACHE_CONTROL, "private, no-store")], Json(ReceiptList { receipts })).into_response())
}

/// Checks one buyer detail against [`DETAIL_PATTERN`] (the schema's own pattern) and
/// [`MAX_DETAIL`]; returns it with the spaces around it trimmed.
fn detail(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(DETAIL_PATTERN).expect("the pattern compiles"));
    let Some(text) = value else { return Ok(None) };
    if text.chars().count() > MAX_DETAIL {
        return Err(ApiError::invalid(format!("{field} is longer than {MAX_DETAIL} characters")));
    }
    if !PATTERN.is_match(&text) {
        return Err(ApiError::invalid(format!("{field} is blank or holds control characters (only newlines are allowed)")));
    }
    Ok(Some(text.trim_matches(|c: char| c <= ' ').to_string()))
}

/// Adds the buyer's name, address and tax id to one of the member's receipts that has
/// none yet (a receipt, once it names a buyer, does not change), and keeps them for the
/// member's next receipts. With the session cookie the request must come from an allowed
/// origin with the session's `X-CSRF-Token`.
#[utoipa::path(put, path = "/v1/receipts/{id}/buyer", tag = "public", security(("membership_token" = [])),
    params(("id" = String, Path, description = "Receipt id (`rcpt_…`)")), request_body = BuyerRequest,
    responses(
        (status = 200, body = ReceiptView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
        (status = 404, body = ErrorBody, description = "No such receipt, or another wallet's"),
        (status = 409, body = ErrorBody, description = "The receipt names a buyer already, or is a credit note"), (status = 429, body = ErrorBody),
))]
pub async fn add_buyer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BuyerRequest>,
) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let buyer = BuyerDetails { name: detail("name", body.name)?, address: detail("address", body.address)?, tax_id: detail("tax_id", body.tax_id)? };
    if buyer.is_empty() {
        return Err(ApiError::invalid("give at least one of name, address, tax_id"));
    }
    let receipt = readable(&state, &headers, &id).await?;
    if receipt.issued.wallet != wallet {
        return Err(not_found());
    }
    if receipt.kind != DocumentKind::Receipt || !receipt.buyer.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "receipt_fixed",
            "this document already names its buyer (or is a credit note): an issued receipt does not change",
        ));
    }
    if !receipts::add_buyer(&state.db, &id, wallet, &buyer, state.clock.now()).await? {
        return Err(ApiError::new(axum::http::StatusCode::CONFLICT, "receipt_fixed", "this receipt already names its buyer"));
    }
    let stored = receipts::get(&state.db, &id).await?.ok_or_else(not_found)?;
    Ok(Json(ReceiptView::of(&stored, &state.merchant, state.http.public_url())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's pattern for each buyer detail is the one the handler checks.
    #[test]
    fn the_documented_buyer_pattern_is_the_checked_one() {
        let schema = serde_json::to_value(<BuyerRequest as utoipa::PartialSchema>::schema()).unwrap();
        for field in ["name", "address", "tax_id"] {
            assert_eq!(schema["properties"][field]["pattern"], DETAIL_PATTERN, "{field}");
        }
        assert_eq!(schema["minProperties"], 1);
        for (text, ok) in [("Ada", true), ("  Ada  ", true), ("1 Road\nTown", true), ("   ", false), ("", false), ("Ada\u{7}", false), ("\u{85}", false)] {
            assert_eq!(detail("name", Some(text.into())).is_ok(), ok, "{text:?}");
        }
        assert_eq!(detail("name", Some(" Ada ".into())).unwrap().as_deref(), Some("Ada"));
    }
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/receipts/{id}", get(receipt)).route("/v1/receipts/{id}/buyer", put(add_buyer)).route("/v1/me/receipts", get(my_receipts))
}

/// The receipt routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(receipt, my_receipts, add_buyer))]
pub(super) struct Api;
