"""The ablation variants of the paper's Table 2, and the registry that builds any model by name.

=====================  =====================================================  ==============
name                   structure                                              params (paper)
=====================  =====================================================  ==============
``resnet50``           per-frame: ResNet-50 -> pool -> MLP 2048-2048-512-26     28.8M (28.8M)
``resnet101``          per-frame, ResNet-101                                   47.8M (47.8M)
``resnet50_lstm``      ResNet-50 -> pool -> LSTM(1200) -> linear                39.1M (39.3M)
``resnet50_convlstm``  SeqHAND-Net: ResNet-50 -> 1x1 (512) -> ConvLSTM(512,    43.4M (43.2M)
                       3x3) -> pool -> linear
``i3d_resnet50``       causal I3D-style inflated ResNet-50 -> pool -> MLP      30.4M (31.5M)
``mfnet``              ResNet-50 + fixed motion filters after stages 3, 4     41.9M (41.7M)
                       -> pool -> MLP
``resnet18_convlstm``  SeqHAND-Net on ResNet-18 (256 / 256), for CPU work      16.0M
``tiny``               SeqHAND-Net on a 4-block ResNet of width 32, 64 / 64,   1.6M
                       3 x 3 grid head (head_grid=3)
=====================  =====================================================  ==============

Every variant takes ``backbone=`` (``"resnet18"`` ... ``"resnet101"``), so e.g.
``build_model("mfnet", backbone="resnet18")`` is the small version used in tests. All share
:class:`~seqhand.models.seqhandnet.HandRegressor`'s surface and all are causal, so all stream.
docs/model.md explains how the sizes were chosen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqhand.models.inflated import InflatedResNet
from seqhand.models.resnet import BasicBlock, ResNet, load_backbone_weights
from seqhand.models.seqhandnet import (
    HandRegressor,
    RegressionHead,
    SeqHandNet,
    State,
    make_backbone,
)

BASELINE_HEAD = (2048, 512)
"""Hidden widths of the per-frame baseline's MLP head (fits Table 2's 28.8M / 47.8M)."""


class PerFrameRegressor(HandRegressor):
    """The baseline encoder (Boukhayma et al. on ResNet-50): each frame on its own.

    backbone -> global average pooling -> MLP ``head_hidden`` -> 26. The state is always
    ``None``.
    """

    def __init__(
        self,
        backbone: str | ResNet = "resnet50",
        *,
        head_hidden: Sequence[int] = BASELINE_HEAD,
        backbone_width: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = make_backbone(backbone, backbone_width)
        self.head = RegressionHead(self.backbone.num_features, head_hidden, self.raw_dim)

    def forward_raw(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        return self.head(self.encode_frames(frames).mean(dim=(-2, -1))), None


class LSTMRegressor(HandRegressor):
    """Baseline + LSTM: backbone -> pool -> LSTM(``hidden_size``) -> MLP ``head_hidden`` -> 26.

    State: ``(h, c)``, each ``(1, B, hidden_size)`` (``torch.nn.LSTM``'s layout).
    """

    is_recurrent = True
    is_temporal = True

    def __init__(
        self,
        backbone: str | ResNet = "resnet50",
        *,
        hidden_size: int = 1200,
        head_hidden: Sequence[int] = (),
        backbone_width: int = 64,
        forget_bias: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = make_backbone(backbone, backbone_width)
        self.lstm = nn.LSTM(self.backbone.num_features, hidden_size, batch_first=True)
        with torch.no_grad():  # forget gate (PyTorch order i, f, g, o) starts open
            self.lstm.bias_ih_l0[hidden_size : 2 * hidden_size].fill_(forget_bias)
            self.lstm.bias_hh_l0[hidden_size : 2 * hidden_size].zero_()
        self.head = RegressionHead(hidden_size, head_hidden, self.raw_dim)

    def forward_raw(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        pooled = self.encode_frames(frames).mean(dim=(-2, -1))  # (B, T, C)
        out, state = self.lstm(pooled, state)
        return self.head(out), state

    def recurrent_parameters(self) -> list[nn.Parameter]:
        return list(self.lstm.parameters())


class I3DRegressor(HandRegressor):
    """3D-convolution encoder: causal I3D-style inflated ResNet -> pool -> MLP -> 26 per frame.

    State: one cache per temporal convolution (:class:`~seqhand.models.inflated.InflatedResNet`).
    Not "recurrent": there is no recurrent layer to freeze, but it is temporal and streams.
    """

    is_temporal = True

    def __init__(
        self,
        backbone: str | ResNet = "resnet50",
        *,
        stem_kt: int = 5,
        block_kt: int = 3,
        inflate: Sequence[Sequence[int]] | None = None,
        head_hidden: Sequence[int] = BASELINE_HEAD,
        backbone_width: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = InflatedResNet(
            backbone, stem_kt=stem_kt, block_kt=block_kt, inflate=inflate, width=backbone_width
        )
        self.head = RegressionHead(self.backbone.num_features, head_hidden, self.raw_dim)

    def forward_raw(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        feats, state = self.backbone.forward_features(frames, state)
        return self.head(feats.mean(dim=(-2, -1))), state


def shift2d(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = x[..., i + dy, j + dx]``, zero where that falls outside the map."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    xp = F.pad(x, (p, p, p, p))
    return xp[..., p + dy : p + dy + h, p + dx : p + dx + w]


MOTION_SHIFTS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
)
"""The 9 fixed motion filters: the 8 neighbours at distance 1 and the zero shift."""


class MotionBlock(nn.Module):
    """MFNet-style fixed motion filters between consecutive frames' features (simplified).

    Lee et al. (ECCV 2018) reduce the channels of a stage's features, then apply *fixed*
    (untrained) motion filters that subtract the features of one frame from those of the next
    frame shifted in each of 8 directions, and fuse the result back into the spatial stream.
    Here, causally: ``m_d = shift(f_t, d) - f_{t-1}`` for the 9 shifts of :data:`MOTION_SHIFTS`
    (f = 1x1-reduced features), concatenated, fused by a 1x1 convolution + batch norm and added
    to the stage's output. At a sequence start ``f_{-1} = f_0`` (no motion). The batch norm's
    weight starts at 0.1 so the network starts close to its per-frame ResNet.

    ``forward(x (B, T, C, H, W), prev (B, Cm, H, W) | None) -> (y, f_last)``.
    """

    def __init__(self, channels: int, motion_channels: int, init_gain: float = 0.1) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, motion_channels, kernel_size=1, bias=False)
        self.fuse = nn.Conv2d(
            len(MOTION_SHIFTS) * motion_channels, channels, kernel_size=1, bias=False
        )
        self.bn = nn.BatchNorm2d(channels)
        for conv in (self.reduce, self.fuse):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.bn.weight, init_gain)
        nn.init.zeros_(self.bn.bias)

    def forward(
        self, x: torch.Tensor, prev: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = x.shape[:2]
        f = self.reduce(x.flatten(0, 1)).reshape((b, t, -1) + x.shape[3:])
        first = f[:, :1] if prev is None else prev[:, None]
        before = torch.cat([first, f[:, :-1]], dim=1)  # f_{t-1}
        motion = torch.cat([shift2d(f, dy, dx) - before for dy, dx in MOTION_SHIFTS], dim=2)
        y = self.bn(self.fuse(motion.flatten(0, 1)))
        return x + y.reshape(x.shape), f[:, -1]


class MFNetRegressor(HandRegressor):
    """MFNet-style encoder: ResNet + motion blocks after stages 3 and 4 -> pool -> MLP -> 26.

    Motion channels are 1/4 of the stage's channels (256 and 512 on ResNet-50). State: the
    last frame's reduced features of each motion block.
    """

    is_temporal = True

    def __init__(
        self,
        backbone: str | ResNet = "resnet50",
        *,
        motion_ratio: int = 4,
        head_hidden: Sequence[int] = BASELINE_HEAD,
        backbone_width: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = make_backbone(backbone, backbone_width)
        c4 = self.backbone.num_features
        self.motion3 = MotionBlock(c4 // 2, c4 // 2 // motion_ratio)
        self.motion4 = MotionBlock(c4, c4 // motion_ratio)
        self.head = RegressionHead(c4, head_hidden, self.raw_dim)

    def forward_raw(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        b, t = frames.shape[:2]
        prev3, prev4 = (None, None) if state is None else state
        bb = self.backbone

        def per_frame(fn, x5: torch.Tensor) -> torch.Tensor:
            y = fn(x5.flatten(0, 1))
            return y.reshape((b, t) + y.shape[1:])

        x = per_frame(lambda y: bb.layer3(bb.layer2(bb.layer1(bb.forward_stem(y)))), frames)
        x, prev3 = self.motion3(x, prev3)
        x = per_frame(bb.layer4, x)
        x, prev4 = self.motion4(x, prev4)
        return self.head(x.mean(dim=(-2, -1))), (prev3, prev4)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
ModelFactory = Callable[..., HandRegressor]
_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make a factory available to :func:`build_model` under ``name``."""

    def deco(fn: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(
    name: str, *, backbone_weights: str | os.PathLike | None = None, **kwargs: Any
) -> HandRegressor:
    """Build a registered model; ``kwargs`` override the preset's defaults.

    ``backbone_weights``: a torchvision ImageNet checkpoint file loaded into the backbone
    (:func:`~seqhand.models.resnet.load_backbone_weights`). The call is recorded in
    ``model.spec`` (name + keyword arguments) so a checkpoint can rebuild its model.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    model = _REGISTRY[name](**kwargs)
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    model.spec = {"name": name, **kwargs}
    return model


def _preset(cls: type[HandRegressor], **defaults: Any) -> ModelFactory:
    def factory(**kwargs: Any) -> HandRegressor:
        return cls(**{**defaults, **kwargs})

    factory.__doc__ = f"{cls.__name__} with defaults {defaults}"
    return factory


def _tiny(**kwargs: Any) -> HandRegressor:
    width = kwargs.pop("backbone_width", 32)
    layers = kwargs.pop("backbone_layers", (1, 1, 1, 1))
    backbone = kwargs.pop("backbone", None) or ResNet(BasicBlock, layers, 0, width)
    defaults = {"reduce_channels": 64, "hidden_channels": 64, "kernel_size": 3, "head_grid": 3}
    return SeqHandNet(backbone, **{**defaults, **kwargs})


for _name, _factory in {
    "resnet50": _preset(PerFrameRegressor, backbone="resnet50"),
    "resnet101": _preset(PerFrameRegressor, backbone="resnet101"),
    "resnet50_lstm": _preset(LSTMRegressor, backbone="resnet50"),
    "resnet50_convlstm": _preset(SeqHandNet, backbone="resnet50"),
    "i3d_resnet50": _preset(I3DRegressor, backbone="resnet50"),
    "mfnet": _preset(MFNetRegressor, backbone="resnet50"),
    "resnet18_convlstm": _preset(
        SeqHandNet, backbone="resnet18", reduce_channels=256, hidden_channels=256
    ),
    "tiny": _tiny,
}.items():
    register_model(_name)(_factory)

PAPER_PARAM_COUNTS_M: dict[str, float] = {
    "resnet50": 28.8,
    "resnet101": 47.8,
    "i3d_resnet50": 31.5,
    "mfnet": 41.7,
    "resnet50_lstm": 39.3,
    "resnet50_convlstm": 43.2,
}
"""Table 2's parameter counts (millions), by our model name."""
