"""Writing study reports: ``reports/<study>/README.md`` beside its PNG figures.

A :class:`Report` collects markdown (headings, paragraphs, tables) and
matplotlib figures, then writes everything atomically. Every report states the
command and seed that produced it, so each number can be re-run.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ._io import temporary_beside  # noqa: E402


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def format_value(value, floatfmt: str = ".3f") -> str:
    """A table cell: floats with ``floatfmt`` (NaN as an em dash), everything else with str()."""
    if isinstance(value, float):
        return "—" if math.isnan(value) else format(value, floatfmt)
    if value is None:
        return "—"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".3f") -> str:
    """A GitHub markdown table of ``rows`` (dicts), columns in the given order."""
    if not rows:
        return "_(no rows)_\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c), floatfmt) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def mean_std(values) -> str:
    """'mean ± std' of a list of numbers (population std), three decimals."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{mean:.3f} ± {std:.3f}"


def _seed_text(seed: int | range | None) -> str:
    """" (seed 0)", or " (seeds 0-2)" for a study that runs several from its ``--seed``."""
    if seed is None:
        return ""
    if isinstance(seed, range) and len(seed) > 1:
        return f" (seeds {seed[0]}-{seed[-1]})"
    return f" (seed {seed[0] if isinstance(seed, range) else seed})"


class Report:
    """Markdown report with figures, written to ``out_dir/README.md``.

    Parameters
    ----------
    out_dir : folder of the report (created).
    title : first heading.
    command : the exact shell command that reproduces the report.
    seed : the random seed the command used, or the seeds it runs (a range: ``--seed`` is then the first).
    """

    def __init__(self, out_dir: str | os.PathLike, title: str, command: str, seed: int | range | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._parts = [f"# {title}\n"]
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        import torch

        self._parts.append(
            f"Reproduce with `{command}`" + _seed_text(seed) + ".\n\n"
            f"Generated {stamp} on {platform.machine()} with {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads.\n"
        )

    def section(self, title: str, level: int = 2) -> Report:
        self._parts.append(f"\n{'#' * level} {title}\n")
        return self

    def text(self, markdown: str) -> Report:
        self._parts.append(markdown.strip("\n") + "\n")
        return self

    def table(self, rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".3f") -> Report:
        self._parts.append("\n" + markdown_table(rows, columns, floatfmt))
        return self

    def figure(self, fig, name: str, caption: str = "") -> Path:
        """Save ``fig`` as ``out_dir/name`` (PNG) and reference it in the report."""
        path = self.out_dir / name
        fd, tmp = temporary_beside(path, suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
            plt.close(fig)
        self._parts.append(f"\n![{caption or name}]({name})\n" + (f"\n_{caption}_\n" if caption else ""))
        return path

    def write(self, name: str = "README.md") -> Path:
        path = self.out_dir / name
        atomic_write_text(path, "\n".join(self._parts))
        return path
