"""Probe: an out-of-sample map for the UMAP + GMM partition of a trained model's codes (MNIST, all 70,000).

    MIXCLUST_DATA=../shared/data .venv/bin/mixclust fit --model vade --data mnist --split all --n-clusters 10 \\
        --out runs/vade-mnist-all
    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/probes/probe_manifold_predict.py runs/vade-mnist-all/model

Scores (NMI against the labels) the model's own assignments; the partition of its latent means by
``_deep.manifold_partition`` (transductive: the labels of the embedded points); the Gaussians of that partition in
latent space (one M-step, what aekm kept until commit f762e19); and the neighbour map
``_deep.neighbour_responsibilities`` fitted on the first 60,000 codes' partition and applied to the last 10,000.
"""
import sys
import time

import numpy as np

import mixclust
from mixclust import datasets, metrics
from mixclust._deep import manifold_partition, neighbour_responsibilities, weighted_gaussians
from mixclust.gmm import GaussianMixture


def nmi(y, labels):
    return round(metrics.external_metrics(y, labels)["nmi"], 4)


X, y = datasets.load("mnist", split="all")
model = mixclust.load(sys.argv[1])
Z = model.transform(X)
print("model's own predict: NMI", nmi(y, model.predict(X)))
started = time.perf_counter()
resp = manifold_partition(Z, 10, 0)
print(f"UMAP + GMM partition of the latent means (transductive): NMI {nmi(y, resp.argmax(1))} "
      f"({time.perf_counter() - started:.0f} s)")
counts, means, covariances = weighted_gaussians(Z, resp, reg=1e-6)
gmm = GaussianMixture(10, weights_init=counts / counts.sum(), means_init=means,
                      precisions_init=np.linalg.inv(covariances), max_iter=0, device="cpu").fit(Z)
print("the partition's Gaussians in latent space (one M-step): NMI", nmi(y, gmm.predict(Z)))
fit, held = slice(0, 60000), slice(60000, 70000)
for k in (5, 15, 50):
    started = time.perf_counter()
    proba = neighbour_responsibilities(Z[fit], resp[fit], Z[held], n_neighbors=k)
    labels = proba.argmax(1)
    print(f"neighbour map, {k} neighbours, 60,000 -> 10,000 held out: NMI {nmi(y[held], labels)} "
          f"(partition on them {nmi(y[held], resp[held].argmax(1))}), agreement with the partition "
          f"{(labels == resp[held].argmax(1)).mean():.4f}, "
          f"ECE {metrics.expected_calibration_error(y[held], proba):.4f} "
          f"({time.perf_counter() - started:.1f} s)")
