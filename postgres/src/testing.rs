//! For tests across the workspace that need a PostgreSQL server (feature
//! `test-hooks`): the one place that decides what such a test does when
//! there is none.

use std::io::Write;

/// The environment variable naming the database the tests may create
/// schemas in (`.ci/postgres.sh` sets one up and prints the URL).
pub const TEST_URL_VAR: &str = "GRIDCASE_TEST_PG_URL";

/// The PostgreSQL URL `test` may use, from [`TEST_URL_VAR`].
///
/// Without one the test cannot run, and must not pass silently: this
/// writes `SKIPPED: <test>: GRIDCASE_TEST_PG_URL not set` to standard
/// error (straight to the handle, past libtest's output capture, so the
/// line shows in the output of a passing run) and returns `None`, on which
/// the caller skips its PostgreSQL part. When `CI` is set a missing server
/// is a broken CI setup, not a skip: it panics and the test fails.
pub fn test_url(test: &str) -> Option<String> {
    match std::env::var(TEST_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {TEST_URL_VAR} is not set but CI is: the PostgreSQL tests must run in CI"
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {TEST_URL_VAR} not set");
            None
        }
    }
}
