"""The frontier study (issue 18): how close the registered models' defaults come to the best raw-pixel methods.

For MNIST and Fashion-MNIST, under both protocols, always labelled and never compared across:

* ``all``: fit and score on all 70,000 images (the literature's protocol: N2D, SpectralNet, DEPICT);
* ``test``: fit on the 60,000 training images, score on the 10,000 test images (mixclust's studies).

Per (set, protocol, seed), :func:`route` trains the autoencoder of :class:`mixclust.AEClustering` with its
defaults once and clusters its codes three ways, each step of the N2D route on the same network (the
ablation; ``AEClustering.from_autoencoder`` shares it):

1. ``aekm, clusterer="kmeans"``: K-means on the codes (the DEC-era baseline);
2. ``aekm, clusterer="gmm"``: a full-covariance GMM fitted by EM on the codes;
3. ``aekm`` (its default, ``clusterer="manifold"``): the partition of the codes' UMAP embedding.

Beside them: :class:`mixclust.VaDE` with its defaults (the seed system), and scikit-learn's K-means on the
pixels. Each run records NMI, ACC, ARI, the expected calibration error of its soft assignments
(:func:`mixclust.metrics.expected_calibration_error`, 15 bins) with the reliability bins, and the seconds of
each stage. Finished runs are kept in ``out_dir/.runs.pkl``, so the study resumes across sessions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans

from .. import datasets, metrics, plotting
from ..autoencoder import AEClustering
from ..reports import Report, mean_std
from ..vade import VaDE
from . import RunCache, run_cached, subsample
from . import threads as study_threads

DESCRIPTION = ("The frontier: the N2D route's steps (autoencoder, K-means / GMM / UMAP+GMM on its codes) and VaDE "
               "with their defaults on MNIST and Fashion-MNIST, both protocols, with calibration")

SETS = ("mnist", "fashion")
#: The registered data set (``datasets.load``) behind each of :data:`SETS`.
DATA = {"mnist": "mnist", "fashion": "fashion_mnist"}
PROTOCOLS = {"all": "fit and score on all 70,000 images", "test": "fit on the 60,000 training images, score on "
                                                                  "the 10,000 test images"}
#: The rows of a run, in the order of the route. The two VaDE rows come from one fit with the defaults: the
#: prior's gamma (``prior_proba``, VaDE as published) and the default ``partition="manifold"`` (the UMAP + GMM
#: partition of the latent means of the fitted images, with the neighbour map for the scored ones).
METHODS = ("K-means on pixels", "aekm, clusterer='kmeans'", "aekm, clusterer='gmm'", "aekm (default: UMAP + GMM)",
           "vade, partition='prior' (gamma of the prior)", "vade (default: partition='manifold')")
#: Rows cached before ``partition="manifold"`` was VaDE's default, under their names of then: the default (the
#: prior's gamma) and the probe that computed what ``partition="manifold"`` now computes (the same
#: ``_deep.manifold_partition`` of the same latent means with the same seed, and the same neighbour map). Read
#: under today's names when the fit ran once (no restart, which would now be chosen with the partition).
LEGACY_METHODS = {"vade (default)": METHODS[4],
                  "vade latent, UMAP + GMM partition, neighbour map (probe)": METHODS[5]}
LEGACY_STAGES = {"VaDE fit": "VaDE fit (both rows)"}
ROUTE = {"aekm, clusterer='kmeans'": "kmeans", "aekm, clusterer='gmm'": "gmm", "aekm (default: UMAP + GMM)": "manifold"}
#: Issue 18's targets (protocol ``all``).
TARGETS = {"mnist": 0.94, "fashion": 0.69}
TARGET_ECE = 0.05
TARGET_MINUTES = 20.0
#: The published raw-pixel rows, protocol ``all``: set -> [(method, NMI, ACC, source)]; None where not published.
PUBLISHED = {
    "mnist": [("N2D (AE 1,000 epochs on a GPU, UMAP, GMM)", 0.942, 0.979, "McConville et al. 2020"),
              ("SpectralNet", 0.924, 0.971, "Shaham et al. 2018"),
              ("DEPICT", 0.917, 0.965, "Ghasedi Dizaji et al. 2017"),
              ("VaDE (original paper)", None, 0.945, "Jiang et al. 2017")],
    "fashion": [("N2D (AE 1,000 epochs on a GPU, UMAP, GMM)", 0.684, 0.672, "McConville et al. 2020")],
}

#: ``seeds`` of the frontier model (VaDE); the route's ablation runs on the first ``route_seeds`` of them (an
#: hour-long autoencoder per run on one core: its 3 seeds on 4 (set, protocol) pairs would take 12 hours).
FULL = {"n_fit": None, "n_score": None, "seeds": 3, "route_seeds": 1, "sets": SETS, "protocols": tuple(PROTOCOLS),
        "model": {}}
#: Quick mode (CI): scikit-learn's digits as both "sets" halves, tiny budgets; its numbers mean nothing.
QUICK = {"n_fit": 600, "n_score": 300, "seeds": 1, "route_seeds": 1, "sets": ("mnist",),
         "protocols": tuple(PROTOCOLS), "model": {"aekm": {"epochs": 2}, "vade": {"pretrain_epochs": 2, "epochs": 2}}}


def load(name: str, protocol: str, cfg: dict, seed: int, data_dir=None, quick: bool = False):
    """(X_fit, X_score, y_score) of ``protocol``; ``all`` scores on the very images it fits."""
    if quick:  # no download in CI: the embedded digits stand in
        X, y = datasets.load("digits", data_dir=data_dir)
        X, y = subsample(X, y, cfg["n_fit"] + cfg["n_score"], seed)
        if protocol == "all":
            return X, X, y
        return X[:cfg["n_fit"]], X[cfg["n_fit"]:], y[cfg["n_fit"]:]
    if protocol == "all":
        X, y = datasets.load(DATA[name], split="all", data_dir=data_dir)
        return X, X, y
    X_fit, _ = datasets.load(DATA[name], split="train", data_dir=data_dir)
    X_score, y_score = datasets.load(DATA[name], split="test", data_dir=data_dir)
    return X_fit, X_score, y_score


def _scores(y, proba) -> dict:
    """NMI, ACC, ARI, ECE and the reliability bins of soft assignments ``proba`` (n, K) against labels y."""
    labels = proba.argmax(axis=1)
    result = metrics.external_metrics(y, labels)
    bins = metrics.calibration_bins(y, proba)
    return {"nmi": result["nmi"], "acc": result["acc"], "ari": result["ari"], "ece": metrics.ece_from_bins(bins),
            "bins": bins, "used": int(len(np.unique(labels))),
            "degenerate": metrics.degeneracy(labels, proba.shape[1], proba)}


def route(X_fit, X_score, y_score, seed: int, cfg: dict, log=print, checkpoint_dir=None) -> list[dict]:
    """The route's steps on one shared autoencoder; rows of :data:`METHODS` but VaDE. ``checkpoint_dir``: the
    autoencoder's checkpoints, so an interrupted run resumes mid-training."""
    rows = []
    started = time.perf_counter()
    flat_fit = X_fit.reshape(len(X_fit), -1)
    kmeans = KMeans(10, n_init=10, random_state=seed).fit(flat_fit)
    seconds = time.perf_counter() - started
    labels = kmeans.predict(X_score.reshape(len(X_score), -1))
    rows.append({"method": METHODS[0], **metrics.external_metrics(y_score, labels), "ece": None,
                 "used": int(len(np.unique(labels))), "seconds": seconds, "stages": {"K-means": seconds}})
    default = AEClustering(10, random_state=seed, checkpoint_dir=checkpoint_dir, **cfg["model"].get("aekm", {}))
    started = time.perf_counter()
    autoencoder = default._make_autoencoder().fit(X_fit)
    ae_seconds = time.perf_counter() - started
    log(f"  autoencoder: {ae_seconds:.0f} s, {autoencoder.epochs_} epochs")
    for method, clusterer in ROUTE.items():
        started = time.perf_counter()
        model = AEClustering.from_autoencoder(autoencoder, 10, clusterer, random_state=seed).fit(X_fit)
        seconds = time.perf_counter() - started
        scores = _scores(y_score, model.predict_proba(X_score))
        rows.append({"method": method, **scores, "seconds": ae_seconds + seconds,
                     "stages": {"autoencoder": ae_seconds, f"clusterer {clusterer!r}": seconds}})
        log(f"  {method}: NMI {scores['nmi']:.3f} ECE {scores['ece']:.3f} ({seconds:.0f} s)")
    return rows


def vade(X_fit, X_score, y_score, seed: int, cfg: dict, log=print, checkpoint_dir=None) -> list[dict]:
    """VaDE with its defaults: the rows of the prior's gamma and of the default partition (:data:`METHODS`).
    ``checkpoint_dir``: the fit's checkpoints (a run cut short resumes; the minutes then count this process only)."""
    started = time.perf_counter()
    model = VaDE(10, random_state=seed, checkpoint_dir=checkpoint_dir, **cfg["model"].get("vade", {})).fit(X_fit)
    seconds = time.perf_counter() - started
    restarts = len(getattr(model, "n_init_objectives_", [])) or 1
    rows = []
    for method, proba in ((METHODS[4], model.prior_proba(X_score)), (METHODS[5], model.predict_proba(X_score))):
        scores = _scores(y_score, proba)
        log(f"  {method}: NMI {scores['nmi']:.3f} ECE {scores['ece']:.3f} ({seconds:.0f} s)")
        rows.append({"method": method, **scores, "seconds": seconds, "stages": {"VaDE fit (both rows)": seconds},
                     "restarts": restarts})
    return rows


def _read_legacy(result: list[dict]) -> list[dict] | None:
    """A cached run under today's method names (:data:`LEGACY_METHODS`), or None when it must be rerun."""
    if not any(r["method"] in LEGACY_METHODS for r in result):
        return result
    if any(r.get("restarts", 1) != 1 for r in result):
        return None
    # the fit's stage had a shorter name then; its partition was timed apart (a probe after the fit)
    return [{**r, "method": LEGACY_METHODS.get(r["method"], r["method"]),
             "stages": {LEGACY_STAGES.get(k, k): v for k, v in r.get("stages", {}).items()}} for r in result]


def compute(quick: bool = False, seed: int = 0, data_dir=None, cache=None, log=print,
            cached_only: bool = False) -> dict:
    """Every (seed, protocol, set) run, trained or read from ``cache``; ``cached_only``: train nothing and
    list what is missing (to report a study that is still running or was interrupted)."""
    cfg = QUICK if quick else FULL
    runs = RunCache(cache)
    rows, missing, loaded = [], [], {}
    # deep training on every thread (an idle 2-core machine is what the 20-minute target is stated for)
    # VaDE (about 15 minutes a fit) on every seed before the route (about an hour a fit), then seed, then
    # protocol: an interrupted study has the frontier model's seed spread on every set and protocol first
    with study_threads(1 if quick else 2):
        for part in ("vade", "route"):
            for s in range(seed, seed + cfg["seeds" if part == "vade" else "route_seeds"]):
                for protocol in cfg["protocols"]:
                    for name in cfg["sets"]:
                        key = (name, protocol, s, part)
                        cached = key in runs and _read_legacy(runs[key]) is not None
                        if cached_only and not cached:
                            missing.append(f"{name} `{protocol}` seed {s} {part}")
                            continue
                        if not cached:
                            if (name, protocol) not in loaded:  # the split does not depend on the run's seed
                                loaded[name, protocol] = load(name, protocol, cfg, seed, data_dir, quick)
                            data = loaded[name, protocol]
                            log(f"{name} {protocol} seed {s}: {part}")
                            # an hour-long fit checkpoints beside the cache, so a stopped study loses no training
                            checkpoints = None if cache is None else \
                                str(Path(cache).parent / ".checkpoints" / f"{name}-{protocol}-{s}-{part}")
                            result = (route if part == "route" else vade)(*data, s, cfg, log, checkpoints)
                            runs.put(key, result)
                        rows += [{"set": name, "protocol": protocol, "seed": s, **r} for r in _read_legacy(runs[key])]
    return {"rows": rows, "quick": quick, "seed": seed, "missing": missing}


def _summary(rows, name, protocol) -> list[dict]:
    table = []
    for method in METHODS:
        runs = [r for r in rows if (r["set"], r["protocol"], r["method"]) == (name, protocol, method)]
        if not runs:
            continue
        eces = [r["ece"] for r in runs if r["ece"] is not None]
        table.append({"method": method, "seeds": len(runs),
                      **{m.upper(): mean_std([r[m] for r in runs]) for m in ("nmi", "acc", "ari")},
                      "ECE": mean_std(eces) if eces else "— (hard)",
                      "minutes": f"{np.mean([r['seconds'] for r in runs]) / 60:.1f}",
                      "flagged": sum(bool(r.get("degenerate")) for r in runs)})
    return table


def _reliability_figure(report, rows, name, protocol):
    shown = [r for r in rows if (r["set"], r["protocol"]) == (name, protocol) and r.get("bins") is not None
             and r["seed"] == min(x["seed"] for x in rows)]
    if not shown:
        return
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.2), squeeze=False)
    for ax, r in zip(axes[0], shown):
        plotting.reliability_diagram(ax, r["bins"], title=f"{r['method']}\nECE {r['ece']:.3f}")
    fig.tight_layout()
    report.figure(fig, f"reliability_{name}_{protocol}.png",
                  f"{name}, protocol {protocol!r}, seed {shown[0]['seed']}: accuracy (clusters matched to labels) "
                  "against confidence, 15 bins")


def _calibration_text(rows, name, protocol) -> str:
    """Where the calibration error of each default model comes from, read from its reliability bins (first
    seed): mean confidence against accuracy, and the accuracy of its confident assignments."""
    parts = []
    for method in (METHODS[5], METHODS[3]):
        r = next((r for r in sorted(rows, key=lambda r: r["seed"]) if (r["set"], r["protocol"], r["method"])
                  == (name, protocol, method) and r.get("bins") is not None), None)
        if r is None:
            continue
        bins = r["bins"]
        count = np.asarray(bins["count"], dtype=float)
        filled = count > 0
        confidence = float(np.sum(np.asarray(bins["confidence"])[filled] * count[filled]) / count.sum())
        accuracy = float(np.sum(np.asarray(bins["accuracy"])[filled] * count[filled]) / count.sum())
        top = filled & (np.asarray(bins["edges"])[1:] > 0.9)
        top_accuracy = float(np.sum(np.asarray(bins["accuracy"])[top] * count[top]) / max(count[top].sum(), 1))
        verdict = "met" if r["ece"] <= TARGET_ECE else "**not met**"
        parts.append(f"{method} (seed {r['seed']}): ECE {r['ece']:.3f} (target {TARGET_ECE}: {verdict}); mean "
                     f"confidence {confidence:.3f} against accuracy {accuracy:.3f}; the "
                     f"{100 * count[top].sum() / count.sum():.0f} % of images assigned with confidence above 0.9 "
                     f"are {100 * top_accuracy:.0f} % correct.")
    if not parts:
        return ""
    return ("**Calibration.** " + " ".join(parts) + " Accuracy here is agreement with the labels after the "
            "Hungarian matching of clusters to classes: a cluster that holds two classes, or a class split over two "
            "clusters, is wrong for its whole minority however clear the cluster is in the data. A label-free "
            "temperature cannot see that: fitted on held-out likelihood for aekm on 1,000 Fashion-MNIST images it "
            "moved ECE from 0.413 to 0.387 (benchmarks/probes/probe_temperature.py). A few labels can: see "
            "\"Calibration with a few labels\" below.")


#: ``benchmarks/probes/probe_few_label_calibration.py``'s JSON lines (kept in the report folder; the report shows
#: them when present).
FEW_LABEL_EVIDENCE = "few_label_calibration.jsonl"


def _few_label_calibration(report, out_dir: Path) -> None:
    path = Path(out_dir) / FEW_LABEL_EVIDENCE
    if not path.exists():
        return
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    fits = {(r["model"], r["set"]): r for r in lines if "labelled" not in r}
    report.section("Calibration with a few labels")
    report.text("`mixclust.FewLabelCalibrator` fits a temperature T, a share alpha of the uniform assignment "
                "(smoothing) or both on a few labelled samples, by the likelihood of correctness given confidence, "
                "and maps every row to `(1 - alpha) softmax(ln gamma / T) + alpha / K`; the argmax, and so NMI and "
                "ACC, do not move. Each row: 20 random draws of the labelled samples, the same draws for every "
                "method; ECE is measured on all the other samples, never on those the calibrator saw (suite sets: "
                "the model's seed 0; `frontier:SET:PROTOCOL:SEED`: this study's VaDE fit of that seed, read from "
                "its checkpoints; "
                f"`benchmarks/probes/probe_few_label_calibration.py`, [{FEW_LABEL_EVIDENCE}]({FEW_LABEL_EVIDENCE})). "
                f"Target ECE {TARGET_ECE}.")
    report.table([{"model": r["model"], "data": r["set"], "ACC": f"{fits[r['model'], r['set']]['acc']:.3f}",
                   "labelled": r["labelled"], "method": r["method"],
                   "ECE before": f"{r['ece_before']:.3f}",
                   "ECE after (mean ± std)": f"{r['ece_after_mean']:.3f} ± {r['ece_after_std']:.3f}",
                   "worst draw": f"{r['ece_after_worst']:.3f}", "median T": f"{r['temperature_median']:.2f}",
                   "median alpha": f"{r['smoothing_median']:.3f}"}
                  for r in lines if "labelled" in r])


#: The README's ``Frontier:`` command run alone on the machine, its metrics.json with the command added (kept in
#: the report folder; the report shows it when present).
README_COMMAND_EVIDENCE = "readme_command_vade_mnist_all.json"


def _readme_command(report, out_dir: Path) -> None:
    path = Path(out_dir) / README_COMMAND_EVIDENCE
    if not path.exists():
        return
    run = json.loads(path.read_text())
    scores = run["metrics"]
    report.section("The README's `Frontier:` command")
    report.text(f"`{run['command']}` ({run['machine']}; [{README_COMMAND_EVIDENCE}]({README_COMMAND_EVIDENCE})):")
    report.table([{"set": run["data"], "n": run["n_samples"], **{m.upper(): f"{scores[m]:.3f}" for m in
                                                                 ("nmi", "acc", "ari", "ece")},
                   "fit minutes": f"{run['fit_seconds'] / 60:.1f}",
                   f"target NMI {TARGETS['mnist']}": "met" if scores["nmi"] >= TARGETS["mnist"] else "**not met**"}])


def write_report(results: dict, out_dir) -> Path:
    rows, quick, seed = results["rows"], results["quick"], results["seed"]
    command = "mixclust reproduce frontier" + (" --quick" if quick else "") + f" --seed {seed}"
    cfg = QUICK if quick else FULL
    report = Report(out_dir, "The frontier: the N2D route and VaDE with their defaults (issue 18)", command,
                    range(seed, seed + cfg["seeds"]))
    if quick:
        report.text("_Quick mode: 900 of scikit-learn's digits stand in for MNIST and the budgets are tiny; "
                    "the numbers mean nothing._")
    report.text("Every model runs with its defaults (`n_clusters=10`, `random_state=seed`). The route's three "
                "clusterers share one autoencoder per seed (`AEClustering.from_autoencoder`), so their rows differ "
                "only in the step after it; the default row is `mixclust fit --model aekm` unless its result is "
                "flagged degenerate (column `flagged`), when the registered model would restart. Minutes are "
                "wall time on the machine named above, including the autoencoder for every route row; a study run "
                "may share the machine with other jobs (the README's command below was timed alone). The two VaDE "
                "rows come from one fit with the defaults: the gamma of its mixture prior (`prior_proba`, VaDE as "
                "published) and its default assignment, `partition='manifold'`: the UMAP + GMM partition of the "
                "latent means of the fitted images, mapped to the scored ones by their 15 nearest fitted codes; "
                "both rows show the minutes of that fit. Runs cached before the partition was VaDE's default "
                "computed it as a probe after the fit, and are shown under today's names.")
    report.text(f"Seeds: VaDE, the frontier model, runs {cfg['seeds']} seed(s) on every set and protocol; K-means and "
                f"the route's ablation run "
                + (f"seed {seed} only" if cfg["route_seeds"] == 1 else f"the first {cfg['route_seeds']}")
                + " (their autoencoder takes about an hour per run on one core).")
    _readme_command(report, out_dir)
    if results.get("missing"):
        report.text("**Not run yet** (`mixclust reproduce frontier` resumes from the cache): "
                    + "; ".join(results["missing"]) + ".")
    for name in dict.fromkeys(r["set"] for r in rows):
        for protocol in dict.fromkeys(r["protocol"] for r in rows if r["set"] == name):
            report.section(f"{name}, protocol `{protocol}`: {PROTOCOLS[protocol]}")
            report.table(_summary(rows, name, protocol))
            if protocol == "all" and PUBLISHED.get(name):
                report.text("Published, same protocol (`all`), from the papers:")
                report.table([{"method": m, "NMI": "—" if n is None else f"{n:.3f}", "ACC": f"{a:.3f}", "source": s}
                              for m, n, a, s in PUBLISHED[name]])
            _reliability_figure(report, rows, name, protocol)
            report.text(_calibration_text(rows, name, protocol))
    _few_label_calibration(report, out_dir)
    report.section("Seconds per stage, per seed")
    report.text("Each seed's seconds, not their mean: the seeds ran under different loads (a run alone on both "
                "threads, or on one thread beside other studies), so a mean would describe no run.")
    stages = {}
    for r in rows:
        for stage, seconds in r["stages"].items():
            key = (r["set"], r["protocol"], r["method"], stage)
            stages.setdefault(key, []).append(f"seed {r['seed']}: {seconds:.0f}")
    order = {name: i for i, name in enumerate((*SETS, *PROTOCOLS, *METHODS))}
    report.table([{"set": k[0], "protocol": k[1], "method": k[2], "stage": k[3], "seconds": ", ".join(v)}
                  for k, v in sorted(stages.items(), key=lambda kv: [order[part] for part in kv[0][:3]])])
    return report.write()


def render(out_dir, seed: int = 0) -> Path:
    """Rewrite the report from the finished runs in ``out_dir/.runs.pkl`` alone, training nothing."""
    out_dir = Path(out_dir)
    return write_report(compute(seed=seed, cache=out_dir / ".runs.pkl", cached_only=True), out_dir)


def run(out_dir, quick: bool = False, seed: int = 0, data_dir=None, cache=None) -> Path:
    """Write ``out_dir/README.md`` and its figures; returns the README path (finished runs resume from
    ``out_dir/.runs.pkl``)."""
    path, _ = run_cached(compute, write_report, out_dir, quick, seed, data_dir, cache)
    return path
