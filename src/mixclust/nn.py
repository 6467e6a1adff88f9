"""Networks shared by the deep models: MLP and convolutional encoders/decoders, Gaussian heads.

Shapes: tabular input is (batch, D); image input is (batch, C, H, W).

* MLP (default the VaDE architecture, Jiang et al. 2017): encoder D-500-500-2000-d,
  decoder d-2000-500-500-D, ReLU between layers.
* Convolutional (default the CAE of SPEC §1): encoder ``n_blocks`` x [Conv ``filters``
  3x3 (padding 1), ReLU, MaxPool 2x2], Flatten, Linear -> d; decoder Linear, reshape,
  ``n_blocks`` x an upsampling block, Conv 3x3 -> C (sigmoid for data in [0, 1]). The
  upsampling block is chosen by ``decoder`` (:data:`DECODERS`):

  - ``"upsample"`` (the default): [Conv 3x3, ReLU, nearest upsampling]; the CAE of the
    MoA source ([MOA], SPEC §1) upsamples;
  - ``"transposed"``: [ConvTranspose 3x3 stride 2, ReLU]; the AE-vs-VAE source
    ([AEVAE], SPEC §3) decodes with transposed convolutions. Same number of parameters
    as ``"upsample"`` (one filters x filters x 3 x 3 kernel per block).

**Odd sizes.** Max-pooling floors odd sizes (28 -> 14 -> 7 -> 3), which a plain
x2 upsampling cannot invert (3 -> 6 -> 12 -> 24). The encoder records the size
of every feature map and the decoder maps back to exactly those sizes in reverse
(3 -> 7 -> 14 -> 28), so the output always has the input's shape, for any H, W
(odd or even, square or not) and channel count, with no cropping: ``"upsample"``
by nearest neighbour to the recorded size, ``"transposed"`` by choosing, per step
and per axis, the padding and output padding of the stride-2 transposed convolution
(:func:`transposed_padding`: an even target 2n gets padding 1 and output padding 1,
an odd target 2n + 1 padding 0 and output padding 0).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

from torch import nn

from ._base import check_int

MLP_HIDDEN = (500, 500, 2000)
#: ``hidden="auto"``: :data:`MLP_HIDDEN`, sized for 784 pixels, scaled by :math:`\sqrt{D / 784}` for D < 784
#: input features, and no layer narrower than this.
AUTO_HIDDEN_REFERENCE, AUTO_HIDDEN_MIN = 784, 64


def check_hidden(hidden, example: str = "(500, 500, 2000)", allow_auto: bool = True):
    """``hidden`` as a tuple of positive widths, or ``"auto"`` (:func:`resolve_hidden`) where allowed."""
    if allow_auto and isinstance(hidden, str) and hidden == "auto":
        return hidden
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (tuple, list)):
        also = ' or "auto"' if allow_auto else ""
        raise TypeError(f"hidden must be a tuple of layer widths such as {example}{also}, got {hidden!r}")
    return tuple(check_int(h, "every hidden width", 1) for h in hidden)


def resolve_hidden(hidden, input_shape: tuple) -> tuple:
    r"""The MLP's hidden widths for samples of ``input_shape``. ``"auto"``: each width :math:`w` of
    :data:`MLP_HIDDEN` becomes :math:`\max(64, \operatorname{round}(w \sqrt{\min(1, D / 784)}))` for
    :math:`D` input features, so 64 features get (143, 143, 571) and 4 get (64, 64, 143) instead of a network
    of 2.6 million weights sized for MNIST; 784 features and more keep (500, 500, 2000)."""
    hidden = check_hidden(hidden)
    if hidden != "auto":
        return hidden
    scale = math.sqrt(min(1.0, math.prod(input_shape) / AUTO_HIDDEN_REFERENCE))
    return tuple(max(AUTO_HIDDEN_MIN, int(round(w * scale))) for w in MLP_HIDDEN)


#: Upsampling blocks of the convolutional decoder (``decoder=`` of the deep estimators; see the module docstring).
DECODERS = ("upsample", "transposed")
#: Kernel and stride of the ``"transposed"`` decoder's transposed convolutions.
TRANSPOSED_KERNEL, TRANSPOSED_STRIDE = 3, 2


def mlp(sizes, final_activation: nn.Module | None = None) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


def conv_feature_sizes(height: int, width: int, n_blocks: int) -> list[tuple[int, int]]:
    """Spatial size after each max-pooling block, starting with the input: 28 -> [28, 14, 7, 3]."""
    sizes = [(height, width)]
    for _ in range(n_blocks):
        h, w = sizes[-1]
        if h < 2 or w < 2:
            raise ValueError(f"input of size {height}x{width} is too small for {n_blocks} pooling blocks")
        sizes.append((h // 2, w // 2))
    return sizes


class ConvEncoderBody(nn.Module):
    """``n_blocks`` x [Conv 3x3, ReLU, MaxPool 2], then Flatten: (B, C, H, W) -> (B, filters*h*w)."""

    def __init__(self, input_shape, filters: int = 8, n_blocks: int = 3):
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for i in range(n_blocks):
            layers += [nn.Conv2d(channels if i == 0 else filters, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.blocks = nn.Sequential(*layers, nn.Flatten())
        self.sizes = conv_feature_sizes(height, width, n_blocks)
        self.out_features = filters * math.prod(self.sizes[-1])

    def forward(self, x):
        return self.blocks(x)


def transposed_padding(in_size: int, out_size: int, kernel: int = TRANSPOSED_KERNEL,
                       stride: int = TRANSPOSED_STRIDE) -> tuple[int, int]:
    """``(padding, output_padding)`` of a ConvTranspose2d mapping ``in_size`` to exactly ``out_size`` along one axis.

    Its output size is ``(in - 1) * stride - 2 * padding + kernel + output_padding``, with
    ``0 <= output_padding < stride``; the smallest padding >= 0 that reaches ``out_size`` is chosen.
    With kernel 3, stride 2: 3 -> 7 is (0, 0), 7 -> 14 (1, 1), 14 -> 28 (1, 1).
    """
    base = (in_size - 1) * stride + kernel
    padding = max(0, -(-(base - out_size) // 2))
    output_padding = out_size - base + 2 * padding
    if not 0 <= output_padding < stride:
        raise ValueError(f"a transposed convolution (kernel {kernel}, stride {stride}) cannot map size {in_size} "
                         f"to {out_size}")
    return padding, output_padding


def transposed_output_size(in_size: int, padding: int, output_padding: int, kernel: int = TRANSPOSED_KERNEL,
                           stride: int = TRANSPOSED_STRIDE) -> int:
    """Output size of ConvTranspose2d along one axis (torch's formula, dilation 1)."""
    return (in_size - 1) * stride - 2 * padding + kernel + output_padding


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoderBody`: (B, d) -> (B, C, H, W), back to exactly the recorded sizes.

    ``kind="upsample"``: ``n_blocks`` x [Conv 3x3, ReLU, nearest Upsample to the recorded size];
    ``kind="transposed"``: ``n_blocks`` x [ConvTranspose2d 3x3 stride 2 (padding and output padding per
    axis from :func:`transposed_padding`), ReLU]. Either is followed by Conv 3x3 -> C and, for
    ``output_activation="sigmoid"``, a sigmoid (see the module docstring for why both exist).
    """

    def __init__(self, latent_dim: int, input_shape, filters: int = 8, n_blocks: int = 3,
                 output_activation: str = "sigmoid", kind: str = "upsample"):
        super().__init__()
        if kind not in DECODERS:
            raise ValueError(f"unknown decoder {kind!r}; expected one of {', '.join(map(repr, DECODERS))}")
        channels, height, width = input_shape
        self.sizes = conv_feature_sizes(height, width, n_blocks)
        self.filters = filters
        self.kind = kind
        self.project = nn.Sequential(nn.Linear(latent_dim, filters * math.prod(self.sizes[-1])), nn.ReLU())
        layers: list[nn.Module] = []
        for source, size in zip(reversed(self.sizes[1:]), reversed(self.sizes[:-1])):
            if kind == "upsample":
                layers += [nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(), nn.Upsample(size=size, mode="nearest")]
                continue
            pads = [transposed_padding(a, b) for a, b in zip(source, size)]
            reached = tuple(transposed_output_size(a, *pad) for a, pad in zip(source, pads))
            if reached != tuple(size):  # the formula's promise, checked for every step
                raise AssertionError(f"transposed decoder maps {source} to {reached}, not {size}")
            layers += [nn.ConvTranspose2d(filters, filters, TRANSPOSED_KERNEL, stride=TRANSPOSED_STRIDE,
                                          padding=tuple(p for p, _ in pads), output_padding=tuple(o for _, o in pads)),
                       nn.ReLU()]
        layers.append(nn.Conv2d(filters, channels, 3, padding=1))
        self.output_index = len(layers) - 1  # an index, not an attribute: the state_dict keys stay as they were
        self.sigmoid = output_activation == "sigmoid"
        if self.sigmoid:
            layers.append(nn.Sigmoid())
        self.blocks = nn.Sequential(*layers)

    def forward(self, z):
        h, w = self.sizes[-1]
        return self.blocks(self.project(z).view(z.shape[0], self.filters, h, w))


class Encoder(nn.Module):
    """Body plus a linear head: ``z`` (deterministic) or ``(mu, log_var)`` (``gaussian=True``)."""

    def __init__(self, body: nn.Module, body_features: int, latent_dim: int, gaussian: bool = False):
        super().__init__()
        self.body = body
        self.gaussian = gaussian
        self.mean = nn.Linear(body_features, latent_dim)
        self.log_var = nn.Linear(body_features, latent_dim) if gaussian else None

    def forward(self, x):
        h = self.body(x)
        if self.gaussian:
            return self.mean(h), self.log_var(h)
        return self.mean(h)


def build_autoencoder(arch: str, input_shape: tuple, latent_dim: int, *, hidden=MLP_HIDDEN, filters: int = 8,
                      n_blocks: int = 3, gaussian: bool = False, output_activation: str = "sigmoid",
                      decoder: str = "upsample"):
    """Encoder and decoder for ``arch`` in {"mlp", "conv"} and ``input_shape`` (D,) or (C, H, W).

    ``decoder`` in :data:`DECODERS` is the convolutional decoder's upsampling (:class:`ConvDecoder`); it is
    checked for every ``arch`` but the MLP decoder does not use it.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; expected one of {', '.join(map(repr, DECODERS))}")
    if arch == "mlp":
        n_inputs = math.prod(input_shape)
        body = nn.Sequential(nn.Flatten(), mlp([n_inputs, *hidden]), nn.ReLU()) if hidden else nn.Flatten()
        encoder = Encoder(body, hidden[-1] if hidden else n_inputs, latent_dim, gaussian)
        final = nn.Sigmoid() if output_activation == "sigmoid" else None
        return encoder, nn.Sequential(mlp([latent_dim, *reversed(hidden), n_inputs], final),
                                      nn.Unflatten(1, input_shape))
    if arch == "conv":
        if len(input_shape) != 3:
            raise ValueError(f"arch='conv' needs image input (n, C, H, W), got sample shape {input_shape}")
        body = ConvEncoderBody(input_shape, filters, n_blocks)
        encoder = Encoder(body, body.out_features, latent_dim, gaussian)
        return encoder, ConvDecoder(latent_dim, input_shape, filters, n_blocks, output_activation, kind=decoder)
    raise ValueError(f"unknown arch {arch!r}; expected 'auto', 'mlp' or 'conv'")


#: The mean pixel is clipped to this range before its logit starts a sigmoid decoder (a finite bias).
OUTPUT_START_RANGE = (1e-3, 1.0 - 1e-3)
_output_start = {"enabled": True}


@contextmanager
def zero_output_start():
    """Within this block :func:`start_output_at_mean` does nothing: decoders keep the zero output bias of
    :func:`xavier_init` (a study that reruns a source's own initialisation uses it)."""
    previous = _output_start["enabled"]
    _output_start["enabled"] = False
    try:
        yield
    finally:
        _output_start["enabled"] = previous


def start_output_at_mean(module: nn.Module, X) -> None:
    r"""Start every sigmoid :class:`ConvDecoder` in ``module`` near the data's mean pixel, not at 0.5.

    Its output convolution's bias becomes :math:`\operatorname{logit}(\bar x)`, :math:`\bar x` the mean of
    ``X`` (data in [0, 1], as a sigmoid decoder implies; clipped to :data:`OUTPUT_START_RANGE`), so before
    training the output sits near the mean grey (the output convolution's random weights add a little around
    it). Call it after the weights are initialised. Why: through a sigmoid the MSE gradient
    :math:`(\hat x - x)\,\hat x (1 - \hat x)` vanishes once :math:`\hat x` saturates near 0, and conv
    autoencoders trained on MNIST with MSE slid into an all-black output they never left (reports/aevae, "the
    black-output plateau"; benchmarks/probes/probe_output_start.py); from near the mean grey they learn
    (tests/test_autoencoder.py). MLP decoders keep zero biases: every default model uses them, measured so.
    """
    decoders = [layer for layer in module.modules() if isinstance(layer, ConvDecoder) and layer.sigmoid]
    if not decoders or not _output_start["enabled"]:
        return  # no pass over X (it may be a memory map) when there is nothing to start
    low, high = OUTPUT_START_RANGE
    mean = min(max(float(X.mean()), low), high)
    for decoder in decoders:
        nn.init.constant_(decoder.blocks[decoder.output_index].bias, math.log(mean / (1.0 - mean)))


def init_network(module: nn.Module, X) -> None:
    """Every model's start: :func:`xavier_init`, then :func:`start_output_at_mean` on the data ``X``."""
    xavier_init(module)
    start_output_at_mean(module, X)


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear, Conv and transposed Conv layer (SPEC §2 step 1).

    (ConvTranspose2d is not a Conv2d; networks without one draw exactly the same weights as before it was listed.)
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
