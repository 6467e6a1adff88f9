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
    for key in ("nmi", "ari", "acc", "ece", "silhouette", "davies_bouldin", "calinski_harabasz", "mean_entropy"):
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
    assert code == 1 and str(bad) in err and "not a valid .npz archive" in err and "truncated" in err


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


def wine_table(path, delimiter=",", header=True):
    """scikit-learn's wine as a table with a string label column 'cultivar' between the features."""
    from sklearn.datasets import load_wine

    data = load_wine()
    names = [n.replace("/", "_") for n in data.feature_names]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        if header:
            writer.writerow([*names[:3], "cultivar", *names[3:]])
        for row, label in zip(data.data, data.target):
            writer.writerow([*row[:3], f"class_{label}", *row[3:]])
    return data.data, data.target, names


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_tables_load_with_header_label_column_and_selected_columns(tmp_path, suffix, delimiter):
    path = tmp_path / f"wine{suffix}"
    X_true, y_true, names = wine_table(path, delimiter)
    X, y = mixclust.datasets.load(str(path), label_column="cultivar")
    np.testing.assert_allclose(X, X_true)
    assert list(y[:1]) == ["class_0"] and len(set(y)) == 3
    X2, y2 = mixclust.datasets.load(str(path), label_column=3, columns=f"{names[0]},1")
    np.testing.assert_allclose(X2, X_true[:, :2])
    assert np.array_equal(y2, y)
    with pytest.raises(ValueError, match="column 'cultivar' is not numeric"):
        mixclust.datasets.load(str(path))
    with pytest.raises(ValueError, match="no column 'colour'"):
        mixclust.datasets.load(str(path), label_column="colour")


def test_a_table_without_header_has_indexed_columns_and_parquet_reads_alike(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    np.savetxt(tmp_path / "plain.csv", np.column_stack([X, np.arange(20) % 2]), delimiter=",")
    Xc, yc = mixclust.datasets.load(str(tmp_path / "plain.csv"), label_column=3)
    np.testing.assert_allclose(Xc, X)
    assert yc.dtype.kind == "i" and list(yc[:3]) == [0, 1, 0]
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": (np.arange(20) % 2).astype(np.int64)})
    pq.write_table(table, tmp_path / "t.parquet")
    Xp, yp = mixclust.datasets.load(str(tmp_path / "t.parquet"), label_column="label", columns=["a", "b", "c"])
    np.testing.assert_allclose(Xp, X)
    assert np.array_equal(yp, yc)


def test_fit_reads_a_table_scales_it_and_evaluate_reuses_the_scaling(tmp_path, capsys):
    path = tmp_path / "wine.csv"
    wine_table(path)
    base = ["fit", "--model", "gmm", "--data", str(path), "--label-column", "cultivar", "--n-clusters", "3",
            "--param", "covariance_type=spherical", "--verbose", "0"]
    with pytest.warns(UserWarning, match="consider --scale standard"):
        code, _, err = run(base + ["--out", str(tmp_path / "raw")], capsys)
    assert code == 0, err
    code, _, err = run(base + ["--scale", "standard", "--out", str(tmp_path / "std")], capsys)
    assert code == 0, err
    raw = json.loads((tmp_path / "raw" / "metrics.json").read_text())["metrics"]
    scaled = json.loads((tmp_path / "std" / "metrics.json").read_text())["metrics"]
    assert scaled["nmi"] > raw["nmi"] + 0.2  # wine's proline (~1,000) dominates unscaled distances
    code, stdout, _ = run(["evaluate", "--model", str(tmp_path / "std"), "--data", str(path), "--label-column",
                           "cultivar"], capsys)
    assert code == 0 and json.loads(stdout)["nmi"] == pytest.approx(scaled["nmi"])


def test_fit_writes_a_report_with_figures_and_no_report_skips_it(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((60, 1, 4, 4)).astype(np.float32) * 0.3
    images[30:] += 0.6
    np.save(tmp_path / "X.npy", images)
    np.save(tmp_path / "y.npy", np.repeat([0, 1], 30))
    base = ["fit", "--model", "gmm", "--data", str(tmp_path / "X.npy"), "--n-clusters", "3", "--param",
            "covariance_type=diag", "--verbose", "0"]
    code, _, err = run(base + ["--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    report = (tmp_path / "a" / "report.md").read_text()
    for figure in ("map.png", "sizes.png", "entropy.png", "members.png", "reliability.png", "labels.png"):
        assert f"]({figure})" in report and (tmp_path / "a" / figure).stat().st_size > 1000
    assert "| nmi |" in report and "this report" in report
    code, _, err = run(base + ["--no-report", "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert not (tmp_path / "b" / "report.md").exists() and (tmp_path / "b" / "metrics.json").exists()


def test_entropy_is_per_sample_and_fast_fits_get_a_pca_map():
    from mixclust.fit_report import map_method
    from mixclust.metrics import entropy

    proba = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(entropy(proba), [0.0, np.log(2)])
    assert map_method(1.0) == "pca" and map_method(120.0) == "umap"


def test_demo_does_not_import_the_command_line():
    """cli imports demo (lazily, for ``mixclust demo``); demo must not import cli back."""
    code = "import sys, mixclust.demo; print('mixclust.cli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
