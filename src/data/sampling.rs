//! Small seeded sampling helpers (the crate keeps `rand` without `rand_distr`).
use rand::Rng;

/// A standard normal draw (Box–Muller).
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Softmax probabilities of `scores / temperature` (numerically stable).
pub(crate) fn softmax(scores: &[f32], temperature: f32) -> Vec<f64> {
    let t = f64::from(temperature.max(1e-6));
    let max = scores
        .iter()
        .map(|&s| f64::from(s) / t)
        .fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores
        .iter()
        .map(|&s| (f64::from(s) / t - max).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// An index drawn with probability `probs[i]` (which sum to 1); the last index absorbs
/// rounding.
pub(crate) fn categorical<R: Rng + ?Sized>(rng: &mut R, probs: &[f64]) -> usize {
    let mut x: f64 = rng.random::<f64>();
    for (i, &p) in probs.iter().enumerate() {
        if x < p {
            return i;
        }
        x -= p;
    }
    probs.len().saturating_sub(1)
}
