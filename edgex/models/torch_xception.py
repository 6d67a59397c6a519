"""Xception in PyTorch, faithful to Keras' implementation so ported Keras weights give Keras' outputs.

Chollet's architecture as `keras.applications.Xception` builds it: entry flow (3x3/32 stride-2
valid conv, 3x3/64 valid conv, three blocks of two separable convs + 3x3/2 max-pool with a strided
1x1 conv residual), middle flow (blocks of three ReLU-separable-conv-BN with identity residuals),
exit flow (728->1024 block, then separable 1536 and 2048 with ReLU), global average pooling, head.

TensorFlow's 'same' padding for a 3x3 stride-2 max-pool pads 0 before and 1 after on even sizes
(1 and 1 on odd ones); `SamePadMaxPool` reproduces that exactly. BatchNorm uses Keras' epsilon 1e-3.
The input is NCHW, any size >= 71 (the stem and the four stride-2 stages need that much).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgex.preprocess import MAX_INPUT_SIDE

# Channel widths at multiplier 1: stem conv1, stem conv2, blocks 2, 3, 4 (and middle), exit residual,
# exit separable 1, exit separable 2.
BASE_CHANNELS = (32, 64, 128, 256, 728, 1024, 1536, 2048)
MIN_INPUT_SIZE = 71
# What a config may ask for (a sidecar is untrusted data: a huge count must not build for hours)
MAX_CHANNELS, MAX_MIDDLE_BLOCKS, MAX_CLASSES = 8192, 64, 100_000
HEADS = ("features", "linear", "dense")
KERAS_BN_EPSILON = 1e-3
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 in PyTorch's convention.


def scaled_channels(width: float) -> tuple[int, ...]:
    """Channel widths for a width multiplier, rounded to multiples of 8 as edgex's Keras builder does."""
    return tuple(max(8, int(round(n * width / 8)) * 8) for n in BASE_CHANNELS)


@dataclass
class XceptionConfig:
    """Everything needed to rebuild the module; written into the port's JSON sidecar."""

    channels: tuple[int, ...] = BASE_CHANNELS
    middle_blocks: int = 8
    num_classes: int = 1000
    head: str = "linear"
    hidden_units: int = 0
    hidden_activation: str = "relu"
    dropout: float = 0.0
    output_activation: str | None = None
    input_size: tuple[int, int] = (299, 299)
    width: float = 1.0
    bn_epsilon: float = KERAS_BN_EPSILON
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels = tuple(_bounded_int("channels", c, 1, MAX_CHANNELS) for c in self.channels)
        self.input_size = tuple(_bounded_int("input_size", s, 1, MAX_INPUT_SIDE) for s in self.input_size)
        self.middle_blocks = _bounded_int("middle_blocks", self.middle_blocks, 0, MAX_MIDDLE_BLOCKS)
        self.num_classes = _bounded_int("num_classes", self.num_classes, 1, MAX_CLASSES)
        self.hidden_units = _bounded_int("hidden_units", self.hidden_units, 0, MAX_CHANNELS)
        self.bn_epsilon = _bounded_float("bn_epsilon", self.bn_epsilon, 0.0, 1.0, low_open=True)
        self.dropout = _bounded_float("dropout", self.dropout, 0.0, 1.0)
        self.width = _bounded_float("width", self.width, 0.0, 64.0, low_open=True)
        if len(self.channels) != len(BASE_CHANNELS):
            raise ValueError(f"channels must list {len(BASE_CHANNELS)} widths, got {len(self.channels)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; use one of {', '.join(HEADS)}")
        if self.head == "dense" and self.hidden_units < 1:
            raise ValueError("the dense head needs hidden_units >= 1")
        if self.hidden_activation not in _ACTIVATIONS or self.output_activation not in _ACTIVATIONS:
            raise ValueError(f"activations must be one of {sorted(k for k in _ACTIVATIONS if k)}")
        if min(self.input_size) < MIN_INPUT_SIZE:
            raise ValueError(f"Xception needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}")

    @classmethod
    def scaled(cls, width: float = 1.0, middle_blocks: int = 8, **kwargs) -> XceptionConfig:
        """A variant with a width multiplier (1/8 for tests) and any number of middle blocks."""
        return cls(channels=scaled_channels(width), middle_blocks=middle_blocks, width=width, **kwargs)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"], data["input_size"] = list(self.channels), list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> XceptionConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Xception config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


def _bounded_int(name: str, value, low: int, high: int) -> int:
    """A config integer as stored (an int, not a float or bool) within what can be built: a sidecar is data."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def _bounded_float(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    """A config number as stored (int or float, not bool or text), finite and within [low, high]
    ((low, high] with `low_open`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            (low < value if low_open else low <= value) and value <= high):  # NaN fails here too
        raise ValueError(f"{name} must be a number {'above' if low_open else 'from'} {low} "
                         f"{'and at most' if low_open else 'to'} {high}, got {value!r}")
    return float(value)


_ACTIVATIONS = {None: None, "linear": None, "relu": F.relu, "softmax": lambda x: F.softmax(x, dim=-1),
                "sigmoid": torch.sigmoid}


class SamePadMaxPool(nn.Module):
    """3x3 stride-2 max-pool with TensorFlow's 'same' padding.

    TF pads (total // 2) before and the rest after: 0/1 on even sizes, 1/1 on odd ones. PyTorch's
    ceil_mode adds the trailing window on even sizes; padding=1 covers odd ones. Padding is -inf.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = (int(x.shape[-2]) % 2, int(x.shape[-1]) % 2)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=padding, ceil_mode=True)


class SeparableConvBN(nn.Module):
    """[ReLU] -> depthwise 3x3 ('same', stride 1) -> pointwise 1x1 -> BatchNorm, as Keras' SeparableConv2D + BN."""

    def __init__(self, c_in: int, c_out: int, relu_first: bool = True, eps: float = KERAS_BN_EPSILON):
        super().__init__()
        self.relu_first = relu_first
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=eps, momentum=KERAS_BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_first:
            x = F.relu(x)
        return self.bn(self.pointwise(self.depthwise(x)))


class ConvBN(nn.Module):
    """Plain convolution (no bias) + BatchNorm; 'valid' or stride-2 1x1 (which needs no padding in TF either)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, eps: float = KERAS_BN_EPSILON):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=eps, momentum=KERAS_BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DownBlock(nn.Module):
    """Two separable convs, max-pool /2, plus a strided 1x1 conv residual (entry flow and exit block)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, relu_first: bool = True, eps: float = KERAS_BN_EPSILON):
        super().__init__()
        self.residual = ConvBN(c_in, c_out, 1, stride=2, eps=eps)
        self.sep1 = SeparableConvBN(c_in, c_mid, relu_first, eps=eps)
        self.sep2 = SeparableConvBN(c_mid, c_out, eps=eps)
        self.pool = SamePadMaxPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.sep2(self.sep1(x))) + self.residual(x)


class MiddleBlock(nn.Module):
    """Three ReLU-separable-conv-BN with an identity residual."""

    def __init__(self, channels: int, eps: float = KERAS_BN_EPSILON):
        super().__init__()
        self.seps = nn.Sequential(*(SeparableConvBN(channels, channels, eps=eps) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seps(x) + x


class Xception(nn.Module):
    """The network; `forward` takes an NCHW float batch preprocessed as recorded (Xception: x/127.5 - 1)."""

    def __init__(self, config: XceptionConfig | None = None):
        super().__init__()
        self.config = config = config or XceptionConfig()
        c32, c64, c128, c256, c728, c1024, c1536, c2048 = config.channels
        eps = config.bn_epsilon
        self.stem1 = ConvBN(3, c32, 3, stride=2, eps=eps)
        self.stem2 = ConvBN(c32, c64, 3, eps=eps)
        self.entry = nn.Sequential(
            DownBlock(c64, c128, c128, relu_first=False, eps=eps),
            DownBlock(c128, c256, c256, eps=eps),
            DownBlock(c256, c728, c728, eps=eps),
        )
        self.middle = nn.Sequential(*(MiddleBlock(c728, eps=eps) for _ in range(config.middle_blocks)))
        self.exit = DownBlock(c728, c728, c1024, eps=eps)
        self.exit_sep1 = SeparableConvBN(c1024, c1536, relu_first=False, eps=eps)
        self.exit_sep2 = SeparableConvBN(c1536, c2048, relu_first=False, eps=eps)
        self.feature_size = c2048
        if config.head == "linear":
            self.head = nn.Linear(c2048, config.num_classes)
        elif config.head == "dense":
            self.head = nn.Sequential(nn.Linear(c2048, config.hidden_units), nn.Dropout(config.dropout),
                                      nn.Linear(config.hidden_units, config.num_classes))
        else:
            self.head = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled 2048-d (scaled) features."""
        x = F.relu(self.stem1(x))
        x = F.relu(self.stem2(x))
        x = self.middle(self.entry(x))
        x = self.exit(x)
        x = F.relu(self.exit_sep1(x))
        x = F.relu(self.exit_sep2(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.config.head == "linear":
            x = self.head(x)
        elif self.config.head == "dense":
            first, dropout, last = self.head
            hidden = _ACTIVATIONS[self.config.hidden_activation]
            x = first(x)
            x = hidden(x) if hidden is not None else x
            x = last(dropout(x))
        out = _ACTIVATIONS[self.config.output_activation]
        return out(x) if out is not None and self.head is not None else x


def keras_parameter_count(model: nn.Module) -> int:
    """Parameters counted as Keras counts them: weights plus BatchNorm moving mean and variance."""
    count = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            count += module.running_mean.numel() + module.running_var.numel()
    return count


def build_xception(config: XceptionConfig | None = None) -> Xception:
    """An Xception in eval mode (BatchNorm uses its moving statistics, dropout off)."""
    return Xception(config).eval()
