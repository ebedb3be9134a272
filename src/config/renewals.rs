//! `[renewals]`: automatic renewal by a signed mandate — when the renewer charges, how often
//! it tries again, and the bounds the account page proposes to the member.

use serde::Deserialize;

/// Automatic renewal (the `[renewals]` table); every field has a default. The renewer runs
/// only when `chain.renewer_key` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalSettings {
    /// Days before the end of the period at which the renewer charges.
    pub charge_days_before: u32,
    /// Days before the charge at which the member is told its date and amount, and the
    /// pre-flight checks whether it would fail (`subscription.renewal_upcoming`,
    /// `subscription.renewal_at_risk`).
    pub notice_days_before_charge: u32,
    /// The mandate's early window in days: how long before a period its charge may be
    /// taken on-chain (at least `charge_days_before`, below the period).
    pub early_window_days: u32,
    /// Hours between attempts after a charge failed for a reason that may pass (balance,
    /// allowance, no rate).
    pub retry_hours: u64,
    /// Seconds before trying again when no guarded market rate priced the charge (a rate
    /// outage is usually short; the period must not end waiting a day for it).
    pub rate_retry_secs: u64,
    /// Days after the end of the period during which a failed charge is still tried again;
    /// after them the renewer leaves the period (the plan has ended).
    pub grace_days: u32,
    /// Seconds between the renewer's looks for charges that are due.
    pub interval_secs: u64,
    /// Charges a new mandate allows, as the page proposes it (the member may sign fewer).
    pub default_max_charges: u32,
    /// How far above today's price the proposed cap per charge lies, in percent: room for a
    /// dollar-priced plan's token amount to move before the member must consent again.
    pub cap_headroom_percent: u32,
    /// Seconds after which a sent charge that the chain does not show is sent again (the
    /// contract charges a period at most once, so a second send can never charge twice).
    pub resend_after_secs: u64,
}

impl Default for RenewalSettings {
    fn default() -> Self {
        Self {
            charge_days_before: 3,
            notice_days_before_charge: 3,
            early_window_days: 5,
            retry_hours: 24,
            rate_retry_secs: 300,
            grace_days: 3,
            interval_secs: 30,
            default_max_charges: 12,
            cap_headroom_percent: 25,
            resend_after_secs: 600,
        }
    }
}

impl RenewalSettings {
    /// Checks the settings; the error names the field.
    pub(super) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.early_window_days < self.charge_days_before {
            return Err(("renewals.early_window_days", "must be at least renewals.charge_days_before (the charge must be open on-chain when it is sent)"));
        }
        if self.early_window_days >= 28 {
            return Err(("renewals.early_window_days", "must be below 28 days (shorter than a monthly period)"));
        }
        if self.retry_hours == 0 || self.rate_retry_secs == 0 || self.interval_secs == 0 || self.resend_after_secs == 0 {
            return Err(("renewals", "retry_hours, rate_retry_secs, interval_secs and resend_after_secs must be at least 1"));
        }
        if self.notice_days_before_charge == 0 || self.notice_days_before_charge > 14 {
            return Err(("renewals.notice_days_before_charge", "must be between 1 and 14"));
        }
        if self.grace_days > 27 {
            return Err(("renewals.grace_days", "must be at most 27 days"));
        }
        if !(1..=120).contains(&self.default_max_charges) {
            return Err(("renewals.default_max_charges", "must be between 1 and 120"));
        }
        if self.cap_headroom_percent > 400 {
            return Err(("renewals.cap_headroom_percent", "must be at most 400"));
        }
        Ok(())
    }
}
