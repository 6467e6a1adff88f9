"""Probe: VaDE on MNIST (train 60k, evaluate on the 10k test images), one configuration per call.

    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/probes/probe_vade_mnist.py \
        '{"epochs": 20, "pretrain_epochs": 10}'

Prints one JSON line: test NMI/ACC/ARI, mean entropy, seconds, validation NMI per epoch. A stepping stone
to the vade-entropy study (issue 7), not the study itself.
"""
import json
import os
import sys
import time

import torch

from mixclust import datasets, metrics
from mixclust.vade import VaDE

torch.set_num_threads(int(os.environ.get("THREADS", "2")))

cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
Xtr, ytr = datasets.load("mnist", split="train")
Xte, yte = datasets.load("mnist", split="test")
Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
t = time.time()
m = VaDE(10, random_state=cfg.pop("seed", 0), verbose=0, **cfg).fit(Xtr, validation_data=(Xte, yte))
p = m.predict_proba(Xte)
r = metrics.evaluate(yte, p.argmax(1), proba=p)
val_nmi = [round(h.get("val_nmi", float("nan")), 3) for h in m.history_ if h["stage"] == "train"]
print(json.dumps({"cfg": sys.argv[1:], "seconds": round(time.time() - t), "nmi": round(r["nmi"], 4),
                  "acc": round(r["acc"], 4), "ari": round(r["ari"], 4), "H": round(r["mean_entropy"], 3),
                  "val_nmi_per_epoch": val_nmi}))
