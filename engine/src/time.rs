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
        let t = if let Ok(ms) = text.parse::<i64>() {
            Timestamp(ms)
        } else if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
            Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64)
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
