"""The benchmark suite: cached runs, the K-means guarantee and the report (tiny sets only)."""

from mixclust.studies import suite


def test_suite_runs_caches_and_reports(tmp_path):
    logged = []
    rows = suite.compute(["iris"], ["kmeans", "gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(0, 1))
    assert {(r["model"], r["seed"]) for r in rows} == {("kmeans", 0), ("kmeans", 1), ("gmm", 0), ("gmm", 1)}
    assert all(0.5 < r["nmi"] <= 1 and r["used"] == 3 for r in rows)
    # the calibration of every model's soft assignments; K-means' hard labels have none
    assert all((r["ece"] is None) == (r["model"] == "kmeans") for r in rows)
    assert all(0 <= r["ece"] <= 1 for r in rows if r["model"] == "gmm")
    again = suite.compute(["iris"], ["kmeans", "gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(0, 1))
    assert again == rows and len(logged) == 4  # the second call read every run from the cache
    readme = suite.write_report(rows, tmp_path, "make suite")
    text = readme.read_text()
    assert "Tabular sets" in text and "| iris | flat | gmm |" in text


def test_guarantee_compares_each_deep_model_with_kmeans_on_image_sets():
    rows = [{"set": "digits", "form": f, "model": m, "seed": 0, "nmi": v} for f, m, v in
            [("flat", "kmeans", 0.70), ("flat", "vade", 0.69), ("images", "vade", 0.60), ("flat", "nnobj", 0.9),
             ("flat", "gmm", 0.5)]]  # the EM GMM is shown but not held to the guarantee
    rows.append({"set": "iris", "form": "flat", "model": "vade", "seed": 0, "nmi": 0.1})  # not an image set
    checks = {(c["form"], c["model"]): c["holds"] for c in suite.guarantee(rows)}
    assert checks == {("flat", "vade"): "yes", ("images", "vade"): "**no**", ("flat", "nnobj"): "yes"}


def test_every_registered_clusterer_is_in_the_suite():
    assert {"vade", "aekm", "moa", "nnobj", "gmm"} <= set(suite.clusterers())
    assert "ae" not in suite.clusterers()


def test_an_mlp_fit_on_images_is_the_fit_on_flattened_pixels():
    # what lets the suite reuse the flat run for the images form of a model with arch="auto"
    import numpy as np
    import torch

    from mixclust import AEClustering, MoA, VaDE

    rng = np.random.default_rng(0)
    images = rng.random((60, 1, 4, 4), dtype=np.float32)
    small = dict(hidden=(8,), latent_dim=2, batch_size=16, random_state=0, n_init=1)
    for model in (VaDE(3, pretrain_epochs=1, epochs=1, **small), AEClustering(3, epochs=1, **small),
                  MoA(3, pretrain_epochs=1, router_epochs=1, epochs=1, **small)):
        on_images = model.fit(images).predict_proba(images)
        on_flat = model.fit(images.reshape(60, -1)).predict_proba(images.reshape(60, -1))
        assert suite.flattens_images(model)
        assert np.array_equal(on_images, on_flat)
    # SPEC §1's convolutional router and experts come with arch="conv" only
    conv = MoA(3, arch="conv", filters=2, n_blocks=1, pretrain_epochs=1, router_epochs=1, epochs=1, batch_size=16,
               random_state=0, n_init=1, latent_dim=2).fit(images)
    assert not suite.flattens_images(conv)
    assert any(isinstance(m, torch.nn.Conv2d) for m in conv.network_.router.modules())


def test_nmi_table_shows_both_forms_only_where_the_fits_differ_and_the_readme_block_is_replaced(tmp_path):
    import pytest

    base = {"set": "digits", "seed": 0, "K": 10, "used": 10}
    rows = [{**base, "form": "flat", "model": "kmeans", "nmi": 0.7},
            {**base, "form": "flat", "model": "vade", "nmi": 0.86},
            {**base, "form": "images", "model": "vade", "nmi": 0.86, "same_as_flat": True},
            {**base, "form": "flat", "model": "moa", "nmi": 0.8},
            {**base, "form": "images", "model": "moa", "nmi": 0.75, "used": 9},
            {**base, "form": "flat", "model": "vade", "nmi": 0.1, "seed": 1}]  # other seeds stay out
    (row,) = suite.nmi_table(rows)
    assert row["kmeans"] == "0.700" and row["vade"] == "0.860" and row["moa"] == "0.800 / 0.750 (9/10 used)"
    readme = tmp_path / "README.md"
    start, end = suite.README_MARKERS
    readme.write_text(f"intro\n{start}\nold table\n{end}\noutro\n")
    suite.update_readme(readme, rows)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| digits | 10 | 0.700 |" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        suite.update_readme(readme, rows)


def test_rotated_objects_are_twenty_pose_curves_of_seventy_two_views():
    import os
    from pathlib import Path

    import numpy as np
    import pytest

    data = Path(os.environ.get("MIXCLUST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (data / "mnist.npz").is_file() or not (data / "fashion_mnist.npz").is_file():
        pytest.skip("real MNIST / Fashion-MNIST not available")
    X, y = suite.SETS["rotated20"].loader(data_dir=data)
    assert X.shape == (20 * suite.ROTATION_VIEWS, 1, 32, 32) and X.min() >= 0 and X.max() <= 1
    assert np.array_equal(np.bincount(y), np.full(20, suite.ROTATION_VIEWS))
    views = X[y == 0, 0]
    # view 0 is the object itself; a half turn (within the interpolation's error) is the image rotated by 180
    assert np.allclose(views[0], X[0, 0]) and np.abs(views[36] - np.rot90(views[0], 2)).mean() < 0.02
    assert np.abs(views[9] - views[0]).mean() > 0.05  # a 45-degree view differs from the object


def test_a_parameter_added_at_its_neutral_default_keeps_the_cache_key():
    from mixclust import VaDE

    model = VaDE(10, random_state=0)
    key = suite._params_key(model)
    assert "prior_weights" not in key  # runs cached before the parameter existed stay valid
    assert "prior_weights" in suite._params_key(model.set_params(prior_weights="uniform"))


def test_a_model_version_bump_recomputes_only_that_models_runs(tmp_path, monkeypatch):
    logged = []
    suite.compute(["iris"], ["kmeans", "gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(0,))
    assert len(logged) == 2
    monkeypatch.setitem(suite.MODEL_VERSIONS, "gmm", suite.SUITE_VERSION + 1)
    assert suite.compute(["iris"], ["kmeans", "gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(0,),
                         cached_only=True) == [r for r in suite.compute(["iris"], ["kmeans"], None, tmp_path / ".runs",
                                                                        seeds=(0,), cached_only=True)]
    rows = suite.compute(["iris"], ["kmeans", "gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(0,))
    assert [line.split()[2] for line in logged[2:]] == ["gmm"] and len(rows) == 2


def test_overrides_are_literal_keyword_values_and_unknown_names_are_refused():
    import argparse

    import pytest

    assert suite.parse_overrides("hidden='auto', epochs=10") == {"hidden": "auto", "epochs": 10}
    assert suite.parse_overrides(None) == {} and suite.parse_overrides("") == {}
    for bad in ("open(1)", "epochs=__import__('os')", "**{'x': 1}", "epochs=1, epochs=2", "epochs="):
        with pytest.raises(ValueError, match="--override must be name=value pairs"):
            suite.parse_overrides(bad)
    args = argparse.Namespace(sets="iris", models="vade", whole=False, out="unused", threads=1, seeds="0",
                              override="partiton='prior'", render=False, report=False, readme=None, data_dir=None)
    with pytest.raises(ValueError, match="partiton is not a parameter of vade"):
        suite.run_from_args(args)


def test_carry_over_rekeys_only_the_named_sets_runs_of_the_old_version(tmp_path, monkeypatch):
    from mixclust.studies import RunCache

    monkeypatch.setitem(suite.MODEL_VERSIONS, "vade", 9)
    for set_name in ("mnist", "digits"):
        cache = RunCache(tmp_path / f"{set_name}--vade.pkl")
        cache.put((set_name, "flat", "vade", 0, "params", 8), {"nmi": 0.5})
        cache.put((set_name, "flat", "vade", 1, "params", 7), {"nmi": 0.4})
    assert suite.carry_over(tmp_path, "vade", 8, sets=("mnist",)) == 1
    mnist, digits = RunCache(tmp_path / "mnist--vade.pkl"), RunCache(tmp_path / "digits--vade.pkl")
    assert mnist[("mnist", "flat", "vade", 0, "params", 9)] == {"nmi": 0.5}
    assert ("mnist", "flat", "vade", 1, "params", 9) not in mnist  # another old version stays where it was
    assert ("digits", "flat", "vade", 0, "params", 9) not in digits
    assert suite.carry_over(tmp_path, "vade", 8, sets=("mnist",)) == 0  # idempotent


def test_a_slow_runs_further_seeds_run_only_when_asked_alone_and_the_report_shows_them(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "MULTI_SEED_SECONDS", -1.0)  # every run counts as slow
    logged = []
    rows = suite.compute(["iris"], ["gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(0, 1, 2))
    assert [r["seed"] for r in rows] == [0] and len(logged) == 1
    rows = suite.compute(["iris"], ["gmm"], None, tmp_path / ".runs", log=logged.append, seeds=(2,))
    assert [r["seed"] for r in rows] == [2] and len(logged) == 2
    shown = suite.compute(["iris"], ["gmm"], None, tmp_path / ".runs", seeds=(0, 1, 2), cached_only=True)
    assert [r["seed"] for r in shown] == [0, 2]  # seed 1 was never run; nothing is run to render
    assert suite._summary(shown)[0]["seeds"] == 2


def test_two_jobs_writing_one_cache_file_keep_each_others_runs(tmp_path):
    from mixclust.studies import RunCache

    first, second = RunCache(tmp_path / "digits--moa.pkl"), RunCache(tmp_path / "digits--moa.pkl")
    first.put(("seed", 1), {"nmi": 0.8})
    second.put(("seed", 2), {"nmi": 0.7})  # read the file before the first job wrote to it
    first.put(("seed", 1, "images"), {"nmi": 0.6})
    assert set(RunCache(tmp_path / "digits--moa.pkl").runs) == {("seed", 1), ("seed", 2), ("seed", 1, "images")}
