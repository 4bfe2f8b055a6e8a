//! Case-domain suites: the lifecycle and authority rules as given/when/then
//! over the pure `decide` function and through a real `Engine` (sled log,
//! manual clock), deadline escalation, the seeds' end-to-end scenario,
//! property tests of the invariants, golden bytes of every event and the
//! engine's idempotency and concurrency guarantees.
#![allow(clippy::unwrap_used)]

mod cancellation;
mod checkpoint;
mod deadlines;
mod fixture;
mod geo;
mod golden;
mod idempotency;
mod lifecycle;
mod properties;
mod scenario;
mod submission;
mod times;
