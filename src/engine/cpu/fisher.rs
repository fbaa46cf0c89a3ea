//! [`Fisher`] on the CPU engine: the tangent pass, the softmax covariance and the backward pass
//! in plain Rust, the reference `shaders/tangent.wgsl` and `shaders/fisher.wgsl` are tested
//! against.

use super::reference::{dot, masked_log_softmax};
use super::CpuEngine;
use crate::engine::backend::{FisherBackend, FisherOp};
#[cfg(doc)]
use crate::engine::fisher::Fisher;
use crate::engine::fisher::{conjugate_gradient, States};
use crate::engine::Result;

impl CpuEngine {
    /// `(F + damping·I) v` after the arguments were checked.
    fn fvp(&self, states: &States<'_>, v: &[f32], damping: f32) -> Vec<f32> {
        let fwd = self.run_forward(states.inputs);
        let rows = fwd.rows;
        // tangent pass: dZ = dX W + X dW + db, dY = act'(Y) ⊙ dZ (the input does not move)
        let mut dx: Vec<f32> = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let (i_n, o_n) = (layer.inputs, layer.outputs);
            let w = &self.params[self.offsets[l]..];
            let dw = &v[self.offsets[l]..];
            let (x, y) = (&fwd.acts[l], &fwd.acts[l + 1]);
            let mut dy = vec![0.0; rows * o_n];
            for r in 0..rows {
                for o in 0..o_n {
                    let mut acc = dw[i_n * o_n + o];
                    for i in 0..i_n {
                        acc += x[r * i_n + i] * dw[i * o_n + o];
                        if l > 0 {
                            acc += dx[r * i_n + i] * w[i * o_n + o];
                        }
                    }
                    let yv = y[r * o_n + o];
                    dy[r * o_n + o] = acc * layer.activation.derivative_from_output(yv);
                }
            }
            dx = dy;
        }
        // head: du = (1/B) Eᵀ (diag(p) − p pᵀ) E du_tangent / τ²
        let d = self.cfg.output;
        let n = self.cfg.items();
        let tau = states.temperature;
        let user = &fwd.acts[self.layers.len()];
        let scores = self.score(user, rows);
        let inv_b = 1.0 / rows as f32;
        let mut du = vec![0.0; rows * d];
        for r in 0..rows {
            let lp = masked_log_softmax(&scores[r * n..(r + 1) * n], states.mask, r, tau);
            let ut = &dx[r * d..(r + 1) * d];
            let t: Vec<f32> = self
                .items
                .chunks_exact(d)
                .map(|e| dot(ut, e) / tau)
                .collect();
            let p: Vec<f32> = lp
                .iter()
                .map(|&l| if l == f32::MIN { 0.0 } else { l.exp() })
                .collect();
            let mean: f32 = p.iter().zip(&t).map(|(p, t)| p * t).sum();
            let du_r = &mut du[r * d..(r + 1) * d];
            for (j, e) in self.items.chunks_exact(d).enumerate() {
                let c = p[j] * (t[j] - mean) * inv_b / tau;
                for (g, &ev) in du_r.iter_mut().zip(e) {
                    *g += c * ev;
                }
            }
        }
        let (mut out, _) = self.backward(&fwd, du, false);
        for (o, &vi) in out.iter_mut().zip(v) {
            *o += damping * vi;
        }
        out
    }
}

impl FisherBackend for CpuEngine {
    async fn fisher(&mut self, states: States<'_>, op: FisherOp<'_>) -> Result<Vec<f32>> {
        Ok(match op {
            FisherOp::Product { v, damping } => self.fvp(&states, v, damping),
            FisherOp::Solve { g, cg } => {
                conjugate_gradient(|p| self.fvp(&states, p, cg.damping), g, cg.iterations)
            }
        })
    }
}
