//! Time as the engine sees it: a millisecond [`Timestamp`] and an injected [`Clock`].
//!
//! Nothing in the engine reads the system clock directly. The log stamps each
//! record with the time its [`Clock`] gives, and every decision (deadlines,
//! escalations) is taken from recorded times, so replaying a log always yields
//! the same state.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::Error;

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The earliest time the engine takes from a caller or a clock:
/// 2000-01-01T00:00:00Z. With [`LATEST`], the one range every time given
/// to gridcase must fall in ([`Timestamp::in_range`]): outside it a time
/// is a typo or an attack (`9223372036854775807` as an extension made a
/// case that could never be overdue), and arithmetic on it can overflow.
pub const EARLIEST: Timestamp = Timestamp(946_684_800_000);
/// The end (exclusive) of the accepted range: 2100-01-01T00:00:00Z.
pub const LATEST: Timestamp = Timestamp(4_102_444_800_000);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Whole days since the epoch (UTC), the key of daily buckets.
    pub fn day_index(self) -> i64 {
        self.0.div_euclid(DAY_MS)
    }

    /// Parses an RFC 3339 time (`2026-03-03T08:00:00Z`), a date (`2026-03-03`,
    /// midnight UTC) or a number of milliseconds since the epoch. Every
    /// time a person or a client gives goes through here, so a time outside
    /// [`EARLIEST`]..[`LATEST`] is refused here, once, for all of them.
    pub fn parse(text: &str) -> Result<Timestamp, Error> {
        let text = text.trim();
        let t = if let Ok(t) = Timestamp::parse_absolute(text) {
            t
        } else if let Ok(d) =
            time::Date::parse(text, &time::macros::format_description!("[year]-[month]-[day]"))
        {
            Timestamp((d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        } else {
            return Err(Error::InvalidInput(format!(
                "malformed time {text:?}: use RFC 3339 (2026-03-03T08:00:00Z), a date (2026-03-03) or epoch milliseconds"
            )));
        };
        t.in_range(text)
    }

    /// The forms that name an instant without a zone to interpret: epoch
    /// milliseconds and RFC 3339 with an offset or `Z`. Not range-checked.
    fn parse_absolute(text: &str) -> Result<Timestamp, ()> {
        if let Ok(ms) = text.parse::<i64>() {
            Ok(Timestamp(ms))
        } else if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
            Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
        } else {
            Err(())
        }
    }

    /// `Ok(self)` when it lies in [`EARLIEST`]..[`LATEST`], else
    /// [`Error::InvalidInput`] naming `what` (the field or the text given).
    pub fn in_range(self, what: &str) -> Result<Timestamp, Error> {
        if (EARLIEST..LATEST).contains(&self) {
            Ok(self)
        } else {
            Err(Error::InvalidInput(format!(
                "time {what:?} is outside the accepted range {EARLIEST} to {LATEST}"
            )))
        }
    }

    /// RFC 3339 text in UTC (fractional seconds only when non-zero).
    pub fn to_rfc3339(self) -> String {
        match OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000) {
            Ok(t) => t.format(&Rfc3339).unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The district's time zone: what every time a person reads or types is in.
///
/// Times are stored in UTC ([`Timestamp`]); they are shown and parsed in the
/// district's zone, always with the offset printed, so a reader never has to
/// guess. The zone comes from the organisation file (`[district] time_zone`,
/// an IANA name such as `Asia/Shanghai` or a fixed offset such as `+08:00`)
/// and lives in the registry, so the CLI, the API and the reports all read
/// it from one place.
///
/// Reporting periods (days, weeks, months) are integer arithmetic on a fixed
/// offset, which keeps cohorts deterministic; a zone is therefore accepted
/// only if its offset is the same at every instant gridcase accepts
/// ([`EARLIEST`]..[`LATEST`]). Every zone of mainland China qualifies (no
/// daylight saving since 1991); a zone with daylight saving is refused with
/// a clear message rather than bucketed wrongly twice a year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    name: String,
    offset_minutes: i32,
}

impl Default for Zone {
    /// `Asia/Shanghai` (+08:00): the zone of stores and organisation files
    /// written before the zone was configurable, which all assumed it.
    fn default() -> Zone {
        Zone { name: "Asia/Shanghai".to_string(), offset_minutes: 480 }
    }
}

impl Zone {
    /// A zone with a constant offset, `offset_minutes` east of UTC.
    pub fn fixed(offset_minutes: i32) -> Result<Zone, Error> {
        if offset_minutes.abs() > 18 * 60 {
            return Err(Error::InvalidInput(format!(
                "UTC offset of {offset_minutes} minutes is outside -18:00..+18:00"
            )));
        }
        Ok(Zone { name: format_offset(offset_minutes), offset_minutes })
    }

    /// Looks up a zone by IANA name (`Asia/Shanghai`), or reads a fixed
    /// offset (`+08:00`, `UTC`, `Z`). Refuses names the bundled time-zone
    /// database does not know and zones whose offset changes between 2000
    /// and 2100.
    pub fn named(name: &str) -> Result<Zone, Error> {
        let name = name.trim();
        if let Some(minutes) = parse_offset(name) {
            return Zone::fixed(minutes);
        }
        let tz = jiff::tz::TimeZone::get(name).map_err(|_| {
            Error::InvalidInput(format!(
                "unknown time zone {name:?}: use an IANA name such as \"Asia/Shanghai\" or an offset such as \"+08:00\""
            ))
        })?;
        let offset_at = |ms: i64| -> Result<i32, Error> {
            let t = jiff::Timestamp::from_millisecond(ms)
                .map_err(|e| Error::InvalidInput(format!("time zone {name:?}: {e}")))?;
            Ok(tz.to_offset(t).seconds() / 60)
        };
        let first = offset_at(EARLIEST.0)?;
        // Twice a year (January and July) catches every daylight-saving rule
        // and every change of standard offset that lasts at least half a year.
        let mut t = EARLIEST.0;
        while t < LATEST.0 {
            if offset_at(t)? != first {
                return Err(Error::InvalidInput(format!(
                    "time zone {name:?} changes its UTC offset between {EARLIEST} and {LATEST} \
                     (daylight saving or a change of standard time); gridcase's reporting periods need a \
                     constant offset: give the district's standard offset instead, e.g. \"+08:00\""
                )));
            }
            t += 182 * DAY_MS;
        }
        Ok(Zone { name: name.to_string(), offset_minutes: first })
    }

    /// The name as configured (`Asia/Shanghai`, or `+08:00` for an offset).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Minutes east of UTC (480 for China).
    pub fn offset_minutes(&self) -> i32 {
        self.offset_minutes
    }

    /// The offset as printed after every time: `+08:00`.
    pub fn offset_text(&self) -> String {
        format_offset(self.offset_minutes)
    }

    fn utc_offset(&self) -> time::UtcOffset {
        // `fixed` and `named` keep the offset within ±18 h, which `time` accepts.
        time::UtcOffset::from_whole_seconds(self.offset_minutes * 60)
            .unwrap_or(time::UtcOffset::UTC)
    }

    /// `t` as RFC 3339 in the district's zone, whole seconds, offset
    /// printed: `2026-03-03T16:00:00+08:00`. This is the form every
    /// surface shows (CLI, Open311, the dashboard).
    pub fn format(&self, t: Timestamp) -> String {
        let secs = t.0.div_euclid(1000);
        match OffsetDateTime::from_unix_timestamp(secs) {
            Ok(u) => {
                let local = u.to_offset(self.utc_offset());
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]"
                );
                match local.format(&fmt) {
                    Ok(text) => format!("{text}{}", self.offset_text()),
                    Err(_) => t.0.to_string(),
                }
            }
            Err(_) => t.0.to_string(),
        }
    }

    /// The local calendar date of `t`, `2026-03-03`.
    pub fn date(&self, t: Timestamp) -> String {
        let s = self.format(t);
        s.get(..10).map(str::to_string).unwrap_or(s)
    }

    /// Parses a time a person typed, in the district's zone:
    ///
    /// - RFC 3339 with an offset or `Z` (`2026-03-03T08:00:00Z`,
    ///   `2026-03-03T16:00:00+08:00`): that instant;
    /// - a local date and time without offset (`2026-03-03T16:00`,
    ///   `2026-03-03 16:00:00`): that wall-clock time in the district;
    /// - a date (`2026-03-03`): local midnight, the start of that day in the
    ///   district (not UTC midnight, which is 08:00 in China);
    /// - a number: epoch milliseconds.
    ///
    /// The result must lie in [`EARLIEST`]..[`LATEST`], as for
    /// [`Timestamp::parse`].
    pub fn parse(&self, text: &str) -> Result<Timestamp, Error> {
        let trimmed = text.trim();
        if let Ok(t) = Timestamp::parse_absolute(trimmed) {
            return t.in_range(trimmed);
        }
        let local = local_datetime(trimmed).ok_or_else(|| {
            Error::InvalidInput(format!(
                "malformed time {trimmed:?}: use a date (2026-03-03, midnight {}), a local time \
                 (2026-03-03T16:00), RFC 3339 with an offset (2026-03-03T16:00:00+08:00) or epoch milliseconds",
                self.offset_text()
            ))
        })?;
        let t = local.assume_offset(self.utc_offset());
        Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64).in_range(trimmed)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.offset_text() {
            f.write_str(&self.name)
        } else {
            write!(f, "{} ({})", self.name, self.offset_text())
        }
    }
}

fn format_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

/// `+08:00`, `-05:30`, `+0800`, `UTC`, `Z` → minutes east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None if rest.len() <= 2 => (rest, "0"),
        None => return None,
    };
    if !h.bytes().all(|b| b.is_ascii_digit()) || !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 {
        return None;
    }
    Some(sign * (h * 60 + m))
}

fn local_datetime(text: &str) -> Option<time::PrimitiveDateTime> {
    use time::macros::format_description as fd;
    let text = text.replacen(' ', "T", 1);
    if let Ok(d) = time::Date::parse(&text, &fd!("[year]-[month]-[day]")) {
        return Some(d.midnight());
    }
    time::PrimitiveDateTime::parse(&text, &fd!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
        .or_else(|_| {
            time::PrimitiveDateTime::parse(&text, &fd!("[year]-[month]-[day]T[hour]:[minute]"))
        })
        .ok()
}

/// The source of "now" for the log and the engine.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock, for production.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000_000) as i64)
    }
}

/// A clock that only moves when told to: simulations, tests, `tick --now`.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock to `t` (it never goes backwards).
    pub fn set(&self, t: Timestamp) {
        self.0.fetch_max(t.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_reads_and_prints_local_time_with_its_offset() {
        let z = Zone::named("Asia/Shanghai").unwrap();
        assert_eq!(z.offset_minutes(), 480);
        // A bare date is local midnight: 16:00 UTC the day before.
        let d = z.parse("2026-03-05").unwrap();
        assert_eq!(d, Timestamp::parse("2026-03-04T16:00:00Z").unwrap());
        assert_eq!(z.format(d), "2026-03-05T00:00:00+08:00");
        assert_eq!(z.date(d), "2026-03-05");
        // A local time without offset, with T or a space, with or without seconds.
        let t = Timestamp::parse("2026-03-05T01:30:00Z").unwrap();
        for text in ["2026-03-05T09:30", "2026-03-05 09:30", "2026-03-05T09:30:00"] {
            assert_eq!(z.parse(text).unwrap(), t, "{text}");
        }
        // An explicit offset or Z wins over the zone; epoch ms is an instant.
        assert_eq!(z.parse("2026-03-05T01:30:00Z").unwrap(), t);
        assert_eq!(z.parse("2026-03-05T09:30:00+08:00").unwrap(), t);
        assert_eq!(z.parse(&t.0.to_string()).unwrap(), t);
        // Printing drops milliseconds (whole seconds everywhere) and keeps the offset.
        assert_eq!(z.format(t.plus_ms(320)), "2026-03-05T09:30:00+08:00");
        // The range check still applies, and nonsense says what it accepts.
        assert!(z.parse("1999-12-31").is_err());
        let e = z.parse("yesterday").unwrap_err().to_string();
        assert!(e.contains("+08:00"), "{e}");
    }

    #[test]
    fn zones_are_named_or_fixed_and_daylight_saving_is_refused() {
        assert_eq!(Zone::default(), Zone::named("Asia/Shanghai").unwrap());
        assert_eq!(Zone::named("Asia/Urumqi").unwrap().offset_minutes(), 360);
        let f = Zone::named("+05:30").unwrap();
        assert_eq!((f.offset_minutes(), f.name()), (330, "+05:30"));
        assert_eq!(Zone::named("-0800").unwrap().offset_minutes(), -480);
        assert_eq!(Zone::named("UTC").unwrap().offset_minutes(), 0);
        assert_eq!(f.format(Timestamp(0)), "1970-01-01T05:30:00+05:30");
        let e = Zone::named("Europe/Berlin").unwrap_err().to_string();
        assert!(e.contains("changes its UTC offset"), "{e}");
        assert!(Zone::named("Mars/Olympus").unwrap_err().to_string().contains("unknown time zone"));
        assert!(Zone::named("+19:00").is_err());
        assert!(Zone::named("+08:75").is_err());
        assert_eq!(Zone::named("Asia/Shanghai").unwrap().to_string(), "Asia/Shanghai (+08:00)");
    }

    #[test]
    fn parses_the_three_forms() {
        let a = Timestamp::parse("2026-03-03T00:00:00Z").unwrap();
        let b = Timestamp::parse("2026-03-03").unwrap();
        assert_eq!(a, b);
        assert_eq!(Timestamp::parse(&a.0.to_string()).unwrap(), a);
        assert_eq!(a.to_rfc3339(), "2026-03-03T00:00:00Z");
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn times_outside_2000_to_2100_are_refused() {
        for t in ["9223372036854775807", "-9223372036854775808", "0", "2100-01-01", "1999-12-31"] {
            assert!(Timestamp::parse(t).is_err(), "{t}");
        }
        assert_eq!(Timestamp::parse("2000-01-01").unwrap(), EARLIEST);
        assert!(Timestamp::parse("2099-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn manual_clock_never_goes_back() {
        let c = ManualClock::new(Timestamp(1000));
        c.set(Timestamp(500));
        assert_eq!(c.now(), Timestamp(1000));
        c.advance(10);
        assert_eq!(c.now(), Timestamp(1010));
    }
}
