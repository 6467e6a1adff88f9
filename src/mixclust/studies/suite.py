"""Benchmark suite: every registered clusterer with its defaults on many data sets (``mixclust benchmark``).

Why: a default measured on one data set (MNIST) is not evidence that it clusters data nobody tuned it for.
The suite runs each registered clusterer with nothing but ``n_clusters`` and ``random_state`` on image sets
(digits, MNIST and Fashion-MNIST subsamples and whole, a 16 x 16 digit set, FSDD spectrograms, a pooled
20-class set), tabular sets (iris, wine, breast cancer, standardised) and the synthetic 2-D sets, beside
scikit-learn's KMeans (``n_init=10``) and GaussianMixture on the same input. Image sets run in both input
forms: flattened (n, D) and images (n, C, H, W); tabular models always get the flattened pixels.

Every run is cached by (data set, form, model, seed, the model's parameters, :func:`version` of the model) in
``reports/suite/.runs/<data set>--<model>.pkl``, so an interrupted suite resumes and ``--render`` only redraws.
Labels are only used to score.
"""

from __future__ import annotations

import ast
import json
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture as SklearnGMM

from .. import datasets, metrics
from .._registry import MODELS
from ..reports import Report, mean_std
from . import RunCache, subsample, threads

DESCRIPTION = "every registered clusterer with its defaults on many data sets, beside K-means and a GMM"
#: Bumped when the code behind the defaults changes in a way the parameters do not show (cached runs of an
#: older version are recomputed).
SUITE_VERSION = 3
#: Models whose code changed after ``SUITE_VERSION`` in a way their parameters do not show, so only their runs
#: are recomputed. 4: the UMAP-embedding GMM of ``_deep.manifold_partition`` keeps the best of 10 starts by
#: log-likelihood instead of one start (aekm's clusterer, VaDE's and MoA's initialisation), and aekm assigns by
#: the partition's neighbour map (``_deep.neighbour_responsibilities``) instead of its Gaussians on the codes.
#: 5 (MoA): ``epochs="auto"`` is 10 epochs with no floor of 1,000 optimiser steps (``moa.AUTO_TRAIN``).
#: 4 (nnobj): ``batch_size="auto"`` splits n > 1,024 into equal batches instead of 1,024s and a remainder.
#: 5 (aekm, VaDE), 6 (MoA): ``manifold_partition`` chooses UMAP's neighbourhood by stability up to 10,000
#: samples (:data:`mixclust._deep.MANIFOLD_SELECT_MAX_SAMPLES`); above it the computation is unchanged, so the
#: whole MNIST / Fashion-MNIST runs were carried over to the new version (``carry_over``), not recomputed.
MODEL_VERSIONS = {"aekm": 5, "vade": 5, "moa": 6, "nnobj": 4}
BASELINES = ("kmeans", "sklearn-gmm")
FORMS = ("flat", "images")
#: Shown beside the deep models but outside the guarantee: the baselines and mixclust's own EM GMM (which
#: equals scikit-learn's from the same start).
NOT_DEEP = (*BASELINES, "gmm")
#: Runs faster than this get 3 seeds; slower ones seed 0 only.
MULTI_SEED_SECONDS = 60.0
SEEDS = (0, 1, 2)
#: The guarantee the suite checks: every deep model on every image set, in both forms, scores at least
#: K-means' NMI minus this margin (seed 0 against seed 0).
MARGIN = 0.02
#: Models not run on whole MNIST / Fashion-MNIST, and why (stated in the report, never silently absent).
NOT_RUN_ON_WHOLE = ("gmm", "sklearn-gmm")
NOT_RUN_ON_WHOLE_WHY = (
    "a full-covariance mixture of 784 pixels has 307,720 quadratic features a row: the E- and M-step products "
    "cost about 0.86 TFLOP an EM iteration at 70,000 rows and K = 10 (2 x 70,000 x 308,505 x 10 each), some "
    "18-21 s at the 41-49 GFLOP/s this machine's products reach (reports/benchmarks/gmm_profile.txt), so half "
    "an hour or more per 100-iteration fit and seed; the baseline K-means runs")


@dataclass(frozen=True)
class SuiteSet:
    name: str
    kind: str  # "image", "tabular" or "synthetic"
    description: str
    loader: object  # (data_dir) -> (X, y); images (n, C, H, W) in [0, 1]
    size: str = "small"  # "small" or "whole" (whole MNIST / Fashion-MNIST: run with --whole)
    k: int = 10  # the number of classes, asked of every model


def _subsampled(name, n, data_dir, seed=0):
    X, y = datasets.load(name, split="all", data_dir=data_dir)
    return subsample(X, y, n, seed)


def _pooled20(n, data_dir):
    """MNIST digits and Fashion-MNIST clothes in one 20-class set (Fashion labels shifted by 10)."""
    Xm, ym = _subsampled("mnist", n // 2, data_dir, seed=10)
    Xf, yf = _subsampled("fashion_mnist", n // 2, data_dir, seed=11)
    return np.concatenate([Xm, Xf]), np.concatenate([ym, yf + 10])


def _small_digits(n, data_dir):
    """MNIST digits shrunk to 16 x 16 by 2 x 2 average pooling of the 28 x 28 images padded to 32 x 32: a
    handwritten-digit set with another size (USPS-like), so the networks do not only see 28 x 28 or 8 x 8."""
    X, y = _subsampled("mnist", n, data_dir, seed=12)
    padded = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))
    return padded.reshape(len(X), 1, 16, 2, 16, 2).mean(axis=(3, 5)).astype(np.float32), y


#: Rotation steps of :func:`_rotated_objects`: 72 views 5 degrees apart, as COIL-20 photographs each object.
ROTATION_VIEWS = 72


def _rotated_objects(data_dir):
    """20 objects (the first test image of each MNIST digit and each Fashion-MNIST class, padded to 32 x 32)
    each seen at :data:`ROTATION_VIEWS` in-plane rotations: 1,440 images in 20 classes, each class a closed
    one-dimensional curve in pixel space. A stand-in for an object set such as COIL-20 (20 objects photographed
    on a turntable every 5 degrees), whose classes are pose manifolds rather than blobs."""
    from scipy import ndimage

    objects = []
    for name in ("mnist", "fashion_mnist"):
        X, y = datasets.load(name, split="test", data_dir=data_dir)
        objects += [np.pad(X[np.flatnonzero(y == c)[0], 0], 2) for c in range(10)]
    views = [np.clip(ndimage.rotate(obj, 360.0 * a / ROTATION_VIEWS, reshape=False, order=1), 0.0, 1.0)
             for obj in objects for a in range(ROTATION_VIEWS)]
    return np.asarray(views, dtype=np.float32)[:, None], np.repeat(np.arange(len(objects)), ROTATION_VIEWS)


def _sklearn_table(name, data_dir=None):
    """A scikit-learn table, standardised (its features differ in scale by up to 1,000x)."""
    from sklearn import datasets as skd
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(skd, f"load_{name}")(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def _registered(name, data_dir=None, **kwargs):
    return datasets.load(name, data_dir=data_dir, **kwargs)


SETS: dict[str, SuiteSet] = {s.name: s for s in [
    SuiteSet("digits", "image", "scikit-learn digits, 1,797 x (1, 8, 8), pixels / 16", partial(_registered, "digits")),
    SuiteSet("mnist-1k", "image", "MNIST, 1,000 random images of 70,000", partial(_subsampled, "mnist", 1000)),
    SuiteSet("mnist-5k", "image", "MNIST, 5,000 random images", partial(_subsampled, "mnist", 5000)),
    SuiteSet("fashion-1k", "image", "Fashion-MNIST, 1,000 random images", partial(_subsampled, "fashion_mnist", 1000)),
    SuiteSet("fashion-5k", "image", "Fashion-MNIST, 5,000 random images", partial(_subsampled, "fashion_mnist", 5000)),
    SuiteSet("digits16-2k", "image", "MNIST shrunk to 16 x 16, 2,000 images", partial(_small_digits, 2000)),
    SuiteSet("digits16-9k", "image", "MNIST shrunk to 16 x 16, 9,298 images (the size of USPS)",
             partial(_small_digits, 9298)),
    SuiteSet("pooled20-2k", "image", "MNIST + Fashion-MNIST pooled, 20 classes, 2,000 images",
             partial(_pooled20, 2000), k=20),
    SuiteSet("rotated20", "image", "20 objects (10 digits, 10 clothes) x 72 in-plane rotations, (1, 32, 32), "
             "COIL-20-like", _rotated_objects, k=20),
    SuiteSet("fsdd", "image", "FSDD spoken digits, 3,000 log-mel images (1, 32, 32)", partial(_registered, "fsdd",
                                                                                                  split="all")),
    SuiteSet("iris", "tabular", "Fisher's iris, 150 x 4, standardised", partial(_sklearn_table, "iris"), k=3),
    SuiteSet("wine", "tabular", "wine, 178 x 13, standardised", partial(_sklearn_table, "wine"), k=3),
    SuiteSet("breast-cancer", "tabular", "breast cancer, 569 x 30, standardised",
             partial(_sklearn_table, "breast_cancer"), k=2),
    *(SuiteSet(name, "synthetic", f"{name}, 1,000 x 2", partial(_registered, name), k=k) for name, k in
      (("blobs", 3), ("anisotropic", 3), ("varied", 3), ("moons", 2), ("circles", 2))),
    SuiteSet("mnist", "image", "MNIST, all 70,000 images", partial(_subsampled, "mnist", None), "whole"),
    SuiteSet("fashion", "image", "Fashion-MNIST, all 70,000 images", partial(_subsampled, "fashion_mnist", None),
             "whole"),
]}


def clusterers() -> list[str]:
    """Registered names of the clusterers (the autoencoders alone assign no clusters)."""
    return sorted(name for name, cls in MODELS.items() if cls._clusterer and not getattr(cls, "_chooses_k", False))


def deep_models() -> list[str]:
    """Clusterers that take images as they are (not the tabular ones)."""
    return [name for name in clusterers() if not MODELS[name]._tabular]


def _make(name: str, n_clusters: int, seed: int, overrides: dict | None = None):
    """The clusterer ``name`` with its defaults; ``overrides`` (for probes of candidate defaults, never the
    committed suite) sets the parameters among its own."""
    if name == "kmeans":
        return KMeans(n_clusters, n_init=10, random_state=seed)
    if name == "sklearn-gmm":
        return SklearnGMM(n_clusters, covariance_type="full", reg_covar=1e-3, random_state=seed)
    cls = MODELS[name]
    model = cls(**{cls._n_clusters_param: n_clusters, "random_state": seed})
    own = model.get_params(deep=False)
    return model.set_params(**{k: v for k, v in (overrides or {}).items() if k in own})


def flattens_images(model) -> bool:
    """True when the model runs an MLP on images (``arch="auto"`` or ``"mlp"``): its fit on (n, C, H, W) is then
    the very computation of its fit on the flattened pixels, so the suite reuses that run for the images form
    (MoA's router follows ``arch`` too)."""
    return getattr(model, "arch", None) in ("auto", "mlp")


#: Parameters added after runs were cached, whose default is the computation those runs made: at that value
#: they stay out of the cache key, so adding them does not discard the cached runs (``prior_weights="laplace"``
#: is the start tests/test_vade.py::test_prior_initialisation_is_laplace_smoothed_kmeans pins; the VaDE runs
#: the guard could have changed, those that restarted or predate the record of restarts, were removed from the
#: cache when the guard came in).
NEUTRAL_DEFAULTS = {"prior_weights": "laplace", "partition": "prior", "decoder": "upsample", "degeneracy_guard": True,
                    "missing": "error"}


def _params_key(model) -> str:
    params = model.get_params(deep=False)
    return repr(sorted((k, repr(v)) for k, v in params.items() if k not in ("verbose", "device")
                       and not (k in NEUTRAL_DEFAULTS and v == NEUTRAL_DEFAULTS[k])))


def fit_one(name: str, X: np.ndarray, y: np.ndarray, n_clusters: int, seed: int, overrides=None) -> dict:
    """Fit one clusterer on X and score it; warnings raised by the fit are recorded, not shown."""
    model = _make(name, n_clusters, seed, overrides)
    tabular = name in BASELINES or MODELS[name]._tabular
    inputs = X.reshape(len(X), -1) if tabular else X
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(inputs)
    seconds = time.perf_counter() - started
    # one pass through the model: every registered model's predict is the argmax of its predict_proba
    proba = model.predict_proba(inputs) if hasattr(model, "predict_proba") else None
    labels = np.asarray(model.predict(inputs) if proba is None else proba.argmax(axis=1))
    scores = metrics.external_metrics(y, labels)
    # calibration of the soft assignments (issue 18); K-means has none
    ece = None if proba is None else metrics.expected_calibration_error(y, proba)
    sizes = np.bincount(labels, minlength=n_clusters)
    kinds = sorted({w.category.__name__ for w in caught
                    if any(word in w.category.__name__ for word in ("Degenerate", "Empty"))})
    return {"nmi": scores["nmi"], "ari": scores["ari"], "acc": scores["acc"],
            "ece": None if ece is None else float(ece), "used": int((sizes > 0).sum()),
            "largest": float(sizes.max() / len(labels)),
            "seconds": seconds, "warned": ", ".join(kinds),
            "n_init_runs": len(getattr(model, "n_init_objectives_", [])) or None,
            # the epoch a degeneracy guard went back to (VaDE's stage 3 ended degenerate), else None
            "guard_restored": (getattr(model, "degeneracy_guard_", None) or {}).get("restored_epoch")}


def _not_run(suite_set: SuiteSet, name: str) -> bool:
    """True for a model the suite leaves out on this set on purpose (:data:`NOT_RUN_ON_WHOLE`)."""
    return suite_set.size == "whole" and name in NOT_RUN_ON_WHOLE


def _forms(suite_set: SuiteSet, name: str) -> tuple[str, ...]:
    if suite_set.kind != "image":
        return ("flat",)
    tabular = name in BASELINES or MODELS[name]._tabular
    return ("flat",) if tabular else FORMS


def version(model: str) -> int:
    """The code version a cached run of ``model`` must carry to count (:data:`MODEL_VERSIONS`)."""
    return MODEL_VERSIONS.get(model, SUITE_VERSION)


def carry_over(cache_dir: Path, model: str, old_version: int, sets=("mnist", "fashion")) -> int:
    """Re-key ``model``'s cached runs on ``sets`` from ``old_version`` to :func:`version`, for a code change
    that leaves their computation unchanged (each use is stated at :data:`MODEL_VERSIONS`). Returns how many
    runs were re-keyed; the old keys stay."""
    moved = 0
    for set_name in sets:
        path = Path(cache_dir) / f"{set_name}--{model}.pkl"
        if not path.exists():
            continue
        cache = RunCache(path)
        for key, value in list(cache.runs.items()):
            new_key = (*key[:5], version(model))
            if key[5] == old_version and new_key not in cache:
                cache.put(new_key, value)
                moved += 1
    return moved


def compute(sets, models, data_dir, cache_dir: Path, log=print, seeds=SEEDS, overrides=None,
            cached_only: bool = False) -> list[dict]:
    """Run (or read from the cache) every model on every set; returns one row per run. ``cached_only``:
    read what the cache holds and run nothing (to render a report while the suite still runs)."""
    rows = []
    for set_name in sets:
        suite_set = SETS[set_name]
        data = None
        for name in models:
            if _not_run(suite_set, name):
                continue
            # one cache file per (set, model): parallel jobs on different models never write the same file
            cache = RunCache(cache_dir / f"{set_name}--{name}.pkl")
            for form in _forms(suite_set, name):
                for seed in seeds:
                    # a slow run gets its further seeds only when they are asked for alone (``--seeds 1``); a
                    # report shows every seed the cache holds
                    if seed != seeds[0] and not cached_only:
                        first = [r for r in rows if (r["set"], r["model"], r["form"], r["seed"])
                                 == (set_name, name, form, seeds[0])]
                        if first and first[0]["seconds"] > MULTI_SEED_SECONDS:
                            continue
                    if cached_only:
                        key = (set_name, form, name, seed, _params_key(_make(name, suite_set.k, seed, overrides)),
                               version(name))
                        if key in cache:
                            rows.append({"set": set_name, "form": form, "model": name, "seed": seed,
                                         "K": suite_set.k, **cache[key]})
                        continue
                    if data is None:
                        X, y = suite_set.loader(data_dir=data_dir)
                        data = (X, y, len(np.unique(y)))
                    X, y, K = data
                    probe = _make(name, K, seed, overrides)
                    key = (set_name, form, name, seed, _params_key(probe), version(name))
                    flat_key = (set_name, "flat", name, seed, key[4], key[5])
                    if key not in cache and form == "images" and flattens_images(probe) and flat_key in cache:
                        # the same computation as the flat run (tests/test_suite.py checks they are identical)
                        cache.put(key, {**cache[flat_key], "same_as_flat": True})
                    if key not in cache:
                        inputs = X.reshape(len(X), -1) if form == "flat" else X
                        result = fit_one(name, inputs, y, K, seed, overrides)
                        cache.put(key, {**result, "K": K, "params": key[4]})
                        log(f"{set_name:14s} {form:6s} {name:12s} seed {seed}: NMI {result['nmi']:.3f} "
                            f"used {result['used']}/{K} {result['seconds']:.1f} s {result['warned']}")
                    rows.append({"set": set_name, "form": form, "model": name, "seed": seed, "K": K,
                                 **cache[key]})
    return rows


def _summary(rows: list[dict]) -> list[dict]:
    """One row per (set, form, model): seed-0 scores, the seed spread of the NMI, clusters used."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["set"], r["form"], r["model"]), []).append(r)
    out = []
    for (set_name, form, model), runs in groups.items():
        first = min(runs, key=lambda r: r["seed"])
        nmis = [r["nmi"] for r in runs]
        shown_form = form + (" (= flat)" if first.get("same_as_flat") else "")
        out.append({"set": set_name, "form": shown_form, "model": model, "K": first["K"], "NMI": first["nmi"],
                    "ARI": first["ari"], "ACC": first["acc"],
                    "ECE": f"{first['ece']:.3f}" if first.get("ece") is not None else "—",
                    "used": f"{first['used']}/{first['K']}",
                    "seeds": len(runs), "NMI mean ± std": mean_std(nmis) if len(runs) > 1 else "—",
                    "seconds": first["seconds"], "recovery": _recovery(first), "warned": first["warned"] or ""})
    return out


def _recovery(run: dict) -> str:
    """What the fit did against a degenerate result: restarts, and the epoch a degeneracy guard kept."""
    done = []
    if (run.get("n_init_runs") or 1) > 1:
        done.append(f"{run['n_init_runs']} runs")
    if run.get("guard_restored") is not None:
        done.append(f"kept epoch {run['guard_restored']}")
    return ", ".join(done)


def nmi_table(rows: list[dict], kind: str = "image") -> list[dict]:
    """One row per set of ``kind``: the seed-0 NMI of every model; deep models that run both input forms
    differently show "flat / images" (the README carries this table)."""
    table: dict = {}
    for r in rows:
        if r["seed"] != 0 or SETS[r["set"]].kind != kind:
            continue
        row = table.setdefault(r["set"], {"set": r["set"], "K": r["K"]})
        row.setdefault(r["model"], {})[r["form"]] = (r["nmi"], r.get("same_as_flat", False), r["used"], r["K"])
    models = [m for m in (*BASELINES, *clusterers()) if any(m in row for row in table.values())]
    out = []
    for row in table.values():
        shown = {"set": row["set"], "K": row["K"]}
        for model in models:
            forms = row.get(model, {})
            cells = []
            for form in FORMS:
                if form in forms and not (form == "images" and forms[form][1]):
                    nmi, _, used, K = forms[form]
                    cells.append(f"{nmi:.3f}" + (f" ({used}/{K} used)" if used < K else ""))
            shown[model] = " / ".join(cells) if cells else "—"
        out.append(shown)
    return out


def guarantee(rows: list[dict], kinds=("image",)) -> list[dict]:
    """Every deep model's seed-0 NMI against K-means' seed-0 NMI on each set of ``kinds`` and form (not the EM
    GMM). The guarantee covers the image sets; the tabular and synthetic sets are checked the same way to say
    where a deep model loses to K-means outside it."""
    kmeans = {r["set"]: r["nmi"] for r in rows if r["model"] == "kmeans" and r["seed"] == 0}
    checks = []
    for r in rows:
        if (r["seed"] != 0 or r["model"] in NOT_DEEP or SETS[r["set"]].kind not in kinds
                or r["set"] not in kmeans):
            continue
        margin = r["nmi"] - kmeans[r["set"]]
        checks.append({"set": r["set"], "form": r["form"], "model": r["model"], "NMI": r["nmi"],
                       "K-means NMI": kmeans[r["set"]], "difference": margin,
                       "holds": "yes" if margin >= -MARGIN else "**no**"})
    return checks


def _figure(rows, report) -> None:
    import matplotlib.pyplot as plt

    checks = guarantee(rows)
    if not checks:
        return
    models = sorted({c["model"] for c in checks})
    sets = [s for s in SETS if any(c["set"] == s for c in checks)]
    fig, axes = plt.subplots(1, len(FORMS), figsize=(6.5 * len(FORMS), 0.45 * len(sets) + 1.5), squeeze=False)
    for ax, form in zip(axes[0], FORMS):
        grid = np.full((len(sets), len(models)), np.nan)
        for c in checks:
            if c["form"] == form or (c["form"] == "flat" and MODELS[c["model"]]._tabular):
                grid[sets.index(c["set"]), models.index(c["model"])] = c["difference"]
        image = ax.imshow(grid, cmap="RdYlGn", vmin=-0.2, vmax=0.2, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(models)), models)
        ax.set_yticks(range(len(sets)), sets)
        ax.set_title(f"NMI minus K-means' NMI, {form} input" + (" (tabular models: flattened)"
                                                               if form == "images" else ""), fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    report.figure(fig, "nmi_vs_kmeans.png", "NMI of each model (seed 0) minus K-means' NMI on the same pixels; "
                  f"the guarantee is a difference of at least -{MARGIN}")


def _evidence(report, folder: Path) -> None:
    """The probes behind the deep models' defaults (one JSON line per run in ``folder/*.jsonl``), as tables."""
    probes = folder / "vade_init_probes.jsonl"
    if not probes.exists():
        return
    records = [json.loads(line) for line in probes.read_text().splitlines() if line.strip()]
    report.section("Evidence for the defaults: the manifold start and the decoder variance")
    report.text("Seed 0, one thread, the pretrained autoencoder shared within a set. NMI of clusterings of the "
                "same pretrained VaDE codes (`benchmarks/probes/probe_manifold.py SET`): K-means and a full GMM on "
                "the codes, UMAP (10 or 20 neighbours, `min_dist=0`) then a full GMM, a spectral embedding then "
                "K-means, and UMAP of the pixels then a GMM; `vade`: VaDE from the K-means start with sigma^2 = mse "
                "(the defaults before this change).")
    codes = [r for r in records if "km_codes" in r]
    report.table([{k: r[k] for k in ("set", "kmeans_pix", "km_codes", "gmm_codes", "umap10_gmm_codes",
                                     "umap20_gmm_codes", "spectral_km", "umap20_gmm_pix", "vade")} for r in codes])
    report.text("VaDE stage 2 from the same pretraining (`benchmarks/probes/probe_vade_init.py SET CONFIGS`): "
                "`init_nmi` right after the prior's start, `nmi` after training; R = the nats the pretrained "
                "reconstruction is worth per sample, sigma^2 = D mse / (2R) (the default is R = latent_dim = 10; "
                "`R` empty: sigma^2 = mse, i.e. R = D/2, the former default).")
    runs = [r for r in records if "init_nmi" in r]
    report.table([{"set": r["set"], "init": r["init"], "R": r["R"] if r["R"] is not None else "D/2",
                   "start NMI": r["init_nmi"], "NMI": r["nmi"], "clusters used": r["used"], "largest": r["largest"],
                   "seconds": r["s"]} for r in runs])


def write_report(rows: list[dict], out_dir: Path, command: str) -> Path:
    report = Report(out_dir, "Benchmark suite: every clusterer with its defaults", command=command, seed=0)
    report.text(__doc__.split("\n\n", 1)[1].split("Every run is cached")[0])
    report.text(f"Seeds {', '.join(map(str, SEEDS))} where the seed-0 run took under {MULTI_SEED_SECONDS:.0f} s, "
                "seed 0 alone otherwise, unless seeds 1 and 2 were run on their own (`--seeds 1`, `--seeds 2`; the "
                "column `seeds` says how many a row has). One torch thread per job, 2-core machine; `seconds` is "
                "wall-clock time with other jobs on the machine, so it overstates the time of a fit alone. `warned`: "
                "the warning the "
                "fit raised (a degenerate result that survived the restarts); `recovery`: the restarts a "
                "degenerate result caused (`n_init=\"auto\"`), and the epoch VaDE's degeneracy guard went back to "
                "when its training ended degenerate (empty where the run was healthy, or cached before these were "
                "recorded); `ECE`: expected calibration error of the soft assignments (15 bins, clusters matched to "
                "classes; K-means has none, `—` also for runs cached before it was recorded). `images (= flat)`: "
                "a model that runs an MLP on images (`arch=\"auto\"`) computes exactly its fit on the flattened pixels "
                "(tests/test_suite.py), so that run is reused (MoA's router too is an MLP under `arch=\"auto\"`: "
                "its convolutional router scored lower on 8 of 12 image sets, evidence/moa_router.txt).")
    done = {(r["set"], r["model"]) for r in rows}
    models = (*BASELINES, *clusterers())
    missing = []
    for suite_set in SETS.values():
        absent = [m for m in models if (suite_set.name, m) not in done and not _not_run(suite_set, m)]
        if absent:
            missing.append(f"{suite_set.name}: {', '.join(absent)}")
    if missing:
        report.text("**Not run yet** (the suite resumes from its cache): " + "; ".join(missing) + ".")
    report.text("**Not run on whole MNIST and Fashion-MNIST**: " + ", ".join(f"`{m}`" for m in NOT_RUN_ON_WHOLE)
                + f": {NOT_RUN_ON_WHOLE_WHY}.")
    image_table = nmi_table(rows)
    if image_table:
        report.section("Summary: NMI on the image sets (seed 0)")
        report.text("Every model with its defaults; \"a / b\": flattened input / images (n, C, H, W) where the "
                    "two differ (a model with `arch=\"conv\"`); one value: the same fit for both.")
        report.table(image_table)
    checks = guarantee(rows)
    if checks:
        failed = [c for c in checks if c["holds"] != "yes"]
        report.section("The guarantee: no deep model below K-means on image sets")
        report.text(f"{len(checks) - len(failed)} of {len(checks)} (set, form, model) runs hold NMI >= K-means' "
                    f"NMI - {MARGIN} (seed 0 against seed 0)." + (" Failures:" if failed else ""))
        if failed:
            report.table(failed)
        _figure(rows, report)
    outside = [c for c in guarantee(rows, kinds=("tabular", "synthetic")) if c["holds"] != "yes"]
    if outside:
        report.section("Outside the guarantee: deep models below K-means on tabular and synthetic sets")
        report.text("The guarantee is stated for image sets; on these small tables and 2-D sets the same check "
                    "fails for the runs below (seed 0), shown so nobody reads the guarantee as covering them.")
        report.table(outside)
    mnist = Path(out_dir) / "vade_mnist_defaults.json"
    if mnist.exists():
        record = json.loads(mnist.read_text())
        report.section("VaDE with its defaults on MNIST (train 60,000, test 10,000)")
        report.text(f"Test NMI {record['nmi']:.3f}, ACC {record['acc']:.3f}, ARI {record['ari']:.3f}, "
                    f"{record['seconds'] / 60:.0f} min on one thread of a loaded 2-core machine "
                    "(`MIXCLUST_DATA=../shared/data THREADS=1 .venv/bin/python "
                    "benchmarks/probes/probe_vade_mnist.py '{}'`"
                    ", output in `vade_mnist_defaults.json`). The target is 0.85: "
                    + ("met." if record["nmi"] >= 0.85 else "**not met**.") + _assignment(record))
    timed = Path(out_dir) / "vade_mnist_cli.json"
    if timed.exists():
        record = json.loads(timed.read_text())
        report.text(f"Timed alone on 2 cores through the command line (`{record['command']}`): the fit took "
                    f"{record['fit_seconds'] / 60:.1f} min; test NMI {record['test']['nmi']:.3f}, ACC "
                    f"{record['test']['acc']:.3f}, ARI {record['test']['ari']:.3f}, ECE {record['test']['ece']:.3f} "
                    f"(train NMI {record['train']['nmi']:.3f}); output in `vade_mnist_cli.json`." + _assignment(record))
    _evidence(report, Path(out_dir) / "evidence")
    summary = _summary(rows)
    for kind, title in (("image", "Image sets"), ("tabular", "Tabular sets (standardised)"),
                        ("synthetic", "Synthetic 2-D sets")):
        part = [r for r in summary if SETS[r["set"]].kind == kind]
        if part:
            report.section(title)
            report.text("; ".join(f"**{s.name}**: {s.description}" for s in SETS.values()
                                  if s.kind == kind and any(r["set"] == s.name for r in part)) + ".")
            report.table(part)
    return report.write()


def add_arguments(parser) -> None:
    """The options of ``mixclust benchmark`` (and ``python -m mixclust.studies.suite``)."""
    parser.add_argument("--sets", default=None, help="comma-separated suite sets (default: all but whole): "
                        + ", ".join(SETS))
    parser.add_argument("--models", default=None, help="comma-separated models (default: every registered "
                        "clusterer and the baselines " + ", ".join(BASELINES) + ")")
    parser.add_argument("--whole", action="store_true", help="also run whole MNIST and Fashion-MNIST")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--out", default="reports/suite")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one job per core)")
    parser.add_argument("--report", action="store_true", help="write OUT/README.md from every cached run")
    parser.add_argument("--render", action="store_true", help="run nothing: write the report from the cached runs "
                        "(the latest cached parameters of each model)")
    parser.add_argument("--readme", default=None, help="with --report or --render: also write the image sets' NMI "
                        "table between the suite-table markers of this file (the project's README.md)")
    parser.add_argument("--override", default="", help="probe a candidate default, e.g. \"arch='conv'\" "
                        "(set on every model that has the parameter; cached apart by the parameters; "
                        "never for the committed report)")


def _assignment(record: dict) -> str:
    """The sentence naming the assignment a VaDE record ran with, when the record says (else nothing)."""
    return f" Assignment: {record['assignment']}." if record.get("assignment") else ""


def parse_overrides(text: str | None) -> dict:
    """``--override`` text, keyword arguments with literal values (``"hidden='auto', epochs=10"``), as a dict;
    ValueError naming the problem for anything else."""
    if not text:
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        names = [kw.arg for kw in call.keywords]
        if call.args or None in names:
            raise ValueError("a value without a name")
        if len(set(names)) < len(names):
            raise ValueError("a name given twice")
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"--override must be name=value pairs with literal values, e.g. \"hidden='auto', "
                         f"epochs=10\"; got {text!r} ({exc})") from None


def run_from_args(args) -> int:
    sets = args.sets.split(",") if args.sets else [s.name for s in SETS.values() if s.size == "small" or args.whole]
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ValueError(f"unknown suite set(s) {', '.join(unknown)}; available: {', '.join(SETS)}")
    models = args.models.split(",") if args.models else [*BASELINES, *clusterers()]
    unknown = [m for m in models if m not in BASELINES and m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; available: {', '.join([*BASELINES, *clusterers()])}")
    overrides = parse_overrides(args.override)
    known = {p for m in models if m in MODELS for p in MODELS[m]().get_params(deep=False)}
    unknown = sorted(set(overrides) - known)
    if unknown:  # a misspelt name would otherwise run, and cache, the defaults
        raise ValueError(f"--override: {', '.join(unknown)} is not a parameter of {', '.join(models)}")
    out = Path(args.out)
    with threads(args.threads):
        rows = compute(sets, models, args.data_dir, out / ".runs", seeds=tuple(int(s) for s in args.seeds.split(",")),
                       overrides=overrides, cached_only=args.render)
    if args.report or args.render:
        print(write_report(rows, out, "make suite" + (" WHOLE=1" if args.whole else "")))
        if args.readme:
            update_readme(Path(args.readme), rows)
    return 0


README_MARKERS = ("<!-- suite table: written by `mixclust benchmark --render --readme README.md` -->",
                  "<!-- end of suite table -->")


def update_readme(path: Path, rows: list[dict]) -> None:
    """Replace the text between :data:`README_MARKERS` in ``path`` with the image sets' NMI table."""
    from ..reports import atomic_write_text, markdown_table

    text = path.read_text()
    start, end = README_MARKERS
    if start not in text or end not in text:
        raise ValueError(f"{path} has no suite table markers ({start} ... {end})")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(path, head + start + "\n" + markdown_table(nmi_table(rows)).strip("\n") + "\n" + end + tail)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
