//! The API budget: what Meta says we have used (`X-App-Usage`,
//! `X-Business-Use-Case-Usage`), when to stop calling, and the optional
//! hard cap of calls per token per hour.
//!
//! A target stops calling the API when its business-use-case usage reaches
//! `collect.usage_threshold_percent` or it gets a rate-limit error; every
//! target on the same token stops for app-level limits (`X-App-Usage`, code 4).
//! It resumes when Meta's regain time has passed, or after an exponential
//! backoff with jitter when no regain time is given.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::CollectConfig;
use crate::error::{GraphError, RateLimitScope};
use crate::graph::usage::Usage;
use crate::secret::AccessToken;

/// Budget settings.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    /// Usage at or above this stops calls.
    pub threshold_percent: f64,
    /// First backoff when no regain time is given.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Hard cap of calls per token per rolling hour.
    pub max_requests_per_hour: Option<u32>,
}

impl From<&CollectConfig> for BudgetSettings {
    fn from(c: &CollectConfig) -> Self {
        BudgetSettings {
            threshold_percent: c.usage_threshold_percent,
            backoff_initial: c.backoff_initial,
            backoff_max: c.backoff_max,
            max_requests_per_hour: c.max_requests_per_hour,
        }
    }
}

#[derive(Debug, Default)]
struct Block {
    until: Option<Instant>,
    strikes: u32,
}

impl Block {
    fn active(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| *u > now)
    }
}

#[derive(Debug, Default)]
struct TokenState {
    block: Block,
    calls: VecDeque<Instant>,
}

#[derive(Debug, Default)]
struct State {
    targets: HashMap<String, Block>,
    tokens: HashMap<AccessToken, TokenState>,
}

/// Why a call must not be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Usage or a rate-limit error: wait until then.
    Throttled(Instant),
    /// `collect.max_requests_per_hour` reached for the token.
    HourlyCap(Instant),
}

impl Hold {
    /// When calls may resume.
    pub fn until(self) -> Instant {
        match self {
            Hold::Throttled(t) | Hold::HourlyCap(t) => t,
        }
    }
}

/// Shared budget of all targets.
#[derive(Debug)]
pub struct Budget {
    settings: BudgetSettings,
    state: Arc<Mutex<State>>,
}

const HOUR: Duration = Duration::from_secs(3600);

impl Budget {
    /// A budget with nothing used.
    pub fn new(settings: BudgetSettings) -> Self {
        Budget {
            settings,
            state: Arc::default(),
        }
    }

    /// A budget with new settings that shares this one's holds and call
    /// counts (a config reload must not forget them).
    pub fn with_settings(&self, settings: BudgetSettings) -> Self {
        Budget {
            settings,
            state: self.state.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `target` on `token` is held back, without reserving a call.
    pub fn hold(&self, target: &str, token: &AccessToken) -> Option<Hold> {
        self.check(&mut self.lock(), target, token, false).err()
    }

    /// Checks and, if allowed, reserves one call for `token`, under one
    /// lock: concurrent targets cannot overshoot the hourly cap.
    pub fn acquire(&self, target: &str, token: &AccessToken) -> Result<(), Hold> {
        self.check(&mut self.lock(), target, token, true)
    }

    fn check(
        &self,
        st: &mut State,
        target: &str,
        token: &AccessToken,
        reserve: bool,
    ) -> Result<(), Hold> {
        let now = Instant::now();
        let blocked = [
            st.targets.get(target).and_then(|b| b.active(now)),
            st.tokens.get(token).and_then(|t| t.block.active(now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(until) = blocked {
            return Err(Hold::Throttled(until));
        }
        let Some(cap) = self.settings.max_requests_per_hour else {
            return Ok(());
        };
        let t = st.tokens.entry(token.clone()).or_default();
        while t
            .calls
            .front()
            .is_some_and(|c| now.duration_since(*c) >= HOUR)
        {
            t.calls.pop_front();
        }
        if t.calls.len() >= cap as usize {
            let oldest = t.calls.front().copied().unwrap_or(now);
            return Err(Hold::HourlyCap(oldest + HOUR));
        }
        if reserve {
            t.calls.push_back(now);
        }
        Ok(())
    }

    fn backoff(&self, strikes: u32) -> Duration {
        let base = self.settings.backoff_initial.as_secs_f64() * 2f64.powi(strikes.min(30) as i32);
        let capped = base.min(self.settings.backoff_max.as_secs_f64());
        // Full jitter in [capped/2, capped]: replicas do not come back in step.
        let jittered = capped * rand::rng().random_range(0.5..=1.0);
        Duration::from_secs_f64(jittered)
    }

    /// Takes in one response: its usage headers and its error, if any.
    /// Returns true if the target or its token is now held back.
    pub fn observe(
        &self,
        target: &str,
        token: &AccessToken,
        usage: &Usage,
        error: Option<&GraphError>,
    ) -> bool {
        let now = Instant::now();
        let threshold = self.settings.threshold_percent;
        let limited = error.and_then(GraphError::rate_limit);
        let app_hot = usage.app_reported && usage.highest(true) >= threshold;
        let target_hot = usage.highest(false) >= threshold;
        let regain = usage.regain.filter(|r| !r.is_zero());
        let mut st = self.lock();
        let mut held = false;
        if app_hot || limited == Some(RateLimitScope::App) {
            let strikes = st.tokens.get(token).map_or(0, |t| t.block.strikes);
            let wait = regain.unwrap_or_else(|| self.backoff(strikes));
            let t = st.tokens.entry(token.clone()).or_default();
            t.block.until = Some(now + wait);
            t.block.strikes = strikes + 1;
            held = true;
        } else if let Some(t) = st.tokens.get_mut(token) {
            t.block.strikes = 0;
        }
        if target_hot || limited == Some(RateLimitScope::Target) {
            let strikes = st.targets.get(target).map_or(0, |b| b.strikes);
            let wait = regain.unwrap_or_else(|| self.backoff(strikes));
            let b = st.targets.entry(target.to_string()).or_default();
            b.until = Some(now + wait);
            b.strikes = strikes + 1;
            held = true;
        } else if let Some(b) = st.targets.get_mut(target) {
            b.strikes = 0;
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cap: Option<u32>) -> BudgetSettings {
        BudgetSettings {
            threshold_percent: 90.0,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(60),
            max_requests_per_hour: cap,
        }
    }

    #[test]
    fn target_and_token_holds() {
        let b = Budget::new(settings(None));
        let tok = AccessToken::new("t1");
        let other = AccessToken::new("t2");
        assert!(b.acquire("a", &tok).is_ok());
        // Business-use-case usage over the threshold holds only that target.
        let hot = Usage::parse(
            None,
            Some(r#"{"1":[{"type":"x","call_count":91,"estimated_time_to_regain_access":2}]}"#),
        );
        assert!(b.observe("a", &tok, &hot, None));
        let Err(Hold::Throttled(until)) = b.acquire("a", &tok) else {
            panic!("target a not held")
        };
        assert!(until > Instant::now() + Duration::from_secs(100));
        assert!(b.acquire("b", &tok).is_ok());
        // App-level usage holds every target on the token, not other tokens.
        let app = Usage::parse(Some(r#"{"call_count":99}"#), None);
        assert!(b.observe("b", &tok, &app, None));
        assert!(b.acquire("c", &tok).is_err());
        assert!(b.acquire("c", &other).is_ok());
    }

    #[test]
    fn rate_limit_errors_back_off_exponentially_within_the_cap() {
        let b = Budget::new(settings(None));
        let tok = AccessToken::new("t");
        let err = GraphError::Api {
            status: 400,
            code: 80007,
            subcode: None,
            message: String::new(),
            is_transient: false,
        };
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert!(b.observe("a", &tok, &Usage::default(), Some(&err)));
            let until = b.hold("a", &tok).unwrap().until();
            waits.push(until.duration_since(Instant::now()).as_secs_f64());
        }
        assert!(waits[0] <= 10.0 && waits[0] >= 4.9, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= 60.0), "{waits:?}");
        assert!(waits[4] >= 29.9, "{waits:?}");
    }

    #[test]
    fn hourly_cap_per_token() {
        let b = Budget::new(settings(Some(3)));
        let tok = AccessToken::new("t");
        for _ in 0..3 {
            assert!(b.acquire("a", &tok).is_ok());
        }
        assert!(matches!(b.acquire("b", &tok), Err(Hold::HourlyCap(_))));
        assert!(b.acquire("b", &AccessToken::new("u")).is_ok());
    }

    #[test]
    fn hourly_cap_holds_under_concurrency() {
        let b = Arc::new(Budget::new(settings(Some(50))));
        let tok = AccessToken::new("t");
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (b, tok) = (b.clone(), tok.clone());
                    s.spawn(move || {
                        (0..100)
                            .filter(|_| b.acquire(&format!("t{i}"), &tok).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 50);
    }
}
