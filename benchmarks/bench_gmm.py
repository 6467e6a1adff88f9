"""mixclust.GaussianMixture against three peers: same data, same initial parameters, same iterations.

Contenders, all on the CPU in float64, all fitted from the same weights, means and
precisions (one k-means-initialised scikit-learn EM step) for exactly ``--iters`` EM
iterations with no early stop:

* ``mixclust``      mixclust.GaussianMixture (float64; float32 as an extra row),
* ``sklearn``       scikit-learn's GaussianMixture on NumPy,
* ``sklearn-torch`` the same estimator on its array-API backend, X a float64 torch tensor
                    (``SCIPY_ARRAY_API=1`` and ``array_api_dispatch=True``),
* ``pomegranate``   pomegranate 1.1.2, GeneralMixtureModel of Normal distributions (the
                    ``bench`` extra: ``pip install -e '.[bench]'``; skipped, with the reason
                    printed, when it cannot be imported).

Protocol: make_blobs (seed 0) of 50,000 and 100,000 rows, d = 32, K = 16, full and diag
covariances, 25 iterations. A warm-up fit of every contender (2 iterations on the same
data), then the contenders are interleaved (for each rep, each contender once) and the best
of 3 reps is kept. Printed per (n, covariance): seconds of each contender, its time ratio to
mixclust float64 (peer time / mixclust time: above 1, mixclust is faster) and the relative
difference of its final mean log-likelihood per sample from mixclust's,
``|LL_peer - LL_mixclust| / |LL_mixclust|``.

The committed reports/benchmarks/gmm.txt and gmm.json are ``make bench``, i.e.::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gmm.py \\
        --json reports/benchmarks/gmm.json --out reports/benchmarks/gmm.txt

**Idle machine only.** The script refuses to time (exit code 3) when the 1-minute load
average, or the CPU that other processes use (/proc/stat minus this process, sampled for a
second while the benchmark is idle), exceeds ``--max-load`` cores (0.7 by default), before
it starts and again between reps, and when other processes used more than that during a
timed rep. The load average cannot be used between reps: it counts the benchmark itself.
``--allow-load`` times anyway and marks the output "LOADED MACHINE - not valid".

**Details that make the comparison fair.**

* ``SCIPY_ARRAY_API=1`` is set at the very top of this script (``setdefault``: an explicit
  value is kept), because scipy and scikit-learn read it when first imported. It does not
  change the NumPy path: the sklearn NumPy log-likelihoods with and without it agree
  exactly (checked at 5,000 x 32, K = 16, full and diag: relative difference 0.0).
* In array-API mode scikit-learn refuses ``init_params="kmeans"`` and wants the ``*_init``
  arrays in the namespace of X (NumPy ones raise ``TypeError: Cannot interpret
  'torch.float64' as a data type``), so that contender gets them as torch tensors and
  ``init_params="random"``, which is not used when all three ``*_init`` are given.
  array-api-compat is vendored by scikit-learn 1.9 (``sklearn.externals.array_api_compat``);
  no extra package is needed.
* pomegranate gets the same start: ``Normal(means=mu_k, covs=inv(P_k))`` with
  ``priors=weights``; ``tol=-inf`` so its loop (E-step, improvement test, M-step) runs
  exactly ``max_iter`` iterations (``tol=0`` would stop as soon as the log-likelihood dips
  by rounding). It is built and fitted with torch's default dtype set to float64: it keeps
  a parameter created with the default dtype and takes ``self.dtype`` from it, so with the
  float32 default its emission matrix and sufficient statistics would be float32. It has
  no ``reg_covar``, so every contender runs with ``--reg-covar`` (0 by default; the data
  are well conditioned) and all four fit exactly the same EM. Its E-step count is
  ``iters`` against ``iters + 2`` for the others (their last pass computes labels): a small
  advantage to it. Its log-likelihood is scikit-learn's ``score`` on its final
  parameters (its own ``log_probability`` uses log 2pi rounded to 11 digits; the JSON has
  both).

``--profile`` instead profiles one mixclust full-covariance fit (first size, d, K, iters)
under torch.profiler, prints the top ops by self CPU time, the achieved GFLOP/s of the two
GEMMs of an EM iteration (E-step ``W^T F^T`` and M-step ``Gamma^T F`` over the quadratic
features, m = d(d+1)/2 + d + 1 columns) and the time per iteration against the bound of
both GEMMs at this machine's square float64 GEMM rate (torch.matmul 2048 x 2048, best of 3).
"""

from __future__ import annotations

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")  # before scipy/sklearn are imported, see the docstring

import argparse
import contextlib
import gc
import json
import math
import platform
import re
import sys
import time
import warnings

import numpy as np
import scipy.linalg
import sklearn
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from mixclust import GaussianMixture
from mixclust.gmm import _features, _n_quadratic

EXIT_LOADED = 3
PEERS = ("sklearn", "sklearn-torch", "pomegranate")
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "SCIPY_ARRAY_API")


# ------------------------------------------------------------------------------------------------
# Machine
# ------------------------------------------------------------------------------------------------
def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(f"{i.get('internal_api')} {i.get('architecture', '')} threads={i.get('num_threads')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:  # pragma: no cover
        return "threadpoolctl not installed"


def torch_blas() -> str:
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _busy_seconds() -> float | None:
    """CPU seconds all processors spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = sum(values) - values[3] - values[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


class OthersMeter:
    """Cores that *other* processes kept busy between start() and stop(): /proc/stat minus this process."""

    def start(self):
        self._busy, self._own, self._wall = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def stop(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            return None
        wall = time.perf_counter() - self._wall
        return max(0.0, (busy - self._busy) - (time.process_time() - self._own)) / wall


def others_now(seconds: float = 1.0) -> float | None:
    """Cores used by other processes over ``seconds`` while this one sleeps."""
    meter = OthersMeter().start()
    time.sleep(seconds)
    return meter.stop()


class LoadGate:
    """Refuses to time on a loaded machine (exit EXIT_LOADED) unless ``allow``; then marks the run invalid."""

    def __init__(self, max_load: float, allow: bool, report):
        self.max_load, self.allow, self.report = max_load, allow, report
        self.valid, self.events = True, []

    def check(self, when: str, load_average: bool = False, during: float | None = None):
        readings = {}
        if load_average and hasattr(os, "getloadavg"):
            readings["1-minute load average"] = os.getloadavg()[0]
        probe = others_now()
        if probe is not None:
            readings["other processes now (cores)"] = probe
        if during is not None:
            readings["other processes during the rep (cores)"] = during
        over = {k: v for k, v in readings.items() if v > self.max_load}
        self.events.append({"when": when, **{k: round(v, 3) for k, v in readings.items()}, "over": bool(over)})
        if not over:
            return
        what = ", ".join(f"{k} {v:.2f}" for k, v in over.items())
        if not self.allow:
            print(f"REFUSING TO TIME {when}: {what} > --max-load {self.max_load} on {os.cpu_count()} cores. "
                  "Wait for the machine to be idle, or pass --allow-load (the output is then marked not valid).",
                  file=sys.stderr)
            sys.exit(EXIT_LOADED)
        if self.valid:
            self.report(f"# LOADED MACHINE - not valid ({when}: {what} > {self.max_load}); --allow-load")
        self.valid = False


class Report:
    """Prints lines and keeps them for --out."""

    def __init__(self):
        self.lines = []

    def __call__(self, line: str = ""):
        self.lines.append(line)
        print(line, flush=True)


# ------------------------------------------------------------------------------------------------
# Contenders
# ------------------------------------------------------------------------------------------------
def initial_parameters(X, k, covariance_type, seed):
    """Initial weights/means/precisions from one k-means-initialised scikit-learn step, shared by all."""
    init = SkGaussianMixture(k, covariance_type=covariance_type, max_iter=1, tol=0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X)
    return {"weights_init": init.weights_, "means_init": init.means_, "precisions_init": init.precisions_}


def precision_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions, as scikit-learn stores them (precisions_cholesky_)."""
    if covariance_type == "full":
        eye = np.eye(covariances.shape[-1])
        return np.stack([scipy.linalg.solve_triangular(np.linalg.cholesky(c), eye, lower=True).T
                         for c in covariances])
    return 1.0 / np.sqrt(covariances)


def sklearn_mean_loglik(X, weights, means, covariances, covariance_type) -> float:
    """scikit-learn's score (mean log-likelihood per sample) of given mixture parameters."""
    gm = SkGaussianMixture(len(weights), covariance_type=covariance_type)
    gm.weights_, gm.means_, gm.covariances_ = weights, means, covariances
    gm.precisions_cholesky_ = precision_cholesky(covariances, covariance_type)
    gm.n_features_in_ = X.shape[1]
    return float(gm.score(X))


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def import_pomegranate():
    """(GeneralMixtureModel, Normal, version) or the reason it cannot be used."""
    try:
        import pomegranate
        from pomegranate.distributions import Normal
        from pomegranate.gmm import GeneralMixtureModel
    except Exception as error:  # any import failure means: skip it
        return f"cannot import pomegranate ({type(error).__name__}: {error}); install the bench extra: " \
               "pip install -e '.[bench]'"
    return GeneralMixtureModel, Normal, getattr(pomegranate, "__version__", "?")


class Contender:
    """One library on one (X, covariance, init): ``fit(max_iter)`` (timed) and ``loglik(model)``."""

    name, dtype, same_init = "", "float64", True

    def __init__(self, X, init, cov, args):
        self.X, self.init, self.cov, self.args = X, init, cov, args

    @property
    def label(self):
        return f"{self.name} {self.dtype}"


class Mixclust(Contender):
    name = "mixclust"

    def __init__(self, X, init, cov, args, dtype="float64"):
        super().__init__(X, init, cov, args)
        self.dtype = dtype

    def fit(self, max_iter):
        return GaussianMixture(self.args.k, covariance_type=self.cov, max_iter=max_iter, tol=0,
                               reg_covar=self.args.reg_covar, device="cpu", dtype=self.dtype,
                               **self.init).fit(self.X)

    def loglik(self, model):
        return model.lower_bound_  # the mean log-likelihood of the final parameters (last E pass)


class Sklearn(Contender):
    name = "sklearn"

    def fit(self, max_iter):
        return SkGaussianMixture(self.args.k, covariance_type=self.cov, max_iter=max_iter, tol=0,
                                 reg_covar=self.args.reg_covar, **self.init).fit(self.X)

    def loglik(self, model):
        return float(model.score(self.X))


class SklearnTorch(Contender):
    name = "sklearn-torch"

    def __init__(self, X, init, cov, args):
        super().__init__(torch.as_tensor(X, dtype=torch.float64), {k: torch.as_tensor(v, dtype=torch.float64)
                                                                    for k, v in init.items()}, cov, args)

    def fit(self, max_iter):
        with sklearn.config_context(array_api_dispatch=True):
            return SkGaussianMixture(self.args.k, covariance_type=self.cov, max_iter=max_iter, tol=0,
                                     reg_covar=self.args.reg_covar, init_params="random",
                                     random_state=self.args.seed, **self.init).fit(self.X)

    def loglik(self, model):
        with sklearn.config_context(array_api_dispatch=True):
            return float(model.score(self.X))


class Pomegranate(Contender):
    name = "pomegranate"

    def __init__(self, X, init, cov, args, classes):
        super().__init__(torch.as_tensor(X, dtype=torch.float64), init, cov, args)
        self.GeneralMixtureModel, self.Normal = classes
        precisions = init["precisions_init"]
        self.covs = np.linalg.inv(precisions) if cov == "full" else 1.0 / precisions
        if cov == "full":
            self.covs = 0.5 * (self.covs + np.swapaxes(self.covs, -1, -2))

    def fit(self, max_iter):
        with default_dtype(torch.float64):
            components = [self.Normal(means=torch.as_tensor(mean), covs=torch.as_tensor(cov),
                                      covariance_type=self.cov)
                          for mean, cov in zip(self.init["means_init"], self.covs)]
            model = self.GeneralMixtureModel(components, priors=torch.as_tensor(self.init["weights_init"]),
                                             max_iter=max_iter, tol=-math.inf)
            return model.fit(self.X)

    def final_parameters(self, model):
        weights = model.priors.detach().numpy().astype(np.float64)
        means = np.stack([d.means.detach().numpy() for d in model.distributions]).astype(np.float64)
        covs = np.stack([d.covs.detach().numpy() for d in model.distributions]).astype(np.float64)
        return weights, means, covs

    def loglik(self, model):
        return sklearn_mean_loglik(self.X.numpy(), *self.final_parameters(model), self.cov)

    def own_loglik(self, model):
        with default_dtype(torch.float64), torch.no_grad():
            return float(model.log_probability(self.X).mean())


def timed(fit, max_iter):
    """(seconds, model, cores other processes used meanwhile)."""
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        meter = OthersMeter().start()
        start = time.perf_counter()
        model = fit(max_iter)
        seconds = time.perf_counter() - start
        return seconds, model, meter.stop()


# ------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------
def header(args, report, extra=()):
    report(f"# {cpu_name()} ({platform.machine()}, {os.cpu_count()} cores), torch {torch.__version__} "
           f"threads={torch.get_num_threads()} BLAS={torch_blas()}, numpy {np.__version__} BLAS: {blas_info()}")
    report(f"# scikit-learn {sklearn.__version__}, scipy {scipy.__version__}" + "".join(extra))
    report("# " + " ".join(f"{name}={os.environ.get(name)}" for name in ENV_VARS))
    if hasattr(os, "getloadavg"):
        report("# load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg())
               + f" (--max-load {args.max_load}{', --allow-load' if args.allow_load else ''})")


def compare(args, report, gate):
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        sys.exit(f"unknown peer(s) {sorted(unknown)}; choose from {PEERS}")
    dtypes = ["float64"] + [d for d in args.dtypes.split(",") if d and d != "float64"]
    skipped, pomegranate_version = {}, None
    classes = None
    if "pomegranate" in peers:
        found = import_pomegranate()
        if isinstance(found, str):
            skipped["pomegranate"] = found
        else:
            classes, pomegranate_version = found[:2], found[2]
    header(args, report, [f", pomegranate {pomegranate_version}" if pomegranate_version else ""])
    for name, reason in skipped.items():
        report(f"# SKIPPED {name}: {reason}")
    report(f"# make_blobs d={args.d} K={args.k} seed={args.seed}, {args.iters} EM iterations, tol=0 (pomegranate "
           f"tol=-inf), no early stop, reg_covar={args.reg_covar}, same initial parameters for all; warm-up fit, "
           f"then {args.reps} interleaved reps, best kept")
    report("# ratio = contender seconds / mixclust float64 seconds (above 1: mixclust faster); |dLL| rel = "
           "|LL - LL_mixclust| / |LL_mixclust|, LL the mean log-likelihood per sample of the final parameters")
    if "pomegranate" in peers and "pomegranate" not in skipped:
        report("# pomegranate: same start (Normal(means, covs=inv(precisions)), priors=weights), float64 default "
               "dtype, no reg_covar; its LL is sklearn's score of its final parameters; it does 2 fewer E passes")
    gate.check("before the first timing", load_average=True)

    columns = f"{'n':>7} {'cov':<5} {'contender':<22} {'best s':>8} {'s/iter':>8} {'ratio':>7} {'|dLL| rel':>10}"
    report(columns)
    rows = []
    for n in args.sizes:
        X, _ = make_blobs(n, args.d, centers=args.k, random_state=args.seed)
        for cov in args.types.split(","):
            init = initial_parameters(X, args.k, cov, args.seed)
            contenders = [Mixclust(X, init, cov, args, dtype) for dtype in dtypes]
            for peer in peers:
                if peer in skipped:
                    continue
                if peer == "sklearn":
                    contenders.append(Sklearn(X, init, cov, args))
                elif peer == "sklearn-torch":
                    contenders.append(SklearnTorch(X, init, cov, args))
                else:
                    contenders.append(Pomegranate(X, init, cov, args, classes))
            for contender in list(contenders):  # warm-up; a peer that fails is skipped with its reason
                try:
                    timed(contender.fit, 2)
                except Exception as error:
                    if isinstance(contender, Mixclust):
                        raise
                    reason = f"fit failed: {type(error).__name__}: {str(error)[:300]}"
                    skipped[contender.name] = reason
                    report(f"# SKIPPED {contender.name} (n={n}, {cov}): {reason}")
                    contenders.remove(contender)
            times = {c.label: [] for c in contenders}
            models, others = {}, []
            for rep in range(args.reps):
                if rep:
                    gate.check(f"before rep {rep + 1} (n={n}, {cov})", during=max(others[-len(contenders):],
                                                                                    default=None))
                for contender in contenders:
                    seconds, models[contender.label], busy = timed(contender.fit, args.iters)
                    times[contender.label].append(seconds)
                    if busy is not None:
                        others.append(busy)
            if others:
                gate.check(f"after the reps (n={n}, {cov})", during=max(others[-len(contenders):]))
            reference = contenders[0]
            ref_time, ref_ll = min(times[reference.label]), reference.loglik(models[reference.label])
            for contender in contenders:
                model = models[contender.label]
                best, ll = min(times[contender.label]), contender.loglik(model)
                rel = abs(ll - ref_ll) / abs(ref_ll)
                row = {"n": n, "d": args.d, "k": args.k, "covariance_type": cov, "contender": contender.name,
                       "dtype": contender.dtype, "iters": args.iters, "times_s": times[contender.label],
                       "best_s": best, "s_per_iter": best / args.iters, "ratio_to_mixclust": best / ref_time,
                       "loglik": ll, "loglik_rel_diff": rel, "same_init": contender.same_init}
                if isinstance(contender, Pomegranate):
                    row["pomegranate_own_loglik"] = contender.own_loglik(model)
                    row["note"] = ("same initial parameters; tol=-inf (exactly iters EM iterations); loglik is "
                                   "sklearn's score of its final parameters")
                rows.append(row)
                rel_text = "-" if contender is reference else f"{rel:.1e}"
                report(f"{n:>7} {cov:<5} {contender.label:<22} {best:>8.3f} {best / args.iters:>8.4f} "
                       f"{best / ref_time:>6.2f}x {rel_text:>10}")
            report(f"# n={n} {cov}: other processes used at most "
                   + (f"{max(others):.2f} cores during the timed fits" if others else "? cores (no /proc/stat)"))
    return {"rows": rows, "skipped": skipped, "pomegranate_version": pomegranate_version}


# ------------------------------------------------------------------------------------------------
# --profile
# ------------------------------------------------------------------------------------------------
def best_of(fn, reps):
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def square_gemm_gflops(size=2048, reps=3) -> float:
    a = torch.randn(size, size, dtype=torch.float64)
    b = torch.randn(size, size, dtype=torch.float64)
    a @ b  # warm-up
    return 2 * size**3 / best_of(lambda: a @ b, reps) / 1e9


def profile(args, report, gate):
    header(args, report)
    gate.check("before profiling", load_average=True)
    n, d, k, iters, cov = args.sizes[0], args.d, args.k, args.iters, "full"
    X, _ = make_blobs(n, d, centers=k, random_state=args.seed)
    init = initial_parameters(X, k, cov, args.seed)
    contender = Mixclust(X, init, cov, args)
    m = _n_quadratic(d, cov) + d + 1
    product_flops = 2 * n * m * k  # one pass of either GEMM: (K x m)(m x n) or (K x n)(n x m)
    report(f"# profile: mixclust full covariance, n={n} d={d} K={k}, {iters} iterations, float64; "
           f"features m = d(d+1)/2 + d + 1 = {m}")
    report(f"# per EM iteration: E-step W^T F^T ({k} x {m} times {m} x {n}) {product_flops / 1e9:.3f} GFLOP + "
           f"M-step Gamma^T F ({k} x {n} times {n} x {m}) {product_flops / 1e9:.3f} GFLOP = "
           f"{2 * product_flops / 1e9:.3f} GFLOP")

    peak = square_gemm_gflops()
    report(f"# square float64 GEMM (torch.matmul 2048 x 2048, best of 3): {peak:.1f} GFLOP/s")

    timed(contender.fit, 2)  # warm-up
    fit_s = min(timed(contender.fit, iters)[0] for _ in range(args.reps))
    per_iter = fit_s / iters
    bound = 2 * product_flops / (peak * 1e9)
    report(f"# fit: best of {args.reps} {fit_s:.3f} s = {per_iter * 1e3:.1f} ms per iteration "
           f"({iters} iterations; the fit also makes its features and runs 2 more E passes); GEMM-at-peak bound "
           f"{bound * 1e3:.1f} ms per iteration: {per_iter / bound:.1f}x the bound")

    # The two products alone, on the feature chunks the fit uses (values do not matter for the speed).
    chunk = GaussianMixture(k, covariance_type=cov)._row_chunk(d, torch.float64)
    Xc = torch.as_tensor(X - X.mean(axis=0))
    chunks = [_features(Xc[s:s + chunk], cov) for s in range(0, n, chunk)]
    W_t = torch.randn(k, m, dtype=torch.float64)
    resp = [torch.rand(k, F.shape[0], dtype=torch.float64) for F in chunks]
    e_s = best_of(lambda: [W_t @ F.T for F in chunks], args.reps)
    m_s = best_of(lambda: [r @ F for r, F in zip(resp, chunks)], args.reps)
    report(f"# the products alone over {len(chunks)} chunks of {chunk} rows, best of {args.reps}: "
           f"E-step {e_s * 1e3:.1f} ms = {product_flops / e_s / 1e9:.1f} GFLOP/s, "
           f"M-step {m_s * 1e3:.1f} ms = {product_flops / m_s / 1e9:.1f} GFLOP/s "
           f"(peak {peak:.1f}); both {(e_s + m_s) * 1e3:.1f} ms of the {per_iter * 1e3:.1f} ms per iteration")

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        timed(contender.fit, iters)
    report(f"# torch.profiler, one fit ({iters} iterations), top ops by self CPU time:")
    for line in prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows).splitlines():
        report(line)
    gemms = {"E-step W^T F^T": [0, 0.0, 0], "M-step Gamma^T F": [0, 0.0, 0]}
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key != "aten::mm" or len(event.input_shapes) < 2:
            continue
        (a_rows, a_cols), (b_rows, b_cols) = event.input_shapes[:2]
        if (a_rows, a_cols) == (k, m) and b_rows == m:
            name, rows_ = "E-step W^T F^T", b_cols
        elif a_rows == k and b_cols == m and a_cols == b_rows:
            name, rows_ = "M-step Gamma^T F", a_cols
        else:
            continue
        gemms[name][0] += 2 * k * m * rows_ * event.count
        gemms[name][1] += event.self_cpu_time_total / 1e6
        gemms[name][2] += event.count
    results = {}
    for name, (flops, seconds, count) in gemms.items():
        if count:
            rate = flops / seconds / 1e9
            results[name] = {"calls": count, "gflop": flops / 1e9, "seconds": seconds, "gflops_per_s": rate}
            report(f"# profiler, {name}: {count} calls, {flops / 1e9:.2f} GFLOP in {seconds:.3f} s = {rate:.1f} "
                   f"GFLOP/s ({rate / peak:.0%} of the square GEMM)")
    return {"profile": {"n": n, "d": d, "k": k, "iters": iters, "m": m, "gflop_per_iteration": 2 * product_flops / 1e9,
                        "square_gemm_gflops_per_s": peak, "fit_s": fit_s, "s_per_iteration": per_iter,
                        "gemm_bound_s_per_iteration": bound, "e_product_s": e_s, "m_product_s": m_s,
                        "e_product_gflops_per_s": product_flops / e_s / 1e9,
                        "m_product_gflops_per_s": product_flops / m_s / 1e9, "profiler_gemms": results}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,100000", help="comma-separated numbers of rows")
    parser.add_argument("--n", type=int, help="one number of rows (instead of --sizes)")
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=25)
    parser.add_argument("--reps", type=int, default=3, help="interleaved reps; the best is kept")
    parser.add_argument("--types", default="full,diag")
    parser.add_argument("--dtypes", default="float64,float32", help="mixclust dtypes (float64 is always run)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--reg-covar", type=float, default=0.0,
                        help="for every contender (pomegranate has none, so 0 by default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-load", type=float, default=0.7,
                        help="refuse to time when other processes use more cores than this (default 0.7)")
    parser.add_argument("--allow-load", action="store_true", help="time anyway, marking the output not valid")
    parser.add_argument("--profile", action="store_true", help="profile one mixclust full fit instead")
    parser.add_argument("--profile-rows", type=int, default=15)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--out", help="also write the printed text to this file")
    args = parser.parse_args(argv)
    args.sizes = [args.n] if args.n else [int(s) for s in args.sizes.split(",") if s]

    report = Report()
    gate = LoadGate(args.max_load, args.allow_load, report)
    result = profile(args, report, gate) if args.profile else compare(args, report, gate)
    if not gate.valid:
        report("# LOADED MACHINE - not valid: these timings were taken with other processes running")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(report.lines) + "\n")
    if args.json:
        machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                   "torch_threads": torch.get_num_threads(), "torch_blas": torch_blas(), "numpy": np.__version__,
                   "numpy_blas": blas_info(), "sklearn": sklearn.__version__, "scipy": scipy.__version__,
                   "env": {name: os.environ.get(name) for name in ENV_VARS}}
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "valid": gate.valid, "load_checks": gate.events, "machine": machine,
                       **result}, handle, indent=2)


if __name__ == "__main__":
    main()
