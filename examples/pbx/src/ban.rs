//! Banning sources that keep failing authentication (what fail2ban does for Asterisk):
//! after `max_failures` failed attempts from one IP address within `window` (counted
//! from the first failure of the window), requests from it are dropped without an
//! answer for `ban_time`. Sans-IO: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most this many addresses are tracked: a flood from many sources can't grow the
/// table without bound (the oldest entries go first).
const MAX_TRACKED: usize = 65_536;

/// The ban policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) max_failures: u32,
    pub(crate) window: Duration,
    pub(crate) ban_time: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    /// Failures since `since` (the start of the current window).
    failures: u32,
    since: Instant,
    banned_until: Option<Instant>,
}

/// Failures and bans per source address.
#[derive(Debug)]
pub(crate) struct Bans {
    policy: Policy,
    sources: HashMap<IpAddr, Source>,
}

impl Bans {
    pub(crate) fn new(policy: Policy) -> Bans {
        Bans {
            policy,
            sources: HashMap::new(),
        }
    }

    /// Whether requests from `ip` are to be dropped now.
    pub(crate) fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&ip)
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until)
    }

    /// How many sources are banned now.
    pub(crate) fn banned_count(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.banned_until.is_some_and(|u| now < u))
            .count()
    }

    /// Records a failed authentication; returns true when this failure bans `ip`.
    pub(crate) fn failed(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.policy.max_failures == 0 {
            return false;
        }
        if self.sources.len() >= MAX_TRACKED && !self.sources.contains_key(&ip) {
            self.forget_expired(now);
            if self.sources.len() >= MAX_TRACKED {
                self.forget_oldest();
            }
        }
        let policy = self.policy;
        let source = self.sources.entry(ip).or_insert(Source {
            failures: 0,
            since: now,
            banned_until: None,
        });
        if now.saturating_duration_since(source.since) > policy.window {
            source.failures = 0;
            source.since = now;
        }
        source.failures = source.failures.saturating_add(1);
        if source.failures >= policy.max_failures && source.banned_until.is_none_or(|u| u <= now) {
            // A ban time beyond what Instant can hold falls back to a year.
            source.banned_until = now
                .checked_add(policy.ban_time)
                .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)));
            source.failures = 0;
            source.since = now;
            return true;
        }
        false
    }

    /// Drops sources whose window and ban are both over.
    pub(crate) fn forget_expired(&mut self, now: Instant) {
        let window = self.policy.window;
        self.sources.retain(|_, s| {
            let banned = s.banned_until.is_some_and(|u| now < u);
            banned || now.saturating_duration_since(s.since) <= window
        });
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .sources
            .iter()
            .filter(|(_, s)| s.banned_until.is_none())
            .min_by_key(|(_, s)| s.since)
            .map(|(ip, _)| *ip);
        if let Some(ip) = oldest {
            self.sources.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bans() -> Bans {
        Bans::new(Policy {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban_time: Duration::from_secs(600),
        })
    }

    #[test]
    fn third_failure_within_the_window_bans_until_the_ban_time_is_over() {
        let mut b = bans();
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(!b.failed(ip, t));
        assert!(!b.failed(ip, t + Duration::from_secs(10)));
        assert!(!b.is_banned(ip, t + Duration::from_secs(10)));
        assert!(b.failed(ip, t + Duration::from_secs(20)));
        assert!(b.is_banned(ip, t + Duration::from_secs(20)));
        assert_eq!(b.banned_count(t + Duration::from_secs(20)), 1);
        assert!(!b.is_banned(other, t + Duration::from_secs(20)));
        assert!(b.is_banned(ip, t + Duration::from_secs(619)));
        assert!(!b.is_banned(ip, t + Duration::from_secs(621)));
        // Expired entries are forgotten.
        b.forget_expired(t + Duration::from_secs(700));
        assert!(b.sources.is_empty());
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_ban() {
        let mut b = bans();
        let t = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        // Windows start at a source's first failure: two per window never reach three.
        for i in 0..20 {
            assert!(!b.failed(ip, t + Duration::from_secs(35 * i)));
        }
        assert!(!b.is_banned(ip, t + Duration::from_secs(700)));
    }

    #[test]
    fn zero_max_failures_never_bans_and_the_table_is_bounded() {
        let mut off = Bans::new(Policy {
            max_failures: 0,
            ..bans().policy
        });
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert!(!off.failed(ip, t));
        }
        let mut b = bans();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            b.failed(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(b.sources.len() <= MAX_TRACKED);
    }
}
