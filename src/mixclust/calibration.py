r"""Recalibrating soft assignments with a few labelled samples (issue 18).

A model's confidence :math:`c_i = \max_k \gamma_{ik}` says how clearly sample *i* sits in one of the
model's clusters, not whether that cluster is the user's class (``docs/guide/calibration.md``). When the
clusters merge or split classes (Fashion-MNIST: shirts and T-shirts), the confidences are far too high, and
no label-free correction we measured repairs that: a temperature chosen by held-out likelihood moved ECE
from 0.413 to 0.387 (``benchmarks/probes/probe_temperature.py``). A few labels do see it.

:class:`TemperatureScaling` (Guo et al. 2017, "On calibration of modern neural networks") tempers the
assignments,

.. math::

    \gamma'_{ik}(T) = \frac{\gamma_{ik}^{1/T}}{\sum_j \gamma_{ij}^{1/T}}
                    = \operatorname{softmax}_k\!\left(\frac{\ln \gamma_{ik}}{T}\right),

and fits the one number :math:`T > 0` on the labelled samples by the Bernoulli log-likelihood of
correctness given confidence,

.. math::

    T^\ast = \arg\min_T \; -\sum_{i \in L} \Bigl[ r_i \ln c'_i(T) + (1 - r_i) \ln\bigl(1 - c'_i(T)\bigr) \Bigr],
    \qquad c'_i(T) = \max_k \gamma'_{ik}(T),

where :math:`r_i = 1` when the label matched to sample *i*'s cluster (Hungarian matching on the labelled
samples, :func:`mixclust.metrics.cluster_label_mapping`) is its label. This is the likelihood of the quantity
ECE scores, and it stays defined when a class has no cluster (K below the number of classes). The argmax of
every row is unchanged, so labels, NMI and accuracy are too: only the confidences move.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from . import metrics

#: log-temperatures searched (T from 1/20 to 1,000): beyond them the confidences are already 1 or 1/K.
LOG_T_BOUNDS = (np.log(0.05), np.log(1000.0))
#: probabilities are floored here before the log, so a hard zero becomes a large finite gap.
PROBA_FLOOR = 1e-12
#: at least this many labelled samples: fewer leave the matching and T to chance.
MIN_LABELLED = 10


def temper(proba, temperature: float) -> np.ndarray:
    r""":math:`\operatorname{softmax}(\ln \gamma / T)` of soft assignments ``proba`` (n, K); rows sum to 1."""
    proba = metrics.check_proba(proba)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return np.exp(log_softmax(np.log(np.maximum(proba, PROBA_FLOOR)) / temperature, axis=1))


def _correctness_nll(log_t: float, log_proba: np.ndarray, correct: np.ndarray) -> float:
    confidence = np.exp(log_softmax(log_proba / np.exp(log_t), axis=1).max(axis=1))
    confidence = np.clip(confidence, PROBA_FLOOR, 1.0 - PROBA_FLOOR)
    return float(-(correct * np.log(confidence) + (~correct) * np.log1p(-confidence)).sum())


class TemperatureScaling:
    """Temperature scaling of a model's soft assignments, fitted on a few labelled samples (module docstring).

    Parameters: none; the fitted ``temperature_`` is :math:`T^\\ast` (above 1: the model was over-confident)
    and ``mapping_`` the matching of clusters to labels it was fitted with.

    Examples
    --------
    >>> proba = model.predict_proba(X)                       # doctest: +SKIP
    >>> few = rng.choice(len(X), 100, replace=False)          # label 100 samples by hand
    >>> calibrated = TemperatureScaling().fit(proba[few], y[few]).transform(proba)
    """

    def fit(self, proba, y) -> TemperatureScaling:
        """Fit :math:`T` on soft assignments ``proba`` (n, K) of labelled samples with labels ``y`` (n,)."""
        proba = metrics.check_proba(proba)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(proba):
            raise ValueError(f"y must be 1-D with one label per row of proba ({len(proba)}), got shape {y.shape}")
        if len(y) < MIN_LABELLED:
            raise ValueError(f"temperature scaling needs at least {MIN_LABELLED} labelled samples, got {len(y)}")
        clusters = proba.argmax(axis=1)
        self.mapping_ = metrics.cluster_label_mapping(y, clusters)
        correct = np.array([self.mapping_[c] for c in clusters.tolist()]) == y
        log_proba = np.log(np.maximum(proba, PROBA_FLOOR))
        result = minimize_scalar(_correctness_nll, bounds=LOG_T_BOUNDS, args=(log_proba, correct),
                                 method="bounded", options={"xatol": 1e-4})
        self.temperature_ = float(np.exp(result.x))
        self.n_labelled_ = int(len(y))
        self.labelled_accuracy_ = float(correct.mean())
        return self

    def transform(self, proba) -> np.ndarray:
        """The tempered assignments :math:`\\gamma'(T^\\ast)` of ``proba`` (n, K): same argmax, new confidences."""
        if not hasattr(self, "temperature_"):
            raise RuntimeError("TemperatureScaling is not fitted yet; call fit(proba, y) on labelled samples first")
        return temper(proba, self.temperature_)

    def fit_transform(self, proba, y) -> np.ndarray:
        """Fit on labelled ``proba`` and ``y``, then temper the same ``proba``."""
        return self.fit(proba, y).transform(proba)

    def __repr__(self) -> str:
        fitted = f"temperature_={self.temperature_:.3g}, n_labelled_={self.n_labelled_}" \
            if hasattr(self, "temperature_") else ""
        return f"TemperatureScaling({fitted})"
