#![allow(missing_docs)]
//! Integration tests: one binary, real anvil, real compiled contracts, real databases.

mod activation;
mod api;
mod auth;
mod bad_input;
mod bounds;
mod browser;
mod card;
mod card_localstripe;
mod chain;
mod cli;
mod clocks;
mod credit;
mod customers;
mod db;
mod deep_reorgs;
mod dev_market;
mod docs;
mod event_schemas;
mod faulty_node;
mod harness;
mod helpers;
mod layout;
mod localstripe;
mod markets;
mod members;
mod minter;
mod minter_reorgs;
mod reads;
mod reminders;
mod rpc_proxy;
mod service;
mod storage;
mod usd;
mod watcher;
mod webhooks;
