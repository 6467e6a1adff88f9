"""A picture of every fit: ``mixclust fit ... --out DIR`` writes ``DIR/report.md`` with PNG figures beside it.

Figures (each skipped when it does not apply):

* ``map.png``: a 2-D map of at most :data:`MAP_POINTS` samples (after a fit of 30 s or more UMAP, after PCA to
  50 dimensions for wide inputs, or t-SNE when umap-learn is missing; after a faster fit PCA), coloured by
  the soft assignments (a point split between two clusters gets a blend of their colours, so uncertain
  points stand out);
* ``sizes.png``: the number of samples in each cluster;
* ``entropy.png``: a histogram of the per-sample entropy of the soft assignments
  :math:`H_i = -\\sum_k \\gamma_{ik} \\ln \\gamma_{ik}` (0 = certain, :math:`\\ln K` = uniform);
* ``members.png`` (images only): per cluster, its most typical members (highest :math:`\\gamma_{ik}`) and its
  most ambiguous ones (lowest :math:`\\max_k \\gamma_{ik}` among its members);
* ``reliability.png`` and ``labels.png`` (labels given): accuracy against confidence (the expected calibration
  error's bins) and the percentage of each label in each cluster.

Cost: on all 70,000 MNIST images with the UMAP map, 99 s on one thread of a machine running two other jobs
(``benchmarks/bench_fit_report.py``),
against 15-50 minutes for a deep model's fit there; most of it is the UMAP map (its kernels compile on first
use), which is why fast fits get PCA. ``--no-report`` skips the report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import metrics
from ._deep import intensity_scale
from .reports import Report

#: The 2-D map embeds at most this many samples (a seeded random subset).
MAP_POINTS = 5000
#: Fits at least this long (seconds) get a UMAP map; faster ones a PCA map (see :func:`map_method`).
MANIFOLD_MAP_AFTER = 30.0
#: Members shown per cluster in ``members.png``: this many typical and this many ambiguous ones.
MEMBERS_SHOWN = 6
#: Clusters shown in ``members.png`` (the largest ones) so the picture stays readable.
MEMBERS_CLUSTERS = 20


def _subset(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def map_method(fit_seconds: float | None) -> str:
    """"umap" (t-SNE without umap-learn) after a fit of at least :data:`MANIFOLD_MAP_AFTER` seconds, else "pca":
    a manifold map costs 10-40 s (UMAP compiles its kernels on first use), little beside a deep model's fit
    but far more than a GMM's."""
    return "umap" if fit_seconds is None or fit_seconds >= MANIFOLD_MAP_AFTER else "pca"


def _map_coordinates(X: np.ndarray, method: str, seed: int) -> np.ndarray:
    import warnings

    from sklearn.decomposition import PCA

    from .plotting import embed_2d

    flat = X.reshape(len(X), -1).astype(np.float64)
    if flat.shape[1] <= 2:
        return flat if flat.shape[1] == 2 else np.column_stack([flat[:, 0], np.zeros(len(flat))])
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(flat)
    if flat.shape[1] > 50 and len(flat) > 50:
        flat = PCA(50, random_state=seed).fit_transform(flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap-learn's note that a seed disables its parallelism
        return embed_2d(flat, "auto", random_state=seed)


def _members(X: np.ndarray, proba: np.ndarray, labels: np.ndarray):
    """Images of the most typical and most ambiguous members of the largest clusters, and row captions."""
    sizes = np.bincount(labels, minlength=proba.shape[1])
    shown = [k for k in np.argsort(-sizes)[:MEMBERS_CLUSTERS] if sizes[k] > 0]
    rows, captions = [], []
    blank = np.ones_like(X[0])
    for k in shown:
        members = np.flatnonzero(labels == k)
        typical = members[np.argsort(-proba[members, k])][:MEMBERS_SHOWN]
        ambiguous = members[np.argsort(proba[members].max(axis=1))][:MEMBERS_SHOWN]
        row = [X[i] for i in typical] + [blank] * (MEMBERS_SHOWN - len(typical)) + [blank]
        row += [X[i] for i in ambiguous] + [blank] * (MEMBERS_SHOWN - len(ambiguous))
        rows.append(row)
        captions.append(f"cluster {k} ({sizes[k]})")
    return np.stack([image for row in rows for image in row]), captions


def write_fit_report(out_dir, model_name: str, X: np.ndarray, proba: np.ndarray, y=None, scores: dict | None = None,
                     fit_seconds: float | None = None, data_name: str = "", seed: int = 0,
                     command: str = "mixclust fit ...", criterion: dict | None = None) -> Path:
    """Write ``out_dir/report.md`` and its figures for a fitted model's soft assignments ``proba`` on X.

    X is the data as loaded (images (n, C, H, W) add ``members.png``; the map flattens them); ``y`` adds the
    label heat map; ``scores`` (``metrics.json``'s metrics) become a table. Returns the path of the report.
    """
    import matplotlib.pyplot as plt

    from .plotting import confusion_heatmap, image_grid, probability_colors, reliability_diagram

    started = time.perf_counter()
    X, proba = np.asarray(X), np.asarray(proba, dtype=np.float64)
    labels = proba.argmax(axis=1)
    n, K = proba.shape
    out = Path(out_dir)
    report = Report(out, f"{model_name} on {data_name or 'the data'}: {n:,} samples, {K} clusters",
                    command=command, seed=seed)
    if scores:
        keys = [k for k in ("nmi", "ari", "acc", "ece", "silhouette", "mean_entropy", "mean_confidence", "balance")
                if isinstance(scores.get(k), float)]
        report.table([{k: scores[k] for k in keys}])
    used = int((np.bincount(labels, minlength=K) > 0).sum())
    if used < K:
        report.text(f"\n**{K - used} of the {K} clusters asked for hold no sample.**")

    if criterion:
        name = next(k for k in criterion if k not in ("n_components", "covariance_type"))
        fig, ax = plt.subplots(figsize=(5, 3.2))
        counts, kinds, values = (np.asarray(criterion[k]) for k in ("n_components", "covariance_type", name))
        for kind in dict.fromkeys(kinds.tolist()):
            mine = kinds == kind
            ax.plot(counts[mine], values[mine], "o-", ms=3, label=kind)
        best = int(np.argmin(values))
        ax.plot(counts[best], values[best], "k*", ms=12, label=f"chosen: K = {counts[best]}")
        ax.set_xlabel("number of components K")
        ax.set_ylabel(name.upper())
        ax.legend(fontsize=7)
        report.figure(fig, "criterion.png", f"{name.upper()} against K (lowest wins)")

    subset = _subset(n, MAP_POINTS, seed)
    method = map_method(fit_seconds)
    coordinates = _map_coordinates(X[subset], method, seed)
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.scatter(coordinates[:, 0], coordinates[:, 1], c=probability_colors(proba[subset]) if K <= 10 else labels[subset],
               cmap=None if K <= 10 else "tab20", s=4, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    name = {"pca": "PCA", "umap": "UMAP"}[method]
    ax.set_title(f"{name} map of {len(subset):,} samples, coloured by cluster"
                 + (" (blends: uncertain)" if K <= 10 else ""), fontsize=9)
    report.figure(fig, "map.png", f"the data in two dimensions ({name}), coloured by the soft assignments")

    sizes = np.bincount(labels, minlength=K)
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * K), 3))
    ax.bar(range(K), sizes, color="tab:blue")
    ax.axhline(n / K, color="k", lw=0.8, ls="--", label="n / K")
    ax.set_xlabel("cluster")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    report.figure(fig, "sizes.png", "cluster sizes (dashed: equal sizes)")

    entropy = metrics.entropy(proba)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(entropy, bins=40, range=(0, max(np.log(K), 1e-6)), color="tab:orange")
    ax.set_xlabel("entropy of the soft assignment (nats; ln K at the right edge)")
    ax.set_ylabel("samples")
    report.figure(fig, "entropy.png", f"per-sample entropy: mean {entropy.mean():.3f} nats, "
                                      f"{(entropy < 0.1).mean():.0%} of samples below 0.1")

    if X.ndim == 4 and X.shape[1] in (1, 3):
        shown = X / intensity_scale(float(X.min()), float(X.max()))  # 0..255 pixels as the deep models see them
        images, captions = _members(np.clip(shown, 0, 1), proba, labels)
        rows = len(captions)
        fig, ax = plt.subplots(figsize=(0.5 * (2 * MEMBERS_SHOWN + 1) + 1.5, 0.55 * rows + 0.6))
        image_grid(ax, images, nrow=rows)
        height = X.shape[2] + 1
        ax.set_yticks([(r + 0.5) * height for r in range(rows)], captions, fontsize=6)
        ax.set_title(f"per cluster: {MEMBERS_SHOWN} most typical | {MEMBERS_SHOWN} most ambiguous members",
                     fontsize=8)
        report.figure(fig, "members.png", "left: the members each cluster is surest of; right: its members "
                                          "least sure of any cluster")

    if y is not None:
        bins = metrics.calibration_bins(y, proba)
        fig, ax = plt.subplots(figsize=(4.2, 4))
        reliability_diagram(ax, bins)
        report.figure(fig, "reliability.png", f"reliability diagram: expected calibration error "
                                              f"{metrics.ece_from_bins(bins):.3f} (15 bins)")
        table = metrics.confusion_table(y, labels)
        fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(table["clusters"]) + 1.5),
                                        max(3, 0.35 * len(table["labels"]) + 1)))
        fig.colorbar(confusion_heatmap(ax, table, "percent of each cluster's samples per label"), ax=ax)
        report.figure(fig, "labels.png", "labels by cluster (each column sums to 100)")

    seconds = time.perf_counter() - started
    timing = f"fit {fit_seconds:.1f} s; " if fit_seconds is not None else ""
    report.text(f"\n{timing}this report {seconds:.1f} s.")
    return report.write("report.md")


__all__ = ["write_fit_report", "map_method", "MAP_POINTS"]
