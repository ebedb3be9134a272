//! Plans, quotes, what a confirmed payment (on-chain or by card) does to a subscription,
//! and the merchant's member management.

pub mod activation;
pub mod card;
pub mod checkouts;
pub mod customers;
pub mod members;
pub mod plans;
pub mod quotes;
pub mod rates;
pub mod receipts;
pub mod reminders;
pub mod renewals;
pub mod retention;
pub mod reversal;
pub mod swaps;
