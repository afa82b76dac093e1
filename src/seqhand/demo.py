"""``make demo`` / ``seqhand demo``: the whole pipeline on the built-in defaults, on a CPU.

1. a picture sheet of the hand model (built-in; with ``--hand-model`` also that model);
2. a small SeqHAND dataset (built-in hand, prior pose bank, skins, procedural backgrounds) and
   its preview (GIF + contact sheet);
3. SeqHAND-Net (a small ResNet + ConvLSTM, the ``tiny`` preset) trained on it (1,500 steps);
4. evaluation on the held-out sequences (metrics.json, PCK plot), beside the mean-pose baseline;
5. a GIF of predictions on held-out sequences beside the ground truth.

Every step writes into ``out`` and is skipped when its output is already there, so a second
``make demo`` only redoes what is missing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _step(msg: str) -> float:
    print(f"[demo] {msg}", flush=True)
    return time.time()


def run_demo(out: Path, *, hand_model: str | None = None, quick: bool = False,
             train_steps: int | None = None, workers: int = 2) -> dict:  # fmt: skip
    """Run the demo into ``out``; returns a summary dict (also ``out/summary.json``)."""
    from seqhand.config import load_config
    from seqhand.data.generate import generate, preset
    from seqhand.data.preview import preview_dataset
    from seqhand.hand.sheet import render_sheet

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    t0 = _step("1/5 hand model sheet")
    summary["hand_sheet"] = str(render_sheet(out / "hand_builtin.png", None))
    if hand_model:
        summary["hand_sheet_user"] = str(render_sheet(out / "hand_user.png", hand_model))

    _step("2/5 generating a small SeqHAND dataset (built-in hand, poses, skins, backgrounds)")
    data_cfg = preset("demo", **({"num_train": 24, "num_test": 8, "frames": 4, "shard_size": 8,
                                  "bank_size": 5000, "image_size": 64} if quick else {}))  # fmt: skip
    generate(data_cfg, out / "data", workers=1 if quick else workers, progress=not quick)
    gif, sheet = preview_dataset(out / "data", out, "train", num=8)
    summary.update(dataset=str(out / "data"), preview_gif=str(gif), contact_sheet=str(sheet))

    _step("3/5 training SeqHAND-Net (tiny preset) on it")
    overrides = [f"data.root={out / 'data'}"]
    if quick:
        overrides += ["model.image_size=64", "trainer.max_steps=3", "trainer.val_every_n_steps=3",
                      "data.batch_size=2", "data.num_workers=0", "data.val_sequences=4"]  # fmt: skip
    elif train_steps:
        overrides.append(f"trainer.max_steps={train_steps}")
    cfg = load_config("tiny", overrides)
    run = out / "run"
    if not (run / "model.pt").is_file():
        from seqhand.training.run import train

        train(cfg, run, progress=not quick)
    summary["model"] = str(run / "model.pt")

    _step("4/5 evaluating on the held-out sequences")
    metrics = evaluate_generated(run / "model.pt", out / "data", out / "eval", quick=quick)
    summary["metrics"] = {k: metrics.get(k) for k in (
        "epe3d_mean_mm", "pa_mpjpe_mm", "auc", "epe2d_mean_px", "rot_err_median_deg",
        "size_ratio_median", "mean_pose_epe3d_mm", "mean_pose_oracle_rot_epe3d_mm")}  # fmt: skip

    _step("5/5 predictions beside the ground truth")
    summary["predictions_gif"] = str(prediction_gif(run / "model.pt", out / "data",
                                                    out / "predictions.gif"))  # fmt: skip
    summary["seconds"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    m = summary["metrics"]
    print(f"[demo] done in {summary['seconds']:.0f} s. Held-out root-relative 3D error "
          f"{m['epe3d_mean_mm']:.1f} mm (mean-pose baseline {m['mean_pose_epe3d_mm']:.1f} mm), "
          f"PA-MPJPE {m['pa_mpjpe_mm']:.1f} mm, median rotation error "
          f"{m['rot_err_median_deg']:.1f} deg, size ratio {m['size_ratio_median']:.2f}, "
          f"AUC(20-50 mm) {m['auc']:.3f}. Pictures: {out}/predictions.gif, {gif}, {sheet}, "
          f"{out}/eval/pck.png, {summary['hand_sheet']}")  # fmt: skip
    return summary


def mean_pose_baselines(data_root: Path, split_train: str = "train", split_eval: str = "test"):
    """Errors (mm) of two constant predictors on the eval split, root-relative:
    the mean camera-aligned hand of the training split, and the mean hand-frame pose rotated
    by the ground-truth camera rotation (an oracle that knows the global orientation)."""
    from scipy.spatial.transform import Rotation

    from seqhand.data.seqhand_dataset import read_sequences

    def joints(split):
        cam, hand = [], []
        for s in read_sequences(data_root, split):
            a = s["ann"]
            j = a["joints3d"] - a["joints3d"][:, :1]
            r = Rotation.from_rotvec(a["rot"]).as_matrix()
            hand.append(j)
            cam.append(np.einsum("tij,tkj->tki", r, j))
            cam[-1] = cam[-1]
        return np.concatenate(cam), np.concatenate(hand), [s["ann"]["rot"] for s in
                                                           read_sequences(data_root, split)]  # fmt: skip

    cam_tr, hand_tr, _ = joints(split_train)
    cam_ev, _, rots = joints(split_eval)
    rot = Rotation.from_rotvec(np.concatenate(rots)).as_matrix()
    mean_cam = cam_tr.mean(0)
    oracle = np.einsum("tij,kj->tki", rot, hand_tr.mean(0))
    e1 = np.linalg.norm(cam_ev - mean_cam, axis=-1).mean() * 1000
    e2 = np.linalg.norm(cam_ev - oracle, axis=-1).mean() * 1000
    return float(e1), float(e2)


def evaluate_generated(model_path: Path, data_root: Path, out: Path, quick: bool = False) -> dict:
    from seqhand.evaluation.accumulator import MetricAccumulator
    from seqhand.evaluation.evaluator import evaluate_sequences, generated_sequences, write_report
    from seqhand.evaluation.view import ViewMetrics
    from seqhand.models import HandDecoder
    from seqhand.training.checkpoint import load_model

    model, rec = load_model(model_path)
    acc, view = MetricAccumulator(alignment="root"), ViewMetrics()
    evaluate_sequences(model, generated_sequences(data_root, "test", rec["image_size"]),
                       accumulator=acc, decoder=HandDecoder(None), progress=False,
                       view=view)  # fmt: skip
    b1, b2 = mean_pose_baselines(data_root)
    return write_report(acc, out, dataset="seqhand-test", label="SeqHAND-Net (tiny preset)",
                        extra={"mean_pose_epe3d_mm": b1, "mean_pose_oracle_rot_epe3d_mm": b2},
                        view=view)  # fmt: skip


def prediction_gif(model_path: Path, data_root: Path, path: Path, num: int = 4,
                   scale: int = 2) -> Path:  # fmt: skip
    """Held-out sequences: ground truth (left) beside the prediction (right) per sequence, the
    predicted mesh drawn over the frame."""
    import torch
    from PIL import Image

    from seqhand.data.preview import draw_skeleton
    from seqhand.data.seqhand_dataset import read_sequences
    from seqhand.models import HandDecoder, normalize_frames
    from seqhand.synth.raster import render_batch, vertex_normals
    from seqhand.training.batch import resize_points
    from seqhand.training.checkpoint import load_model

    model, rec = load_model(model_path)
    dec = HandDecoder(None)
    faces = dec.faces.numpy().astype(np.int32)
    seqs = read_sequences(data_root, "test", limit=num)
    rows = []
    for s in seqs:
        frames = s["frames"]
        size = frames.shape[1]
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(rec["image_size"],) * 2, mode="bilinear",
                                            antialias=True, align_corners=False)  # fmt: skip
        with torch.no_grad():
            params, _ = model(normalize_frames(x)[None])
            d = dec(params[0])
        f = size / rec["image_size"]
        j2 = resize_points(d.joints2d.numpy(), f)
        v2 = resize_points(d.vertices2d.numpy(), f)
        vz = d.vertices3d[..., 2].numpy()
        norms = vertex_normals(d.vertices3d.numpy(), faces)
        colour = np.tile(np.array([0.45, 0.65, 0.95], np.float32), (v2.shape[1], 1))
        mesh = render_batch(v2, vz, norms, faces, colour, np.array([0.0, -0.3, -1.0]), 0.45,
                            size, size, background=frames)  # fmt: skip
        blend = (0.7 * mesh.rgb + 0.3 * frames).astype(np.uint8)
        blend = np.where(mesh.mask[..., None], blend, frames)
        ann = s["ann"]
        row = []
        for k in range(len(frames)):
            gt = np.asarray(draw_skeleton(frames[k], ann["joints2d"][k], None, scale))
            pr = np.asarray(draw_skeleton(blend[k], j2[k], None, scale))
            row.append(np.concatenate([gt, np.full((gt.shape[0], 4, 3), 255, np.uint8), pr], 1))
        rows.append(row)
    t = min(len(r) for r in rows)
    pics = []
    for k in range(t):
        grid = np.concatenate([np.concatenate([r[k], np.full((4, r[k].shape[1], 3), 255,
                                               np.uint8)], 0) for r in rows], 0)  # fmt: skip
        pics.append(Image.fromarray(grid))
    path.parent.mkdir(parents=True, exist_ok=True)
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=250, loop=0)
    return path
