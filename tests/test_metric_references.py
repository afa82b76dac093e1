"""Metrics and protocols against the references, each re-implemented HERE from its own
definition (never from seqhand's code), on fixed random inputs (issue 13):

* VIBE ``lib/utils/eval_utils.py`` ``compute_accel`` / ``compute_error_accel`` on pelvis- (here
  root-) relative joints, ``lib/core/evaluate.py``; WHAM ``compute_jitter`` (third difference);
* hand3d ``utils/general.py`` ``EvalUtil`` and ``eval3d.py`` / ``eval_full.py`` (normalised
  prediction times the ground truth's ``keypoint_scale``, root-relative ground truth);
* mmpose ``keypoint_3d_pck`` (pooled, strict ``<``, percent);
* FreiHAND ``eval.py`` ``align_w_scale`` / ``align_by_trafo`` / ``calculate_fscore``;
* hand3d ``data/BinaryDbReader.py``'s RHD hand choice (more mask pixels);
* Minimal-Hand's rule for fingertip sets (frames with < 2 annotated tips are not scored).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

from seqhand.evaluation import metrics as M
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.evaluator import summary_lines
from seqhand.geometry.alignment import align

# --------------------------------------------------------------------------------------------
# References, from their definitions
# --------------------------------------------------------------------------------------------


def vibe_compute_accel(joints):
    """VIBE: velocities, then their difference; norm per joint; mean over joints -> (N-2,)."""
    vel = joints[1:] - joints[:-1]
    acc = vel[1:] - vel[:-1]
    return np.linalg.norm(acc, axis=2).mean(axis=1)


def vibe_compute_error_accel(joints_gt, joints_pred):
    """VIBE: |(x_{t-1} - 2 x_t + x_{t+1})_pred - (...)_gt| mean over joints -> (N-2,)."""
    a_gt = joints_gt[:-2] - 2 * joints_gt[1:-1] + joints_gt[2:]
    a_pr = joints_pred[:-2] - 2 * joints_pred[1:-1] + joints_pred[2:]
    return np.linalg.norm(a_pr - a_gt, axis=2).mean(axis=1)


def wham_jitter(joints):
    """WHAM: |x_{t+3} - 3 x_{t+2} + 3 x_{t+1} - x_t| mean over joints (before its fps^3 / 10)."""
    d = joints[3:] - 3 * joints[2:-1] + 3 * joints[1:-2] - joints[:-3]
    return np.linalg.norm(d, axis=2).mean(axis=1)


def vibe_root_relative(j, root=0):
    """VIBE subtracts the pelvis of prediction and ground truth alike."""
    return j - j[:, [root]]


class EvalUtil:
    """hand3d ``EvalUtil``: per keypoint, the distances of the frames where it is visible."""

    def __init__(self, num_kp=21):
        self.data = [[] for _ in range(num_kp)]

    def feed(self, gt, vis, pred):
        d = np.sqrt(np.sum(np.square(gt - pred), axis=1))
        for i in range(len(d)):
            if vis[i]:
                self.data[i].append(d[i])

    def get_measures(self, val_min, val_max, steps):
        th = np.linspace(val_min, val_max, steps)
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = np.trapezoid(np.ones_like(th), th)
            means, medians, aucs, curves = [], [], [], []
            for d in self.data:
                if not d:
                    continue
                d = np.array(d)
                means.append(d.mean())
                medians.append(np.median(d))
                curve = np.array([np.mean((d <= t).astype(float)) for t in th])
                curves.append(curve)
                aucs.append(np.trapezoid(curve, th) / norm)
        return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(curves, 0), th


def mmpose_keypoint_3d_pck(pred, gt, mask, threshold):
    """mmpose: ``(error < threshold)[mask].mean() * 100``, no alignment."""
    err = np.linalg.norm(pred - gt, ord=2, axis=-1)
    return (err < threshold).astype(np.float32)[mask].mean() * 100


def freihand_align_w_scale(mtx1, mtx2, return_trafo=False):
    """FreiHAND eval.py: centre, divide by Frobenius norms, orthogonal Procrustes (reflections
    allowed), rescale by the target's norm, move to the target's mean."""
    t1, t2 = mtx1.mean(0), mtx2.mean(0)
    a, b = mtx1 - t1, mtx2 - t2
    s1 = np.linalg.norm(a) + 1e-8
    a = a / s1
    s2 = np.linalg.norm(b) + 1e-8
    b = b / s2
    R, s = orthogonal_procrustes(a, b)
    out = (b @ R.T) * s * s1 + t1
    return (R, s, s1, t1 - t2) if return_trafo else out


def freihand_align_by_trafo(mtx, trafo):
    """FreiHAND eval.py, as written."""
    t2 = mtx.mean(0)
    R, s, s1, t1 = trafo
    return (mtx - t2) @ R.T * s * s1 + t1 + t2


def freihand_fscore(gt, pr, th):
    """FreiHAND calculate_fscore with nearest-neighbour distances (open3d's point-cloud distance
    is the distance to the nearest point of the other cloud)."""
    d1 = cKDTree(pr).query(gt)[0]  # each gt point to the prediction
    d2 = cKDTree(gt).query(pr)[0]  # each predicted point to the ground truth
    recall = float(np.mean(d2 < th))
    precision = float(np.mean(d1 < th))
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Inputs: a moving hand (large root motion) and a noisy prediction of it
# --------------------------------------------------------------------------------------------


def moving_hand(rng, t=40):
    base = rng.normal(scale=0.03, size=(21, 3))
    base[0] = 0.0
    wiggle = 0.004 * np.sin(np.linspace(0, 6, t))[:, None, None] * rng.normal(size=(1, 21, 3))
    root_path = np.cumsum(rng.normal(scale=0.01, size=(t, 1, 3)), axis=0)  # the hand travels
    gt = base + wiggle + root_path + np.array([0.0, 0.0, 0.5])
    pred = gt - gt[:, :1] + rng.normal(scale=0.003, size=gt.shape)  # root-relative, 3 mm noise
    return pred, gt


@pytest.mark.parametrize("alignment", ["root", "root_scale", "procrustes"])
def test_temporal_metrics_are_vibe_and_wham_on_root_relative_joints(alignment):
    rng = np.random.default_rng(0)
    pred, gt = moving_hand(rng)
    acc = MetricAccumulator(alignment=alignment, temporal_reduction="pooled")
    acc.process(pred, gt, sequence_ids=["s"] * len(gt), frame_indices=range(len(gt)))
    m = acc.evaluate()
    p, g = vibe_root_relative(pred), vibe_root_relative(gt)
    assert m["accel_mm_per_frame2"] == pytest.approx(np.mean(vibe_compute_accel(p)) * 1000)
    assert m["accel_error_mm_per_frame2"] == pytest.approx(
        np.mean(vibe_compute_error_accel(g, p)) * 1000
    )
    assert m["jitter_mm_per_frame3"] == pytest.approx(np.mean(wham_jitter(p)) * 1000)
    # independent of the alignment, and not what the aligned prediction would give
    aligned = align(pred, gt, alignment)
    assert m["accel_mm_per_frame2"] < 0.9 * np.mean(vibe_compute_accel(aligned)) * 1000
    assert m["protocol"]["temporal_reduction"] == "pooled"


def test_temporal_reduction_per_sequence_is_the_mean_of_vibe_per_sequence():
    rng = np.random.default_rng(1)
    runs = [moving_hand(rng, t) for t in (12, 30)]
    acc = MetricAccumulator(alignment="root")  # default: per_sequence
    for k, (p, g) in enumerate(runs):
        acc.process(p, g, sequence_ids=[f"s{k}"] * len(g), frame_indices=range(len(g)))
    m = acc.evaluate()
    ref = [np.mean(vibe_compute_error_accel(vibe_root_relative(g), vibe_root_relative(p)))
           for p, g in runs]  # fmt: skip
    assert m["accel_error_mm_per_frame2"] == pytest.approx(np.mean(ref) * 1000)
    pooled = MetricAccumulator(alignment="root", temporal_reduction="pooled")
    for k, (p, g) in enumerate(runs):
        pooled.process(p, g, sequence_ids=[f"s{k}"] * len(g), frame_indices=range(len(g)))
    allv = np.concatenate([vibe_compute_error_accel(vibe_root_relative(g), vibe_root_relative(p))
                           for p, g in runs])  # fmt: skip
    assert pooled.evaluate()["accel_error_mm_per_frame2"] == pytest.approx(allv.mean() * 1000)
    assert "mean over sequences" in m["protocol"]["temporal_reduction_means"]


def test_pck_at_a_single_threshold_is_evalutil_and_mmpose():
    rng = np.random.default_rng(2)
    gt = rng.normal(scale=0.05, size=(30, 21, 3))
    pred = gt + rng.normal(scale=0.015, size=gt.shape)
    r = M.pck3d(pred, gt, thresholds_mm=[20.0])
    ref = EvalUtil()
    for i in range(30):
        ref.feed(gt[i], np.ones(21), pred[i])
    _, _, ref_auc, ref_curve, _ = ref.get_measures(0.02, 0.02, 1)
    assert r.curve[0] == pytest.approx(ref_curve[0]) and 0 < r.curve[0] < 1
    assert np.isnan(r.auc) and np.isnan(ref_auc)  # an area needs two thresholds (hand3d: 0/0)
    # all keypoints equally often valid, no ties: per-keypoint mean = mmpose's pooled value
    mm = mmpose_keypoint_3d_pck(pred, gt, np.ones((30, 21), bool), 0.020)
    assert r.curve[0] * 100 == pytest.approx(mm, rel=1e-6)
    acc = MetricAccumulator(pck_protocols=[("at20", [20.0])])
    acc.process(pred, gt)
    m = acc.evaluate()
    assert m["pck"]["at20"]["curve"][0] == pytest.approx(ref_curve[0]) and m["auc"] is None


def _hand3d_reference(pred_normed, gt, bone=(9, 10)):
    """hand3d eval3d.py: ``coord3d_pred_v *= keypoint_scale``; ``keypoint_xyz21 -= xyz[0]``;
    EvalUtil over all keypoints; ``get_measures(0.0, 0.050, 20)``. keypoint_scale = |kp[12] -
    kp[11]| in hand3d's order = the middle finger's MCP->PIP = project joints (9, 10)."""
    util = EvalUtil()
    for i in range(len(gt)):
        scale = np.sqrt(np.sum(np.square(gt[i, bone[0]] - gt[i, bone[1]])))
        util.feed(gt[i] - gt[i, 0], np.ones(21), pred_normed[i] * scale)
    return util.get_measures(0.0, 0.050, 20)


def test_hand3d_protocol_is_hand3d_and_root_scale_is_not():
    rng = np.random.default_rng(3)
    n = 200
    gt = rng.normal(scale=0.03, size=(n, 21, 3))
    gt[:, 10] = gt[:, 9] + np.array([0.0, 0.03, 0.0]) + rng.normal(scale=0.002, size=(n, 3))
    gt += rng.normal(scale=0.2, size=(n, 1, 3))
    model_scale = 0.9  # the predicted hand is 10 % smaller; its own bone length is known
    clean = model_scale * (gt - gt[:, :1])
    pred = clean + rng.normal(scale=0.003, size=gt.shape)  # 3 mm of noise
    model_bone = np.linalg.norm(clean[:, 9] - clean[:, 10], axis=-1)
    normed = (pred - pred[:, :1]) / model_bone[:, None, None]
    mean, median, auc, _, _ = _hand3d_reference(normed, gt)
    acc = MetricAccumulator(alignment="hand3d", pck_protocols=("0-50",))
    acc.process(pred, gt, pred_scale=model_bone)
    m = acc.evaluate()
    assert m["epe3d_mean_mm"] == pytest.approx(mean * 1000, rel=1e-9)
    assert m["epe3d_median_mm"] == pytest.approx(median * 1000, rel=1e-9)
    assert m["auc"] == pytest.approx(auc, rel=1e-9)
    rs = MetricAccumulator(alignment="root_scale", pck_protocols=("0-50",))
    rs.process(pred, gt)
    # dividing by the noisy posed bone amplifies the noise
    assert rs.evaluate()["epe3d_mean_mm"] > 1.2 * m["epe3d_mean_mm"]


def test_fingertip_frames_with_one_tip_are_skipped_and_counted():
    rng = np.random.default_rng(4)
    n = 10
    gt = rng.normal(scale=0.04, size=(n, 21, 3)) + np.array([0, 0, 0.4])
    pred = gt + rng.normal(scale=0.01, size=gt.shape)
    tips = [4, 8, 12, 16, 20]
    valid = np.zeros((n, 21), bool)
    counts = [5, 1, 3, 0, 1, 2, 5, 4, 1, 2]
    for i, c in enumerate(counts):
        valid[i, tips[:c]] = True
    acc = MetricAccumulator(alignment="centroid_scale", min_valid_joints=2)
    acc.process(pred, gt, valid)
    m = acc.evaluate()
    assert m["num_skipped_frames"] == 3  # frames with exactly one tip; 0-tip frames are unlabelled
    # Minimal-Hand: only frames with >= 2 tips; centroid + mean-radius alignment on the tips
    errs = []
    for i in range(n):
        v = valid[i]
        if v.sum() < 2:
            continue
        p, g = pred[i, v], gt[i, v]
        cp, cg = p.mean(0), g.mean(0)
        s = np.linalg.norm(g - cg, axis=1).mean() / np.linalg.norm(p - cp, axis=1).mean()
        errs.append(np.linalg.norm(cg + s * (p - cp) - g, axis=1) * 1000)
    assert m["epe3d_pooled_mean_mm"] == pytest.approx(np.concatenate(errs).mean())
    kept = MetricAccumulator(alignment="centroid_scale")  # the old behaviour: one tip = 0 mm
    kept.process(pred, gt, valid)
    assert kept.evaluate()["epe3d_pooled_mean_mm"] < m["epe3d_pooled_mean_mm"]


def test_freihand_mesh_errors_and_fscores_vs_eval_py():
    rng = np.random.default_rng(5)
    n = 4
    gt_v = rng.normal(scale=0.04, size=(n, 778, 3))
    gt_j = rng.normal(scale=0.04, size=(n, 21, 3))
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    pred_v = 1.1 * gt_v @ rot.T + 0.05 + rng.normal(scale=0.002, size=gt_v.shape)
    pred_j = 1.1 * gt_j @ rot.T + 0.05 + rng.normal(scale=0.002, size=gt_j.shape)
    acc = MetricAccumulator(alignment="none", fscore_thresholds_mm=(5.0, 15.0))
    acc.process(pred_j, gt_j, pred_verts=pred_v, gt_verts=gt_v)
    m = acc.evaluate()
    mesh_al, f5, f15, f5a = EvalUtil(778), [], [], []
    mesh = EvalUtil(778)
    for i in range(n):
        al = freihand_align_w_scale(gt_v[i], pred_v[i])
        mesh.feed(gt_v[i], np.ones(778), pred_v[i])
        mesh_al.feed(gt_v[i], np.ones(778), al)
        f5.append(freihand_fscore(gt_v[i], pred_v[i], 0.005))
        f15.append(freihand_fscore(gt_v[i], pred_v[i], 0.015))
        f5a.append(freihand_fscore(gt_v[i], al, 0.005))
    assert m["mpvpe_mm"] == pytest.approx(mesh.get_measures(0, 0.05, 100)[0] * 1000)
    assert m["pa_mpvpe_mm"] == pytest.approx(mesh_al.get_measures(0, 0.05, 100)[0] * 1000)
    assert m["f@5mm"] == pytest.approx(np.mean(f5)) and m["f@15mm"] == pytest.approx(np.mean(f15))
    assert m["pa_f@5mm"] == pytest.approx(np.mean(f5a))


def test_non_mano_mesh_alignment_is_the_joint_similarity_not_align_by_trafo():
    """What docs/metrics.md says: a mesh of another topology is moved by the similarity fitted
    on the joints. FreiHAND's align_by_trafo, as written, re-centres on the vertices' own mean
    and leaves out the prediction's norm s2, so it does not move a point set equal to the joints
    onto the aligned joints; ours does."""
    rng = np.random.default_rng(6)
    gt_j = rng.normal(scale=0.04, size=(1, 21, 3))
    pred_j = 1.2 * gt_j + 0.03 + rng.normal(scale=0.003, size=gt_j.shape)
    verts = pred_j.copy()  # a "mesh" of 21 points that are the joints
    acc = MetricAccumulator(alignment="none")
    acc.process(pred_j, gt_j, pred_verts=np.concatenate([verts, verts[:, :5]], 1),
                gt_verts=np.concatenate([gt_j, gt_j[:, :5]], 1)[:, :20])  # fmt: skip
    aligned_joints = freihand_align_w_scale(gt_j[0], pred_j[0])
    trafo = freihand_align_w_scale(gt_j[0], pred_j[0], return_trafo=True)
    by_trafo = freihand_align_by_trafo(verts[0], trafo)
    assert np.abs(by_trafo - aligned_joints).max() > 1e-3  # FreiHAND's differs
    ours, (s, r, t) = M.procrustes(pred_j, gt_j)
    np.testing.assert_allclose(ours[0], aligned_joints, atol=1e-8)  # no reflection needed here
    assert acc.evaluate()["pa_f@5mm"] is not None


def test_summary_names_the_protocol_of_every_number():
    rng = np.random.default_rng(7)
    pred, gt = moving_hand(rng, 8)
    acc = MetricAccumulator(alignment="root", min_valid_joints=2)
    acc.process(pred, gt, sequence_ids=["s"] * 8, frame_indices=range(8))
    lines = summary_lines(acc.evaluate())
    for line in lines[1:]:
        assert "[" in line and "]" in line, line
    text = "\n".join(lines)
    for needle in ("alignment=root", "per_keypoint", "PCK 'paper': 20.0-50.0 mm",
                   "root-relative (VIBE/WHAM), per_sequence", "< 2 annotated joints"):  # fmt: skip
        assert needle in text, needle


def test_rhd_keeps_the_hand_with_more_mask_pixels_as_hand3d(tmp_path):
    """hand3d BinaryDbReader: left = labels in (1, 18), right = labels > 17; the left hand is
    kept iff it has more pixels. Sample 2 has more visible right keypoints but a larger left
    mask region: hand3d keeps the left hand there, the keypoint-count rule the right."""
    from PIL import Image

    from data_fixtures import write_rhd
    from seqhand.data import RHD
    from seqhand.data.types import mirror_points3d

    sides, mask_sides = ("left", "right", "right"), ("left", "right", "left")
    truth = write_rhd(tmp_path, sides=sides, mask_sides=mask_sides)
    ds = RHD(tmp_path, "training", load_mask=False)
    vis = RHD(tmp_path, "training", hand_choice="visible")
    for i in range(3):
        lab = np.asarray(Image.open(tmp_path / "training" / "mask" / f"{i:05d}.png")).astype(int)
        n_left = np.sum((lab > 1) & (lab < 18))
        n_right = np.sum(lab > 17)
        ref_side = "left" if n_left > n_right else "right"
        assert ds.hand_side(i) == ref_side == mask_sides[i]
        assert vis.hand_side(i) == sides[i]
        xyz = truth.extra["xyz42"][i]
        kept = xyz[:21] if ref_side == "left" else xyz[21:]
        s = ds[i]
        assert s.mirrored == (ref_side == "left")
        got = mirror_points3d(s.joints3d) if s.mirrored else s.joints3d
        assert np.allclose(np.sort(got.ravel()), np.sort(kept.astype(float).ravel()), atol=1e-6)
