//! A tiny deterministic random number generator (xorshift64*), so that a
//! drill run is repeatable from its `--seed` without pulling in a crate.
//! Timing still varies between runs; the decisions each client makes from
//! its own generator do not.

#[derive(Clone, Debug)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator for stream number `stream` of the run seeded with `seed`
    /// (each client gets its own stream, so clients do not share state).
    pub fn new(seed: u64, stream: u64) -> Self {
        // splitmix64 spreads nearby seeds apart and never yields 0 here.
        let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x6A09_E667_F3BC_C909);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift { state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z } }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p.clamp(0.0, 1.0)
    }

    /// A number in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let a: Vec<u64> = {
            let mut r = XorShift::new(7, 1);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let mut r = XorShift::new(7, 1);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut other = XorShift::new(7, 2);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn ranges_are_respected() {
        let mut r = XorShift::new(0, 0);
        for _ in 0..1000 {
            assert!(r.up_to(300) <= 300);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
    }
}
