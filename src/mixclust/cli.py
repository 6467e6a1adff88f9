"""The ``mixclust`` command line.

::

    mixclust fit --model gmm --data digits --n-clusters 10 --out runs/gmm
    mixclust evaluate --model runs/gmm --data digits
    mixclust reproduce gmm [--quick]
    mixclust datasets
    mixclust models
    mixclust demo

Errors reach the user as one line on stderr and exit status 1 (2 for usage
errors), never as a traceback; ``MIXCLUST_DEBUG=1`` shows the traceback.

Under ``torchrun`` (``WORLD_SIZE > 1``) ``main`` joins the process group from the
environment first, so ``torchrun --nproc_per_node 2 -m mixclust fit ...`` fits across
the processes (see ``docs/distributed.md``); rank 0 alone writes the output folder and
prints, the other ranks wait for it at a barrier.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _parse_param(text: str):
    """``key=value`` with value read as JSON when it parses (numbers, lists, true/null), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param expects key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _n_clusters(text: str):
    """``--n-clusters``: a positive integer, or "auto"."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of clusters or 'auto', got {text!r}") from None


def _load_data(args):
    from . import datasets

    table = {key: getattr(args, key) for key in ("label_column", "columns") if getattr(args, key, None) is not None}
    return datasets.load(args.data, split=args.split, data_dir=args.data_dir, **table)


#: ``--scale`` warns when the spread of the features differs by more than this factor.
SCALE_RATIO_WARNING = 100.0
SCALES = ("none", "standard", "minmax")


def fit_scaling(X: np.ndarray, how: str) -> dict | None:
    """The per-feature affine map of ``--scale`` as ``{"how", "offset", "divisor"}`` (None for "none"):
    "standard" is (x - mean) / std, "minmax" (x - min) / (max - min); a constant feature is only shifted."""
    if how == "none":
        return None
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    flat = X.reshape(len(X), -1).astype(np.float64)
    # scikit-learn's scalers (a constant feature gets divisor 1); kept as plain numbers for scaling.json
    if how == "standard":
        scaler = StandardScaler().fit(flat)
        offset, divisor = scaler.mean_, scaler.scale_
    else:
        scaler = MinMaxScaler().fit(flat)
        offset, divisor = scaler.data_min_, 1.0 / scaler.scale_
    return {"how": how, "offset": offset.tolist(), "divisor": divisor.tolist()}


def apply_scaling(X: np.ndarray, scaling: dict | None) -> np.ndarray:
    if scaling is None:
        return X
    flat = X.reshape(len(X), -1).astype(np.float64)
    if flat.shape[1] != len(scaling["offset"]):
        raise ValueError(f"the data have {flat.shape[1]} features but the scaling was fitted on "
                         f"{len(scaling['offset'])}")
    scaled = (flat - np.asarray(scaling["offset"])) / np.asarray(scaling["divisor"])
    return scaled.reshape(X.shape).astype(X.dtype if X.dtype.kind == "f" else np.float64)


def warn_if_scales_differ(X: np.ndarray) -> None:
    """Tables whose features spread over very different ranges cluster by the widest one: say so."""
    import warnings

    if X.ndim != 2:
        return
    spread = X.astype(np.float64).std(axis=0)
    spread = spread[spread > 0]
    if len(spread) > 1 and spread.max() / spread.min() > SCALE_RATIO_WARNING:
        warnings.warn(f"the features' standard deviations range from {spread.min():.3g} to {spread.max():.3g} "
                      f"(a factor of {spread.max() / spread.min():.0f}): distances follow the widest features; "
                      "consider --scale standard", UserWarning, stacklevel=2)


def _load_labels(path, n: int):
    try:
        y = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read labels file {path}: {exc}") from None
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels file {path} has shape {y.shape}, expected ({n},) to match the data")
    return y


def fitted_metrics(model, X, y=None, proba=None) -> dict:
    """Every metric of ``metrics.evaluate`` for a fitted model on X (external ones when y is given);
    ``proba``: the model's ``predict_proba(X)`` when the caller already has it."""
    from . import metrics

    proba = model.predict_proba(X) if proba is None else proba
    features = X if X.ndim == 2 else X.reshape(len(X), -1)
    return metrics.evaluate(y_true=y, y_pred=proba.argmax(axis=1), proba=proba, X=features)


def write_labels(path: Path, labels) -> None:
    from .reports import atomic_write_text

    lines = ["index,label"] + [f"{i},{int(label)}" for i, label in enumerate(labels)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def cmd_fit(args) -> int:
    from . import distributed
    from ._registry import get_model

    cls = get_model(args.model)
    n_clusters = args.n_clusters
    if n_clusters == "auto":
        if args.model not in ("gmm", "gmm-ic"):
            raise ValueError(f"--n-clusters auto is offered for gmm (it fits gmm-ic, K chosen by BIC), not for "
                             f"{args.model!r}; give a number")
        cls = get_model("gmm-ic")
        n_clusters = cls().n_components  # the default candidates, 1-20
    if not cls._clusterer:
        raise ValueError(f"model {args.model!r} learns a representation and does not cluster; use 'aekm' "
                         "(an autoencoder followed by K-means or a GMM) to cluster with it")
    X, y = _load_data(args)
    if args.labels:
        y = _load_labels(args.labels, len(X))
    params = {cls._n_clusters_param: n_clusters, "random_state": args.random_state,
              "device": args.device, "verbose": args.verbose, **dict(args.param or [])}
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"model {args.model!r} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters: {', '.join(sorted(valid))}")
    from ._base import prepare_input

    model = cls(**params)
    scaling = fit_scaling(X, args.scale)
    if scaling is None:
        warn_if_scales_differ(X)
    loaded = apply_scaling(X, scaling)
    X = prepare_input(model, loaded)
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    if not distributed.is_main_process():
        distributed.barrier()  # rank 0 writes the output; wait so no rank exits before it is complete
        return 0
    world = distributed.world_size()
    with distributed.local_only():
        _write_fit_output(args, model, X, y, params, seconds, world, scaling, loaded)
    distributed.barrier()
    return 0


def _write_fit_output(args, model, X, y, params: dict, seconds: float, world: int = 1, scaling=None,
                      loaded=None) -> None:
    """``labels.csv``, ``metrics.json`` and the model in ``args.out`` (rank 0 only when distributed); with
    ``--scale``, ``scaling.json`` (``mixclust evaluate`` applies it to new data)."""
    from .reports import atomic_write_text

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proba = model.predict_proba(X)  # one inference pass for the metrics and the report
    result = {"model": getattr(model, "_registry_name", args.model), "data": str(args.data),
              "n_samples": int(len(X)), "params": {k: v for k, v in params.items()}, "fit_seconds": seconds,
              "metrics": fitted_metrics(model, X, y, proba)}
    if hasattr(model, "n_components_"):  # gmm-ic: the number of components it chose
        result["n_clusters_chosen"] = int(model.n_components_)
        result["covariance_type_chosen"] = model.covariance_type_
    write_labels(out / "labels.csv", model.labels_)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
    model.save(out / "model")
    if scaling is not None:
        atomic_write_text(out / "scaling.json", json.dumps(scaling) + "\n")
    if not getattr(args, "no_report", False):
        from .fit_report import write_fit_report

        command = "mixclust " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "mixclust fit ..."
        write_fit_report(out, args.model, X if loaded is None else loaded, proba, y,
                         result["metrics"], seconds, str(args.data),
                         int(args.random_state), command=command, criterion=getattr(model, "criterion_", None))
    ranks = "" if world == 1 else f" on {world} processes"
    _print_summary(result["metrics"], f"fitted {args.model} on {args.data}{ranks} in {seconds:.2f} s -> {out}")


def _print_summary(metrics: dict, headline: str) -> None:
    keys = ["nmi", "ari", "acc", "ece", "silhouette", "mean_entropy", "mean_confidence", "balance"]
    parts = [f"{k}={metrics[k]:.4f}" for k in keys if isinstance(metrics.get(k), float)]
    print(headline)
    print("  " + "  ".join(parts))


def cmd_evaluate(args) -> int:
    from ._base import prepare_input
    from ._io import load

    path = Path(args.model)
    model = load(path / "model" if path.is_dir() else path)
    X, y = _load_data(args)
    if args.labels:
        y = _load_labels(args.labels, len(X))
    scaling_file = path / "scaling.json" if path.is_dir() else None
    if scaling_file is not None and scaling_file.exists():
        X = apply_scaling(X, json.loads(scaling_file.read_text()))
    X = prepare_input(model, X)
    result = fitted_metrics(model, X, y)
    print(json.dumps(result, indent=2))
    return 0


def cmd_reproduce(args) -> int:
    from . import studies

    readme = studies.run(args.study, out_dir=args.out, quick=args.quick, seed=args.seed, data_dir=args.data_dir)
    print(f"report written to {readme}")
    return 0


def cmd_datasets(args) -> int:
    from . import datasets

    rows = datasets.available(args.data_dir)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        where = r["path"] or ("built in" if r["available"] else "not found")
        print(f"{r['name']:<{width}}  {r['kind']:<9}  {where}\n{'':<{width}}  {r['description']}")
    if args.data_dir is None:
        print(f"\nsearched: $MIXCLUST_DATA={os.environ.get('MIXCLUST_DATA', '(unset)')}, then the user cache "
              f"{datasets.cache_dir()}; point at a folder with --data-dir or MIXCLUST_DATA")
    return 0


def cmd_models(args) -> int:
    from ._registry import MODELS

    for name, cls in sorted(MODELS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:<8} {cls.__module__}.{cls.__name__}: {doc}")
    return 0


def cmd_benchmark(args) -> int:
    from .studies import suite

    return suite.run_from_args(args)


def cmd_demo(args) -> int:
    from .demo import run

    readme = run(out_dir=args.out, random_state=args.random_state)
    print(f"demo report written to {readme}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixclust", description="Deep and probabilistic clustering built on "
                                     "mixtures. Run 'mixclust COMMAND --help' for each command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def data_options(p, required=True):
        p.add_argument("--data", required=required,
                       help="registered data set name (see 'mixclust datasets') or a path to .npy/.npz, "
                            ".csv/.tsv/.parquet, an image folder or an audio folder")
        p.add_argument("--split", choices=["train", "test", "all"], default=None,
                       help="which split to use (default: train for MNIST-like sets, all otherwise)")
        p.add_argument("--data-dir", default=None,
                       help="the only folder searched for data files (default: $MIXCLUST_DATA, then the cache)")
        p.add_argument("--labels", default=None, help="a .npy file of true labels for external metrics")
        p.add_argument("--label-column", default=None,
                       help="tables: the column (name or 0-based index) holding the true labels")
        p.add_argument("--columns", default=None,
                       help="tables: the feature columns, comma-separated names or 0-based indices (default: all "
                            "but the label column)")

    fit = sub.add_parser("fit", help="fit a model and write labels.csv, metrics.json, the model and report.md")
    fit.add_argument("--model", required=True, help="registered model name (see 'mixclust models')")
    data_options(fit)
    fit.add_argument("--n-clusters", type=_n_clusters, required=True,
                     help="number of clusters / components; 'auto' for gmm chooses it by BIC (gmm-ic)")
    fit.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    fit.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    fit.add_argument("--param", type=_parse_param, action="append", metavar="KEY=VALUE",
                     help="any other model parameter, e.g. --param covariance_type=diag (repeatable)")
    fit.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bars (default)")
    fit.add_argument("--out", required=True, help="output folder")
    fit.add_argument("--no-report", action="store_true",
                     help="skip report.md and its figures (a 2-D map, cluster sizes, entropies, members, labels)")
    fit.add_argument("--scale", choices=SCALES, default="none",
                     help="per-feature scaling before the fit: standard (zero mean, unit variance), minmax "
                          "([0, 1]) or none (default, as scikit-learn); 'mixclust evaluate' reuses it")
    fit.set_defaults(func=cmd_fit)

    ev = sub.add_parser("evaluate", help="evaluate a fitted model (folder written by fit, or a model file)")
    ev.add_argument("--model", required=True, help="folder written by 'mixclust fit' or a saved model file")
    data_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    rep = sub.add_parser("reproduce", help="run a study and write reports/STUDY/")
    rep.add_argument("study", help="study name: " + ", ".join(_study_names()))
    rep.add_argument("--quick", action="store_true", help="tiny version for CI (seconds to minutes)")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--out", default=None,
                     help="report folder (default reports/STUDY; with --quick runs/reproduce/STUDY-quick)")
    rep.add_argument("--data-dir", default=None)
    rep.set_defaults(func=cmd_reproduce)

    ds = sub.add_parser("datasets", help="list the data sets and where they were found")
    ds.add_argument("--data-dir", default=None)
    ds.set_defaults(func=cmd_datasets)

    models = sub.add_parser("models", help="list the registered models")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("benchmark", help="every clusterer with its defaults on many data sets "
                           "(reports/suite; resumes from its cache)")
    from .studies import suite

    suite.add_arguments(bench)
    bench.set_defaults(func=cmd_benchmark)

    demo = sub.add_parser("demo", help="every model clusters scikit-learn's digits; writes a small report")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--random-state", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    return parser


def _study_names():
    from .studies import STUDIES

    return sorted(STUDIES)


def _launched_by_torchrun() -> bool:
    """True when the environment describes a group of several processes (torchrun sets WORLD_SIZE)."""
    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    joined = False
    try:
        if _launched_by_torchrun():
            from . import distributed

            joined = distributed.init_from_env(getattr(args, "device", "auto"))
        return args.func(args)
    except KeyboardInterrupt:
        print("mixclust: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        if os.environ.get("MIXCLUST_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mixclust: error: {message}", file=sys.stderr)
        return 1
    finally:
        if joined:
            from . import distributed

            distributed.shutdown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
