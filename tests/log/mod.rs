//! Event-log suites: the backend-agnostic conformance suite and model-based
//! property tests (run for every backend of [`backend::backends`]), plus the
//! sled backend's own recovery, tamper and kill-the-writer crash tests.

#![allow(clippy::unwrap_used)]

mod backend;
mod concurrency;
mod conformance;
mod crash;
mod durability;
mod model;
mod recovery;
mod support;
mod tamper;
mod transparency;
