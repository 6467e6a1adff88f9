"""Tests of mixclust.metrics (SPEC §6): every value equals the scikit-learn / SciPy function it stands for."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mixclust import metrics as M

EXTERNAL = {
    "nmi": skm.normalized_mutual_info_score,
    "ari": skm.adjusted_rand_score,
    "ami": skm.adjusted_mutual_info_score,
    "homogeneity": skm.homogeneity_score,
    "completeness": skm.completeness_score,
    "v_measure": skm.v_measure_score,
}
INTERNAL = {
    "silhouette": skm.silhouette_score,
    "davies_bouldin": skm.davies_bouldin_score,
    "calinski_harabasz": skm.calinski_harabasz_score,
}


@st.composite
def labelled_data(draw, max_n=60):
    """Seeded random labels, predictions, data and soft assignments of one length."""
    n = draw(st.integers(2, max_n))
    n_classes = draw(st.integers(1, 5))
    n_clusters = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y_true = rng.integers(0, n_classes, size=n)
    proba = rng.dirichlet(np.full(n_clusters, 0.5), size=n)
    y_pred = rng.integers(0, n_clusters, size=n) * 3 + 1  # arbitrary cluster ids, not 0..K-1
    X = rng.normal(size=(n, 2)) + y_pred[:, None]
    return y_true, y_pred, X, proba


def brute_force_accuracy(y_true, y_pred):
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    size = max(len(classes), len(clusters))
    best = 0
    for perm in itertools.permutations(range(size)):
        # cluster j is matched to class perm[j] (padding indices match nothing)
        hits = sum(np.sum((y_pred == c) & (y_true == classes[perm[j]]))
                   for j, c in enumerate(clusters) if perm[j] < len(classes))
        best = max(best, hits)
    return best / len(y_true)


# ------------------------------------------------------------------------------------------------
# evaluate == scikit-learn / SciPy
# ------------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=labelled_data())
def test_evaluate_equals_sklearn(data):
    y_true, y_pred, X, proba = data
    result = M.evaluate(y_true=y_true, y_pred=y_pred, proba=proba, X=X, random_state=0)
    assert result["n_samples"] == len(y_pred)
    assert result["n_clusters_found"] == len(np.unique(y_pred))
    for name, function in EXTERNAL.items():
        assert result[name] == pytest.approx(function(y_true, y_pred), abs=1e-12), name
    assert result["acc"] == pytest.approx(brute_force_accuracy(y_true, y_pred), abs=1e-12)
    if 2 <= len(np.unique(y_pred)) <= len(y_pred) - 1:
        for name, function in INTERNAL.items():
            assert result[name] == pytest.approx(function(X, y_pred), rel=1e-12), name
    else:
        assert all(math.isnan(result[name]) for name in INTERNAL)
    entropy = scipy.stats.entropy(proba, axis=1)
    assert result["mean_entropy"] == pytest.approx(entropy.mean(), rel=1e-10, abs=1e-12)
    assert result["mean_confidence"] == pytest.approx(proba.max(1).mean(), rel=1e-12)
    sizes = np.bincount(proba.argmax(1), minlength=proba.shape[1])
    assert result["cluster_sizes"] == sizes.tolist()
    assert 0.0 <= result["balance"] <= 1.0
    assert result["balance"] == pytest.approx(sizes.min() / sizes.max())
    np.testing.assert_allclose(M.entropy(proba), entropy, rtol=1e-10, atol=1e-12)


def test_evaluate_sections_follow_inputs():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=30)
    only_soft = M.evaluate(proba=proba)
    assert set(only_soft) == {"n_samples", "n_clusters_found", "mean_entropy", "mean_confidence",
                              "cluster_sizes", "balance"}
    # y_pred defaults to argmax(proba)
    y_true = rng.integers(0, 3, 30)
    assert M.evaluate(y_true=y_true, proba=proba)["acc"] == M.cluster_accuracy(y_true, proba.argmax(1))
    assert set(M.evaluate(y_pred=proba.argmax(1), X=rng.normal(size=(30, 2)))) == {
        "n_samples", "n_clusters_found", "silhouette", "davies_bouldin", "calinski_harabasz"}
    with pytest.raises(ValueError, match="y_pred or proba"):
        M.evaluate(y_true=y_true)


def test_nmi_is_arithmetic_normalisation():
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 1, 2, 2])
    got = M.external_metrics(y_true, y_pred)["nmi"]
    assert got == pytest.approx(skm.normalized_mutual_info_score(y_true, y_pred, average_method="arithmetic"))
    assert got != pytest.approx(skm.normalized_mutual_info_score(y_true, y_pred, average_method="geometric"))


# ------------------------------------------------------------------------------------------------
# Hungarian accuracy and the confusion table
# ------------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), n_classes=st.integers(1, 4),
       n_clusters=st.integers(1, 4))
def test_cluster_accuracy_is_brute_force_optimum_and_label_free(seed, n, n_classes, n_clusters):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n)
    y_pred = rng.integers(0, n_clusters, n)
    acc = M.cluster_accuracy(y_true, y_pred)
    assert acc == pytest.approx(brute_force_accuracy(y_true, y_pred), abs=1e-12)
    assert 0.0 < acc <= 1.0
    # Relabelling clusters (any bijection, even onto strings) and classes changes nothing.
    renamed = np.array([f"c{v}" for v in rng.permutation(10)])[y_pred]
    assert M.cluster_accuracy(y_true, renamed) == acc
    assert M.cluster_accuracy(rng.permutation(10)[y_true] + 100, y_pred) == acc


def test_cluster_accuracy_examples():
    assert M.cluster_accuracy([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert M.cluster_accuracy([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5
    # More clusters than classes: one cluster stays unmatched.
    assert M.cluster_accuracy([0, 0, 0, 1], [0, 1, 2, 3]) == 0.5
    assert M.cluster_accuracy(np.zeros(10, dtype=int), np.arange(10) % 2) == 0.5


@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=labelled_data())
def test_confusion_table_columns_sum_to_100(data):
    y_true, y_pred, _, _ = data
    table = M.confusion_table(y_true, y_pred)
    assert table["labels"] == np.unique(y_true).tolist()
    assert table["clusters"] == np.unique(y_pred).tolist()
    np.testing.assert_allclose(table["percent"].sum(axis=0), 100.0, rtol=1e-12)
    assert table["counts"].sum() == len(y_true)
    np.testing.assert_array_equal(table["counts"], skm.cluster.contingency_matrix(y_true, y_pred))
    np.testing.assert_allclose(table["percent"], 100 * table["counts"] / table["counts"].sum(0), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Soft assignments
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [1, 2, 5, 10])
def test_entropy_extremes(K):
    one_hot = np.eye(K)[np.arange(20) % K]
    soft = M.soft_assignment_metrics(one_hot)
    assert soft["mean_entropy"] == 0.0 and soft["mean_confidence"] == 1.0
    np.testing.assert_array_equal(M.entropy(one_hot), 0.0)
    uniform = M.soft_assignment_metrics(np.full((20, K), 1.0 / K))
    assert uniform["mean_entropy"] == pytest.approx(math.log(K), abs=1e-12)  # nats
    assert uniform["mean_confidence"] == pytest.approx(1.0 / K)


def test_balance():
    assert M.soft_assignment_metrics(np.eye(3)[[0, 1, 2, 0, 1, 2]])["balance"] == 1.0
    skewed = M.soft_assignment_metrics(np.eye(3)[[0, 0, 0, 0, 1, 1]])
    assert skewed["cluster_sizes"] == [4, 2, 0] and skewed["balance"] == 0.0
    assert M.soft_assignment_metrics(np.eye(2)[[0, 0, 0, 1]])["balance"] == pytest.approx(1 / 3)


def test_soft_metrics_reject_bad_proba():
    with pytest.raises(ValueError, match="2-D"):
        M.soft_assignment_metrics(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        M.soft_assignment_metrics(np.array([[0.5, np.nan]]))


# ------------------------------------------------------------------------------------------------
# Internal metrics
# ------------------------------------------------------------------------------------------------
def test_silhouette_is_subsampled_above_the_limit_and_seeded(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(M.SILHOUETTE_MAX_SAMPLES + 1, 2))
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0.5)
    calls = []
    real = skm.silhouette_score

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(skm, "silhouette_score", spy)
    result = M.internal_metrics(X, y, random_state=3)
    assert calls[-1]["sample_size"] == M.SILHOUETTE_MAX_SAMPLES and calls[-1]["random_state"] == 3
    assert -1.0 <= result["silhouette"] <= 1.0
    assert result["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(X, y))
    assert result["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(X, y))
    # At or below the limit every point is used.
    M.internal_metrics(X[:500], y[:500])
    assert calls[-1]["sample_size"] is None


def test_silhouette_subsample_is_deterministic(monkeypatch):
    """Same subsampling logic with a small limit (a real 10,000-point silhouette is too slow to repeat)."""
    monkeypatch.setattr(M, "SILHOUETTE_MAX_SAMPLES", 100)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2))
    y = rng.integers(0, 3, 400)
    first = M.internal_metrics(X, y, random_state=0)["silhouette"]
    assert M.internal_metrics(X, y, random_state=0)["silhouette"] == first
    assert first == skm.silhouette_score(X, y, sample_size=100, random_state=0)
    others = {M.internal_metrics(X, y, random_state=s)["silhouette"] for s in range(1, 4)}
    assert first not in others  # a different seed draws a different subsample
    assert M.evaluate(y_pred=y, X=X, random_state=0)["silhouette"] == first


@pytest.mark.parametrize("labels", [np.zeros(10, dtype=int), np.arange(10)],
                         ids=["one-cluster", "all-single"])
def test_internal_metrics_undefined_give_nan(labels):
    X = np.random.default_rng(0).normal(size=(10, 2))
    result = M.internal_metrics(X, labels)
    assert set(result) == set(INTERNAL) and all(math.isnan(v) for v in result.values())


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def test_mismatched_lengths_raise():
    y = np.array([0, 0, 1, 1, 2])
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="5 labels but y_pred has 4"):
        M.external_metrics(y, y[:4])
    with pytest.raises(ValueError, match="y_pred"):
        M.evaluate(y_true=y[:4], y_pred=y)
    with pytest.raises(ValueError, match="X has 4 rows"):
        M.evaluate(y_pred=y, X=X[:4])
    with pytest.raises(ValueError, match="proba has 7 rows"):
        M.evaluate(y_pred=y, proba=np.full((7, 3), 1 / 3))
    with pytest.raises(ValueError, match="y_pred"):
        M.cluster_accuracy(y, y[:4])
    with pytest.raises(ValueError, match="y_pred"):
        M.confusion_table(y, y[:4])
    with pytest.raises(ValueError):
        M.internal_metrics(X, y[:4])


def test_labels_must_be_one_dimensional():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="y_true must be 1-D"):
        M.cluster_accuracy(y[:, None], y)
    with pytest.raises(ValueError, match="y_pred must be 1-D"):
        M.external_metrics(y, np.eye(2)[y])


def test_match_clusters_relabels_to_the_best_matching_labels():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([5, 5, 3, 3, 7, 7, 9])
    matched = M.match_clusters(y_true, y_pred)
    assert matched.tolist() == [0, 0, 1, 1, 2, 2, 3]  # the unmatched cluster 9 gets a fresh id
    assert M.cluster_accuracy(y_true, y_pred) == pytest.approx(np.mean(matched == y_true))


def test_ece_is_zero_when_confidence_equals_accuracy_and_measures_overconfidence():
    from mixclust.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 2, n)
    # cluster = label 0 -> cluster 1 (a permutation: the Hungarian matching undoes it); confidence 0.8 and
    # exactly 80% correct: calibrated
    wrong = np.zeros(n, bool)
    wrong[rng.permutation(n)[: n // 5]] = True
    cluster = np.where(wrong, y, 1 - y)
    proba = np.full((n, 2), 0.2)
    proba[np.arange(n), cluster] = 0.8
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    # the same assignments claimed with confidence 0.99: overconfident by 0.19
    proba_over = np.full((n, 2), 0.01)
    proba_over[np.arange(n), cluster] = 0.99
    assert expected_calibration_error(y, proba_over) == pytest.approx(0.19, abs=1e-12)
    assert "ece" in M.evaluate(y, proba=proba_over) and "ece" not in M.evaluate(proba=proba_over)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_ece_lies_in_zero_one(seed, K):
    from mixclust.metrics import expected_calibration_error

    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(K), size=200)
    y = rng.integers(0, K, 200)
    assert 0.0 <= expected_calibration_error(y, proba) <= 1.0
