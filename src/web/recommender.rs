//! [`Recommender`]: a trained policy adapting to one person in the page.

use super::meta_trainer::{MetaTrainOptions, MetaTraining};
use super::{coded, js_err, options, read_bundle, to_js, Code};
use crate::engine::Preference;
use crate::managed::ManagedEngine;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// Options of [`Recommender::create`] and [`Recommender::restore`].
#[derive(Deserialize, Default)]
#[serde(default)]
struct RecommenderOptions {
    engine: Preference,
    /// Seed of the exploration noise of a new session.
    seed: u32,
}

/// An item with its own fields (`item` its id, `genres` its categories) and its score.
#[derive(Serialize)]
struct JsRecommendation<'a> {
    item: &'a str,
    title: &'a str,
    genres: Vec<&'a str>,
    year: Option<i32>,
    description: &'a str,
    score: f32,
    propensity: f32,
}

/// On-device recommendations that adapt to one person: a trained policy from a bundle, an
/// engine (WebGPU when there is one), and the person's session.
#[wasm_bindgen]
pub struct Recommender {
    engine: ManagedEngine,
    catalog: crate::data::Catalog,
    session: crate::session::Session,
    /// The trained policy: the engine is rebuilt from it when the GPU device is lost (what the
    /// person taught is in the session: its context, or its own copy of the network, which the
    /// session loads into the engine before every use).
    policy: crate::policy::Policy,
    /// The items' descriptions (a site's catalog); empty for a bundle's catalog.
    descriptions: Vec<String>,
}

#[wasm_bindgen]
impl Recommender {
    async fn open(
        bundle: &[u8],
        opts: RecommenderOptions,
    ) -> Result<(Self, crate::policy::Policy), JsError> {
        let (bundle, policy) = read_bundle(bundle)?;
        let engine = ManagedEngine::for_policy(&policy, opts.engine)
            .await
            .map_err(js_err)?;
        let session = policy.session(opts.seed);
        Ok((
            Recommender {
                engine,
                catalog: bundle.catalog,
                session,
                policy: policy.clone(),
                descriptions: Vec::new(),
            },
            policy,
        ))
    }

    /// A recommender for a new person from a bundle's bytes.
    /// `options`: `{ engine: "auto" | "gpu" | "cpu", seed: number }`.
    pub async fn create(
        bundle: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "RecommenderOptions")] options_value: Option<
            JsValue,
        >,
    ) -> Result<Recommender, JsError> {
        Ok(Self::open(&bundle, options(options_value)?).await?.0)
    }

    /// A recommender that continues a person's saved state (from [`Recommender::save_state`]).
    pub async fn restore(
        bundle: Vec<u8>,
        state: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "RecommenderOptions")] options_value: Option<
            JsValue,
        >,
    ) -> Result<Recommender, JsError> {
        let (mut rec, policy) = Self::open(&bundle, options(options_value)?).await?;
        let session = crate::session::Session::from_bytes(&state)
            .map_err(|e| coded(Code::StateMismatch, e))?;
        if !session.fits(&policy.model) {
            return Err(coded(
                Code::StateMismatch,
                "the saved state belongs to another model: it cannot be restored with this bundle",
            ));
        }
        rec.session = session;
        Ok(rec)
    }

    /// `k` items not shown yet: `[{ item, title, genres, year, score, propensity }]`; `greedy`
    /// ranks by score, otherwise (the default) the slate is drawn from the policy (exploration).
    #[wasm_bindgen(unchecked_return_type = "Recommendation[]")]
    pub async fn recommend(&mut self, k: usize, greedy: Option<bool>) -> Result<JsValue, JsError> {
        let greedy = greedy.unwrap_or(false);
        let session = &mut self.session;
        let recs = self
            .engine
            .run(&self.policy, async |e| {
                session.recommend(e, k, greedy).await
            })
            .await
            .map_err(js_err)?;
        let out: Vec<JsRecommendation> = recs
            .iter()
            .filter_map(|r| {
                let it = super::catalog::item(&self.catalog, &self.descriptions, r.item)?;
                Some(JsRecommendation {
                    item: it.id,
                    title: it.title,
                    genres: it.categories,
                    year: it.year,
                    description: it.description,
                    score: r.score,
                    propensity: r.propensity,
                })
            })
            .collect();
        to_js(&out)
    }

    /// Learns from one reaction to `item` (the dataset's item id): `reward` 1 = liked,
    /// 0 = skipped (anything in [0, 1]).
    pub async fn feedback(&mut self, item: String, reward: f32) -> Result<(), JsError> {
        let index = self
            .catalog
            .ids
            .index(&item)
            .ok_or_else(|| coded(Code::InvalidArgument, format!("unknown item id '{item}'")))?;
        if !reward.is_finite() || !(0.0..=1.0).contains(&reward) {
            return Err(coded(
                Code::InvalidArgument,
                format!("reward must be a number from 0 (skipped) to 1 (liked), got {reward}"),
            ));
        }
        if self.session.was_shown(index) {
            return Err(coded(
                Code::InvalidArgument,
                format!("item '{item}' already had a reaction in this session"),
            ));
        }
        let session = &mut self.session;
        self.engine
            .run(&self.policy, async |e| {
                session.feedback(e, index, reward).await
            })
            .await
            .map_err(js_err)
    }

    /// Destroys the GPU device, as a driver reset would (for tests and the page's drill); the
    /// next call rebuilds the engine without losing anything. No-op on the CPU engine.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        self.engine.simulate_device_loss();
    }

    /// The person's state as bytes (context, history, optimiser state), for IndexedDB or a file.
    #[wasm_bindgen(js_name = saveState)]
    pub fn save_state(&self) -> Result<Vec<u8>, JsError> {
        self.session.to_bytes().map_err(js_err)
    }

    /// Reactions so far: `[[item, reward]]` with the dataset's item ids.
    #[wasm_bindgen(unchecked_return_type = "[string, number][]")]
    pub fn history(&self) -> Result<JsValue, JsError> {
        let h: Vec<(&str, f32)> = self
            .session
            .history
            .iter()
            .map(|i| (self.catalog.ids.id(i.item).unwrap_or(""), i.reward))
            .collect();
        to_js(&h)
    }

    /// The engine in use: `{ engine, adapter, backend, device_type, fallback, fallback_reason }`.
    #[wasm_bindgen(js_name = engineInfo, unchecked_return_type = "EngineInfo")]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.info())
    }
}

#[wasm_bindgen]
impl Recommender {
    /// Meta-trains a new policy on the synthetic world of `options` (on this recommender's
    /// engine choice unless `options.engine` says otherwise), calling `onProgress` after every
    /// meta-iteration; when it returns a promise, training waits for it (a page pauses that
    /// way), and when it returns or resolves to `false`, training stops there. The recommender
    /// then recommends from the world's catalog with the new policy, for a new person (a
    /// state saved before belongs to the old policy). Resolves to the new bundle's bytes.
    #[wasm_bindgen(js_name = metaTrain)]
    pub async fn meta_train(
        &mut self,
        #[wasm_bindgen(unchecked_optional_param_type = "MetaTrainOptions")] options_value: Option<
            JsValue,
        >,
        #[wasm_bindgen(unchecked_optional_param_type = "(progress: MetaProgress) => unknown")]
        on_progress: Option<js_sys::Function>,
    ) -> Result<Vec<u8>, JsError> {
        let o: MetaTrainOptions = options(options_value)?;
        let mut trainer =
            MetaTraining::new(&o, o.engine.unwrap_or(self.engine.preference()), None, None).await?;
        let bundle = trainer.run(on_progress.as_ref()).await?;
        let bytes = bundle.to_bytes().map_err(js_err)?;
        let policy = crate::policy::Policy::from_bundle(&bundle).map_err(js_err)?;
        self.engine.load(&policy).await.map_err(js_err)?;
        self.session = policy.session(self.session.seed);
        self.catalog = bundle.catalog;
        self.descriptions = Vec::new();
        self.policy = policy;
        Ok(bytes)
    }

    /// A recommender for a new person over a site's own items: meta-trains a policy on a
    /// synthetic world over `catalog` (the items' content features and own embedding; the
    /// world's users like its categories) with `options` (as [`Recommender::meta_train`],
    /// `items` ignored; `seed` also seeds the person's exploration), calling `onProgress`
    /// after every meta-iteration. Recommendations carry the items' own fields.
    #[wasm_bindgen(js_name = fromCatalog)]
    pub async fn from_catalog(
        catalog: &super::Catalog,
        #[wasm_bindgen(unchecked_optional_param_type = "MetaTrainOptions")] options_value: Option<
            JsValue,
        >,
        #[wasm_bindgen(unchecked_optional_param_type = "(progress: MetaProgress) => unknown")]
        on_progress: Option<js_sys::Function>,
    ) -> Result<Recommender, JsError> {
        let o: MetaTrainOptions = options(options_value)?;
        let preference = o.engine.unwrap_or_default();
        let mut trainer = MetaTraining::new(&o, preference, None, Some(&catalog.items)).await?;
        let bundle = trainer.run(on_progress.as_ref()).await?;
        let policy = crate::policy::Policy::from_bundle(&bundle).map_err(js_err)?;
        let engine = ManagedEngine::for_policy(&policy, preference)
            .await
            .map_err(js_err)?;
        Ok(Recommender {
            engine,
            session: policy.session(o.seed as u32),
            catalog: bundle.catalog,
            policy,
            descriptions: catalog.items.descriptions.clone(),
        })
    }
}
