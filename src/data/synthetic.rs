//! The synthetic world, the embedded default that needs no files: a seeded catalog (~2,000
//! items with readable made-up titles, genres and years) and population (~1,000 users),
//! RecSim-style: a user model (latent genre and style preferences), an item model (genres,
//! style, quality) and a choice model (multinomial logit over the slate plus a no-click option).
//!
//! The same seed gives the same world, bit for bit. [`World::dataset`] logs ratings like a real
//! dataset, and [`World::task`] is a [`UserTask`] like the real environments.
use super::dataset::{Catalog, Dataset, Format, IdMap, ItemMeta, Rating, RatingScale, Source};
use super::env::{delegate_core, LogEntry, Shown, TaskCore, UserTask};
use super::error::DataError;
use super::sampling::{categorical, normal, softmax};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The synthetic genres, with how common each is among items.
pub const GENRES: [(&str, f32); 12] = [
    ("Drama", 3.0),
    ("Comedy", 3.0),
    ("Action", 2.0),
    ("Romance", 2.0),
    ("Thriller", 2.0),
    ("Sci-Fi", 1.5),
    ("Horror", 1.0),
    ("Animation", 1.0),
    ("Documentary", 0.7),
    ("Fantasy", 1.0),
    ("Crime", 1.5),
    ("Musical", 0.6),
];

const ADJECTIVES: [&str; 24] = [
    "Silent",
    "Crimson",
    "Hidden",
    "Last",
    "Golden",
    "Broken",
    "Midnight",
    "Electric",
    "Distant",
    "Wandering",
    "Frozen",
    "Velvet",
    "Iron",
    "Paper",
    "Hollow",
    "Lucky",
    "Restless",
    "Secret",
    "Burning",
    "Quiet",
    "Neon",
    "Copper",
    "Savage",
    "Gentle",
];
const NOUNS: [&str; 24] = [
    "Harbor", "Garden", "Signal", "Orchard", "Kingdom", "Lantern", "River", "Engine", "Echo",
    "Mirror", "Compass", "Voyage", "Circus", "Frontier", "Letter", "Machine", "Island", "Carnival",
    "Shadow", "Bridge", "Summer", "Winter", "Horizon", "Promise",
];
const PLACES: [&str; 12] = [
    "Avalon",
    "Bellwood",
    "Cinder Bay",
    "Dunmore",
    "Eastgate",
    "Fairhaven",
    "Glass Valley",
    "Harrow",
    "Juniper Falls",
    "Kestrel Point",
    "Larkspur",
    "Marlow",
];
const SEQUELS: [&str; 3] = ["II", "III", "IV"];

/// Sizes and seed of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldConfig {
    /// Catalog size.
    pub n_items: usize,
    /// Population size.
    pub n_users: usize,
    /// Dimensions of the latent style shared by users and items.
    pub style_dim: usize,
    /// The seed; everything follows from it.
    pub seed: u64,
}

impl WorldConfig {
    /// The logged ratings of a small world (a 2-dimensional style), for unit tests: its
    /// `n_items` items and `n_users` users generated and rated from `seed`.
    pub fn small_dataset(n_items: usize, n_users: usize, seed: u64) -> Result<Dataset, DataError> {
        let cfg = WorldConfig {
            n_items,
            n_users,
            style_dim: 2,
            seed,
        };
        World::generate(cfg)?.dataset(seed)
    }
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            n_items: 2000,
            n_users: 1000,
            style_dim: 4,
            seed: 0,
        }
    }
}

/// The hidden state of one simulated user.
#[derive(Debug, Clone, PartialEq)]
struct SimUser {
    genre_pref: Vec<f32>,
    style: Vec<f32>,
    no_click: f32,
}

/// The hidden state of one item (its catalog entry is public in [`World::catalog`]).
#[derive(Debug, Clone, PartialEq)]
struct SimItem {
    style: Vec<f32>,
    quality: f32,
}

/// A generated world: catalog, hidden item and user models, choice model.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// How it was made.
    pub config: WorldConfig,
    /// Items: ids `1..=n_items`, titles like `The Silent Harbor (1987)`, genres, years.
    pub catalog: Catalog,
    items: Vec<SimItem>,
    users: Vec<SimUser>,
}

fn style<R: Rng>(rng: &mut R, dim: usize) -> Vec<f32> {
    let s = 1.0 / (dim as f32).sqrt();
    (0..dim).map(|_| s * normal(rng) as f32).collect()
}

fn title<R: Rng>(rng: &mut R) -> String {
    let adj = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    let place = PLACES[rng.random_range(0..PLACES.len())];
    match rng.random_range(0..6) {
        0 => format!("The {adj} {noun}"),
        1 => format!("{adj} {noun}"),
        2 => format!("The {noun} of {place}"),
        3 => format!("{noun}s of {place}"),
        4 => format!(
            "{adj} {noun} {}",
            SEQUELS[rng.random_range(0..SEQUELS.len())]
        ),
        _ => format!("A {adj} {noun} in {place}"),
    }
}

/// `config.n_users` users with preferences over `n_genres` genres (one or two favourites) and
/// a latent style.
fn population<R: Rng>(rng: &mut R, config: &WorldConfig, n_genres: usize) -> Vec<SimUser> {
    (0..config.n_users)
        .map(|_| {
            let n_fav = rng.random_range(1..=2);
            let mut genre_pref: Vec<f32> = (0..n_genres)
                .map(|_| -0.5 + 0.5 * normal(rng) as f32)
                .collect();
            for _ in 0..n_fav {
                if n_genres > 0 {
                    let g = rng.random_range(0..n_genres);
                    genre_pref[g] = 2.0 + 0.5 * normal(rng) as f32;
                }
            }
            SimUser {
                genre_pref,
                style: style(rng, config.style_dim),
                no_click: 1.0 + 0.3 * normal(rng) as f32,
            }
        })
        .collect()
}

impl World {
    /// A world over a given catalog (a site's own items): `config.n_items` is ignored, the
    /// users like the catalog's genres (categories) as in [`World::generate`], and an item's
    /// hidden style is a seeded random projection of its own `embedding` (row-major, the same
    /// width for every item; scaled like a generated style) when it has one, else drawn at
    /// random. Same catalog, embedding and config: the same world.
    pub fn over_catalog(
        catalog: Catalog,
        embedding: Option<(usize, &[f32])>,
        config: WorldConfig,
    ) -> Result<Self, DataError> {
        if catalog.is_empty() || config.n_users == 0 || config.style_dim == 0 {
            return Err(DataError::Argument(
                "a world needs at least one item, one user and one style dimension".into(),
            ));
        }
        let n = catalog.len();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let projected = match embedding {
            Some((width, values)) if width > 0 && values.len() == n * width => {
                Some(project(&mut rng, width, values, config.style_dim))
            }
            Some(_) => {
                return Err(DataError::Argument(format!(
                    "the embedding must have {n} rows of the same width"
                )))
            }
            None => None,
        };
        let items = (0..n)
            .map(|i| SimItem {
                style: match &projected {
                    Some(p) => p[i * config.style_dim..(i + 1) * config.style_dim].to_vec(),
                    None => style(&mut rng, config.style_dim),
                },
                quality: 0.5 * normal(&mut rng) as f32,
            })
            .collect();
        let users = population(&mut rng, &config, catalog.genres.len());
        Ok(World {
            config: WorldConfig {
                n_items: n,
                ..config
            },
            catalog,
            items,
            users,
        })
    }

    /// Generates the world for `config`.
    pub fn generate(config: WorldConfig) -> Result<Self, DataError> {
        if config.n_items == 0 || config.n_users == 0 || config.style_dim == 0 {
            return Err(DataError::Argument(
                "a world needs at least one item, one user and one style dimension".into(),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let weights: Vec<f64> = {
            let total: f32 = GENRES.iter().map(|g| g.1).sum();
            GENRES.iter().map(|g| f64::from(g.1 / total)).collect()
        };
        let mut catalog = Catalog {
            genres: GENRES.iter().map(|g| g.0.to_owned()).collect(),
            ..Catalog::default()
        };
        let mut items = Vec::with_capacity(config.n_items);
        for i in 0..config.n_items {
            let n_genres = match rng.random::<f32>() {
                x if x < 0.5 => 1,
                x if x < 0.85 => 2,
                _ => 3,
            };
            let mut genres: Vec<u16> = Vec::new();
            while genres.len() < n_genres {
                let g = categorical(&mut rng, &weights) as u16;
                if !genres.contains(&g) {
                    genres.push(g);
                }
            }
            genres.sort_unstable();
            let year = 1950 + (75.0 * rng.random::<f32>().sqrt()) as i32;
            let meta = ItemMeta {
                title: format!("{} ({year})", title(&mut rng)),
                year: Some(year),
                genres,
                has_metadata: true,
            };
            catalog.add(&(i + 1).to_string(), meta)?;
            items.push(SimItem {
                style: style(&mut rng, config.style_dim),
                quality: 0.5 * normal(&mut rng) as f32,
            });
        }
        let users = population(&mut rng, &config, GENRES.len());
        Ok(World {
            config,
            catalog,
            items,
            users,
        })
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// The hidden genre preferences of `user` (one per genre of the catalog); empty when out
    /// of range.
    pub fn genre_preferences(&self, user: u32) -> &[f32] {
        self.users
            .get(user as usize)
            .map_or(&[], |u| u.genre_pref.as_slice())
    }

    /// The user's utility for an item: mean preference over the item's genres, plus style
    /// match, plus item quality. 0 for out-of-range indices.
    pub fn utility(&self, user: u32, item: u32) -> f32 {
        let (Some(u), Some(it), Some(meta)) = (
            self.users.get(user as usize),
            self.items.get(item as usize),
            self.catalog.items.get(item as usize),
        ) else {
            return 0.0;
        };
        let genre = if meta.genres.is_empty() {
            0.0
        } else {
            meta.genres
                .iter()
                .map(|&g| u.genre_pref[g as usize])
                .sum::<f32>()
                / meta.genres.len() as f32
        };
        let style: f32 = u.style.iter().zip(&it.style).map(|(a, b)| a * b).sum();
        genre + style + it.quality
    }

    /// Choice probabilities for a slate: element 0 is "no click", then one per slate item
    /// (multinomial logit over the utilities and the user's no-click utility).
    pub fn click_probabilities(&self, user: u32, slate: &[u32]) -> Vec<f64> {
        let no_click = self.users.get(user as usize).map_or(0.0, |u| u.no_click);
        let scores: Vec<f32> = std::iter::once(no_click)
            .chain(slate.iter().map(|&i| self.utility(user, i)))
            .collect();
        softmax(&scores, 1.0)
    }

    /// An episode for `user` over the whole catalog; `seed` drives the user's choices.
    pub fn task(&self, user: u32, horizon: usize, seed: u64) -> SyntheticTask<'_> {
        let n = u32::try_from(self.catalog.len()).unwrap_or(u32::MAX);
        SyntheticTask {
            core: TaskCore::new(user, (0..n).collect(), horizon),
            world: self,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Logged ratings, like a real dataset: each user rates 20 to ~200 items they chose (the
    /// better of two random items by noisy utility), 1 to 5 stars from utility plus noise,
    /// one hour apart. Same world and seed, same dataset.
    pub fn dataset(&self, seed: u64) -> Result<Dataset, DataError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n_items = self.catalog.len();
        let mut users = IdMap::new();
        let mut ratings = Vec::new();
        for u in 0..self.users.len() {
            let user = users.insert(&(u + 1).to_string())?;
            let n = (20.0 - 40.0 * (1.0 - rng.random::<f64>()).ln()).min(200.0) as usize;
            let n = n.min(n_items);
            let mut rated = std::collections::HashSet::new();
            let start = 1_600_000_000 + rng.random_range(0..30_000_000i64);
            let mut tries = 0;
            while rated.len() < n && tries < 20 * n {
                tries += 1;
                let a = rng.random_range(0..n_items) as u32;
                let b = rng.random_range(0..n_items) as u32;
                let ua = self.utility(user, a) + 0.5 * normal(&mut rng) as f32;
                let ub = self.utility(user, b) + 0.5 * normal(&mut rng) as f32;
                let (item, util) = if ua >= ub { (a, ua) } else { (b, ub) };
                if !rated.insert(item) {
                    continue;
                }
                let stars = (3.2 + 0.9 * util).round().clamp(1.0, 5.0);
                ratings.push(Rating {
                    user,
                    item,
                    value: stars,
                    timestamp: Some(start + 3600 * rated.len() as i64),
                });
            }
        }
        Dataset::from_parts(
            Source {
                name: format!("synthetic-{}", self.config.seed),
                format: Format::Synthetic,
                scale: RatingScale { min: 1.0, max: 5.0 },
                label: "synthetic world".into(),
            },
            users,
            self.catalog.clone(),
            ratings,
        )
    }
}

/// `values` (`width` columns) times a seeded Gaussian `width × dim` matrix, each output column
/// standardised and scaled by 1/√dim (as a generated style).
fn project<R: Rng>(rng: &mut R, width: usize, values: &[f32], dim: usize) -> Vec<f32> {
    let m: Vec<f64> = (0..width * dim).map(|_| normal(rng)).collect();
    let n = values.len() / width;
    let mut out = vec![0f64; n * dim];
    for (row, o) in values.chunks_exact(width).zip(out.chunks_exact_mut(dim)) {
        for (k, &v) in row.iter().enumerate() {
            for (c, oc) in o.iter_mut().enumerate() {
                *oc += f64::from(v) * m[k * dim + c];
            }
        }
    }
    let scale = 1.0 / (dim as f64).sqrt();
    for c in 0..dim {
        let mean = (0..n).map(|i| out[i * dim + c]).sum::<f64>() / n as f64;
        let var = (0..n)
            .map(|i| (out[i * dim + c] - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let sd = var.sqrt();
        for i in 0..n {
            let v = &mut out[i * dim + c];
            *v = if sd > 1e-12 {
                scale * (*v - mean) / sd
            } else {
                0.0
            };
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// A synthetic user's episode: at each step the user clicks at most one slate item (or none),
/// by the world's choice model; the clicked item earns reward 1, the others 0.
#[derive(Debug, Clone)]
pub struct SyntheticTask<'w> {
    core: TaskCore,
    world: &'w World,
    rng: ChaCha8Rng,
}

impl UserTask for SyntheticTask<'_> {
    delegate_core!();

    fn step(&mut self, slate: &[Shown]) -> Result<Vec<f32>, DataError> {
        self.core.check(slate)?;
        let items: Vec<u32> = slate.iter().map(|s| s.item).collect();
        let probs = self.world.click_probabilities(self.core.user, &items);
        let choice = categorical(&mut self.rng, &probs);
        let rewards: Vec<f32> = (1..=slate.len())
            .map(|j| f32::from(u8::from(j == choice)))
            .collect();
        self.core.record(slate, &rewards);
        Ok(rewards)
    }
}
