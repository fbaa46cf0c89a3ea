// Dense layers: forward fused with bias and activation; backward fused (dW, db and dX in one
// dispatch). A layer's block in `params` is (IN + 1) x OUT row-major: W then the bias row, so
// the bias is the weight of an implicit constant-1 input column.

override IN: u32 = 1u;
override OUT: u32 = 1u;
override ACT: u32 = 0u;      // 0 identity, 1 relu, 2 sigmoid
override W_OFF: u32 = 0u;    // offset of this layer's block in params

struct Dims {
    rows: u32,
    want_dx: u32,      // 0 for the first layer: nobody needs dLoss/dInput
    _pad1: u32,
    _pad2: u32,
}

const TILE: u32 = 16u;
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> params: array<f32>;

// forward
@group(0) @binding(2) var<storage, read> fx: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;

fn activate(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return 1.0 / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// Y[rows x OUT] = act(X[rows x IN] W + b). Grid: (ceil(OUT/16), ceil(rows/16)).
@compute @workgroup_size(16, 16)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y;
    let col = wg.x * TILE + lid.x;
    var acc = 0.0;
    for (var k = 0u; k < IN; k = k + TILE) {
        let xi = k + lid.x;
        var a = 0.0;
        if (row < dims.rows && xi < IN) {
            a = fx[row * IN + xi];
        }
        tile_a[lid.y][lid.x] = a;
        let wi = k + lid.y;
        var b = 0.0;
        if (wi < IN && col < OUT) {
            b = params[W_OFF + wi * OUT + col];
        }
        tile_b[lid.y][lid.x] = b;
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk = kk + 1u) {
            acc = acc + tile_a[lid.y][kk] * tile_b[kk][lid.x];
        }
        workgroupBarrier();
    }
    if (row < dims.rows && col < OUT) {
        fy[row * OUT + col] = activate(acc + params[W_OFF + IN * OUT + col]);
    }
}

// backward
@group(0) @binding(4) var<storage, read> bx: array<f32>;      // layer input, rows x IN
@group(0) @binding(5) var<storage, read> by: array<f32>;      // layer output, rows x OUT
@group(0) @binding(6) var<storage, read> bdy: array<f32>;     // dLoss/dY, rows x OUT
@group(0) @binding(7) var<storage, read_write> grads: array<f32>;
@group(0) @binding(8) var<storage, read_write> bdx: array<f32>; // dLoss/dX, rows x IN

// dLoss/dZ at (r, o): the upstream gradient times the activation's derivative from its output.
fn dz(r: u32, o: u32) -> f32 {
    let i = r * OUT + o;
    let y = by[i];
    var d = 1.0;
    switch ACT {
        case 1u: { d = select(0.0, 1.0, y > 0.0); }
        case 2u: { d = y * (1.0 - y); }
        default: {}
    }
    return bdy[i] * d;
}

// Workgroups [0, nw) compute 16x16 tiles of dW_aug = [X, 1]^T dZ ((IN+1) x OUT, bias row
// included); workgroups [nw, nw + nx) compute tiles of dX = dZ W^T (rows x IN) when dims.want_dx.
@compute @workgroup_size(16, 16)
fn backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let g = linear_group(wg, nwg);
    let tiles_o = (OUT + TILE - 1u) / TILE;
    let nw = ((IN + 1u + TILE - 1u) / TILE) * tiles_o;
    let tiles_i = (IN + TILE - 1u) / TILE;
    var nx = 0u;
    if (dims.want_dx != 0u) {
        nx = ((dims.rows + TILE - 1u) / TILE) * tiles_i;
    }
    if (g >= nw + nx) {
        return;
    }
    var acc = 0.0;
    if (g < nw) {
        let i = (g / tiles_o) * TILE + lid.y;
        let o = (g % tiles_o) * TILE + lid.x;
        for (var k = 0u; k < dims.rows; k = k + TILE) {
            let ra = k + lid.x;
            let ia = (g / tiles_o) * TILE + lid.y;
            var a = 0.0;
            if (ra < dims.rows && ia < IN) {
                a = bx[ra * IN + ia];
            } else if (ra < dims.rows && ia == IN) {
                a = 1.0;
            }
            tile_a[lid.y][lid.x] = a;
            let rb = k + lid.y;
            var b = 0.0;
            if (rb < dims.rows && o < OUT) {
                b = dz(rb, o);
            }
            tile_b[lid.y][lid.x] = b;
            workgroupBarrier();
            for (var kk = 0u; kk < TILE; kk = kk + 1u) {
                acc = acc + tile_a[lid.y][kk] * tile_b[kk][lid.x];
            }
            workgroupBarrier();
        }
        if (i < IN + 1u && o < OUT) {
            grads[W_OFF + i * OUT + o] = acc;
        }
    } else {
        let h = g - nw;
        let r = (h / tiles_i) * TILE + lid.y;
        let i0 = (h % tiles_i) * TILE;
        for (var k = 0u; k < OUT; k = k + TILE) {
            let oa = k + lid.x;
            var a = 0.0;
            if (r < dims.rows && oa < OUT) {
                a = dz(r, oa);
            }
            tile_a[lid.y][lid.x] = a;
            let ib = i0 + lid.x;
            let ob = k + lid.y;
            var b = 0.0;
            if (ib < IN && ob < OUT) {
                b = params[W_OFF + ib * OUT + ob];
            }
            tile_b[lid.y][lid.x] = b;
            workgroupBarrier();
            for (var kk = 0u; kk < TILE; kk = kk + 1u) {
                acc = acc + tile_a[lid.y][kk] * tile_b[kk][lid.x];
            }
            workgroupBarrier();
        }
        let i = i0 + lid.x;
        if (r < dims.rows && i < IN) {
            bdx[r * IN + i] = acc;
        }
    }
}
