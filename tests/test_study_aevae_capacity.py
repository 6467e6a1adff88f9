"""The AE/VAE capacity study (issue 19) in quick mode: every cell trained once, cached, rendered from the cache."""

import pickle

import numpy as np

from mixclust.studies import aevae_capacity as study


def test_quick_grid_is_cached_converges_or_says_why_and_renders(tmp_path, monkeypatch):
    cache = tmp_path / ".runs.pkl"
    readme = study.run(tmp_path, quick=True, seed=0, cache=cache)
    text = readme.read_text()
    assert "mixclust reproduce aevae-capacity --quick --seed 0" in text
    with open(cache, "rb") as handle:
        runs = pickle.load(handle)
    assert sorted(k[:3] for k in runs) == sorted(study.grid(study.QUICK))
    for run in runs.values():
        assert 1 <= run["best_epoch"] <= run["epochs_run"] <= study.QUICK["max_epochs"]
        # the kept weights are the best epoch's (early stopping restores them), not the last epoch's
        assert abs(run["kept_val_mse"] - min(run["val_curve"])) < 1e-6
        assert run["seconds"] > 0
        assert 0.0 < run["test_mse"] < 1.0
        assert f"| {run['model']} | {run['filters']} | {run['latent']} |" in text
    assert (tmp_path / "capacity.png").stat().st_size > 1000
    assert "Not run yet" not in text
    for run in runs.values():  # each row says whether its run stopped early or at the epoch limit
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| {run['model']} | {run['filters']} | {run['latent']} |"))
        assert ("converged" if run["epochs_run"] < study.QUICK["max_epochs"] else "epoch limit") in row

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(study.AutoEncoder, "fit", refuse)
    monkeypatch.setattr(study.VAE, "fit", refuse)
    assert study.run(tmp_path, quick=True, seed=0, cache=cache) == readme


def test_render_lists_the_cells_still_to_run(tmp_path):
    text = study.render(tmp_path).read_text()
    assert "Not run yet" in text and "AE filters 64 latent 64" in text


def test_train_and_test_come_from_the_same_source_when_one_split_is_missing(monkeypatch):
    from mixclust import datasets
    from mixclust.studies import load_train_test

    real = datasets.load

    def only_train(name, split="all", **kwargs):
        if name == "mnist" and split == "test":
            raise datasets.DataNotFoundError("mnist test split missing")
        if name == "mnist":
            return np.zeros((5, 1, 28, 28), np.float32), np.arange(5)
        return real(name, split=split, **kwargs)

    monkeypatch.setattr(datasets, "load", only_train)
    X_train, _, X_test, _, loaded = load_train_test("mnist", quick=True)
    assert loaded == "digits" and X_train.shape[1:] == X_test.shape[1:] == (1, 8, 8)


def _cell(model, filters, latent, mse, seconds=3600.0):
    return {"model": model, "filters": filters, "latent": latent, "test_mse": mse, "seconds": seconds}


def test_ratio_and_missing_texts_follow_the_cells_run():
    rows = [_cell("AE", 8, 16, 0.02), _cell("VAE", 8, 16, 0.01), _cell("AE", 32, 32, 0.0045),
            _cell("VAE", 32, 32, 0.0090, seconds=7200.0), _cell("AE", 32, 64, 0.003)]
    assert study._ratio_text(rows) == ("AE / VAE test MSE on the same network (published 0.47): 8 filters latent "
                                       "16: 2.00; 32 filters latent 32: 0.50.")
    text = study._missing_text(rows, [("AE", 64, 16), ("VAE", 64, 64)])
    assert "reached with 32 filters" in text and "(64 / 32)^2 = 4x" in text and "up to 2.0 hours" in text
    # a missing cell as narrow as the one that reaches, or a target not reached yet: no excuse is offered
    assert study._missing_text(rows, [("VAE", 32, 64)]) == ""
    assert study._missing_text([r for r in rows if r["model"] == "AE"], [("AE", 64, 16)]) == ""
    assert study._missing_text(rows, []) == ""
