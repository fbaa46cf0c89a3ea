//! The host↔shader contract for structs: each struct the kernels share with the host is declared
//! once, here. `gpu_structs!` makes the `#[repr(C)]` Rust type (written with `bytemuck`) and its
//! WGSL declaration from the same field list, and [`WGSL_STRUCTS`] is prepended to every shader
//! (after `common.wgsl`), so the shaders hold no hand-written mirrors and no padding fields.
//! Every field is a 4-byte scalar (`u32` or `f32`, spelt the same in both languages), so the
//! layouts agree without padding; a uniform buffer's size is derived from its type
//! ([`uniform_bytes`]).

use crate::engine::{Row, StepSums};
use bytemuck::{Pod, Zeroable};

/// WGSL text of a struct of 4-byte scalar fields.
macro_rules! wgsl_struct {
    ($name:ident { $($field:ident: $ty:ident,)* }) => {
        concat!(
            "struct ", stringify!($name), " {\n",
            $("    ", stringify!($field), ": ", stringify!($ty), ",\n",)*
            "}\n"
        )
    };
}

/// Declares the host structs with their WGSL text (`$name::WGSL`); `extern` structs are
/// declared elsewhere (the engine's public types) and only checked here, at compile time, to
/// have exactly these 4-byte fields in this order.
macro_rules! gpu_structs {
    (
        $($(#[doc = $doc:literal])* struct $name:ident { $($field:ident: $ty:ident,)* })*
        $(extern struct $ext:ident { $($efield:ident: $ety:ident,)* })*
    ) => {
        $(
            $(#[doc = $doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Pod, Zeroable)]
            pub(super) struct $name {
                $(pub(super) $field: $ty,)*
            }

            impl $name {
                const WGSL: &'static str = wgsl_struct!($name { $($field: $ty,)* });
            }
        )*
        $(
            const _: () = {
                let mut at = 0;
                $(
                    assert!(std::mem::offset_of!($ext, $efield) == at);
                    at += 4;
                )*
                assert!(std::mem::size_of::<$ext>() == at);
            };
            const _: fn(&$ext) = |v| {
                $(let _: $ety = v.$efield;)*
            };
        )*

        /// Every shared struct's WGSL declaration.
        pub(super) const WGSL_STRUCTS: &[&str] = &[
            $($name::WGSL,)*
            $(wgsl_struct!($ext { $($efield: $ety,)* }),)*
        ];
    };
}

gpu_structs! {
    /// dense_forward.wgsl / dense_backward.wgsl: rows of the batch; whether the layer's backward also writes dX.
    struct DenseDims {
        rows: u32,
        want_dx: u32,
    }

    /// score.wgsl: one tile of the item matrix.
    struct ScoreDims {
        rows: u32,
        items: u32,
        item_offset: u32,
        total_items: u32,
    }

    /// softmax.wgsl (log-softmax and slate sampling): rows over the catalog, the mask, and
    /// the sampler's slate size, mode and counter-hash key.
    struct RowDims {
        rows: u32,
        items: u32,
        words: u32,
        use_mask: u32,
        k: u32,
        greedy: u32,
        seed: u32,
        draw: u32,
        temperature: f32,
    }

    /// loss.wgsl `policy_grad`: the policy head and its loss (kind 0 REINFORCE, 1 PPO).
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

    /// loss.wgsl `mse_grad`: the regression head's rating scale.
    struct MseDims {
        rows: u32,
        low: f32,
        high: f32,
    }

    /// adam.wgsl.
    struct AdamParams {
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        clip_norm: f32,
        n: u32,
    }

    /// dense_backward.wgsl `backward_dx_row_context`: a session's context (the first `context` input
    /// values) and the Adam step it takes (`step` counts from 1).
    struct ContextDims {
        context: u32,
        step: u32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    }

    /// reduce.wgsl `reduce`: the vector's length.
    struct ReduceDims {
        n: u32,
    }

    /// reduce.wgsl `step_stats`.
    struct StatDims {
        n_params: u32,
        rows: u32,
    }

    /// fisher.wgsl `fisher_head`: the softmax-covariance head of a Fisher-vector product.
    struct HeadDims {
        rows: u32,
        items: u32,
        words: u32,
        use_mask: u32,
        temperature: f32,
        inv_rows: f32,
    }

    /// fisher.wgsl's conjugate-gradient kernels: the vector length and the damping λ.
    struct CgDims {
        n: u32,
        damping: f32,
    }

    extern struct Row {
        action: u32,
        reward: f32,
        baseline: f32,
        old_logp: f32,
    }
    extern struct StepSums {
        step: u32,
        steps: u32,
        loss_sum: f32,
        entropy_sum: f32,
        last_loss: f32,
        grad_sq: f32,
        skipped: u32,
    }
}

/// Bytes of a uniform buffer holding a `T`: its size rounded up to 16.
pub(super) fn uniform_bytes<T: Pod>() -> u64 {
    (std::mem::size_of::<T>() as u64).next_multiple_of(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgsl_mirrors_the_rust_fields() {
        assert_eq!(
            MseDims::WGSL,
            "struct MseDims {\n    rows: u32,\n    low: f32,\n    high: f32,\n}\n"
        );
        assert_eq!(std::mem::size_of::<MseDims>(), 12);
        assert_eq!(uniform_bytes::<MseDims>(), 16);
        assert_eq!(uniform_bytes::<RowDims>(), 48);
        assert_eq!(WGSL_STRUCTS.len(), 13);
    }
}
