//! The projections crate's one integration-test binary: data-driven tables
//! per projection (through `support::check`), engine-driven scenarios, and
//! property tests of rebuild, restart and time-travel equivalence.

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
