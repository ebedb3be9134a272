#![allow(missing_docs)]
//! Integration tests: one binary, real anvil, real compiled contracts.

mod chain;
mod cli;
mod helpers;
