"""VaDE: the closed-form terms, the prior initialisation, the entropy knob, robustness, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mixclust
from mixclust import metrics
from mixclust.vade import (
    VaDE,
    approx_kl,
    gaussian_kl_to_components,
    laplace_weights,
    log_joint,
    negative_entropy,
    scale_tril,
    vade_kl,
)

TINY = dict(hidden=(32,), latent_dim=2, pretrain_epochs=3, epochs=4, batch_size=32, arch="mlp", verbose=0)


def blobs(n_per=60, seed=0, d=6, spread=4.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * spread
    X = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(3), n_per)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.floats(-2, 2), st.floats(-1.5, 1.5), st.floats(-2, 2), st.floats(-1.5, 1.5))
def test_closed_form_kl_matches_monte_carlo(m, log_s2, mu_k, log_sigma2):
    mu, log_var = torch.tensor([[m, -m]], dtype=torch.float64), torch.tensor([[log_s2, 0.3]], dtype=torch.float64)
    prior_mu = torch.tensor([[mu_k, 0.5]], dtype=torch.float64)
    prior_log_var = torch.tensor([[log_sigma2, -0.2]], dtype=torch.float64)
    closed = gaussian_kl_to_components(mu, log_var, prior_mu, prior_log_var)[0, 0]
    q = torch.distributions.Normal(mu[0], (0.5 * log_var[0]).exp())
    p = torch.distributions.Normal(prior_mu[0], (0.5 * prior_log_var[0]).exp())
    generator = torch.Generator().manual_seed(0)
    z = mu[0] + (0.5 * log_var[0]).exp() * torch.randn(200_000, 2, generator=generator, dtype=torch.float64)
    samples = (q.log_prob(z) - p.log_prob(z)).sum(1)
    assert float(closed) == pytest.approx(float(samples.mean()), abs=5 * float(samples.std()) / 200_000**0.5 + 1e-3)
    assert float(closed) == pytest.approx(float(torch.distributions.kl_divergence(q, p).sum()), rel=1e-10)


def test_approx_kl_is_the_sources_log_sum_exp():
    kl = torch.tensor([[0.5, 2.0, 4.0]])
    log_pi = torch.log(torch.tensor([0.2, 0.3, 0.5]))
    expected = -np.log(0.2 * np.exp(-0.5) + 0.3 * np.exp(-2.0) + 0.5 * np.exp(-4.0))
    assert float(approx_kl(kl, log_pi)[0]) == pytest.approx(expected, rel=1e-6)


def test_vade_kl_and_entropy_by_hand():
    gamma = torch.tensor([[0.25, 0.75]])
    kl = torch.tensor([[1.0, 3.0]])
    log_pi = torch.log(torch.tensor([0.5, 0.5]))
    expected = 0.25 * 1 + 0.75 * 3 + 0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)
    assert float(vade_kl(gamma, kl, log_pi)[0]) == pytest.approx(expected, rel=1e-6)
    assert float(negative_entropy(gamma)[0]) == pytest.approx(0.25 * np.log(0.25) + 0.75 * np.log(0.75), rel=1e-6)


def test_log_joint_is_log_weight_plus_gaussian_log_density():
    z = torch.tensor([[0.3, -1.0]])
    mu, log_var = torch.tensor([[0.0, 0.0], [1.0, 2.0]]), torch.tensor([[0.0, 0.5], [-0.3, 0.1]])
    log_pi = torch.log(torch.tensor([0.4, 0.6]))
    expected = [np.log(w) + torch.distributions.Normal(m, (0.5 * lv).exp()).log_prob(z[0]).sum().item()
                for w, m, lv in zip([0.4, 0.6], mu, log_var)]
    np.testing.assert_allclose(log_joint(z, log_pi, mu, log_var)[0].numpy(), expected, rtol=1e-5)


def _random_full_prior(seed, K=3, d=3):
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    return draw(K, d), 0.5 * draw(K, d), 0.7 * draw(K, d, d)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.integers(0, 10_000))
def test_full_covariance_kl_and_log_density_match_torch_distributions(seed):
    prior_mu, prior_log_var, prior_tril = _random_full_prior(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    mu = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    log_var = 0.5 * torch.randn(4, 3, generator=generator, dtype=torch.float64)
    L = scale_tril(prior_log_var, prior_tril)
    assert torch.allclose(torch.diagonal(L, dim1=1, dim2=2) ** 2, prior_log_var.exp())
    p = torch.distributions.MultivariateNormal(prior_mu, scale_tril=L)
    q_scale = torch.diag_embed((0.5 * log_var).exp())[:, None]
    q = torch.distributions.MultivariateNormal(mu[:, None, :], scale_tril=q_scale)
    expected_kl = torch.distributions.kl_divergence(q, p)
    closed = gaussian_kl_to_components(mu, log_var, prior_mu, prior_log_var, prior_tril)
    torch.testing.assert_close(closed, expected_kl, rtol=1e-9, atol=1e-9)
    log_pi = torch.log_softmax(torch.arange(3.0, dtype=torch.float64), 0)
    torch.testing.assert_close(log_joint(mu, log_pi, prior_mu, prior_log_var, prior_tril),
                               log_pi + p.log_prob(mu[:, None, :]), rtol=1e-9, atol=1e-9)


def test_full_covariance_with_a_zero_lower_part_is_the_diagonal_prior():
    prior_mu, prior_log_var, _ = _random_full_prior(0)
    zero = torch.zeros(3, 3, 3, dtype=torch.float64)
    mu, log_var = prior_mu[:2] + 0.3, prior_log_var[:2] - 0.2
    torch.testing.assert_close(gaussian_kl_to_components(mu, log_var, prior_mu, prior_log_var, zero),
                               gaussian_kl_to_components(mu, log_var, prior_mu, prior_log_var))
    log_pi = torch.full((3,), -np.log(3), dtype=torch.float64)
    torch.testing.assert_close(log_joint(mu, log_pi, prior_mu, prior_log_var, zero),
                               log_joint(mu, log_pi, prior_mu, prior_log_var))


def test_full_covariance_prior_starts_from_em_and_clusters_correlated_blobs():
    rng = np.random.default_rng(0)
    # Three elongated, rotated clusters: a diagonal Gaussian fits each one badly.
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    X = np.concatenate([c + (rng.normal(size=(80, 6)) * [3, 0.3, 0.3, 0.3, 0.3, 0.3]) @ rotation
                        for c in rng.normal(size=(3, 6)) * 5]).astype(np.float32)
    y = np.repeat(np.arange(3), 80)
    model = VaDE(3, **{**TINY, "latent_dim": 3, "pretrain_epochs": 10, "epochs": 5}, covariance_type="full",
                 init="kmeans", random_state=0).fit(X)
    assert model.covariances_.shape == (3, 3, 3)
    assert np.all(np.linalg.eigvalsh(model.covariances_) > 0)
    np.testing.assert_allclose(np.diagonal(model.covariances_, axis1=1, axis2=2) >= model.variances_ * (1 - 1e-6), True)
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1)
    assert metrics.evaluate(y, model.prior_proba(X).argmax(1))["ari"] > 0.9  # the full prior itself clusters them
    start = VaDE(3, **{**TINY, "latent_dim": 3, "pretrain_epochs": 10, "epochs": 0}, covariance_type="full",
                 init="kmeans", random_state=0).fit(X)
    from mixclust import GaussianMixture

    mu = start.transform(X).astype(np.float64)
    from sklearn.cluster import KMeans

    centroids = KMeans(3, n_init=10, random_state=0).fit(mu).cluster_centers_
    gmm = GaussianMixture(3, covariance_type="full", reg_covar=1e-4, means_init=centroids, random_state=0).fit(mu)
    np.testing.assert_allclose(start.means_, gmm.means_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(start.covariances_, gmm.covariances_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(start.weights_, laplace_weights(gmm.weights_ * len(X)), rtol=1e-5)


def test_prior_initialisation_is_laplace_smoothed_kmeans():
    assert laplace_weights([3, 0, 7]).tolist() == pytest.approx([4 / 13, 1 / 13, 8 / 13])
    X, _ = blobs()
    model = VaDE(3, **{**TINY, "epochs": 0}, covariance_type="diag", init="kmeans", random_state=0).fit(X)
    mu = model.transform(X).astype(np.float64)
    from sklearn.cluster import KMeans

    counts = np.bincount(KMeans(3, n_init=10, random_state=0).fit(mu).labels_, minlength=3)
    assert sorted(model.weights_.tolist()) == pytest.approx(sorted(((counts + 1) / (len(X) + 3)).tolist()), abs=1e-6)


def test_uniform_prior_weights_start_at_one_over_k_and_change_nothing_else():
    X, _ = blobs()
    config = {**TINY, "epochs": 0, "covariance_type": "diag", "init": "kmeans", "random_state": 0}
    laplace = VaDE(3, **config).fit(X)
    uniform = VaDE(3, **config, prior_weights="uniform").fit(X)
    assert uniform.weights_ == pytest.approx(np.full(3, 1 / 3), abs=1e-6)
    assert not np.allclose(laplace.weights_, 1 / 3)  # the blobs' start counts differ
    np.testing.assert_array_equal(laplace.means_, uniform.means_)
    with pytest.raises(ValueError, match="prior_weights"):
        VaDE(3, **config, prior_weights="equal").fit(X)


def test_eta_raises_the_entropy_of_the_assignments():
    X, _ = blobs(seed=1)
    entropies = []
    for eta in (0.0, 5.0):
        # the objective's own effect: no guard going back to an earlier epoch when the head empties a cluster
        model = VaDE(3, **{**TINY, "epochs": 15}, eta=eta, assign="head", temperature=1.0, random_state=0,
                     degeneracy_guard=False).fit(X)
        entropies.append(metrics.entropy(model.prior_proba(X)).mean())  # gamma, the entropy eta acts on
    assert entropies[1] > entropies[0] + 0.05


def test_clusters_separated_blobs_and_records_history():
    X, y = blobs(seed=2)
    config = {**TINY, "epochs": 10, "latent_dim": 3, "pretrain_epochs": 10}
    model = VaDE(3, **config, random_state=0).fit(X, validation_data=(X, y))
    assert metrics.evaluate(y, model.labels_)["ari"] > 0.9
    assert metrics.evaluate(y, model.prior_proba(X).argmax(1))["ari"] > 0.9  # the prior's own gamma too
    stages = [r["stage"] for r in model.history_]
    assert stages == ["pretrain"] * 10 + ["train"] * 10
    assert {"loss", "recon", "kl", "entropy", "val_nmi", "val_entropy", "seconds"} <= set(model.history_[-1])
    assert model.prototypes().shape == (3, 6)
    assert len(model.most_ambiguous(X, 5)) == 5


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # K-means finds 2 groups for K = 4: intended
@pytest.mark.filterwarnings("ignore:component\\(s\\)")  # the full prior's EM start reports the empty clusters
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_no_nan_with_an_empty_cluster_and_tiny_variances(covariance_type):
    X = np.zeros((40, 4), dtype=np.float32)
    X[:20] += 1e-6 * np.arange(4)  # two groups of (almost) identical points: K = 4 leaves clusters empty
    X[20:] += 1.0
    model = VaDE(4, **TINY, covariance_type=covariance_type, random_state=0).fit(X)
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1)
    assert all(np.isfinite(r["loss"]) for r in model.history_)
    assert np.all(np.isfinite(model.variances_))


def test_save_load_round_trip(tmp_path):
    X, _ = blobs(n_per=20)
    model = VaDE(3, **TINY, random_state=0).fit(X)
    model.save(tmp_path / "vade")
    loaded = mixclust.load(tmp_path / "vade")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.prototypes(), model.prototypes())


def test_manifold_partition_trains_the_same_network_and_maps_any_sample_by_its_neighbours(tmp_path):
    X, y = blobs(n_per=60, seed=3)
    prior = VaDE(3, **TINY, random_state=0, partition="prior").fit(X)
    manifold = VaDE(3, **TINY, random_state=0).fit(X)  # the default
    # the partition comes after training: same network, same prior
    np.testing.assert_array_equal(manifold.transform(X), prior.transform(X))
    np.testing.assert_array_equal(manifold.means_, prior.means_)
    assert prior.manifold_resp_ is None and manifold.manifold_resp_.shape == (180, 3)
    proba = manifold.predict_proba(X)
    assert np.allclose(proba.sum(1), 1) and not np.allclose(proba, prior.predict_proba(X))
    np.testing.assert_array_equal(manifold.prior_proba(X), prior.predict_proba(X))  # gamma, whatever partition
    np.testing.assert_array_equal(manifold.labels_, proba.argmax(1))
    assert metrics.evaluate(y, manifold.labels_)["ari"] > 0.9
    # numbered as the prior's components: a cluster's label is the prior component (and prototype) it matches
    assert (manifold.labels_ == manifold.prior_proba(X).argmax(1)).mean() > 0.9
    # a new sample gets the mean responsibilities of its 15 nearest training codes
    new = X[:5] + 0.01
    codes = manifold.transform(new)
    nearest = np.argsort(((manifold.manifold_codes_[None] - codes[:, None]) ** 2).sum(-1), axis=1)[:, :15]
    np.testing.assert_allclose(manifold.predict_proba(new), manifold.manifold_resp_[nearest].mean(1), atol=1e-6)
    manifold.save(tmp_path / "vade")
    np.testing.assert_array_equal(mixclust.load(tmp_path / "vade").predict_proba(X), proba)
    # a new network voids the partition of the old one's codes; a refit with the prior keeps none
    assert manifold.pretrain(X).manifold_resp_ is None
    assert manifold.set_params(partition="prior").fit(X).manifold_resp_ is None


def test_a_training_checkpoint_serves_either_partition(tmp_path):
    X, _ = blobs(n_per=40, seed=4)
    prior = VaDE(3, **TINY, random_state=0, partition="prior", checkpoint_dir=tmp_path).fit(X)
    resumed = VaDE(3, **TINY, random_state=0, checkpoint_dir=tmp_path).fit(X)  # the stages' checkpoints reused
    np.testing.assert_array_equal(resumed.prior_proba(X), prior.predict_proba(X))
    assert resumed.manifold_resp_ is not None


def test_manifold_partition_keeps_the_priors_gamma_below_a_hundred_samples():
    X, _ = blobs(n_per=20)
    model = VaDE(3, **TINY, random_state=0).fit(X)
    assert model.manifold_resp_ is None
    np.testing.assert_array_equal(model.predict_proba(X), model.prior_proba(X))


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"kl": "exact"}, ValueError, "kl 'exact'"),
    ({"assign": "softmax"}, ValueError, "assign 'softmax'"),
    ({"partition": "umap"}, ValueError, "partition 'umap'"),
    ({"covariance_type": "tied"}, ValueError, "covariance_type 'tied'"),
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"n_clusters": 500}, ValueError, "larger than the number of samples"),
])
def test_bad_parameters(kwargs, error, fragment):
    X, _ = blobs(n_per=10)
    with pytest.raises(error, match=fragment):
        VaDE(**{**TINY, **kwargs}).fit(X)


def test_bad_input():
    X, _ = blobs(n_per=10)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        VaDE(3, **TINY).fit(X)
    with pytest.raises(ValueError, match="validation_data"):
        VaDE(3, **TINY).fit(np.nan_to_num(X), validation_data=np.zeros((3, 6)))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_reusing_a_pretrained_autoencoder_equals_a_fit_from_scratch(covariance_type):
    X, _ = blobs(seed=4)
    scratch = VaDE(3, **TINY, eta=0.3, covariance_type=covariance_type, random_state=1).fit(X)
    base = VaDE(3, **TINY, random_state=1).pretrain(X)  # one diagonal pretraining serves both prior types
    reused = VaDE(3, **TINY, eta=0.3, covariance_type=covariance_type, random_state=1).fit(X, pretrained=base)
    np.testing.assert_array_equal(scratch.predict_proba(X), reused.predict_proba(X))
    assert [r["loss"] for r in scratch.history_] == [r["loss"] for r in reused.history_]


def test_reusing_a_pretrained_autoencoder_keeps_a_given_decoder_variance():
    # sigma^2 is a stage-2 parameter: a sweep over it must not inherit the pretrained model's "auto" value
    X, _ = blobs(seed=4)
    base = VaDE(3, **TINY, random_state=1).pretrain(X)
    scratch = VaDE(3, **TINY, decoder_variance=0.3, n_init=1, random_state=1).fit(X)
    reused = VaDE(3, **TINY, decoder_variance=0.3, n_init=1, random_state=1).fit(X, pretrained=base)
    assert base.decoder_variance_ != 0.3 and reused.decoder_variance_ == 0.3
    assert [r["loss"] for r in scratch.history_] == [r["loss"] for r in reused.history_]


def test_pretrained_must_match_data_and_pretraining_parameters():
    X, _ = blobs(seed=4)
    base = VaDE(3, **TINY, random_state=1).pretrain(X)
    with pytest.raises(ValueError, match="latent_dim"):
        VaDE(3, **{**TINY, "latent_dim": 3}, random_state=1).fit(X, pretrained=base)
    with pytest.raises(ValueError, match="different data"):
        VaDE(3, **TINY, random_state=1).fit(X + 1.0, pretrained=base)
    with pytest.raises(ValueError, match="not saved"):
        VaDE(3, **TINY, random_state=1).fit(X, pretrained=VaDE(3))


def test_latent_map_and_prototype_figure():
    import matplotlib

    matplotlib.use("Agg")
    X, _ = blobs(seed=5)
    model = VaDE(3, **TINY, random_state=0).fit(X)
    Y = model.latent_map(X, method="tsne")
    assert Y.shape == (len(X), 2) and np.all(np.isfinite(Y))
    ax = model.plot_prototypes()
    assert ax.get_title().startswith("prototypes")
    with pytest.raises(ValueError, match="method"):
        model.latent_map(X, method="pca")
