"""Probe: MoA at M = 2 on MNIST (70,000 images) trained for 40 epochs, the test NMI watched after every epoch.

The configuration is the study's longest M = 2 run (``mixclust reproduce moa``, "Longer training": the SPEC §1
CAE, 10 pretraining epochs, the GMM start, the competitive loss without a balance term) with 40 epochs instead
of 20, to show whether the M = 2 result is still moving at 20 epochs and how far the seeds spread. The NMI per
epoch comes from ``fit(validation_data=(X, y))``, which only monitors (no early stopping, nothing selected).

    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/probes/probe_moa_m2_trajectory.py run 0   # one seed
    .venv/bin/python benchmarks/probes/probe_moa_m2_trajectory.py render 0 1 2   # reports/moa/m2-trajectory/

``run`` trains one seed on one thread (seeds can run side by side) and writes its JSON atomically; it resumes
from its checkpoints if interrupted. ``render`` writes the report from the JSON files.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mixclust import metrics, plotting
from mixclust.moa import MoA
from mixclust.reports import Report, atomic_write_text, markdown_table, mean_std
from mixclust.studies.moa import FULL, MODEL, TARGET_NMI, _load

OUT = Path(__file__).resolve().parent.parent / "reports" / "moa" / "m2-trajectory"
EPOCHS = 40
PARAMS = {**MODEL, "n_clusters": 2, "init": "gmm", "loss": "competitive", "balance": 0.0,
          "pretrain_epochs": FULL["longer"]["pretrain_epochs"], "epochs": EPOCHS}


def run(seed: int) -> None:
    torch.set_num_threads(1)
    _, X, y = _load("mnist", False, None, None, seed)
    began = time.perf_counter()
    model = MoA(**PARAMS, random_state=seed, checkpoint_dir=OUT / f".checkpoints-{seed}", verbose=1)
    model.fit(X, validation_data=(X, y))
    labels = model.predict(X)
    train = [r for r in model.history_ if r["stage"] == "train"]
    scores = metrics.external_metrics(y, labels)
    errors = model.expert_errors(X)
    record = {"seed": seed, "params": {k: v for k, v in PARAMS.items()}, "n": len(X),
              "seconds": time.perf_counter() - began, "threads": torch.get_num_threads(),
              "start_nmi": metrics.external_metrics(y, model.init_labels_)["nmi"],
              "val_nmi": [r["val_nmi"] for r in train], "loss": [r["loss"] for r in train],
              "nmi": scores["nmi"], "ari": scores["ari"], "acc": scores["acc"],
              "mse": float(np.take_along_axis(errors, labels[:, None], 1).mean()),
              "sizes": np.bincount(labels, minlength=2).tolist()}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / f"seed{seed}.json", json.dumps(record, default=str))
    print(json.dumps({k: record[k] for k in ("seed", "nmi", "sizes", "seconds")}))


def render(seeds: list[int]) -> None:
    records = [json.loads((OUT / f"seed{s}.json").read_text()) for s in seeds]
    command = "MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_moa_m2_trajectory.py run SEED (SEED = " + \
        ", ".join(map(str, seeds)) + "), then ... render " + " ".join(map(str, seeds))
    report = Report(OUT, "MoA, M = 2 on MNIST: 40 epochs, the NMI after every epoch", command=command)
    report.text(
        f"The study's longest M = 2 configuration ([../README.md](../README.md), \"Longer training\") trained "
        f"{EPOCHS} epochs instead of 20: {records[0]['n']:,} MNIST images, the SPEC §1 CAE experts and router, "
        f"Adam lr {PARAMS['lr']}, batch {PARAMS['batch_size']}, {PARAMS['pretrain_epochs']} pretraining epochs, "
        f"the GMM start (`init=\"gmm\"`), the competitive loss, no balance term. One thread per seed. The NMI "
        f"after each epoch is monitored through `validation_data` (the training images and their labels); it "
        f"steers nothing: no early stopping, the last epoch is the result. Target NMI >= {TARGET_NMI[2]}.")
    checkpoints = [e for e in (10, 20, 30, 40) if e <= EPOCHS]
    rows = []
    for r in records:
        row = {"seed": r["seed"], "start NMI": r["start_nmi"]}
        row.update({f"NMI after {e}": r["val_nmi"][e - 1] for e in checkpoints})
        row.update({"best epoch (NMI)": int(np.argmax(r["val_nmi"])) + 1, "ACC": r["acc"], "ARI": r["ari"],
                    "MSE": r["mse"], "sizes": "/".join(map(str, r["sizes"])), "minutes": r["seconds"] / 60})
        rows.append(row)
    mean = {"seed": "mean ± std", "start NMI": mean_std([r["start_nmi"] for r in records])}
    mean.update({f"NMI after {e}": mean_std([r["val_nmi"][e - 1] for r in records]) for e in checkpoints})
    report.section("NMI per seed").table(rows + [mean])
    final = [r["val_nmi"][-1] for r in records]
    above = sum(v >= TARGET_NMI[2] for v in final)
    late = [r["val_nmi"][-1] - r["val_nmi"][min(20, EPOCHS) - 1] for r in records]
    order = [r["seed"] for r in sorted(records, key=lambda r: r["start_nmi"])]
    final_order = [r["seed"] for r in sorted(records, key=lambda r: r["val_nmi"][-1])]
    report.text(f"After {EPOCHS} epochs: mean NMI {np.mean(final):.3f}; {above} of {len(final)} seeds reach "
                f"{TARGET_NMI[2]}. From epoch 20 to {EPOCHS} the NMI moves by "
                f"{', '.join(f'{d:+.3f}' for d in late)} (seeds {', '.join(str(r['seed']) for r in records)}) "
                f"while the loss keeps falling: longer training does not close the gap between seeds. The seeds "
                f"rank {'the same' if order == final_order else 'differently'} by start NMI and by final NMI. "
                "'best epoch' is shown to describe the trajectory only; choosing it would use the labels.")
    fig, axes = plotting.subplots(2, ncols=2, size=4.2)
    for r in records:
        epochs = np.arange(1, len(r["val_nmi"]) + 1)
        axes[0].plot(epochs, r["val_nmi"], label=f"seed {r['seed']}")
        axes[1].plot(epochs, r["loss"], label=f"seed {r['seed']}")
    axes[0].axhline(TARGET_NMI[2], color="k", ls="--", lw=0.8, label="target")
    axes[0].set(xlabel="epoch", ylabel="NMI (monitored, not used)", title="NMI after each epoch")
    axes[1].set(xlabel="epoch", ylabel="competitive loss", title="training loss")
    axes[0].legend(), axes[1].legend()
    report.section("Trajectories")
    report.figure(fig, "trajectory.png", "NMI after every epoch and the training loss, per seed")
    print(report.write())
    print(markdown_table(rows))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(int(sys.argv[2]))
    else:
        render([int(s) for s in sys.argv[2:]])
