"""Does averaging several UMAP + GMM partitions of the same codes calibrate the soft assignments? (issue 18)

Label-free idea: where partitions drawn with different seeds disagree, an average of their responsibilities
(columns Hungarian-matched to the first partition's) is less confident, exactly on the images whose cluster is
uncertain. This probe fits ``AEClustering`` with its defaults on 5,000 random images of MNIST and of
Fashion-MNIST, then partitions its codes with ``_deep.manifold_partition`` for seeds 0..M-1 and prints, for the
first partition alone and for the average of the first m, NMI, ACC and the expected calibration error
(``metrics.expected_calibration_error``, 15 bins). One torch thread.

    MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_partition_ensemble.py
"""

import json
import time
import warnings

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from mixclust import AEClustering, datasets, metrics
from mixclust._deep import manifold_partition

warnings.simplefilter("ignore")
torch.set_num_threads(1)
M = 5
for name in ("mnist", "fashion_mnist"):
    X, y = datasets.load(name, split="all", flatten=True)
    idx = np.random.default_rng(0).choice(len(X), 5000, replace=False)
    X, y = X[idx], y[idx]
    began = time.perf_counter()
    model = AEClustering(10, random_state=0).fit(X)
    codes = model.transform(X)
    parts = [manifold_partition(codes, 10, seed) for seed in range(M)]
    reference = parts[0].argmax(1)
    aligned = []
    for resp in parts:
        overlap = np.eye(10)[reference].T @ resp
        _, order = linear_sum_assignment(-overlap)
        aligned.append(resp[:, order])
    for m in (1, 3, 5):
        proba = np.mean(aligned[:m], axis=0)
        scores = metrics.external_metrics(y, proba.argmax(1))
        print(json.dumps({"data": name, "partitions": m, "nmi": round(scores["nmi"], 4),
                          "acc": round(scores["acc"], 4),
                          "ece": round(metrics.expected_calibration_error(y, proba), 4),
                          "mean_confidence": round(float(proba.max(1).mean()), 4),
                          "seconds": round(time.perf_counter() - began, 1)}), flush=True)
