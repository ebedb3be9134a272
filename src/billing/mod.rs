//! Plans, quotes and what a confirmed payment does to a subscription.

pub mod activation;
pub mod reminders;
pub mod plans;
pub mod quotes;
