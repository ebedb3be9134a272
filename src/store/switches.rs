//! `plan_switches`: a member's scheduled switch — the plan and token their next renewal
//! buys from the end of the current period (another period of the same tier, or a lower
//! tier). The rules live in [`crate::billing::members`]; this module only records it.

use alloy::primitives::Address;
use sqlx::{AnyConnection, Row};

use super::{Db, StoreError, address_bytes};

/// A scheduled switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSwitch {
    /// The plan the next renewal buys.
    pub plan_id: u32,
    /// The token symbol it is paid in.
    pub token: String,
    /// The period end it takes effect at (the subscription's `expires_at` when it was set).
    pub for_expires_at: u64,
    /// When the member set it.
    pub requested_at: u64,
}

/// Returns `wallet`'s switch as stored, in force or not (see [`PlanSwitch::for_expires_at`]).
pub async fn get(conn: &mut AnyConnection, wallet: Address) -> Result<Option<PlanSwitch>, StoreError> {
    let row = sqlx::query("SELECT plan_id, token, for_expires_at, requested_at FROM plan_switches WHERE wallet = $1")
        .bind(address_bytes(wallet))
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        Ok(PlanSwitch {
            plan_id: u32::try_from(r.try_get::<i64, _>(0)?).map_err(|_| StoreError::Corrupt("plan_switches.plan_id"))?,
            token: r.try_get(1)?,
            for_expires_at: r.try_get::<i64, _>(2)? as u64,
            requested_at: r.try_get::<i64, _>(3)? as u64,
        })
    })
    .transpose()
}

/// [`get`] on a pooled connection.
pub async fn get_in(db: &Db, wallet: Address) -> Result<Option<PlanSwitch>, StoreError> {
    get(&mut *db.pool().acquire().await?, wallet).await
}

/// Sets `wallet`'s switch (replacing one already set) inside the caller's transaction.
pub async fn put(conn: &mut AnyConnection, wallet: Address, switch: &PlanSwitch) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plan_switches (wallet, plan_id, token, for_expires_at, requested_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (wallet) DO UPDATE SET plan_id = excluded.plan_id, token = excluded.token, \
         for_expires_at = excluded.for_expires_at, requested_at = excluded.requested_at",
    )
    .bind(address_bytes(wallet))
    .bind(i64::from(switch.plan_id))
    .bind(&switch.token)
    .bind(switch.for_expires_at as i64)
    .bind(switch.requested_at as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes `wallet`'s switch; returns whether there was one.
pub async fn delete(conn: &mut AnyConnection, wallet: Address) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM plan_switches WHERE wallet = $1").bind(address_bytes(wallet)).execute(&mut *conn).await?;
    Ok(done.rows_affected() > 0)
}
