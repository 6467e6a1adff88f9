"""ObjectiveClustering (SPEC §5): the objectives' formulas, training, recovery of moons/circles/blobs, errors."""

import math
import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import mixclust
from mixclust import datasets
from mixclust.objective import (
    AUTO_ANCHORS,
    AUTO_STEPS,
    ObjectiveClustering,
    centroid_objective,
    co_assignment,
    knn_graph,
    mean_assignment_entropy,
    mi_objective,
    ncut_objective,
    pair_joint,
    scan_objective,
    similarity_matrix,
    similarity_objective,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny networks: a second OpenMP thread only adds spin-wait time on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


# -- the formulas on tiny hand-checked examples ----------------------------------------------------
def test_centroid_objective_by_hand():
    # D = 1, K = 2: outputs of 3 points; mean output (1.0, 4.0) -> centres c1 = 1, c2 = 4
    outputs = _t([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]])
    X = _t([[0.0], [2.0], [5.0]])
    # nearest squared distances: 0 -> 1 (c1), 2 -> 1 (c1), 5 -> 1 (c2): mean 1
    assert float(centroid_objective(outputs, X, 2)) == pytest.approx(1.0)
    X = _t([[1.0], [3.0], [4.0]])  # 0, min(4, 1) = 1, 0 -> 1/3
    assert float(centroid_objective(outputs, X, 2)) == pytest.approx(1.0 / 3.0)


def test_similarity_matrix_and_co_assignment_as_defined():
    X = _t([[0.0, 0.0], [0.1, 0.0], [0.0, 0.3]])
    S = similarity_matrix(X).numpy()
    d2 = np.array([[0, 0.01, 0.09], [0.01, 0, 0.1], [0.09, 0.1, 0]])
    np.testing.assert_allclose(S, 0.01 / (d2 + 0.01))
    assert S[0, 1] == pytest.approx(0.5) and np.allclose(np.diag(S), 1.0)
    P = _t([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    C = co_assignment(P).numpy()
    np.testing.assert_allclose(C, [[1.0, 0.5, 0.2], [0.5, 0.5, 0.5], [0.2, 0.5, 0.68]])


def test_similarity_objective_by_hand():
    X = _t([[0.0, 0.0], [0.1, 0.0], [0.0, 0.3]])
    P = _t([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    S = 0.01 / (np.array([[0, 0.01, 0.09], [0.01, 0, 0.1], [0.09, 0.1, 0]]) + 0.01)
    C = np.array([[1.0, 0.5, 0.2], [0.5, 0.5, 0.5], [0.2, 0.5, 0.68]])
    expected = -np.mean((S * C).sum(1) / C.sum(1))
    assert float(similarity_objective(P, X)) == pytest.approx(expected)
    # two far-apart points, each certain of its own cluster: each sees only itself, loss -1
    assert float(similarity_objective(_t([[1.0, 0.0], [0.0, 1.0]]), _t([[0.0], [10.0]]))) == pytest.approx(-1.0)


def _pairs():
    """3 anchors with 2 neighbours each, K = 2."""
    P = _t([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    P_nb = _t([[[0.8, 0.2], [0.6, 0.4]], [[0.1, 0.9], [0.3, 0.7]], [[0.9, 0.1], [0.2, 0.8]]])
    return P, P_nb


def _loops(P, P_nb):
    for i in range(len(P)):
        for j in range(P_nb.shape[1]):
            yield P[i].numpy(), P_nb[i, j].numpy()


def test_ncut_objective_by_hand():
    P, P_nb = _pairs()
    assoc, vol = np.zeros(2), np.zeros(2)
    for p, q in _loops(P, P_nb):
        assoc += p * q
        vol += (p + q) / 2
    expected = np.sum(1 - assoc / vol)
    assert float(ncut_objective(P, P_nb)) == pytest.approx(expected)
    mean = P.numpy().mean(0)
    balance = math.log(2) + np.sum(mean * np.log(mean))
    assert float(ncut_objective(P, P_nb, balance_weight=3.0)) == pytest.approx(expected + 3.0 * balance)
    # hard assignments: Ncut = sum_k cut_k / vol_k; two separated pairs -> 0, one cut pair -> counted
    hard = _t([[1.0, 0.0], [0.0, 1.0]])
    assert float(ncut_objective(hard, _t([[[1.0, 0.0]], [[0.0, 1.0]]]))) == pytest.approx(0.0)
    # anchors 0 (k=1) and 1 (k=2) point to each other: the symmetrised graph has one edge, cut: 1 + 1
    assert float(ncut_objective(hard, _t([[[0.0, 1.0]], [[1.0, 0.0]]]))) == pytest.approx(2.0)


def test_mi_objective_by_hand():
    P, P_nb = _pairs()
    J = sum(np.outer(p, q) for p, q in _loops(P, P_nb)) / 6
    J = (J + J.T) / 2
    np.testing.assert_allclose(pair_joint(P, P_nb).numpy(), J)
    assert J.sum() == pytest.approx(1.0)
    m = J.sum(1)
    expected = -np.sum(J * np.log(J / np.outer(m, m)))
    assert float(mi_objective(P, P_nb)) == pytest.approx(expected)
    # perfectly consistent balanced hard clusters reach the bound -log K
    hard = _t([[1.0, 0.0], [0.0, 1.0]])
    assert float(mi_objective(hard, hard[:, None, :])) == pytest.approx(-math.log(2), abs=1e-6)


def test_scan_objective_by_hand():
    P, P_nb = _pairs()
    consistency = -np.mean([np.log(p @ q) for p, q in _loops(P, P_nb)])
    mean = P.numpy().mean(0)
    entropy = -np.sum(mean * np.log(mean))
    assert float(mean_assignment_entropy(P)) == pytest.approx(entropy)
    assert float(scan_objective(P, P_nb, entropy_weight=2.0)) == pytest.approx(consistency - 2.0 * entropy)
    assert float(scan_objective(P, P_nb, entropy_weight=0.0)) == pytest.approx(consistency)


def test_knn_graph_excludes_self_and_is_n_by_k():
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_array_equal(knn_graph(X, 1)[:, 0], [1, 0, 1, 2])
    assert knn_graph(X, 2).shape == (4, 2)


# -- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["centroid", "similarity", "ncut", "mi", "scan"])
def test_training_reduces_the_objective(objective):
    X, _ = datasets.load("blobs", n_samples=200, random_state=0)
    model = ObjectiveClustering(3, objective=objective, epochs=40, n_init=1, init="random", device="cpu").fit(X)
    assert len(model.history_) == 40
    losses = [h["loss"] for h in model.history_]
    assert losses[-1] < losses[0]
    untrained = ObjectiveClustering(3, objective=objective, epochs=0, n_init=1, init="random", device="cpu").fit(X)
    assert model.objective_value_ < untrained.objective_value_
    assert model.labels_.shape == (200,)
    proba = model.predict_proba(X)
    assert proba.shape == (200, 3) and np.allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(proba.argmax(1), model.predict(X))


def _default_ari(name, k, seed, n=500):
    X, y = datasets.load(name, n_samples=n, random_state=seed)
    return adjusted_rand_score(y, ObjectiveClustering(k, random_state=seed, device="cpu").fit_predict(X))


def test_default_recovers_moons_circles_blobs():
    """One seed here (a few seconds of CPU per fit); the slow test sweeps seeds 0..9 at n = 1,000."""
    assert _default_ari("moons", 2, 3, n=400) >= 0.95
    assert _default_ari("circles", 2, 3, n=400) >= 0.9
    assert _default_ari("blobs", 3, 3, n=400) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_default_recovers_every_seed_at_n_1000(seed):
    assert _default_ari("moons", 2, seed, 1000) >= 0.95
    assert _default_ari("circles", 2, seed, 1000) >= 0.9
    assert _default_ari("blobs", 3, seed, 1000) >= 0.95


def test_restarts_keep_the_lowest_objective():
    X, _ = datasets.load("moons", n_samples=300, random_state=1)
    model = ObjectiveClustering(2, n_init=3, epochs=20, init_epochs=30, device="cpu").fit(X)
    assert len(model.objective_values_) == 3
    assert model.objective_value_ == min(model.objective_values_)
    assert model.objective_values_[model.best_init_] == model.objective_value_


def test_any_dimension_and_standardisation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 7)) * 10
    y = np.repeat(np.arange(3), 60)
    X = centres[y] + rng.normal(size=(180, 7))
    X[:, 0] *= 1000.0  # a feature in other units
    model = ObjectiveClustering(3, epochs=60, init_epochs=60, n_init=1, device="cpu").fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    np.testing.assert_allclose(model.mean_, X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.scale_, X.std(0), rtol=1e-4)


def test_centroid_centres_and_hard_proba():
    X, _ = datasets.load("blobs", n_samples=300, random_state=2)
    model = ObjectiveClustering(3, objective="centroid", n_init=1, epochs=200, device="cpu").fit(X)
    assert model.cluster_centers_.shape == (3, 2)
    nearest = ((X[:, None, :] - model.cluster_centers_[None]) ** 2).sum(2).argmin(1)
    assert np.mean(model.predict(X) == nearest) > 0.98  # float32 network space vs float64 here: ties may differ
    assert set(np.unique(model.predict_proba(X))) <= {0.0, 1.0}
    assert model.transform(X).shape == (300, 3)


def test_validation_data_is_monitored_only():
    X, y = datasets.load("moons", n_samples=200, random_state=0)
    a = ObjectiveClustering(2, epochs=5, init_epochs=20, n_init=1, device="cpu").fit(X, validation_data=(X, y))
    b = ObjectiveClustering(2, epochs=5, init_epochs=20, n_init=1, device="cpu").fit(X)
    assert {"val_ari", "val_nmi", "loss", "seconds"} <= set(a.history_[-1])
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]


# -- errors ----------------------------------------------------------------------------------------
def test_clear_errors():
    X = np.random.default_rng(0).normal(size=(20, 2))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ObjectiveClustering(2, device="cpu").fit(bad)
    with pytest.raises(ValueError, match="n_clusters"):
        ObjectiveClustering(5, device="cpu").fit(X[:3])
    with pytest.raises(ValueError, match="unknown objective 'kmeans'"):
        ObjectiveClustering(2, objective="kmeans").fit(X)
    with pytest.raises(ValueError, match=r"images \(n, H, W\) or \(n, C, H, W\), got shape \(20, 1, 1, 1, 2\)"):
        ObjectiveClustering(2).fit(X.reshape(20, 1, 1, 1, 2))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        ObjectiveClustering(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="centroid"):
        ObjectiveClustering(2, objective="centroid", init="spectral").fit(X)
    model = ObjectiveClustering(2, epochs=2, init_epochs=2, n_init=1, device="cpu").fit(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.zeros((4, 3)))
    with pytest.raises(TypeError, match="hidden"):
        ObjectiveClustering(2, hidden=30).fit(X)


def test_tiny_data_clips_the_neighbours():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    model = ObjectiveClustering(2, epochs=5, init_epochs=5, n_init=1, device="cpu").fit(X)
    assert model.n_neighbors_ == 3  # k = 10 asked, n - 1 = 3 used
    assert model.labels_.shape == (4,)


# -- persistence -----------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["scan", "centroid"])
def test_save_load_round_trip(tmp_path, objective):
    X, _ = datasets.load("moons", n_samples=200, random_state=0)
    model = ObjectiveClustering(2, objective=objective, epochs=20, init_epochs=20, n_init=2, device="cpu").fit(X)
    path = tmp_path / "model.bin"
    model.save(path)
    assert path.exists() and not list(tmp_path.glob("model.bin.*"))
    loaded = mixclust.load(path)
    assert isinstance(loaded, ObjectiveClustering)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), rtol=1e-6)
    assert loaded.history_ == model.history_
    assert loaded.objective_values_ == model.objective_values_
    assert "nnobj" in mixclust.MODELS and mixclust.MODELS["nnobj"] is ObjectiveClustering


# -- mini-batches: memory O(n k), never n x n --------------------------------------------------------
def test_mini_batches_on_20000_points_without_an_n_by_n_array():
    X, y = datasets.load("blobs", n_samples=20_000, random_state=0)
    tracemalloc.start()
    model = ObjectiveClustering(3, batch_size=512, epochs=2, n_init=1, init_samples=500, init_epochs=30,
                                device="cpu").fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(X)
    assert peak < 0.02 * n * n * 4  # an n x n float32 array would be 1.6 GB; the peak is a few MB
    assert len(model.history_) == 2
    assert adjusted_rand_score(y, model.labels_) > 0.95


def test_auto_standardisation_keeps_the_relative_scale_of_unit_interval_data():
    from mixclust import ObjectiveClustering

    rng = np.random.default_rng(0)
    pixels = rng.random((60, 12)).astype(np.float32)
    pixels[:, :3] *= 0.01  # border pixels: almost always dark
    small = dict(epochs=1, n_init=1, init="random", random_state=0)
    auto = ObjectiveClustering(3, **small).fit(pixels)
    assert np.ptp(auto.scale_) == 0 and auto.scale_[0] > 0  # one scale for all features
    np.testing.assert_allclose(auto.scale_[0] ** 2, pixels.astype(np.float64).var(axis=0).mean(), rtol=1e-6)
    per_feature = ObjectiveClustering(3, standardize=True, **small).fit(pixels)
    assert per_feature.scale_[0] < 0.1 * per_feature.scale_[5]
    table = pixels * 10 - 3  # outside [0, 1]: "auto" standardises each feature, as True does
    np.testing.assert_allclose(ObjectiveClustering(3, **small).fit(table).scale_,
                               ObjectiveClustering(3, standardize=True, **small).fit(table).scale_)
    with pytest.raises(TypeError, match="standardize"):
        ObjectiveClustering(3, standardize="yes", **small).fit(pixels)


def test_auto_budget_is_full_batch_on_small_data_and_bounded_mini_batches_on_large():
    X, _ = make_blobs(300, centers=3, random_state=0)
    auto = ObjectiveClustering(3, n_init=1, init_epochs=10, device="cpu").fit(X)
    notes = ObjectiveClustering(3, n_init=1, init_epochs=10, epochs=AUTO_STEPS, batch_size=None, device="cpu").fit(X)
    assert (auto.batch_size_, auto.epochs_) == (300, AUTO_STEPS)
    assert [h["loss"] for h in auto.history_] == [h["loss"] for h in notes.history_]
    large = ObjectiveClustering()
    large._resolve_budget(70000)
    assert large.batch_size_ <= AUTO_ANCHORS and large.batch_size_ * math.ceil(70000 / AUTO_ANCHORS) >= 70000
    for n in (1030, 1797, 9298, 70000):  # equal batches: no small remainder batch
        large._resolve_budget(n)
        batches = math.ceil(n / large.batch_size_)
        assert batches == math.ceil(n / AUTO_ANCHORS) and n - (batches - 1) * large.batch_size_ > large.batch_size_ // 2
    large._resolve_budget(70000)
    steps = large.epochs_ * math.ceil(70000 / large.batch_size_)
    assert AUTO_STEPS <= steps < AUTO_STEPS + math.ceil(70000 / AUTO_ANCHORS)


def test_images_are_clustered_as_their_flattened_pixels():
    """(n, C, H, W) and (n, H, W) input give what the same pixels give as a table, like every deep model."""
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.random((15, 1, 3, 3)) * 0.3, 0.7 + rng.random((15, 1, 3, 3)) * 0.3])
    flat = images.reshape(30, -1)
    kwargs = dict(epochs=3, init_epochs=2, n_init=1, device="cpu", random_state=0)
    table = ObjectiveClustering(2, **kwargs).fit(flat)
    for shaped in (images, images[:, 0]):
        model = ObjectiveClustering(2, **kwargs).fit(shaped)
        assert model.n_features_in_ == 9
        np.testing.assert_allclose(model.predict_proba(shaped), table.predict_proba(flat), atol=1e-6)
