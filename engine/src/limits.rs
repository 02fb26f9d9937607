//! Limits that keep one player, or one network, from taking the chat down
//! for everybody: messages per second per user and room (a token bucket:
//! a burst, then a sustained rate), and open stream connections per IP.
//! Going over answers with a readable refusal; nothing is stored.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

/// Checks between two sweeps of idle rate-limit entries.
const SWEEP_EVERY: u64 = 10_000;

/// How fast one user may send in one room. A bucket is keyed by a hash of
/// the room and the user with this process's random keys (nobody can pick
/// a user name whose bucket is another's): checking a send copies no string.
pub struct SendRate {
    limiter: DefaultKeyedRateLimiter<u64>,
    keys: RandomState,
    checks: AtomicU64,
}

impl SendRate {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).expect("at least one");
        let burst = NonZeroU32::new(burst.max(1)).expect("at least one");
        let quota = Quota::per_second(per_second).allow_burst(burst);
        SendRate { limiter: RateLimiter::keyed(quota), keys: RandomState::new(), checks: AtomicU64::new(0) }
    }

    /// Whether `user_id` may send one more message in `channel_id` now.
    pub fn allows(&self, channel_id: &str, user_id: &str) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Forget users whose bucket is full again (they are idle).
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&self.keys.hash_one((channel_id, user_id))).is_ok()
    }
}

/// A room's slow mode: one message per period per member, counted on
/// this node when the bus keeps no count for all of them (one node, or
/// Redis out of reach: see `Bus::slow_mode_send`). Keyed like
/// [`SendRate`]; entries older than the slowest slow mode are swept now
/// and then.
pub struct SlowMode {
    last_sent: Mutex<HashMap<u64, Instant>>,
    keys: RandomState,
    checks: AtomicU64,
}

impl Default for SlowMode {
    fn default() -> Self {
        SlowMode { last_sent: Mutex::default(), keys: RandomState::new(), checks: AtomicU64::new(0) }
    }
}

impl SlowMode {
    /// Whether `user_id` may send in room `room_id` under a slow mode of
    /// `period` now: `Ok` (and the clock starts again), or how long they
    /// still have to wait.
    pub fn check(&self, room_id: i64, user_id: &str, period: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let key = self.keys.hash_one((room_id, user_id));
        let mut last_sent = self.last_sent.lock();
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let slowest = Duration::from_secs(chat_protocol::moderation::MAX_SLOW_MODE_SECS.into());
            last_sent.retain(|_, at| now.duration_since(*at) < slowest);
        }
        let wait = wait_left(last_sent.get(&key).copied(), now, period);
        if wait.is_zero() {
            last_sent.insert(key, now);
            return Ok(());
        }
        Err(wait)
    }
}

/// How long someone who last sent at `last` must still wait at `now` under
/// a slow mode of `period` (zero: they may send).
pub fn wait_left(last: Option<Instant>, now: Instant, period: Duration) -> Duration {
    last.map_or(Duration::ZERO, |last| period.saturating_sub(now.duration_since(last)))
}

/// Who may open how many stream connections.
#[derive(Clone)]
pub struct ConnectionLimits {
    pub per_ip: ConnectionsPerIp,
    /// Whether the client's IP comes from `X-Forwarded-For` (behind a
    /// trusted balancer) rather than the peer address.
    pub trust_forwarded_for: bool,
}

/// Open stream connections per IP address.
#[derive(Clone)]
pub struct ConnectionsPerIp {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max: u32,
}

/// One admitted connection; dropping it frees its place.
pub struct ConnectionSlot {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl ConnectionsPerIp {
    pub fn new(max: u32) -> Self {
        ConnectionsPerIp { open: Arc::default(), max: max.max(1) }
    }

    /// A place for one more connection from `ip`, if it has one left.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { open: self.open.clone(), ip })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The client's address: the peer's, or, behind a trusted balancer, the
/// last `X-Forwarded-For` entry (the one the balancer added; earlier
/// entries come from the client and prove nothing).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trust_forwarded_for: bool) -> IpAddr {
    if !trust_forwarded_for {
        return peer;
    }
    forwarded_for
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies_per_user_and_room() {
        let rate = SendRate::new(1, 3);
        assert!((0..3).all(|_| rate.allows("r", "ana")));
        assert!(!rate.allows("r", "ana"));
        // Others are not slowed down by Ana, nor is Ana in another room.
        assert!(rate.allows("r", "bob"));
        assert!(rate.allows("other", "ana"));
    }

    #[test]
    fn slow_mode_lets_a_member_send_once_per_period_per_room() {
        let slow = SlowMode::default();
        let period = Duration::from_secs(30);
        assert_eq!(slow.check(1, "ana", period), Ok(()));
        let wait = slow.check(1, "ana", period).unwrap_err();
        assert!(wait > Duration::from_secs(29) && wait <= period, "{wait:?}");
        assert_eq!(slow.check(1, "bob", period), Ok(()), "each member has their own clock");
        assert_eq!(slow.check(2, "ana", period), Ok(()), "and each room");
        assert_eq!(slow.check(1, "ana", Duration::ZERO), Ok(()), "slow mode off: no wait");
        let now = Instant::now();
        assert_eq!(wait_left(None, now, period), Duration::ZERO);
        assert_eq!(wait_left(Some(now - Duration::from_secs(10)), now, period), Duration::from_secs(20));
        assert_eq!(wait_left(Some(now - Duration::from_secs(40)), now, period), Duration::ZERO);
    }

    #[test]
    fn connections_per_ip_are_capped_and_freed() {
        let limit = ConnectionsPerIp::new(2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limit.admit(ip).unwrap();
        let _second = limit.admit(ip).unwrap();
        assert!(limit.admit(ip).is_none());
        assert!(limit.admit("10.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(limit.admit(ip).is_some());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_balancer() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let header = Some("1.2.3.4, 5.6.7.8");
        assert_eq!(client_ip(peer, header, false), peer);
        assert_eq!(client_ip(peer, header, true), "5.6.7.8".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, Some("garbage"), true), peer);
        assert_eq!(client_ip(peer, None, true), peer);
    }
}
