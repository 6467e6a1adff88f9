"""Label-free temperature probe (issue 18): does a covariance temperature T of the aekm code mixture, chosen by the
held-out log-likelihood of half the codes (Gaussians from the other half), lower the expected calibration error?

Prints ECE, mean confidence and ACC at T = 1, the chosen T and a grid (seed 0, one thread).

Usage: MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_temperature.py SUITE_SET
"""

import sys
import warnings

import numpy as np
import torch
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal

from mixclust import AEClustering, metrics
from mixclust._deep import weighted_gaussians
from mixclust.studies.suite import SETS

GRID = np.exp(np.linspace(np.log(0.5), np.log(30), 25))


def log_joint(Z, weights, means, covariances, T):
    """log pi_k + log N(z | mu_k, T Sigma_k), (n, K)."""
    return np.stack([np.log(weights[k]) + multivariate_normal(means[k], T * covariances[k],
                                                              allow_singular=True).logpdf(Z)
                     for k in range(len(weights))], axis=1)


def main(name: str) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    X, y = SETS[name].loader(data_dir=None)
    X = X.reshape(len(X), -1)
    model = AEClustering(len(np.unique(y)), random_state=0).fit(X)
    Z = model.transform(X).astype(np.float64)
    gmm = model.gmm_
    order = np.random.default_rng(0).permutation(len(Z))
    half_a, half_b = order[:len(Z) // 2], order[len(Z) // 2:]
    counts, means, covariances = weighted_gaussians(Z[half_a], gmm.predict_proba(Z)[half_a], 1e-6)
    held_out = [logsumexp(log_joint(Z[half_b], counts / counts.sum(), means, covariances, T), axis=1).mean()
                for T in GRID]
    chosen = float(GRID[int(np.argmax(held_out))])
    for T in (1.0, chosen, 2.0, 5.0, 10.0, 30.0):
        proba = softmax(log_joint(Z, gmm.weights_, gmm.means_, gmm.covariances_, T), axis=1)
        acc = metrics.external_metrics(y, proba.argmax(1))["acc"]
        print(f"T {T:6.2f} ECE {metrics.expected_calibration_error(y, proba):.3f} "
              f"conf {proba.max(1).mean():.3f} acc {acc:.3f}")
    print("held-out best T", chosen)


if __name__ == "__main__":
    main(sys.argv[1])
