"""The Python package over the crate: datasets, fine-tuning, meta-training, the federated
halves of Reptile / first-order MAML, evaluation, sessions, errors."""

import os
import subprocess

import numpy as np
import pytest

import metarec
from conftest import SMALL


def test_dataset_loads_and_splits(dataset):
    assert (dataset.n_users, dataset.n_items, dataset.n_ratings) == (943, 1682, 100_000)
    split = dataset.split(1)
    parts = [split["train"], split["validation"], split["cold_start"]]
    assert [len(p) for p in parts] == [660, 94, 189]
    assert len(set(np.concatenate(parts).tolist())) == 943


def test_errors_are_metarec_errors_with_the_cli_messages(tmp_path):
    with pytest.raises(metarec.MetarecError, match="cannot read"):
        metarec.Dataset(tmp_path / "missing")
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,rating\n1,2,x\n")
    with pytest.raises(metarec.MetarecError, match=r"ratings.csv:\d"):
        metarec.Dataset(bad)
    with pytest.raises(metarec.MetarecError, match="expected cavia, reptile or fomaml"):
        metarec.Meta(metarec.Dataset("synthetic:2"), algorithm="maml")


@pytest.mark.skipif(not os.environ.get("METAREC_CLI"), reason="METAREC_CLI (the metarec binary) not given")
def test_error_messages_are_the_cli_s(tmp_path):
    """`metarec data PATH` prints `error: MESSAGE`; the package raises MetarecError(MESSAGE)."""
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,rating\n1,2,x\n")
    for path in (bad, tmp_path / "missing"):
        cli = subprocess.run([os.environ["METAREC_CLI"], "data", str(path)], capture_output=True, text=True)
        assert cli.returncode != 0
        with pytest.raises(metarec.MetarecError) as raised:
            metarec.Dataset(path)
        assert cli.stderr.strip() == f"error: {raised.value}"


def test_finetune_reports_test_rmse():
    report = metarec.finetune(metarec.Dataset("synthetic:3"), seed=1, epochs=2)
    assert 0.0 < report["test_rmse"] < 2.0
    assert len(report["history"]) <= 2


def test_centralised_reptile_is_the_mean_of_sharded_clients(reptile):
    """Three clients holding every third training user: the mean of their contributions and
    the outer step give the centralised meta-iteration (as the Rust unit test checks too)."""
    theta = reptile.start()
    central, history = reptile.meta_train(theta)
    assert len(history) == SMALL["iterations"]
    adam = None
    for it in range(SMALL["iterations"]):
        parts = [reptile.adapt(theta, reptile.shard_users(3, c, it), it) for c in range(3)]
        assert sum(p.tasks for p in parts) == SMALL["users_per_iteration"]
        slots = sorted(s for c in range(3) for s, _ in reptile.shard_users(3, c, it))
        assert slots == [s for s, _ in reptile.iteration_users(it)]
        mean = sum(p.sum for p in parts) / sum(p.tasks for p in parts)
        theta, adam = reptile.outer_update(theta, mean, adam)
    assert theta.dtype == np.float32
    assert np.max(np.abs(theta - central)) < 1e-5
    assert np.max(np.abs(theta - reptile.start())) > 1e-4


def test_evaluation_and_sessions(reptile):
    params = reptile.start()
    hits = reptile.evaluate(params, users=reptile.cold_start_users[:5], rounds=4)
    assert hits.shape == (5, 4) and np.nanmax(hits) <= 1.0
    again = reptile.evaluate(params, users=reptile.cold_start_users[:5], rounds=4)
    np.testing.assert_array_equal(hits, again)

    bundle = reptile.bundle(params)
    session = metarec.Session(bundle, seed=3)
    assert session.adapts_network
    first = session.recommend(k=3)
    assert len({r["item"] for r in first}) == 3
    assert all(0.0 < r["propensity"] <= 1.0 for r in first)
    session.feedback(first[0]["item"], 1.0)
    with pytest.raises(metarec.MetarecError, match=r"reward must be in \[0, 1\], got 2"):
        session.feedback(first[1]["item"], 2.0)
    with pytest.raises(metarec.MetarecError, match="already had feedback"):
        session.feedback(first[0]["item"], 0.0)
    restored = metarec.Session.restore(bundle, session.to_bytes())
    assert restored.recommend(k=5, greedy=True) == session.recommend(k=5, greedy=True)


def test_bad_parameters_are_refused(reptile):
    with pytest.raises(metarec.MetarecError, match="parameters, got 3"):
        reptile.evaluate(np.zeros(3, np.float32))
    with pytest.raises(metarec.MetarecError, match="outside the dataset"):
        reptile.adapt(reptile.start(), [(0, 10_000)], 0)
    with pytest.raises(metarec.MetarecError, match="not one of 3 clients"):
        reptile.shard_users(3, 3, 0)
