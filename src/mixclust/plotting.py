"""Figures shared by studies, the demo and users (matplotlib).

The backend is matplotlib's choice (Agg on a machine without a display), so figures also show inline in
notebooks; ``import mixclust`` does not import this module.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

CMAP = "tab10"


def subplots(n_panels: int, ncols: int = 3, size: float = 3.6):
    """A grid of ``n_panels`` axes (extra axes hidden); returns (fig, flat list of axes)."""
    ncols = min(ncols, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    axes = axes.ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def scatter_clusters(ax, X, labels, title: str = "", s: float = 6):
    """2-D scatter coloured by cluster label."""
    X = np.asarray(X)
    ax.scatter(X[:, 0], X[:, 1], c=np.asarray(labels) % 10, cmap=CMAP, vmin=0, vmax=9, s=s, linewidths=0)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def decision_regions(ax, predict, X, resolution: int = 200, alpha: float = 0.18):
    """Shade the plane by ``predict`` (a function of (m, 2) points) over the range of X."""
    X = np.asarray(X)
    pad = 0.08 * (X.max(axis=0) - X.min(axis=0))
    xs = np.linspace(X[:, 0].min() - pad[0], X[:, 0].max() + pad[0], resolution)
    ys = np.linspace(X[:, 1].min() - pad[1], X[:, 1].max() + pad[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    zz = np.asarray(predict(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    ax.contourf(xx, yy, zz % 10, levels=np.arange(-0.5, 10), cmap=CMAP, vmin=0, vmax=9, alpha=alpha)


def covariance_matrices(covariances, covariance_type: str, n_components: int, n_features: int):
    """(K, d, d) covariance matrices from any of the four GMM parameterisations."""
    cov = np.asarray(covariances)
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(n_features) * c for c in cov])


def gaussian_ellipses(ax, means, covariances, covariance_type: str = "full", n_std=(1.0, 2.0), color="k"):
    """Draw the 1- and 2-sigma ellipses of 2-D Gaussian components."""
    means = np.asarray(means)
    for k, cov in enumerate(covariance_matrices(covariances, covariance_type, *means.shape)):
        values, vectors = np.linalg.eigh(cov[:2, :2])
        angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
        for s in n_std:
            width, height = 2 * s * np.sqrt(np.maximum(values[::-1], 0))
            ax.add_patch(Ellipse(means[k, :2], width, height, angle=angle, fill=False, color=color,
                                 lw=1.0, alpha=0.8 if s == n_std[0] else 0.4))


def confusion_heatmap(ax, table: dict, title: str = ""):
    """Heat map of ``metrics.confusion_table``: percent of each label (rows) in each cluster (columns)."""
    percent = np.asarray(table["percent"])
    im = ax.imshow(percent, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(table["clusters"])), table["clusters"], fontsize=7)
    ax.set_yticks(range(len(table["labels"])), table["labels"], fontsize=7)
    ax.set_xlabel("cluster")
    ax.set_ylabel("label")
    if percent.size <= 400:
        for (i, j), value in np.ndenumerate(percent):
            if value >= 1:
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6,
                        color="w" if value < 60 else "k")
    ax.set_title(title, fontsize=9)
    return im


def reliability_diagram(ax, bins: dict, title: str = ""):
    """Bars of accuracy per confidence bin (``metrics.calibration_bins``) against the diagonal of perfect
    calibration; empty bins are left out."""
    used = np.asarray(bins["count"]) > 0
    edges = np.asarray(bins["edges"])
    centres = 0.5 * (edges[:-1] + edges[1:])
    ax.bar(centres[used], np.asarray(bins["accuracy"])[used], width=1 / len(centres), edgecolor="k",
           color="tab:blue", label="accuracy (clusters matched to labels)")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max of the soft assignment)")
    ax.set_ylabel("fraction correct")
    ax.legend(fontsize=6, loc="upper left")
    ax.set_title(title, fontsize=8)


def image_grid(ax, images, nrow: int, titles=None):
    """Tile (n, C, H, W) images in [0, 1] into one picture with ``nrow`` rows on ``ax``."""
    images = np.asarray(images)
    n, c, h, w = images.shape
    ncol = int(np.ceil(n / nrow))
    canvas = np.ones((nrow * (h + 1), ncol * (w + 1), c), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        canvas[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = images[i].transpose(1, 2, 0)
    ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if titles is not None:
        for i, t in enumerate(titles):
            r, col = divmod(i, ncol)
            ax.text(col * (w + 1) + w / 2, r * (h + 1) + h + 0.5, str(t), ha="center", va="top", fontsize=6)


def log_density_contour(ax, score_samples, X, resolution: int = 200, levels: int = 14, floor=None,
                        cmap: str = "viridis"):
    """Filled contours of a log-density ``score_samples`` ((m, 2) points -> (m,)) over the range of X.

    Values below ``floor`` (default: the 1st percentile of the log-density at the points of X minus 3)
    are clipped so the far tails do not take all the contour levels. Returns the contour set (for a
    colour bar).
    """
    X = np.asarray(X)
    pad = 0.15 * (X.max(axis=0) - X.min(axis=0))
    xs = np.linspace(X[:, 0].min() - pad[0], X[:, 0].max() + pad[0], resolution)
    ys = np.linspace(X[:, 1].min() - pad[1], X[:, 1].max() + pad[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    zz = np.asarray(score_samples(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    if floor is None:
        floor = float(np.percentile(np.asarray(score_samples(X)), 1)) - 3.0
    return ax.contourf(xx, yy, np.maximum(zz, floor), levels=levels, cmap=cmap)


def probability_colors(proba, palette=None):
    """RGB colour of each row of soft assignments: the probability-weighted mix of the cluster colours.

    A point certain of cluster k gets colour k of ``palette`` (default tab10); a point split between two
    clusters gets a blend, so uncertain points stand out.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if palette is None:
        palette = plt.get_cmap(CMAP).colors[:proba.shape[1]]
    return np.clip(proba @ np.asarray(palette, dtype=np.float64)[:, :3], 0.0, 1.0)


def label_map(ax, Y, labels, title: str = "", names=None, s: float = 3, legend: bool = True):
    """2-D embedding (e.g. t-SNE of a latent space) coloured by class, each class named at its median.

    ``Y`` is (n, 2), ``labels`` integer classes (at most 10 distinct colours); ``names`` maps a class
    to the text written at its median point and in the legend (default: the class number).
    """
    Y, labels = np.asarray(Y), np.asarray(labels)
    cmap = plt.get_cmap(CMAP)
    for k in np.unique(labels):
        m = labels == k
        name = str(k) if names is None else str(names[k])
        ax.scatter(Y[m, 0], Y[m, 1], color=cmap(int(k) % 10), s=s, linewidths=0, label=name, alpha=0.8)
        cx, cy = np.median(Y[m], axis=0)
        ax.text(cx, cy, name, fontsize=10, fontweight="bold", ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": cmap(int(k) % 10), "alpha": 0.8})
    if legend:
        ax.legend(fontsize=7, markerscale=3, loc="upper right", ncol=2, framealpha=0.7)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


EMBEDDINGS = ("auto", "tsne", "umap")


def embed_2d(Z, method: str = "auto", random_state: int = 0) -> np.ndarray:
    """2-D map of points Z (n, d): t-SNE (scikit-learn), or UMAP when ``umap-learn`` is installed.

    ``method="auto"`` uses UMAP if it can be imported, else t-SNE; ``"umap"`` without the package is a
    clear error naming the extra to install.
    """
    if method not in EMBEDDINGS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(map(repr, EMBEDDINGS))}")
    Z = np.asarray(Z, dtype=np.float64)
    if method in ("auto", "umap"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise ImportError("method='umap' needs umap-learn: pip install umap-learn") from None
        else:
            return umap.UMAP(n_components=2, random_state=random_state).fit_transform(Z)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(Z) - 1) / 3))
    return TSNE(2, init="pca", perplexity=perplexity, random_state=random_state).fit_transform(Z)
