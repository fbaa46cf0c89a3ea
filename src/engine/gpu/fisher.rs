//! [`Fisher`] on the GPU: the tangent pass (`shaders/tangent.wgsl`), the softmax-covariance
//! head and the conjugate-gradient updates (`shaders/fisher.wgsl`), with the model's own forward
//! and backward kernels. A natural gradient is one submit: the forward pass, then per CG
//! iteration tangent × L, head, backward × L, damping, two dot products and three updates; the
//! CG scalars stay in a device buffer, and only the solution comes back.

use super::context::Shader;
use super::uniforms::{CgDims, HeadDims};
use super::{backward_groups, grid, GpuEngine, Kernel};
use crate::engine::backend::{FisherBackend, FisherOp};
#[cfg(doc)]
use crate::engine::fisher::Fisher;
use crate::engine::fisher::{Cg, States};
use crate::engine::{EngineError, Result};

/// The Fisher kernels of one model, built on first use.
pub(super) struct FisherKernels {
    tangent: Vec<Kernel>,
    head_dims: wgpu::Buffer,
    head: Kernel,
    cg_dims: wgpu::Buffer,
    p: wgpu::Buffer,
    ap: wgpu::Buffer,
    x: wgpu::Buffer,
    r: wgpu::Buffer,
    damp: Kernel,
    /// `cg_dot` for slots 0 (r·r at the start), 1 (p·Ap) and 2 (r·r after the update).
    dots: [Kernel; 3],
    update_xr: Kernel,
    update_p: Kernel,
    shift: Kernel,
}

impl FisherKernels {
    async fn new(e: &GpuEngine) -> Result<Self> {
        let ctx = &e.ctx;
        let cfg = &e.cfg;
        let layers = cfg.layers();
        let offsets = cfg.offsets();
        let rows = cfg.max_rows as u64;
        let mut tangents: Vec<wgpu::Buffer> = Vec::new();
        let mut tangent = Vec::new();
        for (l, layer) in layers.iter().enumerate() {
            let out = ctx.storage("tangent", rows * layer.outputs as u64 * 4);
            let constants = [
                ("IN", layer.inputs as f64),
                ("OUT", layer.outputs as f64),
                ("ACT", layer.activation.code() as f64),
                ("W_OFF", offsets[l] as f64),
                ("HAS_DX", (l > 0) as u32 as f64),
            ];
            tangents.push(out);
            let dx = if l == 0 { &e.acts[0] } else { &tangents[l - 1] };
            let entries = [
                (0, &e.layer_dims[l]),
                (1, &e.params),
                (2, &e.fisher_dir),
                (3, &e.acts[l]),
                (4, &e.acts[l + 1]),
                (5, dx),
                (6, &tangents[l]),
            ];
            tangent.push(
                ctx.kernel(Shader::Tangent, "tangent", &constants, &entries)
                    .await?,
            );
        }
        let tile = e.tiles.first().ok_or_else(|| {
            EngineError::Input("the Fisher information needs a policy head".into())
        })?;
        let head_dims = ctx.uniform::<HeadDims>("fisher head dims");
        let d_const = [("D", cfg.output as f64)];
        let entries = [
            (0, &head_dims),
            (1, &e.acts[layers.len()]),
            (2, &tangents[layers.len() - 1]),
            (3, &tile.buffer),
            (4, &e.mask_buf),
            (5, &e.logits),
            (6, &e.logp),
            (7, &e.d_out),
        ];
        let head = ctx
            .kernel(Shader::Fisher, "fisher_head", &d_const, &entries)
            .await?;

        let pbytes = e.n_params as u64 * 4;
        let cg_dims = ctx.uniform::<CgDims>("cg dims");
        let p = &e.fisher_dir;
        let ap = ctx.storage("cg Ap", pbytes);
        let x = ctx.storage("cg x", pbytes);
        let r = ctx.storage("cg r", pbytes);
        let scal = ctx.storage("cg scalars", 16);
        let damp = ctx
            .kernel(
                Shader::Fisher,
                "damp",
                &[],
                &[(8, &cg_dims), (9, &e.grads), (10, p), (11, &ap)],
            )
            .await?;
        let mut dots = Vec::new();
        for slot in 0..3 {
            let entries = [(8, &cg_dims), (10, p), (11, &ap), (13, &r), (14, &scal)];
            let constants = [("SLOT", slot as f64)];
            dots.push(
                ctx.kernel(Shader::Fisher, "cg_dot", &constants, &entries)
                    .await?,
            );
        }
        let dots: [Kernel; 3] = dots
            .try_into()
            .map_err(|_| EngineError::Device("cg dot pipelines".into()))?;
        let update_xr = ctx
            .kernel(
                Shader::Fisher,
                "update_xr",
                &[],
                &[
                    (8, &cg_dims),
                    (10, p),
                    (11, &ap),
                    (12, &x),
                    (13, &r),
                    (14, &scal),
                ],
            )
            .await?;
        let update_p = ctx
            .kernel(
                Shader::Fisher,
                "update_p",
                &[],
                &[(8, &cg_dims), (10, p), (13, &r), (14, &scal)],
            )
            .await?;
        let shift = ctx
            .kernel(Shader::Fisher, "shift", &[], &[(14, &scal)])
            .await?;
        ctx.check()?;
        Ok(FisherKernels {
            tangent,
            head_dims,
            head,
            cg_dims,
            p: p.clone(),
            ap,
            x,
            r,
            damp,
            dots,
            update_xr,
            update_p,
            shift,
        })
    }
}

impl GpuEngine {
    /// Builds the kernels on first use and uploads the `rows` rows of `states` and the
    /// uniforms.
    async fn prepare_fisher(
        &mut self,
        states: &States<'_>,
        rows: usize,
        damping: f32,
    ) -> Result<()> {
        self.ctx.check()?;
        if self.tiles.len() != 1 {
            return Err(EngineError::Config(format!(
                "the Fisher information needs the item matrix in one storage binding; {} items \
                 need {} tiles",
                self.cfg.items(),
                self.tiles.len()
            )));
        }
        if self.fisher.is_none() {
            self.fisher = Some(Box::new(FisherKernels::new(self).await?));
        }
        self.upload_inputs(states.inputs, rows, false);
        let use_mask = self.upload_mask(states.mask);
        let items = self.cfg.items();
        let Some(fk) = &self.fisher else {
            return Err(EngineError::Device("Fisher kernels missing".into()));
        };
        self.write(
            &fk.head_dims,
            &[HeadDims {
                rows: rows as u32,
                items: items as u32,
                words: items.div_ceil(32) as u32,
                use_mask,
                temperature: states.temperature,
                inv_rows: 1.0 / rows as f32,
            }],
        );
        self.write(
            &fk.cg_dims,
            &[CgDims {
                n: self.n_params as u32,
                damping,
            }],
        );
        Ok(())
    }

    /// Encodes `Ap = (F + λI) p` (the forward pass must already be in `pass`); returns the
    /// number of dispatches.
    fn encode_fvp(&self, fk: &FisherKernels, pass: &mut wgpu::ComputePass, rows: usize) -> u64 {
        let layers = self.cfg.layers();
        for (k, layer) in fk.tangent.iter().zip(&layers) {
            k.dispatch(pass, grid(layer.outputs.div_ceil(64) * rows));
        }
        fk.head.dispatch(pass, grid(rows));
        for (l, k) in self.backward.iter().enumerate().rev() {
            k.dispatch(pass, backward_groups(&layers[l], rows, l > 0));
        }
        fk.damp.dispatch(pass, grid(self.n_params.div_ceil(1024)));
        2 * layers.len() as u64 + 2
    }

    /// `(F + λI) v` on the prepared states.
    async fn product(&mut self, v: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.write(&self.fisher_dir, v);
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_forward(&mut pass, rows);
            if let Some(fk) = &self.fisher {
                let n = self.encode_fvp(fk, &mut pass, rows);
                self.count(|c| c.dispatches += n);
            }
        }
        let Some(fk) = &self.fisher else {
            return Err(EngineError::Device("Fisher kernels missing".into()));
        };
        self.read_one(enc, &fk.ap, self.n_params * 4).await
    }

    /// `(F + λI)⁻¹ g` by conjugate gradient on the prepared states, in one submit.
    async fn solve(&mut self, g: &[f32], cg: Cg, rows: usize) -> Result<Vec<f32>> {
        let Some(fk) = self.fisher.take() else {
            return Err(EngineError::Device("Fisher kernels missing".into()));
        };
        self.write(&fk.r, g);
        self.write(&fk.p, g);
        let vectors = grid(self.n_params.div_ceil(1024));
        let mut enc = self.encoder();
        // x = 0 on the device: no host vector of zeros uploaded per solve
        enc.clear_buffer(&fk.x, 0, None);
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_forward(&mut pass, rows);
            fk.dots[0].dispatch(&mut pass, (1, 1));
            let mut dispatches = 1;
            for _ in 0..cg.iterations {
                dispatches += self.encode_fvp(&fk, &mut pass, rows);
                fk.dots[1].dispatch(&mut pass, (1, 1));
                fk.update_xr.dispatch(&mut pass, vectors);
                fk.dots[2].dispatch(&mut pass, (1, 1));
                fk.update_p.dispatch(&mut pass, vectors);
                fk.shift.dispatch(&mut pass, (1, 1));
                dispatches += 5;
            }
            self.count(|c| c.dispatches += dispatches);
        }
        let out = self.read_one(enc, &fk.x, self.n_params * 4).await;
        self.fisher = Some(fk);
        out
    }
}

impl FisherBackend for GpuEngine {
    async fn fisher(&mut self, states: States<'_>, op: FisherOp<'_>) -> Result<Vec<f32>> {
        // Fisher::fisher_product and natural_gradient checked the rows
        let rows = states.inputs.len() / self.cfg.input;
        match op {
            FisherOp::Product { v, damping } => {
                self.prepare_fisher(&states, rows, damping).await?;
                self.product(v, rows).await
            }
            FisherOp::Solve { g, cg } => {
                self.prepare_fisher(&states, rows, cg.damping).await?;
                self.solve(g, cg, rows).await
            }
        }
    }
}
