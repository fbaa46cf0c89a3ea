"""The Flower ``ClientApp``: a client holds some users and runs metarec's inner loop for them.

Node config: ``partition-id`` and ``num-partitions`` (the simulation engine sets them; a
SuperNode takes them from ``--node-config``). Client ``partition-id`` of ``num-partitions``
holds the training users at positions ≡ partition-id (mod num-partitions): in server round r
it adapts those of centralised meta-iteration r − 1's users that it holds, each with the seed
of its slot, so the weighted mean of the clients' deltas is the centralised one.

Reply: ``arrays`` = θ + Δ̄ₖ (float64, the client's mean delta added to the policy it
received, so Flower's ``fixedclipping_mod`` clips exactly Δ̄ₖ), metrics ``num-examples`` (the
users adapted, the averaging weight), ``episodes``, ``reward`` (mean reward per round),
``loss``.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from .settings import Settings, meta_for

log = logging.getLogger("flwr.metarec")

PARAMS = "params"


def clip_when_private(msg: Message, context: Context, call_next):
    """Flower's ``fixedclipping_mod`` on rounds whose config carries a clipping norm (runs
    with differential privacy); other rounds pass through."""
    config = msg.content.config_records.get("config")
    if config is not None and KEY_CLIPPING_NORM in config:
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def _partition(context: Context) -> tuple[int, int]:
    node = context.node_config
    try:
        return int(node["partition-id"]), int(node["num-partitions"])
    except KeyError as missing:
        raise ValueError(
            f"the node config has no {missing}: start the SuperNode with "
            "--node-config 'partition-id=K num-partitions=N'"
        ) from None


def make_client_app(overrides: Optional[dict] = None) -> ClientApp:
    """The ClientApp, its run config updated with ``overrides`` (for
    :func:`metarec.flower.simulation.simulate`)."""
    app = ClientApp(mods=[clip_when_private])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        settings = Settings.from_run_config({**context.run_config, **(overrides or {})})
        return adapt_reply(msg, context, settings)

    return app


def adapt_reply(msg: Message, context: Context, settings: Settings) -> Message:
    """Adapts this client's users of the round from the received policy; the reply (or, with
    secure aggregation, the reply to one SecAgg+ stage)."""
    if settings.secure_aggregation:
        from .secure import is_secure, secure_reply

        if is_secure(msg):
            return secure_reply(msg, context, settings)
    theta = msg.content["arrays"][PARAMS].numpy().astype(np.float64)
    moved, c = client_update(settings, context, theta, int(msg.content["config"]["server-round"]))
    metrics = MetricRecord(
        {
            "num-examples": c.tasks,
            "episodes": c.episodes,
            "reward": c.reward,
            "loss": c.loss_sum / max(c.losses, 1),
        }
    )
    content = RecordDict({"arrays": ArrayRecord({PARAMS: Array(moved)}), "metrics": metrics})
    return Message(content=content, reply_to=msg)


def client_update(settings: Settings, context: Context, theta: np.ndarray, server_round: int):
    """This client's update in ``server_round``: (θ + Δ̄ₖ as float64, the contribution)."""
    meta = meta_for(settings)
    client, clients = _partition(context)
    iteration = server_round - 1
    c = meta.adapt(theta, meta.shard_users(clients, client, iteration), iteration)
    log.info(
        "client %d/%d, iteration %d: %d users, reward %.3f",
        client,
        clients,
        iteration,
        c.tasks,
        c.reward,
    )
    return theta + c.mean.astype(np.float64), c


app = make_client_app()
