"""MoA+: the minimax identities, the bounds (and the source's counter-example), gradients, dead experts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mixclust
from mixclust import metrics
from mixclust._deep import epochs_for_steps
from mixclust.moa import (
    MoA,
    SingularGramWarning,
    balance_penalty,
    bound_loss,
    competitive_loss,
    frobenius_bound_loss,
    gram_matrix,
    minimax_loss,
    minimax_weights,
    switch_balance_loss,
)

# The start's budget pinned: "auto" would give these tiny data sets hundreds of epochs.
# One run (n_init=1): the tests pin what a single run from random_state does.
TINY = dict(n_init=1, arch="mlp", hidden=(16,), latent_dim=2, router_hidden=(8,), epochs=3, batch_size=16,
            pretrain_epochs=3, router_epochs=2, verbose=0)


def random_router_and_errors(seed: int, n: int, M: int):
    rng = np.random.default_rng(seed)
    P = torch.softmax(torch.as_tensor(rng.normal(size=(n, M)) * 2), dim=1)
    E = torch.as_tensor(rng.random((n, M)))
    return P, E


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_minimax_weights_are_biorthogonal_to_the_router(seed, M):
    P, _ = random_router_and_errors(seed, 3 * M + 5, M)
    A = minimax_weights(P)
    np.testing.assert_allclose((A.T @ P / len(P)).numpy(), np.eye(M), atol=1e-8)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_exact_loss_is_abs_trace_and_weighted_error_sum(seed, M):
    P, E = random_router_and_errors(seed, 3 * M + 5, M)
    G = P.T @ P
    trace = torch.trace(torch.linalg.inv(G) @ E.T @ P).abs()
    assert float(minimax_loss(E, P)) == pytest.approx(float(trace), rel=1e-9)
    assert float(minimax_loss(E, P)) == pytest.approx(float((minimax_weights(P) * E).sum().abs() / len(P)),
                                                      rel=1e-9)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_frobenius_bound_holds_for_every_m(seed, M):
    P, E = random_router_and_errors(seed, 2 * M + 3, M)
    assert float(frobenius_bound_loss(E, P)) >= float(minimax_loss(E, P)) * (1 - 1e-12)


def test_sources_bound_fails_on_the_spec_counter_example():
    P = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    E = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    # SPEC §1 states the values for the unnormalised G = P^T P; the per-sample normalisation
    # multiplies every loss by the same factor, so the comparison is the same.
    exact, bound = float(minimax_loss(E, P)), float(bound_loss(E, P))
    assert exact == pytest.approx(0.757, abs=1e-3)
    assert bound == pytest.approx(0.480, abs=1e-3)
    assert bound < exact <= float(frobenius_bound_loss(E, P))


def test_exact_loss_gradients_match_finite_differences():
    P, E = random_router_and_errors(3, 9, 3)
    logits = torch.log(P).clone().requires_grad_(True)
    errors = E.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, e: minimax_loss(e, torch.softmax(a, 1), ridge=1e-3),
                                    (logits, errors), eps=1e-6, atol=1e-6)


def test_dead_expert_gives_finite_loss_and_a_warning():
    P, E = random_router_and_errors(0, 12, 3)
    P = torch.cat([P[:, :2] / P[:, :2].sum(1, keepdim=True), torch.zeros(12, 1, dtype=P.dtype)], 1)
    assert torch.isfinite(minimax_loss(E, P, ridge=1e-4))
    X = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    model = MoA(3, **TINY, random_state=0)
    model.fit(X)  # the warning path is exercised through _statistics with a singular router output
    model._singular_warned = False
    with pytest.warns(SingularGramWarning):
        G, B = model._statistics(E.float(), P.float())
    assert torch.isfinite(G).all() and torch.isfinite(B).all()


def test_switch_balance_is_one_when_balanced():
    P = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert float(switch_balance_loss(P)) == pytest.approx(1.0)
    assert float(switch_balance_loss(torch.tensor([[0.9, 0.1], [0.8, 0.2]]))) > 1.0


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.integers(2, 8), st.integers(0, 1000))
def test_balance_penalty_is_kl_to_uniform_between_zero_and_log_m(M, seed):
    mean = torch.softmax(torch.randn(M, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), 0)
    expected = float((mean * (mean * M).log()).sum())
    assert float(balance_penalty(mean)) == pytest.approx(expected, rel=1e-12)
    assert -1e-12 <= float(balance_penalty(mean)) <= np.log(M) + 1e-12
    assert float(balance_penalty(torch.full((M,), 1.0 / M))) == pytest.approx(0.0, abs=1e-12)
    assert float(balance_penalty(torch.eye(M, dtype=torch.float64)[0])) == pytest.approx(np.log(M))


def test_balance_term_keeps_the_routing_spread():
    """Everything near one point: competitive routing drifts to few experts unless the balance term holds it.
    Without ``specialise`` (identical experts at the start), the regime where the drift shows; the specialised
    start alone already kept this one from drifting (0.5 of the samples in the largest cluster)."""
    X = np.random.default_rng(3).normal(0.5, 0.05, size=(96, 6)).astype(np.float32)
    largest, penalty = {}, {}
    for balance in (0.0, 5.0):
        model = MoA(4, balance=balance, specialise=False, **{**TINY, "epochs": 15}, random_state=0).fit(X)
        largest[balance] = np.bincount(model.predict(X)).max() / len(X)
        penalty[balance] = float(balance_penalty(torch.as_tensor(model.predict_proba(X).mean(0))))
    assert "balance_penalty" in model.history_[-1]
    assert largest[0.0] > 0.8 and largest[5.0] < 0.5  # measured: 95 of 96 vs 38 of 96 in the largest cluster
    assert penalty[5.0] < 1e-3 < penalty[0.0]


def test_auto_balance_is_the_measured_weight_per_feature_for_competitive_and_zero_otherwise():
    def weight(input_shape, **params):
        model = MoA(**params)
        model.input_shape_ = input_shape
        return model._balance_weight()

    assert weight((1, 28, 28), loss="competitive") == pytest.approx(5.0)  # the weight measured on MNIST
    assert weight((64,), loss="competitive") == pytest.approx(5.0 * 64 / 784)
    assert weight((1, 28, 28), loss="minimax") == 0.0
    assert weight((64,), loss="minimax", balance=0.5) == 0.5


@given(st.integers(1, 5000), st.integers(1, 100_000), st.integers(1, 1024))
def test_epochs_for_steps_is_the_fewest_epochs_reaching_the_steps(steps, n, batch_size):
    epochs, per_epoch = epochs_for_steps(steps, n, batch_size), -(-n // batch_size)
    assert epochs >= 1 and epochs * per_epoch >= steps
    assert epochs == 1 or (epochs - 1) * per_epoch < steps


def test_auto_start_budget_keeps_mnist_epochs_and_gives_small_data_more():
    def epochs(n, batch_size, **params):
        model = MoA(batch_size=batch_size, **params)
        model._resolve_budget(n)
        return model.pretrain_epochs_, model.router_epochs_

    assert epochs(70_000, 256) == (3, 2)  # the budget of the MNIST study
    assert epochs(1797, 64) == (28, 18)  # scikit-learn's digits at the former demo's batch of 64
    assert epochs(1797, "auto") == (15, 9)  # batch_size="auto" is 32 there: 57 steps an epoch
    assert epochs(1797, 64, pretrain_epochs=4, router_epochs=0) == (4, 0)
    X, _ = two_groups()
    model = MoA(2, **{**TINY, "pretrain_epochs": "auto", "router_epochs": "auto", "epochs": 0}).fit(X)
    stages = [r["stage"] for r in model.history_]
    assert (stages.count("pretrain"), stages.count("router")) == (100, 63)  # 800 and 500 steps of 8 batches
    with pytest.raises(TypeError, match="router_epochs"):
        MoA(2, **{**TINY, "router_epochs": "many"}).fit(X)


def test_auto_competitive_scale_is_the_data_range_so_rescaled_features_cluster_alike():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(400, n_features=4, centers=3, random_state=0)
    params = {**TINY, "hidden": (32,), "latent_dim": 3, "epochs": 10, "batch_size": 32, "pretrain_epochs": "auto",
              "router_epochs": "auto"}
    scores = {}
    for factor, scale in ((1.0, "auto"), (30.0, "auto"), (30.0, 1.0)):
        model = MoA(3, **params, competitive_scale=scale, random_state=0).fit(X * factor)
        scores[factor, scale] = metrics.evaluate(y, model.labels_)["nmi"]
    assert model.competitive_scale_ == 1.0
    assert MoA(3, **{**params, "epochs": 0}).fit(X * 30).competitive_scale_ == pytest.approx(np.ptp(X * 30), rel=1e-5)
    # measured before specialise=True: 0.976 and 0.973 with the data's range as s, 0.264 with s = 1 on the data
    # times 30; with it, s = 1 reaches 0.542, still far below
    assert min(scores[1.0, "auto"], scores[30.0, "auto"]) > 0.9
    assert scores[30.0, 1.0] < min(scores[1.0, "auto"], scores[30.0, "auto"]) - 0.3
    images = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    images[0, 0, 0, 0], images[1, 0, 0, 0] = 0.0, 1.0
    model = MoA(2, **{**TINY, "epochs": 0}, random_state=0).fit(images)
    assert model.competitive_scale_ == 1.0  # images in [0, 1]: the scale every study ran with


def test_a_fit_that_stays_degenerate_warns_with_what_to_try():
    X = np.zeros((60, 4), np.float32)  # constant data: every restart routes everything to one expert
    X[0] = 1.0
    with pytest.warns(mixclust.DegenerateFitWarning, match="degenerate after 2 run.*balance term"):
        model = MoA(3, **{**TINY, "n_init": 2}, random_state=0).fit(X)
    assert len(model.n_init_degenerate_) == 2 and all(model.n_init_degenerate_)


def test_resume_with_the_running_gram_matrix_is_exact(tmp_path):
    from mixclust.training import TrainingInterrupted, interrupted_after

    X, _ = two_groups(seed=4)
    params = dict(TINY, loss="minimax", gram="ema", epochs=4, random_state=0, device="cpu")
    reference = MoA(2, **params).fit(X)
    with pytest.raises(TrainingInterrupted), interrupted_after(2, stage="moa"):
        MoA(2, checkpoint_dir=tmp_path, **params).fit(X)
    resumed = MoA(2, checkpoint_dir=tmp_path, **params).fit(X)
    for (name, p), q in zip(reference.network_.state_dict().items(), resumed.network_.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert int(resumed.network_.ema_steps) == 4 * 8  # 4 epochs of 8 batches


def test_gram_matrix_is_per_sample():
    P = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(gram_matrix(P).numpy(), 0.5 * np.eye(2))


@pytest.mark.parametrize("arch, shape", [("mlp", (30, 5)), ("conv", (12, 1, 8, 8))])
def test_vmap_and_loop_experts_give_equal_outputs_and_gradients_and_train_alike(arch, shape):
    X = np.random.default_rng(0).random(shape).astype(np.float32)
    params = dict(TINY, arch=arch, filters=2, n_blocks=2, epochs=0)
    loop = MoA(3, experts_path="loop", **params, random_state=0).fit(X)
    vec = MoA(3, experts_path="vmap", **params, random_state=0).fit(X)
    x = torch.as_tensor(X)
    with torch.no_grad():
        for u, v in zip(loop.network_(x), vec.network_(x)):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)
    for model in (loop, vec):
        model.network_.zero_grad()
        x_hats, _, P = model.network_(x)
        competitive_loss(x, x_hats, P).backward()
    for (name, p), q in zip(loop.network_.named_parameters(), vec.network_.parameters()):
        assert q.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    trained = {path: MoA(3, experts_path=path, **{**params, "epochs": 2}, random_state=0).fit(X)
               for path in ("loop", "vmap")}
    for p, q in zip(trained["loop"].network_.parameters(), trained["vmap"].network_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    moved = [float((p - s).detach().abs().max()) for p, s in zip(trained["vmap"].network_.experts.parameters(),
                                                       loop.network_.experts.parameters())]
    assert max(moved) > 1e-3  # the experts themselves trained, not only the router


@pytest.mark.parametrize("loss", ["blend", "competitive", "minimax", "bound", "frobenius_bound", "switch"])
def test_every_loss_trains_and_gives_finite_router_probabilities(loss):
    X = np.random.default_rng(1).random((48, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularGramWarning)
        model = MoA(2, loss=loss, **TINY, random_state=0).fit(X)
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1, atol=1e-5)
    stages = [r["stage"] for r in model.history_]
    assert stages == ["pretrain"] * 3 + ["router"] * 2 + ["train"] * TINY["epochs"]
    assert np.isfinite(model.history_[-1]["loss"])


def test_minimax_routes_to_both_experts():
    """The published qualitative result: the minimax loss splits the data (whether along the true
    groups is what the study measures, not a unit test)."""
    rng = np.random.default_rng(0)
    a, b = rng.random(8), rng.random(8)
    X = np.concatenate([a + 0.05 * rng.normal(size=(60, 8)), b + 0.05 * rng.normal(size=(60, 8))]).astype(np.float32)
    model = MoA(2, loss="minimax", gram="ema", init="random", **{**TINY, "epochs": 30}, random_state=0).fit(X)
    sizes = metrics.soft_assignment_metrics(model.predict_proba(X))["cluster_sizes"]
    assert min(sizes) >= 10


def test_save_load_round_trip_and_reconstruct(tmp_path):
    X = np.random.default_rng(2).random((20, 1, 8, 8)).astype(np.float32)
    model = MoA(2, filters=2, n_blocks=2, latent_dim=3, epochs=1, batch_size=8, pretrain_epochs=3, router_epochs=2,
                random_state=0).fit(X)
    model.save(tmp_path / "moa")
    loaded = mixclust.load(tmp_path / "moa")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.reconstruct(X).shape == X.shape and loaded.latent(X).shape == (20, 3)


def two_groups(seed=0, n=60, d=8):
    rng = np.random.default_rng(seed)
    a, b = rng.random(d), rng.random(d)
    X = np.concatenate([a + 0.05 * rng.normal(size=(n, d)), b + 0.05 * rng.normal(size=(n, d))]).astype(np.float32)
    return X, np.repeat([0, 1], n)


def test_kmeans_initialisation_routes_like_kmeans_on_the_pretrained_codes():
    X, y = two_groups()
    model = MoA(2, init="kmeans", specialise=False,
                **{**TINY, "epochs": 0, "pretrain_epochs": 20, "router_epochs": 20}, random_state=0).fit(X)
    assert metrics.evaluate(y, model.init_labels_)["ari"] == 1.0
    assert metrics.evaluate(model.init_labels_, model.labels_)["ari"] == 1.0
    # every expert starts as the same pretrained autoencoder
    experts = model.network_.experts
    for p, q in zip(experts.encoders[0].parameters(), experts.encoders[1].parameters()):
        torch.testing.assert_close(p, q)


def test_specialised_experts_reconstruct_their_own_cluster_best():
    """``specialise=True``: while the router learns the start's partition, each expert fits its own cluster's
    members, so the joint training starts from experts that differ (and each wins on its own cluster)."""
    X, y = two_groups()
    params = {**TINY, "epochs": 0, "pretrain_epochs": 20, "router_epochs": 30}
    plain = MoA(2, init="kmeans", specialise=False, **params, random_state=0).fit(X)
    special = MoA(2, init="kmeans", specialise=True, **params, random_state=0).fit(X)
    np.testing.assert_array_equal(plain.init_labels_, special.init_labels_)  # the same start
    np.testing.assert_allclose(*plain.expert_errors(X).T)  # identical experts: equal errors
    errors = special.expert_errors(X)
    own = errors[np.arange(len(X)), special.init_labels_]
    other = errors[np.arange(len(X)), 1 - special.init_labels_]
    assert (own < other).mean() > 0.95
    stages = [r for r in special.history_ if r["stage"] == "router"]
    assert stages[-1]["own_expert_loss"] < stages[0]["own_expert_loss"]


def test_gmm_initialisation_routes_like_a_full_gmm_begun_at_the_kmeans_centroids():
    from sklearn.cluster import KMeans

    from mixclust._deep import latent_gmm

    rng = np.random.default_rng(3)
    X = rng.random((240, 6)).astype(np.float32)
    model = MoA(3, **{**TINY, "epochs": 0, "pretrain_epochs": 5, "router_epochs": 0}, init="gmm", random_state=0)
    model.fit(X)
    codes = model.latent(X).astype(np.float64)  # every expert is still the pretrained autoencoder
    centroids = KMeans(3, n_init=10, random_state=0).fit(codes).cluster_centers_
    expected = latent_gmm(codes, centroids, 0).labels_
    kmeans_labels = KMeans(3, n_init=10, random_state=0).fit(codes).labels_
    np.testing.assert_array_equal(model.init_labels_, expected)
    assert metrics.evaluate(kmeans_labels, expected)["ari"] < 1.0  # the GMM step changed the partition


def test_random_initialisation_has_no_init_stages_or_labels():
    X, _ = two_groups()
    model = MoA(2, init="random", **TINY, random_state=0).fit(X)
    assert [r["stage"] for r in model.history_] == ["train"] * TINY["epochs"] and not hasattr(model, "init_labels_")


def test_reusing_an_initialisation_equals_a_fit_from_scratch():
    X, _ = two_groups(seed=3)
    scratch = MoA(2, loss="bound", **TINY, random_state=2).fit(X)
    base = MoA(2, **TINY, random_state=2).initialise(X)
    reused = MoA(2, loss="bound", **TINY, random_state=2).fit(X, initialised=base)
    np.testing.assert_array_equal(scratch.predict_proba(X), reused.predict_proba(X))
    np.testing.assert_array_equal(scratch.init_labels_, reused.init_labels_)
    with pytest.raises(ValueError, match="router_epochs"):
        MoA(2, **{**TINY, "router_epochs": 1}, random_state=2).fit(X, initialised=base)
    with pytest.raises(ValueError, match="different data"):
        MoA(2, **TINY, random_state=2).fit(X[::-1] * 0.5, initialised=base)


@pytest.mark.parametrize("kwargs, fragment", [({"loss": "hinton"}, "loss 'hinton'"), ({"gram": "full"}, "gram"),
                                              ({"n_clusters": 100}, "larger than"), ({"init": "pca"}, "init"),
                                              ({"balance": -1.0}, "balance"), ({"balance": "on"}, "balance"),
                                              ({"specialise": "yes"}, "specialise")])
def test_bad_parameters(kwargs, fragment):
    X = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=fragment):
        MoA(**{**TINY, **kwargs}).fit(X)


def test_fit_leaves_the_global_generators_alone_and_random_state_follows_scikit_learn():
    X, _ = two_groups()
    params = {**TINY, "epochs": 1}
    draws = []
    for _ in range(2):
        np.random.seed(1000)
        torch.manual_seed(1000)
        MoA(2, **params, random_state=3).fit(X)
        draws.append((np.random.rand(), float(torch.rand(1))))
    np.random.seed(1000)
    torch.manual_seed(1000)
    assert draws[0] == draws[1] == (np.random.rand(), float(torch.rand(1)))  # as if fit had not run
    fixed = [MoA(2, **params, random_state=3).fit(X).predict_proba(X) for _ in range(2)]
    np.testing.assert_array_equal(*fixed)
    free = [MoA(2, **params, random_state=None).fit(X).predict_proba(X) for _ in range(2)]
    assert not np.array_equal(*free)  # None: a fresh seed per fit, as in scikit-learn
    from_generator = MoA(2, **params, random_state=np.random.RandomState(0)).fit(X)
    assert np.isfinite(from_generator.predict_proba(X)).all()
    with pytest.raises(TypeError, match="random_state"):
        MoA(2, **params, random_state="seven").fit(X)
