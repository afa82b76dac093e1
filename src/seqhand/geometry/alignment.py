"""Aligning predicted points to ground truth: Procrustes and the benchmarks' root/scale modes.

Pure numpy, batched over a leading axis, mask-aware. Points are ``(B, N, 3)`` (a single
``(N, 3)`` set is accepted and returned unbatched) in any one unit (metres in this project).
``valid`` is an optional ``(B, N)`` boolean mask; masked points do not influence the fitted
transform, but every point (valid or not) is transformed.

The modes and which evaluation code each one reproduces (see ``docs/metrics.md``):

* ``"none"`` - predictions are compared as they are (FreiHAND's un-aligned numbers).
* ``"root"`` - translate so the root joints coincide.
* ``"root_scale"`` - translate the root onto the ground truth's root and scale the prediction so
  that one reference bone, *measured on the prediction*, has the ground truth's length
  (``s = |g_a - g_b| / |p_a - p_b|``). Minimal-Hand's STB/RHD protocol is ``root=9, bone=(0, 9)``.
  Dividing by a short predicted bone amplifies the prediction's noise; it is not hand3d's.
* ``"hand3d"`` - hand3d's protocol exactly (Zimmermann & Brox 2017, ``eval3d.py`` /
  ``eval_full.py``): the network's output is already *normalised* (root-relative, in units of
  the reference bone, ``keypoint_xyz21_normed``); it is multiplied by the ground truth's length
  of the middle finger's MCP->PIP bone (``keypoint_scale``, ``root=0, bone=(9, 10)`` in the
  project order) and compared with the root-relative ground truth. For a model that outputs
  metric joints, the normalisation length is the model's own (``pred_scale``, e.g. the bone's
  length in the predicted hand's rest pose), not a bone measured on the posed prediction.
* ``"centroid_scale"`` - for fingertip-only sets (EgoDexter, Dexter+Object): move the centroid of
  the valid points onto the ground truth's centroid and scale by the ratio of mean distances to
  the centroid (Minimal-Hand, ``utils/align.py``). A frame with one valid point is aligned onto
  itself (error 0): evaluations skip frames with fewer than 2 valid tips (Minimal-Hand does).
* ``"scale"`` - least-squares scale about the origin, no translation (mmpose's ``'scale'``).
* ``"procrustes"`` - similarity transform (scale, rotation, translation) minimising the squared
  distances (Umeyama 1991); reflections are excluded unless ``allow_reflection=True``.
  FreiHAND's ``align_w_scale`` uses ``scipy.linalg.orthogonal_procrustes``, which admits
  reflections; the two agree whenever the optimal orthogonal matrix is a rotation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

AlignmentMode = Literal[
    "none", "root", "root_scale", "hand3d", "centroid_scale", "scale", "procrustes"
]
ALIGNMENT_MODES: tuple[str, ...] = (
    "none",
    "root",
    "root_scale",
    "hand3d",
    "centroid_scale",
    "scale",
    "procrustes",
)
_EPS = 1e-12


def _batch(pred, gt, valid):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim not in (2, 3) or pred.shape[-1] not in (2, 3):
        raise ValueError(
            f"pred and gt must both be (B, N, D) or (N, D) with D in (2, 3); "
            f"got {pred.shape} and {gt.shape}"
        )
    single = pred.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    if valid is None:
        w = np.ones(pred.shape[:2])
    else:
        w = np.asarray(valid, dtype=bool)
        if single:
            w = w[None]
        if w.shape != pred.shape[:2]:
            raise ValueError(f"valid must be {pred.shape[:2]} (B, N), got {w.shape}")
        w = w.astype(np.float64)
    return pred, gt, w, single


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B, N, D), (B, N) -> (B, D); zero where no point is valid."""
    tot = w.sum(1, keepdims=True)
    return (x * w[..., None]).sum(1) / np.maximum(tot, _EPS)


def _centroid_scale(p: np.ndarray, g: np.ndarray, w: np.ndarray):
    """``(s, t)`` of ``g ~ s p + t`` matching the weighted centroids and mean radii."""
    cp, cg = _weighted_mean(p, w), _weighted_mean(g, w)
    rp = _weighted_mean(np.linalg.norm(p - cp[:, None], axis=-1)[..., None], w)[:, 0]
    rg = _weighted_mean(np.linalg.norm(g - cg[:, None], axis=-1)[..., None], w)[:, 0]
    s = np.where(rp > _EPS, rg / np.maximum(rp, _EPS), 1.0)
    return s, cg - s[:, None] * cp


def _lsq_scale(p: np.ndarray, g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Least-squares scale about the origin, ``<p, g> / <p, p>`` over the weighted points."""
    num = np.einsum("bn,bni,bni->b", w, p, g)
    den = np.einsum("bn,bni,bni->b", w, p, p)
    return np.where(den > _EPS, num / np.maximum(den, _EPS), 1.0)


def procrustes(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    allow_reflection: bool = False,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Similarity Procrustes: find ``s, R, t`` minimising ``sum_i w_i |s R p_i + t - g_i|^2``.

    Args:
        pred: ``(B, N, D)`` (or ``(N, D)``) points to align, D = 2 or 3.
        gt: same shape, the target points.
        valid: optional ``(B, N)`` mask of points used for the fit.
        allow_reflection: if True, ``R`` may have determinant -1 (as with
            ``scipy.linalg.orthogonal_procrustes``); by default it is a proper rotation.

    Returns:
        ``(aligned, (s, R, t))`` with ``aligned = s * pred @ R^T + t`` of pred's shape,
        ``s`` ``(B,)``, ``R`` ``(B, D, D)``, ``t`` ``(B, D)`` (unbatched if the input was).
        Sets with no valid point, or whose valid points coincide, get ``s=1, R=I`` and the
        translation between the centroids.
    """
    p, g, w, single = _batch(pred, gt, valid)
    d = p.shape[-1]
    mu_p, mu_g = _weighted_mean(p, w), _weighted_mean(g, w)
    pc, gc = p - mu_p[:, None], g - mu_g[:, None]
    cov = np.einsum("bn,bni,bnj->bij", w, gc, pc)  # sum_i w_i g_i p_i^T
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones((p.shape[0], d))
    if not allow_reflection:
        sign[:, -1] = np.sign(np.linalg.det(u @ vt))
        sign[sign == 0] = 1.0
    rot = u @ (sign[..., None] * vt)
    var_p = np.einsum("bn,bni,bni->b", w, pc, pc)
    degenerate = var_p < _EPS
    s = np.where(degenerate, 1.0, (sig * sign).sum(-1) / np.maximum(var_p, _EPS))
    rot[degenerate] = np.eye(d)
    t = mu_g - s[:, None] * np.einsum("bij,bj->bi", rot, mu_p)
    aligned = apply_similarity(p, s, rot, t)
    if single:
        return aligned[0], (s[0], rot[0], t[0])
    return aligned, (s, rot, t)


def apply_similarity(points: np.ndarray, s, rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``s * points @ R^T + t`` for ``(B, N, D)`` points, ``s`` ``(B,)``, ``R`` ``(B, D, D)``,
    ``t`` ``(B, D)`` (or the unbatched equivalents). Used to move a mesh by the transform that
    aligned its joints (FreiHAND's ``align_by_trafo``)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 2:
        return np.asarray(s) * points @ np.asarray(rot).T + np.asarray(t)
    s = np.asarray(s, dtype=np.float64).reshape(-1, 1, 1)
    return s * np.einsum("bij,bnj->bni", rot, points) + np.asarray(t)[:, None]


def align_root(pred, gt, *, root: int = 0):
    """Translate each prediction so its joint ``root`` lands on the ground truth's."""
    p, g, _, single = _batch(pred, gt, None)
    out = p - p[:, root : root + 1] + g[:, root : root + 1]
    return out[0] if single else out


def align_root_scale(pred, gt, *, root: int = 0, bone: tuple[int, int] = (9, 10)):
    """Root-align and scale the prediction so bone ``(a, b)`` has the ground truth's length.

    hand3d's STB/RHD protocol is ``root=0, bone=(9, 10)`` in the project order (its
    ``keypoint_scale`` is the length of the middle finger's MCP->PIP bone).
    A prediction whose reference bone has zero length is only root-aligned.
    """
    p, g, _, single = _batch(pred, gt, None)
    a, b = bone
    lp = np.linalg.norm(p[:, a] - p[:, b], axis=-1)
    lg = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    s = np.where(lp > _EPS, lg / np.maximum(lp, _EPS), 1.0)
    out = g[:, root : root + 1] + s[:, None, None] * (p - p[:, root : root + 1])
    return out[0] if single else out


def align_hand3d(pred, gt, pred_scale, *, root: int = 0, bone: tuple[int, int] = (9, 10)):
    """hand3d's protocol: ``(pred - pred_root) / pred_scale * |g_a - g_b|``, placed at the ground
    truth's root (errors equal hand3d's root-relative comparison).

    ``pred_scale``: ``(B,)`` (or a scalar) length by which the prediction is normalised -- the
    length of bone ``(a, b)`` in the prediction's own hand model (hand3d's networks output
    coordinates already divided by it). Required: measuring it on the posed prediction is
    ``"root_scale"``, a different protocol.
    """
    p, g, _, single = _batch(pred, gt, None)
    if pred_scale is None:
        raise ValueError(
            "alignment 'hand3d' needs pred_scale, the prediction's normalisation length (e.g. "
            "the reference bone in the predicted hand's rest pose); 'root_scale' measures it on "
            "the posed prediction instead"
        )
    ps = np.broadcast_to(np.asarray(pred_scale, dtype=np.float64).reshape(-1), (p.shape[0],))
    if not np.all(np.isfinite(ps) & (ps > 0)):
        raise ValueError("pred_scale must be finite and positive")
    a, b = bone
    lg = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    s = lg / ps
    out = g[:, root : root + 1] + s[:, None, None] * (p - p[:, root : root + 1])
    return out[0] if single else out


def alignment_transform(
    pred: np.ndarray,
    gt: np.ndarray,
    mode: str = "none",
    *,
    valid: np.ndarray | None = None,
    root: int = 0,
    bone: tuple[int, int] = (9, 10),
    allow_reflection: bool = False,
    pred_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The similarity ``(s (B,), R (B, D, D), t (B, D))`` that :func:`align` applies to ``pred``
    (``align(...) == apply_similarity(pred, s, R, t)``), so that other points of the
    prediction (a mesh) can be moved with its joints. Batched inputs only."""
    p, g, w, single = _batch(pred, gt, valid)
    if single:
        raise ValueError("alignment_transform takes batched (B, N, D) points")
    b, d = p.shape[0], p.shape[-1]
    eye = np.broadcast_to(np.eye(d), (b, d, d)).copy()
    if mode == "procrustes":
        _, (s, rot, t) = procrustes(p, g, valid, allow_reflection=allow_reflection)
        return s, rot, t
    if mode == "none":
        return np.ones(b), eye, np.zeros((b, d))
    if mode in ("root", "root_scale", "hand3d"):
        if mode == "root":
            s = np.ones(b)
        elif mode == "root_scale":
            lp = np.linalg.norm(p[:, bone[0]] - p[:, bone[1]], axis=-1)
            lg = np.linalg.norm(g[:, bone[0]] - g[:, bone[1]], axis=-1)
            s = np.where(lp > _EPS, lg / np.maximum(lp, _EPS), 1.0)
        else:
            align_hand3d(p[:, :1], g[:, :1], pred_scale, root=0, bone=(0, 0))  # validates it
            lg = np.linalg.norm(g[:, bone[0]] - g[:, bone[1]], axis=-1)
            s = lg / np.broadcast_to(np.asarray(pred_scale, np.float64).reshape(-1), (b,))
        return s, eye, g[:, root] - s[:, None] * p[:, root]
    if mode == "centroid_scale":
        s, t = _centroid_scale(p, g, w)
        return s, eye, t
    if mode == "scale":
        return _lsq_scale(p, g, w), eye, np.zeros((b, d))
    raise ValueError(f"unknown alignment mode {mode!r}; expected one of {ALIGNMENT_MODES}")


def align_centroid_scale(pred, gt, valid=None):
    """Centroid and mean-radius alignment over the valid points (fingertip-only benchmarks).

    ``aligned = c_g + (r_g / r_p) (p - c_p)`` with ``c`` the centroid of the valid points and
    ``r`` their mean distance to it (Minimal-Hand's EgoDexter / Dexter+Object protocol).
    """
    p, g, w, single = _batch(pred, gt, valid)
    s, t = _centroid_scale(p, g, w)
    out = s[:, None, None] * p + t[:, None]
    return out[0] if single else out


def align_scale(pred, gt, valid=None):
    """Least-squares scale about the origin: ``s = <p, g> / <p, p>`` over valid points."""
    p, g, w, single = _batch(pred, gt, valid)
    out = _lsq_scale(p, g, w)[:, None, None] * p
    return out[0] if single else out


def align(
    pred: np.ndarray,
    gt: np.ndarray,
    mode: str = "none",
    *,
    valid: np.ndarray | None = None,
    root: int = 0,
    bone: tuple[int, int] = (9, 10),
    allow_reflection: bool = False,
    pred_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Align ``pred`` to ``gt`` with one of :data:`ALIGNMENT_MODES` (see the module docstring).

    ``root`` / ``bone`` are used by the root modes, ``valid`` by the fitted modes,
    ``allow_reflection`` by ``"procrustes"`` and ``pred_scale`` ``(B,)`` (the prediction's
    normalisation length, same unit as the points) by ``"hand3d"``. Returns pred's shape.
    """
    if mode == "hand3d":
        return align_hand3d(pred, gt, pred_scale, root=root, bone=bone)
    if mode == "none":
        return np.asarray(pred, dtype=np.float64)
    if mode == "root":
        return align_root(pred, gt, root=root)
    if mode == "root_scale":
        return align_root_scale(pred, gt, root=root, bone=bone)
    if mode == "centroid_scale":
        return align_centroid_scale(pred, gt, valid)
    if mode == "scale":
        return align_scale(pred, gt, valid)
    if mode == "procrustes":
        return procrustes(pred, gt, valid, allow_reflection=allow_reflection)[0]
    raise ValueError(f"unknown alignment mode {mode!r}; expected one of {ALIGNMENT_MODES}")
