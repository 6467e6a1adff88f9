"""Saving and loading estimators without pickled code.

A model file is one ``torch.save`` archive holding only tensors, strings and
numbers::

    {"format": "mixclust-model", "version": 1, "model": "<registered name>",
     "params": "<JSON of get_params()>", "attributes": "<JSON of scalar fitted attributes>",
     "tensors": {"param/<name>" | "attr/<name>" | "module/<name>.<key>": Tensor},
     "sha256": "<digest of the JSON strings and every tensor's bytes>"}

It is read back with ``torch.load(weights_only=True)``, whose unpickler refuses
every global outside tensors and builtin containers, so a crafted file cannot run
code. Writes go to a temporary file in the same folder and are renamed into place,
so an interrupted save never leaves a half-written model under ``path``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

FORMAT = "mixclust-model"
VERSION = 1


def temporary_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A temporary file in ``path``'s folder for an atomic rename onto ``path``, with the permissions a
    plain ``open`` would give (``mkstemp`` makes it 0600, so every model and report would be private)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a temporary file and an atomic rename."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot save to {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_torch_load(path: str | os.PathLike, what: str = "file"):
    """``torch.load(weights_only=True)`` with every failure turned into a ValueError naming ``path``."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory, expected a file written by save()")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{what} {path} is not a file written by mixclust (save() or a checkpoint): "
                         "it is not a torch archive")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, which is exactly what must not be done with a stranger's
        # file; keep only the line naming what was refused.
        refused = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise ValueError(
            f"{what} {path} is not a valid mixclust file, or holds objects other than tensors and plain "
            "values, which are never unpickled" + (f" ({refused[0]})" if refused else "")
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        detail = (str(exc).splitlines() or [repr(exc)])[0]
        raise ValueError(f"{what} {path} is corrupt or truncated: {detail}") from None


def _digest(params: str, attributes: str, tensors: dict) -> str:
    """sha256 over the JSON strings and the raw bytes of every tensor (sorted by key)."""
    digest = hashlib.sha256(params.encode())
    digest.update(attributes.encode())
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous().reshape(-1)
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _encode(value, tensors: dict, key: str):
    """JSON-able form of a parameter value; arrays go to ``tensors``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.device):  # device=torch.device("cuda:0") is accepted like "cuda:0"
        return str(value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        tensors[key] = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value).clone()
        return {"__tensor__": key, "numpy": isinstance(value, np.ndarray)}
    if isinstance(value, (tuple, range)):  # a range (e.g. candidate counts) comes back as a tuple
        return {"__tuple__": [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, tensors, f"{key}.{k}") for k, v in value.items()}}
    raise TypeError(f"cannot save {key!r} of type {type(value).__name__}: only numbers, strings, "
                    "lists, tuples, dicts and arrays are stored")


def _decode(value, tensors: dict):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            tensor = tensors[value["__tensor__"]]
            return tensor.numpy() if value.get("numpy", True) else tensor
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode(v, tensors) for k, v in value["__dict__"].items()}
    return value


def save_estimator(estimator, path: str | os.PathLike) -> None:
    """Write ``estimator`` (parameters and fitted state) to exactly ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    params = {k: _encode(v, tensors, f"param/{k}") for k, v in estimator.get_params(deep=False).items()}
    attributes = {k: _encode(v, tensors, f"attr/{k}") for k, v in estimator._fitted_state().items()}
    for name, module in estimator._fitted_modules().items():
        for key, tensor in module.state_dict().items():
            tensors[f"module/{name}.{key}"] = tensor.detach().cpu().clone()
    params_json, attributes_json = json.dumps(params), json.dumps(attributes)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": estimator._registry_name,
        "params": params_json,
        "attributes": attributes_json,
        "tensors": tensors,
        "sha256": _digest(params_json, attributes_json, tensors),
    }
    atomic_save(payload, path)


def load(path: str | os.PathLike):
    """Load an estimator written by ``save(path)``.

    Only tensors and plain values are read (``weights_only``); the class is looked
    up among the registered models, so no code named by the file is ever run.
    """
    from ._registry import MODELS

    payload = safe_torch_load(path, what="model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"model file {path} is not a mixclust model (no '{FORMAT}' header)")
    if payload.get("version") != VERSION:
        raise ValueError(f"model file {path} has format version {payload.get('version')}, "
                         f"this mixclust reads version {VERSION}")
    name = payload.get("model")
    if name not in MODELS:
        raise ValueError(f"model file {path} names an unknown model {name!r}; "
                         f"available: {', '.join(sorted(MODELS))}")
    try:
        tensors = payload["tensors"]
        if payload["sha256"] != _digest(payload["params"], payload["attributes"], tensors):
            raise ValueError(f"model file {path} is corrupt: its checksum does not match its content")
        params = {k: _decode(v, tensors) for k, v in json.loads(payload["params"]).items()}
        attributes = {k: _decode(v, tensors) for k, v in json.loads(payload["attributes"]).items()}
        estimator = MODELS[name](**params)
        modules: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            if key.startswith("module/"):
                module_name, _, state_key = key[len("module/"):].partition(".")
                modules.setdefault(module_name, {})[state_key] = tensor
        estimator._restore_state(attributes, modules)
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"model file {path} is corrupt: {exc!r}") from None
    return estimator
