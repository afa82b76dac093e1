"""Metrics against hand-built cases and a slow re-implementation of hand3d's EvalUtil."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqhand.evaluation import metrics as M
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.plots import PAPER_TABLE3, curve_from_metrics, paper_results, plot_pck

MM = 1e-3


class NaiveEvalUtil:
    """hand3d / FreiHAND EvalUtil semantics, written as plain loops (a slow reference)."""

    def __init__(self, num_kp):
        self.data = [[] for _ in range(num_kp)]

    def feed(self, gt, vis, pred):
        for i in range(len(gt)):
            if vis[i]:
                d = 0.0
                for c in range(3):
                    d += (gt[i][c] - pred[i][c]) ** 2
                self.data[i].append(d**0.5)

    def measures(self, thresholds):
        means, medians, aucs, curves = [], [], [], []
        norm = sum((thresholds[k + 1] - thresholds[k]) for k in range(len(thresholds) - 1))
        for d in self.data:
            if not d:
                continue
            means.append(sum(d) / len(d))
            medians.append(float(np.median(d)))
            curve = [sum(1 for x in d if x <= t) / len(d) for t in thresholds]
            area = sum(
                (curve[k] + curve[k + 1]) / 2 * (thresholds[k + 1] - thresholds[k])
                for k in range(len(thresholds) - 1)
            )
            aucs.append(area / norm)
            curves.append(curve)
        return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(curves, 0)


@pytest.mark.parametrize("protocol", ["paper", "0-50", "freihand", "hand3d-20-50"])
def test_matches_evalutil_reference(protocol):
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=0.05, size=(40, 21, 3))
    pred = gt + rng.normal(scale=0.02, size=gt.shape)
    valid = rng.random((40, 21)) > 0.3
    valid[:, 7] = False  # a keypoint without any data is skipped
    ref = NaiveEvalUtil(21)
    for i in range(40):
        ref.feed(gt[i] * 1000, valid[i], pred[i] * 1000)
    t = M.pck_thresholds(protocol)
    mean, median, auc, curve = ref.measures(list(t))
    e = M.epe3d(pred, gt, valid)
    p = M.pck3d(pred, gt, valid, protocol=protocol)
    assert e["mean"] == pytest.approx(mean, rel=1e-12)
    assert e["median"] == pytest.approx(median, rel=1e-12)
    assert p.auc == pytest.approx(auc, rel=1e-12)
    np.testing.assert_allclose(p.curve, curve, rtol=1e-12)
    assert np.isnan(p.per_keypoint[7]).all() and np.isnan(p.auc_per_keypoint[7])


def test_protocols():
    np.testing.assert_allclose(M.pck_thresholds("paper"), [20, 25, 30, 35, 40, 45, 50])
    assert len(M.pck_thresholds("freihand")) == 100 and M.pck_thresholds("freihand")[-1] == 50
    assert M.pck_thresholds("hand3d-20-50")[0] == pytest.approx(50 * 8 / 19)
    np.testing.assert_allclose(M.pck_thresholds(start_mm=0, stop_mm=10, steps=3), [0, 5, 10])
    with pytest.raises(ValueError):
        M.pck_thresholds("nope")
    with pytest.raises(ValueError):
        M.pck_thresholds("paper", steps=3)


def test_perfect_prediction():
    gt = np.random.default_rng(1).normal(size=(5, 21, 3)) * 0.05
    e = M.epe3d(gt, gt)
    assert e == {"mean": 0.0, "median": 0.0}
    for proto in M.PCK_PROTOCOLS:
        assert M.pck3d(gt, gt, protocol=proto).auc == 1.0
    assert M.pa_mpjpe(gt, gt) == pytest.approx(0.0, abs=1e-9)


def test_constant_offset_gives_epe_and_pck_step():
    gt = np.random.default_rng(2).normal(size=(6, 21, 3)) * 0.05
    direction = np.array([2.0, -1.0, 2.0]) / 3.0  # unit vector
    pred = gt + 10.5 * MM * direction
    e = M.epe3d(pred, gt)
    assert e["mean"] == pytest.approx(10.5) and e["median"] == pytest.approx(10.5)
    t = np.linspace(0, 50, 51)
    p = M.pck3d(pred, gt, thresholds_mm=t)
    np.testing.assert_array_equal(p.curve, (t >= 10.5).astype(float))
    # trapezoids: 0.5 on [10, 11], then 39 up to 50, over a span of 50
    assert p.auc == pytest.approx(39.5 / 50)
    # a threshold equal to the error counts as correct (<=, as in EvalUtil)
    zero = np.zeros((1, 21, 3))
    exact = zero + np.array([0.010, 0.0, 0.0])
    assert M.pck3d(exact, zero, thresholds_mm=[9.0, 10.0, 11.0]).curve.tolist() == [0.0, 1.0, 1.0]


def test_masks_are_respected():
    gt = np.zeros((3, 21, 3))
    pred = np.zeros((3, 21, 3))
    pred[:, :, 0] = 5 * MM
    pred[0, 3] = 10.0  # a huge error on an invalid entry
    valid = np.ones((3, 21), dtype=bool)
    valid[0, 3] = False
    assert M.epe3d(pred, gt, valid)["mean"] == pytest.approx(5.0)
    # curve (0, 1) on thresholds (0, 6): trapezoid 3 over a span of 6
    assert M.pck3d(pred, gt, valid, thresholds_mm=[0, 6]).auc == pytest.approx(0.5)
    assert M.pck3d(pred, gt, valid, thresholds_mm=[0, 4, 6]).auc == pytest.approx(1 / 6)
    assert np.isnan(M.epe3d(pred, gt, np.zeros((3, 21), bool))["mean"])
    assert M.mpjpe(pred, gt, valid) == pytest.approx(5.0)


def test_pooled_vs_per_keypoint():
    gt = np.zeros((4, 2, 3))
    pred = np.zeros((4, 2, 3))
    pred[:, 0, 0] = 1 * MM
    pred[:, 1, 0] = 10 * MM
    valid = np.array([[True, True], [True, False], [True, False], [True, False]])
    assert M.epe3d(pred, gt, valid)["mean"] == pytest.approx(5.5)
    assert M.epe3d(pred, gt, valid, reduction="pooled")["mean"] == pytest.approx(14 / 5)


def test_epe2d_pixels():
    gt = np.zeros((2, 21, 2))
    pred = gt + np.array([3.0, 4.0])
    assert M.epe2d(pred, gt) == {"mean": 5.0, "median": 5.0}


def test_pa_mpjpe_and_mpvpe():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(4, 778, 3)) * 0.05
    pred = 1.2 * gt @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]).T + 0.3
    assert M.pa_mpvpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.mpvpe(pred, gt) > 100
    noisy = gt + rng.normal(scale=0.005, size=gt.shape)
    assert M.pa_mpjpe(noisy, gt) <= M.mpjpe(noisy, gt)


def test_f_score_hand_built():
    grid = np.stack(np.meshgrid(*[np.arange(4) * 0.05] * 3, indexing="ij"), -1).reshape(1, -1, 3)
    shift = grid + np.array([0.010, 0.0, 0.0])
    f5 = M.f_score(shift, grid, 0.005)
    f15 = M.f_score(shift, grid, 0.015)
    assert f5["f"][0] == 0.0 and f15["f"][0] == 1.0
    half = grid.copy()
    half[:, ::2] += np.array([0.010, 0.0, 0.0])
    half[:, 1::2] += np.array([0.001, 0.0, 0.0])
    r = M.f_score(half, grid, 0.005)
    assert r["precision"][0] == 0.5 and r["recall"][0] == 0.5 and r["f"][0] == 0.5
    fewer = M.f_score(grid[:, :10], grid, 0.001)  # point sets of different sizes
    assert fewer["precision"][0] == 1.0 and fewer["recall"][0] == pytest.approx(10 / 64)


def test_temporal_metrics():
    t = np.arange(8, dtype=float)
    base = np.random.default_rng(4).normal(size=(1, 21, 3)) * 0.05
    a = 2.0 * MM  # 2 mm/frame^2 along x
    quad = base + (0.5 * a * t**2)[:, None, None] * np.array([1.0, 0, 0])
    static = np.repeat(base, 8, 0)
    assert M.acceleration_error(quad, static) == pytest.approx(2.0)
    assert M.acceleration(quad) == pytest.approx(2.0)
    linear = base + (t * 3 * MM)[:, None, None] * np.array([0, 1.0, 0])
    assert M.acceleration_error(linear, static) == pytest.approx(0.0, abs=1e-9)
    cubic = base + (t**3 / 6 * MM)[:, None, None] * np.array([0, 0, 1.0])  # jerk 1 mm/frame^3
    assert M.jitter(cubic) == pytest.approx(1.0)
    assert M.jitter(quad) == pytest.approx(0.0, abs=1e-9)
    valid = np.ones((8, 21), dtype=bool)
    valid[3] = False  # removes the stencils touching frame 3
    bumped = quad.copy()
    bumped[3] += 1.0
    assert M.acceleration_error(bumped, static, valid) == pytest.approx(2.0)


def test_param_change():
    p = np.array([[0.0, 0.0], [1.0, -1.0], [1.0, 1.0]])
    assert M.param_change(p) == pytest.approx((1 + 1 + 0 + 2) / 4)
    assert M.param_change(p, kind="sq_l2") == pytest.approx((2 + 4) / 2)
    assert np.isnan(M.param_change(p[:1]))


# --------------------------------------------------------------------------------------------
# MetricAccumulator
# --------------------------------------------------------------------------------------------
def _sequence_data(rng, n=12):
    gt = rng.normal(size=(n, 21, 3)) * 0.05 + np.array([0, 0, 0.5])
    pred = gt + rng.normal(scale=0.01, size=gt.shape)
    valid = rng.random((n, 21)) > 0.1
    seq = ["a"] * (n // 2) + ["b"] * (n - n // 2)
    frames = list(range(n // 2)) + list(range(n - n // 2))
    return pred, gt, valid, seq, frames


def test_accumulator_matches_functions_and_chunking():
    rng = np.random.default_rng(5)
    pred, gt, valid, seq, frames = _sequence_data(rng)
    params = {"betas": rng.normal(size=(12, 10))}
    one = MetricAccumulator(pck_protocols=("paper", "freihand"))
    one.process(pred, gt, valid, sequence_ids=seq, frame_indices=frames, pred_params=params)
    res = one.evaluate()
    assert res["epe3d_mean_mm"] == pytest.approx(M.epe3d(pred, gt, valid)["mean"])
    assert res["auc"] == pytest.approx(M.pck3d(pred, gt, valid, protocol="paper").auc)
    assert res["pck"]["freihand"]["auc"] == pytest.approx(
        M.pck3d(pred, gt, valid, protocol="freihand").auc
    )
    assert res["pa_mpjpe_mm"] == pytest.approx(M.pa_mpjpe(pred, gt, valid))
    rel = [(M.root_relative(pred[s]), M.root_relative(gt[s]), valid[s] & valid[s][:, :1])
           for s in (slice(0, 6), slice(6, 12))]  # fmt: skip
    expect_acc = np.nanmean([M.acceleration_error(p, g, v) for p, g, v in rel])
    assert res["accel_error_mm_per_frame2"] == pytest.approx(expect_acc)
    expect_beta = np.mean([M.param_change(params["betas"][s]) for s in (slice(0, 6), slice(6, 12))])
    assert res["param_change"]["betas"]["mean_abs"] == pytest.approx(expect_beta)
    json.dumps(res)
    # shuffled, in chunks: same numbers
    order = rng.permutation(12)
    chunked = MetricAccumulator(pck_protocols=("paper", "freihand"))
    for part in np.array_split(order, 3):
        chunked.process(
            pred[part],
            gt[part],
            valid[part],
            sequence_ids=[seq[i] for i in part],
            frame_indices=[frames[i] for i in part],
            pred_params={"betas": params["betas"][part]},
        )
    res2 = chunked.evaluate()
    for k in (
        "epe3d_mean_mm",
        "auc",
        "pa_mpjpe_mm",
        "accel_error_mm_per_frame2",
        "jitter_mm_per_frame3",
    ):
        assert res2[k] == pytest.approx(res[k])
    assert res2["param_change"]["betas"] == pytest.approx(res["param_change"]["betas"])
    rows = chunked.per_frame()
    assert len(rows) == 12 and {"sequence_id", "frame_index", "epe3d_mm"} <= set(rows[0])
    chunked.reset()
    assert chunked.evaluate() == {"num_frames": 0}


def test_accumulator_alignment_and_gaps():
    rng = np.random.default_rng(6)
    gt = rng.normal(size=(5, 21, 3)) * 0.05
    pred = 1.3 * (gt - gt[:, :1]) + np.array([0.1, 0.2, 0.3])  # right shape, wrong scale/place
    acc = MetricAccumulator(alignment="root_scale")
    acc.process(pred, gt, sequence_ids=["s"] * 5, frame_indices=[0, 1, 2, 10, 11])
    res = acc.evaluate()
    assert res["epe3d_mean_mm"] == pytest.approx(0.0, abs=1e-9)
    # frames 0-2 form the only run of 3 consecutive frames; 10-11 are too short
    rel = gt[:3] - gt[:3, :1]  # temporal metrics: root-relative, not aligned (VIBE)
    assert res["accel_error_mm_per_frame2"] == pytest.approx(
        M.acceleration_error(1.3 * rel, rel), abs=1e-9
    )
    assert res["jitter_mm_per_frame3"] is None
    with pytest.raises(ValueError):
        MetricAccumulator(alignment="wobble")


def test_accumulator_meshes_and_2d():
    rng = np.random.default_rng(7)
    gt = rng.normal(size=(2, 21, 3)) * 0.05
    verts = rng.normal(size=(2, 778, 3)) * 0.05
    acc = MetricAccumulator()
    acc.process(
        gt,
        gt,
        pred_verts=verts + 0.01 * np.array([1.0, 0, 0]),
        gt_verts=verts,
        pred_joints2d=np.zeros((2, 21, 2)),
        gt_joints2d=np.full((2, 21, 2), [3.0, 4.0]),
    )
    res = acc.evaluate()
    assert res["mpvpe_mm"] == pytest.approx(10.0)
    assert res["pa_mpvpe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert res["pa_f@5mm"] == pytest.approx(1.0) and res["epe2d_mean_px"] == pytest.approx(5.0)


# --------------------------------------------------------------------------------------------
# Plots and the paper's numbers
# --------------------------------------------------------------------------------------------
def test_paper_numbers_and_plot(tmp_path):
    assert paper_results("egodexter")["auc"] == 0.766
    assert paper_results("dexter_object")["mean_error_mm"] == 18.12
    assert paper_results("stb")["table4"][1]["mean_error_mm"] == 9.76
    assert len(PAPER_TABLE3) == 5
    t = M.pck_thresholds("paper")
    out = plot_pck(
        [("ours", t, np.linspace(0.6, 0.95, len(t)))], tmp_path / "pck.png", dataset="stb"
    )
    assert out.stat().st_size > 10_000
    from PIL import Image

    assert Image.open(out).size == (864, 552)
    with pytest.raises(ValueError):
        paper_results("freihand")


def test_curve_from_accumulator_output(tmp_path):
    gt = np.random.default_rng(8).normal(size=(4, 21, 3)) * 0.05
    acc = MetricAccumulator(pck_protocols=("0-50", "paper"))
    acc.process(gt + 0.012, gt)
    res = acc.evaluate()
    label, t, y = curve_from_metrics(res, "toy")
    np.testing.assert_allclose(t, M.pck_thresholds("0-50"))
    np.testing.assert_array_equal(y, (t >= np.sqrt(3) * 12).astype(float))
    assert curve_from_metrics(res, "toy", "paper")[1].tolist() == [20, 25, 30, 35, 40, 45, 50]
    assert plot_pck([(label, t, y)], tmp_path / "c.png").is_file()


def test_2d_auc_over_pixel_thresholds():
    """2D PCK/AUC over 0-20 crop pixels (hand3d's AUC definition, here in pixels): a 2D
    prediction 5.5 px off on every joint is correct from the 6 px threshold on."""
    from seqhand.evaluation.accumulator import PCK2D_THRESHOLDS_PX, MetricAccumulator

    rng = np.random.default_rng(0)
    gt3 = rng.normal(size=(4, 21, 3)) * 0.05
    gt2 = rng.uniform(10, 90, size=(4, 21, 2))
    acc = MetricAccumulator(alignment="root")
    acc.process(gt3, gt3, np.ones((4, 21), bool), sequence_ids=[0] * 4, frame_indices=[0, 1, 2, 3],
                pred_joints2d=gt2 + np.array([3.3, 4.4]), gt_joints2d=gt2)  # fmt: skip
    m = acc.evaluate()
    t = PCK2D_THRESHOLDS_PX
    want_curve = (t >= 5.5).astype(float)
    np.testing.assert_allclose(m["pck2d"]["curve"], want_curve)
    np.testing.assert_allclose(m["auc2d"], np.trapezoid(want_curve, t) / (t[-1] - t[0]))
