"""Temporal smoothness, measured: a streaming run against the same model run frame by frame.

For each sequence the predictor runs twice, streaming (the recurrent state carried) and
``per_frame`` (state reset at every frame), optionally beside a per-frame *baseline model*;
the 3D joints (camera-aligned, wrist-relative) of each run are scored with
:mod:`seqhand.evaluation.metrics`: jitter (mm/frame^3), acceleration (mm/frame^2), and when
the sequences carry 3D ground truth, the acceleration error (mm/frame^2) and MPJPE (mm), plus
the paper's mean parameter change between frames (section 5.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from seqhand.conventions import WRIST
from seqhand.evaluation.metrics import (
    acceleration,
    acceleration_error,
    jitter,
    mpjpe,
    param_change,
)
from seqhand.geometry.crop import Box, full_frame_box
from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.inference.predictor import Predictor


def ground_truth_joints3d(ann: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """``(T, 21, 3)`` camera-aligned, wrist-relative ground truth of a generated sequence
    (its ``joints3d`` are in the hand-model frame; ``rot`` is the camera rotation R)."""
    if "joints3d" not in ann:
        return None
    j = np.asarray(ann["joints3d"], dtype=np.float64)
    if "rot" in ann:
        r = axis_angle_to_matrix(torch.as_tensor(np.asarray(ann["rot"]), dtype=torch.float64))
        j = np.einsum("tij,tkj->tki", r.numpy(), j)
    return j - j[:, WRIST : WRIST + 1]


def _run(predictor: Predictor, frames: np.ndarray, boxes: list[Box]) -> dict[str, np.ndarray]:
    outs = list(predictor.run(list(frames), boxes=boxes))
    found = np.array([o.found for o in outs])
    j3 = np.stack([o.joints3d if o.found else np.full((21, 3), np.nan) for o in outs])
    params = np.stack([o.params if o.found else np.full(26, np.nan) for o in outs])
    return {"found": found, "joints3d": j3, "params": params}


def _scores(run: dict[str, np.ndarray], gt: np.ndarray | None) -> dict[str, float]:
    valid = np.repeat(run["found"][:, None], 21, axis=1)
    j3 = np.nan_to_num(run["joints3d"])
    out = {
        "jitter_mm": jitter(j3, valid),
        "acceleration_mm": acceleration(j3, valid),
        "param_change": param_change(run["params"][run["found"]])
        if run["found"].sum() >= 2
        else float("nan"),
    }
    if gt is not None:
        out["acceleration_error_mm"] = acceleration_error(j3, gt, valid)
        out["mpjpe_mm"] = mpjpe(j3, gt, valid) if valid.any() else float("nan")
    return out


def temporal_smoothness(
    predictor: Predictor,
    sequences: Iterable[Mapping[str, Any]],
    *,
    baseline: Predictor | None = None,
    boxes: str = "frame",
) -> dict[str, Any]:
    """Jitter / acceleration (error) of a streaming run vs the ``--per-frame`` run.

    Args:
        predictor: the model to measure (its ``per_frame`` flag is ignored: both runs are made).
        sequences: dicts with ``frames (T, H, W, 3)`` uint8 and optionally ``ann`` (the
            generated dataset's annotations: ``joints3d``, ``rot``, ``joints2d``), e.g. from
            :func:`seqhand.data.seqhand_dataset.read_sequences`.
        baseline: optionally a per-frame baseline model's predictor, scored the same way.
        boxes: ``"frame"`` - the frames are hand crops already (generated data): the crop is the
            whole frame; ``"gt"`` - crop around the tight box of ``ann["joints2d"]``.

    Returns:
        ``{"streaming": {...}, "per_frame": {...}[, "baseline": {...}], "sequences": n,
        "frames": N}``; each block holds the mean over sequences of ``jitter_mm``,
        ``acceleration_mm``, ``param_change`` and, with ground truth,
        ``acceleration_error_mm`` and ``mpjpe_mm`` (see the module docstring).
    """
    if boxes not in ("frame", "gt"):
        raise ValueError(f"boxes must be 'frame' or 'gt', got {boxes!r}")
    runs: dict[str, Predictor] = {"streaming": predictor, "per_frame": predictor}
    if baseline is not None:
        runs["baseline"] = baseline
    per_seq: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    n_seq = n_frames = 0
    for seq in sequences:
        frames = np.asarray(seq["frames"])
        ann = seq.get("ann") or {}
        t, h, w = frames.shape[:3]
        if boxes == "gt":
            bx = [Box.from_points(j) for j in np.asarray(ann["joints2d"])]
        else:
            bx = [full_frame_box(h, w, predictor.crop_factor)] * t
        gt = ground_truth_joints3d(ann)
        for name, pred in runs.items():
            saved = pred.per_frame
            pred.per_frame = name == "per_frame"
            try:
                per_seq[name].append(_scores(_run(pred, frames, bx), gt))
            finally:
                pred.per_frame = saved
        n_seq += 1
        n_frames += t
    out: dict[str, Any] = {"sequences": n_seq, "frames": n_frames}
    for name, rows in per_seq.items():
        keys = rows[0].keys() if rows else []
        out[name] = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    return out
