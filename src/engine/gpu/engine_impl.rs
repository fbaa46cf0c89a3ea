//! The [`Engine`] trait on the GPU: uploads, reads, scoring, sampling and training.

use super::uniforms::{GpuStats, SampleDims, SoftmaxDims};
use super::{GpuEngine, Reducer, Tail};
use crate::engine::{
    check_inputs, check_items, check_log_probs, check_optimizer, check_params, check_policy,
    check_sample, Adam, Batch, Counters, Engine, EngineInfo, Loss, Mask, OptimizerState, Reduce,
    Result, SlateSpec, Slates, TrainStats,
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
        self.counters
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(self.n_params, params)?;
        self.write(&self.params, params);
        let zeros = vec![0f32; self.n_params];
        self.write(&self.adam_m, &zeros);
        self.write(&self.adam_v, &zeros);
        self.write(&self.stats, &[GpuStats::zeroed()]);
        Ok(())
    }

    async fn params(&mut self) -> Result<Vec<f32>> {
        let bytes = self.n_params as u64 * 4;
        let enc = self.encoder();
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.params, bytes)],
        )
        .await?;
        Ok(Self::f32s(&out[0]))
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
        let bytes = (rows * self.cfg.output * 4) as u64;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.acts[self.forward.len()], bytes)],
        )
        .await?;
        Ok(Self::f32s(&out[0]))
    }

    async fn scores(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let n = check_policy(&self.cfg)?;
        let rows = check_inputs(&self.cfg, inputs)?;
        self.upload_inputs(inputs, rows, false);
        self.write_score_dims(rows);
        let enc = self.encode_scoring(rows, Tail::None);
        let bytes = (rows * n * 4) as u64;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.logits, bytes)],
        )
        .await?;
        Ok(Self::f32s(&out[0]))
    }

    async fn log_probs(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        temperature: f32,
    ) -> Result<Vec<f32>> {
        let (n, rows) = check_log_probs(&self.cfg, inputs, mask, temperature)?;
        self.upload_inputs(inputs, rows, false);
        self.write_score_dims(rows);
        let use_mask = self.upload_mask(mask);
        self.write(
            &self.softmax_dims,
            &[SoftmaxDims {
                rows: rows as u32,
                items: n as u32,
                words: n.div_ceil(32) as u32,
                use_mask,
                temperature,
                _pad: [0; 3],
            }],
        );
        let enc = self.encode_scoring(rows, Tail::Softmax);
        let bytes = (rows * n * 4) as u64;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.logp, bytes)],
        )
        .await?;
        Ok(Self::f32s(&out[0]))
    }

    async fn sample(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<Slates> {
        let (n, rows) = check_sample(&self.cfg, inputs, mask, &spec)?;
        self.upload_inputs(inputs, rows, false);
        self.write_score_dims(rows);
        let use_mask = self.upload_mask(mask);
        self.write(
            &self.sample_dims,
            &[SampleDims {
                rows: rows as u32,
                items: n as u32,
                words: n.div_ceil(32) as u32,
                use_mask,
                k: spec.k as u32,
                greedy: spec.greedy as u32,
                seed: spec.seed,
                draw: spec.draw,
                temperature: spec.temperature,
                _pad: [0; 3],
            }],
        );
        let enc = self.encode_scoring(rows, Tail::Sample);
        let bytes = (rows * spec.k * 4) as u64;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.slate_items, bytes), (&self.slate_logp, bytes)],
        )
        .await?;
        Ok(Slates {
            k: spec.k,
            items: bytemuck::pod_collect_to_vec(&out[0]),
            logp: Self::f32s(&out[1]),
        })
    }

    async fn gradients(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        let rows = self.upload_batch(batch, loss, false)?;
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_gradient(&mut pass, rows, false);
        }
        let gbytes = self.n_params as u64 * 4;
        let sbytes = rows as u64 * 8;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.grads, gbytes), (&self.row_stats, sbytes)],
        )
        .await?;
        let row_stats = Self::f32s(&out[1]);
        let value = row_stats.iter().step_by(2).sum::<f32>() / rows as f32;
        Ok((Self::f32s(&out[0]), value))
    }

    async fn input_gradient(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        let rows = self.upload_batch(batch, loss, true)?;
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_gradient(&mut pass, rows, true);
        }
        let xbytes = (rows * self.cfg.input * 4) as u64;
        let sbytes = rows as u64 * 8;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.d_input, xbytes), (&self.row_stats, sbytes)],
        )
        .await?;
        let row_stats = Self::f32s(&out[1]);
        let value = row_stats.iter().step_by(2).sum::<f32>() / rows as f32;
        Ok((Self::f32s(&out[0]), value))
    }

    fn train(&mut self, batch: &Batch, loss: Loss, adam: Adam, steps: u32) -> Result<()> {
        let (enc, _) = self.encode_train(batch, loss, adam, steps, false)?;
        self.ctx.queue.submit([enc.finish()]);
        self.counters.submits += 1;
        Ok(())
    }

    async fn train_with_input_gradient(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
    ) -> Result<(Vec<f32>, f32)> {
        let (enc, rows) = self.encode_train(batch, loss, adam, 1, true)?;
        let xbytes = (rows * self.cfg.input * 4) as u64;
        let sbytes = rows as u64 * 8;
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.d_input, xbytes), (&self.row_stats, sbytes)],
        )
        .await?;
        let row_stats = Self::f32s(&out[1]);
        let value = row_stats.iter().step_by(2).sum::<f32>() / rows as f32;
        Ok((Self::f32s(&out[0]), value))
    }

    async fn stats(&mut self) -> Result<TrainStats> {
        let bytes = std::mem::size_of::<GpuStats>() as u64;
        let enc = self.encoder();
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[(&self.stats, bytes)],
        )
        .await?;
        let s: GpuStats = bytemuck::pod_read_unaligned(&out[0]);
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
        let sbytes = std::mem::size_of::<GpuStats>() as u64;
        let enc = self.encoder();
        let out = Self::read(
            &self.ctx,
            &self.staging,
            &mut self.counters,
            enc,
            &[
                (&self.adam_m, bytes),
                (&self.adam_v, bytes),
                (&self.stats, sbytes),
            ],
        )
        .await?;
        let s: GpuStats = bytemuck::pod_read_unaligned(&out[2]);
        Ok(OptimizerState {
            m: Self::f32s(&out[0]),
            v: Self::f32s(&out[1]),
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
        let r = &mut self.reducer;
        if data.len() > r.capacity {
            r.capacity = data.len().next_power_of_two();
            r.data = self.ctx.storage("reduce data", r.capacity as u64 * 4);
            r.binds = Reducer::binds(&self.ctx, &r.pipelines, &r.dims, &r.data, &r.out);
        }
        if !data.is_empty() {
            self.ctx
                .queue
                .write_buffer(&r.data, 0, bytemuck::cast_slice(data));
        }
        self.ctx.queue.write_buffer(
            &r.dims,
            0,
            bytemuck::cast_slice(&[data.len() as u32, 0, 0, 0]),
        );
        let mode = match op {
            Reduce::Sum => 0,
            Reduce::Mean => 1,
            Reduce::SquaredNorm => 2,
        };
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&r.pipelines[mode]);
            pass.set_bind_group(0, &r.binds[mode], &[]);
            pass.dispatch_workgroups(1, 1, 1);
        }
        let out = self
            .ctx
            .read_back(enc, &self.staging, &[(&r.out, 4)])
            .await?;
        self.counters.dispatches += 1;
        self.counters.submits += 1;
        self.counters.bytes_read_back += 4;
        Ok(Self::f32s(&out[0])[0])
    }
}
