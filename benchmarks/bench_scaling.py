"""How EM and deep training time and memory grow with the work, on one process vs two (issue 9).

Writes ``reports/scaling/README.md`` (tables, the command, the machine's load) and PNG plots::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scaling.py --out reports/scaling
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scaling.py --quick   # n <= 1e4, seconds

Every measurement runs in fresh processes, so peak memory is per run:

* ``1 proc x 1 thread``: ``python bench_scaling.py worker ...`` with ``OMP_NUM_THREADS=1``;
* ``1 proc x 2 threads``: the same with two torch threads (what one process does on this machine);
* ``2 procs x 1 thread``: ``torchrun --standalone --nproc_per_node 2 bench_scaling.py worker ...``:
  the distributed GaussianMixture / DDP trainer of ``mixclust.distributed``.

GMM: full covariance, EM from given initial parameters (so the time is EM's, not k-means'), a fixed
number of iterations (``tol=0``), float64; seconds per iteration. Deep: AutoEncoder (MLP) seconds per
epoch (the second of two). Memory: peak resident set size of rank 0 minus its size before the fit (the data excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve()
TORCHRUN = Path(sys.executable).parent / "torchrun"
MODES = {"1 proc x 1 thread": (1, 1), "1 proc x 2 threads": (1, 2), "2 procs x 1 thread": (2, 1)}


# ------------------------------------------------------------------------------------------------
# Worker: one measurement, in its own process(es)
# ------------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _blobs(n: int, d: int, k: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    return (centres[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))).astype(np.float64)


def _gmm(n: int, d: int, k: int, iters: int) -> dict:
    import numpy as np

    from mixclust import GaussianMixture

    X = _blobs(n, d, k)
    init = {"weights_init": np.full(k, 1.0 / k), "means_init": X[:k].copy(),
            "precisions_init": np.stack([np.eye(d)] * k)}
    before = _rss_mb()
    model = GaussianMixture(k, max_iter=iters, tol=0.0, device="cpu", **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "per_unit": seconds / iters, "mem_mb": _rss_mb() - before,
            "loglik": model.lower_bound_}


def _deep(n: int, d: int, epochs: int) -> dict:
    import numpy as np

    from mixclust import AutoEncoder

    X = np.random.default_rng(0).random((n, d), dtype=np.float32)
    before = _rss_mb()
    model = AutoEncoder(arch="mlp", hidden=(256, 64), latent_dim=10, epochs=epochs, batch_size=256,
                        random_state=0, device="cpu")
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    # The last epoch's time: the first one also pays torch's one-off start-up costs.
    return {"seconds": seconds, "per_unit": model.history_[-1]["seconds"], "mem_mb": _rss_mb() - before,
            "loss": model.history_[-1]["loss"]}


def worker(args) -> None:
    import torch

    from mixclust import distributed

    torch.set_num_threads(args.threads)
    distributed.init_from_env("cpu")
    result = _gmm(args.n, args.d, args.k, args.iters) if args.kind == "gmm" else _deep(args.n, args.d, args.iters)
    if distributed.is_main_process():
        print("RESULT " + json.dumps(result), flush=True)
    distributed.shutdown()


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------
def measure(kind: str, mode: str, n: int, d: int, k: int, iters: int) -> dict:
    procs, threads = MODES[mode]
    # Option names that no torchrun option starts with (torchrun's parser accepts prefixes).
    command = [str(HERE), "worker", "--kind", kind, "--rows", str(n), "--dim", str(d), "--components", str(k),
               "--iterations", str(iters), "--threads", str(threads)]
    if procs == 1:
        command = [sys.executable] + command
    else:
        command = [str(TORCHRUN), "--standalone", "--nproc_per_node", str(procs)] + command
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr[-2000:]}")
    row = {"kind": kind, "mode": mode, "n": n, "d": d, "k": k, "iters": iters, **json.loads(lines[0][7:])}
    print(f"{kind:4} {mode:20} n={n:>8} d={d:>3} K={k:>3}: {row['per_unit']:.4f} s/unit, "
          f"{row['mem_mb']:.0f} MB", flush=True)
    return row


def grid(quick: bool, max_n: int) -> list[tuple]:
    """(kind, n, d, K, iterations): n sweeps at fixed d, K, then d and K sweeps at fixed n."""
    ns = [1_000, 10_000] if quick else [n for n in (1_000, 10_000, 100_000, 300_000, 1_000_000) if n <= max_n]
    mid = 10_000 if quick else 100_000
    cases = [("gmm", n, 16, 8, 10) for n in ns]
    cases += [("gmm", mid, d, 8, 10) for d in (4, 32)]
    cases += [("gmm", mid, 16, k, 10) for k in (2, 32)]
    deep_ns = [1_000, 4_000] if quick else [n for n in (1_000, 10_000, 70_000) if n <= max_n]
    cases += [("deep", n, 784, 0, 2) for n in deep_ns]
    return cases


def _per_row_cost(rows: list[dict], mode: str):
    """(a, b) of t(n) = a + b n per EM iteration, fitted on the GMM n sweep (d = 16, K = 8) of ``mode``."""
    import numpy as np

    pts = sorted((r["n"], r["per_unit"]) for r in rows if r["kind"] == "gmm" and r["mode"] == mode
                 and r["d"] == 16 and r["k"] == 8)
    if len(pts) < 2:
        return None
    n, t = np.array(pts[-3:], dtype=float).T
    b, a = np.polyfit(n, t, 1)
    return max(a, 0.0), b


def extrapolate(rows: list[dict], n_target: float = 1e8, iterations: int = 100, cores: int = 32,
                latency: float = 1e-3) -> str:
    """Estimated EM time for ``n_target`` rows on N machines of ``cores`` cores (one process per core)."""
    lines = ["| mode measured | a (fixed, per iteration) | b (per row and iteration) |", "|---|---|---|"]
    for mode in MODES:
        fit = _per_row_cost(rows, mode)
        if fit is not None:
            lines.append(f"| {mode} | {fit[0] * 1e3:.1f} ms | {fit[1] * 1e9:.0f} ns |")
    fit = _per_row_cost(rows, "1 proc x 1 thread")
    if fit is None:
        return "\n".join(lines)
    a, b = fit
    lines += ["", f"Estimate (from the `1 proc x 1 thread` fit: one core's throughput) for {n_target:.0e} rows, "
              f"d = 16, K = 8, {iterations} iterations, machines of {cores} cores with one process per core, "
              f"{latency * 1e3:.0f} ms per all-reduce:", "",
              "| machines N | processes | rows per process | seconds per iteration | minutes for "
              f"{iterations} iterations |", "|---|---|---|---|---|"]
    for machines in (1, 4, 16, 64):
        procs = machines * cores
        per_iteration = a + b * n_target / procs + latency
        lines.append(f"| {machines} | {procs} | {n_target / procs:,.0f} | {per_iteration:.2f} | "
                     f"{per_iteration * iterations / 60:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for kind, xkey, label in (("gmm", "n", "EM, full covariance, d=16, K=8"),
                              ("deep", "n", "AutoEncoder, 784-256-64-10")):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for mode in MODES:
            pts = sorted((r[xkey], r["per_unit"], r["mem_mb"]) for r in rows if r["kind"] == kind
                         and r["mode"] == mode and (kind == "deep" or (r["d"] == 16 and r["k"] == 8)))
            if not pts:
                continue
            x, t, m = zip(*pts)
            axes[0].loglog(x, t, "o-", label=mode)
            axes[1].loglog(x, [max(v, 1.0) for v in m], "o-", label=mode)
        axes[0].set(xlabel="n", ylabel="seconds per " + ("EM iteration" if kind == "gmm" else "epoch"), title=label)
        axes[1].set(xlabel="n", ylabel="peak RSS growth of rank 0 (MB)", title="memory")
        axes[0].legend()
        fig.tight_layout()
        name = f"{kind}_scaling.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def table(rows: list[dict], kind: str) -> str:
    unit = "s / iteration" if kind == "gmm" else "s / epoch"
    lines = [f"| n | d | K | mode | {unit} | speed-up vs 1x1 | peak RSS growth (MB) |", "|---|---|---|---|---|---|---|"]
    base = {(r["n"], r["d"], r["k"]): r["per_unit"] for r in rows if r["mode"] == "1 proc x 1 thread"
            and r["kind"] == kind}
    for r in rows:
        if r["kind"] == kind:
            ref = base.get((r["n"], r["d"], r["k"]))
            speed = f"{ref / r['per_unit']:.2f}" if ref else ""
            lines.append(f"| {r['n']:,} | {r['d']} | {r['k'] or ''} | {r['mode']} | {r['per_unit']:.4f} | {speed} | "
                         f"{r['mem_mb']:.0f} |")
    return "\n".join(lines)


def _load_remark(load_before: str) -> str:
    if float(load_before.split(",")[0]) < 1.0:
        return "No other job ran on the machine during the measurements."
    return ("**The machine was shared with other long CPU jobs during these measurements**, so absolute times are "
            "pessimistic and noisy; ratios between modes measured back to back are more telling.")


def _reading(rows: list[dict]) -> str:
    """Speed-ups at the largest n of each kind, from the rows."""
    parts, two = [], {}
    for kind, name in (("gmm", "EM"), ("deep", "Deep training")):
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        n = max(r["n"] for r in sel)
        at = {r["mode"]: r for r in sel if r["n"] == n and r["d"] == sel[0]["d"] and r["k"] == sel[0]["k"]}
        base = at.get("1 proc x 1 thread")
        if base is None:
            continue
        ratios = ", ".join(f"{mode} {base['per_unit'] / r['per_unit']:.2f}x" for mode, r in at.items()
                           if mode != "1 proc x 1 thread")
        parts.append(f"{name} at n = {n:,}: speed-up over one process with one thread: {ratios}.")
        if "2 procs x 1 thread" in at:
            two[kind] = base["per_unit"] / at["2 procs x 1 thread"]["per_unit"]
    if two.get("gmm", 0) > 1 and two.get("deep", 2) < 1:
        parts.append("Distributed EM gains from the second process; for the small MLP autoencoder the gloo "
                     "all-reduce of the gradients on every batch costs more than the second core saves, so "
                     "data-parallel deep training pays off across machines or GPUs, not across the cores of one "
                     "CPU, where torch's own threads are faster.")
    return "**Reading.** " + " ".join(parts)


def write_report(rows: list[dict], out: Path, argv: list[str], load_before: str, seconds: float) -> Path:
    figures = plot(rows, out)
    total = f" (total {seconds:.0f} s)" if seconds else ""
    saved = {"rows": rows, "load": load_before, "seconds": seconds}
    (out / "results.json").write_text(json.dumps(saved, indent=1) + "\n")
    readme = f"""# Scaling: time and memory vs the work, one process vs two

Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scaling.py {' '.join(argv)}`{total}.
Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.
Load average before the run: {load_before}. {_load_remark(load_before)}

{_reading(rows)}

Modes: `1 proc x 1 thread`; `1 proc x 2 threads` (torch's own intra-op parallelism); `2 procs x 1 thread`
(`torchrun --standalone --nproc_per_node 2`, mixclust's distributed EM / DDP over gloo).

## EM (GaussianMixture, full covariance, float64, from given initial parameters, 10 iterations)

{table(rows, "gmm")}

## Deep training (AutoEncoder MLP 784-256-64-10, global batch 256, time of the 2nd of 2 epochs)

{table(rows, "deep")}

{"".join(f"![{f}]({f})" + chr(10) for f in figures)}
## Estimate for 1e8 points (an extrapolation, not a measurement)

Time per EM iteration fitted as t(n) = a + b n on the three largest sizes of the n sweep (d = 16, K = 8):

{extrapolate(rows)}

Why this form: EM's work per iteration is O(n K d^2) and splits evenly over the ranks, and the only
communication is one all-reduce of K (d(d+1)/2 + d + 1) + 1 float64 numbers per iteration (1.2 KB here,
36 KB for d = 32, K = 16), independent of n. The estimate assumes one process per core sustains this
machine's single-core throughput (memory bandwidth per core comparable), the data are already on each
machine's local disk or memory (each rank reads only its shard, e.g. a memory-mapped .npy), and an
all-reduce costs about 1 ms on a LAN. It scales b with d^2 K for other shapes. It excludes the
initialisation (k-means on rank 0: for 1e8 rows give initial parameters fitted on a subsample, see
docs/distributed.md) and process start-up (a few seconds).

Memory: each rank keeps the feature cache of its own rows only (at most 1 GB, `FEATURE_CACHE_BYTES`),
so memory per process falls as 1/W (the tables' RSS growth of rank 0 with 2 processes is about half
of one process's). "Peak RSS growth" is the peak resident size after the fit minus the peak reached
while generating the data (a run where creating the data peaked higher than the fit shows 0).
"""
    path = out / "README.md"
    path.write_text(readme)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker")
    w.add_argument("--kind", choices=["gmm", "deep"], required=True)
    for name, dest in (("rows", "n"), ("dim", "d"), ("components", "k"), ("iterations", "iters"),
                       ("threads", "threads")):
        w.add_argument(f"--{name}", dest=dest, type=int, required=True)
    parser.add_argument("--out", default="reports/scaling")
    parser.add_argument("--quick", action="store_true", help="n <= 1e4 only (seconds)")
    parser.add_argument("--max-n", type=int, default=1_000_000, help="largest n measured (default 1e6)")
    parser.add_argument("--render", metavar="COMMAND", default=None,
                        help="only rewrite README.md and the plots from OUT/results.json (COMMAND: the "
                             "arguments of the run that measured them, quoted)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker(args)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render is not None:
        saved = json.loads((out / "results.json").read_text())
        readme = write_report(saved["rows"], out, args.render.split(), saved["load"], saved["seconds"])
        print(f"report written to {readme}")
        return 0
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    start = time.perf_counter()
    rows = [measure(kind, mode, n, d, k, iters) for kind, n, d, k, iters in grid(args.quick, args.max_n)
            for mode in MODES]
    readme = write_report(rows, out, sys.argv[1:] if argv is None else argv, load_before, time.perf_counter() - start)
    print(f"report written to {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
