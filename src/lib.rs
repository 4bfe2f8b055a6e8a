//! `gridcase`: the facade that re-exports the workspace's library crates.
pub use gridcase_api as api;
pub use gridcase_engine as engine;
pub use gridcase_projections as projections;
