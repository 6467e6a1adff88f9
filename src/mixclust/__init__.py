"""mixclust: deep and probabilistic clustering built on mixtures."""

from . import datasets, metrics
from ._deep import DegenerateFitWarning, EmptyClusterWarning
from ._io import load
from ._registry import MODELS, get_model
from .autoencoder import VAE, AEClustering, AutoEncoder
from .calibration import FewLabelCalibrator
from .gmm import GaussianMixture
from .gmm_ic import GaussianMixtureIC
from .moa import MoA
from .objective import ObjectiveClustering
from .vade import VaDE

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "MODELS", "datasets", "get_model", "load", "metrics", "__version__"]
__all__ += ["DegenerateFitWarning", "EmptyClusterWarning", "AEClustering", "AutoEncoder", "MoA", "VAE", "VaDE"]
__all__ += ["ObjectiveClustering", "GaussianMixtureIC", "FewLabelCalibrator"]
