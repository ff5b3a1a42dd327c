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
    ("rangamani_mlp", (1, 8, 8), dict(depth=3, width=16),
     ["block0.fc", "block1.fc", "block2.fc", "fc"]),
    ("rangamani_convnet", (1, 28, 28), dict(depth=4, width=8),
     ["b0.conv", "b1.conv", "b2.conv", "b3.conv", "fc"]),
    ("rangamani_convnet", (3, 8, 8), dict(depth=3, width=5, bias=True, batchnorm=False),
     ["b0.conv", "b1.conv", "b2.conv", "fc"]),
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
    assert available_architectures() == ["convnet", "mlp", "rangamani_convnet", "rangamani_mlp",
                                         "resnet18", "vgg"]


def test_rangamani_architectures_follow_the_official_code():
    # mlp_large: Linear (no bias, classifier included) -> BatchNorm1d -> ReLU, 10 x 1024
    model = build_model("rangamani_mlp", input_shape=(1, 28, 28), num_classes=10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 11 and all(m.bias is None for m in linears)
    assert [m.out_features for m in linears[:-1]] == [1024] * 10
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 10
    # the probe points are the inputs of every Linear: each point's consumer reads it
    assert [p.consumer for p in model.probe_points] == (
        [f"model.block{i}.fc" for i in range(10)] + ["model.fc"])
    # convnet_deep: 20 convs of 128, b0 and b1 2x2 stride 2, b0 without ReLU, fc with a bias
    model = build_model("rangamani_convnet", input_shape=(3, 32, 32), num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and all(c.out_channels == 128 and c.bias is None for c in convs)
    assert [(c.kernel_size, c.stride) for c in convs[:3]] == [((2, 2), (2, 2))] * 2 + [((3, 3), (1, 1))]
    assert not any(isinstance(m, nn.ReLU) for m in model.model.b0.modules())
    assert isinstance(model.model.b1.relu, nn.ReLU)
    assert model.model.fc.bias is not None and model.model.fc.in_features == 128 * 8 * 8
    assert len(model.probe_points) == 21
    with pytest.raises(ValueError, match="4x4"):
        build_model("rangamani_convnet", input_shape=(1, 2, 2), num_classes=3)


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
    "rangamani_convnet": [((1, 8, 8), dict(depth=3, width=4)),
                          ((3, 4, 4), dict(depth=2, width=3, bias=True, batchnorm=False))],
    "rangamani_mlp": [((5,), dict(depth=3, width=8)),
                      ((1, 4, 4), dict(depth=2, width=6, bias=True, batchnorm=False))],
    "resnet18": [((3, 8, 8), dict(width=2))],
    "vgg": [((1, 8, 8), dict(config=[4, "M", 8, "M"], fc_widths=(6,))),
            ((3, 32, 32), dict(width=1 / 16, fc_widths=(8,), batchnorm=False))],
}
DEFAULT_SHAPES = {"convnet": (3, 32, 32), "mlp": (784,), "rangamani_convnet": (3, 32, 32),
                  "rangamani_mlp": (784,), "resnet18": (3, 32, 32), "vgg": (3, 32, 32)}
# arch -> {version: (layout checksum, outputs of PIN_CASES)}
ARCH_PINS = {
    "convnet": {1: ("45bd2005f8afd8d1", [
        [-0.236689048, 0.0520821947, -0.142161059, -0.244512614, 0.0406820795, -0.1372422521]])},
    "mlp": {1: ("db657310d6149d70", [
        [-0.3572340783, -0.2535953158, 0.2617665085, -0.3550831387, -0.2596632566, 0.2435959238],
        [-0.0866230894, -0.2164572947, -0.1590611811, -0.1247820081, -0.3990430477, -0.0360171919]])},
    "rangamani_convnet": {1: ("fdbc8561cc89d526", [
        [-0.2654599592231877, 0.0293039978923042, -0.19221376411673913, -0.2420016479612008,
         0.06492343549082187, -0.14597707142344699],
        [-0.2642860412597656, 0.222023606300354, -0.3419665992259979, -0.24767251039678717,
         0.3824823070486296, -0.3081639660921317]])},
    "rangamani_mlp": {1: ("faa0aa95750f3c95", [
        [0.02405888074365104, -0.0005835918217879555, -0.019666534946707583, -0.0007717226560290776,
         0.013084805107856794, 0.002535270687021975],
        [-0.3258696708547566, -0.3492647649104464, -0.20038343574209808, -0.4187207538518917,
         -0.36193514596161, -0.23253840362882694]])},
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
