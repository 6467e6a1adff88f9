"""mixclust.GaussianMixture vs scikit-learn's: same data, same initial parameters, same iterations.

make_blobs 100,000 x 32, 16 components, 100 EM iterations with tol=0, for full and
diag covariances. Prints seconds per iteration of each, the speed-up ratio and the
difference of the final mean log-likelihoods. Run it with the peer at its best::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gmm.py

(``make bench`` does exactly that). Options: --n, --d, --k, --iters, --types, --dtypes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from mixclust import GaussianMixture


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(f"{i.get('internal_api')} {i.get('architecture', '')} threads={i.get('num_threads')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:  # pragma: no cover
        return "threadpoolctl not installed"


def initial_parameters(X, k, covariance_type, seed):
    """Initial weights/means/precisions from one k-means run, shared by both libraries."""
    init = SkGaussianMixture(k, covariance_type=covariance_type, max_iter=1, tol=0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X)
    return {"weights_init": init.weights_, "means_init": init.means_, "precisions_init": init.precisions_}


def timed_fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--types", default="full,diag")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    X, _ = make_blobs(args.n, args.d, centers=args.k, random_state=args.seed)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__} "
          f"threads={torch.get_num_threads()}, numpy BLAS: {blas_info()}")
    print(f"# OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    print(f"# make_blobs n={args.n} d={args.d} K={args.k}, {args.iters} iterations, tol=0, same init")
    print(f"{'cov':<6} {'dtype':<8} {'sklearn s/it':>12} {'mixclust s/it':>13} {'speed-up':>9} "
          f"{'|dLL| rel':>10}")
    rows = []
    for cov in args.types.split(","):
        init = initial_parameters(X, args.k, cov, args.seed)
        sk = SkGaussianMixture(args.k, covariance_type=cov, max_iter=args.iters, tol=0, **init)
        sk_time = timed_fit(sk, X)
        sk_ll = sk.score(X)
        for dtype in args.dtypes.split(","):
            mc = GaussianMixture(args.k, covariance_type=cov, max_iter=args.iters, tol=0, device="cpu",
                                 dtype=dtype, **init)
            timed_fit(GaussianMixture(args.k, covariance_type=cov, max_iter=2, tol=0, device="cpu",
                                      dtype=dtype, **init), X[:5000])  # warm-up
            mc_time = timed_fit(mc, X)
            rel = abs(mc.lower_bound_ - sk_ll) / abs(sk_ll)
            row = {"covariance_type": cov, "dtype": dtype, "sklearn_s_per_iter": sk_time / args.iters,
                   "mixclust_s_per_iter": mc_time / args.iters, "speedup": sk_time / mc_time,
                   "loglik_rel_diff": rel, "sklearn_loglik": sk_ll, "mixclust_loglik": mc.lower_bound_}
            rows.append(row)
            print(f"{cov:<6} {dtype:<8} {row['sklearn_s_per_iter']:>12.4f} {row['mixclust_s_per_iter']:>13.4f} "
                  f"{row['speedup']:>8.2f}x {rel:>10.1e}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "blas": blas_info(), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
