//! gridcase's engine: the event log, the organisation registry, the case
//! domain and the [`Engine`] facade that portals embed.
//!
//! - [`log`] owns storage: the append-only, hash-chained event log and the
//!   sled backend. Nothing else touches sled.
//! - [`org`] owns the organisation registry (district, streets, communities,
//!   grids, micro-grids, departments, staff, categories, deadline policy).
//! - [`domain`] owns the case lifecycle: commands, events, rules, authority.
//! - [`engine`] ties them together: load, decide, append, retry.
//! - [`hierarchy`] names the unit kinds and roles (shared by [`org`] and [`domain`]).
//! - [`geo`] owns geography: points, micro-grid boundaries, point lookup.
//! - [`time`] owns the injected clock.

#![deny(missing_docs)]

pub mod domain;
pub mod engine;
mod error;
pub mod geo;
pub mod hierarchy;
pub mod log;
pub mod org;
pub mod time;

pub use engine::{Engine, EngineOptions};
pub use error::Error;
