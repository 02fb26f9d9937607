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
