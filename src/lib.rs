//! tmai-pay: a self-hosted service that sells subscription plans paid on-chain in TMAI
//! (and stablecoins) or by card, and records each member's plan as a soulbound badge.
//!
//! Layout by capability: [`chain`] holds the contract bindings, compilation, deployment
//! and the local chain, the watcher and the minter; [`http`] the API and the checkout page;
//! [`toolchain`] finds the pinned Foundry and solc commands;
//! [`cli`] is the command line.

pub mod auth;
pub mod billing;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod events;
pub mod http;
pub mod ids;
pub mod money;
pub mod notify;
pub mod startup;
pub mod states;
pub mod store;
pub mod telemetry;
pub mod toolchain;
pub mod watcher;

/// mimalloc for every binary that links the service (the server, its tests and
/// benchmarks): a request allocates a few hundred small objects (JSON values, strings,
/// futures), and glibc's allocator measured ~11% of a checkout's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
