//! The workspace's one integration-test binary (one link, one process: fast
//! to build and run). Each area of the engine adds a sibling module here.

mod domain;
mod log;
