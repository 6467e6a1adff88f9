"""The NNOBJ study (SPEC §5) in quick mode: report, figures and the outcome it must show."""

import re

import pytest
import torch

from mixclust.studies import nnobj as study


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    out = tmp_path_factory.mktemp("nnobj")
    threads = torch.get_num_threads()
    path = study.run(out, quick=True, seed=0)
    assert path == out / "README.md"
    assert torch.get_num_threads() == threads
    return path


def _cell(text, metric, method, column):
    """The mean in the ``metric`` table's row ``method``, column ``column``."""
    block = text.split(f"**{metric}**", 1)[1]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == method:
            return float(re.match(r"(-?[\d.]+)", cells[header.index(column)]).group(1))
    raise AssertionError(f"no row {method!r}")


def test_readme_and_figures(readme):
    text = readme.read_text()
    assert "mixclust reproduce nnobj --quick --seed 0" in text
    for method in study.METHODS:
        assert f"| {method} |" in text
    figures = sorted(p.name for p in readme.parent.glob("*.png"))
    assert len([f for f in figures if f.startswith("clusters_")]) == len(study.DATASETS)
    assert len(figures) == len(study.DATASETS) + len(study.NOTES_EPOCHS)  # + one loss figure per objective
    for name in figures:
        assert f"]({name})" in text
        assert (readme.parent / name).stat().st_size > 10_000


def test_default_objective_beats_kmeans_on_the_moons(readme):
    text = readme.read_text()
    column = next(c for c in re.findall(r"moons \d+", text))
    scan, kmeans = _cell(text, "ARI", "nn: scan", column), _cell(text, "ARI", "K-means", column)
    assert scan > kmeans
    assert scan >= 0.95
    assert "**Confirmed**" in text  # the notes' objectives fail on the moons


def _table_after(text, marker):
    """Rows (dicts of cells) of the first markdown table after ``marker``."""
    block = text.split(marker, 1)[1]
    lines = []
    for line in block.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def test_section_as_the_notes_ran_it(readme):
    text = readme.read_text()
    assert "as the notes ran it" in text
    section = text.split("as the notes ran it\n", 1)[1]
    assert "standardize=False" in section and "lr=0.001" in section and "init='random'" in section
    rows = _table_after(section, "**As the notes ran it**")
    keys = [study._notes_key(n, box) for n, box in study.NOTES_DATA]
    methods = ["K-means", "nn: centroid", "nn: similarity"]
    assert [(r["data set"], r["method"]) for r in rows] == [(k, m) for k in keys for m in methods]
    for row in rows:
        for column in ("ARI mean", "ARI min", "NMI mean", "NMI min"):
            assert -1.0 <= float(row[column]) <= 1.0
        assert float(row["ARI min"]) <= float(row["ARI mean"])
        assert all(1 <= int(u) <= 3 for u in row["clusters used"].split())
    # K-means finds the three blobs when they lie far apart (box ±15)
    assert all(float(r["ARI mean"]) > 0.9 for r in rows if r["method"] == "K-means" and "±15" in r["data set"])


def test_loss_figures_and_histories(readme):
    text = readme.read_text()
    section = text.split("as the notes ran it\n", 1)[1]
    for objective in study.NOTES_EPOCHS:
        name = f"loss_notes_{objective}.png"
        assert f"]({name})" in section
        assert (readme.parent / name).stat().st_size > 10_000
    rows = _table_after(section, "**Loss per epoch**")
    assert len(rows) == len(study.NOTES_EPOCHS) * len(study.NOTES_DATA)
    for row in rows:
        epochs = study._notes_params(row["objective"], quick=True)["epochs"]
        assert epochs == study.NOTES_EPOCHS[row["objective"]] // 10  # quick mode: 30 / 50
        assert int(row["epochs recorded"]) == epochs  # one loss per epoch in history_
        assert re.fullmatch(r"epochs \d+-\d+", row["largest 20-epoch drop"])
    for objective in study.NOTES_EPOCHS:
        assert re.search(rf"- `{objective}` \(\d+ epochs\): the largest 20-epoch drop", section)
        assert re.search(r"\*\*(not )?near epoch 120\*\*", section)


def test_largest_drop():
    losses = [10.0] * 100 + [0.0] * 100
    first, last, drop = study._largest_drop(losses)
    assert drop == 10.0 and first <= 100 < last and last - first == study.DROP_WINDOW
    assert study._near((110, 130), 120) and not study._near((1, 21), 120)
