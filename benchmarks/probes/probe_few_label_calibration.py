"""Probe: how far does recalibration on a few labelled samples (``mixclust.FewLabelCalibrator``, each ``method``)
calibrate a model's soft assignments (issue 18)? For each data set, the model with its defaults (seed 0) gives
``proba``; then, for each number of labelled samples, 20 random draws (the same draws for every method): the
calibrator is fitted on the drawn samples and ECE is measured on all the others (never on the samples it saw),
before and after. ACC and NMI do not move (the argmax of every row is kept).

A data set is a suite set (``digits``, ``fashion-5k``, ...) or ``frontier:SET:PROTOCOL:SEED`` (``mnist`` or
``fashion``, ``all`` or ``test``): the frontier study's data, reusing the VaDE checkpoints that
``mixclust reproduce frontier`` left in ``reports/frontier/.checkpoints`` (a finished fit then costs only its
partition).

    MIXCLUST_DATA=../shared/data python benchmarks/probes/probe_few_label_calibration.py MODEL SET [SET ...]

``MIXCLUST_PROBE_CACHE=DIR`` keeps each model's ``proba`` and labels there (``MODEL-SET.npz``), so a rerun fits
nothing.
"""
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mixclust import FewLabelCalibrator, metrics
from mixclust._registry import get_model
from mixclust.calibration import METHODS
from mixclust.studies import frontier
from mixclust.studies.suite import SETS

torch.set_num_threads(1)
warnings.simplefilter("ignore")
LABELLED = (25, 50, 100, 200)
DRAWS = 20


def model_proba(model_name: str, set_name: str):
    """(proba of the scored samples, their labels) of the model's defaults, seed 0."""
    if set_name.startswith("frontier:"):
        _, name, protocol, seed = set_name.split(":")
        X_fit, X_score, y_score = frontier.load(name, protocol, frontier.FULL, int(seed))
        checkpoints = Path("reports/frontier/.checkpoints") / f"{name}-{protocol}-{seed}-vade"
        model = get_model(model_name)(10, random_state=int(seed),
                                      checkpoint_dir=str(checkpoints) if model_name == "vade" else None)
        return model.fit(X_fit).predict_proba(X_score), y_score
    X, y = SETS[set_name].loader(data_dir=None)
    return get_model(model_name)(SETS[set_name].k, random_state=0).fit(X).predict_proba(X), y


def cached_proba(model_name: str, set_name: str):
    cache = os.environ.get("MIXCLUST_PROBE_CACHE")
    path = Path(cache) / f"{model_name}-{set_name.replace(':', '-')}.npz" if cache else None
    if path is not None and path.exists():
        saved = np.load(path)
        return saved["proba"], saved["y"]
    proba, y = model_proba(model_name, set_name)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, proba=proba, y=y)
    return proba, y


def main(model_name: str, set_names: list[str]) -> None:
    for set_name in set_names:
        started = time.perf_counter()
        proba, y = cached_proba(model_name, set_name)
        scores = metrics.evaluate(y, proba=proba)
        print(json.dumps({"model": model_name, "set": set_name, "n": len(y), "nmi": round(scores["nmi"], 4),
                          "acc": round(scores["acc"], 4), "ece": round(scores["ece"], 4),
                          "mean_confidence": round(scores["mean_confidence"], 4),
                          "fit_seconds": round(time.perf_counter() - started)}), flush=True)
        for n_labelled in LABELLED:
            rng = np.random.default_rng(n_labelled)
            draws = [rng.choice(len(y), n_labelled, replace=False) for _ in range(DRAWS)]
            rests = [np.setdiff1d(np.arange(len(y)), few) for few in draws]
            before = [metrics.expected_calibration_error(y[rest], proba[rest]) for rest in rests]
            for method in METHODS:
                after, fitted = [], []
                for few, rest in zip(draws, rests):
                    calibrator = FewLabelCalibrator(method).fit(proba[few], y[few])
                    after.append(metrics.expected_calibration_error(y[rest], calibrator.transform(proba[rest])))
                    fitted.append((calibrator.temperature_, calibrator.smoothing_))
                print(json.dumps({"model": model_name, "set": set_name, "labelled": n_labelled, "method": method,
                                  "draws": DRAWS, "ece_before": round(float(np.mean(before)), 4),
                                  "ece_after_mean": round(float(np.mean(after)), 4),
                                  "ece_after_std": round(float(np.std(after)), 4),
                                  "ece_after_worst": round(float(np.max(after)), 4),
                                  "temperature_median": round(float(np.median([t for t, _ in fitted])), 3),
                                  "smoothing_median": round(float(np.median([a for _, a in fitted])), 3)}),
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
