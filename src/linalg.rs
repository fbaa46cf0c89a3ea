//! Small dense linear algebra on the host: the ridge solve shared by the linear bandits
//! ([`crate::eval::linear::LinUcb`]'s prior fit) and a session's ridge feedback summary
//! ([`crate::session::Summary::Ridge`]).

/// Solves `(λI + A) θ = b` (`A` row-major `d × d`) by Gauss–Jordan with partial pivoting; a
/// singular direction gets weight 0.
pub fn solve_ridge(mut a: Vec<f64>, mut b: Vec<f64>, lambda: f64) -> Vec<f64> {
    let d = b.len();
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
        b.swap(col, pivot);
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
                b[row] -= f * b[col];
            }
        }
    }
    (0..d)
        .map(|i| {
            let p = a[i * d + i];
            if p.abs() < 1e-12 {
                0.0
            } else {
                b[i] / p
            }
        })
        .collect()
}
