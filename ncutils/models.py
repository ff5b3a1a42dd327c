"""Classifier architectures that list their probe points.

:func:`build_model` builds one of four families, all used by the Neural Collapse
papers the book reproduces:

- ``"mlp"``: fully connected blocks Linear -> (BatchNorm1d) -> activation
  (Parker et al. 2023's MLP6; Rangamani et al. 2023's ``mlp_large``);
- ``"vgg"``: VGG-style 3x3 conv blocks with max-pooling and a fully connected head
  (Parker et al. 2023; Simonyan & Zisserman 2015), with a width multiplier;
- ``"resnet18"``: torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first
  conv, no max-pool) and the input channels adapted (He et al. 2016);
- ``"convnet"``: Rangamani et al. 2023's deep plain ConvNet (``convnet_deep``):
  conv -> BatchNorm -> ReLU blocks, the first two downsampling with 2x2 stride-2 convs.

Every model carries ``probe_points``, the hidden representations a layer sweep
measures (see :mod:`ncutils.probe`), in depth order from the raw input to the
penultimate features, and ``classifier_name``, the dotted name of its final
``nn.Linear``.

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden
Layers of Classification Neural Networks".
Rangamani, Lindegaard, Galanti, Poggio (ICML 2023), "Feature Learning in Deep
Classifiers through Intermediate Neural Collapse".
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "ARCH_VERSIONS",
    "VGG_CONFIGS",
    "ProbePoint",
    "architecture_version",
    "available_architectures",
    "build_model",
    "check_arch_kwargs",
]


@dataclass(frozen=True)
class ProbePoint:
    """One hidden representation of a model that a layer sweep measures.

    Parameters
    ----------
    name : str
        Short human-readable name (``"input"``, ``"fc3"``, ``"layer2.1"``).
    module : str or None
        Dotted name of the submodule whose *output* is the representation; ``None``
        for the raw input of the model.
    consumer : str or None
        Dotted name of the ``nn.Linear``/``nn.Conv2d`` that reads this representation
        next (its weight is what Rangamani et al.'s alignment compares with the class
        means), or ``None`` when no single layer reads it directly.
    """

    name: str
    module: str | None
    consumer: str | None


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}

# Channel counts of the conv layers, "M" a 2x2 max-pool (Simonyan & Zisserman 2015, table 1).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _check_image_shape(arch: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(
            f"arch {arch!r} needs image inputs of shape (channels, height, width), got "
            f"input_shape={input_shape}; use arch='mlp' for vector data such as mnist1d"
        )
    return input_shape  # type: ignore[return-value]


def _attach_probe_points(
    model: nn.Module, probe_points: list[ProbePoint], classifier_name: str
) -> nn.Module:
    """Attach the probe metadata and check that every name it uses exists."""
    modules = dict(model.named_modules())
    for point in probe_points:
        for dotted in (point.module, point.consumer):
            if dotted is not None and dotted not in modules:
                raise AssertionError(f"probe point {point} names a missing submodule {dotted!r}")
    if not isinstance(modules.get(classifier_name), nn.Linear):
        raise AssertionError(f"classifier {classifier_name!r} is not an nn.Linear")
    model.probe_points = probe_points
    model.classifier_name = classifier_name
    return model


class MLP(nn.Module):
    """Fully connected classifier: ``depth - 1`` hidden blocks and a linear classifier.

    Each hidden block is ``Linear -> BatchNorm1d (optional) -> activation``; inputs of
    any shape are flattened first.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        depth: int,
        width: int,
        activation: str,
        batchnorm: bool,
        bias: bool,
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        blocks = []
        fan_in = in_features
        for _ in range(depth - 1):
            block = nn.Sequential()
            block.add_module("linear", nn.Linear(fan_in, width, bias=bias))
            if batchnorm:
                block.add_module("norm", nn.BatchNorm1d(width))
            block.add_module("act", _activation(activation))
            blocks.append(block)
            fan_in = width
        self.hidden = nn.Sequential(*blocks)
        self.classifier = nn.Linear(fan_in, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.flatten(inputs)))


def _mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    depth: int = 6,
    width: int = 512,
    activation: str = "relu",
    batchnorm: bool = False,
    bias: bool = True,
) -> nn.Module:
    """MLP; ``depth`` counts the Linear layers *including* the classifier (MLP6 = depth 6)."""
    _positive_int(depth, "depth")
    _positive_int(width, "width")
    _activation(activation)
    model = MLP(math.prod(input_shape), num_classes, depth, width, activation, batchnorm, bias)
    readers = [f"hidden.{index}.linear" for index in range(depth - 1)] + ["classifier"]
    points = [ProbePoint("input", None, readers[0])]
    points += [
        ProbePoint(f"fc{index + 1}", f"hidden.{index}", readers[index + 1])
        for index in range(depth - 1)
    ]
    return _attach_probe_points(model, points, "classifier")


class ConvStack(nn.Module):
    """Conv blocks, a flatten, an optional fully connected head and a linear classifier."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.head = head
        self.classifier = classifier

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.flatten(self.features(inputs))))


def _conv_block(
    in_channels: int, out_channels: int, kernel: int, stride: int, padding: int,
    batchnorm: bool, activation: str, bias: bool,
) -> nn.Sequential:
    block = nn.Sequential()
    block.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel, stride, padding,
                                       bias=bias))
    if batchnorm:
        block.add_module("norm", nn.BatchNorm2d(out_channels))
    block.add_module("act", _activation(activation))
    return block


def _fc_head(in_features: int, widths: Sequence[int], activation: str) -> tuple[nn.Sequential, int]:
    head = nn.Sequential()
    for index, width in enumerate(widths):
        block = nn.Sequential()
        block.add_module("linear", nn.Linear(in_features, width))
        block.add_module("act", _activation(activation))
        head.add_module(str(index), block)
        in_features = width
    return head, in_features


def _conv_stack_probe_points(
    conv_names: list[str], num_fc: int
) -> list[ProbePoint]:
    """Probe points of a ConvStack: input, each conv block, each head block."""
    modules = [f"features.{index}" for index in range(len(conv_names))]
    modules += [f"head.{index}" for index in range(num_fc)]
    names = conv_names + [f"fc{index + 1}" for index in range(num_fc)]
    readers = [f"features.{index}.conv" for index in range(len(conv_names))]
    readers += [f"head.{index}.linear" for index in range(num_fc)] + ["classifier"]
    points = [ProbePoint("input", None, readers[0])]
    points += [ProbePoint(name, module, readers[index + 1])
               for index, (name, module) in enumerate(zip(names, modules))]
    return points


def _vgg(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    config: str | Sequence[int | str] = "vgg11",
    width: float = 1.0,
    fc_widths: Sequence[int] = (4096, 4096),
    batchnorm: bool = True,
    activation: str = "relu",
) -> nn.Module:
    """VGG-style CNN.

    ``config`` is a name in :data:`VGG_CONFIGS` or a sequence of conv channel counts
    and ``"M"`` (2x2 max-pool). Conv channels are multiplied by ``width`` (the head
    widths ``fc_widths`` too), so ``width=0.125`` gives a narrow network for the cpu
    profile. A max-pool that would shrink the map below 1x1 is skipped, so the same
    config works for 8x8, 28 px and 32 px inputs. Each probe point after a conv is the
    output of its block: conv -> BatchNorm -> activation (-> max-pool when one follows).
    """
    channels, height, width_px = _check_image_shape("vgg", input_shape)
    if isinstance(config, str):
        if config not in VGG_CONFIGS:
            raise ValueError(f"unknown VGG config {config!r}; choose one of "
                             f"{sorted(VGG_CONFIGS)} or pass a list of channels and 'M'")
        config = VGG_CONFIGS[config]
    config = tuple(config)
    if not any(item != "M" for item in config):
        raise ValueError(f"VGG config must contain at least one conv layer, got {config}")
    for item in config:
        if item != "M":
            _positive_int(item, "VGG config channel count")
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    for fc_width in fc_widths:
        _positive_int(fc_width, "fc_widths entry")
    _activation(activation)

    features = nn.Sequential()
    conv_names: list[str] = []
    in_channels = channels
    for item in config:
        if item == "M":
            if not conv_names:
                raise ValueError(f"VGG config must start with a conv layer, got {config}")
            if min(height, width_px) // 2 >= 1:
                features[-1].add_module("pool", nn.MaxPool2d(2))
                height, width_px = height // 2, width_px // 2
            continue
        out_channels = _scaled(item, width)
        features.add_module(str(len(conv_names)), _conv_block(
            in_channels, out_channels, 3, 1, 1, batchnorm, activation, bias=not batchnorm))
        conv_names.append(f"conv{len(conv_names) + 1}")
        in_channels = out_channels
    head, head_out = _fc_head(in_channels * height * width_px,
                              [_scaled(fc, width) for fc in fc_widths], activation)
    model = ConvStack(features, head, nn.Linear(head_out, num_classes))
    return _attach_probe_points(model, _conv_stack_probe_points(conv_names, len(fc_widths)),
                                "classifier")


def _convnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    depth: int = 20,
    width: int = 128,
    activation: str = "relu",
) -> nn.Module:
    """Deep plain ConvNet of Rangamani et al. 2023 (``convnet_deep``: depth 20, width 128).

    ``depth`` conv blocks of ``width`` channels, each conv (no bias) -> BatchNorm2d ->
    activation. The first two blocks downsample with 2x2 stride-2 convs (when the map
    is at least 2x2; otherwise they are 3x3 stride-1 like the rest), the others are
    3x3 with padding 1. The last block's output is flattened and read by the classifier.
    """
    channels, height, width_px = _check_image_shape("convnet", input_shape)
    _positive_int(depth, "depth")
    _positive_int(width, "width")
    _activation(activation)
    features = nn.Sequential()
    in_channels = channels
    for index in range(depth):
        if index < 2 and min(height, width_px) >= 2:
            block = _conv_block(in_channels, width, 2, 2, 0, True, activation, bias=False)
            height, width_px = height // 2, width_px // 2
        else:
            block = _conv_block(in_channels, width, 3, 1, 1, True, activation, bias=False)
        features.add_module(str(index), block)
        in_channels = width
    model = ConvStack(features, nn.Sequential(), nn.Linear(width * height * width_px, num_classes))
    conv_names = [f"conv{index + 1}" for index in range(depth)]
    return _attach_probe_points(model, _conv_stack_probe_points(conv_names, 0), "classifier")


@functools.cache
def _cifar_resnet18_class() -> type:
    """The ResNet-18 class, built on first use: importing torchvision takes seconds."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class CifarResNet18(ResNet):
        """torchvision's ResNet-18 with the CIFAR stem and configurable stage widths.

        The stem is a 3x3 stride-1 conv (no max-pool: ``maxpool`` is an identity), the
        input channels follow the data. With ``widths=(64, 128, 256, 512)`` the layers,
        parameter names, shapes and initialisation are those of
        ``torchvision.models.resnet18`` apart from the stem; ``forward`` is torchvision's.
        """

        def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int]) -> None:
            # ResNet.__init__ hard-codes the widths, so the attributes it sets are set here
            # and its own _make_layer builds the stages.
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = widths[0]
            self.dilation = 1
            self.groups = 1
            self.base_width = 64
            self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1,
                                   bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            self.layer1 = self._make_layer(BasicBlock, widths[0], 2)
            self.layer2 = self._make_layer(BasicBlock, widths[1], 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, widths[2], 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, widths[3], 2, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[3], num_classes)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.constant_(module.weight, 1)
                    nn.init.constant_(module.bias, 0)

    return CifarResNet18


def _resnet18(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    width: int = 64,
) -> nn.Module:
    """ResNet-18, CIFAR stem; stage widths ``(w, 2w, 4w, 8w)`` with ``w = width``."""
    channels, _, _ = _check_image_shape("resnet18", input_shape)
    _positive_int(width, "width")
    model = _cifar_resnet18_class()(channels, num_classes, [width, 2 * width, 4 * width, 8 * width])
    blocks = [f"layer{stage}.{index}" for stage in range(1, 5) for index in range(2)]
    points = [ProbePoint("input", None, "conv1"), ProbePoint("stem", "relu", "layer1.0.conv1")]
    for index, block in enumerate(blocks):
        # The last block's map is average-pooled before fc reads it: no single consumer.
        consumer = f"{blocks[index + 1]}.conv1" if index + 1 < len(blocks) else None
        points.append(ProbePoint(block, block, consumer))
    points.append(ProbePoint("avgpool", "avgpool", "fc"))
    return _attach_probe_points(model, points, "fc")


# --------------------------------------------------------------------------- Rangamani et al.
# The official code's own networks (``src/Models.py`` of mariuslindegaard/Intermediate_Neural_Collapse),
# with its module names, so that the probe points carry the names of the official hooks: the
# *input* of every Linear (MLP, hook suffix ``fc``) and of every Conv2d and the classifier
# (ConvNet, hook suffixes ``conv`` and ``fc``).


class RangamaniMLP(nn.Module):
    """``mlp_large``-style MLP: ``flatten``, blocks ``block{i}`` = Linear (``fc``) ->
    BatchNorm1d (``bn``) -> ReLU (``relu``), then the classifier ``fc``; every Linear,
    the classifier included, has a bias only when ``bias=True`` (the official model name
    needs ``"bias"`` for one)."""

    def __init__(self, in_features: int, num_classes: int, widths: Sequence[int],
                 bias: bool, batchnorm: bool) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {"flatten": nn.Flatten()}
        fan_in = in_features
        for index, width in enumerate(widths):
            block = nn.Sequential()
            block.add_module("fc", nn.Linear(fan_in, width, bias=bias))
            if batchnorm:
                block.add_module("bn", nn.BatchNorm1d(width))
            block.add_module("relu", nn.ReLU())
            layers[f"block{index}"] = block
            fan_in = width
        layers["fc"] = nn.Linear(fan_in, num_classes, bias=bias)
        self.model = nn.Sequential()
        for name, module in layers.items():
            self.model.add_module(name, module)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)


def _rangamani_mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    depth: int = 10,
    width: int = 1024,
    bias: bool = False,
    batchnorm: bool = True,
) -> nn.Module:
    """Rangamani et al.'s MLP: ``depth`` hidden blocks of ``width`` (``mlp_large``: 10 x 1024).

    Probe points are the inputs of the Linear layers, named as the official hooks:
    ``block0.fc`` (the flattened raw input), ``block1.fc``, ..., ``fc`` (the penultimate
    features); each one's consumer is that Linear.
    """
    _positive_int(depth, "depth")
    _positive_int(width, "width")
    model = RangamaniMLP(math.prod(input_shape), num_classes, [width] * depth, bool(bias),
                         bool(batchnorm))
    readers = [f"block{index}.fc" for index in range(depth)] + ["fc"]
    sources = [None] + [f"model.block{index}" for index in range(depth)]
    points = [ProbePoint(reader, source, f"model.{reader}")
              for reader, source in zip(readers, sources)]
    return _attach_probe_points(model, points, "model.fc")


class RangamaniConvNet(nn.Module):
    """``convnet_deep``-style ConvNet: blocks ``b{i}`` = Conv2d (``conv``) -> BatchNorm2d
    (``bn``) -> ReLU (``relu``), ``flatten``, classifier ``fc`` (with a bias, as the
    official code). ``b0`` has no ReLU (official ``use_relu=False``); ``b0`` and ``b1``
    are 2x2 stride-2 convs (the official ``downsampling_layers=[2, 2]``), the rest 3x3
    with padding 1."""

    def __init__(self, in_channels: int, spatial: tuple[int, int], num_classes: int,
                 widths: Sequence[int], bias: bool, batchnorm: bool) -> None:
        super().__init__()
        self.model = nn.Sequential()
        height, width_px = spatial
        channels = in_channels
        for index, out_channels in enumerate(widths):
            block = nn.Sequential()
            if index < 2:
                block.add_module("conv", nn.Conv2d(channels, out_channels, 2, 2, 0, bias=bias))
                height, width_px = height // 2, width_px // 2
            else:
                block.add_module("conv", nn.Conv2d(channels, out_channels, 3, 1, 1, bias=bias))
            if batchnorm:
                block.add_module("bn", nn.BatchNorm2d(out_channels))
            if index > 0:
                block.add_module("relu", nn.ReLU())
            self.model.add_module(f"b{index}", block)
            channels = out_channels
        self.model.add_module("flatten", nn.Flatten())
        self.model.add_module("fc", nn.Linear(channels * height * width_px, num_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)


def _rangamani_convnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    depth: int = 20,
    width: int = 128,
    bias: bool = False,
    batchnorm: bool = True,
) -> nn.Module:
    """Rangamani et al.'s deep ConvNet: ``depth`` conv blocks of ``width`` channels
    (``convnet_deep``: 20 x 128).

    Probe points are the inputs of every Conv2d and of the classifier, named as the
    official hooks: ``b0.conv`` (the raw image), ``b1.conv``, ..., ``fc`` (the flattened
    output of the last block). Inputs need at least 4 x 4 pixels (two halvings).
    """
    channels, height, width_px = _check_image_shape("rangamani_convnet", input_shape)
    _positive_int(depth, "depth", minimum=2)
    _positive_int(width, "width")
    if min(height, width_px) < 4:
        raise ValueError(f"rangamani_convnet halves the image twice and needs at least 4x4 "
                         f"pixels, got {height}x{width_px}")
    model = RangamaniConvNet(channels, (height, width_px), num_classes, [width] * depth,
                             bool(bias), bool(batchnorm))
    readers = [f"b{index}.conv" for index in range(depth)] + ["fc"]
    sources = [None] + [f"model.b{index}" for index in range(depth)]
    points = [ProbePoint(reader, source, f"model.{reader}")
              for reader, source in zip(readers, sources)]
    return _attach_probe_points(model, points, "model.fc")


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,
    "vgg": _vgg,
    "resnet18": _resnet18,
    "convnet": _convnet,
    "rangamani_convnet": _rangamani_convnet,
    "rangamani_mlp": _rangamani_mlp,
}


#: Version of each architecture's definition (layers, defaults, initialisation, forward).
#: A trained run's key holds the version of its own architecture only, so adding or
#: changing one architecture retrains nothing else. Bump a version with any change to
#: what that architecture computes, including shared helpers it uses;
#: ``tests/test_models.py`` pins each version to a checksum of the state-dict layout and
#: of the output on a fixed input, and fails when a change comes without a bump.
ARCH_VERSIONS: dict[str, int] = {
    "convnet": 1,
    "mlp": 1,
    "rangamani_convnet": 1,
    "rangamani_mlp": 1,
    "resnet18": 1,
    "vgg": 1,
}


def architecture_version(arch: str) -> int:
    """The version of one architecture's definition (see :data:`ARCH_VERSIONS`).

    Raises
    ------
    KeyError
        Unknown architecture.

    Examples
    --------
    >>> architecture_version("mlp") >= 1
    True
    """
    if arch not in ARCH_VERSIONS:
        raise KeyError(f"unknown architecture {arch!r}; available: {available_architectures()}")
    return ARCH_VERSIONS[arch]


def available_architectures() -> list[str]:
    """Names accepted by :func:`build_model`.

    Examples
    --------
    >>> available_architectures()
    ['convnet', 'mlp', 'rangamani_convnet', 'rangamani_mlp', 'resnet18', 'vgg']
    """
    return sorted(_BUILDERS)


def check_arch_kwargs(arch: str, arch_kwargs: Mapping[str, Any]) -> None:
    """Raise if ``arch`` is unknown or ``arch_kwargs`` names an argument it does not take.

    Raises
    ------
    KeyError
        Unknown architecture.
    ValueError
        An argument the architecture does not accept (the message lists those it does).
    """
    if arch not in _BUILDERS:
        raise KeyError(f"unknown architecture {arch!r}; available: {available_architectures()}")
    accepted = [name for name, parameter in inspect.signature(_BUILDERS[arch]).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(arch_kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"arch {arch!r} does not accept {unknown}; it accepts {accepted}")


def build_model(
    arch: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    **arch_kwargs: Any,
) -> nn.Module:
    """Build a classifier that lists its probe points.

    Parameters
    ----------
    arch : {"mlp", "vgg", "resnet18", "convnet", "rangamani_mlp", "rangamani_convnet"}
        Architecture family (see the module docstring).
    input_shape : sequence of int
        Shape of one input without the batch axis: ``(D,)`` for vectors,
        ``(channels, height, width)`` for images. Conv architectures need images.
    num_classes : int
        Outputs of the classifier.
    **arch_kwargs
        Family options:

        - mlp: ``depth=6`` (Linear layers including the classifier), ``width=512``,
          ``activation="relu"`` (relu, leaky_relu, tanh, sigmoid, silu, gelu),
          ``batchnorm=False``, ``bias=True``;
        - vgg: ``config="vgg11"`` (or a list of channels and "M"), ``width=1.0``
          (channel multiplier), ``fc_widths=(4096, 4096)``, ``batchnorm=True``,
          ``activation="relu"``;
        - resnet18: ``width=64`` (first stage channels);
        - convnet: ``depth=20``, ``width=128``, ``activation="relu"``;
        - rangamani_mlp: ``depth=10`` (hidden blocks), ``width=1024``, ``bias=False``,
          ``batchnorm=True`` (Rangamani et al.'s ``mlp_large``, probe points at the input
          of every Linear);
        - rangamani_convnet: ``depth=20`` (conv blocks), ``width=128``, ``bias=False``,
          ``batchnorm=True`` (``convnet_deep``, probe points at the input of every Conv2d
          and of the classifier).

    Returns
    -------
    nn.Module
        With ``probe_points`` (list of :class:`ProbePoint`, input first, penultimate
        features last) and ``classifier_name`` (dotted name of the final ``nn.Linear``).

    Raises
    ------
    KeyError
        Unknown architecture.
    ValueError
        Unknown or invalid architecture argument, bad shape or class count.

    Examples
    --------
    >>> model = build_model("mlp", input_shape=(40,), num_classes=10, depth=3, width=32)
    >>> [point.name for point in model.probe_points]
    ['input', 'fc1', 'fc2']
    >>> model(torch.zeros(5, 40)).shape
    torch.Size([5, 10])
    """
    check_arch_kwargs(arch, arch_kwargs)
    try:
        input_shape = tuple(operator.index(size) for size in input_shape)
    except TypeError as error:
        raise ValueError(f"input_shape must be a tuple of ints, got {input_shape!r}") from error
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape}")
    _positive_int(num_classes, "num_classes", minimum=2)
    return _BUILDERS[arch](input_shape, num_classes, **arch_kwargs)
