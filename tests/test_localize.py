"""Hand localisation: box files, the tracker and its lost-track rule, the MediaPipe adapter."""

from __future__ import annotations

import json
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from seqhand.errors import MissingExtraError, SeqhandError
from seqhand.geometry.crop import Box, BoxError
from seqhand.inference.localize import (
    JOINT_BOX_EXPAND,
    BoxFileError,
    BoxSource,
    FirstOf,
    FixedSide,
    GivenBoxes,
    MediaPipeDetector,
    Tracker,
    box_is_usable,
    read_boxes,
    write_boxes,
)

FRAME = np.zeros((240, 320, 3), np.uint8)


def prev(joints2d, box, found=True, confidence=None):
    return SimpleNamespace(found=found, box=box, joints2d=joints2d, confidence=confidence)


def hand_joints(cx: float, cy: float, size: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    j = rng.uniform(-0.5, 0.5, size=(21, 2)) * size
    j[0] = [-0.5 * size, -0.5 * size]
    j[1] = [0.5 * size, 0.5 * size]  # tight box = exactly size x size
    return j + [cx, cy]


# -- box files -----------------------------------------------------------------------------------
def test_csv_boxes(tmp_path):
    p = tmp_path / "boxes.csv"
    p.write_text(
        "frame,x0,y0,x1,y1,side\n# a comment\n0,10,20,50,80,left\n1, 11.5,21,51,81,\n3,,,,,\n"
    )
    b = read_boxes(p)
    assert b[0] == Box(10, 20, 50, 80, side="left")
    assert b[1] == Box(11.5, 21, 51, 81)
    assert b[3] is None and 2 not in b


def test_csv_without_header_or_side(tmp_path):
    p = tmp_path / "b.txt"
    p.write_text("5,1,2,3,4\n")
    assert read_boxes(p) == {5: Box(1, 2, 3, 4)}


def test_json_boxes_both_layouts(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps([
        {"frame": 0, "box": [1, 2, 30, 40], "side": "right", "score": 0.9},
        {"frame": 2, "box": None},
    ]))  # fmt: skip
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"0": [1, 2, 30, 40], "2": None}))
    ra, rb = read_boxes(a), read_boxes(b)
    assert ra[0] == Box(1, 2, 30, 40, side="right", score=0.9)
    assert rb[0] == Box(1, 2, 30, 40)
    assert ra[2] is None and rb[2] is None


def test_write_then_read_round_trip(tmp_path):
    boxes = {0: Box(1.25, 2.5, 30.125, 40.0, side="left"), 1: None, 4: Box(0, 0, 1e-3, 7)}
    assert read_boxes(write_boxes(tmp_path / "r.csv", boxes)) == boxes


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("a.csv", "0,1,2,3\n", "line 1: expected 'frame,x0,y0,x1,y1"),
        ("a.csv", "0,1,2,3,4,up\n", "line 1: side must be"),
        ("a.csv", "0,1,2,3,4\n0,1,2,3,4\n", "line 2: frame 0 is given twice"),
        ("a.csv", "0.5,1,2,3,4\n", "frame must be an integer"),
        ("a.csv", "0,5,2,3,4\n", "x0 <= x1"),
        ("a.csv", "0,a,2,3,4\n", "4 numbers"),
        ("a.json", "{", "not valid JSON"),
        ("a.json", '[{"box": [1, 2, 3, 4]}]', "record 0"),
        ("a.json", '{"0": [1, 2, 3]}', "4 numbers"),
        ("a.yaml", "", "unknown boxes file type"),
    ],
)
def test_bad_box_files_say_what_and_where(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BoxFileError, match=match) as e:
        read_boxes(p)
    assert str(p) in str(e.value)


def test_missing_box_file(tmp_path):
    with pytest.raises(BoxFileError, match="no such boxes file"):
        read_boxes(tmp_path / "nope.csv")


def test_given_boxes_and_first_of():
    g = GivenBoxes({0: Box(0, 0, 10, 10)})
    assert isinstance(g, BoxSource)
    assert g(0, FRAME, None) == Box(0, 0, 10, 10)
    assert g(1, FRAME, None) is None
    other = GivenBoxes({1: Box(5, 5, 9, 9)})
    f = FirstOf(g, other)
    assert f(0, FRAME, None) == Box(0, 0, 10, 10)
    assert f(1, FRAME, None) == Box(5, 5, 9, 9)
    assert f(2, FRAME, None) is None


# -- tracking ------------------------------------------------------------------------------------
def test_tracker_starts_from_the_given_box_then_follows_the_joints():
    start = Box(100, 100, 140, 140, side="left")
    tr = Tracker(start, smoothing=0.25)
    assert tr(0, FRAME, None) == start
    j = hand_joints(130.0, 110.0, 40.0)
    b = tr(1, FRAME, prev(j, start))
    # naive expectation: blend the previous box with the joints' tight box grown by `expand`
    side = 40.0 * JOINT_BOX_EXPAND
    ecx, ecy = 0.25 * 120 + 0.75 * 130, 0.25 * 120 + 0.75 * 110
    ew = 0.25 * 40 + 0.75 * side
    assert b.center == pytest.approx((ecx, ecy))
    assert (b.width, b.height) == pytest.approx((ew, ew))
    assert b.side == "left"  # the side is carried along the track


def test_tracker_without_smoothing_is_the_grown_joint_box():
    tr = Tracker(None, smoothing=0.0, expand=1.0)
    j = hand_joints(50.0, 60.0, 30.0)
    b = tr(3, FRAME, prev(j, Box(35, 45, 65, 75)))
    assert b.as_array() == pytest.approx(Box.from_points(j).as_array())


@pytest.mark.parametrize(
    "joints, box, found, conf",
    [
        (hand_joints(100, 100, 4.0), Box(98, 98, 102, 102), True, None),  # collapsed
        (hand_joints(400, 100, 30.0), Box(385, 85, 415, 115), True, None),  # outside the image
        (hand_joints(100, 100, 100.0), Box(90, 90, 110, 110), True, None),  # 5x bigger: a jump
        (hand_joints(100, 100, 30.0), Box(85, 85, 115, 115), False, None),  # no hand last frame
        (hand_joints(100, 100, 30.0), Box(85, 85, 115, 115), True, 0.1),  # low confidence
    ],
)
def test_lost_track_falls_back_to_the_start_source(joints, box, found, conf):
    fallback = Box(1, 1, 20, 20)
    tr = Tracker(GivenBoxes({7: fallback}), min_confidence=0.5)
    assert tr.track(FRAME, prev(joints, box, found, conf)) is None
    assert tr(7, FRAME, prev(joints, box, found, conf)) == fallback
    assert tr(8, FRAME, prev(joints, box, found, conf)) is None


def test_refresh_prefers_the_start_source():
    j = hand_joints(100, 100, 30.0)
    last = Box(85, 85, 115, 115)
    given = GivenBoxes({1: Box(0, 0, 10, 10)})
    tr = Tracker(given, refresh=True)
    assert tr(1, FRAME, prev(j, last)) == Box(0, 0, 10, 10)
    assert tr(2, FRAME, prev(j, last)) is not None  # no user box: tracked


def test_periodic_refresh_pulls_a_drifting_track_back():
    j = hand_joints(100, 100, 30.0)  # the model's joints: the track would stay here
    last = Box(85, 85, 115, 115)
    asked = []

    def detector(index, frame, previous):
        asked.append(index)
        return Box(200, 40, 240, 80, side="left")  # the hand is really here

    tr = Tracker(detector, refresh=3)
    boxes = {k: tr(k, FRAME, prev(j, last)) for k in range(1, 8)}
    assert asked == [3, 6]  # every 3rd frame only, while the track holds
    assert boxes[3] == boxes[6] == Box(200, 40, 240, 80, side="left")
    assert boxes[4].center == pytest.approx((100, 100), abs=15)  # tracked in between
    # a lost track still asks the detector at once, whatever the period
    assert tr(5, FRAME, prev(j, last, found=False)) is not None and asked[-1] == 5
    with pytest.raises(ValueError, match="refresh"):
        Tracker(detector, refresh=-1)


def test_fixed_side_overrides_the_sources_side():
    src = GivenBoxes({0: Box(0, 0, 10, 10, side="left"), 1: Box(0, 0, 10, 10)})
    fixed = FixedSide(src, "right")
    assert fixed(0, FRAME, None).side == "right" and fixed(1, FRAME, None).side == "right"
    assert fixed(2, FRAME, None) is None
    with pytest.raises(BoxError):
        FixedSide(src, "both")


def test_box_is_usable():
    assert box_is_usable(Box(10, 10, 30, 30), FRAME.shape)
    assert not box_is_usable(None, FRAME.shape)
    assert not box_is_usable(Box(10, 10, 11, 11), FRAME.shape)  # smaller than 2 px
    assert not box_is_usable(Box(400, 10, 430, 30), FRAME.shape)  # right of the frame


# -- MediaPipe -----------------------------------------------------------------------------------
def test_mediapipe_absent_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"seqhand\[detector\]"):
        MediaPipeDetector()


def _fake_mediapipe(monkeypatch, with_solutions: bool):
    """A stand-in ``mediapipe`` module: the adapter's conversions are ours to test."""
    mp = types.ModuleType("mediapipe")
    mp.__version__ = "0.10.fake"
    calls = {}
    if with_solutions:

        class Hands:
            def __init__(self, **kw):
                calls["kw"] = kw

            def process(self, img):
                calls["shape"] = img.shape
                pts = [SimpleNamespace(x=x, y=y) for x, y in [(0.25, 0.5), (0.5, 0.75)] * 11]
                weak = [SimpleNamespace(x=0.9, y=0.9)] * 21
                cls = [SimpleNamespace(label="Right", score=0.3)]
                cls2 = [SimpleNamespace(label="Left", score=0.95)]
                return SimpleNamespace(
                    multi_hand_landmarks=[SimpleNamespace(landmark=weak),
                                          SimpleNamespace(landmark=pts)],
                    multi_handedness=[SimpleNamespace(classification=cls),
                                      SimpleNamespace(classification=cls2)],
                )  # fmt: skip

        mp.solutions = SimpleNamespace(hands=SimpleNamespace(Hands=Hands))
    monkeypatch.setitem(sys.modules, "mediapipe", mp)
    return calls


def test_mediapipe_adapter_boxes_sides_and_order(monkeypatch):
    calls = _fake_mediapipe(monkeypatch, with_solutions=True)
    det = MediaPipeDetector(min_confidence=0.4)
    assert calls["kw"]["min_detection_confidence"] == 0.4
    frame = np.zeros((200, 400, 3), np.uint8)
    b = det(0, frame, None)
    # most confident hand; landmarks (normalised to the image's edges) -> pixel centres
    tight = Box(0.25 * 400 - 0.5, 0.5 * 200 - 0.5, 0.5 * 400 - 0.5, 0.75 * 200 - 0.5)
    assert b.as_array() == pytest.approx(tight.scaled(JOINT_BOX_EXPAND).as_array())
    assert b.score == pytest.approx(0.95)
    assert b.side == "right"  # MediaPipe's "Left" assumes a mirrored image: swapped
    assert MediaPipeDetector(mirrored_input=True)(0, frame, None).side == "left"
    assert len(det.detect(frame)) == 2


def test_mediapipe_without_bundled_model_needs_a_model_file(monkeypatch):
    _fake_mediapipe(monkeypatch, with_solutions=False)
    with pytest.raises(SeqhandError, match="hand_landmarker.task"):
        MediaPipeDetector()
