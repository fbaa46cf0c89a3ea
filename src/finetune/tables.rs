//! The host-side input tables of fine-tuning (embeddings and biases, sparse Adam) and how they
//! make a network input row.

use super::FinetuneConfig;
use crate::data::{ItemFeatures, Rating};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A table of rows updated by sparse Adam: only rows with a gradient in a step move.
#[derive(Clone)]
pub(super) struct Table {
    pub(super) dim: usize,
    pub(super) values: Vec<f32>,
    pub(super) m: Vec<f32>,
    pub(super) v: Vec<f32>,
    pub(super) grad: Vec<f32>,
    pub(super) touched: Vec<u32>,
    pub(super) seen: Vec<bool>,
    pub(super) step: i32,
}

impl Table {
    pub(super) fn new(rows: usize, dim: usize, std: f32, rng: &mut ChaCha8Rng) -> Self {
        let half = std * 3f32.sqrt();
        let values = (0..rows * dim)
            .map(|_| {
                if half > 0.0 {
                    rng.random_range(-half..half)
                } else {
                    0.0
                }
            })
            .collect();
        Table {
            dim,
            values,
            m: vec![0.0; rows * dim],
            v: vec![0.0; rows * dim],
            grad: vec![0.0; rows * dim],
            touched: Vec::new(),
            seen: vec![false; rows],
            step: 0,
        }
    }

    pub(super) fn row(&self, r: u32) -> &[f32] {
        let r = r as usize;
        &self.values[r * self.dim..(r + 1) * self.dim]
    }

    /// Adds `g` plus the L2 term `l2 * value * scale` to row `r`'s gradient.
    pub(super) fn accumulate(&mut self, r: u32, g: impl Iterator<Item = f32>, l2: f32, scale: f32) {
        let ri = r as usize;
        if !self.seen[ri] {
            self.seen[ri] = true;
            self.touched.push(r);
        }
        let span = ri * self.dim..(ri + 1) * self.dim;
        for ((acc, gv), &p) in self.grad[span.clone()]
            .iter_mut()
            .zip(g)
            .zip(&self.values[span])
        {
            *acc += gv + l2 * p * scale;
        }
    }

    pub(super) fn discard(&mut self) {
        for &r in &self.touched {
            let r = r as usize;
            self.seen[r] = false;
            self.grad[r * self.dim..(r + 1) * self.dim].fill(0.0);
        }
        self.touched.clear();
    }

    pub(super) fn apply(&mut self, lr: f32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        self.step += 1;
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        for &r in &self.touched {
            let r = r as usize;
            self.seen[r] = false;
            for k in r * self.dim..(r + 1) * self.dim {
                let g = self.grad[k];
                self.grad[k] = 0.0;
                self.m[k] = b1 * self.m[k] + (1.0 - b1) * g;
                self.v[k] = b2 * self.v[k] + (1.0 - b2) * g * g;
                self.values[k] -= lr * (self.m[k] / c1) / ((self.v[k] / c2).sqrt() + eps);
            }
        }
        self.touched.clear();
    }
}

/// The host-side input tables and how they make a network input row.
pub(super) struct Inputs<'a> {
    pub(super) cfg: &'a FinetuneConfig,
    pub(super) users: Table,
    pub(super) items: Table,
    pub(super) user_bias: Table,
    pub(super) item_bias: Table,
    pub(super) features: &'a ItemFeatures,
}

impl Inputs<'_> {
    pub(super) fn write_row(&self, r: &Rating, out: &mut Vec<f32>) {
        let user = (self.users.row(r.user), self.user_bias.row(r.user)[0]);
        let item = (self.items.row(r.item), self.item_bias.row(r.item)[0]);
        self.cfg
            .write_input(user, item, self.features.row(r.item), out);
    }

    /// Spreads the input gradient of one batch over the tables.
    pub(super) fn accumulate(&mut self, batch: &[Rating], d_input: &[f32], width: usize) {
        let l2 = self.cfg.embedding_l2;
        let scale = 1.0 / batch.len() as f32;
        for (r, g) in batch.iter().zip(d_input.chunks_exact(width)) {
            let (gp, gub) = self.cfg.side_gradient(g, self.items.row(r.item), 0);
            let (gq, gib) = self.cfg.side_gradient(g, self.users.row(r.user), 1);
            self.users.accumulate(r.user, gp.into_iter(), l2, scale);
            self.items.accumulate(r.item, gq.into_iter(), l2, scale);
            if self.cfg.biases {
                self.user_bias
                    .accumulate(r.user, std::iter::once(gub), l2, scale);
                self.item_bias
                    .accumulate(r.item, std::iter::once(gib), l2, scale);
            }
        }
    }

    pub(super) fn tables(&mut self) -> [&mut Table; 4] {
        [
            &mut self.users,
            &mut self.items,
            &mut self.user_bias,
            &mut self.item_bias,
        ]
    }
}
