r"""Recalibrating soft assignments with a few labelled samples (issue 18).

A model's confidence :math:`c_i = \max_k \gamma_{ik}` says how clearly sample *i* sits in one of the
model's clusters, not whether that cluster is the user's class (``docs/guide/calibration.md``). When the
clusters merge or split classes (Fashion-MNIST: shirts and T-shirts), the confidences are far too high, and
no label-free correction we measured repairs that: a temperature chosen by held-out likelihood moved ECE
from 0.413 to 0.387 (``benchmarks/probes/probe_temperature.py``). A few labels do see it.

:class:`FewLabelCalibrator` maps every row of soft assignments through

.. math::

    \gamma'_{ik}(T, \alpha) = (1 - \alpha)\,\frac{\gamma_{ik}^{1/T}}{\sum_j \gamma_{ij}^{1/T}} + \frac{\alpha}{K},
    \qquad T > 0,\ 0 \le \alpha < 1,

a temperature :math:`T` (Guo et al. 2017, "On calibration of modern neural networks") and a share
:math:`\alpha` of the uniform assignment (smoothing). ``method`` frees :math:`T`, :math:`\alpha` or both; the
others stay at :math:`T = 1`, :math:`\alpha = 0` (the identity). They are fitted on the labelled samples
:math:`L` by the Bernoulli log-likelihood of correctness given confidence,

.. math::

    \min_{T, \alpha} \; -\sum_{i \in L} \Bigl[ r_i \ln c'_i + (1 - r_i) \ln(1 - c'_i) \Bigr],
    \qquad c'_i = \max_k \gamma'_{ik}(T, \alpha),

where :math:`r_i = 1` when the label matched to sample *i*'s cluster (Hungarian matching on the labelled
samples, :func:`mixclust.metrics.matched_correct`) is its label. This is the likelihood of the quantity
ECE scores, and it stays defined when a class has no cluster (K below the number of classes). Both maps keep
the order of every row, so labels, NMI and accuracy do not move: only the confidences do.

Why smoothing is the default: a temperature moves a confident row and an unsure one by the same factor in log
space, so when the model is over-confident on its clear rows and about right on its unsure ones (clusters that
merge classes), no single T fits both; mixing in the uniform assignment lowers the clear rows most. With 100
labels, on 10 (model, data set) pairs of VaDE's and aekm's defaults, smoothing was the best or within 0.008 of
it on all 10 (ECE 0.009-0.065), a temperature alone 0.04-0.10 worse on 8 (``benchmarks/probes/
probe_few_label_calibration.py``; reports/frontier, "Calibration with a few labels"; docs/guide/calibration.md).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax

from . import metrics
from ._base import check_option

#: which of (T, alpha) ``FewLabelCalibrator(method=)`` fits.
METHODS = ("smoothing", "temperature", "both")
#: log-temperatures searched (T from 1/20 to 1,000): beyond them the confidences are already 1 or 1/K.
LOG_T_BOUNDS = (np.log(0.05), np.log(1000.0))
#: probabilities are floored here before the log of the temperature, so a hard zero is a large finite gap.
PROBA_FLOOR = 1e-12
#: at least this many labelled samples: fewer leave the matching and the fit to chance.
MIN_LABELLED = 10


def recalibrate(proba, temperature: float = 1.0, smoothing: float = 0.0) -> np.ndarray:
    r""":math:`(1 - \alpha)\operatorname{softmax}(\ln \gamma / T) + \alpha / K` of soft assignments ``proba``
    (n, K), with :math:`T` = ``temperature`` and :math:`\alpha` = ``smoothing``; rows sum to 1, order kept."""
    proba = metrics.check_proba(proba)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    return _recalibrate(proba, temperature, smoothing)


def _recalibrate(proba: np.ndarray, temperature: float, smoothing: float) -> np.ndarray:
    """:func:`recalibrate` of already validated ``proba`` (the fit calls it at every step of its search)."""
    if temperature != 1.0:
        proba = np.exp(log_softmax(np.log(np.maximum(proba, PROBA_FLOOR)) / temperature, axis=1))
    return (1.0 - smoothing) * proba + smoothing / proba.shape[1]


def _correctness_nll(confidence: np.ndarray, correct: np.ndarray) -> float:
    confidence = np.clip(confidence, PROBA_FLOOR, 1.0 - PROBA_FLOOR)
    return float(-(correct * np.log(confidence) + (~correct) * np.log1p(-confidence)).sum())


class FewLabelCalibrator:
    """Recalibrate a model's soft assignments on a few labelled samples (the maths in the module docstring).

    Parameters
    ----------
    method : {"smoothing", "temperature", "both"}, default="smoothing"
        Which of the temperature :math:`T` and the uniform share :math:`\\alpha` to fit.

    Attributes
    ----------
    temperature_, smoothing_ : the fitted :math:`T` (above 1: the model was over-confident) and :math:`\\alpha`.
    labelled_accuracy_ : the share of labelled samples whose cluster's matched label is theirs.

    Examples
    --------
    >>> proba = model.predict_proba(X)                       # doctest: +SKIP
    >>> few = rng.choice(len(X), 100, replace=False)          # label 100 samples by hand
    >>> calibrated = FewLabelCalibrator().fit(proba[few], y[few]).transform(proba)
    """

    def __init__(self, method: str = "smoothing"):
        self.method = method

    def fit(self, proba, y) -> FewLabelCalibrator:
        """Fit on soft assignments ``proba`` (n, K) of labelled samples with labels ``y`` (n,)."""
        method = check_option(self.method, "method", METHODS)
        proba = metrics.check_proba(proba)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(proba):
            raise ValueError(f"y must be 1-D with one label per row of proba ({len(proba)}), got shape {y.shape}")
        if len(y) < MIN_LABELLED:
            raise ValueError(f"calibration needs at least {MIN_LABELLED} labelled samples, got {len(y)}")
        correct = metrics.matched_correct(y, proba.argmax(axis=1))
        self.temperature_, self.smoothing_ = 1.0, 0.0
        if method == "smoothing":
            self.smoothing_ = float(minimize_scalar(
                lambda a: _correctness_nll(_recalibrate(proba, 1.0, a).max(axis=1), correct),
                bounds=(0.0, 1.0 - 1e-9), method="bounded", options={"xatol": 1e-6}).x)
        elif method == "temperature":
            self.temperature_ = float(np.exp(minimize_scalar(
                lambda t: _correctness_nll(_recalibrate(proba, np.exp(t), 0.0).max(axis=1), correct),
                bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4}).x))
        else:  # (log T, logit alpha), from a few starts: the surface has flat valleys
            def loss(p):
                log_t = np.clip(p[0], *LOG_T_BOUNDS)
                return _correctness_nll(_recalibrate(proba, np.exp(log_t), expit(p[1])).max(axis=1), correct)
            best = min((minimize(loss, start, method="Nelder-Mead") for start in ([0.0, -4.0], [1.5, -2.0],
                                                                                   [0.0, 0.0])),
                       key=lambda r: r.fun)
            self.temperature_ = float(np.exp(np.clip(best.x[0], *LOG_T_BOUNDS)))
            self.smoothing_ = float(expit(best.x[1]))
        self.n_labelled_ = int(len(y))
        self.labelled_accuracy_ = float(correct.mean())
        return self

    def transform(self, proba) -> np.ndarray:
        """The recalibrated assignments of ``proba`` (n, K): the same argmax, new confidences."""
        if not hasattr(self, "temperature_"):
            raise RuntimeError("FewLabelCalibrator is not fitted yet; call fit(proba, y) on labelled samples first")
        return recalibrate(proba, self.temperature_, self.smoothing_)

    def fit_transform(self, proba, y) -> np.ndarray:
        """Fit on labelled ``proba`` and ``y``, then recalibrate the same ``proba``."""
        return self.fit(proba, y).transform(proba)

    def __repr__(self) -> str:
        fitted = f", temperature_={self.temperature_:.3g}, smoothing_={self.smoothing_:.3g}" \
            if hasattr(self, "temperature_") else ""
        return f"FewLabelCalibrator(method={self.method!r}{fitted})"
