"""The training objectives of the paper (Eq. 8-15) as pure functions, with thin modules.

Units and normalisations (chosen so the paper's weights balance; see docs/model.md):

* **2D** (Eq. 8, L1; and the mask loss): pixels divided by the image side ``max(H, W)`` -
  fractions of the crop, independent of the input resolution.
* **3D** (Eq. 9-10, squared L2): metres divided by :data:`REF_LENGTH_3D_M` = 0.1 m (about a
  palm's length) - a 1 cm error costs 0.01. Joints and vertices are compared root-relative.
* **camera/parameters** (Eq. 13): ``s`` relative to the reference scale of the crop, ``t`` in
  half crop sides, ``r`` in radians, ``theta_pca`` and ``beta`` as they are - i.e. the units of
  the network's raw outputs (:func:`seqhand.models.seqhandnet.raw_to_params`).

Reductions (``LossWeights.reduction``):

* ``"authors"`` (default) - as the authors' training code (vanyoleyang/llll ``loss.py``): the
  2D L1 is *summed* over the 21 joints (pixels / image side) and the 3D squared error is
  *summed* over the joints in **metres^2**; then a mean over frames and samples. With the
  paper's lambda_2D = 5, lambda_3D = 100 a 1 px error on every joint of a 224 px crop costs
  5 * 21 * 2 / 224 = 0.94, a 1 cm error on every joint 100 * 21 * 1e-4 = 0.21. Eq. 10 (mesh)
  is the mean over vertices times 21, i.e. on the scale of the joint term.
* ``"mean"`` - the earlier seqhand choice: a *mean* over joints, 3D in units of
  :data:`REF_LENGTH_3D_M` = 0.1 m (a 1 cm error costs 0.01 before lambda). Its 3D:2D balance
  is about 100x the authors'.

The per-element norm is the one named by the equation (L1 of a 2D point, squared L2 of a 3D
point, squared L2 of a parameter group). Every ``*_valid`` mask is optional, boolean or 0/1
float, broadcast over the batch dims; a term with no valid element is 0.

Rotation in Eq. 13 (``LossWeights.rotation``): the network's rotation matrix R is compared
with the ground truth's as ``||R_hat - R||_F^2`` (``"frobenius"``, default; = 4 (1 - cos angle),
smooth and without wrap-around) or as the squared geodesic angle (``"geodesic"``); the paper's
literal comparison of axis-angle vectors (``"axis_angle"``) jumps where |r| passes pi.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn

from seqhand.conventions import NUM_JOINTS, OUTPUT_SLICES, WRIST
from seqhand.geometry.rotations import axis_angle_to_matrix, geodesic_angle

REF_LENGTH_3D_M = 0.1
"""3D distances in the losses are in units of 10 cm."""


@dataclasses.dataclass
class LossWeights:
    """The weights of Eq. 14 (pre-training) / Eq. 15 (fine-tuning): the paper's by default.

    ``theta_temp`` is lambda_temp^theta inside Eq. 12. The paper states 2e-4 in its list of
    weights (used here) and also "a comparably small number as 0.01" in the text of Eq. 12.
    ``mesh3d`` weights Eq. 10, which the paper handles "as done for 3D joint loss" without a
    weight of its own: we use lambda_3D.
    """

    joints2d: float = 5.0
    joints3d: float = 100.0
    mesh3d: float = 100.0
    temporal: float = 100.0
    theta_temp: float = 2e-4
    camera: float = 1.0
    mask: float = 10.0
    reduction: str = "authors"
    rotation: str = "frobenius"

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"loss.reduction must be one of {REDUCTIONS}, got {self.reduction!r}")
        if self.rotation not in ROTATION_LOSSES:
            raise ValueError(
                f"loss.rotation must be one of {ROTATION_LOSSES}, got {self.rotation!r}"
            )


REDUCTIONS = ("authors", "mean")
ROTATION_LOSSES = ("frobenius", "geodesic", "axis_angle")
_NOT_TERMS = ("theta_temp", "reduction", "rotation")


def _check(name: str, x: torch.Tensor, last: tuple[int, ...]) -> None:
    if tuple(x.shape[-len(last) :]) != last:
        raise ValueError(f"{name} must be (..., {', '.join(map(str, last))}), got {tuple(x.shape)}")


def masked_mean(values: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``valid`` (broadcast) is true; 0 if none."""
    if valid is None:
        return values.mean() if values.numel() else values.sum()
    w = torch.broadcast_to(valid.to(values.dtype), values.shape)
    return (values * w).sum() / w.sum().clamp(min=1.0)


def _reduce_points(err: torch.Tensor, valid: torch.Tensor | None, reduction: str,
                   sum_scale: float | None = None) -> torch.Tensor:  # fmt: skip
    """``(..., P)`` per-point errors -> scalar: a mean over valid points (``"mean"``), or the
    sum over valid points of each sample, averaged over samples (``"sum"``; with
    ``sum_scale`` the per-sample mean times ``sum_scale`` instead)."""
    if reduction == "mean":
        return masked_mean(err, valid)
    w = torch.ones_like(err) if valid is None else torch.broadcast_to(valid.to(err), err.shape)
    total = (err * w).sum(-1)
    if sum_scale is not None:
        total = total / w.sum(-1).clamp(min=1.0) * sum_scale
    return total.mean() if total.numel() else total.sum()


# --------------------------------------------------------------------------------------------
# Eq. 8-10: 2D joints, 3D joints, 3D mesh
# --------------------------------------------------------------------------------------------
def joints2d_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    image_size: float,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 8: ``|dx| + |dy|`` in units of the image side, averaged (``"mean"``) or summed
    (``"sum"``, the authors') over valid joints, then averaged over frames.

    Args:
        pred, target: ``(..., J, 2)`` pixels. valid: ``(..., J)`` (e.g. in-frame joints).
        image_size: ``max(H, W)`` of the images, pixels.
    """
    _check("pred", pred, (pred.shape[-2], 2))
    err = (pred - target).abs().sum(-1) / float(image_size)
    return _reduce_points(err, valid, reduction)


def joints3d_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    ref_length: float = REF_LENGTH_3D_M,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 9: ``||pred - target||^2`` in units of ``ref_length``, averaged (``"mean"``) or
    summed (``"sum"``) over valid joints, then averaged over frames.

    ``pred``, ``target``: ``(..., J, 3)`` metres, in the same (root-relative) frame;
    ``valid``: ``(..., J)``.
    """
    _check("pred", pred, (pred.shape[-2], 3))
    err = ((pred - target) / ref_length).pow(2).sum(-1)
    return _reduce_points(err, valid, reduction)


def mesh3d_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    ref_length: float = REF_LENGTH_3D_M,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 10: as :func:`joints3d_loss` over ``(..., V, 3)`` vertices; ``valid``: ``(...)``
    per sample (only samples whose ground truth has vertices, e.g. FreiHAND). ``"sum"``: the
    mean over vertices times 21, on the scale of the summed joint term."""
    _check("pred", pred, (pred.shape[-2], 3))
    err = ((pred - target) / ref_length).pow(2).sum(-1)
    valid = None if valid is None else valid[..., None]
    return _reduce_points(err, valid, reduction, sum_scale=float(NUM_JOINTS))


# --------------------------------------------------------------------------------------------
# Eq. 11: the mask loss, made differentiable with a distance transform
# --------------------------------------------------------------------------------------------
def mask_distance_map(mask: np.ndarray) -> np.ndarray:
    """Outside-distance map of a hand mask, for :func:`mask_loss` (computed on the data side).

    ``mask``: ``(..., H, W)`` bool (hand = True). Returns float32 ``(..., H, W)``: 0 on the
    hand, else the Euclidean distance from the pixel's centre to the nearest hand pixel's
    centre, divided by ``max(H, W)``. An empty mask gives an all-zero map: mark such samples
    invalid (``mask_valid``) rather than training on them.
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim < 2:
        raise ValueError(f"mask must be (..., H, W), got shape {m.shape}")
    h, w = m.shape[-2:]
    flat = m.reshape(-1, h, w)
    out = np.zeros(flat.shape, np.float32)
    for i, mi in enumerate(flat):
        if mi.any():
            out[i] = scipy.ndimage.distance_transform_edt(~mi) / max(h, w)
    return out.reshape(m.shape)


def sample_distance_map(dist_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``(N, H, W)`` maps at ``(N, P, 2)`` pixel points -> ``(N, P)``.

    Pixel (row i, column j) is the value at point ``(j + 0.5, i + 0.5)`` (the image origin is
    the top-left *corner*). Beyond the outermost pixel centres the map is extended by the
    border value plus the (normalised) distance to the border, so points outside the image are
    pulled back in. Differentiable in ``points`` (and in the map).
    """
    if dist_map.dim() != 3 or points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(
            f"expected (N, H, W) maps and (N, P, 2) points, got {tuple(dist_map.shape)} and "
            f"{tuple(points.shape)}"
        )
    h, w = dist_map.shape[-2:]
    lo = points.new_tensor([0.5, 0.5])
    hi = points.new_tensor([w - 0.5, h - 0.5])
    inside = torch.minimum(torch.maximum(points, lo), hi)
    sq = (points - inside).pow(2).sum(-1)
    out = sq > 0
    beyond = torch.where(out, torch.sqrt(torch.where(out, sq, torch.ones_like(sq))), 0.0)
    grid = inside / points.new_tensor([w, h]) * 2.0 - 1.0  # align_corners=False: corner origin
    vals = F.grid_sample(
        dist_map[:, None].to(points.dtype),
        grid[:, None],
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[:, 0, 0]
    return vals + beyond / max(h, w)


def mask_loss(
    vertices2d: torch.Tensor, dist_map: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Differentiable hand-mask loss in the spirit of Eq. 11.

    The mean over vertices of the mask's outside distance (:func:`mask_distance_map`) sampled
    at the projected vertices: 0 when every vertex is on the hand, growing with how far the
    outside ones are (units of the image side). Unlike Eq. 11 - an indicator read at rounded
    pixels - it gives the mesh a gradient. Eq. 11 itself is :func:`mask_outside_fraction`.

    Args:
        vertices2d: ``(..., V, 2)`` projected vertices, pixels.
        dist_map: ``(..., H, W)`` distance maps. valid: ``(...)`` samples that have a mask.
    """
    _check("vertices2d", vertices2d, (vertices2d.shape[-2], 2))
    lead = vertices2d.shape[:-2]
    if tuple(dist_map.shape[:-2]) != tuple(lead):
        raise ValueError(
            f"dist_map {tuple(dist_map.shape)} must be (..., H, W) with the leading dims of "
            f"vertices2d {tuple(vertices2d.shape)}"
        )
    pts = vertices2d.reshape((-1,) + vertices2d.shape[-2:])
    maps = dist_map.reshape((-1,) + dist_map.shape[-2:])
    d = sample_distance_map(maps, pts).reshape(vertices2d.shape[:-1])
    return masked_mean(d, None if valid is None else valid[..., None])


@torch.no_grad()
def mask_outside_fraction(vertices2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 11 as a metric: the fraction of projected vertices outside the hand mask.

    A vertex at pixel point ``(x, y)`` falls in pixel ``(floor(y), floor(x))`` (origin at the
    top-left corner); outside the image counts as outside the hand.
    ``vertices2d``: ``(..., V, 2)``; ``mask``: ``(..., H, W)`` bool. Returns ``(...)``.
    """
    h, w = mask.shape[-2:]
    ij = torch.floor(vertices2d).long()
    x, y = ij[..., 0], ij[..., 1]
    in_img = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    flat_mask = mask.reshape(mask.shape[:-2] + (h * w,)).bool()
    idx = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).reshape(flat_mask.shape[:-1] + (-1,))
    hit = torch.gather(flat_mask, -1, idx).reshape(x.shape) & in_img
    return 1.0 - hit.to(vertices2d.dtype).mean(-1)


# --------------------------------------------------------------------------------------------
# Eq. 12-13: temporal consistency, parameter regression
# --------------------------------------------------------------------------------------------
def temporal_loss(
    pose_pca: torch.Tensor,
    betas: torch.Tensor,
    *,
    theta_weight: float = LossWeights.theta_temp,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 12: mean over frame pairs of ``||b_{t-1} - b_t||^2 + w ||th_{t-1} - th_t||^2``.

    Args:
        pose_pca: ``(B, T, k)`` predicted pose codes; betas: ``(B, T, S)`` predicted shapes.
        theta_weight: lambda_temp^theta.
        valid: ``(B, T)`` frames that exist; a pair counts if both frames do.
    A sequence of one frame (fine-tuning on single images) gives 0.
    """
    if pose_pca.dim() != 3 or betas.dim() != 3 or pose_pca.shape[:2] != betas.shape[:2]:
        raise ValueError(
            f"expected (B, T, k) pose and (B, T, S) betas, got {tuple(pose_pca.shape)} and "
            f"{tuple(betas.shape)}"
        )
    if pose_pca.shape[1] < 2:
        return pose_pca.new_zeros(())
    d = (betas[:, 1:] - betas[:, :-1]).pow(2).sum(-1)
    d = d + theta_weight * (pose_pca[:, 1:] - pose_pca[:, :-1]).pow(2).sum(-1)
    pair_valid = None if valid is None else (valid[:, 1:].bool() & valid[:, :-1].bool())
    return masked_mean(d, pair_valid)


def normalised_params(
    params: torch.Tensor, image_hw: tuple[int, int], *, scale_ref: float | None = None
) -> dict[str, torch.Tensor]:
    """The parameter groups of Eq. 13 in the loss's units: ``s / s_ref``, ``t / (W/2, H/2)``
    (centred), ``r``, ``theta_pca``, ``beta``. ``s_ref`` defaults to the network's
    :func:`~seqhand.models.seqhandnet.reference_scale` of the crop."""
    h, w = image_hw
    if scale_ref is None:
        from seqhand.models.seqhandnet import reference_scale

        scale_ref = reference_scale(min(h, w))
    half = params.new_tensor([w / 2.0, h / 2.0])
    sl = OUTPUT_SLICES
    return {
        "scale": params[..., sl["scale"]] / scale_ref,
        "trans": params[..., sl["trans"]] / half - 1.0,
        "rot": params[..., sl["rot"]],
        "pose_pca": params[..., sl["pose_pca"]],
        "betas": params[..., sl["betas"]],
    }


def camera_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    image_hw: tuple[int, int],
    scale_ref: float | None = None,
    pred_rotmat: torch.Tensor | None = None,
    rotation: str = "axis_angle",
) -> torch.Tensor:
    """Eq. 13: ``sum over {theta, beta, r, t, s} of ||pred - target||^2``, mean over samples.

    ``pred``, ``target``: ``(..., 26)`` parameters (network layout, pixels/radians);
    ``valid``: ``(...)``. Groups are compared in the units of :func:`normalised_params`.
    The rotation: ``"axis_angle"`` compares the vectors (the paper, literally);
    ``"frobenius"`` / ``"geodesic"`` compare ``pred_rotmat`` (``(..., 3, 3)``; default
    Rodrigues of the predicted r) with Rodrigues of the target's r by ``||dR||_F^2`` or the
    squared geodesic angle - continuous everywhere.
    """
    _check("pred", pred, (26,))
    a = normalised_params(pred, image_hw, scale_ref=scale_ref)
    b = normalised_params(target, image_hw, scale_ref=scale_ref)
    err = sum((a[k] - b[k]).pow(2).sum(-1) for k in a if k != "rot" or rotation == "axis_angle")
    if rotation != "axis_angle":
        r_hat = axis_angle_to_matrix(a["rot"]) if pred_rotmat is None else pred_rotmat
        r_true = axis_angle_to_matrix(b["rot"]).to(r_hat)
        if rotation == "frobenius":
            err = err + (r_hat - r_true).pow(2).sum((-2, -1))
        else:
            err = err + geodesic_angle(r_hat, r_true, eps=1e-7).pow(2)
    return masked_mean(err, valid)


def weighted_total(
    terms: Mapping[str, torch.Tensor], weights: LossWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 14/15: ``sum_k lambda_k L_k`` over the terms present (keys = LossWeights fields)."""
    weighted = {}
    for k, v in terms.items():
        if not hasattr(weights, k) or k in _NOT_TERMS:
            raise KeyError(f"no weight for loss term {k!r}")
        weighted[k] = getattr(weights, k) * v
    if not weighted:
        raise ValueError("no loss term to add up")
    return sum(weighted.values()), weighted


# --------------------------------------------------------------------------------------------
# Thin modules
# --------------------------------------------------------------------------------------------
class Joints2DLoss(nn.Module):
    """Module form of :func:`joints2d_loss`: ``forward(pred, target, valid, image_size)``."""

    def forward(self, pred, target, valid=None, *, image_size: float) -> torch.Tensor:
        return joints2d_loss(pred, target, valid, image_size=image_size)


class Joints3DLoss(nn.Module):
    """Module form of :func:`joints3d_loss`."""

    def __init__(self, ref_length: float = REF_LENGTH_3D_M) -> None:
        super().__init__()
        self.ref_length = ref_length

    def forward(self, pred, target, valid=None) -> torch.Tensor:
        return joints3d_loss(pred, target, valid, ref_length=self.ref_length)


class Mesh3DLoss(Joints3DLoss):
    """Module form of :func:`mesh3d_loss`."""

    def forward(self, pred, target, valid=None) -> torch.Tensor:
        return mesh3d_loss(pred, target, valid, ref_length=self.ref_length)


class MaskLoss(nn.Module):
    """Module form of :func:`mask_loss`."""

    def forward(self, vertices2d, dist_map, valid=None) -> torch.Tensor:
        return mask_loss(vertices2d, dist_map, valid)


class TemporalLoss(nn.Module):
    """Module form of :func:`temporal_loss`."""

    def __init__(self, theta_weight: float = LossWeights.theta_temp) -> None:
        super().__init__()
        self.theta_weight = theta_weight

    def forward(self, pose_pca, betas, valid=None) -> torch.Tensor:
        return temporal_loss(pose_pca, betas, theta_weight=self.theta_weight, valid=valid)


class CameraLoss(nn.Module):
    """Module form of :func:`camera_loss`."""

    def forward(self, pred, target, valid=None, *, image_hw) -> torch.Tensor:
        return camera_loss(pred, target, valid, image_hw=image_hw)


@dataclasses.dataclass
class LossOutput:
    """``total`` (scalar), unweighted ``terms``, ``weighted`` terms and ``metrics`` (no grad)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    weighted: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor]


class SeqHandLoss(nn.Module):
    """Eq. 14 / 15: every term whose ground truth is in the batch, weighted by ``weights``.

    ``forward(params (B, T, 26), decoded: DecodedHand, targets, image_hw) -> LossOutput``.
    ``targets`` keys (all optional; a term is computed when its key is present):

    ==================  ================  ==============================================
    key                 shape             term
    ==================  ================  ==============================================
    joints2d            (B, T, 21, 2)     Eq. 8, pixels; ``joints2d_valid (B, T, 21)``
    joints3d            (B, T, 21, 3)     Eq. 9, metres; ``joints3d_valid (B, T, 21)``
    vertices3d          (B, T, V, 3)      Eq. 10, metres; ``vertices3d_valid (B, T)``
    mask_dist           (B, T, H, W)      mask loss (:func:`mask_distance_map`);
                                          ``mask_valid (B, T)``; ``mask`` (B, T, H, W)
                                          bool adds the Eq. 11 metric
    params              (B, T, 26)        Eq. 13; ``params_valid (B, T)``
    frames_valid        (B, T)            frames that exist (Eq. 12 pairs)
    ==================  ================  ==============================================

    With ``root_relative`` (default) the 3D targets are made root-relative by subtracting
    their joint ``root`` (the wrist), matching :class:`~seqhand.models.decode.DecodedHand`.
    Eq. 12 is always computed (0 for one-frame sequences).
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        *,
        root_relative: bool = True,
        root: int = WRIST,
        ref_length: float = REF_LENGTH_3D_M,
    ) -> None:
        super().__init__()
        self.weights = weights if weights is not None else LossWeights()
        self.root_relative = root_relative
        self.root = root
        self.ref_length = ref_length

    def forward(self, params, decoded, targets: Mapping[str, torch.Tensor], image_hw,
                rotmat: torch.Tensor | None = None):  # fmt: skip
        """``rotmat``: the network's ``(B, T, 3, 3)`` rotation (the 6D head's), used by the
        rotation part of Eq. 13 unless ``weights.rotation == "axis_angle"``."""
        t = targets
        w = self.weights
        red = "sum" if w.reduction == "authors" else "mean"
        ref = 1.0 if w.reduction == "authors" else self.ref_length
        terms: dict[str, torch.Tensor] = {}
        metrics: dict[str, torch.Tensor] = {}
        root = None
        if self.root_relative and "joints3d" in t:
            root = t["joints3d"][..., self.root : self.root + 1, :]
        if "joints2d" in t:
            terms["joints2d"] = joints2d_loss(
                decoded.joints2d, t["joints2d"], t.get("joints2d_valid"),
                image_size=max(image_hw), reduction=red,
            )  # fmt: skip
        if "joints3d" in t:
            target = t["joints3d"] - root if root is not None else t["joints3d"]
            terms["joints3d"] = joints3d_loss(
                decoded.joints3d, target, t.get("joints3d_valid"), ref_length=ref, reduction=red
            )
        if "vertices3d" in t:
            if self.root_relative and root is None:
                raise ValueError("vertices3d targets need joints3d to be made root-relative")
            target = t["vertices3d"] - root if root is not None else t["vertices3d"]
            terms["mesh3d"] = mesh3d_loss(
                decoded.vertices3d, target, t.get("vertices3d_valid"), ref_length=ref,
                reduction=red,
            )  # fmt: skip
        if "mask_dist" in t:
            terms["mask"] = mask_loss(decoded.vertices2d, t["mask_dist"], t.get("mask_valid"))
            if "mask" in t:
                metrics["mask_outside_fraction"] = masked_mean(
                    mask_outside_fraction(decoded.vertices2d, t["mask"]), t.get("mask_valid")
                )
        if "params" in t:
            terms["camera"] = camera_loss(
                params, t["params"], t.get("params_valid"), image_hw=image_hw,
                pred_rotmat=rotmat, rotation=w.rotation,
            )  # fmt: skip
        sl = OUTPUT_SLICES
        terms["temporal"] = temporal_loss(
            params[..., sl["pose_pca"]],
            params[..., sl["betas"]],
            theta_weight=self.weights.theta_temp,
            valid=t.get("frames_valid"),
        )
        total, weighted = weighted_total(terms, self.weights)
        return LossOutput(total=total, terms=terms, weighted=weighted, metrics=metrics)
