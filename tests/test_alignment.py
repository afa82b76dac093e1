"""Procrustes and the benchmark alignment modes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from seqhand.geometry.alignment import (
    ALIGNMENT_MODES,
    align,
    align_centroid_scale,
    align_root,
    align_root_scale,
    align_scale,
    alignment_transform,
    apply_similarity,
    procrustes,
)


def random_similarity(rng, b):
    s = rng.uniform(0.5, 2.0, size=b)
    r = Rotation.random(b, random_state=rng.integers(1 << 31)).as_matrix()
    t = rng.normal(size=(b, 3))
    return s, r, t


def freihand_align_w_scale(gt, pred):
    """FreiHAND eval.py's align_w_scale, re-derived: normalise, orthogonal_procrustes, undo."""
    t1, t2 = gt.mean(0), pred.mean(0)
    g, p = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(g), np.linalg.norm(p)
    g, p = g / s1, p / s2
    r, s = orthogonal_procrustes(g, p)
    return (p @ r.T) * s * s1 + t1


def test_procrustes_recovers_known_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 21, 3))
    s, r, t = random_similarity(rng, 8)
    gt = s[:, None, None] * np.einsum("bij,bnj->bni", r, x) + t[:, None]
    aligned, (s_, r_, t_) = procrustes(x, gt)
    np.testing.assert_allclose(aligned, gt, atol=1e-9)
    np.testing.assert_allclose(s_, s, atol=1e-9)
    np.testing.assert_allclose(r_, r, atol=1e-9)
    np.testing.assert_allclose(t_, t, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r_), 1.0, atol=1e-12)
    np.testing.assert_allclose(apply_similarity(x, s_, r_, t_), gt, atol=1e-9)


def test_procrustes_unbatched_and_2d():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 2))
    ang = 0.7
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    gt = 1.5 * x @ r.T + np.array([3.0, -1.0])
    aligned, (s, r_, t) = procrustes(x, gt)
    assert aligned.shape == (10, 2) and np.ndim(s) == 0
    np.testing.assert_allclose(aligned, gt, atol=1e-9)
    np.testing.assert_allclose(r_, r, atol=1e-9)


def test_reflection_handling():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 21, 3))
    mirrored = x * np.array([-1.0, 1.0, 1.0])  # an improper transform of x
    al, (_, r, _) = procrustes(x, mirrored)
    assert np.linalg.det(r[0]) > 0 and np.abs(al - mirrored).max() > 1e-3
    al2, (_, r2, _) = procrustes(x, mirrored, allow_reflection=True)
    assert np.linalg.det(r2[0]) < 0
    np.testing.assert_allclose(al2, mirrored, atol=1e-9)


def test_matches_freihand_reference_when_reflections_allowed():
    rng = np.random.default_rng(3)
    for _ in range(5):
        gt = rng.normal(size=(21, 3))
        pred = gt @ Rotation.random(random_state=rng.integers(1 << 31)).as_matrix().T * 1.3
        pred += rng.normal(scale=0.3, size=pred.shape)
        ref = freihand_align_w_scale(gt, pred)
        np.testing.assert_allclose(procrustes(pred, gt, allow_reflection=True)[0], ref, atol=1e-9)


def test_procrustes_is_optimal_against_perturbations():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(21, 3))
    gt = (
        x @ Rotation.random(random_state=5).as_matrix().T * 0.8
        + 0.1
        + rng.normal(scale=0.2, size=(21, 3))
    )
    al, (s, r, t) = procrustes(x, gt)
    best = ((al - gt) ** 2).sum()
    for _ in range(200):
        dr = Rotation.from_rotvec(rng.normal(scale=0.05, size=3)).as_matrix()
        cand = (
            (s * (1 + rng.normal(scale=0.05))) * x @ (dr @ r).T + t + rng.normal(scale=0.05, size=3)
        )
        assert ((cand - gt) ** 2).sum() >= best - 1e-12


def test_procrustes_mask_ignores_outliers():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 21, 3))
    s, r, t = random_similarity(rng, 2)
    gt = s[:, None, None] * np.einsum("bij,bnj->bni", r, x) + t[:, None]
    valid = np.ones((2, 21), dtype=bool)
    valid[:, :5] = False
    x_bad = x.copy()
    x_bad[:, :5] += 100.0
    al, (s_, r_, t_) = procrustes(x_bad, gt, valid)
    np.testing.assert_allclose(al[:, 5:], gt[:, 5:], atol=1e-9)
    np.testing.assert_allclose(s_, s, atol=1e-9)


def test_procrustes_degenerate():
    x = np.zeros((1, 5, 3))
    gt = np.ones((1, 5, 3))
    al, (s, r, t) = procrustes(x, gt)
    assert s[0] == 1.0 and np.allclose(r[0], np.eye(3))
    np.testing.assert_allclose(al, gt)


def test_root_and_root_scale():
    rng = np.random.default_rng(7)
    gt = rng.normal(size=(3, 21, 3))
    pred = 2.5 * gt + np.array([1.0, 2.0, 3.0])  # right shape, wrong scale and place
    np.testing.assert_allclose(align_root(pred, gt, root=0)[:, 0], gt[:, 0])
    al = align_root_scale(pred, gt, root=0, bone=(9, 10))
    np.testing.assert_allclose(al, gt, atol=1e-12)
    al9 = align_root_scale(pred, gt, root=9, bone=(0, 9))
    np.testing.assert_allclose(al9, gt, atol=1e-12)


def test_centroid_scale_matches_loop_reference():
    rng = np.random.default_rng(8)
    gt = rng.normal(size=(4, 21, 3))
    pred = rng.normal(size=(4, 21, 3))
    valid = rng.random((4, 21)) > 0.5
    out = align_centroid_scale(pred, gt, valid)
    for b in range(4):
        m = valid[b]
        cg, cp = gt[b][m].mean(0), pred[b][m].mean(0)
        s = (
            np.linalg.norm(gt[b][m] - cg, axis=1).mean()
            / np.linalg.norm(pred[b][m] - cp, axis=1).mean()
        )
        np.testing.assert_allclose(out[b], cg + s * (pred[b] - cp), atol=1e-12)


def test_scale_is_least_squares():
    rng = np.random.default_rng(9)
    gt = rng.normal(size=(1, 21, 3))
    pred = 0.7 * gt + rng.normal(scale=0.1, size=gt.shape)
    s = (align_scale(pred, gt) / pred)[0, 0, 0]
    grid = np.linspace(s - 0.1, s + 0.1, 2001)
    cost = [((g * pred - gt) ** 2).sum() for g in grid]
    assert abs(grid[int(np.argmin(cost))] - s) < 1e-3


def test_dispatcher():
    x = np.random.default_rng(10).normal(size=(2, 21, 3))
    bone = np.linalg.norm(x[:, 9] - x[:, 10], axis=-1)
    for mode in ALIGNMENT_MODES:
        np.testing.assert_allclose(align(x, x, mode, pred_scale=bone), x, atol=1e-12)
    with pytest.raises(ValueError, match="needs pred_scale"):
        align(x, x, "hand3d")
    with pytest.raises(ValueError, match="unknown alignment"):
        align(x, x, "wobble")
    with pytest.raises(ValueError):
        procrustes(x, x[:, :20])


def test_alignment_transform_reproduces_align():
    """The transform handed to meshes is the one align() applies to the joints."""
    rng = np.random.default_rng(11)
    gt = rng.normal(scale=0.05, size=(3, 21, 3))
    pred = 1.3 * gt @ Rotation.random(random_state=1).as_matrix().T + 0.1
    pred += rng.normal(scale=0.004, size=pred.shape)
    valid = rng.random((3, 21)) > 0.2
    ps = np.array([0.02, 0.03, 0.025])
    for mode in ALIGNMENT_MODES:
        s, r, t = alignment_transform(pred, gt, mode, valid=valid, pred_scale=ps)
        np.testing.assert_allclose(
            apply_similarity(pred, s, r, t), align(pred, gt, mode, valid=valid, pred_scale=ps),
            atol=1e-12, err_msg=mode,
        )  # fmt: skip
