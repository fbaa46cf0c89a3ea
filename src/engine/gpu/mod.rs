//! The GPU engine: every buffer, pipeline and bind group is built once per model; a training step
//! is `2 × layers + 3` dispatches in one compute pass, and `train(.., steps)` encodes all steps in
//! one command buffer and one submit with no readback.

mod build;
mod context;
mod engine_impl;
mod fisher;
mod interaction;
mod profile;
mod uniforms;

pub use context::GpuContext;
use context::Shader;
use interaction::{ContextKernel, RowHead, Sampler};
pub use profile::KernelTime;
use uniforms::{
    AdamParams, DenseDims, LossDims, MseDims, ReduceDims, RowDims, ScoreDims, StatDims,
};

use super::backend::Checked;
#[cfg(doc)]
use super::Engine;
use super::{Adam, Counters, EngineError, Loss, Mask, Result};
use crate::model::{Head, Layer, ModelConfig};
use bytemuck::Pod;
use std::sync::Arc;

/// A pipeline with the bind group it always runs with ([`GpuContext::kernel`]).
pub(crate) struct Kernel {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    /// On a profiled context: where its dispatches' timestamps go, and its label.
    timed: Option<(Arc<profile::Profiler>, Arc<str>)>,
}

impl Kernel {
    fn dispatch(&self, pass: &mut wgpu::ComputePass, groups: (u32, u32)) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let slot = self
            .timed
            .as_ref()
            .and_then(|(p, label)| Some((p, p.claim(label)?)));
        if let Some((p, i)) = slot {
            pass.write_timestamp(&p.queries, i);
        }
        pass.dispatch_workgroups(groups.0, groups.1, 1);
        if let Some((p, i)) = slot {
            pass.write_timestamp(&p.queries, i + 1);
        }
    }
}

/// What follows the item scores in a scoring pass: nothing, or the log-softmax or the sampler
/// with the rows' mask and the [`RowDims`] fields the caller sets (temperature; the slate).
#[derive(Clone, Copy)]
enum Tail<'a> {
    None,
    Softmax(Option<&'a Mask>, RowDims),
    Sample(Option<&'a Mask>, RowDims),
}

/// A slice of the item matrix small enough for one storage binding.
struct Tile {
    items: usize,
    offset: usize,
    buffer: wgpu::Buffer,
    dims: wgpu::Buffer,
    score: Kernel,
}

/// Where the statistics that an interaction's sampler left in its buffers were drawn: the
/// next slate's input, mask and temperature. A reaction at exactly these takes its gradient
/// from them (loss.wgsl `head_cached`) instead of a pass over the item matrix.
#[derive(Default)]
struct SlateStats {
    input: Vec<f32>,
    mask: Vec<u32>,
    temperature: f32,
}

impl SlateStats {
    /// Whether a one-row reaction `batch` under `loss` (without an entropy bonus) was made at
    /// this slate's input, mask and temperature, to an item that was open.
    fn fits(&self, batch: &super::Batch, loss: Loss) -> bool {
        let temperature = match loss {
            Loss::Reinforce {
                entropy: 0.0,
                temperature,
            }
            | Loss::Ppo {
                entropy: 0.0,
                temperature,
                ..
            } => temperature,
            _ => return false,
        };
        let Some(mask) = &batch.mask else {
            return false;
        };
        !mask.get(0, batch.rows[0].action as usize)
            && temperature == self.temperature
            && batch.inputs == self.input
            && mask.words == self.mask
    }

    /// Records a slate drawn at the input `context` then `tail`, keeping the buffers.
    fn set(&mut self, (context, tail): (&[f32], &[f32]), mask: &Mask, temperature: f32) {
        self.input.clear();
        self.input.extend_from_slice(context);
        self.input.extend_from_slice(tail);
        self.mask.clear();
        self.mask.extend_from_slice(&mask.words);
        self.temperature = temperature;
    }
}

/// Lays `groups` workgroups out as (x, y) within the 65,535-per-dimension limit.
fn grid(groups: usize) -> (u32, u32) {
    let x = groups.clamp(1, 65_535);
    (x as u32, groups.div_ceil(x).max(1) as u32)
}

/// Tile of dense_tile.wgsl: `TM` rows × `WX` columns of the result per workgroup (32 invocations,
/// two columns each; keep in sync with the shader's constants).
const DENSE_WX: usize = 64;
const DENSE_TM: usize = 16;

/// Rows per workgroup of loss.wgsl `policy_grad` (its constant `R`).
const POLICY_ROWS: usize = 8;

/// Invocations per workgroup of the dense one-row kernels (dense_tile.wgsl `ROW_WG`).
const DENSE_ROW_WG: usize = 64;

/// What a backward pass computes.
#[derive(Clone, Copy, PartialEq)]
enum Grad {
    /// The parameters' gradient.
    Weights,
    /// The parameters' and the inputs' gradients.
    WeightsAndInput,
    /// The inputs' gradient (for one row, without computing the parameters' gradient).
    Input,
    /// One row's input gradient, its first layer's kernel also taking a session's context step
    /// (dense_backward.wgsl `backward_dx_row_context`, [`ContextKernel`]).
    Context,
}

/// Workgroups of a layer's `forward` (dense_forward.wgsl): TM × WX output tiles.
fn forward_groups(layer: &Layer, rows: usize) -> (u32, u32) {
    (
        layer.outputs.div_ceil(DENSE_WX) as u32,
        rows.div_ceil(DENSE_TM) as u32,
    )
}

/// Workgroups of a layer's `backward` (dense_backward.wgsl): the dW tiles, then the dX tiles when `dx`.
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
    /// The mask of an interaction's next slate.
    next_mask: wgpu::Buffer,
    slate_scores: wgpu::Buffer,
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
    row_dims: wgpu::Buffer,
    head_dims: wgpu::Buffer,
    adam_params: wgpu::Buffer,
    stat_dims: wgpu::Buffer,
    // kernels
    forward: Vec<Kernel>,
    backward: Vec<Kernel>,
    /// One-row forward and dX-only backward per layer (dense_forward.wgsl `forward_row`, dense_backward.wgsl
    /// `backward_dx_row`).
    forward_row: Vec<Kernel>,
    backward_row: Vec<Kernel>,
    tiles: Vec<Tile>,
    softmax: Option<Kernel>,
    sampler: Option<Sampler>,
    context_kernel: Option<ContextKernel>,
    head: Kernel,
    /// The policy head for one row over many workgroups (loss.wgsl `head_*`).
    row_head: Option<RowHead>,
    adam: Kernel,
    step_stats: Kernel,
    reducer: Reducer,
    counters: std::cell::Cell<Counters>,
    /// Host copy of the item matrix (for [`Engine::item_vector`]).
    items_host: Vec<f32>,
    /// The loss gradient w.r.t. the MLP output (what the last layer's backward reads).
    d_out: wgpu::Buffer,
    /// The direction of a Fisher-vector product (CG's `p`).
    fisher_dir: wgpu::Buffer,
    /// Fisher-vector-product and CG kernels, built on first use.
    fisher: Option<Box<fisher::FisherKernels>>,
    /// The last interaction's slate's statistics, while the sampler's buffers, the parameters
    /// and the items still hold them.
    slate_stats: Option<SlateStats>,
}

/// Generic reductions over caller data (one kernel per [`super::Reduce`] mode); its input
/// buffer grows (and its bind groups are rebuilt) only when a larger vector arrives.
struct Reducer {
    kernels: [Kernel; 3],
    dims: wgpu::Buffer,
    data: wgpu::Buffer,
    capacity: usize,
    out: wgpu::Buffer,
}

impl Reducer {
    async fn new(ctx: &GpuContext) -> Result<Self> {
        let dims = ctx.uniform::<ReduceDims>("reduce dims");
        let out = ctx.storage("reduce out", 16);
        let (data, kernels) = Self::kernels(ctx, &dims, &out, 1024).await?;
        Ok(Reducer {
            kernels,
            dims,
            data,
            capacity: 1024,
            out,
        })
    }

    /// An input buffer of `capacity` values and the kernels bound to it.
    async fn kernels(
        ctx: &GpuContext,
        dims: &wgpu::Buffer,
        out: &wgpu::Buffer,
        capacity: usize,
    ) -> Result<(wgpu::Buffer, [Kernel; 3])> {
        let data = ctx.storage("reduce data", capacity as u64 * 4);
        let mut kernels = Vec::new();
        for mode in 0..3 {
            let constants = [("MODE", mode as f64)];
            let entries = [(0, dims), (1, &data), (2, out)];
            kernels.push(
                ctx.kernel(Shader::Reduce, "reduce", &constants, &entries)
                    .await?,
            );
        }
        let kernels = kernels
            .try_into()
            .map_err(|_| EngineError::Device("reduce kernels".into()))?;
        Ok((data, kernels))
    }

    /// Makes room for `n` values.
    async fn reserve(&mut self, ctx: &GpuContext, n: usize) -> Result<()> {
        if n > self.capacity {
            self.capacity = n.next_power_of_two();
            (self.data, self.kernels) =
                Self::kernels(ctx, &self.dims, &self.out, self.capacity).await?;
        }
        Ok(())
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
                &[DenseDims {
                    rows: rows as u32,
                    want_dx: (l > 0 || input_grad) as u32,
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

    /// The forward pass; a one-row batch takes the matrix–vector kernels.
    fn encode_forward(&self, pass: &mut wgpu::ComputePass, rows: usize) {
        let layers = self.cfg.layers();
        if rows == 1 {
            for (k, layer) in self.forward_row.iter().zip(&layers) {
                k.dispatch(pass, (layer.outputs.div_ceil(DENSE_ROW_WG) as u32, 1));
            }
        } else {
            for (k, layer) in self.forward.iter().zip(&layers) {
                k.dispatch(pass, forward_groups(layer, rows));
            }
        }
        self.count(|c| c.dispatches += self.forward.len() as u64);
    }

    /// Uploads `rows` inputs and encodes the forward pass and the item scores, then `tail`
    /// (the softmax or the sampler, with its mask and row dims uploaded) in one compute pass;
    /// returns the encoder unsubmitted.
    fn encode_scoring(&self, inputs: &[f32], rows: usize, tail: Tail) -> wgpu::CommandEncoder {
        self.upload_inputs(inputs, rows, false);
        self.write_score_dims(rows);
        let sample = matches!(tail, Tail::Sample(..));
        let kernel = match tail {
            Tail::None => None,
            Tail::Softmax(mask, dims) | Tail::Sample(mask, dims) => {
                let items = self.cfg.items();
                let dims = RowDims {
                    rows: rows as u32,
                    items: items as u32,
                    words: items.div_ceil(32) as u32,
                    use_mask: self.upload_mask(mask),
                    ..dims
                };
                self.write(&self.row_dims, &[dims]);
                self.softmax.as_ref()
            }
        };
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_forward(&mut pass, rows);
            // a catalog in one tile is scored by the sampler itself
            if !(sample && self.sampler.as_ref().is_some_and(|s| s.scores)) {
                self.encode_scores(&mut pass, rows);
            }
            match (sample, &self.sampler, kernel) {
                (true, Some(s), _) => {
                    s.encode(&mut pass, rows, false);
                    self.count(|c| c.dispatches += 2);
                }
                (false, _, Some(k)) => {
                    k.dispatch(&mut pass, (rows as u32, 1));
                    self.count(|c| c.dispatches += 1);
                }
                _ => {}
            }
        }
        enc
    }

    fn encode_scores(&self, pass: &mut wgpu::ComputePass, rows: usize) {
        for t in &self.tiles {
            t.score
                .dispatch(pass, (t.items.div_ceil(256) as u32, rows as u32));
        }
        self.count(|c| c.dispatches += self.tiles.len() as u64);
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

    /// Uploads a checked batch and the head's uniforms.
    fn upload_batch(&self, b: Checked<'_>, input_grad: bool) -> Result<()> {
        let Checked { batch, loss, rows } = b;
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
        Ok(())
    }

    /// Forward, loss gradient and backward: the gradient of the whole model lands in `grads`,
    /// the inputs' in `d_input` (`grad`); a one-row input gradient takes the dX-only kernels.
    fn encode_gradient(&self, pass: &mut wgpu::ComputePass, rows: usize, grad: Grad) {
        self.encode_forward(pass, rows);
        let layers = self.cfg.layers();
        let last = layers.len() - 1;
        match (&self.row_head, rows) {
            // one row of a policy head: the head over many workgroups; an input gradient's last
            // layer sums the head's shares of dL/du itself
            (Some(h), 1) => {
                let shares = matches!(grad, Grad::Input | Grad::Context);
                let n = h.encode(pass, shares);
                self.count(|c| c.dispatches += n);
                if shares {
                    let first = match (&self.context_kernel, grad) {
                        (Some(ck), Grad::Context) => Some(&ck.kernel),
                        _ => None,
                    };
                    self.encode_row_backward(pass, &h.last_dx, first);
                    return;
                }
            }
            _ => {
                let head_groups = match self.cfg.head {
                    Head::Policy { .. } => (rows.div_ceil(POLICY_ROWS) as u32, 1),
                    Head::Regression { .. } => (rows.div_ceil(256) as u32, 1),
                };
                self.head.dispatch(pass, head_groups);
                self.count(|c| c.dispatches += 1);
            }
        }
        if matches!(grad, Grad::Input | Grad::Context) && rows == 1 {
            self.encode_row_backward(pass, &self.backward_row[last], None);
            return;
        }
        let input_grad = grad != Grad::Weights;
        for (l, k) in self.backward.iter().enumerate().rev() {
            k.dispatch(pass, backward_groups(&layers[l], rows, l > 0 || input_grad));
        }
        self.count(|c| c.dispatches += self.backward.len() as u64);
    }

    /// The one-row dX-only backward, last layer first: `last` for the last layer (the kernel
    /// that reads the head's dL/du), `first`, when given, for the first (the context's step),
    /// `backward_row` between them.
    fn encode_row_backward(
        &self,
        pass: &mut wgpu::ComputePass,
        last: &Kernel,
        first: Option<&Kernel>,
    ) {
        let layers = self.cfg.layers();
        let top = layers.len() - 1;
        for l in (0..layers.len()).rev() {
            let k = match (l, first) {
                (0, Some(f)) => f,
                _ if l == top => last,
                _ => &self.backward_row[l],
            };
            k.dispatch(pass, (layers[l].inputs.div_ceil(DENSE_ROW_WG) as u32, 1));
        }
        self.count(|c| c.dispatches += layers.len() as u64);
    }

    /// A one-row input gradient with the context's step (`ck`), its head taken from the last
    /// slate's statistics (`h.cached`): forward, 1 dispatch, the dX-only backward.
    fn encode_cached_gradient(
        &self,
        pass: &mut wgpu::ComputePass,
        h: &RowHead,
        ck: &ContextKernel,
    ) {
        self.encode_forward(pass, 1);
        h.cached.dispatch(pass, (1, 1));
        self.count(|c| c.dispatches += 1);
        let last = self.backward_row.len() - 1;
        self.encode_row_backward(pass, &self.backward_row[last], Some(&ck.kernel));
    }

    /// Uploads a batch and encodes `steps` full training steps (forward, loss gradient,
    /// backward, statistics, Adam) in one compute pass; returns the encoder, not yet submitted.
    fn encode_train(
        &mut self,
        b: Checked<'_>,
        adam: Adam,
        steps: u32,
        input_grad: bool,
    ) -> Result<wgpu::CommandEncoder> {
        self.ctx.check()?;
        self.slate_stats = None;
        self.upload_batch(b, input_grad)?;
        let rows = b.rows;
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
            }],
        );
        self.write(
            &self.stat_dims,
            &[StatDims {
                n_params: self.n_params as u32,
                rows: rows as u32,
            }],
        );
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            // adam.wgsl: 256 invocations × 4 elements per workgroup
            let adam_grid = grid(self.n_params.div_ceil(1024));
            for _ in 0..steps {
                let grad = if input_grad {
                    Grad::WeightsAndInput
                } else {
                    Grad::Weights
                };
                self.encode_gradient(&mut pass, rows, grad);
                self.step_stats.dispatch(&mut pass, (1, 1));
                self.adam.dispatch(&mut pass, adam_grid);
            }
        }
        self.count(|c| {
            c.dispatches += 2 * steps as u64;
            c.train_steps += steps as u64;
        });
        Ok(enc)
    }

    /// Adds to the engine's counters.
    fn count(&self, add: impl FnOnce(&mut Counters)) {
        let mut c = self.counters.get();
        add(&mut c);
        self.counters.set(c);
    }

    /// Submits `enc` and reads back `copies` (buffer, bytes) through `staging`, counting the
    /// submit and the bytes; returns each copy as `f32` words.
    async fn read(
        &self,
        enc: wgpu::CommandEncoder,
        copies: &[(&wgpu::Buffer, u64)],
    ) -> Result<Vec<Vec<f32>>> {
        let out = self.ctx.read_back(enc, &self.staging, copies).await?;
        self.count(|c| {
            c.submits += 1;
            c.bytes_read_back += copies.iter().map(|c| c.1).sum::<u64>();
        });
        Ok(out
            .iter()
            .map(|b| bytemuck::pod_collect_to_vec(b))
            .collect())
    }

    /// Submits `enc` and reads back the first `bytes` of `buffer`.
    async fn read_one(
        &self,
        enc: wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        bytes: usize,
    ) -> Result<Vec<f32>> {
        let mut out = self.read(enc, &[(buffer, bytes as u64)]).await?;
        Ok(out.swap_remove(0))
    }

    /// Reads back a gradient (`bytes` of `grad`) and the batch's mean loss from the row
    /// statistics of `rows` rows.
    async fn read_gradient(
        &self,
        enc: wgpu::CommandEncoder,
        grad: &wgpu::Buffer,
        bytes: u64,
        rows: usize,
    ) -> Result<(Vec<f32>, f32)> {
        let mut out = self
            .read(enc, &[(grad, bytes), (&self.row_stats, rows as u64 * 8)])
            .await?;
        let value = out[1].iter().step_by(2).sum::<f32>() / rows as f32;
        Ok((out.swap_remove(0), value))
    }
}
