"""GaussianMixtureIC: the number of components chosen by BIC / AIC (scikit-learn issue 19338's interface)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import mixclust
from mixclust import GaussianMixture, GaussianMixtureIC
from mixclust.cli import main


@pytest.mark.parametrize("std, seed", [(0.5, 0), (0.5, 1), (1.6, 0), (1.6, 1)])  # separated, then overlapping
def test_bic_picks_the_true_number_of_components(std, seed):
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], float)
    X, _ = make_blobs(800, centers=centres, cluster_std=std, random_state=seed)
    model = GaussianMixtureIC(range(1, 9), random_state=0).fit(X)
    assert model.n_components_ == 4 and model.covariance_type_ == "full"
    assert model.criterion_["n_components"] == list(range(1, 9)) and len(model.criterion_["bic"]) == 8
    # the kept model is the plain GaussianMixture with the chosen K, and it is the sweep's minimum
    plain = GaussianMixture(4, random_state=0).fit(X)
    np.testing.assert_allclose(model.bic(X), plain.bic(X))
    assert model.bic(X) == pytest.approx(min(model.criterion_["bic"]))
    np.testing.assert_array_equal(model.predict(X), plain.predict(X))


def test_a_sweep_over_covariance_types_and_aic(tmp_path):
    X, _ = make_blobs(400, centers=3, cluster_std=[0.3, 1.0, 2.0], random_state=0)
    model = GaussianMixtureIC(range(1, 6), covariance_type=("spherical", "full"), criterion="aic",
                              random_state=0).fit(X)
    assert len(model.criterion_["aic"]) == 10 and set(model.criterion_["covariance_type"]) == {"spherical", "full"}
    model.save(tmp_path / "ic")
    loaded = mixclust.load(tmp_path / "ic")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.n_components_ == model.n_components_


@pytest.mark.parametrize("kwargs, fragment", [({"criterion": "mdl"}, "criterion 'mdl'"),
                                              ({"n_components": [0, 2]}, "n_components"),
                                              ({"n_components": [500]}, "exceeds"),
                                              ({"covariance_type": ("full", "odd")}, "covariance_type 'odd'")])
def test_bad_parameters_are_clear_errors(kwargs, fragment):
    X, _ = make_blobs(50, centers=2, random_state=0)
    with pytest.raises(ValueError, match=fragment):
        GaussianMixtureIC(**kwargs).fit(X)


def test_cli_n_clusters_auto_records_the_chosen_k(tmp_path, capsys):
    X, y = make_blobs(300, centers=3, cluster_std=0.5, random_state=0)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    code = main(["fit", "--model", "gmm", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--n-clusters", "auto", "--param", "n_components=[1,2,3,4,5,6]", "--verbose", "0",
                 "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert result["n_clusters_chosen"] == 3 and result["model"] == "gmm-ic"
    assert "](criterion.png)" in (tmp_path / "out" / "report.md").read_text()
    assert main(["fit", "--model", "vade", "--data", str(tmp_path / "X.npy"), "--n-clusters", "auto",
                 "--out", str(tmp_path / "v")]) == 1
    assert "offered for gmm" in capsys.readouterr().err
