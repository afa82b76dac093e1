"""Real-benchmark evaluation: oracle crops, palm root, mirroring, and ``seqhand evaluate``.

The fixtures here hold *hand-shaped* ground truth: every frame's joints are the hand layer's
joints for known network parameters, placed in front of the camera, recorded as the benchmark
records them (left hands for STB / EgoDexter / Dexter+Object, STB's palm in slot 0, each
dataset's own file frame and units) and painted as large coloured dots. A stub "model" that
outputs those parameters must then score EPE 0 through the whole evaluation path, and each
crop must show each joint's dot under its ground-truth 2D position.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

from data_fixtures import (
    PALETTE,
    PROJECT_NAMES,
    STB_NAMES,
    TIP_NAMES,
    _tip_line,
    paint,
    reorder,
    save_png,
    write_freihand,
)
from seqhand.cli import main
from seqhand.data import palm_from_joints
from seqhand.data.types import RealSample, project
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.evaluator import evaluate_sequences
from seqhand.evaluation.real import (
    EvalDataError,
    oracle_box,
    real_sequences,
    sequence_crops,
)
from seqhand.models import HandDecoder, build_model
from seqhand.training.checkpoint import save_model

MIRROR = np.array([-1.0, 1.0, 1.0])
TIP_IDS = [PROJECT_NAMES.index(n) for n in TIP_NAMES]
RADIUS = 7  # dot radius in the 640 x 480 fixture images


@pytest.fixture(scope="module")
def decoder():
    return HandDecoder(None)


def hand_frames(decoder, n: int, seed: int, z: float = 0.45):
    """``n`` frames of (params (26,), right-hand joints (21, 3) m in the camera frame)."""
    rng = np.random.default_rng(seed)
    p = torch.zeros(n, 26)
    p[:, 0] = 400.0
    p[:, 1:3] = 64.0
    p[:, 3:6] = torch.from_numpy(rng.normal(0.0, 0.3, (n, 3)) + [np.pi / 2, 0.0, 0.0])
    p[:, 6:16] = torch.from_numpy(rng.normal(0.0, 0.6, (n, 10)))
    p[:, 16:26] = torch.from_numpy(rng.normal(0.0, 0.8, (n, 10)))
    j = decoder(p).joints3d.double().numpy()
    offset = -j.mean(1, keepdims=True) + np.array([rng.uniform(-0.03, 0.03), 0.0, z])
    return p, j + offset


def write_stb_hands(root, decoder, n: int = 4):
    """STB test split (B1Counting, B1Random), BB camera, hand-shaped; returns (params, truth)."""
    from seqhand.data.stb import BB_INTRINSICS

    params, truth = [], []
    for k, seq in enumerate(("B1Counting", "B1Random")):
        p, x = hand_frames(decoder, n, seed=10 + k)
        para = np.zeros((3, 21, n))
        for f in range(n):
            xp = x[f].copy()
            xp[0] = palm_from_joints(x[f])  # STB labels the palm centre in slot 0
            rec = xp * MIRROR  # STB records left hands
            para[:, :, f] = (reorder(rec, STB_NAMES) * 1000.0).T
            img = np.zeros((480, 640, 3), np.uint8)
            paint(img, project(rec, BB_INTRINSICS), PALETTE, radius=RADIUS)
            save_png(root / "images" / seq / f"BB_left_{f}.png", img)
            # the right stereo view: hand3d's create_db.m, X_r = X_l - (baseline, 0, 0)
            img = np.zeros((480, 640, 3), np.uint8)
            rec_r = rec - np.array([0.120054, 0.0, 0.0])
            paint(img, project(rec_r, BB_INTRINSICS), PALETTE, radius=RADIUS)
            save_png(root / "images" / seq / f"BB_right_{f}.png", img)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "labels" / f"{seq}_BB.mat", {"handPara": para})
        params.append(p)
        truth.append(x)
    return torch.cat(params), np.concatenate(truth)


def write_tip_hands(root, decoder, dataset: str, n: int = 3):
    """EgoDexter / Dexter+Object, every sequence, hand-shaped tips. Frame 1 of each sequence
    misses two tips and frame 2 of the first sequence has none. Returns (params, truth,
    valid (F, 21))."""
    if dataset == "egodexter":
        from seqhand.data.egodexter import COLOR_EXTRINSICS, COLOR_INTRINSICS, SEQUENCES

        flip, missing = np.ones(3), ""
        ann = lambda seq: root / "data" / seq / "annotation.txt_3D.txt"  # noqa: E731
        name = lambda f: f"image_{f:05d}_color.png"  # noqa: E731
    else:
        from seqhand.data.dexter_object import COLOR_EXTRINSICS, COLOR_INTRINSICS, SEQUENCES

        flip, missing = np.array([-1.0, -1.0, 1.0]), "12.5, -3.0, 32001"
        ann = lambda seq: root / "data" / seq / "annotations" / f"{seq}3D.txt"  # noqa: E731
        name = lambda f: f"Color_{f:04d}.bmp"  # noqa: E731
    r, t = COLOR_EXTRINSICS[:, :3], COLOR_EXTRINSICS[:, 3]
    params, truth, valids = [], [], []
    for k, seq in enumerate(SEQUENCES):
        p, x = hand_frames(decoder, n, seed=20 + k, z=0.4)
        lines = []
        for f in range(n):
            tips = reorder(x[f] * MIRROR, TIP_NAMES)  # recorded left hand, colour frame
            tv = np.ones(5, bool)
            if f == 1:
                tv[[1, 3]] = False
            if f == 2 and k == 0:
                tv[:] = False
            file_mm = np.linalg.solve(r, (tips * 1000.0 - t).T).T * flip
            lines.append(_tip_line(file_mm, tv, missing))
            img = np.zeros((480, 640, 3), np.uint8)
            paint(img, project(tips[tv], COLOR_INTRINSICS), PALETTE[TIP_IDS][tv], radius=RADIUS)
            save_png(root / "data" / seq / "color" / name(f), img)
            v = np.zeros(21, bool)
            v[np.array(TIP_IDS)[tv]] = True
            valids.append(v)
        ann(seq).parent.mkdir(parents=True, exist_ok=True)
        ann(seq).write_text("\n".join(lines) + "\n")
        params.append(p)
        truth.append(x)
    return torch.cat(params), np.concatenate(truth), np.stack(valids)


class ReplayModel(nn.Module):
    """A stand-in network that outputs given parameters, frame after frame, in order."""

    def __init__(self, params: torch.Tensor) -> None:
        super().__init__()
        self.params, self.k = params, 0

    def forward(self, frames, state=None):
        b, t = frames.shape[:2]
        assert b == 1 and frames.shape[2:] == (3, 64, 64)
        out = self.params[self.k : self.k + t][None]
        self.k += t
        return out, state


def dots_under_joints(frame, joint_ids, min_sep: float) -> int:
    """Check every well-separated valid joint of an EvalFrame sits on its dot; return how
    many were checked."""
    ids = [j for j in joint_ids if frame.valid[j]]
    pts = frame.joints2d
    checked = 0
    for j in ids:
        others = [i for i in ids if i != j]
        if others and np.min(np.linalg.norm(pts[others] - pts[j], axis=1)) < min_sep:
            continue
        u, v = np.round(pts[j]).astype(int)
        px = frame.image[v, u].astype(int)
        cands = np.concatenate([PALETTE.astype(int), [[0, 0, 0]]])
        best = int(np.argmin(((cands - px) ** 2).sum(1)))
        assert best == j, f"joint {j}: pixel {px} is closest to colour {best}"
        checked += 1
    return checked


# --------------------------------------------------------------------------------------------
def test_stb_prediction_equal_to_truth_scores_zero(tmp_path, decoder):
    params, truth = write_stb_hands(tmp_path, decoder)
    seqs, total = real_sequences("stb", tmp_path, 64, stb_view="BB-left")
    assert total == 2
    seqs = list(seqs)
    assert [s for s, _ in seqs] == ["B1Counting", "B1Random"]
    frames = [f for _, fs in seqs for f in fs]
    assert all(f.root_kind == "palm" for f in frames)
    # ground truth: the right hand we placed (mirrored back), palm in slot 0
    gt = np.stack([f.joints3d for f in frames])
    np.testing.assert_allclose(gt[:, 1:], truth[:, 1:], atol=1e-9)
    np.testing.assert_allclose(gt[:, 0], palm_from_joints(truth), atol=1e-9)
    for mode in ("root", "root_scale", "hand3d"):
        acc = MetricAccumulator(alignment=mode)
        evaluate_sequences(ReplayModel(params), iter(seqs), accumulator=acc, decoder=decoder,
                           progress=False)  # fmt: skip
        m = acc.evaluate()
        assert m["num_frames"] == len(truth)
        assert m["epe3d_mean_mm"] < 1e-2, mode
        assert m["auc"] == pytest.approx(1.0)


def test_stb_crops_show_the_joints(tmp_path, decoder):
    write_stb_hands(tmp_path, decoder, n=2)
    seqs, _ = real_sequences("stb", tmp_path, 256, stb_view="BB-left")
    checked = 0
    for _, frames in seqs:
        for f in frames:
            assert f.image.shape == (256, 256, 3) and f.image.dtype == np.uint8
            # the crop is 2.2 x the joints' box: the joints span ~1/2.2 of it, centred
            lo, hi = f.joints2d.min(0), f.joints2d.max(0)
            assert max(hi - lo) == pytest.approx(256 / 2.2, rel=1e-6)
            np.testing.assert_allclose((lo + hi) / 2, 127.5, atol=1e-6)
            checked += dots_under_joints(f, range(21), min_sep=8.0)
    assert checked >= 40


@pytest.mark.parametrize("dataset", ["egodexter", "dexter_object"])
def test_fingertip_sets_equal_to_truth_and_crops(tmp_path, decoder, dataset):
    params, truth, valid = write_tip_hands(tmp_path, decoder, dataset)
    seqs, total = real_sequences(dataset, tmp_path, 64)
    seqs = list(seqs)
    assert total == len(seqs) == len(truth) // 3
    frames = [f for _, fs in seqs for f in fs]
    np.testing.assert_array_equal(np.stack([f.valid for f in frames]), valid)
    for f, x in zip(frames, truth):
        np.testing.assert_allclose(f.joints3d[f.valid], x[f.valid], atol=1e-9)
    acc = MetricAccumulator(alignment="centroid_scale")
    evaluate_sequences(ReplayModel(params), iter(seqs), accumulator=acc, decoder=decoder,
                       progress=False)  # fmt: skip
    m = acc.evaluate()
    assert m["num_frames"] == len(truth)
    assert m["epe3d_mean_mm"] < 1e-2
    assert m["auc"] == pytest.approx(1.0)
    # negative control: without the loader's mirror the same predictions are far off
    from seqhand.data import DexterObject, EgoDexter
    from seqhand.evaluation.real import eval_frames

    cls = EgoDexter if dataset == "egodexter" else DexterObject
    ds = cls(tmp_path, hand_side="right")
    unmirrored = [(s, eval_frames([ds[i] for i in idx], 64, fingertips_only=True))
                  for s, idx in ds.sequences()]  # fmt: skip
    acc = MetricAccumulator(alignment="centroid_scale")
    evaluate_sequences(ReplayModel(params), iter(unmirrored), accumulator=acc, decoder=decoder,
                       progress=False)  # fmt: skip
    assert acc.evaluate()["epe3d_mean_mm"] > 5.0
    # crops at a larger size: the tips sit on their dots; the unannotated frame reuses the
    # previous frame's crop
    seqs, _ = real_sequences(dataset, tmp_path, 256, limit=2)
    first = next(seqs)[1]
    assert not first[2].valid.any()
    np.testing.assert_array_equal(first[2].image.shape, (256, 256, 3))
    checked = sum(dots_under_joints(f, TIP_IDS, min_sep=8.0) for f in first)
    assert checked >= 6


def test_fingertip_box_is_widened_to_a_hand():
    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    j3 = np.zeros((21, 3))
    j3[TIP_IDS] = [[0.0, 0.0, 0.5], [0.01, 0.0, 0.5], [0.02, 0.0, 0.5], [0.03, 0.0, 0.5],
                   [0.04, 0.01, 0.5]]  # fmt: skip
    valid = np.zeros(21, bool)
    valid[TIP_IDS] = True
    j2 = np.zeros((21, 2))
    j2[valid] = project(j3[valid], K)
    s = RealSample(image=np.zeros((480, 640, 3), np.uint8), joints3d=j3, joints2d=j2,
                   joint_valid=valid, K=K, dataset="egodexter", index=0,
                   sequence_id="Desk")  # fmt: skip
    tight = oracle_box(s)
    wide = oracle_box(s, min_hand_m=0.18)
    assert tight.longer_side == pytest.approx(600 * 0.04 / 0.5)
    assert wide.width == pytest.approx(600 * 0.18 / 0.5)
    assert wide.height == pytest.approx(600 * 0.18 / 0.5)
    assert wide.center == pytest.approx(tight.center)
    # a sequence whose first frame is unannotated borrows the next frame's crop; a sequence
    # with no annotation at all is cropped to the whole image
    empty = dataclasses.replace(s, joint_valid=np.zeros(21, bool), index=1, frame_index=1)
    c = sequence_crops([empty, s, empty], 64, fingertips_only=True)
    assert c[0] == c[1] == c[2]
    whole = sequence_crops([empty], 64)[0]
    assert whole.side == pytest.approx(640.0) and (whole.cx, whole.cy) == (319.5, 239.5)


def test_freihand_evaluation_split(tmp_path):
    truth = write_freihand(tmp_path, n=1, n_eval=3)["evaluation"]
    seqs, total = real_sequences("freihand", tmp_path, 224)
    seqs = list(seqs)
    assert total == 3 and all(len(fs) == 1 for _, fs in seqs)
    for (_, (f,)), x in zip(seqs, truth.joints3d):
        np.testing.assert_allclose(f.joints3d, x, atol=1e-9)
        assert f.root_kind == "wrist" and f.valid.all()
        assert dots_under_joints(f, range(21), min_sep=6.0) >= 15
    (tmp_path / "evaluation_xyz.json").unlink()
    with pytest.raises(EvalDataError, match="evaluation_xyz.json"):
        real_sequences("freihand", tmp_path, 224)


@pytest.mark.parametrize("dataset", ["stb", "egodexter", "dexter_object"])
def test_cli_evaluate_untrained_checkpoint(tmp_path, decoder, dataset, capsys):
    root = tmp_path / "data"
    if dataset == "stb":
        write_stb_hands(root, decoder, n=3)
        n_frames = 12  # BB left and right (hand3d's evaluation set)
    else:
        n_frames = len(write_tip_hands(root, decoder, dataset, n=3)[1])
    torch.manual_seed(0)
    ckpt = save_model(build_model("tiny"), tmp_path / "model.pt", image_size=64)
    out = tmp_path / "out"
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", dataset, "--data-root",
               str(root), "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert ("alignment=hand3d" if dataset == "stb" else "alignment=centroid_scale") in printed
    assert "root-relative (VIBE/WHAM)" in printed and "per_keypoint" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == dataset and m["num_frames"] == n_frames
    assert m["alignment"] == ("hand3d" if dataset == "stb" else "centroid_scale")
    assert m["protocol"]["skip_frames_with_fewer_valid_joints_than"] == (
        0 if dataset == "stb" else 2
    )
    assert m["epe3d_mean_mm"] > 1.0  # an untrained network is not the ground truth
    assert (out / "pck.png").stat().st_size > 1000
    rows = (out / "per_frame.jsonl").read_text().splitlines()
    assert len(rows) == n_frames


def test_freihand_evaluation_passes_vertices(tmp_path, decoder):
    """FreiHAND's evaluation_verts.json reaches the accumulator: mesh F-scores are reported (the
    built-in hand has another topology than MANO's 778 vertices, so no per-vertex error)."""
    write_freihand(tmp_path, n=1, n_eval=3)
    seqs = list(real_sequences("freihand", tmp_path, 64)[0])
    assert all(f.verts3d is not None and f.verts3d.shape == (778, 3) for _, fs in seqs for f in fs)
    params = torch.zeros(3, 26)
    params[:, 0] = 100.0  # scale (pixels per metre)
    acc = MetricAccumulator(alignment="root")
    evaluate_sequences(ReplayModel(params), iter(seqs), accumulator=acc, decoder=decoder,
                       progress=False)  # fmt: skip
    m = acc.evaluate()
    assert m["f@5mm"] is not None and m["pa_f@15mm"] is not None and "mpvpe_mm" not in m
