"""The AE-vs-VAE source's claims (issue 19) in quick mode, and the compactness measure."""

import pickle

import numpy as np
import pytest

from mixclust.studies import aevae_claims as study


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("aevae_claims")
    cache = out / "runs.pkl"
    return study.run(out, quick=True, seed=0, cache=cache), cache


def test_report_measures_each_claim(quick):
    readme, _ = quick
    text = readme.read_text()
    assert "mixclust reproduce aevae-claims --quick --seed 0" in text
    for heading in ("1. Which model more often gives the right digit after denoising?",
                    "2. Are the AE's latent clouds more compact?", "3. Trained on the test images, as the source did",
                    "4. The source's decoder: transposed convolutions against nearest upsampling"):
        assert heading in text
    assert "| 0.2 |" in text and "| 0 (clean) |" in text and "noise levels, so the claim" in text
    assert (readme.parent / "denoised_accuracy.png").stat().st_size > 1000
    assert "| AE | transposed convolutions |" in text and "AE / VAE test MSE:" in text


def test_runs_are_cached_and_the_test_protocol_fits_the_test_images(quick, monkeypatch):
    readme, cache = quick
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    fits = [r for k, r in runs.items() if k[0] != "classifier"]
    assert sorted((r["protocol"], r["model"]) for r in fits) == sorted(
        (p, m) for p in (study.PROPER, study.ON_TEST, study.TRANSPOSED) for m in ("AE", "VAE"))
    n_test = {r["n_fit"] for r in fits if r["protocol"] == study.ON_TEST}
    assert len(n_test) == 1 and n_test != {r["n_fit"] for r in fits if r["protocol"] != study.ON_TEST}
    # the source's decoder only where asked: section 4's pair, trained on the training images like the proper split
    assert {r["protocol"] for r in fits if r["decoder"] == "transposed"} == {study.TRANSPOSED}
    for r in fits:
        if r["protocol"] != study.ON_TEST:
            assert 0.0 <= min(r["denoised_accuracy"].values()) <= 1.0 and r["compactness"] > 0

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(study.AutoEncoder, "fit", refuse)
    monkeypatch.setattr(study.VAE, "fit", refuse)
    assert study.run(readme.parent, quick=True, seed=0, cache=cache) == readme


def test_compactness_is_scale_free_and_orders_tight_and_loose_classes():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    tight = centres[y] + 0.5 * rng.normal(size=(300, 2))
    loose = centres[y] + 3.0 * rng.normal(size=(300, 2))
    assert study.compactness(tight, y) < study.compactness(loose, y)
    assert study.compactness(7.0 * tight, y) == pytest.approx(study.compactness(tight, y))
