"""Stream benchmark sequences through a model and report the metrics.

Each sequence is fed in order with the recurrent state carried from frame to frame and reset
between sequences (``per_frame=True`` resets it every frame, for comparison). Predictions are
decoded through the hand layer; 3D joints are camera-aligned and root-relative (weak
perspective has no absolute depth), so the ground truth is aligned with the dataset's protocol
(``alignment``) before the errors are taken - see docs/metrics.md.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seqhand.conventions import M_TO_MM, MCP_IDS
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.plots import curve_from_metrics, plot_pck
from seqhand.evaluation.view import ViewMetrics
from seqhand.models import HandDecoder, normalize_frames
from seqhand.training.batch import resize_points


@dataclasses.dataclass
class EvalFrame:
    """One frame of a benchmark sequence, already cropped to the model's square input.

    image: ``(S, S, 3)`` uint8. joints3d: ``(21, 3)`` metres, camera frame (any root).
    joints2d: ``(21, 2)`` pixels of the crop, or None. valid: ``(21,)`` bool.
    root_kind: ``"wrist"`` or ``"palm"`` (STB's slot 0 is the palm centre).
    rot: ``(3,)`` true global rotation (axis-angle) when known (generated data), else None.
    verts3d: ``(V, 3)`` metres, same frame as ``joints3d`` (FreiHAND), or None.
    """

    image: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray | None
    valid: np.ndarray
    root_kind: str = "wrist"
    rot: np.ndarray | None = None
    verts3d: np.ndarray | None = None


def generated_sequences(root, split: str = "test", image_size: int = 224,
                        limit: int | None = None, *, verify: bool = False,
                        skipped: list[str] | None = None) -> Iterator[tuple[str, list[EvalFrame]]]:  # fmt: skip
    """The generated SeqHAND test split as evaluation sequences (ground truth camera-aligned).

    ``verify``: check the split's shards against the manifest first. ``skipped``: a list to
    skip damaged shards / samples into (named there); None: a damaged one is an error.
    """
    from scipy.spatial.transform import Rotation

    from seqhand.data.seqhand_dataset import SeqHandShards

    stream = SeqHandShards(root, split, rank=0, world_size=1, verify=verify,
                           on_error="raise" if skipped is None else "skip")  # fmt: skip
    if skipped is not None:
        stream.skipped = skipped
    for k, s in enumerate(stream):
        if limit is not None and k >= limit:
            break
        ann, frames = s["ann"], s["frames"]
        f = image_size / frames.shape[1]
        if f != 1:
            t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
            t = torch.nn.functional.interpolate(t, size=(image_size, image_size), mode="bilinear",
                                                antialias=True, align_corners=False)  # fmt: skip
            frames = t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        rmat = Rotation.from_rotvec(ann["rot"]).as_matrix()
        j3 = np.einsum("tij,tkj->tki", rmat, ann["joints3d"])
        j2 = resize_points(ann["joints2d"], f)
        seq = [EvalFrame(frames[i], j3[i], j2[i], np.ones(21, bool), rot=ann["rot"][i])
               for i in range(len(frames))]  # fmt: skip
        yield s["meta"].get("key", f"{split}-{k:07d}"), seq


@torch.no_grad()
def evaluate_sequences(
    model,
    sequences: Iterable[tuple[str, list[EvalFrame]]],
    *,
    accumulator: MetricAccumulator,
    decoder: HandDecoder | None = None,
    per_frame: bool = False,
    chunk: int = 16,
    progress: bool = True,
    total: int | None = None,
    view: ViewMetrics | None = None,
) -> MetricAccumulator:
    """Run ``model`` over every sequence (state carried within, reset between) and feed
    ``accumulator`` (and ``view``: rotation error and size ratio). Returns the accumulator."""
    from seqhand.data.stb import palm_from_joints

    decoder = decoder if decoder is not None else HandDecoder(None)
    model.eval()
    for seq_id, frames in tqdm(sequences, desc="evaluate", unit="seq", disable=not progress,
                               total=total):  # fmt: skip
        state = None
        imgs = torch.from_numpy(np.stack([f.image for f in frames])).permute(0, 3, 1, 2)
        x = normalize_frames(imgs.float() / 255.0)
        params = []
        step = 1 if per_frame else chunk
        for i in range(0, len(frames), step):
            p, state = model(x[None, i : i + step], None if per_frame else state)
            params.append(p[0])
        params = torch.cat(params)
        dec = decoder(params)
        pred3 = dec.joints3d.double().numpy()
        pred2 = dec.joints2d.double().numpy()
        if frames[0].root_kind == "palm":  # STB: slot 0 is the palm centre (weak perspective is
            pred3, pred2 = pred3.copy(), pred2.copy()  # linear: the same rule holds in 2D)
            pred3[:, 0] = palm_from_joints(pred3)
            pred2[:, 0] = 0.5 * (pred2[:, 0] + pred2[:, MCP_IDS[3]])  # palm_from_joints' rule
        gt3 = np.stack([f.joints3d for f in frames])
        valid = np.stack([f.valid for f in frames])
        has2d = frames[0].joints2d is not None
        if view is not None:
            rel = np.linalg.norm((pred3 - pred3[:, :1]) - (gt3 - gt3[:, :1]), axis=-1) * M_TO_MM
            view.process(
                dec.params["rot"].double().numpy(),
                np.stack([f.rot for f in frames]) if frames[0].rot is not None else None,
                pred2,
                np.stack([f.joints2d for f in frames]) if has2d else None,
                gt3d=gt3 if frames[0].root_kind == "wrist" else None,  # the axes need the wrist
                err3d_mm=np.where(
                    valid[:, [0, 5, 9, 17]].all(1),  # wrist, axes: known
                    (rel * valid).sum(1) / np.maximum(valid.sum(1), 1),
                    np.nan,
                ),
            )
        has_verts = all(f.verts3d is not None for f in frames)
        accumulator.process(
            pred3, gt3, valid,
            sequence_ids=[seq_id] * len(frames), frame_indices=list(range(len(frames))),
            pred_joints2d=pred2 if has2d else None,
            gt_joints2d=np.stack([f.joints2d for f in frames]) if has2d else None,
            pred_verts=dec.vertices3d.double().numpy() if has_verts else None,
            gt_verts=np.stack([f.verts3d for f in frames]) if has_verts else None,
            pred_params={"betas": dec.params["betas"].numpy(),
                         "pose": dec.params["pose_pca"].numpy()},
            pred_scale=rest_bone_length(decoder, dec.params["betas"], accumulator.bone),
        )  # fmt: skip
    return accumulator


def rest_bone_length(decoder: HandDecoder, betas: torch.Tensor, bone=(9, 10)) -> np.ndarray:
    """``(N,)`` metres: the length of joint pair ``bone`` in the predicted hand (shape ``betas``)
    at rest -- the prediction's own normalisation length for the ``"hand3d"`` alignment. (Joints
    of a kinematic hand move rigidly with their bones, so it equals the posed bone's length.)"""
    layer = decoder.hand_layer
    b = betas.reshape(-1, betas.shape[-1]).to(layer.v_template.dtype)
    j = layer(betas=b).joints.double().numpy()
    return np.linalg.norm(j[:, bone[0]] - j[:, bone[1]], axis=-1)


def summary_lines(m: dict) -> list[str]:
    """Every headline number of a ``metrics.json`` with the protocol it was measured with."""
    pr = m.get("protocol", {})

    def f(x, fmt=".2f"):
        return "n/a" if x is None else format(x, fmt)

    head = pr.get("headline_auc", "?")
    t = pr.get("pck_thresholds", {}).get(head, [None, None, None])
    lines = [
        f"frames {m.get('num_frames')} in {m.get('num_sequences')} sequences; skipped "
        f"{m.get('num_skipped_frames', 0)} with < {pr.get('skip_frames_with_fewer_valid_joints_than', 0)} "
        "annotated joints",
        f"EPE3D mean {f(m.get('epe3d_mean_mm'))} mm / median {f(m.get('epe3d_median_mm'))} mm "
        f"[alignment={pr.get('alignment')}, {pr.get('epe_reduction')}]",
        f"AUC {f(m.get('auc'), '.3f')} [PCK '{head}': {t[0]}-{t[1]} mm, {t[2]} thresholds; "
        f"alignment={pr.get('alignment')}]",
        f"PA-MPJPE {f(m.get('pa_mpjpe_mm'))} mm [Procrustes per frame, pooled]",
    ]
    if "epe2d_mean_px" in m:
        lines.append(
            f"EPE2D {f(m.get('epe2d_mean_px'))} px [crop pixels, {pr.get('epe_reduction')}], "
            f"AUC2D {f(m.get('auc2d'), '.3f')} [PCK 0-20 crop px, 21 thresholds]"
        )
    if "mpvpe_mm" in m:
        lines.append(f"mesh error {f(m['mpvpe_mm'])} mm [alignment={pr.get('alignment')}], "
                     f"PA {f(m.get('pa_mpvpe_mm'))} mm [Procrustes per mesh]")  # fmt: skip
    fs = [k for k in m if k.startswith("f@")]
    if fs:
        lines.append(", ".join(f"{k} {f(m[k], '.3f')}" for k in fs)
                     + f" [alignment={pr.get('alignment')}]; "
                     + ", ".join(f"{k} {f(m['pa_' + k], '.3f')}" for k in fs)
                     + " [Procrustes]")  # fmt: skip
    lines.append(
        f"accel. error {f(m.get('accel_error_mm_per_frame2'))} mm/frame^2, accel. "
        f"{f(m.get('accel_mm_per_frame2'))} mm/frame^2, jitter {f(m.get('jitter_mm_per_frame3'))} "
        f"mm/frame^3 [root-relative (VIBE/WHAM), {pr.get('temporal_reduction')}]"
    )
    if "rot_err_median_deg" in m:
        lines.append(f"global rotation error median {f(m['rot_err_median_deg'], '.1f')} deg, "
                     f"p90 {f(m['rot_err_p90_deg'], '.1f')} deg [geodesic angle, all frames]")  # fmt: skip
    if "size_ratio_median" in m:
        lines.append(f"hand size in the image, predicted / true: median "
                     f"{f(m['size_ratio_median'])} (p10 {f(m['size_ratio_p10'])}, p90 "
                     f"{f(m['size_ratio_p90'])}) [RMS joint spread]")  # fmt: skip
    for key, what in (("by_view", "by view (deg between the palm's normal and the direction to "
                                  "the camera: 0 palm, 180 back)"),
                      ("by_foreshortening", "by foreshortening (deg of the hand's long axis "
                                            "out of the image plane)")):  # fmt: skip
        if key in m:
            cells = [f"{k} {f(b['epe3d_mm'], '.1f')} mm" + (
                     f" / {f(b['rot_err_median_deg'], '.0f')} deg" if "rot_err_median_deg" in b
                     else "") + f" ({b['share']:.0%})" for k, b in m[key].items()]  # fmt: skip
            lines.append(f"3D error{' / median rotation error' if 'large_rot_err_axis' in m else ''}"
                         f" {what}: " + ", ".join(cells))  # fmt: skip
    if "large_rot_err_axis" in m:
        a = m["large_rot_err_axis"]
        lines.append(f"rotation errors > {a['threshold_deg']:.0f} deg: {a['frames']} frames, "
                     f"mostly about the true hand's long axis {a['long']:.0%}, palm normal "
                     f"{a['normal']:.0%}, axis across the palm {a['across']:.0%}")  # fmt: skip
    return lines


def write_report(acc: MetricAccumulator, out_dir, *, dataset: str, label: str,
                 extra: dict | None = None, view: ViewMetrics | None = None) -> dict:  # fmt: skip
    """Write ``metrics.json``, ``per_frame.jsonl`` and ``pck.png`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = acc.evaluate()
    if view is not None:
        metrics.update(view.evaluate())
    metrics["dataset"] = dataset
    metrics.update(extra or {})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with open(out / "per_frame.jsonl", "w") as fh:
        for row in acc.per_frame():
            fh.write(json.dumps(row) + "\n")
    ref = dataset if dataset in ("stb", "egodexter", "dexter_object") else None
    plot_pck([curve_from_metrics(metrics, label)], out / "pck.png", dataset=ref,
             title=f"3D PCK - {dataset}")  # fmt: skip
    return metrics
