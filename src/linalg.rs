//! Small dense linear algebra on the host: the ridge solve shared by the linear bandits
//! ([`crate::eval::linear::LinUcb`]'s prior fit) and a session's ridge feedback summary
//! ([`crate::session::Summary::Ridge`]), and the whitening by a prior covariance fitted across
//! training users ([`Whitening`]).

/// Solves `(λI + A) θ = b` (`A` row-major `d × d`) by Gauss–Jordan with partial pivoting; a
/// singular direction gets weight 0.
pub fn solve_ridge(a: Vec<f64>, b: Vec<f64>, lambda: f64) -> Vec<f64> {
    solve_ridge_columns(a, b, 1, lambda)
}

/// [`solve_ridge`] for `m` right-hand sides at once: `b` is row-major `d × m` (column `k` is
/// the `k`-th right-hand side), and so is the result.
pub fn solve_ridge_columns(mut a: Vec<f64>, mut b: Vec<f64>, m: usize, lambda: f64) -> Vec<f64> {
    let d = b.len() / m.max(1);
    for i in 0..d {
        a[i * d + i] += lambda;
    }
    for col in 0..d {
        let pivot = (col..d)
            .max_by(|&p, &q| a[p * d + col].abs().total_cmp(&a[q * d + col].abs()))
            .unwrap_or(col);
        for j in 0..d {
            a.swap(col * d + j, pivot * d + j);
        }
        for k in 0..m {
            b.swap(col * m + k, pivot * m + k);
        }
        let p = a[col * d + col];
        if p.abs() < 1e-12 {
            continue;
        }
        for row in 0..d {
            if row != col {
                let f = a[row * d + col] / p;
                for j in 0..d {
                    a[row * d + j] -= f * a[col * d + j];
                }
                for k in 0..m {
                    b[row * m + k] -= f * b[col * m + k];
                }
            }
        }
    }
    for i in 0..d {
        let p = a[i * d + i];
        for v in &mut b[i * m..(i + 1) * m] {
            *v = if p.abs() < 1e-12 { 0.0 } else { *v / p };
        }
    }
    b
}

/// The lower-triangular `L` (row-major `d × d`) with `L Lᵀ = a` for a symmetric positive
/// definite `a`; `None` when a pivot is not positive.
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s = a[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// An empirical-Bayes prior covariance as a change of coordinates: with `Σ = L Lᵀ` fitted to
/// sample weight vectors θ (e.g. the training users' hindsight ridge weights over item
/// vectors), item vectors become `e' = Lᵀ e` and weights `θ' = L⁻¹ θ`, so every score
/// `θᵀe = θ'ᵀe'` is kept and a prior `N(·, Σ)` on θ is the isotropic `N(·, I)` on θ'.
#[derive(Clone, Debug, PartialEq)]
pub struct Whitening {
    dim: usize,
    /// `L`, row-major `dim × dim`, lower-triangular.
    lower: Vec<f64>,
}

impl Whitening {
    /// The whitening of the covariance of the first `dim` coordinates of `samples`, scaled to a
    /// mean eigenvalue (trace / `dim`) of 1 and shrunk towards the identity:
    /// `Σ = (1 − shrinkage) Σ̂ / mean eigenvalue + shrinkage I`, `shrinkage` in (0, 1] (1: the
    /// identity, no change). `None` with fewer than two samples, a sample shorter than `dim`,
    /// a shrinkage outside (0, 1] or a zero covariance.
    pub fn fit(samples: &[Vec<f64>], dim: usize, shrinkage: f64) -> Option<Self> {
        let n = samples.len();
        let short = samples.iter().any(|s| s.len() < dim);
        if n < 2 || short || shrinkage.is_nan() || shrinkage <= 0.0 || shrinkage > 1.0 {
            return None;
        }
        let mean: Vec<f64> = (0..dim)
            .map(|i| samples.iter().map(|s| s[i]).sum::<f64>() / n as f64)
            .collect();
        let mut cov = vec![0.0; dim * dim];
        for s in samples {
            for i in 0..dim {
                for j in 0..=i {
                    cov[i * dim + j] += (s[i] - mean[i]) * (s[j] - mean[j]) / (n - 1) as f64;
                }
            }
        }
        let scale = (0..dim).map(|i| cov[i * dim + i]).sum::<f64>() / dim as f64;
        if !scale.is_finite() || scale <= 0.0 {
            return None;
        }
        for i in 0..dim {
            for j in 0..=i {
                let v = (1.0 - shrinkage) * cov[i * dim + j] / scale
                    + if i == j { shrinkage } else { 0.0 };
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        Some(Whitening {
            dim,
            lower: cholesky(&cov, dim)?,
        })
    }

    /// Coordinates whitened (`dim`).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `e' = Lᵀ e` for every row of the row-major `rows` (`dim` values each).
    pub fn vectors(&self, rows: &[f32]) -> Vec<f32> {
        let d = self.dim;
        rows.chunks_exact(d.max(1))
            .flat_map(|e| {
                (0..d).map(move |i| {
                    (i..d)
                        .map(|j| self.lower[j * d + i] * f64::from(e[j]))
                        .sum::<f64>() as f32
                })
            })
            .collect()
    }

    /// `θ' = L⁻¹ θ` (forward substitution; `θ` has `dim` values).
    pub fn weights(&self, theta: &[f64]) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; d];
        for i in 0..d {
            let s = theta[i] - (0..i).map(|k| self.lower[i * d + k] * out[k]).sum::<f64>();
            out[i] = s / self.lower[i * d + i];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sampling::normal;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Weight vectors drawn from a strongly anisotropic, correlated Gaussian (3 coordinates and
    /// a fourth that the whitening leaves out).
    fn samples(n: usize) -> Vec<Vec<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(12345);
        (0..n)
            .map(|_| {
                let z = [normal(&mut rng), normal(&mut rng), normal(&mut rng)];
                vec![
                    5.0 * z[0] + 1.0,
                    2.0 * z[0] + 0.3 * z[1] - 2.0,
                    -z[0] + z[1] + 0.05 * z[2],
                    7.0,
                ]
            })
            .collect()
    }

    fn covariance(xs: &[Vec<f64>], d: usize) -> Vec<f64> {
        let n = xs.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|i| xs.iter().map(|x| x[i]).sum::<f64>() / n)
            .collect();
        let mut c = vec![0.0; d * d];
        for x in xs {
            for i in 0..d {
                for j in 0..d {
                    c[i * d + j] += (x[i] - mean[i]) * (x[j] - mean[j]) / (n - 1.0);
                }
            }
        }
        c
    }

    #[test]
    fn cholesky_reconstructs_and_refuses_an_indefinite_matrix() {
        let a = [4.0, 2.0, -2.0, 2.0, 10.0, 1.0, -2.0, 1.0, 6.0];
        let l = cholesky(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let llt: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((llt - a[i * 3 + j]).abs() < 1e-12);
            }
            assert!((i + 1..3).all(|j| l[i * 3 + j] == 0.0), "lower-triangular");
        }
        assert_eq!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2), None);
    }

    /// The fitted prior becomes isotropic: the whitened weights θ' = L⁻¹θ have covariance
    /// (trace / dim) × I up to the shrinkage, and every score θᵀe is kept.
    #[test]
    fn whitening_makes_the_fitted_prior_isotropic_and_keeps_scores() {
        let thetas = samples(4000);
        let d = 3;
        let sample_cov = covariance(&thetas, d);
        let mean_eigenvalue = (0..d).map(|i| sample_cov[i * d + i]).sum::<f64>() / d as f64;
        let shrinkage = 1e-9;
        let w = Whitening::fit(&thetas, d, shrinkage).unwrap();
        assert_eq!(w.dim(), d);
        let white: Vec<Vec<f64>> = thetas.iter().map(|t| w.weights(&t[..d])).collect();
        let c = covariance(&white, d);
        for i in 0..d {
            for j in 0..d {
                let want = if i == j { 1.0 } else { 0.0 };
                let got = c[i * d + j] / mean_eigenvalue;
                assert!((got - want).abs() < 1e-3, "({i}, {j}): {got}");
            }
        }
        // before whitening the covariance is far from isotropic
        assert!(sample_cov[0] / sample_cov[2 * d + 2] > 10.0);
        // scores are kept: θᵀe = θ'ᵀe' for item vectors e' = Lᵀe
        let items: Vec<f32> = (0..5 * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let items_white = w.vectors(&items);
        for t in thetas.iter().take(20) {
            let t_white = w.weights(&t[..d]);
            for (e, e_white) in items.chunks(d).zip(items_white.chunks(d)) {
                let score: f64 = t.iter().zip(e).map(|(a, &b)| a * f64::from(b)).sum();
                let white: f64 = t_white
                    .iter()
                    .zip(e_white)
                    .map(|(a, &b)| a * f64::from(b))
                    .sum();
                assert!(
                    (score - white).abs() < 1e-4 * (1.0 + score.abs()),
                    "{score} {white}"
                );
            }
        }
        // full shrinkage: the identity; out of range or too few samples: refused
        let identity = Whitening::fit(&thetas, d, 1.0).unwrap();
        assert_eq!(identity.vectors(&items), items);
        assert_eq!(Whitening::fit(&thetas, d, 0.0), None);
        assert_eq!(Whitening::fit(&thetas, d, 1.5), None);
        assert_eq!(Whitening::fit(&thetas[..1], d, 0.5), None);
    }
}
