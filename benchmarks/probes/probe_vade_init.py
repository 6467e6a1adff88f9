"""Probe: VaDE stage 2 from the K-means/GMM start or the manifold start, and the decoder variance.

    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/probes/probe_vade_init.py mnist-5k \\
        '[{"init":"manifold","R":10},{"init":"kmeans","R":10},{"init":"manifold","R":30}]'

One pretraining (seed 0, one thread), then per configuration one JSON line: the NMI right after the prior's
start (epochs=0) and after training. R: sigma^2 = D * mse / (2 R), the nats the pretrained reconstruction is
worth per sample (R = D / 2 gives sigma^2 = mse, the decoder_variance="auto" of commit 9a5df72).
"""
import json
import sys
import time
import warnings

import numpy as np
import torch

from mixclust import metrics
from mixclust.studies.suite import SETS
from mixclust.vade import VaDE

torch.set_num_threads(1)
warnings.filterwarnings("ignore")


def main(name: str, configs: list[dict]) -> None:
    suite_set = SETS[name]
    X, y = suite_set.loader(data_dir=None)
    X, K = X.reshape(len(X), -1), suite_set.k

    def nmi(labels):
        return round(metrics.external_metrics(y, labels)["nmi"], 3)

    started = time.time()
    base = VaDE(K, random_state=0).pretrain(X)
    D = X.shape[1]
    mse = base.decoder_variance_ * 2 * base.latent_dim / D  # "auto" is D * mse / (2 d)
    print(json.dumps({"set": name, "pretrain_s": round(time.time() - started), "mse": mse, "D": D}), flush=True)
    for config in configs:
        config = dict(config)
        R = config.pop("R", None)
        if R is not None:
            config["decoder_variance"] = D * mse / (2 * R)
        started = time.time()
        start = VaDE(K, random_state=0, epochs=0, **config).fit(X, pretrained=base)
        model = VaDE(K, random_state=0, **config).fit(X, pretrained=base)
        labels = model.predict(X)
        print(json.dumps({"set": name, "R": R, **config, "init_nmi": nmi(start.predict(X)), "nmi": nmi(labels),
                          "used": int(len(np.unique(labels))),
                          "largest": round(float(np.bincount(labels).max() / len(labels)), 3),
                          "s": round(time.time() - started)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
