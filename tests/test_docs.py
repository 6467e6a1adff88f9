"""The documentation site covers the public API and every model has a user-guide page (``make docs`` builds
it with warnings as errors in CI)."""

from __future__ import annotations

import inspect
from pathlib import Path

import mixclust

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_public_class_and_function_is_in_the_api_reference():
    api = (DOCS / "api.rst").read_text()
    for name in mixclust.__all__:
        obj = getattr(mixclust, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert f"mixclust.{name}" in api, f"mixclust.{name} is missing from docs/api.rst"


def test_every_registered_clusterer_has_a_user_guide_page():
    guide = (DOCS / "guide" / "index.md").read_text()
    for name, cls in mixclust.MODELS.items():
        if cls._clusterer:
            assert (DOCS / "guide" / f"{name}.md").exists(), f"docs/guide/{name}.md is missing"
            assert f"\n{name}\n" in guide, f"docs/guide/index.md does not list {name}"


def test_the_readme_starts_in_one_screen_and_names_every_model():
    readme = (DOCS.parent / "README.md").read_text()
    assert len(readme.splitlines()) <= 100
    for needed in ("make demo", "make test", "```python", "mixclust fit", "<!-- end of suite table -->",
                   "GaussianMixture speed"):
        assert needed in readme
    for name, cls in mixclust.MODELS.items():
        if cls._clusterer and not getattr(cls, "_chooses_k", False):
            assert f"| `{name}` |" in readme, f"the README's model table has no line for {name}"


def test_probes_live_in_their_folder_and_each_is_described():
    benchmarks = DOCS.parent / "benchmarks"
    assert not list(benchmarks.glob("probe_*.py"))
    described = (benchmarks / "probes" / "README.md").read_text()
    for probe in (benchmarks / "probes").glob("probe_*.py"):
        assert f"`{probe.name}`" in described, f"{probe.name} is not described in benchmarks/probes/README.md"
