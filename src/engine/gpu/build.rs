//! [`GpuEngine::new`]: every buffer, pipeline and bind group of a model, built once.

use super::context::Shader;
use super::interaction::{ContextKernel, PolicyIo, RowBackward, RowHead, Sampler};
use super::uniforms::{AdamParams, DenseDims, LossDims, MseDims, RowDims, ScoreDims, StatDims};
use super::{GpuContext, GpuEngine, Reducer, Tile};
use crate::engine::{Engine, EngineError, Result, Row, StepSums, MAX_SLATE};
use crate::model::{Head, ModelConfig};

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
        let next_mask = ctx.storage("next mask", items.div_ceil(32) as u64 * 4);
        let logits = ctx.storage("logits", logit_bytes);
        let logp = ctx.storage("log-probs", logit_bytes);
        let row_stats = ctx.storage("row stats", rows * 8);
        let stats = ctx.storage("stats", std::mem::size_of::<StepSums>() as u64);
        let slate_bytes = rows * MAX_SLATE as u64 * 4;
        let slate_items = ctx.storage("slate items", slate_bytes);
        let slate_logp = ctx.storage("slate log-probs", slate_bytes);
        let slate_scores = ctx.storage("slate logits", slate_bytes);
        let widest = layers.iter().map(|l| l.outputs).max().unwrap_or(1) as u64;
        let staging_bytes = [
            pbytes,
            logit_bytes,
            rows * widest * 4,
            3 * slate_bytes + rows * cfg.input as u64 * 4 + 64,
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
        let mut forward_row = Vec::new();
        let mut backward_row = Vec::new();
        // a layer's constants; the backward's also say what its gradients carry (dense_backward.wgsl:
        // the gradient buffers between layers carry dLoss/dZ)
        let layer_constants = |l: usize, backward: bool| {
            let layer = &layers[l];
            let mut c = vec![
                ("IN", layer.inputs as f64),
                ("OUT", layer.outputs as f64),
                ("ACT", layer.activation.code() as f64),
                ("W_OFF", offsets[l] as f64),
            ];
            if backward {
                let x_act = match l {
                    0 => 0,
                    _ => layers[l - 1].activation.code(),
                };
                c.push(("DY_IS_DZ", (l + 1 < layers.len()) as u32 as f64));
                c.push(("X_ACT", x_act as f64));
            }
            c
        };
        for l in 0..layers.len() {
            let constants = layer_constants(l, false);
            let dims = ctx.uniform::<DenseDims>("layer dims");
            forward.push(
                ctx.kernel(
                    Shader::DenseForward,
                    "forward",
                    &constants,
                    &[(0, &dims), (1, &params), (2, &acts[l]), (3, &acts[l + 1])],
                )
                .await?,
            );
            forward_row.push(
                ctx.kernel(
                    Shader::DenseForward,
                    "forward_row",
                    &constants,
                    &[(1, &params), (2, &acts[l]), (3, &acts[l + 1])],
                )
                .await?,
            );
            let b_constants = layer_constants(l, true);
            let dx = if l == 0 { &d_input } else { &dys[l - 1] };
            backward.push(
                ctx.kernel(
                    Shader::DenseBackward,
                    "backward",
                    &b_constants,
                    &[
                        (0, &dims),
                        (1, &params),
                        (4, &acts[l]),
                        (5, &acts[l + 1]),
                        (6, &dys[l]),
                        (7, &grads),
                        (8, dx),
                    ],
                )
                .await?,
            );
            backward_row.push(
                ctx.kernel(
                    Shader::DenseBackward,
                    "backward_dx_row",
                    &b_constants,
                    &[
                        (1, &params),
                        (4, &acts[l]),
                        (5, &acts[l + 1]),
                        (6, &dys[l]),
                        (8, dx),
                    ],
                )
                .await?,
            );
            layer_dims.push(dims);
        }
        let out = &acts[layers.len()];
        let d_out = &dys[layers.len() - 1];

        // item tiles, each within one storage binding
        let d_const = [("D", d as f64)];
        let mut tiles = Vec::new();
        if items > 0 {
            let per_tile = ((limit / (d as u64 * 4)) as usize).max(1);
            let mut offset = 0;
            while offset < items {
                let n = per_tile.min(items - offset);
                // whole vec4s (softmax.wgsl reads it as either)
                let buffer = ctx.storage("item embeddings", (n * d).div_ceil(4) as u64 * 16);
                let dims = ctx.uniform::<ScoreDims>("score dims");
                let score = ctx
                    .kernel(
                        Shader::Score,
                        "score",
                        &d_const,
                        &[(0, &dims), (1, out), (2, &buffer), (3, &logits)],
                    )
                    .await?;
                tiles.push(Tile {
                    items: n,
                    offset,
                    buffer,
                    dims,
                    score,
                });
                offset += n;
            }
        }

        let row_dims = ctx.uniform::<RowDims>("row dims");
        let head_dims = match cfg.head {
            Head::Policy { .. } => ctx.uniform::<LossDims>("head dims"),
            Head::Regression { .. } => ctx.uniform::<MseDims>("head dims"),
        };
        // a policy head has items (ModelConfig::validate), so one tile at least
        let io = tiles.first().map(|tile| PolicyIo {
            row_dims: &row_dims,
            head_dims: &head_dims,
            logits: &logits,
            user: out,
            tile: &tile.buffer,
            tiles: tiles.len(),
            d,
            mask: &mask_buf,
            next_mask: &next_mask,
            items: &tile.buffer,
            rows: &rows_buf,
            d_user: d_out,
            row_stats: &row_stats,
            slate_items: &slate_items,
            slate_logp: &slate_logp,
            slate_scores: &slate_scores,
        });
        let (softmax, sampler) = if let Some(io) = &io {
            let softmax = ctx
                .kernel(
                    Shader::Softmax,
                    "log_softmax",
                    &[],
                    &[(0, &row_dims), (1, &logits), (2, &mask_buf), (3, &logp)],
                )
                .await?;
            // the cached head feeds the last layer's plain dX-only backward: a hidden layer
            let stats = matches!(cfg.head, Head::Policy { .. }) && layers.len() > 1;
            let sampler = Sampler::new(ctx, io, cfg.max_rows, items, stats).await?;
            (Some(softmax), Some(sampler))
        } else {
            (None, None)
        };

        let head = match (cfg.head, &io) {
            (Head::Policy { .. }, Some(io)) => {
                let entries = [
                    (0, &head_dims),
                    (1, out),
                    (2, io.items),
                    (3, &rows_buf),
                    (4, &mask_buf),
                    (5, &logits),
                    (6, d_out),
                    (7, &row_stats),
                ];
                let kernel = ctx
                    .kernel(Shader::Loss, "policy_grad", &d_const, &entries)
                    .await?;
                let l = layers.len() - 1;
                let dx = if l == 0 { &d_input } else { &dys[l - 1] };
                let last = RowBackward {
                    constants: &layer_constants(l, true),
                    entries: &[(1, &params), (4, &acts[l]), (5, out), (8, dx)],
                };
                let Some(sampler) = &sampler else {
                    return Err(EngineError::Config("a policy head needs a sampler".into()));
                };
                let row_head = RowHead::new(ctx, io, last, sampler, items, d).await?;
                (kernel, Some(row_head))
            }
            (Head::Policy { .. }, None) => {
                return Err(EngineError::Config("a policy head needs items".into()))
            }
            (Head::Regression { .. }, _) => {
                let entries = [
                    (8, &head_dims),
                    (9, out),
                    (10, &rows_buf),
                    (11, d_out),
                    (12, &row_stats),
                ];
                let kernel = ctx.kernel(Shader::Loss, "mse_grad", &[], &entries).await?;
                (kernel, None)
            }
        };

        // a session's context step in the first layer's input-gradient kernel (for a one-layer
        // network also the last, reading the head's shares of dL/du)
        let context_kernel = match &head.1 {
            Some(h) => {
                let mut constants = layer_constants(0, true);
                let dy = if layers.len() == 1 {
                    constants.push(("SHARES", h.chunks as f64));
                    &h.shares
                } else {
                    &dys[0]
                };
                let first = RowBackward {
                    constants: &constants,
                    entries: &[(1, &params), (5, &acts[1]), (6, dy), (8, &d_input)],
                };
                Some(ContextKernel::new(ctx, &acts[0], cfg.input, first).await?)
            }
            None => None,
        };

        let adam_params = ctx.uniform::<AdamParams>("adam params");
        let adam = ctx
            .kernel(
                Shader::Adam,
                "adam",
                &[],
                &[
                    (0, &adam_params),
                    (1, &params),
                    (2, &grads),
                    (3, &adam_m),
                    (4, &adam_v),
                    (5, &stats),
                ],
            )
            .await?;
        let stat_dims = ctx.uniform::<StatDims>("stat dims");
        let step_stats = ctx
            .kernel(
                Shader::Reduce,
                "step_stats",
                &[],
                &[(3, &stat_dims), (4, &grads), (5, &row_stats), (6, &stats)],
            )
            .await?;
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
            next_mask,
            slate_scores,
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
            row_dims,
            head_dims,
            adam_params,
            stat_dims,
            forward,
            backward,
            forward_row,
            backward_row,
            tiles,
            softmax,
            sampler,
            context_kernel,
            head: head.0,
            row_head: head.1,
            adam,
            step_stats,
            reducer,
            counters: Default::default(),
            items_host: Vec::new(),
            d_out: d_out.clone(),
            fisher_dir: ctx.storage("fisher direction", pbytes),
            fisher: None,
            slate_stats: None,
        };
        engine.set_params(&cfg.init_params())?;
        ctx.check()?;
        Ok(engine)
    }
}
