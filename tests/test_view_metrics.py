"""Rotation error and size ratio (seqhand.evaluation.view) against their definitions."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from seqhand.evaluation.view import ViewMetrics, image_size_px, rotation_errors_deg


def test_rotation_error_is_the_geodesic_angle():
    a, b = Rotation.random(200, random_state=0), Rotation.random(200, random_state=1)
    want = np.degrees((a.inv() * b).magnitude())  # scipy: the angle of a^-1 b
    np.testing.assert_allclose(rotation_errors_deg(a.as_rotvec(), b.as_rotvec()), want, atol=1e-6)
    # across the axis-angle wrap-around: 179 deg and -179 deg about one axis are 2 deg apart
    axis = np.array([0.0, 0.0, 1.0])
    e = rotation_errors_deg(np.radians(179) * axis[None], np.radians(-179) * axis[None])
    np.testing.assert_allclose(e, [2.0], atol=1e-6)


def test_size_ratio_and_summary():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(40, 21, 2)) * 10 + 48
    pred = (gt - gt.mean(1, keepdims=True)) * 0.8 + gt.mean(1, keepdims=True) + 3.0  # 80 %, moved
    rms = np.sqrt(((gt - gt.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1))
    np.testing.assert_allclose(image_size_px(gt), rms)
    rot = Rotation.random(40, random_state=2).as_rotvec()
    off = (Rotation.from_rotvec(rot) * Rotation.from_rotvec([0.0, np.radians(10), 0.0])).as_rotvec()
    vm = ViewMetrics()
    vm.process(off, rot, pred, gt)
    m = vm.evaluate()
    np.testing.assert_allclose(m["size_ratio_median"], 0.8, rtol=1e-9)
    np.testing.assert_allclose(m["rot_err_median_deg"], 10.0, atol=1e-6)
    assert sum(b["frames"] for b in m["rot_err_by_true_angle"].values()) == 40
    assert m["rot_err_over_90_frac"] == 0.0


def _frontal_hand() -> np.ndarray:
    """21 camera-frame joints of a right hand, palm to the camera (which looks along +z, y down):
    fingers up (-y), the index finger on the viewer's right (+x). Only the wrist (0), index (5),
    middle (9) and pinky (17) MCPs matter for the view; the others sit on the wrist."""
    j = np.zeros((21, 3))
    j[5], j[9], j[17] = [0.02, -0.08, 0.0], [0.0, -0.09, 0.0], [-0.03, -0.07, 0.0]
    return j


def test_view_and_foreshortening_follow_their_definitions():
    hand = _frontal_hand()
    # turning the hand about the vertical (image y) axis by phi turns the palm away by phi;
    # tilting it about the horizontal (image x) axis by psi moves its long axis psi out of plane
    phi = np.array([0.0, 20.0, 45.0, 90.0, 135.0, 170.0])
    psi = np.array([0.0, 10.0, 30.0, 60.0, 80.0, 5.0])
    r = Rotation.from_euler("y", phi[:, None], degrees=True) * Rotation.from_euler(
        "x", psi[:, None], degrees=True
    )
    joints = np.stack([ri.apply(hand) for ri in r])
    # the expected view: angle between the rotated normal (start: -z, towards the camera) and -z
    normal = r.apply(np.tile([0.0, 0.0, -1.0], (len(phi), 1)))
    want_view = np.degrees(np.arccos(-normal[:, 2]))
    want_fore = np.degrees(
        np.arcsin(np.abs(r.apply(np.tile([0.0, -1.0, 0.0], (len(phi), 1)))[:, 2]))
    )
    err = np.arange(len(phi), dtype=float) * 10.0
    vm = ViewMetrics()
    vm.process(r.as_rotvec(), r.as_rotvec(), None, None, gt3d=joints, err3d_mm=err)
    v = np.concatenate(vm.views)
    np.testing.assert_allclose(v[:, 0], want_view, atol=1e-6)
    np.testing.assert_allclose(v[:, 1], want_fore, atol=1e-6)
    # and in the pure cases, the angles themselves: a turn about y is the view, a tilt about x
    # the foreshortening
    for axis, col, angles in (("y", 0, phi), ("x", 1, psi)):
        rr = Rotation.from_euler(axis, angles[:, None], degrees=True)
        pure = ViewMetrics()
        pure.process(None, None, None, None, gt3d=np.stack([ri.apply(hand) for ri in rr]),
                     err3d_mm=err)  # fmt: skip
        np.testing.assert_allclose(np.concatenate(pure.views)[:, col], angles, atol=1e-6)
    m = vm.evaluate()
    bins = m["by_view"]
    assert sum(b["frames"] for b in bins.values()) == len(phi)
    in_first = want_view < 30
    np.testing.assert_allclose(bins["0-30"]["epe3d_mm"], err[in_first].mean())
    assert m["large_rot_err_axis"]["frames"] == 0  # prediction = truth


def test_large_rotation_errors_are_assigned_to_the_hand_axis_they_turn_about():
    hand = _frontal_hand()
    r = Rotation.from_euler("xyz", [[10, 50, -20], [60, -30, 5], [-40, 120, 70]], degrees=True)
    joints = np.stack([ri.apply(hand) for ri in r])
    # the hand's axes in the camera frame: long (wrist -> middle MCP), normal (out of the palm),
    # across = normal x long; an error of 100 deg about one of them, applied in the camera frame
    long_c = r.apply(np.tile([0.0, -1.0, 0.0], (3, 1)))
    normal_c = r.apply(np.tile([0.0, 0.0, -1.0], (3, 1)))
    across_c = np.cross(normal_c, long_c)
    shares = {}
    for name, ax in (("long", long_c), ("normal", normal_c), ("across", across_c)):
        pred = Rotation.from_rotvec(np.radians(100) * ax) * r
        vm = ViewMetrics()
        vm.process(pred.as_rotvec(), r.as_rotvec(), None, None, gt3d=joints, err3d_mm=np.ones(3))
        a = vm.evaluate()["large_rot_err_axis"]
        assert a["frames"] == 3
        shares[name] = a[name]
    assert shares == {"long": 1.0, "normal": 1.0, "across": 1.0}


def test_frames_without_an_error_fall_in_no_view_bin():
    hand = _frontal_hand()
    vm = ViewMetrics()
    vm.process(np.zeros((2, 3)), np.zeros((2, 3)), None, None,
               gt3d=np.stack([hand, hand]), err3d_mm=np.array([5.0, np.nan]))  # fmt: skip
    b = vm.evaluate()["by_view"]["0-30"]
    assert b["frames"] == 1 and b["share"] == 1.0 and b["epe3d_mm"] == 5.0
