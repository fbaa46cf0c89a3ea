#!/usr/bin/env python3
"""BENCHMARKS.md "Federated simulation": client-rounds per second of Flower's simulation
engine running metarec's federated Reptile with 10 and 100 clients (one user of ml-100k each
per round, 20-round episodes), on this machine's CPUs (ray backend, one CPU per client).

    python scripts/federated_bench.py --data ../shared/data/ml-100k

The first round is left out (it includes each ray actor's setup: loading the data and
fine-tuning the policy's start); a round's time runs from sending its messages to having every
reply. Also times the same users' inner loops in one process (no Flower) for comparison.
"""

import argparse
import json
import os
import statistics
import time

import metarec
from metarec.flower.simulation import simulate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--rounds", type=int, default=6)
    a = p.parse_args()
    rows = []
    for clients in (10, 100):
        config = {
            "data-path": os.path.abspath(a.data),
            "seed": 1,
            "num-server-rounds": a.rounds,
            "users-per-iteration": clients,
            "episode-rounds": 20,
            "finetune-epochs": 1,
        }
        result = simulate(config, num_clients=clients)
        secs = [v["seconds"] for r, v in result["participation"].items() if int(r) >= 2]
        meta = metarec.Meta(metarec.Dataset(a.data), seed=1, iterations=a.rounds,
                            users_per_iteration=clients, rounds=20, finetune_epochs=1)
        theta = meta.start()
        t = time.perf_counter()
        for it in range(1, a.rounds):
            meta.adapt(theta, meta.iteration_users(it), it)
        alone = (time.perf_counter() - t) / (a.rounds - 1)
        rows.append({
            "clients": clients,
            "rounds_timed": len(secs),
            "median_round_seconds": statistics.median(secs),
            "client_rounds_per_second": clients * len(secs) / sum(secs),
            "inner_loops_alone_seconds_per_round": alone,
        })
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
