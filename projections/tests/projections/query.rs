//! The one-at-a-time reads: a unit's rates equal its row of the full
//! report, and a page of the case listing equals filtering every listed
//! case by hand and paging the result.

use gridcase_engine::domain::Status;
use gridcase_engine::time::Timestamp;
use gridcase_projections::{CaseQuery, Config, Period};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::support::{base, drive, engine, runtime};

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn one_unit_and_one_page_agree_with_the_whole(
        ops in vec((any::<u8>(), any::<u8>(), any::<u16>()), 40..160),
        offset in 0usize..20,
        limit in 1usize..30,
        pick in any::<u16>(),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
            drive(&engine, &clock, &ops).await;
            let set = gridcase_projections::rebuild(&log, Config::default()).await.unwrap();
            for period in set.rates().periods(gridcase_projections::PeriodKind::Month) {
                let report = set.rates_report(period, 98.5);
                for row in &report.units {
                    prop_assert_eq!(&set.unit_rates(&row.code, period, 98.5).unwrap(), row);
                }
            }
            prop_assert!(set.unit_rates("no-such-unit", Period::parse("2026-03").unwrap(), 98.5).is_err());

            let all: Vec<_> = set.cases().submitted_between(Timestamp(i64::MIN), Timestamp(i64::MAX)).rev().collect();
            prop_assume!(!all.is_empty());
            let sample = &all[pick as usize % all.len()];
            let queries = [
                CaseQuery { offset, limit, ..CaseQuery::default() },
                CaseQuery { open_only: true, offset, limit, ..CaseQuery::default() },
                CaseQuery { status: Some(sample.status()), offset, limit, ..CaseQuery::default() },
                CaseQuery { status: Some(Status::Closed), ..CaseQuery::default() },
                CaseQuery { category: Some(sample.category().to_string()), offset, limit, ..CaseQuery::default() },
                CaseQuery { unit: Some(sample.community().to_string()), offset, limit, ..CaseQuery::default() },
                CaseQuery { from: sample.submitted_at(), to: sample.submitted_at(), ..CaseQuery::default() },
            ];
            let reg = set.registry();
            for q in queries {
                let expected: Vec<String> = all
                    .iter()
                    .filter(|c| q.status.is_none_or(|s| c.status() == s))
                    .filter(|c| !q.open_only || !matches!(c.status(), Status::Closed | Status::Rejected | Status::Merged | Status::Withdrawn))
                    .filter(|c| q.category.as_deref().is_none_or(|k| c.category() == k))
                    .filter(|c| q.unit.as_deref().is_none_or(|u| reg.is_within(c.grid(), u) || c.holders().any(|h| h == u)))
                    .filter(|c| c.submitted_at() >= q.from && c.submitted_at() <= q.to)
                    .map(|c| c.id())
                    .collect();
                let page = set.list_cases(&q);
                prop_assert_eq!(page.total, expected.len(), "{:?}", q);
                let want: Vec<String> = expected.into_iter().skip(q.offset).take(q.limit).collect();
                let got: Vec<String> = page.cases.iter().map(|c| c.id()).collect();
                prop_assert_eq!(got, want, "{:?}", q);
            }
            Ok(())
        })?;
    }
}
