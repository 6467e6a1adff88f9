"""MoA+: a mixture of convolutional autoencoder experts with minimax weights, and its baselines (SPEC §1, [MOA]).

For each data set (MNIST, all 70,000 images; the Free Spoken Digit recordings as 1x32x32 log-mel images) and
M in {2, 10}: the six losses of ``mixclust.moa`` trained with the same hyper-parameters from the **same
initial experts and router** per seed (``MoA.initialise`` once, then ``fit(initialised=...)`` per loss;
identical to initialising anew, tested). The default initialisation pretrains one autoencoder, copies it
into every expert and fits the router to K-means on its codes; the source's start (Xavier weights, a
near-uniform router, ``init="random"``) is run beside it for minimax and blend. ``gram="ema"`` is compared
with ``gram="batch"``. The trained ``bound`` is checked against the exact loss on every batch.

:func:`compute` returns plain numbers and arrays (finished runs kept in a cache file, so an interrupted
study resumes); :func:`write_report` draws the figures and writes README.md.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .. import metrics, plotting
from ..moa import LOSSES, MoA, SingularGramWarning
from ..reports import Report, atomic_write_text, markdown_table, mean_std
from . import RunCache, load_or_digits, run_cached, subsample
from . import threads as study_threads

DESCRIPTION = ("MoA+ (mixture of conv autoencoder experts, minimax loss) vs blend/competitive/switch/bounds on "
               "MNIST and spoken digits, M = 2 and 10")

#: [MOA] on MNIST (70,000 images, M = 2): loss -> (MSE, NMI), its MoE as ``blend`` and its MoA+ as ``bound``: the
#: source trained MoA+ with the bound ("we use the known upper bound for M = 2 as the training objective").
PUBLISHED = {"blend": (0.013, 0.000), "bound": (0.015, 0.276)}
PUBLISHED_AUDIO = {"blend": 0.023, "bound": 0.127}
TARGET_NMI = {2: 0.35, 10: 0.6}
#: Same hyper-parameters for every loss (the SPEC §1 CAE and router; one run each, as the study ran them before
#: ``arch="auto"`` became the MLP and ``n_init`` was added).
MODEL = {"arch": "conv", "n_init": 1, "filters": 8, "n_blocks": 3, "latent_dim": 10, "router_filters": 8,
         "batch_size": 256, "lr": 1e-3,
         "pretrain_epochs": 3, "router_epochs": 2, "balance": 0.0}

#: Training epochs, seeds and variants per (data, M): what the CPU budget of one core affords (an MNIST epoch
#: of 70,000 images takes about 40 s per expert pair on one thread; M = 10 about 5x that).
FULL = {"n_mnist": None, "n_audio": None, "data": ("mnist", "fsdd"), "model": {}, "n_show": 12, "threads": 1,
        "epochs": {("mnist", 2): 2, ("mnist", 10): 1, ("fsdd", 2): 5, ("fsdd", 10): 5},
        "seeds": {("mnist", 2): 3, ("mnist", 10): 3, ("fsdd", 2): 3, ("fsdd", 10): 1},
        "ema_losses": {2: ("minimax", "bound"), 10: ("minimax",)},
        "random_init_losses": {2: ("minimax", "blend"), 10: ("minimax",)},
        "longer": {"data": "mnist", "pretrain_epochs": 10,
                   # (start, loss, balance, epochs, number of seeds) per M
                   "runs": {10: (("kmeans", "competitive", 0.0, 3, 1), ("kmeans", "minimax", 0.0, 3, 1),
                                 ("kmeans", "competitive", 5.0, 3, 1), ("kmeans", "minimax", 0.05, 3, 1),
                                 ("kmeans", "competitive", 5.0, 6, 3), ("gmm", "competitive", 5.0, 6, 3),
                                 ("gmm", "minimax", 0.05, 6, 3)),
                            2: (("kmeans", "competitive", 0.0, 3, 3), ("kmeans", "minimax", 0.0, 3, 1),
                                ("kmeans", "competitive", 5.0, 3, 1), ("kmeans", "minimax", 0.05, 3, 1),
                                ("gmm", "competitive", 0.0, 3, 3), ("gmm", "minimax", 0.05, 3, 3),
                                ("gmm", "competitive", 5.0, 3, 1), ("gmm", "minimax", 0.0, 3, 1),
                                ("gmm", "competitive", 0.0, 20, 3))}}}
QUICK = {"n_mnist": 600, "n_audio": 300, "data": ("mnist",), "n_show": 6, "threads": 1,
         "model": {"filters": 2, "pretrain_epochs": 1, "router_epochs": 1, "batch_size": 64},
         "epochs": {("mnist", 2): 1, ("mnist", 10): 1}, "seeds": {("mnist", 2): 1, ("mnist", 10): 1},
         "ema_losses": {2: ("minimax",), 10: ()}, "random_init_losses": {2: ("minimax",), 10: ()},
         "longer": {"data": "mnist", "pretrain_epochs": 1,
                    "runs": {2: (("kmeans", "competitive", 0.0, 2, 1), ("kmeans", "competitive", 5.0, 2, 1),
                                 ("gmm", "competitive", 5.0, 3, 2))}}}


def _load(name, quick, data_dir, n, seed):
    """All images of ``name`` (quick mode without the files: scikit-learn's digits, :func:`load_or_digits`)."""
    X, y, name = load_or_digits(name, "all", quick, data_dir)
    X, y = subsample(X, y, n, seed)
    return name, X.astype(np.float32), y


def _evaluate(model, X, y, keep_figures: bool, n_show: int) -> dict:
    proba = model.predict_proba(X)
    labels = proba.argmax(1)
    errors = model.expert_errors(X)
    ext = metrics.external_metrics(y, labels)
    train = [r for r in model.history_ if r["stage"] == "train"]
    record = {"nmi": ext["nmi"], "ari": ext["ari"], "acc": ext["acc"],
              "mse": float(np.take_along_axis(errors, labels[:, None], 1).mean()),
              "mse_best_expert": float(errors.min(1).mean()),
              "sizes": np.bincount(labels, minlength=proba.shape[1]).tolist(),
              "mean_entropy": float(metrics.entropy(proba).mean()),
              "router_histogram": [np.histogram(proba[:, k], bins=20, range=(0, 1))[0] for k in range(proba.shape[1])],
              "train_loss": [r["loss"] for r in train],
              "bound_below_exact": [r.get("bound_below_exact") for r in train],
              "bound_over_exact": [r.get("bound_over_exact") for r in train],
              "init_nmi": (metrics.external_metrics(y, model.init_labels_)["nmi"]
                           if hasattr(model, "init_labels_") else None)}
    if keep_figures:
        show = np.random.default_rng(0).choice(len(X), n_show, replace=False)
        record["figures"] = {"images": X[show], "reconstructions": model.reconstruct(X[show]),
                             "clusters": labels[show], "true": y[show],
                             "confusion": metrics.confusion_table(y, labels)}
    return record


def _runs_for(data, M, cfg):
    """(seed offset, loss, gram, init) of every run of one (data, M)."""
    runs = [(s, loss, "batch", "kmeans") for s in range(cfg["seeds"][data, M]) for loss in LOSSES]
    runs += [(0, loss, "ema", "kmeans") for loss in cfg["ema_losses"][M]]
    runs += [(0, loss, "batch", "random") for loss in cfg["random_init_losses"][M]]
    return runs


def compute(quick=False, seed=0, data_dir=None, cache=None, log=print) -> dict:
    cfg = QUICK if quick else FULL
    store = RunCache(cache)
    params = {**MODEL, **cfg["model"]}
    results = {"quick": quick, "seed": seed, "cfg": cfg, "params": params, "runs": [], "data": {}}
    with study_threads(cfg["threads"]), warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularGramWarning)  # counted per run instead (dead experts)
        for data in cfg["data"]:
            name, X, y = _load(data, quick, data_dir, cfg["n_mnist" if data == "mnist" else "n_audio"], seed)
            results["data"][data] = {"name": name, "n": len(X), "shape": X.shape[1:]}
            for M in (2, 10):
                epochs = cfg["epochs"][data, M]
                bases = {}
                for offset, loss, gram, init in _runs_for(data, M, cfg):
                    s = seed + offset
                    key = (data, M, s, loss, gram, init)
                    if key not in store:
                        common = dict(params, n_clusters=M, init=init, epochs=epochs, random_state=s)
                        if (s, init) not in bases:
                            began = time.perf_counter()
                            bases[(s, init)] = MoA(**common).initialise(X)
                            bases[(s, init), "seconds"] = time.perf_counter() - began
                        began = time.perf_counter()
                        with warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always", SingularGramWarning)
                            model = MoA(**common, loss=loss, gram=gram).fit(X, initialised=bases[(s, init)])
                        record = {"data": data, "M": M, "seed": s, "loss": loss, "gram": gram, "init": init,
                                  "epochs": epochs, "seconds": time.perf_counter() - began,
                                  "init_seconds": bases[(s, init), "seconds"],
                                  "singular_gram": any(issubclass(w.category, SingularGramWarning) for w in caught),
                                  **_evaluate(model, X, y, s == seed and gram == "batch", cfg["n_show"])}
                        store.put(key, record)
                        log(f"[moa] {data} M={M} seed {s} {loss} {gram} {init}: NMI {record['nmi']:.3f} "
                            f"MSE {record['mse']:.4f} sizes {record['sizes']} ({record['seconds']:.0f} s)")
                    results["runs"].append(store[key])
        results["longer"] = _longer_runs(cfg, params, seed, data_dir, quick, store, log)
    return results


def _longer_runs(cfg, params, seed, data_dir, quick, store: RunCache, log) -> list[dict]:
    """More pretraining and more epochs from one shared start per (M, seed, start), with and without the
    balance term. ``longer["runs"][M]`` lists (start, loss, balance, epochs, number of seeds); a run with n
    seeds trains on seeds ``seed`` ... ``seed + n - 1``."""
    longer = cfg["longer"]
    common = dict(params, pretrain_epochs=longer["pretrain_epochs"])
    data = None
    rows = []
    for M, runs in longer["runs"].items():
        bases = {}
        for init, loss, balance, epochs, n_seeds in runs:
            for s in range(seed, seed + n_seeds):
                key = ("longer", longer["data"], M, s, init, loss, balance, longer["pretrain_epochs"], epochs)
                if key not in store:
                    if data is None:  # loaded only when a run is missing from the cache
                        data = _load(longer["data"], quick, data_dir, cfg["n_mnist"], seed)
                    name, X, y = data
                    start = dict(common, n_clusters=M, init=init, random_state=s)
                    if (s, init) not in bases:
                        began = time.perf_counter()
                        bases[s, init] = MoA(**start).initialise(X)
                        bases[s, init, "seconds"] = time.perf_counter() - began
                    began = time.perf_counter()
                    model = MoA(**{**start, "loss": loss, "balance": balance, "epochs": epochs}).fit(
                        X, initialised=bases[s, init])
                    record = {"data": name, "M": M, "seed": s, "init": init, "loss": loss, "balance": balance,
                              "pretrain_epochs": longer["pretrain_epochs"], "epochs": epochs,
                              "seconds": time.perf_counter() - began, "init_seconds": bases[s, init, "seconds"],
                              **_evaluate(model, X, y, False, cfg["n_show"])}
                    store.put(key, record)
                    log(f"[moa] longer {name} M={M} seed {s} {init} start {loss} balance {balance} {epochs} epochs: "
                        f"NMI {record['nmi']:.3f} sizes {record['sizes']} ({record['seconds']:.0f} s)")
                rows.append(store[key])
    return rows


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def _select(runs, **kw):
    return [r for r in runs if all(r[k] == v for k, v in kw.items())]


def _loss_table(runs, data, M) -> list[dict]:
    rows = []
    for loss in LOSSES:
        sel = _select(runs, data=data, M=M, loss=loss, gram="batch", init="kmeans")
        if not sel:
            continue
        row = {"loss": loss, "seeds": len(sel), "MSE (chosen expert)": mean_std(r["mse"] for r in sel),
               "NMI": mean_std(r["nmi"] for r in sel), "ARI": mean_std(r["ari"] for r in sel),
               "ACC": mean_std(r["acc"] for r in sel),
               "clusters used": mean_std(sum(np.asarray(r["sizes"]) > 0) for r in sel),
               "largest cluster %": mean_std(100 * max(r["sizes"]) / sum(r["sizes"]) for r in sel),
               "init NMI (K-means)": mean_std(r["init_nmi"] for r in sel),
               "s / run": f"{np.mean([r['seconds'] for r in sel]):.0f}"}
        if data == "mnist" and M == 2 and loss in PUBLISHED:
            row["published MSE / NMI"] = "{:.3f} / {:.3f}".format(*PUBLISHED[loss])
        rows.append(row)
    return rows


def _variant_table(runs, data, M) -> list[dict]:
    rows = []
    for r in _select(runs, data=data, M=M):
        if r["gram"] == "batch" and r["init"] == "kmeans" and r["seed"] != min(x["seed"] for x in runs):
            continue
        rows.append({"loss": r["loss"], "gram": r["gram"], "init": r["init"], "seed": r["seed"], "NMI": r["nmi"],
                     "ARI": r["ari"], "MSE": r["mse"], "sizes": "/".join(map(str, r["sizes"])),
                     "G near-singular": "yes" if r["singular_gram"] else "no"})
    return rows


def _bound_rows(runs) -> list[dict]:
    rows = []
    for r in runs:
        if r["loss"] not in ("bound", "frobenius_bound"):
            continue
        below = [v for v in r["bound_below_exact"] if v is not None]
        ratio = [v for v in r["bound_over_exact"] if v is not None]
        rows.append({"data": r["data"], "M": r["M"], "loss": r["loss"], "gram": r["gram"], "init": r["init"],
                     "seed": r["seed"], "batches below exact, % per epoch": ", ".join(f"{100 * v:.1f}" for v in below),
                     "mean bound / exact per epoch": ", ".join(f"{v:.2f}" for v in ratio)})
    return rows


def _reconstruction_figure(runs, data, M, seed, losses):
    chosen = [r for r in (_select(runs, data=data, M=M, seed=seed, loss=loss, gram="batch", init="kmeans")
                          for loss in losses) if r]
    chosen = [r[0] for r in chosen if "figures" in r[0]]
    if not chosen:
        return None
    images = chosen[0]["figures"]["images"]
    fig, axes = plt.subplots(len(chosen) + 1, 1, figsize=(1.0 * len(images), 1.35 * (len(chosen) + 1)))
    plotting.image_grid(axes[0], np.clip(images, 0, 1), 1, titles=[f"label {t}" for t in chosen[0]["figures"]["true"]])
    axes[0].set_title("input", fontsize=9)
    for ax, r in zip(axes[1:], chosen):
        f = r["figures"]
        plotting.image_grid(ax, np.clip(f["reconstructions"], 0, 1), 1, titles=[f"cluster {c}" for c in f["clusters"]])
        ax.set_title(f"{r['loss']}: chosen expert's reconstruction (NMI {r['nmi']:.3f})", fontsize=9)
    fig.tight_layout()
    return fig


def _histogram_figure(runs, data, M, seed, losses):
    return router_histograms([r[0] for r in (_select(runs, data=data, M=M, seed=seed, loss=loss, gram="batch",
                                                      init="kmeans") for loss in losses) if r])


def router_histograms(chosen):
    """One panel per run: the histogram of each expert's router probability."""
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 3), squeeze=False)
    edges = np.linspace(0, 1, 21)
    for ax, r in zip(axes[0], chosen):
        for k, counts in enumerate(r["router_histogram"][:10]):
            ax.stairs(np.asarray(counts) / max(1, sum(counts)), edges, label=f"expert {k}")
        ax.set_yscale("log")
        ax.set_xlabel("router probability p_ik")
        ax.set_title(f"{r['loss']} (NMI {r['nmi']:.3f})", fontsize=9)
    axes[0][0].set_ylabel("fraction of images")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def _confusion_figure(runs, data, M, seed, losses):
    chosen = [r[0] for r in (_select(runs, data=data, M=M, seed=seed, loss=loss, gram="batch", init="kmeans")
                             for loss in losses) if r and "figures" in r[0]]
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.2 + 0.45 * M * len(chosen), 4), squeeze=False)
    for ax, r in zip(axes[0], chosen):
        plotting.confusion_heatmap(ax, r["figures"]["confusion"], f"{r['loss']}: % of each label per cluster")
    fig.tight_layout()
    return fig


#: What the "varying concentrations" of MoA+'s name mean (the report says it before any number).
VARYING_CONCENTRATIONS = (
    "\"Varying concentrations\" names the theory MoA+'s weights come from: mixtures with varying concentrations, "
    "where every observation x_i has its own mixing probabilities p_i (here the router's output) instead of one pi "
    "shared by all. The weighted empirical distribution sum_i a_ik delta(x_i) estimates component k without bias "
    "when sum_i a_ik p_il = delta_kl, i.e. A^T P = I; the solution of least norm is A = P G^-1 with G = P^T P, the "
    "minimax weights, and the minimax loss sums each expert's reconstruction error under its weighted "
    "distribution (`mixclust.moa`'s docstring).")


def write_report(results, out_dir) -> Path:
    quick, seed, cfg, runs = results["quick"], results["seed"], results["cfg"], results["runs"]
    command = f"mixclust reproduce moa{' --quick' if quick else ''} --seed {seed}"
    report = Report(out_dir, "MoA+: mixture of convolutional autoencoder experts (SPEC §1, [MOA])", command, seed)
    report.text(VARYING_CONCENTRATIONS)
    p = results["params"]
    report.text(
        f"Every model is `mixclust.MoA` with the same hyper-parameters: experts = the SPEC §1 CAE "
        f"({p['n_blocks']} x [Conv {p['filters']} 3x3, ReLU, MaxPool 2], Dense -> latent {p['latent_dim']}, mirrored "
        f"decoder with nearest upsampling to the recorded sizes, sigmoid output), router = 2 x [Conv "
        f"{p['router_filters']} 3x3, ReLU, MaxPool 2], Dense(M), softmax; Adam lr {p['lr']}, batch {p['batch_size']}; "
        f"training epochs (budget): {', '.join(f'{d} M={m}: {v}' for (d, m), v in cfg['epochs'].items())}. "
        f"Seeds: {', '.join(f'{d} M={m}: {v}' for (d, m), v in cfg['seeds'].items())}. Initialisation "
        f"(`init=\"kmeans\"`, shared by all losses of a seed): one autoencoder pretrained (cross-entropy) for "
        f"{p['pretrain_epochs']} epochs and copied into every expert, K-means (M) on its codes, the router "
        f"fitted to those labels for "
        f"{p['router_epochs']} epochs; no balance term (`balance=0`, see the last sections). Labels are used "
        f"only for the scores. MSE = mean over pixels and images of "
        f"the squared error of the expert each image is routed to (the published MSE is presumably the same "
        f"quantity; [MOA] does not say). Total compute {_compute_minutes(runs + results.get('longer', [])):.0f} min "
        f"with "
        f"{cfg['threads']} torch thread(s)."
        + ("\n\n**Quick mode**: a tiny subset and network, a smoke test of the pipeline; the numbers mean nothing."
           if quick else ""))
    for data, info in results["data"].items():
        title = {"mnist": "MNIST", "fsdd": "Spoken digits (FSDD, log-mel 1x32x32)"}.get(info["name"], info["name"])
        report.section(f"{title}: {info['n']} images of shape {tuple(info['shape'])}")
        if data == "fsdd":
            report.text(f"[MOA]'s audio result (a 2-class military data set we cannot obtain): MoE NMI "
                        f"{PUBLISHED_AUDIO['blend']}, MoA+ (trained with the bound) {PUBLISHED_AUDIO['bound']}. "
                        f"Here: 3,000 recordings of "
                        f"the digits 0-9 (10 classes; NMI is against the digit).")
        for M in (2, 10):
            rows = _loss_table(runs, data, M)
            if not rows:
                continue
            report.section(f"M = {M}", level=3)
            report.table(rows)
            report.text(_explain(runs, data, M))
            report.text("\nVariants (seed " + str(seed) + "): the running-average Gram matrix and the source's "
                        "random start.")
            report.table(_variant_table(runs, data, M))
            slug = f"{data}_M{M}"
            fig = _reconstruction_figure(runs, data, M, seed, ("blend", "minimax", "bound", "switch"))
            if fig is not None:
                report.figure(fig, f"reconstructions_{slug}.png",
                              f"{title}, M = {M}: inputs and the chosen expert's reconstructions, cluster below.")
            report.figure(_histogram_figure(runs, data, M, seed, ("blend", "minimax", "bound", "switch")),
                          f"router_histograms_{slug}.png",
                          f"{title}, M = {M}: histogram of router probabilities per expert (log scale).")
            report.figure(_confusion_figure(runs, data, M, seed, ("blend", "minimax", "bound")),
                          f"label_by_cluster_{slug}.png",
                          f"{title}, M = {M}: percentage of each true label in each cluster.")
    _longer_section(report, results.get("longer", []), cfg)
    report.text("MoA+ and the MoE as the source ran them (the bound from a random start, M = 2, scored on the test "
                "split, beside its label tables): [reports/moa-source](../moa-source/README.md), "
                "`mixclust reproduce moa-source`.")
    report.section("The source's bound during training")
    report.text("`bound` = sqrt(sum 1/lambda_k^2) sqrt(sum_k (sum_i p_ik e_ik)^2) is trained as if it bounded the "
                "exact loss |tr(G^-1 E^T P)| from above. On every batch of the bound runs the exact loss was "
                "computed beside it; per epoch: the percentage of batches where the bound was *below* the exact "
                "loss, and the mean ratio bound / exact. `frobenius_bound` is an upper bound by construction "
                "(0 % expected).")
    report.table(_bound_rows(runs))
    return report.write()


def _compute_minutes(rows) -> float:
    """Training minutes behind the report, from the runs themselves (a report re-rendered from the cache
    trains nothing, so the wall time of the current process would read 0): every fit, plus each shared
    initialisation once."""
    starts = {(r["data"], r["M"], r["seed"], r.get("init", "kmeans"), r.get("pretrain_epochs")): r["init_seconds"]
              for r in rows}
    return (sum(r["seconds"] for r in rows) + sum(starts.values())) / 60


def _longer_section(report, rows, cfg) -> None:
    if not rows:
        return
    longer = cfg["longer"]
    epochs = sorted({r["epochs"] for r in rows})
    seeds = sorted({n for runs in longer["runs"].values() for *_, n in runs})
    report.section("Longer training, a balance term and a GMM start")
    report.text(
        f"The tables above stop after 1-2 epochs (the budget). Here, on {rows[0]['data']}: the shared autoencoder "
        f"pretrained for {longer['pretrain_epochs']} epochs (not {MODEL['pretrain_epochs']}), then "
        f"{epochs[0]}-{epochs[-1]} epochs of "
        f"a loss from one start per (M, seed, start), without and with the balance term "
        f"`balance` x KL(mean routing || uniform) (`MoA(balance=...)`; its weight is set per loss because the "
        f"losses differ in scale: the competitive loss sums squared errors over pixels, minimax averages them). "
        f"Two starts: `init=\"kmeans\"` (K-means on the pretrained codes, as above) and `init=\"gmm\"` (EM of a "
        f"full-covariance GMM on the same codes, begun at the K-means centroids). Mean ± std over the seeds "
        f"({' or '.join(map(str, seeds))}), then every run.")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["M"], r.get("init", "kmeans"), r["loss"], r["balance"], r["epochs"]), []).append(r)
    report.table([{"M": M, "start": init, "loss": loss, "balance": balance, "epochs": epochs, "seeds": len(sel),
                   "NMI": mean_std(r["nmi"] for r in sel), "ACC": mean_std(r["acc"] for r in sel),
                   "ARI": mean_std(r["ari"] for r in sel), "start NMI": mean_std(r["init_nmi"] for r in sel),
                   "largest cluster %": mean_std(100 * max(r["sizes"]) / sum(r["sizes"]) for r in sel)}
                  for (M, init, loss, balance, epochs), sel in groups.items()])
    report.table([{"M": r["M"], "start": r.get("init", "kmeans"), "loss": r["loss"], "balance": r["balance"],
                   "epochs": r["epochs"], "seed": r["seed"], "NMI": r["nmi"], "ACC": r["acc"], "ARI": r["ari"],
                   "MSE": r["mse"], "largest cluster": max(r["sizes"]) / sum(r["sizes"]),
                   "experts used": sum(size > 0 for size in r["sizes"]), "start NMI": r["init_nmi"],
                   "s": r["seconds"]} for r in rows])
    lines = []
    for M in sorted({key[0] for key in groups}):
        mean_nmi = {key[1:]: float(np.mean([r["nmi"] for r in sel])) for key, sel in groups.items() if key[0] == M}
        seeds = {key[1:]: len(sel) for key, sel in groups.items() if key[0] == M}
        best = max(mean_nmi, key=lambda key: (seeds[key] > 1, mean_nmi[key]))
        init, loss, balance, epochs = best
        target = TARGET_NMI.get(M)
        lines.append(f"M = {M}: best over {seeds[best]} seed(s) {loss} from the {init} start (balance {balance}, "
                     f"{epochs} epochs), mean NMI {mean_nmi[best]:.3f}"
                     + (f", target {target} {'reached' if mean_nmi[best] >= target else 'not reached'}"
                        if target else "") + ".")
        best_by_loss = {}
        for key, value in mean_nmi.items():
            best_by_loss[key[1]] = max(best_by_loss.get(key[1], 0.0), value)
        if "minimax" in best_by_loss and max(best_by_loss.values()) > best_by_loss["minimax"]:
            winner = max(best_by_loss, key=best_by_loss.get)
            lines.append(f"The {winner} baseline beats the minimax (MoA+) loss at M = {M} "
                         f"({best_by_loss[winner]:.3f} vs {best_by_loss['minimax']:.3f}, best mean of each).")
        if M == 2 and "bound" in best_by_loss:
            lines.append(f"[MOA]'s MoA+ at M = 2, trained with the bound: NMI {PUBLISHED['bound'][1]}; the bound here "
                         f"at best {best_by_loss['bound']:.3f} (from this study's start; the source's own random "
                         f"start is reports/moa-source).")
    report.text(" ".join(lines))


def _explain(runs, data, M) -> str:
    table = {loss: _select(runs, data=data, M=M, loss=loss, gram="batch", init="kmeans") for loss in LOSSES}
    nmi = {loss: float(np.mean([r["nmi"] for r in sel])) for loss, sel in table.items() if sel}
    if not nmi:
        return ""
    best = max(nmi, key=nmi.get)
    init = [r["init_nmi"] for sel in table.values() for r in sel if r["init_nmi"] is not None]
    lines = [f"Best mean NMI: **{best}** ({nmi[best]:.3f}); minimax {nmi.get('minimax', float('nan')):.3f}; "
             f"the K-means initialisation alone {np.mean(init):.3f}."]
    rivals = [loss for loss in ("switch", "competitive", "blend") if nmi.get(loss, -1) >= nmi.get("minimax", 2)]
    if rivals:
        lines.append(f"Baselines that match or beat minimax here: {', '.join(rivals)}.")
    if data == "mnist" and M in TARGET_NMI:
        lines.append(f"Target NMI >= {TARGET_NMI[M]}: {'reached' if nmi[best] >= TARGET_NMI[M] else 'not reached'} "
                     f"in this table (best {nmi[best]:.3f}; longer training below).")
    collapsed = [loss for loss, sel in table.items() if sel and np.mean([max(r["sizes"]) / sum(r["sizes"])
                                                                         for r in sel]) > 0.95]
    if collapsed:
        lines.append(f"One cluster holds > 95 % of the images for: {', '.join(collapsed)}.")
    random = {r["loss"]: r for r in _select(runs, data=data, M=M, init="random")}
    if random:
        lines.append("From the source's random start: " + "; ".join(
            f"{loss} NMI {r['nmi']:.3f}, MSE {r['mse']:.4f}, sizes {r['sizes']}" for loss, r in random.items()) + ".")
    return " ".join(lines)


def run(out_dir, quick: bool = False, seed: int = 0, data_dir=None, cache=None) -> Path:
    """Write ``out_dir/README.md`` and its figures; returns the README path.

    ``cache``: a pickle of finished runs (default ``out_dir/.runs.pkl`` for the full study) so an interrupted
    study resumes; the report is rewritten from it.
    """
    path, results = run_cached(compute, write_report, out_dir, quick, seed, data_dir, cache)
    atomic_write_text(Path(out_dir) / "results.md", markdown_table(
        [{k: v for k, v in r.items() if k in ("data", "M", "seed", "loss", "gram", "init", "nmi", "ari", "acc", "mse",
                                              "init_nmi", "seconds")} for r in results["runs"]], floatfmt=".4f"))
    return path
