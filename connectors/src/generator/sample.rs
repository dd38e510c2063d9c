//! Sampling helpers over the generator's seeded RNG. They use integer arithmetic only
//! (no `ln`/`exp`), so a seed gives the same stream on every platform.

use rand::Rng;

/// Picks an item with probability proportional to its weight.
pub(crate) fn pick<T: Copy, const N: usize>(rng: &mut impl Rng, table: &[(T, u32); N]) -> T {
    const { assert!(N > 0, "a weighted table needs at least one item") };
    let total: u32 = table.iter().map(|&(_, weight)| weight).sum();
    let mut roll = rng.gen_range(0..total.max(1));
    for &(item, weight) in table {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    // Only reached when every weight is zero.
    table[N - 1].0
}

/// An index in `0..n` where low indexes are likelier (index `k` about `ln(n/k)/n`), for
/// favourites such as a host's usual servers.
pub(crate) fn skewed(rng: &mut impl Rng, n: u32) -> u32 {
    let upper = rng.gen_range(0..n.max(1));
    rng.gen_range(0..=upper)
}

/// A value in `lo..=hi` spread evenly over orders of magnitude (piecewise by powers of
/// two), as sizes and durations of network traffic are.
pub(crate) fn log_uniform(rng: &mut impl Rng, lo: u64, hi: u64) -> u64 {
    let lo = lo.max(1);
    let hi = hi.max(lo);
    let exponent = rng.gen_range(lo.ilog2()..=hi.ilog2());
    let band = 1u64 << exponent;
    let band_lo = band.max(lo);
    let band_hi = (band | (band - 1)).min(hi);
    rng.gen_range(band_lo..=band_hi)
}

/// True with probability `per_mille / 1000`.
pub(crate) fn chance(rng: &mut impl Rng, per_mille: u32) -> bool {
    rng.gen_range(0..1000) < per_mille
}

/// A client's ephemeral source port (Linux's default range).
pub(crate) fn ephemeral_port(rng: &mut impl Rng) -> u16 {
    rng.gen_range(32768..=60999)
}

/// SplitMix64's finaliser: a fixed, well-mixed hash for deriving the topology from the
/// seed without consuming any stream's randomness.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn log_uniform_stays_in_range_and_spans_magnitudes() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let values: Vec<u64> = (0..10_000)
            .map(|_| log_uniform(&mut rng, 10, 1_000_000))
            .collect();
        assert!(values.iter().all(|v| (10..=1_000_000).contains(v)));
        assert!(values.iter().filter(|&&v| v < 100).count() > 1000);
        assert!(values.iter().filter(|&&v| v > 100_000).count() > 1000);
        assert_eq!(log_uniform(&mut rng, 0, 0), 1);
        assert!(log_uniform(&mut rng, u64::MAX - 1, u64::MAX) >= u64::MAX - 1);
    }

    #[test]
    fn pick_follows_weights() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let table = [('a', 9), ('b', 1), ('c', 0)];
        let picks: Vec<char> = (0..10_000).map(|_| pick(&mut rng, &table)).collect();
        let a = picks.iter().filter(|&&c| c == 'a').count();
        assert!((8_500..9_500).contains(&a), "{a}");
        assert!(!picks.contains(&'c'));
        assert_eq!(pick(&mut rng, &[('z', 0)]), 'z');
    }

    #[test]
    fn skewed_prefers_low_indexes() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            counts[skewed(&mut rng, 4) as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[3]);
        assert!(counts[3] > 0);
    }
}
