"""Probe: a deep model's training budget on suite sets (flattened input, seed 0): NMI and seconds, beside the
suite's K-means.

    MIXCLUST_DATA=../shared/data THREADS=1 .venv/bin/python benchmarks/probes/probe_budget.py aekm \
        digits16-2k,mnist-1k,fashion-1k '[{}, {"epochs_steps": 8000}]'

Each override sets the model's parameters; ``<name>_steps: N`` sets the epoch parameter ``<name>`` to the fewest
epochs that make N optimiser steps at the model's resolved batch size. Labels only score.
"""
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans

from mixclust import metrics
from mixclust._deep import epochs_for_steps
from mixclust._registry import MODELS
from mixclust.studies.suite import SETS

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
warnings.filterwarnings("ignore")
model_name, sets = sys.argv[1], sys.argv[2].split(",")
variants = json.loads(sys.argv[3]) if len(sys.argv) > 3 else [{}]
for set_name in sets:
    X, y = SETS[set_name].loader(data_dir=os.environ.get("MIXCLUST_DATA"))
    X = X.reshape(len(X), -1)
    K = len(np.unique(y))
    kmeans = metrics.external_metrics(y, KMeans(K, n_init=10, random_state=0).fit_predict(X))["nmi"]
    for override in variants:
        cls = MODELS[model_name]
        params = {cls._n_clusters_param: K, "random_state": 0}
        resolved = cls(**params, **{k: v for k, v in override.items() if not k.endswith("_steps")})
        resolved._resolve_budget(len(X))  # the model's own batch size for n (nnobj's differs from the others')
        batch = resolved.batch_size_
        for key, value in override.items():
            if key.endswith("_steps"):
                params[key[:-len("_steps")]] = epochs_for_steps(int(value), len(X), batch)
            else:
                params[key] = value
        model = cls(**params)
        start = time.perf_counter()
        pred = model.fit(X).predict(X)
        print(json.dumps({"set": set_name, "model": model_name, "override": override, "kmeans": round(kmeans, 3),
                          "nmi": round(metrics.external_metrics(y, pred)["nmi"], 3),
                          "used": int((np.bincount(pred, minlength=K) > 0).sum()),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
