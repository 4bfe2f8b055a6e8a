//! The one fold: the set's per-case state is `Case::fold` of each live
//! case's history, and the case listing shows what folding each case gives,
//! at the head and at any position before it.

use std::collections::BTreeMap;

use gridcase_engine::domain::{Case, Event};
use gridcase_engine::engine::CASE_STREAM_PREFIX;
use gridcase_engine::log::{EventLog, Position, RecordedEvent};
use gridcase_projections::{as_of_position, case_id, Config, ProjectionSet};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::support::{base, drive, engine, runtime};

/// Every case's history, by id, from the whole log.
async fn histories(
    log: &std::sync::Arc<dyn EventLog>,
) -> BTreeMap<String, Vec<(Event, RecordedEvent)>> {
    let mut out: BTreeMap<String, Vec<(Event, RecordedEvent)>> = BTreeMap::new();
    for rec in log.read_all(1, usize::MAX).await.unwrap() {
        if let Some(id) = case_id(&rec.stream) {
            let event = Event::from_recorded(&rec).unwrap();
            out.entry(id.to_string()).or_default().push((event, rec));
        }
    }
    out
}

fn fold(history: &[(Event, RecordedEvent)]) -> Option<Case> {
    Case::fold(history.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)))
}

/// The note `status_notes` shows: the last non-blank note or reason.
fn last_note(history: &[(Event, RecordedEvent)]) -> Option<String> {
    history
        .iter()
        .rev()
        .filter_map(|(e, _)| match e {
            Event::CaseRejected { reason }
            | Event::CaseWithdrawn { reason }
            | Event::CaseReturned { reason, .. }
            | Event::CaseReopened { reason, .. } => Some(reason),
            Event::CaseEscalated { note, .. }
            | Event::CaseDispatched { note, .. }
            | Event::CaseResolved { note, .. }
            | Event::CaseClosed { note }
            | Event::CaseSupervised { note, .. }
            | Event::CallbackRecorded { note, .. } => Some(note),
            _ => None,
        })
        .map(|n| n.trim().to_string())
        .find(|n| !n.is_empty())
}

/// Checks the set (applied up to `at`) against folding each case's
/// history cut at `at`; returns (live cases compared, listed cases compared).
fn check(
    set: &ProjectionSet,
    all: &BTreeMap<String, Vec<(Event, RecordedEvent)>>,
    at: Position,
) -> (usize, usize) {
    let (mut live, mut listed) = (0, 0);
    for (id, history) in all {
        let cut: Vec<_> = history.iter().filter(|(_, r)| r.position <= at).cloned().collect();
        let Some(case) = fold(&cut) else {
            assert!(set.case(id).is_none() && set.cases().get(id).is_none(), "{id} at {at}");
            continue;
        };
        // The per-case map holds exactly the fold of every case that can
        // still change; the others are excluded or closed (and past their
        // reopen window, which only eviction can tell).
        match set.case(id) {
            Some(kept) => {
                assert_eq!(kept, &case, "{id} at {at}");
                live += 1;
            }
            None => assert!(
                case.is_excluded() || case.closed_at.is_some(),
                "{id} at {at}: an open case is missing from the set ({:?})",
                case.status
            ),
        }
        let l = set.cases().get(id).unwrap_or_else(|| panic!("{id} at {at} is not listed"));
        let holders: Vec<&str> = case.holders.iter().map(|h| h.unit.as_str()).collect();
        assert_eq!(l.id(), case.id);
        assert_eq!(l.status(), case.status, "{id} at {at}");
        assert_eq!(l.level(), case.level, "{id} at {at}");
        assert_eq!(l.holders().collect::<Vec<_>>(), holders, "{id} at {at}");
        assert_eq!(l.version(), case.version, "{id} at {at}");
        assert_eq!(l.reopen_count(), case.reopen_count, "{id} at {at}");
        assert_eq!(l.resolution_due(), case.resolution_due, "{id} at {at}");
        assert_eq!(l.submitted_at(), case.submitted_at, "{id} at {at}");
        let updated = case.closed_at.filter(|_| case.status.is_final()).unwrap_or(case.updated_at);
        assert_eq!(l.updated_at(), updated, "{id} at {at}");
        assert_eq!(l.merged_into(), case.merged_into.as_deref(), "{id} at {at}");
        assert_eq!(l.note(), last_note(&cut).as_deref(), "{id} at {at}");
        assert_eq!(
            (l.kind(), l.priority(), l.channel()),
            (case.kind, case.priority, case.channel),
            "{id}"
        );
        assert_eq!(
            (l.category(), l.description(), l.location()),
            (case.category.as_str(), case.description.as_str(), case.location.as_str()),
            "{id}"
        );
        assert_eq!(
            (l.grid(), l.micro_grid(), l.community(), l.street()),
            (
                case.grid.as_str(),
                case.micro_grid.as_deref(),
                case.community.as_str(),
                case.street.as_str()
            ),
            "{id}"
        );
        listed += 1;
    }
    assert_eq!(set.tracked_cases(), live, "cases kept at {at}");
    assert_eq!(set.cases().len(), listed, "cases listed at {at}");
    (live, listed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The set's per-case map equals `Case::fold` of each live case's
    /// history, and the listing equals folding each case, at the head and
    /// at random positions, also after a save and a reload.
    #[test]
    fn the_set_holds_the_fold_of_every_live_case(
        ops in vec((any::<u8>(), any::<u8>(), any::<u16>()), 40..160),
        cuts in vec(any::<u16>(), 1..4),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
            drive(&engine, &clock, &ops).await;
            let all = histories(&log).await;
            let head = log.head().position;
            let config = Config::default();
            let mut set = gridcase_projections::rebuild(&log, config).await.unwrap();
            let (live, listed) = check(&set, &all, head);
            prop_assert!(listed > 0);
            // The engine's own open cases are the same folds.
            for case in engine.open_cases() {
                prop_assert_eq!(set.case(&case.id), Some(&*case));
            }
            prop_assert!(live >= engine.open_cases().len());
            set = ProjectionSet::from_bytes(&set.to_bytes().unwrap()).unwrap();
            check(&set, &all, head);
            for cut in cuts {
                let at = u64::from(cut) % (head + 1);
                let set = as_of_position(&log, config, at).await.unwrap();
                check(&set, &all, at);
            }
            Ok(())
        })?;
    }
}

/// A long run with evictions: the invariant holds after closed cases have
/// left the set and the listing still has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fold_survives_evictions() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
    drive(&engine, &clock, &crate::support::ops(5, 300)).await;
    let all = histories(&log).await;
    let set = gridcase_projections::rebuild(&log, Config::default()).await.unwrap();
    let (live, listed) = check(&set, &all, log.head().position);
    assert!(live < listed, "no case was evicted ({live} kept, {listed} listed)");
    let streams = log.streams_with_prefix(CASE_STREAM_PREFIX).await.unwrap();
    assert_eq!(listed, streams.len());
}
