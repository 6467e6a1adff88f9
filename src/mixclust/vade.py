r"""VaDE with entropy-regularised soft assignments (SPEC §2, [VADE-H]).

Model. Encoder :math:`q(z, c \mid x) = q(z \mid x)\, q(c \mid x)` with
:math:`q(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag} \sigma^2_\phi(x))` and
:math:`q(c \mid x) = \operatorname{Cat}(\gamma)`; decoder :math:`p(x \mid z)` Gaussian with unit
variance (``loss="mse"``: squared error summed over pixels) or Bernoulli (``loss="bce"``);
learnable prior :math:`p(z) = \sum_k \pi_k \mathcal N(z \mid \mu_k, \Sigma_k)` with
:math:`\Sigma_k = \operatorname{diag}\sigma_k^2` (``covariance_type="diag"``, the original VaDE) or a full
:math:`\Sigma_k = L_k L_k^\top`, :math:`L_k = \operatorname{diag}\sigma_k + \text{strictly lower } T_k`
(``covariance_type="full"``).

Soft assignments :math:`\gamma` (``assign``):

* ``"head"``: a parallel head on the encoder, :math:`\gamma = \operatorname{softmax}(f_\phi(x) / T)`;
* ``"posterior"``: the prior's posterior as in the original VaDE (Jiang et al. 2017),
  :math:`\gamma_k = p(c = k \mid z) \propto \pi_k \mathcal N(z \mid \mu_k, \sigma_k^2)` at the sampled
  z (at :math:`z = \mu_\phi(x)` for prediction).

Objective, per sample, averaged over the batch:

.. math::

    L = L_\text{recon} + \beta L_\text{KL} + \eta \sum_k \gamma_k \ln \gamma_k

(the last term is :math:`-\eta H(\gamma)`: minimising L raises the entropy), with ``kl``:

* ``"vade"`` (the evidence bound of the factorised posterior):
  :math:`L_\text{KL} = \sum_k \gamma_k \operatorname{KL}(q(z \mid x) \,\|\, \mathcal N(\mu_k, \sigma_k^2))
  + \operatorname{KL}(\gamma \,\|\, \pi)`;
* ``"approx"`` (exactly as [VADE-H] writes it):
  :math:`L_\text{KL} = -\ln \sum_k \pi_k \exp(-\operatorname{KL}(q(z \mid x) \,\|\, \mathcal N(\mu_k, \sigma_k^2)))`.
  Here :math:`\gamma` appears only in the entropy term, so with ``assign="head"`` the head
  receives no signal tying it to the clusters (the problem SPEC §2 names).

The Gaussian KL in closed form, per latent dimension:
:math:`\operatorname{KL}(\mathcal N(m, s^2) \| \mathcal N(\mu, \sigma^2)) =
\tfrac12 [\ln \sigma^2 - \ln s^2 + (s^2 + (m - \mu)^2)/\sigma^2 - 1]`, summed over dimensions;
with a full :math:`\Sigma_k`:
:math:`\tfrac12 [\ln|\Sigma_k| - \sum_j \ln s_j^2 + \operatorname{tr}(\Sigma_k^{-1} \operatorname{diag} s^2)
+ \lVert L_k^{-1}(m - \mu_k) \rVert^2 - d]`.

Training (SPEC §2): (1) pretrain encoder mean and decoder as a plain autoencoder (Xavier
init); (2) K-means on :math:`\mu_\phi(x)`: :math:`\mu_k` = centroids, :math:`\sigma_k^2` = within-
cluster variances + jitter, :math:`\pi_k = (N_k + 1)/(N + K)` (``covariance_type="full"``: EM of a
full-covariance GMM on :math:`\mu_\phi(x)` started from those centroids, :math:`N_k` its soft counts);
(3) the full objective with gradient clipping, early stopping on validation NMI when
``validation_data=(X_val, y_val)`` is given; if it ends degenerate (:func:`mixclust.metrics.degeneracy`) after
a healthy epoch, the latest healthy epoch's network is kept (:class:`mixclust._deep.DegeneracyGuard`);
(4) with ``partition="manifold"`` (the default), the training data's latent means are partitioned by a GMM on
their UMAP embedding, and every sample is assigned by its 15 nearest training codes (the N2D step, see
``partition``); ``partition="prior"`` assigns by :math:`\gamma`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted
from torch import nn

from . import metrics
from . import nn as mnn
from ._base import check_float, check_int, check_option
from ._deep import (
    INFERENCE_BATCH,
    DeepEstimator,
    DegeneracyGuard,
    as_float_array,
    keeps_global_rng,
    latent_gmm,
    manifold_partition,
    neighbour_responsibilities,
    weighted_gaussians,
)
from ._registry import register
from .autoencoder import LOSSES, reconstruction_loss, reparameterize

KL_KINDS = ("vade", "approx")
ASSIGN_KINDS = ("head", "posterior")
COVARIANCE_TYPES = ("diag", "full")
INIT_KINDS = ("kmeans", "manifold")
PRIOR_WEIGHTS = ("laplace", "uniform")
PARTITIONS = ("prior", "manifold")
LOG_2PI = math.log(2 * math.pi)
# Bounds on the prior's log-variances: a component shrinking to a point (or blowing up) would
# otherwise produce infinite densities and NaN gradients.
PRIOR_LOG_VAR_RANGE = (-12.0, 8.0)
_TINY = 1e-10


# ------------------------------------------------------------------------------------------------
# The maths, one function per term
# ------------------------------------------------------------------------------------------------
def scale_tril(prior_log_var, prior_tril) -> torch.Tensor:
    r"""Cholesky factor :math:`L_k = \operatorname{diag}\sigma_k + \text{strictly lower}(T_k)` of
    :math:`\Sigma_k = L_k L_k^\top`: (K, d), (K, d, d) -> (K, d, d). :math:`\ln|\Sigma_k| = \sum_j \ln\sigma_{kj}^2`."""
    return torch.diag_embed((0.5 * prior_log_var).exp()) + torch.tril(prior_tril, diagonal=-1)


def _whitened(x, prior_mu, tril_inverse) -> torch.Tensor:
    r""":math:`L_k^{-1}(x - \mu_k)`: (B, d) -> (B, K, d)."""
    return torch.einsum("kij,bkj->bki", tril_inverse, x[:, None, :] - prior_mu)


def _tril_inverse(prior_log_var, prior_tril) -> torch.Tensor:
    L = scale_tril(prior_log_var, prior_tril)
    eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand_as(L)
    return torch.linalg.solve_triangular(L, eye, upper=False)


def gaussian_kl_to_components(mu, log_var, prior_mu, prior_log_var, prior_tril=None) -> torch.Tensor:
    r""":math:`\operatorname{KL}(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal N(\mu_k, \Sigma_k))`:
    (B, d) x (K, d) -> (B, K). Diagonal :math:`\Sigma_k = \operatorname{diag}\sigma_k^2` when
    ``prior_tril`` is None, else :math:`L_k L_k^\top` (:func:`scale_tril`)."""
    if prior_tril is None:
        mu, log_var = mu[:, None, :], log_var[:, None, :]
        return 0.5 * (prior_log_var - log_var + (log_var.exp() + (mu - prior_mu) ** 2) / prior_log_var.exp()
                      - 1.0).sum(-1)
    inverse = _tril_inverse(prior_log_var, prior_tril)
    mahalanobis = _whitened(mu, prior_mu, inverse).pow(2).sum(-1)
    # tr(Sigma_k^-1 diag s^2) = sum_j s_j^2 sum_i (L_k^-1)_ij^2
    trace = log_var.exp() @ inverse.pow(2).sum(1).T
    return 0.5 * (prior_log_var.sum(-1) - log_var.sum(-1, keepdim=True) + trace + mahalanobis - mu.shape[1])


def log_joint(z, log_pi, prior_mu, prior_log_var, prior_tril=None) -> torch.Tensor:
    r""":math:`\ln \pi_k + \ln \mathcal N(z \mid \mu_k, \Sigma_k)`: (B, d) -> (B, K); :math:`\Sigma_k` as in
    :func:`gaussian_kl_to_components`."""
    if prior_tril is None:
        z = z[:, None, :]
        log_density = -0.5 * (LOG_2PI + prior_log_var + (z - prior_mu) ** 2 / prior_log_var.exp()).sum(-1)
        return log_pi + log_density
    mahalanobis = _whitened(z, prior_mu, _tril_inverse(prior_log_var, prior_tril)).pow(2).sum(-1)
    return log_pi - 0.5 * (z.shape[1] * LOG_2PI + prior_log_var.sum(-1) + mahalanobis)


def vade_kl(gamma, kl_components, log_pi) -> torch.Tensor:
    r""":math:`\sum_k \gamma_k \operatorname{KL}_k + \sum_k \gamma_k (\ln \gamma_k - \ln \pi_k)`, shape (B,)."""
    return (gamma * kl_components).sum(1) + (gamma * (torch.log(gamma + _TINY) - log_pi)).sum(1)


def approx_kl(kl_components, log_pi) -> torch.Tensor:
    r""":math:`-\ln \sum_k \pi_k \exp(-\operatorname{KL}_k)` (the source's approximation), shape (B,)."""
    return -torch.logsumexp(log_pi - kl_components, dim=1)


def negative_entropy(gamma) -> torch.Tensor:
    r""":math:`\sum_k \gamma_k \ln \gamma_k = -H(\gamma)` in nats, shape (B,)."""
    return (gamma * torch.log(gamma + _TINY)).sum(1)


def laplace_weights(counts, alpha: float = 1.0) -> np.ndarray:
    r"""Laplace-smoothed mixture weights :math:`\pi_k = (N_k + \alpha) / (N + K\alpha)`."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + alpha) / (counts.sum() + alpha * len(counts))


def _full_gmm_start(mu: np.ndarray, centroids: np.ndarray, seed: int):
    """EM of a full-covariance GMM on the latent means, started from the K-means centroids.

    Returns (means, diagonal of the Cholesky factors squared, their strictly lower part, soft counts).
    """
    gmm = latent_gmm(mu, centroids, seed)
    L = np.linalg.cholesky(gmm.covariances_)
    diagonal = np.diagonal(L, axis1=1, axis2=2)
    return gmm.means_, diagonal ** 2, np.tril(L, k=-1), gmm.weights_ * len(mu)


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------
class VaDENetwork(nn.Module):
    """Gaussian encoder with an assignment head, decoder and the learnable GMM prior."""

    def __init__(self, encoder: mnn.Encoder, decoder: nn.Module, body_features: int, n_clusters: int,
                 latent_dim: int, full_covariance: bool = False):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.assign = nn.Linear(body_features, n_clusters)
        self.prior_logits = nn.Parameter(torch.zeros(n_clusters))
        self.prior_mu = nn.Parameter(torch.zeros(n_clusters, latent_dim))
        self.prior_log_var = nn.Parameter(torch.zeros(n_clusters, latent_dim))
        # Strictly lower part of the Cholesky factors (only the part below the diagonal is used).
        self.prior_tril = nn.Parameter(torch.zeros(n_clusters, latent_dim, latent_dim)) if full_covariance else None

    def encode(self, x):
        """(mu, log_var, assignment logits) of a batch."""
        h = self.encoder.body(x)
        return self.encoder.mean(h), self.encoder.log_var(h), self.assign(h)

    def prior(self):
        """(log pi, mu_k, log sigma_k^2, T_k or None) with the log-variances kept in a safe range."""
        return (F.log_softmax(self.prior_logits, dim=0), self.prior_mu,
                self.prior_log_var.clamp(*PRIOR_LOG_VAR_RANGE), self.prior_tril)


@register("vade")
class VaDE(DeepEstimator):
    r"""Variational deep embedding with a learnable GMM prior and entropy-regularised soft assignments.

    Parameters
    ----------
    n_clusters : int, default=10
    latent_dim : int, default=10
    beta : float, default=1.0
        Weight of the KL term (the published study uses 20).
    eta : float, default=0.0
        Weight of :math:`-H(\gamma)`; eta > 0 raises the entropy of :math:`\gamma` (:meth:`prior_proba`; with
        ``partition="manifold"`` the returned assignments are the partition's, see ``partition``).
    temperature : float, default=1.0
        T of the assignment head, :math:`\gamma = \operatorname{softmax}(f/T)` (the study uses 0.3).
    kl : {"vade", "approx"}, default="vade"
    covariance_type : {"diag", "full"}, default="full"
        Covariances of the prior's components: full, parametrised by their Cholesky factors and
        initialised by EM of a full GMM from the K-means centroids, or diagonal (the original VaDE).
    assign : {"head", "posterior"}, default="posterior"
    arch : {"auto", "mlp", "conv"}; hidden, filters, n_blocks : network sizes (see mixclust.nn; ``hidden="auto"``
        scales the MLP down for fewer than 784 input features, :func:`mixclust.nn.resolve_hidden`).
    decoder : {"upsample", "transposed"}, default="upsample"
        The convolutional decoder's blocks: nearest upsampling (the MoA source's CAE) or stride-2 transposed
        convolutions (the AE-vs-VAE source, SPEC §3); see :mod:`mixclust.nn`. No effect with the MLP.
    loss : {"mse", "bce"}, reconstruction likelihood.
    decoder_variance : float or "auto", default="auto"
        :math:`\sigma^2` of the Gaussian decoder (``loss="mse"``): the reconstruction term is
        :math:`\sum_j (x_j - \hat x_j)^2 / 2\sigma^2`, on the data divided by ``input_scale_`` (so in [0, 1] for
        non-negative data). ``"auto"``: the value at which the pretrained
        autoencoder's reconstruction is worth ``latent_dim`` nats per sample,
        :math:`\sigma^2 = D\,\text{mse} / (2d)` (``decoder_variance_``), so the balance of reconstruction and KL
        (about d nats) no longer depends on the number of features D or the data's scale. Why: with a fixed
        :math:`\sigma^2 = 1/2` (the plain summed squared error) scikit-learn's digits (64 pixels) reconstruct for
        about one nat against a KL of tens, and every image went to one cluster; with :math:`\sigma^2` = the
        residual variance (the previous "auto", worth D/2 nats: 392 on MNIST) the KL barely moved the codes and
        VaDE ended where the GMM on the pretrained codes starts (MNIST test NMI 0.769). Same pretraining, NMI
        (benchmarks/probes/probe_vade_init.py, reports/suite/evidence): 5,000 MNIST images, K-means start, 10 nats
        0.722 against D/2 nats 0.672; manifold start 10 nats 0.793, 30 nats 0.787; 2,000 16 x 16 digits,
        manifold start, 10 nats 0.714 against D/2 nats 0.700.
    init : {"manifold", "kmeans"}, default="manifold"
        The prior's start on the pretrained codes. ``"manifold"``: a full-covariance GMM on a UMAP embedding
        of the codes (:func:`mixclust._deep.manifold_partition`, the N2D recipe), whose responsibilities give
        the prior's weights, means and covariances (one M-step); ``"kmeans"``: K-means, then EM of a full GMM
        from its centroids (``covariance_type="full"``), as in SPEC §2. Below 100 samples ``"manifold"`` falls
        back to ``"kmeans"``. Why: the codes' clusters are curved, and the neighbourhood graph follows them:
        2,000 16 x 16 digits 0.714 against 0.634, 5,000 MNIST images 0.793 against 0.722 (same pretraining).
    partition : {"manifold", "prior"}, default="manifold"
        What assigns a sample once training ends (a run's training is the same either way; the restarts judge the
        assignments the model returns, so a run can be degenerate under one and not the other). ``"manifold"``: the
        N2D step on VaDE's own latent space: the latent means of the training data are partitioned by a full GMM on
        their UMAP embedding (:func:`mixclust._deep.manifold_partition`), and a sample, fitted or new, gets the mean
        partition responsibilities of its 15 nearest training codes
        (:func:`mixclust._deep.neighbour_responsibilities`, as ``AEClustering``); its clusters are numbered as the
        prior's components they overlap most (Hungarian matching), so ``labels_`` agree with ``means_`` and
        :meth:`prototypes`. Below max(100, 5K) samples the prior's :math:`\gamma` stays. ``"prior"``: :math:`\gamma`
        of the learnt mixture prior (the posterior or the head, ``assign``), VaDE as published; :meth:`prior_proba`
        gives it whatever ``partition``.
        Why "manifold": the same seed and training code, NMI seed 0, "manifold" against "prior"
        (reports/suite/evidence/vade_partition.txt, ``benchmarks/probes/probe_override.py``): all 70,000 MNIST
        images 0.940 against 0.930, ECE 0.012 against 0.021, 1.6 minutes more (reports/frontier); the image sets
        of 5,000 or more images gain (9,298 16 x 16 digits 0.896 against 0.876, 5,000 Fashion-MNIST 0.621
        against 0.608), the smaller ones mostly lose a little (20 pooled classes 0.694 against 0.721, digits
        0.871 against 0.880, 1,000 Fashion-MNIST 0.594 against 0.605; 1,000 MNIST gains, 0.625 against 0.610),
        so over the 10 image sets below 70,000 the mean is unchanged (0.691 against 0.692); the tables and 2-D
        sets gain most (anisotropic blobs 0.974 against 0.650, two moons 1.000 against 0.735, breast cancer
        0.553 against 0.435; iris loses, 0.735 against 0.754).
    prior_weights : {"laplace", "uniform"}, default="laplace"
        The prior's starting weights: Laplace-smoothed start counts, :math:`\pi_k = (N_k + 1)/(N + K)`
        ([VADE-H] §2.2), or :math:`\pi_k = 1/K` ([VADE-H] §2.1; the paper states both).
    degeneracy_guard : bool, default=True
        When stage 3 ends degenerate (:func:`mixclust.metrics.degeneracy`) after a healthy epoch, keep the
        network of the latest healthy epoch (:class:`mixclust._deep.DegeneracyGuard`; ``degeneracy_guard_``
        says what was done). Measured (reports/suite, with the former 20 UMAP neighbours at any n): on the
        20-object rotation set stage 3 emptied clusters from its first epoch on, and the guard kept the
        manifold start (NMI 0.793, K-means 0.662) where the restarts would have spent two more full runs.
        ``False`` leaves training as it ends (to reproduce a source's protocol; the restarts still apply).
    n_init : int or "auto", default="auto"
        Runs from different seeds; the kept run has the lowest objective (the negative ELBO at
        :math:`z = \mu(x)`, with the decoder's normaliser) among the runs
        :func:`mixclust.metrics.degeneracy` does not flag. ``"auto"``: one run, and up to 3 while the
        result is degenerate (a :class:`~mixclust.DegenerateFitWarning` if all are).
    pretrain_epochs, epochs : int or "auto", default="auto"
        Autoencoder pretraining (lr ``pretrain_lr``) and full-objective epochs. ``"auto"``: at least 30 and 20
        epochs (the MNIST budget) and at least 2,000 optimiser steps each, so small data sets get enough
        updates: on scikit-learn's digits NMI 0.827 (reports/suite; K-means 0.742) against 0.000 with
        30 + 20 epochs at batch 256.
    batch_size : int or "auto", default="auto"
        ``"auto"``: the largest power of two at most n / 64 within [32, 256] (256 on MNIST).
    lr, clip_norm, patience : the full objective's training.
    checkpoint_dir : folder for checkpoints (resume after an interruption).
    random_state, device, verbose
        As everywhere.

    Notes
    -----
    Defaults of the objective (measured on MNIST, train 60,000 / test 10,000, seed 0; README "VaDE defaults";
    the budgets, the decoder variance and the architecture for images are judged on the benchmark suite,
    reports/suite):
    ``kl="vade", assign="posterior"`` (with the source's other settings the posterior assignment
    reached test NMI 0.58 where the parallel head reached 0.16 and the published objective 0.41 at
    eta 0 and about 0.03 (a uniform head) for every eta > 0); ``beta=1, T=1``; MSE decoder (BCE
    with 15 + 20 epochs: 0.753, no better than MSE); ``pretrain_epochs=30, epochs=20`` at lr 1e-3
    (10 + 20 epochs: NMI 0.750; 30 + 20: 0.793, still rising: the K-means start on the pretrained
    latent decides most of the result, so pretraining is where the time goes). About 8 minutes on
    2 CPU threads for 60,000 MNIST images. ``covariance_type="full"``: the clusters of the
    pretrained latent space are elongated and correlated (a full GMM on it scores test NMI 0.773
    where K-means scores 0.708, benchmarks/probes/probe_vade_prior.py), and with the same pretraining the
    full prior reached test NMI 0.885 / ACC 0.872 where the diagonal one reached 0.801 / 0.764
    (vade-entropy study, section 2; Fashion-MNIST 0.656 vs 0.592).
    Pass the source's settings explicitly to reproduce [VADE-H].
    Use ``fit(X, pretrained=other)`` to sweep stage-2 settings without pretraining again.

    Attributes
    ----------
    network_ : VaDENetwork
    history_ : list of dicts
        Pretraining epochs first (``stage`` key).
    weights_, means_, variances_ : ndarray
        The fitted prior (``variances_`` the squared diagonal of the Cholesky factors).
    covariances_ : ndarray (K, d, d)
        With ``covariance_type="full"``.
    labels_ : ndarray (n,)
    manifold_codes_, manifold_resp_ : ndarray (n, latent_dim), (n, n_clusters) or None
        ``partition="manifold"``: the training data's latent means and their partition responsibilities, which
        :meth:`predict_proba` maps to any sample by its nearest codes; None with ``partition="prior"`` (or
        below max(100, 5K) training samples).
    degeneracy_guard_ : dict or None
        Set when stage 3 ended degenerate after a healthy epoch (:class:`mixclust._deep.DegeneracyGuard`): the
        network of the latest healthy epoch (``restored_epoch``; 0 is the prior's start) was put back, and
        ``reason`` says what the final epoch looked like. None otherwise.
    """

    _warm_start_params = ("n_clusters", "latent_dim", "arch", "hidden", "filters", "n_blocks", "decoder", "loss",
                          "pretrain_epochs", "pretrain_lr", "batch_size", "random_state")
    _warm_start_free_keys = ("prior_tril",)
    #: The partition comes after training, so a checkpoint of a run's training serves either (and checkpoints
    #: written before the parameter existed still resume); a restart's sigma^2, which depends on how many runs
    #: before it were degenerate (and so on the partition), is in its signature (:meth:`_checkpoint_signature`).
    _RESUMABLE_ACROSS = (*DeepEstimator._RESUMABLE_ACROSS, "partition")
    _auto_epochs = {"pretrain_epochs": (30, 2000), "epochs": (20, 2000)}
    _degenerate_hint = ("try more pretraining (pretrain_epochs), a smaller lr, or n_init=5; "
                        "standardise tabular features")

    def __init__(self, n_clusters=10, *, latent_dim=10, beta=1.0, eta=0.0, temperature=1.0, kl="vade",
                 assign="posterior", covariance_type="full", arch="auto", hidden=mnn.MLP_HIDDEN, filters=8,
                 n_blocks=3, decoder="upsample", loss="mse", decoder_variance="auto", init="manifold",
                 prior_weights="laplace", partition="manifold", degeneracy_guard=True, n_init="auto",
                 pretrain_epochs="auto", pretrain_lr=1e-3, epochs="auto", batch_size="auto", lr=1e-3, clip_norm=5.0,
                 patience=None, checkpoint_dir=None, random_state=0, device="auto", verbose=0):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.beta = beta
        self.eta = eta
        self.temperature = temperature
        self.kl = kl
        self.assign = assign
        self.covariance_type = covariance_type
        self.arch = arch
        self.hidden = hidden
        self.filters = filters
        self.n_blocks = n_blocks
        self.decoder = decoder
        self.loss = loss
        self.decoder_variance = decoder_variance
        self.init = init
        self.prior_weights = prior_weights
        self.partition = partition
        self.degeneracy_guard = degeneracy_guard
        self.n_init = n_init
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip_norm = clip_norm
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- validation and networks --------------------------------------------------------------------
    def _checkpoint_signature(self, stage: str) -> dict:
        signature = super()._checkpoint_signature(stage)
        if stage.startswith("train") and getattr(self, "_degenerate_so_far", 0):  # a restart: sigma^2 / 4^k
            signature["decoder_variance_"] = repr(self.decoder_variance_)
        return signature

    def _check_parameters(self, n_samples: int) -> None:
        self._check_training_parameters()
        self._check_n_clusters(n_samples)
        self._check_n_init()
        check_int(self.latent_dim, "latent_dim", 1)
        check_float(self.beta, "beta", 0.0)
        check_float(self.eta, "eta", 0.0)
        check_float(self.temperature, "temperature", 0.0, strict=True)
        check_option(self.kl, "kl", KL_KINDS)
        check_option(self.assign, "assign", ASSIGN_KINDS)
        check_option(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_option(self.decoder, "decoder", mnn.DECODERS)
        check_option(self.loss, "loss", LOSSES)
        check_option(self.init, "init", INIT_KINDS)
        check_option(self.prior_weights, "prior_weights", PRIOR_WEIGHTS)
        check_option(self.partition, "partition", PARTITIONS)
        if not isinstance(self.degeneracy_guard, (bool, np.bool_)):
            raise TypeError(f"degeneracy_guard must be True or False, got {self.degeneracy_guard!r}")
        if self.decoder_variance != "auto":
            check_float(self.decoder_variance, "decoder_variance", 0.0, strict=True)
        mnn.check_hidden(self.hidden)
        check_float(self.pretrain_lr, "pretrain_lr", 0.0, strict=True)

    def _build_modules(self, attributes: dict) -> dict[str, nn.Module]:
        shape = tuple(attributes["input_shape_"])
        encoder, decoder = mnn.build_autoencoder(
            attributes["arch_"], shape, int(self.latent_dim),
            hidden=mnn.resolve_hidden(self.hidden, shape), filters=int(self.filters), n_blocks=int(self.n_blocks),
            gaussian=True, output_activation=attributes["output_activation_"], decoder=self.decoder)
        network = VaDENetwork(encoder, decoder, encoder.mean.in_features, int(self.n_clusters),
                              int(self.latent_dim), full_covariance=self.covariance_type == "full")
        return {"network_": network.to(self._device())}

    # -- training -----------------------------------------------------------------------------------
    @keeps_global_rng
    def fit(self, X, y=None, validation_data=None, pretrained=None):
        """Pretrain, initialise the prior by K-means, then train the full objective.

        ``validation_data=(X_val, y_val)`` adds ``val_nmi`` and ``val_entropy`` to ``history_``
        and, with ``patience``, early-stops on ``val_nmi`` (labels never enter the loss).

        ``pretrained``: a VaDE fitted (or only :meth:`pretrain`-ed) in this session on the same X
        with the same network and pretraining parameters; its autoencoder after stage (1) is reused
        and stage (1) skipped. The result equals a fit from scratch with the same ``random_state``
        (stage 2 re-seeds), so a sweep over eta, beta, T, kl or assign pretrains once.
        """
        X = self._validate_input(X, reset=True)
        self._check_parameters(len(X))
        self._resolve_budget(len(X))
        val = self._validation_pair(validation_data)
        data = self._to_device(X)
        self._fit_with_restarts(lambda: self._fit_once(X, data, val, pretrained), X)
        return self

    def _fit_once(self, X: np.ndarray, data: torch.Tensor, val, pretrained) -> np.ndarray:
        """One run of the three stages from this run's seed."""
        if pretrained is None:
            self._pretrain(X, data)
        else:
            self._pretrain_history = self._adopt_warm_start(pretrained, X, "pretrained")["history"]
        # The pretrained "auto" value (kept in the warm-start record), or the given one, for this run.
        self.decoder_variance_ = self._run_decoder_variance(self.decoder_variance_)
        self._seed()
        self.manifold_codes_ = self.manifold_resp_ = None  # the prior's gamma until training ends
        self._initialise_prior(X)
        trainer = self._trainer(self.network_, name="train", patience=self.patience,
                                optimizer_kwargs={"eps": 1e-8})
        validate = None if val is None else (lambda: self._validation_metrics(*val))
        guard = DegeneracyGuard(self.network_, self._proba, X, self.n_clusters) if self.degeneracy_guard else None
        if guard is not None:
            guard(0)  # the prior's start
        history = [{"stage": "train", **r} for r in trainer.fit(
            data, self._step, validate=validate, monitor="loss" if val is None else "val_nmi",
            mode="min" if val is None else "max", on_epoch_end=guard)]
        self.degeneracy_guard_ = None if guard is None else guard.restore()
        self.history_ = [{"stage": "pretrain", **r} for r in self._pretrain_history] + history
        self._store_prior()
        if self.partition == "manifold":
            self._partition_latent(X)
        proba = self._proba(X)
        self.labels_ = proba.argmax(1)
        return proba

    def _partition_latent(self, X: np.ndarray) -> None:
        """``partition="manifold"``: the UMAP + GMM partition of the training data's latent means, kept with
        the codes for the neighbour map of :meth:`_proba` (None below max(100, 5K) samples: the prior's gamma
        stays). Its columns are put in the order of the prior's components they share most samples with, so a
        cluster's number means the same in ``labels_``, ``means_`` and :meth:`prototypes`."""
        mu = self._latent_means(X)
        resp = manifold_partition(mu, self.n_clusters, self._seed_value())
        if resp is not None:
            overlap = np.eye(self.n_clusters)[self._prior_gamma(X).argmax(1)].T @ resp  # (prior k, part j)
            _, order = linear_sum_assignment(-overlap)
            self.manifold_codes_ = mu.astype(np.float32)
            self.manifold_resp_ = resp[:, order].astype(np.float32)

    @keeps_global_rng
    def pretrain(self, X):
        """Stage (1) only: build the network and pretrain it as a plain autoencoder.

        Returns self, to be passed as ``pretrained=`` to :meth:`fit` of models that differ only
        in stage-2 parameters (beta, eta, temperature, kl, assign, epochs, lr, clip_norm, patience).
        """
        X = self._validate_input(X, reset=True)
        self._check_parameters(len(X))
        self._resolve_budget(len(X))
        self._pretrain(X, self._to_device(X))
        return self

    def _pretrain(self, X: np.ndarray, data: torch.Tensor) -> None:
        in_unit = bool(X.min() >= 0.0 and X.max() <= 1.0)
        if self.loss == "bce" and not in_unit:
            raise ValueError("loss='bce' needs data in [0, 1]; scale the data or use loss='mse'")
        self.output_activation_ = "sigmoid" if in_unit else "linear"
        self._seed()
        self.network_ = self._build_modules(vars(self))["network_"]
        self.manifold_codes_ = self.manifold_resp_ = None  # a partition of an earlier network's codes is void
        mnn.init_network(self.network_, X)
        trainer = self._trainer(self.network_, name="pretrain", epochs=self.pretrain_epochs_,
                                lr=self.pretrain_lr, parameters=self._autoencoder_parameters())
        self._pretrain_history = trainer.fit(data, self._pretrain_step)
        self.decoder_variance_ = self._resolve_decoder_variance(X)
        self._keep_warm_start(X, output_activation_=self.output_activation_, decoder_variance_=self.decoder_variance_,
                              history=self._pretrain_history)

    @torch.no_grad()
    def _resolve_decoder_variance(self, X: np.ndarray) -> float:
        r"""sigma^2 of the Gaussian decoder after pretraining: the given ``decoder_variance``, or for ``"auto"`` the
        value at which the pretrained autoencoder's reconstruction is worth ``latent_dim`` nats per sample,
        :math:`\sigma^2 = D \cdot \text{mse} / (2 d)`, floored at 1e-4 of the data's variance."""
        if self.decoder_variance != "auto":
            return float(self.decoder_variance)
        self.network_.eval()
        total = 0.0
        for start, x_hat in zip(range(0, len(X), INFERENCE_BATCH), self._batched(
                lambda x: self.network_.decoder(self.network_.encode(x)[0]), X)):
            x = torch.as_tensor(X[start:start + INFERENCE_BATCH], device=x_hat.device)
            total += float(((x_hat - x) ** 2).sum(dtype=torch.float64))
        return max(total / len(X) / (2.0 * int(self.latent_dim)), 1e-4 * float(X.var()), 1e-12)

    def _run_decoder_variance(self, pretrained_value: float) -> float:
        r"""sigma^2 for the full objective of this run: the given ``decoder_variance``, or the pretrained
        ``"auto"`` value divided by :math:`4^k` in a restart that follows k degenerate runs (a collapse means the
        KL won, so the restart weighs the reconstruction 4x more: R = 4^k d nats)."""
        if self.decoder_variance != "auto":
            return float(self.decoder_variance)
        return pretrained_value / 4.0 ** getattr(self, "_degenerate_so_far", 0)

    def _autoencoder_parameters(self):
        """Parameters trained in pretraining: encoder body and mean head, decoder."""
        encoder = self.network_.encoder
        return [*encoder.body.parameters(), *encoder.mean.parameters(), *self.network_.decoder.parameters()]

    def _pretrain_step(self, batch) -> dict:
        """Plain autoencoder on the latent mean: reconstruction loss only."""
        (x,) = batch
        mu, _, _ = self.network_.encode(x)
        return {"loss": reconstruction_loss(x, self.network_.decoder(mu), self.loss)}

    @torch.no_grad()
    def _initialise_prior(self, X: np.ndarray) -> None:
        """The prior's start on mu(x) (``init``): the Gaussians of the manifold partition, or K-means
        (centroids, within-cluster variances + jitter; then EM of a full GMM from them with
        ``covariance_type="full"``); Laplace-smoothed or uniform weights (``prior_weights``)."""
        mu = self._latent_means(X).astype(np.float64)
        K = self.n_clusters
        net = self.network_
        resp = manifold_partition(mu, K, self._seed_value()) if self.init == "manifold" else None
        if resp is not None:
            counts, means, covariances = weighted_gaussians(mu, resp)
            if net.prior_tril is None:
                variances = np.diagonal(covariances, axis1=1, axis2=2).copy()
            else:
                L = np.linalg.cholesky(covariances)
                variances = np.diagonal(L, axis1=1, axis2=2) ** 2
                net.prior_tril.copy_(torch.as_tensor(np.tril(L, k=-1), dtype=torch.float32))
        else:  # "kmeans", or "manifold" on too few samples for a neighbourhood graph
            kmeans = KMeans(K, n_init=10, random_state=self._seed_value()).fit(mu)
            counts = np.bincount(kmeans.labels_, minlength=K)
            means = kmeans.cluster_centers_
            variances = np.stack([mu[kmeans.labels_ == k].var(axis=0) if counts[k] > 1 else mu.var(axis=0)
                                  for k in range(K)]) + 1e-4
            if net.prior_tril is not None:
                means, variances, tril, counts = _full_gmm_start(mu, means, self._seed_value())
                net.prior_tril.copy_(torch.as_tensor(tril, dtype=torch.float32))
        net.prior_mu.copy_(torch.as_tensor(means, dtype=torch.float32))
        net.prior_log_var.copy_(torch.as_tensor(np.log(variances), dtype=torch.float32))
        weights = laplace_weights(counts) if self.prior_weights == "laplace" else np.full(K, 1.0 / K)
        net.prior_logits.copy_(torch.as_tensor(np.log(weights), dtype=torch.float32))

    def _gamma(self, z, logits, log_pi, prior_mu, prior_log_var, prior_tril):
        if self.assign == "head":
            return torch.softmax(logits / self.temperature, dim=1)
        return torch.softmax(log_joint(z, log_pi, prior_mu, prior_log_var, prior_tril), dim=1)

    def _step(self, batch, sample: bool = True) -> dict:
        """The full objective L = recon + beta * KL + eta * sum gamma ln gamma for a batch (``sample=False``:
        at z = mu(x) instead of a reparameterised draw)."""
        (x,) = batch
        net = self.network_
        mu, log_var, logits = net.encode(x)
        z = reparameterize(mu, log_var) if sample else mu
        recon = reconstruction_loss(x, net.decoder(z), self.loss)
        if self.loss == "mse":
            recon = recon / (2.0 * self.decoder_variance_)
        log_pi, prior_mu, prior_log_var, prior_tril = net.prior()
        kl_components = gaussian_kl_to_components(mu, log_var, prior_mu, prior_log_var, prior_tril)
        gamma = self._gamma(z, logits, log_pi, prior_mu, prior_log_var, prior_tril)
        kl = vade_kl(gamma, kl_components, log_pi) if self.kl == "vade" else approx_kl(kl_components, log_pi)
        neg_entropy = negative_entropy(gamma)
        loss = recon + self.beta * kl.mean() + self.eta * neg_entropy.mean()
        return {"loss": loss, "recon": recon, "kl": kl.mean(), "entropy": -neg_entropy.mean()}

    @torch.no_grad()
    def _objective(self, X: np.ndarray) -> float:
        r"""The objective on X at :math:`z = \mu(x)`, per sample, with the Gaussian decoder's normaliser
        :math:`\tfrac D2 \ln \sigma^2` (``loss="mse"``) so runs with different sigma^2 compare."""
        self.network_.eval()
        total = 0.0
        for start in range(0, len(X), INFERENCE_BATCH):
            x = torch.as_tensor(X[start:start + INFERENCE_BATCH], device=self._device())
            total += float(self._step((x,), sample=False)["loss"]) * len(x)
        normaliser = 0.5 * self.n_features_in_ * math.log(self.decoder_variance_) if self.loss == "mse" else 0.0
        return total / len(X) + normaliser

    def _validation_metrics(self, X_val, y_val) -> dict:
        proba = self._proba(X_val)
        return {"val_nmi": metrics.external_metrics(y_val, proba.argmax(1))["nmi"],
                "val_entropy": float(metrics.entropy(proba).mean())}

    def _store_prior(self) -> None:
        log_pi, prior_mu, prior_log_var, prior_tril = self.network_.prior()
        self.weights_ = np.exp(log_pi.detach().cpu().double().numpy())
        self.means_ = prior_mu.detach().cpu().double().numpy()
        self.variances_ = np.exp(prior_log_var.detach().cpu().double().numpy())
        if prior_tril is not None:
            L = scale_tril(prior_log_var, prior_tril).detach().cpu().double().numpy()
            self.covariances_ = L @ L.transpose(0, 2, 1)

    # -- inference ----------------------------------------------------------------------------------
    def _proba(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "manifold_resp_", None) is not None:
            return neighbour_responsibilities(self.manifold_codes_, self.manifold_resp_, self._latent_means(X))
        return self._prior_gamma(X)

    def _prior_gamma(self, X: np.ndarray) -> np.ndarray:
        net = self.network_
        net.eval()

        def gamma(x):
            mu, _, logits = net.encode(x)
            return self._gamma(mu, logits, *net.prior())

        return self._cat(self._batched(gamma, X)).astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        """Soft assignments (n, K), rows sum to 1: the manifold partition's neighbour map
        (``partition="manifold"``) or gamma of the mixture prior at z = mu(x) (``"prior"``)."""
        check_is_fitted(self, "network_")
        return self._proba(self._validate_input(X, reset=False))

    def prior_proba(self, X) -> np.ndarray:
        """gamma (n, K) of the learnt mixture prior at z = mu(x) (the posterior or the head, ``assign``),
        whatever ``partition``: the soft assignment VaDE as published gives."""
        check_is_fitted(self, "network_")
        return self._prior_gamma(self._validate_input(X, reset=False))

    def transform(self, X) -> np.ndarray:
        """Latent mean mu(x), (n, latent_dim)."""
        check_is_fitted(self, "network_")
        return self._latent_means(self._validate_input(X, reset=False))

    @torch.no_grad()
    def _latent_means(self, X: np.ndarray) -> np.ndarray:
        self.network_.eval()
        return self._cat(self._batched(lambda x: self.network_.encode(x)[0], X))

    def entropy(self, X) -> np.ndarray:
        """Per-object entropy of the soft assignments (:meth:`predict_proba`) in nats, (n,)."""
        return metrics.entropy(self.predict_proba(X))

    def most_ambiguous(self, X, n: int = 16) -> np.ndarray:
        """Indices of the ``n`` objects with the highest assignment entropy (borderline / mixed)."""
        return np.argsort(-self.entropy(X), kind="stable")[:check_int(n, "n", 1)]

    def prototypes(self) -> np.ndarray:
        """Cluster prototypes decoder(mu_k), shape ``(K, *input_shape_)``."""
        check_is_fitted(self, "network_")
        self.network_.eval()
        with torch.no_grad():
            return self._to_data_units(self.network_.decoder(self.network_.prior_mu).cpu().numpy())

    def plot_prototypes(self, ax=None):
        """Figure of the prototypes as an image grid (image input) or a heat map (tabular); returns the axes."""
        import matplotlib.pyplot as plt

        from . import plotting

        protos = self.prototypes()
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4, 0.9 * len(protos)), 1.8))
        if protos.ndim == 4:
            plotting.image_grid(ax, np.clip(protos / getattr(self, "input_scale_", 1.0), 0, 1), 1,
                                titles=range(len(protos)))
        else:
            ax.imshow(protos, aspect="auto", cmap="viridis")
            ax.set_ylabel("cluster")
            ax.set_xlabel("feature")
        ax.set_title("prototypes decoder(mu_k)", fontsize=9)
        return ax

    def latent_map(self, X, method: str = "auto") -> np.ndarray:
        """2-D map (n, 2) of the latent means of X: t-SNE, or UMAP when installed (``method``); plot it with
        ``mixclust.plotting.label_map(ax, Y, model.predict(X))``."""
        from .plotting import embed_2d

        return embed_2d(self.transform(X), method, self._seed_value())

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode latent vectors (n, latent_dim)."""
        check_is_fitted(self, "network_")
        Z = as_float_array(Z, "Z")
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have shape (n, {self.latent_dim}), got {Z.shape}")
        self.network_.eval()
        return self._to_data_units(self._cat(self._batched(self.network_.decoder, Z)))
