"""Probe: do the deep defaults hold when the images are larger than anything the suite holds? The suite's
20-object rotation set (``rotated20``, 1,440 images of (1, 32, 32), COIL-20-like) enlarged by bilinear
interpolation to 64 x 64 and to 128 x 128 (COIL-20's own size, 16,384 pixels), fitted by a registered model with
its defaults (``n_clusters=20``, ``random_state=0``) and scored by NMI; K-means (10 starts) beside it. Same
objects, same views: only the pixel count changes, so a default that depends on it shows here.

    MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_image_size.py [model ...] [--sizes 32,128]
"""
import argparse
import json
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from mixclust import metrics
from mixclust._registry import get_model
from mixclust.studies.suite import _rotated_objects

torch.set_num_threads(1)
warnings.simplefilter("ignore")
parser = argparse.ArgumentParser()
parser.add_argument("models", nargs="*", default=["kmeans", "vade"])
parser.add_argument("--sizes", default="32,64,128")
args = parser.parse_args()
X32, y = _rotated_objects(None)
for size in map(int, args.sizes.split(",")):
    X = X32 if size == 32 else F.interpolate(torch.from_numpy(X32), size=(size, size), mode="bilinear",
                                             align_corners=False).clamp(0, 1).numpy()
    for model in args.models:
        started = time.perf_counter()
        if model == "kmeans":
            labels = KMeans(20, n_init=10, random_state=0).fit_predict(X.reshape(len(X), -1))
        else:
            labels = get_model(model)(n_clusters=20, random_state=0).fit(X).predict(X)
        print(json.dumps({"model": model, "size": size, "nmi": round(metrics.external_metrics(y, labels)["nmi"], 3),
                          "used": int(len(np.unique(labels))), "seconds": round(time.perf_counter() - started, 1)}),
              flush=True)
