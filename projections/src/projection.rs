//! The [`Projection`] contract and the state digest auditors compare.

use gridcase_engine::domain::{Case, Event};
use gridcase_engine::log::{Hash, RecordView};
use serde::Serialize;

use crate::casemap::CaseKey;

/// A read model folded from the log.
///
/// A projection does not fold cases itself: the
/// [`ProjectionSet`](crate::ProjectionSet) keeps the one per-case state
/// ([`Case`], folded by `Case::apply`) and the retention of finished cases,
/// and hands each projection the state of the record's case before and
/// after the record. A projection keeps only its own aggregates and the
/// per-case data that is not in `Case` (a chain's hops, a case's counter
/// rows), and drops the latter when the set evicts the case.
///
/// `apply` must be deterministic: it may use only its state, the recorded
/// event (`rec.recorded_at` is the only clock), the event's fields and the
/// two case states. State serialises in a canonical order (ordered maps,
/// or tables written in key order) so that its postcard bytes, and
/// therefore [`Projection::digest`], are the same on every machine and
/// after every restart.
pub trait Projection: Serialize {
    /// A stable name, used in digests and reports.
    const NAME: &'static str;

    /// Folds one record in. `event` is `rec`'s payload, already decoded.
    /// `rec` is borrowed from the log (a rebuild reads records in place,
    /// copying none); [`RecordView::of`] views an owned record.
    ///
    /// For a record of a case stream the set knows, `after` is the case as
    /// this record leaves it and `before` as it stood before (`None` when
    /// the record starts the case). Both are `None` for records of other
    /// streams (the registry) and for records of a case the set no longer
    /// keeps (evicted after its reopen window).
    fn apply(
        &mut self,
        rec: &RecordView<'_>,
        event: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    );

    /// The set forgot a case: it ended for good (rejected, merged,
    /// withdrawn) or its reopen window passed after it was closed. Drop
    /// whatever is kept for it; counters keep what it contributed.
    fn evict(&mut self, _case: &CaseKey) {}

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
