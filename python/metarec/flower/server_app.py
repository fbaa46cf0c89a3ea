"""The Flower ``ServerApp``: the policy's start, one federated meta-iteration per server round
(:class:`.strategy.MetaStrategy`), evaluation on held-out users, and the results.

Held-out evaluation (``eval-every`` > 0: every that many rounds and after the last): one
episode per cold-start user of the split (the first ``eval-users`` of them when > 0), the
whole network adapting per user as ``metarec eval`` runs ``meta-rl-reptile``; the figure is
the mean over users of each user's likes per round. With ``out-dir`` set, ``result.json``
(per-round training reward and participation, held-out rewards, per-user final rewards, ε when
private, timings) and ``params.npy`` are written there.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg

from .settings import Settings, meta_for
from .strategy import PARAMS, MetaStrategy

log = logging.getLogger("flwr.metarec")

def heldout_rewards(meta, params, users) -> np.ndarray:
    """Each user's mean likes per round over their held-out episode."""
    hits = meta.evaluate(params, users)
    return np.nanmean(hits, axis=1)


def privacy_accountant(s: Settings):
    """Flower's RDP accountant for client-level privacy: every client takes part in every
    round (no sampling amplification), neighbouring federations differ by one client."""
    from flwr.serverapp import NeighboringRelation, PrivacyConfig, RdpAccountant, SamplingMethod

    return RdpAccountant(
        PrivacyConfig(
            target_delta=s.dp_delta,
            population_size=s.min_clients,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )


def make_server_app(overrides: Optional[dict] = None) -> ServerApp:
    """The ServerApp, its run config updated with ``overrides`` (for
    :func:`metarec.flower.simulation.simulate`)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run(grid, context, Settings.from_run_config({**context.run_config, **(overrides or {})}))

    return app


def run(grid: Grid, context: Context, s: Settings) -> None:
    """Federated meta-training over the nodes of ``grid`` with the settings ``s``."""
    t0 = time.time()
    meta = meta_for(s)
    setup_seconds = time.time() - t0
    users = meta.cold_start_users[: s.eval_users] if s.eval_users > 0 else meta.cold_start_users
    heldout: dict[int, float] = {}
    final_users: list[float] = []
    eval_seconds = 0.0

    def evaluate(server_round: int, params: np.ndarray):
        nonlocal final_users, eval_seconds
        last = server_round == s.num_server_rounds
        if s.eval_every <= 0 or not (last or server_round % s.eval_every == 0):
            return None
        t = time.time()
        per_user = heldout_rewards(meta, params, users)
        eval_seconds += time.time() - t
        heldout[server_round] = float(np.mean(per_user))
        if last:
            final_users = [float(v) for v in per_user]
        return {"heldout-reward": heldout[server_round]}

    t1 = time.time()
    spent = None
    if s.secure_aggregation:
        if s.private:
            raise ValueError("secure-aggregation is not combined with clipping-norm here")
        from .secure import run_secure

        secure = run_secure(grid, context, s, evaluate)
        params, participation, train = secure.params, secure.participation, secure.train
    else:
        fedavg = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=s.min_clients,
            min_available_nodes=s.min_clients,
        )
        averaging = fedavg
        if s.private:
            if s.noise_multiplier <= 0.0:
                raise ValueError("clipping-norm > 0 needs noise-multiplier > 0")
            averaging = DifferentialPrivacyClientSideFixedClipping(
                fedavg,
                noise_multiplier=s.noise_multiplier,
                clipping_norm=s.clipping_norm,
                num_sampled_clients=s.min_clients,
                accountant=privacy_accountant(s),
            )
        strategy = MetaStrategy(meta, averaging)

        def evaluate_arrays(server_round: int, arrays: ArrayRecord):
            metrics = evaluate(server_round, arrays[PARAMS].numpy())
            return None if metrics is None else MetricRecord(metrics)

        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord({PARAMS: Array(meta.start().astype(np.float64))}),
            num_rounds=s.num_server_rounds,
            timeout=s.round_timeout,
            train_config=ConfigRecord({}),
            evaluate_fn=evaluate_arrays,
        )
        params = result.arrays[PARAMS].numpy().astype(np.float32)
        participation = strategy.participation
        train = {
            int(r): {k: float(v) for k, v in m.items()}
            for r, m in result.train_metrics_clientapp.items()
        }
        spent = averaging.privacy_spent() if s.private else None
        if spent is not None:
            log.info("privacy spent: epsilon %.4f at delta %g", spent.epsilon, spent.delta)
    seconds = time.time() - t1
    if not s.out_dir:
        return
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "params.npy", np.asarray(params, dtype=np.float32))
    summary = {
        "settings": s.__dict__,
        "train": train,
        "participation": participation,
        "heldout": heldout,
        "heldout_users": [int(u) for u in users],
        "heldout_final_per_user": final_users,
        "epsilon": None if spent is None else spent.epsilon,
        "delta": None if spent is None else spent.delta,
        "setup_seconds": setup_seconds,
        "seconds": seconds,
        "eval_seconds": eval_seconds,
    }
    (out / "result.json").write_text(json.dumps(summary, indent=1))


app = make_server_app()
