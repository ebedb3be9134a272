//! `card_sessions`: the Checkout Sessions the service created at the card processor, with
//! what each was for ([`SessionPurpose`]). [`crate::billing::card`] reads a session back
//! when its `checkout.session.completed` arrives, so a switch from crypto (which starts the
//! card subscription when the paid crypto time ends, and so completes with nothing paid)
//! grants nothing and is not taken for the wallet's one card trial.

use alloy::primitives::Address;
use sqlx::{AnyConnection, Row};

use super::{StoreError, address_bytes, to_address};
use crate::states::text_enum;

text_enum! {
    /// Why the service created a Checkout Session (`card_sessions.purpose`).
    SessionPurpose {
        /// "Pay by card" on the checkout page: paid now, or the plan's free trial.
        Checkout => "checkout",
        /// A member's switch from crypto: the first charge at the end of the paid time.
        Switch => "switch",
    }
}

/// A Checkout Session the service created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSession {
    /// The processor's session id (`cs_…`).
    pub session_id: String,
    /// The member's wallet.
    pub wallet: Address,
    /// The plan it sells.
    pub plan_id: u32,
    /// What it was for.
    pub purpose: SessionPurpose,
    /// A switch: when the card subscription's first charge falls (the end of the paid
    /// crypto time), unix seconds.
    pub trial_end: Option<u64>,
    /// A checkout: the free trial days it offered (0: none).
    pub trial_days: u32,
    /// When it was created.
    pub created_at: u64,
}

/// Records `session` (a replay of the same id keeps the first record).
pub async fn record(conn: &mut AnyConnection, session: &CardSession) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO card_sessions (session_id, wallet, plan_id, purpose, trial_end, trial_days, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id) DO NOTHING",
    )
    .bind(&session.session_id)
    .bind(address_bytes(session.wallet))
    .bind(i64::from(session.plan_id))
    .bind(session.purpose.as_str())
    .bind(session.trial_end.map(|t| t as i64))
    .bind(i64::from(session.trial_days))
    .bind(session.created_at as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Loads session `session_id`, if the service created it.
pub async fn find(conn: &mut AnyConnection, session_id: &str) -> Result<Option<CardSession>, StoreError> {
    let row = sqlx::query("SELECT session_id, wallet, plan_id, purpose, trial_end, trial_days, created_at FROM card_sessions WHERE session_id = $1")
        .bind(session_id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(CardSession {
        session_id: row.try_get("session_id")?,
        wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "card_sessions.wallet")?,
        plan_id: row.try_get::<i64, _>("plan_id")? as u32,
        purpose: row.try_get::<String, _>("purpose")?.parse().map_err(|_| StoreError::Corrupt("card_sessions.purpose"))?,
        trial_end: row.try_get::<Option<i64>, _>("trial_end")?.map(|t| t as u64),
        trial_days: row.try_get::<i64, _>("trial_days")? as u32,
        created_at: row.try_get::<i64, _>("created_at")? as u64,
    }))
}
