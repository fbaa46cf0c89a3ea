//! The [`Engine`] trait on the GPU: uploads, reads, scoring, sampling and training.

use super::uniforms::{ReduceDims, RowDims, Stats};
use super::{GpuEngine, Grad, Tail};
use crate::engine::{
    check_inputs, check_items, check_log_probs, check_optimizer, check_params, check_policy,
    check_sample, Adam, Adapted, Batch, ContextState, ContextStep, Counters, Engine, EngineInfo,
    Loss, Mask, OptimizerState, Reduce, Result, SlateSpec, Slates, TrainStats,
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

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(self.n_params, params)?;
        self.write(&self.params, params);
        let zeros = vec![0f32; self.n_params];
        self.write(&self.adam_m, &zeros);
        self.write(&self.adam_v, &zeros);
        self.write(&self.stats, &[Stats::zeroed()]);
        Ok(())
    }

    async fn params(&mut self) -> Result<Vec<f32>> {
        let enc = self.encoder();
        self.read_one(enc, &self.params, self.n_params * 4).await
    }

    fn set_items(&mut self, embeddings: &[f32]) -> Result<()> {
        check_items(&self.cfg, embeddings)?;
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

    fn item_vector(&self, item: u32) -> Result<Vec<f32>> {
        check_policy(&self.cfg)?;
        crate::engine::item_row(&self.items_host, self.cfg.output, item)
    }

    async fn forward(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let rows = check_inputs(&self.cfg, inputs)?;
        self.upload_inputs(inputs, rows, false);
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_forward(&mut pass, rows);
        }
        let out = &self.acts[self.forward.len()];
        self.read_one(enc, out, rows * self.cfg.output * 4).await
    }

    async fn scores(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let n = check_policy(&self.cfg)?;
        let rows = check_inputs(&self.cfg, inputs)?;
        let enc = self.encode_scoring(inputs, rows, Tail::None);
        self.read_one(enc, &self.logits, rows * n * 4).await
    }

    async fn log_probs(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        temperature: f32,
    ) -> Result<Vec<f32>> {
        let (n, rows) = check_log_probs(&self.cfg, inputs, mask, temperature)?;
        let dims = RowDims {
            temperature,
            ..RowDims::zeroed()
        };
        let enc = self.encode_scoring(inputs, rows, Tail::Softmax(mask, dims));
        self.read_one(enc, &self.logp, rows * n * 4).await
    }

    async fn sample(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<Slates> {
        Ok(self.draw(inputs, mask, spec, false).await?.0)
    }

    async fn sample_scored(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        self.draw(inputs, mask, spec, true).await
    }

    async fn gradients(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        let rows = self.upload_batch(batch, loss, false)?;
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_gradient(&mut pass, rows, Grad::Weights);
        }
        let bytes = self.n_params as u64 * 4;
        self.read_gradient(enc, &self.grads, bytes, rows).await
    }

    async fn input_gradient(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        let rows = self.upload_batch(batch, loss, true)?;
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_gradient(&mut pass, rows, Grad::Input);
        }
        let bytes = (rows * self.cfg.input * 4) as u64;
        self.read_gradient(enc, &self.d_input, bytes, rows).await
    }

    async fn adapt_context(
        &mut self,
        step: ContextStep<'_>,
        state: ContextState<'_>,
    ) -> Result<Adapted> {
        self.adapt_context_gpu(step, state).await
    }

    fn train(&mut self, batch: &Batch, loss: Loss, adam: Adam, steps: u32) -> Result<()> {
        let (enc, _) = self.encode_train(batch, loss, adam, steps, false)?;
        self.ctx.queue.submit([enc.finish()]);
        self.count(|c| c.submits += 1);
        Ok(())
    }

    async fn train_with_input_gradient(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
    ) -> Result<(Vec<f32>, f32)> {
        let (enc, rows) = self.encode_train(batch, loss, adam, 1, true)?;
        let bytes = (rows * self.cfg.input * 4) as u64;
        self.read_gradient(enc, &self.d_input, bytes, rows).await
    }

    async fn stats(&mut self) -> Result<TrainStats> {
        let bytes = std::mem::size_of::<Stats>() as u64;
        let enc = self.encoder();
        let out = self.read(enc, &[(&self.stats, bytes)]).await?;
        let s: Stats = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&out[0]));
        let n = s.steps.max(1) as f32;
        Ok(TrainStats {
            step: s.step,
            steps: s.steps,
            mean_loss: s.loss_sum / n,
            last_loss: s.last_loss,
            mean_entropy: s.entropy_sum / n,
            // step_stats marks a skipped step with a negative squared norm
            grad_norm: if s.grad_sq < 0.0 {
                f32::INFINITY
            } else {
                s.grad_sq.sqrt()
            },
            skipped: s.skipped,
        })
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
        let sbytes = std::mem::size_of::<Stats>() as u64;
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
        let s: Stats = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&out[2]));
        Ok(OptimizerState {
            v: out.swap_remove(1),
            m: out.swap_remove(0),
            step: s.step,
        })
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_optimizer(self.n_params, state)?;
        self.write(&self.adam_m, &state.m);
        self.write(&self.adam_v, &state.v);
        self.write(&self.stats, &[state.step]);
        Ok(())
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

impl GpuEngine {
    /// The slates of `inputs` in one submit (forward, scores, sampler); with `scored`, also each
    /// position's logit from the sampler (`slate_scores`); reads back 8 or 12 bytes per slot.
    async fn draw(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
        scored: bool,
    ) -> Result<(Slates, Vec<f32>)> {
        let (_, rows) = check_sample(&self.cfg, inputs, mask, &spec)?;
        let dims = RowDims {
            k: spec.k as u32,
            greedy: spec.greedy as u32,
            seed: spec.seed,
            draw: spec.draw,
            temperature: spec.temperature,
            ..RowDims::zeroed()
        };
        let enc = self.encode_scoring(inputs, rows, Tail::Sample(mask, dims));
        let bytes = (rows * spec.k * 4) as u64;
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
