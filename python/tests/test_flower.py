"""Federated meta-training on Flower: the simulation engine (10 clients; equal to centralised
Reptile by construction; client-side clipping + central noise with ε) and the deployment engine
(a SuperLink and 3 SuperNodes as separate processes, one killed mid-run)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import metarec
from conftest import REPO

pytest.importorskip("flwr", reason="the flower extra is part of the test environment")

from metarec.flower.simulation import simulate  # noqa: E402

#: Small runs: one fine-tune epoch, 3 server rounds (= meta-iterations), 5-round episodes.
BASE = {
    "seed": 1,
    "num-server-rounds": 3,
    "episode-rounds": 5,
    "finetune-epochs": 1,
    "eval-every": 3,
    "eval-users": 10,
}


def centralised(ml100k, users_per_iteration):
    """Centralised Reptile with BASE's settings, one meta-iteration: what one server round of a
    simulation over `users_per_iteration` users equals."""
    return metarec.Meta(
        metarec.Dataset(ml100k),
        seed=BASE["seed"],
        iterations=1,
        users_per_iteration=users_per_iteration,
        rounds=BASE["episode-rounds"],
        finetune_epochs=BASE["finetune-epochs"],
    )


def test_simulation_with_10_clients_is_centralised_reptile(ml100k, tmp_path):
    """One server round of 10 simulated clients (2 users each) is centralised Reptile's first
    meta-iteration: the same episodes (rewards) and, up to the rounding of Flower's float64
    averaging, the same parameters. (Over many rounds the two runs drift apart through that
    rounding: a tiny change of the policy can change an episode's sampled items.)"""
    config = {
        **BASE,
        "num-server-rounds": 1,
        "eval-every": 1,
        "data-path": str(ml100k),
        "users-per-iteration": 20,
        "out-dir": str(tmp_path),
    }
    result = simulate(config, num_clients=10)
    assert sorted(result["train"]) == ["1"]
    p = result["participation"]["1"]
    assert (p["replied"], p["failed"], p["users"]) == (10, 0, 20)
    assert len(result["heldout_final_per_user"]) == 10
    federated = np.load(tmp_path / "params.npy")
    meta = centralised(ml100k, users_per_iteration=20)
    central, history = meta.meta_train()
    assert np.max(np.abs(federated - central)) < 1e-6
    assert np.max(np.abs(central - meta.start())) > 1e-4
    assert result["train"]["1"]["reward"] == pytest.approx(history[0]["mean_reward"], abs=1e-6)
    heldout = np.nanmean(meta.evaluate(central, users=result["heldout_users"]), axis=1)
    assert result["heldout"]["1"] == pytest.approx(float(np.mean(heldout)), abs=1e-3)


def test_simulation_with_client_side_clipping_and_noise_reports_epsilon(ml100k, tmp_path):
    config = {
        **BASE,
        "data-path": str(ml100k),
        "users-per-iteration": 8,
        "clipping-norm": 0.05,
        "noise-multiplier": 1.0,
        "out-dir": str(tmp_path),
    }
    result = simulate(config, num_clients=4)
    assert sorted(result["train"]) == ["1", "2", "3"]
    assert 0.0 < result["epsilon"] < float("inf")
    assert result["delta"] == pytest.approx(1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, seconds: float) -> None:
    """Waits until something listens on 127.0.0.1:port (the SuperLink's HTTP API)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_deployment_engine_completes_3_rounds_when_a_client_is_killed(ml100k, tmp_path):
    """flower-superlink (Fleet, Control and Runtime APIs on one HTTP port) and three
    flower-supernode processes; `flwr run` submits the Flower App; when round 2 starts, SuperNode 2 (and its ClientApp) is killed: the run completes its
    3 rounds with the other two clients, and the failure is logged."""
    link = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "metarec-test"\n\n[superlink.metarec-test]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    # the SuperLink and SuperNodes start flower-superexec, flwr-serverapp and flwr-clientapp
    # from PATH: this environment's
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "FLWR_HOME": str(home), "FLWR_DISABLE_UPDATE_CHECK": "1"}
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []

    def start(name, args):
        out = open(logs / f"{name}.log", "w")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs.append(p)
        return p

    out_dir = tmp_path / "out"
    overrides = tmp_path / "run-config.toml"
    overrides.write_text(
        "\n".join(
            [
                f'data-path = "{ml100k}"',
                f'out-dir = "{out_dir}"',
                "num-server-rounds = 3",
                "users-per-iteration = 60",
                "episode-rounds = 20",
                "finetune-epochs = 1",
                "eval-every = 3",
                "eval-users = 10",
                "round-timeout = 60.0",
                "min-clients = 2",
            ]
        )
        + "\n"
    )
    try:
        start(
            "superlink",
            [
                _bin("flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--host", "127.0.0.1",
                "--port", str(link),
            ],
        )
        nodes = [
            start(
                f"supernode-{k}",
                [
                    _bin("flower-supernode"),
                    "--insecure",
                    "--superlink", f"127.0.0.1:{link}",
                    "--port", str(_free_port()),
                    "--node-config", f"partition-id={k} num-partitions=3",
                ],
            )
            for k in range(3)
        ]
        _wait_for_port(link, 60)
        run = subprocess.Popen(
            [_bin("flwr"), "run", str(REPO / "python" / "flower-app"), "metarec-test",
             "--run-config", str(overrides), "--stream"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            start_new_session=True,
        )
        procs.append(run)
        lines, killed = [], False
        deadline = time.time() + 420
        for line in run.stdout:
            lines.append(line)
            if not killed and "[ROUND 2/3]" in line:
                os.killpg(nodes[2].pid, signal.SIGKILL)
                killed = True
            if time.time() > deadline:
                break
        run.wait(timeout=30)
        log = "".join(lines)
        assert killed, f"round 2 never started:\n{log[-4000:]}"
        result_file = out_dir / "result.json"
        assert result_file.is_file(), f"the run did not finish:\n{log[-4000:]}"
        import json

        result = json.loads(result_file.read_text())
        assert sorted(result["train"]) == ["1", "2", "3"], log[-4000:]
        assert result["participation"]["1"]["replied"] == 3
        later = [result["participation"][r]["replied"] for r in ("2", "3")]
        assert min(later) == 2, result["participation"]
        assert "3" in result["heldout"]
        assert "failed (" in log, log[-4000:]
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_simulation_with_secure_aggregation_is_centralised_reptile(ml100k, tmp_path):
    """SecAgg+ (Flower's secaggplus_mod and SecAggPlusWorkflow) over 4 clients: the server
    only sees the masked sum, and one round still gives centralised Reptile's first
    meta-iteration, up to SecAgg+'s quantisation."""
    config = {
        **BASE,
        "num-server-rounds": 1,
        "eval-every": 1,
        "data-path": str(ml100k),
        "users-per-iteration": 8,
        "secure-aggregation": True,
        "out-dir": str(tmp_path),
    }
    result = simulate(config, num_clients=4)
    p = result["participation"]["1"]
    assert (p["replied"], p["failed"], p["users"]) == (4, 0, 8)
    federated = np.load(tmp_path / "params.npy")
    meta = centralised(ml100k, users_per_iteration=8)
    central, _ = meta.meta_train()
    step = np.max(np.abs(central - meta.start()))
    assert np.max(np.abs(federated - central)) < 1e-3 * step + 1e-5
