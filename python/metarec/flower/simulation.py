"""Federated meta-training on Flower's simulation engine (one machine, ``num_clients`` virtual
SuperNodes on the ray backend), returning the server's ``result.json``.

    python -m metarec.flower.simulation --clients 10 --set num-server-rounds=150 \\
        --set users-per-iteration=20 --out-dir /tmp/fed

The same apps run unchanged on the deployment engine: ``flwr run python/flower-app`` against a
SuperLink with SuperNodes (see README).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional

from .client_app import make_client_app
from .server_app import make_server_app
from .settings import DEFAULTS


def simulate(
    run_config: dict,
    num_clients: int,
    cpus_per_client: float = 1.0,
    verbose: bool = False,
) -> dict:
    """Runs the ServerApp and ``num_clients`` ClientApps (partition-id 0..num_clients − 1 of
    num_clients) on the simulation engine with ``run_config`` (keys of
    :data:`metarec.flower.settings.DEFAULTS`); returns the server's results."""
    from flwr.simulation import run_simulation

    overrides = dict(run_config)
    overrides.setdefault("min-clients", num_clients)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(overrides.get("out-dir") or tmp)
        overrides["out-dir"] = str(out)
        run_simulation(
            server_app=make_server_app(overrides),
            client_app=make_client_app(overrides),
            num_supernodes=num_clients,
            backend_config={
                "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
                "init_args": {"num_cpus": os.cpu_count() or 1, "num_gpus": 0},
            },
            verbose_logging=verbose,
        )
        result_file = out / "result.json"
        if not result_file.is_file():
            raise RuntimeError(f"the simulation ended without results ({result_file} is missing)")
        return json.loads(result_file.read_text())


def _value(key: str, text: str):
    if key not in DEFAULTS:
        raise SystemExit(f"unknown run-config key {key!r}; known: {', '.join(DEFAULTS)}")
    return type(DEFAULTS[key])(text)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--cpus-per-client", type=float, default=1.0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    config = {"out-dir": args.out_dir}
    for item in args.set:
        key, _, text = item.partition("=")
        config[key] = _value(key, text)
    logging.basicConfig(level=logging.INFO)
    result = simulate(config, args.clients, args.cpus_per_client)
    print(json.dumps({k: result[k] for k in ("heldout", "epsilon", "seconds", "setup_seconds")}))


if __name__ == "__main__":
    main()
