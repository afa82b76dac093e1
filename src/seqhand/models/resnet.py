"""ResNet-18/34/50/101 backbones written in the project (no torchvision).

The module tree, and therefore every ``state_dict`` key and shape, is the same as
torchvision's ``torchvision.models.resnet`` (v1.5: the stride of a bottleneck sits on its 3x3
conv): ``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``layer4.2.bn3``, ``layer2.0.downsample.0``,
``fc``. A torchvision ImageNet checkpoint file therefore loads with
:func:`load_backbone_weights` - nothing is downloaded, users bring the file.

The surface follows timm: ``num_features``, ``forward_features(x) -> (B, C, H/32, W/32)``
(``(B, 2048, 7, 7)`` for ResNet-50 at 224x224), ``forward_head`` and ``forward``. Built with
``num_classes=0`` the classifier is an ``nn.Identity`` (no ``fc`` parameters), which is how the
hand regressors use it. Random initialisation is torchvision's: Kaiming-normal (fan-out, ReLU)
convolutions, batch norm weight 1 and bias 0, PyTorch's default for ``fc``.

Input: ``(B, 3, H, W)`` float images normalised with the ImageNet mean and standard deviation
(see :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from seqhand.errors import SeqhandError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean of ImageNet, for images in [0, 1] (what torchvision's checkpoints expect)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB standard deviation of ImageNet, for images in [0, 1]."""


class BackboneWeightsError(SeqhandError, ValueError):
    """A backbone checkpoint file is unreadable or does not fit the backbone."""


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convolutions with a residual connection (ResNet-50/101)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet with torchvision's module names.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages, e.g. ``(3, 4, 6, 3)``.
        num_classes: classifier outputs; ``0`` replaces ``fc`` by ``nn.Identity`` (no params).
        width: channels of the stem and of stage 1 (64 in every torchvision model; smaller
            values give the project's small CPU presets - their checkpoints are not
            torchvision's).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        width: int = 64,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be 4 positive block counts, got {tuple(layers)}")
        self.block = block
        self.layers = tuple(int(n) for n in layers)
        self.width = int(width)
        self.inplanes = self.width
        self.conv1 = nn.Conv2d(3, self.width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, self.width, layers[0])
        self.layer2 = self._make_layer(block, self.width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, self.width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, self.width * 8, layers[3], stride=2)
        self.num_features = self.width * 8 * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_classes = int(num_classes)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, width, H/4, W/4)`` (conv1, bn1, relu, maxpool)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, num_features, H/32, W/32)`` features."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        x = self.forward_stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling (+ ``fc`` unless ``pre_logits``): -> ``(B, C)``."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def load_torchvision_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
    ) -> list[str]:
        """Copy a torchvision ResNet state dict into this model (see :func:`load_backbone_weights`).

        Returns the keys of ``state_dict`` that were ignored (``fc.*`` when this model has no
        classifier).
        """
        return _load_matching(self, state_dict, source)


RESNET_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    "resnet10": (BasicBlock, (1, 1, 1, 1)),  # the small CPU backbone of the `tiny` preset
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


def build_resnet(name: str, num_classes: int = 1000, width: int = 64) -> ResNet:
    """Build ``resnet10`` / ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101`` (random
    init; ``resnet10`` has one block per stage and no torchvision checkpoint)."""
    if name not in RESNET_SPECS:
        raise ValueError(f"unknown ResNet {name!r}; known: {sorted(RESNET_SPECS)}")
    block, layers = RESNET_SPECS[name]
    return ResNet(block, layers, num_classes=num_classes, width=width)


def resnet18(num_classes: int = 1000) -> ResNet:
    return build_resnet("resnet18", num_classes)


def resnet34(num_classes: int = 1000) -> ResNet:
    return build_resnet("resnet34", num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    return build_resnet("resnet50", num_classes)


def resnet101(num_classes: int = 1000) -> ResNet:
    return build_resnet("resnet101", num_classes)


# --------------------------------------------------------------------------------------------
# Loading torchvision checkpoint files
# --------------------------------------------------------------------------------------------
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a flat ``{key: tensor}`` dict, safely (``weights_only``).

    Accepts a plain state dict (torchvision's files), or a dict holding one under
    ``"state_dict"`` / ``"model"``; a ``"module."`` prefix (DataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"{path}: backbone weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise BackboneWeightsError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise BackboneWeightsError(f"{path}: expected a state dict of tensors")
    out = {}
    for k, v in obj.items():
        out[k[len("module.") :] if k.startswith("module.") else k] = v
    return out


def _load_matching(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, adapt=None
) -> list[str]:
    """Strictly load ``state_dict`` into ``module`` (``fc.*`` may be absent from the module).

    ``adapt(key, file_tensor, target_tensor)`` may reshape a file tensor (e.g. inflate 2D
    kernels to 3D); it returns the tensor to copy.
    """
    own = module.state_dict()
    ignored = [k for k in state_dict if k.startswith("fc.") and k not in own]
    # Checkpoints saved before PyTorch 0.4.1 (torchvision's original ImageNet files) have no
    # batch-norm ``num_batches_tracked`` counters; those keep the module's value.
    state_dict = {
        **{k: v for k, v in own.items() if k.endswith("num_batches_tracked")},
        **state_dict,
    }
    missing = sorted(k for k in own if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in own and k not in ignored)
    if missing or unexpected:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")

        parts = [f"{source}: does not fit the backbone ({type(module).__name__})"]
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        parts.append("expected a torchvision ResNet checkpoint of the same depth")
        raise BackboneWeightsError("; ".join(parts))
    new = {}
    for k, target in own.items():
        value = state_dict[k]
        if value.is_floating_point():
            value = value.to(dtype=target.dtype)  # before adapting: inflate in target precision
        if adapt is not None:
            value = adapt(k, value, target)
        if tuple(value.shape) != tuple(target.shape):
            raise BackboneWeightsError(
                f"{source}: key {k!r} has shape {tuple(value.shape)}, the backbone expects "
                f"{tuple(target.shape)} (a checkpoint of another ResNet depth or width?)"
            )
        new[k] = value.to(dtype=target.dtype)
    module.load_state_dict(new, strict=True)
    return ignored


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a torchvision ImageNet ResNet checkpoint file into a backbone.

    Args:
        model: a :class:`ResNet`, or any model with a ``backbone`` attribute that has a
            ``load_torchvision_state_dict`` method (every hand regressor in
            :mod:`seqhand.models`; the I3D-style encoder inflates 2D kernels to 3D).
        path: e.g. ``resnet50-0676ba61.pth`` as downloaded by the user from torchvision.

    Strict on the backbone's keys: a missing or unexpected key, or a shape that differs,
    raises :class:`BackboneWeightsError` naming the keys and the file. The classifier
    (``fc.*``) is ignored when the backbone has none. Returns the ignored keys.
    """
    target = model if hasattr(model, "load_torchvision_state_dict") else None
    if target is None:
        target = getattr(model, "backbone", None)
    if target is None or not hasattr(target, "load_torchvision_state_dict"):
        raise TypeError(
            f"{type(model).__name__} is neither a ResNet nor a model with a ResNet 'backbone'"
        )
    return target.load_torchvision_state_dict(read_state_dict(path), source=str(path))
