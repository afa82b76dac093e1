"""The built-in procedural hand: asset format, surface, frame, skinning, shapes, robustness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqhand.cli import main
from seqhand.conventions import MANO_PARENTS, NUM_POSE
from seqhand.hand import HandLayer, load_asset
from seqhand.hand import builtin as bi
from seqhand.hand.builtin_mesh import generate
from seqhand.hand.gestures import GESTURES, gesture_pose
from seqhand.hand.meshcheck import (
    face_areas,
    face_normals,
    inverted_faces,
    signed_volume,
    topology,
)
from seqhand.hand.sheet import VIEWS, canonical_rotation, render_mesh, vertex_normals

CHAINS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12)}
TIP_OF = {"thumb": 0, "index": 1, "middle": 2, "ring": 3, "pinky": 4}


@pytest.fixture(scope="module")
def geom():
    return bi.builtin_geometry()


@pytest.fixture(scope="module")
def layer(geom):
    return HandLayer(geom, pose_origin="flat", dtype=torch.float64)


def _pose(layer, hand_pose=None, betas=None, global_orient=None):
    given = dict(hand_pose=hand_pose, betas=betas, global_orient=global_orient)
    t = {
        k: None if v is None else torch.as_tensor(np.atleast_2d(v), dtype=torch.float64)
        for k, v in given.items()
    }
    with torch.no_grad():
        return layer(**t)


# ---- asset format -----------------------------------------------------------------------------
def test_asset_fields_and_counts(geom):
    a = load_asset(None)
    assert a.name == "builtin" and a.side == "right"
    a.validate()
    assert 800 <= a.num_vertices <= 1600
    assert a.f.shape == (2 * a.num_vertices - 4, 3)  # closed genus-0 triangle mesh
    assert a.shapedirs.shape == (a.num_vertices, 3, 10)
    assert a.posedirs.shape == (a.num_vertices, 3, 135) and not np.any(a.posedirs)
    assert tuple(a.parents.tolist()) == MANO_PARENTS
    for comps in (a.hands_components, geom.hands_components):
        np.testing.assert_allclose(comps @ comps.T, np.eye(NUM_POSE), atol=1e-10)
    # the PCA is all that differs (the shipped asset was built on another machine: its floats
    # differ from a fresh build in the last bit, 8e-17 m on an AVX2-only machine)
    np.testing.assert_allclose(a.v_template, geom.v_template, rtol=0, atol=1e-12)


def test_deterministic(geom):
    g1, g2 = generate(np.zeros(10)), generate(np.zeros(10))
    np.testing.assert_array_equal(g1.verts, g2.verts)
    np.testing.assert_array_equal(g1.faces, g2.faces)
    np.testing.assert_array_equal(g1.verts, geom.v_template)


def test_cache_equals_regeneration():
    if not bi.CACHE_PATH.is_file():
        pytest.skip("no packaged cache (optional)")
    cached = bi.load_cached_asset()
    assert cached is not None, (
        f"{bi.CACHE_PATH} is stale (the sources changed): refresh it with "
        f"'seqhand hand export --regenerate --out {bi.CACHE_PATH}'"
    )
    fresh = bi.generate_builtin_asset()
    for field in ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
                  "kintree_table", "hands_components", "hands_mean", "tip_vertex_ids"):  # fmt: skip
        # 1e-8: the regressor weights are solved numerically; a fresh build on an AVX2-only
        # machine differs from the packaged one by up to 4e-10
        np.testing.assert_allclose(getattr(cached, field), getattr(fresh, field), atol=1e-8)
    assert bi.builtin_asset() is bi.builtin_asset()  # computed once per process


# ---- the surface ------------------------------------------------------------------------------
def test_closed_oriented_genus0_positive_volume(geom):
    topo = topology(geom.f, geom.num_vertices)
    assert topo.boundary_edges == 0 and topo.nonmanifold_edges == 0
    assert topo.misoriented_edges == 0 and topo.unused_vertices == 0
    assert topo.euler == 2 and topo.components == 1
    vol = signed_volume(geom.v_template, geom.f)
    assert 250e-6 < vol < 450e-6  # m^3: an adult hand is roughly 300-450 cm^3
    assert face_areas(geom.v_template, geom.f).min() > 1e-7  # no degenerate face (0.1 mm^2)
    # outward normals: every vertex normal points away from its finger's / the palm's axis
    # (checked at the fingertips: the apex normal points along the finger)
    vn = vertex_normals(geom.v_template, geom.f)
    j = geom.J_regressor @ geom.v_template
    for name, chain in CHAINS.items():
        tip = geom.tip_vertex_ids[TIP_OF[name]]
        bone = geom.v_template[tip] - j[chain[2]]
        assert vn[tip] @ bone / np.linalg.norm(bone) > 0.95


def test_frame_and_proportions(geom):
    v, tips = geom.v_template, geom.v_template[geom.tip_vertex_ids]
    j = bi.skeleton()
    np.testing.assert_allclose(j[0], 0.0, atol=1e-12)  # wrist at the origin
    middle = tips[2] - j[4]
    assert middle @ np.array([0.0, -1.0, 0.0]) / np.linalg.norm(middle) > 0.999  # fingers: -y
    assert 0.18 <= np.linalg.norm(tips[2] - j[0]) <= 0.19  # wrist to middle fingertip
    assert tips[0, 0] > 0.05 and j[13, 0] > 0.0  # thumb toward +x
    assert tips[0, 0] > tips[1, 0] > tips[2, 0] > tips[3, 0] > tips[4, 0]
    # the palm faces -z: the palmar surface in the middle of the palm has normals along -z
    vn = vertex_normals(v, geom.f)
    mid = (np.abs(v[:, 0]) < 0.02) & (v[:, 1] < -0.03) & (v[:, 1] > -0.07)
    palmar = mid & (v[:, 2] < 0)
    dorsal = mid & (v[:, 2] > 0)
    assert palmar.sum() >= 5 and dorsal.sum() >= 5
    assert np.all(vn[palmar, 2] < -0.8) and np.all(vn[dorsal, 2] > 0.8)
    # anatomical ratios: middle finger longest, pinky shortest, segment lengths decrease
    for chain in CHAINS.values():
        seg = np.linalg.norm(np.diff(j[[chain[0], chain[1], chain[2]]], axis=0), axis=1)
        assert seg[0] > seg[1]


def test_flexion_is_positive_rotation_about_x(geom, layer):
    rest = _pose(layer).joints[0].numpy()
    for name, chain in CHAINS.items():
        pose = np.zeros(NUM_POSE)
        pose[3 * (chain[0] - 1)] = 1.2  # MCP, +1.2 rad about +x
        out = _pose(layer, pose).joints[0].numpy()
        tip = {"index": 8, "middle": 12, "ring": 16, "pinky": 20}[name]
        assert out[tip, 2] < rest[tip, 2] - 0.03  # toward the palm side (-z) ...
        assert out[tip, 1] > rest[tip, 1] + 0.02  # ... curling back toward the wrist
    from seqhand.hand.prior import anatomical_axes, rest_joints

    axes = anatomical_axes(rest_joints(geom), "right").axes  # (5, 3, 3 [flex, abd, twist], 3)
    assert np.all(axes[1:, :, 0, 0] > 0.99)  # every finger joint's flexion axis is +x


# ---- joints, skinning, shapes -----------------------------------------------------------------
def test_joint_regressor_reproduces_skeleton(geom):
    np.testing.assert_allclose(geom.J_regressor @ geom.v_template, bi.skeleton(), atol=1e-12)
    np.testing.assert_allclose(geom.J_regressor.sum(1), 1.0, atol=1e-12)
    assert geom.J_regressor.min() > -0.01  # (almost) convex combinations of ring vertices
    rng = np.random.default_rng(0)
    for beta in rng.uniform(-2, 2, size=(20, 10)):
        shaped = geom.v_template + geom.shapedirs @ beta
        # exact for every ring; the thumb's bisecting joint frames add < 0.1 micrometre
        np.testing.assert_allclose(geom.J_regressor @ shaped, bi.skeleton(beta), atol=1e-7)
    # each joint is regressed from vertices near it (its ring or the palm rings around it):
    # weight-averaged distance < 2.5 cm, and every vertex with a weight > 1 % within 3.5 cm
    for jj in range(16):
        w = np.abs(geom.J_regressor[jj])
        d = np.linalg.norm(geom.v_template - bi.skeleton()[jj], axis=1)
        assert (w * d).sum() / w.sum() < 0.025 and d[w > 0.01].max() < 0.035


def test_tip_vertices_are_cap_apexes(geom):
    """Each tip vertex is the vertex of its distal segment farthest from the last joint."""
    j = bi.skeleton()
    last = {"thumb": 15, "index": 3, "middle": 6, "ring": 12, "pinky": 9}
    for name, k in TIP_OF.items():
        tip = geom.tip_vertex_ids[k]
        mine = np.nonzero(geom.weights[:, last[name]] > 0.999)[0]
        dist = np.linalg.norm(geom.v_template[mine] - j[last[name]], axis=1)
        assert mine[dist.argmax()] == tip


def test_skinning_weights(geom):
    w = geom.weights
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    assert w.min() >= 0.0
    assert np.all((w > 1e-9).sum(1) <= 3)
    # the ring at each finger PIP/DIP joint is half parent bone, half child bone
    for chain in CHAINS.values():
        for parent, child in ((chain[0], chain[1]), (chain[1], chain[2])):
            ids = np.nonzero(np.abs(geom.J_regressor[child]) > 0)[0]
            np.testing.assert_allclose(w[ids, parent], 0.5, atol=1e-9)
            np.testing.assert_allclose(w[ids, child], 0.5, atol=1e-9)


def test_shapedirs_are_the_generator_derivative(geom):
    h = 1e-2
    for k in range(10):
        e = np.zeros(10)
        e[k] = h
        fd = (generate(e).verts - generate(-e).verts) / (2 * h)
        np.testing.assert_allclose(geom.shapedirs[..., k], fd, atol=1e-9)
    # the linear model stays close to the (mildly bilinear) generator over the whole range
    rng = np.random.default_rng(1)
    for beta in rng.uniform(-2, 2, size=(5, 10)):
        lin = geom.v_template + geom.shapedirs @ beta
        assert np.abs(generate(beta).verts - lin).max() < 3e-3  # measured 1.3 mm


def test_random_shapes_are_plausible(geom):
    rng = np.random.default_rng(2)
    betas = rng.uniform(-2, 2, size=(300, 10))
    betas[:2] = [np.full(10, 2.0), np.full(10, -2.0)]
    v = geom.v_template + np.einsum("vcs,bs->bvc", geom.shapedirs, betas)
    area0 = face_areas(geom.v_template, geom.f)
    assert (face_areas(v, geom.f) / area0).min() > 0.15  # measured 0.20: nothing collapses
    cos = np.einsum("bfc,fc->bf", face_normals(v, geom.f), face_normals(geom.v_template, geom.f))
    assert cos.min() > 0.4  # measured 0.56: no face flips or turns over
    vol = signed_volume(v, geom.f) / signed_volume(geom.v_template, geom.f)
    assert vol.min() > 0.5 and vol.max() < 1.8
    joints = np.einsum("jv,bvc->bjc", geom.J_regressor, v)
    length = np.linalg.norm(v[:, geom.tip_vertex_ids[2]] - joints[:, 0], axis=-1)
    assert length.min() > 0.14 and length.max() < 0.24


# ---- posing -----------------------------------------------------------------------------------
def _finger_volume(geom, verts, chain):
    """Volume of a finger's rigid part (weight on its chain >= 0.999), closed at its base."""
    inside = geom.weights[:, list(chain)].sum(1) > 0.999
    ff = geom.f[inside[geom.f].all(1)]
    half = np.concatenate([ff[:, [0, 1]], ff[:, [1, 2]], ff[:, [2, 0]]])
    edges = {tuple(e) for e in half.tolist()}
    nxt = {a: b for a, b in edges if (b, a) not in edges}
    loop = [next(iter(nxt))]
    while nxt[loop[-1]] != loop[0]:
        loop.append(nxt[loop[-1]])
    centre = len(verts)
    vv = np.concatenate([verts, verts[loop].mean(0, keepdims=True)])
    cap = [[loop[(i + 1) % len(loop)], loop[i], centre] for i in range(len(loop))]
    return signed_volume(vv, np.concatenate([ff, np.array(cap)]))


def test_volume_preserved_under_flexion(geom, layer):
    v0 = signed_volume(geom.v_template, geom.f)
    for chain in CHAINS.values():
        vol0 = _finger_volume(geom, geom.v_template, chain)
        for joint in chain[1:]:  # PIP, DIP at 90 degrees
            pose = np.zeros(NUM_POSE)
            pose[3 * (joint - 1)] = np.pi / 2
            v = _pose(layer, pose).vertices[0].numpy()
            assert abs(_finger_volume(geom, v, chain) / vol0 - 1) < 0.06
        pose = np.zeros(NUM_POSE)
        pose[3 * (chain[0] - 1)] = np.pi / 2  # MCP at 90 degrees: whole-hand volume
        v = _pose(layer, pose).vertices[0].numpy()
        assert abs(signed_volume(v, geom.f) / v0 - 1) < 0.03
    v = _pose(layer, gesture_pose("fist", geom)).vertices[0].numpy()
    assert abs(signed_volume(v, geom.f) / v0 - 1) < 0.10  # full fist: documented bound 10 %


def test_random_poses_and_shapes_are_robust(geom):
    """1,000 random poses within the prior's joint limits x random shapes in [-2, 2]^10."""
    from seqhand.hand.prior import LIMITS, anatomical_axes, anatomical_to_pose, rest_joints

    rng = np.random.default_rng(3)
    n = 1000
    params = rng.uniform(LIMITS[..., 0], LIMITS[..., 1], size=(n,) + LIMITS.shape[:-1])
    poses = anatomical_to_pose(params, anatomical_axes(rest_joints(geom), "right"))
    betas = rng.uniform(-2, 2, size=(n, 10))
    orient = rng.normal(scale=1.0, size=(n, 3))
    layer32 = HandLayer(geom, pose_origin="flat")  # float32: what training runs
    with torch.no_grad():
        out = layer32(
            hand_pose=torch.as_tensor(poses, dtype=torch.float32),
            betas=torch.as_tensor(betas, dtype=torch.float32),
            global_orient=torch.as_tensor(orient, dtype=torch.float32),
        )
    v = out.vertices.numpy()
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(out.joints.numpy()))
    rest = (geom.v_template + np.einsum("vcs,bs->bvc", geom.shapedirs, betas)).astype(np.float32)
    inv = inverted_faces(rest, v, geom.f, geom.weights, out.transforms[:, :, :3, :3].numpy())
    assert inv.mean() < 0.02  # measured ~1.0 % (palmar creases of strongly flexed joints)
    assert inv.mean(1).max() < 0.05


def test_inverted_faces_definition():
    tet = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert topology(faces, 4).is_closed_oriented_sphere and signed_volume(tet, faces) > 0
    w = np.zeros((4, 2))
    w[:, 1] = 1.0
    rot = np.stack([np.eye(3), np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])])  # 90 deg about z
    assert not inverted_faces(tet, tet @ rot[1].T, faces, w, rot).any()  # a rigid motion
    pushed = tet.copy()
    pushed[3, 2] = -1.0  # the apex pushed through the base: its three faces turn over
    expected = np.array([False, True, True, True])
    np.testing.assert_array_equal(inverted_faces(tet, pushed, faces, w, np.stack([np.eye(3)] * 2)),
                                  expected)  # fmt: skip


def test_gestures(geom, layer):
    assert set(GESTURES) >= {"flat", "fist", "pinch", "point", "spread"}
    np.testing.assert_array_equal(gesture_pose("flat", geom), np.zeros(NUM_POSE))
    j = {name: _pose(layer, gesture_pose(name, geom)).joints[0].numpy() for name in GESTURES}
    flat = j["flat"]
    assert np.linalg.norm(j["pinch"][4] - j["pinch"][8]) < 0.015  # thumb meets index
    assert np.linalg.norm(j["ok"][4] - j["ok"][8]) < 0.015
    for tip in (8, 12, 16, 20):
        assert np.linalg.norm(j["fist"][tip]) < 0.7 * np.linalg.norm(flat[tip])
    assert np.linalg.norm(j["point"][8] - flat[8]) < 5e-3  # the index stays (nearly) straight
    spread = np.linalg.norm(j["spread"][8] - j["spread"][20])
    assert spread > np.linalg.norm(flat[8] - flat[20]) + 0.01
    with pytest.raises(ValueError, match="unknown gesture"):
        gesture_pose("wave", geom)


def test_gestures_and_views_follow_the_models_frame(geom, layer):
    """A hand model in another frame (as MANO's is) gets the same gestures and sheet views."""
    rot = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0]
    rot *= np.linalg.det(rot)  # a proper rotation
    moved = geom.replace(
        v_template=geom.v_template @ rot.T,
        shapedirs=np.einsum("ij,vjs->vis", rot, geom.shapedirs),
        name="rotated",
    )
    moved_layer = HandLayer(moved, pose_origin="flat", dtype=torch.float64)
    for name in ("fist", "pinch", "spread"):
        ref = _pose(layer, gesture_pose(name, geom)).joints[0].numpy()
        got = _pose(moved_layer, gesture_pose(name, moved)).joints[0].numpy()
        np.testing.assert_allclose(got, ref @ rot.T, atol=1e-9)
    np.testing.assert_allclose(
        canonical_rotation(moved) @ rot, canonical_rotation(geom), atol=1e-12
    )
    c = canonical_rotation(geom)  # the built-in hand is already (nearly) in its own frame
    assert np.all(np.diag(c) > 0.99)


def test_synergy_standin_basis(geom):
    comps, mean = bi.synergy_pca(geom)
    np.testing.assert_allclose(comps @ comps.T, np.eye(NUM_POSE), atol=1e-10)
    curl = comps[0].reshape(15, 3)
    assert np.all(curl[:12, 0] > 0)  # "curl all" flexes every finger joint about +x
    assert np.all(mean.reshape(15, 3)[:12, 0] > 0)  # the mean hand is slightly curled


# ---- picture and command line -----------------------------------------------------------------
def test_render_mesh_matches_naive_rasteriser():
    verts = np.array([[-0.5, -0.4, 0.0], [0.6, -0.1, 0.0], [-0.1, 0.7, 0.0], [0, 0, 1.0]])
    faces = np.array([[0, 2, 1]])  # faces the camera (normal -z)
    size, extent = 24, 2.0
    img = render_mesh(verts, faces, size, extent=extent, centre=np.zeros(2), supersample=1)
    hit = np.any(img < 0.999, axis=-1)
    ys, xs = np.mgrid[0:size, 0:size]
    px = (xs + 0.5) * extent / size - extent / 2  # pixel centres in scene units
    py = (ys + 0.5) * extent / size - extent / 2
    a, b, c = verts[0, :2], verts[2, :2], verts[1, :2]

    def side(p, q, x, y):
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])

    s1, s2, s3 = side(a, b, px, py), side(b, c, px, py), side(c, a, px, py)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    assert hit.sum() > 50
    assert np.sum(hit != inside) <= 2  # pixel centres exactly on an edge may go either way
    back = render_mesh(verts, faces, size, rotation=VIEWS["back"], extent=extent,
                       centre=np.zeros(2), supersample=1)  # fmt: skip
    assert not np.any(back < 0.999)  # back-facing from behind: culled


def test_cli_info_and_sheet(tmp_path, capsys):
    assert main(["hand", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["closed_oriented_genus0"] and info["euler"] == 2
    assert 180 <= info["hand_length_mm"] <= 190
    out = tmp_path / "sheet.png"
    assert main(["hand", "sheet", "--out", str(out), "--size", "40", "--poses", "flat,fist"]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] > im.size[1] > 100
    assert main(["hand", "sheet", "--out", str(out), "--poses", "wave"]) == 2  # actionable error
    assert "unknown pose" in capsys.readouterr().err
    exported = tmp_path / "hand.npz"
    assert main(["hand", "export", "--out", str(exported)]) == 0
    np.testing.assert_array_equal(load_asset(exported).v_template, load_asset(None).v_template)


def test_meshcheck_on_small_meshes():
    cube_v = np.array([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    topo = topology(faces, 8)
    assert topo.is_closed_oriented_sphere
    assert np.isclose(signed_volume(cube_v, faces), 1.0)
    assert topology(faces[1:], 8).boundary_edges == 3
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert topology(flipped, 8).misoriented_edges == 3
    assert topology(np.concatenate([faces, faces[:1]]), 8).nonmanifold_edges == 3
