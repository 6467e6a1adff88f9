"""Tests of mixclust.gmm.GaussianMixture (SPEC §4): EM maths, agreement with scikit-learn, API, errors."""

from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

import mixclust.gmm as gmm_module
from mixclust import GaussianMixture, load
from mixclust.gmm import COVARIANCE_TYPES, _features, _m_step, _natural_parameters
from mixclust.studies.gmm import drop_at_random, missing_mixture, parameter_errors

# tol=0 runs to max_iter on purpose in many tests; the warning is expected there.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# check_estimator checks that cannot pass for a principled reason, with the reason (check_array_api_input
# is skipped by scikit-learn itself unless SCIPY_ARRAY_API is set).
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_sample_weight_equivalence_on_dense_data": (
        "the K-means start draws its seeds from one random stream, which visits weighted and repeated rows in a "
        "different order, so the two fits start from different partitions; from the same start they are equal "
        "(test_integer_sample_weights_equal_repeated_rows). scikit-learn's GaussianMixture takes no sample_weight, "
        "so it never runs this check"),
}



def mixture_data(seed: int, d: int = 2, n_clusters: int = 3, spread: float = 6.0, n_min: int = 40,
                 n_max: int = 120) -> np.ndarray:
    """Points from a random Gaussian mixture: random means, random (full) covariances, seeded."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_min, n_max, size=n_clusters)
    means = rng.normal(scale=spread, size=(n_clusters, d))
    mix = rng.normal(size=(n_clusters, d, d))
    mix = mix * rng.uniform(0.3, 1.5, size=(n_clusters, 1, 1)) + 0.3 * np.eye(d)
    X = np.concatenate([means[k] + rng.normal(size=(c, d)) @ mix[k].T for k, c in enumerate(counts)])
    return X[rng.permutation(len(X))]


@pytest.fixture(scope="module")
def X3():
    """Three well separated blobs in 3-D, 300-ish points."""
    return mixture_data(0, d=3, n_clusters=3, spread=5.0)


def sk_initial_parameters(X, n_components, covariance_type, random_state=0):
    """weights/means/precisions of a scikit-learn model after one EM iteration (a common starting point)."""
    sk = SkGaussianMixture(n_components, covariance_type=covariance_type, max_iter=1,
                           random_state=random_state).fit(X)
    return {"weights_init": sk.weights_, "means_init": sk.means_, "precisions_init": sk.precisions_}


def assert_fitted_params_close(a, b, atol=1e-6):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=atol, err_msg=name)


# ------------------------------------------------------------------------------------------------
# 1. The log-likelihood never decreases
# ------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:component.*collapsed:RuntimeWarning")
@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_components=st.integers(1, 4),
       covariance_type=st.sampled_from(COVARIANCE_TYPES), d=st.integers(1, 4),
       init_params=st.sampled_from(["kmeans", "random"]))
def test_log_likelihood_never_decreases(seed, n_components, covariance_type, d, init_params):
    # reg_covar=0: EM is then an exact coordinate ascent and monotonicity is a theorem. With the ridge
    # (reg_covar > 0) the M-step is not the maximiser and the likelihood may drop by ~reg_covar
    # near convergence -- scikit-learn's EM does the same (see test_ridge_can_lower_the_likelihood).
    X = mixture_data(seed, d=d, n_clusters=4)
    model = GaussianMixture(n_components, covariance_type=covariance_type, tol=0.0, max_iter=25,
                            reg_covar=0.0, init_params=init_params, random_state=seed % 1000).fit(X)
    history = np.asarray(model.log_likelihood_history_)
    assert np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:])), np.diff(history)
    assert len(history) == model.n_iter_ == 25
    assert model.lower_bound_ == history[-1]
    assert model.score(X) == pytest.approx(model.lower_bound_, rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_history_bookkeeping_when_converged(X3, covariance_type):
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X3)
    history = model.log_likelihood_history_
    assert model.converged_ and 1 <= model.n_iter_ < model.max_iter
    assert len(history) == model.n_iter_
    assert model.lower_bound_ == history[-1]
    assert abs(history[-1] - history[-2]) < model.tol if len(history) > 1 else True
    assert all(abs(b - a) >= model.tol for a, b in itertools.pairwise(history[:-1]))
    assert model.score(X3) == pytest.approx(model.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(model.score_samples(X3).mean(), model.score(X3), rtol=1e-12)


def test_ridge_can_lower_the_likelihood_like_sklearn():
    """Documents why the monotonicity property uses reg_covar=0: the ridge makes EM approach its fixed
    point from above. scikit-learn's EM gives the same numbers, so this is the algorithm, not a bug."""
    X = mixture_data(32, d=3, n_clusters=4, spread=3.0)
    kwargs = dict(covariance_type="full", tol=0.0, max_iter=20, reg_covar=1e-4, init_params="random",
                  random_state=32)
    history = np.asarray(GaussianMixture(4, **kwargs).fit(X).log_likelihood_history_)
    assert np.diff(history).min() < -1e-8
    for it in (18, 19):
        sk = SkGaussianMixture(4, **{**kwargs, "max_iter": it}).fit(X)
        assert history[it - 1] == pytest.approx(sk.score(X), rel=1e-9)
    ridge_free = GaussianMixture(4, **{**kwargs, "reg_covar": 0.0}).fit(X).log_likelihood_history_
    assert np.diff(ridge_free).min() >= -1e-10 * abs(ridge_free[-1])


# ------------------------------------------------------------------------------------------------
# 2. Same numbers as scikit-learn
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_sklearn_from_same_initial_parameters(X3, covariance_type):
    init = sk_initial_parameters(X3, 3, covariance_type)
    kwargs = dict(covariance_type=covariance_type, tol=0.0, max_iter=12, **init)
    sk = SkGaussianMixture(3, **kwargs).fit(X3)
    ours = GaussianMixture(3, **kwargs).fit(X3)
    assert ours.n_iter_ == sk.n_iter_ == 12
    assert ours.lower_bound_ == pytest.approx(sk.score(X3), rel=1e-6)
    assert ours.score(X3) == pytest.approx(sk.score(X3), rel=1e-6)
    assert_fitted_params_close(ours, sk)
    np.testing.assert_allclose(ours.precisions_, sk.precisions_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.score_samples(X3), sk.score_samples(X3), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X3), sk.predict_proba(X3), atol=1e-8)
    assert ours.bic(X3) == pytest.approx(sk.bic(X3), rel=1e-6)
    assert ours.aic(X3) == pytest.approx(sk.aic(X3), rel=1e-6)


# k-means++ and random_from_data start from responsibilities that are one-hot on K seed points, so
# their rows do not sum to one. scikit-learn's first tied covariance, (X^T X - sum_k N_k mu_k mu_k^T) / K,
# then depends on where the origin is (it is not translation invariant); mixclust evaluates the same
# formula on data centred at their mean, so the starts, and the fits, differ slightly.
_TIED_SEED_INIT = pytest.mark.xfail(strict=True, reason=(
    "tied + seed-point init: scikit-learn's initial tied covariance depends on the data origin; "
    "mixclust computes it on centred data"))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_same_random_state_same_result_as_sklearn(X3, request, covariance_type, init_params):
    if covariance_type == "tied" and init_params in ("k-means++", "random_from_data"):
        request.applymarker(_TIED_SEED_INIT)
    kwargs = dict(covariance_type=covariance_type, init_params=init_params, tol=0.0, max_iter=20,
                  random_state=1)
    sk = SkGaussianMixture(3, **kwargs).fit(X3)
    ours = GaussianMixture(3, **kwargs).fit(X3)
    assert ours.lower_bound_ == pytest.approx(sk.score(X3), rel=1e-6)
    assert_fitted_params_close(ours, sk)
    np.testing.assert_array_equal(ours.predict(X3), sk.predict(X3))


def test_default_kmeans_init_same_random_stream_as_sklearn(X3):
    """Default settings (kmeans init, tol=1e-3) with a RandomState instance: same draws, same optimum."""
    sk = SkGaussianMixture(3, random_state=np.random.RandomState(7)).fit(X3)
    ours = GaussianMixture(3, random_state=np.random.RandomState(7)).fit(X3)
    # scikit-learn's convergence test lags one iteration behind (documented in the class docstring).
    assert ours.n_iter_ in (sk.n_iter_, sk.n_iter_ - 1)
    assert_fitted_params_close(ours, sk, atol=1e-4)
    np.testing.assert_array_equal(ours.labels_, sk.predict(X3))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_n_init_keeps_best_like_sklearn(covariance_type):
    X = mixture_data(3, d=2, n_clusters=4, spread=3.0)
    kwargs = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, n_init=3, random_state=1)
    sk = SkGaussianMixture(4, **kwargs).fit(X)
    ours = GaussianMixture(4, **kwargs).fit(X)
    singles = [GaussianMixture(4, **{**kwargs, "n_init": 1, "random_state": rs}).fit(X).lower_bound_
               for rs in (1, 2)]
    assert ours.lower_bound_ >= max(singles) - 1e-12 or ours.lower_bound_ == pytest.approx(max(singles))
    assert ours.lower_bound_ == pytest.approx(sk.score(X), rel=1e-6)
    # Ties between initialisations may be broken differently (scikit-learn ranks them by its lagging
    # lower_bound_), so compare the means up to a relabelling of the components.
    cost = ((ours.means_[:, None, :] - sk.means_[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    np.testing.assert_allclose(ours.means_[rows], sk.means_[cols], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# 3. scikit-learn's estimator checks
# ------------------------------------------------------------------------------------------------
@parametrize_with_checks([GaussianMixture(n_components=3, random_state=0, device="cpu")],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # torch.as_tensor on a read-only memmap warns (harmless: the array is only read).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        check(estimator)


# ------------------------------------------------------------------------------------------------
# 4. K-means is the limit Sigma_k = eps I, pi_k = 1/K, eps -> 0
# ------------------------------------------------------------------------------------------------
def _isotropic_cholesky(eps: float, n_components: int, d: int, covariance_type: str) -> torch.Tensor:
    """Cholesky factor of the precision 1/eps I in each covariance_type's layout."""
    s = 1.0 / np.sqrt(eps)
    return {"full": torch.eye(d, dtype=torch.float64).expand(n_components, d, d) * s,
            "tied": torch.eye(d, dtype=torch.float64) * s,
            "diag": torch.full((n_components, d), s, dtype=torch.float64),
            "spherical": torch.full((n_components,), s, dtype=torch.float64)}[covariance_type]


def _kmeans_limit_setup(seed=0, n=200, d=2, n_components=4):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, d))
    centres = X[rng.choice(n, n_components, replace=False)] + rng.normal(scale=0.1, size=(n_components, d))
    sq = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
    nearest = sq.argmin(1)
    lloyd = np.stack([X[nearest == k].mean(0) for k in range(n_components)])
    part = np.sort(sq, axis=1)
    gap = (part[:, 1] - part[:, 0]).min()  # smallest margin between nearest and second-nearest centre
    return X, centres, nearest, lloyd, gap


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_kmeans_limit_responsibilities_and_lloyd_step(covariance_type):
    X, centres, nearest, lloyd, gap = _kmeans_limit_setup()
    n_components, d = centres.shape
    assert gap > 1e-4 and all((nearest == k).any() for k in range(n_components))
    X_t, centres_t = torch.as_tensor(X), torch.as_tensor(centres)
    triu = torch.triu_indices(d, d)
    weights = torch.full((n_components,), 1.0 / n_components, dtype=torch.float64)
    F = _features(X_t, covariance_type)
    previous_max = np.zeros(len(X))
    # From a blurred assignment to a hard one: eps from 10 down to gap/100 (then exp(-50) at worst).
    for eps in [10.0, 1.0, 0.1, 0.01, 1e-3, gap / 10, gap / 100]:
        cholesky = _isotropic_cholesky(eps, n_components, d, covariance_type)
        W = _natural_parameters(weights, centres_t, cholesky, covariance_type, triu)
        log_prob = F @ W
        # The linear form is exactly log pi_k + log N(x | mu_k, eps I).
        expected = (np.log(1.0 / n_components) - 0.5 * d * np.log(2 * np.pi * eps)
                    - 0.5 * ((X[:, None, :] - centres[None]) ** 2).sum(-1) / eps)
        np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-9, atol=1e-9 / eps)
        resp = torch.softmax(log_prob, dim=1)
        resp_max = resp.max(dim=1).values.numpy()
        assert np.all(resp_max >= previous_max - 1e-12), "max responsibility must grow as eps shrinks"
        assert resp_max.mean() > previous_max.mean()
        previous_max = resp_max
    # Hard assignments at the nearest centre ...
    np.testing.assert_array_equal(resp.argmax(dim=1).numpy(), nearest)
    np.testing.assert_allclose(resp.numpy(), np.eye(n_components)[nearest], atol=1e-15)
    # ... and the EM mean update is one Lloyd step.
    _, means, _ = _m_step(resp.T @ F, d, covariance_type, 0.0, triu)
    np.testing.assert_allclose(means.numpy(), lloyd, rtol=0, atol=1e-12)
    sk_step = KMeans(n_components, init=centres, n_init=1, max_iter=1, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(means.numpy(), sk_step.cluster_centers_, atol=1e-10)


def test_kmeans_limit_through_fit():
    """Same limit through the public API: one EM iteration from Sigma = eps I, pi = 1/K moves the means
    exactly as one Lloyd step."""
    X, centres, nearest, lloyd, gap = _kmeans_limit_setup(seed=1)
    n_components = len(centres)
    eps = gap / 100
    model = GaussianMixture(n_components, covariance_type="spherical", max_iter=1, tol=0.0,
                            weights_init=np.full(n_components, 1.0 / n_components), means_init=centres,
                            precisions_init=np.full(n_components, 1.0 / eps)).fit(X)
    np.testing.assert_allclose(model.means_, lloyd, atol=1e-10)
    np.testing.assert_allclose(model.weights_, np.bincount(nearest, minlength=n_components) / len(X),
                               atol=1e-12)


# ------------------------------------------------------------------------------------------------
# 5. The estimator interface
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_prediction_api(X3, covariance_type):
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    labels = model.fit_predict(X3)
    proba = model.predict_proba(X3)
    assert proba.shape == (len(X3), 3) and proba.dtype == np.float64
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X3), proba.argmax(1))
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_array_equal(labels, model.predict(X3))
    np.testing.assert_array_equal(model.transform(X3), proba)
    np.testing.assert_array_equal(GaussianMixture(3, covariance_type=covariance_type,
                                                  random_state=0).fit(X3).labels_, labels)
    assert model.score_samples(X3).shape == (len(X3),)
    # float32 input is accepted and gives the float64 answer (validation casts it).
    np.testing.assert_allclose(model.predict_proba(X3.astype(np.float32)),
                               model.predict_proba(X3.astype(np.float32).astype(np.float64)), atol=1e-12)
    shapes = {"full": (3, 3, 3), "tied": (3, 3), "diag": (3, 3), "spherical": (3,)}
    assert model.covariances_.shape == model.precisions_.shape == shapes[covariance_type]
    np.testing.assert_allclose(model.weights_.sum(), 1.0, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample(X3, covariance_type):
    kwargs = dict(covariance_type=covariance_type, tol=0.0, max_iter=5, random_state=3)
    model = GaussianMixture(3, **kwargs).fit(X3)
    samples, labels = model.sample(500)
    assert samples.shape == (500, 3) and labels.shape == (500,)
    assert set(np.unique(labels)) <= {0, 1, 2} and np.all(np.diff(labels) >= 0)
    # Each sample lies where its component is (well separated blobs).
    assert np.mean(model.predict(samples) == labels) > 0.95
    # Same parameters and random_state as scikit-learn: the same draws.
    sk = SkGaussianMixture(3, **kwargs).fit(X3)
    sk_samples, sk_labels = sk.sample(500)
    np.testing.assert_array_equal(labels, sk_labels)
    np.testing.assert_allclose(samples, sk_samples, atol=1e-6)
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_aic_match_sklearn(covariance_type):
    X = mixture_data(5, d=4, n_clusters=2)
    kwargs = dict(covariance_type=covariance_type, tol=0.0, max_iter=8, random_state=0)
    sk = SkGaussianMixture(2, **kwargs).fit(X)
    ours = GaussianMixture(2, **kwargs).fit(X)
    assert ours._n_parameters() == sk._n_parameters()
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-6)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-6)
    assert ours.bic(X) - ours.aic(X) == pytest.approx(ours._n_parameters() * (np.log(len(X)) - 2))


def test_get_set_params_and_clone():
    from sklearn.base import clone

    model = GaussianMixture(2, covariance_type="diag", random_state=4, chunk_size=11)
    params = model.get_params()
    assert params["n_components"] == 2 and params["chunk_size"] == 11 and params["device"] == "auto"
    copy = clone(model)
    assert copy.get_params() == params
    assert model.set_params(n_components=3) is model and model.n_components == 3


# ------------------------------------------------------------------------------------------------
# 6-7. float32, chunking and the feature cache give the same answer
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_close_to_float64(X3, covariance_type):
    kwargs = dict(covariance_type=covariance_type, random_state=0, tol=0.0, max_iter=15)
    ref = GaussianMixture(3, **kwargs).fit(X3)
    single = GaussianMixture(3, dtype="float32", **kwargs).fit(X3)
    assert single.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-5)
    assert single.score(X3) == pytest.approx(ref.score(X3), rel=1e-5)
    # The expanded quadratic form cancels terms of size |x|^2 / sigma^2 (~50 here) in float32, so single
    # log-densities carry ~1e-5 absolute error and 15 EM iterations carry it into the parameters:
    # measured 2.5e-5 relative at worst, hence 1e-4 (a wrong cast or a lost term is off by far more).
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(single, name), getattr(ref, name), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
        assert getattr(single, name).dtype == np.float64
    np.testing.assert_array_equal(single.labels_, ref.labels_)
    np.testing.assert_allclose(single.predict_proba(X3), ref.predict_proba(X3), atol=1e-4)
    # Per sample the error scales with mu^T P mu of a narrow, off-centre component (~1e3 here, so
    # ~1e-4 absolute): measured median 1e-5, max 8e-4 with the full covariance.
    error = np.abs(single.score_samples(X3) - ref.score_samples(X3))
    assert np.median(error) < 1e-4 and error.max() < 5e-3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunking_and_feature_cache_do_not_change_the_result(X3, covariance_type, monkeypatch):
    kwargs = dict(covariance_type=covariance_type, random_state=0, tol=0.0, max_iter=15)
    ref = GaussianMixture(3, **kwargs).fit(X3)
    chunked = GaussianMixture(3, chunk_size=7, **kwargs).fit(X3)
    monkeypatch.setattr(gmm_module, "FEATURE_CACHE_BYTES", 0)
    uncached = GaussianMixture(3, **kwargs).fit(X3)
    uncached_chunked = GaussianMixture(3, chunk_size=7, **kwargs).fit(X3)
    for other in (chunked, uncached, uncached_chunked):
        assert other.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
        np.testing.assert_allclose(other.log_likelihood_history_, ref.log_likelihood_history_, rtol=1e-10)
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(other, name), getattr(ref, name), rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(other.labels_, ref.labels_)
        np.testing.assert_allclose(other.predict_proba(X3), ref.predict_proba(X3), rtol=1e-10, atol=1e-12)


def test_feature_cache_is_used_and_bypassed(X3, monkeypatch):
    """The cache switch really changes the code path (otherwise the test above proves nothing)."""
    X = torch.as_tensor(X3)
    assert gmm_module._FeatureChunks(X, "full", 7, cache=True)._cached is not None
    monkeypatch.setattr(gmm_module, "FEATURE_CACHE_BYTES", 0)
    chunks = gmm_module._FeatureChunks(X, "full", 7, cache=True)
    assert chunks._cached is None
    parts = list(chunks)
    assert len(parts) == -(-len(X3) // 7) and all(F.shape[0] <= 7 for _, F in parts)
    torch.testing.assert_close(torch.cat([F for _, F in parts]), _features(X, "full"))


def test_cached_features_are_built_in_blocks_but_handed_out_in_chunks(X3):
    """The cache builds CACHE_BLOCK_CHUNKS chunks at a time; the passes still see chunk-sized views."""
    X = torch.as_tensor(X3)
    parts = gmm_module._FeatureChunks(X, "full", 7, cache=True)._cached
    assert [start for start, _ in parts] == list(range(0, len(X3), 7))
    assert all(F.shape[0] <= 7 for _, F in parts)
    assert parts[0][1].untyped_storage().data_ptr() == parts[1][1].untyped_storage().data_ptr()  # one block
    torch.testing.assert_close(torch.cat([F for _, F in parts]), _features(X, "full"))


def test_far_apart_components_whose_terms_underflow_match_sklearn():
    """Log-probability gaps of thousands of nats: the E-step's clamp below the peak (exp near
    underflow is slow) changes neither the likelihood nor the responsibilities."""
    X, _ = make_blobs(300, 4, centers=3, cluster_std=0.05, center_box=(-200, 200), random_state=1)
    init = sk_initial_parameters(X, 3, "full")
    sk = SkGaussianMixture(3, tol=0.0, max_iter=5, **init).fit(X)
    ours = GaussianMixture(3, tol=0.0, max_iter=5, **init).fit(X)
    gaps = np.sort(sk._estimate_weighted_log_prob(X), axis=1)
    assert (gaps[:, -1] - gaps[:, 0]).max() > 1e3  # the clamp really fires
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-9)
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ours.labels_, sk.predict(X))


# ------------------------------------------------------------------------------------------------
# 8. Bad input
# ------------------------------------------------------------------------------------------------
_rng = np.random.default_rng(0)
_X = _rng.normal(size=(40, 2))
_X_nan = _X.copy()
_X_nan[3, 1] = np.nan
_X_inf = _X.copy()
_X_inf[5, 0] = np.inf

BAD_FITS = [
    ("nan", {}, _X_nan, ValueError, "NaN"),
    ("inf", {}, _X_inf, ValueError, "infinity"),
    ("empty", {}, np.empty((0, 2)), ValueError, "0 sample"),
    ("no features", {}, np.empty((5, 0)), ValueError, "0 feature"),
    ("one sample", {"n_components": 1}, _X[:1], ValueError, "1 sample"),
    ("fewer samples than components", {"n_components": 5}, _X[:3], ValueError, "n_components = 5"),
    ("1-D", {}, _X[:, 0], ValueError, "Expected 2D array"),
    ("3-D", {}, _X.reshape(4, 10, 2), ValueError, "dim 3"),
    ("strings", {}, np.array([["a", "b"], ["c", "d"], ["e", "f"]]), ValueError, "string"),
    ("complex", {}, _X + 1j, ValueError, "Complex"),
    ("covariance_type", {"covariance_type": "fulll"}, _X, ValueError, "covariance_type 'fulll'"),
    ("init_params", {"init_params": "kmean"}, _X, ValueError, "init_params 'kmean'"),
    ("dtype", {"dtype": "float16"}, _X, ValueError, "dtype 'float16'"),
    ("device", {"device": "tpu"}, _X, ValueError, "device 'tpu'"),
    ("device type", {"device": 3}, _X, TypeError, "device"),
    ("reg_covar", {"reg_covar": -1e-3}, _X, ValueError, "reg_covar"),
    ("reg_covar nan", {"reg_covar": float("nan")}, _X, ValueError, "reg_covar"),
    ("tol", {"tol": -1.0}, _X, ValueError, "tol"),
    ("n_components=0", {"n_components": 0}, _X, ValueError, "n_components"),
    ("n_components float", {"n_components": 2.5}, _X, TypeError, "n_components"),
    ("max_iter", {"max_iter": -1}, _X, ValueError, "max_iter"),
    ("n_init", {"n_init": 0}, _X, ValueError, "n_init"),
    ("chunk_size", {"chunk_size": 0}, _X, ValueError, "chunk_size"),
    ("missing", {"missing": "drop"}, _X, ValueError, "unknown missing 'drop'"),
    ("missing with NaN", {"missing": "impute"}, _X_nan, ValueError, "unknown missing 'impute'"),
    ("means_init shape", {"means_init": np.zeros((3, 2))}, _X, ValueError,
     "The parameter 'means' should have the shape of (2, 2), but got (3, 2)"),
    ("weights_init sum", {"weights_init": [0.3, 0.3]}, _X, ValueError, "'weights' should be normalized"),
    ("precisions_init not PD", {"precisions_init": np.array([np.eye(2), -np.eye(2)])}, _X, ValueError,
     "'full precision' should be symmetric, positive-definite"),
    ("precisions_init not symmetric", {"precisions_init": np.array([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])},
     _X, ValueError, "symmetric"),
    ("precisions_init shape", {"precisions_init": np.ones((2, 2)), "covariance_type": "spherical"}, _X,
     ValueError, "'spherical precision' should have the shape of (2,), but got (2, 2)"),
    ("diag precisions_init zero", {"precisions_init": np.array([[1.0, 1.0], [0.0, 1.0]]),
                                   "covariance_type": "diag"}, _X, ValueError, "'diag precision' should be positive"),
]


@pytest.mark.parametrize("name, params, X, error, message", BAD_FITS, ids=[b[0] for b in BAD_FITS])
def test_bad_input_is_a_clear_error(name, params, X, error, message):
    params = {"n_components": 2, **params}
    with pytest.raises(error, match=re.escape(message)):
        GaussianMixture(**params).fit(X)


def test_bad_input_at_predict_time(X3):
    model = GaussianMixture(2, random_state=0).fit(X3)
    for method in ("predict", "predict_proba", "score_samples", "score", "transform", "bic", "aic"):
        with pytest.raises(ValueError, match="3 features"):
            getattr(model, method)(X3[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.where(np.arange(X3.size).reshape(X3.shape) == 4, np.nan, X3))
    with pytest.raises(ValueError, match="2D"):
        model.predict(X3[0])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score", "transform"])
def test_not_fitted(X3, method):
    with pytest.raises(NotFittedError):
        getattr(GaussianMixture(2), method)(X3)


def test_not_fitted_sample():
    with pytest.raises(NotFittedError):
        GaussianMixture(2).sample(3)


# ------------------------------------------------------------------------------------------------
# 9. Degenerate components
# ------------------------------------------------------------------------------------------------
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_duplicated_points_and_too_many_components(covariance_type):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 2)), np.tile([[5.0, 5.0]], (60, 1)),
                        rng.normal(size=(80, 2)) + [-4.0, 3.0]])
    model = GaussianMixture(6, covariance_type=covariance_type, random_state=0).fit(X)
    for name in FITTED:
        assert np.all(np.isfinite(getattr(model, name))), name
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.all(np.isfinite(model.score_samples(X)))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    # The 60 identical points end up together, in a component whose variance is only the ridge.
    assert len(set(model.labels_[100:160])) == 1


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsed_component_warns_and_stays_finite(covariance_type):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(80, 2)), rng.normal(size=(80, 2)) + [6.0, 0.0]])
    d, K = 2, 3
    precisions = {"full": np.tile(np.eye(d), (K, 1, 1)), "tied": np.eye(d), "diag": np.ones((K, d)),
                  "spherical": np.ones(K)}[covariance_type]
    # Component 2 starts 1000 standard deviations away from every point: it gets no responsibility.
    model = GaussianMixture(K, covariance_type=covariance_type, max_iter=5, weights_init=np.full(K, 1 / K),
                            means_init=np.array([[0.0, 0.0], [6.0, 0.0], [1000.0, 1000.0]]),
                            precisions_init=precisions)
    with pytest.warns(RuntimeWarning, match=r"component\(s\) \[2\] of 3 collapsed"):
        model.fit(X)
    for name in FITTED:
        assert np.all(np.isfinite(getattr(model, name))), name
    assert model.weights_[2] < 1e-10
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.all(proba[:, 2] < 1e-10)
    assert np.all(np.isfinite(model.log_likelihood_history_))


def test_no_collapse_warning_on_clean_data(X3):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        GaussianMixture(3, random_state=0).fit(X3)


# ------------------------------------------------------------------------------------------------
# 10. Devices
# ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_auto_device_is_cpu_and_cuda_is_refused(X3):
    from mixclust._base import resolve_device

    assert resolve_device("auto") == torch.device("cpu")
    auto = GaussianMixture(3, random_state=0, device="auto").fit(X3)
    cpu = GaussianMixture(3, random_state=0, device="cpu").fit(X3)
    np.testing.assert_array_equal(auto.means_, cpu.means_)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="CUDA"):
            GaussianMixture(3, device=device).fit(X3)
    with pytest.raises(ValueError, match="CUDA"):
        cpu.set_params(device="cuda").predict(X3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_continues_one_em_run(X3, covariance_type):
    """Two warm-started fits of k iterations are one fit of 2k iterations (scikit-learn's semantics), and
    ``lower_bounds_`` records every iteration's mean log-likelihood."""
    params = dict(covariance_type=covariance_type, tol=0.0, random_state=0, device="cpu")
    whole = GaussianMixture(3, max_iter=6, **params).fit(X3)
    warm = GaussianMixture(3, max_iter=3, warm_start=True, **params)
    first = list(warm.fit(X3).lower_bounds_)
    second = list(warm.fit(X3).lower_bounds_)
    np.testing.assert_allclose(first + second, whole.lower_bounds_, rtol=1e-10)
    assert_fitted_params_close(warm, whole, atol=1e-8)
    assert whole.lower_bounds_ == whole.log_likelihood_history_ and len(whole.lower_bounds_) == whole.n_iter_


def test_warm_start_restarts_when_the_shape_changed(X3):
    """A previous fit with another number of components cannot be continued: a fresh start, as scikit-learn."""
    model = GaussianMixture(2, warm_start=True, random_state=0, device="cpu").fit(X3)
    model.set_params(n_components=3).fit(X3)
    fresh = GaussianMixture(3, random_state=0, device="cpu").fit(X3)
    assert_fitted_params_close(model, fresh)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weights_equal_repeated_rows(X3, covariance_type):
    """From the same initial parameters, weights 0..3 give exactly the fit on rows repeated 0..3 times."""
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, len(X3))
    start = sk_initial_parameters(X3, 3, covariance_type)
    params = dict(covariance_type=covariance_type, tol=0.0, max_iter=15, device="cpu", **start)
    weighted = GaussianMixture(3, **params).fit(X3, sample_weight=weights)
    repeated = GaussianMixture(3, **params).fit(np.repeat(X3, weights, axis=0))
    assert_fitted_params_close(weighted, repeated, atol=1e-8)
    np.testing.assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)


def test_sample_weight_in_the_kmeans_start_and_bad_weights():
    X = mixture_data(2, d=2, n_clusters=2)
    weights = np.ones(len(X))
    unit = GaussianMixture(2, random_state=0, device="cpu").fit(X, sample_weight=weights)
    plain = GaussianMixture(2, random_state=0, device="cpu").fit(X)
    assert_fitted_params_close(unit, plain, atol=1e-10)  # unit weights are no weights
    with pytest.raises(ValueError, match="(?i)negative"):
        GaussianMixture(2, device="cpu").fit(X, sample_weight=-weights)
    with pytest.raises(ValueError, match="non-zero"):  # scikit-learn's check_sample_weight says it first
        GaussianMixture(2, device="cpu").fit(X, sample_weight=0 * weights)
    with pytest.raises(ValueError, match="sample_weight"):
        GaussianMixture(2, device="cpu").fit(X, sample_weight=weights[:-1])


def test_stepwise_rate_schedule():
    from mixclust.gmm import STEPWISE_ALPHA, stepwise_rate

    assert STEPWISE_ALPHA == 0.6
    rates = [stepwise_rate(t) for t in range(1, 2000)]
    assert rates[0] == pytest.approx(2 ** -0.6) and all(a > b for a, b in zip(rates, rates[1:]))
    assert sum(rates) > 45 and sum(r * r for r in rates) < 5  # sum eta grows like t^0.4, sum eta^2 converges


def test_one_online_pass_lands_near_batch_em_and_beats_one_chunk(tmp_path):
    """partial_fit over 30 chunks of 10,000: within 0.002 nats per sample of batch EM (begun where the online
    pass began, so both reach the same optimum), where a fit on the first chunk alone stays further below
    (measured 0.0009 against 0.0021; benchmarks/bench_partial_fit.py measures 10^6 rows)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(4, 3))
    X = np.concatenate([c + rng.normal(scale=rng.uniform(0.5, 1.5), size=(75_000, 3)) for c in centres])
    X = X[rng.permutation(len(X))]
    one = GaussianMixture(4, random_state=0, tol=1e-6, max_iter=300, device="cpu").fit(X[:10_000])
    batch = GaussianMixture(4, tol=1e-7, max_iter=500, weights_init=one.weights_, means_init=one.means_,
                            precisions_init=one.precisions_, device="cpu").fit(X)
    online = GaussianMixture(4, random_state=0, device="cpu")
    for start in range(0, len(X), 10_000):
        online.partial_fit(X[start:start + 10_000])
    assert online.n_partial_steps_ == 30
    gap_online, gap_one = batch.score(X) - online.score(X), batch.score(X) - one.score(X)
    assert 0 <= gap_online < 0.002 and gap_online < gap_one
    # the running statistics are saved: a loaded model continues the stream exactly
    online.save(tmp_path / "online")
    loaded = load(tmp_path / "online")
    chunk = X[:1000]
    np.testing.assert_allclose(loaded.partial_fit(chunk).means_, online.partial_fit(chunk).means_, rtol=1e-12)
    # fit starts over: a later partial_fit begins a new stream
    online.fit(X[:2000])
    assert not hasattr(online, "stepwise_state_")


# ------------------------------------------------------------------------------------------------
# 11. Missing values: missing="marginalize" (exact EM over the observed dimensions)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def X_missing():
    """A 3-component full-covariance mixture in 5-D (2,000 rows), its 20%-MCAR copy and the full-data fit."""
    X = missing_mixture(2000, seed=0)
    X_nan = drop_at_random(X, 0.2, seed=0)
    assert 0.18 < np.isnan(X_nan).mean() < 0.22 and not np.isnan(X_nan).all(1).any()
    return X, X_nan


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_missing_marginalize_without_nan_is_plain_em(X3, covariance_type):
    kwargs = dict(covariance_type=covariance_type, random_state=0, tol=0.0, max_iter=10)
    plain = GaussianMixture(3, **kwargs).fit(X3)
    marginal = GaussianMixture(3, missing="marginalize", **kwargs).fit(X3)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(marginal, name), getattr(plain, name), err_msg=name)
    assert marginal.lower_bounds_ == plain.lower_bounds_
    np.testing.assert_array_equal(marginal.labels_, plain.labels_)
    np.testing.assert_array_equal(marginal.predict_proba(X3), plain.predict_proba(X3))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_missing_value_path_on_complete_data_is_plain_em(covariance_type):
    """The separate missing-value path (forced here on data without NaN) runs the same EM as the fast path:
    same start, same log-likelihood at every iteration, same parameters and labels."""
    X = mixture_data(2, d=3, n_clusters=3, spread=2.5)
    # means started at three data points: a poor start, so every covariance type moves for many iterations
    kwargs = dict(covariance_type=covariance_type, random_state=1, tol=0.0, max_iter=15, means_init=X[:3])
    plain = GaussianMixture(3, **kwargs).fit(X)
    forced = GaussianMixture(3, missing="marginalize", **kwargs)
    labels = forced._fit_predict_missing(X)
    assert np.ptp(plain.lower_bounds_) > 0.1  # the run moves, so equal histories mean something
    np.testing.assert_allclose(forced.lower_bounds_, plain.lower_bounds_, rtol=1e-10)
    for name in FITTED:
        np.testing.assert_allclose(getattr(forced, name), getattr(plain, name), rtol=1e-8, atol=1e-10,
                                   err_msg=name)
    np.testing.assert_array_equal(labels, plain.labels_)


def test_missing_exact_em_is_closer_to_the_full_data_fit_than_mean_imputation(X_missing):
    X, X_nan = X_missing
    kwargs = dict(random_state=0, tol=1e-6, max_iter=500)
    full = GaussianMixture(3, **kwargs).fit(X)
    exact = GaussianMixture(3, missing="marginalize", **kwargs).fit(X_nan)
    imputed = GaussianMixture(3, **kwargs).fit(np.where(np.isnan(X_nan), np.nanmean(X_nan, axis=0), X_nan))
    exact_means, exact_cov = parameter_errors(exact, full)
    imputed_means, imputed_cov = parameter_errors(imputed, full)
    # measured: means 0.053 vs 2.79, covariances 0.37 vs 5.39 (sums over the 3 components)
    assert exact_means < 0.2 * imputed_means and exact_cov < 0.2 * imputed_cov
    assert exact_means < 0.2 and exact_cov < 1.0


@pytest.mark.filterwarnings("ignore:component.*collapsed:RuntimeWarning")
@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_components=st.integers(1, 3),
       covariance_type=st.sampled_from(COVARIANCE_TYPES), d=st.integers(2, 4),
       fraction=st.sampled_from([0.1, 0.3, 0.5]))
def test_observed_log_likelihood_never_decreases_with_missing_values(seed, n_components, covariance_type, d,
                                                                     fraction):
    # reg_covar=0 as in test_log_likelihood_never_decreases: EM is then exact and monotonicity a theorem.
    X = drop_at_random(mixture_data(seed, d=d, n_clusters=3), fraction, seed % 1000)
    model = GaussianMixture(n_components, covariance_type=covariance_type, tol=0.0, max_iter=20, reg_covar=0.0,
                            missing="marginalize", random_state=seed % 1000).fit(X)
    history = np.asarray(model.lower_bounds_)
    assert len(history) == model.n_iter_ == 20 and np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:])), np.diff(history)
    assert model.score(X) == pytest.approx(model.lower_bound_, rel=1e-10)


def test_observed_log_likelihood_is_monotone_on_the_20_percent_data(X_missing):
    _, X_nan = X_missing
    model = GaussianMixture(3, missing="marginalize", random_state=0, tol=1e-8, max_iter=300).fit(X_nan)
    history = np.asarray(model.lower_bounds_)
    assert model.converged_ and len(history) > 10
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert model.lower_bound_ == history[-1] == pytest.approx(model.score(X_nan), rel=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_missing_em_fixed_point_is_a_stationary_point_of_the_observed_likelihood(covariance_type):
    """At convergence the gradient of the observed-data log-likelihood (autograd through the marginal density)
    vanishes; with the conditional covariance C_k left out of the M-step it stayed ~700 (full, measured)."""
    X = drop_at_random(mixture_data(1, d=3, n_clusters=2, spread=3.0), 0.25, seed=1)
    model = GaussianMixture(2, covariance_type=covariance_type, missing="marginalize", reg_covar=0.0, tol=0.0,
                            max_iter=300, random_state=0).fit(X)
    patterns = gmm_module._missing_patterns(X, np.isnan(X), "cpu")
    logits = torch.tensor(np.log(model.weights_), requires_grad=True)
    means = torch.tensor(model.means_, requires_grad=True)
    covariances = torch.tensor(model.covariances_, requires_grad=True)
    full = gmm_module._full_covariances(covariances, covariance_type, 2, 3)
    weighted = gmm_module._missing_weighted_log_prob(patterns, torch.softmax(logits, 0), means, full, len(X), 64)
    torch.logsumexp(weighted, dim=1).sum().backward()
    assert logits.grad.abs().max() < 1e-8 and means.grad.abs().max() < 1e-8
    gradient = covariances.grad + covariances.grad.mT if covariance_type in ("full", "tied") else covariances.grad
    assert gradient.abs().max() < 1e-7


def test_missing_marginal_density_matches_scipy(X_missing):
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    X, X_nan = X_missing
    model = GaussianMixture(3, random_state=0, missing="marginalize").fit(X_nan)
    rows = X_nan[:40]
    expected = []
    for x in rows:
        o = ~np.isnan(x)
        expected.append(logsumexp([np.log(model.weights_[k]) + multivariate_normal(
            model.means_[k, o], model.covariances_[k][np.ix_(o, o)]).logpdf(x[o]) for k in range(3)]))
    np.testing.assert_allclose(model.score_samples(rows), expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predict_with_missing_values(X_missing, covariance_type):
    X, X_nan = X_missing
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                            missing="marginalize").fit(X_nan[:600])
    proba = model.predict_proba(X_nan)
    assert proba.shape == (len(X), 3) and np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    complete = ~np.isnan(X_nan).any(1)
    assert 0 < complete.sum() < len(X)
    np.testing.assert_array_equal(proba[complete], model.predict_proba(X_nan[complete]))
    np.testing.assert_array_equal(model.predict(X_nan), proba.argmax(1))
    np.testing.assert_array_equal(model.predict(X_nan[:600]), model.labels_)
    scores = model.score_samples(X_nan)
    np.testing.assert_array_equal(scores[complete], model.score_samples(X_nan[complete]))
    assert np.all(np.isfinite(scores))
    assert model.score(X_nan[:600]) == pytest.approx(model.lower_bound_, rel=1e-10)


def test_missing_values_errors(X_missing):
    X, X_nan = X_missing
    empty_rows = X_nan[:50].copy()
    empty_rows[[3, 17]] = np.nan
    with pytest.raises(ValueError, match="rows 3 and 17 have no observed value"):
        GaussianMixture(2, missing="marginalize").fit(empty_rows)
    empty_rows[17] = X[17]
    with pytest.raises(ValueError, match="row 3 has no observed value"):
        GaussianMixture(2, missing="marginalize").fit(empty_rows)
    empty_column = X_nan[:50].copy()
    empty_column[:, 2] = np.nan
    with pytest.raises(ValueError, match="column 2 has no observed value"):
        GaussianMixture(2, missing="marginalize").fit(empty_column)
    model = GaussianMixture(2, missing="marginalize", random_state=0).fit(X_nan[:200])
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(ValueError, match="row 3 has no observed value"):
            getattr(model, method)(empty_rows)
    # the default refuses NaN with scikit-learn's message, at fit and at predict time
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture(2).fit(X_nan)
    model.set_params(missing="error")
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict(X_nan)
    model.set_params(missing="sometimes")
    with pytest.raises(ValueError, match="unknown missing 'sometimes'"):
        model.predict(X[:5])
    # infinity stays an error
    X_inf = X_nan[:50].copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2, missing="marginalize").fit(X_inf)


def test_missing_values_unsupported_options(X_missing):
    X, X_nan = X_missing
    model = GaussianMixture(2, missing="marginalize")
    with pytest.raises(NotImplementedError, match="sample_weight"):
        model.fit(X_nan[:100], sample_weight=np.ones(100))
    with pytest.raises(NotImplementedError, match="partial_fit does not support missing values"):
        model.partial_fit(X_nan[:100])
    # without NaN both work as usual
    GaussianMixture(2, missing="marginalize", random_state=0).fit(X[:100], sample_weight=np.ones(100))
    GaussianMixture(2, missing="marginalize", random_state=0).partial_fit(X[:100])


def test_missing_values_from_given_or_warm_parameters(X_missing):
    """precisions_init (lower-triangular Cholesky factors) and warm_start (the fit's upper-triangular ones)
    start the missing-value EM where they should: from a converged fit, one more step changes nothing."""
    _, X_nan = X_missing
    fitted = GaussianMixture(3, missing="marginalize", random_state=0, tol=1e-10, max_iter=1000).fit(X_nan)
    given = GaussianMixture(3, missing="marginalize", max_iter=1, tol=0.0, weights_init=fitted.weights_,
                            means_init=fitted.means_, precisions_init=fitted.precisions_).fit(X_nan)
    fitted.set_params(warm_start=True, max_iter=1, tol=0.0)
    before = fitted.lower_bound_
    fitted.fit(X_nan)
    for model in (given, fitted):
        assert model.lower_bound_ == pytest.approx(before, rel=1e-9)
        np.testing.assert_allclose(model.means_, given.means_, atol=1e-6)


def test_missing_parameter_save_load_and_tags(X_missing, tmp_path):
    from sklearn.base import clone
    from sklearn.utils import get_tags

    _, X_nan = X_missing
    model = GaussianMixture(3, missing="marginalize", random_state=0).fit(X_nan[:500])
    assert model.get_params()["missing"] == "marginalize" and clone(model).missing == "marginalize"
    assert get_tags(model).input_tags.allow_nan and not get_tags(GaussianMixture()).input_tags.allow_nan
    model.save(tmp_path / "gmm")
    loaded = load(tmp_path / "gmm")
    assert loaded.missing == "marginalize"
    np.testing.assert_array_equal(loaded.predict_proba(X_nan), model.predict_proba(X_nan))
