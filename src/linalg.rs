//! Small dense linear algebra on the host: the ridge solve shared by the linear bandits
//! ([`crate::eval::linear::LinUcb`]'s prior fit) and a session's ridge feedback summary
//! ([`crate::session::Summary::Ridge`]).

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
