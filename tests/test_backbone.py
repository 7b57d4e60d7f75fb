"""ResNet backbone: torchvision's parameter names/shapes/counts, a functional reference forward, weight files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from neuralannot_cli.nets.backbone import ResNetBackbone, load_backbone_weights, read_state_dict

# Written out by hand from torchvision.models.resnet18().state_dict() (not generated from our module tree).
TV_RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,),
    "bn1.bias": (64,),
    "bn1.running_mean": (64,),
    "bn1.running_var": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.0.bn1.weight": (64,),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.bn2.running_var": (64,),
    "layer1.1.conv1.weight": (64, 64, 3, 3),
    "layer1.1.conv2.weight": (64, 64, 3, 3),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.weight": (128,),
    "layer2.0.downsample.1.running_var": (128,),
    "layer2.0.downsample.1.num_batches_tracked": (),
    "layer2.1.conv1.weight": (128, 128, 3, 3),
    "layer3.0.conv1.weight": (256, 128, 3, 3),
    "layer3.0.downsample.0.weight": (256, 128, 1, 1),
    "layer3.1.bn2.running_mean": (256,),
    "layer4.0.conv1.weight": (512, 256, 3, 3),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1),
    "layer4.0.downsample.1.bias": (512,),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
    "layer4.1.bn2.weight": (512,),
    "layer4.1.bn2.num_batches_tracked": (),
}
TV_RESNET18_ABSENT = ["layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer4.2.conv1.weight", "fc.weight"]

# torchvision.models.resnet50().state_dict() (v1.5: the stride is on conv2 of the first block of a stage).
TV_RESNET50_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_mean": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.bn3.weight": (256,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (256,),
    "layer1.1.conv1.weight": (64, 256, 1, 1),
    "layer1.2.conv3.weight": (256, 64, 1, 1),
    "layer2.0.conv1.weight": (128, 256, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.conv3.weight": (512, 128, 1, 1),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1),
    "layer2.3.conv3.weight": (512, 128, 1, 1),
    "layer2.3.bn3.num_batches_tracked": (),
    "layer3.0.conv1.weight": (256, 512, 1, 1),
    "layer3.0.downsample.0.weight": (1024, 512, 1, 1),
    "layer3.5.conv3.weight": (1024, 256, 1, 1),
    "layer3.5.bn2.running_var": (256,),
    "layer4.0.conv1.weight": (512, 1024, 1, 1),
    "layer4.0.conv2.weight": (512, 512, 3, 3),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.0.downsample.1.weight": (2048,),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "layer4.2.bn3.running_var": (2048,),
}
TV_RESNET50_ABSENT = ["layer1.3.conv1.weight", "layer2.4.conv1.weight", "layer4.3.conv1.weight", "fc.bias"]

# torchvision totals include the ImageNet classifier fc: 512*1000+1000 (18/34) or 2048*1000+1000 (50).
# state_dict() entries including fc.weight / fc.bias: 122 (18), 218 (34), 320 (50).
TV_TOTALS = {18: (11_689_512, 513_000, 122), 34: (21_797_672, 513_000, 218), 50: (25_557_032, 2_049_000, 320)}


@pytest.mark.parametrize(
    "depth, keys, absent", [(18, TV_RESNET18_KEYS, TV_RESNET18_ABSENT), (50, TV_RESNET50_KEYS, TV_RESNET50_ABSENT)]
)
def test_state_dict_names_and_shapes_match_torchvision(depth, keys, absent):
    state = ResNetBackbone(depth).state_dict()
    for name, shape in keys.items():
        assert name in state, name
        assert tuple(state[name].shape) == shape, name
    for name in absent:
        assert name not in state
    assert state["bn1.num_batches_tracked"].dtype == torch.int64


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_parameter_counts_match_torchvision(depth):
    net = ResNetBackbone(depth)
    total_tv, fc_params, n_entries_tv = TV_TOTALS[depth]
    assert sum(p.numel() for p in net.parameters()) == total_tv - fc_params
    assert len(net.state_dict()) == n_entries_tv - 2
    assert net.out_channels == (2048 if depth == 50 else 512)


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        ResNetBackbone(101)  # type: ignore[arg-type]


def test_init_like_torchvision():
    torch.manual_seed(0)
    net = ResNetBackbone(50)
    w = net.layer3[0].conv2.weight  # (256, 256, 3, 3)
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.05)
    assert torch.all(net.layer3[0].bn2.weight == 1) and torch.all(net.layer3[0].bn2.bias == 0)
    # v1.5: the 3x3 carries the stride
    assert net.layer2[0].conv2.stride == (2, 2) and net.layer2[0].conv1.stride == (1, 1)


# --------------------------------------------------------------------------- functional reference forward


def _bn(x, sd, prefix):
    return F.batch_norm(
        x, sd[prefix + ".running_mean"], sd[prefix + ".running_var"], sd[prefix + ".weight"], sd[prefix + ".bias"],
        training=False, eps=1e-5,
    )


def _reference_resnet(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """ResNet forward (eval mode) written from the paper/torchvision description and the state dict only."""
    x = F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for stage in range(1, 5):
        block = 0
        while f"layer{stage}.{block}.conv1.weight" in sd:
            p = f"layer{stage}.{block}"
            stride = 2 if (stage > 1 and block == 0) else 1
            bottleneck = f"{p}.conv3.weight" in sd
            if bottleneck:
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
                y = F.relu(_bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn2"))
                y = _bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            else:
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1"))
                y = _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            x = F.relu(y + x)
            block += 1
    return x


def _randomise_bn(net: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


@pytest.mark.parametrize("depth", [18, 50])
def test_forward_matches_functional_reference(depth):
    gen = torch.Generator().manual_seed(depth)
    net = ResNetBackbone(depth).double().eval()
    _randomise_bn(net, gen)
    images = torch.randn(2, 3, 40, 64, generator=gen, dtype=torch.float64)
    featmap = net.forward_featmap(images)
    assert featmap.shape == (2, net.out_channels, 2, 2)  # ceil(40/32), 64/32
    state = {k: v.double() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    ref = _reference_resnet(images, state)
    torch.testing.assert_close(featmap, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(net(images), ref.mean(dim=(2, 3)), rtol=1e-10, atol=1e-10)


def test_forward_shape_check():
    net = ResNetBackbone(18)
    with pytest.raises(ValueError, match=r"\(2, 1, 32, 32\)"):
        net(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        net(torch.zeros(3, 32, 32))


def test_gradients_finite():
    net = ResNetBackbone(18)
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    net(images).square().sum().backward()
    assert torch.isfinite(images.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# --------------------------------------------------------------------------------------- weight files


def _torchvision_like_state(depth: int, seed: int) -> dict[str, torch.Tensor]:
    """A state dict as a torchvision checkpoint holds it: our keys with fresh values, plus the fc classifier."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in ResNetBackbone(depth).state_dict().items():
        if v.is_floating_point():
            state[k] = torch.randn(v.shape, generator=gen)
        else:
            state[k] = torch.randint(0, 100, v.shape, generator=gen)
    c = 2048 if depth == 50 else 512
    state["fc.weight"] = torch.randn(1000, c, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


def _assert_loaded(net: ResNetBackbone, state: dict[str, torch.Tensor]) -> None:
    own = net.state_dict()
    for k, v in own.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_weights_round_trip(tmp_path: Path, suffix: str):
    state = _torchvision_like_state(18, seed=1)
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    net = ResNetBackbone(18)
    ignored = load_backbone_weights(net, path)
    assert ignored == ("fc.bias", "fc.weight")
    _assert_loaded(net, state)


def test_weights_wrapped_and_prefixed(tmp_path: Path):
    state = _torchvision_like_state(18, seed=2)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3}, path)
    net = ResNetBackbone(18)
    load_backbone_weights(net, path)
    _assert_loaded(net, state)


def test_weights_without_num_batches_tracked(tmp_path: Path):
    """Pre-0.4.1 checkpoints (the original model-zoo resnet50 file) have no num_batches_tracked buffers."""
    state = {k: v for k, v in _torchvision_like_state(50, seed=3).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    net = ResNetBackbone(50)
    load_backbone_weights(net, path)
    torch.testing.assert_close(net.layer4[2].conv3.weight.detach(), state["layer4.2.conv3.weight"])


def test_foreign_files_error_with_file_name(tmp_path: Path):
    net = ResNetBackbone(18)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wrong_depth = tmp_path / "resnet50.pth"
    torch.save(_torchvision_like_state(50, seed=4), wrong_depth)
    with pytest.raises(ValueError, match="resnet50.pth"):
        load_backbone_weights(net, wrong_depth)
    foreign = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(3, 3)}, str(foreign))
    with pytest.raises(ValueError, match=r"other\.safetensors.*missing.*unexpected"):
        load_backbone_weights(net, foreign)
    garbage = tmp_path / "notes.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pth"):
        load_backbone_weights(net, garbage)
    not_tensors = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(ValueError, match="list.pt"):
        read_state_dict(not_tensors)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone_weights(net, tmp_path / "missing.pth")
    # a same-depth file with one tensor of the wrong shape
    state = _torchvision_like_state(18, seed=5)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(state, bad_shape)
    with pytest.raises(ValueError, match=r"bad_shape.pth.*layer1\.0\.conv1\.weight"):
        load_backbone_weights(net, bad_shape)
    for k, v in net.state_dict().items():  # nothing was half-loaded
        assert torch.equal(v, before[k]), k
