//! Read models over the gridcase event log.
//!
//! This crate owns everything that is *derived* from the log for people to
//! read: the grid backlog ([`backlog`]), resolution and other rates per unit
//! and period ([`rates`]), escalation chains ([`chains`]), open cases past or
//! near their limit ([`overdue`]), the case listing Open311 serves
//! ([`cases`]) and the readable history of one case ([`timeline`]).
//! [`ProjectionSet`] holds them all together with the organisation
//! [`Registry`](gridcase_engine::org::Registry) folded from the `org`
//! stream and the one per-case fold they share; [`runner`] feeds it from a
//! log (catch-up, live follow, rebuild, time travel) and [`store`] persists
//! it with its checkpoint.
//!
//! **Architecture Invariant:** a case's events are folded once, by
//! `gridcase_engine::domain::Case::apply`, in the set; projections receive
//! the case before and after each record ([`Projection::apply`]) and never
//! fold cases themselves. Retention (when a finished case is forgotten) is
//! the set's too.
//!
//! **Architecture Invariant:** projections read the log and never append to
//! it. Applying an event is a pure function of the state and the recorded
//! event: no clock is read, every time comes from `recorded_at` or from an
//! event field, and all state serialises in a canonical order (ordered maps;
//! the per-case tables are hashed in memory but written in id order), so the
//! same log always gives the same bytes and the same [`Digests`].
//!
//! Queries that depend on "now" (aging, overdue, near due) take `now` as an
//! argument instead of reading a clock, so a report can be reproduced.
//!
//! Using it (a CLI or a server):
//! - start: [`open`]`(&log, &store, config)` loads the saved state if it fits
//!   the log (else rebuilds), catches up and saves; or [`rebuild`] from
//!   position 1; [`ProjectionSet::catch_up`] later;
//! - live: [`follow`]`(log, shared, options)` applies new records to a
//!   [`SharedProjections`] and publishes [`Follower::position`] (lag =
//!   head - position); [`Follower::stop`] saves;
//! - read: [`ProjectionSet::backlog_report`], [`ProjectionSet::rates_report`],
//!   [`ProjectionSet::ranking`], [`ProjectionSet::chain_report`],
//!   [`ProjectionSet::chain`] (or [`chains::chain_of`] on a history),
//!   [`ProjectionSet::overdue_report`], [`ProjectionSet::timeline`],
//!   [`ProjectionSet::cases`] (the listing), [`ProjectionSet::case`] (a
//!   live case's state);
//! - audit: [`as_of_position`], [`as_of_time`], [`ProjectionSet::digests`].

#![deny(missing_docs)]

pub mod backlog;
mod casemap;
pub mod cases;
pub mod chains;
mod error;
pub mod overdue;
pub mod period;
mod projection;
pub mod query;
pub mod rates;
mod retention;
pub mod runner;
mod set;
pub mod store;
pub mod timeline;

pub use casemap::{case_id, CaseKey, CaseMap};
pub use error::Error;
pub use period::{Period, PeriodKind};
pub use projection::{digest_of, Projection};
pub use query::{CasePage, CaseQuery};
pub use runner::{
    as_of_position, as_of_time, follow, open, rebuild, FollowOptions, Follower, SharedProjections,
    Start,
};
pub use set::{Config, Digests, LiveCases, ProjectionSet};
pub use store::Store;
