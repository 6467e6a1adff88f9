"""MoA experts run as a Python loop vs vectorised (stacked weights + torch.func vmap): seconds per epoch.

One training epoch of ``mixclust.MoA`` (SPEC §1 CAE experts and router, the default competitive loss, batch 256,
``init="random"`` so only the training epoch is timed) on MNIST images, M = 2 and M = 10, for each
expert path, in the same run, so the ratio vmap / loop is measured under the same conditions.
On CUDA (when available) the same is measured on the GPU.

    .venv/bin/python benchmarks/bench_moa.py [--threads 2] [--n 10000] [--out reports/benchmarks/moa.txt]

Run it on an otherwise idle machine: another process on the same cores slows each path by a different
amount. Needs MNIST (MIXCLUST_DATA or --data-dir); falls back to random data of the same shape.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
import torch

from mixclust import EmptyClusterWarning, datasets
from mixclust.moa import MoA, SingularGramWarning


def epoch_seconds(X, M: int, path: str, device: str, epochs: int) -> float:
    model = MoA(M, init="random", experts_path=path, epochs=epochs, device=device, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularGramWarning)
        warnings.simplefilter("ignore", EmptyClusterWarning)  # one random-start epoch: a speed test only
        start = time.perf_counter()
        model.fit(X)
    return (time.perf_counter() - start) / epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="also write the table here (and a .json beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        X, _ = datasets.load("mnist", split="all", data_dir=args.data_dir)
        X, source = X[: args.n], "MNIST"
    except (ValueError, FileNotFoundError):
        X, source = np.random.default_rng(0).random((args.n, 1, 28, 28), dtype=np.float32), "random data"
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lines = [f"# {source}: {X.shape}, batch 256, {args.threads} threads, torch {torch.__version__}, "
             f"load average at start {os.getloadavg()[0]:.2f}",
             f"{'device':<6} {'M':>3} {'loop s/epoch':>13} {'vmap s/epoch':>13} {'vmap / loop':>12}"]
    print("\n".join(lines), flush=True)
    rows = []
    for device in devices:
        for M in (2, 10):
            for path in ("loop", "vmap"):  # warm-up: first-call allocations and dispatch caches
                epoch_seconds(X[:512], M, path, device, 1)
            loop = epoch_seconds(X, M, "loop", device, args.epochs)
            vmap = epoch_seconds(X, M, "vmap", device, args.epochs)
            rows.append({"device": device, "M": M, "loop": loop, "vmap": vmap, "ratio": vmap / loop})
            lines.append(f"{device:<6} {M:>3} {loop:>13.2f} {vmap:>13.2f} {vmap / loop:>12.2f}")
            print(lines[-1], flush=True)
    if not torch.cuda.is_available():
        lines.append("# no GPU on this machine: the vectorised path's speed on CUDA is not measured here")
    lines.append(f"# load average at end {os.getloadavg()[0]:.2f}")
    print(lines[-1])
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
            json.dump({"n": len(X), "threads": args.threads, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
