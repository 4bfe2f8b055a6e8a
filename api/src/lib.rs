//! gridcase's HTTP surfaces over one store, on axum:
//!
//! 1. the **native JSON API** under `/api/v1` ([`native`]): every lifecycle
//!    command as a POST on the case, case reads with ETags, the live
//!    projection reports, replay as of a position or time, chain
//!    verification and stats, described by an OpenAPI 3 document
//!    ([`openapi`]);
//! 2. **Open311 GeoReport v2** under `/open311/v2` ([`open311`]), in JSON and XML;
//! 3. a **live event feed** as Server-Sent Events ([`events`]).
//!
//! Requests are rate-limited per client address and per key, with a
//! stricter quota on submissions ([`limits`]).
//!
//! Callers authenticate with API keys ([`keys`], [`auth`]); what an actor
//! may do is decided by the engine's rules, never by the HTTP layer.
//! [`server::Server`] runs it all together with deadline ticks and one
//! live follower of the log, which feeds the projections and with them the
//! case listing Open311 reads (`gridcase_projections::cases`), and exposes
//! Prometheus metrics ([`metrics`]).
//!
//! **Architecture Invariant:** the API writes to the store only through
//! [`Engine::submit`](gridcase_engine::Engine::submit) and
//! [`Engine::execute`](gridcase_engine::Engine::execute); a request that is
//! refused, malformed or unauthorised appends nothing.

#![deny(missing_docs)]

pub mod auth;
mod command;
pub mod dashboard;
pub mod dto;
mod error;
pub mod events;
pub mod extract;
pub mod keys;
pub mod limits;
pub mod listen;
pub mod media;
pub mod metrics;
pub mod native;
pub mod open311;
pub mod openapi;
pub mod pseudonym;
pub mod scope;
pub mod server;
pub mod session;
pub mod state;
pub mod trust;

pub use error::{ApiError, ErrorInfo};
pub use keys::KeyStore;
pub use server::Server;
pub use state::{AppState, ServerOptions};
