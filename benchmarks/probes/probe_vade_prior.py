"""Probe: does the VaDE prior's covariance type matter? One pretraining (the VaDE defaults), then on its latent
space K-means vs a full-covariance GMM (test NMI), then stage 2 with the full and the diagonal prior.

    MIXCLUST_DATA=../shared/data THREADS=2 .venv/bin/python benchmarks/probes/probe_vade_prior.py mnist 0

Prints JSON lines. A stepping stone to the defaults of issue 7; the vade-entropy study is the record.
"""
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.cluster import KMeans

from mixclust import GaussianMixture, datasets, metrics
from mixclust.vade import VaDE

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
data = sys.argv[1] if len(sys.argv) > 1 else "mnist"
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
Xtr, ytr = datasets.load(data, split="train")
Xte, yte = datasets.load(data, split="test")
Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
t = time.time()
base = VaDE(10, random_state=seed, **extra).pretrain(Xtr)
print(json.dumps({"pretrain_s": round(time.time() - t)}), flush=True)
latent_train = base.transform(Xtr).astype(np.float64)
latent_test = base.transform(Xte).astype(np.float64)
kmeans = KMeans(10, n_init=10, random_state=seed).fit(latent_train)
gmm = GaussianMixture(10, covariance_type="full", reg_covar=1e-4, means_init=kmeans.cluster_centers_,
                      random_state=seed).fit(latent_train)
print(json.dumps({"latent_kmeans_nmi": round(metrics.evaluate(yte, kmeans.predict(latent_test))["nmi"], 4),
                  "latent_fullgmm_nmi": round(metrics.evaluate(yte, gmm.predict(latent_test))["nmi"], 4)}), flush=True)
for covariance in ("full", "diag"):
    t = time.time()
    model = VaDE(10, random_state=seed, covariance_type=covariance, **extra).fit(Xtr, pretrained=base)
    proba = model.predict_proba(Xte)
    scores = metrics.evaluate(yte, proba.argmax(1), proba=proba)
    print(json.dumps({"data": data, "seed": seed, "covariance_type": covariance, "extra": extra,
                      "stage2_s": round(time.time() - t), "nmi": round(scores["nmi"], 4),
                      "acc": round(scores["acc"], 4), "ari": round(scores["ari"], 4)}), flush=True)
