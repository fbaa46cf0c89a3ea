#!/usr/bin/env python3
"""EVALUATION.md "Federated meta-training": centralised `metarec train --algorithm reptile`
against federated Reptile over 10 simulated Flower clients (each a disjoint shard of the
training users), with the same seeds, users and episodes, then federated runs with client-side
clipping + central Gaussian noise at several noise multipliers (ε from Flower's RDP
accountant). Every policy is evaluated on the split's cold-start users (one 20-round episode
each, the whole network adapting per user, the same episode seeds for every policy: paired).

    python scripts/federated_eval.py --metarec target/release/metarec \\
        --data ../shared/data/ml-100k --seeds 1,2,3 --out target/federated-eval

Writes OUT/summary.json (aggregate figures only) and OUT/federated.svg.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np

import metarec
from metarec.flower.simulation import simulate

ITERATIONS = 150
USERS = 20
ROUNDS = 20
CLIENTS = 10


def t975(df: int) -> float:
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    return table.get(df, 1.96 if df > 120 else 2.0 if df > 30 else 2.1)


def ci(values) -> dict:
    v = np.asarray(values, dtype=float)
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return {"mean": float(np.mean(v)), "ci95": t975(len(v) - 1) * sd / math.sqrt(len(v)), "n": len(v)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--metarec", required=True, help="the metarec binary (cargo build --release --features cli)")
    p.add_argument("--data", required=True)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--noise", default="0.3,1.0,3.0", help="noise multipliers of the private runs")
    p.add_argument("--private-seeds", default="1", help="seeds of the private runs")
    p.add_argument("--clip", type=float, default=0.05, help="clipping norm of a client's mean delta")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    noises = [float(z) for z in a.noise.split(",") if z]
    private_seeds = [int(s) for s in a.private_seeds.split(",") if s]
    dataset = metarec.Dataset(a.data)
    # runs.json of an earlier invocation is reused: what it holds is not run again
    saved = out / "runs.json"
    runs = {int(k): v for k, v in json.loads(saved.read_text()).items()} if saved.is_file() else {}
    for seed in seeds:
        if seed in runs and (seed not in private_seeds or len(runs[seed]["private"]) == len(noises)):
            continue
        base = {"data-path": str(Path(a.data).resolve()), "seed": seed, "num-server-rounds": ITERATIONS,
                "users-per-iteration": USERS, "episode-rounds": ROUNDS, "eval-every": ITERATIONS}
        if seed in runs:
            run = runs[seed]
        else:
            run = central_and_federated(a, dataset, seed, base, out)
        for z in noises if seed in private_seeds else []:
            if str(z) in run["private"]:
                continue
            dp_dir = out / f"private-{seed}-{z}"
            dp = simulate({**base, "out-dir": str(dp_dir), "clipping-norm": a.clip, "noise-multiplier": z},
                          num_clients=CLIENTS)
            run["private"][str(z)] = {"heldout": dp["heldout_final_per_user"], "epsilon": dp["epsilon"],
                                      "delta": dp["delta"]}
        runs[seed] = run
        (out / "runs.json").write_text(json.dumps(runs))
        print(f"seed {seed}: central {np.mean(run['central']):.4f} federated {np.mean(run['federated']):.4f} "
              f"gap {run['max_param_gap']:.2e}", flush=True)
    summarise(runs, seeds, private_seeds, noises, a, out)


def central_and_federated(a, dataset, seed, base, out) -> dict:
    """Centralised Reptile through the CLI and federated Reptile over 10 simulated clients,
    both evaluated on the split's cold-start users (the same episode seeds: paired)."""
    meta = metarec.Meta(dataset, seed=seed, iterations=ITERATIONS, users_per_iteration=USERS, rounds=ROUNDS)

    def heldout(params):
        return np.nanmean(meta.evaluate(params, meta.cold_start_users), axis=1)

    bundle = out / f"central-{seed}.bundle"
    t = time.time()
    cli = subprocess.run(
        [a.metarec, "train", "--data", a.data, "--stages", "meta", "--algorithm", "reptile",
         "--iterations", str(ITERATIONS), "--users-per-iteration", str(USERS), "--seed", str(seed),
         "--engine", "cpu", "--json", "--out", str(bundle)],
        check=True, capture_output=True, text=True,
    )
    central_history = [h["mean_reward"] for h in json.loads(cli.stdout)["meta"]["history"]]
    central_seconds = time.time() - t
    central_params = metarec.policy_params(bundle.read_bytes())
    run = {
        "start": heldout(meta.start()).tolist(),
        "central": heldout(central_params).tolist(),
        "central_train": central_history,
        "central_seconds": central_seconds,
    }
    fed_dir = out / f"federated-{seed}"
    fed = simulate({**base, "out-dir": str(fed_dir)}, num_clients=CLIENTS)
    federated_params = np.load(fed_dir / "params.npy")
    run["federated"] = heldout(federated_params).tolist()
    run["federated_server"] = fed["heldout_final_per_user"]
    run["federated_train"] = [fed["train"][str(r)]["reward"] for r in range(1, ITERATIONS + 1)]
    run["federated_seconds"] = fed["seconds"]
    run["max_param_gap"] = float(np.max(np.abs(federated_params - central_params)))
    run["private"] = {}
    return run




def summarise(runs, seeds, private_seeds, noises, a, out) -> None:
    def pooled(key):
        return np.concatenate([np.asarray(runs[s][key]) for s in seeds])

    central, federated, start = pooled("central"), pooled("federated"), pooled("start")
    summary = {
        "settings": {"iterations": ITERATIONS, "users_per_iteration": USERS, "rounds": ROUNDS,
                     "clients": CLIENTS, "seeds": seeds, "clip": a.clip, "noise": noises,
                     "private_seeds": private_seeds},
        "start": ci(start),
        "central": ci(central),
        "federated": ci(federated),
        "federated_minus_central": ci(federated - central),
        "central_minus_start": ci(central - start),
        "federated_minus_start": ci(federated - start),
        "per_seed": {s: {"central": float(np.mean(runs[s]["central"])), "federated": float(np.mean(runs[s]["federated"])),
                         "max_param_gap": runs[s]["max_param_gap"], "central_seconds": runs[s]["central_seconds"],
                         "federated_seconds": runs[s]["federated_seconds"]} for s in seeds},
        "private": {},
    }
    fed_private = np.concatenate([np.asarray(runs[s]["federated"]) for s in private_seeds])
    for z in noises:
        dp = np.concatenate([np.asarray(runs[s]["private"][str(z)]["heldout"]) for s in private_seeds])
        first = runs[private_seeds[0]]["private"][str(z)]
        summary["private"][str(z)] = {
            "seeds": private_seeds,
            "epsilon": first["epsilon"],
            "delta": first["delta"],
            "heldout": ci(dp),
            "minus_federated": ci(dp - fed_private),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(runs, seeds, summary, out / "federated.svg")
    print(json.dumps(summary, indent=1))


def plot(runs, seeds, summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    window = 10
    kernel = np.ones(window) / window
    for key, label, style in (("central_train", "centralised (metarec train)", "-"),
                              ("federated_train", "federated, 10 Flower clients", "--")):
        curve = np.mean([runs[s][key] for s in seeds], axis=0)
        left.plot(np.arange(window, len(curve) + 1), np.convolve(curve, kernel, mode="valid"), style, label=label)
    left.set_xlabel("meta-iteration = server round")
    left.set_ylabel(f"training reward per round ({window}-iteration mean)")
    left.set_title(f"Reptile, {len(seeds)} seeds, {USERS} users / iteration")
    left.legend()
    names = ["start", "central", "federated"] + [f"ε={summary['private'][z]['epsilon']:.0f}" for z in summary["private"]]
    stats = [summary["start"], summary["central"], summary["federated"]] + [summary["private"][z]["heldout"] for z in summary["private"]]
    right.bar(range(len(names)), [s["mean"] for s in stats], yerr=[s["ci95"] for s in stats], capsize=4)
    right.set_xticks(range(len(names)), names, rotation=20)
    right.set_ylim(min(s["mean"] for s in stats) - 0.05, max(s["mean"] for s in stats) + 0.03)
    right.set_ylabel("held-out reward per round (cold-start users)")
    right.set_title("held-out users, mean ± 95% CI (private: seed(s) "
                    + ",".join(map(str, summary["settings"]["private_seeds"])) + ")")
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
