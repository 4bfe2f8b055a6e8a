//! Hand-computed rate tables, one test per definition and edge case of
//! RATES.md. Ordinary limits apply: response due 24 h after submission,
//! resolution due 7 days after (`due=<days>` overrides).

use crate::support::check;

const BASICS: &str = "
    d0 09:00 c1 submit G1
    d0 09:00 c2 submit G1
    d0 09:00 c3 submit G2
    d0 09:30 c4 submit G1
    d0 10:00 c1 assign
    d0 10:00 c4 resolve
    d0 11:00 c2 assign
    d0 15:00 c1 resolve
    d1 09:00 c1 callback satisfied
    d1 09:00 c4 callback unsatisfied unsolved
    d1 10:00 c1 close
    d7 10:00 c2 overdue
";

/// c1 closed and satisfied; c2 overdue unresolved; c3 still inside its
/// limit (pending, so G2 has no data); c4 resolved but called back as not
/// solved (due, not resolved).
#[test]
fn resolution_response_satisfaction_on_time_redo() {
    check(
        BASICS,
        "rates 2026-03 grid:G1 grid:G2 community:C1 district:D",
        "
        grid:G1 cases=3 excluded=0 resolution=1/3=33.33% response=3/3=100.00% satisfaction=1/2=50.00% on_time=1/3=33.33% return=0/0=n/a redo=0/2=0.00% BELOW
        grid:G2 cases=1 excluded=0 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=0/0=n/a redo=0/0=n/a no-data
        community:C1 cases=4 excluded=0 resolution=1/3=33.33% response=3/3=100.00% satisfaction=1/2=50.00% on_time=1/3=33.33% return=0/0=n/a redo=0/2=0.00% BELOW
        district:D cases=4 excluded=0 resolution=1/3=33.33% response=3/3=100.00% satisfaction=1/2=50.00% on_time=1/3=33.33% return=0/0=n/a redo=0/2=0.00% BELOW
        ",
    );
}

/// Cohorts are the periods of submission: the same cases appear in their
/// day and ISO week, and not in the next day.
#[test]
fn cohorts_are_periods_of_submission() {
    check(
        BASICS,
        "rates 2026-03-02 grid:G1",
        "grid:G1 cases=3 excluded=0 resolution=1/3=33.33% response=3/3=100.00% satisfaction=1/2=50.00% on_time=1/3=33.33% return=0/0=n/a redo=0/2=0.00% BELOW",
    );
    check(
        BASICS,
        "rates 2026-W10 grid:G1",
        "grid:G1 cases=3 excluded=0 resolution=1/3=33.33% response=3/3=100.00% satisfaction=1/2=50.00% on_time=1/3=33.33% return=0/0=n/a redo=0/2=0.00% BELOW",
    );
    check(
        BASICS,
        "rates 2026-03-03 grid:G1",
        "grid:G1 cases=0 excluded=0 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=0/0=n/a redo=0/0=n/a no-data",
    );
}

/// 23:30 and 00:30 local time are different days in +08:00, although both
/// are 2 March in UTC.
#[test]
fn days_are_local_to_the_district() {
    let script = "
        d0 23:30 c1 submit G1
        d1 00:30 c2 submit G1
    ";
    check(script, "rates 2026-03-02 grid:G1", "grid:G1 cases=1 excluded=0 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=0/0=n/a redo=0/0=n/a no-data");
    check(script, "rates 2026-03-03 grid:G1", "grid:G1 cases=1 excluded=0 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=0/0=n/a redo=0/0=n/a no-data");
}

/// A late first response, and an overdue case nobody responded to: both
/// count against the response rate.
#[test]
fn late_and_missing_responses() {
    check(
        "
        d0 09:00 c1 submit G1
        d0 09:00 c2 submit G1
        d1 10:00 c1 assign
        d7 09:00 c2 overdue
        d7 10:00 c1 overdue
        ",
        "rates 2026-03 grid:G1",
        "grid:G1 cases=2 excluded=0 resolution=0/2=0.00% response=0/2=0.00% satisfaction=0/0=n/a on_time=0/2=0.00% return=0/0=n/a redo=0/0=n/a BELOW",
    );
}

const REOPEN: &str = "
    d0 09:00 c1 submit G1
    d0 10:00 c1 assign
    d1 10:00 c1 resolve
    d2 10:00 c1 callback unsatisfied unsolved
    d2 11:00 c1 reopen
";

/// A reopened case is due and unresolved until it is resolved again; its
/// callback no longer counts; the redo rate counts it.
#[test]
fn reopen_makes_a_case_unresolved_until_resolved_again() {
    check(
        REOPEN,
        "rates 2026-03 grid:G1",
        "grid:G1 cases=1 excluded=0 resolution=0/1=0.00% response=1/1=100.00% satisfaction=0/0=n/a on_time=0/1=0.00% return=0/0=n/a redo=1/1=100.00% BELOW",
    );
    let resolved_again = format!(
        "{REOPEN}
        d3 10:00 c1 resolve
        d4 10:00 c1 callback basic
        d4 11:00 c1 close"
    );
    // On time against the deadline the reopen set (d2 11:00 + 7 days).
    check(
        &resolved_again,
        "rates 2026-03 grid:G1",
        "grid:G1 cases=1 excluded=0 resolution=1/1=100.00% response=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00% return=0/0=n/a redo=1/1=100.00% ok",
    );
}

/// Rejected, merged and withdrawn cases are excluded from every rate, even
/// after an overdue mark; only c4 is due.
#[test]
fn invalid_merged_and_withdrawn_cases_are_excluded() {
    check(
        "
        d0 09:00 c1 submit G1
        d0 09:05 c2 submit G1
        d0 09:10 c3 submit G1
        d0 09:20 c4 submit G1
        d0 10:00 c1 reject
        d0 10:00 c2 merge c4
        d0 10:00 c3 assign
        d7 09:10 c3 overdue
        d7 09:20 c4 overdue
        d7 10:00 c3 withdraw
        ",
        "rates 2026-03 grid:G1",
        "grid:G1 cases=4 excluded=3 resolution=0/1=0.00% response=0/1=0.00% satisfaction=0/0=n/a on_time=0/1=0.00% return=0/0=n/a redo=0/0=n/a BELOW",
    );
}

/// D01 returns the case (退单), the street re-dispatches it to D02, which
/// resolves it. D01 keeps only its return; D02 gets the resolution.
#[test]
fn return_then_redispatch() {
    check(
        "
        d0 09:00 c1 submit G3
        d0 10:00 c1 escalate
        d0 11:00 c1 dispatch D01
        d0 12:00 c1 return D01
        d0 13:00 c1 dispatch D02
        d0 14:00 c1 claim D02
        d1 10:00 c1 resolve D02
        d2 10:00 c1 callback satisfied
        d2 11:00 c1 close
        ",
        "rates 2026-03 grid:G3 street:S1 department:D01 department:D02",
        "
        grid:G3 cases=1 excluded=0 resolution=1/1=100.00% response=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00% return=1/1=100.00% redo=0/1=0.00% ok
        street:S1 cases=1 excluded=0 resolution=1/1=100.00% response=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00% return=1/1=100.00% redo=0/1=0.00% ok
        department:D01 cases=1 excluded=0 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=1/1=100.00% redo=0/0=n/a no-data
        department:D02 cases=1 excluded=0 resolution=1/1=100.00% response=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00% return=0/1=0.00% redo=0/1=0.00% ok
        ",
    );
}

/// Joint handling (协同整治) by D01 and D02. c1: both resolve. c2: D01
/// resolves, D02 returns, which leaves the case resolved. c3: D01 resolves
/// its part, D02 does not and the case goes overdue: D01's part is done but
/// the case is not, so it counts as unresolved for D01 too.
#[test]
fn joint_handling_with_two_departments() {
    check(
        "
        d0 09:00 c1 submit G1
        d0 09:00 c2 submit G1
        d0 09:00 c3 submit G1
        d0 10:00 c1 escalate
        d0 10:00 c2 escalate
        d0 10:00 c3 escalate
        d0 11:00 c1 dispatch D01,D02
        d0 11:00 c2 dispatch D01,D02
        d0 11:00 c3 dispatch D01,D02
        d0 12:00 c1 claim D01
        d0 12:00 c1 claim D02
        d0 12:00 c2 claim D01
        d0 12:00 c3 claim D01
        d0 12:00 c3 claim D02
        d1 10:00 c1 resolve D01
        d1 10:00 c2 resolve D01
        d1 10:00 c3 resolve D01
        d1 11:00 c1 resolve D02
        d1 11:00 c2 return D02
        d8 09:00 c3 overdue
        ",
        "rates 2026-03 grid:G1 department:D01 department:D02",
        "
        grid:G1 cases=3 excluded=0 resolution=2/3=66.67% response=3/3=100.00% satisfaction=0/0=n/a on_time=2/3=66.67% return=1/3=33.33% redo=0/2=0.00% BELOW
        department:D01 cases=3 excluded=0 resolution=2/3=66.67% response=3/3=100.00% satisfaction=0/0=n/a on_time=2/3=66.67% return=0/3=0.00% redo=0/2=0.00% BELOW
        department:D02 cases=3 excluded=0 resolution=1/2=50.00% response=2/2=100.00% satisfaction=0/0=n/a on_time=1/2=50.00% return=1/3=33.33% redo=0/1=0.00% BELOW
        ",
    );
}

const EXTENSION: &str = "
    d0 09:00 c1 submit G1
    d0 09:00 c2 submit G1
    d0 10:00 c1 assign
    d0 10:00 c2 assign
    d5 10:00 c1 extend +3d
    d5 10:00 c2 extend +3d
    d9 10:00 c1 resolve
";

/// An extension approved before the deadline moves it: c1 resolved on day
/// 9 is on time against day 10, and c2 is still pending (not due) on day 9.
/// Once c2's extended deadline is marked overdue it is due and unresolved.
#[test]
fn extension_before_overdue() {
    check(
        EXTENSION,
        "rates 2026-03 grid:G1",
        "grid:G1 cases=2 excluded=0 resolution=1/1=100.00% response=2/2=100.00% satisfaction=0/0=n/a on_time=1/1=100.00% return=0/0=n/a redo=0/1=0.00% ok",
    );
    check(
        &format!("{EXTENSION}\n d10 09:00 c2 overdue\n d10 10:00 c1 callback satisfied"),
        "rates 2026-03 grid:G1",
        "grid:G1 cases=2 excluded=0 resolution=1/2=50.00% response=2/2=100.00% satisfaction=1/1=100.00% on_time=1/2=50.00% return=0/0=n/a redo=0/1=0.00% BELOW",
    );
}

/// Late resolution: resolved after the deadline it counts as resolved but
/// not on time.
#[test]
fn late_resolution_is_resolved_but_not_on_time() {
    check(
        "
        d0 09:00 c1 submit G4 due=2
        d0 10:00 c1 assign
        d2 09:00 c1 overdue
        d3 10:00 c1 resolve
        ",
        "rates 2026-03 grid:G4",
        "grid:G4 cases=1 excluded=0 resolution=1/1=100.00% response=1/1=100.00% satisfaction=0/0=n/a on_time=0/1=0.00% return=0/0=n/a redo=0/1=0.00% ok",
    );
}

/// The monthly ranking: by resolution rate, ties by satisfaction, then
/// on-time; units tied on all three share a rank; units without due cases
/// are listed apart.
#[test]
fn monthly_ranking() {
    let script = "
        d0 09:00 a1 submit G1
        d0 09:00 a2 submit G2
        d0 09:00 b1 submit G3
        d0 09:00 x1 submit G4
        d0 10:00 a1 resolve
        d0 10:00 a2 resolve
        d0 10:00 b1 resolve
        d1 10:00 a1 callback satisfied
        d1 10:00 a2 callback unsatisfied
        d1 10:00 b1 callback satisfied
        d7 09:00 x1 overdue
    ";
    check(
        script,
        "ranking 2026-03 community",
        "
        1 C2 resolution=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00%
        2 C1 resolution=2/2=100.00% satisfaction=1/2=50.00% on_time=2/2=100.00%
        3 C3 resolution=0/1=0.00% satisfaction=0/0=n/a on_time=0/1=0.00%
        no data:
        ",
    );
    check(
        script,
        "ranking 2026-03 grid",
        "
        1 G1 resolution=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00%
        1 G3 resolution=1/1=100.00% satisfaction=1/1=100.00% on_time=1/1=100.00%
        3 G2 resolution=1/1=100.00% satisfaction=0/1=0.00% on_time=1/1=100.00%
        4 G4 resolution=0/1=0.00% satisfaction=0/0=n/a on_time=0/1=0.00%
        no data:
        ",
    );
    check(script, "ranking 2026-03 department", "no data: D01,D02,D03");
}

/// A case withdrawn after a department returned it counts nowhere, not
/// even in the department's return rate.
#[test]
fn withdrawn_after_a_return_is_excluded_everywhere() {
    check(
        "
        d0 09:00 c1 submit G1
        d0 10:00 c1 escalate
        d0 11:00 c1 dispatch D01
        d0 12:00 c1 return D01
        d0 13:00 c1 withdraw
        ",
        "rates 2026-03 street:S1 department:D01",
        "
        street:S1 cases=1 excluded=1 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=0/0=n/a redo=0/0=n/a no-data
        department:D01 cases=1 excluded=1 resolution=0/0=n/a response=0/0=n/a satisfaction=0/0=n/a on_time=0/0=n/a return=0/0=n/a redo=0/0=n/a no-data
        ",
    );
}
