"""Every deep estimator passes all of scikit-learn's estimator checks (no expected failures, no skipping tags),
and works in scikit-learn's tools: clone, Pipeline, GridSearchCV."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mixclust import AEClustering, MoA, ObjectiveClustering, VaDE

# Small settings with the estimators' own parameter names, so the 50 checks of each run in seconds.
SMALL = [
    VaDE(n_clusters=3, pretrain_epochs=1, epochs=1, hidden=(8,), latent_dim=2, batch_size=32),
    AEClustering(n_clusters=3, epochs=1, hidden=(8,), latent_dim=2, batch_size=32),
    MoA(n_clusters=3, pretrain_epochs=1, router_epochs=1, epochs=1, hidden=(8,), latent_dim=2, batch_size=32),
    ObjectiveClustering(n_clusters=3, epochs=3, n_init=1, init_epochs=3),
]


@parametrize_with_checks(SMALL)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # Tiny fits on the checks' random data are often degenerate; the warning saying so is expected.
        warnings.simplefilter("ignore")
        check(estimator)


def _blobs():
    X, y = make_blobs(240, n_features=4, centers=3, cluster_std=0.5, random_state=0)
    return X.astype(np.float32), y


def test_clone_pipeline_and_grid_search_work_with_a_deep_model():
    X, y = _blobs()
    model = AEClustering(n_clusters=3, epochs=2, hidden=(8,), latent_dim=2, batch_size=32, clusterer="kmeans",
                         random_state=0)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "autoencoder_")
    pipeline = make_pipeline(StandardScaler(), model).fit(X)
    assert pipeline.predict(X).shape == (len(X),) and set(pipeline.predict(X)) <= {0, 1, 2}
    # Clusterers have no score of their own here: the search ranks by the adjusted Rand index against y.
    search = GridSearchCV(make_pipeline(StandardScaler(), model), {"aeclustering__latent_dim": [2, 3]},
                          scoring="adjusted_rand_score", cv=2).fit(X, y)
    assert search.best_params_["aeclustering__latent_dim"] in (2, 3)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_predict_is_the_argmax_of_predict_proba_for_every_registered_clusterer():
    """The suite scores labels as the argmax of ``predict_proba`` (one pass through the model), which is what
    every registered clusterer's ``predict`` returns."""
    from mixclust.studies.suite import _make, clusterers

    X, _ = _blobs()
    small = {"vade": SMALL[0], "aekm": SMALL[1], "moa": SMALL[2], "nnobj": SMALL[3]}
    for name in clusterers():
        model = clone(small[name]) if name in small else _make(name, 3, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        np.testing.assert_array_equal(model.predict(X), model.predict_proba(X).argmax(axis=1), err_msg=name)
