"""The server side of federated Reptile / first-order MAML as a Flower strategy."""

from __future__ import annotations

import logging
import time
from typing import Iterable, Optional

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from .. import Meta

log = logging.getLogger("flwr.metarec")


def outer_step(meta: Meta, theta, averaged, adam, server_round: int):
    """The server's outer step from the clients' averaged parameters: (θ', Adam state), or None
    (logged) when the step is not finite. Reptile moves θ toward the average; first-order MAML's
    clients return θ minus their mean gradient, so the step's direction is the negated delta."""
    delta = np.asarray(averaged).astype(np.float64) - theta
    mean = -delta if meta.algorithm == "fomaml" else delta
    new, adam = meta.outer_update(theta, mean, adam)
    if new is None:
        log.warning("round %d: the outer step was not finite; the policy is unchanged", server_round)
        return None
    return new, adam

PARAMS = "params"


class MetaStrategy(Strategy):
    """metarec's outer step on top of federated averaging. ``averaging`` (a ``FedAvg``, or
    Flower's ``DifferentialPrivacyClientSideFixedClipping`` around one) averages the clients'
    adapted policies θ + Δ̄ₖ weighted by their users (and, with privacy, clips and noises);
    this strategy then takes metarec's outer step on the averaged delta Δ̄ = average − θ:
    Reptile moves θ by ``reptile_step`` · Δ̄; first-order MAML (whose clients send θ − ḡₖ)
    takes an Adam step on ḡ = −Δ̄. The noise is added to the average, before the outer step,
    so the step is post-processing and the accountant's ε holds for either algorithm. A round
    whose step would not be finite keeps θ. Clients whose reply is missing or an error are
    left out of the round (logged); the round completes with the others."""

    def __init__(self, meta: Meta, averaging: Strategy):
        self.meta = meta
        self.averaging = averaging
        self._theta: Optional[np.ndarray] = None
        self._adam = None
        self._round_start = time.perf_counter()
        #: Per server round: clients that replied, clients that failed, users adapted, seconds.
        self.participation: dict[int, dict] = {}

    def summary(self) -> None:
        log.info("metarec outer step: %s", self.meta.algorithm)
        self.averaging.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._theta = arrays[PARAMS].numpy().astype(np.float64)
        self._round_start = time.perf_counter()
        return self.averaging.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        replies = list(replies)
        failed = [m for m in replies if m.has_error()]
        ok = [m for m in replies if not m.has_error()]
        for m in failed:
            log.warning(
                "round %d: the client on node %d failed (%s); the round goes on with the others",
                server_round,
                m.metadata.src_node_id,
                m.error.reason,
            )
        users = sum(int(m.content["metrics"]["num-examples"]) for m in ok)
        self.participation[server_round] = {
            "replied": len(ok),
            "failed": len(failed),
            "users": users,
            # from sending the round's messages to having every reply (or the timeout)
            "seconds": time.perf_counter() - self._round_start,
        }
        log.info(
            "round %d: %d clients replied (%d users), %d failed",
            server_round,
            len(ok),
            users,
            len(failed),
        )
        if users == 0:
            log.warning("round %d: no client adapted any user; the policy is unchanged", server_round)
            return None, None
        averaged, metrics = self.averaging.aggregate_train(server_round, ok)
        if averaged is None or self._theta is None:
            return None, metrics
        step = outer_step(self.meta, self._theta, averaged[PARAMS].numpy(), self._adam, server_round)
        if step is None:
            return None, metrics
        new, self._adam = step
        return ArrayRecord({PARAMS: Array(new.astype(np.float64))}), metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        # the policy is evaluated on the server's held-out users (ServerApp's evaluate_fn)
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> Optional[MetricRecord]:
        return None
