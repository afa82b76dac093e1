"""Camera space and MANO parameters: an oracle model on a hand rendered with a pinhole camera
gives the rendered camera-space joints; the MANO parameters run through smplx give our
vertices; the exported meshes hold them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infer_fixtures import OracleEngine, SceneOracle, background, hand_layer
from mano_fixtures import random_mano_asset
from seqhand.conventions import mirror_x
from seqhand.geometry.crop import Box
from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.hand import HandLayer
from seqhand.inference import GivenBoxes, Predictor
from seqhand.inference.camera import DEFAULT_FOV_DEG, PinholeCamera, camera_translation
from seqhand.synth.raster import render_batch, vertex_normals

S, H, W = 96, 360, 480


def pinhole_scene(focal, depth, seed=0, n=4):
    """The built-in hand at ``depth`` metres in front of a pinhole camera, ``n`` frames.

    Returns the frames, the camera-space truth (joints, vertices) and the best
    weak-perspective parameters (least squares over the 21 projected joints) per frame.
    """
    rng = np.random.default_rng(seed)
    layer = hand_layer()
    cam = PinholeCamera.for_frame(H, W, focal)
    frames, joints, verts, params = [], [], [], []
    for _ in range(n):
        pca = torch.as_tensor(rng.normal(size=(1, 10)) * 0.6, dtype=torch.float32)
        beta = torch.as_tensor(rng.normal(size=(1, 10)) * 0.5, dtype=torch.float32)
        rot = np.array([0.2, 0.3, 2.8]) + rng.normal(size=3) * 0.3
        with torch.no_grad():
            h = layer(pose_pca=pca, betas=beta)
        rm = axis_angle_to_matrix(torch.as_tensor(rot)).numpy()
        j = h.joints[0].double().numpy() @ rm.T
        v = h.vertices[0].double().numpy() @ rm.T
        t = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.05, 0.05), depth]) - j[0]
        j, v = j + t, v + t
        v2, j2 = cam.project(v), cam.project(j)
        nrm = vertex_normals(v, layer.faces.numpy())
        img = render_batch(
            v2[None], v[None, :, 2], nrm[None], layer.faces.numpy(), np.full((len(v), 3), 0.8),
            np.array([0.2, -0.3, -1.0]), 0.4, H, W, background=background(H, W, 2)[None],
        ).rgb[0]  # fmt: skip
        # best weak perspective: j2 ~ s * (R J_model)_xy + t
        rx = (j - t)[:, :2]
        a = np.zeros((42, 3))
        a[:21, 0], a[:21, 1] = rx[:, 0], 1
        a[21:, 0], a[21:, 2] = rx[:, 1], 1
        s, tx, ty = np.linalg.lstsq(a, np.concatenate([j2[:, 0], j2[:, 1]]), rcond=None)[0]
        p = np.concatenate([[s, tx, ty], rot, pca[0].numpy(), beta[0].numpy()])
        frames.append(img), joints.append(j), verts.append(v), params.append(p)
    return np.stack(frames), np.stack(joints), np.stack(verts), np.stack(params)


@pytest.mark.parametrize("focal, depth", [(500.0, 0.45), (900.0, 0.8)])
def test_camera_space_joints_equal_the_pinhole_truth(focal, depth):
    frames, joints, verts, params = pinhole_scene(focal, depth)
    cam = PinholeCamera.for_frame(H, W, focal)
    boxes = {k: Box.from_points(cam.project(v)) for k, v in enumerate(verts)}
    eng = SceneOracle([params], S)
    pred = Predictor(eng, hand_layer(), image_size=S, box_source=GivenBoxes(boxes), focal=focal)
    eng.predictor = pred
    outs = list(pred.run(frames))
    for o, j, v in zip(outs, joints, verts):
        assert o.found and o.camera.focal == focal and not o.camera.assumed
        err = np.linalg.norm(o.joints_cam - j, axis=1)
        assert err.mean() < 0.003 and err.max() < 0.006, err  # metres
        assert abs(o.root_cam[2] - depth) < 0.01
        assert np.abs(o.vertices_cam - v).max() < 0.01
        # and the camera-space joints project where the pinhole image has them (pixels)
        assert np.abs(cam.project(o.joints_cam) - cam.project(j)).max() < 2.0


def test_camera_translation_is_exact_for_a_pinhole_projection():
    rng = np.random.default_rng(1)
    cam = PinholeCamera.for_frame(480, 640, 700.0)
    rel = rng.normal(size=(21, 3)) * 0.04
    rel[0] = 0
    t = np.array([0.05, -0.03, 0.6])
    np.testing.assert_allclose(camera_translation(rel, cam.project(rel + t), cam), t, atol=1e-9)


def test_default_and_given_field_of_view():
    c = PinholeCamera.for_frame(480, 640)
    assert c.assumed and c.focal == pytest.approx(320 / np.tan(np.radians(DEFAULT_FOV_DEG / 2)))
    assert (c.cx, c.cy) == (319.5, 239.5)
    c90 = PinholeCamera.for_frame(480, 640, fov_deg=90)
    assert c90.focal == pytest.approx(320) and not c90.assumed
    with pytest.raises(ValueError, match="field of view"):
        PinholeCamera.for_frame(480, 640, fov_deg=190)
    with pytest.raises(Exception, match="focal length or a field of view"):
        Predictor(OracleEngine(np.zeros((1, 26))), hand_layer(), image_size=S, focal=500, fov=60)


smplx = pytest.importorskip("smplx")


class _Struct:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def smplx_mano_flat(asset):
    fields = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
              "kintree_table", "hands_components", "hands_mean")  # fmt: skip
    ds = _Struct(**{k: getattr(asset, k) for k in fields})
    return smplx.MANO(model_path="unused", data_struct=ds, use_pca=False, flat_hand_mean=True,
                      num_betas=10, dtype=torch.float64, is_rhand=True)  # fmt: skip


@pytest.mark.parametrize("side", ["right", "left"])
def test_mano_parameters_through_smplx_equal_our_vertices(side):
    asset = random_mano_asset(seed=4)
    layer = HandLayer(asset, pose_origin="mean", dtype=torch.float64)
    rng = np.random.default_rng(2)
    n = 3
    p = np.zeros((n, 26), np.float32)
    p[:, 0] = 800 * S / 224
    p[:, 1:3] = S / 2 + rng.normal(size=(n, 2)) * 3
    p[:, 3:6] = rng.normal(size=(n, 3))
    p[:, 6:] = rng.normal(size=(n, 20)) * 0.8
    boxes = [Box(100, 80, 180, 170, side=side)] * n
    pred = Predictor(OracleEngine(p), layer, image_size=S, focal=600.0)
    outs = list(pred.run(np.full((n, H, W, 3), 90, np.uint8), boxes))
    ref = smplx_mano_flat(asset)
    for o in outs:
        m = {k: torch.as_tensor(v, dtype=torch.float64)[None] for k, v in o.mano.items()}
        assert m["hand_pose"].shape == (1, 45)
        r = ref(global_orient=m["global_orient"], hand_pose=m["hand_pose"], betas=m["betas"],
                transl=m["transl"])  # fmt: skip
        v = r.vertices[0].numpy()
        v = mirror_x(v) if side == "left" else v
        assert np.abs(v - o.vertices_cam).max() < 1e-6
        assert o.root_cam[2] > 0


def test_meshes_are_written_per_hand_and_frame(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from seqhand.inference.pipeline import infer_video, load_results

    frames, joints, verts, params = pinhole_scene(500.0, 0.5, n=3)
    cam = PinholeCamera.for_frame(H, W, 500.0)
    boxes = {k: Box.from_points(cam.project(v)) for k, v in enumerate(verts)}

    class Frames:
        name, fps, expected_frames, problems, truncated = "scene", 30.0, 3, [], False

        def __iter__(self):
            return iter(enumerate(frames))

    eng = SceneOracle([params], S)
    pred = Predictor(eng, hand_layer(), image_size=S, box_source=GivenBoxes(boxes), focal=500.0)
    eng.predictor = pred
    res = infer_video(Frames(), pred, tmp_path, meshes="ply", videos=False, progress=False)
    files = sorted((tmp_path / "meshes" / "hand0").iterdir())
    assert [f.name for f in files] == ["frame000000.ply", "frame000001.ply", "frame000002.ply"]
    arr = load_results(tmp_path)
    for k, f in enumerate(files):
        m = trimesh.load(f, process=False)
        np.testing.assert_allclose(m.vertices, arr["hands"][0]["vertices_cam"][k], atol=1e-6)
        np.testing.assert_array_equal(m.faces, arr["faces"])
    assert res.summary.files.count("meshes/") == 1 and res.summary.camera["focal"] == 500.0
