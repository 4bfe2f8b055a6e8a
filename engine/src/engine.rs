//! Engine (stub).
/// Engine.
pub struct Engine;
/// Options.
pub struct EngineOptions;
