// Forward-mode (tangent) pass of a dense layer, for Fisher-vector products: for a direction V in
// parameter space (the flat layout of `params`: W then the bias row per layer),
//   dZ = dX W + X dW + db,   dY = act'(Y) ⊙ dZ
// where dX is the previous layer's dY (the network's input does not depend on the parameters,
// so the first layer has no dX term). act' is taken from the output Y, as dense.wgsl's backward
// does. One invocation per (row, output); the workgroups are laid out with `linear_group`.

override IN: u32 = 1u;
override OUT: u32 = 1u;
override ACT: u32 = 0u;      // 0 identity, 1 relu, 2 sigmoid
override W_OFF: u32 = 0u;    // offset of this layer's block in params (and in the direction)
override HAS_DX: u32 = 0u;   // 0 for the first layer

@group(0) @binding(0) var<uniform> dims: DenseDims;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> dir: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> y: array<f32>;
@group(0) @binding(5) var<storage, read> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dy: array<f32>;

fn act_derivative(v: f32) -> f32 {
    switch ACT {
        case 1u: { return select(0.0, 1.0, v > 0.0); }
        case 2u: { return v * (1.0 - v); }
        default: { return 1.0; }
    }
}

// Grid: ceil(OUT / 64) x rows workgroups, linearised.
@compute @workgroup_size(64)
fn tangent(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let blocks = (OUT + 63u) / 64u;
    let g = linear_group(grid);
    let r = g / blocks;
    let o = (g % blocks) * 64u + lid.x;
    if (r >= dims.rows || o >= OUT) {
        return;
    }
    var acc = dir[W_OFF + IN * OUT + o];
    for (var i = 0u; i < IN; i = i + 1u) {
        acc = acc + x[r * IN + i] * dir[W_OFF + i * OUT + o];
        if (HAS_DX == 1u) {
            acc = acc + dx[r * IN + i] * params[W_OFF + i * OUT + o];
        }
    }
    dy[r * OUT + o] = acc * act_derivative(y[r * OUT + o]);
}
