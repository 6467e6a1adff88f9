"""hidden="auto" (MLP widths scaled by sqrt(D / 784) below 784 input features) against the default
(500, 500, 2000), from the benchmark suite's cache: the same sets, models, seeds and code.

The runs come from the suite's probe mode (cached apart from the defaults by their parameters):

    MIXCLUST_DATA=../shared/data OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 mixclust benchmark --models vade,aekm \
        --threads 1 --sets digits,digits16-2k,iris,wine,breast-cancer,blobs,anisotropic,varied,moons,circles \
        --override "hidden='auto'"

(and for seeds 1 and 2 of the image sets, whose seed-0 runs exceed the suite's minute for more seeds, each
``--seeds 1`` and ``--seeds 2`` with ``--sets digits,digits16-2k,digits16-9k``, with and without the override),

and the default runs from ``mixclust benchmark`` itself. Then ``python benchmarks/probes/probe_hidden_auto.py``
prints, per (set, model), the mean NMI over the seeds both have and the seconds of the first of them (wall time of a job
sharing 2 cores with a varying number of others, so not comparable between the columns).
``python benchmarks/probes/probe_hidden_auto.py --time`` times AEClustering both ways on wine and blobs in one
process, one thread (run it on an idle machine).
"""

import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from mixclust.studies.suite import version

CACHE = Path(__file__).resolve().parents[2] / "reports" / "suite" / ".runs"
AUTO = "('hidden', \"'auto'\")"


def main():
    runs = {}
    for path in sorted(CACHE.glob("*--vade.pkl")) + sorted(CACHE.glob("*--aekm.pkl")):
        for key, run in pickle.loads(path.read_bytes()).items():
            if not isinstance(key, tuple) or key[1] != "flat":
                continue
            set_name, _, model, seed, params, code = key
            if code != version(model):
                continue
            which = "auto" if AUTO in params else "default"
            runs.setdefault((set_name, model), {}).setdefault(which, {})[seed] = (run["nmi"], run["seconds"])
    print(f"{'set':14s} {'model':5s} {'default NMI':>11s} {'auto NMI':>9s} {'default s':>9s} {'auto s':>7s}  seeds")
    for (set_name, model), got in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0])):
        seeds = sorted(set(got.get("auto", {})) & set(got.get("default", {})))
        if not seeds:
            continue
        default = np.mean([got["default"][s][0] for s in seeds])
        auto = np.mean([got["auto"][s][0] for s in seeds])
        print(f"{set_name:14s} {model:5s} {default:11.3f} {auto:9.3f} {got['default'][seeds[0]][1]:9.0f} "
              f"{got['auto'][seeds[0]][1]:7.0f}  {seeds}")


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
    timing() if "--time" in sys.argv else main()
