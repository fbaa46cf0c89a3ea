//! A meta-trained policy survives the bundle, and a person's session survives its bytes: a
//! restored session on a policy restored from a bundle recommends exactly what the original
//! would have, on the CPU and the GPU engine, for a policy that adapts a context (CAVIA) and
//! for one whose sessions adapt their own copy of the network (first-order MAML).
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::{Bundle, WorldConfig};
use metarec::engine::cpu::CpuEngine;
use metarec::engine::gpu::GpuEngine;
use metarec::engine::Engine;
use metarec::eval::linear::Ridge;
use metarec::meta::{meta_step, Algorithm, MetaConfig, PolicyShape, SyntheticSetup};
use metarec::policy::Policy;
use metarec::session::{AdaptConfig, Session, Summary};
use pollster::block_on;

mod common;

fn trained() -> (Bundle, Policy) {
    trained_with(Algorithm::Cavia, Summary::Mean)
}

fn trained_with(algorithm: Algorithm, summary: Summary) -> (Bundle, Policy) {
    let cfg = MetaConfig {
        algorithm,
        users_per_iteration: 4,
        rounds: 8,
        adapt: AdaptConfig {
            adapts: algorithm.adapts(),
            summary,
            summary_prior: if summary == Summary::Ridge { 10.0 } else { 1.0 },
            ..AdaptConfig::default()
        },
        ..MetaConfig::default()
    };
    let world = WorldConfig {
        n_items: 120,
        n_users: 40,
        style_dim: 3,
        seed: 8,
    };
    let setup = SyntheticSetup::new(world, &PolicyShape::default(), &cfg).unwrap();
    let mut engine = CpuEngine::new(&setup.model).unwrap();
    engine.set_items(&setup.items).unwrap();
    for it in 0..5 {
        block_on(meta_step(&mut engine, setup.tasks(&cfg, it), &cfg, it)).unwrap();
    }
    let policy = block_on(Policy::from_engine(
        &mut engine,
        setup.items.clone(),
        cfg.adapt,
    ))
    .unwrap()
    .with_parts(setup.parts);
    let bundle = Bundle::from_catalog(&setup.world.catalog, &setup.ratings.ratings);
    (bundle, policy)
}

#[test]
fn a_restored_session_on_a_restored_policy_recommends_the_same() {
    for algorithm in [Algorithm::Cavia, Algorithm::Fomaml] {
        restores(algorithm, Summary::Mean);
    }
    restores(Algorithm::Cavia, Summary::Ridge);
}

fn restores(algorithm: Algorithm, summary: Summary) {
    let (mut bundle, policy) = trained_with(algorithm, summary);
    policy.store(&mut bundle).unwrap();
    let bytes = bundle.to_bytes().unwrap();
    let restored = Policy::from_bundle(&Bundle::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(restored, policy);

    let mut original = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut original).unwrap();
    let mut session = policy.session(42);
    for reward in [1.0, 0.0, 1.0] {
        let rec = block_on(session.recommend(&mut original, 3, false)).unwrap();
        block_on(session.feedback(&mut original, rec[0].item, reward)).unwrap();
    }
    assert_eq!(
        session.network.is_some(),
        algorithm == Algorithm::Fomaml,
        "sessions own a network exactly when the policy adapts the whole network"
    );
    let saved = session.to_bytes().unwrap();

    let mut cpu = CpuEngine::new(&restored.model).unwrap();
    restored.load_into(&mut cpu).unwrap();
    let mut again = Session::from_bytes(&saved).unwrap();
    assert_eq!(again, session);
    let want = block_on(session.recommend(&mut original, 5, false)).unwrap();
    let got = block_on(again.recommend(&mut cpu, 5, false)).unwrap();
    assert_eq!(got, want, "restored session, CPU engine");

    let ctx = common::gpu_context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &restored.model)).unwrap();
    restored.load_into(&mut gpu).unwrap();
    let mut on_gpu = Session::from_bytes(&saved).unwrap();
    let g = block_on(on_gpu.recommend(&mut gpu, 5, true)).unwrap();
    let c = block_on(
        Session::from_bytes(&saved)
            .unwrap()
            .recommend(&mut cpu, 5, true),
    )
    .unwrap();
    assert_eq!(
        g.iter().map(|r| r.item).collect::<Vec<_>>(),
        c.iter().map(|r| r.item).collect::<Vec<_>>(),
        "greedy slate on the GPU engine"
    );
}

/// `Session::recommend` on the GPU engine is one submit reading back at most 1 KB (the sampler's
/// slate, log-propensities and logits), and gives the CPU engine's greedy slates with the same
/// scores and propensities to 1e-4, for slates of 1 to 64 items.
#[test]
fn a_recommendation_is_one_submit_with_the_cpu_engines_slate() {
    let (_, policy) = trained();
    let mut cpu = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut cpu).unwrap();
    let ctx = common::gpu_context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &policy.model)).unwrap();
    policy.load_into(&mut gpu).unwrap();
    let mut session = policy.session(5);
    for (n, k) in [1, 10, 64, 7].into_iter().enumerate() {
        let (mut on_cpu, mut on_gpu) = (session.clone(), session.clone());
        let want = block_on(on_cpu.recommend(&mut cpu, k, true)).unwrap();
        let before = gpu.counters();
        let got = block_on(on_gpu.recommend(&mut gpu, k, true)).unwrap();
        let after = gpu.counters();
        assert_eq!(after.submits - before.submits, 1, "one submit, slate {n}");
        let bytes = after.bytes_read_back - before.bytes_read_back;
        assert_eq!(
            bytes,
            12 * k as u64,
            "slate {n}: items, log-propensities, logits"
        );
        assert!(bytes <= 1024);
        assert_eq!(on_gpu, on_cpu, "session after slate {n}");
        let items =
            |r: &[metarec::session::Recommendation]| r.iter().map(|r| r.item).collect::<Vec<_>>();
        assert_eq!(items(&got), items(&want), "greedy slate {n} of {k}");
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a.score - b.score).abs() <= 1e-4 * b.score.abs().max(1.0),
                "slate {n}: {a:?} vs {b:?}"
            );
            assert!(
                (a.propensity - b.propensity).abs() <= 1e-4,
                "slate {n}: {a:?} vs {b:?}"
            );
        }
        block_on(session.feedback(&mut cpu, want[0].item, (n % 2) as f32)).unwrap();
    }
}

/// `Session::react` (one engine call) is `feedback` then `recommend`: exactly on the CPU engine;
/// on the GPU engine the same greedy slates and, to rounding, the same context and logits, in
/// one submit with at most 1 KB read back per reaction.
#[test]
fn a_reaction_in_one_call_is_feedback_then_recommend() {
    for summary in [Summary::Mean, Summary::Ridge] {
        reacts_in_one_call(summary);
    }
}

fn reacts_in_one_call(summary: Summary) {
    let (_, policy) = trained_with(Algorithm::Cavia, summary);
    let mut cpu = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut cpu).unwrap();
    let ctx = common::gpu_context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &policy.model)).unwrap();
    policy.load_into(&mut gpu).unwrap();
    let mut apart = policy.session(3);
    let mut item = block_on(apart.recommend(&mut cpu, 4, true)).unwrap()[0].item;
    let (mut fused, mut on_gpu) = (apart.clone(), apart.clone());
    for (n, reward) in [1.0, 0.0, 1.0, 1.0].into_iter().enumerate() {
        let greedy = n % 2 == 0;
        block_on(apart.feedback(&mut cpu, item, reward)).unwrap();
        let want = block_on(apart.recommend(&mut cpu, 4, greedy)).unwrap();
        let got = block_on(fused.react(&mut cpu, item, reward, 4, greedy)).unwrap();
        assert_eq!(got, want, "reaction {n}, CPU engine");
        assert_eq!(fused, apart, "session after reaction {n}, CPU engine");

        let before = gpu.counters();
        let g = block_on(on_gpu.react(&mut gpu, item, reward, 4, greedy)).unwrap();
        let after = gpu.counters();
        assert_eq!(after.submits - before.submits, 1, "one submit per reaction");
        assert!(after.bytes_read_back - before.bytes_read_back <= 1024);
        if greedy {
            let items = |r: &[metarec::session::Recommendation]| {
                r.iter().map(|r| r.item).collect::<Vec<_>>()
            };
            assert_eq!(
                items(&g),
                items(&want),
                "greedy slate {n} on the GPU engine"
            );
            for (a, b) in g.iter().zip(&want) {
                assert!((a.score - b.score).abs() <= 1e-4 * b.score.abs().max(1.0));
                assert!((a.propensity - b.propensity).abs() <= 1e-4);
            }
        }
        let diff = on_gpu
            .context
            .iter()
            .zip(&apart.context)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-4, "context after reaction {n}: off by {diff}");
        assert_eq!(on_gpu.history, apart.history);
        // both sides continue from the CPU's session, so rounding cannot add up
        on_gpu = apart.clone();
        item = want[0].item;
    }
}

#[test]
fn sessions_that_own_their_network_share_an_engine_without_touching_each_other() {
    let (_, policy) = trained_with(Algorithm::Fomaml, Summary::Mean);
    let mut shared = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut shared).unwrap();
    let mut alone = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut alone).unwrap();
    // a learns from three reactions on the shared engine; b starts afterwards on the same one
    let mut a = policy.session(1);
    for reward in [1.0, 1.0, 0.0] {
        let rec = block_on(a.recommend(&mut shared, 3, false)).unwrap();
        block_on(a.feedback(&mut shared, rec[0].item, reward)).unwrap();
    }
    let adapted = a.network.clone().unwrap();
    assert_ne!(adapted.params, policy.params, "feedback adapts a's network");
    let mut b = policy.session(2);
    let mut b_alone = policy.session(2);
    for reward in [0.0, 1.0] {
        let got = block_on(b.recommend(&mut shared, 4, false)).unwrap();
        let want = block_on(b_alone.recommend(&mut alone, 4, false)).unwrap();
        assert_eq!(got, want, "b on the shared engine is b on its own engine");
        block_on(b.feedback(&mut shared, got[0].item, reward)).unwrap();
        block_on(b_alone.feedback(&mut alone, want[0].item, reward)).unwrap();
    }
    assert_eq!(
        a.network.unwrap(),
        adapted,
        "b's steps leave a's network alone"
    );
}

/// A ridge summary's vector parts are ridge regressions (strength κ) of the reward and of
/// 1 − reward on the item vectors reacted to, checked against the linear bandits' own ridge
/// (Sherman–Morrison updates, another algorithm than the session's solve).
#[test]
fn a_ridge_summary_holds_ridge_regressions_of_the_rewards() {
    let (_, policy) = trained_with(Algorithm::Cavia, Summary::Ridge);
    let mut engine = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut engine).unwrap();
    let d = policy.model.output;
    let kappa = f64::from(policy.adapt.summary_prior);
    let (mut liked, mut missed) = (
        Ridge::new(&vec![0.0; d], kappa),
        Ridge::new(&vec![0.0; d], kappa),
    );
    let mut session = policy.session(5);
    for (n, reward) in [1.0f32, 0.0, 0.0, 1.0, 1.0].into_iter().enumerate() {
        let item = block_on(session.recommend(&mut engine, 1, n % 2 == 0)).unwrap()[0].item;
        block_on(session.feedback(&mut engine, item, reward)).unwrap();
        let e: Vec<f64> = engine
            .item_vector(item)
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        liked.update(&e, f64::from(reward));
        missed.update(&e, f64::from(1.0 - reward));
        let input = session.input();
        let tail = &input[input.len() - (2 * d + 2)..];
        for (k, want) in liked.mean().into_iter().chain(missed.mean()).enumerate() {
            assert!(
                (f64::from(tail[k]) - want).abs() <= 1e-4 * want.abs().max(1e-2),
                "reaction {n}, value {k}: {} vs {want}",
                tail[k]
            );
        }
        let likes = [1.0f32, 0.0, 0.0, 1.0, 1.0][..=n].iter().sum::<f32>();
        let scale = 1.0 / (n as f32 + 1.0 + policy.adapt.summary_prior);
        assert!((tail[2 * d] - likes * scale).abs() < 1e-6);
    }
}

#[test]
fn bad_bundles_and_sessions_are_refused_clearly() {
    let (bundle, policy) = trained();
    let err = Policy::from_bundle(&bundle).unwrap_err().to_string();
    assert!(err.contains("no trained policy"), "{err}");

    let mut other = bundle.clone();
    policy.store(&mut other).unwrap();
    other.config = other
        .config
        .map(|c| c.replace("metarec-policy/1", "metarec-policy/0"));
    let err = Policy::from_bundle(&other).unwrap_err().to_string();
    assert!(err.contains("metarec-policy/0"), "{err}");

    // weights no engine would take are refused when the bundle is read
    for (param, item, want) in [
        (f32::NAN, 0.0, "parameter 3 is not finite"),
        (0.0, f32::INFINITY, "(item 0) is not finite"),
    ] {
        let mut broken = policy.clone();
        broken.params[3] += param;
        broken.items[1] += item;
        let mut other = bundle.clone();
        broken.store(&mut other).unwrap();
        let err = Policy::from_bundle(&other).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }

    // the item vectors' parts travel with the policy, and must add up to the model's width
    let mut stored = bundle.clone();
    policy.store(&mut stored).unwrap();
    let parts = Policy::from_bundle(&stored).unwrap().parts.unwrap();
    assert_eq!(parts, policy.parts.unwrap());
    assert_eq!(parts.factors, metarec::meta::SYNTHETIC_FACTORS);
    assert_eq!(parts.features + parts.factors, policy.model.output);
    let mut wider = parts;
    wider.factors += 1;
    let mut other = bundle.clone();
    policy.clone().with_parts(wider).store(&mut other).unwrap();
    let err = Policy::from_bundle(&other).unwrap_err().to_string();
    assert!(err.contains("factor columns, but the model's are"), "{err}");

    let saved = policy.session(1).to_bytes().unwrap();
    assert!(Session::from_bytes(&saved[..saved.len() / 2])
        .unwrap_err()
        .to_string()
        .contains("corrupted"));
    assert!(Session::from_bytes(b"MRSESS00{}")
        .unwrap_err()
        .to_string()
        .contains("version"));
    let mut s = policy.session(1);
    let mut engine = CpuEngine::new(&policy.model).unwrap();
    policy.load_into(&mut engine).unwrap();
    let err = block_on(s.feedback(&mut engine, 10_000, 1.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the catalog"), "{err}");
    let err = block_on(s.feedback(&mut engine, 3, 7.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("reward must be in [0, 1]"), "{err}");
}

#[cfg(feature = "cli")]
#[test]
fn the_cli_records_the_person_step_size_in_the_bundle_and_refuses_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("metarec-param-lr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join("p.bundle");
    let run = |lr: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_metarec"))
            .args(["train", "--data", "synthetic:2", "--stages", "meta"])
            .args([
                "--algorithm",
                "fomaml",
                "--iterations",
                "1",
                "--engine",
                "cpu",
            ])
            .args(["--users-per-iteration", "2", "--param-lr", lr, "--out"])
            .arg(&out_file)
            .output()
            .unwrap()
    };
    let out = run("0.01");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = Bundle::from_bytes(&std::fs::read(&out_file).unwrap()).unwrap();
    let policy = Policy::from_bundle(&bundle).unwrap();
    assert_eq!(policy.adapt.param_lr, 0.01);
    let out = run("0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--param-lr must be a positive number"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
