"""Tests of saving and loading models (SPEC §6: save(path) writes exactly path; load never unpickles code)."""

from __future__ import annotations

import os
import pickle
import re
import stat
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

import mixclust
from mixclust import GaussianMixture


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 4.0])


@pytest.fixture(scope="module")
def fitted(X):
    return GaussianMixture(2, covariance_type="full", random_state=0).fit(X)


@pytest.fixture
def model_file(tmp_path, fitted):
    path = tmp_path / "model"
    fitted.save(path)
    return path


def assert_load_fails_naming(path, *words):
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        mixclust.load(path)
    for word in words:
        assert word in str(info.value), str(info.value)


# ------------------------------------------------------------------------------------------------
# Round trip
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_round_trip(tmp_path, X, covariance_type):
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0, chunk_size=50).fit(X)
    path = tmp_path / "gmm-model"  # no suffix: saved under exactly this name
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == ["gmm-model"] and path.is_file()
    loaded = mixclust.load(path)
    assert type(loaded) is GaussianMixture
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        value = getattr(loaded, name)
        assert isinstance(value, np.ndarray) and value.dtype == np.float64
        np.testing.assert_array_equal(value, getattr(model, name))
    assert loaded.log_likelihood_history_ == model.log_likelihood_history_
    assert (loaded.n_iter_, loaded.converged_, loaded.lower_bound_, loaded.n_features_in_) == \
        (model.n_iter_, model.converged_, model.lower_bound_, model.n_features_in_)
    assert loaded.score(X) == model.score(X)


def test_round_trip_with_string_path_and_suffix(tmp_path, fitted, X):
    path = str(tmp_path / "model.pt")
    fitted.save(path)
    assert os.listdir(tmp_path) == ["model.pt"]
    np.testing.assert_array_equal(mixclust.load(path).predict_proba(X), fitted.predict_proba(X))


def test_array_params_survive(tmp_path, X):
    means_init = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    weights_init = np.array([0.4, 0.6])
    precisions_init = np.array([1.0, 2.0])
    model = GaussianMixture(2, covariance_type="spherical", means_init=means_init, weights_init=weights_init,
                            precisions_init=precisions_init, random_state=np.int64(3), tol=np.float64(1e-4),
                            max_iter=7).fit(X)
    model.save(tmp_path / "m")
    loaded = mixclust.load(tmp_path / "m")
    params = loaded.get_params()
    for name, value in [("means_init", means_init), ("weights_init", weights_init),
                        ("precisions_init", precisions_init)]:
        assert isinstance(params[name], np.ndarray)
        np.testing.assert_array_equal(params[name], value)
    assert params["random_state"] == 3 and params["tol"] == 1e-4 and params["max_iter"] == 7
    # The loaded model refits to the same answer.
    refit = loaded.fit(X)
    np.testing.assert_array_equal(refit.means_, model.means_)


def test_overwrite_is_atomic_and_leaves_no_temp_file(tmp_path, X, fitted):
    path = tmp_path / "model"
    GaussianMixture(3, random_state=0).fit(X).save(path)
    fitted.save(path)  # replaces the previous model
    assert os.listdir(tmp_path) == ["model"]
    assert mixclust.load(path).n_components == 2


def test_failed_save_leaves_nothing(tmp_path, fitted, monkeypatch):
    path = tmp_path / "model"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(path)
    assert os.listdir(tmp_path) == []


def test_save_creates_parent_folders(tmp_path, fitted):
    path = tmp_path / "a" / "b" / "model"
    fitted.save(path)
    assert path.is_file() and os.listdir(path.parent) == ["model"]


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(NotFittedError):
        GaussianMixture(2).save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_save_onto_directory_raises(tmp_path, fitted):
    with pytest.raises(ValueError, match="directory"):
        fitted.save(tmp_path)


# ------------------------------------------------------------------------------------------------
# Refusing bad files
# ------------------------------------------------------------------------------------------------
def test_load_missing_file(tmp_path):
    assert_load_fails_naming(tmp_path / "nope", "does not exist")


def test_load_directory(tmp_path):
    assert_load_fails_naming(tmp_path, "directory")


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.5, 0.9, 0.999])
def test_load_truncated(model_file, fraction):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: int(len(data) * fraction)])
    assert_load_fails_naming(model_file)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "random"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_load_fails_naming(path)


def test_load_of_a_text_file_says_what_it_is_not_and_gives_no_unsafe_advice(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("index,label\n0,1\n")
    with pytest.raises(ValueError, match="not a file written by mixclust") as info:
        mixclust.load(path)
    assert "weights_only" not in str(info.value)


@pytest.mark.parametrize("payload", [
    {"weights": torch.zeros(3)},
    torch.zeros(3),
    [1, 2, 3],
    {"format": "other"},
], ids=["state-dict", "tensor", "list", "other-format"])
def test_load_torch_file_that_is_not_a_model(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    assert_load_fails_naming(path, "not a mixclust model")


def _header(**changes):
    payload = {"format": "mixclust-model", "version": 1, "model": "gmm", "params": "{}",
               "attributes": "{}", "tensors": {}}
    payload.update(changes)
    return payload


@pytest.mark.parametrize("payload, words", [
    (_header(version=99), ["version 99"]),
    (_header(model="no-such-model"), ["no-such-model"]),
    (_header(params="{not json"), ["corrupt"]),
    (_header(params='{"bogus": 1}'), ["corrupt"]),
    (_header(params='{"means_init": {"__tensor__": "param/missing"}}'), ["corrupt"]),
    ({k: v for k, v in _header().items() if k != "tensors"}, ["corrupt"]),
], ids=["version", "unknown-model", "bad-json", "unknown-param", "missing-tensor", "no-tensors"])
def test_load_damaged_header(tmp_path, payload, words):
    path = tmp_path / "damaged"
    torch.save(payload, path)
    assert_load_fails_naming(path, *words)


class _RunsCode:
    """Unpickling this calls os.system: a model file must never be able to do that."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle", "inside-model"])
def test_load_never_runs_code(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil"
    if writer == "torch.save":
        torch.save(_RunsCode(marker), path)
    elif writer == "pickle":
        path.write_bytes(pickle.dumps(_RunsCode(marker)))
    else:  # a genuine-looking model whose tensors dict hides the payload
        torch.save(_header(tensors={"attr/x": _RunsCode(marker)}), path)
    # The payload really runs code when unpickled naively (so the test can fail) -- prove it on a copy.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_RunsCode(probe)))
    assert probe.exists()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")  # raw pickle, torch warns
        assert_load_fails_naming(path)
    assert not marker.exists()


def test_saved_files_get_the_usual_permissions_and_a_torch_device_parameter_is_stored(tmp_path, X):
    from mixclust.reports import atomic_write_text

    umask = os.umask(0o022)
    try:
        model = GaussianMixture(2, device=torch.device("cpu"), random_state=0).fit(X)
        model.save(tmp_path / "model")
        atomic_write_text(tmp_path / "report.md", "text")
    finally:
        os.umask(umask)
    for name in ("model", "report.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    loaded = mixclust.load(tmp_path / "model")
    assert loaded.get_params()["device"] == "cpu"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_report_header_names_every_seed_a_study_runs(tmp_path):
    from mixclust.reports import Report

    def header(seed):
        return Report(tmp_path, "t", "mixclust reproduce x --seed 3", seed).write().read_text().splitlines()[2]

    assert header(3) == "Reproduce with `mixclust reproduce x --seed 3` (seed 3)."
    assert header(range(3, 6)) == "Reproduce with `mixclust reproduce x --seed 3` (seeds 3-5)."
    assert header(range(3, 4)).endswith("(seed 3).")
    assert header(None) == "Reproduce with `mixclust reproduce x --seed 3`."
