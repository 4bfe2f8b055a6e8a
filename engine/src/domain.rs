//! Case domain (stub while the log is built).
/// A rejected command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);
impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
