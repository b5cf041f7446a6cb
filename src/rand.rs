//! The one seeded random source of the engine (splitmix64) and the one string hash
//! (FNV-1a) that seeds per-name streams, plus a fresh seed from the kernel. Seeded picks,
//! corruption offsets and jitter are reproducible from the run's seed. A leaf: it imports
//! nothing of Murphy.

/// splitmix64: small, seeded, reproducible. Advances `state` and returns the next value.
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1), from the same stream.
pub fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a of a string: mixes a name into a seed so that each name gets its own stream.
pub fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A fresh random value from the kernel (`/dev/urandom`), or the clock and pid when that
/// cannot be read.
pub fn fresh() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let (mut a, mut b) = (42u64, 42u64);
        let xs: Vec<u64> = (0..5).map(|_| next(&mut a)).collect();
        let ys: Vec<u64> = (0..5).map(|_| next(&mut b)).collect();
        assert_eq!(xs, ys);
        let mut c = 43u64;
        assert_ne!(next(&mut c), xs[0]);
    }

    #[test]
    fn fnv1a_of_known_strings() {
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
