//! Collaborative item factors: a truncated SVD of the users × items like-matrix (1 where a
//! user rated the item at least [`LIKE_THRESHOLD`], else 0) by subspace iteration on the sparse
//! matrix. Two dramas that different people like get different factors, which content features
//! (genres, year) cannot tell apart.
use super::dataset::{Dataset, LIKE_THRESHOLD};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Subspace iterations (each one multiplies by `XᵀX`); 30 settle the leading 32 directions of
/// ml-100k's like-matrix to well below f32 precision of the scores that use them.
const ITERATIONS: usize = 30;

/// Item factors `V·Σ` (row-major, `n_items × dim`) of the like-matrix of `users` in `ds`: the
/// top `dim` right singular vectors scaled by their singular values, so a user's like-row is
/// best approximated (in the least-squares sense) by a linear map of them. Columns beyond the
/// matrix's rank are zero. Deterministic for a given `seed`.
pub fn like_factors(ds: &Dataset, users: &[u32], dim: usize, seed: u64) -> Vec<f32> {
    let likes: Vec<Vec<u32>> = users
        .iter()
        .map(|&u| {
            ds.user_ratings(u)
                .iter()
                .filter(|r| r.value >= LIKE_THRESHOLD)
                .map(|r| r.item)
                .collect()
        })
        .collect();
    sparse_factors(&likes, ds.n_items(), dim, seed)
}

/// [`like_factors`] of a 0/1 matrix given as the list of 1-columns of each row.
pub fn sparse_factors(rows: &[Vec<u32>], n_cols: usize, dim: usize, seed: u64) -> Vec<f32> {
    let k = dim.min(n_cols);
    if k == 0 {
        return vec![0.0; n_cols * dim];
    }
    // XᵀX·Q for a column block Q (n_cols × k, row-major)
    let gram_times = |q: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0f64; n_cols * k];
        let mut xq = vec![0.0f64; k];
        for row in rows {
            xq.fill(0.0);
            for &c in row {
                for (a, b) in xq.iter_mut().zip(&q[c as usize * k..(c as usize + 1) * k]) {
                    *a += b;
                }
            }
            for &c in row {
                for (a, b) in out[c as usize * k..(c as usize + 1) * k]
                    .iter_mut()
                    .zip(&xq)
                {
                    *a += b;
                }
            }
        }
        out
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut q: Vec<f64> = (0..n_cols * k).map(|_| rng.random::<f64>() - 0.5).collect();
    orthonormalise(&mut q, n_cols, k);
    for _ in 0..ITERATIONS {
        q = gram_times(&q);
        orthonormalise(&mut q, n_cols, k);
    }
    // Rayleigh–Ritz: the eigenvectors W of the small matrix QᵀXᵀXQ rotate Q onto V, and its
    // eigenvalues are the squared singular values.
    let g = gram_times(&q);
    let mut small = vec![0.0f64; k * k];
    for r in 0..n_cols {
        for i in 0..k {
            for j in 0..k {
                small[i * k + j] += q[r * k + i] * g[r * k + j];
            }
        }
    }
    let (values, vectors) = symmetric_eigen(&mut small, k);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut out = vec![0.0f32; n_cols * dim];
    for r in 0..n_cols {
        for (slot, &e) in order.iter().enumerate() {
            let sigma = values[e].max(0.0).sqrt();
            let v: f64 = (0..k).map(|i| q[r * k + i] * vectors[i * k + e]).sum();
            out[r * dim + slot] = (v * sigma) as f32;
        }
    }
    // a singular vector's sign is arbitrary: fix it so each column sums to ≥ 0
    for slot in 0..k {
        let sum: f64 = (0..n_cols).map(|r| f64::from(out[r * dim + slot])).sum();
        if sum < 0.0 {
            for r in 0..n_cols {
                out[r * dim + slot] = -out[r * dim + slot];
            }
        }
    }
    out
}

/// Modified Gram–Schmidt on the `k` columns of the row-major `n × k` matrix `q`; a column
/// that vanishes becomes zero.
fn orthonormalise(q: &mut [f64], n: usize, k: usize) {
    for j in 0..k {
        for i in 0..j {
            let dot: f64 = (0..n).map(|r| q[r * k + i] * q[r * k + j]).sum();
            for r in 0..n {
                q[r * k + j] -= dot * q[r * k + i];
            }
        }
        let norm = (0..n).map(|r| q[r * k + j].powi(2)).sum::<f64>().sqrt();
        for r in 0..n {
            q[r * k + j] = if norm > 1e-12 {
                q[r * k + j] / norm
            } else {
                0.0
            };
        }
    }
}

/// Eigenvalues and eigenvectors (columns of the returned row-major `k × k` matrix) of the
/// symmetric `a` by cyclic Jacobi rotations; `a` is overwritten.
fn symmetric_eigen(a: &mut [f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; k * k];
    for i in 0..k {
        v[i * k + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * k + j].powi(2))
            .sum();
        let diag: f64 = (0..k).map(|i| a[i * k + i].powi(2)).sum();
        if off <= 1e-24 * diag.max(1e-300) {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (arp, arq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * arp - s * arq;
                    a[r * k + q] = s * arp + c * arq;
                }
                for r in 0..k {
                    let (apr, aqr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * apr - s * aqr;
                    a[q * k + r] = s * apr + c * aqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    ((0..k).map(|i| a[i * k + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense `XᵀX` of a 0/1 matrix given by rows.
    fn gram(rows: &[Vec<u32>], n: usize) -> Vec<f64> {
        let mut g = vec![0.0; n * n];
        for row in rows {
            for &a in row {
                for &b in row {
                    g[a as usize * n + b as usize] += 1.0;
                }
            }
        }
        g
    }

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let m = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let mut a = m;
        let (values, v) = symmetric_eigen(&mut a, 3);
        for e in 0..3 {
            for i in 0..3 {
                let mv: f64 = (0..3).map(|j| m[i * 3 + j] * v[j * 3 + e]).sum();
                assert!((mv - values[e] * v[i * 3 + e]).abs() < 1e-9);
            }
        }
        let trace: f64 = values.iter().sum();
        assert!((trace - 12.0).abs() < 1e-9);
    }

    /// The factors F = VΣ reproduce the Gram matrix's leading part: for a matrix of rank ≤ k,
    /// F Fᵀ = XᵀX exactly; with fewer factors, the leading singular value is the largest
    /// eigenvalue's square root.
    #[test]
    fn factors_reproduce_the_gram_matrix_of_a_low_rank_matrix() {
        // two groups of users with overlapping tastes over 7 items: rank 3
        let rows: Vec<Vec<u32>> = (0..30)
            .map(|u| match u % 3 {
                0 => vec![0, 1, 2],
                1 => vec![2, 3, 4],
                _ => vec![5, 6],
            })
            .collect();
        let n = 7;
        let f = sparse_factors(&rows, n, 4, 1);
        let g = gram(&rows, n);
        for a in 0..n {
            for b in 0..n {
                let ffa: f64 = (0..4)
                    .map(|c| f64::from(f[a * 4 + c]) * f64::from(f[b * 4 + c]))
                    .sum();
                assert!(
                    (ffa - g[a * n + b]).abs() < 1e-3,
                    "({a},{b}) {ffa} vs {}",
                    g[a * n + b]
                );
            }
        }
        // the 4th factor is beyond the rank: zero
        assert!((0..n).all(|r| f[r * 4 + 3].abs() < 1e-3));
        // deterministic
        assert_eq!(f, sparse_factors(&rows, n, 4, 1));
        // items liked by the same people get the same factors
        let row = |i: usize| &f[i * 4..i * 4 + 4];
        assert_eq!(row(5), row(6));
        assert_ne!(row(0), row(5));
    }
}
