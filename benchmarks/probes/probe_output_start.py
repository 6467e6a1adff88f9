"""Does starting a sigmoid conv decoder at the mean pixel keep the AE off the all-black plateau? (issue 19)

``mnn.start_output_at_mean`` sets the output convolution's bias to logit(mean pixel); this probe trains the
conv AutoEncoder of reports/aevae (MSE loss, latent 16, batch 256, lr 1e-3, 3 epochs) on 10,000 random MNIST
training images with 8 and 32 filters, with and without that start (patched to a no-op), and prints the
validation MSE per pixel on the first 2,000 test images after each epoch. The all-black output scores the mean
of x^2 there (about 0.10). One torch thread.

    MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_output_start.py
"""

import json
import time
import warnings

import numpy as np
import torch

import mixclust.nn as mnn
from mixclust import AutoEncoder, datasets

warnings.simplefilter("ignore")
torch.set_num_threads(1)
X, _ = datasets.load("mnist", split="train")
X_test, _ = datasets.load("mnist", split="test")
X = X[np.random.default_rng(0).choice(len(X), 10000, replace=False)]
X_test = X_test[:2000]
start = mnn.start_output_at_mean
print(json.dumps({"black_output_mse": float((X_test ** 2).mean())}))
for with_start in (False, True):
    mnn.start_output_at_mean = start if with_start else (lambda module, X: None)
    for filters in (8, 32):
        began = time.perf_counter()
        ae = AutoEncoder(latent_dim=16, arch="conv", filters=filters, loss="mse", epochs=3, batch_size=256,
                         random_state=0).fit(X, validation_data=(X_test, None))
        print(json.dumps({"start_at_mean": with_start, "filters": filters,
                          "val_mse_per_epoch": [round(r["val_loss"], 4) for r in ae.history_],
                          "seconds": round(time.perf_counter() - began, 1)}), flush=True)
mnn.start_output_at_mean = start
