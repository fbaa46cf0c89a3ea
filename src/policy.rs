//! A trained policy as the page loads it: the network's configuration and parameters, the item
//! matrix and the adaptation settings, stored in a [`Bundle`] (weights in safetensors, so other
//! tools can read them) next to the catalog.

use crate::data::Bundle;
use crate::engine::{Engine, EngineError, Result};
use crate::meta::ItemVectorParts;
use crate::model::ModelConfig;
use crate::session::{AdaptConfig, Adapts, Session};
use serde::{Deserialize, Serialize};

/// Format tag of the bundle's policy configuration.
pub const POLICY_FORMAT: &str = "metarec-policy/1";

/// Everything needed to serve recommendations and adapt them on the device.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub model: ModelConfig,
    pub adapt: AdaptConfig,
    /// Flat network parameters.
    pub params: Vec<f32>,
    /// Item vectors, `items × model.output`.
    pub items: Vec<f32>,
    /// What the item vectors are made of (absent in bundles made before it was recorded).
    pub parts: Option<ItemVectorParts>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: String,
    model: ModelConfig,
    adapt: AdaptConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item_vectors: Option<ItemVectorParts>,
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::Input(msg.into())
}

impl Policy {
    /// Reads the current parameters of `engine` into a policy.
    pub async fn from_engine(
        engine: &mut impl Engine,
        items: Vec<f32>,
        adapt: AdaptConfig,
    ) -> Result<Self> {
        Ok(Policy {
            model: engine.config().clone(),
            adapt,
            params: engine.params().await?,
            items,
            parts: None,
        })
    }

    /// This policy, recording what its item vectors are made of.
    pub fn with_parts(self, parts: ItemVectorParts) -> Self {
        Policy {
            parts: Some(parts),
            ..self
        }
    }

    /// Loads this policy into `engine` (whose configuration must match).
    pub fn load_into(&self, engine: &mut impl Engine) -> Result<()> {
        if engine.config() != &self.model {
            return Err(bad("the engine was made for another model configuration"));
        }
        engine.set_params(&self.params)?;
        engine.set_items(&self.items)
    }

    /// A fresh session for a new person: context at the meta-learned start (zero) and, for a
    /// policy that adapts the whole network, the person's own copy of it.
    pub fn session(&self, seed: u32) -> Session {
        match self.adapt.adapts {
            Adapts::Context => Session::new(&self.model, self.adapt, seed),
            Adapts::Network => Session::owning(&self.model, self.adapt, seed, &self.params),
        }
    }

    /// Stores the policy in `bundle` (configuration and weights); the catalog stays as it is.
    pub fn store(&self, bundle: &mut Bundle) -> Result<()> {
        let n = self.model.items();
        if bundle.catalog.len() != n {
            return Err(bad(format!(
                "the policy covers {n} items, the bundle's catalog {}",
                bundle.catalog.len()
            )));
        }
        bundle
            .set_weights(&[
                ("params", vec![self.params.len()], &self.params),
                ("items", vec![n, self.model.output], &self.items),
            ])
            .map_err(|e| bad(e.to_string()))?;
        let stored = Stored {
            format: POLICY_FORMAT.into(),
            model: self.model.clone(),
            adapt: self.adapt,
            item_vectors: self.parts,
        };
        bundle.config = Some(serde_json::to_string(&stored).map_err(|e| bad(e.to_string()))?);
        Ok(())
    }

    /// Reads the policy a bundle carries, refusing bundles without one or of another format.
    pub fn from_bundle(bundle: &Bundle) -> Result<Self> {
        let text = bundle
            .config
            .as_deref()
            .ok_or_else(|| bad("this bundle carries no trained policy (no configuration)"))?;
        let stored: Stored = serde_json::from_str(text)
            .map_err(|e| bad(format!("bundle policy configuration: {e}")))?;
        if stored.format != POLICY_FORMAT {
            return Err(bad(format!(
                "bundle policy is '{}', this build reads '{POLICY_FORMAT}'",
                stored.format
            )));
        }
        stored.model.validate().map_err(EngineError::Config)?;
        let tensor = |name: &str| {
            bundle
                .weight(name)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad(format!("bundle has no '{name}' weights")))
        };
        let (params, items) = (tensor("params")?, tensor("items")?);
        let n = stored.model.items();
        if bundle.catalog.len() != n {
            return Err(bad(format!(
                "the bundle's policy covers {n} items, its catalog {}",
                bundle.catalog.len()
            )));
        }
        // the checks every engine applies to what it is given
        let weights = |e| match e {
            EngineError::Input(m) => bad(format!("bundle weights: {m}")),
            e => e,
        };
        if let Some(p) = stored.item_vectors {
            let width = p.features + p.factors + usize::from(p.prior);
            if width != stored.model.output {
                return Err(bad(format!(
                    "bundle item vectors: {} feature + {} factor{}{} columns, but the model's are {} wide",
                    p.features,
                    p.factors,
                    if p.whitened { " (whitened)" } else { "" },
                    if p.prior { " + 1 prior" } else { "" },
                    stored.model.output
                )));
            }
        }
        crate::engine::check_params(stored.model.param_count(), &params.values).map_err(weights)?;
        crate::engine::check_items(&stored.model, &items.values).map_err(weights)?;
        Ok(Policy {
            model: stored.model,
            adapt: stored.adapt,
            params: params.values,
            items: items.values,
            parts: stored.item_vectors,
        })
    }
}
