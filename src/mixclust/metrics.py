r"""Clustering metrics (SPEC §6), computed with scikit-learn and SciPy where they exist.

External (need true labels): NMI (arithmetic normalisation), ARI, AMI,
accuracy after Hungarian matching, homogeneity, completeness, V-measure.
Internal (need the data X): silhouette (on a seeded subsample for large n),
Davies-Bouldin, Calinski-Harabasz. Soft (need the assignment probabilities):

.. math::

    \text{mean\_entropy} = \frac1n \sum_i -\sum_k \gamma_{ik} \ln \gamma_{ik} \ \text{(nats)}, \qquad
    \text{mean\_confidence} = \frac1n \sum_i \max_k \gamma_{ik}, \qquad
    \text{balance} = \frac{\min_k n_k}{\max_k n_k}

with :math:`n_k` the hard cluster sizes (``cluster_sizes``, from argmax gamma).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

SILHOUETTE_MAX_SAMPLES = 10_000


def _labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    return y


def contingency(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts table C[i, j] = #{true class i, cluster j}, with the sorted class and cluster values."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    classes, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    table = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    np.add.at(table, (true_idx, pred_idx), 1)
    return table, classes, clusters


def cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy after the best one-to-one matching of clusters to labels (Hungarian, SciPy)."""
    table, _, _ = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def cluster_label_mapping(y_true, y_pred) -> dict:
    """The Hungarian matching of clusters to labels as ``{cluster: label}``.

    Clusters left unmatched (more clusters than labels) get new integer ids above the
    largest label, so the mapping is one-to-one.
    """
    table, classes, clusters = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = {clusters[c].item(): classes[r].item() for r, c in zip(rows, cols)}
    spare = int(np.max(classes)) + 1 if np.issubdtype(classes.dtype, np.integer) else 0
    for cluster in clusters.tolist():
        if cluster not in mapping:
            mapping[cluster], spare = spare, spare + 1
    return mapping


def cluster_label_array(y_true, y_pred, size: int) -> np.ndarray:
    """:func:`cluster_label_mapping` as a lookup array over cluster ids ``0..size-1`` (identity for ids
    absent from ``y_pred``), e.g. to recolour a model's predictions on a plotting grid."""
    mapping = np.arange(max(size, int(np.max(y_pred)) + 1))
    for cluster, label in cluster_label_mapping(y_true, y_pred).items():
        mapping[cluster] = label
    return mapping


def match_clusters(y_true, y_pred) -> np.ndarray:
    """``y_pred`` relabelled by :func:`cluster_label_mapping` (so colours and tables line up)."""
    mapping = cluster_label_mapping(y_true, y_pred)
    return np.array([mapping[c] for c in _labels(y_pred, "y_pred").tolist()])


def matched_correct(y_true, y_pred) -> np.ndarray:
    """Per sample, whether its cluster's label under :func:`cluster_label_mapping` is its label (bool, (n,))."""
    return match_clusters(y_true, y_pred) == np.asarray(y_true)


def confusion_table(y_true, y_pred) -> dict:
    """Percentage of each true label in each cluster (columns sum to 100).

    Returns ``{"labels": [...], "clusters": [...], "percent": (n_labels, n_clusters) array,
    "counts": same shape}``.
    """
    table, classes, clusters = contingency(y_true, y_pred)
    percent = 100.0 * table / np.maximum(table.sum(axis=0, keepdims=True), 1)
    return {"labels": classes.tolist(), "clusters": clusters.tolist(), "percent": percent, "counts": table}


def entropy(proba) -> np.ndarray:
    r"""Per-sample entropy (nats) of soft assignments (n, K): :math:`H_i = -\sum_k \gamma_{ik} \ln \gamma_{ik}`
    (0 = certain, :math:`\ln K` = uniform; :math:`0 \ln 0 = 0`)."""
    proba = np.asarray(proba, dtype=np.float64)
    return -(proba * np.log(np.where(proba > 0, proba, 1.0))).sum(axis=1)


def check_proba(proba) -> np.ndarray:
    """``proba`` as float64 (n, K) soft assignments, or a ValueError naming what is wrong with it."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (n_samples, n_clusters), got shape {proba.shape}")
    if not np.all(np.isfinite(proba)):
        raise ValueError("proba contains NaN or infinite values")
    if (proba < 0).any() or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("proba must hold probabilities: non-negative rows that sum to 1")
    return proba


def soft_assignment_metrics(proba) -> dict:
    """Mean entropy (nats), mean confidence (max probability), hard cluster sizes and balance."""
    proba = check_proba(proba)
    entropies = entropy(proba)
    sizes = np.bincount(proba.argmax(axis=1), minlength=proba.shape[1])
    return {
        "mean_entropy": float(entropies.mean()),
        "mean_confidence": float(proba.max(axis=1).mean()),
        "cluster_sizes": sizes.tolist(),
        "balance": float(sizes.min() / sizes.max()) if sizes.max() > 0 else 0.0,
    }


#: Triggers of :func:`degeneracy`: a cluster is "small" below ``SMALL_CLUSTER / K`` of the samples; one cluster
#: is "dominant" above ``DOMINANT_CLUSTER / K`` (only for K >= 4, where that is less than all of them); soft
#: assignments are "flat" when no column of gamma varies over the samples by a standard deviation of
#: ``FLAT_PROBA_STD``.
SMALL_CLUSTER, DOMINANT_CLUSTER, FLAT_PROBA_STD = 0.1, 3.0, 0.02


def populated_clusters(labels, n_clusters: int) -> int:
    """How many of the ``n_clusters`` clusters hold at least :math:`n / (10K)` of the samples (``SMALL_CLUSTER``;
    the rest are the "small" clusters of :func:`degeneracy`)."""
    labels = np.asarray(labels)
    return int((np.bincount(labels, minlength=int(n_clusters)) >= SMALL_CLUSTER * len(labels) / n_clusters).sum())


def degeneracy(labels, n_clusters: int, proba=None) -> str | None:
    r"""Why a clustering into ``n_clusters`` looks degenerate, or None.

    Triggers (none needs labels): fewer than K clusters hold at least :math:`n / (10K)` samples; one
    cluster holds more than :math:`3/K` of the data (K >= 4); the soft assignments barely vary across
    samples (:math:`\max_k \operatorname{std}_i \gamma_{ik} < 0.02`). They are triggers to look closer
    (real data can be imbalanced); the benchmark suite (reports/suite) measures how often they fire on
    K-means and on each model.
    """
    labels = np.asarray(labels)
    K, n = int(n_clusters), len(labels)
    sizes = np.bincount(labels, minlength=K)
    reasons = []
    small = K - populated_clusters(labels, K)
    if small:
        empty = int((sizes == 0).sum())
        reasons.append(f"{small} of {K} clusters hold fewer than 1/(10K) of the samples"
                       + (f" ({empty} empty)" if empty else ""))
    if K >= 4 and sizes.max() > DOMINANT_CLUSTER * n / K:
        reasons.append(f"one cluster holds {sizes.max() / n:.0%} of the samples (more than 3/K)")
    if proba is not None and K > 1 and np.asarray(proba).std(axis=0).max() < FLAT_PROBA_STD:
        reasons.append("the soft assignments barely vary across samples")
    return "; ".join(reasons) or None


def internal_metrics(X, y_pred, random_state=0) -> dict:
    """Silhouette (subsampled to 10,000 points), Davies-Bouldin, Calinski-Harabasz; NaN for one cluster."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y_pred = _labels(y_pred, "y_pred")
    n_clusters = len(np.unique(y_pred))
    if not 2 <= n_clusters <= len(X) - 1:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan"), "calinski_harabasz": float("nan")}
    sample = SILHOUETTE_MAX_SAMPLES if len(X) > SILHOUETTE_MAX_SAMPLES else None
    return {
        "silhouette": float(skm.silhouette_score(X, y_pred, sample_size=sample, random_state=random_state)),
        "davies_bouldin": float(skm.davies_bouldin_score(X, y_pred)),
        "calinski_harabasz": float(skm.calinski_harabasz_score(X, y_pred)),
    }


def external_metrics(y_true, y_pred) -> dict:
    """NMI, ARI, AMI, Hungarian accuracy, homogeneity, completeness, V-measure."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    homogeneity, completeness, v_measure = skm.homogeneity_completeness_v_measure(y_true, y_pred)
    return {
        "nmi": float(skm.normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(skm.adjusted_rand_score(y_true, y_pred)),
        "ami": float(skm.adjusted_mutual_info_score(y_true, y_pred)),
        "acc": cluster_accuracy(y_true, y_pred),
        "homogeneity": float(homogeneity),
        "completeness": float(completeness),
        "v_measure": float(v_measure),
    }


#: Equal-width confidence bins of :func:`expected_calibration_error`.
ECE_BINS = 15


def calibration_bins(y_true, proba, n_bins: int = ECE_BINS) -> dict:
    r"""Confidence against correctness of soft assignments, per equal-width confidence bin.

    Clusters are matched to labels by the Hungarian matching of :func:`cluster_label_mapping` (on
    ``argmax proba``); a sample is correct when its cluster's matched label is its label. Its confidence is
    :math:`c_i = \max_k \gamma_{ik}`; bin b holds the confidences in :math:`(b/B, (b+1)/B]`. Returns
    ``{"edges", "count", "confidence", "accuracy"}`` (the last two NaN for empty bins), the data of a
    reliability diagram.
    """
    proba = np.asarray(proba, dtype=np.float64)
    correct = matched_correct(y_true, proba.argmax(axis=1))
    confidence = proba.max(axis=1)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins) / count
    return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count, "confidence": mean_confidence,
            "accuracy": accuracy}


def expected_calibration_error(y_true, proba, n_bins: int = ECE_BINS) -> float:
    r"""Expected calibration error of the soft assignments against the labels (see :func:`calibration_bins`):

    .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{n} \left| \mathrm{acc}(B_b) - \mathrm{conf}(B_b) \right|,

    0 for perfectly calibrated probabilities, at most 1.
    """
    return ece_from_bins(calibration_bins(y_true, proba, n_bins))


def ece_from_bins(bins: dict) -> float:
    """:func:`expected_calibration_error` of bins already computed by :func:`calibration_bins`."""
    used = bins["count"] > 0
    weights = bins["count"][used] / bins["count"].sum()
    return float((weights * np.abs(bins["accuracy"][used] - bins["confidence"][used])).sum())


def evaluate(y_true=None, y_pred=None, proba=None, X=None, random_state=0) -> dict:
    """Every metric the given inputs allow, in one flat dict.

    ``y_pred`` defaults to ``argmax(proba)``. External metrics need ``y_true``,
    internal ones ``X``, soft ones ``proba``; ``ece`` (:func:`expected_calibration_error`) needs ``y_true``
    and ``proba``.
    """
    if y_pred is None and proba is not None:
        y_pred = np.asarray(proba).argmax(axis=1)
    if y_pred is None:
        raise ValueError("evaluate needs y_pred or proba")
    result: dict = {"n_samples": int(len(y_pred)), "n_clusters_found": int(len(np.unique(y_pred)))}
    if y_true is not None:
        result.update(external_metrics(y_true, y_pred))
    if X is not None:
        if len(X) != len(y_pred):
            raise ValueError(f"X has {len(X)} rows but y_pred has {len(y_pred)} labels")
        result.update(internal_metrics(X, y_pred, random_state=random_state))
    if proba is not None:
        if len(proba) != len(y_pred):
            raise ValueError(f"proba has {len(proba)} rows but y_pred has {len(y_pred)} labels")
        result.update(soft_assignment_metrics(proba))
        if y_true is not None:
            result["ece"] = expected_calibration_error(y_true, proba)
    return result
