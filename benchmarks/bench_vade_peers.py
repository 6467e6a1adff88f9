"""mixclust's VaDE against the peer library ClustPy (VaDE and DEC) on MNIST, under one CPU budget.

What it measures: each method is fitted on the 60,000 MNIST training images (flattened to 784
features, values in [0, 1]) and then labels the 10,000 test images through its own documented
``predict``; the table gives the seconds (fit, predict on the test set, both; and CPU seconds per
wall second as a check that every method ran on the same number of threads), the test-set NMI, ACC
(Hungarian) and ARI from ``mixclust.metrics.evaluate``, and the ratio of each number to mixclust's
VaDE measured in the same run (seconds: lower is better for the peer; scores: below 1 the peer
clusters worse). Every method gets the same budget: the same torch/BLAS/OpenMP threads (--threads),
the same autoencoder pretraining epochs (--pretrain-epochs) and clustering epochs (--epochs), batch
256, the CPU as device, and the same seed. Everything else is each library's own default, notably
the network (both VaDEs and DEC use the same 784-500-500-2000-10 MLP), the losses (mixclust: MSE;
ClustPy VaDE: BCE; DEC: MSE pretraining) and the learning rates (ClustPy: 1e-3 pretraining, 1e-4
clustering; mixclust: 1e-3 for both).

How each method labels the test set (reported in the table's notes and the JSON):

* mixclust-vade: ``VaDE.predict``, the argmax of the VaDE posterior.
* clustpy-vade: ``clustpy.deep.VaDE.predict``, which is *not* the VaDE posterior: ClustPy refits a
  full-covariance GMM on the final training embedding (initialised at the VaDE means) and predicts
  with it. ClustPy does not keep the VaDE mixture weights, so the VaDE posterior cannot be computed
  for new data; the training set's VaDE-posterior labels (``vade_labels_``) are scored in the JSON.
* clustpy-dec: ``clustpy.deep.DEC.predict``, the nearest centre of a KMeans refitted on the final
  training embedding. The JSON also has DEC's own assignment on the test set
  (``predict(X, cluster_centers=dec_cluster_centers_)``: the nearest DEC centre, which is the argmax
  of DEC's Student-t soft assignment).

The JSON also holds the training-set scores of each fitted ``labels_``. Before the timed runs each
method runs once, untimed, on 512 images for one epoch of each stage, so that one-time costs (lazy
imports, first calls into torch and BLAS) are not charged to whichever method happens to run first
(``--no-warmup`` skips this). ClustPy's prints and progress bars go to stderr; stdout has the table.

Command (the full benchmark; extrapolated from the 2,000-image check, some 20-30 s per epoch per
method on one thread of a 2-core x86-64 machine, so a few minutes per method at the defaults)::

    OMP_NUM_THREADS=1 MIXCLUST_DATA=/path/to/data .venv/bin/python benchmarks/bench_vade_peers.py \\
        --threads 1 --pretrain-epochs 5 --epochs 5 --out reports/benchmarks/vade_peers.md

A quick check on a subset: ``--n-train 2000 --pretrain-epochs 1 --epochs 1`` (a minute or two).
``--out FILE`` writes a markdown table to FILE and the full results as JSON beside it
(FILE with the suffix ``.json``).

Installing the peer (a benchmark-only dependency; it is not a dependency of mixclust and is not in
pyproject.toml)::

    .venv/bin/pip install --no-deps clustpy==0.0.3   # builds a small C extension from the sdist
    .venv/bin/pip install pandas                      # imported by clustpy.utils, on clustpy.deep's import path

ClustPy's other runtime requirements (numpy, scipy>=1.17, scikit-learn>=1.6, matplotlib, tqdm, torch)
are already mixclust's or its dev environment's. Its last one, torchvision, is deliberately *not*
installed: the registry's wheels pull a CUDA torch that replaces the pinned CPU torch. ClustPy's
estimators never call torchvision (only its data loaders, augmentation helpers and conv/ResNet
autoencoders do), so when ``import torchvision`` fails this script puts a stand-in module into
``sys.modules`` before importing clustpy (see :func:`install_torchvision_stub`); any real use of the
stand-in raises an error naming it.

Not run in CI (it needs MNIST, ClustPy and minutes to hours of CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mixclust import VaDE, datasets, metrics

METHODS = ("mixclust-vade", "clustpy-vade", "clustpy-dec")
BATCH_SIZE = 256
N_CLUSTERS = 10
SCORES = ("nmi", "acc", "ari")


# --------------------------------------------------------------------------------------------------
# The peer and its torchvision stand-in
# --------------------------------------------------------------------------------------------------

def install_torchvision_stub() -> bool:
    """Put a minimal ``torchvision`` into ``sys.modules`` if the real one cannot be imported.

    ClustPy 0.0.3 imports ``torchvision`` in ``clustpy.deep._data_utils`` (used only inside
    augmentation helpers) and ``torchvision.models._api.Weights`` / ``WeightsEnum`` in its
    conv/ResNet autoencoders (type annotations only). Returns True when the stand-in was installed.
    """
    try:
        import torchvision  # noqa: F401
        return False
    except ImportError:
        pass

    def stub(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so that submodule imports resolve through sys.modules
        module.__file__ = f"<{name} stand-in from {Path(__file__).name}>"

        def missing(attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            raise AttributeError(f"{name}.{attr}: torchvision is not installed; this is the stand-in that "
                                 f"{Path(__file__).name} provides for importing clustpy")

        module.__getattr__ = missing
        sys.modules[name] = module
        return module

    root = stub("torchvision")
    root.__version__ = "0.0.0+stub"
    for child in ("transforms", "datasets", "models"):
        setattr(root, child, stub(f"torchvision.{child}"))
    api = stub("torchvision.models._api")
    root.models._api = api

    class Weights:  # annotation target only
        pass

    class WeightsEnum:  # annotation target only
        pass

    api.Weights, api.WeightsEnum = Weights, WeightsEnum
    return True


def import_clustpy():
    """Import ``clustpy.deep``, after the torchvision stand-in if needed."""
    stubbed = install_torchvision_stub()
    try:
        import clustpy
        import clustpy.deep
    except ImportError as exc:
        raise ImportError(f"clustpy is not importable ({exc}); install it as the module docstring says: "
                          "pip install --no-deps clustpy==0.0.3 && pip install pandas") from exc
    return clustpy, stubbed


# --------------------------------------------------------------------------------------------------
# The methods: each returns fitted-model facts, test labels and extra label sets to score
# --------------------------------------------------------------------------------------------------

def run_mixclust_vade(args, Xtr, Xte):
    model = VaDE(N_CLUSTERS, pretrain_epochs=args.pretrain_epochs, epochs=args.epochs, batch_size=BATCH_SIZE,
                 covariance_type=args.covariance_type, random_state=args.seed, verbose=0, device="cpu")
    fit = timed(model.fit, Xtr)
    pred = timed(model.predict, Xte)
    return {
        "fit": fit, "predict": pred, "test_labels": pred["result"],
        "test_how": "VaDE.predict: argmax of the VaDE posterior",
        "extra_test": {},
        "train": {"labels_ (VaDE posterior)": model.labels_},
    }


def run_clustpy_vade(args, Xtr, Xte):
    clustpy, _ = import_clustpy()
    model = clustpy.deep.VaDE(N_CLUSTERS, batch_size=BATCH_SIZE, pretrain_epochs=args.pretrain_epochs,
                              clustering_epochs=args.epochs, embedding_size=10, device="cpu",
                              random_state=args.seed)
    fit = timed(model.fit, Xtr)
    pred = timed(model.predict, Xte)
    return {
        "fit": fit, "predict": pred, "test_labels": pred["result"],
        "test_how": "VaDE.predict: GMM refitted on the final train embedding (not the VaDE posterior, "
                    "whose mixture weights ClustPy does not keep)",
        "extra_test": {},
        "train": {"labels_ (GMM refit)": model.labels_, "vade_labels_ (VaDE posterior)": model.vade_labels_},
    }


def run_clustpy_dec(args, Xtr, Xte):
    clustpy, _ = import_clustpy()
    model = clustpy.deep.DEC(N_CLUSTERS, batch_size=BATCH_SIZE, pretrain_epochs=args.pretrain_epochs,
                             clustering_epochs=args.epochs, embedding_size=10, device="cpu",
                             random_state=args.seed)
    fit = timed(model.fit, Xtr)
    pred = timed(model.predict, Xte)
    native = model.predict(Xte, cluster_centers=model.dec_cluster_centers_)
    return {
        "fit": fit, "predict": pred, "test_labels": pred["result"],
        "test_how": "DEC.predict: nearest centre of a KMeans refitted on the final train embedding",
        "extra_test": {"DEC centres (Student-t argmax)": native},
        "train": {"labels_ (KMeans refit)": model.labels_, "dec_labels_ (DEC assignment)": model.dec_labels_},
    }


RUNNERS = {"mixclust-vade": run_mixclust_vade, "clustpy-vade": run_clustpy_vade, "clustpy-dec": run_clustpy_dec}


def warm_up(args, methods, Xtr, Xte, n=512):
    """Run each method once, untimed, on n images for one epoch of each stage.

    The first method to run in a process otherwise pays one-time costs (lazy imports, torch's and
    the BLAS' first calls: about 1.5 s here), which on a small --n-train distort the seconds.
    """
    small = argparse.Namespace(**{**vars(args), "pretrain_epochs": 1, "epochs": 1})
    for method in methods:
        torch.set_num_threads(args.threads)
        try:
            with contextlib.redirect_stdout(sys.stderr), contextlib.redirect_stderr(io.StringIO()):
                RUNNERS[method](small, Xtr[:n], Xte[:n])
        except Exception:  # reported by the timed run
            pass


def timed(fn, *a):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*a)
    return {"result": result, "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}


def scores(y, labels) -> dict:
    r = metrics.evaluate(y, np.asarray(labels))
    return {k: r[k] for k in SCORES} | {"n_clusters_found": r["n_clusters_found"]}


# --------------------------------------------------------------------------------------------------
# Data, table, output
# --------------------------------------------------------------------------------------------------

def load_mnist(args):
    Xtr, ytr = datasets.load("mnist", split="train", data_dir=args.data_dir)
    Xte, yte = datasets.load("mnist", split="test", data_dir=args.data_dir)
    if args.n_train is not None and args.n_train < len(Xtr):
        keep = np.sort(np.random.default_rng(args.seed).choice(len(Xtr), args.n_train, replace=False))
        Xtr, ytr = Xtr[keep], ytr[keep]
    flat = lambda X: np.ascontiguousarray(X.reshape(len(X), -1), dtype=np.float32)  # noqa: E731
    return flat(Xtr), ytr, flat(Xte), yte


def ratio(value, reference):
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def table_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    ref = next((r for r in results if r["method"] == "mixclust-vade" and "error" not in r), None)
    header = ["method", "fit s", "predict s", "total s", "cpu/wall", "x time", "NMI", "ACC", "ARI",
              "x NMI", "x ACC", "x ARI"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["method"]] + ["-"] * (len(header) - 2) + [f"not run: {r['error']}"])
            continue
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        t = r["test"]
        rows.append([
            r["method"], fmt(r["fit_seconds"], ".1f"), fmt(r["predict_seconds"], ".2f"),
            fmt(r["total_seconds"], ".1f"), fmt(r["cpu_per_wall"], ".2f"),
            fmt(ratio(r["total_seconds"], ref and ref["total_seconds"]), ".2f"),
            *(fmt(t[k], ".3f") for k in SCORES),
            *(fmt(ratio(t[k], ref and ref["test"][k]), ".2f") for k in SCORES),
        ])
    return header, rows


def format_text(header, rows) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def format_markdown(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(out)


def notes(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        if "error" in r:
            continue
        lines.append(f"{r['method']}: test labels from {r['test_how']}")
        for name, s in r["extra_test"].items():
            lines.append(f"{r['method']}: test, {name}: NMI {s['nmi']:.3f} ACC {s['acc']:.3f} ARI {s['ari']:.3f}")
        for name, s in r["train"].items():
            lines.append(f"{r['method']}: train set, {name}: NMI {s['nmi']:.3f} ACC {s['acc']:.3f} "
                         f"ARI {s['ari']:.3f}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch, BLAS and OpenMP threads for every method")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="clustering epochs (ClustPy: clustering_epochs)")
    parser.add_argument("--n-train", type=int, default=None,
                        help="a random subset of the training images (default: all 60,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--covariance-type", default="diag", choices=("diag", "full"),
                        help="mixclust VaDE's prior covariances (diag: as in reports/benchmarks/vade_peers.md)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--data-dir", default=None, help="folder with mnist.npz (default: $MIXCLUST_DATA)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the untimed warm-up run of each method on 512 images")
    parser.add_argument("--out", default=None, help="write a markdown table here and JSON beside it")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")

    torch.set_num_threads(args.threads)
    Xtr, ytr, Xte, yte = load_mnist(args)
    clustpy_version, stubbed = None, None
    if any(m.startswith("clustpy") for m in methods):
        try:
            clustpy, stubbed = import_clustpy()
            clustpy_version = clustpy.__version__
        except ImportError as exc:
            print(f"# {exc}", file=sys.stderr)
    env = {
        "n_train": len(Xtr), "n_test": len(Xte), "threads": args.threads, "pretrain_epochs": args.pretrain_epochs,
        "epochs": args.epochs, "batch_size": BATCH_SIZE, "seed": args.seed, "torch": torch.__version__,
        "clustpy": clustpy_version, "torchvision_stub": stubbed, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"# MNIST: train {len(Xtr)} x {Xtr.shape[1]}, test {len(Xte)}; {args.threads} thread(s); "
          f"pretrain {args.pretrain_epochs} + clustering {args.epochs} epochs, batch {BATCH_SIZE}, seed {args.seed}")
    print(f"# torch {torch.__version__}, clustpy {clustpy_version}"
          + (" (torchvision stand-in)" if stubbed else ""), flush=True)

    results = []
    with threadpool_limits(limits=args.threads):
        if args.warmup:
            warm_up(args, methods, Xtr, Xte)
        for method in methods:
            print(f"# {method} ...", file=sys.stderr, flush=True)
            torch.set_num_threads(args.threads)  # a library may have changed it
            try:
                with contextlib.redirect_stdout(sys.stderr):  # ClustPy's prints and tqdm bars: stderr
                    out = RUNNERS[method](args, Xtr, Xte)
            except Exception as exc:  # one failing peer must not lose the others' numbers
                traceback.print_exc()
                results.append({"method": method, "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            fit, pred = out["fit"], out["predict"]
            total = fit["seconds"] + pred["seconds"]
            results.append({
                "method": method, "fit_seconds": fit["seconds"], "predict_seconds": pred["seconds"],
                "total_seconds": total, "cpu_per_wall": (fit["cpu_seconds"] + pred["cpu_seconds"]) / total,
                "test": scores(yte, out["test_labels"]), "test_how": out["test_how"],
                "extra_test": {k: scores(yte, v) for k, v in out["extra_test"].items()},
                "train": {k: scores(ytr, v) for k, v in out["train"].items()},
            })
            print(f"# {method}: {total:.1f} s, test NMI {results[-1]['test']['nmi']:.3f}", file=sys.stderr,
                  flush=True)

    header, rows = table_rows(results)
    print(format_text(header, rows))
    note_lines = notes(results)
    for line in note_lines:
        print(f"# {line}")
    if args.out:
        out = Path(args.out)
        md_path = out.with_suffix(".md") if out.suffix == ".json" else out
        json_path = out.with_suffix(".json")
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md = [
            "# VaDE: mixclust vs ClustPy (VaDE, DEC) on MNIST", "",
            f"Train {env['n_train']} images, test {env['n_test']}; {args.threads} thread(s); pretraining "
            f"{args.pretrain_epochs} and clustering {args.epochs} epochs, batch {BATCH_SIZE}, seed {args.seed}; "
            f"torch {env['torch']}, clustpy {clustpy_version}; {env['machine']}.", "",
            f"Command: `{env['command']}`", "",
            "Scores on the test set; `x` columns are ratios to mixclust-vade in the same run; "
            "cpu/wall is CPU seconds per wall second.", "",
            format_markdown(header, rows), "",
            *[f"- {line}" for line in note_lines], "",
        ]
        md_path.write_text("\n".join(md))
        json_path.write_text(json.dumps({"environment": env, "results": results}, indent=2) + "\n")
        print(f"# wrote {md_path} and {json_path}")


if __name__ == "__main__":
    main()
