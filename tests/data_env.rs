//! Environments and the synthetic world: determinism, a genre-loving user's clicks, logged
//! propensities, observed, full-catalog and simulated tasks.
use metarec::data::{
    self, sample_slate, Environment, FitConfig, LatentFactorModel, ObservedTask, RewardMode, Shown,
    SimulatedTask, UserTask, World, WorldConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

mod common;
use common::ml100k;

fn small_world(seed: u64) -> World {
    World::generate(WorldConfig {
        n_items: 300,
        n_users: 60,
        seed,
        ..WorldConfig::default()
    })
    .unwrap()
}

#[test]
fn same_seed_same_world_and_dataset() {
    let a = World::generate(WorldConfig::default()).unwrap();
    let b = World::generate(WorldConfig::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.catalog.len(), a.n_users()), (2000, 1000));
    assert!(a
        .catalog
        .items
        .iter()
        .all(|m| m.title.ends_with(')') && m.year.is_some()));
    assert_ne!(
        a,
        World::generate(WorldConfig {
            seed: 1,
            ..WorldConfig::default()
        })
        .unwrap()
    );
    let (da, db) = (a.dataset(5).unwrap(), b.dataset(5).unwrap());
    assert_eq!(da.ratings, db.ratings);
    assert_eq!(da.format, data::Format::Synthetic);
    assert_eq!(da.n_users(), 1000);
    // Same episode for the same task seed.
    let run = |w: &World| {
        let mut t = w.task(3, 5, 42);
        let mut rewards = Vec::new();
        for step in 0..5u32 {
            let slate: Vec<Shown> = (0..4)
                .map(|j| Shown {
                    item: step * 4 + j,
                    propensity: 0.5,
                })
                .collect();
            rewards.extend(t.step(&slate).unwrap());
        }
        rewards
    };
    assert_eq!(run(&a), run(&b));
}

#[test]
fn genre_loving_user_clicks_that_genre_far_more() {
    let world = World::generate(WorldConfig::default()).unwrap();
    // Among users who love exactly one genre (preference > 1), the one who loves it most.
    let (user, genre) = (0..world.n_users() as u32)
        .filter(|&u| {
            world
                .genre_preferences(u)
                .iter()
                .filter(|&&p| p > 1.0)
                .count()
                == 1
        })
        .flat_map(|u| {
            let p = world.genre_preferences(u);
            (0..p.len()).map(move |g| (u, g, p[g]))
        })
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(u, g, _)| (u, g as u16))
        .unwrap();
    let in_genre = |item: u32| world.catalog.items[item as usize].genres.contains(&genre);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut shown, mut clicks) = ([0u32; 2], [0u32; 2]);
    for episode in 0..200 {
        let mut task = world.task(user, 10, episode);
        while !task.done() {
            let c = task.candidates().to_vec();
            let slate = sample_slate(&c, &vec![0.0; c.len()], 5, 1.0, &mut rng).unwrap();
            let rewards = task.step(&slate).unwrap();
            for (s, r) in slate.iter().zip(rewards) {
                let k = usize::from(in_genre(s.item));
                shown[k] += 1;
                clicks[k] += r as u32;
            }
        }
    }
    let ctr = |k: usize| f64::from(clicks[k]) / f64::from(shown[k].max(1));
    eprintln!(
        "user {user} genre {}: CTR in genre {:.3} ({} shown), other {:.3} ({} shown)",
        world.catalog.genres[genre as usize],
        ctr(1),
        shown[1],
        ctr(0),
        shown[0]
    );
    assert!(shown[1] > 200 && shown[0] > 200);
    assert!(
        ctr(1) > 3.0 * ctr(0),
        "in-genre CTR {} vs other {}",
        ctr(1),
        ctr(0)
    );
}

#[test]
fn logged_propensities_match_the_policy_and_sum_as_expected() {
    let world = small_world(4);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Uniform policy: at position j of a slate the propensity is exactly 1 / (n - j).
    let mut task = world.task(0, 3, 0);
    let n = task.candidates().len();
    let c = task.candidates().to_vec();
    let slate = sample_slate(&c, &vec![1.0; n], 4, 1.0, &mut rng).unwrap();
    task.step(&slate).unwrap();
    for (j, e) in task.log().iter().enumerate() {
        assert!((e.propensity - 1.0 / (n - j) as f32).abs() < 1e-6);
        assert_eq!((e.step, e.position, e.item), (0, j, slate[j].item));
    }
    assert_eq!(
        task.candidates().len(),
        n - 4,
        "shown items leave the candidates"
    );

    // Softmax policy: importance weights 1/p of the first-position pick average to the number
    // of candidates (sum over candidates of p * 1/p), and the log holds every shown item.
    let (mut weight_sum, mut first_picks, mut expected, mut shown) = (0.0f64, 0u32, 0.0f64, 0);
    for episode in 0..400 {
        let mut task = world.task((episode % 60) as u32, 4, episode);
        while !task.done() {
            let c = task.candidates().to_vec();
            let scores: Vec<f32> = c.iter().map(|_| rng.random::<f32>() * 2.0).collect();
            let slate = sample_slate(&c, &scores, 3, 1.0, &mut rng).unwrap();
            weight_sum += 1.0 / f64::from(slate[0].propensity);
            expected += c.len() as f64;
            first_picks += 1;
            task.step(&slate).unwrap();
            shown += 3;
        }
        assert_eq!(task.log().len(), 12);
        for (e, s) in task.log().iter().skip(9).zip(&task.log()[9..]) {
            assert_eq!(e, s);
        }
    }
    assert_eq!(shown, 400 * 12);
    let ratio = weight_sum / expected;
    assert!(
        (ratio - 1.0).abs() < 0.05,
        "IPS ratio {ratio} ({first_picks} slates)"
    );
}

/// The full-catalog task offers every item; an item the user rated earns its rating's reward,
/// an unrated one is a miss.
#[test]
fn catalog_task_offers_every_item_and_unrated_items_are_misses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/ml100k");
    let ds = data::load(&dir).unwrap();
    let u2 = ds.users.index("2").unwrap();
    let item = |id: &str| ds.catalog.ids.index(id).unwrap();
    let mut task = ObservedTask::over_catalog(&ds, u2, RewardMode::default(), 2);
    let all: Vec<u32> = (0..ds.n_items() as u32).collect();
    assert_eq!(task.candidates(), all.as_slice());
    let shown = |i: u32| Shown {
        item: i,
        propensity: 0.5,
    };
    // User 2 rated items 1 (4 stars) and 3 (1 star) and never rated item 2.
    assert_eq!(
        task.step(&[shown(item("1")), shown(item("2")), shown(item("3"))])
            .unwrap(),
        [1.0, 0.0, 0.0]
    );
    assert_eq!(task.candidates().len(), ds.n_items() - 3);
    assert!(task.step(&[shown(item("2"))]).is_err(), "already shown");
    // the environment enum builds the same task
    let mut same = Environment::Catalog.task(&ds, u2, RewardMode::default(), 2);
    assert_eq!(same.candidates(), all.as_slice());
    assert_eq!(same.step(&[shown(item("1"))]).unwrap(), [1.0]);
    let observed = Environment::Observed.task(&ds, u2, RewardMode::default(), 2);
    assert_eq!(observed.candidates().len(), 3, "only the rated items");
}

#[test]
fn observed_task_rewards_candidates_and_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/ml100k");
    let ds = data::load(&dir).unwrap();
    let u2 = ds.users.index("2").unwrap();
    let item = |id: &str| ds.catalog.ids.index(id).unwrap();
    let mut task = ObservedTask::for_user(&ds, u2, RewardMode::default(), 2);
    // User 2 rated items 1 (4 stars), 3 (1 star), 4 (2 stars).
    let mut want = vec![item("1"), item("3"), item("4")];
    want.sort_unstable();
    assert_eq!(task.candidates(), want.as_slice());
    let shown = |i: u32| Shown {
        item: i,
        propensity: 1.0 / 3.0,
    };
    assert_eq!(
        task.step(&[shown(item("1")), shown(item("3"))]).unwrap(),
        [1.0, 0.0]
    );
    assert_eq!(task.candidates(), [item("4")]);
    // Errors leave the task unchanged.
    assert!(task.step(&[shown(item("1"))]).is_err(), "already shown");
    assert!(
        task.step(&[shown(item("2"))]).is_err(),
        "not rated by this user"
    );
    assert!(task
        .step(&[Shown {
            item: item("4"),
            propensity: 0.0
        }])
        .is_err());
    assert!(task.step(&[]).is_err());
    assert_eq!(task.steps(), 1);
    let mut graded = ObservedTask::for_user(&ds, u2, RewardMode::Graded, 5);
    assert_eq!(graded.step(&[shown(item("4"))]).unwrap(), [0.25]);
    assert_eq!(task.step(&[shown(item("4"))]).unwrap(), [0.0]);
    assert!(task.done());
    assert!(task.step(&[shown(item("4"))]).is_err(), "episode over");
    let logged: f32 = task.log().iter().map(|e| e.propensity).sum();
    assert!((logged - 1.0).abs() < 1e-6, "three items at 1/3 each");
}

#[test]
fn simulated_task_over_full_catalog() {
    let ds = data::load(&ml100k()).unwrap();
    let model = LatentFactorModel::fit(&ds, FitConfig::default()).unwrap();
    let r = model.report;
    eprintln!("{}: {r:?}", ds.name);
    assert!(r.train_rmse < r.test_rmse && r.test_rmse < 1.2, "{r:?}");
    let mut task = SimulatedTask::new(&model, 0, RewardMode::default(), 3, 7);
    assert_eq!(task.candidates().len(), ds.n_items());
    let slate: Vec<Shown> = (0..10)
        .map(|i| Shown {
            item: i,
            propensity: 0.1,
        })
        .collect();
    let rewards = task.step(&slate).unwrap();
    assert!(rewards.iter().all(|&x| x == 0.0 || x == 1.0));
    assert_eq!(task.candidates().len(), ds.n_items() - 10);
    assert_eq!(task.log().len(), 10);
}
