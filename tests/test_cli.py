"""The command line: outputs of fit, evaluate, errors as one line, help everywhere."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import mixclust
from mixclust.cli import main


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_writes_labels_metrics_and_model(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["fit", "--model", "gmm", "--data", "iris", "--n-clusters", "3", "--verbose", "0",
                           "--out", str(out)], capsys)
    assert code == 0 and "nmi=" in stdout
    with open(out / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["index", "label"] and len(rows) == 150
    result = json.loads((out / "metrics.json").read_text())
    metrics = result["metrics"]
    for key in ("nmi", "ari", "acc", "silhouette", "davies_bouldin", "calinski_harabasz", "mean_entropy"):
        assert np.isfinite(metrics[key])
    assert metrics["nmi"] > 0.7  # iris with 3 full-covariance components
    model = mixclust.load(out / "model")
    X, _ = mixclust.datasets.load("iris")
    assert np.array_equal(model.predict(X), np.array([int(r["label"]) for r in rows]))


def test_fit_same_seed_same_labels_and_random_state_defaults_to_zero(tmp_path, capsys):
    base = ["fit", "--model", "gmm", "--data", "varied", "--n-clusters", "3", "--verbose", "0"]
    run(base + ["--out", str(tmp_path / "a")], capsys)
    run(base + ["--random-state", "0", "--out", str(tmp_path / "b")], capsys)
    assert (tmp_path / "a" / "labels.csv").read_text() == (tmp_path / "b" / "labels.csv").read_text()
    params = json.loads((tmp_path / "a" / "metrics.json").read_text())["params"]
    assert params["random_state"] == 0


def test_fit_flattens_images_and_uses_external_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((60, 1, 4, 4)).astype(np.float32)
    images[30:] += 2.0
    labels = np.repeat([0, 1], 30)
    np.save(tmp_path / "X.npy", images)
    np.save(tmp_path / "y.npy", labels)
    code, _, err = run(["fit", "--model", "gmm", "--data", str(tmp_path / "X.npy"), "--labels",
                        str(tmp_path / "y.npy"), "--n-clusters", "2", "--param", "covariance_type=diag",
                        "--verbose", "0", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert metrics["ari"] == pytest.approx(1.0)


def test_evaluate_prints_metrics(tmp_path, capsys):
    run(["fit", "--model", "gmm", "--data", "blobs", "--n-clusters", "3", "--verbose", "0",
         "--out", str(tmp_path)], capsys)
    code, stdout, _ = run(["evaluate", "--model", str(tmp_path), "--data", "blobs"], capsys)
    assert code == 0
    assert json.loads(stdout)["ari"] > 0.9


@pytest.mark.parametrize("args, fragment", [
    (["fit", "--model", "nope", "--data", "iris", "--n-clusters", "3"], "unknown model 'nope'"),
    (["fit", "--model", "gmm", "--data", "nope", "--n-clusters", "3"], "unknown data set 'nope'"),
    (["fit", "--model", "gmm", "--data", "iris", "--n-clusters", "500"], "n_components = 500"),
    (["fit", "--model", "gmm", "--data", "iris", "--n-clusters", "3", "--param", "covariance_type=odd"],
     "covariance_type 'odd'"),
    (["fit", "--model", "gmm", "--data", "iris", "--n-clusters", "3", "--param", "nonsense=1"],
     "no parameter(s) nonsense"),
    (["evaluate", "--model", "/nonexistent/model", "--data", "iris"], "does not exist"),
    (["reproduce", "nope"], "unknown study 'nope'"),
])
def test_errors_are_one_line_without_traceback(tmp_path, capsys, args, fragment):
    code, _, err = run(args + (["--out", str(tmp_path)] if args[0] == "fit" else []), capsys)
    assert code == 1
    assert fragment in err
    assert err.startswith("mixclust: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_data_file_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    code, _, err = run(["fit", "--model", "gmm", "--data", str(bad), "--n-clusters", "2", "--out",
                        str(tmp_path / "o")], capsys)
    assert code == 1 and str(bad) in err


@pytest.mark.parametrize("command", [["fit"], ["evaluate"], ["reproduce"], ["datasets"], ["models"], ["demo"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0 and "usage: mixclust" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "mixclust", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "usage: mixclust" in result.stdout


def test_datasets_and_models_commands(capsys):
    code, stdout, _ = run(["datasets"], capsys)
    assert code == 0 and "mnist" in stdout and "iris" in stdout
    code, stdout, _ = run(["models"], capsys)
    assert code == 0 and "gmm" in stdout


def test_fit_refuses_models_that_do_not_cluster(tmp_path, capsys):
    code, _, err = run(["fit", "--model", "ae", "--data", "iris", "--n-clusters", "3", "--out", str(tmp_path)],
                       capsys)
    assert code == 1 and "does not cluster" in err and "aekm" in err


def test_quick_reproduce_never_writes_over_the_committed_report(tmp_path, monkeypatch):
    from mixclust import studies

    monkeypatch.chdir(tmp_path)
    readme = studies.run("gmm", quick=True)
    assert readme.resolve() == (tmp_path / "runs" / "reproduce" / "gmm-quick" / "README.md").resolve()
    assert not (tmp_path / "reports").exists()
