//! The [`Engine`] trait on the GPU: uploads, reads, scoring, sampling and training.

use super::uniforms::{ReduceDims, RowDims};
use super::{GpuEngine, Grad, Tail};
use crate::engine::backend::{Backend, Checked, Rows, Scoring, Wrt};
use crate::engine::{
    Adam, Adapted, ContextState, ContextStep, Counters, Engine, EngineInfo, OptimizerState, Reduce,
    Result, SlateSpec, Slates, StepSums, TrainStats,
};
use crate::model::ModelConfig;
use bytemuck::Zeroable;

impl Engine for GpuEngine {
    fn info(&self) -> EngineInfo {
        self.ctx.info().clone()
    }

    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn counters(&self) -> Counters {
        self.counters.get()
    }

    async fn params(&mut self) -> Result<Vec<f32>> {
        let enc = self.encoder();
        self.read_one(enc, &self.params, self.n_params * 4).await
    }

    async fn stats(&mut self) -> Result<TrainStats> {
        let bytes = std::mem::size_of::<StepSums>() as u64;
        let enc = self.encoder();
        let out = self.read(enc, &[(&self.stats, bytes)]).await?;
        let s: StepSums = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&out[0]));
        Ok(s.into())
    }

    fn reset_stats(&mut self) -> Result<()> {
        // zero `steps`, `loss_sum` and `entropy_sum` (bytes 4..16), keep the step counter
        self.ctx
            .queue
            .write_buffer(&self.stats, 4, bytemuck::cast_slice(&[0u32; 3]));
        Ok(())
    }

    async fn optimizer_state(&mut self) -> Result<OptimizerState> {
        let bytes = self.n_params as u64 * 4;
        let sbytes = std::mem::size_of::<StepSums>() as u64;
        let enc = self.encoder();
        let mut out = self
            .read(
                enc,
                &[
                    (&self.adam_m, bytes),
                    (&self.adam_v, bytes),
                    (&self.stats, sbytes),
                ],
            )
            .await?;
        let s: StepSums = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&out[2]));
        Ok(OptimizerState {
            v: out.swap_remove(1),
            m: out.swap_remove(0),
            step: s.step,
        })
    }

    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32> {
        self.reducer.reserve(&self.ctx, data.len()).await?;
        let r = &self.reducer;
        if !data.is_empty() {
            self.write(&r.data, data);
        }
        self.write(
            &r.dims,
            &[ReduceDims {
                n: data.len() as u32,
            }],
        );
        let mode = match op {
            Reduce::Sum => 0,
            Reduce::Mean => 1,
            Reduce::SquaredNorm => 2,
        };
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            r.kernels[mode].dispatch(&mut pass, (1, 1));
        }
        self.count(|c| c.dispatches += 1);
        let out = self.read(enc, &[(&r.out, 4)]).await?;
        Ok(out[0][0])
    }
}

impl Backend for GpuEngine {
    fn load_params(&mut self, params: &[f32]) -> Result<()> {
        self.slate_stats = None;
        self.write(&self.params, params);
        let zeros = vec![0f32; self.n_params];
        self.write(&self.adam_m, &zeros);
        self.write(&self.adam_v, &zeros);
        self.write(&self.stats, &[StepSums::zeroed()]);
        Ok(())
    }

    fn load_items(&mut self, embeddings: &[f32]) -> Result<()> {
        self.slate_stats = None;
        let d = self.cfg.output;
        for t in &self.tiles {
            self.write(
                &t.buffer,
                &embeddings[t.offset * d..(t.offset + t.items) * d],
            );
        }
        self.items_host = embeddings.to_vec();
        Ok(())
    }

    fn item_matrix(&self) -> &[f32] {
        &self.items_host
    }

    async fn forward_rows(&mut self, x: Rows<'_>) -> Result<Vec<f32>> {
        self.upload_inputs(x.inputs, x.rows, false);
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_forward(&mut pass, x.rows);
        }
        let out = &self.acts[self.forward.len()];
        self.read_one(enc, out, x.rows * self.cfg.output * 4).await
    }

    async fn score_rows(&mut self, s: Scoring<'_>) -> Result<Vec<f32>> {
        let enc = self.encode_scoring(s.inputs, s.rows, Tail::None);
        self.read_one(enc, &self.logits, s.rows * s.items * 4).await
    }

    async fn log_prob_rows(&mut self, s: Scoring<'_>, temperature: f32) -> Result<Vec<f32>> {
        let dims = RowDims {
            temperature,
            ..RowDims::zeroed()
        };
        let enc = self.encode_scoring(s.inputs, s.rows, Tail::Softmax(s.mask, dims));
        self.read_one(enc, &self.logp, s.rows * s.items * 4).await
    }

    async fn sample_rows(&mut self, s: Scoring<'_>, spec: SlateSpec) -> Result<Slates> {
        Ok(self.draw(s, spec, false).await?.0)
    }

    async fn sample_scored_rows(
        &mut self,
        s: Scoring<'_>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        self.draw(s, spec, true).await
    }

    async fn gradient(&mut self, b: Checked<'_>, wrt: Wrt) -> Result<(Vec<f32>, f32)> {
        let (grad, buffer, bytes) = match wrt {
            Wrt::Params => (Grad::Weights, &self.grads, self.n_params * 4),
            Wrt::Input => (Grad::Input, &self.d_input, b.rows * self.cfg.input * 4),
        };
        self.upload_batch(b, wrt == Wrt::Input)?;
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_gradient(&mut pass, b.rows, grad);
        }
        self.read_gradient(enc, buffer, bytes as u64, b.rows).await
    }

    fn train_steps(&mut self, b: Checked<'_>, adam: Adam, steps: u32) -> Result<()> {
        let enc = self.encode_train(b, adam, steps, false)?;
        self.ctx.queue.submit([enc.finish()]);
        self.count(|c| c.submits += 1);
        Ok(())
    }

    async fn train_step_input(&mut self, b: Checked<'_>, adam: Adam) -> Result<(Vec<f32>, f32)> {
        let enc = self.encode_train(b, adam, 1, true)?;
        let bytes = (b.rows * self.cfg.input * 4) as u64;
        self.read_gradient(enc, &self.d_input, bytes, b.rows).await
    }

    async fn adapt(&mut self, step: ContextStep<'_>, state: ContextState<'_>) -> Result<Adapted> {
        self.adapt_context_gpu(step, state).await
    }

    fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.write(&self.adam_m, &state.m);
        self.write(&self.adam_v, &state.v);
        self.write(&self.stats, &[state.step]);
        Ok(())
    }
}

impl GpuEngine {
    /// The slates of the checked rows `s` in one submit (forward, scores, sampler); with
    /// `scored`, also each position's logit from the sampler (`slate_scores`); reads back 8 or
    /// 12 bytes per slot.
    async fn draw(
        &mut self,
        s: Scoring<'_>,
        spec: SlateSpec,
        scored: bool,
    ) -> Result<(Slates, Vec<f32>)> {
        // the sampler overwrites the statistics an interaction's slate left
        self.slate_stats = None;
        let dims = RowDims {
            k: spec.k as u32,
            greedy: spec.greedy as u32,
            seed: spec.seed,
            draw: spec.draw,
            temperature: spec.temperature,
            ..RowDims::zeroed()
        };
        let enc = self.encode_scoring(s.inputs, s.rows, Tail::Sample(s.mask, dims));
        let bytes = (s.rows * spec.k * 4) as u64;
        let mut copies = vec![(&self.slate_items, bytes), (&self.slate_logp, bytes)];
        if scored {
            copies.push((&self.slate_scores, bytes));
        }
        let mut out = self.read(enc, &copies).await?;
        let scores = if scored {
            out.swap_remove(2)
        } else {
            Vec::new()
        };
        let slate = Slates {
            k: spec.k,
            logp: out.swap_remove(1),
            items: bytemuck::cast_slice(&out[0]).to_vec(),
        };
        Ok((slate, scores))
    }
}
