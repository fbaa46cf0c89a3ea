//! Host mirrors of the shaders' uniform and storage structs (`#[repr(C)]`, written with
//! `bytemuck`).

use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Dims {
    pub(super) rows: u32,
    pub(super) want_dx: u32,
    pub(super) _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ScoreDims {
    pub(super) rows: u32,
    pub(super) items: u32,
    pub(super) item_offset: u32,
    pub(super) total_items: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct SoftmaxDims {
    pub(super) rows: u32,
    pub(super) items: u32,
    pub(super) words: u32,
    pub(super) use_mask: u32,
    pub(super) temperature: f32,
    pub(super) _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct SampleDims {
    pub(super) rows: u32,
    pub(super) items: u32,
    pub(super) words: u32,
    pub(super) use_mask: u32,
    pub(super) k: u32,
    pub(super) greedy: u32,
    pub(super) seed: u32,
    pub(super) draw: u32,
    pub(super) temperature: f32,
    pub(super) _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct LossDims {
    pub(super) rows: u32,
    pub(super) items: u32,
    pub(super) words: u32,
    pub(super) use_mask: u32,
    pub(super) kind: u32,
    pub(super) entropy: f32,
    pub(super) temperature: f32,
    pub(super) clip: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct MseDims {
    pub(super) rows: u32,
    pub(super) low: f32,
    pub(super) high: f32,
    pub(super) _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct AdamParams {
    pub(super) lr: f32,
    pub(super) beta1: f32,
    pub(super) beta2: f32,
    pub(super) eps: f32,
    pub(super) weight_decay: f32,
    pub(super) clip_norm: f32,
    pub(super) n: u32,
    pub(super) _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct StatDims {
    pub(super) n_params: u32,
    pub(super) rows: u32,
    pub(super) _pad: [u32; 2],
}

/// Mirror of `Stats` in adam.wgsl / reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct GpuStats {
    pub(super) step: u32,
    pub(super) steps: u32,
    pub(super) loss_sum: f32,
    pub(super) entropy_sum: f32,
    pub(super) last_loss: f32,
    pub(super) grad_sq: f32,
    pub(super) skipped: u32,
    pub(super) _pad: u32,
}
