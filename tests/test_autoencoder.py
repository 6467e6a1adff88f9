"""AutoEncoder, VAE and AEClustering: shapes, losses, training, determinism, persistence, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

import mixclust
from mixclust import VAE, AEClustering, AutoEncoder
from mixclust import nn as mnn
from mixclust.autoencoder import add_gaussian_noise, gaussian_kl, reconstruction_loss, reparameterize

TINY = dict(hidden=(32,), filters=4, latent_dim=3, batch_size=32, device="cpu")


def prototypes(n_per_cluster=40, shape=(1, 8, 8), noise=0.05, seed=0):
    """Three distinct binary prototype images plus small noise, in [0, 1]; returns (X, labels)."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((3, *shape)) > 0.5).astype(np.float32)
    labels = np.repeat(np.arange(3), n_per_cluster)
    X = protos[labels] + noise * rng.standard_normal((len(labels), *shape)).astype(np.float32)
    return np.clip(X, 0.0, 1.0), labels


@pytest.fixture(scope="module")
def images():
    return prototypes()


@pytest.fixture(scope="module")
def fitted_ae(images):
    return AutoEncoder(arch="mlp", epochs=40, lr=3e-3, **TINY).fit(images[0])


@pytest.fixture(scope="module")
def fitted_vae(images):
    return VAE(arch="mlp", epochs=40, lr=3e-3, **TINY).fit(images[0])


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- shapes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [AutoEncoder, VAE])
@pytest.mark.parametrize("shape, params, arch", [
    ((16,), {}, "mlp"),
    ((1, 8, 8), {}, "conv"),
    ((1, 28, 28), {"n_blocks": 3}, "conv"),
    ((3, 10, 10), {}, "conv"),
    ((1, 7, 9), {"n_blocks": 2}, "conv"),
    ((1, 7, 9), {"arch": "mlp"}, "mlp"),
])
def test_output_shapes(model, shape, params, arch):
    X = np.random.default_rng(0).random((12, *shape)).astype(np.float32)
    est = model(epochs=1, **{**TINY, "arch": arch, **params}).fit(X)
    assert est.arch_ == arch and est.input_shape_ == shape
    Z = est.transform(X)
    assert Z.shape == (12, 3) and Z.dtype == np.float32
    assert est.reconstruct(X).shape == X.shape
    assert est.inverse_transform(Z).shape == X.shape
    assert est.denoise(X).shape == X.shape


def test_three_dimensional_input_is_one_channel_images():
    X = np.random.default_rng(0).random((10, 8, 8)).astype(np.float32)
    ae = AutoEncoder(epochs=1, arch="conv", **TINY).fit(X)
    assert ae.arch_ == "conv" and ae.input_shape_ == (1, 8, 8)
    assert ae.reconstruct(X).shape == (10, 1, 8, 8)
    # flattened samples of a fitted image model are accepted and reshaped
    assert np.array_equal(ae.transform(X.reshape(10, -1)), ae.transform(X))


# -- losses ----------------------------------------------------------------------------------------------
def test_reconstruction_loss_matches_a_hand_computation():
    x = torch.tensor([[[0.0, 1.0], [0.5, 0.25]], [[1.0, 0.0], [0.0, 1.0]]])
    x_hat = torch.tensor([[[0.1, 0.8], [0.5, 0.5]], [[0.9, 0.2], [0.3, 0.6]]])
    mse = ((0.01 + 0.04 + 0.0 + 0.0625) + (0.01 + 0.04 + 0.09 + 0.16)) / 2
    assert float(reconstruction_loss(x, x_hat, "mse")) == pytest.approx(mse, rel=1e-6)
    bce = 0.0
    for xs, hs in zip(x.reshape(2, -1).tolist(), x_hat.reshape(2, -1).tolist()):
        bce += -sum(a * math.log(b) + (1 - a) * math.log(1 - b) for a, b in zip(xs, hs))
    assert float(reconstruction_loss(x, x_hat, "bce")) == pytest.approx(bce / 2, rel=1e-5)
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        reconstruction_loss(x, x_hat, "l1")


def test_kl_is_zero_at_the_prior_and_matches_the_formula():
    zero = torch.zeros(5, 4)
    assert float(gaussian_kl(zero, zero)) == 0.0
    mu, log_var = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, -1.0]])
    expected = 0.5 * ((math.exp(0.5) + 1 - 1 - 0.5) + (math.exp(-1.0) + 4 - 1 + 1.0))
    assert float(gaussian_kl(mu, log_var)) == pytest.approx(expected, rel=1e-6)


finite = st.floats(-3.0, 3.0, allow_nan=False)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=4))
def test_kl_matches_a_monte_carlo_estimate(pairs):
    mu = torch.tensor([[m for m, _ in pairs]], dtype=torch.float64)
    log_var = torch.tensor([[lv for _, lv in pairs]], dtype=torch.float64)
    n = 200_000
    g = torch.Generator().manual_seed(0)
    z = reparameterize(mu.expand(n, -1), log_var.expand(n, -1), generator=g)
    sigma2 = log_var.exp()
    log_q = -0.5 * (((z - mu) ** 2) / sigma2 + log_var + math.log(2 * math.pi)).sum(1)
    log_p = -0.5 * (z**2 + math.log(2 * math.pi)).sum(1)
    samples = log_q - log_p
    estimate, standard_error = float(samples.mean()), float(samples.std()) / math.sqrt(n)
    analytic = float(gaussian_kl(mu, log_var))
    assert analytic >= 0.0
    assert abs(analytic - estimate) <= 5 * standard_error + 1e-9


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.floats(-20, 20), st.floats(-10, 10)), min_size=1, max_size=6))
def test_kl_is_non_negative(pairs):
    mu = torch.tensor([[m for m, _ in pairs]], dtype=torch.float64)
    log_var = torch.tensor([[lv for _, lv in pairs]], dtype=torch.float64)
    assert float(gaussian_kl(mu, log_var)) >= 0.0


def test_reparameterize_has_the_right_moments():
    mu, log_var = torch.full((100_000, 1), 2.0), torch.full((100_000, 1), math.log(0.25))
    z = reparameterize(mu, log_var, generator=torch.Generator().manual_seed(0))
    assert float(z.mean()) == pytest.approx(2.0, abs=0.01)
    assert float(z.std()) == pytest.approx(0.5, abs=0.01)


# -- training --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["fitted_ae", "fitted_vae"])
def test_training_lowers_the_loss_and_beats_the_mean_image(fixture, request, images):
    est = request.getfixturevalue(fixture)
    X = images[0]
    assert est.history_[-1]["loss"] < 0.5 * est.history_[0]["loss"]
    mean_image_mse = float(((X - X.mean(0)) ** 2).mean())
    assert est.reconstruction_error(X) < 0.5 * mean_image_mse


def test_conv_training_lowers_the_reconstruction_error(images):
    X = images[0]
    untrained = AutoEncoder(epochs=0, arch="conv", **TINY).fit(X)
    trained = AutoEncoder(epochs=5, lr=3e-3, arch="conv", **TINY).fit(X)
    assert trained.arch_ == "conv"
    assert trained.history_[-1]["loss"] < trained.history_[0]["loss"]
    assert trained.reconstruction_error(X) < untrained.reconstruction_error(X)


def test_history_records_the_documented_keys(fitted_ae, fitted_vae, images):
    assert len(fitted_ae.history_) == 40
    assert all(set(r) == {"epoch", "loss", "seconds"} for r in fitted_ae.history_)
    assert all(set(r) == {"epoch", "loss", "recon", "kl", "seconds"} for r in fitted_vae.history_)
    for r in fitted_vae.history_:
        assert r["loss"] == pytest.approx(r["recon"] + r["kl"], rel=1e-5)  # beta = 1
        assert r["kl"] >= 0
    X = images[0]
    ae = VAE(epochs=3, **TINY).fit(X, validation_data=(X[:20], None))
    assert [r["epoch"] for r in ae.history_] == [1, 2, 3]
    assert all(set(r) == {"epoch", "loss", "recon", "kl", "val_loss", "seconds"} for r in ae.history_)
    # val_loss is the reconstruction MSE per pixel of the model at the end of that epoch
    assert ae.history_[-1]["val_loss"] == pytest.approx(ae.reconstruction_error(X[:20]), rel=1e-5)


def test_early_stopping_on_validation_loss_restores_the_best_epoch(images):
    X = images[0]
    # lr so large that training diverges after a few epochs: validation loss stops improving
    ae = AutoEncoder(arch="mlp", epochs=30, patience=2, lr=0.5, clip_norm=1.0, **TINY).fit(
        X, validation_data=(X, None))
    val = [r["val_loss"] for r in ae.history_]
    best = int(np.argmin(val))
    assert len(val) == best + 3 < 30
    assert ae.reconstruction_error(X) == pytest.approx(val[best], rel=1e-5)


def test_same_seed_same_model_and_different_seed_different_model(images):
    X = images[0][:48]
    a = VAE(epochs=2, random_state=3, **TINY).fit(X)
    b = VAE(epochs=2, random_state=3, **TINY).fit(X)
    c = VAE(epochs=2, random_state=4, **TINY).fit(X)
    assert states_equal(a.encoder_, b.encoder_) and states_equal(a.decoder_, b.decoder_)
    assert np.array_equal(a.transform(X), b.transform(X))
    assert np.array_equal(a.reconstruct(X), b.reconstruct(X))
    assert not states_equal(a.encoder_, c.encoder_)
    assert not np.array_equal(a.transform(X), c.transform(X))


def test_output_activation_follows_the_data_range():
    rng = np.random.default_rng(0)
    unit = rng.random((32, 16)).astype(np.float32)
    ae = AutoEncoder(epochs=1, **TINY).fit(unit)
    assert ae.output_activation_ == "sigmoid"
    out = ae.reconstruct(unit)
    assert out.min() >= 0 and out.max() <= 1
    standardized = rng.standard_normal((32, 16)).astype(np.float32) * 3
    ae = AutoEncoder(epochs=1, **TINY).fit(standardized)
    assert ae.output_activation_ == "linear"
    assert ae.reconstruct(standardized).min() < 0


def test_device_is_honoured():
    X = np.random.default_rng(0).random((16, 8)).astype(np.float32)
    ae = AutoEncoder(epochs=1, **TINY).fit(X)
    assert all(p.device.type == "cpu" for p in ae.encoder_.parameters())
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            AutoEncoder(epochs=1, **{**TINY, "device": "cuda"}).fit(X)


# -- reconstruction, denoising, sampling --------------------------------------------------------------------
def test_add_gaussian_noise_does_not_clip_unless_asked(images):
    X = images[0]
    noisy = add_gaussian_noise(X, 0.5, random_state=0)
    assert noisy.dtype == np.float32 and noisy.shape == X.shape
    assert noisy.min() < 0 and noisy.max() > 1
    assert float((noisy - X).std()) == pytest.approx(0.5, rel=0.05)
    assert np.array_equal(noisy, add_gaussian_noise(X, 0.5, random_state=0))
    clipped = add_gaussian_noise(X, 0.5, random_state=0, clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert np.array_equal(clipped, np.clip(noisy, 0, 1))
    with pytest.raises(ValueError, match="std"):
        add_gaussian_noise(X, -1.0)


def test_denoise_and_reconstruction_error(fitted_ae, images):
    X = images[0]
    noisy = add_gaussian_noise(X, 0.2, random_state=1)
    denoised = fitted_ae.denoise(noisy)
    assert np.array_equal(denoised, fitted_ae.reconstruct(noisy))
    expected = float(((denoised.astype(np.float64) - X) ** 2).mean())
    assert fitted_ae.reconstruction_error(noisy, target=X) == pytest.approx(expected, rel=1e-6)
    assert fitted_ae.reconstruction_error(X) == pytest.approx(
        float(((fitted_ae.reconstruct(X).astype(np.float64) - X) ** 2).mean()), rel=1e-6)
    # the autoencoder removes much of the noise it was not trained on
    assert fitted_ae.reconstruction_error(noisy, target=X) < float(((noisy - X) ** 2).mean())
    with pytest.raises(ValueError, match="target has shape"):
        fitted_ae.reconstruction_error(X, target=X[:5])


def test_inverse_transform_decodes_the_latent(fitted_ae, images):
    X = images[0]
    assert np.allclose(fitted_ae.inverse_transform(fitted_ae.transform(X)), fitted_ae.reconstruct(X), atol=1e-6)
    with pytest.raises(ValueError, match="latent size"):
        fitted_ae.inverse_transform(np.zeros((2, 5)))


def test_vae_sample(fitted_vae):
    samples = fitted_vae.sample(7, random_state=0)
    assert samples.shape == (7, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert np.array_equal(samples, fitted_vae.sample(7, random_state=0))
    assert not np.array_equal(samples, fitted_vae.sample(7, random_state=1))


def test_an_autoencoder_is_not_a_clusterer(fitted_ae):
    for name in ("predict", "predict_proba", "fit_predict"):
        assert not hasattr(fitted_ae, name)
        with pytest.raises(AttributeError, match="AEClustering"):
            getattr(fitted_ae, name)
    assert not hasattr(fitted_ae, "labels_")


# -- persistence -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["fitted_ae", "fitted_vae"])
def test_save_load_round_trip(fixture, request, images, tmp_path):
    est = request.getfixturevalue(fixture)
    X = images[0]
    est.save(tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    loaded = mixclust.load(tmp_path / "model")
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    assert loaded.output_activation_ == est.output_activation_ and loaded.history_ == est.history_
    assert np.array_equal(loaded.transform(X), est.transform(X))
    assert np.array_equal(loaded.reconstruct(X), est.reconstruct(X))


def test_save_load_keeps_a_linear_output_and_conv_networks(tmp_path):
    X = 3 * np.random.default_rng(0).standard_normal((16, 2, 6, 6)).astype(np.float32)
    ae = AutoEncoder(epochs=1, n_blocks=2, arch="conv", **TINY).fit(X)
    ae.save(tmp_path / "m.bin")
    loaded = mixclust.load(tmp_path / "m.bin")
    assert loaded.output_activation_ == "linear" and loaded.arch_ == "conv"
    assert np.array_equal(loaded.reconstruct(X), ae.reconstruct(X))


# -- clustering in the latent space --------------------------------------------------------------------------
@pytest.mark.parametrize("clusterer", ["kmeans", "gmm"])
def test_ae_clustering_finds_three_prototypes(clusterer, images, tmp_path):
    X, labels = images
    model = AEClustering(3, clusterer=clusterer, arch="mlp", epochs=40, lr=3e-3, **TINY).fit(X)
    assert adjusted_rand_score(labels, model.labels_) > 0.9
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(model.predict(X), model.labels_)
    assert model.cluster_centers_.shape == (3, 3) and model.transform(X).shape == (len(X), 3)
    if clusterer == "kmeans":
        assert set(np.unique(proba)) <= {0.0, 1.0}  # hard assignments, one-hot

    model.save(tmp_path / "model")
    loaded = mixclust.load(tmp_path / "model")
    assert type(loaded) is AEClustering and loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.predict_proba(X), proba)
    assert np.array_equal(loaded.labels_, model.labels_)
    assert np.array_equal(loaded.autoencoder_.reconstruct(X), model.autoencoder_.reconstruct(X))


def test_variational_ae_clustering(images):
    X, labels = images
    model = AEClustering(3, variational=True, clusterer="gmm", arch="mlp", epochs=40, lr=3e-3, **TINY).fit(X)
    assert isinstance(model.autoencoder_, VAE)
    assert adjusted_rand_score(labels, model.labels_) > 0.9


def test_from_autoencoder_does_not_retrain(fitted_vae, images, tmp_path):
    X, labels = images
    before = {k: v.clone() for k, v in fitted_vae.encoder_.state_dict().items()}
    history = list(fitted_vae.history_)
    km = AEClustering.from_autoencoder(fitted_vae, 3, clusterer="kmeans").fit(X)
    gmm = AEClustering.from_autoencoder(fitted_vae, 3, clusterer="gmm", covariance_type="diag").fit(X)
    assert km.autoencoder_ is fitted_vae and gmm.autoencoder_ is fitted_vae
    assert fitted_vae.history_ == history
    assert all(torch.equal(v, before[k]) for k, v in fitted_vae.encoder_.state_dict().items())
    assert km.variational and km.get_params()["hidden"] == fitted_vae.hidden
    assert gmm.gmm_.covariance_type == "diag"
    assert adjusted_rand_score(labels, km.labels_) > 0.9
    gmm.save(tmp_path / "gmm")
    assert np.array_equal(mixclust.load(tmp_path / "gmm").predict_proba(X), gmm.predict_proba(X))
    with pytest.raises(TypeError, match="fitted mixclust.AutoEncoder"):
        AEClustering.from_autoencoder(mixclust.GaussianMixture(), 3)


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    ({"arch": "resnet"}, "unknown arch"),
    ({"loss": "l1"}, "unknown loss"),
    ({"latent_dim": 0}, "latent_dim must be >= 1"),
    ({"epochs": -1}, "epochs must be >= 0"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"hidden": 32}, "hidden must be a tuple"),
    ({"hidden": (32, 0)}, "hidden width must be >= 1"),
    ({"device": "tpu"}, "unknown device"),
    ({"beta": -1.0}, "beta must be"),
])
def test_bad_parameters_are_clear_errors(params, match):
    X = np.random.default_rng(0).random((16, 8)).astype(np.float32)
    with pytest.raises((ValueError, TypeError), match=match):
        VAE(**{**TINY, "epochs": 1, **params}).fit(X)


@pytest.mark.parametrize("params, match", [
    ({"clusterer": "dbscan"}, "unknown clusterer"),
    ({"n_clusters": 0}, "n_clusters must be >= 1"),
    ({"covariance_type": "banded"}, "unknown covariance_type"),
    ({"n_clusters": 100}, "n_clusters"),
    ({"arch": "resnet"}, "unknown arch"),
])
def test_bad_clustering_parameters_are_clear_errors(params, match):
    X = np.random.default_rng(0).random((16, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        AEClustering(**{**TINY, "epochs": 1, **params}).fit(X)


def test_bad_input_is_a_clear_error(fitted_ae):
    rng = np.random.default_rng(0)
    X = rng.random((16, 1, 8, 8)).astype(np.float32)
    bad = X.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        AutoEncoder(epochs=1, **TINY).fit(bad)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        AutoEncoder(epochs=1, **TINY).fit(X[:, 0, 0, 0])
    with pytest.raises(ValueError, match="arch='conv' needs images"):
        AutoEncoder(arch="conv", epochs=1, **TINY).fit(X.reshape(16, -1))
    with pytest.raises(ValueError, match="loss='bce' needs data in"):
        AutoEncoder(loss="bce", epochs=1, **TINY).fit(X * 2 - 1)  # negative: not rescaled
    with pytest.raises(ValueError, match="too small"):
        AutoEncoder(arch="conv", n_blocks=4, epochs=1, **TINY).fit(X)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        fitted_ae.transform(rng.random((4, 1, 7, 7)))
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        fitted_ae.reconstruct(rng.random((4, 3, 8, 8)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted_ae.transform(bad)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        AutoEncoder(epochs=1, **TINY).fit(X, validation_data=(X[:, :, :4], None))
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        AutoEncoder().transform(X)


def test_bce_trains_on_unit_data(images):
    ae = AutoEncoder(loss="bce", arch="mlp", epochs=3, **TINY).fit(images[0])
    assert np.isfinite(ae.history_[-1]["loss"])


def test_a_diverging_learning_rate_stops_with_the_epoch_named(tmp_path):
    X = 3 * np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+"):
        AutoEncoder(arch="mlp", epochs=20, lr=1e6, checkpoint_dir=str(tmp_path), **TINY).fit(X)
    # the last good checkpoint is kept, without temporary files
    assert [p.name for p in tmp_path.iterdir()] in ([], ["ae.pt"])


# -- convolutional decoders: "upsample" (default) and "transposed" ---------------------------------------------
def _layer_types(module: torch.nn.Module) -> set[type]:
    return {type(m) for m in module.modules()}


def _valid_n_blocks(shape):
    for n_blocks in (1, 2, 3):
        try:
            mnn.conv_feature_sizes(shape[1], shape[2], n_blocks)
        except ValueError:
            continue
        yield n_blocks


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (1, 16, 16), (3, 32, 32), (1, 32, 24), (1, 30, 30),
                                   (2, 13, 6)])
def test_the_transposed_decoder_maps_the_latent_to_exactly_the_input_shape(shape):
    torch.manual_seed(0)
    for n_blocks in _valid_n_blocks(shape):
        encoder, decoder = mnn.build_autoencoder("conv", shape, 3, filters=2, n_blocks=n_blocks, decoder="transposed")
        assert decoder.kind == "transposed"
        types = _layer_types(decoder)
        assert torch.nn.ConvTranspose2d in types and torch.nn.Upsample not in types
        assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in decoder.modules()) == n_blocks
        x = torch.rand(5, *shape)
        assert decoder(encoder(x)).shape == (5, *shape), (shape, n_blocks)
        # every transposed block lands on the encoder's recorded size, in reverse
        h = decoder.project(torch.zeros(2, 3)).view(2, 2, *decoder.sizes[-1])
        reached = []
        for layer in decoder.blocks:
            h = layer(h)
            if isinstance(layer, torch.nn.ConvTranspose2d):
                reached.append(tuple(h.shape[2:]))
        assert reached == [tuple(s) for s in reversed(decoder.sizes[:-1])]


def test_transposed_padding_follows_the_output_size_formula():
    # 28 -> 14 -> 7 -> 3 pooled; back 3 -> 7 (odd target: no padding), 7 -> 14 and 14 -> 28 (padding 1, output 1)
    assert mnn.transposed_padding(3, 7) == (0, 0)
    assert mnn.transposed_padding(7, 14) == (1, 1)
    assert mnn.transposed_padding(14, 28) == (1, 1)
    for n in range(1, 20):
        for target in (2 * n, 2 * n + 1):
            padding, output_padding = mnn.transposed_padding(n, target)
            assert 0 <= output_padding < 2 and mnn.transposed_output_size(n, padding, output_padding) == target
            layer = torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=padding, output_padding=output_padding)
            assert layer(torch.zeros(1, 1, n, 1)).shape[2] == target
    with pytest.raises(ValueError, match="cannot map size 3 to 9"):
        mnn.transposed_padding(3, 9)


def test_the_default_decoder_is_the_upsampling_one_unchanged():
    shape = (1, 28, 28)
    default = mnn.build_autoencoder("conv", shape, 10)[1]
    explicit = mnn.build_autoencoder("conv", shape, 10, decoder="upsample")[1]
    transposed = mnn.build_autoencoder("conv", shape, 10, decoder="transposed")[1]
    # the state_dict of the upsampling decoder as it was before the transposed one existed
    expected = {"project.0.weight": (72, 10), "project.0.bias": (72,),
                **{f"blocks.{i}.weight": (8, 8, 3, 3) for i in (0, 3, 6)},
                **{f"blocks.{i}.bias": (8,) for i in (0, 3, 6)},
                "blocks.9.weight": (1, 8, 3, 3), "blocks.9.bias": (1,)}
    for decoder in (default, explicit):
        assert {k: tuple(v.shape) for k, v in decoder.state_dict().items()} == expected
        assert decoder.kind == "upsample"
        assert [m.size for m in decoder.modules() if isinstance(m, torch.nn.Upsample)] == [(7, 7), (14, 14), (28, 28)]
        assert torch.nn.ConvTranspose2d not in _layer_types(decoder)
    # same number of parameters: one filters x filters x 3 x 3 kernel per block either way
    assert sum(p.numel() for p in transposed.parameters()) == sum(p.numel() for p in default.parameters())


def test_xavier_init_initialises_transposed_convolutions_and_draws_as_before_for_upsampling():
    decoder = mnn.build_autoencoder("conv", (1, 8, 8), 3, filters=2, n_blocks=2, decoder="transposed")[1]
    for m in decoder.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.constant_(m.weight, 7.0)
            torch.nn.init.constant_(m.bias, 7.0)
    mnn.xavier_init(decoder)
    bound = math.sqrt(6.0 / (2 * 9 + 2 * 9))
    for m in decoder.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            assert 0 < m.weight.abs().max() <= bound and torch.all(m.bias == 0)
    # an upsampling decoder has no ConvTranspose2d: the global generator advances exactly as before
    torch.manual_seed(3)
    upsample = mnn.build_autoencoder("conv", (1, 8, 8), 3, filters=2, n_blocks=2)[1]
    mnn.xavier_init(upsample)
    torch.manual_seed(3)
    reference = mnn.build_autoencoder("conv", (1, 8, 8), 3, filters=2, n_blocks=2)[1]
    for m in reference.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    assert states_equal(upsample, reference)


def test_a_default_conv_fit_equals_one_with_decoder_upsample(images):
    X = images[0][:40]
    params = dict(arch="conv", n_blocks=2, epochs=1, **TINY)
    default = AutoEncoder(**params).fit(X)
    explicit = AutoEncoder(decoder="upsample", **params).fit(X)
    assert np.array_equal(default.reconstruct(X), explicit.reconstruct(X))
    assert states_equal(default.decoder_, explicit.decoder_)


CONV = dict(arch="conv", filters=2, n_blocks=2, latent_dim=3, epochs=1, batch_size=16, device="cpu")
CONV_ESTIMATORS = {
    "ae": lambda **kw: AutoEncoder(**CONV, **kw),
    "vae": lambda **kw: VAE(**CONV, **kw),
    "aekm": lambda **kw: AEClustering(2, clusterer="gmm", n_init=1, **CONV, **kw),
    "vade": lambda **kw: mixclust.VaDE(2, init="kmeans", pretrain_epochs=1, n_init=1, **CONV, **kw),
    "moa": lambda **kw: mixclust.MoA(2, init="kmeans", pretrain_epochs=1, router_epochs=1, n_init=1, **CONV, **kw),
}


def _decoders(model) -> list[torch.nn.Module]:
    if isinstance(model, AEClustering):
        return [model.autoencoder_.decoder_]
    if isinstance(model, AutoEncoder):
        return [model.decoder_]
    if isinstance(model, mixclust.MoA):
        return list(model.network_.experts.decoders)
    return [model.network_.decoder]


@pytest.mark.filterwarnings("ignore::mixclust.DegenerateFitWarning")  # one epoch on 40 images: may collapse
@pytest.mark.parametrize("name", list(CONV_ESTIMATORS))
def test_every_conv_estimator_fits_saves_and_loads_a_transposed_decoder(name, images, tmp_path):
    X = images[0][:40]
    model = CONV_ESTIMATORS[name](decoder="transposed").fit(X)
    assert model.get_params()["decoder"] == "transposed"
    for decoder in _decoders(model):
        types = _layer_types(decoder)
        assert torch.nn.ConvTranspose2d in types and torch.nn.Upsample not in types
    out = (lambda m: m.reconstruct(X)) if isinstance(model, AutoEncoder) else (lambda m: m.predict_proba(X))
    model.save(tmp_path / "model")
    loaded = mixclust.load(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    assert all(torch.nn.ConvTranspose2d in _layer_types(d) for d in _decoders(loaded))
    assert np.array_equal(out(loaded), out(model))
    if hasattr(model, "labels_"):
        assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("name", list(CONV_ESTIMATORS))
def test_an_unknown_decoder_is_a_clear_error(name, images):
    with pytest.raises(ValueError, match=r"unknown decoder 'deconv'; expected one of 'upsample', 'transposed'"):
        CONV_ESTIMATORS[name](decoder="deconv").fit(images[0][:40])


def test_build_autoencoder_refuses_an_unknown_decoder_for_every_arch():
    for arch, shape in (("conv", (1, 8, 8)), ("mlp", (16,))):
        with pytest.raises(ValueError, match="unknown decoder 'nearest'"):
            mnn.build_autoencoder(arch, shape, 3, decoder="nearest")


def test_the_decoder_does_nothing_to_an_mlp(images):
    X = images[0][:40]
    params = dict(arch="mlp", epochs=1, **TINY)
    a = AutoEncoder(**params).fit(X)
    b = AutoEncoder(decoder="transposed", **params).fit(X)
    assert np.array_equal(a.reconstruct(X), b.reconstruct(X))


@pytest.mark.parametrize("name, argument", [("vade", "pretrained"), ("moa", "initialised")])
def test_a_warm_start_needs_the_same_decoder(name, argument, images):
    X = images[0][:40]
    base = CONV_ESTIMATORS[name]()
    base = base.pretrain(X) if name == "vade" else base.initialise(X)
    with pytest.raises(ValueError, match="differs in parameters its first stage depends on: decoder"):
        CONV_ESTIMATORS[name](decoder="transposed").fit(X, **{argument: base})


def test_the_default_decoder_keeps_the_suite_cache_key():
    from mixclust.studies import suite

    model = mixclust.VaDE(10, random_state=0)
    assert "'decoder'" not in suite._params_key(model)  # runs cached before the parameter existed stay valid
    assert "'decoder'" in suite._params_key(model.set_params(decoder="transposed"))


def _sparse_images():
    """scikit-learn's digits in the middle of 16 x 16 black frames: mean pixel 0.076, like MNIST's sparse strokes."""
    from sklearn.datasets import load_digits

    digits = load_digits().data.reshape(-1, 1, 8, 8) / 16.0
    X = np.zeros((len(digits), 1, 16, 16), np.float32)
    X[:, :, 4:12, 4:12] = digits
    return X


def _final_mse_per_pixel(X, seed=0):
    ae = AutoEncoder(latent_dim=8, arch="conv", filters=8, n_blocks=2, loss="mse", epochs=4, batch_size=64,
                     random_state=seed).fit(X)
    return ae.history_[-1]["loss"] / X[0].size, ae


def test_conv_decoder_starts_at_the_mean_pixel_and_leaves_the_black_plateau(monkeypatch):
    """From a zero output bias this conv AE slides into the all-black output (MSE = mean of x^2) and stays; started
    at logit(mean pixel) it learns (reports/aevae, "the black-output plateau")."""
    X = _sparse_images()
    black = float((X ** 2).mean())
    mse, ae = _final_mse_per_pixel(X)
    assert mse < 0.5 * black
    assert ae.inverse_transform(ae.transform(X[:50])).max() > 0.5  # not an all-black output
    monkeypatch.setattr(mnn, "start_output_at_mean", lambda module, X: None)
    plateau, _ = _final_mse_per_pixel(X)
    assert plateau == pytest.approx(black, rel=0.02)  # the failure the start prevents, so this test can fail


def test_output_start_sets_only_sigmoid_conv_decoders():
    X = np.full((4, 1, 8, 8), 0.2, np.float32)
    _, conv = mnn.build_autoencoder("conv", (1, 8, 8), 4, n_blocks=2)
    _, linear = mnn.build_autoencoder("conv", (1, 8, 8), 4, n_blocks=2, output_activation="linear")
    _, mlp = mnn.build_autoencoder("mlp", (1, 8, 8), 4, hidden=(16,))
    for module in (conv, linear, mlp):
        mnn.xavier_init(module)
        mnn.start_output_at_mean(module, X)
    assert torch.allclose(conv.blocks[conv.output_index].bias, torch.tensor(math.log(0.2 / 0.8)))
    assert not linear.blocks[linear.output_index].bias.any()
    assert all(not layer.bias.any() for layer in mlp.modules() if isinstance(layer, torch.nn.Linear))
    mnn.start_output_at_mean(conv, np.zeros((2, 1, 8, 8)))  # an all-zero set: a finite bias, clipped
    assert torch.isfinite(conv.blocks[conv.output_index].bias).all()
