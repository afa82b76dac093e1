"""Skin colour templates: geometry-driven painting, determinism, and the public OBJ format."""

from __future__ import annotations

import numpy as np
import pytest

from mano_fixtures import random_mano_asset
from seqhand.synth.appearance import (
    DISTAL_JOINTS,
    TemplateError,
    TemplateSet,
    load_obj_colors,
    palm_normal,
    save_obj_colors,
    skin_geometry,
)


@pytest.fixture(scope="module")
def builtin():
    pytest.importorskip("seqhand.hand.builtin", reason="the built-in hand model is not available")
    from seqhand.hand import load_asset

    return load_asset("builtin")


def _lum(c: np.ndarray) -> np.ndarray:
    return c @ np.array([0.299, 0.587, 0.114])


def _asset_with_joints(joints: dict[int, tuple], side: str = "right"):
    """A MANO-shaped asset whose regressed rest joints are the given points (others at 0)."""
    a = random_mano_asset(seed=1)
    v = a.v_template.copy()
    jreg = np.zeros_like(a.J_regressor)
    for j in range(16):
        v[j] = joints.get(j, (0.0, 0.0, 0.0))
        jreg[j, j] = 1.0
    return a.replace(v_template=v, J_regressor=jreg, side=side)


def test_palm_normal_of_a_right_hand_points_out_of_the_palm():
    # Palm facing +z (toward you), fingers up (+y), right hand: index on your right (+x).
    joints = {0: (0, 0, 0), 1: (0.03, 0.09, 0), 7: (-0.03, 0.08, 0)}
    np.testing.assert_allclose(palm_normal(_asset_with_joints(joints)), [0, 0, 1], atol=1e-12)
    # A left hand laid out the same way has its palm facing away from you.
    left = _asset_with_joints(joints, side="left")
    np.testing.assert_allclose(palm_normal(left), [0, 0, -1], atol=1e-12)


def test_palm_normal_follows_a_rigid_motion_and_a_mirror():
    joints = {0: (0, 0, 0), 1: (0.03, 0.09, 0.01), 7: (-0.03, 0.08, 0.0)}
    right = _asset_with_joints(joints)
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    moved = right.replace(v_template=right.v_template @ rot.T)
    np.testing.assert_allclose(palm_normal(moved), rot @ palm_normal(right), atol=1e-12)
    # The mirror image of a right hand (x -> -x) is a left hand whose palm is the mirrored one.
    mirrored = right.replace(v_template=right.v_template * [-1, 1, 1], side="left")
    np.testing.assert_allclose(palm_normal(mirrored), palm_normal(right) * [-1, 1, 1], atol=1e-12)


def test_builtin_hand_palm_faces_minus_z_and_is_painted_as_palm(builtin):
    n = palm_normal(builtin)
    assert n[2] < -0.95  # documented frame of the built-in hand: the palm faces -z
    geom = skin_geometry(builtin)
    v = builtin.v_template
    in_palm = (np.abs(v[:, 0] - v[:, 0].mean()) < 0.015) & (np.abs(v[:, 1] + 0.05) < 0.02)
    palm_side = in_palm & (v[:, 2] < np.median(v[in_palm, 2]))
    back_side = in_palm & (v[:, 2] > np.median(v[in_palm, 2]))
    assert palm_side.sum() > 3 and back_side.sum() > 3
    assert geom.palm[palm_side].mean() > 0.9 and geom.palm[back_side].mean() < 0.1


def test_nails_sit_on_the_back_of_every_distal_phalanx(builtin):
    geom = skin_geometry(builtin)
    w = builtin.weights
    nails = geom.nail > 0.5
    assert np.all(w[nails][:, list(DISTAL_JOINTS)].sum(1) > 0.3)
    assert np.all(geom.palm[nails] < 0.1)
    for j in DISTAL_JOINTS:  # every finger and the thumb has a nail
        assert np.sum(nails & (w[:, j] > 0.5)) >= 3, f"no nail on MANO joint {j}"
    # Nails are closer to the fingertip than to the distal joint.
    tips = builtin.v_template[builtin.tip_vertex_ids]
    joints = builtin.J_regressor @ builtin.v_template
    for tip, j in zip(tips, DISTAL_JOINTS):
        ids = np.where(nails & (w[:, j] > 0.5))[0]
        d_tip = np.linalg.norm(builtin.v_template[ids] - tip, axis=1)
        d_joint = np.linalg.norm(builtin.v_template[ids] - joints[j], axis=1)
        assert np.median(d_tip) < np.median(d_joint)


def test_templates_cover_the_tone_range_with_lighter_palms_darker_knuckles(builtin):
    ts = TemplateSet.builtin(builtin, 12, seed=3)
    geom = skin_geometry(builtin)
    palm = (geom.palm > 0.9) & (geom.crease < 0.05) & (geom.pad < 0.05)
    back = (geom.palm < 0.05) & (geom.nail < 0.05) & (geom.knuckle < 0.05) & (geom.crease < 0.05)
    knuckles = geom.knuckle > 0.6
    nails = geom.nail > 0.6
    means = []
    for i in range(len(ts)):
        t = ts[i]
        assert t.shape == (builtin.num_vertices, 3) and t.dtype == np.float32
        assert t.min() >= 0 and t.max() <= 1
        lum = _lum(t)
        means.append(lum[back].mean())
        assert lum[palm].mean() > lum[back].mean(), f"template {i}: palm not lighter than back"
        assert lum[knuckles].mean() < lum[back].mean(), f"template {i}: knuckles not darker"
        assert np.all(np.abs(t[nails] - t[back].mean(0)).sum(1) > 0.01)  # nails stand out
        assert lum[back].std() > 0.002  # mottled, not flat
    assert max(means) > 0.75 and min(means) < 0.3  # very fair ... very dark skin
    assert np.all(np.sort(means)[1:] - np.sort(means)[:-1] < 0.2)  # evenly spread


def test_builtin_templates_are_deterministic_by_seed_and_index(builtin):
    a, b = TemplateSet.builtin(builtin, 5, seed=7), TemplateSet.builtin(builtin, 5, seed=7)
    for i in (4, 0, 2):  # any access order
        np.testing.assert_array_equal(a[i], b[i])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], TemplateSet.builtin(builtin, 5, seed=8)[0])
    # Template i does not depend on how many templates the set has.
    np.testing.assert_array_equal(a[3], TemplateSet.builtin(builtin, 40, seed=7)[3])
    with pytest.raises(ValueError):
        a[0][0, 0] = 1.0  # read-only: a template is shared by all frames of a sequence
    with pytest.raises(IndexError):
        a[5]


def test_painting_works_on_any_mano_shaped_asset():
    ts = TemplateSet.builtin(random_mano_asset(seed=2), 3)
    assert len(ts) == 3 and all(np.all(np.isfinite(ts[i])) for i in range(3))


def test_obj_templates_round_trip(tmp_path, builtin):
    ts = TemplateSet.builtin(builtin, 3)
    for i in range(3):
        save_obj_colors(tmp_path / f"t{i}.obj", builtin.v_template, ts[i], builtin.f)
    (tmp_path / "readme.txt").write_text("not a template")
    loaded = TemplateSet.from_folder(tmp_path, builtin)
    assert len(loaded) == 3 and loaded.names == ["t0.obj", "t1.obj", "t2.obj"]
    for i in range(3):
        np.testing.assert_allclose(loaded[i], ts[i], atol=1e-6)


def _write_obj(path, lines):
    path.write_text("# test template\n" + "\n".join(lines) + "\nf 1 2 3\n")
    return path


def test_obj_errors_name_the_file_and_the_line(tmp_path):
    asset = random_mano_asset(seed=0, nv=30, nf=20)
    good = [f"v 0 0 {i} 0.5 0.4 0.3" for i in range(30)]
    p = _write_obj(tmp_path / "a.obj", good[:2] + ["v 0 0 1"] + good[3:])
    with pytest.raises(TemplateError, match=r"a\.obj, line 4: expected 'v x y z r g b'"):
        load_obj_colors(p)
    p = _write_obj(tmp_path / "a.obj", good[:1] + ["v 0 0 0 0.5 abc 0.3"] + good[2:])
    with pytest.raises(TemplateError, match=r"a\.obj, line 3: not a number"):
        load_obj_colors(p)
    p = _write_obj(tmp_path / "a.obj", good[:3] + ["v 0 0 0 200 100 50"] + good[4:])
    with pytest.raises(TemplateError, match=r"line 5: colours must lie in \[0, 1\].*divide by 255"):
        load_obj_colors(p)
    p = _write_obj(tmp_path / "a.obj", good[:3])
    with pytest.raises(TemplateError, match=r"a\.obj: has 3 vertices, the hand model .* has 30"):
        TemplateSet.from_folder(tmp_path, asset)
    (tmp_path / "a.obj").unlink()
    with pytest.raises(TemplateError, match="no \\*.obj colour templates"):
        TemplateSet.from_folder(tmp_path, asset)
    with pytest.raises(TemplateError, match="does not exist"):
        TemplateSet.from_folder(tmp_path / "nope", asset)
    p = _write_obj(tmp_path / "b.obj", good)
    np.testing.assert_allclose(TemplateSet.from_folder(tmp_path, asset)[0], [[0.5, 0.4, 0.3]] * 30)
