"""Shared fixtures: MovieLens 100K (``$METAREC_ML100K``, else ``../shared/data/ml-100k`` beside
the checkout; a missing dataset fails the tests that need it) and one small meta-training
setup per session."""

import os
from pathlib import Path

import pytest

import metarec

REPO = Path(__file__).resolve().parents[2]


def ml100k_path() -> Path:
    path = Path(os.environ.get("METAREC_ML100K") or REPO.parent / "shared" / "data" / "ml-100k")
    assert (path / "u.data").is_file() and (path / "u.item").is_file(), (
        f"MovieLens 100K not found at {path} (set METAREC_ML100K)"
    )
    return path.resolve()


@pytest.fixture(scope="session")
def ml100k() -> Path:
    return ml100k_path()


#: A small meta-training setup: one fine-tune epoch, 6 users × 5 rounds per iteration.
SMALL = dict(seed=1, iterations=3, users_per_iteration=6, rounds=5, finetune_epochs=1)


@pytest.fixture(scope="session")
def dataset(ml100k) -> metarec.Dataset:
    return metarec.Dataset(ml100k)


@pytest.fixture(scope="session")
def reptile(dataset) -> metarec.Meta:
    return metarec.Meta(dataset, algorithm="reptile", **SMALL)
