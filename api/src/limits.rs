//! Rate limits: per client address, per API key, and a stricter quota on
//! submissions per key, on `governor`'s keyed GCRA limiters.
//!
//! Every request is counted against its client's address (the TCP peer;
//! behind a reverse proxy every client shares the proxy's address, so raise
//! `--rate-per-address` there) and, when it carries a known API key in an
//! `Authorization: Bearer` header or an `api_key` query parameter, against
//! that key too. A request costs one cell, except the Open311 listing,
//! which costs in proportion to the page it asks for
//! ([`crate::open311::listing_cost`]): a full page of 1000 costs as much as
//! 11 small requests, so one client cannot buy a hundred full listings a
//! second with the same budget as a hundred id lookups. A submission
//! (native `POST /api/v1/cases` or Open311 `POST requests`) also takes a
//! cell of its key's submission quota, checked after authentication, so a
//! key sent in an Open311 form body counts as well. A retry under the same
//! `Idempotency-Key` counts too (it is checked before the engine knows it
//! is a retry): refused, it gets the first answer once it waits
//! `Retry-After`.
//!
//! A refused request is a `429 Too Many Requests` with `Retry-After` (whole
//! seconds, at least 1), rendered like every other error of its surface,
//! appends nothing and is counted in `/metrics`
//! (`gridcase_rate_limited_total{limit=...}`).
//!
//! The defaults ([`RateLimits::default`], documented on `gridcase serve`):
//! 100 requests/s per address (burst 200), 50 requests/s per key (burst
//! 100), 20 submissions/min per key (burst 10). Limiter state is kept per
//! address and key seen recently; a background task forgets idle ones
//! ([`Limiters::forget_idle`]), so a scan from many addresses cannot grow it
//! for ever.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ApiError;

/// One limit: `per_period` cells per `period`, at most `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Cells replenished per period (0: no limit).
    pub per_period: u32,
    /// The period.
    pub period: Duration,
    /// Cells a client may spend at once after being idle.
    pub burst: u32,
}

impl Rate {
    /// `n` per second, burst `burst`.
    pub const fn per_second(n: u32, burst: u32) -> Rate {
        Rate { per_period: n, period: Duration::from_secs(1), burst }
    }

    /// `n` per minute, burst `burst`.
    pub const fn per_minute(n: u32, burst: u32) -> Rate {
        Rate { per_period: n, period: Duration::from_secs(60), burst }
    }

    /// No limit.
    pub const OFF: Rate = Rate { per_period: 0, period: Duration::from_secs(1), burst: 0 };

    fn quota(self) -> Option<Quota> {
        let n = NonZeroU32::new(self.per_period)?;
        let burst = NonZeroU32::new(self.burst.max(1))?;
        let every = self.period.checked_div(n.get()).filter(|d| !d.is_zero())?;
        Quota::with_period(every).map(|q| q.allow_burst(burst))
    }
}

/// The server's limits (part of [`crate::ServerOptions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per client address.
    pub per_address: Rate,
    /// Requests per API key.
    pub per_key: Rate,
    /// Submissions (new cases) per API key.
    pub submissions_per_key: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_address: Rate::per_second(100, 200),
            per_key: Rate::per_second(50, 100),
            submissions_per_key: Rate::per_minute(20, 10),
        }
    }
}

impl RateLimits {
    /// No limits at all (tests that are not about limits; a server behind
    /// a gateway that limits already).
    pub const OFF: RateLimits =
        RateLimits { per_address: Rate::OFF, per_key: Rate::OFF, submissions_per_key: Rate::OFF };
}

/// Which limit refused a request (the metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// The client address's request rate.
    Address,
    /// The API key's request rate.
    Key,
    /// The API key's submission quota.
    Submission,
}

impl Limit {
    /// The label value in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Address => "address",
            Limit::Key => "key",
            Limit::Submission => "submission",
        }
    }
}

type Keyed<K> = Option<DefaultKeyedRateLimiter<K>>;

/// The live limiter state of a server.
#[derive(Debug)]
pub struct Limiters {
    address: Keyed<IpAddr>,
    key: Keyed<String>,
    submission: Keyed<String>,
    /// The bursts, to clamp a request's cost (a cost above the burst could
    /// never pass).
    bursts: [u32; 3],
}

impl Limiters {
    /// Limiters for `limits` (a limit of 0 per period is off).
    pub fn new(limits: RateLimits) -> Limiters {
        fn keyed<K: std::hash::Hash + Eq + Clone>(r: Rate) -> Keyed<K> {
            r.quota().map(RateLimiter::keyed)
        }
        Limiters {
            address: keyed(limits.per_address),
            key: keyed(limits.per_key),
            submission: keyed(limits.submissions_per_key),
            bursts: [
                limits.per_address.burst.max(1),
                limits.per_key.burst.max(1),
                limits.submissions_per_key.burst.max(1),
            ],
        }
    }

    fn take<K: std::hash::Hash + Eq + Clone>(
        limiter: &Keyed<K>,
        key: &K,
        cost: u32,
        burst: u32,
        which: Limit,
    ) -> Result<(), Refused> {
        let Some(l) = limiter else { return Ok(()) };
        let n = NonZeroU32::new(cost.clamp(1, burst)).unwrap_or(NonZeroU32::MIN);
        match l.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refused {
                limit: which,
                wait: not_until.wait_time_from(DefaultClock::default().now()),
            }),
            // The clamp above keeps the cost within the burst.
            Err(_) => Err(Refused { limit: which, wait: Duration::from_secs(1) }),
        }
    }

    /// Counts a request of `cost` cells against its address and key.
    pub fn request(
        &self,
        addr: Option<IpAddr>,
        key_id: Option<&str>,
        cost: u32,
    ) -> Result<(), Refused> {
        if let Some(a) = addr {
            Self::take(&self.address, &a, cost, self.bursts[0], Limit::Address)?;
        }
        if let Some(k) = key_id {
            Self::take(&self.key, &k.to_string(), cost, self.bursts[1], Limit::Key)?;
        }
        Ok(())
    }

    /// Counts one submission of the key `key_id`.
    pub fn submission(&self, key_id: &str) -> Result<(), Refused> {
        Self::take(&self.submission, &key_id.to_string(), 1, self.bursts[2], Limit::Submission)
    }

    /// Forgets addresses and keys whose buckets are full again (idle long
    /// enough that forgetting them changes no decision).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.address {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [&self.key, &self.submission].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How many addresses and keys are tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.address.as_ref().map_or(0, |l| l.len())
            + self.key.as_ref().map_or(0, |l| l.len())
            + self.submission.as_ref().map_or(0, |l| l.len())
    }
}

/// A request over a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Which limit.
    pub limit: Limit,
    /// How long until the request would pass.
    pub wait: Duration,
}

impl Refused {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        let s = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        s.max(1)
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> ApiError {
        let what = match r.limit {
            Limit::Address => "requests from this address",
            Limit::Key => "requests with this API key",
            Limit::Submission => "new requests (submissions) with this API key",
        };
        ApiError::TooManyRequests {
            limit: r.limit,
            retry_after: r.retry_after_secs(),
            message: format!(
                "too many {what}; retry after {} s (limits: see `gridcase serve --help`)",
                r.retry_after_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_request_waits() {
        let l =
            Limiters::new(RateLimits { per_address: Rate::per_minute(60, 3), ..RateLimits::OFF });
        let a: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert_eq!(l.request(Some(a), None, 1), Ok(()));
        }
        let refused = l.request(Some(a), None, 1).unwrap_err();
        assert_eq!(refused.limit, Limit::Address);
        assert!(refused.retry_after_secs() >= 1);
        // Another address has its own bucket; keys are not limited here.
        assert_eq!(l.request(Some([10, 0, 0, 2].into()), Some("k1"), 1), Ok(()));
    }

    #[test]
    fn a_costly_request_spends_more_and_never_more_than_the_burst() {
        let l = Limiters::new(RateLimits { per_key: Rate::per_minute(60, 10), ..RateLimits::OFF });
        assert_eq!(l.request(None, Some("k"), 8), Ok(()));
        assert_eq!(l.request(None, Some("k"), 3).unwrap_err().limit, Limit::Key);
        // A cost above the burst is clamped to it: it waits, it is not refused for ever.
        let fresh =
            Limiters::new(RateLimits { per_key: Rate::per_minute(60, 10), ..RateLimits::OFF });
        assert_eq!(fresh.request(None, Some("k"), 500), Ok(()));
    }

    #[test]
    fn submissions_have_their_own_quota_and_off_means_off() {
        let l = Limiters::new(RateLimits {
            submissions_per_key: Rate::per_minute(1, 2),
            ..RateLimits::OFF
        });
        assert_eq!(l.submission("k"), Ok(()));
        assert_eq!(l.submission("k"), Ok(()));
        let r = l.submission("k").unwrap_err();
        assert_eq!(r.limit, Limit::Submission);
        assert!(r.retry_after_secs() > 1 && r.retry_after_secs() <= 60, "{r:?}");
        for _ in 0..1000 {
            assert_eq!(l.request(Some([10, 0, 0, 1].into()), Some("k"), 1), Ok(()));
        }
        let off = Limiters::new(RateLimits::OFF);
        assert_eq!(off.tracked(), 0);
    }
}
