"""From the network's weak-perspective hand to camera space, and to MANO's parameters.

The network estimates the hand relative to its wrist and a scale ``s`` (pixels per metre): a
big far hand and a small near one look the same to it. With the camera's focal length ``f``
(pixels) the distance follows: :func:`camera_translation` finds the wrist position ``T`` that
makes the pinhole projection of ``joints3d + T`` land on the predicted 2D joints (linear least
squares over the 21 joints, the closed form SPIN/FrankMocap use), which is ``Z ~ f / s``.

Give the focal length (``--focal PX``), or the horizontal field of view (``--fov DEG``); without
either :data:`DEFAULT_FOV_DEG` (60 degrees horizontally, a common webcam) is assumed, and the
outputs say so. The principal point is the image centre, ``((W - 1) / 2, (H - 1) / 2)`` with
pixel centres at integers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DEFAULT_FOV_DEG = 60.0
"""Horizontal field of view assumed when neither a focal length nor a field of view is given."""


@dataclasses.dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera: ``u = f X / Z + cx``, ``v = f Y / Z + cy`` (pixels, x right, y down,
    z away from the camera).

    Attributes:
        focal: focal length, pixels.
        cx, cy: principal point, pixels.
        assumed: the focal length comes from :data:`DEFAULT_FOV_DEG`, not from the user.
    """

    focal: float
    cx: float
    cy: float
    assumed: bool = False

    @classmethod
    def for_frame(
        cls, height: int, width: int, focal: float | None = None, fov_deg: float | None = None
    ) -> PinholeCamera:
        """The camera of a ``height x width`` frame from ``focal`` (px) or ``fov_deg``."""
        if focal is not None and fov_deg is not None:
            raise ValueError("give a focal length or a field of view, not both")
        assumed = focal is None and fov_deg is None
        if focal is None:
            fov = DEFAULT_FOV_DEG if fov_deg is None else float(fov_deg)
            if not 0.0 < fov < 180.0:
                raise ValueError(f"field of view must lie in (0, 180) degrees, got {fov_deg}")
            focal = 0.5 * width / math.tan(math.radians(fov) / 2.0)
        if not (math.isfinite(focal) and focal > 0):
            raise ValueError(f"focal length must be a positive number of pixels, got {focal}")
        return cls(float(focal), (width - 1) / 2.0, (height - 1) / 2.0, assumed)

    def project(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` camera-space metres -> ``(..., 2)`` pixels."""
        p = np.asarray(points, np.float64)
        return np.stack(
            [self.focal * p[..., 0] / p[..., 2] + self.cx,
             self.focal * p[..., 1] / p[..., 2] + self.cy], -1,
        )  # fmt: skip

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def camera_translation(
    joints3d: np.ndarray, joints2d: np.ndarray, camera: PinholeCamera
) -> np.ndarray:
    """The translation ``T`` that puts root-relative joints in front of the camera.

    Solves ``min_T sum_i || f (X_i + T)_xy - (x_i - c) (Z_i + T_z) ||^2`` (linear least squares;
    the reprojection error weighted by depth).

    Args:
        joints3d: ``(J, 3)`` metres, camera-aligned, relative to a root (e.g. the wrist).
        joints2d: ``(J, 2)`` full-image pixels of the same joints.
        camera: the frame's camera.

    Returns:
        ``(3,)`` metres: the root's position in camera space.
    """
    x = np.asarray(joints3d, np.float64)
    u = np.asarray(joints2d, np.float64) - [camera.cx, camera.cy]
    f = camera.focal
    n = len(x)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    a[:n, 0] = f
    a[:n, 2] = -u[:, 0]
    b[:n] = u[:, 0] * x[:, 2] - f * x[:, 0]
    a[n:, 1] = f
    a[n:, 2] = -u[:, 1]
    b[n:] = u[:, 1] * x[:, 2] - f * x[:, 1]
    return np.linalg.lstsq(a, b, rcond=None)[0]
