//! Failed hellos counted per client address, across connections.
//!
//! The per-connection bound (`Limits::max_auth_failures`) only makes a
//! guesser reconnect. Here each address has a window: past
//! `max_failures` failed hellos within it, the address is banned for a
//! while, and its upgrades are answered 429 before a connection exists.
//!
//! Behind a reverse proxy every client has the proxy's address, and one
//! guesser would ban everyone for the ban's length: name the proxy in
//! [`TrustedProxies`](crate::TrustedProxies) and the address it forwards is
//! counted instead (or rate-limit at the proxy and set `max_failures` to 0).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How failed hellos are limited per client address.
///
/// ```
/// use std::time::Duration;
/// use wslink_server::{AuthThrottle, Limits, Server};
///
/// let limits = Limits {
///     auth_throttle: AuthThrottle {
///         max_failures: 10,
///         window: Duration::from_secs(60),
///         ban: Duration::from_secs(600),
///     },
///     ..Limits::default()
/// };
/// let server = Server::builder().limits(limits).build();
/// # drop(server);
/// // Off entirely (e.g. behind a proxy that limits rates itself):
/// let off = AuthThrottle { max_failures: 0, ..AuthThrottle::default() };
/// # drop(off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthThrottle {
    /// Failed hellos from one address within `window` that ban it
    /// (0: no per-address limit).
    pub max_failures: u32,
    /// The window failures are counted in; it starts at an address's first
    /// failure.
    pub window: Duration,
    /// How long a banned address is refused (at most a year is kept).
    pub ban: Duration,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        AuthThrottle {
            max_failures: 30,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        }
    }
}

/// The longest ban kept (a year); longer ones are cut to it.
const MAX_BAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// Addresses tracked at once. Past it, entries whose window and ban have
/// ended are dropped; if none has, the oldest window goes (a flood of
/// spoofed-looking addresses cannot grow the table).
const MAX_TRACKED: usize = 65_536;

struct Record {
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
}

pub(crate) enum Verdict {
    Allowed,
    /// Banned for this much longer.
    Banned(Duration),
}

/// The live state of an [`AuthThrottle`].
pub(crate) struct Throttle {
    config: AuthThrottle,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Throttle {
    pub fn new(config: AuthThrottle) -> Self {
        Throttle {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `addr` may try (at the upgrade, and again at its hello).
    pub fn check(&self, addr: IpAddr) -> Verdict {
        if self.config.max_failures == 0 {
            return Verdict::Allowed;
        }
        let now = Instant::now();
        match self.lock().get(&addr).and_then(|r| r.banned_until) {
            Some(until) if until > now => Verdict::Banned(until - now),
            _ => Verdict::Allowed,
        }
    }

    /// Counts a failed hello; returns the ban it caused, if any.
    pub fn failed(&self, addr: IpAddr) -> Option<Duration> {
        let c = self.config;
        if c.max_failures == 0 {
            return None;
        }
        let now = Instant::now();
        let mut records = self.lock();
        if records.len() >= MAX_TRACKED && !records.contains_key(&addr) {
            records.retain(|_, r| {
                now.duration_since(r.window_start) < c.window
                    || r.banned_until.is_some_and(|u| u > now)
            });
            if records.len() >= MAX_TRACKED {
                let oldest = records
                    .iter()
                    .filter(|(_, r)| r.banned_until.is_none())
                    .min_by_key(|(_, r)| r.window_start)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    records.remove(&oldest);
                } else {
                    // Every tracked address is banned: this one waits
                    // for room rather than evicting a ban.
                    return None;
                }
            }
        }
        let r = records.entry(addr).or_insert(Record {
            failures: 0,
            window_start: now,
            banned_until: None,
        });
        if r.banned_until.is_some_and(|u| u <= now)
            || now.duration_since(r.window_start) >= c.window
        {
            *r = Record {
                failures: 0,
                window_start: now,
                banned_until: None,
            };
        }
        r.failures += 1;
        if r.failures >= c.max_failures && r.banned_until.is_none() {
            // A configured eternity must not overflow the clock.
            let ban = c.ban.min(MAX_BAN);
            r.banned_until = Some(now + ban);
            return Some(ban);
        }
        None
    }

    /// A successful hello forgets the address's failures (a mistyped
    /// secret, then the right one).
    pub fn succeeded(&self, addr: IpAddr) {
        if self.config.max_failures == 0 {
            return;
        }
        let mut records = self.lock();
        if records.get(&addr).is_some_and(|r| r.banned_until.is_none()) {
            records.remove(&addr);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max: u32, window_ms: u64, ban_ms: u64) -> Throttle {
        Throttle::new(AuthThrottle {
            max_failures: max,
            window: Duration::from_millis(window_ms),
            ban: Duration::from_millis(ban_ms),
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_nth_failure_bans_and_only_that_address() {
        let t = throttle(3, 60_000, 60_000);
        assert_eq!(t.failed(A), None);
        assert_eq!(t.failed(A), None);
        assert!(
            matches!(t.check(A), Verdict::Allowed),
            "two failures are not a ban"
        );
        assert_eq!(t.failed(A), Some(Duration::from_millis(60_000)));
        assert!(matches!(t.check(A), Verdict::Banned(_)));
        assert!(matches!(t.check(B), Verdict::Allowed));
    }

    #[test]
    fn bans_and_windows_expire() {
        let t = throttle(2, 50, 50);
        t.failed(A);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.failed(A), None, "the first failure's window had ended");
        assert!(t.failed(A).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(t.check(A), Verdict::Allowed), "the ban ended");
    }

    #[test]
    fn success_forgets_failures_but_not_a_ban() {
        let t = throttle(2, 60_000, 60_000);
        t.failed(A);
        t.succeeded(A);
        assert_eq!(t.failed(A), None, "counting started again");
        assert!(t.failed(A).is_some());
        t.succeeded(A);
        assert!(matches!(t.check(A), Verdict::Banned(_)));
    }

    #[test]
    fn zero_turns_it_off() {
        let t = throttle(0, 60_000, 60_000);
        for _ in 0..100 {
            assert_eq!(t.failed(A), None);
        }
        assert!(matches!(t.check(A), Verdict::Allowed));
    }

    #[test]
    fn an_endless_ban_does_not_overflow() {
        let t = Throttle::new(AuthThrottle {
            max_failures: 1,
            window: Duration::MAX,
            ban: Duration::MAX,
        });
        assert_eq!(t.failed(A), Some(MAX_BAN));
        assert!(matches!(t.check(A), Verdict::Banned(left) if left > Duration::from_secs(3600)));
    }

    #[test]
    fn the_table_is_bounded() {
        let t = throttle(5, 60_000, 60_000);
        for i in 0..(MAX_TRACKED as u32 + 1000) {
            t.failed(IpAddr::V4(i.into()));
        }
        assert!(t.tracked() <= MAX_TRACKED);
    }
}
