"""SeqHAND-Net (paper section 4, Fig. 5) and the surface every hand regressor shares.

SeqHAND-Net: per frame, a ResNet backbone gives ``(C, H/32, W/32)`` features (2048 x 7 x 7 for
ResNet-50 at 224x224); a 1x1 convolution (+ batch norm + ReLU) reduces them to
``reduce_channels``; a ConvLSTM carries the visuo-temporal state across frames; its hidden map is
averaged over space (or, with ``head_grid=g``, pooled to a g x g grid and flattened) and a
linear layer maps it to the 26 output numbers of the frame. With
ResNet-50, ``reduce_channels = hidden_channels = 512`` and a 3x3 ConvLSTM kernel the model has
43.4M parameters (Table 2: 43.2M; see docs/model.md for the count of every variant).

**Input**: ``(B, T, 3, H, W)`` float RGB frames in [0, 1] normalised per channel with the
ImageNet mean and standard deviation (:func:`normalize_frames`), the normalisation torchvision's
checkpoints were trained with. H = W = 224 is the paper's size; any multiple of 32 works.

**Output**: ``(B, T, 26)`` = ``[s, tx, ty, rx, ry, rz, theta_pca(10), beta(10)]``
(:data:`seqhand.conventions.OUTPUT_SLICES`) in the units of the camera of Eq. 3-4: ``s`` in
pixels per metre, ``t`` in pixels of the input frames, ``r`` axis-angle radians, ``theta_pca``
MANO pose-PCA coefficients relative to the *mean* hand pose, ``beta`` shape. The last layer's
raw numbers z are mapped by :func:`raw_to_params` so that z = 0 is a plausible hand::

    s = s_ref * softplus(z_s + log(e - 1))        # z_s = 0 -> s_ref, always > 0
    t = (W / 2, H / 2) * (1 + z_t)                 # z_t = 0 -> crop centre, +-1 -> crop edges
    R = GS(z_r6 + 6D(R_offset))  (6D head, default)  |  r = z_r + rot_offset  (axis-angle head)
    theta_pca = z_theta;  beta = z_beta

The global rotation leaves the network as 6 numbers mapped to R by Gram-Schmidt (the continuous
representation of Zhou et al., CVPR 2019; ``rotation="6d"``, 29 raw numbers) - the 26 numbers
carry R's axis-angle - or, for the ablation, as the paper's literal axis-angle vector
(``rotation="axis_angle"``, 26 raw numbers), which jumps where |r| passes pi.

with ``s_ref = min(H, W) / (CROP_FACTOR * HAND_EXTENT_M)``: a hand ~18 cm long whose tight box
is 1/2.2 of the crop side (the crops of the paper, section 5) - 566 px/m at 224x224. The last
layer starts with small weights (std 1e-3) and zero bias, so a new network predicts about that
hand and every parameter still receives a gradient.

**Streaming**: ``forward(frames, state) -> (params, state)`` and ``step(frame, state) ->
(params (B, 26), state)``. The state is opaque (``None`` = start of a sequence); running a
sequence at once equals stepping it frame by frame with the state passed along.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqhand.conventions import CROP_FACTOR, HAND_EXTENT_M, OUTPUT_DIM, OUTPUT_SLICES
from seqhand.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from seqhand.models.convlstm import ConvLSTM
from seqhand.models.resnet import IMAGENET_MEAN, IMAGENET_STD, ResNet, build_resnet

_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_ONE) == 1

State = Any
"""A regressor's streaming state: ``None`` or a (nested) tuple of tensors."""


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] (float) or 0..255 (uint8) -> ImageNet-normalised float."""
    if frames.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W) RGB frames, got {tuple(frames.shape)}")
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def reference_scale(
    image_size: float, hand_extent_m: float = HAND_EXTENT_M, crop_factor: float = CROP_FACTOR
) -> float:
    """Scale (pixels per metre) of a typical hand in a crop of side ``image_size`` pixels."""
    return float(image_size) / (crop_factor * hand_extent_m)


ROTATIONS = ("6d", "axis_angle")
"""How a network outputs the global rotation: ``"6d"`` - 6 raw numbers mapped to R by
Gram-Schmidt (Zhou et al. 2019, continuous, the default) - or ``"axis_angle"`` - 3 raw numbers,
the paper's literal Rodrigues vector (it jumps at |r| = pi; kept for the ablation)."""


def raw_dim(rotation: str = "6d") -> int:
    """Length of a network's raw output: 26 (axis-angle) or 29 (6D rotation)."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    return OUTPUT_DIM + (3 if rotation == "6d" else 0)


def decode_raw(
    raw: torch.Tensor,
    image_hw: tuple[int, int],
    *,
    rotation: str = "axis_angle",
    rot_offset: torch.Tensor | None = None,
    hand_extent_m: float = HAND_EXTENT_M,
    crop_factor: float = CROP_FACTOR,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's raw numbers -> ``(params (..., 26), R (..., 3, 3))`` (module doc).

    ``raw`` is ``(..., 26)`` for ``rotation="axis_angle"`` (``r = z_r + rot_offset``) and
    ``(..., 29)`` for ``"6d"`` (``R = GS(z_r6 + 6D(Rodrigues(rot_offset)))``, and ``r`` in the
    26 numbers is R's axis-angle, angle in [0, pi]). ``R`` is what the losses should use: it is
    continuous in ``raw`` for the 6D head.
    """
    n = raw_dim(rotation)
    if raw.shape[-1] != n:
        raise ValueError(f"expected (..., {n}) raw outputs for {rotation}, got {tuple(raw.shape)}")
    h, w = image_hw
    s_ref = reference_scale(min(h, w), hand_extent_m, crop_factor)
    scale = s_ref * F.softplus(raw[..., 0:1] + _SOFTPLUS_INV_ONE)
    half = raw.new_tensor([w / 2.0, h / 2.0])
    trans = half * (1.0 + raw[..., 1:3])
    offset = raw.new_zeros(3) if rot_offset is None else rot_offset.to(raw)
    if rotation == "6d":
        rmat = rotation_6d_to_matrix(raw[..., 3:9] + matrix_to_rotation_6d(
            axis_angle_to_matrix(offset)))  # fmt: skip
        rot = matrix_to_axis_angle(rmat)
    else:
        rot = raw[..., 3:6] + offset
        rmat = axis_angle_to_matrix(rot)
    rest = raw[..., n - (OUTPUT_DIM - OUTPUT_SLICES["pose_pca"].start) :]
    return torch.cat([scale, trans, rot, rest], dim=-1), rmat


def raw_to_params(raw: torch.Tensor, image_hw: tuple[int, int], **kwargs: Any) -> torch.Tensor:
    """Map the last layer's raw numbers to the 26 parameters (:func:`decode_raw`'s first part)."""
    return decode_raw(raw, image_hw, **kwargs)[0]


def params_to_raw(
    params: torch.Tensor,
    image_hw: tuple[int, int],
    *,
    rotation: str = "axis_angle",
    rot_offset: torch.Tensor | None = None,
    hand_extent_m: float = HAND_EXTENT_M,
    crop_factor: float = CROP_FACTOR,
) -> torch.Tensor:
    """Inverse of :func:`raw_to_params` (``s`` must be > 0); for the 6D head, the raw numbers
    whose Gram-Schmidt image is exactly R (the first two columns minus the offset's)."""
    h, w = image_hw
    s_ref = reference_scale(min(h, w), hand_extent_m, crop_factor)
    sl = OUTPUT_SLICES
    y = params[..., sl["scale"]] / s_ref
    z_s = y + torch.log(-torch.expm1(-y)) - _SOFTPLUS_INV_ONE  # softplus^-1(y) = log(e^y - 1)
    half = params.new_tensor([w / 2.0, h / 2.0])
    z_t = params[..., sl["trans"]] / half - 1.0
    offset = params.new_zeros(3) if rot_offset is None else rot_offset.to(params)
    if rotation == "6d":
        z_r = matrix_to_rotation_6d(axis_angle_to_matrix(params[..., sl["rot"]]))
        z_r = z_r - matrix_to_rotation_6d(axis_angle_to_matrix(offset))
    else:
        z_r = params[..., sl["rot"]] - offset
    return torch.cat([z_s, z_t, z_r, params[..., sl["pose_pca"].start :]], dim=-1)


def grid_pool_matrix(n: int, g: int) -> torch.Tensor:
    """``(g, n)`` matrix whose rows average the cells of adaptive average pooling from n to g
    (cell i covers ``floor(i n / g) .. ceil((i + 1) n / g) - 1``, as ``adaptive_avg_pool2d``);
    a constant matrix keeps the pooling exportable to ONNX for any input size."""
    m = torch.zeros(g, n)
    for i in range(g):
        a, b = (i * n) // g, -(-(i + 1) * n // g)
        m[i, a:b] = 1.0 / (b - a)
    return m


class RegressionHead(nn.Module):
    """MLP ``in_features -> hidden... -> 26`` with ReLUs; the last layer starts small.

    ``hidden=()`` is the single linear map of SeqHAND-Net; the per-frame baseline uses
    ``(2048, 512)`` (its 28.8M parameters in Table 2 fit exactly that head on ResNet-50).
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (), out_features: int = OUTPUT_DIM
    ) -> None:
        super().__init__()
        dims = [int(in_features), *(int(h) for h in hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], out_features)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


def make_backbone(backbone: str | ResNet, width: int = 64) -> ResNet:
    """A classifier-free :class:`ResNet` from a name (``"resnet50"``...) or pass one through."""
    if isinstance(backbone, ResNet):
        return backbone
    return build_resnet(str(backbone), num_classes=0, width=width)


class HandRegressor(nn.Module):
    """Base of every model in :mod:`seqhand.models`: one surface for all variants.

    Subclasses build ``self.backbone`` and implement :meth:`forward_raw`. Attributes:

    * ``is_recurrent`` - has a recurrent layer (ConvLSTM / LSTM) that fine-tuning can freeze
      (:meth:`recurrent_parameters`).
    * ``is_temporal`` - its output for frame t depends on earlier frames (carries a state).
      Every model here is causal, so every model streams.

    Args (shared by every subclass, keyword-only there):
        rotation: ``"6d"`` (default: continuous, Zhou et al. 2019) or ``"axis_angle"`` (the
            paper's literal head) - see :data:`ROTATIONS`. The 26 output numbers are the same.
        rot_offset: the rotation predicted at initialisation (axis-angle, default identity).
        hand_extent_m, crop_factor: define the initial scale ``s_ref`` (module docstring).
    """

    is_recurrent: bool = False
    is_temporal: bool = False
    backbone_bf16: bool = False  # a run-time choice (not saved): see encode_frames

    def __init__(
        self,
        *,
        rotation: str = "6d",
        rot_offset: Sequence[float] = (0.0, 0.0, 0.0),
        hand_extent_m: float = HAND_EXTENT_M,
        crop_factor: float = CROP_FACTOR,
    ) -> None:
        super().__init__()
        self.rotation = str(rotation)
        self.raw_dim = raw_dim(self.rotation)
        self.register_buffer(
            "rot_offset", torch.as_tensor(rot_offset, dtype=torch.float32).reshape(3)
        )
        self.hand_extent_m = float(hand_extent_m)
        self.crop_factor = float(crop_factor)

    # -- to implement ---------------------------------------------------------------------
    def forward_raw(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """``(B, T, 3, H, W)`` normalised frames -> ``(B, T, raw_dim)`` raw outputs and state."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def recurrent_parameters(self) -> list[nn.Parameter]:
        """Parameters of the recurrent layer (frozen by ``Train_C`` fine-tuning); may be []."""
        return []

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Backbone on every frame: ``(B, T, 3, H, W)`` -> ``(B, T, C, H/32, W/32)``, in the
        frames' dtype. With ``backbone_bf16`` the backbone alone runs under bfloat16 autocast
        (the trainer's ``precision: bf16-backbone``); the recurrent layer, head and decoding
        stay in the frames' dtype."""
        b, t = frames.shape[:2]
        with torch.autocast(frames.device.type, torch.bfloat16, enabled=self.backbone_bf16):
            feats = self.backbone.forward_features(frames.reshape((b * t,) + frames.shape[2:]))
        return feats.to(frames.dtype).reshape((b, t) + feats.shape[1:])

    def decode_raw(self, raw: torch.Tensor, image_hw: tuple[int, int]):
        """Raw ``(..., raw_dim)`` -> ``(params (..., 26), R (..., 3, 3))`` (:func:`decode_raw`)."""
        return decode_raw(
            raw,
            image_hw,
            rotation=self.rotation,
            rot_offset=self.rot_offset,
            hand_extent_m=self.hand_extent_m,
            crop_factor=self.crop_factor,
        )

    def to_params(self, raw: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """Raw ``(..., raw_dim)`` -> parameters ``(..., 26)`` in pixels / radians."""
        return self.decode_raw(raw, image_hw)[0]

    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[1] < 1:
            raise ValueError(
                f"{type(self).__name__} expects (B, T, 3, H, W) frames with T >= 1, got "
                f"{tuple(frames.shape)} (use step() for a single (B, 3, H, W) frame)"
            )
        if not frames.is_floating_point():
            raise TypeError(f"frames must be float and normalised, got {frames.dtype}")

    def forward_full(self, frames: torch.Tensor, state: State = None):
        """``(B, T, 3, H, W)`` -> ``(params (B, T, 26), R (B, T, 3, 3), state)``; training uses
        R (continuous for the 6D head) rather than the axis-angle inside ``params``."""
        self._check_frames(frames)
        raw, state = self.forward_raw(frames, state)
        params, rmat = self.decode_raw(raw, tuple(frames.shape[-2:]))
        return params, rmat, state

    def forward(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """``(B, T, 3, H, W)`` normalised frames -> ``(params (B, T, 26), state)``."""
        params, _, state = self.forward_full(frames, state)
        return params, state

    def step(self, frame: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """One frame ``(B, 3, H, W)`` -> ``(params (B, 26), state)``."""
        if frame.dim() != 4:
            raise ValueError(f"step() expects one (B, 3, H, W) frame, got {tuple(frame.shape)}")
        params, state = self.forward(frame[:, None], state)
        return params[:, 0], state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SeqHandNet(HandRegressor):
    """The paper's model: backbone -> 1x1 reduction -> ConvLSTM -> pooling -> linear.

    Args:
        backbone: ``"resnet18" | "resnet34" | "resnet50" | "resnet101"`` or a ResNet.
        reduce_channels: output channels of the 1x1 reduction (input of the ConvLSTM).
        hidden_channels: ConvLSTM hidden channels.
        kernel_size: ConvLSTM kernel size.
        peephole: per-channel peephole connections in the ConvLSTM (default off, see
            :mod:`seqhand.models.convlstm`).
        head_hidden: hidden widths of the head after pooling (``()`` = one linear layer).
        head_grid: how the ConvLSTM's hidden map reaches the head: ``0`` (default) averages it
            over space (the 43.2M-parameter count of Table 2); ``g > 0`` average-pools it to a
            ``g x g`` grid and flattens it (``hidden_channels * g * g`` inputs), keeping where
            in the crop each feature is - the paper's "linear mapping layer from hidden
            features" read literally; the ``tiny`` preset uses 3 (its 3 x 3 map at 96 px).
        backbone_width: stem width of a backbone built by name (64 = torchvision's).
        **kwargs: :class:`HandRegressor` options.

    State: the ConvLSTM's ``(h, c)``, each ``(B, hidden_channels, H/32, W/32)``.
    """

    is_recurrent = True
    is_temporal = True

    def __init__(
        self,
        backbone: str | ResNet = "resnet50",
        *,
        reduce_channels: int = 512,
        hidden_channels: int = 512,
        kernel_size: int = 3,
        peephole: bool = False,
        head_hidden: Sequence[int] = (),
        head_grid: int = 0,
        backbone_width: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(head_grid) < 0:
            raise ValueError(f"head_grid must be >= 0, got {head_grid}")
        self.head_grid = int(head_grid)
        self.backbone = make_backbone(backbone, backbone_width)
        c = self.backbone.num_features
        self.reduce = nn.Sequential(
            nn.Conv2d(c, reduce_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(reduce_channels),
            nn.ReLU(inplace=True),
        )
        nn.init.kaiming_normal_(self.reduce[0].weight, mode="fan_out", nonlinearity="relu")
        self.convlstm = ConvLSTM(reduce_channels, hidden_channels, kernel_size, peephole=peephole)
        cells = self.head_grid**2 if self.head_grid else 1
        self.head = RegressionHead(hidden_channels * cells, head_hidden, self.raw_dim)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, h, w)`` hidden maps -> ``(B, T, C)`` (mean) or ``(B, T, C * g * g)``
        (adaptive average pooling to g x g, channel-major)."""
        if not self.head_grid:
            return hidden.mean(dim=(-2, -1))
        g, (h, w) = self.head_grid, hidden.shape[-2:]
        if (h, w) != (g, g):
            hidden = torch.einsum("ih,btchw,jw->btcij", grid_pool_matrix(int(h), g).to(hidden),
                                  hidden, grid_pool_matrix(int(w), g).to(hidden))  # fmt: skip
        return hidden.flatten(2)

    def forward_raw(self, frames: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        b, t = frames.shape[:2]
        feats = self.encode_frames(frames)
        red = self.reduce(feats.flatten(0, 1))
        hidden, state = self.convlstm(red.reshape((b, t) + red.shape[1:]), state)
        return self.head(self.pool(hidden)), state

    def recurrent_parameters(self) -> list[nn.Parameter]:
        return list(self.convlstm.parameters())
