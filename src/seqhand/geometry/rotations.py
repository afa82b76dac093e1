"""Axis-angle <-> rotation matrix (Rodrigues), differentiable and safe at zero angle.

All functions take torch tensors of any batch shape ``(..., 3)`` / ``(..., 3, 3)`` in radians.
"""

from __future__ import annotations

import torch

_SMALL = 1e-6


def _safe_angle_terms(theta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sin(t)/t, (1-cos t)/t^2) for t = sqrt(theta2), with Taylor series near zero.

    Both branches are evaluated on safe inputs so gradients stay finite everywhere.
    """
    small = theta2 < _SMALL**2
    safe_t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = torch.sqrt(safe_t2)
    a_big = torch.sin(t) / t
    b_big = (1.0 - torch.cos(t)) / safe_t2
    a_small = 1.0 - theta2 / 6.0
    b_small = 0.5 - theta2 / 24.0
    return torch.where(small, a_small, a_big), torch.where(small, b_small, b_big)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. ``(..., 3)`` axis-angle (radians) -> ``(..., 3, 3)`` rotation matrices.

    R = I + a K + b K^2 with K the cross-product matrix of the rotation vector,
    a = sin(t)/t, b = (1-cos t)/t^2 and t its norm.
    """
    if rotvec.shape[-1] != 3:
        raise ValueError(f"axis_angle_to_matrix expects (..., 3), got {tuple(rotvec.shape)}")
    x, y, z = rotvec.unbind(-1)
    theta2 = x * x + y * y + z * z
    a, b = _safe_angle_terms(theta2)
    a = a[..., None, None]
    b = b[..., None, None]
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(
        rotvec.shape[:-1] + (3, 3)
    )
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix`: ``(..., 3, 3)`` -> ``(..., 3)``, angle in [0, pi].

    Goes through a unit quaternion for numerical robustness near 0 and pi.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_axis_angle expects (..., 3, 3), got {tuple(matrix.shape)}")
    m = matrix
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate quaternions (w, x, y, z); pick the best conditioned one per element.
    q2 = torch.stack(
        [
            1.0 + trace,
            1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        dim=-1,
    )
    pos = q2 > 0  # sqrt of the positive part, with a finite (zero) gradient elsewhere
    q_abs = torch.where(pos, torch.sqrt(torch.where(pos, q2, torch.ones_like(q2))), 0.0)
    r21 = m[..., 2, 1] - m[..., 1, 2]
    r02 = m[..., 0, 2] - m[..., 2, 0]
    r10 = m[..., 1, 0] - m[..., 0, 1]
    s01 = m[..., 0, 1] + m[..., 1, 0]
    s02 = m[..., 0, 2] + m[..., 2, 0]
    s12 = m[..., 1, 2] + m[..., 2, 1]
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, r21, r02, r10], dim=-1),
            torch.stack([r21, q_abs[..., 1] ** 2, s01, s02], dim=-1),
            torch.stack([r02, s01, q_abs[..., 2] ** 2, s12], dim=-1),
            torch.stack([r10, s02, s12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    ) / (2.0 * q_abs.clamp(min=0.1)[..., None])
    best = q_abs.argmax(dim=-1)
    quat = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    quat = torch.where(quat[..., :1] < 0, -quat, quat)  # w >= 0 -> angle in [0, pi]
    w = quat[..., 0]
    xyz = quat[..., 1:]
    s2 = (xyz * xyz).sum(-1)
    small = s2 < 1e-16  # both branches on safe inputs: finite gradients at the identity
    sin_half = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    angle = 2.0 * torch.atan2(sin_half, w)
    scale = torch.where(small, 2.0 / w.clamp(min=1e-8), angle / sin_half)
    return xyz * scale[..., None]


# --------------------------------------------------------------------------------------------
# The continuous 6D representation (Zhou et al., "On the Continuity of Rotation
# Representations in Neural Networks", CVPR 2019): the first two columns of R.
# --------------------------------------------------------------------------------------------
def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` -> ``(..., 3, 3)`` by Gram-Schmidt (Zhou et al. 2019).

    ``d6 = (a1, a2)``: ``b1 = a1 / |a1|``, ``b2 = normalise(a2 - (b1 . a2) b1)``,
    ``b3 = b1 x b2``; ``R = [b1 b2 b3]`` (columns). Continuous and surjective onto SO(3); any
    6 numbers with ``a1``, ``a2`` not parallel give a rotation.
    """
    if d6.shape[-1] != 6:
        raise ValueError(f"rotation_6d_to_matrix expects (..., 6), got {tuple(d6.shape)}")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1, eps=1e-8)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = torch.nn.functional.normalize(b2, dim=-1, eps=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 6)``: the first two columns, the inverse of
    :func:`rotation_6d_to_matrix` on rotation matrices."""
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_rotation_6d expects (..., 3, 3), got {tuple(matrix.shape)}")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Angle (radians, in [0, pi]) of ``r1^T r2`` for ``(..., 3, 3)`` rotations.

    ``eps > 0`` clamps the cosine to ``[-1 + eps, 1 - eps]`` so that the gradient stays finite
    at 0 and pi (for losses); the angle is then off by at most ``sqrt(2 eps)``.
    """
    cos = ((r1 * r2).sum((-2, -1)) - 1.0) / 2.0
    return torch.arccos(cos.clamp(-1.0 + eps, 1.0 - eps))
