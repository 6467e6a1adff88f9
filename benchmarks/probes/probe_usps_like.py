"""Probe: the frontier model's defaults on a handwritten-digit set drawn the way USPS is (issue 18 asks NMI >= 0.90
on digit sets nobody tuned for). The suite's ``digits16-9k`` shrinks whole 28 x 28 MNIST frames, margins included,
so its digits cover about 11 x 11 of the 16 x 16 pixels. USPS digits were instead cut to their bounding box and
scaled to fill the 16 x 16 frame. This probe draws 9,298 random MNIST images (the size of USPS), crops each to the
box of its ink (pixels > 0.1), scales it to 16 x 16 (bilinear) two ways, the longer side with the aspect
kept (centred) or stretched to the whole frame, and fits the registered models with their defaults (seed 0),
K-means (10 starts) beside them; ``umap10-pixels`` / ``umap20-pixels``: the N2D step (UMAP with 10 or 20
neighbours, then a full GMM) on the pixels, with no network.

    MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_usps_like.py [model ...]
"""
import json
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from mixclust import datasets, metrics
from mixclust._deep import manifold_partition
from mixclust._registry import get_model
from mixclust.studies import subsample

torch.set_num_threads(1)
warnings.simplefilter("ignore")
SIZE = 16


def fill_frame(image: np.ndarray, keep_aspect: bool) -> np.ndarray:
    """(28, 28) -> (16, 16): the ink's bounding box scaled to fill the frame (aspect kept and centred, or
    stretched to the whole frame)."""
    rows, cols = np.flatnonzero(image.max(1) > 0.1), np.flatnonzero(image.max(0) > 0.1)
    box = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = SIZE / max(box.shape)
    h, w = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    if not keep_aspect:
        h = w = SIZE
    small = F.interpolate(torch.from_numpy(box)[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    out[top:top + h, left:left + w] = small.clamp(0, 1).numpy()
    return out


X28, y = datasets.load("mnist", split="all")
X28, y = subsample(X28, y, 9298, 12)
for keep_aspect in (True, False):
    X = np.stack([fill_frame(img[0], keep_aspect) for img in X28])[:, None]
    name = "aspect kept" if keep_aspect else "stretched"
    for model in sys.argv[1:] or ["kmeans", "vade"]:
        started = time.perf_counter()
        if model == "kmeans":
            labels = KMeans(10, n_init=10, random_state=0).fit_predict(X.reshape(len(X), -1))
        elif model.startswith("umap"):  # "umap10-pixels": UMAP (10 neighbours) + GMM on the pixels, no network
            neighbours = int(model[4:].split("-")[0])
            labels = manifold_partition(X.reshape(len(X), -1), 10, 0, n_neighbors=neighbours).argmax(1)
        else:
            labels = get_model(model)(n_clusters=10, random_state=0).fit(X).predict(X)
        scores = metrics.external_metrics(y, labels)
        print(json.dumps({"set": name, "ink": round(float((X > 0.1).mean()), 3), "model": model,
                          "nmi": round(scores["nmi"], 3), "acc": round(scores["acc"], 3),
                          "used": int(len(np.unique(labels))), "seconds": round(time.perf_counter() - started, 1)}),
                  flush=True)
