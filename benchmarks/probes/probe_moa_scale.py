"""Probe: the competitive loss's scale s against the units of tabular data. make_blobs (3,000 x 5, 4 centres)
as drawn, times 10, times 100 and divided by 10, and scikit-learn's wine raw and standardised; MoA with its
defaults (10 epochs), seeds 0 and 1, for each s given ("auto" = the data's range, or a number).

    .venv/bin/python benchmarks/probes/probe_moa_scale.py auto 1.0
"""
import sys
import warnings

import numpy as np
import torch
from sklearn.datasets import load_wine, make_blobs
from sklearn.preprocessing import StandardScaler

from mixclust import MoA, metrics

torch.set_num_threads(1)
warnings.simplefilter("ignore")
Xb, yb = make_blobs(3000, n_features=5, centers=4, random_state=0)
w, yw = load_wine(return_X_y=True)
cases = {"blobs": (Xb, yb, 4), "blobs x10": (Xb * 10, yb, 4), "blobs x100": (Xb * 100, yb, 4),
         "blobs /10": (Xb / 10, yb, 4), "wine raw": (w, yw, 3), "wine std": (StandardScaler().fit_transform(w), yw, 3)}
for scale in sys.argv[1:]:
    sc = scale if scale == "auto" else float(scale)
    for name, (X, y, k) in cases.items():
        res = []
        for seed in (0, 1):
            m = MoA(k, epochs=10, batch_size=32 if len(X) < 500 else 256, competitive_scale=sc, random_state=seed,
                    device="cpu").fit(X)
            res.append(metrics.external_metrics(y, m.predict(X))["nmi"])
        print(scale, name, f"range {np.ptp(X):.1f}", "NMI", [round(r, 3) for r in res], flush=True)
