//! The service's clock. Production reads the system time; tests move a shared offset to
//! live through days of retries, reminders and trials in seconds. Every part that makes a
//! decision by time (webhook schedules, reminders, card signatures and trials, member
//! management) takes a [`Clock`]; clones share the offset.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

/// The system time plus a shared offset (zero outside tests).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Returns the time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let system = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        system + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Returns the time in unix seconds.
    pub fn now(&self) -> u64 {
        (self.now_ms() / 1000).max(0) as u64
    }

    /// Moves this clock (and its clones) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// Moves this clock (and its clones) forward so that it reads at least `unix_secs`; never
    /// back. Returns whether it moved. A local chain whose time was moved ahead
    /// (`evm_increaseTime`, `anvil_setNextBlockTimestamp`) takes the service's clock with it
    /// ([`crate::chain::devnet::follow_chain_time`]), so quotes signed by the service and the
    /// block times the contract and the rate guards judge agree.
    pub fn catch_up_to(&self, unix_secs: u64) -> bool {
        let target_ms = i64::try_from(unix_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        let system = self.now_ms() - self.offset_ms();
        let needed = target_ms - system;
        self.offset_ms.fetch_max(needed, Ordering::Relaxed) < needed
    }

    /// Returns how far this clock is ahead of the system time, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catching_up_moves_forward_only() {
        let clock = Clock::system();
        let ahead = clock.now() + 86_400;
        assert!(clock.catch_up_to(ahead));
        assert!(clock.now() >= ahead && clock.now() <= ahead + 1, "{}", clock.now());
        // An earlier time moves nothing.
        let offset = clock.offset_ms();
        assert!(!clock.catch_up_to(ahead - 3_600));
        assert_eq!(clock.offset_ms(), offset);
    }

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now_ms();
        clock.advance(Duration::from_secs(86_400));
        let after = other.now_ms();
        assert!(after - before >= 86_400_000, "{before} → {after}");
        assert_eq!(other.offset_ms(), 86_400_000);
    }
}
