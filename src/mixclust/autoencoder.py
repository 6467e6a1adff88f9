r"""Autoencoder, variational autoencoder and clustering in their latent space (SPEC §3).

**Autoencoder** (``"ae"``). An encoder :math:`f_\phi` and a decoder :math:`g_\theta`
minimise the reconstruction loss, summed over the D pixels of a sample and averaged
over the batch (SPEC §6):

.. math::

    \mathcal L_{\text{AE}} = \frac1B \sum_{n=1}^B \ell\bigl(x_n, g_\theta(f_\phi(x_n))\bigr), \qquad
    \ell_{\text{mse}}(x, \hat x) = \sum_{j=1}^D (x_j - \hat x_j)^2, \quad
    \ell_{\text{bce}}(x, \hat x) = -\sum_{j=1}^D \bigl[x_j \log \hat x_j + (1 - x_j)\log(1 - \hat x_j)\bigr].

**Variational autoencoder** (``"vae"``, Kingma & Welling 2014). The encoder gives a
Gaussian :math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))`
(it outputs :math:`\mu` and :math:`\log\sigma^2`), the prior is :math:`\mathcal N(0, I)`, and
the loss is the negative ELBO with a weight :math:`\beta` on the KL term (:math:`\beta = 1`:
the plain VAE):

.. math::

    \mathcal L_{\text{VAE}} = \frac1B \sum_n \Bigl[\ell\bigl(x_n, g_\theta(z_n)\bigr)
        + \beta\, \mathrm{KL}\bigl(q_\phi(z \mid x_n) \,\|\, \mathcal N(0, I)\bigr)\Bigr],
    \qquad z_n = \mu_n + \sigma_n \odot \varepsilon_n, \; \varepsilon_n \sim \mathcal N(0, I)

(the reparameterisation trick: the sample is a differentiable function of
:math:`\mu, \sigma`), with the KL in closed form, summed over the d latent dimensions:

.. math::

    \mathrm{KL}\bigl(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, I)\bigr)
        = \tfrac12 \sum_{i=1}^d \bigl(\sigma_i^2 + \mu_i^2 - 1 - \log \sigma_i^2\bigr).

The latent representation (``transform``) of both is the encoder mean. Reports give the
reconstruction error as the **MSE per pixel**, :math:`\frac{1}{nD}\sum_{n,j}(x_{nj} - \hat x_{nj})^2`
(``reconstruction_error``), as the sources do.

**Latent clustering** (``"aekm"``, the AE+K-means / AE+GMM baselines of the deep clustering
papers): :class:`AEClustering` fits an autoencoder (or reuses a fitted one), then K-means or a
Gaussian mixture on the latent means :math:`z_n = \mu_\phi(x_n)`.

Every model trains through :class:`mixclust.training.Trainer` (one loop for all); this module
only supplies the networks and the per-batch losses.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from . import nn as mnn
from ._base import MixclustEstimator, check_float, check_int, check_option
from ._deep import (
    INFERENCE_BATCH,
    DeepEstimator,
    as_float_array,
    keeps_global_rng,
    manifold_partition,
    neighbour_responsibilities,
    weighted_gaussians,
)
from ._registry import MODELS, register
from .gmm import COVARIANCE_TYPES, GaussianMixture

LOSSES = ("mse", "bce")
CLUSTERERS = ("manifold", "gmm", "kmeans")


# ------------------------------------------------------------------------------------------------
# The maths, one function per term
# ------------------------------------------------------------------------------------------------
def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    r"""Reconstruction loss summed over the features of each sample, averaged over the batch.

    ``kind="mse"``: :math:`\frac1B\sum_n \sum_j (x_{nj} - \hat x_{nj})^2`;
    ``kind="bce"``: :math:`-\frac1B\sum_n \sum_j [x_{nj}\log\hat x_{nj} + (1-x_{nj})\log(1-\hat x_{nj})]`,
    where ``x_hat`` are probabilities (a sigmoid output) and ``x`` lies in [0, 1]; the
    logarithms are clamped at -100 (torch's ``binary_cross_entropy``), so a saturated pixel
    costs at most 100 nats.
    """
    if kind == "mse":
        per_feature = (x_hat - x) ** 2
    elif kind == "bce":
        per_feature = F.binary_cross_entropy(x_hat, x, reduction="none")
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; expected 'mse' or 'bce'")
    return per_feature.reshape(per_feature.shape[0], -1).sum(dim=1).mean()


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    r"""KL divergence of :math:`\mathcal N(\mu, \operatorname{diag} e^{\text{lv}})` from the prior N(0, I).

    .. math:: \frac1B \sum_n \tfrac12 \sum_i \bigl(e^{\text{lv}_{ni}} + \mu_{ni}^2 - 1 - \text{lv}_{ni}\bigr)

    summed over the latent dimensions of a sample and averaged over the batch; zero
    exactly when :math:`\mu = 0, \log\sigma^2 = 0`, positive otherwise. It is computed as
    :math:`\mu^2 + \operatorname{expm1}(\text{lv}) - \text{lv}`, which keeps its precision (and sign)
    for :math:`\text{lv}` near 0, where :math:`e^{\text{lv}} - 1 - \text{lv}` cancels.
    """
    return 0.5 * (mu**2 + torch.expm1(log_var) - log_var).sum(dim=1).mean()


def reparameterize(mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None):
    r""":math:`z = \mu + e^{\log\sigma^2 / 2} \odot \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`.

    The noise comes from ``generator`` or, by default, the global torch RNG (whose state
    the trainer checkpoints, so a resumed run draws the same noise).
    """
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * log_var) * eps


def add_gaussian_noise(X, std: float, random_state=None, clip: bool = False) -> np.ndarray:
    r"""``X + N(0, std^2)`` noise (float32), for the denoising evaluation (SPEC §3).

    By default the result is **not clipped**: the noisy images leave [0, 1], which is the
    plain additive-Gaussian corruption :math:`\tilde x = x + \varepsilon`. ``clip=True``
    clips to [0, 1] (a valid image again, but the noise is then no longer Gaussian nor zero
    mean near 0 and 1). Report which one was used together with ``std``.

    ``random_state``: None, an int or a ``numpy.random.Generator``.
    """
    X = as_float_array(X)
    std = check_float(std, "std", 0.0)
    rng = np.random.default_rng(random_state)
    noisy = X + rng.normal(0.0, std, size=X.shape).astype(np.float32)
    if clip:
        np.clip(noisy, 0.0, 1.0, out=noisy)
    return noisy


def _validation_images(validation_data):
    """X_val out of ``validation_data``: ``(X_val, y_val)``, ``(X_val,)`` or an array (labels unused)."""
    if validation_data is None:
        return None
    if isinstance(validation_data, (tuple, list)):
        if not 1 <= len(validation_data) <= 2:
            raise ValueError("validation_data must be (X_val, y_val) or (X_val,)")
        return validation_data[0]
    return validation_data


# ------------------------------------------------------------------------------------------------
# Autoencoder
# ------------------------------------------------------------------------------------------------
class _NotOffered:
    """A method the class does not offer: ``hasattr`` is False and access explains what to use.

    An autoencoder is a representation learner, not a clusterer, so the ``predict``,
    ``predict_proba`` and ``fit_predict`` inherited from the estimator base are hidden
    rather than left to fail somewhere inside.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        cls = (owner or type(obj)).__name__
        raise AttributeError(
            f"{cls} has no {self.name}: it learns a representation and assigns no clusters. For clusters "
            f"use mixclust.AEClustering (K-means or a Gaussian mixture on the latent space), e.g. "
            f"AEClustering.from_autoencoder(fitted_{cls.lower()}, n_clusters).fit(X)")


@register("ae")
class AutoEncoder(DeepEstimator):
    r"""Autoencoder (MLP or convolutional) trained on the reconstruction loss.

    Not a clusterer: it has ``fit``, ``transform`` (latent), ``inverse_transform`` (decode),
    ``reconstruct``, ``denoise``, ``reconstruction_error`` and ``save``, but no ``predict``
    (``hasattr(ae, "predict")`` is False; calling it explains to use :class:`AEClustering`).

    Parameters
    ----------
    arch : {"auto", "mlp", "conv"}, default="auto"
        ``auto``: MLP for 2-D input (n, D), convolutional for images (n, C, H, W) (a 3-D
        array (n, H, W) is read as one-channel images).
    latent_dim : int, default=10
    hidden : tuple of int or "auto", default=(500, 500, 2000)
        MLP widths of the encoder (the decoder mirrors them); ignored by ``conv``. ``"auto"`` scales them
        down for inputs of fewer than 784 features (:func:`mixclust.nn.resolve_hidden`).
    filters, n_blocks : int, default=8, 3
        Convolutional network: ``n_blocks`` x [Conv ``filters`` 3x3, ReLU, MaxPool 2] then a
        dense layer to the latent (see :mod:`mixclust.nn`; odd sizes are floored by the pooling
        and the decoder upsamples back to the exact input size).
    decoder : {"upsample", "transposed"}, default="upsample"
        The convolutional decoder's blocks: [Conv 3x3, ReLU, nearest upsampling] (the MoA source's CAE) or
        [ConvTranspose 3x3 stride 2, ReLU] (the AE-vs-VAE source, SPEC §3); see :mod:`mixclust.nn`. No effect
        with the MLP (``arch="mlp"``, or ``"auto"``).
    loss : {"mse", "bce"}, default="mse"
        Summed over pixels per sample, averaged over the batch. ``bce`` needs non-negative data (divided by
        their maximum when it exceeds 1, ``input_scale_``).
    epochs : int or "auto", default="auto"
        ``"auto"``: at least 30 epochs and 2,000 optimiser steps (:func:`mixclust._deep.auto_epochs`; 30 on
        MNIST, 63 on 1,000 samples), so a small data set is not left with a few dozen updates. With the
        former 10 epochs at batch 256, AEClustering on 1,000 MNIST images (40 updates) scored NMI 0.275
        where K-means on the pixels scores 0.499 (reports/suite).
    batch_size : int or "auto", default="auto"
        ``"auto"``: the largest power of two at most n / 64 within [32, 256].
    lr : float, default=1e-3
        Adam's learning rate.
    clip_norm : float or None
        Maximum global gradient norm.
    patience : int or None
        Early stopping after ``patience`` epochs without improvement of the monitored value
        (``val_loss`` with ``validation_data``, else the training ``loss``); the best weights
        are restored.
    checkpoint_dir : str or None
        A checkpoint is written there atomically after every epoch; a killed run restarted
        with the same folder resumes and ends with the same weights as an uninterrupted one.
        A *finished* run's checkpoint is reused as it is, so use a fresh folder for a new run.
        Pass a string: ``save`` stores parameters as plain values (a ``Path`` is refused there).
    random_state : int or None, default=0
        Seeds weight initialisation, shuffling and sampling (deterministic on the CPU).
    device : {"auto", "cpu", "cuda"}, default="auto"
    verbose : int, default=0
        0 silent, 1 a progress bar.

    Attributes
    ----------
    encoder_, decoder_ : torch.nn.Module
        The trained networks (on ``device``, in eval mode).
    history_ : list of dict
        One dict per completed epoch: ``epoch``, ``loss`` (the training loss above, per sample, on the data
        divided by ``input_scale_``), ``val_loss`` (reconstruction MSE per pixel on ``X_val`` in the data's
        units, with ``validation_data``) and ``seconds``.
    output_activation_ : {"sigmoid", "linear"}
        Sigmoid when the training data are non-negative (in [0, 1] after ``input_scale_``), linear otherwise.
    input_scale_ : float
        What every input is divided by: the training data's maximum when they are non-negative with a maximum
        above 1 (pixels 0..255), else 1 (:meth:`mixclust._deep.DeepEstimator._validate_input`).
    input_shape_, n_features_in_, arch_ : shape of one sample, its size, resolved architecture.
    """

    _clusterer = False  # the demo skips it; AEClustering is the clusterer
    _gaussian = False
    _auto_epochs = {"epochs": (30, 2000)}

    def __init__(self, *, arch="auto", latent_dim=10, hidden=mnn.MLP_HIDDEN, filters=8, n_blocks=3,
                 decoder="upsample", loss="mse", epochs="auto", batch_size="auto", lr=1e-3, clip_norm=None,
                 patience=None, checkpoint_dir=None, random_state=0, device="auto", verbose=0):
        self.arch = arch
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.filters = filters
        self.n_blocks = n_blocks
        self.decoder = decoder
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip_norm = clip_norm
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- not a clusterer ------------------------------------------------------------------------------
    predict, predict_proba, fit_predict = _NotOffered(), _NotOffered(), _NotOffered()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = None  # a transformer, not a clusterer
        return tags

    # -- validation ---------------------------------------------------------------------------------
    def _check_parameters(self) -> None:
        self._check_training_parameters()
        check_int(self.latent_dim, "latent_dim", 1)
        mnn.check_hidden(self.hidden)
        check_int(self.filters, "filters", 1)
        check_int(self.n_blocks, "n_blocks", 1)
        check_option(self.decoder, "decoder", mnn.DECODERS)
        check_option(self.loss, "loss", LOSSES)
        if self.random_state is not None:
            check_int(self.random_state, "random_state", 0)

    def _check_range(self, X: np.ndarray) -> bool:
        """Whether X lies in [0, 1]; ``loss="bce"`` requires it."""
        in_unit = bool(X.min() >= 0.0 and X.max() <= 1.0)
        if self.loss == "bce" and not in_unit:
            raise ValueError(f"loss='bce' needs data in [0, 1], got values in "
                             f"[{X.min():.4g}, {X.max():.4g}]; scale the data or use loss='mse'")
        return in_unit

    # -- networks -----------------------------------------------------------------------------------
    def _build_modules(self, attributes: dict) -> dict[str, torch.nn.Module]:
        """Encoder and decoder for the fitted input shape, architecture and output activation."""
        shape = tuple(attributes["input_shape_"])
        encoder, decoder = mnn.build_autoencoder(
            attributes["arch_"], shape, int(self.latent_dim),
            hidden=mnn.resolve_hidden(self.hidden, shape), filters=int(self.filters), n_blocks=int(self.n_blocks),
            gaussian=self._gaussian, output_activation=attributes["output_activation_"], decoder=self.decoder)
        device = self._device()
        return {"encoder_": encoder.to(device), "decoder_": decoder.to(device)}

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent mean of a batch."""
        out = self.encoder_(x)
        return out[0] if self._gaussian else out

    # -- training -----------------------------------------------------------------------------------
    @keeps_global_rng
    def fit(self, X, y=None, validation_data=None):
        """Train on X (labels ``y`` are ignored; ``validation_data=(X_val, y_val)`` is monitored).

        ``X_val`` gives ``val_loss`` (reconstruction MSE per pixel) in ``history_`` and,
        with ``patience``, early stopping on it; ``y_val`` is not used by an autoencoder.
        """
        self._check_parameters()
        X = self._validate_input(X, reset=True)
        self._resolve_budget(len(X))
        X_val = _validation_images(validation_data)
        if X_val is not None:
            X_val = self._validate_input(X_val, reset=False)
        self.output_activation_ = "sigmoid" if self._check_range(X) else "linear"
        self._seed()
        modules = self._build_modules(vars(self))
        for module in modules.values():
            mnn.init_network(module, X)
        self.encoder_, self.decoder_ = modules["encoder_"], modules["decoder_"]
        network = torch.nn.ModuleDict({"encoder": self.encoder_, "decoder": self.decoder_})
        validate = None if X_val is None else (lambda: {"val_loss": self._mse_per_pixel(X_val)})
        trainer = self._trainer(network, name=self._registry_name, patience=self.patience)
        self.history_ = trainer.fit(self._to_device(X), self._step, validate=validate,
                                    monitor="loss" if X_val is None else "val_loss", mode="min")
        return self

    def _step(self, batch) -> dict:
        """Per-batch loss: the reconstruction loss of the batch."""
        (x,) = batch
        return {"loss": reconstruction_loss(x, self.decoder_(self.encoder_(x)), self.loss)}

    def _mse_per_pixel(self, X: np.ndarray, target: np.ndarray | None = None) -> float:
        """Mean over samples and pixels of (reconstruct(X) - target)^2, accumulated in float64, in the data's
        units (X and target as :meth:`_validate_input` returns them, divided by ``input_scale_``)."""
        target = X if target is None else target
        total = 0.0
        for start, x_hat in zip(range(0, len(X), INFERENCE_BATCH), self._batched(self._reconstruct, X)):
            t = torch.as_tensor(target[start:start + INFERENCE_BATCH], device=x_hat.device)
            total += float(((x_hat - t) ** 2).sum(dtype=torch.float64))
        return float(self._to_data_units(np.float64(total / X.size), power=2))

    # -- representation and reconstruction ------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder_(self._encode(x))

    def _inference_input(self, X) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        X = self._validate_input(X, reset=False)
        self.encoder_.eval()
        self.decoder_.eval()
        return X

    def transform(self, X) -> np.ndarray:
        """Latent representation: the encoder output (the mean of q(z|x) for the VAE), (n, latent_dim)."""
        X = self._inference_input(X)
        return self._cat(self._batched(self._encode, X))

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode latent vectors Z (n, latent_dim) to samples of the input shape, ``(n, *input_shape_)``."""
        check_is_fitted(self, "encoder_")
        Z = as_float_array(Z, "Z")
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have shape (n, {self.latent_dim}) (the latent size), got {Z.shape}")
        self.decoder_.eval()
        return self._to_data_units(self._cat(self._batched(self.decoder_, Z)))

    def reconstruct(self, X) -> np.ndarray:
        """decoder(encoder mean(X)), in X's (fitted) shape."""
        X = self._inference_input(X)
        return self._to_data_units(self._cat(self._batched(self._reconstruct, X)))

    def denoise(self, X_noisy) -> np.ndarray:
        """Reconstruction of a corrupted input (see :func:`add_gaussian_noise`); compare with the clean X."""
        return self.reconstruct(X_noisy)

    def reconstruction_error(self, X, target=None) -> float:
        r"""MSE per pixel :math:`\frac{1}{nD}\sum_{n,j} (\hat x_{nj} - t_{nj})^2` of ``reconstruct(X)``.

        ``target`` defaults to X; the denoising error is ``reconstruction_error(X_noisy, target=X)``.
        """
        X = self._inference_input(X)
        if target is not None:
            target = self._validate_input(target, reset=False)
            if target.shape != X.shape:
                raise ValueError(f"target has shape {target.shape}, X has shape {X.shape}")
        with torch.no_grad():
            return self._mse_per_pixel(X, target)


# ------------------------------------------------------------------------------------------------
# Variational autoencoder
# ------------------------------------------------------------------------------------------------
@register("vae")
class VAE(AutoEncoder):
    r"""Variational autoencoder: Gaussian encoder, reparameterisation, analytic KL, weight ``beta``.

    Parameters are those of :class:`AutoEncoder`, plus

    beta : float, default=1.0
        Weight of the KL term (1: the VAE's negative ELBO; > 1: a beta-VAE).

    ``history_`` records, per epoch, ``loss`` = ``recon`` + ``beta`` * ``kl`` (each the batch
    mean of the per-sample sum), ``val_loss`` (reconstruction MSE per pixel of the decoded
    mean, with ``validation_data``) and ``seconds``. ``transform`` returns the mean
    :math:`\mu(x)`; ``reconstruct`` decodes it (no sampling). :meth:`sample` draws from the prior.
    """

    _gaussian = True

    def __init__(self, *, arch="auto", latent_dim=10, hidden=mnn.MLP_HIDDEN, filters=8, n_blocks=3,
                 decoder="upsample", loss="mse", beta=1.0, epochs="auto", batch_size="auto", lr=1e-3, clip_norm=None,
                 patience=None, checkpoint_dir=None, random_state=0, device="auto", verbose=0):
        super().__init__(arch=arch, latent_dim=latent_dim, hidden=hidden, filters=filters, n_blocks=n_blocks,
                         decoder=decoder, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                         clip_norm=clip_norm, patience=patience, checkpoint_dir=checkpoint_dir,
                         random_state=random_state, device=device, verbose=verbose)
        self.beta = beta

    def _check_parameters(self) -> None:
        super()._check_parameters()
        check_float(self.beta, "beta", 0.0)

    def _step(self, batch) -> dict:
        """Negative ELBO of a batch with one reparameterised sample per input."""
        (x,) = batch
        mu, log_var = self.encoder_(x)
        recon = reconstruction_loss(x, self.decoder_(reparameterize(mu, log_var)), self.loss)
        kl = gaussian_kl(mu, log_var)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Decode ``n_samples`` draws z ~ N(0, I): new samples of shape ``(n_samples, *input_shape_)``."""
        check_is_fitted(self, "encoder_")
        n_samples = check_int(n_samples, "n_samples", 1)
        Z = np.random.default_rng(random_state).standard_normal((n_samples, self.latent_dim))
        return self.inverse_transform(Z.astype(np.float32))


# ------------------------------------------------------------------------------------------------
# Clustering in the latent space
# ------------------------------------------------------------------------------------------------
_AE_PARAMS = ("arch", "latent_dim", "hidden", "filters", "n_blocks", "decoder", "loss", "epochs", "batch_size",
              "lr", "clip_norm", "patience", "checkpoint_dir", "device", "verbose")


@register("aekm")
class AEClustering(DeepEstimator):
    r"""K-means or a Gaussian mixture on the latent space of an autoencoder (AE+KM, AE+GMM baselines).

    ``fit(X)`` trains an :class:`AutoEncoder` (``variational=True``: a :class:`VAE`) with the
    autoencoder parameters below, encodes X to the latent means :math:`z_n = \mu(x_n)`, and
    clusters them with

    * ``clusterer="kmeans"``: scikit-learn's KMeans (``n_init=10``); a sample belongs to its
      nearest centroid, :math:`\arg\min_k \lVert z - c_k\rVert^2`;
    * ``clusterer="gmm"``: :class:`mixclust.GaussianMixture` (``covariance_type``, ``reg_covar``);
      soft assignments are the responsibilities :math:`p(k \mid z)`;
    * ``clusterer="manifold"`` (the default): the codes' UMAP embedding is clustered by a full GMM
      (:func:`mixclust._deep.manifold_partition`, the N2D recipe of McConville et al. 2020). A code, new or
      fitted, gets the mean partition responsibilities of its 15 nearest training codes
      (:func:`mixclust._deep.neighbour_responsibilities`), so new data are assigned without UMAP and the fitted
      points keep their partition; ``gmm_`` holds the Gaussians of the partition on the codes (one M-step)
      for ``cluster_centers_``. Fewer than 100 samples fall back to ``"gmm"``.

    :meth:`from_autoencoder` reuses an already fitted autoencoder (no retraining), so the
    AE+KM and AE+GMM baselines of a study can share one network.

    Parameters
    ----------
    n_clusters : int, default=10
    clusterer : {"manifold", "gmm", "kmeans"}, default="manifold"
        Why "manifold": the codes' clusters are curved, which a neighbourhood graph follows. On VaDE's
        pretrained codes (same MLP; benchmarks/probes/probe_manifold.py, reports/suite/evidence): 5,000 MNIST
        images NMI 0.791 against 0.691 for the GMM on the codes (0.530 K-means); 2,000 16 x 16 digits 0.705
        against 0.632.
        The full-covariance GMM (``"gmm"``) follows the elongated clusters that K-means cuts across:
        MNIST (70k, MLP AE, 12 epochs) NMI 0.782 against 0.670 with K-means.
    variational : bool, default=False
        Cluster a VAE's latent means instead of an autoencoder's.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    reg_covar : float, default=1e-6
        GMM only.
    arch, latent_dim, hidden, filters, n_blocks, loss, beta, epochs, batch_size, lr, clip_norm, patience, checkpoint_dir
        The autoencoder's (see :class:`AutoEncoder`, :class:`VAE`; ``beta`` only with ``variational=True``).
        ``validation_data`` given to ``fit`` goes to the autoencoder (``val_loss``, early stopping on it with
        ``patience``).
    decoder : {"upsample", "transposed"}, default="upsample"
        The autoencoder's convolutional decoder (see :class:`AutoEncoder`); no effect with the MLP.
    n_init : int or "auto", default="auto"
        Runs (autoencoder and clusterer) from different seeds; the kept run has the lowest reconstruction
        error among those :func:`mixclust.metrics.degeneracy` does not flag. ``"auto"``: one run, and up to 3
        while the result is degenerate.
    random_state, device, verbose : as everywhere; ``random_state`` seeds the network and the clusterer.

    Attributes
    ----------
    autoencoder_ : AutoEncoder or VAE
        The fitted autoencoder (``autoencoder_.reconstruct`` etc. work on it).
    gmm_ : GaussianMixture
        The fitted mixture (``clusterer="gmm"``), or the Gaussians of the manifold partition (``"manifold"``).
    manifold_codes_, manifold_resp_ : ndarray (n, latent_dim), (n, n_clusters) or None
        ``clusterer="manifold"``: the training codes and their partition responsibilities, which
        ``predict_proba`` averages over a code's nearest training codes; None when it fell back to ``"gmm"``.
    cluster_centers_ : ndarray (n_clusters, latent_dim)
        K-means centroids, or the GMM means.
    inertia_ : float
        K-means only: sum of squared distances of the latents to their centroid.
    labels_ : ndarray (n,)
    history_ : list of dict
        The autoencoder's training history.

    Notes
    -----
    K-means gives hard assignments: ``predict_proba`` returns their one-hot encoding (entropy 0,
    confidence 1), not a probability estimate. Use ``clusterer="gmm"`` for soft assignments.
    """

    _degenerate_hint = "try clusterer='gmm', a longer autoencoder training (epochs) or n_init=5"

    def __init__(self, n_clusters=10, *, clusterer="manifold", variational=False, covariance_type="full",
                 reg_covar=1e-6, arch="auto", latent_dim=10, hidden=mnn.MLP_HIDDEN, filters=8, n_blocks=3,
                 decoder="upsample", loss="mse", beta=1.0, epochs="auto", batch_size="auto", lr=1e-3, clip_norm=None,
                 patience=None, n_init="auto", checkpoint_dir=None, random_state=0, device="auto", verbose=0):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.clusterer = clusterer
        self.variational = variational
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.arch = arch
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.filters = filters
        self.n_blocks = n_blocks
        self.decoder = decoder
        self.loss = loss
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip_norm = clip_norm
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    @classmethod
    def from_autoencoder(cls, autoencoder, n_clusters=10, clusterer="gmm", *, covariance_type="full",
                         reg_covar=1e-6, random_state=None) -> AEClustering:
        """An AEClustering whose ``fit(X)`` clusters the latent space of an already fitted ``autoencoder``.

        The autoencoder is not retrained (nor copied: ``autoencoder_`` is that very object),
        so several clusterers can share it. Its parameters are copied into this estimator's
        so ``get_params`` describes the model (changing them afterwards has no effect on this
        instance, whose ``fit`` never trains); ``random_state=None`` takes the autoencoder's and
        seeds the clusterer. ``sklearn.base.clone`` of the result gives a plain AEClustering that
        trains its own autoencoder.
        """
        if not isinstance(autoencoder, AutoEncoder):
            raise TypeError(f"from_autoencoder needs a fitted mixclust.AutoEncoder or VAE, got "
                            f"{type(autoencoder).__name__}")
        check_is_fitted(autoencoder, "encoder_")
        params = autoencoder.get_params(deep=False)
        estimator = cls(n_clusters, clusterer=clusterer, variational=isinstance(autoencoder, VAE),
                        covariance_type=covariance_type, reg_covar=reg_covar, beta=params.get("beta", 1.0),
                        random_state=params["random_state"] if random_state is None else random_state,
                        **{k: params[k] for k in _AE_PARAMS})
        estimator._pretrained = autoencoder
        return estimator

    def _check_parameters(self) -> None:
        check_int(self.n_clusters, "n_clusters", 1)
        self._check_n_init()
        check_option(self.clusterer, "clusterer", CLUSTERERS)
        if not isinstance(self.variational, (bool, np.bool_)):
            raise TypeError(f"variational must be True or False, got {self.variational!r}")
        check_option(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        if self.clusterer == "manifold" and self.covariance_type != "full":
            raise ValueError(f"clusterer='manifold' needs covariance_type='full', got {self.covariance_type!r}")
        check_float(self.reg_covar, "reg_covar", 0.0)
        if self.random_state is not None and not isinstance(self.random_state, numbers.Integral):
            raise TypeError(f"random_state must be an int or None, got {self.random_state!r}")

    def _make_autoencoder(self) -> AutoEncoder:
        params = {k: getattr(self, k) for k in _AE_PARAMS}
        if self.variational:
            return VAE(beta=self.beta, random_state=self._seed_value(), **params)
        return AutoEncoder(random_state=self._seed_value(), **params)

    @keeps_global_rng
    def fit(self, X, y=None, validation_data=None):
        """Train the autoencoder (unless given by :meth:`from_autoencoder`), then cluster its latent means;
        ``n_init`` runs as described in :meth:`DeepEstimator._fit_with_restarts` (the objective: the
        autoencoder's reconstruction error)."""
        self._check_parameters()
        self._fit_with_restarts(lambda: self._fit_once(X, validation_data), X)
        return self

    def _proba(self, X) -> np.ndarray:
        return self.predict_proba(X)

    def _objective(self, X) -> float:
        return self.autoencoder_.reconstruction_error(X)

    def _fit_once(self, X, validation_data) -> np.ndarray:
        autoencoder = getattr(self, "_pretrained", None)
        if autoencoder is None:
            autoencoder = self._make_autoencoder().fit(X, validation_data=validation_data)
        Z = autoencoder.transform(X)
        if len(Z) < self.n_clusters:
            raise ValueError(f"n_samples={len(Z)} should be >= n_clusters={self.n_clusters}")
        self.autoencoder_ = autoencoder
        for name in ("input_shape_", "n_features_in_", "arch_", "history_", "batch_size_", "epochs_"):
            setattr(self, name, getattr(autoencoder, name))
        self.input_scale_ = getattr(autoencoder, "input_scale_", 1.0)  # autoencoders saved before it existed: 1
        vars(self).pop("feature_names_in_", None)
        if hasattr(autoencoder, "feature_names_in_"):  # fitted on a DataFrame
            self.feature_names_in_ = autoencoder.feature_names_in_
        if self.clusterer == "kmeans":
            kmeans = KMeans(self.n_clusters, n_init=10, random_state=self._seed_value()).fit(Z)
            self.cluster_centers_ = kmeans.cluster_centers_.astype(np.float64)
            self.inertia_ = float(kmeans.inertia_)
            self.labels_ = kmeans.labels_.astype(np.int64)
            return np.eye(self.n_clusters)[self.labels_]  # what predict_proba gives: one-hot of the nearest centroid
        resp = manifold_partition(Z, self.n_clusters, self._seed_value()) if self.clusterer == "manifold" else None
        self.gmm_ = self._latent_mixture(Z, resp)
        self.cluster_centers_ = self.gmm_.means_
        self.manifold_codes_ = None if resp is None else Z.astype(np.float32)
        self.manifold_resp_ = None if resp is None else resp.astype(np.float32)
        # the fitted points through the same map as new data, so labels_ equals predict(X)
        proba = self._responsibilities(Z)
        self.labels_ = proba.argmax(axis=1).astype(np.int64)
        return proba

    def _latent_mixture(self, Z: np.ndarray, resp: np.ndarray | None) -> GaussianMixture:
        """The GMM on the codes: fitted by EM (``resp`` None), or the Gaussians of the partition ``resp`` of
        their UMAP embedding (:func:`mixclust._deep.manifold_partition`, one M-step, no EM after it: EM would
        pull it back to the partition a GMM finds on the codes themselves)."""
        gmm = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                              random_state=self._seed_value(), device=self.device)
        if resp is None:
            return gmm.fit(Z)
        counts, means, covariances = weighted_gaussians(Z, resp, reg=max(self.reg_covar, 1e-6))
        return gmm.set_params(weights_init=counts / counts.sum(), means_init=means,
                              precisions_init=np.linalg.inv(covariances), max_iter=0).fit(Z)

    def transform(self, X) -> np.ndarray:
        """Latent means of the autoencoder, (n, latent_dim)."""
        check_is_fitted(self, "autoencoder_")
        return self.autoencoder_.transform(X)

    def _responsibilities(self, Z: np.ndarray) -> np.ndarray:
        """p(k | z) of codes Z: the manifold partition's neighbour map, or the GMM's responsibilities."""
        if getattr(self, "manifold_resp_", None) is not None:
            return neighbour_responsibilities(self.manifold_codes_, self.manifold_resp_, np.asarray(Z, np.float32))
        return self.gmm_.predict_proba(Z)

    def predict_proba(self, X) -> np.ndarray:
        """Manifold: the mean partition responsibilities of the nearest training codes. GMM: responsibilities
        p(k | z). K-means: one-hot of the nearest centroid (hard assignments)."""
        Z = self.transform(X)
        if self.clusterer != "kmeans":
            return self._responsibilities(Z)
        return np.eye(self.n_clusters)[self._nearest_centroid(Z)]

    def predict(self, X) -> np.ndarray:
        """Cluster of each sample: nearest centroid (K-means) or most responsible cluster (GMM, manifold)."""
        Z = self.transform(X)
        if self.clusterer != "kmeans":
            return self._responsibilities(Z).argmax(axis=1)
        return self._nearest_centroid(Z)

    def _nearest_centroid(self, Z: np.ndarray) -> np.ndarray:
        Z = Z.astype(np.float64)
        distances = ((Z**2).sum(1)[:, None] - 2.0 * Z @ self.cluster_centers_.T
                     + (self.cluster_centers_**2).sum(1)[None, :])
        return distances.argmin(axis=1)

    # -- persistence: the autoencoder's modules and both sub-models' fitted state ------------------------
    def _fitted_state(self) -> dict:
        state = {k: v for k, v in MixclustEstimator._fitted_state(self).items()
                 if k not in ("autoencoder_", "gmm_")}
        ae = self.autoencoder_
        state["autoencoder_"] = {"model": ae._registry_name, "params": ae.get_params(deep=False),
                                 "state": ae._fitted_state()}
        if hasattr(self, "gmm_"):
            state["gmm_"] = {"params": self.gmm_.get_params(deep=False), "state": self.gmm_._fitted_state()}
        return state

    def _fitted_modules(self) -> dict[str, torch.nn.Module]:
        return self.autoencoder_._fitted_modules()

    def _restore_state(self, attributes: dict, modules: dict) -> None:
        attributes = dict(attributes)
        ae_info = attributes.pop("autoencoder_")
        gmm_info = attributes.pop("gmm_", None)
        for key, value in attributes.items():
            setattr(self, key, value)
        ae_class = MODELS.get(ae_info["model"])
        if not (isinstance(ae_class, type) and issubclass(ae_class, AutoEncoder)):
            raise ValueError(f"the stored autoencoder names {ae_info['model']!r}, not an autoencoder")
        autoencoder = ae_class(**ae_info["params"])
        autoencoder._restore_state(ae_info["state"], modules)
        self.autoencoder_ = autoencoder
        if gmm_info is not None:
            gmm = GaussianMixture(**gmm_info["params"])
            gmm._restore_state(gmm_info["state"], {})
            self.gmm_ = gmm


__all__ = ["AEClustering", "AutoEncoder", "VAE", "add_gaussian_noise", "gaussian_kl", "reconstruction_loss",
           "reparameterize"]
