"""The built-in pose prior: axes from rest joints, limits, coupling, determinism, PCA, joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mano_fixtures import random_mano_asset
from seqhand.conventions import MANO_FINGER_CHAINS, NUM_POSE
from seqhand.hand import HandLayer
from seqhand.hand import prior as pr
from seqhand.hand.builtin import builtin_geometry


@pytest.fixture(scope="module")
def geom():
    return builtin_geometry()


@pytest.fixture(scope="module")
def layer(geom):
    return HandLayer(pr.joints_only_asset(geom), pose_origin="flat", dtype=torch.float64)


def _joints(layer, poses):
    return pr.prior_joints(layer, np.asarray(poses), batch=4096).astype(np.float64)


def _rotated_asset(asset, rot: np.ndarray):
    """The same hand turned by ``rot`` (3x3): vertices and shape directions rotated."""
    return asset.replace(
        v_template=asset.v_template @ rot.T,
        shapedirs=np.einsum("ij,vjs->vis", rot, asset.shapedirs),
        posedirs=np.einsum("ij,vjs->vis", rot, asset.posedirs),
        name="rotated",
    )


def _mirrored_asset(asset):
    m = np.diag([-1.0, 1.0, 1.0])
    return _rotated_asset(asset, m).replace(f=asset.f[:, ::-1].copy(), side="left")


def test_builtin_axes_match_the_hand_frame(geom):
    ax = pr.anatomical_axes(pr.rest_joints(geom), "right")
    # Four fingers flex about ~+x (docs of seqhand.hand.builtin), abduct about ~+z (dorsal).
    for f in range(1, 5):
        for lev in range(3):
            assert ax.axes[f, lev, pr.FLEX] @ np.array([1.0, 0, 0]) > 0.97
        assert ax.axes[f, 0, pr.ABD] @ np.array([0, 0, 1.0]) > 0.97
    np.testing.assert_allclose(ax.palm_normal, [0, 0, -1], atol=0.05)
    assert ax.radial[0] > 0.95  # little -> index points to the thumb side (+x)
    for f in range(5):  # unit axes, flex and abd orthogonal to the bone (twist)
        for lev in range(3):
            g = ax.axes[f, lev] @ ax.axes[f, lev].T
            np.testing.assert_allclose(np.diag(g), 1.0, atol=1e-12)
            np.testing.assert_allclose(g[:2, 2], 0.0, atol=1e-12)
            if (f, lev) != (0, 0):  # the thumb CMC's two swings are not orthogonal by design
                assert abs(g[0, 1]) < 1e-12


@pytest.mark.parametrize("finger", ["index", "middle", "ring", "pinky"])
def test_positive_flexion_curls_toward_the_palm(layer, geom, finger):
    f = pr.PRIOR_FINGERS.index(finger)
    params = np.zeros((2, 5, 3, 3))
    params[1, f, :, pr.FLEX] = (1.0, 1.0, 0.6)
    poses = pr.anatomical_to_pose(params, pr.anatomical_axes(pr.rest_joints(geom)))
    j = _joints(layer, poses)
    tip = 4 + 4 * f
    assert j[1, tip, 2] < j[0, tip, 2] - 0.03  # toward -z (palm) by > 3 cm
    moved = np.linalg.norm(j[1] - j[0], axis=-1) > 1e-9
    assert set(np.nonzero(moved)[0]) == {tip - 2, tip - 1, tip}  # only that finger's PIP..tip


def test_abduction_moves_toward_the_thumb(layer, geom):
    params = np.zeros((2, 5, 3, 3))
    params[1, 1, 0, pr.ABD] = 0.3  # index MCP
    poses = pr.anatomical_to_pose(params, pr.anatomical_axes(pr.rest_joints(geom)))
    j = _joints(layer, poses)
    assert j[1, 8, 0] > j[0, 8, 0] + 0.01  # index tip moves toward +x (thumb side)


def test_anatomical_to_pose_equals_naive_composition(geom):
    """Vectorised quaternions vs scipy, joint by joint: R = R_abd R_flex R_twist."""
    ax = pr.anatomical_axes(pr.rest_joints(geom))
    params = pr.sample_anatomical(50, seed=4)
    got = pr.anatomical_to_pose(params, ax).reshape(50, 15, 3)
    for n in range(50):
        for f, name in enumerate(pr.PRIOR_FINGERS):
            for lev, mano_joint in enumerate(MANO_FINGER_CHAINS[name]):
                r = np.eye(3)
                for k in (pr.ABD, pr.FLEX, pr.TWIST):
                    r = (
                        r
                        @ Rotation.from_rotvec(
                            ax.axes[f, lev, k] * params[n, f, lev, k]
                        ).as_matrix()
                    )
                want = Rotation.from_matrix(r)
                have = Rotation.from_rotvec(got[n, mano_joint - 1])
                assert (want.inv() * have).magnitude() < 1e-9


def test_samples_respect_limits_and_coupling():
    a = pr.sample_anatomical(40_000, seed=1)
    assert np.all(a >= pr.LIMITS[..., 0] - 1e-12) and np.all(a <= pr.LIMITS[..., 1] + 1e-12)
    pip, dip = a[:, 1:, 1, pr.FLEX], a[:, 1:, 2, pr.FLEX]
    inside = (dip > pr.LIMITS[1, 2, 0, 0] + 0.05) & (dip < pr.LIMITS[1, 2, 0, 1] - 0.05)
    resid = dip[inside] - pr.DIP_PIP_RATIO * pip[inside]
    assert abs(resid.mean()) < 0.02 and resid.std() < 0.12  # DIP ~ 2/3 PIP (+ noise 0.08)
    # Synergy: neighbouring fingers' MCP flexion correlates more than index-little.
    c = np.corrcoef(a[:, 1:, 0, pr.FLEX].T)
    assert c[2, 3] > c[0, 3] + 0.1 and c[2, 3] > 0.5
    # Abduction shrinks as the MCP flexes (fist has adducted fingers).
    mcp, abd = a[:, 1, 0, pr.FLEX], np.abs(a[:, 1, 0, pr.ABD])
    assert abd[mcp > 1.2].mean() < 0.6 * abd[mcp < 0.2].mean()


def test_every_mode_is_within_limits():
    for name in pr.MODE_NAMES:
        m = pr.mode_parameters(name)
        assert np.all(m >= pr.LIMITS[..., 0] - 1e-9), name
        assert np.all(m <= pr.LIMITS[..., 1] + 1e-9), name
    assert {"fist", "pinch", "point", "flat", "spread", "power_grasp", "tripod"} <= set(
        pr.MODE_NAMES
    )


def test_deterministic_by_seed_and_index(geom):
    full = pr.sample_prior_poses(geom, pr.BLOCK + 300, seed=7)
    part = pr.sample_prior_poses(geom, 400, seed=7, start=pr.BLOCK - 100)
    np.testing.assert_array_equal(full[pr.BLOCK - 100 :], part)  # across a block boundary
    np.testing.assert_array_equal(full[:10], pr.sample_prior_poses(geom, 10, seed=7))
    assert not np.allclose(full[:10], pr.sample_prior_poses(geom, 10, seed=8))


def test_mode_weights_select_modes():
    only_fist = pr.sample_anatomical(2000, seed=0, mode_weights=dict.fromkeys(pr.MODE_NAMES, 0.0)
                                     | {"fist": 1.0})  # fmt: skip
    assert only_fist[:, 1:, 0, pr.FLEX].mean() > 1.2
    with pytest.raises(ValueError, match="unknown prior mode"):
        pr.sample_anatomical(3, mode_weights={"nope": 1.0})


def test_joints_only_asset_gives_the_layers_joints(geom):
    """The reduced asset's joints equal the full layer's, for the built-in hand and for a
    MANO-shaped asset with pose correctives and shape directions."""
    gen = torch.Generator().manual_seed(0)
    for asset in (geom, random_mano_asset(seed=2)):
        full = HandLayer(asset, pose_origin="flat", dtype=torch.float64)
        small = HandLayer(pr.joints_only_asset(asset), pose_origin="flat", dtype=torch.float64)
        pose = 0.6 * torch.randn(16, NUM_POSE, generator=gen, dtype=torch.float64)
        betas = torch.randn(16, 10, generator=gen, dtype=torch.float64)
        go = torch.randn(16, 3, generator=gen, dtype=torch.float64)
        a = full(go, pose, betas).joints
        b = small(go, pose, betas).joints
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_prior_is_equivariant_to_the_models_frame(geom):
    """Axes come from the rest joints, not from a fixed frame: the same hand turned by R gives
    the prior's joints turned by R (so the prior serves MANO's frame as well as ours)."""
    rot = Rotation.from_rotvec([0.4, -1.1, 2.0]).as_matrix()
    turned = _rotated_asset(geom, rot)
    ja = _joints(HandLayer(pr.joints_only_asset(geom), pose_origin="flat", dtype=torch.float64),
                 pr.sample_prior_poses(geom, 64, seed=3))  # fmt: skip
    jb = _joints(HandLayer(pr.joints_only_asset(turned), pose_origin="flat", dtype=torch.float64),
                 pr.sample_prior_poses(turned, 64, seed=3))  # fmt: skip
    np.testing.assert_allclose(jb, ja @ rot.T, atol=2e-6)  # float32 joints


def test_left_hand_prior_is_the_mirror(geom):
    left = _mirrored_asset(geom)
    m = np.array([-1.0, 1.0, 1.0])
    jr = _joints(HandLayer(pr.joints_only_asset(geom), pose_origin="flat", dtype=torch.float64),
                 pr.sample_prior_poses(geom, 64, seed=5))  # fmt: skip
    jl = _joints(HandLayer(pr.joints_only_asset(left), pose_origin="flat", dtype=torch.float64),
                 pr.sample_prior_poses(left, 64, seed=5))  # fmt: skip
    np.testing.assert_allclose(jl, jr * m, atol=2e-6)


def test_prior_pose_pca(geom):
    comps, mean = pr.prior_pose_pca(geom, n=20_000, seed=1)
    np.testing.assert_allclose(comps @ comps.T, np.eye(NUM_POSE), atol=1e-10)
    poses = pr.sample_prior_poses(geom, 20_000, seed=1)
    np.testing.assert_allclose(mean, poses.mean(0), atol=1e-12)
    var = ((poses - mean) @ comps.T).var(0)
    assert np.all(np.diff(var) <= 1e-12)  # sorted by decreasing variance
    assert var[:10].sum() / var.sum() > 0.85  # a few synergies explain most of the prior


def test_prior_joints_checks_inputs(geom):
    with pytest.raises(ValueError, match="flat"):
        pr.prior_joints(HandLayer(geom, pose_origin="mean"), np.zeros((1, 45)))
    with pytest.raises(ValueError, match=r"\(n, 45\)"):
        pr.prior_joints(HandLayer(geom, pose_origin="flat"), np.zeros((1, 44)))
