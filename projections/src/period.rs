//! Reporting periods (day, ISO week, month) in the district's time zone.
//!
//! A case belongs to the periods of its submission time. The district's time
//! zone is a fixed UTC offset (China has no daylight saving time), so a
//! period is plain integer arithmetic on epoch milliseconds: no clock and no
//! time-zone database is involved, which keeps cohorts deterministic.

use std::fmt;

use gridcase_engine::time::{Timestamp, DAY_MS};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The length of a reporting period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeriodKind {
    /// A calendar day.
    Day,
    /// An ISO week (Monday to Sunday).
    Week,
    /// A calendar month.
    Month,
}

impl PeriodKind {
    /// Every kind, shortest first.
    pub const ALL: [PeriodKind; 3] = [PeriodKind::Day, PeriodKind::Week, PeriodKind::Month];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Day => "day",
            PeriodKind::Week => "week",
            PeriodKind::Month => "month",
        }
    }
}

/// One reporting period. Days and weeks are keyed by the local day number
/// (days since 1970-01-01 in the district's zone; a week by its Monday),
/// months by `year * 12 + month - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Period {
    /// A day, by local day number.
    Day(i32),
    /// An ISO week, by the local day number of its Monday.
    Week(i32),
    /// A month, as `year * 12 + month - 1`.
    Month(i32),
}

/// Local day number of `t` in a zone `offset_minutes` east of UTC.
pub fn local_day(t: Timestamp, offset_minutes: i32) -> i32 {
    let local = t.0.saturating_add(offset_minutes as i64 * 60_000);
    local.div_euclid(DAY_MS) as i32
}

/// (year, month 1..=12, day 1..=31) of a day number (H. Hinnant's civil_from_days).
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

/// Day number of a civil date (H. Hinnant's days_from_civil).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = y as i64 - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

impl Period {
    /// The three periods (day, week, month) a time falls in, in a zone
    /// `offset_minutes` east of UTC.
    pub fn of(t: Timestamp, offset_minutes: i32) -> [Period; 3] {
        let day = local_day(t, offset_minutes);
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        let monday = day - (day + 3).rem_euclid(7);
        let (y, m, _) = civil_from_days(day);
        [Period::Day(day), Period::Week(monday), Period::Month(y * 12 + m as i32 - 1)]
    }

    /// The period of this kind that `t` falls in.
    pub fn containing(kind: PeriodKind, t: Timestamp, offset_minutes: i32) -> Period {
        let [d, w, m] = Period::of(t, offset_minutes);
        match kind {
            PeriodKind::Day => d,
            PeriodKind::Week => w,
            PeriodKind::Month => m,
        }
    }

    /// Its kind.
    pub fn kind(self) -> PeriodKind {
        match self {
            Period::Day(_) => PeriodKind::Day,
            Period::Week(_) => PeriodKind::Week,
            Period::Month(_) => PeriodKind::Month,
        }
    }

    /// The month `year-month` (month 1..=12).
    pub fn month(year: i32, month: u32) -> Period {
        Period::Month(year * 12 + month as i32 - 1)
    }

    /// Parses `2026-03-03` (a day), `2026-W10` (an ISO week) or `2026-03` (a month).
    pub fn parse(text: &str) -> Result<Period, Error> {
        let bad = || {
            Error::InvalidInput(format!(
                "period {text:?}: use a day (2026-03-03), an ISO week (2026-W10) or a month (2026-03)"
            ))
        };
        let text = text.trim();
        if let Some((y, w)) = text.split_once("-W") {
            let y: i32 = y.parse().map_err(|_| bad())?;
            let w: u8 = w.parse().map_err(|_| bad())?;
            let date =
                time::Date::from_iso_week_date(y, w, time::Weekday::Monday).map_err(|_| bad())?;
            return Ok(Period::Week(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY));
        }
        let parts: Vec<&str> = text.split('-').collect();
        match parts.as_slice() {
            [y, m] => {
                let y: i32 = y.parse().map_err(|_| bad())?;
                let m: u32 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&m) {
                    return Err(bad());
                }
                Ok(Period::month(y, m))
            }
            [y, m, d] => {
                let y: i32 = y.parse().map_err(|_| bad())?;
                let m: u8 = m.parse().map_err(|_| bad())?;
                let d: u8 = d.parse().map_err(|_| bad())?;
                let month = time::Month::try_from(m).map_err(|_| bad())?;
                let date = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
                Ok(Period::Day(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
            }
            _ => Err(bad()),
        }
    }

    /// The label [`Period::parse`] reads back.
    pub fn label(self) -> String {
        match self {
            Period::Day(d) => {
                let (y, m, d) = civil_from_days(d);
                format!("{y:04}-{m:02}-{d:02}")
            }
            Period::Week(monday) => {
                match time::Date::from_julian_day(monday + UNIX_EPOCH_JULIAN_DAY) {
                    Ok(date) => {
                        let (y, w, _) = date.to_iso_week_date();
                        format!("{y:04}-W{w:02}")
                    }
                    Err(_) => format!("week-of-day-{monday}"),
                }
            }
            Period::Month(k) => format!("{:04}-{:02}", k.div_euclid(12), k.rem_euclid(12) + 1),
        }
    }
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn periods_follow_the_district_zone() {
        // 2026-03-01T17:00Z is 2026-03-02 01:00 in +08:00: a Monday, in March.
        let t = Timestamp::parse("2026-03-01T17:00:00Z").unwrap();
        let [d, w, m] = Period::of(t, 480);
        assert_eq!(d.label(), "2026-03-02");
        assert_eq!(w.label(), "2026-W10");
        assert_eq!(w, Period::Week(days_from_civil(2026, 3, 2)));
        assert_eq!(m.label(), "2026-03");
        // The same instant in UTC is still Sunday 1 March, in ISO week 9.
        let [d, w, _] = Period::of(t, 0);
        assert_eq!(d.label(), "2026-03-01");
        assert_eq!(w.label(), "2026-W09");
    }

    #[test]
    fn labels_parse_back() {
        for text in ["2026-03-02", "2026-W10", "2026-03", "2020-W53", "1999-12-31"] {
            assert_eq!(Period::parse(text).unwrap().label(), text);
        }
        assert!(Period::parse("2026-13").is_err());
        assert!(Period::parse("March").is_err());
    }

    #[test]
    fn civil_round_trips() {
        for z in [-800_000, -1, 0, 1, 19_000, 20_513, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
