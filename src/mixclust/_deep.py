"""Base of the deep models: input checks, architecture choice, seeding, batched inference.

Deep estimators accept tabular data (n, D) and images (n, C, H, W) (a 3-D array
(n, H, W) is read as one-channel images). ``arch="auto"`` picks the MLP for both:
the convolutional networks (``arch="conv"``) clustered worse in 7 of 12 measured
(model, image set) pairs and train several times slower (see ``_validate_input``). Training goes
through :class:`mixclust.training.Trainer`; subclasses supply the module and
the per-batch loss.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import warnings

import numpy as np
import torch
from sklearn.utils.validation import _check_feature_names, check_array, check_is_fitted

from . import distributed
from ._base import MixclustEstimator, check_float, check_int, check_option, resolve_device
from .training import Trainer

ARCHS = ("auto", "mlp", "conv")


class DegenerateFitWarning(UserWarning):
    """A fit stayed degenerate after every restart (see :func:`mixclust.metrics.degeneracy`)."""


class EmptyClusterWarning(DegenerateFitWarning):
    """A fitted model leaves some clusters without any sample (collapsed or dead experts)."""


INFERENCE_BATCH = 2048
#: ``n_init="auto"``: one run, and up to this many in all while the result is degenerate.
AUTO_MAX_RUNS = 3
_RESTART_SEED_STEP = 7919


#: Rows the :class:`DegeneracyGuard` checks after each epoch (a fixed stride through larger data sets).
GUARD_ROWS = 10_000


class DegeneracyGuard:
    r"""Watches a training stage for a degenerate clustering and keeps the latest epoch that was not.

    Called with ``(epoch, record)`` after each epoch (the :class:`~mixclust.training.Trainer`'s
    ``on_epoch_end``), and with epoch 0 before training, it computes the soft assignments of a fixed set of
    rows (all of them up to :data:`GUARD_ROWS`, else every s-th) and asks :func:`mixclust.metrics.degeneracy`.
    While the clustering is healthy it copies the module's state. :meth:`restore` then puts back the latest
    healthy state when training ended degenerate.

    Why: started from a healthy partition, a model can empty clusters as it trains (a component whose weight
    and covariance grow takes its neighbours' samples, and an emptied one rarely comes back). Measured on
    the benchmark suite's 20-object rotation set: VaDE's stage 2 left 6 of 20 clusters empty, and every
    restart cost a full run. The guard keeps the work of the epochs before the collapse instead. It
    consumes no random numbers, so a training that never turns degenerate is unchanged.
    """

    def __init__(self, module: torch.nn.Module, proba, X: np.ndarray, n_clusters: int):
        self.module, self.proba, self.n_clusters = module, proba, int(n_clusters)
        self.rows = X[::max(1, math.ceil(len(X) / GUARD_ROWS))]
        self.reasons: dict[int, str | None] = {}
        self.healthy_epoch: int | None = None
        self._state = None

    def _reason(self) -> str | None:
        """Why the module's clustering of the watched rows is degenerate now, or None."""
        from .metrics import degeneracy

        proba = self.proba(self.rows)
        return degeneracy(proba.argmax(1), self.n_clusters, proba)

    def __call__(self, epoch: int, record: dict | None = None) -> None:
        reason = self._reason()
        self.reasons[int(epoch)] = reason
        if reason is None:
            self.healthy_epoch = int(epoch)
            self._state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def restore(self) -> dict | None:
        """If the module's state now (after training, and after any early-stopping restore) is degenerate
        and an epoch was healthy, load the latest healthy state. Returns what was done,
        ``{"reason": ..., "restored_epoch": e, "degenerate_epochs": [...], "epochs": last}``, or None."""
        if self._state is None:
            return None
        reason = self._reason()
        if reason is None:
            return None
        self.module.load_state_dict(self._state)
        return {"reason": reason, "restored_epoch": self.healthy_epoch, "epochs": max(self.reasons),
                "degenerate_epochs": sorted(e for e, r in self.reasons.items() if r is not None)}


def data_fingerprint(X: np.ndarray) -> tuple:
    """Cheap identity of a data set (shape and two sums) to check a warm start used the same data."""
    flat = X.reshape(-1)
    return tuple(X.shape), float(flat.sum(dtype=np.float64)), float(np.dot(flat, flat))


def as_float_array(X, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """X as a float32 array through scikit-learn's ``check_array`` (its messages for sparse, complex, empty,
    1-D or too-short input; object arrays of numbers are converted), images (n, ...) allowed, and a clear
    error for NaN or infinite values."""
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    array = check_array(X, dtype=np.float32, allow_nd=True, ensure_all_finite=False,
                        ensure_min_samples=min_samples, input_name=name)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _draw_seed(random_state) -> int:
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"random_state must be None, an int, a numpy RandomState or Generator, got {random_state!r}")
    return int(random_state)


def _signature_value(value) -> str:
    """A parameter as a checkpoint signature compares it: NumPy scalars as their Python values, lists as
    tuples (``hidden=[64]`` builds the network ``(64,)`` does), generators by their type alone."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return repr(tuple(_signature_value(v) for v in value))
    if isinstance(value, (int, float, str, type(None))):
        return repr(value)
    return type(value).__name__


def _shared_seed(seed: int) -> int:
    """Rank 0's seed on every rank under torch.distributed (``random_state=None`` draws one per process, and
    the ranks must shuffle with the same permutation to split each global batch), ``seed`` otherwise."""
    if not distributed.is_distributed():
        return seed
    tensor = torch.tensor([seed], dtype=torch.long, device=distributed._collective_device())
    return int(distributed.broadcast(tensor).item())


def intensity_scale(low: float, high: float) -> float:
    """What the deep models divide inputs by (``input_scale_``, see ``DeepEstimator._validate_input``), from the
    data's minimum and maximum: the maximum of non-negative data whose maximum exceeds 1 (pixels 0..255), else 1."""
    return high if low >= 0.0 and high > 1.0 else 1.0


#: Inputs beyond +-LARGE_INPUT (after ``input_scale_``) are named as the likely cause when training diverges.
LARGE_INPUT = 50.0


def keeps_global_rng(method):
    """Decorator of the public fitting methods of deep models: one seed per call (see ``_seed_value``), and
    torch's and NumPy's global generators left as the caller had them (fitting seeds them internally)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if getattr(self, "_drawn_seed", None) is not None:  # a nested call (e.g. fit -> pretrain)
            return method(self, *args, **kwargs)
        self._drawn_seed = _shared_seed(_draw_seed(self.random_state))
        numpy_state = np.random.get_state()
        device = self._device()
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                return method(self, *args, **kwargs)
        except FloatingPointError as error:
            low, high = getattr(self, "_input_range", (0.0, 1.0))
            if max(abs(low), abs(high)) <= LARGE_INPUT:
                raise
            raise FloatingPointError(
                f"{error}. The data range from {low:.4g} to {high:.4g}, and the networks train on values of about "
                "unit size: standardise the features (scikit-learn's StandardScaler, or --scale standard on the "
                "command line)") from error
        finally:
            np.random.set_state(numpy_state)
            self._drawn_seed = None

    return wrapper


def epochs_for_steps(steps: int, n_samples: int, batch_size: int) -> int:
    """The fewest epochs (at least one) that take ``steps`` optimiser steps over ``n_samples`` rows.

    A budget in steps rather than epochs gives a small data set as many updates as a large one.
    """
    return max(1, math.ceil(steps / math.ceil(n_samples / batch_size)))


#: ``batch_size="auto"``: the largest power of two at most n / 64, within these bounds. A data set of 1,000
#: samples then trains at batch 32 (32 steps an epoch) instead of 4 steps of 256; 5,000 at 64; MNIST keeps 256.
AUTO_BATCH_RANGE = (32, 256)
AUTO_BATCH_FRACTION = 64


def auto_batch_size(n_samples: int) -> int:
    """``batch_size="auto"`` for ``n_samples`` rows (see :data:`AUTO_BATCH_RANGE`)."""
    low, high = AUTO_BATCH_RANGE
    target = max(1, n_samples // AUTO_BATCH_FRACTION)
    return int(min(high, max(low, 2 ** int(math.floor(math.log2(target))))))


def auto_epochs(n_samples: int, batch_size: int, min_epochs: int, min_steps: int) -> int:
    """``epochs="auto"``: at least ``min_epochs`` epochs and at least ``min_steps`` optimiser steps.

    Large data sets get ``min_epochs`` (the budget measured on MNIST); small ones as many epochs as
    ``min_steps`` updates take, so 1,000 images are not left with a few dozen steps.
    """
    return max(int(min_epochs), epochs_for_steps(int(min_steps), n_samples, batch_size))


def latent_gmm(codes: np.ndarray, centroids: np.ndarray, seed: int):
    """EM of a full-covariance GMM on latent codes, begun at K-means centroids (a fitted
    :class:`mixclust.GaussianMixture`, on the CPU; ``reg_covar=1e-4``).

    Why: autoencoder codes form elongated clusters that K-means cuts across. Measured on MNIST
    (reports/vade-entropy, benchmarks/probes/probe_vade_prior.py): on one VaDE latent space a full GMM
    scores NMI 0.773 where K-means scores 0.708; on the codes of a MoA start (M = 2, reports/moa, seed 0)
    0.318 against 0.139.
    """
    from .gmm import GaussianMixture  # a deep model needs it only at initialisation

    return GaussianMixture(len(centroids), covariance_type="full", reg_covar=1e-4, means_init=centroids,
                           random_state=seed, device="cpu").fit(codes)


#: UMAP settings of :func:`manifold_partition` (those of N2D, McConville et al. 2020: a local neighbourhood of
#: 20 and points packed tightly, ``min_dist=0``, which suits clustering rather than display). The neighbourhood
#: is 20 above :data:`MANIFOLD_SELECT_MAX_SAMPLES` samples or when ``n_neighbors=20`` is given; below, the
#: default ``n_neighbors="auto"`` chooses it by stability.
MANIFOLD_NEIGHBORS = 20
MANIFOLD_MAX_COMPONENTS = 10
#: ``n_neighbors="auto"`` of :func:`manifold_partition`: the neighbourhoods it chooses among by stability,
#: the seeds each is tried with, and the size above which it keeps :data:`MANIFOLD_NEIGHBORS` (the choice costs
#: 9 embeddings instead of one; at 70,000 MNIST codes k = 10 and 20 score NMI 0.9418 and 0.9422, seed 0, so
#: large sets lose nothing by it).
MANIFOLD_NEIGHBOR_CANDIDATES = (5, 10, 20)
MANIFOLD_STABILITY_SEEDS = 3
MANIFOLD_SELECT_MAX_SAMPLES = 10_000
#: Below this many samples a neighbourhood graph says little: :func:`manifold_partition` returns None and the
#: models start from a GMM of the codes instead.
MANIFOLD_MIN_SAMPLES = 100
#: Starts of the GMM on the embedding; the one of highest log-likelihood is kept (the mixture's own objective,
#: never labels). One start is not enough: on two moons it cut across both curves (NMI 0.000, mean
#: log-likelihood -6.83) where the best of 10 follows them (NMI 1.000, -5.27). The embedding has at most
#: 10 dimensions, so 10 starts cost seconds even at 70,000 samples.
MANIFOLD_N_INIT = 10


def umap_pairwise_distances(X, Y=None, metric="euclidean", **kwargs):
    """scikit-learn's ``pairwise_distances`` as UMAP calls it for data sets under 4,096 rows, with the same
    numbers faster: UMAP passes its numba metric as a Python callable, which scikit-learn calls once per pair
    (n^2 / 2 Python calls; the whole partition of 2,000 MNIST/Fashion images took 20.4 s against 12.7 s with
    this, one thread on a loaded 2-core machine); here numba computes every pair in one parallel loop
    (umap's own ``parallel_special_metric``) with the same metric, cast to the dtype scikit-learn returns, so
    the embedding is bit for bit the same (tests/test_defaults.py). Any other call goes to scikit-learn."""
    from sklearn.metrics import pairwise_distances
    from umap import distances

    dense = isinstance(X, np.ndarray) and (Y is None or isinstance(Y, np.ndarray))
    if not (dense and metric is distances.euclidean and not kwargs):
        return pairwise_distances(X, Y, metric=metric, **kwargs)
    Y = X if Y is None else Y
    dtype = np.result_type(X.dtype, Y.dtype, np.float32)  # what scikit-learn's callable path returns
    return distances.parallel_special_metric(X, Y, metric=metric).astype(dtype)


@contextlib.contextmanager
def _fast_small_data_distances():
    """Within the block, UMAP's small-data distance matrix comes from :func:`umap_pairwise_distances`."""
    from umap import umap_

    original = umap_.pairwise_distances
    umap_.pairwise_distances = umap_pairwise_distances
    try:
        yield
    finally:
        umap_.pairwise_distances = original


def manifold_partition(codes: np.ndarray, n_clusters: int, seed: int, n_neighbors="auto") -> np.ndarray | None:
    r"""Soft partition (n, K) of autoencoder codes by a full-covariance GMM on their UMAP embedding.

    Why: a GMM (or K-means) on the codes themselves cuts clusters that are curved manifolds in the code
    space; UMAP's k-nearest-neighbour graph follows them, and a mixture on its embedding separates them
    (the N2D recipe, McConville et al. 2020). The embedding has :math:`\min(K, 10)` dimensions. Returns None
    for fewer than :data:`MANIFOLD_MIN_SAMPLES` (or 5K) samples. The GMM keeps the best of
    :data:`MANIFOLD_N_INIT` starts by log-likelihood.

    ``n_neighbors="auto"`` chooses UMAP's neighbourhood by stability, up to
    :data:`MANIFOLD_SELECT_MAX_SAMPLES` samples (beyond, :data:`MANIFOLD_NEIGHBORS`): for each k in
    :data:`MANIFOLD_NEIGHBOR_CANDIDATES` the partition is made from :data:`MANIFOLD_STABILITY_SEEDS` seeds
    (``seed``, ``seed + 1``, ...), and k's stability is the mean adjusted Rand index over the pairs of them,

    .. math:: S(k) = \binom{R}{2}^{-1} \sum_{r < s} \mathrm{ARI}(c^{(k)}_r, c^{(k)}_s).

    The most stable k wins (ties to the larger k), candidates whose partitions
    :func:`mixclust.metrics.degeneracy` flags set aside unless all are; of its R partitions the one of highest
    summed ARI to the others is returned. No label takes part: a neighbourhood that matches the data's
    structure gives the same partition whatever the seed, one that bridges or splits it does not (clustering
    stability, Ben-Hur et al. 2002). Evidence (``benchmarks/probes/probe_manifold_neighbours.py``, VaDE's codes
    with its former defaults, seed 0; NMI of k = 20 against the chosen k, each the mean over seeds 0-2): 20
    rotated objects x 72 views 0.799 against 1.000 (k = 5: each object's ring of views is one component of its
    graph); the other image sets within 0.02 either way.
    """
    codes = np.asarray(codes, dtype=np.float32)
    if len(codes) < max(MANIFOLD_MIN_SAMPLES, 5 * n_clusters):
        return None
    if n_neighbors == "auto" and len(codes) > MANIFOLD_SELECT_MAX_SAMPLES:
        n_neighbors = MANIFOLD_NEIGHBORS
    if n_neighbors != "auto":
        return _umap_gmm(codes, n_clusters, int(n_neighbors), seed)
    candidates = {k: neighbourhood_runs(codes, n_clusters, k, seed) for k in MANIFOLD_NEIGHBOR_CANDIDATES}
    return choose_neighbourhood(candidates, n_clusters)[1]


def neighbourhood_runs(codes: np.ndarray, n_clusters: int, n_neighbors: int, seed: int):
    """The :data:`MANIFOLD_STABILITY_SEEDS` partitions (R arrays (n, K)) with ``n_neighbors``, seeds ``seed``,
    ``seed + 1``, ..., and the (R, R) adjusted Rand indices between their hard labels (1 on the diagonal)."""
    from sklearn.metrics import adjusted_rand_score

    runs = [_umap_gmm(codes, n_clusters, n_neighbors, (seed + r) % 2**32) for r in range(MANIFOLD_STABILITY_SEEDS)]
    labels = [resp.argmax(1) for resp in runs]
    ari = np.eye(len(runs))
    for r, s in itertools.combinations(range(len(runs)), 2):
        ari[r, s] = ari[s, r] = adjusted_rand_score(labels[r], labels[s])
    return runs, ari


def neighbourhood_stability(ari: np.ndarray) -> float:
    """:math:`S(k)` of :func:`manifold_partition`: the mean ARI over the pairs of runs."""
    return float(ari[np.triu_indices(len(ari), 1)].mean())


def choose_neighbourhood(candidates: dict, n_clusters: int) -> tuple[int, np.ndarray]:
    """The rule of ``n_neighbors="auto"`` over ``{k: neighbourhood_runs(...)}``: the most stable k among those
    whose medoid run :func:`mixclust.metrics.degeneracy` does not flag (all, if it flags every one), ties to the
    larger k; returns k and its medoid run (the highest summed ARI to the others)."""
    from .metrics import degeneracy

    best = None
    for k in sorted(candidates, reverse=True):  # ties go to the larger neighbourhood
        runs, ari = candidates[k]
        medoid = runs[int(np.argmax(ari.sum(1)))]
        score = (degeneracy(medoid.argmax(1), n_clusters, medoid) is None, neighbourhood_stability(ari))
        if best is None or score > best[0]:
            best = (score, k, medoid)
    return best[1], best[2]


def _umap_gmm(codes: np.ndarray, n_clusters: int, n_neighbors: int, seed: int) -> np.ndarray:
    """One partition of :func:`manifold_partition`: UMAP with ``n_neighbors``, then the GMM's responsibilities."""
    import umap  # imported here: it compiles with numba on first use

    n_components = int(min(n_clusters, MANIFOLD_MAX_COMPONENTS, len(codes) - 2))
    with warnings.catch_warnings(), _fast_small_data_distances():
        warnings.simplefilter("ignore")  # umap warns that a fixed random_state disables its parallelism
        embedding = umap.UMAP(n_components=max(1, n_components), n_neighbors=min(n_neighbors, len(codes) - 1),
                              min_dist=0.0, random_state=seed).fit_transform(codes)
    from .gmm import GaussianMixture

    embedding = embedding.astype(np.float64)
    gmm = GaussianMixture(n_clusters, covariance_type="full", reg_covar=1e-4, random_state=seed, device="cpu",
                          n_init=MANIFOLD_N_INIT).fit(embedding)
    return gmm.predict_proba(embedding)


#: Training codes whose partition responsibilities a code averages in :func:`neighbour_responsibilities`.
MANIFOLD_PREDICT_NEIGHBOURS = 15


def neighbour_responsibilities(reference: np.ndarray, reference_resp: np.ndarray, codes: np.ndarray,
                               n_neighbors: int = MANIFOLD_PREDICT_NEIGHBOURS, chunk: int = 8192) -> np.ndarray:
    r"""Out-of-sample map of a partition of the ``reference`` codes (n_ref, d) with responsibilities
    ``reference_resp`` (n_ref, K): each of ``codes`` (n, d) gets the mean responsibilities of its m nearest
    reference codes (Euclidean, m = ``n_neighbors``),

    .. math:: p(k \mid z) = \frac1m \sum_{j \in \mathcal N_m(z)} r_{jk}.

    Why: :func:`manifold_partition` partitions a UMAP embedding, which has no out-of-sample map here (and a
    UMAP object cannot be saved without pickled code). The Gaussians of each part fitted in code space (one
    M-step) lose what UMAP found: on a trained VaDE's MNIST latent means (70,000, seed 0) their posterior
    scores NMI 0.9285 against the partition's 0.9413. The neighbours keep it: with the partition of all
    70,000, the 10,000 last codes mapped from the 60,000 first score NMI 0.9457 (the partition itself 0.9474 on
    them), ECE 0.0095, and agree with the partition on 99.5% (benchmarks/probes/probe_manifold_predict.py). Rows sum
    to one; a code equal to a reference code counts it among its neighbours.
    """
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=min(n_neighbors, len(reference))).fit(reference)
    resp = np.asarray(reference_resp, dtype=np.float64)
    out = np.empty((len(codes), resp.shape[1]))
    for start in range(0, len(codes), chunk):  # (chunk, m, K) at a time, not (n, m, K)
        _, neighbours = index.kneighbors(codes[start:start + chunk])
        out[start:start + chunk] = resp[neighbours].mean(axis=1)
    return out


def weighted_gaussians(codes: np.ndarray, resp: np.ndarray, reg: float = 1e-4):
    r"""The M-step of a full-covariance GMM from responsibilities: :math:`N_k = \sum_i r_{ik}`,
    :math:`\mu_k = \sum_i r_{ik} z_i / N_k`, :math:`\Sigma_k = \sum_i r_{ik} (z_i - \mu_k)(z_i - \mu_k)^\top / N_k
    + \text{reg}\, I`. Returns (counts (K,), means (K, d), covariances (K, d, d))."""
    codes = np.asarray(codes, dtype=np.float64)
    counts = resp.sum(0) + 1e-10
    means = resp.T @ codes / counts[:, None]
    d = codes.shape[1]
    covariances = np.empty((len(counts), d, d))
    for k in range(len(counts)):
        centred = codes - means[k]
        covariances[k] = (resp[:, k, None] * centred).T @ centred / counts[k] + reg * np.eye(d)
    return counts, means, covariances


class DeepEstimator(MixclustEstimator):
    """Shared machinery; subclasses define ``_build_modules`` and their losses.

    Fitted attributes set here: ``input_shape_`` (shape of one sample),
    ``arch_`` (the resolved architecture), ``n_features_in_``, ``input_scale_`` (see :meth:`_validate_input`).
    """

    #: ``"auto"`` budgets: parameter -> (min_epochs, min_steps) of :func:`auto_epochs`.
    _auto_epochs: dict[str, tuple[int, int]] = {}

    def _check_training_parameters(self) -> None:
        check_option(self.arch, "arch", ARCHS)
        for name in ("epochs", *self._auto_epochs):
            if getattr(self, name) != "auto" or name not in self._auto_epochs:
                check_int(getattr(self, name), name, 0)
        if self.batch_size != "auto":
            check_int(self.batch_size, "batch_size", 1)
        check_float(self.lr, "lr", 0.0, strict=True)
        check_int(self.verbose, "verbose", 0)
        if self.clip_norm is not None:
            check_float(self.clip_norm, "clip_norm", 0.0, strict=True)
        if self.patience is not None:
            check_int(self.patience, "patience", 1)
        resolve_device(self.device)

    def _resolve_budget(self, n_samples: int) -> None:
        """Set ``batch_size_`` and ``<name>_`` for every epoch parameter, resolving ``"auto"`` for n_samples."""
        self.batch_size_ = auto_batch_size(n_samples) if self.batch_size == "auto" else int(self.batch_size)
        for name in dict.fromkeys(("epochs", *self._auto_epochs)):
            value = getattr(self, name)
            setattr(self, f"{name}_", auto_epochs(n_samples, self.batch_size_, *self._auto_epochs[name])
                    if value == "auto" else int(value))

    def _check_n_clusters(self, n_samples: int, name: str = "n_clusters") -> int:
        """The number of clusters: a positive int no larger than the number of samples."""
        K = check_int(getattr(self, name), name, 1)
        if n_samples < K:
            raise ValueError(f"{name}={K} is larger than the number of samples ({n_samples})")
        return K

    # -- restarts: n_init runs, the best by the model's own objective, degenerate runs set aside ------------
    #: What to try when every run is degenerate (the model's warning ends with it).
    _degenerate_hint = ""

    def _check_n_init(self) -> None:
        if self.n_init != "auto":
            check_int(self.n_init, "n_init", 1)

    def _fit_with_restarts(self, fit_once, X: np.ndarray) -> None:
        """Run ``fit_once()`` (which sets the fitted attributes and ``labels_``, and returns the soft
        assignments (n, K) of X it took them from, so they are not computed twice) ``n_init`` times, each
        from another seed, and keep the run with the lowest :meth:`_objective` on X among those that
        :func:`mixclust.metrics.degeneracy` does not flag (among all if every run is flagged, with a
        :class:`DegenerateFitWarning`). ``n_init="auto"``: one run, and more (up to :data:`AUTO_MAX_RUNS`)
        only while the result is degenerate, so a healthy fit costs one run.

        Sets ``n_init_objectives_`` (each run's objective), ``n_init_degenerate_`` (each run's reason or
        None) and ``best_init_``. Labels never enter the choice.
        """
        from .metrics import degeneracy

        auto = self.n_init == "auto"
        max_runs = AUTO_MAX_RUNS if auto else int(self.n_init)
        base = self._seed_value()
        runs = []
        try:
            for run in range(max_runs):
                self._drawn_seed = (base + _RESTART_SEED_STEP * run) % (2**31 - 1)
                self._stage_suffix = f"-run{run + 1}" if run else ""
                self._degenerate_so_far = sum(r[1] is not None for r in runs)
                proba = fit_once()
                K = int(getattr(self, self._n_clusters_param))
                reason = degeneracy(self.labels_, K, proba)
                runs.append((self._objective(X), reason, self._fitted_snapshot()))
                if auto and reason is None:
                    break
        finally:
            self._drawn_seed = base
            self._stage_suffix = ""
            self._degenerate_so_far = 0
        healthy = [i for i, r in enumerate(runs) if r[1] is None]
        best = min(healthy or range(len(runs)), key=lambda i: runs[i][0])
        vars(self).update(runs[best][2])
        self.n_init_objectives_ = [float(r[0]) for r in runs]
        self.n_init_degenerate_ = [r[1] for r in runs]
        self.best_init_ = int(best)
        if not healthy:
            K = int(getattr(self, self._n_clusters_param))
            sizes = np.bincount(self.labels_, minlength=K)
            category = EmptyClusterWarning if (sizes == 0).any() else DegenerateFitWarning
            warnings.warn(f"{type(self).__name__}: the fit is degenerate after {len(runs)} run(s) "
                          f"({runs[best][1]})" + (f"; {self._degenerate_hint}" if self._degenerate_hint else ""),
                          category, stacklevel=4)  # this, the model's fit, keeps_global_rng, the caller

    def _fitted_snapshot(self) -> dict:
        """Everything a run set on the estimator (fitted attributes and private state), not its parameters."""
        params = set(self.get_params(deep=False))
        return {k: v for k, v in vars(self).items()
                if k not in params and k not in ("_drawn_seed", "_stage_suffix", "_degenerate_so_far")}

    def _objective(self, X: np.ndarray) -> float:
        """The model's own unsupervised objective on X (lower is better), to choose among restarts."""
        raise NotImplementedError

    def _validate_input(self, X, reset: bool, min_samples: int = 2) -> np.ndarray:
        """Check X and, at fit (``reset``), record the sample shape; later calls must match it. A pandas
        DataFrame's column names are kept as ``feature_names_in_`` and checked later, as scikit-learn does.

        Intensities in other units train as their [0, 1] version: when the training data are non-negative
        with a maximum m above 1 (8-bit pixels 0..255, scikit-learn's digits 0..16, counts), every input is
        divided by ``input_scale_`` = m (else ``input_scale_`` = 1 and X is used as given), and outputs in
        data space (reconstructions, prototypes, samples) are multiplied back. Why: the networks, the sigmoid
        output and VaDE's prior bounds assume values of about unit size; on digits x 255, VaDE's encoder
        log-variances reached +-90 and its loss became NaN at the first step, where on digits in [0, 1] it
        scores NMI 0.886 (benchmarks/probes/probe_input_units.py). Data with negative values (standardised
        tables, [-1, 1] images) are used as given."""
        _check_feature_names(self, X, reset=reset)
        X = as_float_array(X, min_samples=min_samples if reset else 1)
        if X.ndim == 3:
            X = X[:, None]
        if X.ndim not in (2, 4):
            raise ValueError(f"X must be 2-D (n_samples, n_features) or 4-D images (n, C, H, W), "
                             f"got shape {X.shape}")
        if reset:
            low, high = float(X.min()), float(X.max())
            self.input_scale_ = intensity_scale(low, high)
            # what the network sees, named in the error if training then diverges
            self._input_range = (low / self.input_scale_, high / self.input_scale_)
            X = self._to_unit_scale(X)
            self._data_fingerprint = data_fingerprint(X)
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
            self.n_features_in_ = int(np.prod(self.input_shape_))
            # "auto" is the MLP for images too: with the defaults before issue 17, on digits, 1,000 MNIST and
            # Fashion-MNIST images and 16 x 16 digits, the conv networks of VaDE, AEClustering and MoA lost to
            # the MLP on the flattened pixels in 7 of 12 pairs (won 4, two of them against a collapsed flat
            # VaDE), and MoA's conv experts took 5-10x longer.
            self.arch_ = "mlp" if self.arch == "auto" else self.arch
            if self.arch_ == "conv" and X.ndim != 4:
                raise ValueError("arch='conv' needs images (n, C, H, W); got tabular input of shape "
                                 f"{X.shape}. Use arch='mlp' or 'auto'.")
        else:
            check_is_fitted(self)
            if tuple(X.shape[1:]) != self.input_shape_:
                if X.ndim == 2 and X.shape[1] == self.n_features_in_:
                    X = X.reshape(len(X), *self.input_shape_)
                elif X.ndim == 2 and len(self.input_shape_) == 1:
                    raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                     f"{self.n_features_in_} features as input")
                else:
                    raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but the model was fitted "
                                     f"on samples of shape {self.input_shape_}")
            X = self._to_unit_scale(X)
        return X

    def _to_unit_scale(self, X: np.ndarray) -> np.ndarray:
        """Inputs divided by ``input_scale_`` (models saved before it existed: 1)."""
        scale = getattr(self, "input_scale_", 1.0)
        return X if scale == 1.0 else (X / np.float32(scale)).astype(X.dtype, copy=False)

    def _to_data_units(self, output: np.ndarray, power: int = 1) -> np.ndarray:
        """Outputs in data space (``power`` 1: reconstructions; 2: squared errors) back in the data's units."""
        scale = getattr(self, "input_scale_", 1.0)
        return output if scale == 1.0 else output * np.asarray(scale, dtype=output.dtype) ** power

    def _validation_pair(self, validation_data, check_X=None):
        """``(X_val, y_val)`` checked against the fitted input shape (or by ``check_X``), or None.

        Labels only ever reach monitoring and early stopping, never a loss.
        """
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        check_X = check_X or (lambda X: self._validate_input(X, reset=False))
        X_val = check_X(validation_data[0])
        y_val = np.asarray(validation_data[1])
        if y_val.shape != (len(X_val),):
            raise ValueError(f"y_val must have shape ({len(X_val)},), got {y_val.shape}")
        return X_val, y_val

    # -- warm starts: reuse a costly first stage across fits that differ only later --------------------
    #: Parameters a warm start must share with the model it came from (subclasses list theirs).
    _warm_start_params: tuple[str, ...] = ()
    #: Parameters of ``network_`` that the second stage initialises itself, so a warm start may lack them
    #: (or carry extra ones), e.g. VaDE's full-covariance prior factors.
    _warm_start_free_keys: tuple[str, ...] = ()

    def _keep_warm_start(self, X: np.ndarray, **extra) -> None:
        """Remember ``network_`` as it is now (in memory only, never saved) for ``fit(<warm start>=self)``."""
        self._warm_start = {"state": {k: v.detach().clone() for k, v in self.network_.state_dict().items()},
                            "fingerprint": data_fingerprint(X),
                            "params": {k: getattr(self, k) for k in self._warm_start_params}, **extra}

    def _adopt_warm_start(self, other, X: np.ndarray, argument: str) -> dict:
        """Check that ``other`` may warm-start this fit on X, load its network and return its record."""
        record = getattr(other, "_warm_start", None)
        if not isinstance(other, type(self)) or record is None:
            raise ValueError(f"{argument} must be a {type(self).__name__} fitted in this session "
                             f"(the warm-start state is not saved with the model)")
        mismatched = [k for k in self._warm_start_params if record["params"][k] != getattr(self, k)]
        if mismatched:
            raise ValueError(f"{argument} differs in parameters its first stage depends on: {', '.join(mismatched)}")
        if record["fingerprint"] != data_fingerprint(X):
            raise ValueError(f"{argument} was fitted on different data")
        for key, value in record.items():
            if key.endswith("_"):
                setattr(self, key, value)
        self.network_ = self._build_modules(vars(self))["network_"]
        missing, unexpected = self.network_.load_state_dict(record["state"], strict=False)
        foreign = sorted(set(missing + unexpected) - set(self._warm_start_free_keys))
        if foreign:
            raise ValueError(f"{argument} has a different network (parameters {', '.join(foreign)} differ)")
        self._warm_start = record
        return record

    def _seed(self) -> int:
        """Seed the global generators (torch's weight initialisation draws from them) from ``random_state``;
        the public fitting methods are wrapped in :func:`keeps_global_rng`, which restores them after."""
        seed = self._seed_value()
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        return seed

    def _to_device(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(X, device=self._device())

    def _trainer(self, module, name: str, epochs: int | None = None, lr: float | None = None,
                 patience=None, **kwargs) -> Trainer:
        """A Trainer configured from this estimator's parameters (a restart's stages get their own names, so
        their checkpoints never overwrite the first run's)."""
        name = name + getattr(self, "_stage_suffix", "")
        return Trainer(module, epochs=self.epochs_ if epochs is None else epochs, batch_size=self.batch_size_,
                       lr=self.lr if lr is None else lr, clip_norm=self.clip_norm, patience=patience,
                       checkpoint_dir=getattr(self, "checkpoint_dir", None), name=name,
                       seed=self._seed_value(), verbose=self.verbose, signature=self._checkpoint_signature(name),
                       **kwargs)

    #: Parameters a checkpoint may differ in and still be resumed: how the run is shown, where it runs and
    #: how long it trains (a run with more epochs continues a finished checkpoint).
    _RESUMABLE_ACROSS = ("verbose", "device", "checkpoint_dir", "epochs", "patience")

    def _checkpoint_signature(self, stage: str) -> dict:
        """What a checkpoint of ``stage`` is written for: the estimator, its parameters, the data."""
        params = {k: _signature_value(v) for k, v in self.get_params(deep=False).items()
                  if k not in self._RESUMABLE_ACROSS}
        return {"estimator": type(self).__name__, "stage": stage, **params,
                "data": repr(getattr(self, "_data_fingerprint", None))}

    def _seed_value(self) -> int:
        """The fit's seed: ``random_state`` if an int; drawn once per fit (by :func:`keeps_global_rng`) from
        NumPy's global generator for ``None`` and from the given generator for a ``RandomState``, as in
        scikit-learn."""
        drawn = getattr(self, "_drawn_seed", None)
        if drawn is not None:
            return drawn
        return _draw_seed(self.random_state)

    @torch.no_grad()
    def _batched(self, fn, X: np.ndarray, batch_size: int = INFERENCE_BATCH) -> list:
        """Apply ``fn`` to X in batches on the model's device (eval mode); returns the list of outputs."""
        device = self._device()
        outputs = []
        for start in range(0, len(X), batch_size):
            outputs.append(fn(torch.as_tensor(X[start:start + batch_size], device=device)))
        return outputs

    @staticmethod
    def _cat(outputs) -> np.ndarray:
        return torch.cat(outputs).cpu().numpy()
