//! Everything that talks to the chain: contract bindings compiled from `contracts/`,
//! the compiler driver, deployment and the local anvil chain.

pub mod bindings;
pub mod compile;
pub mod deploy;
pub mod deployment;
pub mod devnet;
pub mod paid_log;
pub mod minter;
pub mod signing;
pub mod watcher;
