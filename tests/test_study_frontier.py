"""The frontier study (issue 18) in quick mode: every step of the route and VaDE reported under both protocols,
with calibration, reliability diagrams and the published rows; an interrupted study resumes from its cache."""

import pickle

import numpy as np
import pytest

from mixclust import metrics
from mixclust.studies import frontier as study


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("frontier")
    path = study.run(out, quick=True, seed=0, cache=out / "runs.pkl")
    return path, out


def test_report_has_every_method_protocol_and_figure(finished):
    path, out = finished
    text = path.read_text()
    assert "mixclust reproduce frontier --quick --seed 0" in text
    for protocol in study.PROTOCOLS:
        assert f"protocol `{protocol}`" in text
        assert (out / f"reliability_mnist_{protocol}.png").stat().st_size > 5000
    for method in study.METHODS:
        assert text.count(f"| {method} | 1 |") == len(study.PROTOCOLS)  # its row in each summary table
    # the published rows sit under the literature's protocol only
    assert text.count("N2D (AE 1,000 epochs") == 1


def test_every_training_run_checkpoints_beside_the_cache(finished):
    _, out = finished
    runs = pickle.loads((out / "runs.pkl").read_bytes())
    for name, protocol, seed, part in runs:
        folder = out / ".checkpoints" / f"{name}-{protocol}-{seed}-{part}"
        assert any(p.suffix == ".pt" for p in folder.rglob("*")), folder  # a stopped run resumes from here


def test_route_rows_share_one_autoencoder_and_score_calibration(finished):
    _, out = finished
    runs = pickle.loads((out / "runs.pkl").read_bytes())
    for (_name, protocol, _seed, part), rows in runs.items():
        if part != "route":
            continue
        ae = {r["stages"]["autoencoder"] for r in rows if "autoencoder" in r["stages"]}
        assert len(ae) == 1  # one shared network per (set, protocol, seed)
        for r in rows:
            assert 0.0 <= r["nmi"] <= 1.0
            if r["ece"] is not None:
                assert 0.0 <= r["ece"] <= 1.0
                assert sum(r["bins"]["count"]) == (300 if protocol == "test" else 900)


def test_rerun_resumes_from_the_cache(finished, monkeypatch):
    path, out = finished
    before = (out / "runs.pkl").read_bytes()
    monkeypatch.setattr(study, "route", lambda *a, **k: pytest.fail("a cached run was trained again"))
    monkeypatch.setattr(study, "vade", lambda *a, **k: pytest.fail("a cached run was trained again"))
    study.run(out, quick=True, seed=0, cache=out / "runs.pkl")
    assert (out / "runs.pkl").read_bytes() == before


def test_render_reports_the_finished_runs_and_lists_the_missing(tmp_path):
    (tmp_path / ".runs.pkl").write_bytes(pickle.dumps({}))
    text = study.render(tmp_path).read_text()
    assert "**Not run yet**" in text and "mnist `all` seed 0 route" in text and "fashion `test` seed 2 vade" in text


def test_every_set_names_a_registered_data_set():
    from mixclust import datasets

    assert set(study.DATA) == set(study.SETS)
    assert all(name in datasets.DATASETS for name in study.DATA.values())


def test_runs_cached_under_the_old_vade_names_are_read_under_todays_or_rerun():
    old = [{"method": "vade (default)", "restarts": 1, "nmi": 0.93},
           {"method": "vade latent, UMAP + GMM partition, neighbour map (probe)", "nmi": 0.94}]
    assert [r["method"] for r in study._read_legacy(old)] == list(study.METHODS[4:6])
    assert study._read_legacy([{**old[0], "restarts": 2}, old[1]]) is None  # a restart now sees the partition
    today = [{"method": study.METHODS[4], "restarts": 2}]
    assert study._read_legacy(today) == today


def test_render_shows_old_cached_vade_rows_under_todays_names(tmp_path):
    """Runs cached before partition="manifold" was the default (as in reports/frontier) render as today's rows."""
    (tmp_path / ".runs.pkl").write_bytes(pickle.dumps({
        ("mnist", "all", 0, "vade"): [{"method": "vade (default)", "restarts": 1, "nmi": 0.93, "acc": 0.97,
                                       "ari": 0.94, "ece": 0.02, "bins": None, "seconds": 60.0,
                                       "stages": {"VaDE fit": 60.0}},
                                      {"method": "vade latent, UMAP + GMM partition, neighbour map (probe)",
                                       "nmi": 0.94, "acc": 0.98, "ari": 0.95, "ece": 0.01, "bins": None,
                                       "seconds": 66.0, "stages": {"VaDE fit": 60.0, "partition": 6.0}}]}))
    text = study.render(tmp_path).read_text()
    assert f"| {study.METHODS[5]} | 1 | 0.940" in text and "probe" not in text.split("## mnist")[1]
    # the fit's old stage name is read under today's, so its seeds share one row of the stage table
    assert f"| {study.METHODS[5]} | VaDE fit (both rows) | seed 0: 60 |" in text and "| VaDE fit |" not in text


def test_calibration_text_reads_confidence_and_accuracy_from_the_bins():
    # two clusters, every image assigned with confidence 0.95; cluster 1 holds half of class 2 as well
    y = np.array([0] * 50 + [1] * 50 + [2] * 50)
    proba = np.full((150, 3), 0.025)
    proba[np.arange(150), np.r_[[0] * 50, [1] * 50, [1] * 25, [2] * 25]] = 0.95
    bins = metrics.calibration_bins(y, proba)
    row = {"set": "fashion", "protocol": "all", "seed": 0, "method": study.METHODS[5], "bins": bins,
           "ece": metrics.ece_from_bins(bins)}
    text = study._calibration_text([row], "fashion", "all")
    assert "mean confidence 0.950 against accuracy 0.833" in text  # 125 of 150 after the matching
    assert "the 100 % of images assigned with confidence above 0.9 are 83 % correct" in text
    assert "**not met**" in text and study._calibration_text([row], "mnist", "all") == ""


def test_render_shows_the_few_label_calibration_evidence_when_present(tmp_path):
    (tmp_path / ".runs.pkl").write_bytes(pickle.dumps({}))
    assert "Calibration with a few labels" not in study.render(tmp_path).read_text()
    (tmp_path / study.FEW_LABEL_EVIDENCE).write_text(
        '{"model": "vade", "set": "digits", "n": 1797, "nmi": 0.886, "acc": 0.8687, "ece": 0.1013}\n'
        '{"model": "vade", "set": "digits", "labelled": 100, "method": "smoothing", "draws": 20, "ece_before": '
        '0.1016, "ece_after_mean": 0.0754, "ece_after_std": 0.0125, "ece_after_worst": 0.1017, '
        '"temperature_median": 1.0, "smoothing_median": 0.0812}\n')
    text = study.render(tmp_path).read_text()
    assert "| vade | digits | 0.869 | 100 | smoothing | 0.102 | 0.075 ± 0.013 | 0.102 | 1.00 | 0.081 |" in text
