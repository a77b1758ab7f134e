//! Login throttling: failed log-ins are counted per account and per client address over a sliding window; past
//! a number of failures, further attempts are refused (429) for a delay that doubles with each new failure, up
//! to the window, without the password being checked. A successful log-in clears its account's count.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// How log-in failures are throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures of one account or one client address within the window before attempts are refused.
    pub failures: usize,
    /// How far back failures count; also the longest delay.
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { failures: 5, window: Duration::from_secs(15 * 60) }
    }
}

/// What is counted: an account (by its normalised name) or a client address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A login name, trimmed and lower-cased (names that do not exist count too).
    Account(String),
    /// The client's IP address.
    Address(std::net::IpAddr),
}

impl Subject {
    /// The account subject of a typed login name.
    pub fn account(name: &str) -> Self {
        Subject::Account(name.trim().to_lowercase())
    }
}

#[derive(Debug, Default)]
struct Record {
    /// Times of the failures within the window, ms since the epoch, oldest first.
    failures: Vec<u64>,
    /// Attempts are refused until then (ms since the epoch).
    blocked_until: u64,
}

/// The failure counts of a server's log-ins (shared by its handlers).
#[derive(Clone, Debug, Default)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    records: Arc<Mutex<HashMap<Subject, Record>>>,
}

/// Past the allowed failures: how long until attempts are heard again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Whole seconds to wait (at least 1), for `Retry-After`.
    pub retry_after_s: u64,
}

impl LoginThrottle {
    /// A throttle with `config`.
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, records: Arc::default() }
    }

    /// Whether an attempt for these subjects at `now_ms` may be checked at all.
    pub fn check(&self, subjects: &[Subject], now_ms: u64) -> Result<(), Refused> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let until =
            subjects.iter().filter_map(|s| records.get(s)).map(|r| r.blocked_until).max().unwrap_or(0);
        if until > now_ms {
            Err(Refused { retry_after_s: (until - now_ms).div_ceil(1000).max(1) })
        } else {
            Ok(())
        }
    }

    /// Records a failed attempt at `now_ms`; returns the delay it starts when it is past the allowed failures.
    pub fn failed(&self, subjects: &[Subject], now_ms: u64) -> Option<Refused> {
        let window_ms = self.config.window.as_millis() as u64;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        // Forget what is older than the window (bounded memory under a spray of names).
        records.retain(|_, r| {
            r.failures.retain(|&t| t + window_ms > now_ms);
            !r.failures.is_empty() || r.blocked_until > now_ms
        });
        let mut longest = None;
        for s in subjects {
            let r = records.entry(s.clone()).or_default();
            r.failures.push(now_ms);
            if let Some(delay) = delay_ms(r.failures.len(), self.config.failures, window_ms) {
                r.blocked_until = r.blocked_until.max(now_ms + delay);
                longest = longest.max(Some(delay));
            }
        }
        longest.map(|d| Refused { retry_after_s: d.div_ceil(1000).max(1) })
    }

    /// Clears an account's failures after a successful log-in (its client address keeps its count).
    pub fn succeeded(&self, account: &Subject) {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).remove(account);
    }
}

/// The delay after the `n`-th failure within the window: none up to `allowed`, then 1 s, doubling with each
/// further failure, at most the window.
pub fn delay_ms(n: usize, allowed: usize, window_ms: u64) -> Option<u64> {
    if n < allowed {
        return None;
    }
    let doublings = (n - allowed).min(40) as u32;
    Some(1000u64.saturating_mul(1u64 << doublings).min(window_ms.max(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(failures: usize, window_s: u64) -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig { failures, window: Duration::from_secs(window_s) })
    }

    #[test]
    fn the_delay_starts_at_the_allowed_failures_and_doubles_up_to_the_window() {
        assert_eq!(delay_ms(4, 5, 900_000), None);
        assert_eq!(delay_ms(5, 5, 900_000), Some(1000));
        assert_eq!(delay_ms(6, 5, 900_000), Some(2000));
        assert_eq!(delay_ms(9, 5, 900_000), Some(16_000));
        assert_eq!(delay_ms(30, 5, 900_000), Some(900_000));
        assert_eq!(delay_ms(usize::MAX, 5, 900_000), Some(900_000));
    }

    #[test]
    fn five_failures_refuse_the_account_until_the_delay_is_over() {
        let t = throttle(5, 60);
        let who = [Subject::account(" Ann ")];
        for i in 0..4 {
            assert_eq!(t.check(&who, 1000 + i), Ok(()));
            assert_eq!(t.failed(&who, 1000 + i), None);
        }
        assert_eq!(t.failed(&who, 1004), Some(Refused { retry_after_s: 1 }));
        assert_eq!(t.check(&[Subject::account("ann")], 1500), Err(Refused { retry_after_s: 1 }));
        assert_eq!(t.check(&who, 2004), Ok(()), "heard again after the delay");
        assert_eq!(t.failed(&who, 2004), Some(Refused { retry_after_s: 2 }));
        assert_eq!(t.check(&[Subject::account("bob")], 2005), Ok(()), "other accounts are not affected");
    }

    #[test]
    fn failures_age_out_of_the_window_and_success_clears_the_account() {
        let t = throttle(3, 10);
        let who = [Subject::account("ann")];
        t.failed(&who, 0);
        t.failed(&who, 1);
        assert_eq!(t.failed(&who, 10_500), None, "the first two are older than the window");
        t.succeeded(&who[0]);
        t.failed(&who, 10_600);
        assert_eq!(t.failed(&who, 10_700), None, "success started the count afresh");
    }

    #[test]
    fn an_address_spraying_names_is_refused_for_every_name() {
        let t = throttle(5, 60);
        let ip: std::net::IpAddr = "10.0.0.7".parse().unwrap();
        for i in 0..5 {
            t.failed(&[Subject::account(&format!("user{i}")), Subject::Address(ip)], 100);
        }
        let fresh = [Subject::account("admin"), Subject::Address(ip)];
        assert!(t.check(&fresh, 200).is_err());
        assert_eq!(t.check(&[Subject::account("admin")], 200), Ok(()), "the account alone is not blocked");
    }
}
