"""Probe: MoA on scikit-learn's digits with the ``make demo`` settings, seeds 0-2: the start's partition, how
well the router learnt it (NMI between the router's labels and the start's, after the start alone), the final
NMI and the validation NMI every 5 epochs.

    THREADS=1 .venv/bin/python benchmarks/probes/probe_moa_digits.py '[{}, {"init": "kmeans"}]'
    THREADS=1 .venv/bin/python benchmarks/probes/probe_moa_digits.py '[{"pretrain_epochs": 3, "router_epochs": 2}]'

The argument is a JSON list of parameter overrides, one line of output per (override, seed). The second
command is the budget before ``pretrain_epochs="auto"``/``router_epochs="auto"`` (see ``MoA``'s docstring).
"""
import json
import os
import sys
import time

import numpy as np
import torch

from mixclust import MoA, datasets, metrics
from mixclust._base import prepare_input

# The settings the demo gave MoA before the demo ran every model's defaults (issue 17).
DEMO_SETTINGS = {"epochs": 30, "batch_size": 64, "arch": "mlp", "hidden": (64,), "latent_dim": 8}
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
variants = json.loads(sys.argv[1]) if len(sys.argv) > 1 else [{}]
X, y = datasets.load("digits")
for override in variants:
    for seed in (0, 1, 2):
        model = MoA(10, **{**DEMO_SETTINGS, **override, "random_state": seed})
        inputs = prepare_input(model, X)
        start = time.perf_counter()
        model.fit(inputs, validation_data=(inputs, y))
        val_nmi = [r["val_nmi"] for r in model.history_ if r["stage"] == "train"]
        started = MoA(10, **{**DEMO_SETTINGS, **override, "random_state": seed}).initialise(inputs)
        router_vs_start = (metrics.external_metrics(started.init_labels_, started.predict(inputs))["nmi"]
                           if hasattr(started, "init_labels_") else None)
        pred = model.predict(inputs)
        print(json.dumps({
            "override": override, "seed": seed,
            "start_nmi": round(metrics.external_metrics(y, model.init_labels_)["nmi"], 3)
            if hasattr(model, "init_labels_") else None,
            "router_vs_start_nmi": None if router_vs_start is None else round(router_vs_start, 3),
            "final_nmi": round(metrics.external_metrics(y, pred)["nmi"], 3),
            "val_nmi_every_5_epochs": [round(v, 3) for v in val_nmi[::5]],
            "largest_cluster": int(np.bincount(pred).max()), "seconds": round(time.perf_counter() - start, 1)}),
            flush=True)
