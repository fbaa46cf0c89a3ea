//! The counter-based random numbers the sampling kernel draws, mirrored bit for bit in
//! `shaders/softmax.wgsl`: no state, so any (seed, draw, row, item) can be drawn in parallel.

/// PCG-style integer hash (the "pcg" hash of Jarzynski & Olano, 2020).
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// A uniform number in (0, 1] from 24 random bits (`(h + 0.5) / 2²⁴` rounds to 1 for the largest
/// `h`).
pub fn uniform(seed: u32, draw: u32, row: u32, item: u32) -> f32 {
    uniform_at(row_key(seed, draw, row), item)
}

/// The part of [`uniform`]'s hash that depends on the row only:
/// `uniform(seed, draw, row, item) == uniform_at(row_key(seed, draw, row), item)`.
pub fn row_key(seed: u32, draw: u32, row: u32) -> u32 {
    pcg(row ^ pcg(seed ^ pcg(draw)))
}

/// [`uniform`] of `item` in the row whose [`row_key`] is `key`.
pub fn uniform_at(key: u32, item: u32) -> f32 {
    let h = pcg(item ^ key);
    ((h >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// A standard Gumbel variate `-ln(-ln u)`.
pub fn gumbel(seed: u32, draw: u32, row: u32, item: u32) -> f32 {
    gumbel_of(uniform(seed, draw, row, item))
}

/// `-ln(-ln u)`: the Gumbel variate of a uniform `u`.
pub fn gumbel_of(u: f32) -> f32 {
    -(-u.ln()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_are_in_range_and_look_uniform() {
        let n = 100_000;
        let mut buckets = [0u32; 10];
        for i in 0..n {
            let u = uniform(3, 0, i / 100, i % 100);
            assert!(u > 0.0 && u < 1.0);
            assert_eq!(u, uniform_at(row_key(3, 0, i / 100), i % 100));
            buckets[(u * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((b as f64 - 10_000.0).abs() < 500.0, "bucket {b}");
        }
        assert_ne!(uniform(1, 0, 0, 0), uniform(2, 0, 0, 0));
        assert_ne!(uniform(1, 0, 0, 0), uniform(1, 1, 0, 0));
    }
}
