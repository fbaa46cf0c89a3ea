//! Off-policy evaluation of a fixed target policy from logged single-item impressions: inverse
//! propensity scoring (IPS), self-normalised IPS (SNIPS) and doubly robust (DR), each with a
//! 95% confidence interval (normal approximation; delta method for SNIPS).
use crate::data::World;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One logged impression: the item shown to `user`, the logging policy's probability of
/// showing it, and the reward it earned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Logged {
    pub user: u32,
    pub item: u32,
    pub propensity: f64,
    pub reward: f64,
}

/// An estimate of a policy's value with the half-width of its 95% CI.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci95: f64,
}

impl Estimate {
    /// Whether the interval contains `v`.
    pub fn covers(&self, v: f64) -> bool {
        (self.value - v).abs() <= self.ci95
    }
}

/// A target policy: for a user, the probability of each catalog item (indexed by item).
pub type Policy<'a> = dyn Fn(u32) -> Vec<f64> + 'a;

fn mean_ci(terms: &[f64]) -> Estimate {
    let s = super::metrics::mean_ci(terms);
    Estimate {
        value: s.mean,
        ci95: s.ci95,
    }
}

/// Importance weights π(a | x) / μ(a | x) of the logged impressions.
fn weights(logs: &[Logged], policy: &Policy) -> Vec<f64> {
    let mut cache: std::collections::HashMap<u32, Vec<f64>> = Default::default();
    logs.iter()
        .map(|l| {
            let p = cache.entry(l.user).or_insert_with(|| policy(l.user));
            p.get(l.item as usize).copied().unwrap_or(0.0) / l.propensity
        })
        .collect()
}

/// IPS: the mean of `w · r`.
pub fn ips(logs: &[Logged], policy: &Policy) -> Estimate {
    let w = weights(logs, policy);
    let terms: Vec<f64> = w.iter().zip(logs).map(|(w, l)| w * l.reward).collect();
    mean_ci(&terms)
}

/// SNIPS: `Σ w r / Σ w`, CI by the delta method.
pub fn snips(logs: &[Logged], policy: &Policy) -> Estimate {
    let w = weights(logs, policy);
    let n = logs.len().max(1) as f64;
    let mean_w = w.iter().sum::<f64>() / n;
    if mean_w <= 0.0 {
        return Estimate {
            value: f64::NAN,
            ci95: f64::NAN,
        };
    }
    let value = w.iter().zip(logs).map(|(w, l)| w * l.reward).sum::<f64>() / (n * mean_w);
    let terms: Vec<f64> = w
        .iter()
        .zip(logs)
        .map(|(w, l)| w * (l.reward - value) / mean_w)
        .collect();
    Estimate {
        value,
        ci95: mean_ci(&terms).ci95,
    }
}

/// Doubly robust: `Σ_a π(a|x) q(x, a) + w (r − q(x, a_logged))` averaged, with a reward model
/// `q(user, item)` fitted on other data than `logs`.
pub fn doubly_robust(logs: &[Logged], policy: &Policy, q: &dyn Fn(u32, u32) -> f64) -> Estimate {
    let mut direct: std::collections::HashMap<u32, f64> = Default::default();
    let w = weights(logs, policy);
    let terms: Vec<f64> = w
        .iter()
        .zip(logs)
        .map(|(w, l)| {
            let dm = *direct.entry(l.user).or_insert_with(|| {
                policy(l.user)
                    .iter()
                    .enumerate()
                    .map(|(a, p)| p * q(l.user, a as u32))
                    .sum()
            });
            dm + w * (l.reward - q(l.user, l.item))
        })
        .collect();
    mean_ci(&terms)
}

/// Logs `per_user` one-item impressions for each of `users` in the synthetic world, each item
/// drawn uniformly from the catalog (propensity 1 / items); the reward is a click drawn from the
/// world's choice model for a one-item slate (as [`crate::data::SyntheticTask`] draws it).
pub fn log_uniform(world: &World, users: &[u32], per_user: usize, seed: u64) -> Vec<Logged> {
    let n = world.catalog.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut logs = Vec::with_capacity(users.len() * per_user);
    for &user in users {
        for _ in 0..per_user {
            let item = rng.random_range(0..n) as u32;
            let click = world.click_probabilities(user, &[item])[1];
            logs.push(Logged {
                user,
                item,
                propensity: 1.0 / n as f64,
                reward: f64::from(u8::from(rng.random::<f64>() < click)),
            });
        }
    }
    logs
}

/// The exact value of `policy` in the synthetic world for `users`: the mean over users of
/// `Σ_a π(a | user) · P(click | user shown a)`.
pub fn on_policy_value(world: &World, users: &[u32], policy: &Policy) -> f64 {
    let total: f64 = users
        .iter()
        .map(|&u| {
            policy(u)
                .iter()
                .enumerate()
                .map(|(a, p)| p * world.click_probabilities(u, &[a as u32])[1])
                .sum::<f64>()
        })
        .sum();
    total / users.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::WorldConfig;

    fn world() -> World {
        World::generate(WorldConfig {
            n_items: 150,
            n_users: 200,
            style_dim: 3,
            seed: 11,
        })
        .unwrap()
    }

    /// softmax(utility / 0.5) over the catalog: a good, fixed, stochastic policy.
    fn target(world: &World) -> impl Fn(u32) -> Vec<f64> + '_ {
        move |u| {
            let s: Vec<f64> = (0..world.catalog.len() as u32)
                .map(|i| f64::from(world.utility(u, i)) / 0.5)
                .collect();
            let m = s.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|v| v / z).collect()
        }
    }

    /// Per-item mean reward of `logs`, smoothed towards the overall mean.
    fn item_model(logs: &[Logged], n: usize) -> Vec<f64> {
        let mean = logs.iter().map(|l| l.reward).sum::<f64>() / logs.len() as f64;
        let mut s = vec![0.0; n];
        let mut c = vec![0.0; n];
        for l in logs {
            s[l.item as usize] += l.reward;
            c[l.item as usize] += 1.0;
        }
        (0..n).map(|i| (s[i] + 5.0 * mean) / (c[i] + 5.0)).collect()
    }

    #[test]
    fn estimates_cover_the_on_policy_value() {
        let w = world();
        let users: Vec<u32> = (0..200).collect();
        let pi = target(&w);
        let truth = on_policy_value(&w, &users, &pi);
        let uniform = on_policy_value(&w, &users, &|_| vec![1.0 / 150.0; 150]);
        assert!(truth > uniform + 0.05, "{truth} vs {uniform}");
        let (mut covered, reps) = ([0; 3], 20);
        for rep in 0..reps {
            let logs = log_uniform(&w, &users, 100, 100 + rep);
            let model_logs = log_uniform(&w, &users, 10, 900 + rep);
            let q = item_model(&model_logs, 150);
            let est = [
                ips(&logs, &pi),
                snips(&logs, &pi),
                doubly_robust(&logs, &pi, &|_, i| q[i as usize]),
            ];
            for (c, e) in covered.iter_mut().zip(est) {
                assert!(e.ci95 > 0.0 && e.ci95 < 0.25, "{e:?}");
                *c += usize::from(e.covers(truth));
            }
        }
        eprintln!("truth {truth:.4}, intervals covering it of {reps}: ips/snips/dr {covered:?}");
        // nominal 95%: allow sampling slack over 20 replications
        for (name, c) in ["ips", "snips", "dr"].iter().zip(covered) {
            assert!(c >= 16, "{name}: {c} of {reps} intervals cover {truth}");
        }
    }

    #[test]
    fn the_logging_policy_is_estimated_exactly_by_snips() {
        let logs = [
            Logged {
                user: 0,
                item: 0,
                propensity: 0.5,
                reward: 1.0,
            },
            Logged {
                user: 0,
                item: 1,
                propensity: 0.5,
                reward: 0.0,
            },
        ];
        let uniform = |_: u32| vec![0.5, 0.5];
        assert_eq!(ips(&logs, &uniform).value, 0.5);
        assert_eq!(snips(&logs, &uniform).value, 0.5);
        // a perfect reward model makes DR exact with zero variance
        let q = |_: u32, i: u32| if i == 0 { 1.0 } else { 0.0 };
        let dr = doubly_robust(&logs, &|_| vec![1.0, 0.0], &q);
        assert_eq!((dr.value, dr.ci95), (1.0, 0.0));
    }
}
