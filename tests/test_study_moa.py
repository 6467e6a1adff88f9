"""The MoA+ study (SPEC §1) in quick mode: tables beside the published numbers, figures, bound checks, cache."""

import pickle
import re

import pytest

from mixclust.moa import LOSSES
from mixclust.studies import moa as study


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("moa")
    cache = out / "runs.pkl"
    return study.run(out, quick=True, seed=0, cache=cache), cache


def test_readme_has_every_loss_the_published_numbers_and_figures(quick):
    readme, _ = quick
    text = readme.read_text()
    assert "mixclust reproduce moa --quick --seed 0" in text
    for loss in LOSSES:
        assert f"| {loss} |" in text
    assert "0.013 / 0.000" in text and "0.015 / 0.276" in text
    assert "The source's bound during training" in text
    assert "Longer training, a balance term and a GMM start" in text
    assert "| M | start | loss | balance | epochs | seeds | NMI |" in text
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    for stem in ("reconstructions_mnist_M2", "router_histograms_mnist_M2", "label_by_cluster_mnist_M2",
                 "label_by_cluster_mnist_M10"):
        assert f"{stem}.png" in figures
    for name in figures:
        assert (readme.parent / name).stat().st_size > 1000, name


def test_runs_are_cached_with_bound_diagnostics_and_a_rerun_trains_nothing(quick, monkeypatch):
    readme, cache = quick
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    # 6 losses for M = 2 and 10, plus the ema and random-start variants for M = 2, plus 4 longer runs
    assert len(runs) == 2 * len(LOSSES) + 2 + 4
    assert sorted(key[3:] for key in runs if key[0] == "longer") == [
        (0, "gmm", "competitive", 5.0, 1, 3), (0, "kmeans", "competitive", 0.0, 1, 2),
        (0, "kmeans", "competitive", 5.0, 1, 2), (1, "gmm", "competitive", 5.0, 1, 3)]
    for record in runs.values():
        assert 0.0 <= record["nmi"] <= 1.0 and sum(record["sizes"]) == 600
        if record["loss"] in ("bound", "frobenius_bound"):
            assert all(0.0 <= v <= 1.0 for v in record["bound_below_exact"])
        if record["loss"] == "frobenius_bound":
            assert record["bound_below_exact"] == [0.0] * len(record["bound_below_exact"])

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(study.MoA, "fit", refuse)
    monkeypatch.setattr(study.MoA, "initialise", refuse)
    assert study.run(readme.parent, quick=True, seed=0, cache=cache) == readme

