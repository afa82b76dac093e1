"""``MetricAccumulator``: gathers per-frame results and reduces them (detectron2's evaluator
protocol: ``reset`` / ``process`` / ``evaluate``).

The evaluator feeds it batches of predictions and ground truth as they are produced (in metres,
the project's joint order, the dataset's camera frame) with their sequence ids and frame
indices; ``evaluate`` returns a JSON-ready dict of every metric, and ``per_frame`` the rows for a
per-frame error file. Temporal metrics are computed on root-relative predictions and ground
truth (each minus its own root joint, as VIBE and WHAM do; never on the aligned prediction,
whose alignment would carry the ground truth's root motion and the fit's noise into them), per
run of consecutive frame indices, then reduced as ``temporal_reduction`` names. Every number in
``evaluate()``'s output is accompanied by the protocol it was measured with (``protocol``).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from seqhand.conventions import M_TO_MM
from seqhand.evaluation import metrics as M
from seqhand.geometry.alignment import (
    ALIGNMENT_MODES,
    align,
    alignment_transform,
    apply_similarity,
    procrustes,
)

EPE_REDUCTIONS = {
    "per_keypoint": "mean over keypoints of each keypoint's mean over its valid frames "
    "(hand3d / FreiHAND EvalUtil)",
    "pooled": "mean over all valid (frame, joint) entries",
}
TEMPORAL_REDUCTIONS = {
    "per_sequence": "mean over sequences (runs of consecutive frames) of each run's mean",
    "pooled": "mean over all valid (frame, joint) stencils of all runs (VIBE pools its frames)",
}


def _clean(x):
    """NaN/inf -> None, numpy scalars -> float, recursively (for json.dump)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


PCK2D_THRESHOLDS_PX = np.linspace(0.0, 20.0, 21)
"""2D PCK thresholds, pixels of the crop (our choice: the paper does not state its own)."""


class MetricAccumulator:
    """Accumulate predictions frame by frame and report the benchmark metrics.

    Args:
        pck_protocols: names from :data:`~seqhand.evaluation.metrics.PCK_PROTOCOLS` (or
            ``(name, thresholds_mm)`` pairs); the first is the headline ``auc``.
        alignment: how predictions are aligned before EPE/PCK (see
            :mod:`seqhand.geometry.alignment`); Procrustes-aligned errors are always reported too.
        root, bone: root joint and reference bone for the root modes.
        fscore_thresholds_mm: F-score thresholds for meshes.
        epe_reduction: ``"per_keypoint"`` (EvalUtil, default) or ``"pooled"`` for the EPE.
        min_valid_joints: frames with fewer annotated joints are skipped (left out of every
            metric) and counted in ``num_skipped_frames``; EgoDexter / Dexter+Object use 2
            (Minimal-Hand's protocol: one tip would be aligned onto itself).
        temporal_reduction: ``"per_sequence"`` (default) or ``"pooled"`` (see
            :data:`TEMPORAL_REDUCTIONS`).
    """

    def __init__(
        self,
        *,
        pck_protocols=("paper", "0-50"),
        alignment: str = "none",
        root: int = 0,
        bone: tuple[int, int] = (9, 10),
        fscore_thresholds_mm: tuple[float, ...] = (5.0, 15.0),
        epe_reduction: str = "per_keypoint",
        min_valid_joints: int = 0,
        temporal_reduction: str = "per_sequence",
    ) -> None:
        if alignment not in ALIGNMENT_MODES:
            raise ValueError(f"alignment must be one of {ALIGNMENT_MODES}, got {alignment!r}")
        if epe_reduction not in EPE_REDUCTIONS:
            raise ValueError(f"epe_reduction must be one of {tuple(EPE_REDUCTIONS)}")
        if temporal_reduction not in TEMPORAL_REDUCTIONS:
            raise ValueError(f"temporal_reduction must be one of {tuple(TEMPORAL_REDUCTIONS)}")
        self.min_valid_joints = int(min_valid_joints)
        self.temporal_reduction = temporal_reduction
        self.protocols: list[tuple[str, np.ndarray]] = []
        for p in pck_protocols:
            if isinstance(p, str):
                self.protocols.append((p, M.pck_thresholds(p)))
            else:
                self.protocols.append((str(p[0]), np.asarray(p[1], dtype=np.float64)))
        if not self.protocols:
            raise ValueError("need at least one PCK protocol")
        self.alignment, self.root, self.bone = alignment, root, tuple(bone)
        self.fscore_thresholds_mm = tuple(fscore_thresholds_mm)
        self.epe_reduction = epe_reduction
        self.reset()

    # -- protocol ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything processed so far."""
        self._keys: list[tuple[str, int]] = []
        self._pred: list[np.ndarray] = []  # aligned predictions (J, 3)
        self._raw: list[np.ndarray] = []  # predictions as given (J, 3), for temporal metrics
        self._skipped: list[tuple[str, int]] = []
        self._gt: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []
        self._pa_err: list[np.ndarray] = []  # (J,) metres
        self._err2d: list[np.ndarray | None] = []  # (J,) px
        self._mesh: list[dict[str, float]] = []
        self._params: dict[str, list[tuple[tuple[str, int], np.ndarray]]] = defaultdict(list)

    def process(
        self,
        pred_joints3d,
        gt_joints3d,
        valid=None,
        *,
        sequence_ids=None,
        frame_indices=None,
        pred_joints2d=None,
        gt_joints2d=None,
        pred_verts=None,
        gt_verts=None,
        pred_params: dict | None = None,
        pred_scale=None,
    ) -> None:
        """Add a batch of B frames.

        Args:
            pred_joints3d, gt_joints3d: ``(B, J, 3)`` metres.
            valid: ``(B, J)`` bool (default: all valid).
            sequence_ids: B sequence names (default: each frame its own sequence).
            frame_indices: B frame indices inside their sequences (default 0).
            pred_joints2d, gt_joints2d: optional ``(B, J, 2)`` pixels (2D EPE over ``valid``).
            pred_verts, gt_verts: optional ``(B, V, 3)`` metres (MPVPE, PA-MPVPE, F-scores).
            pred_params: optional ``{"betas": (B, 10), "pose": (B, P), ...}`` for the paper's
                temporal parameter-change measure.
            pred_scale: ``(B,)`` metres, the prediction's own length of the reference bone
                (needed by the ``"hand3d"`` alignment).
        """
        pred, gt, valid = M._check(pred_joints3d, gt_joints3d, valid)
        valid = valid.copy()
        b = len(pred)
        if sequence_ids is None:
            sequence_ids = [f"frame_{len(self._keys) + i:08d}" for i in range(b)]
        if frame_indices is None:
            frame_indices = [0] * b
        if len(sequence_ids) != b or len(frame_indices) != b:
            raise ValueError(f"need {b} sequence ids and frame indices for a batch of {b}")
        keys = [(str(s), int(f)) for s, f in zip(sequence_ids, frame_indices)]
        skip = valid.any(1) & (valid.sum(1) < self.min_valid_joints)
        for i in np.flatnonzero(skip):
            self._skipped.append(keys[i])
        valid[skip] = False  # left out of every metric, counted
        trafo = alignment_transform(pred, gt, self.alignment, valid=valid, root=self.root,
                                    bone=self.bone, pred_scale=pred_scale)  # fmt: skip
        # the joints through align() itself (exact: a root lands exactly on the ground truth's,
        # which hand3d's PCK at 0 mm counts), the transform only for meshes
        aligned = align(pred, gt, self.alignment, valid=valid, root=self.root, bone=self.bone,
                        pred_scale=pred_scale)  # fmt: skip
        pa = M.pa_errors(pred, gt, valid)
        err2d = [None] * b
        if pred_joints2d is not None and gt_joints2d is not None:
            e2 = M.joint_errors(pred_joints2d, gt_joints2d)
            err2d = list(e2)
        if pred_verts is not None and gt_verts is not None:
            self._add_mesh(pred, gt, valid & ~skip[:, None], pred_verts, gt_verts, trafo, skip)
        for i in range(b):
            self._keys.append(keys[i])
            self._pred.append(aligned[i])
            self._raw.append(pred[i])
            self._gt.append(gt[i])
            self._valid.append(valid[i])
            self._pa_err.append(pa[i])
            self._err2d.append(err2d[i])
        for name, values in (pred_params or {}).items():
            values = np.asarray(values, dtype=np.float64).reshape(b, -1)
            self._params[name] += list(zip(keys, values))

    def _add_mesh(self, pred_j, gt_j, valid, pred_v, gt_v, trafo, skip) -> None:
        """Mesh errors. ``mpvpe`` / ``f@``: the vertices moved by the joints' alignment
        transform (``alignment``); ``pa_mpvpe`` / ``pa_f@``: same topology -> each mesh
        Procrustes-fitted on its own vertices (FreiHAND ``align_w_scale``); another topology ->
        the similarity fitted on the joints, applied to the vertices (see docs/metrics.md for how
        this differs from FreiHAND's ``align_by_trafo``)."""
        pv = np.asarray(pred_v, dtype=np.float64)
        gv = np.asarray(gt_v, dtype=np.float64)
        same = pv.shape == gv.shape
        pv_joint = apply_similarity(pv, *trafo)
        if same:
            pv_al, _ = procrustes(pv, gv)
        else:
            _, (s, r, t) = procrustes(pred_j, gt_j, valid)
            pv_al = apply_similarity(pv, s, r, t)
        for i in range(len(pv)):
            if skip[i] or not valid[i].any():
                continue
            row: dict[str, float] = {}
            if same:
                d = np.linalg.norm(pv_joint[i] - gv[i], axis=-1)
                row["mpvpe"] = float(d.mean() * M_TO_MM)
                row["pa_mpvpe"] = float(np.linalg.norm(pv_al[i] - gv[i], axis=-1).mean() * M_TO_MM)
            for t_mm in self.fscore_thresholds_mm:
                f = M.f_score(pv_joint[i : i + 1], gv[i : i + 1], t_mm / M_TO_MM)["f"][0]
                fa = M.f_score(pv_al[i : i + 1], gv[i : i + 1], t_mm / M_TO_MM)["f"][0]
                row[f"f@{t_mm:g}mm"] = float(f)
                row[f"pa_f@{t_mm:g}mm"] = float(fa)
            self._mesh.append(row)

    # -- reduction -----------------------------------------------------------------------------
    def _sequences(self) -> dict[str, list[int]]:
        seqs: dict[str, list[int]] = defaultdict(list)
        for i, (s, _) in enumerate(self._keys):
            seqs[s].append(i)
        return {s: sorted(ix, key=lambda i: self._keys[i][1]) for s, ix in seqs.items()}

    def _temporal(self, seqs) -> dict:
        """Acceleration error, acceleration and jitter on root-relative joints (VIBE / WHAM):
        prediction minus its own root, ground truth minus its own root. The acceleration error
        needs the ground truth's root in all three frames of a stencil; the prediction's own
        acceleration and jitter use the annotated joints."""
        acc_err, acc, jit = [], [], []
        r = self.root
        for ix in seqs.values():
            frames = np.array([self._keys[i][1] for i in ix])
            # split into runs of consecutive frame indices
            for run in np.split(np.arange(len(ix)), np.where(np.diff(frames) != 1)[0] + 1):
                if len(run) < 3:
                    continue
                sel = [ix[k] for k in run]
                p = M.root_relative(np.stack([self._raw[i] for i in sel]), r)
                g = M.root_relative(np.stack([self._gt[i] for i in sel]), r)
                v = np.stack([self._valid[i] for i in sel])
                acc_err.append(M.acceleration_error_values(p, g, v & v[:, r : r + 1]))
                acc.append(M.difference_norm_values(p, 2, v))
                if len(run) >= 4:
                    jit.append(M.difference_norm_values(p, 3, v))
        red = _pool if self.temporal_reduction == "pooled" else _mean_of_means
        out = {
            "accel_error_mm_per_frame2": red(acc_err),
            "accel_mm_per_frame2": red(acc),
            "jitter_mm_per_frame3": red(jit),
        }
        changes = {}
        for name, items in self._params.items():
            by_seq: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
            for (s, f), v in items:
                by_seq[s].append((f, v))
            per_seq_abs, per_seq_sq = [], []
            for rows in by_seq.values():
                rows.sort(key=lambda r: r[0])
                arr = np.stack([r[1] for r in rows])
                per_seq_abs.append(M.param_change(arr, kind="abs"))
                per_seq_sq.append(M.param_change(arr, kind="sq_l2"))
            changes[name] = {"mean_abs": _nanmean(per_seq_abs), "mean_sq_l2": _nanmean(per_seq_sq)}
        if changes:
            out["param_change"] = changes
        return out

    def protocol(self) -> dict:
        """The names of the protocol behind every number of :meth:`evaluate`."""
        return {
            "alignment": self.alignment,
            "root": self.root,
            "bone": list(self.bone),
            "epe_reduction": self.epe_reduction,
            "epe_reduction_means": EPE_REDUCTIONS[self.epe_reduction],
            "pa_mpjpe": "per-frame similarity Procrustes (no reflection) on the valid joints; "
            "mean over all valid (frame, joint) entries",
            "pck_thresholds": {
                name: [float(t[0]), float(t[-1]), int(t.size)] for name, t in self.protocols
            },  # fmt: skip
            "headline_auc": self.protocols[0][0],
            "skip_frames_with_fewer_valid_joints_than": self.min_valid_joints,
            "temporal": "root-relative prediction and ground truth (VIBE compute_accel / "
            "compute_error_accel, WHAM jitter), runs of consecutive frames",
            "temporal_reduction": self.temporal_reduction,
            "temporal_reduction_means": TEMPORAL_REDUCTIONS[self.temporal_reduction],
        }

    def evaluate(self) -> dict:
        """Reduce everything processed so far to a JSON-ready dict (NaN -> None)."""
        n = len(self._keys)
        if n == 0:
            return {"num_frames": 0}
        gt = np.stack(self._gt)
        pred = np.stack(self._pred)
        valid = np.stack(self._valid)
        err_mm = np.linalg.norm(pred - gt, axis=-1) * M_TO_MM
        mean, median = M.epe_from_errors(err_mm, valid, self.epe_reduction)
        pa_mm = np.stack(self._pa_err) * M_TO_MM
        seqs = self._sequences()
        per_joint = [
            float(err_mm[valid[:, j], j].mean()) if valid[:, j].any() else None
            for j in range(err_mm.shape[1])
        ]
        out: dict = {
            "num_frames": n,
            "num_sequences": len(seqs),
            "num_valid_joints": int(valid.sum()),
            "num_skipped_frames": len(self._skipped),
            "alignment": self.alignment,
            "protocol": self.protocol(),
            "epe3d_mean_mm": mean,
            "epe3d_median_mm": median,
            "epe3d_pooled_mean_mm": float(err_mm[valid].mean()) if valid.any() else None,
            "per_joint_epe3d_mm": per_joint,
            "pa_mpjpe_mm": float(pa_mm[valid].mean()) if valid.any() else None,
            "pck": {},
        }
        for name, t in self.protocols:
            out["pck"][name] = M.pck_from_errors(err_mm, valid, t).to_dict()
        out["auc"] = out["pck"][self.protocols[0][0]]["auc"]
        out["pa_pck"] = {
            name: M.pck_from_errors(pa_mm, valid, t).to_dict() for name, t in self.protocols
        }
        have2d = [i for i, e in enumerate(self._err2d) if e is not None]
        if have2d:
            e2 = np.stack([self._err2d[i] for i in have2d])
            m2, md2 = M.epe_from_errors(e2, valid[have2d], self.epe_reduction)
            out["epe2d_mean_px"], out["epe2d_median_px"] = m2, md2
            # 2D PCK / AUC (the paper's Table 2 reports one without its thresholds): the same
            # EvalUtil definition over PCK2D_THRESHOLDS_PX crop pixels
            pck2 = M.pck_from_errors(e2, valid[have2d], PCK2D_THRESHOLDS_PX).to_dict()
            pck2["thresholds_px"] = pck2.pop("thresholds_mm")
            out["pck2d"], out["auc2d"] = pck2, pck2["auc"]
        if self._mesh:
            for k in self._mesh[0]:
                out[k if k.startswith(("f@", "pa_f@")) else f"{k}_mm"] = float(
                    np.mean([r[k] for r in self._mesh])
                )
        out.update(self._temporal(seqs))
        return _clean(out)

    def per_frame(self) -> list[dict]:
        """One row per processed frame: sequence, frame, mean 3D error (mm, after the
        alignment), PA error (mm), 2D error (px) and the number of valid joints."""
        rows = []
        for i, (s, f) in enumerate(self._keys):
            v = self._valid[i]
            e = np.linalg.norm(self._pred[i] - self._gt[i], axis=-1) * M_TO_MM
            row = {
                "sequence_id": s,
                "frame_index": f,
                "num_valid": int(v.sum()),
                "epe3d_mm": float(e[v].mean()) if v.any() else None,
                "pa_epe3d_mm": float(self._pa_err[i][v].mean() * M_TO_MM) if v.any() else None,
            }
            if self._err2d[i] is not None:
                row["epe2d_px"] = float(self._err2d[i][v].mean()) if v.any() else None
            rows.append(row)
        return _clean(rows)


def _mean_of_means(chunks) -> float:
    means = [float(c.mean()) for c in chunks if len(c)]
    return float(np.mean(means)) if means else float("nan")


def _pool(chunks) -> float:
    chunks = [c for c in chunks if len(c)]
    return float(np.concatenate(chunks).mean()) if chunks else float("nan")


def _nanmean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")
