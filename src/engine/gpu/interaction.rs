//! The sampler over many workgroups and a context-adapting session's interaction in one submit
//! ([`Engine::adapt_context`]): input gradient (one-row kernels, no weight gradients), the
//! context's Adam step on the device (in the first layer's input-gradient kernel), forward and
//! the sampler (which scores a one-tile catalog itself); read back: the context's
//! gradient (the host mirrors the Adam step on its copy of the session's state, so the state
//! serialises without a readback), the loss and the slate (items, log-propensities, logits).

use super::context::Shader;
use super::uniforms::{ContextDims, RowDims};
use super::{GpuContext, GpuEngine, Grad, Kernel};
use crate::engine::backend::Checked;
use crate::engine::interaction::host_step;
use crate::engine::{Adapted, ContextState, ContextStep, EngineError, Result, Slates, MAX_SLATE};

#[cfg(doc)]
use crate::engine::Engine;

/// Items per workgroup of softmax.wgsl `sample_partial` (its `CHUNK`).
const CHUNK: usize = 4096;
/// Items per workgroup of loss.wgsl's one-row head (its `HCHUNK`).
const HEAD_CHUNK: usize = 1024;

/// The engine's buffers that the policy head's many-workgroup kernels bind: the sampler
/// ([`Sampler::new`]) and the one-row head ([`RowHead::new`]).
pub(super) struct PolicyIo<'a> {
    /// softmax.wgsl's [`RowDims`] and loss.wgsl's head dims.
    pub row_dims: &'a wgpu::Buffer,
    pub head_dims: &'a wgpu::Buffer,
    /// The item scores of the rows (`rows × items`), the batch's mask and the next slate's.
    pub logits: &'a wgpu::Buffer,
    /// The network's output u and the item matrix's first tile: a catalog in one tile is
    /// scored by `sample_partial` itself.
    pub user: &'a wgpu::Buffer,
    pub tile: &'a wgpu::Buffer,
    pub tiles: usize,
    pub d: usize,
    pub mask: &'a wgpu::Buffer,
    pub next_mask: &'a wgpu::Buffer,
    /// The item matrix (one tile), the batch's rows, dL/du, the per-row loss and entropy.
    pub items: &'a wgpu::Buffer,
    pub rows: &'a wgpu::Buffer,
    pub d_user: &'a wgpu::Buffer,
    pub row_stats: &'a wgpu::Buffer,
    /// The slates drawn: items, log-propensities and logits.
    pub slate_items: &'a wgpu::Buffer,
    pub slate_logp: &'a wgpu::Buffer,
    pub slate_scores: &'a wgpu::Buffer,
}

/// Workgroups of `per` items that cover `items` items, at most 65,535 (one dispatch dimension).
fn chunks(items: usize, per: usize, kernel: &str) -> Result<usize> {
    let chunks = items.div_ceil(per);
    if chunks > 65_535 {
        return Err(EngineError::Config(format!(
            "{items} items need {chunks} {kernel} workgroups, more than 65,535"
        )));
    }
    Ok(chunks)
}

/// softmax.wgsl's two-kernel sampler: per-chunk partials (softmax sums and top-K keys; for a
/// catalog in one tile also the logits) over many workgroups, then one merge per row;
/// `partial_next` reads the next-slate mask of an interaction.
pub(super) struct Sampler {
    partial: Kernel,
    partial_next: Kernel,
    merge: Kernel,
    chunks: usize,
    /// The chunks' softmax partials and, for one row with `stats`, their sums A_g.
    norm: wgpu::Buffer,
    sums: wgpu::Buffer,
    /// Whether `sample_partial` computes the logits (no scoring dispatch before it).
    pub(super) scores: bool,
    /// Whether an interaction's slate leaves the next reaction's statistics.
    pub(super) stats: bool,
}

impl Sampler {
    /// With `stats` (the head can use them), an interaction's slate (`partial_next`, one row)
    /// leaves the statistics of the next reaction's gradient (`RowHead::cached`) where the
    /// catalog is in one tile and `d` a multiple of 4.
    pub(super) async fn new(
        ctx: &GpuContext,
        io: &PolicyIo<'_>,
        rows: usize,
        items: usize,
        stats: bool,
    ) -> Result<Self> {
        let chunks = chunks(items, CHUNK, "sampler (per row)")?;
        let cells = (rows * chunks) as u64;
        let norm = ctx.storage("sampler partial sums", cells * 16);
        let keys = ctx.storage("sampler partial keys", cells * MAX_SLATE as u64 * 4);
        let ids = ctx.storage("sampler partial items", cells * MAX_SLATE as u64 * 4);
        let sums = ctx.storage("sampler slate statistics", (chunks * io.d) as u64 * 4);
        let part = |mask| {
            [
                (0, io.row_dims),
                (1, io.logits),
                (2, mask),
                (7, &norm),
                (8, &keys),
                (9, &ids),
                (10, io.user),
                (11, io.tile),
                (12, &sums),
                (13, io.tile),
            ]
        };
        let scores = io.tiles == 1;
        // the statistics' pass reads vec4s, from a catalog the sampler scores itself
        let stats = stats && scores && io.d % 4 == 0;
        let c = |stats: bool| {
            [
                ("SCORE", scores as u32 as f64),
                ("STATS", stats as u32 as f64),
                ("D", io.d as f64),
                ("V4", (io.d % 4 == 0) as u32 as f64),
            ]
        };
        let partial = ctx
            .kernel(Shader::Softmax, "sample_partial", &c(false), &part(io.mask))
            .await?;
        let partial_next = ctx
            .kernel(
                Shader::Softmax,
                "sample_partial",
                &c(stats),
                &part(io.next_mask),
            )
            .await?;
        let merge_entries = [
            (0, io.row_dims),
            (1, io.logits),
            (4, io.slate_items),
            (5, io.slate_logp),
            (6, io.slate_scores),
            (7, &norm),
            (8, &keys),
            (9, &ids),
        ];
        let merge = ctx
            .kernel(Shader::Softmax, "sample_merge", &[], &merge_entries)
            .await?;
        Ok(Sampler {
            partial,
            partial_next,
            merge,
            chunks,
            norm,
            sums,
            scores,
            stats,
        })
    }

    /// Encodes the sampler for `rows` rows (the mask of the next slate when `next`); 2 dispatches.
    pub(super) fn encode(&self, pass: &mut wgpu::ComputePass, rows: usize, next: bool) {
        let partial = if next {
            &self.partial_next
        } else {
            &self.partial
        };
        partial.dispatch(pass, (self.chunks as u32, rows as u32));
        self.merge.dispatch(pass, (rows as u32, 1));
    }
}

/// A layer's dX-only backward for one row (dense_backward.wgsl `backward_dx_row`): its constants and
/// bindings, but for the ones the kernel built on it adds (the head's dL/du shares for the last
/// layer, the context's state for the first).
pub(super) struct RowBackward<'a> {
    pub constants: &'a [(&'a str, f64)],
    pub entries: &'a [(u32, &'a wgpu::Buffer)],
}

/// loss.wgsl's policy head for one row over many workgroups: per-chunk logits and softmax
/// statistics; per chunk their merge (loss, entropy, the policy-gradient weight) and the chunk's
/// share of dL/du; the shares' sum (or, for an input gradient, the last layer's backward
/// `last_dx` sums them as it reads them).
pub(super) struct RowHead {
    stats: Kernel,
    back: Kernel,
    reduce: Kernel,
    /// dL/du from the statistics the sampler left with the slate reacted to (`head_cached`).
    pub(super) cached: Kernel,
    /// The last layer's `backward_dx_row` on the shares.
    pub(super) last_dx: Kernel,
    /// The per-chunk shares of dL/du (`chunks` × the width of u).
    pub(super) shares: wgpu::Buffer,
    pub(super) chunks: usize,
}

impl RowHead {
    /// For `items` items of width `d` (in one tile), after `sampler`.
    pub(super) async fn new(
        ctx: &GpuContext,
        io: &PolicyIo<'_>,
        last: RowBackward<'_>,
        sampler: &Sampler,
        items: usize,
        d: usize,
    ) -> Result<Self> {
        let chunks = chunks(items, HEAD_CHUNK, "policy-head")?;
        let part = ctx.storage("head partial sums", chunks as u64 * 16);
        let du = ctx.storage("head dL/du shares", (chunks * d) as u64 * 4);
        let c = [("D", d as f64)];
        let (l, m, dims) = (io.logits, io.mask, io.head_dims);
        let stats = [
            (0, dims),
            (1, io.user),
            (2, io.items),
            (4, m),
            (13, l),
            (14, &part),
        ];
        let back = [
            (0, dims),
            (2, io.items),
            (3, io.rows),
            (4, m),
            (7, io.row_stats),
            (13, l),
            (14, &part),
            (16, &du),
        ];
        let reduce = [(0, dims), (6, io.d_user), (16, &du)];
        let cached = [
            (0, dims),
            (1, io.user),
            (2, io.items),
            (3, io.rows),
            (6, io.d_user),
            (7, io.row_stats),
            (17, &sampler.norm),
            (18, &sampler.sums),
        ];
        let cached_c = [("D", d as f64), ("SCHUNK", CHUNK as f64)];
        let mut constants = last.constants.to_vec();
        constants.push(("SHARES", chunks as f64));
        let mut entries = last.entries.to_vec();
        entries.push((6, &du));
        Ok(RowHead {
            stats: ctx.kernel(Shader::Loss, "head_stats", &c, &stats).await?,
            back: ctx.kernel(Shader::Loss, "head_back", &c, &back).await?,
            reduce: ctx.kernel(Shader::Loss, "head_reduce", &c, &reduce).await?,
            cached: ctx
                .kernel(Shader::Loss, "head_cached", &cached_c, &cached)
                .await?,
            last_dx: ctx
                .kernel(
                    Shader::DenseBackward,
                    "backward_dx_row",
                    &constants,
                    &entries,
                )
                .await?,
            shares: du,
            chunks,
        })
    }

    /// Encodes the head after the network's forward pass on the one row: the logits, the
    /// statistics, the shares of dL/du and, unless the last layer's `last_dx` reads the shares
    /// (`shares`), their sum. Returns the dispatches encoded.
    pub(super) fn encode(&self, pass: &mut wgpu::ComputePass, shares: bool) -> u64 {
        // at most 65,535 chunks (RowHead::new)
        let chunks = (self.chunks as u32, 1);
        self.stats.dispatch(pass, chunks);
        self.back.dispatch(pass, chunks);
        if shares {
            return 2;
        }
        self.reduce.dispatch(pass, (1, 1));
        3
    }
}

/// The first layer's dX-only backward fused with the context's Adam step (dense_backward.wgsl
/// `backward_dx_row_context`) and its buffers: the session's Adam moments and next summary are
/// uploaded per interaction.
pub(super) struct ContextKernel {
    pub(super) kernel: Kernel,
    dims: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    tail: wgpu::Buffer,
}

impl ContextKernel {
    /// For a network input of `width` values in `input`; `first` is the first layer's
    /// `backward_dx_row` (its constants and bindings, the input gradient at 8; for a one-layer
    /// network the last layer's, reading the head's shares).
    pub(super) async fn new(
        ctx: &GpuContext,
        input: &wgpu::Buffer,
        width: usize,
        first: RowBackward<'_>,
    ) -> Result<Self> {
        let bytes = width as u64 * 4;
        let dims = ctx.uniform::<ContextDims>("context dims");
        let m = ctx.storage("context adam m", bytes);
        let v = ctx.storage("context adam v", bytes);
        let tail = ctx.storage("next summary", bytes);
        let mut entries = first.entries.to_vec();
        entries.extend([(9, &dims), (10, input), (11, &m), (12, &v), (13, &tail)]);
        let kernel = ctx
            .kernel(
                Shader::DenseBackward,
                "backward_dx_row_context",
                first.constants,
                &entries,
            )
            .await?;
        Ok(ContextKernel {
            kernel,
            dims,
            m,
            v,
            tail,
        })
    }
}

impl GpuEngine {
    /// [`Engine::adapt_context`] in one submit, on a checked step.
    pub(super) async fn adapt_context_gpu(
        &mut self,
        step: ContextStep<'_>,
        mut state: ContextState<'_>,
    ) -> Result<Adapted> {
        self.ctx.check()?;
        let (Some(ck), Some(sampler)) = (&self.context_kernel, &self.sampler) else {
            return Err(EngineError::Input(
                "this operation needs a policy head".into(),
            ));
        };
        // Engine::adapt_context checked the step: one row
        let (batch, loss) = (step.batch, step.loss);
        let last = self.slate_stats.take();
        let cached = match (&self.row_head, &last) {
            (Some(h), Some(s)) if s.fits(batch, loss) => Some(h),
            _ => None,
        };
        self.upload_batch(
            Checked {
                batch,
                loss,
                rows: 1,
            },
            true,
        )?;
        let c = state.context.len();
        let adam = step.adam;
        self.write(
            &ck.dims,
            &[ContextDims {
                context: c as u32,
                step: *state.step + 1,
                lr: adam.lr,
                beta1: adam.beta1,
                beta2: adam.beta2,
                eps: adam.eps,
                weight_decay: adam.weight_decay,
            }],
        );
        if c > 0 {
            self.write(&ck.m, state.m);
            self.write(&ck.v, state.v);
        }
        if !step.next_tail.is_empty() {
            self.write(&ck.tail, step.next_tail);
        }
        self.write(&self.next_mask, &step.next_mask.words);
        let items = self.cfg.items();
        let spec = step.spec;
        self.write(
            &self.row_dims,
            &[RowDims {
                rows: 1,
                items: items as u32,
                words: items.div_ceil(32) as u32,
                use_mask: 1,
                k: spec.k as u32,
                greedy: spec.greedy as u32,
                seed: spec.seed,
                draw: spec.draw,
                temperature: spec.temperature,
            }],
        );
        self.write_score_dims(1);
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            // the input gradient's last kernel (the first layer's) takes the context's step;
            // a reaction to the slate drawn last reads its softmax statistics
            match cached {
                Some(h) => self.encode_cached_gradient(&mut pass, h, ck),
                None => self.encode_gradient(&mut pass, 1, Grad::Context),
            }
            self.encode_forward(&mut pass, 1);
            if !sampler.scores {
                self.encode_scores(&mut pass, 1);
            }
            sampler.encode(&mut pass, 1, true);
        }
        self.count(|n| n.dispatches += 2);
        let k = spec.k as u64 * 4;
        let mut out = self
            .read(
                enc,
                &[
                    (&self.d_input, c.max(1) as u64 * 4),
                    (&self.row_stats, 8),
                    (&self.slate_items, k),
                    (&self.slate_logp, k),
                    (&self.slate_scores, k),
                ],
            )
            .await?;
        host_step(&out[0], adam, &mut state);
        // the next reaction is made at the host's copy of the adapted context; only an
        // interaction's slate leaves the statistics: a list alone (`Session::recommend`) is
        // mostly followed by a whole-network step, which would not use them (a kernel with them
        // is slower on SwiftShader even when it skips them)
        if sampler.stats {
            let mut s = last.unwrap_or_default();
            s.set(
                (state.context, step.next_tail),
                step.next_mask,
                spec.temperature,
            );
            self.slate_stats = Some(s);
        }
        let scores = out.swap_remove(4);
        let logp = out.swap_remove(3);
        Ok(Adapted {
            slate: Slates {
                k: spec.k,
                items: bytemuck::cast_slice(&out[2]).to_vec(),
                logp,
            },
            scores,
            loss: out[1][0],
        })
    }
}
