"""Data-aware budgets, the degeneracy check and restarts chosen by the model's own objective (issue 17)."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

import mixclust
from mixclust import (
    AEClustering,
    AutoEncoder,
    DegenerateFitWarning,
    EmptyClusterWarning,
    MoA,
    ObjectiveClustering,
    VaDE,
    _deep,
)
from mixclust import nn as mnn
from mixclust._deep import AUTO_MAX_RUNS, DeepEstimator, auto_batch_size, auto_epochs
from mixclust.metrics import degeneracy


def _blobs(n=240, k=3, seed=0):
    X, y = make_blobs(n, centers=k, n_features=4, random_state=seed)
    return ((X - X.min()) / (X.max() - X.min())).astype(np.float32), y


# -- the degeneracy check ---------------------------------------------------------------------------------
def test_degeneracy_flags_one_cluster_and_passes_a_balanced_split():
    balanced = np.repeat(np.arange(10), 50)
    assert degeneracy(balanced, 10) is None
    collapsed = np.zeros(500, dtype=int)
    reason = degeneracy(collapsed, 10)
    assert "9 of 10 clusters" in reason and "9 empty" in reason and "100%" in reason


def test_degeneracy_flags_a_dominant_cluster_and_flat_soft_assignments():
    labels = np.concatenate([np.zeros(400, int), np.repeat(np.arange(1, 10), 12)])  # 400 of 508 in one
    assert "more than 3/K" in degeneracy(labels, 10)
    rng = np.random.default_rng(0)
    flat = np.full((300, 3), 1 / 3) + rng.normal(0, 1e-3, (300, 3))
    labels = np.arange(300) % 3  # balanced hard labels, yet gamma is the same for every sample
    assert degeneracy(labels, 3) is None
    assert "barely vary" in degeneracy(labels, 3, flat)


def test_degeneracy_leaves_two_imbalanced_clusters_alone():
    # breast-cancer-like shares (37% / 63%): real imbalance, not a collapse
    assert degeneracy(np.r_[np.zeros(212, int), np.ones(357, int)], 2) is None


# -- restarts: the choice uses the model's objective and sets degenerate runs aside ----------------------
class _Scripted(DeepEstimator):
    """Each run's labels and objective come from a script indexed by the run's seed."""

    def __init__(self, script, n_init="auto", random_state=0, device="cpu"):
        self.script = script
        self.n_init = n_init
        self.random_state = random_state
        self.device = device

    n_clusters = 4

    def fit(self, X):
        self._drawn_seed = self.random_state
        self.calls = 0
        self.collapses_seen = []  # one list shared by every run's snapshot
        try:
            self._fit_with_restarts(lambda: self._once(X), X)
        finally:
            self._drawn_seed = None
        return self

    def _once(self, X):
        run = len(getattr(self, "_seen", []))
        self._seen = [*getattr(self, "_seen", []), self._seed_value()]
        self.collapses_seen.append(self._degenerate_so_far)
        collapsed, self.value_ = self.script[run]
        self.labels_ = np.zeros(len(X), int) if collapsed else np.arange(len(X)) % 4

    def _proba(self, X):
        return np.eye(4)[self.labels_]

    def _objective(self, X):
        return self.value_


def test_restarts_choose_the_lowest_objective_among_healthy_runs():
    X = np.zeros((80, 2), np.float32)
    # run 1 degenerate with the best objective (a collapse can score well), runs 2 and 3 healthy
    model = _Scripted([(True, -100.0), (False, 5.0), (False, 3.0)], n_init=3).fit(X)
    assert model.n_init_objectives_ == [-100.0, 5.0, 3.0]
    assert model.n_init_degenerate_[0] is not None and model.n_init_degenerate_[1:] == [None, None]
    assert model.best_init_ == 2 and model.value_ == 3.0
    assert len(set(model._seen)) == 3  # every run from its own seed


def test_auto_restarts_only_while_degenerate_and_warn_when_all_are():
    X = np.zeros((80, 2), np.float32)
    healthy_first = _Scripted([(False, 1.0), (False, 0.0), (False, 0.0)]).fit(X)
    assert len(healthy_first.n_init_objectives_) == 1  # a healthy fit costs one run
    recovered = _Scripted([(True, 0.0), (False, 2.0), (False, 1.0)]).fit(X)
    assert len(recovered.n_init_objectives_) == 2 and recovered.best_init_ == 1
    with pytest.warns(EmptyClusterWarning, match=f"degenerate after {AUTO_MAX_RUNS} run"):
        stuck = _Scripted([(True, 2.0), (True, 1.0), (True, 3.0)]).fit(X)
    assert stuck.best_init_ == 1  # the best of the degenerate runs, by the objective
    assert stuck.collapses_seen == [0, 1, 2]  # each restart knows how many runs collapsed before it
    assert issubclass(EmptyClusterWarning, DegenerateFitWarning)


def test_vade_restart_after_a_collapse_weighs_the_reconstruction_more():
    X, _ = _blobs(n=120)
    model = VaDE(3, hidden=(16,), latent_dim=2, pretrain_epochs=2, epochs=0, batch_size=32).pretrain(X)
    first = model.decoder_variance_
    residual = float(((model.inverse_transform(model.transform(X)) - X) ** 2).sum()) / len(X)
    assert first == pytest.approx(residual / (2 * 2), rel=1e-4)  # sigma^2 = D mse / (2 d)
    model._degenerate_so_far = 1
    assert model._run_decoder_variance(first) == pytest.approx(first / 4, rel=1e-6)
    assert model._resolve_decoder_variance(X) == first  # the pretrained value (and a warm start's) stays the base


# -- the guard: a stage that turns degenerate keeps its latest healthy epoch -------------------------------
def test_guard_restores_the_latest_healthy_epoch_and_draws_no_random_numbers():
    import torch

    from mixclust._deep import DegeneracyGuard

    X, y = _blobs()
    centres = torch.tensor(np.stack([X[y == k].mean(0) for k in range(3)]))
    module = torch.nn.Linear(4, 3)

    def proba(rows):
        with torch.no_grad():
            return torch.softmax(module(torch.as_tensor(rows)), dim=1).double().numpy()

    # logits -||x - c_k||^2 up to a per-row constant: a healthy split of the three blobs
    with torch.no_grad():
        module.weight.copy_(2 * centres)
        module.bias.copy_(-(centres ** 2).sum(1))
    healthy = {k: v.clone() for k, v in module.state_dict().items()}
    guard = DegeneracyGuard(module, proba, X, 3)
    rng = torch.get_rng_state()
    guard(0)
    guard(1)
    assert torch.equal(torch.get_rng_state(), rng)  # a run that never degenerates is unchanged
    assert guard.restore() is None  # healthy at the end: nothing to do
    with torch.no_grad():  # "training" sends every sample to cluster 0
        module.bias.copy_(torch.tensor([100.0, 0.0, 0.0]))
    guard(2)
    done = guard.restore()
    assert done["restored_epoch"] == 1 and done["degenerate_epochs"] == [2] and "clusters" in done["reason"]
    assert all(torch.equal(module.state_dict()[k], v) for k, v in healthy.items())


def test_guard_leaves_a_start_that_was_never_healthy_alone():
    import torch

    from mixclust._deep import DegeneracyGuard

    X, _ = _blobs()
    module = torch.nn.Linear(4, 3)
    with torch.no_grad():
        module.bias.copy_(torch.tensor([100.0, 0.0, 0.0]))
    guard = DegeneracyGuard(module, lambda r: torch.softmax(module(torch.as_tensor(r)), 1).detach().double().numpy(),
                            X, 3)
    guard(0)
    guard(1)
    assert guard.restore() is None  # the restarts, not the guard, deal with it


def test_vade_keeps_its_healthy_start_when_training_collapses_it():
    X, _ = _blobs(n=240)
    # a far too large learning rate wrecks stage 3 from a healthy start (seed and sizes chosen so it does)
    config = dict(hidden=(16,), latent_dim=2, pretrain_epochs=20, epochs=5, batch_size=32, lr=0.5, n_init=1,
                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        model = VaDE(3, **config).fit(X)
    assert model.degeneracy_guard_ is not None, "the guard did not fire: pick a config that collapses"
    assert degeneracy(model.labels_, 3) is None  # the kept network is the healthy one
    assert model.degeneracy_guard_["restored_epoch"] < model.degeneracy_guard_["epochs"]
    with pytest.raises(TypeError, match="degeneracy_guard"):
        VaDE(3, **config, degeneracy_guard="yes").fit(X)


# -- budgets that follow the data -------------------------------------------------------------------------
def test_auto_batch_size_shrinks_for_small_data_and_keeps_256_for_mnist():
    assert auto_batch_size(60000) == 256
    assert auto_batch_size(1000) == 32
    assert auto_batch_size(5000) == 64
    assert auto_batch_size(10) == 32


@pytest.mark.parametrize("model, stage, updates", [(VaDE(), "epochs", 2000), (VaDE(), "pretrain_epochs", 2000),
                                                   (MoA(), "pretrain_epochs", 800), (MoA(), "router_epochs", 500),
                                                   (MoA(), "epochs", None), (AutoEncoder(), "epochs", 2000),
                                                   (ObjectiveClustering(), "epochs", 1000)])
def test_auto_epochs_give_small_data_more_steps_per_sample(model, stage, updates):
    def steps_per_sample(n):
        model._resolve_budget(n)
        return getattr(model, f"{stage}_") * math.ceil(n / model.batch_size_) / n

    assert steps_per_sample(1000) > steps_per_sample(70000)
    model._resolve_budget(1000)
    if updates is not None:  # the step floor of the stage
        assert getattr(model, f"{stage}_") * math.ceil(1000 / model.batch_size_) >= updates
    else:  # MoA's joint training: the MNIST epochs whatever n (its docstring gives the evidence)
        assert model.epochs_ == 10


def test_auto_epochs_keep_the_mnist_budget():
    vade = VaDE()
    vade._resolve_budget(60000)
    assert (vade.pretrain_epochs_, vade.epochs_, vade.batch_size_) == (30, 20, 256)
    assert auto_epochs(60000, 256, 30, 2000) == 30
    assert auto_epochs(1000, 32, 30, 2000) == math.ceil(2000 / 32)


def test_explicit_budgets_are_kept_and_bad_ones_named():
    X, _ = _blobs()
    model = VaDE(3, hidden=(8,), pretrain_epochs=1, epochs=2, batch_size=50).fit(X)
    assert (model.pretrain_epochs_, model.epochs_, model.batch_size_) == (1, 2, 50)
    with pytest.raises(ValueError, match="n_init"):
        VaDE(3, n_init=0).fit(X)
    with pytest.raises(TypeError, match="epochs"):
        VaDE(3, epochs="long").fit(X)


def test_n_init_with_a_fixed_random_state_is_reproducible():
    X, _ = _blobs()
    params = dict(hidden=(8,), latent_dim=2, pretrain_epochs=2, epochs=2, n_init=2, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        a, b = VaDE(3, **params).fit(X), VaDE(3, **params).fit(X)
    assert a.n_init_objectives_ == b.n_init_objectives_ and len(a.n_init_objectives_) == 2
    assert a.n_init_objectives_[0] != a.n_init_objectives_[1]  # the runs differ
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.best_init_ == int(np.argmin([v if r is None else np.inf for v, r in
                                          zip(a.n_init_objectives_, a.n_init_degenerate_)])) \
        or all(a.n_init_degenerate_)


def test_vade_decoder_variance_auto_is_the_pretrained_residual_variance():
    X, _ = _blobs()
    model = VaDE(3, hidden=(8,), latent_dim=2, pretrain_epochs=3, epochs=1).fit(X)
    assert 0 < model.decoder_variance_ < X.var()
    fixed = VaDE(3, hidden=(8,), latent_dim=2, pretrain_epochs=3, epochs=1, decoder_variance=0.5).fit(X)
    assert fixed.decoder_variance_ == 0.5


def test_arch_auto_is_the_mlp_for_images():
    X = np.random.default_rng(0).random((40, 1, 6, 6)).astype(np.float32)
    model = AEClustering(2, hidden=(8,), latent_dim=2, epochs=1).fit(X)
    assert model.arch_ == "mlp" and model.predict(X).shape == (40,)


# -- the manifold start: UMAP of the codes, then a GMM ---------------------------------------------------
def test_manifold_partition_separates_curved_clusters_and_weighted_gaussians_is_an_m_step():
    from sklearn.datasets import make_moons

    from mixclust._deep import manifold_partition, weighted_gaussians
    from mixclust.metrics import external_metrics

    X, y = make_moons(400, noise=0.04, random_state=0)
    resp = manifold_partition(X, 2, seed=0)
    assert resp.shape == (400, 2) and np.allclose(resp.sum(1), 1.0)
    assert external_metrics(y, resp.argmax(1))["ari"] > 0.95  # a GMM on the moons themselves cuts them (ARI ~0.5)
    hard = np.eye(2)[y]
    counts, means, covariances = weighted_gaussians(X, hard, reg=0.0)
    np.testing.assert_allclose(counts, np.bincount(y), rtol=1e-9)
    for k in range(2):
        np.testing.assert_allclose(means[k], X[y == k].mean(0), rtol=1e-9)
        np.testing.assert_allclose(covariances[k], np.cov(X[y == k].T, bias=True), rtol=1e-9, atol=1e-12)


def _fake_umap_gmm(stable_k, n=120, K=3, degenerate_k=None, also_stable_k=None):
    """A stand-in for ``_deep._umap_gmm``: one-hot partitions, seed-independent for ``stable_k`` (the data's
    partition) and ``also_stable_k`` (another one), constant (everything in one cluster) for ``degenerate_k``,
    drawn from the seed for any other k."""
    truth = np.arange(n) % K

    def fake(codes, n_clusters, n_neighbors, seed):
        fake.calls.append((n_neighbors, seed))
        if n_neighbors == degenerate_k:
            labels = np.zeros(n, dtype=int)
        elif n_neighbors == stable_k:
            labels = truth
        elif n_neighbors == also_stable_k:
            labels = (np.arange(n) // (n // K)) % K
        else:
            labels = np.random.default_rng(1000 * n_neighbors + seed).integers(0, K, n)
        return np.eye(n_clusters)[labels] * 0.9 + 0.1 / n_clusters

    fake.calls = []
    return fake


def test_manifold_partition_auto_picks_the_most_stable_neighbourhood(monkeypatch):
    from mixclust import _deep

    fake = _fake_umap_gmm(stable_k=5)
    monkeypatch.setattr(_deep, "_umap_gmm", fake)
    resp = _deep.manifold_partition(np.zeros((120, 2)), 3, seed=7)
    np.testing.assert_array_equal(resp.argmax(1), np.arange(120) % 3)
    # every candidate with the seeds seed, seed + 1, ...: the choice costs candidates x seeds embeddings
    assert sorted(fake.calls) == sorted((k, 7 + r) for k in _deep.MANIFOLD_NEIGHBOR_CANDIDATES
                                        for r in range(_deep.MANIFOLD_STABILITY_SEEDS))


def test_manifold_partition_auto_sets_a_stable_degenerate_partition_aside(monkeypatch):
    from mixclust import _deep

    # k = 20 puts everything in one cluster whatever the seed (ARI 1 between its runs); k = 10 and k = 5 are as
    # stable, with different partitions: the tie goes to the larger neighbourhood, 10
    monkeypatch.setattr(_deep, "_umap_gmm", _fake_umap_gmm(stable_k=10, degenerate_k=20, also_stable_k=5))
    resp = _deep.manifold_partition(np.zeros((120, 2)), 3, seed=0)
    np.testing.assert_array_equal(resp.argmax(1), np.arange(120) % 3)


def test_manifold_partition_auto_returns_the_medoid_run_of_the_chosen_neighbourhood(monkeypatch):
    from mixclust import _deep

    truth = np.arange(120) % 3
    odd = truth.copy()
    odd[:30] = (odd[:30] + 1) % 3  # the run of seed + 1 differs from the two others

    def fake(codes, n_clusters, n_neighbors, seed):
        labels = odd if seed == 1 else truth
        return np.eye(n_clusters)[labels]

    monkeypatch.setattr(_deep, "_umap_gmm", fake)
    monkeypatch.setattr(_deep, "MANIFOLD_NEIGHBOR_CANDIDATES", (20,))
    np.testing.assert_array_equal(_deep.manifold_partition(np.zeros((120, 2)), 3, seed=1).argmax(1), truth)


def test_manifold_partition_keeps_one_neighbourhood_on_large_data_or_when_given(monkeypatch):
    from mixclust import _deep

    fake = _fake_umap_gmm(stable_k=5)
    monkeypatch.setattr(_deep, "_umap_gmm", fake)
    monkeypatch.setattr(_deep, "MANIFOLD_SELECT_MAX_SAMPLES", 100)
    _deep.manifold_partition(np.zeros((120, 2)), 3, seed=3)
    assert fake.calls == [(_deep.MANIFOLD_NEIGHBORS, 3)]  # one embedding, as before the choice existed
    fake.calls.clear()
    _deep.manifold_partition(np.zeros((120, 2)), 3, seed=3, n_neighbors=10)
    assert fake.calls == [(10, 3)]


def test_manifold_partition_auto_finds_rings_that_a_wide_neighbourhood_bridges():
    from mixclust._deep import manifold_partition
    from mixclust.metrics import external_metrics

    # 6 closed rings of 40 points (orbits, like the views of a turning object), centres close enough that
    # 20 neighbours reach across rings; small neighbourhoods keep each ring one component
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.c_[np.cos(t), np.sin(t)]
    centres = np.array([[0, 0], [2.3, 0], [4.6, 0], [0, 2.3], [2.3, 2.3], [4.6, 2.3]])
    X = np.concatenate([ring + c for c in centres])
    y = np.repeat(np.arange(6), 40)
    auto = external_metrics(y, manifold_partition(X, 6, seed=0).argmax(1))["nmi"]
    wide = external_metrics(y, manifold_partition(X, 6, seed=0, n_neighbors=20).argmax(1))["nmi"]
    assert auto > 0.95 > wide  # measured: 1.000 against 0.647


def test_neighbour_responsibilities_average_the_nearest_reference_rows():
    from mixclust._deep import neighbour_responsibilities

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(60, 3)).astype(np.float32)
    resp = rng.dirichlet(np.ones(4), size=60)
    # one neighbour and the reference codes themselves: their own rows back
    np.testing.assert_allclose(neighbour_responsibilities(reference, resp, reference, n_neighbors=1), resp)
    # m neighbours: the mean of the m nearest rows, in chunks as in one piece
    codes = rng.normal(size=(25, 3)).astype(np.float32)
    got = neighbour_responsibilities(reference, resp, codes, n_neighbors=5, chunk=7)
    nearest = np.argsort(((codes[:, None] - reference[None]) ** 2).sum(-1), axis=1)[:, :5]
    np.testing.assert_allclose(got, resp[nearest].mean(1), rtol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0)


def test_aekm_manifold_predicts_its_partition_and_saves_the_map(tmp_path):
    import mixclust
    from mixclust import AEClustering

    X, _ = _blobs(n=150, k=3)
    model = AEClustering(3, epochs=3, random_state=0, device="cpu").fit(X)
    assert model.manifold_resp_.shape == (150, 3) and model.manifold_codes_.shape == (150, model.latent_dim)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    model.save(tmp_path / "aekm")
    np.testing.assert_allclose(mixclust.load(tmp_path / "aekm").predict_proba(X), proba)


def test_manifold_partition_falls_back_on_tiny_data():
    from mixclust._deep import manifold_partition

    X, _ = _blobs(n=12, k=3)
    assert manifold_partition(X, 3, seed=0) is None


@pytest.mark.parametrize("name", ["vade", "aekm", "moa", "nnobj", "gmm"])
def test_a_dataframe_is_accepted_and_its_column_names_kept(name):
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_iris

    from mixclust._registry import MODELS

    frame = load_iris(as_frame=True).frame.drop(columns="target")
    small = {"vade": dict(pretrain_epochs=1, epochs=1, hidden=(8,), latent_dim=2, init="kmeans"),
             "aekm": dict(epochs=1, hidden=(8,), latent_dim=2, clusterer="kmeans"),
             "moa": dict(pretrain_epochs=1, router_epochs=1, epochs=1, hidden=(8,), latent_dim=2, init="kmeans"),
             "nnobj": dict(epochs=3, n_init=1, init_epochs=3), "gmm": {}}[name]
    cls = MODELS[name]
    model = cls(**{cls._n_clusters_param: 3, "random_state": 0, **small}).fit(frame)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert np.array_equal(model.predict(frame), model.predict(frame.to_numpy()))
    renamed = frame.rename(columns={frame.columns[0]: "other"})
    with pytest.raises(ValueError, match="feature names"):
        model.predict(renamed)
    assert isinstance(pd.DataFrame, type)


# -- hidden="auto": the MLP's widths follow the number of input features ------------------------------------------
@pytest.mark.parametrize("shape, expected", [((784,), (500, 500, 2000)), ((1, 28, 28), (500, 500, 2000)),
                                             ((3072,), (500, 500, 2000)), ((64,), (143, 143, 571)),
                                             ((1, 16, 16), (286, 286, 1143)), ((4,), (64, 64, 143))])
def test_resolve_hidden_auto(shape, expected):
    assert mnn.resolve_hidden("auto", shape) == expected
    assert mnn.resolve_hidden((7, 3), shape) == (7, 3)  # explicit widths are kept


def test_hidden_auto_builds_the_smaller_network_and_saves(tmp_path):
    X = np.random.default_rng(0).random((120, 8)).astype(np.float32)
    model = VaDE(3, hidden="auto", latent_dim=2, pretrain_epochs=1, epochs=1, n_init=1).fit(X)
    widths = [m.out_features for m in model.network_.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert widths[:3] == [64, 64, 202]  # 8 features: 2000 * sqrt(8 / 784) = 202
    model.save(tmp_path / "vade")
    again = mixclust.load(tmp_path / "vade")
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), atol=1e-6)
    with pytest.raises(TypeError, match='hidden must be a tuple of layer widths such as .* or "auto"'):
        AEClustering(3, hidden="wide").fit(X)


# -- UMAP's small-data distances, computed fast with the same numbers --------------------------------------------
def test_umap_small_data_distances_are_scikit_learns_numbers():
    from sklearn.metrics import pairwise_distances
    from umap import distances

    X = np.random.default_rng(0).normal(size=(300, 7)).astype(np.float32)
    ours = _deep.umap_pairwise_distances(X, metric=distances.euclidean)
    theirs = pairwise_distances(X, metric=distances.euclidean)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(_deep.umap_pairwise_distances(X, metric="cosine"),
                                  pairwise_distances(X, metric="cosine"))  # anything else: scikit-learn's


def test_manifold_embedding_is_unchanged_by_the_fast_distances():
    import umap

    X, _ = make_blobs(300, centers=4, n_features=6, random_state=1)
    X = (X / 7.0).astype(np.float32)  # values float32 cannot hold exactly, so rounding would show
    def embed():
        return umap.UMAP(n_components=3, n_neighbors=20, min_dist=0.0, random_state=0, n_epochs=50).fit_transform(X)
    plain = embed()
    with _deep._fast_small_data_distances():
        fast = embed()
    np.testing.assert_array_equal(fast, plain)


# -- the data's units: intensities in other units train as their [0, 1] version ---------------------------
def _intensity_images(n=120, seed=0):
    """8-bit-like images (n, 1, 6, 6): three bright-square positions, whole numbers 0..255 (255 present)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.integers(0, 60, size=(n, 1, 6, 6)).astype(np.float32)
    for k in range(3):
        X[y == k, 0, 2 * k:2 * k + 2, 1:5] = 255.0
    return X, y


@pytest.mark.parametrize("make", [
    lambda: AEClustering(3, latent_dim=2, hidden=(16,), epochs=3, clusterer="gmm", random_state=0, device="cpu"),
    lambda: VaDE(3, latent_dim=2, hidden=(16,), pretrain_epochs=2, epochs=2, init="kmeans", partition="prior",
                 random_state=0, device="cpu"),
    lambda: MoA(3, n_init=1, init="kmeans", latent_dim=2, hidden=(16,), router_hidden=(8,), batch_size=16,
                pretrain_epochs=2, router_epochs=2, epochs=2, random_state=0, device="cpu"),
], ids=["aekm", "vade", "moa"])
def test_intensities_in_other_units_train_as_their_unit_version(make):
    X255, _ = _intensity_images()
    X01 = X255 / np.float32(255)  # the division the model makes, so both fits see the same numbers
    unit, scaled = make().fit(X01), make().fit(X255)
    assert unit.input_scale_ == 1.0 and scaled.input_scale_ == 255.0
    np.testing.assert_array_equal(scaled.predict(X255), unit.predict(X01))
    np.testing.assert_allclose(scaled.predict_proba(X255), unit.predict_proba(X01), rtol=1e-6, atol=1e-9)


def test_outputs_in_data_space_come_back_in_the_data_units(tmp_path):
    X255, _ = _intensity_images()
    X01 = X255 / np.float32(255)
    unit = AutoEncoder(latent_dim=2, hidden=(16,), epochs=2, random_state=0, device="cpu").fit(
        X01, validation_data=(X01,))
    scaled = AutoEncoder(latent_dim=2, hidden=(16,), epochs=2, random_state=0, device="cpu").fit(
        X255, validation_data=(X255,))
    assert scaled.history_[-1]["val_loss"] == pytest.approx(255 ** 2 * unit.history_[-1]["val_loss"], rel=1e-5)
    np.testing.assert_allclose(scaled.reconstruct(X255), 255 * unit.reconstruct(X01), rtol=1e-5)
    assert scaled.reconstruction_error(X255) == pytest.approx(255 ** 2 * unit.reconstruction_error(X01), rel=1e-5)
    np.testing.assert_allclose(scaled.transform(X255), unit.transform(X01), rtol=1e-6)
    scaled.save(tmp_path / "ae.pt")
    np.testing.assert_allclose(mixclust.load(tmp_path / "ae.pt").reconstruct(X255), scaled.reconstruct(X255))
    vade = VaDE(3, latent_dim=2, hidden=(16,), pretrain_epochs=2, epochs=1, init="kmeans", partition="prior",
                random_state=0, device="cpu").fit(X255)
    assert vade.prototypes().max() > 1.0  # decoded in 0..255, not in [0, 1]
    del unit.input_scale_  # as an autoencoder saved before input_scale_ existed
    assert AEClustering.from_autoencoder(unit, 3, "gmm").fit(X01).input_scale_ == 1.0


def test_data_with_negative_values_are_used_as_given():
    X, _ = make_blobs(150, centers=3, n_features=4, random_state=0)  # standardised-like, with negatives
    model = AEClustering(3, latent_dim=2, hidden=(16,), epochs=2, clusterer="gmm", random_state=0, device="cpu").fit(X)
    assert model.autoencoder_.input_scale_ == 1.0
    assert AutoEncoder(latent_dim=2, hidden=(16,), epochs=1, device="cpu").fit(X[:, :2] ** 2 / 1e3).input_scale_ == 1.0


def test_a_diverging_fit_on_large_features_names_their_range():
    X, _ = make_blobs(150, centers=3, n_features=4, random_state=0)
    with pytest.raises(FloatingPointError, match=r"range from -?[\d.e+]+ to [\d.e+]+.*standardise the features"):
        VaDE(3, latent_dim=2, hidden=(16,), pretrain_epochs=1, epochs=1, init="kmeans", partition="prior",
             lr=10.0, random_state=0, device="cpu").fit(X * 1e4)
