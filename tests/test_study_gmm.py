"""The GMM study (SPEC §4) in quick mode: report, figures and the outcomes it must show."""

import re

import numpy as np
import pytest
import torch

from mixclust.studies import gmm as study


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    out = tmp_path_factory.mktemp("gmm")
    threads = torch.get_num_threads()
    path = study.run(out, quick=True, seed=0)
    assert path == out / "README.md"
    assert torch.get_num_threads() == threads  # the study's single-thread setting is undone
    return path


def _table(text, column):
    """The markdown table with a column named ``column``, as {first cell: {column: cell}}."""
    lines = text.splitlines()
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    for i, line in enumerate(lines):
        if line.startswith("|") and column in split(line):
            columns, rows = split(line), {}
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                cells = split(body)
                rows[cells[0]] = dict(zip(columns, cells))
            return rows
    raise AssertionError(f"no table with a column {column!r}")


def test_readme_and_figures(readme):
    text = readme.read_text()
    assert "mixclust reproduce gmm --quick --seed 0" in text
    assert "| data set | K | K-means ARI | GMM ARI | K-means NMI | GMM NMI |" in text
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(figures) == 7
    for name in figures:
        assert (readme.parent / name).stat().st_size > 1000, name
    assert "never decreased" in text and "**decreased**" not in text


def _mean(cell):
    return float(cell.split("±")[0])


def test_gmm_beats_kmeans_on_stretched_and_varied_blobs(readme):
    text = readme.read_text()
    table = _table(text, "GMM ARI")
    for name in ("anisotropic", "varied"):
        row = table[name]
        assert _mean(row["GMM ARI"]) > _mean(row["K-means ARI"]), row
    assert _mean(table["anisotropic"]["GMM ARI"]) > 0.95


def test_kmeans_limit_is_reached(readme):
    smallest = _table(readme.read_text(), "ARI vs K-means labels")[f"{min(study.EPSILONS):g}"]
    assert float(smallest["ARI vs K-means labels"]) == 1.0
    assert float(smallest["max distance to K-means centres"]) < 1e-6
    assert float(smallest["mean max responsibility"]) == pytest.approx(1.0)


def test_iris_two_petal_features_beside_four(readme):
    text = readme.read_text()
    assert "### 4.1 Two petal features, as the source drew it" in text
    assert "](iris_petal_2d.png)" in text
    assert (readme.parent / "iris_petal_2d.png").stat().st_size > 1000
    table = _table(text, "gamma near 0.5")
    assert list(table) == list(study.IRIS_VARIANTS)
    for row in table.values():
        near, below, pair = (int(row[c]) for c in ("gamma near 0.5", "max gamma < 0.9", "versicolor + virginica"))
        assert 0 <= near <= below <= pair == 100, row
        assert row["share < 0.9"] == f"{below / pair:.1%}"
        assert 0 < float(row["ARI"]) <= 1 and 0 < float(row["NMI"]) <= 1
        assert 1 / 3 <= float(row["lowest max gamma"]) < 1
    assert table["2 petal features"]["columns"] == "petal length, petal width"
    for name, row in table.items():  # the text quotes the table's numbers, not fixed ones
        assert f"with {name}, {row['max gamma < 0.9']} " in text or f"With {name}, {row['max gamma < 0.9']} " in text


def test_near_half_counts_both_species_in_range():
    proba = np.array([[0.0, 0.5, 0.5], [0.0, 0.29, 0.71], [0.0, 0.3, 0.7], [0.2, 0.4, 0.4], [0.4, 0.3, 0.3]])
    assert study.near_half(proba).tolist() == [True, False, True, True, True]


def test_soft_kmeans_em_hardens_to_lloyd():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, size=(40, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    centres = X[[0, 40, 80]]
    means, resp = study.soft_kmeans_em(X, centres, eps=1e-4)
    assert np.allclose(resp.sum(1), 1.0)
    labels = resp.argmax(1)
    assert np.allclose(means, [X[labels == k].mean(0) for k in range(3)])
    means, resp = study.soft_kmeans_em(X, centres, eps=1e4)  # huge eps: one blob at the data mean
    assert np.allclose(means, X.mean(0), atol=1e-3)


def test_missing_values_exact_em_beats_mean_imputation(readme):
    table = _table(readme.read_text(), "exact EM: means")
    assert list(table) == [f"{f:g}" for f in study.MISSING_FRACTIONS]
    for row in table.values():
        for what in ("means", "covariances"):
            assert float(row[f"exact EM: {what}"]) < float(row[f"imputation: {what}"]), row
        assert row["exact EM log-lik never decreased"] == "True"


def test_drop_at_random_keeps_an_observed_value_in_every_row():
    X = study.missing_mixture(500, seed=0, n_features=2)
    X_nan = study.drop_at_random(X, 0.4, seed=0)
    mask = np.isnan(X_nan)
    assert not mask.all(1).any() and 0.25 < mask.mean() < 0.4
    np.testing.assert_array_equal(X_nan[~mask], X[~mask])
