//! The projections crate's one integration-test binary: data-driven tables
//! per projection (through `support::check`), engine-driven scenarios, and
//! property tests of rebuild, restart and time-travel equivalence and of
//! the one per-case fold, and the memory of the case listing.

#![allow(clippy::unwrap_used)]

#[path = "projections/support.rs"]
mod support;

#[path = "projections/rates.rs"]
mod rates;

#[path = "projections/views.rs"]
mod views;

#[path = "projections/engine.rs"]
mod engine;

#[path = "projections/equivalence.rs"]
mod equivalence;

#[path = "projections/fold.rs"]
mod fold;

#[path = "projections/memory.rs"]
mod memory;

#[path = "projections/query.rs"]
mod query;
