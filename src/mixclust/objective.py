r"""Clustering by a small neural network trained on an unsupervised objective (SPEC §5, [NNOBJ]).

A network :math:`f_\theta` maps a (standardised) sample :math:`x_i \in \mathbb R^D` to cluster
assignments; its weights minimise an objective that never sees labels. Five objectives, each a
module-level function below with its formula:

``"centroid"`` (the notes' first network), :func:`centroid_objective`
    Dense(30, relu) -> Dense(D K). The batch mean of the outputs, split into K vectors, is the set of
    centres :math:`c_1..c_K`; the loss is the mean squared distance of each point to its nearest
    centre, :math:`\frac1B\sum_i \min_k \lVert x_i - c_k\rVert^2`. Labels: nearest centre.

``"similarity"`` (the notes' second network), :func:`similarity_objective`
    Dense(30, sigmoid) -> Dense(K, softmax) gives :math:`P` (B x K);
    :math:`S_{ij} = 0.01 / (\lVert x_i - x_j\rVert^2 + 0.01)`, :math:`C = P P^\top`, and the loss is
    :math:`-\frac1B\sum_i \sum_j S_{ij} C_{ij} / \sum_j C_{ij}`, over the pairs of a batch (the whole
    data set when ``batch_size=None``, as in the notes: memory :math:`O(B^2)`).

``"ncut"``, :func:`ncut_objective`
    Soft normalised cut of the k-nearest-neighbour graph plus an optional balance term.

``"mi"``, :func:`mi_objective`
    Mutual information between the cluster assignments of neighbouring points (IIC-style).

``"scan"`` (default), :func:`scan_objective`
    Agreement of neighbours' assignments plus the entropy of the mean assignment (SCAN-style).

**Neighbour pairs and memory.** The three graph objectives use the k-nearest-neighbour graph of
the standardised training data, computed once at the start of ``fit`` with scikit-learn's
``NearestNeighbors`` (each point's ``n_neighbors`` nearest other points): an (n, k) integer array,
memory :math:`O(nk)`, never an n x n matrix. Each batch of B anchor points uses the B k pairs
(i, j), j in N(i), and the network is applied to both the anchors and their neighbours, so a
batch costs :math:`O(Bk)` and mini-batches (``batch_size=512``) scale to any n.

**Restarts.** ``n_init`` networks are trained from different random initialisations and the one
with the lowest value of the objective on the whole training set is kept (label-free model
selection); every restart's final value is in ``objective_values_``.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import _check_feature_names, check_is_fitted
from torch import nn

from . import nn as mnn
from ._base import check_float, check_int, check_option, resolve_device
from ._deep import (
    INFERENCE_BATCH,
    DeepEstimator,
    DegenerateFitWarning,
    as_float_array,
    epochs_for_steps,
    keeps_global_rng,
)
from ._registry import register
from .metrics import degeneracy
from .training import Trainer

OBJECTIVES = ("centroid", "similarity", "ncut", "mi", "scan")
INITS = ("auto", "spectral", "random")
GRAPH_OBJECTIVES = ("ncut", "mi", "scan")
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
# The notes' activations for their two networks; the graph objectives use ReLU.
DEFAULT_ACTIVATION = {"centroid": "relu", "similarity": "sigmoid", "ncut": "relu", "mi": "relu", "scan": "relu"}
SIMILARITY_SCALE = 0.01  # the notes' 0.01 in S_ij = 0.01 / (d_ij^2 + 0.01)
# The similarity objective's value on the whole training set uses at most this many points (O(m^2)).
SIMILARITY_EVAL_POINTS = 4000
_EPS = 1e-8
#: ``batch_size="auto"``: full batch up to this many samples, mini-batches of this many anchors beyond.
AUTO_ANCHORS = 1024
#: ``epochs="auto"``: optimiser steps per restart.
AUTO_STEPS = 1000


# ------------------------------------------------------------------------------------------------
# The objectives, one function each (all minimised; batches of torch tensors)
# ------------------------------------------------------------------------------------------------
def centroid_centres(outputs: torch.Tensor, n_clusters: int) -> torch.Tensor:
    r"""Centres of the centroid network: the mean over the batch of the (B, D K) outputs, as (K, D).

    :math:`c_k = \frac1B \sum_i f_\theta(x_i)_{[(k-1)D+1 \,..\, kD]}`.
    """
    return outputs.mean(dim=0).view(n_clusters, -1)


def squared_distances(X: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    r""":math:`\lVert x_i - c_k\rVert^2` for every row of X (B, D) and centre (K, D), shape (B, K)."""
    return ((X[:, None, :] - centres[None, :, :]) ** 2).sum(dim=2)


def centroid_objective(outputs: torch.Tensor, X: torch.Tensor, n_clusters: int) -> torch.Tensor:
    r"""The notes' centroid loss: mean squared distance to the nearest of the batch-mean centres.

    .. math::

        c = \frac1B \sum_{i=1}^B f_\theta(x_i) \in \mathbb R^{DK} \text{ split into } c_1..c_K, \qquad
        \mathcal L = \frac1B \sum_{i=1}^B \min_k \lVert x_i - c_k \rVert^2.

    ``outputs`` (B, D K) are the network outputs, ``X`` (B, D) the inputs. Only the nearest
    centre of each point receives a gradient, as in K-means.
    """
    centres = centroid_centres(outputs, n_clusters)
    return squared_distances(X, centres).min(dim=1).values.mean()


def similarity_matrix(X: torch.Tensor, scale: float = SIMILARITY_SCALE) -> torch.Tensor:
    r"""The notes' "nearness" :math:`S_{ij} = s / (\lVert x_i - x_j\rVert^2 + s)`, s = 0.01; (B, B), diagonal 1."""
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(dim=2)
    return scale / (d2 + scale)


def co_assignment(P: torch.Tensor) -> torch.Tensor:
    r""":math:`C = P P^\top`: :math:`C_{ij} = \sum_k P_{ik} P_{jk}`, the probability that i and j share a cluster."""
    return P @ P.T


def similarity_objective(P: torch.Tensor, X: torch.Tensor, scale: float = SIMILARITY_SCALE) -> torch.Tensor:
    r"""The notes' similarity loss over the pairs of a batch.

    .. math::

        S_{ij} = \frac{0.01}{\lVert x_i - x_j\rVert^2 + 0.01}, \quad C = P P^\top, \quad
        \mathcal L = -\frac1B \sum_{i=1}^B \frac{\sum_j S_{ij} C_{ij}}{\sum_j C_{ij}}

    with :math:`P` (B, K) the softmax outputs. For each point it is the C-weighted mean nearness
    of the points in its cluster(s), j = i included (:math:`S_{ii} = 1`). Memory :math:`O(B^2)`.
    """
    C = co_assignment(P)
    S = similarity_matrix(X, scale)
    return -((S * C).sum(dim=1) / C.sum(dim=1)).mean()


def mean_assignment_entropy(P: torch.Tensor) -> torch.Tensor:
    r"""Entropy (nats) of the mean assignment :math:`\bar p = \frac1B\sum_i P_i`: :math:`-\sum_k \bar p_k\log\bar p_k`.

    It is :math:`\log K` when the clusters are used equally and 0 when one cluster takes everything.
    """
    mean = P.mean(dim=0)
    return -(mean * torch.log(mean.clamp_min(_EPS))).sum()


def ncut_objective(P: torch.Tensor, P_neighbors: torch.Tensor, balance_weight: float = 0.0) -> torch.Tensor:
    r"""Soft normalised cut of the k-NN graph (Shi & Malik 2000; the soft relaxation of Tang et al. 2018).

    ``P`` (B, K) are the anchors' assignments, ``P_neighbors`` (B, k, K) those of their k nearest
    neighbours; E is the set of the B k pairs (i, j). With

    .. math::

        \text{assoc}_k = \sum_{(i,j)\in E} p_{ik}\, p_{jk}, \qquad
        \text{vol}_k = \sum_{(i,j)\in E} \tfrac12 (p_{ik} + p_{jk}),

    .. math::

        \mathcal L = \sum_{k=1}^K \Bigl(1 - \frac{\text{assoc}_k}{\text{vol}_k}\Bigr)
                     + \lambda \bigl(\log K - H(\bar p)\bigr).

    For the symmetrised graph :math:`W = (A + A^\top)/2` this is exactly the soft
    :math:`\sum_k \text{cut}_k / \text{vol}_k` (for hard assignments, the normalised cut); dividing
    by the volume already penalises tiny clusters, and :math:`\lambda` (``balance_weight``) adds
    the entropy of the mean assignment :math:`\bar p` of the anchors (0 when balanced).
    """
    n_clusters = P.shape[1]
    assoc = (P[:, None, :] * P_neighbors).sum(dim=(0, 1))
    vol = 0.5 * (P.sum(dim=0) * P_neighbors.shape[1] + P_neighbors.sum(dim=(0, 1)))
    loss = (1.0 - assoc / vol.clamp_min(_EPS)).sum()
    if balance_weight:
        loss = loss + balance_weight * (math.log(n_clusters) - mean_assignment_entropy(P))
    return loss


def pair_joint(P: torch.Tensor, P_neighbors: torch.Tensor) -> torch.Tensor:
    r"""Symmetric joint distribution of the cluster pair of a neighbour pair, (K, K).

    :math:`J = \frac1{2|E|}\sum_{(i,j)\in E} (p_i p_j^\top + p_j p_i^\top)`; its entries sum to 1.
    """
    n_pairs = P_neighbors.shape[0] * P_neighbors.shape[1]
    J = torch.einsum("bk,bnl->kl", P, P_neighbors) / n_pairs
    return 0.5 * (J + J.T)


def mi_objective(P: torch.Tensor, P_neighbors: torch.Tensor) -> torch.Tensor:
    r"""Negative mutual information between the clusters of neighbouring points (IIC, Ji et al. 2019).

    With the joint :math:`J` of :func:`pair_joint` and its marginal :math:`J_k = \sum_l J_{kl}`,

    .. math::

        \mathcal L = -I(z; z') = -\sum_{k,l} J_{kl} \log \frac{J_{kl}}{J_k J_l}
                   = -\bigl[H(J_\cdot) - H(z \mid z')\bigr].

    It is at least :math:`-\log K`, reached when the clusters are used equally (high marginal
    entropy) and neighbours always share their cluster (zero conditional entropy).
    """
    J = pair_joint(P, P_neighbors).clamp_min(_EPS)
    marginal = J.sum(dim=1)
    return -(J * (torch.log(J) - torch.log(marginal)[:, None] - torch.log(marginal)[None, :])).sum()


def scan_objective(P: torch.Tensor, P_neighbors: torch.Tensor, entropy_weight: float = 2.0) -> torch.Tensor:
    r"""Neighbour consistency plus the entropy of the mean assignment (SCAN, Van Gansbeke et al. 2020).

    .. math::

        \mathcal L = -\frac1{|E|} \sum_{(i,j)\in E} \log \langle p_i, p_j \rangle
                     - \lambda\, H(\bar p), \qquad
        \bar p = \frac1B \sum_{i} p_i, \quad H(\bar p) = -\sum_k \bar p_k \log \bar p_k,

    :math:`\lambda` = ``entropy_weight``. The first term is small when neighbours are confidently
    in the same cluster; the second prevents the trivial solution of a single cluster.
    """
    agreement = (P[:, None, :] * P_neighbors).sum(dim=2)
    consistency = -torch.log(agreement.clamp_min(_EPS)).mean()
    return consistency - entropy_weight * mean_assignment_entropy(P)


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def knn_graph(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Indices (n, k) of each row's ``n_neighbors`` nearest other rows (scikit-learn, Euclidean).

    The query excludes the point itself; memory is O(n k) (scikit-learn works through the
    distance matrix in chunks, never holding n x n).
    """
    nn_index = NearestNeighbors(n_neighbors=n_neighbors).fit(X)
    return nn_index.kneighbors(return_distance=False).astype(np.int64)


def build_network(n_features: int, n_outputs: int, hidden, activation: str) -> nn.Sequential:
    """Linear layers n_features -> hidden... -> n_outputs with ``activation`` after each hidden layer."""
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------------------
# The estimator
# ------------------------------------------------------------------------------------------------
@register("nnobj")
class ObjectiveClustering(DeepEstimator):
    r"""Clustering by a small network trained on an unsupervised objective (SPEC §5).

    Input: a table (n, D), or images (n, H, W) / (n, C, H, W), which it reads as their D flattened pixels.

    Parameters
    ----------
    n_clusters : int, default=2
    objective : {"scan", "ncut", "mi", "centroid", "similarity"}, default="scan"
        See the module documentation and the ``*_objective`` functions for the formulas.
        ``"scan"`` is the most reliable (the study ``mixclust reproduce nnobj``).
    hidden : tuple of int, default=(30,)
        Hidden layer widths (the notes' single layer of 30 units).
    activation : {"relu", "sigmoid", "tanh"} or None, default=None
        Hidden activation; None takes the notes' choice (centroid: relu, similarity: sigmoid) and
        relu for the graph objectives.
    epochs : int or "auto", default="auto"
        ``"auto"``: the fewest epochs that make :data:`AUTO_STEPS` (1,000) optimiser steps at the resolved
        batch size (``epochs_``): 1,000 full-batch epochs up to 1,024 samples, 15 epochs on 70,000. With
        ``batch_size=None`` every step is a full batch, so ``"auto"`` means 1,000 epochs whatever n.
    batch_size : int, "auto" or None, default="auto"
        Anchor points per step; None trains on the whole data set at once (full batch, as the notes).
        ``"auto"``: the whole data set up to :data:`AUTO_ANCHORS` (1,024) samples, beyond it the fewest
        batches of at most 1,024 anchors, all of (nearly) equal size (``batch_size_``; 1,015 on 70,000). A
        step runs the network on the B anchors and their B k neighbours, so a step costs the same whatever n
        (for "centroid" and "similarity" too, whose batch statistics the notes took over the whole set).
        Why: the former full-batch 300 epochs ran whole MNIST in 2.6 h (770,000 rows a step); 1,000 steps of
        1,024 anchors (and a remainder batch, before the batches were equalised) take minutes and cluster as
        well (NMI, seed 0, three restarts, budget probe ``benchmarks/probes/probe_budget.py nnobj``; the
        suite's runs are of the equal batches): MNIST 0.838 against 0.833,
        9,298 16 x 16 digits 0.753 / 0.732, 5,000 Fashion-MNIST 0.597 / 0.568, 5,000 MNIST 0.687 / 0.703;
        smaller sets move little from 300 full-batch steps to 1,000 (digits 0.907 / 0.906, 1,000 MNIST 0.603 /
        0.599, 1,000 Fashion-MNIST 0.593 / 0.596, 2,000 16 x 16 digits 0.698 / 0.697, pooled 20 classes 0.627 /
        0.645, rotated objects 0.760 / 0.730, FSDD 0.126 / 0.125). 300 steps of 1,024 fell short on MNIST
        (0.799), 300 steps of 4,096 too (0.824).
    lr : float, default=0.01
        Adam's learning rate.
    n_neighbors : int, default=10
        k of the k-NN graph (graph objectives); at most n - 1 is used.
    entropy_weight : float, default=2.0
        :math:`\lambda` of ``"scan"``: weight of the entropy of the mean assignment.
    balance_weight : float, default=0.0
        :math:`\lambda` of ``"ncut"``: weight of :math:`\log K - H(\bar p)`.
    n_init : int, default=3
        Restarts from different initialisations; the lowest final objective (on the whole
        training set, no labels) wins among the restarts :func:`mixclust.metrics.degeneracy` does not
        flag (``n_init_degenerate_`` has each restart's reason or None; a
        :class:`~mixclust.DegenerateFitWarning` when every restart is flagged).
    standardize : {"auto"} or bool, default="auto"
        ``True``: centre each feature and divide it by its standard deviation (fitted ``mean_``, ``scale_``)
        before the network and the k-NN graph; the centroid objective's centres live in that space.
        ``"auto"``: the same for general tables, but when every value lies in [0, 1] (pixels, or features a
        user already put on one scale) each feature is centred and all are divided by one common standard
        deviation, which keeps the features' relative scale and so the k-NN graph of the data as given.
        Why: a pixel that is almost always dark (an image's border) has a tiny standard deviation, and
        dividing by it makes its rare values dominate every distance. Share of each sample's 10 nearest
        neighbours in its own class, raw pixels against per-feature standardisation (reports/suite):
        20-object rotation set 0.799 / 0.632, digits 0.965 / 0.938, 1,000 MNIST 0.756 / 0.695, 1,000
        Fashion-MNIST 0.677 / 0.670, 16 x 16 digits 0.830 / 0.781, pooled 20 classes 0.694 / 0.697, FSDD
        0.768 / 0.764. ``False``: no scaling.
    random_state : int or None, default=0
        Seeds the initialisations, the restarts and the shuffling (deterministic on the CPU).
    device : {"auto", "cpu", "cuda"}, default="auto"
    verbose : int, default=0

    Attributes
    ----------
    network_ : torch.nn.Sequential
        The kept network (outputs: cluster logits, or the D K centre coordinates for "centroid").
    cluster_centers_ : ndarray (n_clusters, n_features)
        "centroid" only: the centres (mean network output over the training set), in the original
        feature units.
    mean_, scale_ : ndarray (n_features,)
        The standardisation (0 and 1 with ``standardize=False``; one common ``scale_`` value when
        ``"auto"`` found the data in [0, 1]).
    history_ : list of dict
        The kept restart's training, one dict per epoch (``loss``, ``seconds``, ``val_ari``/``val_nmi``
        with ``validation_data``).
    objective_values_ : list of float
        Final objective of every restart on the whole training set; ``best_init_`` is the kept one.
    objective_value_ : float
        The kept network's objective (``objective_values_[best_init_]``).
    n_neighbors_ : int
        k actually used (graph objectives).
    labels_ : ndarray (n,)

    Notes
    -----
    ``predict_proba`` is the softmax output :math:`P` for every objective but "centroid", whose
    network gives centres, not probabilities: there it returns the one-hot of the nearest centre
    (hard assignments, entropy 0), and ``transform`` the distances to the centres (as K-means).
    For the others ``transform`` returns the logits.
    """

    _tabular = True

    def __init__(self, n_clusters=2, *, objective="scan", hidden=(30,), activation=None, epochs="auto",
                 batch_size="auto", lr=0.01, n_neighbors=10, entropy_weight=2.0, balance_weight=0.0, n_init=3,
                 init="auto", init_samples=2000, init_epochs=300, standardize="auto", random_state=0,
                 device="auto", verbose=0):
        self.n_clusters = n_clusters
        self.objective = objective
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_neighbors = n_neighbors
        self.entropy_weight = entropy_weight
        self.balance_weight = balance_weight
        self.n_init = n_init
        self.init = init
        self.init_samples = init_samples
        self.init_epochs = init_epochs
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- validation ---------------------------------------------------------------------------------
    def _check_parameters(self) -> None:
        check_int(self.n_clusters, "n_clusters", 1)
        check_option(self.objective, "objective", OBJECTIVES)
        mnn.check_hidden(self.hidden, "(30,)", allow_auto=False)
        if self.activation is not None:
            check_option(self.activation, "activation", tuple(ACTIVATIONS))
        if self.epochs != "auto":
            check_int(self.epochs, "epochs", 0)
        if self.batch_size not in (None, "auto"):
            check_int(self.batch_size, "batch_size", 1)
        check_float(self.lr, "lr", 0.0, strict=True)
        check_int(self.n_neighbors, "n_neighbors", 1)
        check_float(self.entropy_weight, "entropy_weight", 0.0)
        check_float(self.balance_weight, "balance_weight", 0.0)
        check_int(self.n_init, "n_init", 1)
        check_option(self.init, "init", INITS)
        if self.init == "spectral" and self.objective == "centroid":
            raise ValueError("init='spectral' needs a softmax output; the centroid objective uses init='random'")
        check_int(self.init_samples, "init_samples", 2)
        check_int(self.init_epochs, "init_epochs", 0)
        if not (isinstance(self.standardize, (bool, np.bool_)) or self.standardize == "auto"):
            raise TypeError(f"standardize must be 'auto', True or False, got {self.standardize!r}")
        if self.random_state is not None:
            check_int(self.random_state, "random_state", 0)
        check_int(self.verbose, "verbose", 0)
        resolve_device(self.device)

    def _check_X(self, X, reset: bool) -> np.ndarray:
        _check_feature_names(self, X, reset=reset)  # a DataFrame's columns become feature_names_in_
        X = as_float_array(X, min_samples=2 if reset else 1)
        if X.ndim in (3, 4):  # images (n, H, W) or (n, C, H, W): the objective sees their pixels as features
            X = X.reshape(len(X), -1)
        if X.ndim != 2:
            raise ValueError(f"{type(self).__name__} takes a table (n_samples, n_features) or images (n, H, W) or "
                             f"(n, C, H, W), got shape {X.shape}")
        if reset:
            if len(X) < max(2, self.n_clusters):
                raise ValueError(f"n_samples={len(X)} should be >= n_clusters={self.n_clusters} (and >= 2)")
        else:
            check_is_fitted(self, "network_")
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input")
        return X

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    # -- networks -----------------------------------------------------------------------------------
    def _activation(self) -> str:
        return self.activation or DEFAULT_ACTIVATION[self.objective]

    def _build_modules(self, attributes: dict) -> dict[str, nn.Module]:
        d = int(attributes["n_features_in_"])
        outputs = d * self.n_clusters if self.objective == "centroid" else self.n_clusters
        hidden = mnn.check_hidden(self.hidden, "(30,)", allow_auto=False)
        network = build_network(d, outputs, hidden, self._activation())
        return {"network_": network.to(self._device())}

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster probabilities P (softmax of the logits) of a batch; graph and similarity objectives."""
        return F.softmax(self.network_(x), dim=1)

    # -- the per-batch loss -------------------------------------------------------------------------
    def _step(self, batch) -> dict:
        (index,) = batch
        x = self._X[index]
        if self.objective == "centroid":
            return {"loss": centroid_objective(self.network_(x), x, self.n_clusters)}
        if self.objective == "similarity":
            return {"loss": similarity_objective(self._forward(x), x)}
        neighbors = self._neighbors[index]  # (B, k)
        k = neighbors.shape[1]
        # one forward pass for the anchors and their neighbours: (B + B k) rows
        P_all = self._forward(torch.cat([x, self._X[neighbors.reshape(-1)]]))
        P, P_neighbors = P_all[:len(index)], P_all[len(index):].view(len(index), k, -1)
        return {"loss": self._graph_loss(P, P_neighbors)}

    def _graph_loss(self, P, P_neighbors):
        if self.objective == "ncut":
            return ncut_objective(P, P_neighbors, self.balance_weight)
        if self.objective == "mi":
            return mi_objective(P, P_neighbors)
        return scan_objective(P, P_neighbors, self.entropy_weight)

    @torch.no_grad()
    def _objective_on_data(self, generator: torch.Generator) -> float:
        """The objective on the whole training set, computed in batches (memory O(n k K), not n^2).

        Graph objectives: exact (P of all points, then the function on all n k pairs). Centroid:
        exact (centres = mean output over all points). Similarity: on a seeded subsample of at
        most ``SIMILARITY_EVAL_POINTS`` points, since it needs the m x m matrix.
        """
        self.network_.eval()
        X, n = self._X, len(self._X)
        if self.objective == "centroid":
            centres = self._centres()
            total = sum(float(squared_distances(X[s:s + INFERENCE_BATCH], centres).min(dim=1).values.sum())
                        for s in range(0, n, INFERENCE_BATCH))
            return total / n
        if self.objective == "similarity":
            index = torch.arange(n) if n <= SIMILARITY_EVAL_POINTS else \
                torch.randperm(n, generator=generator)[:SIMILARITY_EVAL_POINTS]
            x = X[index.to(X.device)]
            return float(similarity_objective(self._forward(x), x))
        P = torch.cat([self._forward(X[s:s + INFERENCE_BATCH]) for s in range(0, n, INFERENCE_BATCH)])
        return float(self._graph_loss(P, P[self._neighbors]))

    @torch.no_grad()
    def _centres(self) -> torch.Tensor:
        X, n = self._X, len(self._X)
        total = sum(self.network_(X[s:s + INFERENCE_BATCH]).sum(dim=0) for s in range(0, n, INFERENCE_BATCH))
        return (total / n).view(self.n_clusters, -1)

    # -- fit ----------------------------------------------------------------------------------------
    @keeps_global_rng
    def fit(self, X, y=None, validation_data=None):
        """Train ``n_init`` networks on X and keep the one with the lowest objective (labels ``y`` unused).

        ``validation_data=(X_val, y_val)`` adds ``val_ari`` and ``val_nmi`` to each epoch of
        ``history_`` (monitoring only: labels never enter the loss or the choice of restart).
        """
        self._check_parameters()
        X = self._check_X(X, reset=True)
        n, d = X.shape
        self.n_features_in_ = int(d)
        if self.standardize:
            self.mean_ = X.mean(axis=0, dtype=np.float64)
            if self.standardize == "auto" and X.min() >= 0.0 and X.max() <= 1.0:
                # one scale for all: the features' relative scale (and the k-NN graph) stay as given
                common = float(np.sqrt(X.var(axis=0, dtype=np.float64).mean()))
                self.scale_ = np.full(d, common if common > 0 else 1.0)
            else:
                scale = X.std(axis=0, dtype=np.float64)
                self.scale_ = np.where(scale > 0, scale, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(d), np.ones(d)
        Xs = self._scale(X)
        device = self._device()
        self._X = torch.as_tensor(Xs, device=device)
        self.n_neighbors_ = int(min(self.n_neighbors, n - 1))
        if self.objective in GRAPH_OBJECTIVES:
            self._neighbors = torch.as_tensor(knn_graph(Xs, self.n_neighbors_), device=device)
        validate = None
        if validation_data is not None:
            validate = self._validator(validation_data)
        seed = self._seed_value()
        generator = torch.Generator().manual_seed(seed)
        self._resolve_budget(n)
        best = None
        self.objective_values_, self.n_init_degenerate_ = [], []
        try:
            for restart in range(self.n_init):
                torch.manual_seed(seed + 7919 * restart)
                self.network_ = self._build_modules(vars(self))["network_"]
                if self._init() == "spectral":
                    self._spectral_init(Xs, seed + 7919 * restart, restart)
                trainer = Trainer(self.network_, epochs=self.epochs_, batch_size=self.batch_size_, lr=self.lr,
                                  name=f"nnobj-{self.objective}-{restart + 1}", seed=seed + 7919 * restart,
                                  verbose=self.verbose)
                history = trainer.fit(torch.arange(n, device=device), self._step, validate=validate)
                value = self._objective_on_data(generator)
                self.objective_values_.append(value)
                reason = degeneracy(self._predict_scaled(Xs), self.n_clusters)
                self.n_init_degenerate_.append(reason)
                # a degenerate restart is set aside unless every restart is degenerate
                key = (reason is not None, value)
                if best is None or key < best[0]:
                    best = (key, restart, self.network_, history)
            (_, self.objective_value_), self.best_init_, self.network_, self.history_ = best
            if all(self.n_init_degenerate_):
                warnings.warn(f"ObjectiveClustering: the fit is degenerate after {self.n_init} restart(s) "
                              f"({self.n_init_degenerate_[self.best_init_]}); try objective='scan' with a larger "
                              "entropy_weight, more restarts (n_init) or another n_neighbors",
                              DegenerateFitWarning, stacklevel=3)
            self.network_.eval()
            if self.objective == "centroid":
                centres = self._centres().cpu().numpy().astype(np.float64)
                self.cluster_centers_ = centres * self.scale_ + self.mean_
            self.labels_ = self.predict(X)
        finally:
            del self._X
            self.__dict__.pop("_neighbors", None)
        return self

    def _resolve_budget(self, n_samples: int) -> None:
        """Set ``batch_size_`` and ``epochs_`` for ``n_samples`` rows, resolving ``"auto"`` and None."""
        if self.batch_size == "auto":
            # equal batches: n = 1,030 in batches of 1,024 would leave a 6-anchor batch every other step, whose
            # batch statistics (scan's mean assignment, mi's marginals) are noise
            self.batch_size_ = math.ceil(n_samples / math.ceil(n_samples / AUTO_ANCHORS))
        else:
            self.batch_size_ = n_samples if self.batch_size is None else min(int(self.batch_size), n_samples)
        self.epochs_ = epochs_for_steps(AUTO_STEPS, n_samples, self.batch_size_) if self.epochs == "auto" \
            else int(self.epochs)

    def _init(self) -> str:
        if self.init != "auto":
            return self.init
        return "spectral" if self.objective in GRAPH_OBJECTIVES else "random"

    def _spectral_init(self, Xs: np.ndarray, seed: int, restart: int) -> None:
        """Pretrain the network on spectral-clustering pseudo-labels of a subsample (no true labels).

        ``init_samples`` points drawn at random are clustered by scikit-learn's SpectralClustering
        (k-NN affinity with ``n_neighbors_``); the network is then fitted to those labels by
        cross-entropy for ``init_epochs`` epochs (the Trainer, stage ``...-init``) in batches of the resolved
        ``batch_size_`` (at most ``init_samples``). Memory and time depend on ``init_samples`` only, not on n.
        """
        from sklearn.cluster import SpectralClustering

        n = len(Xs)
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(n, size=min(n, self.init_samples), replace=False))
        m = len(index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected"
            pseudo = SpectralClustering(self.n_clusters, affinity="nearest_neighbors",
                                        n_neighbors=min(self.n_neighbors_, m - 1), assign_labels="kmeans",
                                        random_state=seed % (2**31)).fit_predict(Xs[index])
        device = self._device()
        x = torch.as_tensor(Xs[index], device=device)
        target = torch.as_tensor(pseudo, dtype=torch.int64, device=device)

        def step(batch):
            xb, yb = batch
            return {"loss": F.cross_entropy(self.network_(xb), yb)}

        trainer = Trainer(self.network_, epochs=self.init_epochs, batch_size=min(self.batch_size_, m), lr=self.lr,
                          name=f"nnobj-init-{restart + 1}", seed=seed, verbose=self.verbose)
        self._init_history = trainer.fit((x, target), step)
        self.network_.train()

    def _validator(self, validation_data):
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        def check_X(X):
            X = as_float_array(X, "X_val")
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(f"X_val must have shape (n, {self.n_features_in_}), got {X.shape}")
            return self._scale(X)

        X_val, y_val = self._validation_pair(validation_data, check_X)

        def validate() -> dict:
            labels = self._predict_scaled(X_val)
            return {"val_ari": float(adjusted_rand_score(y_val, labels)),
                    "val_nmi": float(normalized_mutual_info_score(y_val, labels))}

        return validate

    # -- prediction -----------------------------------------------------------------------------------
    def _outputs_scaled(self, Xs: np.ndarray) -> np.ndarray:
        """Network outputs of standardised rows: (n, K) logits, or (n, K) squared distances (centroid).

        Computed in float64: a float32 product's last bits depend on where a row falls in the batch (BLAS
        kernels treat a block's edge rows apart), which made ``predict_proba`` and ``transform`` depend on
        the order of the samples by ~1e-8 (scikit-learn's ``check_methods_sample_order_invariance``)."""
        device = self._device()
        X64 = np.asarray(Xs, dtype=np.float64)
        if self.objective == "centroid":
            centres = torch.as_tensor((self.cluster_centers_ - self.mean_) / self.scale_, dtype=torch.float64,
                                      device=device) if hasattr(self, "cluster_centers_") \
                else self._centres().detach().double()
            return self._cat(self._batched(lambda x: squared_distances(x, centres), X64))
        network = copy.deepcopy(self.network_).double()
        return self._cat(self._batched(network, X64))

    def _predict_scaled(self, Xs: np.ndarray) -> np.ndarray:
        was_training = self.network_.training
        self.network_.eval()
        outputs = self._outputs_scaled(Xs)
        self.network_.train(was_training)
        return outputs.argmin(axis=1) if self.objective == "centroid" else outputs.argmax(axis=1)

    def predict(self, X) -> np.ndarray:
        """Cluster of each sample: argmax of P, or the nearest centre for "centroid"."""
        X = self._check_X(X, reset=False)
        return self._predict_scaled(self._scale(X))

    def predict_proba(self, X) -> np.ndarray:
        """Soft assignments P (softmax outputs); "centroid": one-hot of the nearest centre (hard)."""
        X = self._check_X(X, reset=False)
        self.network_.eval()
        outputs = self._outputs_scaled(self._scale(X))
        if self.objective == "centroid":
            return np.eye(self.n_clusters)[outputs.argmin(axis=1)]
        outputs = outputs.astype(np.float64)
        outputs -= outputs.max(axis=1, keepdims=True)
        proba = np.exp(outputs)
        return proba / proba.sum(axis=1, keepdims=True)

    def transform(self, X) -> np.ndarray:
        """Logits (n, K); "centroid": Euclidean distances to the centres in standardised units (n, K)."""
        X = self._check_X(X, reset=False)
        self.network_.eval()
        outputs = self._outputs_scaled(self._scale(X))
        return np.sqrt(np.maximum(outputs, 0.0)) if self.objective == "centroid" else outputs


__all__ = ["OBJECTIVES", "ObjectiveClustering", "centroid_objective", "co_assignment", "knn_graph",
           "mean_assignment_entropy", "mi_objective", "ncut_objective", "pair_joint", "scan_objective",
           "similarity_matrix", "similarity_objective"]
