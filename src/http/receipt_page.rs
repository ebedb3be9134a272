//! The printable page of a receipt or credit note (`GET /v1/receipts/{id}` for a browser):
//! the view [`super::receipts::ReceiptView`] as HTML, every value escaped by the template.

use maud::{DOCTYPE, Markup, html};

use super::receipts::ReceiptView;

/// A unix time as a date (`2026-12-06`), UTC.
fn date(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Text with its newlines as line breaks.
fn lines(text: &str) -> Markup {
    html! { @for (i, line) in text.lines().enumerate() { @if i > 0 { br; } (line) } }
}

/// The printable page of `v` (every value escaped by the template).
pub(super) fn page(v: &ReceiptView) -> Markup {
    let title = if v.kind == "credit_note" { "Credit note" } else { "Receipt" };
    let amount = match (&v.chain, &v.card) {
        (Some(c), _) => format!("{} {}", c.amount_display, c.token_symbol),
        (_, Some(c)) => format!("{}.{:02} {}", c.amount_cents / 100, c.amount_cents % 100, c.currency.to_uppercase()),
        _ => String::new(),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                title { (title) " " (v.number) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                main.doc {
                    header {
                        div {
                            h1 { (title) }
                            p.number { (v.number) }
                            @if v.status == "cancelled" { p.stamp { "Cancelled by credit note" } }
                        }
                        div.merchant {
                            strong { (v.merchant.name.as_deref().unwrap_or("")) }
                            @if let Some(a) = &v.merchant.address { p { (lines(a)) } }
                            @if let Some(t) = &v.merchant.tax_id { p { "Tax id " (t) } }
                        }
                    }
                    section.parties {
                        div {
                            h2 { "Billed to" }
                            @if let Some(n) = &v.buyer.name { p { strong { (n) } } }
                            @if let Some(a) = &v.buyer.address { p { (lines(a)) } }
                            @if let Some(t) = &v.buyer.tax_id { p { "Tax id " (t) } }
                            p.mono { (v.wallet) }
                            @if let Some(c) = &v.customer_ref { p { "Customer " (c) } }
                        }
                        div {
                            h2 { "Issued" }
                            p { (date(v.issued_at)) }
                            @if let Some(r) = &v.credits { p { "Credits receipt " span.mono { (r) } } }
                            @if let Some(r) = &v.reason { p { "Reason: " (r) } }
                        }
                    }
                    table {
                        thead { tr { th { "Description" } th { "Period" } th.num { "Amount" } } }
                        tbody {
                            tr {
                                td { (v.plan_name) " × " (v.periods) }
                                td { (date(v.period_start)) " – " (date(v.period_end)) }
                                td.num { (amount) }
                            }
                        }
                    }
                    @if let Some(usd) = &v.usd_value {
                        p.total { "Value " strong { "$" (usd) } @if let Some(r) = &v.rate_usd { " at " (r) " USD per token (the quote's locked rate)" } }
                    }
                    section.payment {
                        h2 { "Payment" }
                        @if let Some(c) = &v.chain {
                            p { "On chain " (c.chain_id) ", block " (c.block_number) }
                            p.mono { "Transaction " (c.tx_hash) }
                            p.mono { "Token " (c.token) }
                        }
                        @if let Some(c) = &v.card {
                            p { "By card" @if let Some(p) = &c.payment { ", payment " span.mono { (p) } } }
                        }
                    }
                    footer { p.mono { (v.id) } }
                }
            }
        }
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;color:#1c1c28;background:#f3f3f7;margin:0}\
.doc{max-width:760px;margin:32px auto;background:#fff;padding:40px 48px;border-radius:12px;box-shadow:0 2px 14px #0001}\
header{display:flex;justify-content:space-between;gap:24px;border-bottom:2px solid #1c1c28;padding-bottom:16px}\
h1{margin:0;font-size:28px}h2{font-size:12px;text-transform:uppercase;letter-spacing:.08em;color:#667;margin:0 0 6px}\
p{margin:2px 0}.number{font-size:18px;color:#445}.merchant{text-align:right}.stamp{color:#b00020;font-weight:600}\
.parties{display:flex;justify-content:space-between;gap:24px;margin:24px 0}.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}\
table{width:100%;border-collapse:collapse;margin:16px 0}th,td{text-align:left;padding:10px 8px;border-bottom:1px solid #ddd}\
.num{text-align:right}.total{text-align:right;font-size:16px}.payment{margin-top:24px}footer{margin-top:32px;color:#889}\
@media print{body{background:#fff}.doc{box-shadow:none;margin:0}}";
