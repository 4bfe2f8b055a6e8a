//! The reads a portal asks for one at a time, answered from the live set
//! without building a whole report: one unit's rates for one period, and a
//! page of the case listing filtered by unit, state, category and time.

use gridcase_engine::domain::Status;
use gridcase_engine::time::Timestamp;

use crate::cases::ListedCase;
use crate::period::Period;
use crate::rates::{UnitRates, REPORT_KINDS};
use crate::{Error, ProjectionSet};

/// Most cases one page of [`ProjectionSet::list_cases`] returns.
pub const MAX_PAGE: usize = 1000;

/// Which cases [`ProjectionSet::list_cases`] returns, newest first. Build
/// it with `..CaseQuery::default()` so that fields added later keep
/// callers compiling.
#[derive(Clone, Debug)]
pub struct CaseQuery {
    /// Only cases submitted in this unit's subtree, or that it holds now.
    pub unit: Option<String>,
    /// Only cases in this state.
    pub status: Option<Status>,
    /// Only cases still being worked on or awaiting callback (not closed,
    /// rejected, merged or withdrawn: [`Status::is_final`] is false).
    pub open_only: bool,
    /// Only cases of this category code.
    pub category: Option<String>,
    /// Only cases submitted at or after this time.
    pub from: Timestamp,
    /// Only cases submitted at or before this time.
    pub to: Timestamp,
    /// Matching cases to skip (for the next page).
    pub offset: usize,
    /// Matching cases to return, at most [`MAX_PAGE`].
    pub limit: usize,
}

impl Default for CaseQuery {
    fn default() -> Self {
        CaseQuery {
            unit: None,
            status: None,
            open_only: false,
            category: None,
            from: Timestamp(i64::MIN),
            to: Timestamp(i64::MAX),
            offset: 0,
            limit: 50,
        }
    }
}

/// One page of the case listing.
#[derive(Debug)]
pub struct CasePage<'a> {
    /// How many cases match the query in all (for page counts).
    pub total: usize,
    /// The page, newest first.
    pub cases: Vec<ListedCase<'a>>,
}

impl ProjectionSet {
    /// One unit's rates for one period, with the same definitions and
    /// flags as [`ProjectionSet::rates_report`] (which lists every unit).
    /// A code the registry does not know, or a micro-grid (rates are kept
    /// from the grid up), is [`Error::InvalidInput`].
    pub fn unit_rates(
        &self,
        code: &str,
        period: Period,
        target_percent: f64,
    ) -> Result<UnitRates, Error> {
        let kind = self
            .registry()
            .unit(code)
            .map_err(|_| Error::InvalidInput(format!("unit {code:?} is not in the registry")))?
            .kind;
        if !REPORT_KINDS.contains(&kind) {
            return Err(Error::InvalidInput(format!(
                "rates are kept for districts, streets, communities, grids and departments; {code} is a {}",
                kind.as_str()
            )));
        }
        let counts = self.rates().counts(kind, code, period);
        Ok(UnitRates::new(kind, code, counts, target_percent, self.registry()))
    }

    /// A page of the case listing (every case, open or finished, that the
    /// listing holds), newest first, filtered by `query`.
    pub fn list_cases(&self, query: &CaseQuery) -> CasePage<'_> {
        let reg = self.registry();
        let matches = |c: &ListedCase<'_>| {
            query.status.is_none_or(|s| c.status() == s)
                && (!query.open_only || !c.status().is_final())
                && query.category.as_deref().is_none_or(|k| c.category() == k)
                && query.unit.as_deref().is_none_or(|u| reg.case_concerns(c.grid(), c.holders(), u))
        };
        let mut total = 0;
        let mut cases = Vec::new();
        let limit = query.limit.min(MAX_PAGE);
        for c in self.cases().submitted_between(query.from, query.to).rev() {
            if !matches(&c) {
                continue;
            }
            if total >= query.offset && cases.len() < limit {
                cases.push(c);
            }
            total += 1;
        }
        CasePage { total, cases }
    }
}
