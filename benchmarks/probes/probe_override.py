"""A candidate default (a suite ``--override``) against the default, from the benchmark suite's cache: the same
sets, models, seeds and code.

The candidate's runs come from the suite's probe mode (cached apart from the defaults by their parameters), e.g.

    MIXCLUST_DATA=../shared/data OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 mixclust benchmark --models vade,aekm \
        --threads 1 --sets digits,digits16-2k,iris,wine,breast-cancer,blobs,anisotropic,varied,moons,circles \
        --override "hidden='auto'"

(image sets whose seed-0 run exceeds the suite's minute for more seeds get seeds 1 and 2 by ``--seeds 1`` and
``--seeds 2``, with and without the override), and the default runs from ``mixclust benchmark`` itself. Then

    python benchmarks/probes/probe_override.py "hidden='auto', partition='prior'" "partition='prior'"
        # reports/suite/evidence/hidden_auto.txt (VaDE's runs of it were made when partition='prior' was its
        # default; AEClustering has no partition, so the override is its hidden='auto' against its defaults)
    python benchmarks/probes/probe_override.py "epochs=10" --code=moa:4
        # reports/suite/evidence/moa_epochs.txt: MoA's 10 epochs against the floor of 1,000 steps it replaced
        # (code version 4, when the floor was the default)
    python benchmarks/probes/probe_override.py "partition='manifold'" "partition='prior'"
        # reports/suite/evidence/vade_partition.txt (VaDE's default now, against the value it replaced)

prints, per (set, model), the mean NMI over the seeds both have and the seconds of the first of them (wall time
of a job sharing 2 cores with a varying number of others, so not comparable between the columns).
``python benchmarks/probes/probe_override.py --time`` times AEClustering with ``hidden="auto"`` and the default
widths on wine and blobs in one process, one thread (run it on an idle machine).
"""

import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from mixclust._registry import MODELS
from mixclust.studies.suite import _make, _params_key, parse_overrides, version

CACHE = Path(__file__).resolve().parents[2] / "reports" / "suite" / ".runs"


def main(override: str, baseline: str | None = None, code: dict | None = None):
    """``override`` against the defaults, or against ``baseline`` (another override: to compare a candidate with
    the value it replaced once it is the default); ``code`` (``--code moa=4``): read the runs of that code version
    of a model instead of today's (a change the parameters do not show, kept as evidence)."""
    overrides, base = parse_overrides(override), parse_overrides(baseline) or None
    runs = {}
    for path in sorted(CACHE.glob("*.pkl")):
        for key, run in pickle.loads(path.read_bytes()).items():
            if not isinstance(key, tuple) or key[1] != "flat":
                continue
            set_name, _, model, seed, params, run_code = key
            if model not in MODELS or run_code != (code or {}).get(model, version(model)):
                continue
            # the suite's own keys of the default and of the candidate for this run
            keys = {which: _params_key(_make(model, run["K"], seed, extra))
                    for which, extra in (("default", base), ("candidate", overrides))}
            if keys["default"] == keys["candidate"]:
                continue  # a model without the parameter, or whose default it is
            for which, wanted in keys.items():
                if params == wanted:
                    runs.setdefault((set_name, model), {}).setdefault(which, {})[seed] = (run["nmi"], run["seconds"])
    print(f"{override} (cand.) against {baseline or 'the defaults'} (default): NMI mean over the seeds both have")
    print(f"{'set':14s} {'model':5s} {'default NMI':>11s} {'cand. NMI':>9s} {'default s':>9s} {'cand. s':>7s}  seeds")
    for (set_name, model), got in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0])):
        seeds = sorted(set(got.get("candidate", {})) & set(got.get("default", {})))
        if not seeds:
            continue
        default = np.mean([got["default"][s][0] for s in seeds])
        candidate = np.mean([got["candidate"][s][0] for s in seeds])
        print(f"{set_name:14s} {model:5s} {default:11.3f} {candidate:9.3f} {got['default'][seeds[0]][1]:9.0f} "
              f"{got['candidate'][seeds[0]][1]:7.0f}  {seeds}")


def timing():
    import torch

    from mixclust import AEClustering, _deep, metrics
    from mixclust.studies.suite import SETS

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    _deep.manifold_partition(rng.normal(size=(300, 5)).astype(np.float32), 3, 0)  # numba compiles once
    for name in ("wine", "blobs"):
        X, y = SETS[name].loader(data_dir=None)
        for hidden in ("auto", (500, 500, 2000)):
            started = time.perf_counter()
            model = AEClustering(len(np.unique(y)), hidden=hidden, random_state=0).fit(X)
            print(f"{name:6s} hidden={hidden!s:16s} NMI {metrics.external_metrics(y, model.labels_)['nmi']:.3f} "
                  f"{time.perf_counter() - started:5.1f} s")


if __name__ == "__main__":
    if "--time" in sys.argv:
        timing()
    else:
        codes = dict(a.split("=", 1)[1].split(":") for a in sys.argv if a.startswith("--code="))
        main(*[a for a in sys.argv[1:] if not a.startswith("--")][:2], code={m: int(v) for m, v in codes.items()})
