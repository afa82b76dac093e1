"""Hands on rendered videos: presence (found=false as the hand leaves), handedness decided
over time, two hands crossing keep their ids. Oracle models; nothing depends on a network's
accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from infer_fixtures import SceneOracle, background, full_params, hand_layer, render_scene
from seqhand.geometry.crop import Box
from seqhand.inference import Predictor, Tracker
from seqhand.inference.hands import HandsPredictor, iou

S, H, W, T = 96, 240, 320, 24


def oracle_predictor(hands, **kw):
    eng = SceneOracle(hands, S)
    pred = Predictor(eng, hand_layer(), image_size=S, **kw)
    eng.predictor = pred
    return pred


def true_boxes(scene, i):
    return {k: Box(*b) for k, b in enumerate(scene["boxes"][i]) if np.isfinite(b).all()}


@pytest.mark.parametrize("bg", [0, 3, 6])
@pytest.mark.parametrize("how", ["vanishes", "walks_out"])
def test_hand_leaving_is_not_found_within_one_frame(bg, how):
    if how == "vanishes":  # moves, then is gone from one frame to the next (a cut, occlusion)
        p = full_params(T, 700.0, (100, 130), (240, 110), seed=bg)
        p[16:] = np.nan
    else:  # walks out of the right border
        p = full_params(T, 700.0, (150, 120), (520, 120), seed=bg)
    scene = render_scene([p], H, W, bg=background(H, W, bg))
    gone = ~np.isfinite(scene["boxes"][0]).all(1)
    first_gone = int(np.argmax(gone))
    assert gone[first_gone] and not gone[:first_gone].any()
    # The oracle sees the true hand while it is there; on background it "sees" a hand in the
    # middle of the crop, as a network does.
    pred = oracle_predictor([p], box_source=Tracker(Box(*scene["boxes"][0][0])))
    outs = list(pred.run(scene["frames"]))
    found = np.array([o.found for o in outs])
    conf = np.array([o.confidence for o in outs])
    assert np.isfinite(conf).all() and (conf[~found] == 0).all()
    assert not found[first_gone:].any()  # not found from the first frame without the hand
    inside = np.array(
        [np.isfinite(b).all() and b[2] < W - 2 and b[0] > 1 for b in scene["boxes"][0]]
    )
    assert found[inside].all()  # ... and found while the hand is wholly in the frame
    assert (conf[found] >= 0.2).all()
    if how == "vanishes":  # the check does the work: without it the track outlives the hand
        pred0 = oracle_predictor([p], box_source=Tracker(Box(*scene["boxes"][0][0])),
                                 min_confidence=0.0)  # fmt: skip
        assert [o.found for o in pred0.run(scene["frames"])][first_gone]


def test_tracked_frames_are_dropped_and_redetected_in_the_same_frame():
    p = full_params(T, 700.0, (100, 130), (240, 110), seed=3)
    p[16:] = np.nan
    scene = render_scene([p], H, W, bg=background(H, W, 3))
    boxes = true_boxes(scene, 0)
    asked = []

    def detect(k, frame):
        asked.append(k)
        return [boxes[k]] if k in boxes else []

    hp = HandsPredictor(oracle_predictor([p]), detect, redetect=0)
    outs = list(hp.run(scene["frames"]))
    assert [len(o) for o in outs[:17]] == [1] * 17 and all(len(o) == 0 for o in outs[17:])
    assert [o[0].found for o in outs[:17]] == [True] * 16 + [False]
    assert asked[:2] == [0, 16]  # tracked in between; asked again when the check failed


def _flip_video(seed=1):
    p = full_params(T, 700.0, (110, 120), (200, 125), seed=seed)
    scene = render_scene([p], H, W, bg=background(H, W, 2))
    return p, scene, true_boxes(scene, 0)


@pytest.mark.parametrize("flips", [[5], [8, 9], [12, 13, 14]])
def test_handedness_flip_of_1_to_3_frames_changes_nothing(flips):
    p, scene, boxes = _flip_video()

    def detect(k, frame):
        side = "left" if k in flips else "right"
        return [Box(*boxes[k].as_array(), side=side, score=0.9)]

    hp = HandsPredictor(oracle_predictor([p]), detect, redetect=1)
    sides = [o[0].side for o in hp.run(scene["frames"])]
    assert sides == ["right"] * T
    # per-frame trust in the detector would have followed the flip
    assert [o.side for o in oracle_predictor([p], box_source=lambda k, f, prev: detect(k, f)[0])
            .run(scene["frames"])].count("left") == len(flips)  # fmt: skip


def test_handedness_flips_after_four_frames_and_side_forces_it():
    p, scene, boxes = _flip_video()

    def detect(k, frame):
        return [Box(*boxes[k].as_array(), side="left" if k >= 10 else "right", score=0.9)]

    outs = list(HandsPredictor(oracle_predictor([p]), detect, redetect=1).run(scene["frames"]))
    sides = [o[0].side for o in outs]
    assert sides == ["right"] * 13 + ["left"] * (T - 13)
    assert outs[13][0].reset and all(len(o) == 1 and o[0].track_id == 0 for o in outs)
    forced = HandsPredictor(oracle_predictor([p]), detect, redetect=1, side="right")
    assert {o[0].side for o in forced.run(scene["frames"])} == {"right"}


@pytest.mark.parametrize("redetect", [1, 4])
@pytest.mark.parametrize("with_sides", [True, False])
def test_two_hands_crossing_keep_their_ids(redetect, with_sides):
    a = full_params(T, 650.0, (60, 110), (270, 135), seed=1)
    b = full_params(T, 650.0, (270, 140), (60, 115), seed=2, rot=(0.2, -0.3, 2.6))
    scene = render_scene([a, b], H, W, bg=background(H, W, 4),
                         colors=[(0.85, 0.65, 0.55), (0.75, 0.55, 0.45)])  # fmt: skip
    truth = [true_boxes(scene, 0), true_boxes(scene, 1)]
    crossed = [k for k in range(T) if iou(truth[0][k], truth[1][k]) > 0.3]
    assert crossed, "the hands must overlap on the way"

    def detect(k, frame):  # both hands, in an order that says nothing
        sides = ("right", "left") if with_sides else (None, None)
        d = [Box(*truth[i][k].as_array(), side=sides[i], score=0.9) for i in (0, 1)]
        return d[::-1] if k % 2 else d

    hp = HandsPredictor(oracle_predictor([a, b]), detect, redetect=redetect, max_hands=2)
    outs = list(hp.run(scene["frames"]))
    for k, frame_outs in enumerate(outs):
        by_id = {o.track_id: o for o in frame_outs if o.found}
        assert set(by_id) == {0, 1}, (k, sorted(by_id))
        for i in (0, 1):  # id 0 stays on hand A, id 1 on hand B, through the crossing
            mine = iou(by_id[i].box, truth[i][k])
            other = iou(by_id[i].box, truth[1 - i][k])
            assert mine > max(other, 0.3), (k, i, mine, other)
    one = HandsPredictor(oracle_predictor([a, b]), detect, redetect=redetect, max_hands=1)
    assert all(len(o) == 1 and o[0].track_id == 0 for o in one.run(scene["frames"]))
