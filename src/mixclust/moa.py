r"""MoA+: a mixture of autoencoder experts with a router, trained on minimax weights (SPEC §1, [MOA]).

M experts (convolutional autoencoders for images, MLP autoencoders for tabular data) and a
router :math:`p_i = \operatorname{softmax}(r(x_i)) \in \Delta^M`; stacked over a batch, P is (n, M).
The cluster of :math:`x_i` is :math:`\arg\max_k p_{ik}`.

"Varying concentrations" names the theory the minimax weights come from: mixtures with varying
concentrations, where every observation :math:`x_i` has its own mixing probabilities :math:`p_i` (here the
router's output) instead of one :math:`\pi` shared by all. The weighted empirical distribution
:math:`\hat F_k = \sum_i a_{ik} \delta_{x_i}` estimates component k without bias when
:math:`\sum_i a_{ik} p_{il} = \delta_{kl}`, i.e. :math:`A^\top P = I`; the solution of least norm is
:math:`A = P G^{-1}`, :math:`G = P^\top P`, and the minimax loss below is component k's reconstruction error
under :math:`\hat F_k`, summed.

Losses (``loss=``), with :math:`e_{ik}` the mean over pixels of :math:`(x_i - \hat x_{ik})^2`:

* ``blend`` (the "Hinton MoE" baseline of [MOA]): :math:`\frac1n \sum_i \lVert x_i - \sum_k p_{ik}\hat x_{ik}\rVert^2`.
* ``competitive`` (Jacobs, Jordan, Nowlan & Hinton 1991):
  :math:`\frac1n \sum_i -\ln \sum_k p_{ik} \exp(-\lVert x_i - \hat x_{ik}\rVert^2 / 2s^2)`.
* ``minimax`` (MoA+): :math:`G = P^\top P`, minimax weights :math:`A = P G^{-1}`
  (so :math:`\sum_i a_{ik} p_{il} = \delta_{kl}`), loss
  :math:`\lvert \sum_{ik} a_{ik} e_{ik} \rvert = \lvert \operatorname{tr}(G^{-1} E^\top P) \rvert`,
  exact for any M through a linear solve (autograd differentiates it); G gets a ridge
  :math:`\epsilon I` and a warning when it is near-singular (a dead expert).
* ``bound`` (the source's training loss):
  :math:`\sqrt{\sum_k \lambda_k^{-2}}\,\sqrt{\sum_k (\sum_i p_{ik} e_{ik})^2}`, :math:`\lambda_k` the
  eigenvalues of G. Not an upper bound of the exact loss in general, even for M = 2.
* ``frobenius_bound``: :math:`\lVert G^{-1}\rVert_F \lVert E^\top P\rVert_F`, an upper bound for every
  M by Cauchy-Schwarz.
* ``switch``: ``blend`` plus the Switch-Transformer load-balancing loss
  :math:`M \sum_k f_k \bar P_k` (:math:`f_k` the fraction routed to k, :math:`\bar P_k` the mean
  router probability), weighted by ``switch_weight``.

Any loss can add ``balance`` times :math:`\operatorname{KL}(\bar p \,\|\, \text{uniform}) =
\sum_k \bar p_k \ln(M \bar p_k)`, :math:`\bar p` the mean router probability over the batch: zero when
the experts share the data equally, :math:`\ln M` when one expert takes everything.

G is per mini-batch (``gram="batch"``) or an exponential moving average over the data set
(``gram="ema"``, the current batch entering with gradient). Both are normalised per sample,
:math:`G = P^\top P / n`, :math:`E^\top P / n`, which leaves the loss unchanged for ``ridge=0``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.func import functional_call, vmap

from . import distributed, metrics
from . import nn as mnn
from ._base import check_float, check_int, check_option
from ._deep import DeepEstimator, keeps_global_rng, latent_gmm, manifold_partition
from ._registry import register
from .autoencoder import reconstruction_loss

LOSSES = ("blend", "competitive", "minimax", "bound", "frobenius_bound", "switch")
#: ``balance="auto"``: the weight per input feature measured to help (5.0 for 784-pixel MNIST, reports/moa,
#: "Longer training, and a balance term"); per feature because the competitive loss sums squared errors over
#: the features, so its scale grows with their number.
AUTO_BALANCE_PER_FEATURE = {"competitive": 5.0 / 784}
GRAMS = ("batch", "ema")
EXPERT_PATHS = ("auto", "loop", "vmap")
INITS = ("kmeans", "gmm", "manifold", "random")
#: ``pretrain_epochs="auto"`` / ``router_epochs="auto"``: enough epochs for this many optimiser steps. On MNIST
#: (70,000 images, batch 256: 274 steps an epoch) that is 3 and 2 epochs, the budget the study measured; a
#: fixed number of epochs starved small data sets: on scikit-learn's digits (29 steps an epoch at batch 64)
#: 2 router epochs reproduced the GMM start's partition with NMI 0.04-0.31 (seeds 0-2), 18 with 0.82-0.85
#: (benchmarks/probes/probe_moa_digits.py).
AUTO_INIT_STEPS = {"pretrain_epochs": 800, "router_epochs": 500}
#: ``epochs="auto"``: 10 epochs (the MNIST budget) whatever n: no floor of optimiser steps (see ``epochs``).
AUTO_TRAIN = (10, 0)
# Condition number of G above which an expert is considered dead (warned once per fit).
SINGULAR_CONDITION = 1e8


class SingularGramWarning(RuntimeWarning):
    """G = P^T P is near-singular: an expert receives (almost) no routing mass."""


# ------------------------------------------------------------------------------------------------
# Losses, one function each
# ------------------------------------------------------------------------------------------------
def expert_errors(x: torch.Tensor, x_hats: torch.Tensor) -> torch.Tensor:
    """E (B, M): mean over pixels of the squared error of each expert; ``x_hats`` is (M, B, ...)."""
    return ((x_hats - x.unsqueeze(0)) ** 2).flatten(2).mean(-1).T


def blend_loss(x, x_hats, P) -> torch.Tensor:
    r""":math:`\frac1n\sum_i \lVert x_i - \sum_k p_{ik} \hat x_{ik} \rVert^2` (squared error summed over pixels)."""
    mixture = torch.einsum("bk,kb...->b...", P, x_hats)
    return ((x - mixture) ** 2).flatten(1).sum(1).mean()


def competitive_loss(x, x_hats, P, scale: float = 1.0) -> torch.Tensor:
    r""":math:`\frac1n\sum_i -\ln \sum_k p_{ik} \exp(-\lVert x_i - \hat x_{ik}\rVert^2 / 2s^2)`."""
    squared = ((x_hats - x.unsqueeze(0)) ** 2).flatten(2).sum(-1).T  # (B, M)
    return -torch.logsumexp(torch.log(P + 1e-12) - 0.5 * squared / scale**2, dim=1).mean()


def gram_matrix(P: torch.Tensor) -> torch.Tensor:
    r"""Per-sample Gram matrix :math:`G = P^\top P / n` (M x M)."""
    return P.T @ P / P.shape[0]


def _regularised(G: torch.Tensor, ridge: float) -> torch.Tensor:
    return G + ridge * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)


def minimax_weights(P: torch.Tensor, ridge: float = 0.0, G: torch.Tensor | None = None) -> torch.Tensor:
    r"""Minimax weights :math:`A = P (G + \epsilon I)^{-1}` (n x M), with :math:`G = P^\top P / n` by default.

    With ``ridge=0``, :math:`\frac1n \sum_i a_{ik} p_{il} = \delta_{kl}` (the per-sample normalisation
    of G carries the 1/n).
    """
    G = gram_matrix(P) if G is None else G
    return torch.linalg.solve(_regularised(G, ridge), P.T).T


def cross_errors(E: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`B = E^\top P / n` (M x M): :math:`B_{kl} = \frac1n \sum_i e_{ik} p_{il}`."""
    return E.T @ P / P.shape[0]


def minimax_from_statistics(G: torch.Tensor, B: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    r""":math:`\lvert \operatorname{tr}((G + \epsilon I)^{-1} B) \rvert` through a linear solve (any M)."""
    return torch.linalg.solve(_regularised(G, ridge), B).diagonal().sum().abs()


def bound_from_statistics(G: torch.Tensor, B: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    r""":math:`\sqrt{\sum_k \lambda_k^{-2}}\,\lVert \operatorname{diag} B \rVert_2`, the source's bound
    (:math:`\operatorname{diag} B = (\frac1n\sum_i p_{ik} e_{ik})_k`)."""
    eigenvalues = torch.linalg.eigvalsh(_regularised(G, ridge))
    return torch.sqrt((eigenvalues ** -2).sum()) * torch.linalg.vector_norm(B.diagonal())


def frobenius_bound_from_statistics(G: torch.Tensor, B: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    r""":math:`\lVert (G + \epsilon I)^{-1} \rVert_F \lVert B \rVert_F`."""
    return torch.linalg.matrix_norm(torch.linalg.inv(_regularised(G, ridge))) * torch.linalg.matrix_norm(B)


def minimax_loss(E, P, ridge: float = 0.0, G: torch.Tensor | None = None) -> torch.Tensor:
    r"""Exact MoA+ loss :math:`\lvert \operatorname{tr}(G^{-1} E^\top P) \rvert` with per-sample G and
    :math:`E^\top P`: equals :math:`\lvert \frac1n \sum_{ik} a_{ik} e_{ik} \rvert`."""
    return minimax_from_statistics(gram_matrix(P) if G is None else G, cross_errors(E, P), ridge)


def bound_loss(E, P, ridge: float = 0.0, G: torch.Tensor | None = None) -> torch.Tensor:
    r"""The source's bound :math:`\sqrt{\sum_k \lambda_k^{-2}}\,\sqrt{\sum_k (\sum_i p_{ik} e_{ik})^2}`."""
    return bound_from_statistics(gram_matrix(P) if G is None else G, cross_errors(E, P), ridge)


def frobenius_bound_loss(E, P, ridge: float = 0.0, G: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`\lVert G^{-1} \rVert_F \lVert E^\top P\rVert_F \ge \lvert\operatorname{tr}(G^{-1}E^\top P)\rvert`
    for every M (Cauchy-Schwarz)."""
    return frobenius_bound_from_statistics(gram_matrix(P) if G is None else G, cross_errors(E, P), ridge)


GRAM_LOSSES = {"minimax": minimax_from_statistics, "bound": bound_from_statistics,
               "frobenius_bound": frobenius_bound_from_statistics}


def switch_balance_loss(P) -> torch.Tensor:
    r"""Switch-Transformer load balancing :math:`M \sum_k f_k \bar P_k` (equals 1 when balanced)."""
    M = P.shape[1]
    fraction = torch.bincount(P.argmax(1), minlength=M).to(P.dtype) / P.shape[0]
    return M * (fraction * P.mean(0)).sum()


def balance_penalty(mean_routing) -> torch.Tensor:
    r""":math:`\operatorname{KL}(\bar p \,\|\, \text{uniform}) = \sum_k \bar p_k \ln(M \bar p_k) \in [0, \ln M]`."""
    M = mean_routing.shape[0]
    return (mean_routing * torch.log(M * mean_routing.clamp_min(1e-12))).sum()


# ------------------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------------------
class Router(nn.Module):
    """``conv`` (images only, SPEC §1's router): 2 x [Conv ``filters`` 3x3, ReLU, MaxPool 2], Flatten, Linear(M),
    softmax. Otherwise an MLP ``hidden`` -> M, softmax, on the flattened input. Returns P (B, M)."""

    def __init__(self, input_shape, n_experts: int, filters: int = 8, hidden=(64,), conv: bool = True):
        super().__init__()
        self.conv = bool(conv and len(input_shape) == 3)
        if self.conv:
            body = mnn.ConvEncoderBody(input_shape, filters, n_blocks=2)
            self.net = nn.Sequential(body, nn.Linear(body.out_features, n_experts))
        else:
            self.net = mnn.mlp([int(np.prod(input_shape)), *hidden, n_experts])

    def forward(self, x):
        return torch.softmax(self.net(x if self.conv else x.flatten(1)), dim=1)


def _stacked_state(modules: nn.ModuleList) -> tuple[dict, dict]:
    """Parameters and buffers of equally shaped modules stacked along a new first axis, for ``vmap``.

    ``torch.stack`` keeps the stacked tensors in the autograd graph of the modules' own parameters, so a
    backward pass through the vmapped call trains them. (``torch.func.stack_module_state`` returns detached
    copies: the optimiser's parameters would get no gradient.)
    """
    named = [dict(m.named_parameters()) for m in modules]
    buffers = [dict(m.named_buffers()) for m in modules]
    return ({k: torch.stack([n[k] for n in named]) for k in named[0]},
            {k: torch.stack([b[k] for b in buffers]) for k in buffers[0]})


class Experts(nn.Module):
    """M autoencoders; ``forward(x)`` returns reconstructions (M, B, ...) and latents (M, B, d).

    ``path="loop"`` runs them one after another; ``"vmap"`` stacks their weights and runs them as one
    batched call (torch.func). Both give the same outputs (tested); the faster one depends on the device.
    """

    def __init__(self, experts: list[tuple[nn.Module, nn.Module]], path: str):
        super().__init__()
        self.encoders = nn.ModuleList(e for e, _ in experts)
        self.decoders = nn.ModuleList(d for _, d in experts)
        self.path = path

    def _one(self, encoder, decoder, x):
        z = encoder(x)
        return decoder(z), z

    def forward(self, x):
        if self.path == "loop":
            outputs = [self._one(e, d, x) for e, d in zip(self.encoders, self.decoders)]
            return torch.stack([o[0] for o in outputs]), torch.stack([o[1] for o in outputs])
        enc_params, enc_buffers = _stacked_state(self.encoders)
        dec_params, dec_buffers = _stacked_state(self.decoders)
        encoder, decoder = self.encoders[0], self.decoders[0]

        def one(ep, eb, dp, db):
            z = functional_call(encoder, (ep, eb), (x,))
            return functional_call(decoder, (dp, db), (z,)), z

        return vmap(one)(enc_params, enc_buffers, dec_params, dec_buffers)


class MoANetwork(nn.Module):
    """Experts and router; the buffer ``ema_gram`` holds the running G of ``gram="ema"`` (with
    ``ema_steps``, the batches averaged so far), so checkpoints carry it and a resumed run is exact."""

    def __init__(self, experts: Experts, router: Router, n_experts: int):
        super().__init__()
        self.experts, self.router = experts, router
        self.register_buffer("ema_gram", torch.zeros(n_experts, n_experts))
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Models and checkpoints written before the running G became a buffer (2026-12-02) lack these two:
        # they load with an empty average, which is what a new fit starts from anyway.
        for name in ("ema_gram", "ema_steps"):
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        x_hats, z = self.experts(x)
        return x_hats, z, self.router(x)


@register("moa")
class MoA(DeepEstimator):
    r"""Mixture of autoencoder experts with a router (MoA+ and its baselines).

    Parameters
    ----------
    n_clusters : int, default=2
        Number of experts M (= clusters).
    loss : {"competitive", "minimax", "blend", "bound", "frobenius_bound", "switch"}, default="competitive"
        The default is the loss that clustered best in ``mixclust reproduce moa`` (MNIST, 70,000 images, the
        same K-means start for every loss, seeds 0-2): NMI for M = 2 0.245 ± 0.012 against minimax
        0.069 ± 0.036, and for M = 10 0.547 ± 0.034 against 0.179 ± 0.030; with longer training, the
        balance term and the GMM start, M = 10 0.668 ± 0.055 against minimax 0.518 ± 0.027. Without a
        balance term the MoA+ loss ``"minimax"`` drifts to one or two experts holding most of the images
        (its sum over experts of per-expert mean errors rewards a small cluster of easy images, and with
        soft routing the absolute value lets the weighted errors cancel); see reports/moa.
    gram : {"batch", "ema"}, default="batch"
    ridge : float, default=1e-4
        :math:`\epsilon` added to the diagonal of the per-sample G (keeps a dead expert finite).
    ema_momentum : float, default=0.9, for ``gram="ema"``.
    competitive_scale : float or "auto", default="auto"
        s of the ``competitive`` loss, in the units the networks see (the data divided by ``input_scale_``, which
        puts non-negative data in [0, 1]). ``"auto"``: the range of those inputs (max - min over all entries,
        kept as ``competitive_scale_``), 1 for images in [0, 1] (the scale every study ran with), and for other
        data the same loss as if they were rescaled to [0, 1]. A fixed s = 1
        on unscaled features makes the posterior over experts a hard minimum of errors of the order of
        thousands. Measured on make_blobs (3,000 x 5, 4 centres; seeds 0 / 1): times 10, NMI 0.998 / 0.998
        with ``"auto"`` against 0.000 / 0.577 with s = 1 (every point in one cluster for seed 0); times 100,
        0.993 / 0.621 against 0.000 / 0.583; scikit-learn's wine standardised 0.820 / 0.795 against 0.807 / 0.777
        (``benchmarks/probes/probe_moa_scale.py auto 1.0``; raw wine, 0.378 / 0.000 against 0.000 / 0.000 then,
        is now divided by its maximum first). The
        networks themselves are not scale-free, so standardise tabular features (a warning names empty
        clusters).
    switch_weight : float, default=0.01, weight of the balance term of ``switch``.
    balance : float or "auto", default="auto"
        Weight of :math:`\operatorname{KL}(\bar p \,\|\, \text{uniform})` added to any loss (against one
        expert taking over). ``"auto"``: for ``competitive`` 5.0 x D / 784 (D input features; 5.0 on
        MNIST), 0 for the other losses, whose weights were not measured enough to choose one (the losses
        differ in scale). Measured on scikit-learn's digits (D = 64): 5.0 made every routing near-uniform
        (mean entropy ln 10), D / 784 x 5.0 keeps them confident. Measured on MNIST (70,000
        images, 10 pretraining + 3 epochs, reports/moa): M = 10 competitive NMI 0.599 with 5.0 against
        0.213 without (two experts took every image), M = 2 0.231 against 0.209.
    init : {"manifold", "gmm", "kmeans", "random"}, default="manifold"
        ``"manifold"``: the router learns the partition of a full GMM on the UMAP embedding of the pretrained
        codes (:func:`mixclust._deep.manifold_partition`; below 100 samples it falls back to ``"gmm"``).
        Measured in the same suite version (reports/suite, seed 0), NMI from the manifold start against the
        GMM start: digits flat 0.769 / 0.751, images 0.719 / 0.694; 1,000 MNIST images flat 0.474 / 0.442,
        images 0.565 / 0.575. The competitive training loses much of either start (AEClustering keeps the
        manifold partition and scores 0.868 on digits, 0.627 on the MNIST images), and on 1,000 MNIST images
        MoA stays below K-means (0.499) from both.
        The start (see :meth:`_initialise`): an autoencoder pretrained for ``pretrain_epochs`` and copied
        into every expert, the router trained for ``router_epochs`` on a clustering of its codes: a
        full-covariance GMM begun at the K-means centroids (``"gmm"``, which follows elongated clusters)
        or K-means itself; ``"random"``: the source's start (Xavier weights, a near-uniform router).
        Measured on MNIST (70,000 images, 10 pretraining epochs, seeds 0-2, reports/moa): competitive +
        balance 5, M = 10, 6 epochs: NMI 0.746 / 0.639 / 0.621 from the GMM start against 0.652 / 0.601 /
        0.698 from K-means (means 0.669 and 0.650: within the seed spread); M = 2, 3 epochs, no balance:
        0.348 / 0.326 / 0.248 from the GMM start against 0.209 / 0.242 / 0.208 from K-means; after 20
        epochs from the GMM start 0.408 / 0.356 / 0.300 (mean 0.355). On
        scikit-learn's digits (``make demo`` settings, seeds 0-2): 0.761 / 0.772 / 0.713 from the GMM start
        against 0.723 / 0.738 / 0.709 from K-means (``benchmarks/probes/probe_moa_digits.py``).
    pretrain_epochs, router_epochs : int or "auto", default="auto"
        Epochs of the autoencoder pretraining and of the router's fit to the start's partition. ``"auto"``:
        enough epochs for 800 and 500 optimiser steps (:data:`AUTO_INIT_STEPS`; 3 and 2 epochs on MNIST's 70,000
        images at batch 256, 28 and 18 on scikit-learn's digits at batch 64). Measured on digits (``make demo``
        settings, seeds 0-2): final NMI 0.761 / 0.772 / 0.713 with ``"auto"`` against 0.485 / 0.519 / 0.499
        with 3 and 2 epochs, whose router never learnt the start (K-means alone: 0.742;
        ``benchmarks/probes/probe_moa_digits.py``).
    specialise : bool, default=True
        While the router learns the start's partition (``router_epochs``), each expert also fits the members of
        its own cluster (the reconstruction loss of pretraining on the expert the start assigns), as DAMIC
        (Chazan et al. 2019) starts its autoencoders on their K-means clusters. Without it every expert is
        the same pretrained autoencoder when the joint training begins, the competition reassigns images by
        whichever copy drifts first, and much of the start is lost. Measured (seed 0, NMI of the start's
        partition / final, ``benchmarks/probes/probe_moa_suite.py``): digits flat 0.863 / 0.795 against 0.863 /
        0.769 without, images 0.868 / 0.762 against 0.868 / 0.719; 1,000 MNIST images flat 0.627 / 0.609
        against 0.627 / 0.474 (K-means 0.742 and 0.499). Ignored for ``init="random"``.
    latent_dim, filters, n_blocks, hidden : expert architecture (``arch="auto"``: MLP experts for tabular
        input and images alike; ``arch="conv"``: the CAE of SPEC §1).
    decoder : {"upsample", "transposed"}, default="upsample"
        The conv experts' decoder: nearest upsampling (the CAE of the MoA source) or stride-2 transposed
        convolutions (the AE-vs-VAE source, SPEC §3); see :mod:`mixclust.nn`. No effect on MLP experts.
    router_filters, router_hidden : router architecture. The router follows ``arch``: SPEC §1's convolutional
        router on images with ``arch="conv"``, an MLP ``router_hidden`` on the flattened input otherwise. With the
        MLP experts of ``"auto"`` the conv router clustered images worse on 8 of 12 suite sets (seed 0, mean NMI
        0.649 against 0.657; digits seeds 0-2 0.811 / 0.709 / 0.744 against 0.824 / 0.802 / 0.805;
        reports/suite/evidence/moa_router.txt), so ``"auto"`` fits images as their flattened pixels.
    experts_path : {"auto", "loop", "vmap"}, default="auto" (loop on the CPU, vmap on CUDA).
    epochs : int or "auto", default="auto"
        Epochs of the joint training after the start. ``"auto"``: 10 (the MNIST budget), with no floor of optimiser
        steps, unlike the start's budgets: the start gives each expert its cluster, and more competitive updates on
        a small set move the partition away from it rather than improving it. Measured
        (reports/suite/evidence/moa_epochs.txt, ``benchmarks/probes/probe_override.py "epochs=10" --code=moa:4``,
        NMI, 10 epochs against the former floor of 1,000 steps): the tables and 2-D sets, 3 seeds, wine 0.812
        against 0.282, iris 0.795 / 0.388, blobs 0.936 / 0.460, varied 0.878 / 0.298, anisotropic 0.915 / 0.412,
        moons 0.512 / 0.365 (breast cancer 0.510 / 0.581 loses); the 10 image sets, seed 0, flat input, mean 0.618
        against 0.624 (fashion-5k 0.652 / 0.618 gains most, 9,298 16 x 16 digits 0.669 / 0.752 loses most), images
        0.600 against 0.604; about 1.8x faster on digits (52 s against 94 s).
    batch_size : int or "auto", default="auto"
        ``"auto"``: the largest power of two at most n / 64 within [32, 256] (32 on scikit-learn's digits).
    n_init : int or "auto", default="auto"
        Runs from different seeds; the kept run has the lowest training loss on X among those
        :func:`mixclust.metrics.degeneracy` does not flag. ``"auto"``: one run, and up to 3 while degenerate.
    lr, clip_norm, patience, checkpoint_dir, random_state, device, verbose.

    ``predict_proba`` and ``transform`` return the router probabilities P; ``latent(X)`` the chosen
    expert's latent vector; ``reconstruct(X)`` the chosen expert's reconstruction.
    """

    _auto_epochs = {**{k: (1, v) for k, v in AUTO_INIT_STEPS.items()}, "epochs": AUTO_TRAIN}
    _degenerate_hint = "a balance term (balance=...), features scaled to [0, 1], or n_init=5 may help"
    _warm_start_params = ("n_clusters", "init", "pretrain_epochs", "router_epochs", "specialise", "arch", "latent_dim",
                          "filters", "n_blocks", "decoder", "hidden", "router_filters", "router_hidden", "batch_size",
                          "lr", "random_state")

    def __init__(self, n_clusters=2, *, loss="competitive", gram="batch", ridge=1e-4, ema_momentum=0.9,
                 competitive_scale="auto", switch_weight=0.01, balance="auto", init="manifold", pretrain_epochs="auto",
                 router_epochs="auto", specialise=True,
                 arch="auto", latent_dim=10, filters=8, n_blocks=3, decoder="upsample", hidden=(256, 64),
                 router_filters=8, router_hidden=(64,), experts_path="auto", epochs="auto", batch_size="auto",
                 lr=1e-3, clip_norm=None, patience=None, n_init="auto", checkpoint_dir=None, random_state=0,
                 device="auto", verbose=0):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.loss = loss
        self.init = init
        self.pretrain_epochs = pretrain_epochs
        self.router_epochs = router_epochs
        self.specialise = specialise
        self.gram = gram
        self.ridge = ridge
        self.ema_momentum = ema_momentum
        self.competitive_scale = competitive_scale
        self.switch_weight = switch_weight
        self.balance = balance
        self.arch = arch
        self.latent_dim = latent_dim
        self.filters = filters
        self.n_blocks = n_blocks
        self.decoder = decoder
        self.hidden = hidden
        self.router_filters = router_filters
        self.router_hidden = router_hidden
        self.experts_path = experts_path
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip_norm = clip_norm
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_parameters(self, n_samples: int) -> None:
        self._check_training_parameters()
        self._check_n_clusters(n_samples)
        self._check_n_init()
        check_option(self.loss, "loss", LOSSES)
        check_option(self.gram, "gram", GRAMS)
        check_option(self.experts_path, "experts_path", EXPERT_PATHS)
        check_option(self.decoder, "decoder", mnn.DECODERS)
        check_float(self.ridge, "ridge", 0.0)
        check_float(self.ema_momentum, "ema_momentum", 0.0)
        if self.ema_momentum >= 1:
            raise ValueError(f"ema_momentum must be < 1, got {self.ema_momentum}")
        if self.competitive_scale != "auto":
            check_float(self.competitive_scale, "competitive_scale", 0.0, strict=True)
        check_float(self.switch_weight, "switch_weight", 0.0)
        if isinstance(self.balance, str) and self.balance != "auto":
            raise ValueError(f"balance must be 'auto' or a number >= 0, got {self.balance!r}")
        if self.balance != "auto":
            check_float(self.balance, "balance", 0.0)
        check_option(self.init, "init", INITS)
        if not isinstance(self.specialise, (bool, np.bool_)):
            raise ValueError(f"specialise must be True or False, got {self.specialise!r}")
        check_int(self.latent_dim, "latent_dim", 1)
        mnn.check_hidden(self.hidden, "(256, 64)", allow_auto=False)
        mnn.check_hidden(self.router_hidden, "(64,)", allow_auto=False)

    def _path(self) -> str:
        if self.experts_path != "auto":
            return self.experts_path
        return "vmap" if self._device().type == "cuda" else "loop"

    def _build_modules(self, attributes: dict) -> dict[str, nn.Module]:
        shape = tuple(attributes["input_shape_"])
        hidden = mnn.check_hidden(self.hidden, "(256, 64)", allow_auto=False)
        router_hidden = mnn.check_hidden(self.router_hidden, "(64,)", allow_auto=False)
        experts = [mnn.build_autoencoder(attributes["arch_"], shape, int(self.latent_dim),
                                         output_activation=attributes.get("output_activation_", "sigmoid"),
                                         hidden=hidden, filters=int(self.filters),
                                         n_blocks=int(self.n_blocks), decoder=self.decoder)
                   for _ in range(int(self.n_clusters))]
        router = Router(shape, int(self.n_clusters), int(self.router_filters), router_hidden,
                        conv=attributes["arch_"] == "conv")
        return {"network_": MoANetwork(Experts(experts, self._path()), router, int(self.n_clusters)).to(self._device())}

    # -- training -----------------------------------------------------------------------------------
    @keeps_global_rng
    def fit(self, X, y=None, validation_data=None, initialised=None):
        """Initialise (``init``), then train experts and router jointly on ``loss``.

        ``validation_data=(X_val, y_val)`` adds ``val_nmi`` to ``history_`` (labels never enter a loss).
        ``initialised``: a MoA fitted (or only :meth:`initialise`-d) in this session on the same X with the
        same architecture and initialisation parameters; its initial state is reused and the
        initialisation skipped. The result equals a fit from scratch with the same ``random_state``, so a
        comparison of losses starts every loss from the same experts and router.
        """
        X = self._validate_input(X, reset=True)
        self._check_parameters(len(X))
        self._resolve_budget(len(X))
        val = self._validation_pair(validation_data)
        data = self._to_device(X)
        self._resolve_competitive_scale(X)
        self._fit_with_restarts(lambda: self._fit_once(X, data, val, initialised), X)
        return self

    def _fit_once(self, X: np.ndarray, data: torch.Tensor, val, initialised) -> np.ndarray:
        """One run (initialisation, then joint training) from this run's seed."""
        if initialised is None:
            self._initialise(X, data)
        else:
            record = self._adopt_warm_start(initialised, X, "initialised")
            self._init_history = [dict(r) for r in record["history"]]
        self._seed()
        self.network_.ema_gram.zero_()
        self.network_.ema_steps.zero_()
        self._singular_warned = False
        trainer = self._trainer(self.network_, name="moa", patience=self.patience)
        validate = None if val is None else (lambda: {"val_nmi": metrics.external_metrics(
            val[1], self._proba(val[0]).argmax(1))["nmi"]})
        history = trainer.fit(data, self._step, validate=validate, monitor="loss" if val is None else "val_nmi",
                              mode="min" if val is None else "max")
        self.history_ = [*self._init_history, *({"stage": "train", **r} for r in history)]
        proba = self._proba(X)
        self.labels_ = proba.argmax(1)
        return proba

    @torch.no_grad()
    def _objective(self, X: np.ndarray) -> float:
        """The training loss (with its balance term) on X in batches of ``batch_size_``, per sample; the
        running G of ``gram="ema"`` is left as training left it."""
        self.network_.eval()
        saved = self.network_.ema_gram.clone(), self.network_.ema_steps.clone()
        total = 0.0
        for start in range(0, len(X), self.batch_size_):
            x = torch.as_tensor(X[start:start + self.batch_size_], device=self._device())
            total += float(self._step((x,))["loss"]) * len(x)
        self.network_.ema_gram.copy_(saved[0])
        self.network_.ema_steps.copy_(saved[1])
        return total / len(X)

    @keeps_global_rng
    def initialise(self, X):
        """Build the network and run the initialisation only; pass the result as ``initialised=`` to fit."""
        X = self._validate_input(X, reset=True)
        self._check_parameters(len(X))
        self._resolve_budget(len(X))
        self._initialise(X, self._to_device(X))
        return self

    def _initialise(self, X: np.ndarray, data: torch.Tensor) -> None:
        r"""``init="random"``: Xavier weights, nothing else (the source's start: a near-uniform router).

        ``init="kmeans"`` or ``"gmm"``: (1) pretrain expert 0 as a plain autoencoder (reconstruction only; the
        cross-entropy for a sigmoid output) for ``pretrain_epochs`` and copy it into every expert;
        (2) K-means (M clusters) on its latent codes, then for ``init="gmm"`` EM of a full-covariance
        GMM begun at its centroids (:func:`mixclust._deep.latent_gmm`); the labels are kept as
        ``init_labels_``; (3) train the router for
        ``router_epochs`` on the cross-entropy to those labels. Every loss then starts from confident,
        balanced routing, where :math:`G = P^\top P / n` is well conditioned (from a uniform router G is
        near-singular and the minimax weights cancel, see the study).
        """
        in_unit = bool(X.min() >= 0.0 and X.max() <= 1.0)
        if not in_unit and self.arch_ == "conv":
            raise ValueError("convolutional experts end in a sigmoid: scale images to [0, 1]")
        # MLP experts on data outside [0, 1] (e.g. standardised features) need an unbounded output.
        self.output_activation_ = "sigmoid" if in_unit else "linear"
        self._seed()
        self.network_ = self._build_modules(vars(self))["network_"]
        mnn.init_network(self.network_, X)
        self._init_history = []
        vars(self).pop("init_labels_", None)
        if self.init != "random":
            self._clustered_initialisation(X, data)
        labels = {"init_labels_": self.init_labels_} if self.init != "random" else {}
        self._keep_warm_start(X, history=list(self._init_history), output_activation_=self.output_activation_,
                              **labels)

    def _clustered_initialisation(self, X: np.ndarray, data: torch.Tensor) -> None:
        experts = self.network_.experts
        first = nn.ModuleDict({"encoder": experts.encoders[0], "decoder": experts.decoders[0]})

        # Cross-entropy for a sigmoid output: with the squared error the SPEC §1 CAE can stall on an all-black
        # output (the sigmoid saturates and its gradient vanishes; measured on MNIST, seed 1: MSE 0.112 per
        # pixel, every expert then copied from it); the cross-entropy's gradient x_hat - x never vanishes.
        kind = "bce" if self.output_activation_ == "sigmoid" else "mse"

        def reconstruction(batch):
            (x,) = batch
            return {"loss": reconstruction_loss(x, first["decoder"](first["encoder"](x)), kind)}

        pretrainer = self._trainer(first, name="pretrain", epochs=self.pretrain_epochs_)
        history = pretrainer.fit(data, reconstruction)
        for encoder, decoder in zip(experts.encoders[1:], experts.decoders[1:]):
            encoder.load_state_dict(experts.encoders[0].state_dict())
            decoder.load_state_dict(experts.decoders[0].state_dict())
        first.eval()
        codes = self._cat(self._batched(first["encoder"], X)).astype(np.float64)
        resp = manifold_partition(codes, self.n_clusters, self._seed_value()) if self.init == "manifold" else None
        if resp is not None:
            labels = resp.argmax(1)
        else:
            kmeans = KMeans(self.n_clusters, n_init=10, random_state=self._seed_value()).fit(codes)
            labels = kmeans.labels_
            if self.init in ("gmm", "manifold"):  # "manifold" on too few samples for a neighbourhood graph
                labels = latent_gmm(codes, kmeans.cluster_centers_, self._seed_value()).labels_
        self.init_labels_ = labels.astype(np.int64)
        targets = torch.as_tensor(self.init_labels_, device=data.device)
        router = self.network_.router
        specialise = bool(self.specialise)

        def cross_entropy(batch):
            x, target = batch
            routing = F.nll_loss(torch.log(router(x) + 1e-12), target)
            if not specialise:
                return {"loss": routing}
            # Each expert fits its own cluster's members only, so the joint training starts from experts
            # that already reconstruct their cluster best and the competition keeps the start's partition.
            own = self.network_.experts(x)[0][target, torch.arange(len(x), device=x.device)]
            own_error = reconstruction_loss(x, own, kind)
            return {"loss": routing + own_error, "router_nll": routing.detach(), "own_expert_loss": own_error.detach()}

        router_trainer = self._trainer(router if not specialise else self.network_, name="router",
                                       epochs=self.router_epochs_)
        router_history = router_trainer.fit((data, targets), cross_entropy)
        self._init_history = ([{"stage": "pretrain", **r} for r in history]
                              + [{"stage": "router", **r} for r in router_history])

    def _statistics(self, E: torch.Tensor, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Per-sample :math:`G = P^\top P / n` and :math:`B = E^\top P / n` of the batch.

        Under ``torch.distributed`` both are summed over the ranks' parts of the global batch (a
        differentiable all-reduce), so every rank uses the global matrices. With ``gram="ema"`` G is
        the running average over batches, the current batch entering with its gradient.
        """
        sums = distributed.all_reduce_sum(torch.cat([(P.T @ P).flatten(), (E.T @ P).flatten(),
                                                     P.new_tensor([float(len(P))])]))
        M = P.shape[1]
        G, B = (sums[:M * M] / sums[-1]).view(M, M), (sums[M * M:2 * M * M] / sums[-1]).view(M, M)
        if self.gram == "ema":
            network = self.network_
            if network.ema_steps > 0:
                G = self.ema_momentum * network.ema_gram + (1 - self.ema_momentum) * G
            network.ema_gram.copy_(G.detach())
            network.ema_steps += 1
        if not self._singular_warned and torch.linalg.cond(G.detach()) > SINGULAR_CONDITION:
            self._singular_warned = True
            warnings.warn(f"G = P^T P is near-singular (an expert receives almost no routing mass); "
                          f"the ridge {self.ridge} keeps the minimax loss finite", SingularGramWarning,
                          stacklevel=2)
        return G, B

    def _resolve_competitive_scale(self, X: np.ndarray) -> None:
        scale = self.competitive_scale
        if scale == "auto":
            scale = float(X.max()) - float(X.min())
            scale = scale if scale > 0 else 1.0  # constant data: any s gives the same (zero-gradient) loss
        self.competitive_scale_ = float(scale)

    def _balance_weight(self) -> float:
        if self.balance == "auto":
            return AUTO_BALANCE_PER_FEATURE.get(self.loss, 0.0) * int(np.prod(self.input_shape_))
        return float(self.balance)

    def _step(self, batch) -> dict:
        (x,) = batch
        x_hats, _, P = self.network_(x)
        E = expert_errors(x, x_hats)
        extra = {}
        if self.loss == "blend":
            loss = blend_loss(x, x_hats, P)
        elif self.loss == "switch":
            loss = blend_loss(x, x_hats, P) + self.switch_weight * switch_balance_loss(P)
        elif self.loss == "competitive":
            loss = competitive_loss(x, x_hats, P, self.competitive_scale_)
        else:
            G, B = self._statistics(E, P)
            loss = GRAM_LOSSES[self.loss](G, B, self.ridge)
            if self.loss != "minimax":
                # How the trained bound relates to the exact loss on this batch (epoch means in history_:
                # bound_below_exact is the fraction of batches where the "bound" was not an upper bound).
                with torch.no_grad():
                    exact = minimax_from_statistics(G, B, self.ridge)
                extra = {"exact_minimax": exact, "bound_below_exact": (loss.detach() < exact).float(),
                         "bound_over_exact": loss.detach() / exact.clamp_min(1e-12)}
        balance = self._balance_weight()
        if balance > 0:
            # The global batch's mean routing under torch.distributed (differentiable all-reduce).
            sums = distributed.all_reduce_sum(torch.cat([P.sum(0), P.new_tensor([float(len(P))])]))
            penalty = balance_penalty(sums[:-1] / sums[-1])
            loss = loss + balance * penalty
            extra["balance_penalty"] = penalty.detach()
        chosen = E.gather(1, P.argmax(1, keepdim=True)).mean()
        return {"loss": loss, "mse_chosen": chosen.detach(), **extra}

    # -- inference ----------------------------------------------------------------------------------
    def _proba(self, X: np.ndarray) -> np.ndarray:
        self.network_.eval()
        return self._cat(self._batched(self.network_.router, X)).astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        """Router probabilities P (n, M)."""
        check_is_fitted(self, "network_")
        return self._proba(self._validate_input(X, reset=False))

    def transform(self, X) -> np.ndarray:
        """Router probabilities (the soft cluster membership); see ``latent`` for the experts' codes."""
        return self.predict_proba(X)

    def _chosen(self, X, index: int) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = self._validate_input(X, reset=False)
        self.network_.eval()

        def pick(x):
            outputs = self.network_(x)
            chosen = outputs[2].argmax(1)
            return outputs[index][chosen, torch.arange(len(x), device=x.device)]

        return self._cat(self._batched(pick, X))

    def latent(self, X) -> np.ndarray:
        """The chosen expert's latent vector for each sample, (n, latent_dim)."""
        return self._chosen(X, 1)

    def reconstruct(self, X) -> np.ndarray:
        """The chosen expert's reconstruction of each sample (input shape)."""
        return self._to_data_units(self._chosen(X, 0))

    def expert_errors(self, X) -> np.ndarray:
        """Per-sample, per-expert mean squared error E (n, M)."""
        check_is_fitted(self, "network_")
        X = self._validate_input(X, reset=False)
        self.network_.eval()
        return self._to_data_units(self._cat(self._batched(lambda x: expert_errors(x, self.network_(x)[0]), X)),
                                   power=2)


__all__ = ["MoA", "LOSSES", "minimax_loss", "minimax_weights", "bound_loss", "frobenius_bound_loss"]
