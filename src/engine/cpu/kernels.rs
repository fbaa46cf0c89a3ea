//! Blocked micro-kernels of the CPU engine. Each keeps a small tile of results in fixed-size
//! lane arrays with independent accumulators, so that LLVM keeps them in vector registers and
//! vectorises the inner loops: SSE2 on x86-64, NEON on aarch64, `f32x4` on wasm32 built with
//! `simd128` (`.cargo/config.toml`). They compute the loops of `reference.rs` with the f32
//! additions in another order; `tests` below and `tests/cpu_kernels.rs` compare them.

/// Accumulator lanes per tile row: two 4-wide vectors.
const L: usize = 8;
/// Rows per register tile.
const R: usize = 4;

/// `L` consecutive values from the start of `s` (which must hold at least `L`).
#[inline(always)]
fn lanes(s: &[f32]) -> [f32; L] {
    let mut v = [0.0; L];
    v.copy_from_slice(&s[..L]);
    v
}

#[inline(always)]
fn hsum(acc: [f32; L]) -> f32 {
    let h = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (h[0] + h[2]) + (h[1] + h[3])
}

/// `Σ a_i b_i` over the shorter of the two, with `L` independent accumulators.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; L];
    for (x, y) in ca.zip(cb) {
        for ((s, xv), yv) in acc.iter_mut().zip(lanes(x)).zip(lanes(y)) {
            *s += xv * yv;
        }
    }
    hsum(acc) + tail
}

/// `R` dot products of the rows of `a` (`R × k`, row-major) with `b` (`k` values), sharing
/// every load of `b`.
#[inline(always)]
fn dot_rows(a: &[f32], b: &[f32], k: usize) -> [f32; R] {
    let full = k / L * L;
    let mut acc = [[0.0f32; L]; R];
    let mut i = 0;
    while i < full {
        let bv = lanes(&b[i..]);
        for (q, acc_q) in acc.iter_mut().enumerate() {
            for ((s, av), bv) in acc_q.iter_mut().zip(lanes(&a[q * k + i..])).zip(bv) {
                *s += av * bv;
            }
        }
        i += L;
    }
    let mut out = [0.0; R];
    for (q, o) in out.iter_mut().enumerate() {
        let tail: f32 = (full..k).map(|i| a[q * k + i] * b[i]).sum();
        *o = hsum(acc[q]) + tail;
    }
    out
}

/// `out[r, j] = a_r · b_j` for `a` (`rows × k`) and `b` (`n × k`), both row-major, into `out`
/// (`rows × n`): `A Bᵀ`. Scores over the catalog (`b` = the item matrix) and the input gradient
/// of a dense layer (`b` = its weights). Tiles of `R` rows of `a` share the loads of `b`; with
/// fewer rows, tiles of `R` rows of `b` share the loads of `a`.
pub fn dots(a: &[f32], rows: usize, b: &[f32], n: usize, k: usize, out: &mut [f32]) {
    let mut r = 0;
    if rows >= R {
        while r + R <= rows {
            let a_tile = &a[r * k..(r + R) * k];
            for j in 0..n {
                let d = dot_rows(a_tile, &b[j * k..(j + 1) * k], k);
                for (q, v) in d.into_iter().enumerate() {
                    out[(r + q) * n + j] = v;
                }
            }
            r += R;
        }
    }
    for r in r..rows {
        let a_r = &a[r * k..(r + 1) * k];
        let out_r = &mut out[r * n..(r + 1) * n];
        let mut j = 0;
        while j + R <= n {
            let d = dot_rows(&b[j * k..(j + R) * k], a_r, k);
            out_r[j..j + R].copy_from_slice(&d);
            j += R;
        }
        for j in j..n {
            out_r[j] = dot(a_r, &b[j * k..(j + 1) * k]);
        }
    }
}

/// `y += x w` for `x` (`rows × k`), `w` (`k × n`) and `y` (`rows × n`), all row-major: a dense
/// layer's forward pass (y holding the bias), its weight gradient (`x` = the inputs transposed)
/// and the policy head's gradient w.r.t. the user vector (`w` = the item matrix). Tiles of `R`
/// rows × `L` columns stay in registers over the whole of `k`; the rows left over (all of them
/// for one row) go through `axpy` one row of `w` at a time, which reads `w` once in order and
/// skips zero coefficients (ReLU outputs, masked items).
pub fn matmul_acc(x: &[f32], rows: usize, w: &[f32], k: usize, n: usize, y: &mut [f32]) {
    let full = n / L * L;
    let mut r = 0;
    while r + R <= rows {
        let x_tile = &x[r * k..(r + R) * k];
        let y_tile = &mut y[r * n..(r + R) * n];
        let mut o = 0;
        while o < full {
            let mut acc = [[0.0f32; L]; R];
            for (q, acc_q) in acc.iter_mut().enumerate() {
                *acc_q = lanes(&y_tile[q * n + o..]);
            }
            for i in 0..k {
                let wv = lanes(&w[i * n + o..]);
                for (q, acc_q) in acc.iter_mut().enumerate() {
                    let xv = x_tile[q * k + i];
                    for (s, wv) in acc_q.iter_mut().zip(wv) {
                        *s += xv * wv;
                    }
                }
            }
            for (q, acc_q) in acc.iter().enumerate() {
                y_tile[q * n + o..q * n + o + L].copy_from_slice(acc_q);
            }
            o += L;
        }
        for q in 0..R {
            for o in full..n {
                let s: f32 = (0..k).map(|i| x_tile[q * k + i] * w[i * n + o]).sum();
                y_tile[q * n + o] += s;
            }
        }
        r += R;
    }
    for r in r..rows {
        let y_r = &mut y[r * n..(r + 1) * n];
        for (i, &xv) in x[r * k..(r + 1) * k].iter().enumerate() {
            if xv != 0.0 {
                axpy(y_r, xv, &w[i * n..(i + 1) * n]);
            }
        }
    }
}

/// `y += a x`.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// `out = xᵀ` for `x` (`rows × cols`, row-major): `out` is `cols × rows`.
pub fn transpose(x: &[f32], rows: usize, cols: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(rows * cols, 0.0);
    for r in 0..rows {
        for (c, &v) in x[r * cols..(r + 1) * cols].iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// `|x - y|` against the sum of the magnitudes that were added: the rounding bound of a
    /// reordered f32 sum.
    fn close(x: f32, y: f32, scale: f32) -> bool {
        (x - y).abs() <= 1e-5 * scale.max(1.0)
    }

    fn matrix(len: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(-2.0f32..2.0, len)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn dots_are_the_plain_products((rows, n, k, a, b) in (1usize..11, 1usize..19, 1usize..37)
            .prop_flat_map(|(rows, n, k)| (Just(rows), Just(n), Just(k), matrix(rows * k),
                                           matrix(n * k)))) {
            let mut out = vec![f32::NAN; rows * n];
            dots(&a, rows, &b, n, k, &mut out);
            for r in 0..rows {
                for j in 0..n {
                    let (ar, bj) = (&a[r * k..(r + 1) * k], &b[j * k..(j + 1) * k]);
                    let scale: f32 = ar.iter().zip(bj).map(|(x, y)| (x * y).abs()).sum();
                    prop_assert!(close(out[r * n + j], naive_dot(ar, bj), scale));
                    prop_assert!(close(dot(ar, bj), naive_dot(ar, bj), scale));
                }
            }
        }

        #[test]
        fn matmul_acc_is_the_plain_product((rows, k, n, x, w, y0) in (1usize..11, 1usize..23, 1usize..29)
            .prop_flat_map(|(rows, k, n)| (Just(rows), Just(k), Just(n), matrix(rows * k),
                                           matrix(k * n), matrix(rows * n)))) {
            let mut y = y0.clone();
            matmul_acc(&x, rows, &w, k, n, &mut y);
            for r in 0..rows {
                for o in 0..n {
                    let mut want = y0[r * n + o];
                    let mut scale = want.abs();
                    for i in 0..k {
                        want += x[r * k + i] * w[i * n + o];
                        scale += (x[r * k + i] * w[i * n + o]).abs();
                    }
                    prop_assert!(close(y[r * n + o], want, scale), "{} vs {want}", y[r * n + o]);
                }
            }
        }
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let mut t = Vec::new();
        transpose(&x, 2, 3, &mut t);
        assert_eq!(t, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
