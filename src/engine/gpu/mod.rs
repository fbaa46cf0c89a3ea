//! The GPU engine: every buffer, pipeline and bind group is built once per model; a training step
//! is `2 × layers + 3` dispatches in one compute pass, and `train(.., steps)` encodes all steps in
//! one command buffer and one submit with no readback.

mod build;
mod context;
mod engine_impl;
mod fisher;
mod uniforms;

pub use context::GpuContext;
use context::Shader;
use uniforms::{AdamParams, Dims, LossDims, MseDims, ScoreDims, StatDims};

#[cfg(doc)]
use super::Engine;
use super::{check_batch, Adam, Batch, Counters, EngineError, Loss, Mask, Result};
use crate::model::{Head, Layer, ModelConfig};
use bytemuck::Pod;

/// A pipeline with the bind group it always runs with.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
}

impl Kernel {
    fn dispatch(&self, pass: &mut wgpu::ComputePass, groups: (u32, u32)) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
    }
}

/// What follows the item scores in a scoring pass.
#[derive(Clone, Copy)]
enum Tail {
    None,
    Softmax,
    Sample,
}

/// A slice of the item matrix small enough for one storage binding.
struct Tile {
    items: usize,
    offset: usize,
    buffer: wgpu::Buffer,
    dims: wgpu::Buffer,
    score: Kernel,
}

/// Lays `groups` workgroups out as (x, y) within the 65,535-per-dimension limit.
fn grid(groups: usize) -> (u32, u32) {
    let x = groups.clamp(1, 65_535);
    (x as u32, groups.div_ceil(x).max(1) as u32)
}

/// Tile of dense.wgsl: `TM` rows × `WX` columns of the result per workgroup (32 invocations,
/// two columns each; keep in sync with the shader's constants).
const DENSE_WX: usize = 64;
const DENSE_TM: usize = 16;

/// Rows per workgroup of loss.wgsl `policy_grad` (its constant `R`).
const POLICY_ROWS: usize = 8;

/// Workgroups of a layer's `forward` (dense.wgsl): TM × WX output tiles.
fn forward_groups(layer: &Layer, rows: usize) -> (u32, u32) {
    (
        layer.outputs.div_ceil(DENSE_WX) as u32,
        rows.div_ceil(DENSE_TM) as u32,
    )
}

/// Workgroups of a layer's `backward` (dense.wgsl): the dW tiles, then the dX tiles when `dx`.
fn backward_groups(layer: &Layer, rows: usize, dx: bool) -> (u32, u32) {
    let nw = (layer.inputs + 1).div_ceil(DENSE_TM) * layer.outputs.div_ceil(DENSE_WX);
    let nx = if dx {
        rows.div_ceil(DENSE_TM) * layer.inputs.div_ceil(DENSE_WX)
    } else {
        0
    };
    grid(nw + nx)
}

/// Model on the GPU.
pub struct GpuEngine {
    ctx: GpuContext,
    cfg: ModelConfig,
    n_params: usize,
    // buffers
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    adam_m: wgpu::Buffer,
    adam_v: wgpu::Buffer,
    acts: Vec<wgpu::Buffer>,
    d_input: wgpu::Buffer,
    rows_buf: wgpu::Buffer,
    mask_buf: wgpu::Buffer,
    logits: wgpu::Buffer,
    logp: wgpu::Buffer,
    row_stats: wgpu::Buffer,
    stats: wgpu::Buffer,
    slate_items: wgpu::Buffer,
    slate_logp: wgpu::Buffer,
    staging: wgpu::Buffer,
    // uniforms
    layer_dims: Vec<wgpu::Buffer>,
    softmax_dims: wgpu::Buffer,
    sample_dims: wgpu::Buffer,
    head_dims: wgpu::Buffer,
    adam_params: wgpu::Buffer,
    stat_dims: wgpu::Buffer,
    // kernels
    forward: Vec<Kernel>,
    backward: Vec<Kernel>,
    tiles: Vec<Tile>,
    softmax: Option<Kernel>,
    sample: Option<Kernel>,
    head: Kernel,
    adam: Kernel,
    step_stats: Kernel,
    reducer: Reducer,
    counters: Counters,
    /// Host copy of the item matrix (for [`Engine::item_vector`]).
    items_host: Vec<f32>,
    /// The loss gradient w.r.t. the MLP output (what the last layer's backward reads).
    d_out: wgpu::Buffer,
    /// The direction of a Fisher-vector product (CG's `p`).
    fisher_dir: wgpu::Buffer,
    /// Fisher-vector-product and CG kernels, built on first use.
    fisher: Option<Box<fisher::FisherKernels>>,
}

/// Generic reductions over caller data; its input buffer grows (and its bind groups are
/// rebuilt) only when a larger vector arrives.
struct Reducer {
    pipelines: [wgpu::ComputePipeline; 3],
    dims: wgpu::Buffer,
    data: wgpu::Buffer,
    capacity: usize,
    out: wgpu::Buffer,
    binds: [wgpu::BindGroup; 3],
}

impl Reducer {
    async fn new(ctx: &GpuContext) -> Result<Self> {
        let mut pipelines = Vec::new();
        for mode in 0..3 {
            pipelines.push(
                ctx.pipeline(Shader::Reduce, "reduce", &[("MODE", mode as f64)])
                    .await?,
            );
        }
        let pipelines: [wgpu::ComputePipeline; 3] = pipelines
            .try_into()
            .map_err(|_| EngineError::Device("reduce pipelines".into()))?;
        let dims = ctx.uniform("reduce dims", 16);
        let capacity = 1024;
        let data = ctx.storage("reduce data", capacity as u64 * 4);
        let out = ctx.storage("reduce out", 16);
        let binds = Self::binds(ctx, &pipelines, &dims, &data, &out);
        Ok(Reducer {
            pipelines,
            dims,
            data,
            capacity,
            out,
            binds,
        })
    }

    fn binds(
        ctx: &GpuContext,
        pipelines: &[wgpu::ComputePipeline; 3],
        dims: &wgpu::Buffer,
        data: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> [wgpu::BindGroup; 3] {
        pipelines
            .each_ref()
            .map(|p| ctx.bind(p, &[(0, dims), (1, data), (2, out)]))
    }
}

impl GpuEngine {
    /// The context this engine runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn write<T: Pod>(&self, buffer: &wgpu::Buffer, value: &[T]) {
        self.ctx
            .queue
            .write_buffer(buffer, 0, bytemuck::cast_slice(value));
    }

    /// Uploads the inputs and sets the row count of every layer; the first layer's backward also
    /// computes the input gradient when `input_grad`.
    fn upload_inputs(&self, inputs: &[f32], rows: usize, input_grad: bool) {
        self.write(&self.acts[0], inputs);
        for (l, dims) in self.layer_dims.iter().enumerate() {
            self.write(
                dims,
                &[Dims {
                    rows: rows as u32,
                    want_dx: (l > 0 || input_grad) as u32,
                    _pad: [0; 2],
                }],
            );
        }
    }

    fn upload_mask(&self, mask: Option<&Mask>) -> u32 {
        match mask {
            Some(m) => {
                self.write(&self.mask_buf, &m.words);
                1
            }
            None => 0,
        }
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    fn encode_forward(&mut self, pass: &mut wgpu::ComputePass, rows: usize) {
        for (k, layer) in self.forward.iter().zip(self.cfg.layers()) {
            k.dispatch(pass, forward_groups(&layer, rows));
        }
        self.counters.dispatches += self.forward.len() as u64;
    }

    /// Encodes the forward pass and the item scores for `rows` inputs, then `tail` (the
    /// softmax or the sampler) when given, in one compute pass; returns the encoder unsubmitted.
    fn encode_scoring(&mut self, rows: usize, tail: Tail) -> wgpu::CommandEncoder {
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_forward(&mut pass, rows);
            self.encode_scores(&mut pass, rows);
            let kernel = match tail {
                Tail::None => None,
                Tail::Softmax => self.softmax.as_ref(),
                Tail::Sample => self.sample.as_ref(),
            };
            if let Some(k) = kernel {
                k.dispatch(&mut pass, (rows as u32, 1));
                self.counters.dispatches += 1;
            }
        }
        enc
    }

    fn encode_scores(&mut self, pass: &mut wgpu::ComputePass, rows: usize) {
        for t in &self.tiles {
            t.score
                .dispatch(pass, (t.items.div_ceil(256) as u32, rows as u32));
        }
        self.counters.dispatches += self.tiles.len() as u64;
    }

    fn write_score_dims(&self, rows: usize) {
        for t in &self.tiles {
            self.write(
                &t.dims,
                &[ScoreDims {
                    rows: rows as u32,
                    items: t.items as u32,
                    item_offset: t.offset as u32,
                    total_items: self.cfg.items() as u32,
                }],
            );
        }
    }

    /// Uploads a batch and the head's uniforms; returns the row count.
    fn upload_batch(&self, batch: &Batch, loss: Loss, input_grad: bool) -> Result<usize> {
        let rows = check_batch(&self.cfg, batch, loss)?;
        if let (Head::Policy { .. }, true) = (self.cfg.head, self.tiles.len() > 1) {
            return Err(EngineError::Config(format!(
                "training needs the item matrix in one storage binding; {} items need {} tiles",
                self.cfg.items(),
                self.tiles.len()
            )));
        }
        self.upload_inputs(&batch.inputs, rows, input_grad);
        self.write(&self.rows_buf, &batch.rows);
        let use_mask = self.upload_mask(batch.mask.as_ref());
        match (self.cfg.head, loss) {
            (Head::Regression { low, high }, _) => self.write(
                &self.head_dims,
                &[MseDims {
                    rows: rows as u32,
                    low,
                    high,
                    _pad: 0,
                }],
            ),
            (Head::Policy { items }, loss) => {
                let (kind, entropy, temperature, clip) = match loss {
                    Loss::Ppo {
                        entropy,
                        temperature,
                        clip,
                    } => (1, entropy, temperature, clip),
                    Loss::Reinforce {
                        entropy,
                        temperature,
                    } => (0, entropy, temperature, 0.0),
                    Loss::Mse => unreachable!("check_batch refuses MSE on a policy head"),
                };
                self.write(
                    &self.head_dims,
                    &[LossDims {
                        rows: rows as u32,
                        items: items as u32,
                        words: items.div_ceil(32) as u32,
                        use_mask,
                        kind,
                        entropy,
                        temperature,
                        clip,
                    }],
                );
            }
        }
        Ok(rows)
    }

    /// Forward, loss gradient and backward: the gradient of the whole model lands in `grads`.
    fn encode_gradient(&mut self, pass: &mut wgpu::ComputePass, rows: usize, input_grad: bool) {
        self.encode_forward(pass, rows);
        let head_groups = match self.cfg.head {
            Head::Policy { .. } => (rows.div_ceil(POLICY_ROWS) as u32, 1),
            Head::Regression { .. } => (rows.div_ceil(256) as u32, 1),
        };
        self.head.dispatch(pass, head_groups);
        let layers = self.cfg.layers();
        for (l, k) in self.backward.iter().enumerate().rev() {
            k.dispatch(pass, backward_groups(&layers[l], rows, l > 0 || input_grad));
        }
        self.counters.dispatches += 1 + self.backward.len() as u64;
    }

    /// Uploads a batch and encodes `steps` full training steps (forward, loss gradient,
    /// backward, statistics, Adam) in one compute pass; returns the encoder, not yet submitted.
    fn encode_train(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
        steps: u32,
        input_grad: bool,
    ) -> Result<(wgpu::CommandEncoder, usize)> {
        self.ctx.check()?;
        let rows = self.upload_batch(batch, loss, input_grad)?;
        self.write(
            &self.adam_params,
            &[AdamParams {
                lr: adam.lr,
                beta1: adam.beta1,
                beta2: adam.beta2,
                eps: adam.eps,
                weight_decay: adam.weight_decay,
                clip_norm: adam.clip_norm,
                n: self.n_params as u32,
                _pad: 0,
            }],
        );
        self.write(
            &self.stat_dims,
            &[StatDims {
                n_params: self.n_params as u32,
                rows: rows as u32,
                _pad: [0; 2],
            }],
        );
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            // adam.wgsl: 256 invocations × 4 elements per workgroup
            let adam_grid = grid(self.n_params.div_ceil(1024));
            for _ in 0..steps {
                self.encode_gradient(&mut pass, rows, input_grad);
                self.step_stats.dispatch(&mut pass, (1, 1));
                self.adam.dispatch(&mut pass, adam_grid);
            }
        }
        self.counters.dispatches += 2 * steps as u64;
        self.counters.train_steps += steps as u64;
        Ok((enc, rows))
    }

    /// Submits `enc` and reads back `copies` through `staging`, counting the submit and the
    /// bytes (a free function over the fields it needs, so `copies` may borrow other fields).
    async fn read(
        ctx: &GpuContext,
        staging: &wgpu::Buffer,
        counters: &mut Counters,
        enc: wgpu::CommandEncoder,
        copies: &[(&wgpu::Buffer, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let out = ctx.read_back(enc, staging, copies).await?;
        counters.submits += 1;
        counters.bytes_read_back += copies.iter().map(|c| c.1).sum::<u64>();
        Ok(out)
    }

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytemuck::pod_collect_to_vec(bytes)
    }
}
