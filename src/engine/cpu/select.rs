//! One slate from one row of scores in one pass over the row: the normaliser, the Gumbel keys and
//! the top-k together, instead of the reference's k scans over every key. The slate (items and
//! Plackett–Luce log-probabilities) is the reference's for the same scores, bit for bit
//! (`tests` below).
//!
//! A Gumbel key `z + g(u)`, `g(u) = -ln(-ln u)`, costs two logarithms. Once `k` keys are held,
//! an item can only enter with `g(u) > kth - z`, i.e. `u > exp(-ε)` with `ε = exp(z - kth)`;
//! since `exp(-ε) ≥ 1 - ε`, every `u ≤ 1 - 2ε - 10⁻⁶` is out (the factor 2 and the 10⁻⁶ cover
//! f32 rounding, a factor of `e^0.69` on ε, while every value stays within ±10⁴), and its
//! logarithms are never taken. `ε` comes from the softmax's `exp(z - max)` already computed.

use crate::engine::{rng, EngineError, Result, SlateSpec};

/// Scores beyond this magnitude turn the shortcut off (rounding of `z - max` stays ≤ 10⁻³).
const SAFE: f32 = 1e4;

/// The row's softmax as the slate computed it: `ex[j] = exp(z_j - max)` (0 for masked items),
/// their sum in index order, and `max` over the open items of `z = score / temperature`.
pub(super) struct Softmax {
    pub(super) max: f32,
    pub(super) sum: f32,
}

/// Appends the slate of row `row` (`scores`, items `open` leaves in) to `items` and `logp`;
/// `top` is scratch space; `ex` receives the exponentials of the row's softmax.
#[allow(clippy::too_many_arguments)]
pub(super) fn slate(
    scores: &[f32],
    open: impl Fn(usize) -> bool,
    spec: &SlateSpec,
    row: u32,
    top: &mut Vec<(f32, u32)>,
    items: &mut Vec<u32>,
    logp: &mut Vec<f32>,
    ex: &mut [f32],
) -> Result<Softmax> {
    let tau = spec.temperature;
    let k = spec.k;
    let mut max = f32::MIN;
    for (j, &s) in scores.iter().enumerate() {
        if open(j) {
            max = max.max(s / tau);
        }
    }
    let key = rng::row_key(spec.seed, spec.draw, row);
    top.clear();
    let mut rest = 0.0f32;
    // the key to beat once `top` holds k, and exp(max - kth) when the shortcut is safe
    let mut kth = f32::NEG_INFINITY;
    let mut scale: Option<f32> = None;
    for (j, (&s, x)) in scores.iter().zip(ex.iter_mut()).enumerate() {
        if !open(j) {
            *x = 0.0;
            continue;
        }
        let z = s / tau;
        let e = (z - max).exp();
        *x = e;
        rest += e;
        let sort_key = if spec.greedy {
            z
        } else {
            let u = rng::uniform_at(key, j as u32);
            if let Some(c) = scale {
                let eps = if c.is_finite() {
                    e * c
                } else {
                    (z - kth).exp()
                };
                if u <= 1.0 - (2.0 * eps + 1e-6) {
                    continue;
                }
            }
            z + rng::gumbel_of(u)
        };
        if top.len() < k || sort_key > kth {
            // after every held key ≥ this one: equal keys keep the lower index first
            let at = top.partition_point(|&(t, _)| t >= sort_key);
            top.insert(at, (sort_key, j as u32));
            top.truncate(k);
            if top.len() == k {
                kth = top[k - 1].0;
                let safe = max.abs() < SAFE && kth.abs() < SAFE;
                scale = safe.then(|| (max - kth).exp());
            }
        }
    }
    if top.len() < k {
        return Err(EngineError::Input("no item left to choose".into()));
    }
    let softmax = Softmax { max, sum: rest };
    // position p's normaliser: the mass of the items not chosen before it, summed without
    // subtracting, as the reference does (`reference::slate_log_propensities`)
    let mut chosen: Vec<u32> = top.iter().map(|&(_, a)| a).collect();
    items.extend_from_slice(&chosen);
    chosen.sort_unstable();
    let mut rest: f32 = (0..scores.len())
        .filter(|&j| open(j) && chosen.binary_search(&(j as u32)).is_err())
        .map(|j| ex[j])
        .sum();
    let start = logp.len();
    logp.resize(start + k, 0.0);
    for (p, &(_, a)) in top.iter().enumerate().rev() {
        let e = ex[a as usize];
        rest += e;
        logp[start + p] = scores[a as usize] / tau - max - rest.max(f32::MIN_POSITIVE).ln();
    }
    Ok(softmax)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference's selection: k scans for the largest remaining key, lowest index on ties.
    fn scans(scores: &[f32], open: &[bool], spec: &SlateSpec, row: u32) -> (Vec<u32>, Vec<f32>) {
        let n = scores.len();
        let z = |j: usize| scores[j] / spec.temperature;
        let max = (0..n).filter(|&j| open[j]).map(z).fold(f32::MIN, f32::max);
        let keys: Vec<f32> = (0..n)
            .map(|j| {
                let g = if spec.greedy {
                    0.0
                } else {
                    rng::gumbel(spec.seed, spec.draw, row, j as u32)
                };
                z(j) + g
            })
            .collect();
        let mut items = Vec::new();
        let mut chosen: Vec<usize> = Vec::new();
        for _ in 0..spec.k {
            let mut best: Option<usize> = None;
            for j in (0..n).filter(|&j| open[j] && !chosen.contains(&j)) {
                if best.is_none_or(|b| keys[j] > keys[b]) {
                    best = Some(j);
                }
            }
            let a = best.expect("enough open items");
            chosen.push(a);
            items.push(a as u32);
        }
        let unchosen = |j: usize| open[j] && !chosen.contains(&j);
        let logp = super::super::reference::slate_log_propensities(&chosen, z, max, unchosen, n);
        (items, logp)
    }

    fn row() -> impl Strategy<Value = (Vec<f32>, Vec<bool>, SlateSpec, u32)> {
        (1usize..3000)
            .prop_flat_map(|n| {
                (
                    // coarse values make ties among keys (greedy) likely
                    proptest::collection::vec(prop_oneof![-40i32..40, Just(3)], n),
                    proptest::collection::vec(prop::bool::weighted(0.85), n),
                    1usize..65,
                    prop_oneof![Just(0.01f32), Just(0.5), Just(1.0), Just(7.0)],
                    any::<bool>(),
                    any::<(u32, u32, u32)>(),
                    prop_oneof![Just(0.1f32), Just(1.0), Just(100.0)],
                )
            })
            .prop_filter_map(
                "fewer open items than the slate",
                |(s, open, k, temperature, greedy, (seed, draw, row), unit)| {
                    let open_count = open.iter().filter(|&&o| o).count();
                    (open_count >= k).then(|| {
                        let scores = s.iter().map(|&v| v as f32 * unit / 8.0).collect();
                        let spec = SlateSpec {
                            k,
                            temperature,
                            greedy,
                            seed,
                            draw,
                        };
                        (scores, open, spec, row)
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn one_pass_slates_are_the_reference_scans((scores, open, spec, r) in row()) {
            let (mut top, mut items, mut logp) = (Vec::new(), Vec::new(), Vec::new());
            let mut ex = vec![f32::NAN; scores.len()];
            let sm = slate(&scores, |j| open[j], &spec, r, &mut top, &mut items, &mut logp, &mut ex)
                .unwrap();
            // the softmax it hands on: the reference's normaliser, term by term
            let z = |j: usize| scores[j] / spec.temperature;
            let max = (0..scores.len()).filter(|&j| open[j]).map(z).fold(f32::MIN, f32::max);
            prop_assert_eq!(sm.max.to_bits(), max.to_bits());
            for j in 0..scores.len() {
                let want = if open[j] { (z(j) - sm.max).exp() } else { 0.0 };
                prop_assert_eq!(ex[j].to_bits(), want.to_bits());
            }
            let sum: f32 = (0..scores.len()).filter(|&j| open[j]).map(|j| (z(j) - sm.max).exp()).sum();
            prop_assert_eq!(sm.sum.to_bits(), sum.to_bits());
            let (want_items, want_logp) = scans(&scores, &open, &spec, r);
            prop_assert_eq!(items, want_items);
            prop_assert_eq!(
                logp.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want_logp.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
