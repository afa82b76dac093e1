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
* **where the errors are** (given the true 3D joints in the camera frame, a right hand): the
  root-relative 3D error and the median rotation error by *view* - the angle between the palm's
  normal ``(J_index_mcp - J_wrist) x (J_pinky_mcp - J_wrist)`` and the direction to the camera
  (``-z``; 0 = palm to the camera, 180 = back) - and by *foreshortening* - how far the hand's
  long axis (wrist to middle MCP) points out of the image plane; and, for the rotation errors
  above 45 degrees, about which of the true hand's axes the error rotation ``R_hat R^T`` mostly
  turns: its long axis (the palm and the back, or the thumb and the little-finger side,
  swapped), its palm normal (the fingers pointing elsewhere in the palm's plane) or the axis
  across the palm (the hand tilted towards or away from the camera).
"""

from __future__ import annotations

import numpy as np
import torch

from seqhand.geometry.rotations import axis_angle_to_matrix, geodesic_angle, matrix_to_axis_angle

ANGLE_BINS_DEG = (0.0, 60.0, 120.0, 180.0)
VIEW_BINS_DEG = (0.0, 30.0, 60.0, 120.0, 150.0, 180.0)  # palm to the camera .. back to it
FORESHORTENING_BINS_DEG = (0.0, 20.0, 45.0, 90.0)  # long axis in .. across the image plane
LARGE_ROT_ERR_DEG = 45.0
HAND_AXES = ("long", "normal", "across")


def rotation_errors_deg(pred_rot: np.ndarray, gt_rot: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between ``(N, 3)`` axis-angle rotations."""
    a = axis_angle_to_matrix(torch.as_tensor(np.asarray(pred_rot, np.float64)))
    b = axis_angle_to_matrix(torch.as_tensor(np.asarray(gt_rot, np.float64)))
    return np.degrees(geodesic_angle(a, b).numpy())


def hand_axes(joints3d: np.ndarray) -> np.ndarray:
    """``(N, 21, 3)`` camera-frame joints of right hands -> ``(N, 3, 3)`` unit rows: the long
    axis (wrist to middle MCP, made orthogonal to the normal), the palm normal (out of the palm)
    and the axis across the palm (normal x long)."""
    j = np.asarray(joints3d, np.float64)
    n = np.cross(j[:, 5] - j[:, 0], j[:, 17] - j[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    a = j[:, 9] - j[:, 0]
    a -= n * (a * n).sum(-1, keepdims=True)
    a /= np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    return np.stack([a, n, np.cross(n, a)], 1)


def image_size_px(joints2d: np.ndarray) -> np.ndarray:
    """RMS distance of ``(..., J, 2)`` points from their centroid -> ``(...)`` pixels."""
    j = np.asarray(joints2d, np.float64)
    d = j - j.mean(-2, keepdims=True)
    return np.sqrt((d**2).sum(-1).mean(-1))


class ViewMetrics:
    """Accumulates rotation errors, size ratios and (given the true 3D joints and each frame's
    3D error) the breakdown by view over frames; :meth:`evaluate` -> dict."""

    def __init__(self) -> None:
        self.rot_err: list[np.ndarray] = []
        self.true_angle: list[np.ndarray] = []
        self.size_ratio: list[np.ndarray] = []
        self.views: list[np.ndarray] = []  # per frame: view, foreshortening, 3D error (mm)
        self.err_axis: list[np.ndarray] = []  # per frame: |cos| of the error axis with each axis

    def process(self, pred_rot, gt_rot, pred2d, gt2d, gt3d=None, err3d_mm=None) -> None:
        """``pred_rot``, ``gt_rot``: ``(N, 3)`` axis-angle (``gt_rot`` may be None);
        ``pred2d``, ``gt2d``: ``(N, 21, 2)`` pixels (``gt2d`` may be None); ``gt3d``:
        ``(N, 21, 3)`` true joints in the camera frame and ``err3d_mm``: ``(N,)`` each frame's
        root-relative 3D error, for the breakdown by view (both or neither)."""
        if gt_rot is not None:
            r_hat = axis_angle_to_matrix(torch.as_tensor(np.asarray(pred_rot, np.float64)))
            r_true = axis_angle_to_matrix(torch.as_tensor(np.asarray(gt_rot, np.float64)))
            self.rot_err.append(np.degrees(geodesic_angle(r_hat, r_true).numpy()))
            self.true_angle.append(np.degrees(np.linalg.norm(np.asarray(gt_rot), axis=-1)))
        if gt2d is not None:
            self.size_ratio.append(image_size_px(pred2d) / np.maximum(image_size_px(gt2d), 1e-9))
        if gt3d is None or err3d_mm is None:
            return
        axes = hand_axes(gt3d)
        err = np.asarray(err3d_mm, np.float64)
        view = np.degrees(np.arccos(np.clip(-axes[:, 1, 2], -1.0, 1.0)))
        fore = np.degrees(np.arcsin(np.clip(np.abs(axes[:, 0, 2]), 0.0, 1.0)))
        known = np.isfinite(err)  # frames without an error (joints missing) are in no bin
        self.views.append(np.stack([np.where(known, view, np.nan),
                                    np.where(known, fore, np.nan), err], 1))  # fmt: skip
        if gt_rot is not None:  # the error rotation's axis, camera frame: R_hat R^T
            w = matrix_to_axis_angle(r_hat @ r_true.transpose(-1, -2)).numpy()
            w /= np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-12)
            self.err_axis.append(np.abs(np.einsum("nkc,nc->nk", axes, w)))

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
        if self.views:
            v = np.concatenate(self.views)
            e = np.concatenate(self.rot_err) if self.err_axis else None
            e = e if e is not None and len(e) == len(v) else None  # every frame has both
            out["by_view"] = _binned(v[:, 0], VIEW_BINS_DEG, v[:, 2], e)
            out["by_foreshortening"] = _binned(v[:, 1], FORESHORTENING_BINS_DEG, v[:, 2], e)
            if e is not None:
                big = (e > LARGE_ROT_ERR_DEG) & np.isfinite(v[:, 0])
                dom = np.bincount(np.concatenate(self.err_axis)[big].argmax(1), minlength=3)
                out["large_rot_err_axis"] = {
                    "threshold_deg": LARGE_ROT_ERR_DEG, "frames": int(big.sum()),
                    **{name: float(c / max(big.sum(), 1)) for name, c in zip(HAND_AXES, dom)},
                }  # fmt: skip
        return out


def _binned(x, edges, err3d, rot_err) -> dict:
    """Frames, share, mean 3D error and median rotation error per bin of ``x`` (degrees)."""
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (x >= lo) & ((x < hi) | (hi == edges[-1]))  # NaN (no error) in no bin
        row = {"frames": int(m.sum()), "share": float(m.sum() / max(np.isfinite(x).sum(), 1)),
               "epe3d_mm": float(err3d[m].mean()) if m.any() else None}  # fmt: skip
        if rot_err is not None:
            row["rot_err_median_deg"] = float(np.median(rot_err[m])) if m.any() else None
        out[f"{lo:.0f}-{hi:.0f}"] = row
    return out
