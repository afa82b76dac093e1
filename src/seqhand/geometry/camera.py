"""The weak-perspective camera of the paper (Eq. 3-4): ``x2d = s * Pi(R X) + t``.

R comes from a 3-vector by Rodrigues, s is in pixels per metre, t in pixels of the crop and
Pi drops the z coordinate (orthographic projection). Image frame: x right, y down.
"""

from __future__ import annotations

import torch

from seqhand.geometry.rotations import axis_angle_to_matrix


def weak_perspective_project(
    points: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project 3D points with the weak-perspective camera.

    Args:
        points: ``(B, N, 3)`` points in metres (hand-model frame).
        rot: ``(B, 3)`` axis-angle camera rotation R.
        scale: ``(B,)`` or ``(B, 1)`` scale s in pixels per metre.
        trans: ``(B, 2)`` translation t in pixels.

    Returns:
        ``(x2d, rotated)``: ``(B, N, 2)`` pixels and ``(B, N, 3)`` points ``R X`` in metres
        (their z is the depth used by the rasteriser's z-buffer).
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    b = points.shape[0]
    rmat = axis_angle_to_matrix(rot.reshape(b, 3))
    rotated = points @ rmat.transpose(-1, -2)
    x2d = scale.reshape(b, 1, 1) * rotated[..., :2] + trans.reshape(b, 1, 2)
    return x2d, rotated
