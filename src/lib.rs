//! `gridcase`: the facade that re-exports the workspace's library crates.
pub use gridcase_engine as engine;
