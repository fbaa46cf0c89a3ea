"""metarec from Python: datasets, the fine-tune stage, meta-training (CAVIA, Reptile,
first-order MAML) on a dataset's training users, evaluation on held-out users, sessions, and
the federated halves of Reptile / first-order MAML that the Flower apps in
:mod:`metarec.flower` run.

Everything runs in the Rust crate (``metarec._native``) on its CPU engine; parameters come
back as ``numpy.float32`` arrays, reports as dicts. Errors raise :class:`MetarecError` with
the messages the ``metarec`` command line prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from typing import Optional, Sequence, Union

import numpy as np

from ._native import MetarecError, NativeDataset, NativeMeta, NativeSession
from ._native import finetune as _finetune
from ._native import policy_params as _policy_params

__all__ = [
    "Contribution",
    "Dataset",
    "Meta",
    "MetarecError",
    "Session",
    "finetune",
    "policy_params",
]


def _f32(values) -> bytes:
    array = np.ascontiguousarray(values, dtype="<f4")
    if array.ndim != 1:
        raise MetarecError(f"expected a flat parameter vector, got shape {array.shape}")
    return array.tobytes()


def _array(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").copy()


class Dataset:
    """A ratings dataset as ``metarec data`` reads it: a MovieLens directory, a ratings file,
    or ``"synthetic[:SEED]"``."""

    def __init__(self, path: Union[str, PathLike]):
        self._native = NativeDataset.load(str(path))

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def n_users(self) -> int:
        return self._native.n_users

    @property
    def n_items(self) -> int:
        return self._native.n_items

    @property
    def n_ratings(self) -> int:
        return self._native.n_ratings

    def split(self, seed: int = 1) -> dict:
        """The 70 / 10 / 20 user split of ``seed`` as arrays of dense user indices."""
        train, validation, cold_start = self._native.split(seed)
        return {
            "train": np.array(train, dtype=np.uint32),
            "validation": np.array(validation, dtype=np.uint32),
            "cold_start": np.array(cold_start, dtype=np.uint32),
        }

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"ratings={self.n_ratings})"
        )


def finetune(dataset: Dataset, seed: int = 1, epochs: Optional[int] = None) -> dict:
    """The supervised stage (``metarec train --stages finetune``): the report, with
    ``test_rmse``, ``test_mae``, ``validation_rmse``, ``best_epoch`` and the epoch history."""
    return json.loads(_finetune(dataset._native, seed, epochs))


def policy_params(bundle: bytes) -> np.ndarray:
    """The policy parameters stored in a bundle (``metarec train --out``, :meth:`Meta.bundle`)."""
    return _array(_policy_params(bytes(bundle)))


@dataclass
class Contribution:
    """What adapting some users from the shared parameters produced (a federated client's
    reply): ``sum`` (float64) of the per-user deltas (Reptile: adapted − θ; first-order MAML: the query
    gradient), the users in it, and the episodes' rewards and losses."""

    sum: np.ndarray
    tasks: int
    episodes: int
    reward_sum: float
    rounds: int
    loss_sum: float
    losses: int
    skipped: int

    @property
    def mean(self) -> np.ndarray:
        """The mean delta (zeros without tasks)."""
        return self.sum / max(self.tasks, 1)

    @property
    def reward(self) -> float:
        """Mean reward per round over the episodes."""
        return self.reward_sum / max(self.rounds, 1)


class Meta:
    """Meta-training on the training users of ``dataset`` (split by ``seed``): the rating
    network is fine-tuned on their ratings and the policy starts at its ranking for a new user,
    as ``metarec train --stages meta`` does. ``algorithm`` is ``"reptile"``, ``"fomaml"`` or
    ``"cavia"``; the other settings default to the command line's."""

    def __init__(
        self,
        dataset: Dataset,
        seed: int = 1,
        algorithm: str = "reptile",
        iterations: int = 150,
        users_per_iteration: int = 16,
        rounds: int = 20,
        param_lr: float = 1e-3,
        reptile_step: float = 1.0,
        outer_lr: float = 3e-3,
        finetune_epochs: Optional[int] = None,
    ):
        self.dataset = dataset
        self._native = NativeMeta(
            dataset._native,
            seed,
            algorithm,
            iterations,
            users_per_iteration,
            rounds,
            param_lr,
            reptile_step,
            outer_lr,
            finetune_epochs,
        )
        self.config = json.loads(self._native.config())
        train, validation, cold_start = self._native.split()
        self.train_users = np.array(train, dtype=np.uint32)
        self.validation_users = np.array(validation, dtype=np.uint32)
        self.cold_start_users = np.array(cold_start, dtype=np.uint32)

    @property
    def algorithm(self) -> str:
        return self.config["algorithm"]

    def start(self) -> np.ndarray:
        """The policy's parameters before meta-training."""
        return _array(self._native.start())

    def meta_train(self, params=None) -> tuple[np.ndarray, list[dict]]:
        """Centralised meta-training for the configured iterations from ``params`` (default:
        the start): the parameters and the per-iteration history (``mean_reward``, ``loss``)."""
        raw, history = self._native.meta_train(None if params is None else _f32(params))
        return _array(raw), json.loads(history)

    def iteration_users(self, iteration: int) -> list[tuple[int, int]]:
        """(slot, user) of every user of centralised meta-iteration ``iteration``."""
        return self._native.iteration_users(iteration)

    def shard_users(self, clients: int, client: int, iteration: int) -> list[tuple[int, int]]:
        """The part of meta-iteration ``iteration``'s users held by ``client`` of ``clients``
        (the training users dealt out round-robin)."""
        if not 0 <= client < clients:
            raise MetarecError(f"client {client} is not one of {clients} clients")
        return self._native.shard_users(clients, client, iteration)

    def adapt(self, params, users: Sequence[tuple[int, int]], iteration: int) -> Contribution:
        """Runs the inner loop for ``users`` ((slot, user) pairs) from ``params``."""
        raw, report = self._native.adapt(_f32(params), list(users), iteration)
        return Contribution(sum=np.frombuffer(raw, dtype="<f8").copy(), **json.loads(report))

    def outer_update(self, params, mean, adam=None):
        """The outer step on the mean contribution: Reptile moves ``params`` by
        ``reptile_step`` along it, first-order MAML takes an Adam step with it as gradient.
        ``adam`` is the state returned by the previous call (None at first). Returns
        ``(new_params or None when not finite, adam)``."""
        n = len(params)
        m, v, step = adam if adam is not None else (np.zeros(n, "<f4"), np.zeros(n, "<f4"), 0)
        new, m, v, step = self._native.outer_update(_f32(params), _f32(mean), _f32(m), _f32(v), step)
        return (None if new is None else _array(new)), (_array(m), _array(v), step)

    def evaluate(self, params, users=None, rounds: Optional[int] = None, seed: Optional[int] = None) -> np.ndarray:
        """One episode per user (default: the cold-start users) with the policy ``params``
        adapting per user as ``metarec eval`` runs it: likes per user and round, as a
        ``users × rounds`` array (NaN after an episode ended early)."""
        users = None if users is None else [int(u) for u in users]
        hits = self._native.evaluate(_f32(params), users, rounds, seed)
        width = max((len(h) for h in hits), default=0)
        out = np.full((len(hits), width), np.nan)
        for i, h in enumerate(hits):
            out[i, : len(h)] = h
        return out

    def bundle(self, params) -> bytes:
        """A bundle (catalog, item features, this policy) as bytes, as ``metarec train --out``
        writes it."""
        return self._native.bundle(_f32(params))


class Session:
    """One person's session over a bundle's policy: ``recommend`` / ``feedback``, saved with
    ``to_bytes`` and restored with :meth:`Session.restore`."""

    def __init__(self, bundle: bytes, seed: int = 1):
        self._native = NativeSession(bytes(bundle), seed)

    @classmethod
    def restore(cls, bundle: bytes, state: bytes) -> "Session":
        """The session saved by :meth:`to_bytes`, on the policy of ``bundle``."""
        session = cls.__new__(cls)
        session._native = NativeSession.restore(bytes(bundle), bytes(state))
        return session

    def recommend(self, k: int = 1, greedy: bool = False) -> list[dict]:
        """``k`` items not shown yet, each ``{"item", "score", "propensity"}``."""
        return [
            {"item": item, "score": score, "propensity": propensity}
            for item, score, propensity in self._native.recommend(k, greedy)
        ]

    def feedback(self, item: int, reward: float) -> None:
        """Learns from one reaction (reward in [0, 1])."""
        self._native.feedback(item, reward)

    @property
    def adapts_network(self) -> bool:
        return self._native.adapts_network

    def to_bytes(self) -> bytes:
        return self._native.to_bytes()
