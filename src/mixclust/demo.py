"""``make demo`` / ``mixclust demo``: every registered model clusters scikit-learn's digits.

Writes ``README.md`` (a table of NMI/ARI/ACC, soft-assignment metrics and fit
time per model, beside K-means as the baseline) and figures (a PCA map
coloured by each model's clusters, and label-by-cluster heat maps). Later
models join automatically through the registry.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from . import datasets, metrics, plotting
from ._base import prepare_input
from ._registry import MODELS
from .reports import Report


def run(out_dir="runs/demo", random_state: int = 0, data: str = "digits") -> Path:
    """Fit every registered model on ``data`` (10 clusters) and write the report; returns its path."""
    X, y = datasets.load(data)
    n_clusters = len(np.unique(y))
    flat = X.reshape(len(X), -1)
    report = Report(out_dir, f"mixclust demo: {data}", command="make demo", seed=random_state)
    report.text(f"{len(X)} samples of shape {X.shape[1:]}, {n_clusters} classes; every model runs with its "
                f"defaults: nothing but {n_clusters} clusters and random_state={random_state} (what a user gets); "
                "labels are used only to score. `NMI - K-means`: the model's NMI minus scikit-learn's K-means' "
                "(n_init=10) on the same pixels.")

    results = {}
    start = time.perf_counter()
    baseline = KMeans(n_clusters, n_init=10, random_state=random_state).fit_predict(flat)
    results["k-means (scikit-learn)"] = (baseline, None, time.perf_counter() - start)
    for name, cls in sorted((n, c) for n, c in MODELS.items() if c._clusterer):
        # A model that chooses K (gmm-ic) gets its own candidates, not the answer.
        given = {} if getattr(cls, "_chooses_k", False) else {cls._n_clusters_param: n_clusters}
        model = cls(**given, random_state=random_state, verbose=0)
        inputs = prepare_input(model, X)
        start = time.perf_counter()
        model.fit(inputs)
        seconds = time.perf_counter() - start
        proba = model.predict_proba(inputs)
        chosen = f", chose K = {model.n_components_}" if hasattr(model, "n_components_") else ""
        results[f"{name} ({cls.__name__}{chosen})"] = (proba.argmax(axis=1), proba, seconds)
        print(f"  {name}: {seconds:.1f} s")

    rows = []
    kmeans_nmi = metrics.external_metrics(y, baseline)["nmi"]
    for label, (pred, proba, seconds) in results.items():
        scores = metrics.evaluate(y, pred, proba=proba)
        rows.append({"model": label, "NMI": scores["nmi"], "NMI - K-means": scores["nmi"] - kmeans_nmi,
                     "ARI": scores["ari"], "ACC": scores["acc"],
                     "clusters used": f"{scores['n_clusters_found']}/{n_clusters}",
                     "mean entropy": scores.get("mean_entropy"), "confidence": scores.get("mean_confidence"),
                     "seconds": seconds})
    report.section("Results").table(rows)

    embedding = PCA(2, random_state=random_state).fit_transform(flat)
    fig, axes = plotting.subplots(len(results) + 1, ncols=3)
    plotting.scatter_clusters(axes[0], embedding, y, "true labels")
    for ax, (label, (pred, _, _)) in zip(axes[1:], results.items()):
        plotting.scatter_clusters(ax, embedding, metrics.match_clusters(y, pred), label)
    report.section("Clusters on the first two principal components")
    report.figure(fig, "clusters_pca.png", "PCA of the data, coloured by the true labels and by each model "
                  "(clusters matched to labels, so equal colours mean agreement)")

    fig, axes = plotting.subplots(len(results), ncols=3, size=4.0)
    for ax, (label, (pred, _, _)) in zip(axes, results.items()):
        plotting.confusion_heatmap(ax, metrics.confusion_table(y, pred), label)
    report.section("Which labels land in which cluster")
    report.figure(fig, "confusion.png", "percentage of each true label in each cluster")
    return report.write()
