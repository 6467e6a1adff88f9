"""The estimator base every mixclust model derives from.

It follows scikit-learn's conventions: ``__init__`` stores its arguments
unchanged, ``fit`` validates them once, fitted attributes end with an
underscore. On top it gives every model the same ``device`` handling,
``save(path)`` (read back by :func:`mixclust.load`) and a ``predict_proba``-based
``fit_predict``.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device) -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | torch.device`` into a torch.device.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise; asking for
    CUDA on a machine without it is an error rather than a silent fallback.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device
    else:
        raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {device!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (name == "cpu" or name == "cuda" or name.startswith("cuda:")):
        raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} or 'cuda:N'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available on this machine; "
                         "use device='cpu' or 'auto'")
    return torch.device(name)


def check_int(value, name: str, minimum: int = 0) -> int:
    """Validate an integer hyper-parameter (bools are rejected), returning it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(value, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """Validate a real hyper-parameter against a lower bound (``strict``: value > minimum)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum}, got {value}")
    return float(value)


def check_option(value, name: str, options) -> str:
    """Validate a string option, naming the allowed values on error."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, options))}")
    return value


class MixclustEstimator(ClusterMixin, TransformerMixin, BaseEstimator):
    """Base of every mixclust model.

    Subclasses implement ``fit``, ``predict_proba`` and ``transform`` and set
    ``labels_`` at fit time. They inherit ``predict`` (argmax of
    ``predict_proba``), ``fit_predict``, ``save``, and device resolution.
    Each is registered under a short name (``mixclust._registry.register``).
    """

    _registry_name = ""
    # Name of the "number of clusters" parameter (the CLI's --n-clusters).
    _n_clusters_param = "n_clusters"
    # Tabular models take 2-D arrays only; the CLI and the demo flatten images for them.
    _tabular = False
    # Whether the model assigns clusters (predict/predict_proba); the demo skips those that do not.
    _clusterer = True

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, X):
        """Hard cluster labels: the argmax of :meth:`predict_proba`, shape (n_samples,)."""
        return np.asarray(self.predict_proba(X)).argmax(axis=1)

    def fit_predict(self, X, y=None, **fit_params):
        """Fit on ``X`` and return the labels of the training data (``labels_``)."""
        return self.fit(X, y, **fit_params).labels_

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to exactly ``path`` (no suffix is added); read it back with ``mixclust.load``."""
        from ._io import save_estimator

        check_is_fitted(self)
        save_estimator(self, path)

    def _fitted_state(self) -> dict:
        """Fitted attributes (``name_``) to store: arrays, numbers, strings and lists of them."""
        return {
            k: v for k, v in vars(self).items()
            if k.endswith("_") and not k.startswith("_") and not isinstance(v, torch.nn.Module)
        }

    def _fitted_modules(self) -> dict[str, torch.nn.Module]:
        """Fitted torch modules to store by state_dict (deep models override ``_build_modules``)."""
        return {k: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_") and isinstance(v, torch.nn.Module)}

    def _restore_state(self, attributes: dict, modules: dict) -> None:
        """Set fitted attributes from a loaded file; deep models rebuild their modules here."""
        for key, value in attributes.items():
            setattr(self, key, value)
        if modules:
            for name, module in self._build_modules(attributes).items():
                module.load_state_dict(modules[name])
                module.eval()
                setattr(self, name, module)

    def _build_modules(self, attributes: dict) -> dict[str, torch.nn.Module]:
        raise NotImplementedError(f"{type(self).__name__} does not store torch modules")

    def _device(self) -> torch.device:
        return resolve_device(self.device)


def prepare_input(model, X):
    """Flatten images to (n, features) for tabular models (SPEC §6); deep models take them as they are."""
    X = np.asarray(X)
    if getattr(model, "_tabular", False) and X.ndim > 2:
        return X.reshape(len(X), -1)
    return X
