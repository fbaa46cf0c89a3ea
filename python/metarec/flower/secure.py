"""Secure aggregation (SecAgg+) of the clients' updates, with Flower's own ``secaggplus_mod``
and ``SecAggPlusWorkflow`` (``secure-aggregation = true``): the server learns only the weighted
sum of the clients' θ + Δ̄ₖ, never one client's update.

In flwr 1.42 SecAgg+ runs in the legacy workflow API (``LegacyContext``, a ``flwr.server``
strategy, a ``NumPyClient``), so this module carries the same two halves as the Message-API
apps in that form: :class:`SecureMetaStrategy` (FedAvg of the unmasked aggregate, then metarec's
outer step) and :class:`MetaNumPyClient` (the same client update as
:func:`metarec.flower.client_app.client_update`). SecAgg+ quantises the weighted updates in
[−``clipping_range``, ``clipping_range``] (8: the policy's parameters lie well inside) on
``quantization_range`` levels; with ``max_weight`` = the users per iteration the rounding is
≈ 1e-6 of a parameter. It is not combined with the differential-privacy wrapper here.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from flwr.client import NumPyClient
from flwr.client.message_handler.message_handler import handle_legacy_message_from_msgtype
from flwr.client.mod import secaggplus_mod
from flwr.common import Context, Message, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from .. import Meta
from .settings import Settings, meta_for
from .strategy import outer_step

log = logging.getLogger("flwr.metarec")


class MetaNumPyClient(NumPyClient):
    """One client's round in the legacy API (what ``secaggplus_mod`` wraps)."""

    def __init__(self, settings: Settings, context: Context):
        self.settings = settings
        self.context = context

    def fit(self, parameters, config):
        from .client_app import client_update

        theta = np.asarray(parameters[0], dtype=np.float64)
        moved, c = client_update(self.settings, self.context, theta, int(config["server-round"]))
        return [moved], c.tasks, {"reward": c.reward, "episodes": c.episodes}


def is_secure(msg: Message) -> bool:
    """Whether ``msg`` is a stage of the SecAgg+ protocol."""
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    return RECORD_KEY_CONFIGS in msg.content.config_records


def secure_reply(msg: Message, context: Context, settings: Settings) -> Message:
    """Answers one SecAgg+ stage through Flower's ``secaggplus_mod``."""

    def fit(m: Message, ctx: Context) -> Message:
        return handle_legacy_message_from_msgtype(
            lambda c: MetaNumPyClient(settings, c).to_client(), m, ctx
        )

    return secaggplus_mod(msg, context, fit)


class SecureMetaStrategy(LegacyFedAvg):
    """FedAvg of the securely aggregated θ + Δ̄ₖ, then metarec's outer step on Δ̄ (as
    :class:`metarec.flower.strategy.MetaStrategy`)."""

    def __init__(self, meta: Meta, settings: Settings, evaluate_fn=None):
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=settings.min_clients,
            min_available_clients=settings.min_clients,
            on_fit_config_fn=lambda r: {"server-round": r},
            initial_parameters=ndarrays_to_parameters([meta.start().astype(np.float64)]),
            evaluate_fn=evaluate_fn,
        )
        self.meta = meta
        self._theta = None
        self._adam = None
        self._round_start = time.perf_counter()
        self.params = meta.start()
        self.participation: dict[int, dict] = {}
        self.train: dict[int, dict] = {}

    def configure_fit(self, server_round, parameters, client_manager):
        self._theta = parameters_to_ndarrays(parameters)[0].astype(np.float64)
        self._round_start = time.perf_counter()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        users = sum(r.num_examples for _, r in results)
        self.participation[server_round] = {
            "replied": len(results),
            "failed": len(failures),
            "users": users,
            "seconds": time.perf_counter() - self._round_start,
        }
        log.info("round %d: %d clients aggregated securely (%d users), %d failed", server_round, len(results), users, len(failures))
        if users == 0 or self._theta is None:
            return None, {}
        averaged, metrics = super().aggregate_fit(server_round, results, failures)
        if averaged is None:
            return None, metrics
        step = outer_step(self.meta, self._theta, parameters_to_ndarrays(averaged)[0], self._adam, server_round)
        if step is None:
            return None, metrics
        new, self._adam = step
        self.params = new
        self.train[server_round] = {"users": float(users)}
        return ndarrays_to_parameters([new.astype(np.float64)]), metrics


def run_secure(grid, context: Context, s: Settings, evaluate) -> SecureMetaStrategy:
    """Runs ``s.num_server_rounds`` rounds with SecAgg+ over all ``min-clients`` clients;
    ``evaluate(server_round, params)`` is the server's held-out evaluation (or None)."""
    meta = meta_for(s)

    def evaluate_fn(server_round, ndarrays, config):
        metrics = evaluate(server_round, np.asarray(ndarrays[0]))
        return None if metrics is None else (0.0, metrics)

    strategy = SecureMetaStrategy(meta, s, evaluate_fn)
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=s.num_server_rounds, round_timeout=s.round_timeout),
        strategy=strategy,
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            # each client's secrets are shared with up to 32 others; half of them recover them
            num_shares=min(s.min_clients, 32),
            reconstruction_threshold=min(s.min_clients, 32) // 2 + 1,
            max_weight=float(s.users_per_iteration),
            quantization_range=2**26,
            timeout=s.round_timeout,
        )
    )
    workflow(grid, legacy)
    return strategy
