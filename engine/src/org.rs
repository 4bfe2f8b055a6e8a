//! Organisation registry (stub).
