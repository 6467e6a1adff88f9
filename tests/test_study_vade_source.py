"""VaDE-H's sweep as the source ran it (issue 19) in quick mode: runs, monitoring, figures, resume, render."""

import pickle
import re

import numpy as np
import pytest

from mixclust.studies import vade_source as study


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("vade_source")
    cache = out / "runs.pkl"
    return study.run(out, quick=True, seed=0, cache=cache), cache


def test_report_sets_the_published_table_beside_both_objectives(quick):
    readme, _ = quick
    text = readme.read_text()
    assert "mixclust reproduce vade-source --quick --seed 0" in text
    assert "0.335 / 0.157 / 0.337 / 0.911" in text  # the published eta = 0 row
    assert "| eta | published NMI / ARI / H / conf | (a) NMI |" in text and "(c) NMI" in text
    assert "Not run yet" not in text
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text):
        assert (readme.parent / name).stat().st_size > 1000, name
    assert "## What the source leaves open" in text and "| uniform prior weights | 0 | 0 |" in text
    for stem in ("change_from_eta0", "nmi_vs_entropy", "prior_means_per_epoch", "entropy_histograms"):
        assert f"{stem}.png" in text


def test_runs_record_the_monitoring_and_a_rerun_trains_nothing(quick, monkeypatch):
    readme, cache = quick
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    assert sorted((k[2], k[3]) for k in runs if len(k) == 6) == [("a", 0.0), ("a", 1.0), ("c", 0.0), ("c", 1.0)]
    # the two open questions, for objective (a), keyed apart from the sweep's runs
    assert sorted(k[6] for k in runs if len(k) == 7) == sorted(study.VARIANTS)
    per_pixel = runs[(*study._key(study.QUICK, 0, "a", 0.0), "squared error averaged over pixels")]
    assert per_pixel["variant"] == "squared error averaged over pixels"
    sweep = runs[study._key(study.QUICK, 0, "a", 0.0)]
    assert sweep["decoder_variance"] == 0.5 and sweep["prior_weights"] == "laplace"
    assert per_pixel["decoder_variance"] == 0.5 * per_pixel["n_features"]
    assert runs[(*study._key(study.QUICK, 0, "a", 0.0), "uniform prior weights")]["prior_weights"] == "uniform"
    for record in runs.values():
        # the prior's start plus one entry per epoch run; the histogram counts every test object once
        assert record["mu_trace"].shape == (record["epochs_run"] + 1, 10, 10)
        assert int(np.sum(record["H_hist"])) == record["n_test"] <= 400
        assert len(record["val_nmi"]) == record["epochs_run"] <= 2

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(study._TracedVaDE, "fit", refuse)
    monkeypatch.setattr(study._TracedVaDE, "pretrain", refuse)
    assert study.run(readme.parent, quick=True, seed=0, cache=cache) == readme


def test_a_partial_cache_renders_with_the_missing_runs_listed(quick, tmp_path, monkeypatch):
    _, cache = quick
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    partial = {k: v for k, v in runs.items() if k[2] == "a"}
    with open(tmp_path / ".runs.pkl", "wb") as handle:
        pickle.dump(partial, handle)
    monkeypatch.setattr(study, "FULL", study.QUICK)
    text = study.render(tmp_path).read_text()
    assert "**Not run yet** (2 of 6 runs" in text and "seed 0 (c) eta 0.0" in text
    assert "| 0 | 0.335 / 0.157 / 0.337 / 0.911 |" in text and "not run yet" in text


def test_the_kept_epoch_is_the_best_validation_nmi():
    train = [{"val_nmi": 0.2}, {"val_nmi": 0.5}, {"val_nmi": 0.5}, {"val_nmi": 0.4}]
    assert study._best_epoch(train, patience=5) == 2  # the first of equal bests, as early stopping keeps it
    assert study._best_epoch(train, patience=None) == 4  # no early stopping: the last epoch
    assert study._best_epoch([{"loss": 1.0}, {"loss": 0.5}], patience=5) == 2  # no validation: the last


def test_scale_verdict_names_the_scale_whose_nmi_and_entropy_match_the_table():
    name = "squared error averaged over pixels"
    nmi, H = study.PUBLISHED[0.0][0], study.PUBLISHED[0.0][2]
    cfg = {"variant_etas": (0.0,)}
    table = {("a", 0.0): [{"seed": 0, "nmi": nmi + 0.2, "H": H + 1.0}]}
    averaged = [{"variant": name, "eta": 0.0, "seed": 0, "nmi": nmi + 0.01, "H": H - 0.02}]
    assert "fit the squared error averaged over the pixels" in study._scale_verdict(table, averaged, cfg)
    far = [{**averaged[0], "nmi": nmi + 0.3, "H": H + 1.2}]
    text = study._scale_verdict(table, far, cfg)
    assert "fit neither scale" in text and "the summed error is nearer" in text and "(1.200 against 1.500)" in text
    assert study._scale_verdict(table, [{**averaged[0], "seed": 5}], cfg) == ""  # no seed both ran
