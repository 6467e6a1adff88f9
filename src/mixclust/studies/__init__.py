"""Reproduction studies: ``mixclust reproduce NAME`` writes ``reports/NAME/``.

Each study is a module here with a ``run(out_dir, quick, seed, data_dir) -> Path``
function (the path of the README it wrote) and a one-line ``DESCRIPTION``. A new
study only adds a module and a line to ``STUDIES``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

STUDIES = {
    "gmm": "mixclust.studies.gmm",
    "nnobj": "mixclust.studies.nnobj",
    "aevae": "mixclust.studies.aevae",
}


def describe() -> dict[str, str]:
    """Name -> one-line description of every study."""
    return {name: importlib.import_module(path).DESCRIPTION for name, path in STUDIES.items()}


def run(name: str, out_dir=None, quick: bool = False, seed: int = 0, data_dir=None) -> Path:
    """Run study ``name``; the report goes to ``out_dir`` (default ``reports/<name>``)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; available: {', '.join(sorted(STUDIES))}")
    module = importlib.import_module(STUDIES[name])
    out_dir = Path(out_dir) if out_dir is not None else Path("reports") / name
    return module.run(out_dir=out_dir, quick=quick, seed=seed, data_dir=data_dir)
