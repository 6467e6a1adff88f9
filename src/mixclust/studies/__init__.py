"""Reproduction studies: ``mixclust reproduce NAME`` writes ``reports/NAME/``.

Each study is a module here with a ``run(out_dir, quick, seed, data_dir) -> Path``
function (the path of the README it wrote) and a one-line ``DESCRIPTION``. A new
study only adds a module and a line to ``STUDIES``.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import pickle
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

STUDIES = {
    "gmm": "mixclust.studies.gmm",
    "nnobj": "mixclust.studies.nnobj",
    "aevae": "mixclust.studies.aevae",
    "vade-entropy": "mixclust.studies.vade_entropy",
    "moa": "mixclust.studies.moa",
    "moa-source": "mixclust.studies.moa_source",
    "aevae-claims": "mixclust.studies.aevae_claims",
    "aevae-capacity": "mixclust.studies.aevae_capacity",
    "vade-source": "mixclust.studies.vade_source",
    "frontier": "mixclust.studies.frontier",
}


@contextmanager
def threads(n: int):
    """Run with ``n`` torch and BLAS threads, restoring the previous setting afterwards.

    Studies on tiny problems (and every quick mode) use one: measured on the shared 2-core machine,
    two threads waiting on each other made them 5-15x slower whenever another job ran. Full deep
    training uses every thread (an MNIST conv-AE epoch: 5.5 s with 2 threads on an idle machine,
    about 4x less than with one; benchmarks/bench_deep.py). ``MIXCLUST_STUDY_THREADS`` caps ``n``, for a
    study that shares the machine with another job.
    """
    cap = os.environ.get("MIXCLUST_STUDY_THREADS")
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ValueError(f"MIXCLUST_STUDY_THREADS must be a positive integer, got {cap!r}")
        n = min(n, int(cap))
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(previous)


def load_or_digits(name: str, split: str, quick: bool, data_dir=None):
    """``(X, y, loaded)``: ``datasets.load(name, split=split)`` and the name of the set actually loaded.

    A quick run never downloads; without the files it falls back to scikit-learn's digits, the same split, as
    images (n, 1, 8, 8) in [0, 1] (``loaded == "digits"``), so CI runs without the data folder. A full run
    raises :class:`mixclust.datasets.DataNotFoundError` instead.
    """
    from .. import datasets  # here: the studies package is imported by the CLI before any data are needed

    try:
        no_download = {"download": False} if quick and name != "digits" else {}  # digits is bundled: no download
        X, y = datasets.load(name, split=split, data_dir=data_dir, **no_download)
        return X, y, name
    except datasets.DataNotFoundError:
        if not quick:
            raise
        X, y = datasets.load("digits", split=split)
        return X, y, "digits"


def load_train_test(name: str, quick: bool, data_dir=None):
    """``(X_train, y_train, X_test, y_test, loaded)``: both splits of ``name`` by :func:`load_or_digits`, from the
    same source: when one split falls back to digits and the other does not (one file missing), both come from
    digits, never a mixed pair."""
    X_train, y_train, loaded = load_or_digits(name, "train", quick, data_dir)
    X_test, y_test, loaded_test = load_or_digits(name, "test", quick, data_dir)
    if loaded_test != loaded:
        X_train, y_train, loaded = load_or_digits("digits", "train", quick)
        X_test, y_test, _ = load_or_digits("digits", "test", quick)
    return X_train, y_train, X_test, y_test, loaded


def subsample(X, y, n, seed):
    """A sorted random subset of ``n`` rows of X and y (all of them when ``n`` is None or not smaller).

    ``seed`` is an int or a ``numpy.random.Generator`` (drawn from in place, so one generator can serve
    several draws in a row).
    """
    if n is None or n >= len(X):
        return X, y
    idx = np.sort(np.random.default_rng(seed).choice(len(X), n, replace=False))
    return X[idx], y[idx]


class RunCache:
    """Finished runs of a study by key, rewritten atomically after each one, so an interrupted study
    resumes where it stopped (``path=None``: in memory only)."""

    def __init__(self, path=None):
        self.path = None if path is None else Path(path)
        self.runs: dict = {}
        if self.path is not None and self.path.exists():
            with open(self.path, "rb") as handle:
                self.runs = pickle.load(handle)

    def __contains__(self, key) -> bool:
        return key in self.runs

    def __getitem__(self, key):
        return self.runs[key]

    def put(self, key, value) -> None:
        self.runs[key] = value
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Two jobs may share a file (the same model, other seeds): under a lock, merge what the other wrote
            # since this one read the file, so neither job's runs are lost.
            with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if self.path.exists():
                    with open(self.path, "rb") as handle:
                        self.runs = {**pickle.load(handle), **self.runs}
                tmp = self.path.with_name(self.path.name + ".tmp")
                with open(tmp, "wb") as handle:
                    pickle.dump(self.runs, handle)
                os.replace(tmp, self.path)


def run_cached(compute, write_report, out_dir, quick: bool, seed: int, data_dir, cache) -> tuple[Path, dict]:
    """The common ``run`` of the studies with a run cache: compute (resuming from ``cache``, by default
    ``out_dir/.runs.pkl`` for a full study), write the report, return its path and the results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cache is None and not quick:
        cache = out_dir / ".runs.pkl"
    results = compute(quick=quick, seed=seed, data_dir=data_dir, cache=cache,
                      log=(lambda *a: None) if quick else (lambda *a: print(*a, flush=True)))
    return write_report(results, out_dir), results


def describe() -> dict[str, str]:
    """Name -> one-line description of every study."""
    return {name: importlib.import_module(path).DESCRIPTION for name, path in STUDIES.items()}


def run(name: str, out_dir=None, quick: bool = False, seed: int = 0, data_dir=None) -> Path:
    """Run study ``name``; the report goes to ``out_dir``, by default ``reports/<name>`` (the committed
    report) for the full study and ``runs/reproduce/<name>-quick`` for ``quick``, whose numbers mean
    nothing and must not overwrite it."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; available: {', '.join(sorted(STUDIES))}")
    module = importlib.import_module(STUDIES[name])
    if out_dir is None:
        out_dir = Path("runs") / "reproduce" / f"{name}-quick" if quick else Path("reports") / name
    out_dir = Path(out_dir)
    return module.run(out_dir=out_dir, quick=quick, seed=seed, data_dir=data_dir)
