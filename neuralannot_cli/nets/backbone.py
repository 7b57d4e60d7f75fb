"""ResNet-18/34/50 image backbones in plain PyTorch, parameter-compatible with torchvision.

The module tree, parameter and buffer names and shapes are those of torchvision's
``resnet18/34/50().state_dict()`` without the classifier (``fc.*``): ``conv1``, ``bn1``,
``layer1`` .. ``layer4`` made of ``BasicBlock`` (``conv1, bn1, conv2, bn2``) or ``Bottleneck``
(``conv1, bn1, conv2, bn2, conv3, bn3``) blocks, each with an optional ``downsample.0`` (1x1 conv) /
``downsample.1`` (BatchNorm). As in torchvision (ResNet "v1.5"), a Bottleneck strides on its 3x3 ``conv2``,
not on the first 1x1. An ImageNet checkpoint the user has (``.pth`` / ``.pt`` / ``.safetensors``) therefore
loads with :func:`load_backbone_weights`; torchvision itself is not needed.

Input images are ``(batch, 3, H, W)`` float, RGB, ImageNet-normalised (what
:class:`neuralannot_cli.data.pipeline.CroppedSampleDataset` returns). The backbone's output stride is 32.

Initialisation follows torchvision (``zero_init_residual=False``): convolutions ``kaiming_normal_``
(``mode='fan_out'``, ReLU gain), BatchNorm weight 1 / bias 0. Train/eval mode (BatchNorm statistics) is the
caller's business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

__all__ = [
    "ResNetBackbone",
    "load_backbone_weights",
    "read_state_dict",
    "RESNET_LAYERS",
]

#: Blocks per stage and block type of each supported depth (He et al. 2016, Table 1).
RESNET_LAYERS: dict[int, tuple[Literal["basic", "bottleneck"], tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride, v1.5) -> 1x1 expand (x4), with a shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNetBackbone(nn.Module):
    """torchvision-compatible ResNet trunk without the classifier.

    Args:
        depth: 18, 34 or 50.

    Attributes:
        depth: the depth given.
        out_channels: channels of the last feature map and of the pooled feature (512 for 18/34, 2048 for 50).
    """

    def __init__(self, depth: Literal[18, 34, 50] = 50):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNetBackbone: depth must be one of {sorted(RESNET_LAYERS)}, got {depth!r}")
        kind, blocks = RESNET_LAYERS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.depth = int(depth)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = 64
        for i, (width, n_blocks) in enumerate(zip((64, 128, 256, 512), blocks)):
            stride = 1 if i == 0 else 2
            layer, in_ch = self._make_layer(block, in_ch, width, n_blocks, stride)
            self.add_module(f"layer{i + 1}", layer)
        self.out_channels = in_ch
        self._init_weights()

    @staticmethod
    def _make_layer(
        block: type[BasicBlock] | type[Bottleneck], in_ch: int, width: int, n_blocks: int, stride: int
    ) -> tuple[nn.Sequential, int]:
        out_ch = width * block.expansion
        downsample = None
        if stride != 1 or in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        layers = [block(in_ch, width, stride, downsample)]
        layers += [block(out_ch, width) for _ in range(1, n_blocks)]
        return nn.Sequential(*layers), out_ch

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check_images(self, images: object, fn: str) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"ResNetBackbone.{fn}: images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"ResNetBackbone.{fn}: images must have shape (batch, 3, H, W), got {tuple(images.shape)}")
        return images

    def forward_featmap(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` ImageNet-normalised images -> ``(batch, out_channels, ceil(H/32), ceil(W/32))``."""
        x = self._check_images(images, "forward_featmap")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` ImageNet-normalised images -> ``(batch, out_channels)`` global-average-pooled F."""
        return self.forward_featmap(images).mean(dim=(2, 3))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a tensor state dict from ``.pth`` / ``.pt`` / ``.bin`` (``torch.load(weights_only=True)``) or
    ``.safetensors``.

    A pickled dict wrapping the weights under ``'state_dict'`` or ``'model'`` is unwrapped, and a common
    ``'module.'`` prefix (DataParallel / DDP) is stripped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file or no tensor dict inside; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights: no such file: {path}")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one message naming the file
        raise ValueError(f"backbone weights {path}: cannot read the file ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"backbone weights {path}: expected a dict of tensors (optionally under 'state_dict' or 'model'), "
            f"got {type(obj).__name__}"
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_backbone_weights(backbone: ResNetBackbone, path: str | Path) -> tuple[str, ...]:
    """Load torchvision-named ResNet weights from ``path`` into ``backbone`` (in place, strict).

    ``fc.*`` (the ImageNet classifier) is ignored; a missing ``*.num_batches_tracked`` buffer is accepted
    (checkpoints older than PyTorch 0.4.1 lack it). Any other missing or unexpected key, or a shape mismatch
    (e.g. a ResNet-50 file into a ResNet-18), raises ``ValueError`` naming the file and the first offending keys.

    Returns:
        The keys of the file that were ignored (the ``fc.*`` ones), sorted.
    """
    state = read_state_dict(path)
    ignored = tuple(sorted(k for k in state if k == "fc" or k.startswith("fc.")))
    state = {k: v for k, v in state.items() if k not in ignored}
    own = backbone.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[:5]}")
        raise ValueError(
            f"backbone weights {path}: not a torchvision ResNet-{backbone.depth} state dict: " + "; ".join(parts)
        )
    bad_shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad_shapes:
        raise ValueError(
            f"backbone weights {path}: shapes do not match ResNet-{backbone.depth}: {bad_shapes[:3]}"
            + (f" (+{len(bad_shapes) - 3} more)" if len(bad_shapes) > 3 else "")
        )
    backbone.load_state_dict(state, strict=False)
    return ignored
