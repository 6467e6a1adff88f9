"""GMM study (SPEC §4, source [GMM]): Gaussian mixtures fitted by EM, side by side with K-means.

One function per section of the report:

1. :func:`likelihood_curves` - mean log-likelihood per EM iteration; it must never decrease.
2. :func:`kmeans_vs_gmm` - anisotropic and varied-variance blobs (plus blobs, moons, iris): ARI/NMI.
3. :func:`moons_density` - GMM with K = 10 as a density model of two moons; held-out fit and BIC vs K.
4. :func:`iris_soft` - soft assignments on Fisher's iris: the uncertain versicolor/virginica points, with
   the GMM on all 4 features and on the two petal features only (4.1, as the source drew it).
5. :func:`kmeans_limit` - EM with Sigma_k = eps I and pi_k = 1/K becomes K-means as eps -> 0.
6. :func:`missing_values` - entries missing completely at random: exact EM (``missing="marginalize"``) vs
   mean imputation then EM, against the fit on the full data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .. import datasets, metrics, plotting
from ..gmm import COVARIANCE_TYPES, GaussianMixture
from ..reports import Report, mean_std
from . import threads

DESCRIPTION = ("Gaussian mixtures by EM vs K-means: log-likelihood ascent, anisotropic and varied blobs, "
               "density of two moons, soft assignments on iris, the K-means limit, missing values")
N_INIT = 5  # initialisations of both K-means and the GMM (the best objective is kept)
SPECIES = ["setosa", "versicolor", "virginica"]
COMPARISON = [("anisotropic", 3), ("varied", 3), ("blobs", 3), ("moons", 2), ("iris", 3)]
EPSILONS = [30.0, 10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 1e-3]
MISSING_FRACTIONS = [0.1, 0.2, 0.3, 0.4]
IRIS_FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
PETAL = [2, 3]  # petal length, petal width: the plane the iris figures are drawn in
ALL_FEATURES = "4 features"
IRIS_VARIANTS = {ALL_FEATURES: [0, 1, 2, 3], "2 petal features": PETAL}  # the iris fits compared in 4.1
IRIS_PALETTE = [(0.6, 0.6, 0.6), (0.1, 0.35, 0.9), (0.9, 0.15, 0.1)]  # setosa, versicolor, virginica
NEAR_HALF = (0.3, 0.7)  # gamma for versicolor and virginica both in this range: "near 0.5"


def _load(name, seed, n, data_dir):
    """(X, y) of a study data set; synthetic sets are drawn with ``random_state=seed``."""
    if name == "iris":
        return datasets.load("iris", data_dir=data_dir)
    return datasets.load(name, data_dir=data_dir, n_samples=n, random_state=seed)


def _gmm(k, seed, **kwargs):
    kwargs.setdefault("n_init", N_INIT)
    return GaussianMixture(k, random_state=seed, device="cpu", **kwargs)


def _kmeans(k, seed):
    return KMeans(k, n_init=N_INIT, random_state=seed)


def likelihood_curves(report, n, seed, data_dir):
    cases = [("anisotropic", 3), ("varied", 3), ("moons", 10), ("iris", 3)]
    fig, axes = plotting.subplots(len(cases), ncols=4, size=3.3)
    rows = []
    for ax, (name, k) in zip(axes, cases):
        X, _ = _load(name, seed, n, data_dir)
        for cov in COVARIANCE_TYPES:
            model = _gmm(k, seed, covariance_type=cov, n_init=1, init_params="random_from_data",
                         tol=1e-6, max_iter=2000).fit(X)
            history = np.asarray(model.log_likelihood_history_)
            ax.plot(np.arange(1, len(history) + 1), history, label=cov, lw=1.3)
            rows.append({"data set": name, "K": k, "covariance": cov, "iterations": model.n_iter_,
                         "first": history[0], "final": history[-1],
                         "smallest step": np.diff(history).min() if len(history) > 1 else np.nan})
        ax.set_xscale("log")
        ax.set_title(f"{name}, K = {k}", fontsize=9)
        ax.set_xlabel("EM iteration")
    axes[0].set_ylabel("mean log-likelihood per sample")
    axes[0].legend(fontsize=8, title="covariance", title_fontsize=8)
    fig.tight_layout()
    smallest = min(r["smallest step"] for r in rows if not np.isnan(r["smallest step"]))
    verdict = ("never decreased" if smallest >= 0 else "never decreased beyond float64 round-off"
               if smallest > -1e-10 else "**decreased** (a bug)")
    report.text(f"EM from `init_params=\"random_from_data\"` (one start, `tol=1e-6`), seed {seed}. Over all "
                f"{len(rows)} runs the log-likelihood {verdict}: the smallest change between consecutive "
                f"iterations was {smallest:.2e}.")
    report.figure(fig, "loglik_per_iteration.png", "Mean log-likelihood per EM iteration (log x axis).")
    for r in rows:
        r["smallest step"] = f"{r['smallest step']:.1e}"
    report.table(rows, floatfmt=".4f")
    return smallest


def _comparison_panel(ax, X, y, model, name, label, k):
    mapping = metrics.cluster_label_array(y, model.predict(X), k)
    predict = lambda points: mapping[model.predict(points)]  # noqa: E731
    labels = predict(X)
    plotting.decision_regions(ax, predict, X)
    plotting.scatter_clusters(ax, X, labels, f"{name}: {label} (ARI {adjusted_rand_score(y, labels):.2f})")
    limits = ax.get_xlim(), ax.get_ylim()
    if isinstance(model, GaussianMixture):
        plotting.gaussian_ellipses(ax, model.means_, model.covariances_, "full")
    else:
        ax.scatter(*model.cluster_centers_.T, marker="x", c="k", s=50, label="centres")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])


def kmeans_vs_gmm(report, n, seeds, data_dir):
    fig, axes = plt.subplots(2, 2, figsize=(8.6, 8.2))
    for row, name in zip(axes, ["anisotropic", "varied"]):
        X, y = _load(name, seeds[0], n, data_dir)
        _comparison_panel(row[0], X, y, _kmeans(3, seeds[0]).fit(X), name, "K-means", 3)
        _comparison_panel(row[1], X, y, _gmm(3, seeds[0]).fit(X), name, "GMM, full", 3)
    fig.tight_layout()
    report.figure(fig, "kmeans_vs_gmm.png", f"Data seed {seeds[0]}. Colours: clusters matched to the true "
                  "labels; shading: decision regions; black: K-means centres / GMM 1- and 2-sigma ellipses.")
    rows, raw, misses = [], {}, []
    for name, k in COMPARISON:
        scores = {key: [] for key in ("km_ari", "gmm_ari", "km_nmi", "gmm_nmi")}
        for s in seeds:
            X, y = _load(name, s, n, data_dir)
            for model, key in ((_kmeans(k, s), "km"), (_gmm(k, s), "gmm")):
                labels = model.fit_predict(X)
                scores[f"{key}_ari"].append(adjusted_rand_score(y, labels))
                scores[f"{key}_nmi"].append(normalized_mutual_info_score(y, labels))
            if name in ("anisotropic", "varied", "blobs") and scores["gmm_ari"][-1] < 0.9:
                misses.append(_local_optimum_check(X, y, k, s, model, name))
        raw[name] = scores
        cell = lambda v: f"{mean_std(v)} (min {min(v):.3f})"  # noqa: E731
        rows.append({"data set": name, "K": k, "K-means ARI": cell(scores["km_ari"]),
                     "GMM ARI": cell(scores["gmm_ari"]), "K-means NMI": cell(scores["km_nmi"]),
                     "GMM NMI": cell(scores["gmm_nmi"])})
    report.text(f"ARI and NMI against the true labels, mean ± std (population) and minimum over {len(seeds)} "
                f"seeds {seeds[0]}..{seeds[-1]}; seed s draws the synthetic data (n = {n}, fixed centres, "
                f"`datasets.load(..., random_state=s)`) **and** seeds both models (`random_state=s`). Iris "
                f"is fixed, so only the models vary. K-means: scikit-learn, k-means++, n_init={N_INIT}; "
                f"GMM: mixclust, full covariance, k-means init, n_init={N_INIT}, best likelihood kept. "
                "Its k-means initialisation inherits K-means' cut of stretched blobs: when every start "
                "begins in it, EM can stay in that local optimum (listed below the table when it happens).")
    report.table(rows)
    if misses:
        report.text("GMM runs with ARI < 0.9 on the Gaussian data sets, refitted from the true class means "
                    "(an oracle start) to tell a local optimum from a model failure:")
        report.table(misses, floatfmt=".4f")
    return raw


def _local_optimum_check(X, y, k, seed, model, name):
    """Log-likelihood of a fitted GMM beside one started at the true class means."""
    oracle = _gmm(k, seed, n_init=1, means_init=np.array([X[y == c].mean(0) for c in range(k)])).fit(X)
    return {"data set": name, "seed": seed, "ARI": adjusted_rand_score(y, model.predict(X)),
            "log-lik": model.score(X), "oracle-start ARI": adjusted_rand_score(y, oracle.predict(X)),
            "oracle-start log-lik": oracle.score(X)}


def moons_density(report, n, k_range, seed, data_dir):
    X, _ = _load("moons", seed, n, data_dir)
    X_test, _ = _load("moons", seed + 10_000, n, data_dir)
    model = _gmm(10, seed).fit(X)
    rows = []
    for k in k_range:
        g = _gmm(k, seed).fit(X)
        rows.append({"K": k, "train log-lik": g.score(X), "held-out log-lik": g.score(X_test),
                     "BIC": g.bic(X)})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    contour = plotting.log_density_contour(axes[0], model.score_samples, X)
    fig.colorbar(contour, ax=axes[0], label="log p(x)")
    axes[0].scatter(*X.T, s=3, c="w", alpha=0.6, linewidths=0)
    axes[0].scatter(*model.means_.T, marker="X", s=60, c="red", edgecolors="k", label="component means")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"GMM K = 10 (full) on two moons, n = {n}", fontsize=9)
    ks = [r["K"] for r in rows]
    axes[1].plot(ks, [r["train log-lik"] for r in rows], "o-", label="train")
    axes[1].plot(ks, [r["held-out log-lik"] for r in rows], "s--", label="held-out draw")
    axes[1].set(xlabel="K", ylabel="mean log-likelihood per sample", title="fit vs number of components")
    axes[1].legend(fontsize=8)
    axes[2].plot(ks, [r["BIC"] for r in rows], "o-", c="C2")
    best = min(rows, key=lambda r: r["BIC"])
    axes[2].axvline(best["K"], c="grey", ls=":", label=f"min BIC at K = {best['K']}")
    axes[2].set(xlabel="K", ylabel="BIC (lower is better)", title="BIC vs number of components")
    axes[2].legend(fontsize=8)
    for ax in axes[1:]:
        ax.set_xticks(ks)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    best_test = max(rows, key=lambda r: r["held-out log-lik"])
    report.text(f"Held-out: a second draw of {n} points (`random_state={seed + 10_000}`; make_moons puts "
                "the points at evenly spaced angles and redraws only the noise). BIC is lowest at "
                f"K = {best['K']}; the held-out log-likelihood is highest at K = {best_test['K']} "
                f"among K = {ks[0]}..{ks[-1]}.")
    report.figure(fig, "moons_density.png", "Left: log-density of the K = 10 mixture (clipped below), data "
                  "and component means. Middle/right: fit and BIC vs K.")
    report.table(rows)
    return rows


class IrisFit(NamedTuple):
    """A GMM fitted on some columns of iris, its soft assignments in species order."""
    columns: list[int]  # feature columns of iris the model saw
    model: GaussianMixture
    proba: np.ndarray  # (150, 3) gamma, columns in species order (clusters matched by the Hungarian method)
    labels: np.ndarray  # arg-max species of each point
    top: np.ndarray  # largest gamma of each point


def iris_fit(X, y, columns, seed) -> IrisFit:
    """The study's GMM (K = 3, full covariance, k-means start, n_init=N_INIT, ``random_state=seed``) on
    ``X[:, columns]``, its clusters matched to the species."""
    columns = list(columns)
    data = X[:, columns]
    model = _gmm(3, seed).fit(data)
    mapping = metrics.cluster_label_array(y, model.predict(data), 3)
    proba = np.empty((len(X), 3))
    proba[:, mapping] = model.predict_proba(data)  # columns in species order
    return IrisFit(columns, model, proba, proba.argmax(1), proba.max(1))


def near_half(proba, low=NEAR_HALF[0], high=NEAR_HALF[1]):
    """Points whose gamma for versicolor and for virginica both lie in [low, high]."""
    return ((proba[:, 1:] >= low) & (proba[:, 1:] <= high)).all(1)


def _petal_plane(ax, X, y, fit: IrisFit, annotate=False, ellipses=False):
    """Iris in the petal plane, each point coloured by its gamma mix (grey/blue/red), black edge when its
    largest gamma is below 0.9. ``annotate``: label those points with P(versicolor)/P(virginica) (stacked
    in the empty lower right); ``ellipses``: the fit's 1- and 2-sigma ellipses in the petal plane (the
    petal marginals of its components when it saw more features) and a ring round each point near 0.5."""
    petal = X[:, PETAL]
    for i, marker in enumerate("os^"):
        m = y == i
        ax.scatter(*petal[m].T, c=plotting.probability_colors(fit.proba[m], IRIS_PALETTE), marker=marker,
                   s=28, edgecolors=np.where(fit.top[m] < 0.9, "k", "none"), label=SPECIES[i])
    if annotate:
        for row, j in enumerate(np.flatnonzero(fit.top < 0.9)):
            ax.annotate(f"#{j}: {fit.proba[j, 1]:.2f} / {fit.proba[j, 2]:.2f}", tuple(petal[j]), fontsize=7,
                        xytext=(0.62, 0.4 - 0.07 * row), textcoords="axes fraction",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.3"})
    if ellipses:
        near = near_half(fit.proba) & (y > 0)
        ax.scatter(*petal[near].T, s=120, facecolors="none", edgecolors="k", linewidths=1.0,
                   label=f"gamma near 0.5 ({int(near.sum())})")
        at = [fit.columns.index(c) for c in PETAL]
        plotting.gaussian_ellipses(ax, fit.model.means_[:, at], fit.model.covariances_[:, at][:, :, at], "full")
    ax.set(xlabel="petal length (cm)", ylabel="petal width (cm)")
    ax.legend(fontsize=8, title="true species (marker)", title_fontsize=8)


def _max_gamma_hist(ax, y, top):
    """Stacked histogram (log counts) of the largest gamma of each point, by species."""
    ax.hist([top[y == i] for i in range(3)], bins=np.linspace(0.4, 1.0, 25), stacked=True, label=SPECIES,
            color=IRIS_PALETTE)
    ax.set_yscale("log")
    ax.set(xlabel="max responsibility", ylabel="points (log scale)")
    ax.legend(fontsize=8)


def _overlap_row(name, y, fit: IrisFit):
    """ARI/NMI against species and the uncertain versicolor/virginica samples of one fit."""
    pair = y > 0  # versicolor or virginica
    below = int((fit.top[pair] < 0.9).sum())
    return {"features": name, "columns": ", ".join(IRIS_FEATURES[c] for c in fit.columns),
            "ARI": adjusted_rand_score(y, fit.labels), "NMI": normalized_mutual_info_score(y, fit.labels),
            "versicolor + virginica": int(pair.sum()), "max gamma < 0.9": below,
            "share < 0.9": f"{below / pair.sum():.1%}",
            "gamma near 0.5": int((near_half(fit.proba) & pair).sum()),
            "lowest max gamma": float(fit.top[pair].min())}


def iris_soft(report, seed, data_dir):
    X, y = _load("iris", seed, None, data_dir)
    fits = {name: iris_fit(X, y, columns, seed) for name, columns in IRIS_VARIANTS.items()}
    counts = _iris_all_features(report, X, y, fits[ALL_FEATURES], seed)
    report.section("4.1 Two petal features, as the source drew it", level=3)
    rows = _iris_petal_variant(report, X, y, fits, seed)
    return counts, rows


def _iris_all_features(report, X, y, fit: IrisFit, seed):
    labels, top, proba = fit.labels, fit.top, fit.proba
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    _petal_plane(axes[0], X, y, fit, annotate=True)
    axes[0].set_title("colour: P(cluster) mix (grey/blue/red); labelled: max P < 0.9,\n"
                      "with P(versicolor)/P(virginica)", fontsize=9)
    _max_gamma_hist(axes[1], y, top)
    table = metrics.confusion_table(y, labels)
    table["labels"] = SPECIES
    table["clusters"] = [f"~{SPECIES[c]}" for c in table["clusters"]]
    image = plotting.confusion_heatmap(axes[2], table, "species make-up of each GMM cluster (% of column)")
    fig.colorbar(image, ax=axes[2])
    fig.tight_layout()
    report.text(f"GMM, K = 3, full covariance, all 4 features, seed {seed}; ARI "
                f"{adjusted_rand_score(y, labels):.3f}, NMI {normalized_mutual_info_score(y, labels):.3f}. "
                "Clusters are named by the species they overlap most (Hungarian matching).")
    report.figure(fig, "iris_soft.png", "Iris: soft assignments in the petal plane, distribution of the "
                  "largest probability, and the confusion table.")
    wrong, confident_wrong = int((labels != y).sum()), int(((labels != y) & (top >= 0.9)).sum())
    report.text(f"Only {int((top < 0.9).sum())} of {len(X)} points have a largest probability below 0.9 and "
                f"{int((top < 0.6).sum())} below 0.6: with full covariances in 4-D the mixture is confident "
                f"on iris, and {confident_wrong} of the {wrong} points it puts in another species' cluster "
                "are put there with probability >= 0.9 (confidently wrong, not uncertain).")
    counts = [{"species": s, "points": int((y == i).sum()), "max P < 0.9": int((top[y == i] < 0.9).sum()),
               "max P < 0.6": int((top[y == i] < 0.6).sum()),
               "assigned elsewhere": int((labels[y == i] != i).sum())} for i, s in enumerate(SPECIES)]
    report.table(counts)
    examples = [{"index": int(j), "species": SPECIES[y[j]], "petal length": X[j, 2], "petal width": X[j, 3],
                 **{f"P({s})": proba[j, i] for i, s in enumerate(SPECIES)}} for j in np.argsort(top)[:8]]
    report.text("The eight least certain points:")
    report.table(examples)
    return counts


def _near_half_verdict(rows):
    """One plain sentence: in which variant gamma near 0.5 appears (from the counts, nothing assumed)."""
    (name_a, a), (name_b, b) = ((r["features"], r["gamma near 0.5"]) for r in rows)
    if a == b == 0:
        return "Neither fit gives any versicolor/virginica sample gamma near 0.5."
    if a == b:
        return f"Gamma near 0.5 appears equally often in both fits ({a} samples each)."
    (more, m), (fewer, f) = sorted([(name_a, a), (name_b, b)], key=lambda t: -t[1])
    tail = f"only in the fit on {more} ({m} samples, none with {fewer})" if f == 0 else \
        f"mostly in the fit on {more} ({m} samples against {f} with {fewer})"
    return f"Gamma near 0.5 for versicolor/virginica appears {tail}."


def _compared(value, reference):
    """'higher', 'lower' or 'the same' (at the three decimals the report shows)."""
    value, reference = round(value, 3), round(reference, 3)
    return "higher" if value > reference else "lower" if value < reference else "the same"


def _iris_petal_variant(report, X, y, fits, seed):
    rows = [_overlap_row(name, y, fit) for name, fit in fits.items()]
    fig, axes = plt.subplots(2, len(fits), figsize=(6.2 * len(fits), 9.0), sharex="row", sharey="row")
    for column, ((name, fit), row) in enumerate(zip(fits.items(), rows)):
        _petal_plane(axes[0, column], X, y, fit, ellipses=True)
        axes[0, column].set_title(f"GMM on {name} ({row['columns']}): ARI {row['ARI']:.3f}\n"
                                  f"{row['max gamma < 0.9']} of {row['versicolor + virginica']} "
                                  f"versicolor/virginica with max gamma < 0.9, {row['gamma near 0.5']} "
                                  "near 0.5", fontsize=9)
        _max_gamma_hist(axes[1, column], y, fit.top)
        axes[1, column].axvline(0.9, c="k", ls=":", lw=0.8)
        axes[1, column].set_title(f"largest gamma, {name}", fontsize=9)
    fig.tight_layout()
    first, second = rows
    lo, hi = NEAR_HALF
    report.text(
        f"The same estimator and settings (mixclust `GaussianMixture`, K = 3, full covariance, k-means "
        f"start, n_init={N_INIT}, `random_state={seed}`) fitted on the two petal columns only, beside the "
        f"fit on all four. \"Near 0.5\": gamma for versicolor and for virginica both within [{lo}, {hi}]; "
        f"counts are over the {first['versicolor + virginica']} versicolor and virginica samples. "
        + _near_half_verdict(rows)
        + f" With {second['features']}, {second['max gamma < 0.9']} of them "
        f"({second['share < 0.9']}) have a largest gamma below 0.9 and {second['gamma near 0.5']} are near "
        f"0.5; with {first['features']}, {first['max gamma < 0.9']} ({first['share < 0.9']}) and "
        f"{first['gamma near 0.5']}. The lowest largest gamma among them is {second['lowest max gamma']:.3f} "
        f"with {second['features']} and {first['lowest max gamma']:.3f} with {first['features']}. "
        f"Against the species, ARI/NMI are {first['ARI']:.3f}/{first['NMI']:.3f} "
        f"with {first['features']} and {second['ARI']:.3f}/{second['NMI']:.3f} with {second['features']} "
        f"(ARI {_compared(second['ARI'], first['ARI'])} with {second['features']})."
        + (" In the petal plane versicolor and virginica overlap, and a mixture that sees only those two "
           "features shares the overlap between its components; the sepal features separate the two "
           "species further, so the 4-feature mixture commits to one of them."
           if second["gamma near 0.5"] > first["gamma near 0.5"] else ""))
    report.figure(fig, "iris_petal_2d.png", "Iris, GMM on all four features (left) and on petal length and "
                  "width only (right). Top: points coloured by their gamma mix (grey/blue/red = setosa/"
                  "versicolor/virginica), black edge when the largest gamma is below 0.9, ringed when near "
                  "0.5; ellipses: the components' 1- and 2-sigma ellipses (for the 4-feature fit, their "
                  "petal-plane marginals). Bottom: largest gamma of each point (dotted: 0.9).")
    report.table(rows)
    near = np.flatnonzero((y > 0) & np.any([near_half(fit.proba) for fit in fits.values()], axis=0))
    if len(near):
        report.text(f"The versicolor/virginica samples near 0.5 in either fit ({len(near)}):")
        report.table([{"index": int(j), "species": SPECIES[y[j]], "petal length": X[j, 2],
                       "petal width": X[j, 3],
                       **{f"{name}: P({s})": fit.proba[j, i] for name, fit in fits.items()
                          for i, s in ((1, "versicolor"), (2, "virginica"))}} for j in near])
    return rows


def soft_kmeans_em(X, centres, eps, max_iter=5000, tol=1e-12):
    """EM with every covariance fixed at ``eps * I`` and weights 1/K: only the means are updated.

    E-step: r_nk = softmax_k(-||x_n - mu_k||^2 / (2 eps)) (in log space);
    M-step: mu_k = sum_n r_nk x_n / sum_n r_nk.
    Returns (means, responsibilities).
    """
    means = np.array(centres, dtype=np.float64)
    for _ in range(max_iter):
        logits = -((X[:, None, :] - means[None]) ** 2).sum(-1) / (2.0 * eps)
        resp = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        mass = resp.sum(0)
        new = np.where(mass[:, None] > 0, resp.T @ X / np.maximum(mass, 1e-300)[:, None], means)
        shift, means = np.abs(new - means).max(), new
        if shift < tol:
            break
    return means, resp


def kmeans_limit(report, n, seed, data_dir):
    X, _ = _load("varied", seed, n, data_dir)
    k = 3
    centres, _ = kmeans_plusplus(X, k, random_state=seed)
    km = KMeans(k, init=centres, n_init=1, tol=0.0, max_iter=1000).fit(X)
    rows, paths = [], []
    for eps in EPSILONS:
        means, resp = soft_kmeans_em(X, centres, eps)
        paths.append(means)
        distance = np.linalg.norm(means - km.cluster_centers_, axis=1).max()
        rows.append({"eps": eps, "mean max responsibility": resp.max(1).mean(),
                     "ARI vs K-means labels": adjusted_rand_score(km.labels_, resp.argmax(1)),
                     "max distance to K-means centres": distance})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    plotting.scatter_clusters(axes[0], X, km.labels_, "K-means labels and centres (x); EM means (dots)")
    colours = plt.get_cmap("plasma")(np.linspace(0, 0.9, len(EPSILONS)))
    for eps, means, colour in zip(EPSILONS, paths, colours):
        axes[0].scatter(*means.T, color=colour, s=40, edgecolors="k", linewidths=0.5, label=f"eps = {eps:g}")
    axes[0].scatter(*km.cluster_centers_.T, marker="x", c="k", s=90, linewidths=2)
    axes[0].legend(fontsize=7, title="EM means", title_fontsize=7, loc="upper left",
                   bbox_to_anchor=(1.0, 1.0))
    eps = np.array(EPSILONS)
    axes[1].plot(eps, [r["ARI vs K-means labels"] for r in rows], "o-", label="ARI(EM, K-means labels)")
    axes[1].plot(eps, [r["mean max responsibility"] for r in rows], "s--", label="mean max responsibility")
    axes[1].set(xscale="log", xlabel="eps (covariance eps I)", ylim=(-0.05, 1.05), title="labels harden")
    axes[1].legend(fontsize=8)
    distance = np.maximum([r["max distance to K-means centres"] for r in rows], 1e-16)
    axes[2].plot(eps, distance, "o-", c="C3")
    axes[2].set(xscale="log", yscale="log", xlabel="eps", ylabel="max distance EM mean to K-means centre",
                title="means converge to the K-means centres")
    for ax in axes[1:]:
        ax.invert_xaxis()
        ax.title.set_fontsize(9)
    fig.tight_layout()
    report.text(f"Varied blobs (n = {n}, seed {seed}), K = 3. Both start from the same k-means++ centres "
                f"(`kmeans_plusplus(random_state={seed})`); K-means is scikit-learn's Lloyd "
                "(`init=centres, n_init=1, tol=0`), EM updates only the means with Sigma_k = eps I and "
                "pi_k = 1/K fixed (`soft_kmeans_em` in this module, numpy). As eps shrinks the "
                "responsibilities harden and the EM fixed point becomes the K-means one. At large eps the "
                "means merge (all responsibilities near 1/K), so the arg-max labels there hang on tiny "
                "differences.")
    report.figure(fig, "kmeans_limit.png", "EM with covariances eps I and equal weights vs K-means from the "
                  "same initial centres (eps decreases to the right).")
    for r in rows:
        r["eps"] = f"{r['eps']:g}"
        r["max distance to K-means centres"] = f"{r['max distance to K-means centres']:.2e}"
    report.table(rows, floatfmt=".4f")
    return rows


def missing_mixture(n, seed, n_features=5, weights=(0.5, 0.3, 0.2), spread=4.0):
    """``n`` points of a 3-component Gaussian mixture in ``n_features`` dimensions with full covariances
    (means N(0, spread^2 I), covariance (A + I/2)(A + I/2)^T with A_ij ~ N(0, 1/d)), seeded."""
    rng = np.random.default_rng(seed)
    d = n_features
    means = rng.normal(scale=spread, size=(len(weights), d))
    parts = []
    for mean, count in zip(means, rng.multinomial(n, weights)):
        mix = rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * np.eye(d)
        parts.append(mean + rng.normal(size=(count, d)) @ mix.T)
    X = np.concatenate(parts)
    return X[rng.permutation(n)]


def drop_at_random(X, fraction, seed):
    """X with each entry set to NaN with probability ``fraction`` (missing completely at random); a row left
    with no observed value is drawn again, so every row keeps at least one."""
    rng = np.random.default_rng(seed)
    mask = rng.random(X.shape) < fraction
    empty = mask.all(axis=1)
    while empty.any():
        mask[empty] = rng.random((int(empty.sum()), X.shape[1])) < fraction
        empty = mask.all(axis=1)
    return np.where(mask, np.nan, X)


def parameter_errors(model, reference):
    """(sum_k ||mu_k - mu_k^ref||, sum_k ||Sigma_k - Sigma_k^ref||_F) after matching the components to the
    reference's by the Hungarian method on the distances between means (full covariances)."""
    cost = ((reference.means_[:, None] - model.means_[None]) ** 2).sum(-1)
    ref, ours = linear_sum_assignment(cost)
    means = np.linalg.norm(reference.means_[ref] - model.means_[ours], axis=1).sum()
    covariances = np.linalg.norm(reference.covariances_[ref] - model.covariances_[ours], axis=(1, 2)).sum()
    return float(means), float(covariances)


def missing_values(report, n, seed):
    X = missing_mixture(n, seed)
    kwargs = dict(n_init=1, tol=1e-6, max_iter=1000)
    reference = _gmm(3, seed, **kwargs).fit(X)
    rows = []
    for fraction in MISSING_FRACTIONS:
        X_missing = drop_at_random(X, fraction, seed)
        mask = np.isnan(X_missing)
        exact = _gmm(3, seed, missing="marginalize", **kwargs).fit(X_missing)
        imputed = _gmm(3, seed, **kwargs).fit(np.where(mask, np.nanmean(X_missing, axis=0), X_missing))
        (exact_means, exact_cov), (imputed_means, imputed_cov) = (parameter_errors(m, reference)
                                                                  for m in (exact, imputed))
        rows.append({"missing fraction": f"{fraction:g}", "missing entries": f"{mask.mean():.1%}",
                     "complete rows": f"{(~mask.any(1)).mean():.1%}", "exact EM: means": exact_means,
                     "exact EM: covariances": exact_cov, "imputation: means": imputed_means,
                     "imputation: covariances": imputed_cov, "exact EM iterations": exact.n_iter_,
                     "exact EM log-lik never decreased": bool(np.diff(exact.lower_bounds_).min(initial=0.0)
                                                             >= -1e-9 * abs(exact.lower_bound_))})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, what in zip(axes, ("means", "covariances")):
        ax.plot(MISSING_FRACTIONS, [r[f"exact EM: {what}"] for r in rows], "o-",
                label='exact EM (missing="marginalize")')
        ax.plot(MISSING_FRACTIONS, [r[f"imputation: {what}"] for r in rows], "s--", label="mean imputation, then EM")
        ax.set(xlabel="fraction of entries missing (MCAR)", yscale="log", xticks=MISSING_FRACTIONS,
               ylabel=("sum of ||mu_k - mu_k(full)||" if what == "means" else "sum of ||Sigma_k - Sigma_k(full)||_F"),
               title=f"{what}: distance to the full-data fit")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    scale = np.linalg.norm(reference.covariances_, axis=(1, 2)).sum()
    report.text(f"A 3-component mixture with full covariances in 5 dimensions (n = {n}, weights 0.5/0.3/0.2, "
                f"`missing_mixture(n, seed={seed})` in this module). Each entry is set to NaN with the given "
                f"probability, completely at random (seed {seed}; a row that loses every entry is drawn again). "
                "Both fits are compared with the GMM fitted on the full data, the components matched by the "
                "Hungarian method on their means: (a) exact EM with `missing=\"marginalize\"` (E-step on "
                "each row's observed dimensions, M-step with the conditional means and covariances of the "
                "missing ones), (b) every NaN replaced by its column's observed mean, then plain EM. All "
                f"fits: full covariance, k-means start, `n_init=1, tol=1e-6`, `random_state={seed}`. Mean "
                "imputation puts the incomplete rows on the column means, which shrinks every covariance and "
                "drags the means towards the data mean; exact EM stays close to the full-data fit. For scale, "
                f"the full-data fit's covariances have sum_k ||Sigma_k||_F = {scale:.2f}.")
    report.figure(fig, "missing_values.png", "Distance of the fitted means (left) and covariances (right) to "
                  "the full-data fit, vs the fraction of entries missing (log y axis).")
    report.table(rows, floatfmt=".3f")
    return rows


def run(out_dir, quick: bool = False, seed: int = 0, data_dir=None) -> Path:
    """Write ``out_dir/README.md`` and its figures; returns the README path."""
    with threads(1):
        return _run(out_dir, quick, seed, data_dir)


def _run(out_dir, quick, seed, data_dir) -> Path:
    start = time.perf_counter()
    n, n_seeds = (300, 2) if quick else (1000, 5)
    k_range = list(range(1, 5 if quick else 13))
    seeds = [seed + i for i in range(n_seeds)]
    command = "mixclust reproduce gmm" + (" --quick" if quick else "") + f" --seed {seed}"
    report = Report(out_dir, "Gaussian mixtures fitted by EM (SPEC §4, [GMM])", command, seed)
    report.text(f"{'Quick' if quick else 'Full'} mode: synthetic sets of n = {n} points, {n_seeds} seeds, "
                f"K = {k_range[0]}..{k_range[-1]} for the model-size scan. All models run on the CPU "
                "with one thread (the problems are tiny; see `mixclust.studies.threads`).")
    report.section("1. Log-likelihood per EM iteration")
    likelihood_curves(report, n, seed, data_dir)
    report.section("2. K-means vs GMM")
    kmeans_vs_gmm(report, n, seeds, data_dir)
    report.section("3. GMM as a density model of two moons")
    moons_density(report, n, k_range, seed, data_dir)
    report.section("4. Fisher's iris: soft assignments")
    iris_soft(report, seed, data_dir)
    report.section("5. The K-means limit")
    kmeans_limit(report, n, seed, data_dir)
    report.section("6. Missing values")
    missing_values(report, 2 * n, seed)
    report.text(f"\n_Total time {time.perf_counter() - start:.1f} s._")
    return report.write()
