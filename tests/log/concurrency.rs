//! Concurrent appends through the `EventLog` trait, for every backend: many
//! tokio tasks racing on shared and private streams. Positions must come
//! out gap-free 1..N, each stream's versions consecutive, every acknowledged
//! outcome present at its positions, every batch all there or not at all,
//! and subscribers that follow the race see exactly the committed sequence.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gridcase::engine::log::LogError;
use gridcase::engine::log::{AppendOutcome, ExpectedVersion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backend::{run_all, Backend};
use super::support::{
    assert_consecutive, check_structure, collect_subscription, read_everything, request,
};

const TASKS: usize = 24;
const APPENDS_PER_TASK: usize = 25;

/// The payload tag of event `i` of append `seq` of task `task`.
fn tag(task: usize, seq: usize) -> String {
    format!("t{task}-{seq}")
}

#[test]
fn concurrent_appends_are_gap_free_and_atomic() {
    run_all(concurrent_appends);
}

async fn concurrent_appends(backend: Arc<dyn Backend>) {
    let store = backend.create().await;
    let log = store.log();
    let followers: Vec<_> = [1u64, 1]
        .into_iter()
        .map(|from| {
            let log = log.clone();
            tokio::spawn(async move {
                // Follows until told the final head via the channel below.
                let mut sub = gridcase::engine::log::subscribe(log, from);
                let mut got = Vec::new();
                while let Some(item) = futures::StreamExt::next(&mut sub).await {
                    let item = item.unwrap();
                    let done = item.payload == b"STOP/0";
                    got.push(item);
                    if done {
                        break;
                    }
                }
                got
            })
        })
        .collect();

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(task as u64);
                // (tag, stream, events, result)
                let mut results: Vec<(String, String, usize, Result<AppendOutcome, LogError>)> =
                    Vec::new();
                for seq in 0..APPENDS_PER_TASK {
                    // Shared streams with optimistic concurrency (some appends
                    // conflict), or a private stream with Any.
                    let shared = rng.random_bool(0.5);
                    let stream = if shared {
                        format!("shared-{}", rng.random_range(0..3))
                    } else {
                        format!("own-{task}")
                    };
                    let n = if rng.random_ratio(1, 25) { 300 } else { rng.random_range(1..=4) };
                    let expected = if shared {
                        let v = log.stream_version(&super::support::sid(&stream)).await.unwrap();
                        ExpectedVersion::Exact(v)
                    } else {
                        ExpectedVersion::Any
                    };
                    let r = log
                        .append(request(&stream, expected, &tag(task, seq), n))
                        .await
                        .map(|a| a.outcome);
                    if !shared {
                        assert!(r.is_ok(), "an Any append failed: {r:?}");
                    }
                    if let Err(e) = &r {
                        assert!(matches!(e, LogError::Conflict { .. }), "unexpected error {e}");
                    }
                    results.push((tag(task, seq), stream, n, r));
                }
                results
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    let stop =
        log.append(request("stop", ExpectedVersion::NoStream, "STOP", 1)).await.unwrap().outcome;

    let all = read_everything(log.as_ref(), 500).await;
    check_structure(log.as_ref(), &all);
    assert_eq!(all.len() as u64, stop.last_position);

    // Group what is in the log by append tag.
    let mut by_tag: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, ev) in all.iter().enumerate() {
        let text = std::str::from_utf8(&ev.payload).unwrap();
        let (t, idx) = text.split_once('/').unwrap();
        let idxs = by_tag.entry(t).or_default();
        assert_eq!(idxs.len(), idx.parse::<usize>().unwrap(), "events of {t} out of order");
        idxs.push(i);
    }
    let mut acknowledged = 0;
    let mut conflicts = 0;
    let mut per_stream: BTreeMap<&str, u64> = BTreeMap::new();
    for (t, stream, n, r) in &results {
        match r {
            Ok(o) => {
                acknowledged += n;
                let idxs = by_tag.get(t.as_str()).unwrap_or_else(|| panic!("acked {t} missing"));
                assert_eq!(idxs.len(), *n, "batch {t} incomplete");
                assert_consecutive(idxs.iter().map(|i| all[*i].position), o.first_position);
                assert_eq!(o.last_position, o.first_position + *n as u64 - 1);
                let last = &all[*idxs.last().unwrap()];
                assert_eq!((&last.stream, last.version), (stream, o.last_version));
                assert!(idxs.iter().all(|i| all[*i].recorded_at == o.recorded_at));
                let v = per_stream.entry(stream).or_default();
                *v = (*v).max(o.last_version);
            }
            Err(_) => {
                conflicts += 1;
                assert!(!by_tag.contains_key(t.as_str()), "conflicted batch {t} was written");
            }
        }
    }
    assert_eq!(acknowledged as u64 + 1, stop.last_position, "events nobody acknowledged");
    for (stream, v) in per_stream {
        assert_eq!(log.stream_version(&super::support::sid(stream)).await.unwrap(), v);
    }
    eprintln!("{} appends, {conflicts} conflicts, {} events", results.len(), all.len());

    for f in followers {
        let got = f.await.unwrap();
        assert_eq!(got, all, "a live subscriber saw something else");
    }
    let late = collect_subscription(log.clone(), 1, stop.last_position).await;
    assert_eq!(late, all);
    let report = log.verify().await.unwrap();
    assert_eq!(report.events, all.len() as u64);
}
