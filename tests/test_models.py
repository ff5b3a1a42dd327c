"""Tests of ncutils.models: output shapes, probe points, classifier names, errors, versions."""

from __future__ import annotations

import hashlib
import inspect

import pytest
import torch
from torch import nn

from ncutils import models
from ncutils.models import ARCH_VERSIONS, ProbePoint, available_architectures, build_model

# (arch, input_shape, kwargs, expected probe point names) at tiny widths.
CASES = [
    ("mlp", (40,), dict(depth=4, width=16), ["input", "fc1", "fc2", "fc3"]),
    ("mlp", (1, 8, 8), dict(depth=2, width=8, batchnorm=True, activation="gelu"),
     ["input", "fc1"]),
    ("vgg", (1, 8, 8), dict(config="vgg11", width=1 / 16, fc_widths=(32,)),
     ["input"] + [f"conv{i}" for i in range(1, 9)] + ["fc1"]),
    ("vgg", (1, 28, 28), dict(config=[8, "M", 16, "M"], fc_widths=(12, 10)),
     ["input", "conv1", "conv2", "fc1", "fc2"]),
    ("vgg", (3, 32, 32), dict(config="vgg11", width=1 / 16, fc_widths=()),
     ["input"] + [f"conv{i}" for i in range(1, 9)]),
    ("convnet", (3, 32, 32), dict(depth=4, width=8), ["input", "conv1", "conv2", "conv3", "conv4"]),
    ("convnet", (1, 8, 8), dict(depth=3, width=4), ["input", "conv1", "conv2", "conv3"]),
    ("resnet18", (3, 32, 32), dict(width=4),
     ["input", "stem"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["avgpool"]),
    ("resnet18", (1, 28, 28), dict(width=2),
     ["input", "stem"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["avgpool"]),
]


def _capture(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run the model, keeping each probe point's output (the input for module None)."""
    captured = {}
    handles = []
    for point in model.probe_points:
        if point.module is None:
            captured[point.name] = inputs
            continue
        handles.append(model.get_submodule(point.module).register_forward_hook(
            lambda module, args, output, name=point.name: captured.__setitem__(name, output.clone())))
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
    for handle in handles:
        handle.remove()
    return logits, captured


@pytest.mark.parametrize("arch,input_shape,kwargs,names", CASES,
                         ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}" for c in CASES])
def test_outputs_and_probe_points(arch, input_shape, kwargs, names):
    torch.manual_seed(0)
    model = build_model(arch, input_shape=input_shape, num_classes=7, **kwargs)
    inputs = torch.randn(3, *input_shape)
    logits, captured = _capture(model, inputs)
    assert logits.shape == (3, 7)
    assert [point.name for point in model.probe_points] == names
    assert all(isinstance(point, ProbePoint) for point in model.probe_points)
    assert model.probe_points[0].module is None
    modules = dict(model.named_modules())
    classifier = modules[model.classifier_name]
    assert isinstance(classifier, nn.Linear) and classifier.out_features == 7
    # The last probe point is the penultimate representation: its flattened output is
    # exactly what the classifier reads.
    penultimate = captured[names[-1]].flatten(1)
    assert penultimate.shape[1] == classifier.in_features
    torch.testing.assert_close(classifier(penultimate), logits)
    for point in model.probe_points:
        assert captured[point.name].shape[0] == 3
        if point.consumer is not None:
            consumer = modules[point.consumer]
            assert isinstance(consumer, (nn.Linear, nn.Conv2d))
            width = captured[point.name].shape[1]
            expected = consumer.in_features if isinstance(consumer, nn.Linear) else consumer.in_channels
            # A Linear reads the flattened map, a Conv2d reads the channels.
            read = captured[point.name].flatten(1).shape[1] if isinstance(consumer, nn.Linear) else width
            assert read == expected, point


def test_mlp_depth_counts_linear_layers_and_options_apply():
    model = build_model("mlp", input_shape=(10,), num_classes=3, depth=6, width=20,
                        activation="tanh", batchnorm=True, bias=False)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 6
    assert all(m.bias is None for m in linears[:-1])
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 5
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 5


def test_vgg_skips_pools_that_would_shrink_below_one_pixel():
    # vgg11 has five pools; 8 px inputs allow three (8 -> 4 -> 2 -> 1).
    model = build_model("vgg", input_shape=(1, 8, 8), num_classes=4, width=1 / 16)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    model = build_model("vgg", input_shape=(3, 32, 32), num_classes=4, width=1 / 16)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5


def test_vgg_width_multiplier_scales_channels():
    model = build_model("vgg", input_shape=(3, 32, 32), num_classes=4, width=0.25, fc_widths=(64,))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert model.head[0].linear.out_features == 16


def test_convnet_first_two_blocks_downsample_with_2x2_stride_2():
    model = build_model("convnet", input_shape=(3, 32, 32), num_classes=4, depth=5, width=6)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride) for c in convs] == (
        [((2, 2), (2, 2))] * 2 + [((3, 3), (1, 1))] * 3)
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 5
    assert model.classifier.in_features == 6 * 8 * 8


def test_resnet18_matches_torchvision_apart_from_the_stem():
    import torchvision

    reference = torchvision.models.resnet18(num_classes=10).state_dict()
    ours = build_model("resnet18", input_shape=(1, 32, 32), num_classes=10).state_dict()
    assert ours.keys() == reference.keys()
    differing = [name for name in ours if ours[name].shape != reference[name].shape]
    assert differing == ["conv1.weight"]
    assert ours["conv1.weight"].shape == (64, 1, 3, 3)


def test_resnet18_stem_keeps_resolution():
    model = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10, width=2)
    _, captured = _capture(model, torch.randn(2, 3, 32, 32))
    assert captured["stem"].shape == (2, 2, 32, 32)
    assert captured["layer4.1"].shape == (2, 16, 4, 4)


def test_available_architectures():
    assert available_architectures() == ["convnet", "mlp", "resnet18", "vgg"]


@pytest.mark.parametrize("arch,input_shape,kwargs,error,match", [
    ("transformer", (4,), {}, KeyError, "unknown architecture"),
    ("mlp", (4,), {"depthh": 3}, ValueError, "does not accept"),
    ("mlp", (4,), {"activation": "swish"}, ValueError, "unknown activation"),
    ("mlp", (4,), {"depth": 0}, ValueError, "depth"),
    ("mlp", (4,), {"width": 2.5}, ValueError, "width"),
    ("vgg", (40,), {}, ValueError, "needs image inputs"),
    ("convnet", (40,), {}, ValueError, "needs image inputs"),
    ("resnet18", (40,), {}, ValueError, "needs image inputs"),
    ("vgg", (1, 8, 8), {"config": "vgg99"}, ValueError, "unknown VGG config"),
    ("vgg", (1, 8, 8), {"config": ["M", 8]}, ValueError, "start with a conv"),
    ("vgg", (1, 8, 8), {"width": -1}, ValueError, "width"),
])
def test_bad_arguments_raise_clear_errors(arch, input_shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_model(arch, input_shape=input_shape, num_classes=3, **kwargs)


def test_bad_shape_and_class_count():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", input_shape=(4,), num_classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("mlp", input_shape=(0,), num_classes=3)


# --------------------------------------------------------------------------- versions
# A trained run's key holds ARCH_VERSIONS[arch], not the bytes of models.py. These pins
# make a change to what an architecture computes fail here until its version is bumped:
# then add a pin for the new version (never edit the pin of an existing version).

# Small instances that exercise the options; outputs on a fixed input, float64, eval mode.
PIN_CASES = {
    "convnet": [((1, 8, 8), dict(depth=3, width=4))],
    "mlp": [((5,), dict(depth=3, width=8)),
            ((5,), dict(depth=3, width=8, batchnorm=True, activation="tanh", bias=False))],
    "resnet18": [((3, 8, 8), dict(width=2))],
    "vgg": [((1, 8, 8), dict(config=[4, "M", 8, "M"], fc_widths=(6,))),
            ((3, 32, 32), dict(width=1 / 16, fc_widths=(8,), batchnorm=False))],
}
DEFAULT_SHAPES = {"convnet": (3, 32, 32), "mlp": (784,), "resnet18": (3, 32, 32), "vgg": (3, 32, 32)}
# arch -> {version: (layout checksum, outputs of PIN_CASES)}
ARCH_PINS = {
    "convnet": {1: ("45bd2005f8afd8d1", [
        [-0.236689048, 0.0520821947, -0.142161059, -0.244512614, 0.0406820795, -0.1372422521]])},
    "mlp": {1: ("db657310d6149d70", [
        [-0.3572340783, -0.2535953158, 0.2617665085, -0.3550831387, -0.2596632566, 0.2435959238],
        [-0.0866230894, -0.2164572947, -0.1590611811, -0.1247820081, -0.3990430477, -0.0360171919]])},
    "resnet18": {1: ("d63bde031dedca1a", [
        [-0.1670723341, 0.1062723433, 0.0406373355, -0.0968311731, 0.1819867193, 0.084789073]])},
    "vgg": {1: ("9954733b1a256711", [
        [-0.3456138103, 0.1391397974, -0.1391172212, -0.2993587741, 0.0734722149, -0.14801095],
        [0.8341582293, 0.6755321554, 0.3567452816, 0.8341054009, 0.6754745871, 0.3567207444]])},
}


def _layout(model: nn.Module) -> bytes:
    return repr([(name, tuple(tensor.shape), str(tensor.dtype))
                 for name, tensor in model.state_dict().items()]).encode()


def _fingerprint(arch: str) -> tuple[str, list[list[float]]]:
    """Checksum of the defaults and state-dict layouts; outputs of the pinned cases."""
    digest = hashlib.sha256()
    parameters = inspect.signature(models._BUILDERS[arch]).parameters
    digest.update(repr(sorted((name, parameter.default) for name, parameter in parameters.items()
                              if parameter.kind is inspect.Parameter.KEYWORD_ONLY)).encode())
    # Named choices an argument selects (a changed "vgg13" or "gelu" changes runs using it).
    if "activation" in parameters:
        digest.update(repr(sorted((name, factory.__name__)
                                  for name, factory in models.ACTIVATIONS.items())).encode())
    if arch == "vgg":
        digest.update(repr(sorted(models.VGG_CONFIGS.items())).encode())
    # With its defaults at full size: the meta device allocates nothing.
    with torch.device("meta"):
        digest.update(_layout(build_model(arch, input_shape=DEFAULT_SHAPES[arch], num_classes=10)))
    outputs = []
    for input_shape, kwargs in PIN_CASES[arch]:
        torch.manual_seed(0)  # the initialisation is part of the architecture
        model = build_model(arch, input_shape=input_shape, num_classes=3, **kwargs)
        digest.update(_layout(model) + repr(model.probe_points).encode()
                      + model.classifier_name.encode())
        inputs = torch.randn(2, *input_shape, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            outputs.append(model.double().eval()(inputs).flatten().tolist())
    return digest.hexdigest()[:16], outputs


def test_every_architecture_has_a_version():
    assert sorted(ARCH_VERSIONS) == available_architectures() == sorted(ARCH_PINS)
    assert all(isinstance(v, int) and v >= 1 for v in ARCH_VERSIONS.values())
    assert models.architecture_version("mlp") == ARCH_VERSIONS["mlp"]
    with pytest.raises(KeyError, match="unknown architecture"):
        models.architecture_version("transformer")


@pytest.mark.parametrize("arch", sorted(PIN_CASES))
def test_architecture_changes_come_with_a_version_bump(arch):
    version = ARCH_VERSIONS[arch]
    assert version in ARCH_PINS[arch], (
        f"ARCH_VERSIONS[{arch!r}] = {version} has no pin: add {_fingerprint(arch)!r}")
    layout, outputs = _fingerprint(arch)
    pinned_layout, pinned_outputs = ARCH_PINS[arch][version]
    hint = (f"architecture {arch!r} changed (layout, defaults or output) without a version "
            f"bump: increase ARCH_VERSIONS[{arch!r}] and pin the new version with "
            f"{(layout, outputs)!r}")
    assert layout == pinned_layout, hint
    for got, pinned in zip(outputs, pinned_outputs, strict=True):
        assert got == pytest.approx(pinned, rel=1e-7, abs=1e-9), hint
