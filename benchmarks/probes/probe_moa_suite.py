"""Probe: MoA on suite sets (both input forms), with parameter overrides: the start's NMI (the partition the
router learns), the final NMI, clusters used and seconds, beside the suite's K-means (seed 0).

    MIXCLUST_DATA=../shared/data THREADS=1 .venv/bin/python benchmarks/probes/probe_moa_suite.py \
        digits,mnist-1k flat,images '[{}, {"specialise": false}]'

Labels only score; one JSON line per (set, form, override).
"""
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.cluster import KMeans

from mixclust import MoA, metrics
from mixclust.studies.suite import SETS

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
sets, forms = sys.argv[1].split(","), sys.argv[2].split(",")
variants = json.loads(sys.argv[3]) if len(sys.argv) > 3 else [{}]
seed = int(os.environ.get("SEED", "0"))
for set_name in sets:
    X, y = SETS[set_name].loader(data_dir=os.environ.get("MIXCLUST_DATA"))
    K = len(np.unique(y))
    flat = X.reshape(len(X), -1)
    kmeans = metrics.external_metrics(y, KMeans(K, n_init=10, random_state=0).fit_predict(flat))["nmi"]
    for form in forms:
        inputs = flat if form == "flat" else X
        for override in variants:
            model = MoA(K, **{**override, "random_state": seed})
            start = time.perf_counter()
            model.fit(inputs)
            pred = model.predict(inputs)
            print(json.dumps({
                "set": set_name, "form": form, "override": override, "seed": seed, "kmeans": round(kmeans, 3),
                "start_nmi": round(metrics.external_metrics(y, model.init_labels_)["nmi"], 3)
                if hasattr(model, "init_labels_") else None,
                "final_nmi": round(metrics.external_metrics(y, pred)["nmi"], 3),
                "used": int((np.bincount(pred, minlength=K) > 0).sum()),
                "seconds": round(time.perf_counter() - start, 1)}), flush=True)
