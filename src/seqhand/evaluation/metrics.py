"""Evaluation metrics as pure numpy functions: inputs in metres (or pixels), outputs in mm (px).

Every function takes an explicit ``valid`` mask ``(N, J)`` (True = annotated) where it makes
sense; masked entries never contribute. The definitions follow the standard evaluation codes
(the ``EvalUtil`` class of hand3d, ``lmb-freiburg/hand3d utils/general.py``, which FreiHAND's
``eval.py`` reuses), see ``docs/metrics.md``:

* per keypoint, the errors of all frames where it is valid are pooled;
* mean / median EPE = mean over keypoints of the per-keypoint mean / median;
* PCK at threshold ``t`` = fraction of a keypoint's errors ``<= t``; the curve is the mean over
  keypoints of the per-keypoint curves;
* AUC = trapezoid area under a keypoint's curve divided by the trapezoid area under 1, then the
  mean over keypoints (undefined, NaN, for a single threshold; the PCK itself is still given).
  Keypoints without any valid entry are skipped.

Temporal metrics (acceleration error, jitter, parameter changes) take one sequence ``(T, ...)``
of *root-relative* joints (VIBE ``compute_accel`` / ``compute_error_accel``, WHAM jitter: both
sides minus their own root): see :func:`root_relative`. The streaming ``MetricAccumulator``
lives in :mod:`seqhand.evaluation.accumulator` (this module does not import it).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import cKDTree

from seqhand.conventions import M_TO_MM
from seqhand.geometry.alignment import procrustes


# --------------------------------------------------------------------------------------------
# PCK threshold protocols
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PCKProtocol:
    """A named set of PCK thresholds (millimetres)."""

    name: str
    thresholds_mm: tuple[float, ...]
    description: str


def _linspace(a: float, b: float, n: int) -> tuple[float, ...]:
    return tuple(float(x) for x in np.linspace(a, b, n))


PCK_PROTOCOLS: dict[str, PCKProtocol] = {
    "paper": PCKProtocol(
        "paper",
        _linspace(20.0, 50.0, 7),
        "20-50 mm every 5 mm: the range of SeqHAND's Fig. 6-8 and of the STB reference curves "
        "(Zhang et al. 2016, as tabulated in hand3d's get_stb_ref_curves)",
    ),
    "0-50": PCKProtocol(
        "0-50", _linspace(0.0, 50.0, 20), "0-50 mm, 20 thresholds (hand3d get_measures(0, .05, 20))"
    ),
    "freihand": PCKProtocol(
        "freihand", _linspace(0.0, 50.0, 100), "0-50 mm, 100 thresholds (FreiHAND eval.py)"
    ),
    "hand3d-20-50": PCKProtocol(
        "hand3d-20-50",
        tuple(float(x) for x in np.linspace(0.0, 50.0, 20)[8:]),
        "hand3d eval_full.py's '20-50 mm' AUC: the thresholds of linspace(0, 50, 20) from the "
        "9th on (21.05-50 mm)",
    ),
}


def pck_thresholds(
    protocol: str | None = None,
    *,
    start_mm: float | None = None,
    stop_mm: float | None = None,
    steps: int | None = None,
) -> np.ndarray:
    """Thresholds in mm: a named protocol (:data:`PCK_PROTOCOLS`) or ``linspace(start, stop,
    steps)``."""
    if protocol is not None:
        if start_mm is not None or stop_mm is not None or steps is not None:
            raise ValueError("give either a protocol name or start/stop/steps, not both")
        if protocol not in PCK_PROTOCOLS:
            raise ValueError(f"unknown PCK protocol {protocol!r}; known: {sorted(PCK_PROTOCOLS)}")
        return np.asarray(PCK_PROTOCOLS[protocol].thresholds_mm)
    if start_mm is None or stop_mm is None or steps is None or steps < 2 or stop_mm <= start_mm:
        raise ValueError("need start_mm < stop_mm and steps >= 2 (or a protocol name)")
    return np.linspace(start_mm, stop_mm, steps)


# --------------------------------------------------------------------------------------------
# Per-joint errors and their reductions
# --------------------------------------------------------------------------------------------
def _check(pred, gt, valid):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be (N, J, D); got {pred.shape} and {gt.shape}")
    if valid is None:
        valid = np.ones(pred.shape[:2], dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != pred.shape[:2]:
        raise ValueError(f"valid must be {pred.shape[:2]} (N, J), got {valid.shape}")
    return pred, gt, valid


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance per joint: ``(N, J, D)`` x2 -> ``(N, J)``, in the inputs' unit."""
    pred, gt, _ = _check(pred, gt, None)
    return np.linalg.norm(pred - gt, axis=-1)


def epe_from_errors(errors: np.ndarray, valid: np.ndarray, reduction: str = "per_keypoint"):
    """Mean and median of ``(N, J)`` errors over the valid entries.

    ``reduction="per_keypoint"`` (hand3d / FreiHAND ``EvalUtil``): mean over keypoints of the
    per-keypoint mean (median); ``"pooled"``: mean (median) of all valid entries.
    Returns ``(mean, median)``; NaN if nothing is valid.
    """
    errors = np.asarray(errors, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        return float("nan"), float("nan")
    if reduction == "pooled":
        e = errors[valid]
        return float(e.mean()), float(np.median(e))
    if reduction != "per_keypoint":
        raise ValueError(f"reduction must be 'per_keypoint' or 'pooled', got {reduction!r}")
    means, medians = [], []
    for j in range(errors.shape[1]):
        e = errors[valid[:, j], j]
        if e.size:
            means.append(e.mean())
            medians.append(np.median(e))
    return float(np.mean(means)), float(np.mean(medians))


def epe3d(pred, gt, valid=None, *, reduction: str = "per_keypoint") -> dict[str, float]:
    """3D end-point error. ``(N, J, 3)`` metres -> ``{"mean": mm, "median": mm}``."""
    pred, gt, valid = _check(pred, gt, valid)
    mean, median = epe_from_errors(joint_errors(pred, gt) * M_TO_MM, valid, reduction)
    return {"mean": mean, "median": median}


def epe2d(pred, gt, valid=None, *, reduction: str = "per_keypoint") -> dict[str, float]:
    """2D end-point error. ``(N, J, 2)`` pixels -> ``{"mean": px, "median": px}``."""
    pred, gt, valid = _check(pred, gt, valid)
    mean, median = epe_from_errors(joint_errors(pred, gt), valid, reduction)
    return {"mean": mean, "median": median}


@dataclasses.dataclass
class PCKResult:
    """A PCK curve. ``per_keypoint`` rows are NaN for keypoints without valid entries."""

    thresholds_mm: np.ndarray  # (T,)
    curve: np.ndarray  # (T,) mean over keypoints with data
    auc: float  # mean over keypoints of the normalised per-keypoint AUC
    per_keypoint: np.ndarray  # (J, T)
    auc_per_keypoint: np.ndarray  # (J,)

    def to_dict(self) -> dict:
        return {
            "thresholds_mm": self.thresholds_mm.tolist(),
            "curve": self.curve.tolist(),
            "auc": self.auc,
        }


def auc(curve: np.ndarray, thresholds: np.ndarray) -> float:
    """Normalised trapezoid area: ``trapz(curve, t) / trapz(1, t)`` (hand3d ``calc_auc``)."""
    t = np.asarray(thresholds, dtype=np.float64)
    return float(np.trapezoid(np.asarray(curve), t) / np.trapezoid(np.ones_like(t), t))


def pck_from_errors(errors_mm: np.ndarray, valid: np.ndarray, thresholds_mm) -> PCKResult:
    """PCK curve and AUC from ``(N, J)`` errors in mm and a ``(N, J)`` mask."""
    errors_mm = np.asarray(errors_mm, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    t = np.asarray(thresholds_mm, dtype=np.float64)
    n_j = errors_mm.shape[1]
    per_kp = np.full((n_j, t.size), np.nan)
    auc_kp = np.full(n_j, np.nan)
    has = np.zeros(n_j, dtype=bool)
    for j in range(n_j):
        e = errors_mm[valid[:, j], j]
        if e.size:
            has[j] = True
            per_kp[j] = (e[:, None] <= t[None, :]).mean(0)
            if t.size >= 2:  # an area needs two thresholds (hand3d's is 0/0 = NaN with one)
                auc_kp[j] = auc(per_kp[j], t)
    if not has.any():
        return PCKResult(t, np.full(t.size, np.nan), float("nan"), per_kp, auc_kp)
    a = float(auc_kp[has].mean()) if t.size >= 2 else float("nan")
    return PCKResult(t, per_kp[has].mean(0), a, per_kp, auc_kp)


def pck3d(pred, gt, valid=None, *, protocol: str | None = "paper", thresholds_mm=None) -> PCKResult:
    """3D PCK / AUC. ``(N, J, 3)`` metres; thresholds from ``protocol`` or ``thresholds_mm``."""
    pred, gt, valid = _check(pred, gt, valid)
    t = pck_thresholds(protocol) if thresholds_mm is None else np.asarray(thresholds_mm)
    return pck_from_errors(joint_errors(pred, gt) * M_TO_MM, valid, t)


# --------------------------------------------------------------------------------------------
# Procrustes-aligned errors and meshes
# --------------------------------------------------------------------------------------------
def pa_errors(pred, gt, valid=None, *, allow_reflection: bool = False) -> np.ndarray:
    """Per-joint errors ``(N, J)`` (inputs' unit) after a per-frame similarity Procrustes fit on
    the valid joints."""
    pred, gt, valid = _check(pred, gt, valid)
    aligned, _ = procrustes(pred, gt, valid, allow_reflection=allow_reflection)
    return np.linalg.norm(aligned - gt, axis=-1)


def mpjpe(pred, gt, valid=None) -> float:
    """Mean per-joint position error in mm over all valid joints (pooled), no alignment."""
    pred, gt, valid = _check(pred, gt, valid)
    return float((joint_errors(pred, gt) * M_TO_MM)[valid].mean()) if valid.any() else np.nan


def pa_mpjpe(pred, gt, valid=None, *, allow_reflection: bool = False) -> float:
    """Procrustes-aligned MPJPE in mm (pooled over valid joints)."""
    pred, gt, valid = _check(pred, gt, valid)
    if not valid.any():
        return float("nan")
    e = pa_errors(pred, gt, valid, allow_reflection=allow_reflection) * M_TO_MM
    return float(e[valid].mean())


def mpvpe(pred_verts, gt_verts) -> float:
    """Mean per-vertex position error in mm, ``(N, V, 3)`` metres, no alignment."""
    return mpjpe(pred_verts, gt_verts)


def pa_mpvpe(pred_verts, gt_verts, *, allow_reflection: bool = False) -> float:
    """Procrustes-aligned mean per-vertex error in mm (each mesh fitted on all its vertices)."""
    return pa_mpjpe(pred_verts, gt_verts, allow_reflection=allow_reflection)


def f_score(pred_verts, gt_verts, threshold_m: float) -> dict[str, np.ndarray]:
    """F-score of two point sets per frame (FreiHAND ``calculate_fscore``).

    precision = fraction of predicted points whose nearest ground-truth point is closer than
    ``threshold_m`` (strict ``<``); recall = the same from the ground truth's side;
    F = 2 P R / (P + R) (0 if both are 0).

    Args:
        pred_verts, gt_verts: ``(N, V, 3)`` / ``(N, W, 3)`` metres (V and W may differ).
        threshold_m: distance threshold in metres (FreiHAND: 0.005 and 0.015).

    Returns:
        ``{"f": (N,), "precision": (N,), "recall": (N,)}``.
    """
    p = np.asarray(pred_verts, dtype=np.float64)
    g = np.asarray(gt_verts, dtype=np.float64)
    if p.ndim != 3 or g.ndim != 3 or len(p) != len(g):
        raise ValueError(f"expected (N, V, 3) point sets, got {p.shape} and {g.shape}")
    out = {k: np.zeros(len(p)) for k in ("f", "precision", "recall")}
    for i in range(len(p)):
        d_pg = cKDTree(g[i]).query(p[i])[0]
        d_gp = cKDTree(p[i]).query(g[i])[0]
        prec, rec = float((d_pg < threshold_m).mean()), float((d_gp < threshold_m).mean())
        out["precision"][i], out["recall"][i] = prec, rec
        out["f"][i] = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return out


# --------------------------------------------------------------------------------------------
# Temporal metrics on one sequence
# --------------------------------------------------------------------------------------------
def _finite_difference(x: np.ndarray, order: int, valid: np.ndarray | None):
    """``order``-th forward difference along axis 0 and the mask of entries whose whole stencil
    is valid. x ``(T, J, 3)``, valid ``(T, J)``."""
    d = np.asarray(x, dtype=np.float64)
    v = np.ones(d.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    for _ in range(order):
        d = d[1:] - d[:-1]
        v = v[1:] & v[:-1]
    return d, v


def root_relative(x: np.ndarray, root: int = 0) -> np.ndarray:
    """``x - x[:, root]``: ``(T, J, 3)`` joints relative to their own root joint (VIBE subtracts
    the pelvis from prediction and ground truth alike before its temporal metrics)."""
    x = np.asarray(x, dtype=np.float64)
    return x - x[:, root : root + 1]


def acceleration_error_values(pred, gt, valid=None) -> np.ndarray:
    """The entries :func:`acceleration_error` averages: ``|a_pred - a_gt|`` in mm/frame^2 at
    every (frame, joint) whose three-frame stencil is valid, flattened."""
    pred, gt, valid = _check(pred, gt, valid)
    ap, v = _finite_difference(pred, 2, valid)
    ag, _ = _finite_difference(gt, 2, None)
    return (np.linalg.norm(ap - ag, axis=-1) * M_TO_MM)[v]


def difference_norm_values(x, order: int, valid=None) -> np.ndarray:
    """``|order-th forward difference|`` in mm/frame^order at every valid stencil, flattened
    (order 2: acceleration, order 3: jitter)."""
    d, v = _finite_difference(x, order, valid)
    return (np.linalg.norm(d, axis=-1) * M_TO_MM)[v]


def acceleration_error(pred, gt, valid=None) -> float:
    """Mean ``|a_pred - a_gt|`` in mm/frame^2 with ``a_t = x_{t+1} - 2 x_t + x_{t-1}``
    (the HMMR / VIBE definition). ``(T, J, 3)`` metres; triples with a masked frame are skipped."""
    pred, gt, valid = _check(pred, gt, valid)
    ap, v = _finite_difference(pred, 2, valid)
    ag, _ = _finite_difference(gt, 2, None)
    if not v.any():
        return float("nan")
    return float((np.linalg.norm(ap - ag, axis=-1) * M_TO_MM)[v].mean())


def acceleration(x, valid=None) -> float:
    """Mean acceleration magnitude ``|x_{t+1} - 2 x_t + x_{t-1}|`` in mm/frame^2."""
    a, v = _finite_difference(x, 2, valid)
    return float((np.linalg.norm(a, axis=-1) * M_TO_MM)[v].mean()) if v.any() else float("nan")


def jitter(x, valid=None) -> float:
    """Mean jerk magnitude (third forward difference) in mm/frame^3; multiply by fps^3 for
    mm/s^3."""
    j, v = _finite_difference(x, 3, valid)
    return float((np.linalg.norm(j, axis=-1) * M_TO_MM)[v].mean()) if v.any() else float("nan")


def param_change(params, *, kind: str = "abs") -> float:
    """The paper's temporal smoothness measure of section 5.2 on one sequence ``(T, D)``:
    the mean over consecutive frames of ``|p_{t-1} - p_t|``.

    ``kind="abs"``: mean absolute difference per component; ``kind="sq_l2"``: mean squared L2
    norm of the difference (the form of the temporal loss L_temp, Eq. 13). The paper does not
    say which it reports; both are offered. Unitless (parameters as given). NaN if T < 2.
    """
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"params must be (T, D), got {p.shape}")
    if len(p) < 2:
        return float("nan")
    d = p[1:] - p[:-1]
    if kind == "abs":
        return float(np.abs(d).mean())
    if kind == "sq_l2":
        return float((d**2).sum(-1).mean())
    raise ValueError(f"kind must be 'abs' or 'sq_l2', got {kind!r}")
