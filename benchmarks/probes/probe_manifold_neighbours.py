"""Probe: UMAP's neighbourhood in ``_deep.manifold_partition``, and choosing it by stability (no labels).

    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/probes/probe_manifold_neighbours.py rotated20 [CACHE_DIR]

Fits VaDE with the defaults it had before ``n_neighbors="auto"`` (UMAP with 20 neighbours everywhere; seed 0,
one thread) once per suite set and caches its latent means in CACHE_DIR (default /tmp/mixclust_probe_codes).
Then, for each neighbourhood k of ``MANIFOLD_NEIGHBOR_CANDIDATES``, partitions the codes with the seeds 0, 1, 2
(``_deep.neighbourhood_runs``) and prints one JSON line: each k's NMI per seed (the labels only score) and its
stability (mean pairwise ARI of the three partitions, what ``n_neighbors="auto"`` maximises), the k that auto
picks from these runs (``_deep.choose_neighbourhood``, the rule of ``manifold_partition(codes, K, 0)``) and the
NMI of the partition it returns.
"""
import json
import os
import sys
import warnings

import numpy as np
import torch

from mixclust import _deep, metrics
from mixclust.studies.suite import SETS
from mixclust.vade import VaDE

torch.set_num_threads(1)
warnings.filterwarnings("ignore")


def former_vade_codes(name: str, cache: str):
    """VaDE's latent means with the former partition (20 neighbours at any n), cached."""
    path = os.path.join(cache, f"{name}.npz")
    if not os.path.exists(path):
        X, y = SETS[name].loader(data_dir=None)
        X = X.reshape(len(X), -1)
        select_max, _deep.MANIFOLD_SELECT_MAX_SAMPLES = _deep.MANIFOLD_SELECT_MAX_SAMPLES, 0
        try:
            model = VaDE(SETS[name].k, random_state=0).fit(X)
        finally:
            _deep.MANIFOLD_SELECT_MAX_SAMPLES = select_max
        nmi = metrics.external_metrics(y, model.predict(X))["nmi"]
        os.makedirs(cache, exist_ok=True)
        np.savez(path, codes=model.transform(X), y=y, nmi=nmi)
    saved = np.load(path)
    return saved["codes"], saved["y"], float(saved["nmi"])


def main(name: str, cache: str) -> dict:
    K = SETS[name].k
    codes, y, fitted_nmi = former_vade_codes(name, cache)

    def nmi(resp):
        return round(metrics.external_metrics(y, resp.argmax(1))["nmi"], 3)

    out = {"set": name, "n": len(codes), "K": K, "former_vade_nmi": round(fitted_nmi, 3)}
    # seed 0: the runs of seeds 0, 1, 2 for each k, those manifold_partition(codes, K, 0) chooses among
    candidates = {k: _deep.neighbourhood_runs(codes, K, k, 0) for k in _deep.MANIFOLD_NEIGHBOR_CANDIDATES}
    for k, (runs, ari) in candidates.items():
        out[f"k{k}"] = {"nmi": [nmi(r) for r in runs], "stability": round(_deep.neighbourhood_stability(ari), 3)}
    out["auto_picks"], chosen = _deep.choose_neighbourhood(candidates, K)
    out["auto_nmi"] = nmi(chosen)
    return out


if __name__ == "__main__":
    cache = sys.argv[2] if len(sys.argv) > 2 else "/tmp/mixclust_probe_codes"
    print(json.dumps(main(sys.argv[1], cache)), flush=True)
