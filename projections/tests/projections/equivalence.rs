//! Property tests over engine-made logs: incremental application with
//! saves and restarts at random points equals a full rebuild, and the set
//! as of a time equals a rebuild of the log cut at that time.

use proptest::collection::vec;
use proptest::prelude::*;

use gridcase_projections::{
    as_of_position, as_of_time, open, rebuild, Config, ProjectionSet, Start, Store,
};

use crate::support::{base, cut_log, drive, engine, runtime};

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn restarts_rebuilds_and_time_travel_agree(
        ops in vec((any::<u8>(), any::<u8>(), any::<u16>()), 40..120),
        cuts in vec(any::<u16>(), 0..6),
        when in any::<u16>(),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
            drive(&engine, &clock, &ops).await;
            let config = Config::default();
            let full = rebuild(&log, config).await.unwrap();
            let head = log.head().position;

            // Incremental, saved and reloaded at every cut.
            let store = Store::open(dir.path().join("state")).unwrap();
            let mut cuts: Vec<u64> = cuts.iter().map(|c| u64::from(*c) % (head + 1)).collect();
            cuts.sort();
            let mut set = ProjectionSet::new(config);
            for cut in &cuts {
                set.catch_up_to(&log, *cut).await.unwrap();
                let at_cut = as_of_position(&log, config, *cut).await.unwrap();
                prop_assert_eq!(set.digests(), at_cut.digests());
                store.save(&set).unwrap();
                set = store.load(config).unwrap().unwrap();
            }
            set.catch_up(&log).await.unwrap();
            prop_assert_eq!(set.digests(), full.digests());
            let (resumed, start) = open(&log, &store, config).await.unwrap();
            let from = cuts.last().copied().unwrap_or(head);
            if !cuts.is_empty() {
                prop_assert_eq!(start, Start::Resumed { from });
            }
            prop_assert_eq!(resumed.digests(), full.digests());

            // As of a time between the first and the last record.
            let all = log.read_all(1, usize::MAX).await.unwrap();
            let (first, last) = (all[0].recorded_at.0, all[all.len() - 1].recorded_at.0);
            let t = gridcase_engine::time::Timestamp(first + (last - first) * i64::from(when) / i64::from(u16::MAX));
            let as_of = as_of_time(&log, config, t).await.unwrap();
            let cut = cut_log(&log, t, &dir.path().join("cut")).await;
            let cut_rebuild = rebuild(&cut, config).await.unwrap();
            prop_assert_eq!(as_of.digests(), cut_rebuild.digests());
            prop_assert_eq!(as_of.position(), all.iter().filter(|r| r.recorded_at <= t).count() as u64);
            Ok(())
        })?;
    }
}
