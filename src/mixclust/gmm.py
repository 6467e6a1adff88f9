r"""Gaussian mixture model fitted by expectation-maximisation, in torch (SPEC §4).

.. math::

    p(x) = \sum_{k=1}^K \pi_k \, \mathcal N(x \mid \mu_k, \Sigma_k)

**E-step** (log space, one log-sum-exp per sample):

.. math::

    \log \gamma_{nk} = \log \pi_k + \log \mathcal N(x_n \mid \mu_k, \Sigma_k)
                       - \operatorname{logsumexp}_j \bigl[\log \pi_j + \log \mathcal N(x_n \mid \mu_j, \Sigma_j)\bigr]

**M-step**:

.. math::

    N_k = \sum_n \gamma_{nk}, \quad \pi_k = N_k / N, \quad \mu_k = \frac{1}{N_k}\sum_n \gamma_{nk} x_n, \quad
    \Sigma_k = \frac{1}{N_k}\sum_n \gamma_{nk} (x_n - \mu_k)(x_n - \mu_k)^\top + \epsilon I

with :math:`\epsilon` = ``reg_covar`` (diagonal, spherical and tied covariances are the
usual restrictions, as in scikit-learn).

**How it is computed.** The log-density of every component is *linear* in the
feature vector :math:`f(x) = [q(x), x, 1]`, where :math:`q(x)` holds the products
:math:`x_i x_j, i \le j` (full, tied), the squares :math:`x_j^2` (diag) or
:math:`\lVert x\rVert^2` (spherical):

.. math::

    \log \pi_k + \log \mathcal N(x \mid \mu_k, \Sigma_k) =
    -\tfrac12 x^\top P_k x + \mu_k^\top P_k x
    + \bigl[\log \pi_k + \log\lvert L_k\rvert - \tfrac d2 \log 2\pi - \tfrac12 \mu_k^\top P_k \mu_k\bigr]
    = f(x)^\top w_k,

with :math:`P_k = \Sigma_k^{-1} = L_k L_k^\top` (``precisions_cholesky_`` holds
:math:`L_k`). So the E-step for a chunk of rows is one matrix product
:math:`F W` (chunk x m by m x K), and the M-step sufficient statistics
:math:`\sum_n \gamma_{nk} f(x_n)` (counts, first and second moments) are the
transposed product :math:`\Gamma^\top F` of the same chunk while it is still in
cache. The data are centred first (on the mixture mean) so the expanded
quadratic form loses no precision. Both products run in ``dtype`` (float64 by
default on the CPU); statistics and the M-step are always accumulated in float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import distributed
from ._base import MixclustEstimator, check_float, check_int, check_option, resolve_device
from ._progress import progress
from ._registry import register

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
LOG_2PI = math.log(2.0 * math.pi)
# During fit the feature chunks are kept across EM iterations up to this size (bytes).
FEATURE_CACHE_BYTES = 1 << 30
CACHE_BLOCK_CHUNKS = 16
# scikit-learn adds this to every N_k so an empty component keeps finite parameters.
_NK_FLOOR = 10 * np.finfo(np.float64).eps
_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical covariance "
    "(for instance caused by singleton or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)
# Appended when the fit ran its products in float32, whose rounding can be the cause.
_FLOAT32_HINT = " The fit ran in float32: dtype='float64' may fix it."


# ------------------------------------------------------------------------------------------------
# The maths, one function per step
# ------------------------------------------------------------------------------------------------
def _n_quadratic(n_features: int, covariance_type: str) -> int:
    """Number of quadratic features q(x): d(d+1)/2 (full, tied), d (diag), 1 (spherical)."""
    return {"full": n_features * (n_features + 1) // 2, "tied": n_features * (n_features + 1) // 2,
            "diag": n_features, "spherical": 1}[covariance_type]


def _features(X: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """Feature matrix F = [q(X), X, 1], shape (n, m) with m = n_quadratic + d + 1."""
    n, d = X.shape
    n_quad = _n_quadratic(d, covariance_type)
    F = X.new_empty(n, n_quad + d + 1)
    if covariance_type in ("full", "tied"):
        # Row i of the upper triangle is x_i * x[i:], written in place: a gather by triu
        # indices was measured 4-9x slower than these d contiguous products.
        offset = 0
        for i in range(d):
            torch.mul(X[:, i:i + 1], X[:, i:], out=F[:, offset:offset + d - i])
            offset += d - i
    elif covariance_type == "diag":
        torch.mul(X, X, out=F[:, :d])
    else:
        torch.sum(X * X, dim=1, keepdim=True, out=F[:, :1])
    F[:, n_quad:n_quad + d] = X
    F[:, -1] = 1.0
    return F


def _log_tiny(dtype: torch.dtype) -> float:
    """A little above the log of the smallest normal number of ``dtype``: -700.4 in float64, -79.3 in
    float32 (at log(tiny) itself exp still took the slow path, measured 4-20x slower)."""
    return math.log(torch.finfo(dtype).tiny) + 8.0


def _unpack_symmetric(packed: torch.Tensor, n_features: int, triu: torch.Tensor) -> torch.Tensor:
    """Symmetric (..., d, d) matrices from their packed upper triangles (..., d(d+1)/2)."""
    out = packed.new_zeros(*packed.shape[:-1], n_features, n_features)
    out[..., triu[0], triu[1]] = packed
    out[..., triu[1], triu[0]] = packed
    return out


def _precisions(precisions_cholesky: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """P = L L^T from the Cholesky factors of the precisions (squares for diag/spherical)."""
    if covariance_type in ("full", "tied"):
        return precisions_cholesky @ precisions_cholesky.mT
    return precisions_cholesky**2


def _log_det_cholesky(precisions_cholesky: torch.Tensor, covariance_type: str, n_features: int):
    """log|L_k| = 0.5 log|P_k|, shape (K,) or a scalar for tied."""
    if covariance_type in ("full", "tied"):
        return torch.log(torch.diagonal(precisions_cholesky, dim1=-2, dim2=-1)).sum(-1)
    if covariance_type == "diag":
        return torch.log(precisions_cholesky).sum(-1)
    return n_features * torch.log(precisions_cholesky)


def _natural_parameters(weights, means, precisions_cholesky, covariance_type, triu) -> torch.Tensor:
    r"""W (m x K) such that ``_features(X) @ W`` is :math:`\log \pi_k + \log \mathcal N(x \mid \mu_k, \Sigma_k)`."""
    n_components, n_features = means.shape
    precisions = _precisions(precisions_cholesky, covariance_type)
    if covariance_type in ("full", "tied"):
        # Off-diagonal products appear twice in x^T P x.
        off_diagonal = torch.where(triu[0] == triu[1], 1.0, 2.0).to(means.dtype)
        if covariance_type == "tied":
            precisions = precisions.expand(n_components, n_features, n_features)
        quad = precisions[:, triu[0], triu[1]] * off_diagonal
        precision_mean = torch.einsum("kij,kj->ki", precisions, means)
    elif covariance_type == "diag":
        quad = precisions
        precision_mean = precisions * means
    else:
        quad = precisions[:, None]
        precision_mean = precisions[:, None] * means
    log_det = _log_det_cholesky(precisions_cholesky, covariance_type, n_features).expand(n_components)
    constant = (torch.log(weights) + log_det - 0.5 * n_features * LOG_2PI
                - 0.5 * (precision_mean * means).sum(1))
    return torch.cat([-0.5 * quad, precision_mean, constant[:, None]], dim=1).T


def _m_step(stats: torch.Tensor, n_features: int, covariance_type: str, reg_covar: float, triu,
            total_quad: torch.Tensor | None = None):
    r"""Weights, means and covariances from the sufficient statistics :math:`S = \Gamma^\top F` (K x m).

    ``S[:, -1]`` are the counts :math:`N_k`, ``S[:, q:q+d]`` the sums
    :math:`\sum_n \gamma_{nk} x_n`, ``S[:, :q]`` the weighted quadratic features.
    Covariances are second moments minus the outer product of the means, plus
    ``reg_covar`` on the diagonal. The tied covariance uses the unweighted
    :math:`\sum_n q(x_n)` (``total_quad``) when given, as scikit-learn does; it
    differs from ``S[:, :q].sum(0)`` only when responsibility rows do not sum
    to one (the seed-point initialisations).
    """
    n_quad = stats.shape[1] - n_features - 1
    nk = stats[:, -1] + _NK_FLOOR
    means = stats[:, n_quad:n_quad + n_features] / nk[:, None]
    quad = stats[:, :n_quad]
    if covariance_type == "full":
        second = _unpack_symmetric(quad, n_features, triu) / nk[:, None, None]
        covariances = second - means[:, :, None] * means[:, None, :]
        covariances.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    elif covariance_type == "tied":
        second = _unpack_symmetric(quad.sum(0) if total_quad is None else total_quad, n_features, triu)
        covariances = (second - (nk[:, None] * means).T @ means) / nk.sum()
        covariances.diagonal().add_(reg_covar)
    elif covariance_type == "diag":
        covariances = quad / nk[:, None] - means**2 + reg_covar
    else:
        covariances = (quad[:, 0] / nk - (means**2).sum(1)) / n_features + reg_covar
    return nk / nk.sum(), means, covariances


#: Exponent alpha of the stepwise-EM step size eta_t = (t + 1)^(-alpha) (Cappé & Moulines 2009: alpha in (0.5, 1]).
STEPWISE_ALPHA = 0.6


def stepwise_rate(step: int, alpha: float = STEPWISE_ALPHA) -> float:
    r"""Step size of the ``step``-th stepwise-EM update (1-based): :math:`\eta_t = (t + 1)^{-\alpha}`."""
    return float((step + 1) ** -alpha)


def _compute_precision_cholesky(covariances: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """Cholesky factors L of the precisions (P = L L^T); ValueError if a covariance is not positive definite."""
    if covariance_type in ("full", "tied"):
        cov_chol, info = torch.linalg.cholesky_ex(covariances)
        if bool((info > 0).any()):
            raise ValueError(_ILL_DEFINED)
        eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
        eye = eye.expand_as(covariances)
        return torch.linalg.solve_triangular(cov_chol, eye, upper=False).mT
    if bool((covariances <= 0).any()):
        raise ValueError(_ILL_DEFINED)
    return covariances.rsqrt()


def _precision_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """Shape of ``precisions_`` / ``precisions_cholesky_`` (and of ``precisions_init``) for a covariance type."""
    K, d = n_components, n_features
    return {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}[covariance_type]


def _n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of the model (for BIC/AIC)."""
    cov = {"full": n_components * n_features * (n_features + 1) / 2,
           "tied": n_features * (n_features + 1) / 2,
           "diag": n_components * n_features,
           "spherical": n_components}[covariance_type]
    return int(cov + n_components * n_features + n_components - 1)


class _Rows:
    """Rows of the data, centred on ``shift`` and cast to ``dtype``, handed out as torch chunks.

    ``X`` is a torch tensor (already centred, used as it is) or a 2-D numpy array
    of which the rows ``rows`` are used (all of them by default; one rank's shard
    when fitting across processes). An in-memory array is converted once; a
    memory-mapped one (``np.load(path, mmap_mode="r")``, ``np.memmap``) with
    ``stream=True`` is read and converted chunk by chunk on every pass, so only one
    chunk of it is ever held as float64 (out of core). Elementwise, both give the
    same values, x - shift rounded to ``dtype``.
    """

    def __init__(self, X, shift=None, dtype=None, rows: range | None = None, stream: bool = False):
        rows = range(X.shape[0]) if rows is None else rows
        self.n, self.d = len(rows), X.shape[1]
        if torch.is_tensor(X):
            self._tensor, self.dtype, self.device = X[rows.start:rows.stop], X.dtype, X.device
            return
        self._array, self._rows, self._shift, self.dtype, self.device = X, rows, shift, dtype, shift.device
        self._tensor = None if stream else self._convert(rows.start, rows.stop)

    @property
    def streamed(self) -> bool:
        """Whether the rows are read and converted chunk by chunk on every pass (a memory map, ``stream=True``)."""
        return self._tensor is None

    def _convert(self, start: int, stop: int) -> torch.Tensor:
        block = np.asarray(self._array[start:stop], dtype=np.float64)
        if not block.flags.writeable:  # a read-only map: torch wants a writable buffer, copy the chunk
            block = block.copy()
        return (torch.as_tensor(block, device=self.device) - self._shift).to(self.dtype)

    def chunks(self, size: int):
        """Yield (offset of the chunk within these rows, chunk of at most ``size`` rows)."""
        for start in range(0, self.n, size):
            stop = min(start + size, self.n)
            if self._tensor is not None:
                yield start, self._tensor[start:stop]
            else:
                yield start, self._convert(self._rows.start + start, self._rows.start + stop)


class _FeatureChunks:
    """The feature matrix F of the (centred) rows (a :class:`_Rows` or a tensor), iterable chunk by chunk.

    With ``cache`` (during fit) the chunks are built once and kept between EM
    iterations if they take at most ``FEATURE_CACHE_BYTES``; otherwise each pass
    rebuilds them, so memory stays bounded by one chunk whatever n is.
    """

    def __init__(self, rows: _Rows | torch.Tensor, covariance_type: str, chunk: int, cache: bool):
        rows = rows if isinstance(rows, _Rows) else _Rows(rows)
        self.rows, self.covariance_type, self.chunk = rows, covariance_type, chunk
        itemsize = torch.finfo(rows.dtype).bits // 8
        size = rows.n * (_n_quadratic(rows.d, covariance_type) + rows.d + 1) * itemsize
        # Built in blocks of CACHE_BLOCK_CHUNKS chunks: the d column products of _features then run on long
        # columns (built chunk by chunk, the cache took 8x longer, 130 ms at 50,000 x 32). A streamed memory map
        # is still converted one chunk at a time, so no more than a chunk of it is ever held as float64.
        block = 1 if rows.streamed else CACHE_BLOCK_CHUNKS
        self._cached = list(self._build(block)) if cache and size <= FEATURE_CACHE_BYTES else None

    def _build(self, block_chunks: int = 1):
        """Features of ``block_chunks`` chunks at a time, handed out chunk by chunk (views of the block)."""
        for block_start, X in self.rows.chunks(self.chunk * block_chunks):
            F = _features(X, self.covariance_type)
            for start in range(0, F.shape[0], self.chunk):
                yield block_start + start, F[start:start + self.chunk]

    def __iter__(self):
        return iter(self._cached) if self._cached is not None else self._build()


def _column_mean(X: np.ndarray, chunk: int) -> np.ndarray:
    """Float64 mean of the columns of X, summed chunk by chunk (a memory-mapped X is never copied whole)."""
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, X.shape[0], chunk):
        total += np.asarray(X[start:start + chunk], dtype=np.float64).sum(axis=0)
    return total / X.shape[0]


# ------------------------------------------------------------------------------------------------
# Missing values: exact EM over the observed dimensions (Ghahramani & Jordan 1994)
# ------------------------------------------------------------------------------------------------
MISSING = ("error", "marginalize")
_NOT_FINITE = ("the log-likelihood is not finite; the data may have extreme values (scale them) or reg_covar is "
               "too small")


def _has_nan(X: np.ndarray, chunk: int) -> bool:
    """Whether X holds a NaN, read chunk by chunk (a memory-mapped X is never copied whole)."""
    return any(np.isnan(X[start:start + chunk]).any() for start in range(0, X.shape[0], chunk))


def _name_indices(indices: np.ndarray, what: str, limit: int = 10) -> str:
    """'row 3' / 'rows 3, 7 and 9' (at most ``limit`` listed, then 'and N more')."""
    listed = [str(i) for i in indices[:limit]]
    if len(indices) == 1:
        return f"{what} {listed[0]}"
    if len(indices) > limit:
        return f"{what}s {', '.join(listed)} and {len(indices) - limit} more"
    return f"{what}s {', '.join(listed[:-1])} and {listed[-1]}"


def _check_observed(mask: np.ndarray, columns: bool) -> None:
    """ValueError naming every row (and, at fit, column) whose entries are all missing (``mask``: isnan)."""
    empty = np.flatnonzero(mask.all(axis=1))
    if len(empty):
        verb = "has" if len(empty) == 1 else "have"
        raise ValueError(f"{_name_indices(empty, 'row')} {verb} no observed value (all NaN): such a row carries "
                         "no information for the mixture; drop it")
    empty = np.flatnonzero(mask.all(axis=0)) if columns else []
    if len(empty):
        verb = "has" if len(empty) == 1 else "have"
        raise ValueError(f"{_name_indices(empty, 'column')} {verb} no observed value (all NaN): no mean or "
                         "variance can be estimated there; drop it")


class _Pattern:
    """The rows sharing one missingness pattern: their indices, observed and missing dimensions, and their
    observed entries (centred, float64 torch)."""

    def __init__(self, rows: np.ndarray, observed: np.ndarray, X: np.ndarray, device):
        self.rows = rows
        self.index = torch.as_tensor(rows, device=device)
        self.observed = torch.as_tensor(np.flatnonzero(observed), device=device)
        self.missing = torch.as_tensor(np.flatnonzero(~observed), device=device)
        self.X_o = torch.as_tensor(X[np.ix_(rows, observed)], device=device)


def _missing_patterns(X: np.ndarray, mask: np.ndarray, device) -> list[_Pattern]:
    """Group the rows of X (centred, NaN where ``mask``) by missingness pattern (``np.unique`` of the mask rows)."""
    patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(patterns) + 1))
    return [_Pattern(order[bounds[p]:bounds[p + 1]], ~patterns[p], X, device) for p in range(len(patterns))]


def _full_covariances(covariances: torch.Tensor, covariance_type: str, n_components: int, n_features: int):
    """Every component's covariance as a (K, d, d) matrix (tied shared, diag and spherical on the diagonal)."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return covariances.expand(n_components, n_features, n_features)
    if covariance_type == "diag":
        return torch.diag_embed(covariances)
    eye = torch.eye(n_features, dtype=covariances.dtype, device=covariances.device)
    return covariances[:, None, None] * eye


def _covariances_from_cholesky(precisions_cholesky: torch.Tensor, covariance_type: str) -> torch.Tensor:
    r"""Covariances :math:`\Sigma = P^{-1} = L^{-\top} L^{-1}` from the factors :math:`P = L L^\top` of the precisions.

    :math:`L` is upper triangular when it comes from a fit (``_compute_precision_cholesky``) and lower
    triangular from ``precisions_init``, so it is inverted as a general matrix.
    """
    if covariance_type in ("full", "tied"):
        inverse = torch.linalg.inv(precisions_cholesky)
        return inverse.mT @ inverse
    return precisions_cholesky**-2


def _pattern_chunks(patterns: list[_Pattern], weights, means, covariances, chunk: int, conditionals: bool):
    r"""Per pattern and row chunk: (pattern, chunk offset, :math:`\log \pi_k + \log \mathcal N(x_o \mid \mu_{k,o},
    \Sigma_{k,oo})` as (K, rows), and with ``conditionals`` the conditional means of the missing dimensions
    (K, rows, d_m) and the conditional covariance :math:`C_k` (K, d_m, d_m)), else None, None.

    With :math:`\Sigma_{k,oo} = L L^\top`, :math:`z = L^{-1}(x_o - \mu_{k,o})` and
    :math:`B = L^{-1} \Sigma_{k,om}`: the Mahalanobis term is :math:`\lVert z\rVert^2`,
    :math:`\Sigma_{k,mo}\Sigma_{k,oo}^{-1}(x_o - \mu_{k,o}) = B^\top z` and :math:`C_k = \Sigma_{k,mm} - B^\top B`.
    ``covariances`` are the (K, d, d) matrices (``_full_covariances``); all in float64.
    """
    log_weights = torch.log(weights)[:, None]
    for pattern in patterns:
        o, m = pattern.observed, pattern.missing
        cov_o = covariances[:, o]
        L, info = torch.linalg.cholesky_ex(cov_o[:, :, o])
        if bool((info > 0).any()):
            raise ValueError(_ILL_DEFINED)
        constant = log_weights - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)[:, None] \
            - 0.5 * len(o) * LOG_2PI
        B = C = None
        if conditionals and len(m):
            B = torch.linalg.solve_triangular(L, cov_o[:, :, m], upper=False)
            C = covariances[:, m][:, :, m] - B.mT @ B
        means_o = means[:, o]
        for start in range(0, len(pattern.rows), chunk):
            X_o = pattern.X_o[start:start + chunk]
            z = torch.linalg.solve_triangular(L, (X_o[None] - means_o[:, None]).mT, upper=False)  # (K, d_o, b)
            weighted = constant - 0.5 * z.square().sum(1)
            conditional = None if B is None else means[:, None, m] + (B.mT @ z).mT
            yield pattern, start, weighted, conditional, C


def _missing_e_pass(patterns: list[_Pattern], weights, means, covariances, n_samples: int, chunk: int):
    r"""E-step with missing values: the observed-data log-likelihood (sum over rows), the labels, and the
    expected sufficient statistics :math:`N_k`, :math:`\sum_i r_{ik} \hat x_{ik}` and
    :math:`\sum_i r_{ik} (\hat x_{ik} \hat x_{ik}^\top + \tilde C_{ik})` (float64)."""
    K, d = means.shape
    counts = means.new_zeros(K)
    sums = means.new_zeros(K, d)
    second = means.new_zeros(K, d, d)
    log_lik = means.new_zeros(())
    labels = np.empty(n_samples, dtype=np.int64)
    for pattern, start, weighted, conditional, C in _pattern_chunks(patterns, weights, means, covariances,
                                                                  chunk, conditionals=True):
        norm = torch.logsumexp(weighted, dim=0)
        log_lik += norm.sum()
        resp = torch.exp(weighted - norm)  # (K, b)
        labels[pattern.rows[start:start + resp.shape[1]]] = weighted.argmax(0).cpu().numpy()
        X_hat = means.new_empty(K, resp.shape[1], d)
        X_hat[:, :, pattern.observed] = pattern.X_o[start:start + resp.shape[1]]
        mass = resp.sum(1)
        if conditional is not None:
            X_hat[:, :, pattern.missing] = conditional
            m = pattern.missing
            second[:, m[:, None], m] += mass[:, None, None] * C
        weighted_rows = resp[:, :, None] * X_hat
        counts += mass
        sums += weighted_rows.sum(1)
        second += weighted_rows.mT @ X_hat
    return float(log_lik), labels, (counts, sums, second)


def _packed_statistics(stats, covariance_type: str, triu) -> torch.Tensor:
    r"""The expected statistics of a pass with missing values, :math:`N_k`, :math:`\sum_i r_{ik} \hat x_{ik}` and
    :math:`\sum_i r_{ik} (\hat x_{ik} \hat x_{ik}^\top + \tilde C_{ik})`, in the layout of :math:`S = \Gamma^\top F`
    that :func:`_m_step` reads (the quadratic part packed as ``_features`` packs :math:`x x^\top` for the
    covariance type), so the M-step formulas live in one place for complete and missing data."""
    counts, sums, second = stats
    if covariance_type in ("full", "tied"):
        quad = second[:, triu[0], triu[1]]
    elif covariance_type == "diag":
        quad = second.diagonal(dim1=-2, dim2=-1)
    else:
        quad = second.diagonal(dim1=-2, dim2=-1).sum(1, keepdim=True)
    return torch.cat([quad, sums, counts[:, None]], dim=1)


def _missing_weighted_log_prob(patterns: list[_Pattern], weights, means, covariances, n_samples: int,
                               chunk: int) -> torch.Tensor:
    r""":math:`\log \pi_k + \log \mathcal N(x_o \mid \mu_{k,o}, \Sigma_{k,oo})` of every row, (n, K) float64."""
    out = means.new_empty(n_samples, means.shape[0])
    for pattern, start, weighted, _, _ in _pattern_chunks(patterns, weights, means, covariances, chunk,
                                                          conditionals=False):
        out[pattern.index[start:start + weighted.shape[1]]] = weighted.T
    return out


# ------------------------------------------------------------------------------------------------
# The estimator
# ------------------------------------------------------------------------------------------------
@register("gmm")
class GaussianMixture(MixclustEstimator):
    r"""Gaussian mixture fitted by EM in torch; a drop-in for ``sklearn.mixture.GaussianMixture``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    tol : float, default=1e-3
        EM stops when the mean log-likelihood per sample changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance: keeps a collapsed component finite.
    max_iter : int, default=100
    n_init : int, default=1
        Number of initialisations; the one with the highest final log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are chosen (exactly as scikit-learn).
    weights_init, means_init, precisions_init : array-like, optional
        User initial parameters (shapes as scikit-learn's).
    random_state : int, RandomState or None
    warm_start : bool, default=False
        As scikit-learn's: when True and the model is already fitted with the same number of components and
        features, ``fit`` starts EM from the last fit's parameters (one initialisation; ``n_init`` and
        ``init_params`` are ignored), so successive fits continue one EM run.
    verbose : int, default=0
        0 silent, 1 a progress bar over EM iterations with the log-likelihood.
    device : {"auto", "cpu", "cuda"}, default="auto"
    dtype : {"float64", "float32", None}, default=None
        Precision of the per-sample matrix products (None: float64 on the CPU,
        float32 on CUDA). Statistics, the initialisation and the M-step are always
        float64. float32 is about 1.7x faster on the CPU (see benchmarks/) and
        matches to ~1e-7 in mean log-likelihood, but a component that shrinks to a
        few samples can lose its covariance to rounding (a clear error suggests
        float64 then).
    chunk_size : int or None, default=None
        Rows per chunk (None: chosen so a chunk's features take about 4 MB), which
        bounds memory for any n.
    missing : {"error", "marginalize"}, default="error"
        What NaN entries of ``X`` mean. ``"error"``: they are refused with scikit-learn's error, as
        scikit-learn's GaussianMixture does. ``"marginalize"``: they are missing values, and ``fit`` runs
        exact EM for incomplete data (Ghahramani & Jordan 1994). With :math:`o` the observed and :math:`m`
        the missing dimensions of row :math:`x_i`, the E-step uses the marginal density of the observed
        entries,

        .. math::

            r_{ik} \propto \pi_k \, \mathcal N(x_{i,o} \mid \mu_{k,o}, \Sigma_{k,oo}),

        and the M-step the conditional expectation of the missing entries under each component,

        .. math::

            \hat x_{ik,m} = \mu_{k,m} + \Sigma_{k,mo} \Sigma_{k,oo}^{-1} (x_{i,o} - \mu_{k,o}), \quad
            \hat x_{ik,o} = x_{i,o}, \quad
            C_{ik} = \Sigma_{k,mm} - \Sigma_{k,mo} \Sigma_{k,oo}^{-1} \Sigma_{k,om},

        .. math::

            \mu_k = \frac{1}{N_k} \sum_i r_{ik} \hat x_{ik}, \quad
            \Sigma_k = \frac{1}{N_k} \sum_i r_{ik} \bigl[(\hat x_{ik} - \mu_k)(\hat x_{ik} - \mu_k)^\top
            + \tilde C_{ik}\bigr] + \epsilon I,

        where :math:`\tilde C_{ik}` is zero except its missing block, :math:`C_{ik}`. The tied, diag and
        spherical covariances restrict this scatter as for complete data (summed over components; its
        diagonal; its trace over :math:`d`), and a diagonal :math:`\Sigma_k` makes the conditional mean
        :math:`\mu_{k,m}` and :math:`C_{ik}` the diagonal block :math:`\Sigma_{k,mm}`. EM starts from the
        data with every NaN replaced by its column's observed mean (``init_params`` runs on that array, and
        ``weights_init`` / ``means_init`` / ``precisions_init`` / ``warm_start`` work as usual); the
        observed-data log-likelihood per sample, :math:`\frac1n \sum_i \log \sum_k \pi_k \mathcal N(x_{i,o}
        \mid \mu_{k,o}, \Sigma_{k,oo})`, is what ``lower_bounds_``, ``tol`` and ``score`` use, and it never
        decreases (with ``reg_covar=0``; the ridge may dip it ~1e-9 as for complete data). ``predict``,
        ``predict_proba``, ``score_samples`` and ``score`` then accept NaN too (the marginal density of each
        row's observed entries; complete rows go through the usual path). A row with no observed value, or
        at fit a column with none, is a ValueError naming it. Data with no NaN take the usual (fast) path,
        so the fit is exactly that of ``missing="error"``. When ``X`` does hold NaN, the fit runs its own
        simpler path: rows are grouped by missingness pattern, and per pattern and component the Cholesky
        factor of :math:`\Sigma_{k,oo}` is computed once per iteration; it holds ``X`` in memory (a memmap
        is read whole), always computes in float64 (``dtype`` applies to complete rows only) and runs in one
        process. ``sample_weight``, ``partial_fit`` and a distributed fit (``torch.distributed``) with NaN
        in ``X`` raise NotImplementedError.

    Attributes
    ----------
    weights_ : ndarray (K,)
    means_ : ndarray (K, d)
    covariances_ : ndarray, (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical
    precisions_, precisions_cholesky_ : ndarray, same shapes
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample of the fitted parameters. (scikit-learn's
        ``lower_bound_`` is the value *before* its last M-step, one iteration behind.)
    lower_bounds_ : list of float
        The mean log-likelihood per sample after each EM iteration of the kept run (scikit-learn 1.6+'s name;
        the same list as ``log_likelihood_history_``).
    log_likelihood_history_ : list of float
        Mean log-likelihood per sample after each EM iteration, ``len == n_iter_``.
        Exact EM (``reg_covar=0``) never decreases it; the ridge makes the M-step a
        slightly perturbed maximiser, so with ``reg_covar > 0`` it can dip by
        ~1e-9 near convergence, exactly as scikit-learn's does.
    labels_ : ndarray (n,)
        Component of each training sample.

    Notes
    -----
    Convergence: iteration t compares the log-likelihood after its M-step with
    the one before, so with the same ``tol`` it stops one iteration earlier than
    scikit-learn, which compares two values that lag one step behind.
    ``transform(X)`` returns the responsibilities (same as ``predict_proba``).
    """

    _n_clusters_param = "n_components"
    _tabular = True
    # Digits pixels include always-zero borders: a 1% ridge keeps those dimensions from
    # dominating the likelihood (NMI 0.80 vs 0.74 with 1e-6; `mixclust demo` shows both).

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6, max_iter=100,
                 n_init=1, init_params="kmeans", weights_init=None, means_init=None, precisions_init=None,
                 random_state=None, warm_start=False, verbose=0, device="auto", dtype=None, chunk_size=None,
                 missing="error"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.missing = missing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    # -- validation ---------------------------------------------------------------------------
    def _check_parameters(self, n_samples: int, n_features: int):
        K = check_int(self.n_components, "n_components", 1)
        check_option(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_option(self.init_params, "init_params", INIT_PARAMS)
        check_float(self.tol, "tol", 0.0)
        check_float(self.reg_covar, "reg_covar", 0.0)
        check_int(self.max_iter, "max_iter", 0)
        check_int(self.n_init, "n_init", 1)
        check_int(self.verbose, "verbose", 0)
        if self.dtype is not None:
            check_option(self.dtype, "dtype", tuple(DTYPES))
        if self.chunk_size is not None:
            check_int(self.chunk_size, "chunk_size", 1)
        if n_samples < K:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {K}, "
                             f"n_samples = {n_samples}")
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if w.shape != (K,):
                raise ValueError(f"The parameter 'weights' should have the shape of ({K},), but got {w.shape}")
            if not np.all(np.isfinite(w)) or (w < 0).any() or (w > 1).any():
                raise ValueError("The parameter 'weights' should be in the range [0, 1], but got max value "
                                 f"{np.max(w):.5f}, min value {np.min(w):.5f}")
            if not np.isclose(w.sum(), 1.0):
                raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f}")
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (K, n_features):
                raise ValueError(f"The parameter 'means' should have the shape of ({K}, {n_features}), "
                                 f"but got {m.shape}")
            if not np.all(np.isfinite(m)):
                raise ValueError("The parameter 'means' should be finite (means_init holds NaN or infinity)")
        if self.precisions_init is not None:
            p = np.asarray(self.precisions_init, dtype=np.float64)
            shape = _precision_shape(self.covariance_type, K, n_features)
            if p.shape != shape:
                raise ValueError(f"The parameter '{self.covariance_type} precision' should have the shape of "
                                 f"{shape}, but got {p.shape}")
            if self.covariance_type in ("full", "tied"):
                mats = p.reshape(-1, n_features, n_features)
                if not np.allclose(mats, mats.transpose(0, 2, 1)) or \
                        (np.linalg.eigvalsh(mats) <= 0).any():
                    raise ValueError(f"'{self.covariance_type} precision' should be symmetric, positive-definite")
            elif (p <= 0).any():
                raise ValueError(f"'{self.covariance_type} precision' should be positive")

    def _setup(self):
        """Device, compute dtype and chunk size for this fit/predict."""
        device = resolve_device(self.device)
        name = self.dtype or ("float64" if device.type == "cpu" else "float32")
        return device, DTYPES[name]

    def _chunk(self, n_features_total: int, dtype: torch.dtype) -> int:
        if self.chunk_size is not None:
            return int(self.chunk_size)
        itemsize = torch.finfo(dtype).bits // 8
        return max(256, int(4e6 // (n_features_total * itemsize)))

    # -- passes over the data -------------------------------------------------------------------
    def _feature_chunks(self, rows: _Rows, cache: bool = False) -> _FeatureChunks:
        return _FeatureChunks(rows, self.covariance_type, self._row_chunk(rows.d, rows.dtype), cache)

    def _row_chunk(self, n_features: int, dtype: torch.dtype) -> int:
        """Rows per chunk for data with ``n_features`` columns (its features take about 4 MB)."""
        return self._chunk(_n_quadratic(n_features, self.covariance_type) + n_features + 1, dtype)

    def _chunks(self, X, W: torch.Tensor, features=None):
        """Yield (offset, F, log pi_k + log N(x | k)) for row chunks of the centred data, the latter as (K, chunk).

        Components along rows: BLAS runs W^T F^T about 2x faster than F W in float64 when W has
        only K columns (0.031 s vs 0.069 s per pass at n = 100,000), and reductions over K then
        run over contiguous memory (argmax/exp over a transposed view were measured 3-5x slower).
        """
        features = self._feature_chunks(_Rows(X)) if features is None else features
        W_t = W.to(features.rows.dtype).T.contiguous()
        for start, F in features:
            yield start, F, W_t @ F.T

    def _e_pass(self, W, features: _FeatureChunks, norm: float, row_weights: torch.Tensor | None = None):
        r"""One pass over the data: mean log-likelihood and the sufficient statistics Gamma^T F (float64).

        With :math:`\ell_{nk} = \log \pi_k + \log \mathcal N(x_n \mid k)` and :math:`m_n = \max_k \ell_{nk}`,
        :math:`\gamma_{nk} = e_{nk} / \sum_j e_{nj}` and :math:`\log p(x_n) = m_n + \log \sum_j e_{nj}` where
        :math:`e_{nk} = \max(e^{\ell_{nk} - m_n}, e^c)`, :math:`c = \ln(\text{tiny}) + 8` (:func:`_log_tiny`):
        the floor only replaces terms below :math:`e^c`, so :math:`|\Delta \log p(x_n)| \le (K - 1) e^c` and
        it keeps exp off its slow subnormal path.

        With ``row_weights`` :math:`w_i` (this rank's rows), the statistics are :math:`(w \circ \Gamma)^\top F`
        and the mean is :math:`\sum_i w_i \ln p(x_i) / \sum_i w_i` (``norm`` is the divisor: n, or the total
        weight), so an integer weight counts a row that many times.

        Across processes each rank passes over its own rows; the statistics and the
        log-likelihood sum are then added over the ranks in one all-reduce, so every
        rank holds the statistics of all :math:`n` rows and runs the same M-step.
        """
        K, m = W.shape[1], W.shape[0]
        # One buffer, so a distributed fit needs a single all-reduce per EM iteration.
        buffer = torch.zeros(K * m + 1, dtype=torch.float64, device=W.device)
        stats, log_lik = buffer[:-1].view(K, m), buffer[-1]
        for start, F, weighted in self._chunks(None, W, features):
            # log-sum-exp written out so the exponentials are computed once and reused for gamma.
            peak = weighted.amax(dim=0)
            # Clamped near log(tiny): exp of values further below underflows to subnormals or zero, which
            # ran 5-15x slower than normal results and made exp a fifth of a fit's time; every term clamped
            # weighs under e^c against the peak's 1 (1e-304 in float64, 3e-35 in float32), far below rounding.
            exp = torch.exp_((weighted - peak).clamp_min_(_log_tiny(weighted.dtype)))
            total = exp.sum(dim=0)
            resp = exp.div_(total)
            if row_weights is None:
                log_lik += (peak + torch.log(total)).sum(dtype=torch.float64)
            else:
                w = row_weights[start:start + F.shape[0]]
                log_lik += ((peak + torch.log(total)).to(torch.float64) * w).sum()
                resp.mul_(w.to(resp.dtype))
            stats += (resp @ F).to(torch.float64)
        distributed.all_reduce_sum(buffer)
        mean_log_lik = float(log_lik) / norm
        if not math.isfinite(mean_log_lik):
            raise ValueError(_NOT_FINITE)
        return mean_log_lik, stats

    # -- initialisation -------------------------------------------------------------------------
    def _initial_responsibilities(self, X: np.ndarray, random_state, sample_weight=None) -> np.ndarray:
        """Initial responsibilities exactly as scikit-learn draws them (same random stream); K-means and
        k-means++ take ``sample_weight``."""
        n, K = X.shape[0], self.n_components
        resp = np.zeros((n, K), dtype=np.float64)
        if self.init_params in ("kmeans", "k-means++"):
            # The only initialisations that read the data; scikit-learn needs them in float64 memory.
            X = np.asarray(X, dtype=np.float64)
        if self.init_params == "kmeans":
            labels = KMeans(n_clusters=K, n_init=1, random_state=random_state).fit(
                X, sample_weight=sample_weight).labels_
            resp[np.arange(n), labels] = 1
        elif self.init_params == "random":
            resp = random_state.uniform(size=(n, K))
            resp /= resp.sum(axis=1)[:, None]
        elif self.init_params == "random_from_data":
            resp[random_state.choice(n, size=K, replace=False), np.arange(K)] = 1
        else:
            _, indices = kmeans_plusplus(X, K, random_state=random_state, sample_weight=sample_weight)
            resp[indices, np.arange(K)] = 1
        return resp

    def _given_parameters(self) -> bool:
        """True when weights, means and precisions are all given: the data play no part in the start."""
        return all(p is not None for p in (self.weights_init, self.means_init, self.precisions_init))

    def _initial_parameters(self, X_np, shift, random_state, triu, sample_weight=None):
        """Weights, means and precision Cholesky factors to start EM from (centred coordinates, float64).

        The M-step of the initial responsibilities, over *all* rows, streamed in float64
        chunks (also when dtype is float32: seed-point starts are single samples, whose
        covariance, second moment minus outer product, float32 features cannot resolve).
        """
        device, d = shift.device, X_np.shape[1]
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)  # noqa: E731
        if self._given_parameters():
            weights = as_t(self.weights_init)
            means, covariances = as_t(self.means_init) - shift, None
        else:
            resp = self._initial_responsibilities(X_np, random_state, sample_weight)
            row_weights = None if sample_weight is None else torch.as_tensor(sample_weight, device=device)
            if row_weights is not None:
                resp = resp * sample_weight[:, None]
            resp = torch.as_tensor(resp, device=device)
            stats, total = 0.0, 0.0
            rows = _Rows(X_np, shift, torch.float64, stream=True)
            for start, X64 in rows.chunks(self._row_chunk(d, torch.float64)):
                F = _features(X64, self.covariance_type)
                stats = stats + resp[start:start + F.shape[0]].T @ F
                total = total + (F.sum(dim=0) if row_weights is None
                                 else row_weights[start:start + F.shape[0]] @ F)
            n_quad = _n_quadratic(d, self.covariance_type)
            weights, means, covariances = _m_step(stats, d, self.covariance_type, self.reg_covar, triu,
                                                  total_quad=total[:n_quad])
        if self.weights_init is not None:
            weights = as_t(self.weights_init)
        if self.means_init is not None:
            means = as_t(self.means_init) - shift
        if self.precisions_init is None:
            precisions_cholesky = _compute_precision_cholesky(covariances, self.covariance_type)
        elif self.covariance_type in ("full", "tied"):
            precisions_cholesky = torch.linalg.cholesky(as_t(self.precisions_init))
        else:
            precisions_cholesky = as_t(self.precisions_init).sqrt()
        return weights, means, precisions_cholesky

    def _warm_parameters(self, n_features: int, shift: torch.Tensor):
        """``warm_start``: the last fit's weights, means (centred on this X's ``shift``) and precision Cholesky
        factors, or None when there is no compatible previous fit (every rank holds the same fitted values)."""
        if not (self.warm_start and hasattr(self, "means_")):
            return None
        shape = _precision_shape(self.covariance_type, self.n_components, n_features)
        if self.means_.shape != (self.n_components, n_features) or self.precisions_cholesky_.shape != shape:
            return None
        return self._fitted_parameters(shift)

    def _fitted_parameters(self, shift: torch.Tensor):
        """The fitted weights, means centred on ``shift`` and precision Cholesky factors, as float64 tensors on
        ``shift``'s device (the parameters EM, a warm start, a stepwise step and prediction work from)."""
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=shift.device)  # noqa: E731
        return as_t(self.weights_), as_t(self.means_) - shift, as_t(self.precisions_cholesky_)

    def _agreed_initial_parameters(self, X_np, shift, random_state, triu, sample_weight=None):
        """The initial parameters, computed on rank 0 from all the data and broadcast to every rank.

        Every rank then starts EM from exactly the parameters a single process would
        (same random stream, same data), which is what makes the distributed fit
        equal to the single-process one. A failure on rank 0 (e.g. an ill-defined
        covariance) is raised on every rank instead of leaving the others waiting.
        """
        if not distributed.is_distributed():
            return self._initial_parameters(X_np, shift, random_state, triu, sample_weight)
        params, error = None, None
        if distributed.is_main_process():
            try:
                params = self._initial_parameters(X_np, shift, random_state, triu, sample_weight)
            except ValueError as exc:
                error = exc
        if not distributed.agree(error is None):
            raise error or ValueError("the initialisation failed on rank 0 (see its error)")
        if params is None:
            K, d = self.n_components, X_np.shape[1]
            params = tuple(torch.empty(s, dtype=torch.float64, device=shift.device)
                           for s in ((K,), (K, d), _precision_shape(self.covariance_type, K, d)))
        return tuple(distributed.broadcast(p.contiguous()) for p in params)

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM (``n_init`` initialisations, the best kept).

        ``sample_weight`` (n,), non-negative: each row counts with its weight in the E-step statistics, the
        log-likelihood and the K-means / k-means++ start, so an integer weight equals repeating the row
        (scikit-learn's GaussianMixture has none).

        ``X`` may be memory-mapped (``np.load(path, mmap_mode="r")``): it is then read
        in row chunks on every EM pass and never copied whole (see ``fit_predict``).
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return the component of each training sample.

        **Out of core.** A memory-mapped ``X`` is streamed: its column mean, the
        initial statistics and every EM pass read it chunk by chunk, so memory holds
        one chunk plus the feature cache (at most ``FEATURE_CACHE_BYTES``), not X.
        The "kmeans" and "k-means++" initialisations run scikit-learn on the whole
        array (a float64 memmap is read in place, a float32 one is copied to float64);
        give ``weights_init``, ``means_init`` and ``precisions_init`` or use
        ``init_params="random_from_data"`` to keep the start out of core as well.

        **Across processes** (``torch.distributed`` initialised with more than one
        rank, e.g. under ``torchrun``; see :mod:`mixclust.distributed`): every rank
        calls ``fit`` with the same full ``X`` (a memmap costs nothing to open on each
        rank); each rank runs the E-step on its contiguous shard of rows
        (``distributed.shard(n)``), the sufficient statistics and log-likelihood are
        all-reduced every iteration, and the initialisation is computed on rank 0 and
        broadcast. Every rank ends with identical parameters, equal to a single-process
        fit up to the order of floating-point sums (1e-10 relative on the
        log-likelihood in float64), and the full ``labels_``.
        """
        streamed = isinstance(X, np.memmap)
        vars(self).pop("stepwise_state_", None)  # a later partial_fit starts a new stream
        marginalize = self._check_missing()
        X_np = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2,
                             ensure_all_finite="allow-nan" if marginalize else True)
        n_samples, n_features = X_np.shape
        self._check_parameters(n_samples, n_features)
        if marginalize and _has_nan(X_np, self._row_chunk(n_features, torch.float64)):
            for given, what in ((sample_weight is not None, "sample_weight"),
                                (distributed.is_distributed(), "a distributed fit (torch.distributed)")):
                if given:
                    raise NotImplementedError(f"missing='marginalize' does not support {what} when X holds NaN; "
                                              "drop or impute the incomplete rows")
            return self._fit_predict_missing(X_np)
        if sample_weight is not None:
            # scikit-learn's check: shape, finite, non-negative, not all zero
            sample_weight = _check_sample_weight(sample_weight, X_np, dtype=np.float64, ensure_non_negative=True)
        device, dtype = self._setup()
        if streamed:
            shift = torch.as_tensor(_column_mean(X_np, self._row_chunk(n_features, torch.float64)), device=device)
        else:
            X_np = X_np.astype(np.float64, copy=False)
            shift = torch.as_tensor(X_np.mean(axis=0), device=device)
        triu = torch.triu_indices(n_features, n_features, device=device)
        random_state = check_random_state(self.random_state)
        rows = distributed.shard(n_samples)
        features = self._feature_chunks(_Rows(X_np, shift, dtype, rows, stream=streamed), cache=True)
        row_weights = None if sample_weight is None else \
            torch.as_tensor(sample_weight[rows.start:rows.stop], device=device)
        norm = float(n_samples if sample_weight is None else sample_weight.sum())

        best = None
        warm = self._warm_parameters(n_features, shift)
        for init in range(1 if warm is not None else self.n_init):
            params = warm if warm is not None else \
                self._agreed_initial_parameters(X_np, shift, random_state, triu, sample_weight)
            try:
                result = self._em(features, norm, params, triu, init, row_weights)
            except ValueError as error:
                if dtype == torch.float32 and str(error) == _ILL_DEFINED:
                    raise ValueError(_ILL_DEFINED + _FLOAT32_HINT) from error
                raise
            if best is None or result["log_likelihood"] > best["log_likelihood"]:
                best = result
        self._keep(best, shift, stacklevel=4)
        # Labels of the final parameters, in one more E-step (argmax in every EM pass cost ~15%).
        self.labels_ = self._labels(best["W"], features, rows, n_samples)
        return self.labels_

    def _keep(self, best: dict, shift, stacklevel: int):
        """Warn about collapsed components and non-convergence of the kept run, and store its parameters and
        history (``stacklevel``: that of the caller of ``fit``)."""
        if best["collapsed"]:
            warnings.warn(f"component(s) {best['collapsed']} of {self.n_components} collapsed during EM (less "
                          "than one sample's responsibility); reg_covar keeps their covariance finite. "
                          "Consider fewer components.", RuntimeWarning, stacklevel=stacklevel)
        if not best["converged"] and self.max_iter > 0:
            warnings.warn("Best performing initialization did not converge. Try different init parameters, "
                          "or increase max_iter, tol, or check for degenerate data.", ConvergenceWarning,
                          stacklevel=stacklevel)
        self._set_fitted(*best["params"], shift)
        self.converged_ = best["converged"]
        self.n_iter_ = best["n_iter"]
        self.lower_bound_ = best["log_likelihood"]
        self.log_likelihood_history_ = best["history"]
        self.lower_bounds_ = list(best["history"])

    # -- fit with missing values ----------------------------------------------------------------
    def _check_missing(self) -> bool:
        """Validate ``missing``; True when NaN entries are missing values (``"marginalize"``)."""
        return check_option(self.missing, "missing", MISSING) == "marginalize"

    def _missing_chunk(self, n_features: int) -> int:
        """Rows per chunk of the missing-value path (its K x rows x d temporaries take about 4 MB)."""
        return self._chunk(self.n_components * (n_features + 1), torch.float64)

    def _fit_predict_missing(self, X_np: np.ndarray) -> np.ndarray:
        """``fit_predict`` on validated data holding NaN: exact EM over each row's observed dimensions."""
        X_np = np.asarray(X_np, dtype=np.float64)
        n_samples, n_features = X_np.shape
        mask = np.isnan(X_np)
        _check_observed(mask, columns=True)
        device = self._setup()[0]
        column_mean = np.nanmean(X_np, axis=0)
        centred = X_np - column_mean
        shift = torch.as_tensor(column_mean, device=device)
        triu = torch.triu_indices(n_features, n_features, device=device)
        random_state = check_random_state(self.random_state)
        patterns = _missing_patterns(centred, mask, device)
        imputed = np.where(mask, column_mean, X_np)  # the start: each NaN replaced by its column's mean
        best = None
        warm = self._warm_parameters(n_features, shift)
        for init in range(1 if warm is not None else self.n_init):
            params = warm if warm is not None else self._initial_parameters(imputed, shift, random_state, triu)
            result = self._em_missing(patterns, n_samples, params, init, triu)
            if best is None or result["log_likelihood"] > best["log_likelihood"]:
                best = result
        self._keep(best, shift, stacklevel=5)
        self.labels_ = best["labels"]
        return self.labels_

    def _em_missing(self, patterns: list[_Pattern], n_samples: int, params, init: int, triu) -> dict:
        """EM with missing values from ``params`` (weights, centred means, precision Cholesky factors)."""
        weights, means, precisions_cholesky = params
        K, d = means.shape
        chunk = self._missing_chunk(d)
        covariances = _full_covariances(_covariances_from_cholesky(precisions_cholesky, self.covariance_type),
                                        self.covariance_type, K, d)
        last = {}

        def e_step(weights, means, covariances):
            log_lik, last["labels"], stats = _missing_e_pass(patterns, weights, means, covariances, n_samples, chunk)
            return log_lik / n_samples, stats

        def m_step(stats):
            weights, means, covariances = _m_step(_packed_statistics(stats, self.covariance_type, triu), d,
                                                  self.covariance_type, self.reg_covar, triu)
            precisions_cholesky = _compute_precision_cholesky(covariances, self.covariance_type)
            return (weights, means, precisions_cholesky), (weights, means, _full_covariances(
                covariances, self.covariance_type, K, d))

        result = self._iterate_em(init, params, e_step(weights, means, covariances), m_step, e_step, n_samples)
        return {**result, "labels": last["labels"]}

    # -- online (stepwise) EM ---------------------------------------------------------------------
    def partial_fit(self, X, y=None):
        r"""One step of stepwise EM (Cappé & Moulines 2009) on a chunk of rows, for streams and data beyond memory.

        The first call initialises from its chunk with ``init_params`` (or the given ``*_init``), exactly as
        :meth:`fit` starts, and takes its first step. Every call then runs the E-step of the chunk under the
        current parameters, giving its per-sample sufficient statistics :math:`\hat s_t`, blends them into the
        running ones and runs the M-step:

        .. math::
            s_t = (1 - \eta_t)\, s_{t-1} + \eta_t\, \hat s_t, \qquad \eta_t = (t + 1)^{-\alpha},
            \quad \alpha = 0.6,

        with :math:`t = 1` for the first chunk (:math:`\eta_1 = 2^{-0.6}`, the first statistics taken whole
        as :math:`s_0 = \hat s_1`). Since :math:`\sum_t \eta_t = \infty` and :math:`\sum_t \eta_t^2 < \infty`
        for :math:`\alpha \in (0.5, 1]`, the running statistics converge to a fixed point of batch EM
        (Cappé & Moulines' conditions). ``lower_bound_`` is the chunk's mean log-likelihood *before* its step
        (held-out for a new chunk), ``n_partial_steps_`` the number of steps; ``stepwise_state_`` (saved
        with the model) holds the running statistics, so a loaded model continues the stream. Under
        ``torch.distributed`` every rank passes its own chunk; the statistics are all-reduced, so the ranks take
        one step on the union of their chunks and stay identical.
        """
        first = not hasattr(self, "stepwise_state_")
        marginalize = self._check_missing()
        X_np = validate_data(self, X, dtype=[np.float64, np.float32], reset=first,
                             ensure_min_samples=self.n_components if first else 1,
                             ensure_all_finite="allow-nan" if marginalize else True).astype(np.float64)
        if marginalize and np.isnan(X_np).any():
            raise NotImplementedError("partial_fit does not support missing values (NaN in X); use fit with "
                                      "missing='marginalize', or drop or impute the incomplete rows")
        n_chunk, d = X_np.shape
        device, dtype = self._setup()
        triu = torch.triu_indices(d, d, device=device)
        if first:
            self._check_parameters(n_chunk, d)
            # the coordinates of the running statistics: the (global) mean of the first chunk
            sums = distributed.all_reduce_sum(torch.as_tensor(np.append(X_np.sum(axis=0), n_chunk), device=device))
            shift = sums[:-1] / sums[-1]
            params = self._agreed_initial_parameters(X_np, shift, check_random_state(self.random_state), triu)
        else:
            shift = torch.as_tensor(self.stepwise_state_["shift"], device=device)
            params = self._fitted_parameters(shift)
        W = _natural_parameters(*params, self.covariance_type, triu)
        features = self._feature_chunks(_Rows(X_np, shift, dtype))
        total = float(distributed.all_reduce_sum(torch.tensor([float(n_chunk)], dtype=torch.float64,
                                                              device=device)).item())
        log_lik, stats = self._e_pass(W, features, total)
        chunk_stats = stats / total
        step = 1 if first else self.stepwise_state_["steps"] + 1
        rate = stepwise_rate(step)
        running = chunk_stats if first else \
            (1 - rate) * torch.as_tensor(self.stepwise_state_["stats"], device=device) + rate * chunk_stats
        weights, means, covariances = _m_step(running, d, self.covariance_type, self.reg_covar, triu)
        self._set_fitted(weights, means, _compute_precision_cholesky(covariances, self.covariance_type), shift)
        self.stepwise_state_ = {"stats": running.cpu().numpy(), "shift": shift.cpu().numpy(), "steps": step}
        self.n_partial_steps_ = step
        self.lower_bound_ = log_lik
        self.converged_, self.n_iter_ = False, step
        return self

    def _labels(self, W, features: _FeatureChunks, rows: range, n_samples: int) -> np.ndarray:
        """Most probable component of every row; across processes each rank labels its shard and
        the shards are summed into one zero-initialised vector, so every rank gets all labels."""
        parts = [w.argmax(dim=0) for _, _, w in self._chunks(None, W, features)]
        local = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64, device=W.device)
        if not distributed.is_distributed():
            return local.cpu().numpy()
        labels = torch.zeros(n_samples, dtype=torch.int64, device=local.device)
        labels[rows.start:rows.stop] = local
        return distributed.all_reduce_sum(labels).cpu().numpy()

    def _em(self, features, norm: float, params, triu, init: int, row_weights=None) -> dict:
        """EM from ``params``; each pass does the E-step and gathers the next M-step's statistics (``norm``:
        the number of rows, or their total weight)."""
        weights, means, precisions_cholesky = params
        n_features = means.shape[1]
        last = {}

        def e_step(W):
            last["W"] = W
            return self._e_pass(W, features, norm, row_weights)

        def m_step(stats):
            weights, means, covariances = _m_step(stats, n_features, self.covariance_type, self.reg_covar, triu)
            precisions_cholesky = _compute_precision_cholesky(covariances, self.covariance_type)
            params = (weights, means, precisions_cholesky)
            return params, (_natural_parameters(*params, self.covariance_type, triu),)

        W = _natural_parameters(weights, means, precisions_cholesky, self.covariance_type, triu)
        result = self._iterate_em(init, params, e_step(W), m_step, e_step, norm)
        return {**result, "W": last["W"]}

    def _iterate_em(self, init: int, params, start, m_step, e_step, norm: float) -> dict:
        """The EM loop of every fit path: from the initial ``params`` and ``start`` = (their mean
        log-likelihood, statistics), alternate ``m_step(stats) -> (params, e_step arguments)`` and
        ``e_step(*arguments) -> (mean log-likelihood, statistics)`` until the gain is below ``tol`` or
        ``max_iter`` passes. ``params`` are (weights, means, precision Cholesky factors); a component with less
        than one row's weight (``weights * norm < 1``) is reported as collapsed."""
        log_lik, stats = start
        history, converged, collapsed = [], False, set()
        bar = progress(range(self.max_iter), enabled=self.verbose > 0 and distributed.is_main_process(),
                       desc=f"EM init {init + 1}/{self.n_init}", unit="it")
        for _ in bar:
            params, arguments = m_step(stats)
            collapsed.update((params[0] * norm < 1.0).nonzero().flatten().tolist())
            previous = log_lik
            log_lik, stats = e_step(*arguments)
            if not math.isfinite(log_lik):
                raise ValueError(_NOT_FINITE)  # the fast path's _e_pass checks too; the missing-value one does not
            history.append(log_lik)
            bar.set_postfix(loglik=f"{log_lik:.6f}", refresh=False)
            if abs(log_lik - previous) < self.tol:
                converged = True
                break
        bar.close()
        return {"params": params, "log_likelihood": log_lik, "history": history, "converged": converged,
                "n_iter": len(history), "collapsed": sorted(collapsed)}

    def _set_fitted(self, weights, means, precisions_cholesky, shift):
        """Store parameters as float64 numpy arrays in the original (uncentred) coordinates."""
        to_np = lambda t: t.detach().to(torch.float64).cpu().numpy()  # noqa: E731
        self.weights_ = to_np(weights)
        self.means_ = to_np(means + shift)
        self.precisions_cholesky_ = to_np(precisions_cholesky)
        self.precisions_ = to_np(_precisions(precisions_cholesky, self.covariance_type))
        if self.covariance_type in ("full", "tied"):
            self.covariances_ = np.linalg.inv(self.precisions_)
            self.covariances_ = 0.5 * (self.covariances_ + np.swapaxes(self.covariances_, -1, -2))
        else:
            self.covariances_ = 1.0 / self.precisions_

    # -- prediction -----------------------------------------------------------------------------
    def _weighted_log_prob(self, X) -> torch.Tensor:
        """log pi_k + log N(x | mu_k, Sigma_k) for every sample and component, (n, K) float64; with
        ``missing="marginalize"``, rows holding NaN use the marginal density of their observed entries."""
        check_is_fitted(self)
        marginalize = self._check_missing()
        X_np = validate_data(self, X, dtype=[np.float64, np.float32], reset=False,
                             ensure_all_finite="allow-nan" if marginalize else True).astype(np.float64)
        device, dtype = self._setup()
        # Centre on the mixture mean (the data mean at an EM fixed point), as during fit.
        shift = torch.as_tensor(self.weights_ @ self.means_, device=device)
        mask = np.isnan(X_np) if marginalize else None
        if mask is None or not mask.any():
            return self._complete_weighted_log_prob(X_np, shift, dtype)
        _check_observed(mask, columns=False)
        incomplete = mask.any(axis=1)
        out = torch.empty(X_np.shape[0], self.weights_.shape[0], dtype=torch.float64, device=device)
        if not incomplete.all():
            out[torch.as_tensor(~incomplete, device=device)] = \
                self._complete_weighted_log_prob(X_np[~incomplete], shift, dtype)
        part = X_np[incomplete] - shift.cpu().numpy()
        patterns = _missing_patterns(part, mask[incomplete], device)
        weights, means, _ = self._fitted_parameters(shift)
        K, d = means.shape
        covariances = _full_covariances(torch.as_tensor(self.covariances_, device=device), self.covariance_type,
                                        K, d)
        out[torch.as_tensor(incomplete, device=device)] = _missing_weighted_log_prob(
            patterns, weights, means, covariances, len(part), self._missing_chunk(d))
        return out

    def _complete_weighted_log_prob(self, X_np: np.ndarray, shift: torch.Tensor, dtype) -> torch.Tensor:
        """log pi_k + log N(x | mu_k, Sigma_k) of complete rows by the fast (chunked feature) path, (n, K)."""
        device = shift.device
        triu = torch.triu_indices(X_np.shape[1], X_np.shape[1], device=device)
        W = _natural_parameters(*self._fitted_parameters(shift), self.covariance_type, triu)
        X_t = (torch.as_tensor(X_np, device=device) - shift).to(dtype)
        return torch.cat([w.to(torch.float64) for _, _, w in self._chunks(X_t, W)], dim=1).T

    def score_samples(self, X):
        """Log-density log p(x) of each sample, shape (n,)."""
        return torch.logsumexp(self._weighted_log_prob(X), dim=1).cpu().numpy()

    def score(self, X, y=None):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Responsibilities gamma_nk = p(k | x_n), shape (n, K); rows sum to 1."""
        return torch.softmax(self._weighted_log_prob(X), dim=1).cpu().numpy()

    def predict(self, X):
        """Most probable component of each sample."""
        return self._weighted_log_prob(X).argmax(dim=1).cpu().numpy()

    def transform(self, X):
        """Responsibilities (the soft assignment is the GMM's representation of a sample)."""
        return self.predict_proba(X)

    def sample(self, n_samples=1):
        """Draw ``n_samples`` points from the fitted mixture; returns (X, component labels)."""
        check_is_fitted(self)
        if isinstance(n_samples, (int, np.integer)) and not isinstance(n_samples, bool) and n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one "
                             "sample.")
        n_samples = check_int(n_samples, "n_samples", 1)
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        d = self.means_.shape[1]
        parts = []
        for k, (mean, count) in enumerate(zip(self.means_, counts)):
            if self.covariance_type == "full":
                parts.append(rng.multivariate_normal(mean, self.covariances_[k], int(count)))
            elif self.covariance_type == "tied":
                parts.append(rng.multivariate_normal(mean, self.covariances_, int(count)))
            else:
                scale = np.sqrt(self.covariances_[k])
                parts.append(mean + rng.standard_normal(size=(int(count), d)) * scale)
        labels = np.repeat(np.arange(len(counts)), counts)
        return np.vstack(parts), labels

    def bic(self, X):
        """Bayesian information criterion (lower is better)."""
        n = np.asarray(X).shape[0]
        return -2 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion (lower is better)."""
        return -2 * self.score(X) * np.asarray(X).shape[0] + 2 * self._n_parameters()

    def _n_parameters(self) -> int:
        return _n_parameters(self.means_.shape[0], self.means_.shape[1], self.covariance_type)


__all__ = ["GaussianMixture", "COVARIANCE_TYPES", "INIT_PARAMS"]

