//! Browser sessions for the dashboard: an API key exchanged once for a
//! session cookie.
//!
//! A browser cannot keep an API key safe (anything a page's script can
//! read, an injected script can read too), so the sign-in form posts the key
//! once and gets back an `HttpOnly`, `SameSite=Strict` cookie holding a
//! random session token, plus a CSRF token the page keeps in memory. The
//! server keeps, per session, the *hash* of the key it was opened with (the
//! same hash the key file stores), so the session acts exactly as the key:
//! the actor's role and unit are read from the registry on every request,
//! and revoking the key ends its sessions.
//!
//! Why both SameSite and a CSRF token: SameSite=Strict already keeps other
//! sites' forms from carrying the cookie, but browsers older than the
//! attribute ignore it; the token (sent back in `X-CSRF-Token` on every
//! state-changing request that authenticates by cookie) does not depend on
//! the browser. Sessions expire after [`SESSION_TTL`] whatever their use,
//! and the store holds at most [`MAX_SESSIONS`] (the oldest go first), so a
//! client that signs in in a loop cannot grow the server's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// The name of the session cookie.
pub const COOKIE: &str = "gridcase_session";
/// The header a cookie-authenticated state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from sign-in (a working day and a bit).
pub const SESSION_TTL: Duration = Duration::from_secs(10 * 3600);
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The stored hash of the API key the session was opened with.
    pub key_hash: String,
    /// The token state-changing requests must echo in [`CSRF_HEADER`].
    pub csrf: String,
    /// When it stops being accepted.
    pub expires: Instant,
}

/// The live sessions, by the hash of their token (the token itself is only
/// in the browser's cookie).
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Compares two secrets in time independent of where they first differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Opens a session for the key whose stored hash is `key_hash`; returns
    /// the cookie token and the session.
    pub fn open(&self, key_hash: String) -> (String, Session) {
        let token = random_token();
        let session =
            Session { key_hash, csrf: random_token(), expires: Instant::now() + SESSION_TTL };
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            // The sessions that expire first are the oldest: all have the same TTL.
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(token_hash(&token), session.clone());
        (token, session)
    }

    /// The session of a cookie token, if it exists and has not expired.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let h = token_hash(token);
        match map.get(&h) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&h);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out); whether there was one.
    pub fn close(&self, token: &str) -> bool {
        self.by_token.lock().unwrap_or_else(|p| p.into_inner()).remove(&token_hash(token)).is_some()
    }

    /// Whether `presented` is the session's CSRF token.
    pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| same_secret(p, &session.csrf))
    }
}

/// The session token in a `Cookie` header, if there is one.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that stores `token` in the browser (`secure`: only
/// over HTTPS).
pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_only_until_closed() {
        let s = Sessions::default();
        let (token, session) = s.open("h".into());
        assert_eq!(s.get(&token).map(|x| x.key_hash), Some("h".to_string()));
        assert!(s.get("not-the-token").is_none());
        assert!(Sessions::csrf_ok(&session, Some(&session.csrf)));
        assert!(!Sessions::csrf_ok(&session, Some("x")));
        assert!(!Sessions::csrf_ok(&session, None));
        assert!(s.close(&token));
        assert!(s.get(&token).is_none());
    }

    #[test]
    fn an_expired_session_is_refused() {
        let s = Sessions::default();
        let (token, _) = s.open("h".into());
        let h = token_hash(&token);
        if let Some(x) = s.by_token.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&h) {
            x.expires = Instant::now() - Duration::from_secs(1);
        }
        assert!(s.get(&token).is_none());
    }

    #[test]
    fn the_cookie_is_read_among_others_and_written_http_only_strict() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; gridcase_session=abc; b=2".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
        let c = set_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie("abc", false).contains("Secure"));
    }
}
