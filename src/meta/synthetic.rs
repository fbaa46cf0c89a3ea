//! A synthetic world set up for meta-training.

use super::{policy_config, ItemVectorParts, ItemVectors, MetaConfig, PolicyShape};
use crate::data::ItemFeatures;
use crate::engine::{Engine, EngineError, Result};
use crate::model::ModelConfig;
use crate::session::AdaptConfig;

/// Collaborative factors in a synthetic world's item vectors (its latent style has 4
/// dimensions besides the genres).
pub const SYNTHETIC_FACTORS: usize = 8;

/// A synthetic world ready for meta-training: the world, its logged ratings, the item vectors
/// (content features and the population's collaborative factors, [`ItemVectors`]) and the
/// policy's model description.
pub struct SyntheticSetup {
    pub world: crate::data::World,
    pub ratings: crate::data::Dataset,
    pub items: Vec<f32>,
    pub parts: ItemVectorParts,
    pub model: ModelConfig,
    /// The items' content features (with their own embedding, when they have one).
    pub features: ItemFeatures,
}

fn input(e: crate::data::DataError) -> EngineError {
    EngineError::Input(e.to_string())
}

impl SyntheticSetup {
    /// Generates the world for `world` and describes a policy for it.
    pub fn new(
        world: crate::data::WorldConfig,
        shape: &PolicyShape,
        cfg: &MetaConfig,
    ) -> Result<Self> {
        let w = crate::data::World::generate(world).map_err(input)?;
        Self::from_world(w, None, shape, cfg)
    }

    /// A world over a site's own items ([`crate::data::World::over_catalog`]; `world.n_items`
    /// is ignored), their embedding (when they have one) part of the item vectors.
    pub fn over_items(
        items: &crate::data::ItemCatalog,
        world: crate::data::WorldConfig,
        shape: &PolicyShape,
        cfg: &MetaConfig,
    ) -> Result<Self> {
        let embedding = items
            .embedding
            .as_ref()
            .map(|e| (e.width, e.values.as_slice()));
        let w = crate::data::World::over_catalog(items.catalog.clone(), embedding, world)
            .map_err(input)?;
        Self::from_world(w, embedding, shape, cfg)
    }

    fn from_world(
        w: crate::data::World,
        embedding: Option<(usize, &[f32])>,
        shape: &PolicyShape,
        cfg: &MetaConfig,
    ) -> Result<Self> {
        let seed = w.config.seed;
        let ratings = w.dataset(seed).map_err(input)?;
        let mut features = ItemFeatures::build(&w.catalog, &ratings.ratings);
        if let Some((width, values)) = embedding {
            features.set_text_embeddings(width, values).map_err(input)?;
        }
        // the same design as on a dataset: content features and collaborative factors of the
        // world's own (training) population
        let population: Vec<u32> = (0..ratings.n_users() as u32).collect();
        let factors = crate::data::like_factors(&ratings, &population, SYNTHETIC_FACTORS, seed);
        let vectors =
            ItemVectors::new(&features, &ratings.ratings).with_factors(&factors, SYNTHETIC_FACTORS);
        let model = policy_config(shape, w.catalog.len(), vectors.dim, cfg.rows());
        Ok(SyntheticSetup {
            parts: vectors.parts(),
            items: vectors.values,
            features,
            world: w,
            ratings,
            model,
        })
    }

    /// The tasks of meta-iteration `iteration`: consecutive users, wrapping around.
    pub fn tasks(&self, cfg: &MetaConfig, iteration: usize) -> Vec<crate::data::SyntheticTask<'_>> {
        let n = self.world.n_users();
        (0..cfg.users_per_iteration)
            .map(|k| {
                let u = ((iteration * cfg.users_per_iteration + k) % n) as u32;
                let seed = ((cfg.seed as u64) << 32) ^ (iteration as u64 * 65_537 + u as u64);
                self.world.task(u, cfg.rounds, seed)
            })
            .collect()
    }

    /// A bundle with the catalog, the item features and the policy that `engine` holds.
    pub async fn bundle(
        &self,
        engine: &mut impl Engine,
        adapt: AdaptConfig,
    ) -> Result<crate::data::Bundle> {
        let policy = crate::policy::Policy::from_engine(engine, self.items.clone(), adapt)
            .await?
            .with_parts(self.parts);
        let mut bundle = crate::data::Bundle {
            catalog: self.world.catalog.clone(),
            features: Some(self.features.clone()),
            ..Default::default()
        };
        policy.store(&mut bundle)?;
        Ok(bundle)
    }
}
