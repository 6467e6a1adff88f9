"""Probe: do the deep models' defaults depend on the units of the pixels? scikit-learn's digits as mixclust loads
them (pixels / 16, in [0, 1]), as ``load_digits`` returns them (0..16), as 8-bit values (0..255) and mapped to
[-1, 1] (as USPS is often distributed); every registered deep model with its defaults, and K-means, seed 0.

    .venv/bin/python benchmarks/probes/probe_input_units.py [model ...]
"""
import json
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans

from mixclust import datasets, metrics
from mixclust._registry import get_model

torch.set_num_threads(1)
warnings.simplefilter("ignore")
X01, y = datasets.load("digits", flatten=True)
units = {"[0, 1]": X01, "0..16": X01 * 16, "0..255": X01 * 255, "[-1, 1]": 2 * X01 - 1}
for model in sys.argv[1:] or ["kmeans", "aekm", "vade", "moa", "nnobj"]:
    for unit, X in units.items():
        started = time.perf_counter()
        if model == "kmeans":
            labels = KMeans(10, n_init=10, random_state=0).fit_predict(X)
        else:
            labels = get_model(model)(n_clusters=10, random_state=0).fit(X).predict(X)
        print(json.dumps({"model": model, "units": unit, "nmi": round(metrics.external_metrics(y, labels)["nmi"], 3),
                          "used": int(len(np.unique(labels))), "seconds": round(time.perf_counter() - started, 1)}),
              flush=True)
