"""Probe: what clusters the pretrained VaDE codes best (K-means, a full GMM, UMAP then a GMM, spectral embedding).

    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/probes/probe_manifold.py digits16-2k

Prints one JSON line of NMIs (seed 0, one thread). The last entry ("vade") is VaDE from the K-means start with
sigma^2 = mse, the defaults of commit 9a5df72 under which the rows in reports/suite/evidence were made.
"""
import json
import sys
import time
import warnings

import numpy as np
import torch
import umap
from sklearn.cluster import KMeans
from sklearn.manifold import SpectralEmbedding
from sklearn.mixture import GaussianMixture

from mixclust import metrics
from mixclust.studies.suite import SETS
from mixclust.vade import VaDE

torch.set_num_threads(1)
warnings.filterwarnings("ignore")


def main(name: str) -> dict:
    suite_set = SETS[name]
    X, y = suite_set.loader(data_dir=None)
    X, K = X.reshape(len(X), -1), suite_set.k

    def nmi(labels):
        return round(metrics.external_metrics(y, labels)["nmi"], 3)

    def gmm_labels(Z):
        return GaussianMixture(K, covariance_type="full", reg_covar=1e-4, random_state=0).fit(Z).predict(Z)

    def umap_embedding(Z, neighbours):
        return umap.UMAP(n_components=min(K, 10), n_neighbors=neighbours, min_dist=0.0,
                         random_state=0).fit_transform(Z)

    out = {"set": name, "kmeans_pix": nmi(KMeans(K, n_init=10, random_state=0).fit_predict(X))}
    started = time.time()
    base = VaDE(K, random_state=0).pretrain(X)
    out["pretrain_s"] = round(time.time() - started)
    codes = base.transform(X).astype(np.float64)
    out["km_codes"] = nmi(KMeans(K, n_init=10, random_state=0).fit_predict(codes))
    out["gmm_codes"] = nmi(gmm_labels(codes))
    started = time.time()
    for neighbours in (10, 20):
        out[f"umap{neighbours}_gmm_codes"] = nmi(gmm_labels(umap_embedding(codes, neighbours)))
    out["umap_s"] = round(time.time() - started)
    started = time.time()
    spectral = SpectralEmbedding(K, affinity="nearest_neighbors", n_neighbors=10, random_state=0).fit_transform(codes)
    out["spectral_km"] = nmi(KMeans(K, n_init=10, random_state=0).fit_predict(spectral))
    out["spectral_s"] = round(time.time() - started)
    out["umap20_gmm_pix"] = nmi(gmm_labels(umap_embedding(X, 20)))
    started = time.time()
    mse = base.decoder_variance_ * 2 * base.latent_dim / X.shape[1]  # "auto" is D * mse / (2 d) now
    model = VaDE(K, random_state=0, init="kmeans", decoder_variance=mse).fit(X, pretrained=base)
    out["vade"], out["vade_s"] = nmi(model.predict(X)), round(time.time() - started)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
