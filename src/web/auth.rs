//! Basic auth that a flood of wrong passwords cannot turn against the
//! process, and the rate limit.
//!
//! bcrypt is slow on purpose (a cost-12 check takes a quarter of a second of
//! one core), so the checks are bounded: one runs at a time, on a blocking
//! thread that keeps its permit until it ends even when its client has gone;
//! at most [`MAX_WAITING`] more wait, of which [`MAX_WAITING_PER_CLIENT`]
//! from one client address, and a request past that gets 429 at once: a
//! flood from one host keeps one place in the queue, so another client's
//! first login waits for at most two checks before its own. Outcomes are remembered: a password that matched is not checked
//! again (so a scraper that has logged in once is served at once, flood or
//! not), and a wrong one repeated costs nothing. An unknown user's password
//! is checked against the configured hash of the highest cost, so that it
//! takes as long as a known user's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use tokio::sync::Semaphore;

use crate::web::file::{RateLimit, WebSettings};

/// Password checks waiting for the one running, at most.
pub const MAX_WAITING: usize = 64;
/// Of those, from one client address.
pub const MAX_WAITING_PER_CLIENT: usize = 1;
/// Outcomes remembered, of each kind (the memory is cleared when full).
const REMEMBERED: usize = 1024;
/// Credentials longer than this are checked but not remembered.
const REMEMBERED_LEN: usize = 256;

/// What a request's credentials get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A configured user with the right password.
    Allowed,
    /// Missing, malformed, unknown or wrong: 401.
    Denied,
    /// Too many checks waiting: 429, try again.
    Busy,
}

/// (user, password, hash): a hash changed by the file is a new key.
type Key = (String, String, String);

/// The bounded, remembering password checker.
#[derive(Debug)]
pub struct Passwords {
    matched: Mutex<HashSet<Key>>,
    wrong: Mutex<HashSet<Key>>,
    running: Arc<Semaphore>,
    /// Checks waiting, by client address.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    total: usize,
    by_client: HashMap<Option<IpAddr>, usize>,
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            matched: Mutex::new(HashSet::new()),
            wrong: Mutex::new(HashSet::new()),
            running: Arc::new(Semaphore::new(1)),
            waiting: Mutex::new(Waiting::default()),
        }
    }
}

fn remember(set: &Mutex<HashSet<Key>>, key: Key) {
    if key.0.len() + key.1.len() > REMEMBERED_LEN {
        return;
    }
    let mut s = set.lock().unwrap_or_else(|p| p.into_inner());
    if s.len() >= REMEMBERED {
        s.clear();
    }
    s.insert(key);
}

fn remembered(set: &Mutex<HashSet<Key>>, key: &Key) -> bool {
    set.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
}

/// A waiting check's place, given back when dropped (also when its request is dropped).
struct Place<'a> {
    waiting: &'a Mutex<Waiting>,
    client: Option<IpAddr>,
}

impl<'a> Place<'a> {
    fn take(waiting: &'a Mutex<Waiting>, client: Option<IpAddr>) -> Option<Place<'a>> {
        let mut w = waiting.lock().unwrap_or_else(|p| p.into_inner());
        let mine = w.by_client.get(&client).copied().unwrap_or(0);
        if w.total >= MAX_WAITING || mine >= MAX_WAITING_PER_CLIENT {
            return None;
        }
        w.total += 1;
        w.by_client.insert(client, mine + 1);
        Some(Place { waiting, client })
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        w.total = w.total.saturating_sub(1);
        if let Some(n) = w.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.by_client.remove(&self.client);
            }
        }
    }
}

impl Passwords {
    /// Forgets every outcome (the file changed).
    pub fn forget(&self) {
        self.matched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.wrong.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Checks the `Authorization` header of a request from `client` against the users of `s`.
    pub async fn check(
        &self,
        s: &WebSettings,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Verdict {
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return Verdict::Denied;
        };
        let (hash, known) = match (s.users.get(&user), &s.costliest) {
            (Some(h), _) => (h.clone(), true),
            (None, Some(h)) => (h.clone(), false),
            (None, None) => return Verdict::Denied,
        };
        let key = (user, pass, hash);
        if known && remembered(&self.matched, &key) {
            return Verdict::Allowed;
        }
        if remembered(&self.wrong, &key) {
            return Verdict::Denied;
        }
        let Some(place) = Place::take(&self.waiting, client) else {
            return Verdict::Busy;
        };
        let Ok(permit) = self.running.clone().acquire_owned().await else {
            return Verdict::Denied;
        };
        drop(place);
        let (pass, hash) = (key.1.clone(), key.2.clone());
        let matched = tokio::task::spawn_blocking(move || {
            let _running = permit; // held until bcrypt is done, whoever waits
            bcrypt::verify(pass, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if matched && known {
            remember(&self.matched, key);
            Verdict::Allowed
        } else {
            remember(&self.wrong, key);
            Verdict::Denied
        }
    }
}

/// User and password of a `Basic` authorization header.
fn basic_credentials(h: &str) -> Option<(String, String)> {
    let (scheme, rest) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Go's `rate.Limiter`: starts full with `burst` tokens, one more every `interval`.
#[derive(Debug, Default)]
pub struct Bucket {
    limit: Option<RateLimit>,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    /// Takes a token under `limit` at `now`; `false` when there is none.
    pub fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
        let burst = f64::from(limit.burst);
        if self.limit != Some(limit) {
            *self = Bucket {
                limit: Some(limit),
                tokens: burst,
                at: Some(now),
            };
        }
        let elapsed = self
            .at
            .map_or(0.0, |a| now.saturating_duration_since(a).as_secs_f64());
        self.tokens = (self.tokens + elapsed / limit.interval.as_secs_f64()).min(burst);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn credentials_parse() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons")
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".into(), "s3cret:with:colons".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn the_bucket_refills_one_token_per_interval() {
        let limit = RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        };
        let mut b = Bucket::default();
        let t = Instant::now();
        assert!(b.take(limit, t) && b.take(limit, t));
        assert!(!b.take(limit, t), "burst spent");
        assert!(!b.take(limit, t + Duration::from_millis(500)));
        assert!(b.take(limit, t + Duration::from_millis(1000)));
        let none = RateLimit { burst: 0, ..limit };
        assert!(!b.take(none, t), "burst 0 refuses everything, as in Go");
    }
}
