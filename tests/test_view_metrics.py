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
