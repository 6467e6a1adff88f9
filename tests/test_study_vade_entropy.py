"""The vade-entropy study (SPEC §2) in quick mode: tables beside the published ones, figures, resumable cache."""

import pickle
import re

import pytest

from mixclust.studies import vade_entropy as study


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("vade_entropy")
    cache = out / "runs.pkl"
    path = study.run(out, quick=True, seed=0, cache=cache)
    return path, cache


def test_readme_has_published_table_all_objectives_and_figures(quick):
    readme, _ = quick
    text = readme.read_text()
    assert "mixclust reproduce vade-entropy --quick --seed 0" in text
    assert "| eta | published NMI | published ARI | published H | published conf |" in text
    for published in ("0.335", "0.157", "0.911", "0.511", "0.643"):
        assert published in text
    for name in study.OBJECTIVE_NAMES.values():
        assert name in text
    assert "mixclust.VaDE with its defaults" in text
    assert "| data | prior covariance |" in text and "(default)" in text
    assert re.search(r"the (full|diagonal) prior clusters better \(test NMI", text)
    assert "3. Toward NMI 0.85" in text and re.search(r"it \*\*(reaches|does not reach)\*\* the target", text)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert "eta_curves.png" in figures and any(f.startswith("prototypes_defaults") for f in figures)
    assert any(f.startswith("target_") and f.endswith("_val_nmi.png") for f in figures)
    for name in figures:
        assert (readme.parent / name).stat().st_size > 1000, name


def test_every_run_is_cached_and_a_rerun_trains_nothing(quick, monkeypatch):
    readme, cache = quick
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    cfg = study.QUICK
    assert len([k for k in runs if k[0] == "sweep"]) == cfg["seeds"] * len(study.OBJECTIVES) * len(cfg["etas"])
    assert sorted(k[3] for k in runs if k[0] == "defaults") == ["diag", "full", "target"]
    for record in runs.values():
        assert 0.0 <= record["nmi"] <= 1.0 and 0.0 < record["confidence"] <= 1.0

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(study.VaDE, "fit", refuse)
    monkeypatch.setattr(study.VaDE, "pretrain", refuse)
    assert study.run(readme.parent, quick=True, seed=0, cache=cache) == readme


def test_summary_and_published_fit_are_computed_from_the_runs():
    runs = [{"objective": k, "eta": e, "seed": s, "nmi": 0.5 + e, "ari": 0.4, "acc": 0.6, "H": 0.3 + e,
             "confidence": 0.9 - e / 10, "seconds": 1.0, "epochs_run": 2, "n_used_clusters": 10}
            for k in study.OBJECTIVES for e in (0.0, 1.0) for s in (0, 1)]
    table = study.summarise(runs)
    assert table[("a", 1.0)]["nmi"] == [1.5, 1.5]
    fit = study._published_fit(table, [0.0, 1.0])
    assert fit["a"]["nmi"] == pytest.approx((abs(0.5 - 0.335) + abs(1.5 - 0.511)) / 2)
    assert study._spearman_sign([0, 1, 2], [0.1, 0.2, 0.15]) == 0.5


def test_the_source_is_set_against_its_own_table(tmp_path):
    from mixclust.reports import Report
    from mixclust.studies.vade_entropy import PUBLISHED, published_against_itself

    report = Report(tmp_path, "t", "cmd", 0)
    published_against_itself(report)
    text = report.write().read_text()
    # the three steps of eta where the published H falls or the confidence rises, read off its table
    assert "breaks that claim at 3 of 6 steps" in text
    assert "| 0.2 -> 0.3 | 0.482 -> 0.480 | 0.869 -> 0.879 | H falls, confidence rises |" in text
    assert (tmp_path / "published_change_from_eta0.png").is_file() and PUBLISHED[0.0][0] == 0.335
