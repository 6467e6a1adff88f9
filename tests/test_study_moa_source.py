"""MoA+ as the source ran it (issue 19) in quick mode: the random start, the test split, the published tables."""

import pickle

import pytest

from mixclust.studies import moa_source as study


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("moa_source")
    cache = out / "runs.pkl"
    return study.run(out, quick=True, seed=0, cache=cache), cache


def test_the_published_tables_sit_beside_ours(quick):
    readme, _ = quick
    text = readme.read_text()
    assert "mixclust reproduce moa-source --quick --seed 0" in text
    assert '`MoA(n_clusters=2, init="random", loss=..., epochs=1, balance=0, n_init=1)`' in text
    # the published MoE column (the test split's class shares) and the MoA+ cluster of each digit
    assert "| 0 | 9.80 | 1 |" in text and "| 1 | 11.35 | 0 |" in text and "| 5 | 8.92 | not stated |" in text
    assert "0.015 / 0.276 (MoA+)" in text and "0.013 / 0.000 (MoE)" in text
    assert (readme.parent / "source_router_histograms_mnist.png").stat().st_size > 1000
    assert "| on the black output |" in text or "on the black output |" in text


def test_runs_start_at_random_score_the_test_split_and_are_cached(quick, monkeypatch):
    readme, cache = quick
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    assert sorted(key[4] for key in runs if key[0] == "source") == ["blend", "bound"]
    black = [value for key, value in runs.items() if key[0] == "black-output mse"]
    assert len(black) == 1 and 0.0 < black[0] < 1.0  # the mean of x^2 over the test images
    for record in (r for key, r in runs.items() if key[0] == "source"):
        assert record["init"] == "random" and record["n_train"] == 600 and record["n_test"] == 300
        assert sum(record["sizes"]) == 300
        # each column of the label table (a cluster) sums to 100
        assert abs(record["figures"]["confusion"]["percent"].sum(0) - 100).max() < 1e-9

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(study.MoA, "fit", refuse)
    monkeypatch.setattr(study.MoA, "initialise", refuse)
    assert study.run(readme.parent, quick=True, seed=0, cache=cache) == readme


def test_a_run_on_the_black_output_is_counted():
    black = {"mnist": 0.1025}
    assert study._on_black({"data": "mnist", "mse": 0.1140 * 0.9}, black)  # 0.1026
    assert not study._on_black({"data": "mnist", "mse": 0.0607}, black)
