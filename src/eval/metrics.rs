//! Metrics of interactive episodes and their confidence intervals.
use serde::Serialize;

/// A mean with the half-width of its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub ci95: f64,
    /// Number of values.
    pub n: usize,
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom (1.96 beyond 30).
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= 30 => T[d - 1],
        _ => 1.96,
    }
}

/// Mean and 95% CI half-width (Student's t on the sample standard error; 0 for fewer than two
/// values, NaN mean for none).
pub fn mean_ci(values: &[f64]) -> Stat {
    let n = values.len();
    if n == 0 {
        return Stat {
            mean: f64::NAN,
            ci95: f64::NAN,
            n,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Stat { mean, ci95: 0.0, n };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Stat {
        mean,
        ci95: t95(n - 1) * (var / n as f64).sqrt(),
        n,
    }
}

/// What one episode produced: per round, the summed reward and the number of items shown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodeLog {
    pub hits: Vec<f64>,
    pub shown: Vec<usize>,
    /// Every item shown, in order.
    pub items: Vec<u32>,
}

impl EpisodeLog {
    /// Precision over rounds 1..=`rounds`: hits / items shown in those rounds (`None` when
    /// nothing was shown). Episodes that ran out of candidates count the rounds they had.
    pub fn precision(&self, rounds: usize) -> Option<f64> {
        let n = rounds.min(self.hits.len());
        let shown: usize = self.shown[..n].iter().sum();
        (shown > 0).then(|| self.hits[..n].iter().sum::<f64>() / shown as f64)
    }

    /// Total reward of the episode.
    pub fn cumulative(&self) -> f64 {
        self.hits.iter().sum()
    }
}

/// Interactions (items shown) needed to reach `fraction` of the final hit rate, on a mean
/// per-round hit-rate curve: with `H(t)` the cumulative hit rate over rounds 1..=t, the
/// smallest `t · slate` with `H(t) ≥ fraction · H(T)`. `None` for an empty curve.
pub fn interactions_to_fraction(curve: &[f64], slate: usize, fraction: f64) -> Option<usize> {
    let cumulative: Vec<f64> = curve
        .iter()
        .scan(0.0, |sum, &v| {
            *sum += v;
            Some(*sum)
        })
        .enumerate()
        .map(|(t, s)| s / (t + 1) as f64)
        .collect();
    let last = *cumulative.last()?;
    cumulative
        .iter()
        .position(|&h| h >= fraction * last - 1e-12)
        .map(|t| (t + 1) * slate)
}

/// Share of the catalog's `n_items` shown at least once over `episodes`.
pub fn coverage<'a>(episodes: impl IntoIterator<Item = &'a EpisodeLog>, n_items: usize) -> f64 {
    let mut seen = vec![false; n_items];
    for e in episodes {
        for &i in &e.items {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
        }
    }
    seen.iter().filter(|&&s| s).count() as f64 / n_items.max(1) as f64
}

/// Mean over episodes of the reward per shown item in each round 1..=`rounds` (episodes that
/// ended earlier do not count in later rounds; NaN where none reached the round).
pub fn curve(episodes: &[&EpisodeLog], rounds: usize) -> Vec<Stat> {
    (0..rounds)
        .map(|t| {
            let v: Vec<f64> = episodes
                .iter()
                .filter(|e| e.shown.get(t).is_some_and(|&s| s > 0))
                .map(|e| e.hits[t] / e.shown[t] as f64)
                .collect();
            mean_ci(&v)
        })
        .collect()
}

/// NDCG@k of a ranking: `ranked` are the ratings in the order shown, `all` every rating of the
/// ranked pool; gain 2^r − 1, discount 1 / log2(position + 1). `None` when no item has gain.
pub fn ndcg_at(ranked: &[f32], all: &[f32], k: usize) -> Option<f64> {
    let dcg = |r: &[f32]| -> f64 {
        r.iter()
            .take(k)
            .enumerate()
            .map(|(i, &v)| (2f64.powf(f64::from(v)) - 1.0) / ((i + 2) as f64).log2())
            .sum()
    };
    let mut ideal = all.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    (best > 0.0).then(|| dcg(ranked) / best)
}

/// Hit@k: 1 when any of the first `k` ranked ratings is a like (≥ `threshold`), else 0.
pub fn hit_at(ranked: &[f32], k: usize, threshold: f32) -> f64 {
    f64::from(u8::from(ranked.iter().take(k).any(|&r| r >= threshold)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(hits: &[f64], k: usize) -> EpisodeLog {
        EpisodeLog {
            hits: hits.to_vec(),
            shown: vec![k; hits.len()],
            items: Vec::new(),
        }
    }

    #[test]
    fn precision_over_prefixes() {
        let e = log(&[1.0, 0.0, 1.0, 1.0], 1);
        assert_eq!(e.precision(1), Some(1.0));
        assert_eq!(e.precision(2), Some(0.5));
        assert_eq!(e.precision(4), Some(0.75));
        // an episode that ended early counts the rounds it had
        assert_eq!(e.precision(20), Some(0.75));
        assert_eq!(e.cumulative(), 3.0);
        let s = log(&[3.0, 1.0], 10);
        assert_eq!(s.precision(2), Some(0.2));
        assert_eq!(EpisodeLog::default().precision(5), None);
    }

    #[test]
    fn ninety_percent_interactions() {
        // H = 0, 0.5, 0.667, 0.75 -> 0.9 * 0.75 = 0.675 reached at t = 4
        assert_eq!(
            interactions_to_fraction(&[0.0, 1.0, 1.0, 1.0], 1, 0.9),
            Some(4)
        );
        // H = 1, 0.5, 0.333 -> reached at t = 1; with slates of 10, 10 interactions
        assert_eq!(
            interactions_to_fraction(&[1.0, 0.0, 0.0], 10, 0.9),
            Some(10)
        );
        assert_eq!(interactions_to_fraction(&[], 1, 0.9), None);
    }

    #[test]
    fn ndcg_and_hit() {
        // ratings 5, 3, 1 ranked 3, 5, 1: DCG = 7 + 31/log2(3) + 1/2, ideal 31 + 7/log2(3) + 1/2
        let dcg = 7.0 + 31.0 / 3f64.log2() + 0.5;
        let ideal = 31.0 + 7.0 / 3f64.log2() + 0.5;
        let got = ndcg_at(&[3.0, 5.0, 1.0], &[5.0, 3.0, 1.0], 10).unwrap();
        assert!((got - dcg / ideal).abs() < 1e-12);
        assert_eq!(ndcg_at(&[5.0, 3.0, 1.0], &[1.0, 3.0, 5.0], 10), Some(1.0));
        // a ranking shorter than the pool misses the gain of what it leaves out
        assert!(ndcg_at(&[5.0, 3.0], &[1.0, 3.0, 5.0], 10).unwrap() < 1.0);
        // cut at k = 1: only the first item counts
        assert!((ndcg_at(&[3.0, 5.0], &[5.0, 3.0], 1).unwrap() - 7.0 / 31.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&[0.0], &[0.0], 10), None);
        assert_eq!(hit_at(&[3.0, 4.0], 2, 4.0), 1.0);
        assert_eq!(hit_at(&[3.0, 4.0], 1, 4.0), 0.0);
    }

    #[test]
    fn coverage_counts_distinct_items() {
        let a = EpisodeLog {
            items: vec![0, 1, 1],
            ..Default::default()
        };
        let b = EpisodeLog {
            items: vec![1, 3, 99],
            ..Default::default()
        };
        assert_eq!(coverage([&a, &b], 4), 0.75);
    }

    #[test]
    fn confidence_intervals() {
        // mean 2.5, sd sqrt(5/3), n = 4: 3.182 * sqrt(5/3) / 2
        let s = mean_ci(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.ci95 - 3.182 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        let big: Vec<f64> = (0..100).map(|i| f64::from(i % 2)).collect();
        let s = mean_ci(&big);
        assert!((s.ci95 - 1.96 * (0.25f64 * 100.0 / 99.0).sqrt() / 10.0).abs() < 1e-12);
        assert_eq!(mean_ci(&[7.0]).ci95, 0.0);
        assert!(mean_ci(&[]).mean.is_nan());
    }

    #[test]
    fn curve_skips_finished_episodes() {
        let a = log(&[1.0, 0.0], 1);
        let b = log(&[0.0], 1);
        let c = curve(&[&a, &b], 2);
        assert_eq!(c[0].mean, 0.5);
        assert_eq!((c[1].mean, c[1].n), (0.0, 1));
    }
}
