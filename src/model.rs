//! Model description: MLP layer sizes, activations, the head on top, and the flat parameter layout
//! shared by every engine.
//!
//! Each layer's parameters are stored as one `(inputs + 1) × outputs` row-major block: the weight
//! matrix `W[i][o]` followed by the bias row `b[o]`. Layers follow each other in one flat buffer, so
//! a single Adam dispatch updates the whole model and save/restore is one slice.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Element-wise activation applied after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Identity,
    Relu,
    Sigmoid,
}

impl Activation {
    /// The value of the WGSL `override` constant that selects this activation.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
        }
    }

    /// Applies the activation.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }

    /// Derivative expressed through the activation's output `y` (what the backward pass keeps).
    pub fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => y * (1.0 - y),
        }
    }
}

/// What sits on top of the MLP.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Head {
    /// The MLP output is a user vector `u`; item `j` gets the logit `u · e_j / temperature`
    /// against the item-embedding matrix, and a softmax over the catalog is the policy.
    Policy { items: usize },
    /// The MLP output is one sigmoid unit scaled to `[low, high]` (e.g. a 1–5 rating).
    Regression { low: f32, high: f32 },
}

/// Weight initialisation scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Uniform in ±sqrt(6 / fan_in): suited to ReLU layers.
    He,
    /// Uniform in ±sqrt(6 / (fan_in + fan_out)).
    Xavier,
}

/// One dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
}

impl Layer {
    /// Number of parameters, weights plus biases.
    pub fn param_count(&self) -> usize {
        (self.inputs + 1) * self.outputs
    }
}

/// A complete, serialisable model description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Width of the input vector.
    pub input: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Width of the MLP output (the item-embedding width for a policy head, 1 for regression).
    pub output: usize,
    pub hidden_activation: Activation,
    pub output_activation: Activation,
    pub head: Head,
    pub init: Init,
    /// Seed of the parameter initialisation.
    pub seed: u64,
    /// Largest batch the engine allocates buffers for.
    pub max_rows: usize,
}

impl ModelConfig {
    /// The reference policy of the benchmarks: input 128, hidden 256-256 ReLU, user vector 64,
    /// a 1,682-item catalog, batches of 64.
    pub fn reference_policy() -> Self {
        ModelConfig {
            input: 128,
            hidden: vec![256, 256],
            output: 64,
            hidden_activation: Activation::Relu,
            output_activation: Activation::Identity,
            head: Head::Policy { items: 1682 },
            init: Init::He,
            seed: 7,
            max_rows: 64,
        }
    }

    /// The dense layers in order.
    pub fn layers(&self) -> Vec<Layer> {
        let mut widths = vec![self.input];
        widths.extend(&self.hidden);
        widths.push(self.output);
        let n = widths.len() - 1;
        (0..n)
            .map(|l| Layer {
                inputs: widths[l],
                outputs: widths[l + 1],
                activation: if l + 1 == n {
                    self.output_activation
                } else {
                    self.hidden_activation
                },
            })
            .collect()
    }

    /// Offset of each layer's block in the flat parameter buffer.
    pub fn offsets(&self) -> Vec<usize> {
        let mut off = 0;
        self.layers()
            .iter()
            .map(|l| {
                let o = off;
                off += l.param_count();
                o
            })
            .collect()
    }

    /// Total parameter count.
    pub fn param_count(&self) -> usize {
        self.layers().iter().map(Layer::param_count).sum()
    }

    /// Number of items in the catalog (0 for a regression head).
    pub fn items(&self) -> usize {
        match self.head {
            Head::Policy { items } => items,
            Head::Regression { .. } => 0,
        }
    }

    /// Checks that the description is usable, with a message saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.input == 0 || self.output == 0 || self.hidden.contains(&0) {
            return Err("every layer width must be at least 1".into());
        }
        if self.max_rows == 0 {
            return Err("max_rows must be at least 1".into());
        }
        match self.head {
            Head::Policy { items } => {
                if items == 0 {
                    return Err("a policy head needs at least one item".into());
                }
                if self.output > crate::engine::MAX_ITEM_DIM {
                    return Err(format!(
                        "a policy head's user vector has at most {} dimensions, got {}",
                        crate::engine::MAX_ITEM_DIM,
                        self.output
                    ));
                }
            }
            Head::Regression { low, high } => {
                if self.output != 1 {
                    return Err(format!(
                        "a regression head needs output width 1, got {}",
                        self.output
                    ));
                }
                if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) {
                    return Err(format!("regression range [{low}, {high}] is empty"));
                }
            }
        }
        Ok(())
    }

    /// Fresh parameters drawn from the configured initialisation (biases 0.1 after ReLU, else 0).
    pub fn init_params(&self) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut params = Vec::with_capacity(self.param_count());
        for layer in self.layers() {
            let bound = match self.init {
                Init::He => (6.0 / layer.inputs as f32).sqrt(),
                Init::Xavier => (6.0 / (layer.inputs + layer.outputs) as f32).sqrt(),
            };
            for _ in 0..layer.inputs * layer.outputs {
                params.push(rng.random_range(-bound..bound));
            }
            // ReLU layers start with a small positive bias, so that an all-zero input (a fresh
            // per-user context) still reaches live units and has a gradient
            let bias = if layer.activation == Activation::Relu {
                0.1
            } else {
                0.0
            };
            params.extend(std::iter::repeat_n(bias, layer.outputs));
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_the_reference_policy() {
        let c = ModelConfig::reference_policy();
        let layers = c.layers();
        assert_eq!(layers.len(), 3);
        assert_eq!(c.offsets(), vec![0, 129 * 256, 129 * 256 + 257 * 256]);
        assert_eq!(c.param_count(), 129 * 256 + 257 * 256 + 257 * 64);
        assert_eq!(layers[2].activation, Activation::Identity);
        let p = c.init_params();
        assert_eq!(p.len(), c.param_count());
        assert_eq!(p, c.init_params(), "same seed, same parameters");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_shapes_are_refused_with_a_reason() {
        let c = ModelConfig::reference_policy();
        let bad = ModelConfig {
            head: Head::Regression {
                low: 1.0,
                high: 5.0,
            },
            ..c.clone()
        };
        assert!(bad.validate().unwrap_err().contains("output width 1"));
        let empty = ModelConfig {
            head: Head::Policy { items: 0 },
            ..c
        };
        assert!(empty.validate().unwrap_err().contains("at least one item"));
    }
}
