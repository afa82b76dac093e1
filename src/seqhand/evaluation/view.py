"""How well a model finds the hand's view: global-rotation error and the hand's size in the image.

Two figures that the joint errors hide (issue 11): a model that predicts the dominant orientation
of the data, or a hand too small for the image, can still score a moderate root-relative error.

* **rotation error**: the geodesic angle between the predicted and the true global rotation,
  ``arccos((tr(R_hat^T R) - 1) / 2)`` in degrees (only where the ground truth has a rotation:
  generated data). Reported as median, mean, p90, the share beyond 90 degrees, and the median
  by the true rotation angle ``|r|`` (0-60, 60-120, 120-180 degrees).
* **size ratio**: the hand's size in the image, predicted over true, per frame; the size is the
  root-mean-square distance of the 21 projected joints from their centroid (pixels). 1 is
  right; below 1 the predicted hand is too small. Reported as median, p10 and p90.
"""

from __future__ import annotations

import numpy as np
import torch

from seqhand.geometry.rotations import axis_angle_to_matrix, geodesic_angle

ANGLE_BINS_DEG = (0.0, 60.0, 120.0, 180.0)


def rotation_errors_deg(pred_rot: np.ndarray, gt_rot: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between ``(N, 3)`` axis-angle rotations."""
    a = axis_angle_to_matrix(torch.as_tensor(np.asarray(pred_rot, np.float64)))
    b = axis_angle_to_matrix(torch.as_tensor(np.asarray(gt_rot, np.float64)))
    return np.degrees(geodesic_angle(a, b).numpy())


def image_size_px(joints2d: np.ndarray) -> np.ndarray:
    """RMS distance of ``(..., J, 2)`` points from their centroid -> ``(...)`` pixels."""
    j = np.asarray(joints2d, np.float64)
    d = j - j.mean(-2, keepdims=True)
    return np.sqrt((d**2).sum(-1).mean(-1))


class ViewMetrics:
    """Accumulates rotation errors and size ratios over frames; :meth:`evaluate` -> dict."""

    def __init__(self) -> None:
        self.rot_err: list[np.ndarray] = []
        self.true_angle: list[np.ndarray] = []
        self.size_ratio: list[np.ndarray] = []

    def process(self, pred_rot, gt_rot, pred2d, gt2d) -> None:
        """``pred_rot``, ``gt_rot``: ``(N, 3)`` axis-angle (``gt_rot`` may be None);
        ``pred2d``, ``gt2d``: ``(N, 21, 2)`` pixels (``gt2d`` may be None)."""
        if gt_rot is not None:
            self.rot_err.append(rotation_errors_deg(pred_rot, gt_rot))
            self.true_angle.append(np.degrees(np.linalg.norm(np.asarray(gt_rot), axis=-1)))
        if gt2d is not None:
            self.size_ratio.append(image_size_px(pred2d) / np.maximum(image_size_px(gt2d), 1e-9))

    def evaluate(self) -> dict:
        out: dict = {}
        if self.rot_err:
            e = np.concatenate(self.rot_err)
            ang = np.concatenate(self.true_angle)
            out.update(
                rot_err_median_deg=float(np.median(e)),
                rot_err_mean_deg=float(e.mean()),
                rot_err_p90_deg=float(np.percentile(e, 90)),
                rot_err_over_90_frac=float((e > 90).mean()),
            )
            bins = {}
            for lo, hi in zip(ANGLE_BINS_DEG[:-1], ANGLE_BINS_DEG[1:]):
                m = (ang >= lo) & ((ang < hi) | (hi == ANGLE_BINS_DEG[-1]))
                bins[f"{lo:.0f}-{hi:.0f}"] = {
                    "frames": int(m.sum()),
                    "median_deg": float(np.median(e[m])) if m.any() else None,
                }
            out["rot_err_by_true_angle"] = bins
        if self.size_ratio:
            r = np.concatenate(self.size_ratio)
            out.update(
                size_ratio_median=float(np.median(r)),
                size_ratio_p10=float(np.percentile(r, 10)),
                size_ratio_p90=float(np.percentile(r, 90)),
            )
        return out
