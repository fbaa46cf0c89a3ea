//! The GPU engine: every buffer, pipeline and bind group is built once per model; a training step
//! is `2 × layers + 3` dispatches in one compute pass, and `train(.., steps)` encodes all steps in
//! one command buffer and one submit with no readback.

mod context;

pub use context::GpuContext;
use context::Shader;

use super::{
    check_batch, check_inputs, check_items, check_log_probs, check_optimizer, check_params,
    check_policy, check_sample, Adam, Batch, Counters, Engine, EngineError, EngineInfo, Loss, Mask,
    OptimizerState, Reduce, Result, Row, SlateSpec, Slates, TrainStats, MAX_SLATE,
};
use crate::model::{Head, Layer, ModelConfig};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Dims {
    rows: u32,
    want_dx: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ScoreDims {
    rows: u32,
    items: u32,
    item_offset: u32,
    total_items: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SoftmaxDims {
    rows: u32,
    items: u32,
    words: u32,
    use_mask: u32,
    temperature: f32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SampleDims {
    rows: u32,
    items: u32,
    words: u32,
    use_mask: u32,
    k: u32,
    greedy: u32,
    seed: u32,
    draw: u32,
    temperature: f32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossDims {
    rows: u32,
    items: u32,
    words: u32,
    use_mask: u32,
    kind: u32,
    entropy: f32,
    temperature: f32,
    clip: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MseDims {
    rows: u32,
    low: f32,
    high: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    clip_norm: f32,
    n: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StatDims {
    n_params: u32,
    rows: u32,
    _pad: [u32; 2],
}

/// Mirror of `Stats` in adam.wgsl / reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GpuStats {
    step: u32,
    steps: u32,
    loss_sum: f32,
    entropy_sum: f32,
    last_loss: f32,
    grad_sq: f32,
    skipped: u32,
    _pad: u32,
}

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
    /// Allocates every buffer and builds every pipeline and bind group for `cfg`.
    pub async fn new(ctx: &GpuContext, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate().map_err(EngineError::Config)?;
        let layers = cfg.layers();
        let offsets = cfg.offsets();
        let n_params = cfg.param_count();
        let rows = cfg.max_rows as u64;
        let items = cfg.items();
        let d = cfg.output;
        let pbytes = n_params as u64 * 4;
        let limit = ctx.binding_limit();
        let logit_bytes = rows * items as u64 * 4;
        if logit_bytes > limit || pbytes > limit {
            return Err(EngineError::Config(format!(
                "max_rows × items ({logit_bytes} bytes) or the parameters ({pbytes} bytes) exceed \
                 one storage binding ({limit} bytes): lower max_rows"
            )));
        }

        let params = ctx.storage("params", pbytes);
        let grads = ctx.storage("grads", pbytes);
        let adam_m = ctx.storage("adam m", pbytes);
        let adam_v = ctx.storage("adam v", pbytes);
        let mut acts = vec![ctx.storage("input", rows * cfg.input as u64 * 4)];
        let mut dys = Vec::new();
        for l in &layers {
            acts.push(ctx.storage("activations", rows * l.outputs as u64 * 4));
            dys.push(ctx.storage("output gradient", rows * l.outputs as u64 * 4));
        }
        let d_input = ctx.storage("input gradient", rows * cfg.input as u64 * 4);
        let rows_buf = ctx.storage("rows", rows * std::mem::size_of::<Row>() as u64);
        let mask_buf = ctx.storage("mask", rows * items.div_ceil(32) as u64 * 4);
        let logits = ctx.storage("logits", logit_bytes);
        let logp = ctx.storage("log-probs", logit_bytes);
        let row_stats = ctx.storage("row stats", rows * 8);
        let stats = ctx.storage("stats", std::mem::size_of::<GpuStats>() as u64);
        let slate_bytes = rows * MAX_SLATE as u64 * 4;
        let slate_items = ctx.storage("slate items", slate_bytes);
        let slate_logp = ctx.storage("slate log-probs", slate_bytes);
        let widest = layers.iter().map(|l| l.outputs).max().unwrap_or(1) as u64;
        let staging_bytes = [
            pbytes,
            logit_bytes,
            rows * widest * 4,
            2 * slate_bytes + 16,
            rows * 8 + pbytes + 16,
            rows * 8 + rows * cfg.input as u64 * 4 + 16,
            2 * pbytes + 64,
        ]
        .into_iter()
        .max()
        .unwrap_or(16)
            + 64;
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: staging_bytes.next_multiple_of(8),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let mut layer_dims = Vec::new();
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        for (l, layer) in layers.iter().enumerate() {
            let constants = [
                ("IN", layer.inputs as f64),
                ("OUT", layer.outputs as f64),
                ("ACT", layer.activation.code() as f64),
                ("W_OFF", offsets[l] as f64),
            ];
            let dims = ctx.uniform("layer dims", 16);
            let fp = ctx.pipeline(Shader::Dense, "forward", &constants).await?;
            let fb = ctx.bind(
                &fp,
                &[(0, &dims), (1, &params), (2, &acts[l]), (3, &acts[l + 1])],
            );
            forward.push(Kernel {
                pipeline: fp,
                bind: fb,
            });
            // the gradient buffers between layers carry dLoss/dZ (see dense.wgsl)
            let x_act = match l {
                0 => 0,
                _ => layers[l - 1].activation.code(),
            };
            let mut b_constants = constants.to_vec();
            b_constants.push(("DY_IS_DZ", (l + 1 < layers.len()) as u32 as f64));
            b_constants.push(("X_ACT", x_act as f64));
            let bp = ctx
                .pipeline(Shader::Dense, "backward", &b_constants)
                .await?;
            let dx = if l == 0 { &d_input } else { &dys[l - 1] };
            let bb = ctx.bind(
                &bp,
                &[
                    (0, &dims),
                    (1, &params),
                    (4, &acts[l]),
                    (5, &acts[l + 1]),
                    (6, &dys[l]),
                    (7, &grads),
                    (8, dx),
                ],
            );
            backward.push(Kernel {
                pipeline: bp,
                bind: bb,
            });
            layer_dims.push(dims);
        }
        let out = &acts[layers.len()];
        let d_out = &dys[layers.len() - 1];

        // item tiles, each within one storage binding
        let d_const = [("D", d as f64)];
        let mut tiles = Vec::new();
        if items > 0 {
            let per_tile = ((limit / (d as u64 * 4)) as usize).max(1);
            let score_p = ctx.pipeline(Shader::Score, "score", &d_const).await?;
            let mut offset = 0;
            while offset < items {
                let n = per_tile.min(items - offset);
                let buffer = ctx.storage("item embeddings", (n * d) as u64 * 4);
                let dims = ctx.uniform("score dims", 16);
                let bind = ctx.bind(
                    &score_p,
                    &[(0, &dims), (1, out), (2, &buffer), (3, &logits)],
                );
                tiles.push(Tile {
                    items: n,
                    offset,
                    buffer,
                    dims,
                    score: Kernel {
                        pipeline: score_p.clone(),
                        bind,
                    },
                });
                offset += n;
            }
        }

        let softmax_dims = ctx.uniform("softmax dims", 32);
        let sample_dims = ctx.uniform("sample dims", 48);
        let (softmax, sample) = if items > 0 {
            let sp = ctx.pipeline(Shader::Softmax, "log_softmax", &[]).await?;
            let sb = ctx.bind(
                &sp,
                &[(0, &softmax_dims), (1, &logits), (2, &mask_buf), (3, &logp)],
            );
            let xp = ctx.pipeline(Shader::Sample, "sample", &[]).await?;
            let xb = ctx.bind(
                &xp,
                &[
                    (0, &sample_dims),
                    (1, &logits),
                    (2, &mask_buf),
                    (3, &slate_items),
                    (4, &slate_logp),
                ],
            );
            (
                Some(Kernel {
                    pipeline: sp,
                    bind: sb,
                }),
                Some(Kernel {
                    pipeline: xp,
                    bind: xb,
                }),
            )
        } else {
            (None, None)
        };

        let head_dims = ctx.uniform("head dims", 32);
        let head = match cfg.head {
            Head::Policy { .. } => {
                let p = ctx.pipeline(Shader::Loss, "policy_grad", &d_const).await?;
                let b = ctx.bind(
                    &p,
                    &[
                        (0, &head_dims),
                        (1, out),
                        (2, &tiles[0].buffer),
                        (3, &rows_buf),
                        (4, &mask_buf),
                        (5, &logits),
                        (6, d_out),
                        (7, &row_stats),
                    ],
                );
                Kernel {
                    pipeline: p,
                    bind: b,
                }
            }
            Head::Regression { .. } => {
                let p = ctx.pipeline(Shader::Loss, "mse_grad", &[]).await?;
                let b = ctx.bind(
                    &p,
                    &[
                        (8, &head_dims),
                        (9, out),
                        (10, &rows_buf),
                        (11, d_out),
                        (12, &row_stats),
                    ],
                );
                Kernel {
                    pipeline: p,
                    bind: b,
                }
            }
        };

        let adam_params = ctx.uniform("adam params", 32);
        let ap = ctx.pipeline(Shader::Adam, "adam", &[]).await?;
        let ab = ctx.bind(
            &ap,
            &[
                (0, &adam_params),
                (1, &params),
                (2, &grads),
                (3, &adam_m),
                (4, &adam_v),
                (5, &stats),
            ],
        );
        let stat_dims = ctx.uniform("stat dims", 16);
        let tp = ctx.pipeline(Shader::Reduce, "step_stats", &[]).await?;
        let tb = ctx.bind(
            &tp,
            &[(3, &stat_dims), (4, &grads), (5, &row_stats), (6, &stats)],
        );
        let reducer = Reducer::new(ctx).await?;

        let mut engine = GpuEngine {
            ctx: ctx.clone(),
            cfg: cfg.clone(),
            n_params,
            params,
            grads,
            adam_m,
            adam_v,
            acts,
            d_input,
            rows_buf,
            mask_buf,
            logits,
            logp,
            row_stats,
            stats,
            slate_items,
            slate_logp,
            staging,
            layer_dims,
            softmax_dims,
            sample_dims,
            head_dims,
            adam_params,
            stat_dims,
            forward,
            backward,
            tiles,
            softmax,
            sample,
            head,
            adam: Kernel {
                pipeline: ap,
                bind: ab,
            },
            step_stats: Kernel {
                pipeline: tp,
                bind: tb,
            },
            reducer,
            counters: Counters::default(),
            items_host: Vec::new(),
        };
        engine.set_params(&cfg.init_params())?;
        ctx.check()?;
        Ok(engine)
    }

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
