//! Banning sources that keep failing authentication (what fail2ban does for Asterisk),
//! without cutting off the other phones behind the same address (a NAT, an office).
//! Sans-IO: the caller passes the time.
//!
//! - **A (source address, user) pair** that fails `max_failures` times within `window`
//!   (counted from the first failure of the window) is ignored for `ban_time`: a
//!   softphone retrying a wrong password (baresip sends 10 REGISTERs in ~2 ms) loses
//!   its own line, not its neighbours'.
//! - **A whole address** is banned only when it looks like a scanner: failures for
//!   `scanner_users` different users within a window, or more than `max_challenges`
//!   requests without credentials within a window (an unauthenticated flood). An
//!   address where some user authenticated successfully within `ban_time` is never
//!   banned wholesale: its pairs are, one by one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most this many addresses, and as many (address, user) pairs, are tracked: a
/// flood from many sources can't grow the tables without bound (the oldest go first).
const MAX_TRACKED: usize = 65_536;

/// User names are cut to this many bytes in the tables (they come from the peer).
const MAX_USER_LEN: usize = 64;

/// The ban policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Failures of one (address, user) pair within `window` that ban the pair
    /// (0: no banning at all).
    pub(crate) max_failures: u32,
    pub(crate) window: Duration,
    pub(crate) ban_time: Duration,
    /// Different users failing from one address within `window` that ban the address
    /// (0: never for this reason).
    pub(crate) scanner_users: u32,
    /// Requests without credentials from one address within `window` above which the
    /// address is banned (0: never for this reason).
    pub(crate) max_challenges: u32,
}

/// What a failure or a challenge led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Banned {
    /// The (address, user) pair is now banned.
    Pair,
    /// The whole address is now banned.
    Source,
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    /// Failures since `since` (the start of the current window).
    failures: u32,
    since: Instant,
    banned_until: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Source {
    /// Start of the current window.
    since: Instant,
    /// Different users that failed in this window (at most `scanner_users`).
    users: Vec<Box<str>>,
    /// Requests without credentials in this window.
    challenges: u32,
    banned_until: Option<Instant>,
    /// A user authenticated from here: never banned wholesale before this.
    trusted_until: Option<Instant>,
}

impl Source {
    fn new(now: Instant) -> Source {
        Source {
            since: now,
            users: Vec::new(),
            challenges: 0,
            banned_until: None,
            trusted_until: None,
        }
    }

    /// Starts a new window when the current one is over.
    fn roll(&mut self, now: Instant, window: Duration) {
        if now.saturating_duration_since(self.since) > window {
            self.since = now;
            self.users.clear();
            self.challenges = 0;
        }
    }

    fn trusted(&self, now: Instant) -> bool {
        self.trusted_until.is_some_and(|u| now < u)
    }

    /// Still worth keeping at `now`.
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.banned_until.is_some_and(|u| now < u)
            || self.trusted(now)
            || now.saturating_duration_since(self.since) <= window
    }
}

/// Failures and bans per (address, user) pair and per address.
#[derive(Debug)]
pub(crate) struct Bans {
    policy: Policy,
    pairs: HashMap<(IpAddr, Box<str>), Pair>,
    sources: HashMap<IpAddr, Source>,
}

/// A user name as the tables hold it: cut to [`MAX_USER_LEN`] bytes.
fn user_key(user: &str) -> &str {
    let mut end = user.len().min(MAX_USER_LEN);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
}

/// `now + d`, or a year on when `d` does not fit in an Instant.
fn until(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
}

impl Bans {
    pub(crate) fn new(policy: Policy) -> Bans {
        Bans {
            policy,
            pairs: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Whether every request from `ip` is to be dropped now.
    pub(crate) fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&ip)
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until)
    }

    /// Whether requests from `ip` for `user` are to be dropped now (the address being
    /// banned, or the pair).
    pub(crate) fn is_pair_banned(&self, ip: IpAddr, user: &str, now: Instant) -> bool {
        self.is_banned(ip, now)
            || self
                .pairs
                .get(&(ip, Box::from(user_key(user))))
                .and_then(|p| p.banned_until)
                .is_some_and(|until| now < until)
    }

    /// How many addresses and pairs are banned now.
    pub(crate) fn banned_count(&self, now: Instant) -> (usize, usize) {
        let banned = |u: Option<Instant>| u.is_some_and(|u| now < u);
        (
            self.sources
                .values()
                .filter(|s| banned(s.banned_until))
                .count(),
            self.pairs
                .values()
                .filter(|p| banned(p.banned_until))
                .count(),
        )
    }

    fn source(&mut self, ip: IpAddr, now: Instant) -> &mut Source {
        if self.sources.len() >= MAX_TRACKED && !self.sources.contains_key(&ip) {
            let window = self.policy.window;
            evict(
                &mut self.sources,
                |s| s.live(now, window),
                |s| (s.banned_until.is_some_and(|u| now < u), s.since),
            );
        }
        let source = self.sources.entry(ip).or_insert_with(|| Source::new(now));
        source.roll(now, self.policy.window);
        source
    }

    /// Bans the address `ip` unless a user authenticated from it recently.
    fn ban_source(&mut self, ip: IpAddr, now: Instant) -> Option<Banned> {
        let ban_time = self.policy.ban_time;
        let source = self.source(ip, now);
        if source.trusted(now) {
            return None;
        }
        source.banned_until = until(now, ban_time);
        source.users.clear();
        source.challenges = 0;
        source.since = now;
        Some(Banned::Source)
    }

    /// Records a failed authentication of `user` from `ip` (a wrong password, or an
    /// unknown user); says what it banned, if anything.
    pub(crate) fn failed(&mut self, ip: IpAddr, user: &str, now: Instant) -> Option<Banned> {
        let policy = self.policy;
        if policy.max_failures == 0 {
            return None;
        }
        let user = user_key(user);
        let key = (ip, Box::from(user));
        if self.pairs.len() >= MAX_TRACKED && !self.pairs.contains_key(&key) {
            let window = policy.window;
            evict(
                &mut self.pairs,
                |p| {
                    p.banned_until.is_some_and(|u| now < u)
                        || now.saturating_duration_since(p.since) <= window
                },
                |p| (p.banned_until.is_some_and(|u| now < u), p.since),
            );
        }
        let pair = self.pairs.entry(key).or_insert(Pair {
            failures: 0,
            since: now,
            banned_until: None,
        });
        if now.saturating_duration_since(pair.since) > policy.window {
            pair.failures = 0;
            pair.since = now;
        }
        pair.failures = pair.failures.saturating_add(1);
        let pair_banned =
            pair.failures >= policy.max_failures && pair.banned_until.is_none_or(|u| u <= now);
        if pair_banned {
            pair.banned_until = until(now, policy.ban_time);
            pair.failures = 0;
            pair.since = now;
        }
        let source = self.source(ip, now);
        let scanner_users = usize::try_from(policy.scanner_users).unwrap_or(usize::MAX);
        if scanner_users > 0
            && source.users.len() < scanner_users
            && !source.users.iter().any(|u| &**u == user)
        {
            source.users.push(Box::from(user));
        }
        if scanner_users > 0
            && source.users.len() >= scanner_users
            && let Some(banned) = self.ban_source(ip, now)
        {
            return Some(banned);
        }
        pair_banned.then_some(Banned::Pair)
    }

    /// Records a request from `ip` that came without credentials (and got a
    /// challenge); true when it bans the address as an unauthenticated flood.
    pub(crate) fn challenged(&mut self, ip: IpAddr, now: Instant) -> bool {
        let policy = self.policy;
        if policy.max_failures == 0 || policy.max_challenges == 0 {
            return false;
        }
        let source = self.source(ip, now);
        source.challenges = source.challenges.saturating_add(1);
        source.challenges > policy.max_challenges && self.ban_source(ip, now).is_some()
    }

    /// Records a successful authentication of `user` from `ip`: the pair's failures
    /// are forgiven and the address is not banned wholesale for `ban_time`.
    pub(crate) fn succeeded(&mut self, ip: IpAddr, user: &str, now: Instant) {
        if self.policy.max_failures == 0 {
            return;
        }
        self.pairs.remove(&(ip, Box::from(user_key(user))));
        let ban_time = self.policy.ban_time.max(self.policy.window);
        let source = self.source(ip, now);
        source.trusted_until = until(now, ban_time);
    }

    /// Drops entries whose window, ban and trust are all over.
    pub(crate) fn forget_expired(&mut self, now: Instant) {
        let window = self.policy.window;
        self.sources.retain(|_, s| s.live(now, window));
        self.pairs.retain(|_, p| {
            p.banned_until.is_some_and(|u| now < u)
                || now.saturating_duration_since(p.since) <= window
        });
    }
}

/// Makes room in a full table: drops the entries that are no longer live, and if that
/// is not enough, the oldest eighth of the others (so that a table kept full by a
/// flood costs one pass per `MAX_TRACKED / 8` insertions, not one per insertion).
/// Banned entries go last (ranked `(banned, since)`): a flood of new sources must not
/// lift a ban.
fn evict<K: Clone + Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V>,
    live: impl Fn(&V) -> bool,
    rank: impl Fn(&V) -> (bool, Instant),
) {
    table.retain(|_, v| live(v));
    if table.len() < MAX_TRACKED {
        return;
    }
    let mut ages: Vec<((bool, Instant), K)> =
        table.iter().map(|(k, v)| (rank(v), k.clone())).collect();
    let drop = (MAX_TRACKED / 8).max(1).min(ages.len());
    ages.select_nth_unstable_by_key(drop - 1, |(r, _)| *r);
    for (_, k) in ages.into_iter().take(drop) {
        table.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban_time: Duration::from_secs(600),
            scanner_users: 5,
            max_challenges: 100,
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn third_failure_within_the_window_bans_the_pair_until_the_ban_time_is_over() {
        let mut b = Bans::new(policy());
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(b.failed(ip, "1000", t), None);
        assert_eq!(b.failed(ip, "1000", t + s(10)), None);
        assert!(!b.is_pair_banned(ip, "1000", t + s(10)));
        assert_eq!(b.failed(ip, "1000", t + s(20)), Some(Banned::Pair));
        assert!(b.is_pair_banned(ip, "1000", t + s(20)));
        assert_eq!(b.banned_count(t + s(20)), (0, 1));
        // The pair only: the address, and the same user elsewhere, are still served.
        assert!(!b.is_banned(ip, t + s(20)));
        assert!(!b.is_pair_banned(ip, "1001", t + s(20)));
        assert!(!b.is_pair_banned(other, "1000", t + s(20)));
        assert!(b.is_pair_banned(ip, "1000", t + s(619)));
        assert!(!b.is_pair_banned(ip, "1000", t + s(621)));
        // Expired entries are forgotten.
        b.forget_expired(t + s(700));
        assert!(b.pairs.is_empty());
        assert!(b.sources.is_empty());
    }

    #[test]
    fn a_retry_storm_from_one_user_does_not_ban_the_address() {
        let mut b = Bans::new(Policy {
            max_failures: 10,
            ..policy()
        });
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        // baresip's ten REGISTERs in 2 ms, twice.
        let mut outcomes = Vec::new();
        for i in 0..20 {
            if !b.is_pair_banned(ip, "1000", t + Duration::from_micros(200 * i)) {
                outcomes.push(b.failed(ip, "1000", t + Duration::from_micros(200 * i)));
            }
        }
        assert_eq!(outcomes.len(), 10, "the banned pair's requests are dropped");
        assert_eq!(outcomes.last(), Some(&Some(Banned::Pair)));
        assert!(!b.is_banned(ip, t + s(1)));
        assert!(!b.is_pair_banned(ip, "1001", t + s(1)));
        b.succeeded(ip, "1001", t + s(1));
        assert!(!b.is_pair_banned(ip, "1001", t + s(2)));
    }

    #[test]
    fn failures_for_many_users_ban_a_scanner() {
        let mut b = Bans::new(policy());
        let t = Instant::now();
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        for (i, user) in ["1000", "1001", "1002", "admin"].iter().enumerate() {
            assert_eq!(b.failed(ip, user, t + s(i as u64)), None);
            // The same user again is not a new one.
            assert_eq!(b.failed(ip, user, t + s(i as u64)), None);
        }
        assert!(!b.is_banned(ip, t + s(5)));
        assert_eq!(b.failed(ip, "root", t + s(5)), Some(Banned::Source));
        assert!(b.is_banned(ip, t + s(5)));
        assert!(b.is_pair_banned(ip, "1009", t + s(5)));
        assert_eq!(b.banned_count(t + s(5)), (1, 0));
        assert!(!b.is_banned(ip, t + s(606)));
        // Users spread over more than a window are not a scan.
        let slow: IpAddr = "198.51.100.10".parse().unwrap();
        for i in 0..20 {
            assert_eq!(b.failed(slow, &format!("{i}"), t + s(30 * i)), None);
        }
    }

    #[test]
    fn an_address_where_someone_authenticated_is_not_banned_wholesale() {
        let mut b = Bans::new(policy());
        let t = Instant::now();
        let office: IpAddr = "203.0.113.1".parse().unwrap();
        b.succeeded(office, "1001", t);
        for i in 0..10 {
            let user = format!("{}", 2000 + i);
            for _ in 0..3 {
                b.failed(office, &user, t + s(1));
            }
            assert!(b.is_pair_banned(office, &user, t + s(1)));
        }
        assert!(!b.is_banned(office, t + s(1)));
        assert!(!b.is_pair_banned(office, "1001", t + s(1)));
        for _ in 0..1000 {
            assert!(!b.challenged(office, t + s(2)));
        }
        // Trust lasts ban_time after the last success.
        let later = t + s(601);
        for i in 0..5 {
            b.failed(office, &format!("{}", 3000 + i), later);
        }
        assert!(b.is_banned(office, later));
    }

    #[test]
    fn an_unauthenticated_flood_bans_the_address() {
        let mut b = Bans::new(policy());
        let t = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..100 {
            assert!(!b.challenged(ip, t));
        }
        assert!(b.challenged(ip, t + s(1)));
        assert!(b.is_banned(ip, t + s(1)));
        // Spread over windows it is a busy NAT, not a flood.
        let nat: IpAddr = "2001:db8::2".parse().unwrap();
        for i in 0..1000 {
            assert!(!b.challenged(nat, t + s(i)));
        }
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_ban() {
        let mut b = Bans::new(policy());
        let t = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        // Windows start at a pair's first failure: two per window never reach three.
        for i in 0..20 {
            assert_eq!(b.failed(ip, "1000", t + s(35 * i)), None);
        }
        assert!(!b.is_pair_banned(ip, "1000", t + s(700)));
    }

    #[test]
    fn a_success_forgives_the_pair() {
        let mut b = Bans::new(policy());
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        b.failed(ip, "1000", t);
        b.failed(ip, "1000", t);
        b.succeeded(ip, "1000", t);
        assert_eq!(b.failed(ip, "1000", t), None);
        assert_eq!(b.failed(ip, "1000", t), None);
    }

    #[test]
    fn zero_max_failures_never_bans_and_the_tables_are_bounded() {
        let mut off = Bans::new(Policy {
            max_failures: 0,
            ..policy()
        });
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..100 {
            assert_eq!(off.failed(ip, &format!("{i}"), t), None);
            assert!(!off.challenged(ip, t));
        }
        let mut b = Bans::new(Policy {
            scanner_users: 0,
            ..policy()
        });
        let banned: IpAddr = "192.0.2.200".parse().unwrap();
        for _ in 0..3 {
            b.failed(banned, "1000", t);
        }
        for i in 0..(MAX_TRACKED as u32 + 10) {
            b.failed(IpAddr::from(i.to_be_bytes()), "1000", t + s(1));
            b.failed(ip, &format!("user{i}"), t + s(1));
        }
        assert!(b.sources.len() <= MAX_TRACKED);
        assert!(b.pairs.len() <= MAX_TRACKED);
        // A flood of new entries does not lift a ban.
        assert!(b.is_pair_banned(banned, "1000", t + s(2)));
        // Long user names are cut.
        b.failed(ip, &"x".repeat(10_000), t);
        assert!(b.pairs.keys().all(|(_, u)| u.len() <= MAX_USER_LEN));
    }
}
