//! HTTP tests: a real server on a random loopback port over a temporary
//! sled store (see `common`). One test binary, so the suite links once.

#![allow(clippy::unwrap_used)]

mod commands;
mod common;
mod corruption;
mod dashboard;
mod events;
mod hardening;
mod lifecycle;
mod limits;
mod malformed;
mod open311;
mod scope;
mod trust;
