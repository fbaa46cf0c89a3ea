"""The run configuration shared by the Flower client and server apps, and the per-process
cache of the meta-training setup (the fine-tuned start is computed once per process)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from .. import Dataset, Meta, MetarecError

#: Run-config keys (``[tool.flwr.app.config]`` of the Flower app) and their defaults.
DEFAULTS = {
    "data-path": "",
    "seed": 1,
    "algorithm": "reptile",
    "num-server-rounds": 150,
    "users-per-iteration": 16,
    "episode-rounds": 20,
    "param-lr": 1e-3,
    "reptile-step": 1.0,
    "outer-lr": 3e-3,
    "finetune-epochs": 0,
    "clipping-norm": 0.0,
    "noise-multiplier": 0.0,
    "dp-delta": 1e-5,
    "secure-aggregation": False,
    "eval-every": 0,
    "eval-users": 0,
    "round-timeout": 3600.0,
    "min-clients": 2,
    "out-dir": "",
}


@dataclass(frozen=True)
class Settings:
    data_path: str
    seed: int
    algorithm: str
    num_server_rounds: int
    users_per_iteration: int
    episode_rounds: int
    param_lr: float
    reptile_step: float
    outer_lr: float
    finetune_epochs: int
    clipping_norm: float
    noise_multiplier: float
    dp_delta: float
    secure_aggregation: bool
    eval_every: int
    eval_users: int
    round_timeout: float
    min_clients: int
    out_dir: str

    @classmethod
    def from_run_config(cls, run_config) -> "Settings":
        unknown = set(run_config) - set(DEFAULTS)
        if unknown:
            raise MetarecError(f"unknown run-config keys: {sorted(unknown)}")
        values = {}
        for f in fields(cls):
            key = f.name.replace("_", "-")
            value = run_config.get(key, DEFAULTS[key])
            default = DEFAULTS[key]
            if isinstance(default, bool) and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise MetarecError(f"run-config {key} must be true or false, got {value!r}")
                value = value.lower() in ("true", "1")
            values[f.name] = type(default)(value)
        return cls(**values)

    @property
    def private(self) -> bool:
        return self.clipping_norm > 0.0

    def dataset_path(self) -> str:
        """The dataset: ``data-path``, else ``$METAREC_ML100K``, else ``../shared/data/ml-100k``."""
        if self.data_path:
            return self.data_path
        return os.environ.get("METAREC_ML100K") or str(Path("../shared/data/ml-100k").resolve())


@lru_cache(maxsize=4)
def _meta(s: Settings) -> Meta:
    return Meta(
        Dataset(s.dataset_path()),
        seed=s.seed,
        algorithm=s.algorithm,
        iterations=s.num_server_rounds,
        users_per_iteration=s.users_per_iteration,
        rounds=s.episode_rounds,
        param_lr=s.param_lr,
        reptile_step=s.reptile_step,
        outer_lr=s.outer_lr,
        finetune_epochs=s.finetune_epochs or None,
    )


def meta_for(s: Settings) -> Meta:
    """The meta-training setup of ``s`` (built once per process). Only the settings that
    shape it are part of the key, so a server and its clients agree on it."""
    keep = {}
    for f in fields(Settings):
        key = f.name.replace("_", "-")
        if key in _NOT_SHAPING:
            keep[f.name] = type(DEFAULTS[key])(DEFAULTS[key])
    return _meta(replace(s, **keep))


_NOT_SHAPING = {
    "secure-aggregation",
    "clipping-norm",
    "noise-multiplier",
    "dp-delta",
    "eval-every",
    "eval-users",
    "round-timeout",
    "min-clients",
    "out-dir",
}
