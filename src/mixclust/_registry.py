"""Registry of estimators under short names (``gmm``, ``ae``, ``vade`` ...).

A model module registers its class with :func:`register`; the CLI, the demo and
:func:`mixclust.load` look classes up here, so a new model only adds a module.
Loading a saved model can only ever instantiate a registered class.
"""

from __future__ import annotations

MODELS: dict[str, type] = {}


def register(name: str):
    """Class decorator: make ``cls`` available as ``name`` to the CLI, the demo and ``mixclust.load``."""

    def decorator(cls):
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {MODELS[name].__name__}")
        cls._registry_name = name
        MODELS[name] = cls
        return cls

    return decorator


def get_model(name: str) -> type:
    """Return the estimator class registered as ``name`` (ValueError listing the names otherwise)."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(sorted(MODELS))}") from None
