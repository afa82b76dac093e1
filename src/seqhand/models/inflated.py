"""An I3D-style ResNet: a 2D ResNet "inflated" to 3D with causal temporal kernels.

Following Carreira & Zisserman (I3D, CVPR 2017) on a ResNet trunk, as the paper's Table 2 did
("the original backbone structure of I3D with Inception modules changed into ResNet-50"), and
the usual I3D-ResNet recipe (Wang et al., Non-local networks, 2018): the stem's 7x7 convolution
becomes 5x7x7 and the first convolution of every other residual block of stages 1-3 (blocks
0, 2, 4, ...) gets a temporal extent of 3 (a 1x1 becomes 3x1x1 in a bottleneck, a 3x3 becomes
3x3x3 in a basic block). Stage 4 stays 2D. Two departures from I3D, both to regress one output
per frame online:

* **no temporal striding or pooling** - every frame keeps its own feature map;
* **causal kernels** - frame t sees frames t-k+1 .. t only. At the start of a sequence the
  missing past is the first frame repeated (not zeros), so a still image gives exactly the
  response of the 2D network whose weights were inflated (a one-frame sequence is a valid input,
  as fine-tuning on single images needs).

The model therefore streams: its state is, for every temporal convolution, the last k-1 input
frames it saw. With ResNet-50 the trunk has 25.1M parameters (2D: 23.5M).

Keys are torchvision's (inflated kernels are 5D under the same names), and
:meth:`InflatedResNet.load_torchvision_state_dict` inflates a 2D checkpoint as I3D does: the
2D kernel repeated k times along time and divided by k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seqhand.models.resnet import Bottleneck, ResNet, _load_matching, build_resnet

CacheState = tuple[torch.Tensor, ...]


class TemporalConv(nn.Module):
    """A causal ``(kt, kh, kw)`` convolution over a stack of ``B * T`` frames.

    Made from a 2D convolution (same spatial stride/padding, no bias), with its kernel
    repeated along time and divided by ``kt``. ``forward(x (B*T, C, H, W), T, cache)`` returns
    the ``(B*T, C', H', W')`` output and the new cache ``(B, C, kt-1, H, W)`` (the last kt-1
    input frames).
    """

    def __init__(self, conv: nn.Conv2d, kt: int) -> None:
        super().__init__()
        if conv.bias is not None or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("TemporalConv inflates plain bias-free convolutions only")
        if kt < 2:
            raise ValueError(f"temporal kernel must be >= 2, got {kt}")
        self.kt = int(kt)
        self.stride = conv.stride
        self.padding = conv.padding
        w = conv.weight.detach().unsqueeze(2).repeat(1, 1, self.kt, 1, 1) / self.kt
        self.weight = nn.Parameter(w)

    def extra_repr(self) -> str:
        o, i, kt, kh, kw = self.weight.shape
        return f"{i}, {o}, kernel=({kt}, {kh}, {kw}), stride={self.stride}, causal"

    def forward(
        self, x: torch.Tensor, t: int, cache: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        bt, c, h, w = x.shape
        x5 = x.reshape(bt // t, t, c, h, w).transpose(1, 2)  # (B, C, T, H, W)
        if cache is None:  # start of a sequence: the past is the first frame, repeated
            cache = x5[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1)
        xin = torch.cat([cache, x5], dim=2)
        y = F.conv3d(xin, self.weight, None, (1,) + self.stride, (0,) + self.padding)
        y = y.transpose(1, 2).reshape((bt, y.shape[1]) + y.shape[3:])
        return y, xin[:, :, -(self.kt - 1) :]


def default_inflation(layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Blocks with a temporal kernel: every other block (0, 2, ...) of stages 1-3, none in 4."""
    return tuple(tuple(range(0, n, 2)) if i < 3 else () for i, n in enumerate(layers))


class InflatedResNet(nn.Module):
    """A ResNet with causal temporal convolutions (module docstring).

    Args:
        backbone: ResNet name (``"resnet50"`` ...) or a classifier-free :class:`ResNet` to
            inflate (its weights are inflated too).
        stem_kt: temporal extent of the stem convolution (``1`` keeps it 2D).
        block_kt: temporal extent of the inflated block convolutions.
        inflate: per stage, the block indices to inflate (default :func:`default_inflation`).
        width: stem width when built by name.
    """

    def __init__(
        self,
        backbone: str | ResNet = "resnet50",
        *,
        stem_kt: int = 5,
        block_kt: int = 3,
        inflate: Sequence[Sequence[int]] | None = None,
        width: int = 64,
    ) -> None:
        super().__init__()
        base = backbone if isinstance(backbone, ResNet) else build_resnet(backbone, 0, width)
        self.num_features = base.num_features
        self.conv1 = TemporalConv(base.conv1, stem_kt) if stem_kt > 1 else base.conv1
        self.bn1, self.relu, self.maxpool = base.bn1, base.relu, base.maxpool
        self.layer1, self.layer2 = base.layer1, base.layer2
        self.layer3, self.layer4 = base.layer3, base.layer4
        inflate = default_inflation(base.layers) if inflate is None else inflate
        for stage, blocks in zip(self.stages(), inflate):
            for j in blocks:
                stage[j].conv1 = TemporalConv(stage[j].conv1, block_kt)

    def stages(self) -> tuple[nn.Sequential, ...]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def temporal_convs(self) -> list[TemporalConv]:
        """The temporal convolutions in forward order (one cache each in the state)."""
        return [m for m in self.modules() if isinstance(m, TemporalConv)]

    def forward_features(
        self, x: torch.Tensor, state: CacheState | None = None
    ) -> tuple[torch.Tensor, CacheState]:
        """``(B, T, 3, H, W)`` -> ``(B, T, C, H/32, W/32)`` features and the new state."""
        b, t = x.shape[:2]
        n = len(self.temporal_convs())
        if state is not None and len(state) != n:
            raise ValueError(f"state must hold {n} caches, got {len(state)}")
        caches = iter(state if state is not None else [None] * n)
        new: list[torch.Tensor] = []

        def conv(mod: nn.Module, inp: torch.Tensor) -> torch.Tensor:
            if isinstance(mod, TemporalConv):
                out, cache = mod(inp, t, next(caches))
                new.append(cache)
                return out
            return mod(inp)

        y = x.reshape((b * t,) + x.shape[2:])
        y = self.maxpool(self.relu(self.bn1(conv(self.conv1, y))))
        for stage in self.stages():
            for blk in stage:
                identity = y if blk.downsample is None else blk.downsample(y)
                out = blk.relu(blk.bn1(conv(blk.conv1, y)))
                if isinstance(blk, Bottleneck):
                    out = blk.relu(blk.bn2(blk.conv2(out)))
                    out = blk.bn3(blk.conv3(out))
                else:
                    out = blk.bn2(blk.conv2(out))
                y = blk.relu(out + identity)
        return y.reshape((b, t) + y.shape[1:]), tuple(new)

    def load_torchvision_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
    ) -> list[str]:
        """Load a 2D torchvision ResNet checkpoint, inflating kernels where this model is 3D."""

        def adapt(key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if target.dim() == 5 and value.dim() == 4:
                kt = target.shape[2]
                return value.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
            return value

        return _load_matching(self, state_dict, source, adapt)
