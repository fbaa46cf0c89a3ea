//! Cold-start benchmark: rating RMSE on items held out entirely from training, predicted from
//! item features alone, with genre flags vs text embeddings (all-MiniLM-L6-v2).
//!
//! Model: prediction = user mean (from training ratings; global mean for users with none) +
//! ridge regression of (rating − user mean) on the item's features with an intercept. Items are
//! split into 5 folds; each fold is held out once (its items never seen in training), the ridge
//! penalty is picked per feature set on an inner item split of the training folds, and RMSE is
//! pooled over all held-out ratings.
//!
//! scripts/fetch-encoder.sh && cargo run --release --features encoder --example coldstart -- ../shared/data/ml-100k
use metarec::data::Dataset;
use metarec::encoder::embed_catalog;
use std::path::PathBuf;

/// Per item: (count, sum of residuals) over the given ratings' items.
fn stats(ds: &Dataset, keep: &dyn Fn(usize) -> bool, user_mean: &[f64]) -> Vec<(f64, f64, f64)> {
    let mut s = vec![(0.0, 0.0, 0.0); ds.n_items()];
    for r in &ds.ratings {
        if keep(r.item as usize) {
            let y = f64::from(r.value) - user_mean[r.user as usize];
            let e = &mut s[r.item as usize];
            e.0 += 1.0;
            e.1 += y;
            e.2 += y * y;
        }
    }
    s
}

/// Ridge fit on per-item sufficient statistics; features get an appended intercept (unpenalised).
fn ridge(x: &[Vec<f64>], st: &[(f64, f64, f64)], items: &[usize], lambda: f64) -> Vec<f64> {
    let p = x[0].len() + 1;
    let mut a = vec![0.0; p * p];
    let mut b = vec![0.0; p];
    let mut row = vec![0.0; p];
    for &i in items {
        let (c, sy, _) = st[i];
        if c == 0.0 {
            continue;
        }
        row[..p - 1].copy_from_slice(&x[i]);
        row[p - 1] = 1.0;
        for u in 0..p {
            b[u] += row[u] * sy;
            for v in 0..p {
                a[u * p + v] += c * row[u] * row[v];
            }
        }
    }
    for u in 0..p - 1 {
        a[u * p + u] += lambda;
    }
    a[p * p - 1] += 1e-9;
    // Cholesky solve.
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = a[i * p + j] - (0..j).map(|k| l[i * p + k] * l[j * p + k]).sum::<f64>();
            l[i * p + j] = if i == j {
                s.max(1e-12).sqrt()
            } else {
                s / l[j * p + j]
            };
        }
    }
    let mut z = vec![0.0; p];
    for i in 0..p {
        z[i] = (b[i] - (0..i).map(|k| l[i * p + k] * z[k]).sum::<f64>()) / l[i * p + i];
    }
    let mut w = vec![0.0; p];
    for i in (0..p).rev() {
        w[i] = (z[i] - (i + 1..p).map(|k| l[k * p + i] * w[k]).sum::<f64>()) / l[i * p + i];
    }
    w
}

/// Sum of squared errors and count over held-out items, from sufficient statistics.
fn sse(x: &[Vec<f64>], st: &[(f64, f64, f64)], items: &[usize], w: &[f64]) -> (f64, f64) {
    let p = w.len();
    items.iter().fold((0.0, 0.0), |(e, n), &i| {
        let (c, sy, syy) = st[i];
        let f = x[i].iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + w[p - 1];
        // Σ (y − f)² = Σy² − 2fΣy + c f²
        (e + syy - 2.0 * f * sy + c * f * f, n + c)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data/ml-100k".into()),
    );
    let model = std::env::var_os("METAREC_ENCODER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/metarec/all-MiniLM-L6-v2")
        });
    let ds = metarec::data::load(&data)?;
    let n = ds.n_items();
    let cache = std::env::var_os("METAREC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/metarec")
        })
        .join("embeddings");
    let emb = embed_catalog(&model, &ds.catalog, 64, Some(&cache), &mut |_, _| {})?;
    let genres: Vec<Vec<f64>> = ds
        .catalog
        .items
        .iter()
        .map(|m| {
            let mut v = vec![0.0; ds.catalog.genres.len()];
            m.genres.iter().for_each(|&g| v[g as usize] = 1.0);
            v
        })
        .collect();
    let text: Vec<Vec<f64>> = emb
        .values
        .chunks_exact(emb.dim)
        .map(|r| r.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let both: Vec<Vec<f64>> = genres
        .iter()
        .zip(&text)
        .map(|(g, t)| g.iter().chain(t).copied().collect())
        .collect();
    let none: Vec<Vec<f64>> = vec![Vec::new(); n];
    let sets: [(&str, &Vec<Vec<f64>>); 4] = [
        ("user mean only", &none),
        ("genre flags (19)", &genres),
        ("text embedding (384)", &text),
        ("genres + text", &both),
    ];

    // Deterministic item permutation into 5 folds.
    let mut order: Vec<usize> = (0..n).collect();
    let mut s: u64 = 42;
    for i in (1..n).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    let fold_of: Vec<usize> = {
        let mut f = vec![0; n];
        order.iter().enumerate().for_each(|(k, &i)| f[i] = k % 5);
        f
    };
    let lambdas = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];
    let mut totals = vec![(0.0, 0.0); sets.len()];
    for fold in 0..5 {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != fold).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold_of[i] == fold).collect();
        // User means from training ratings only.
        let (mut us, mut uc) = (vec![0.0; ds.n_users()], vec![0.0; ds.n_users()]);
        let mut g = (0.0, 0.0);
        for r in ds
            .ratings
            .iter()
            .filter(|r| fold_of[r.item as usize] != fold)
        {
            us[r.user as usize] += f64::from(r.value);
            uc[r.user as usize] += 1.0;
            g = (g.0 + f64::from(r.value), g.1 + 1.0);
        }
        let user_mean: Vec<f64> = us
            .iter()
            .zip(&uc)
            .map(|(s, c)| if *c > 0.0 { s / c } else { g.0 / g.1 })
            .collect();
        let st = stats(&ds, &|i| fold_of[i] != fold, &user_mean);
        let st_test = stats(&ds, &|i| fold_of[i] == fold, &user_mean);
        // Inner split of the training items for the penalty.
        let (fit, val): (Vec<usize>, Vec<usize>) = train.iter().partition(|&&i| i % 4 != 0);
        for (k, (_, x)) in sets.iter().enumerate() {
            let best = lambdas
                .iter()
                .map(|&l| (sse(x, &st, &val, &ridge(x, &st, &fit, l)).0, l))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(1.0, |(_, l)| l);
            let (e, c) = sse(x, &st_test, &test, &ridge(x, &st, &train, best));
            totals[k] = (totals[k].0 + e, totals[k].1 + c);
        }
    }
    println!("cold-start rating RMSE on {} ({} items in 5 item folds, each held out of training entirely; user means from training; ridge on item features)", ds.name, n);
    println!();
    println!("| item features | held-out RMSE |");
    println!("|---|---|");
    for ((name, _), (e, c)) in sets.iter().zip(&totals) {
        println!("| {name} | {:.4} |", (e / c).sqrt());
    }
    Ok(())
}
