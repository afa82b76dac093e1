"""The streaming predictor: equals the model on whole sequences, maps crops back exactly,
mirrors left hands in and out, resets where it should; temporal smoothness plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infer_fixtures import (
    FullFrameOracle,
    OracleEngine,
    RecordingSource,
    hand_layer,
    moving_offsets,
    paste,
    render_crops,
    sequence_params,
)
from seqhand.conventions import WRIST
from seqhand.geometry.crop import Box, CropTransform, full_frame_box
from seqhand.inference.localize import GivenBoxes, Tracker
from seqhand.inference.predictor import FrameOutput, Predictor, PredictorError, PredictorState
from seqhand.inference.smoothness import ground_truth_joints3d, temporal_smoothness
from seqhand.models import build_model, decode_params, normalize_frames

S = 64  # model input side for the fast tests
H, W = 150, 200


def lively(model, seed: int = 0):
    """Give the (near-zero) last layer real weights so outputs depend on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.out.weight.copy_(torch.randn(model.head.out.weight.shape, generator=g) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return lively(build_model("tiny"))


@pytest.fixture(scope="module")
def video():
    """A rendered hand sequence (crops) pasted into larger frames at moving positions."""
    t = 6
    params = sequence_params(t, S, seed=1)
    r = render_crops(params, S)
    off = moving_offsets(t, S, H, W)
    base = full_frame_box(S, S)
    boxes = [Box(base.x0 + x, base.y0 + y, base.x1 + x, base.y1 + y) for x, y in off]
    return {"params": params, "crops": r["frames"], "joints2d": r["joints2d"], "offsets": off,
            "frames": paste(r["frames"], H, W, off), "boxes": boxes}  # fmt: skip


def model_on_crops(model, crops: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(crops).permute(0, 3, 1, 2)[None].float() / 255.0
    with torch.no_grad():
        params, _ = model(normalize_frames(x))
    return params[0]


def test_streaming_equals_forward_on_the_whole_sequence(model, video):
    pred = Predictor(model, hand_layer(), image_size=S)
    outs = list(pred.run(video["crops"], boxes=[full_frame_box(S, S)] * 6))
    ref = model_on_crops(model, video["crops"])
    got = np.stack([o.params for o in outs])
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-4)
    assert [o.reset for o in outs] == [True] + [False] * 5


def test_pasted_video_maps_back_to_the_crop_predictions(model, video):
    """Frames pasted at moving positions, processed with the given boxes: the predicted 2D
    joints in the full frame are those of the model run on the crops, shifted by the paste."""
    pred = Predictor(model, hand_layer(), image_size=S, box_source=GivenBoxes(
        dict(enumerate(video["boxes"]))))  # fmt: skip
    outs = list(pred.run(video["frames"]))
    ref = decode_params(model_on_crops(model, video["crops"]), hand_layer())
    want = ref.joints2d.double().numpy() + video["offsets"][:, None, :]
    got = np.stack([o.joints2d for o in outs])
    np.testing.assert_allclose(got, want, atol=2e-3)
    np.testing.assert_allclose(
        np.stack([o.joints3d for o in outs]), ref.joints3d.double().numpy(), atol=1e-5
    )


def test_oracle_parameters_land_on_the_rendered_joints(video):
    """With the true parameters the full-frame joints are the rendered hand's exactly."""
    pred = Predictor(OracleEngine(video["params"]), hand_layer(), image_size=S)
    outs = list(pred.run(video["frames"], boxes=video["boxes"]))
    want = video["joints2d"] + video["offsets"][:, None, :]
    np.testing.assert_allclose(np.stack([o.joints2d for o in outs]), want, atol=1e-3)
    for o in outs:  # joints2d = scale * joints3d_xy + wrist (the documented camera)
        np.testing.assert_allclose(
            o.scale * o.joints3d[:, :2] + o.joints2d[WRIST], o.joints2d, atol=1e-3
        )


def test_left_hand_is_mirrored_in_and_out(video):
    """A left hand (the mirror image of the rendered right hand) is mirrored for the model and
    its prediction mirrored back: 2D joints land on the left hand, 3D has x negated."""
    left_frames = paste(video["crops"][:, :, ::-1], H, W, video["offsets"])
    boxes = [Box(b.x0, b.y0, b.x1, b.y1, side="left") for b in video["boxes"]]
    pred = Predictor(OracleEngine(video["params"]), hand_layer(), image_size=S)
    outs = list(pred.run(left_frames, boxes=boxes))
    mirrored = video["joints2d"].copy()
    mirrored[..., 0] = S - 1 - mirrored[..., 0]
    want = mirrored + video["offsets"][:, None, :]
    np.testing.assert_allclose(np.stack([o.joints2d for o in outs]), want, atol=1e-3)
    right = list(Predictor(OracleEngine(video["params"]), hand_layer(), image_size=S).run(
        video["frames"], boxes=video["boxes"]))  # fmt: skip
    for lo, ro in zip(outs, right):
        assert lo.side == "left" and lo.crop.mirror
        np.testing.assert_allclose(lo.joints3d, ro.joints3d * [-1, 1, 1], atol=1e-9)
        np.testing.assert_allclose(
            lo.scale * lo.joints3d[:, :2] + lo.joints2d[WRIST], lo.joints2d, atol=1e-3
        )


def test_left_hand_the_model_sees_is_the_right_hand(model, video):
    """The mirrored crop of a left hand is exactly the right hand's crop (same params)."""
    left_frames = paste(video["crops"][:, :, ::-1], H, W, video["offsets"])
    pl = Predictor(model, hand_layer(), image_size=S, side="left")
    pr = Predictor(model, hand_layer(), image_size=S)
    a = [o.params for o in pl.run(left_frames, boxes=video["boxes"])]
    b = [o.params for o in pr.run(video["frames"], boxes=video["boxes"])]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_per_frame_resets_the_state_every_frame(model, video):
    pred = Predictor(model, hand_layer(), image_size=S, per_frame=True)
    outs = list(pred.run(video["crops"], boxes=[full_frame_box(S, S)] * 6))
    x = normalize_frames(torch.from_numpy(video["crops"]).permute(0, 3, 1, 2).float() / 255.0)
    with torch.no_grad():
        alone = torch.cat([model.step(x[k : k + 1], None)[0] for k in range(6)])
    np.testing.assert_allclose(np.stack([o.params for o in outs]), alone.numpy(), atol=1e-4)
    assert all(o.reset for o in outs)
    streaming = list(Predictor(model, hand_layer(), image_size=S).run(
        video["crops"], boxes=[full_frame_box(S, S)] * 6))  # fmt: skip
    assert np.abs(streaming[-1].params - outs[-1].params).max() > 1e-4  # the state matters


def test_a_frame_without_a_hand_resets_the_sequence(model, video):
    boxes = list(video["boxes"])
    boxes[2] = None
    pred = Predictor(model, hand_layer(), image_size=S)
    outs = list(pred.run(video["frames"], boxes=boxes))
    assert [o.found for o in outs] == [True, True, False, True, True, True]
    assert outs[2].joints2d is None and outs[3].reset
    fresh = list(pred.run(video["frames"][3:], boxes=video["boxes"][3:]))
    np.testing.assert_allclose(outs[3].params, fresh[0].params, atol=1e-6)


def test_step_state_and_call_agree(model, video):
    pred = Predictor(model, hand_layer(), image_size=S)
    state = PredictorState()
    a = []
    for f, b in zip(video["frames"], video["boxes"]):
        o, state = pred.step(f, state, box=b)
        a.append(o.params)
    pred.reset()
    b = [pred(f, box=bx).params for f, bx in zip(video["frames"], video["boxes"])]
    np.testing.assert_allclose(a, b, atol=0)
    assert state.index == 6 and state.previous.index == 5


def test_tracker_follows_the_hand(video):
    """Started from the first box, the tracker keeps the crop on the moving hand: the box of
    frame k is the grown tight box of frame k-1's predicted joints."""
    full = video["params"].astype(np.float64).copy()
    full[:, 1:3] += video["offsets"]  # pasted at scale 1: only t moves
    want = video["joints2d"] + video["offsets"][:, None, :]
    first = Box.from_points(want[0]).scaled(1.12)
    rec = RecordingSource(Tracker(first, smoothing=0.0, expand=1.12))
    # the box geometry only: the presence check (tests/test_hands.py) is switched off
    pred = Predictor(FullFrameOracle(full, rec, S), hand_layer(), image_size=S, box_source=rec,
                     min_confidence=0.0)  # fmt: skip
    outs = list(pred.run(video["frames"]))
    assert all(o.found for o in outs)
    np.testing.assert_allclose(np.stack([o.joints2d for o in outs]), want, atol=1e-3)
    for k in range(1, 6):
        exp = Box.from_points(want[k - 1]).scaled(1.12)
        assert outs[k].box.as_array() == pytest.approx(exp.as_array(), abs=1e-3)


def test_crop_is_the_paper_crop(model, video):
    pred = Predictor(model, hand_layer(), image_size=S)
    o, _ = pred.step(video["frames"][0], box=video["boxes"][0])
    assert o.crop == CropTransform.from_box(video["boxes"][0], S)
    assert o.crop.side == pytest.approx(S)  # 2.2 x the longer box side


def test_bad_frames_are_refused(model):
    pred = Predictor(model, hand_layer(), image_size=S)
    with pytest.raises(PredictorError, match=r"\(H, W, 3\)"):
        pred.step(np.zeros((10, 10), np.uint8), box=Box(0, 0, 5, 5))
    with pytest.raises(PredictorError, match="side must be"):
        Predictor(model, hand_layer(), side="up")
    with pytest.raises(PredictorError, match="runtime"):
        Predictor(model, hand_layer(), runtime="tf")


def test_record_is_json_ready(model, video):
    import json

    pred = Predictor(model, hand_layer(), image_size=S)
    o, _ = pred.step(video["frames"][0], box=video["boxes"][0])
    rec = json.loads(json.dumps(o.to_record()))
    assert rec["found"] and len(rec["joints2d_px"]) == 21 and len(rec["params"]) == 26
    assert json.loads(json.dumps(FrameOutput(index=3, found=False).to_record()))["frame"] == 3


# -- temporal smoothness ---------------------------------------------------------------------------
def test_ground_truth_is_camera_aligned_and_wrist_relative():
    rng = np.random.default_rng(0)
    j = rng.normal(size=(3, 21, 3))
    rot = np.array([[0, 0, np.pi / 2]] * 3)
    gt = ground_truth_joints3d({"joints3d": j, "rot": rot})
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])  # 90 degrees about z
    want = j @ rz.T
    np.testing.assert_allclose(gt, want - want[:, :1], atol=1e-12)


def test_temporal_smoothness_compares_streaming_and_per_frame(model, video):
    seqs = [{"frames": video["crops"],
             "ann": {"joints3d": np.zeros((6, 21, 3)), "rot": np.zeros((6, 3))}}]  # fmt: skip
    pred = Predictor(model, hand_layer(), image_size=S)
    base = Predictor(lively(build_model("resnet50", backbone="resnet18", head_hidden=(32,))),
                     hand_layer(), image_size=S)  # fmt: skip
    res = temporal_smoothness(pred, seqs, baseline=base)
    assert res["sequences"] == 1 and res["frames"] == 6
    for k in ("streaming", "per_frame", "baseline"):
        assert set(res[k]) == {"jitter_mm", "acceleration_mm", "param_change",
                               "acceleration_error_mm", "mpjpe_mm"}  # fmt: skip
        assert np.isfinite(list(res[k].values())).all()
    assert res["streaming"]["jitter_mm"] != res["per_frame"]["jitter_mm"]
    assert pred.per_frame is False  # restored
    # a per-frame model gives the same numbers streaming or not
    res2 = temporal_smoothness(base, seqs)
    assert res2["streaming"] == pytest.approx(res2["per_frame"])


def test_no_box_and_no_box_source_is_an_error(model):
    pred = Predictor(model, hand_layer(), image_size=S)
    with pytest.raises(PredictorError, match="no box source"):
        pred(np.zeros((H, W, 3), np.uint8))
