#![allow(missing_docs)]
//! Integration tests: one binary, real anvil, real compiled contracts, real databases.

mod activation;
mod api;
mod auth;
mod bad_input;
mod browser;
mod card;
mod chain;
mod cli;
mod db;
mod deep_reorgs;
mod harness;
mod helpers;
mod markets;
mod members;
mod minter;
mod reads;
mod reminders;
mod service;
mod storage;
mod usd;
mod watcher;
mod webhooks;
