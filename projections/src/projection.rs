//! The [`Projection`] contract and the state digest auditors compare.

use gridcase_engine::domain::Event;
use gridcase_engine::log::{Hash, RecordedEvent};
use serde::Serialize;

/// A read model folded from the log.
///
/// `apply` must be deterministic: it may use only its state, the recorded
/// event (`rec.recorded_at` is the only clock) and the event's fields. State
/// serialises in a canonical order (ordered maps, or tables written in key
/// order) so that its postcard bytes, and therefore [`Projection::digest`],
/// are the same on every machine and after every restart.
pub trait Projection: Serialize {
    /// A stable name, used in digests and reports.
    const NAME: &'static str;

    /// Folds one event in. `event` is `rec`'s payload, already decoded.
    fn apply(&mut self, rec: &RecordedEvent, event: &Event);

    /// BLAKE3 of the postcard bytes of the state.
    fn digest(&self) -> Hash {
        digest_of(self)
    }
}

/// BLAKE3 of the postcard bytes of any serialisable value.
pub fn digest_of<T: Serialize + ?Sized>(value: &T) -> Hash {
    // The hasher is an io::Write sink; postcard streams into it without
    // materialising the (possibly large) state.
    let mut hasher = blake3::Hasher::new();
    {
        // postcard writes field by field; a buffer turns that into few large
        // hasher updates (unbuffered, digesting was ten times slower).
        let mut sink = std::io::BufWriter::with_capacity(1 << 16, &mut hasher);
        // Serialising owned plain data into a hasher cannot fail; an error
        // here would be a bug, and hashing what was written so far still
        // changes the digest, so nothing can pass silently as "equal".
        let _ = postcard::to_io(value, &mut sink);
        let _ = std::io::Write::flush(&mut sink);
    }
    *hasher.finalize().as_bytes()
}
