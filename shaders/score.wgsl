// Item scoring: out[r, offset + j] = u_r . e_j for one tile (chunk) of the item-embedding
// matrix. Catalogs larger than one storage binding are scored tile by tile.

override D: u32 = 64u;

@group(0) @binding(0) var<uniform> sd: ScoreDims;
@group(0) @binding(1) var<storage, read> user: array<f32>;
@group(0) @binding(2) var<storage, read> emb: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> u_s: array<f32, 256>;

// Grid: (ceil(items / 256), rows).
@compute @workgroup_size(256)
fn score(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.y;
    if (lid.x < D) {
        u_s[lid.x] = user[r * D + lid.x];
    }
    workgroupBarrier();
    let j = wg.x * WG + lid.x;
    if (j < sd.items) {
        var acc = 0.0;
        for (var d = 0u; d < D; d = d + 1u) {
            acc = acc + u_s[d] * emb[j * D + d];
        }
        out[r * sd.total_items + sd.item_offset + j] = acc;
    }
}
