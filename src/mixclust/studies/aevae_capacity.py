"""What capacity reaches the AE-vs-VAE source's reconstruction error (SPEC §3, [AEVAE], issue 19).

[AEVAE] reports test MSE per pixel 0.0047 (AE) and 0.0099 (VAE) and gives no layer sizes (its architecture
figure is an image); its convolutional decoder uses transposed convolutions. reports/aevae trained the MoA
source's 8-filter CAE for 10 epochs and got 0.0217 / 0.0207. This study trains the source's kind of network,
``decoder="transposed"``, on a grid of filters (8, 32, 64) x latent sizes (16, 32, 64), AE (MSE) and VAE
(BCE + KL, beta 1), each **to convergence**: Adam lr 1e-3, batch 128, up to ``max_epochs`` epochs, stopped
when the validation MSE (5,000 held-out training images) has not improved for ``patience`` epochs, the best
epoch's weights kept. It reports the test MSE (10,000 test images) of every cell beside the targets.

Runs go cheapest first (fewest filters, then smallest latent); each finished run is cached
(``reports/aevae-capacity/.runs.pkl``) and each epoch checkpointed (``.checkpoints/``), so the study resumes
across sessions and a killed 64-filter run loses at most one epoch. The report renders from whatever has
finished (``render``), listing the runs still to do.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..autoencoder import VAE, AutoEncoder
from ..reports import Report
from . import RunCache, load_train_test, run_cached, subsample
from . import threads as study_threads
from .aevae import PUBLISHED, _n_params

DESCRIPTION = ("AE and VAE with the source's transposed-convolution decoder, filters x latent size trained to "
               "convergence, against the published reconstruction MSE")

MODELS = (("AE", AutoEncoder, {"loss": "mse"}), ("VAE", VAE, {"loss": "bce", "beta": 1.0}))
FULL = {"filters": (8, 32, 64), "latent": (16, 32, 64), "n_val": 5000, "n_train": None, "n_test": None,
        "max_epochs": 40, "patience": 3, "batch": 128, "lr": 1e-3, "threads": 1}
QUICK = {"filters": (4,), "latent": (4, 8), "n_val": 200, "n_train": 1000, "n_test": 300,
         "max_epochs": 3, "patience": 2, "batch": 64, "lr": 1e-3, "threads": 1}


def _load(quick, data_dir, cfg, seed):
    X, y, X_test, y_test, loaded = load_train_test("mnist", quick, data_dir)
    X, _ = subsample(X, y, cfg["n_train"], seed)
    X_test, _ = subsample(X_test, y_test, cfg["n_test"], seed + 1)
    order = np.random.default_rng(seed + 2).permutation(len(X))
    val, train = np.sort(order[:cfg["n_val"]]), np.sort(order[cfg["n_val"]:])
    return ("MNIST" if loaded == "mnist" else "digits (MNIST not found)"), X[train], X[val], X_test


def grid(cfg) -> list[tuple[str, int, int]]:
    """(model, filters, latent) in the order the study runs them: cheapest network first."""
    return [(m, f, z) for f in cfg["filters"] for z in cfg["latent"] for m, _, _ in MODELS]


def compute(quick=False, seed=0, data_dir=None, cache=None, log=print, cached_only: bool = False) -> dict:
    """Train every cell of the grid not yet in the cache (``cached_only``: train nothing, return what is there)."""
    cfg = QUICK if quick else FULL
    store = RunCache(cache)
    checkpoints = None if cache is None else Path(cache).parent / ".checkpoints"
    data = None
    rows, missing = [], []
    with study_threads(cfg["threads"]):
        for model_name, filters, latent in grid(cfg):
            key = (model_name, filters, latent, seed, cfg["max_epochs"], cfg["patience"])
            if key not in store:
                if cached_only:
                    missing.append(key[:3])
                    continue
                if data is None:
                    data = _load(quick, data_dir, cfg, seed)
                _, X_train, X_val, X_test = data
                cls, params = next((c, p) for m, c, p in MODELS if m == model_name)
                # the budget is in the folder's name: a checkpoint of another budget is never resumed
                run_name = f"{model_name}-f{filters}-z{latent}-s{seed}-e{cfg['max_epochs']}-p{cfg['patience']}"
                folder = None if checkpoints is None else str(checkpoints / run_name)
                model = cls(arch="conv", decoder="transposed", filters=filters, latent_dim=latent, n_blocks=3,
                            epochs=cfg["max_epochs"], batch_size=cfg["batch"], lr=cfg["lr"],
                            patience=cfg["patience"], checkpoint_dir=folder, random_state=seed, device="cpu",
                            **params)
                model.fit(X_train, validation_data=(X_val,))
                val = [h["val_loss"] for h in model.history_]
                store.put(key, {"model": model_name, "filters": filters, "latent": latent,
                                "epochs_run": len(model.history_), "best_epoch": int(np.argmin(val)) + 1,
                                "val_curve": val, "kept_val_mse": model.reconstruction_error(X_val),
                                # every epoch's time, those of an earlier session included (resumed checkpoint)
                                "seconds": float(sum(h["seconds"] for h in model.history_)),
                                "n_parameters": _n_params(model),
                                "test_mse": model.reconstruction_error(X_test),
                                "train_mse": model.reconstruction_error(X_train)})
                log(f"[aevae-capacity] {model_name} filters {filters} latent {latent}: test MSE "
                    f"{store[key]['test_mse']:.4f} after {len(model.history_)} epochs ({store[key]['seconds']:.0f} s)")
            rows.append(store[key])
    return {"quick": quick, "seed": seed, "cfg": cfg, "rows": rows, "missing": missing,
            "data": data[0] if data else ("MNIST" if not quick else "digits or MNIST")}


def _recent_change(curve, window: int = 5) -> str:
    """Relative change of the validation MSE over the last ``window`` epochs (how far from flat a run stopped)."""
    if len(curve) <= window:
        return "—"
    return f"{100.0 * (curve[-1] - curve[-1 - window]) / curve[-1 - window]:+.1f} %"


def write_report(results, out_dir) -> Path:
    quick, seed, cfg, rows = results["quick"], results["seed"], results["cfg"], results["rows"]
    command = f"mixclust reproduce aevae-capacity{' --quick' if quick else ''} --seed {seed}"
    report = Report(out_dir, "AE and VAE capacity against the published reconstruction error (SPEC §3, [AEVAE])",
                    command, seed)
    report.text(
        f"Data: {results['data']}, the training images less {cfg['n_val']:,} held out for the stopping rule; test MSE "
        f"per pixel on the test images. Network: encoder 3 x [Conv F 3x3, ReLU, MaxPool 2], dense to the latent; "
        f"decoder dense, then 3 x [ConvTranspose 3x3 stride 2, ReLU] (`decoder=\"transposed\"`, the source's kind) "
        f"and a Conv 3x3 to the image, sigmoid output started at the mean pixel. AE: MSE summed over pixels; VAE: "
        f"BCE summed over pixels + KL "
        f"(beta 1). Adam lr {cfg['lr']}, batch {cfg['batch']}, up to {cfg['max_epochs']} epochs, stopped after "
        f"{cfg['patience']} epochs without a lower validation MSE (best epoch kept). Seed {seed}, "
        f"{cfg['threads']} torch thread(s) on a 2-core machine shared with other jobs (seconds overstate a fit "
        f"alone). Targets [AEVAE]: AE {PUBLISHED['mse'][0]}, VAE {PUBLISHED['mse'][1]}."
        + ("\n\n**Quick mode**: a tiny subset and network, a smoke test; the numbers mean nothing." if quick else ""))
    if results["missing"]:
        report.text("**Not run yet** (the study resumes from its cache): "
                    + ", ".join(f"{m} filters {f} latent {z}" for m, f, z in results["missing"]) + ".")
    report.table([{"model": r["model"], "filters": r["filters"], "latent": r["latent"],
                   "parameters": f"{r['n_parameters']:,}", "test MSE": f"{r['test_mse']:.4f}",
                   "train MSE": f"{r['train_mse']:.4f}",
                   "target": f"{PUBLISHED['mse'][0 if r['model'] == 'AE' else 1]:.4f}",
                   "reached": "yes" if r["test_mse"] <= PUBLISHED["mse"][0 if r["model"] == "AE" else 1] else "no",
                   "epochs (best)": f"{r['epochs_run']} ({r['best_epoch']})",
                   "stopped": "converged" if r["epochs_run"] < cfg["max_epochs"] else "epoch limit",
                   "val MSE change, last 5 epochs": _recent_change(r["val_curve"]),
                   "s": f"{r['seconds']:.0f}"} for r in rows])
    for name, target in zip(("AE", "VAE"), PUBLISHED["mse"]):
        done = [r for r in rows if r["model"] == name]
        if done:
            best = min(done, key=lambda r: r["test_mse"])
            report.text(f"{name}: the lowest test MSE is {best['test_mse']:.4f} (filters {best['filters']}, latent "
                        f"{best['latent']}), {best['test_mse'] / target:.2f}x the published {target}; "
                        f"{sum(r['test_mse'] <= target for r in done)} of {len(done)} finished cells reach it.")
    report.text(_ratio_text(rows))
    report.text(_missing_text(rows, results["missing"]))
    if rows:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        for ax, (name, target) in zip(axes, zip(("AE", "VAE"), PUBLISHED["mse"])):
            for filters in cfg["filters"]:
                cells = sorted((r["latent"], r["test_mse"]) for r in rows if r["model"] == name
                               and r["filters"] == filters)
                if cells:
                    ax.plot(*zip(*cells), marker="o", label=f"{filters} filters")
            ax.axhline(target, color="k", ls="--", lw=1, label="published")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("latent size")
            ax.set_title(name)
            ax.legend(fontsize=8)
        axes[0].set_ylabel("test MSE per pixel")
        report.figure(fig, "capacity.png", "Test MSE per pixel by latent size and filters, against the published "
                                           "value (dashed).")
    return report.write()


def _ratio_text(rows) -> str:
    """The source's "AE about 2x better than VAE" (published AE / VAE 0.0047 / 0.0099): the ratio per cell run
    for both models."""
    by_cell = {(r["model"], r["filters"], r["latent"]): r["test_mse"] for r in rows}
    ratios = [f"{f} filters latent {z}: {by_cell['AE', f, z] / by_cell['VAE', f, z]:.2f}"
              for (model, f, z) in by_cell if model == "AE" and ("VAE", f, z) in by_cell]
    if not ratios:
        return ""
    return (f"AE / VAE test MSE on the same network (published {PUBLISHED['mse'][0] / PUBLISHED['mse'][1]:.2f}): "
            + "; ".join(ratios) + ".")


def _missing_text(rows, missing) -> str:
    """Why cells wider than the narrowest network that reaches both targets can wait (or nothing)."""
    reach = {name: [r["filters"] for r in rows if r["model"] == name and r["test_mse"] <= target]
             for name, target in zip(("AE", "VAE"), PUBLISHED["mse"])}
    if not missing or not all(reach.values()):
        return ""
    narrowest = max(min(filters) for filters in reach.values())
    if any(f <= narrowest for _, f, _ in missing):
        return ""
    widest = max(f for _, f, _ in missing)
    hours = max(r["seconds"] for r in rows if r["filters"] == narrowest) / 3600
    return (f"Both published errors are reached with {narrowest} filters, so the cells not run (all wider) can only "
            f"add capacity beyond what reaches them. A {widest}-filter cell costs about ({widest} / {narrowest})^2 = "
            f"{(widest / narrowest) ** 2:.0f}x the convolutions of a {narrowest}-filter one, which took up to "
            f"{hours:.1f} hours here; they are left for later sessions.")


def render(out_dir, seed: int = 0) -> Path:
    """Write the report from the cache alone (while the study still runs)."""
    results = compute(seed=seed, cache=Path(out_dir) / ".runs.pkl", cached_only=True)
    return write_report(results, out_dir)


def run(out_dir, quick: bool = False, seed: int = 0, data_dir=None, cache=None) -> Path:
    """Write ``out_dir/README.md`` and its figure (finished runs resume from ``out_dir/.runs.pkl``)."""
    return run_cached(compute, write_report, out_dir, quick, seed, data_dir, cache)[0]
