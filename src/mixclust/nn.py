"""Networks shared by the deep models: MLP and convolutional encoders/decoders, Gaussian heads.

Shapes: tabular input is (batch, D); image input is (batch, C, H, W).

* MLP (default the VaDE architecture, Jiang et al. 2017): encoder D-500-500-2000-d,
  decoder d-2000-500-500-D, ReLU between layers.
* Convolutional (default the CAE of SPEC §1): encoder ``n_blocks`` x [Conv ``filters``
  3x3 (padding 1), ReLU, MaxPool 2x2], Flatten, Linear -> d; decoder Linear, reshape,
  ``n_blocks`` x [Conv 3x3, ReLU, nearest upsampling], Conv 3x3 -> C.

**Odd sizes.** Max-pooling floors odd sizes (28 -> 14 -> 7 -> 3), which a plain
x2 upsampling cannot invert (3 -> 6 -> 12 -> 24). The encoder records the size
of every feature map and the decoder upsamples to exactly those sizes in reverse
(3 -> 7 -> 14 -> 28, nearest neighbour), so the output always has the input's
shape, for any H, W and channel count, with no padding or cropping.
"""

from __future__ import annotations

import math

from torch import nn

MLP_HIDDEN = (500, 500, 2000)


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


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoderBody`: (B, d) -> (B, C, H, W), upsampling to the recorded sizes."""

    def __init__(self, latent_dim: int, input_shape, filters: int = 8, n_blocks: int = 3,
                 output_activation: str = "sigmoid"):
        super().__init__()
        channels, height, width = input_shape
        self.sizes = conv_feature_sizes(height, width, n_blocks)
        self.filters = filters
        self.project = nn.Sequential(nn.Linear(latent_dim, filters * math.prod(self.sizes[-1])), nn.ReLU())
        layers: list[nn.Module] = []
        for size in reversed(self.sizes[:-1]):
            layers += [nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(), nn.Upsample(size=size, mode="nearest")]
        layers.append(nn.Conv2d(filters, channels, 3, padding=1))
        if output_activation == "sigmoid":
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
                      n_blocks: int = 3, gaussian: bool = False, output_activation: str = "sigmoid"):
    """Encoder and decoder for ``arch`` in {"mlp", "conv"} and ``input_shape`` (D,) or (C, H, W)."""
    if arch == "mlp":
        n_inputs = math.prod(input_shape)
        body = nn.Sequential(nn.Flatten(), mlp([n_inputs, *hidden]), nn.ReLU()) if hidden else nn.Flatten()
        encoder = Encoder(body, hidden[-1] if hidden else n_inputs, latent_dim, gaussian)
        final = nn.Sigmoid() if output_activation == "sigmoid" else None
        decoder = nn.Sequential(mlp([latent_dim, *reversed(hidden), n_inputs], final), nn.Unflatten(1, input_shape))
        return encoder, decoder
    if arch == "conv":
        if len(input_shape) != 3:
            raise ValueError(f"arch='conv' needs image input (n, C, H, W), got sample shape {input_shape}")
        body = ConvEncoderBody(input_shape, filters, n_blocks)
        encoder = Encoder(body, body.out_features, latent_dim, gaussian)
        decoder = ConvDecoder(latent_dim, input_shape, filters, n_blocks, output_activation)
        return encoder, decoder
    raise ValueError(f"unknown arch {arch!r}; expected 'auto', 'mlp' or 'conv'")


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and Conv layer (SPEC §2 step 1)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
