//! Principal component analysis by subspace iteration (power iteration on a block of vectors,
//! re-orthonormalised by modified Gram–Schmidt), enough for a few hundred columns.
use super::{read_safetensors_f32, write_safetensors, EncoderError};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// A fitted PCA: `project(x) = components · (x − mean)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Input width.
    pub dim: usize,
    /// Per-column mean of the fitted rows (`dim` values).
    pub mean: Vec<f32>,
    /// `k` unit-length principal axes, row-major `k × dim`, by decreasing variance.
    pub components: Vec<f32>,
    /// Variance along each axis (`k` values, decreasing).
    pub variances: Vec<f32>,
}

/// Modified Gram–Schmidt on the `k` columns of a row-major `d × k` matrix, in place.
fn orthonormalise(q: &mut [f64], d: usize, k: usize) {
    for j in 0..k {
        for p in 0..j {
            let dot: f64 = (0..d).map(|i| q[i * k + j] * q[i * k + p]).sum();
            for i in 0..d {
                q[i * k + j] -= dot * q[i * k + p];
            }
        }
        let norm = (0..d).map(|i| q[i * k + j].powi(2)).sum::<f64>().sqrt();
        for i in 0..d {
            q[i * k + j] = if norm > 1e-300 {
                q[i * k + j] / norm
            } else {
                f64::from(u8::from(i == j))
            };
        }
    }
}

impl Pca {
    /// Fits `k` components to `n` rows of width `dim` (`rows` row-major). `iterations` rounds of
    /// subspace iteration (50 is plenty for sentence embeddings); deterministic.
    pub fn fit(
        rows: &[f32],
        dim: usize,
        k: usize,
        iterations: usize,
    ) -> Result<Self, EncoderError> {
        if dim == 0 || rows.len() % dim != 0 || rows.is_empty() {
            return Err(EncoderError::Argument(format!(
                "PCA: expected a non-empty n x {dim} matrix, found {} values",
                rows.len()
            )));
        }
        if k == 0 || k > dim {
            return Err(EncoderError::Argument(format!(
                "PCA: width {k} must be between 1 and the input width {dim}"
            )));
        }
        let n = rows.len() / dim;
        // The matrix products run through candle (optimised even in debug builds).
        let x = Tensor::from_slice(rows, (n, dim), &Device::Cpu)?.to_dtype(DType::F64)?;
        let mean_t = x.mean_keepdim(0)?;
        let xc = x.broadcast_sub(&mean_t)?;
        let cov_t = (xc.t()?.matmul(&xc)? / n as f64)?;
        let mean: Vec<f64> = mean_t.flatten_all()?.to_vec1()?;
        let cov: Vec<f64> = cov_t.flatten_all()?.to_vec1()?;
        // Deterministic start: a fixed pseudo-random d x k block.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut q: Vec<f64> = (0..dim * k)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        orthonormalise(&mut q, dim, k);
        for _ in 0..iterations.max(1) {
            let qt = Tensor::from_slice(&q, (dim, k), &Device::Cpu)?;
            q = cov_t.matmul(&qt)?.flatten_all()?.to_vec1()?;
            orthonormalise(&mut q, dim, k);
        }
        // Rayleigh quotients, sort by decreasing variance, fix signs (largest entry positive).
        let mut axes: Vec<(f64, Vec<f64>)> = (0..k)
            .map(|j| {
                let v: Vec<f64> = (0..dim).map(|i| q[i * k + j]).collect();
                let cv: f64 = (0..dim)
                    .map(|a| v[a] * (0..dim).map(|b| cov[a * dim + b] * v[b]).sum::<f64>())
                    .sum();
                let big = v
                    .iter()
                    .copied()
                    .fold(0f64, |m, x| if x.abs() > m.abs() { x } else { m });
                let s = if big < 0.0 { -1.0 } else { 1.0 };
                (cv, v.into_iter().map(|x| x * s).collect())
            })
            .collect();
        axes.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(Pca {
            dim,
            mean: mean.iter().map(|&m| m as f32).collect(),
            components: axes
                .iter()
                .flat_map(|(_, v)| v.iter().map(|&x| x as f32))
                .collect(),
            variances: axes.iter().map(|(l, _)| *l as f32).collect(),
        })
    }

    /// Reads a PCA written by [`Pca::save`] (tensors `pca_mean`, `pca_components`,
    /// `pca_variances`); errors name the file and what was expected.
    pub fn load(path: &Path) -> Result<Self, EncoderError> {
        let (ms, mean) = read_safetensors_f32(path, "pca_mean")?;
        let (cs, components) = read_safetensors_f32(path, "pca_components")?;
        let (vs, variances) = read_safetensors_f32(path, "pca_variances")?;
        if ms.len() != 1 || cs.len() != 2 || vs.len() != 1 || cs[0] != vs[0] || cs[1] != ms[0] {
            return Err(EncoderError::Invalid {
                path: path.to_path_buf(),
                message: format!("expected pca_mean [d], pca_components [k, d], pca_variances [k]; found {ms:?}, {cs:?}, {vs:?}"),
            });
        }
        Ok(Pca {
            dim: ms[0],
            mean,
            components,
            variances,
        })
    }

    /// The PCA's tensors, as [`Pca::load`] and `metarec embed` name them.
    pub fn tensors(&self) -> [(&'static str, Vec<usize>, &[f32]); 3] {
        [
            ("pca_mean", vec![self.dim], &self.mean),
            ("pca_components", vec![self.k(), self.dim], &self.components),
            ("pca_variances", vec![self.k()], &self.variances),
        ]
    }

    /// Writes the PCA to a safetensors file (see [`Pca::load`]).
    pub fn save(&self, path: &Path) -> Result<(), EncoderError> {
        write_safetensors(path, &self.tensors(), Default::default())
    }

    /// Number of components.
    pub fn k(&self) -> usize {
        self.variances.len()
    }

    /// Projects `n` rows of width `dim` to `n` rows of width `k()`, row-major.
    pub fn project(&self, rows: &[f32]) -> Result<Vec<f32>, EncoderError> {
        if self.dim == 0 || rows.len() % self.dim != 0 {
            return Err(EncoderError::Argument(format!(
                "PCA: expected rows of width {}, found {} values",
                self.dim,
                rows.len()
            )));
        }
        let n = rows.len() / self.dim;
        let x = Tensor::from_slice(rows, (n, self.dim), &Device::Cpu)?;
        let mean = Tensor::from_slice(&self.mean, (1, self.dim), &Device::Cpu)?;
        let axes = Tensor::from_slice(&self.components, (self.k(), self.dim), &Device::Cpu)?;
        let out = x.broadcast_sub(&mean)?.matmul(&axes.t()?)?;
        Ok(out.flatten_all()?.to_vec1()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_axes_of_a_stretched_cloud() {
        // Points along (1,1,0)/√2 with variance 9, (1,-1,0)/√2 with variance 1, z noise tiny.
        let mut rows = Vec::new();
        for i in 0..200 {
            let a = ((i * 37 % 200) as f32 / 200.0 - 0.5) * 3.0 * 12f32.sqrt();
            let b = ((i * 91 % 200) as f32 / 200.0 - 0.5) * 12f32.sqrt();
            let s = std::f32::consts::FRAC_1_SQRT_2;
            rows.extend_from_slice(&[(a + b) * s + 1.0, (a - b) * s, 0.01 * (i % 3) as f32]);
        }
        let pca = Pca::fit(&rows, 3, 2, 50).unwrap();
        assert!((pca.variances[0] - 9.0).abs() < 0.5, "{:?}", pca.variances);
        assert!((pca.variances[1] - 1.0).abs() < 0.1, "{:?}", pca.variances);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((pca.components[0] - s).abs() < 0.02 && (pca.components[1] - s).abs() < 0.02);
        let p = pca.project(&rows).unwrap();
        assert_eq!(p.len(), 400);
        let mean0: f32 = p.chunks(2).map(|r| r[0]).sum::<f32>() / 200.0;
        assert!(mean0.abs() < 1e-4);
        assert!(Pca::fit(&rows, 3, 4, 5).is_err());
        assert!(Pca::fit(&[], 3, 1, 5).is_err());
    }
}
