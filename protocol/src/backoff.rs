//! Reconnect timing for the room stream: exponential backoff with jitter,
//! capped, so a restarting server is not stampeded by every page at once.

/// First retry after about this long.
pub const BASE_MS: u32 = 500;
/// Never wait longer than this between attempts.
pub const CAP_MS: u32 = 15_000;

/// Delay before reconnect attempt `attempt` (0 for the first retry).
/// `jitter` in [0, 1) spreads pages out: the delay is between half and all
/// of the exponential step.
pub fn delay_ms(attempt: u32, jitter: f64) -> u32 {
    let step = BASE_MS.saturating_mul(1u32 << attempt.min(16)).min(CAP_MS);
    let jitter = jitter.clamp(0.0, 1.0);
    (step as f64 * (0.5 + 0.5 * jitter)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_until_the_cap() {
        let full: Vec<u32> = (0..8).map(|a| delay_ms(a, 1.0)).collect();
        assert_eq!(full, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    }

    #[test]
    fn jitter_keeps_at_least_half_the_step() {
        assert_eq!(delay_ms(0, 0.0), 250);
        assert_eq!(delay_ms(40, 0.0), CAP_MS / 2);
        assert!(delay_ms(3, 0.37) > 2000 && delay_ms(3, 0.37) < 4000);
    }
}
