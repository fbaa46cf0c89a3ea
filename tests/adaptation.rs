//! What the page promises, natively: a person who likes only one genre sees it fill the slate
//! within 8 reactions. Same setup as the page's first visit with its default settings (synthetic
//! world of 2,000 items and 1,000 users, seed 0, 60 meta-iterations of first-order MAML with 8
//! users × 20 rounds each, Adam step 0.01 per reaction on each person's own copy of the network);
//! the person reacts once per slate: likes the first item of the genre, or skips the top item
//! when none is shown.
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::WorldConfig;
use metarec::engine::cpu::CpuEngine;
use metarec::engine::Engine;
use metarec::meta::{meta_step, Algorithm, MetaConfig, PolicyShape, SyntheticSetup};
use metarec::policy::Policy;
use metarec::session::{AdaptConfig, Session};
use pollster::block_on;

const SLATE: usize = 10;

/// Share of `genre` in the slate before and after 8 reactions of a person who likes only it,
/// the genre being the most frequent one in their first slate.
fn shares(policy: &Policy, setup: &SyntheticSetup, seed: u32, enabled: bool) -> (f64, f64) {
    let catalog = &setup.world.catalog;
    let mut engine = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut engine).unwrap();
    let mut session: Session = policy.session(seed);
    session.config.enabled = enabled;
    let has = |item: u32, g: u16| catalog.items[item as usize].genres.contains(&g);
    let first = block_on(session.recommend(&mut engine, SLATE, false)).unwrap();
    let count = |slate: &[metarec::session::Recommendation], g: u16| {
        slate.iter().filter(|r| has(r.item, g)).count()
    };
    let genre = (0..catalog.genres.len() as u16)
        .max_by_key(|&g| (count(&first, g), std::cmp::Reverse(g)))
        .unwrap();
    let mut slate = first.clone();
    for _ in 0..8 {
        match slate.iter().find(|r| has(r.item, genre)) {
            Some(r) => block_on(session.feedback(&mut engine, r.item, 1.0)).unwrap(),
            None => block_on(session.feedback(&mut engine, slate[0].item, 0.0)).unwrap(),
        }
        slate = block_on(session.recommend(&mut engine, SLATE, false)).unwrap();
    }
    let share = |s: &[metarec::session::Recommendation]| count(s, genre) as f64 / SLATE as f64;
    (share(&first), share(&slate))
}

#[test]
fn a_person_who_likes_one_genre_sees_it_fill_the_slate_within_8_reactions() {
    let adapt = AdaptConfig {
        adapts: Algorithm::Fomaml.adapts(),
        param_lr: 1e-2,
        ..AdaptConfig::default()
    };
    let cfg = MetaConfig {
        algorithm: Algorithm::Fomaml,
        iterations: 60,
        users_per_iteration: 8,
        rounds: 20,
        seed: 0,
        adapt,
        ..MetaConfig::default()
    };
    let world = WorldConfig {
        n_items: 2000,
        n_users: 1000,
        style_dim: 4,
        seed: 0,
    };
    let setup = SyntheticSetup::new(world, &PolicyShape::default(), &cfg).unwrap();
    let mut engine = CpuEngine::new(&setup.model).unwrap();
    engine.set_items(&setup.items).unwrap();
    for it in 0..cfg.iterations {
        block_on(meta_step(&mut engine, setup.tasks(&cfg, it), &cfg, it)).unwrap();
    }
    let policy = block_on(Policy::from_engine(&mut engine, setup.items.clone(), adapt)).unwrap();
    let people = 0..8u32;
    let mean = |enabled: bool| {
        let s: Vec<(f64, f64)> = people
            .clone()
            .map(|p| shares(&policy, &setup, p, enabled))
            .collect();
        let n = s.len() as f64;
        (
            s.iter().map(|x| x.0).sum::<f64>() / n,
            s.iter().map(|x| x.1).sum::<f64>() / n,
        )
    };
    let (start, adapted) = mean(true);
    let (_, fixed) = mean(false);
    println!("genre share of the slate: {start:.2} at the start, {adapted:.2} after 8 reactions adapting, {fixed:.2} without adaptation");
    assert!(adapted >= start + 0.3, "{start:.2} -> {adapted:.2}");
    assert!(
        adapted >= fixed + 0.3,
        "adapting {adapted:.2} vs fixed {fixed:.2}"
    );
}
