"""Pictures of docs/inference.md: two tracked hands (overlay + side view), and the exported
meshes of one frame rendered from their PLY files.

    PYTHONPATH=src:tests python docs/img/infer_hands.py

Two built-in hands rendered over a procedural background cross paths; the model is an oracle
(the true parameters, expressed in each crop: no trained model ships, see the README), and a
stand-in detector gives both boxes in every 4th frame in an order that says nothing, with
sides; between detections the tracker follows each hand.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from infer_fixtures import SceneOracle, background, full_params, hand_layer, render_scene  # noqa: E402
from seqhand.geometry.crop import Box  # noqa: E402
from seqhand.inference import Predictor  # noqa: E402
from seqhand.inference.hands import HandsPredictor  # noqa: E402
from seqhand.inference.overlay import (  # noqa: E402
    TRACK_COLORS,
    overlay_hands,
    render_mesh,
    side_by_side,
)
from seqhand.inference.pipeline import infer_video  # noqa: E402
from seqhand.synth.raster import vertex_normals  # noqa: E402

OUT = Path(__file__).resolve().parent
S, H, W, T = 128, 360, 480, 16


class Frames:
    def __init__(self, frames):
        self.frames = frames
        self.name, self.fps, self.expected_frames = "two hands", 30.0, len(frames)
        self.problems, self.truncated = [], False

    def __iter__(self):
        return iter(enumerate(self.frames))


def main() -> None:
    a = full_params(T, 900.0, (110, 170), (360, 200), seed=1)
    b = full_params(T, 850.0, (370, 210), (120, 170), seed=2, rot=(0.2, -0.3, 2.6))
    scene = render_scene([a, b], H, W, bg=background(H, W, 4),
                         colors=[(0.85, 0.65, 0.55), (0.72, 0.52, 0.42)])  # fmt: skip
    truth = [{k: Box(*bx) for k, bx in enumerate(scene["boxes"][i])} for i in (0, 1)]

    def detect(k, frame):
        d = [Box(*truth[i][k].as_array(), side=s, score=0.9) for i, s in ((0, "right"),
                                                                           (1, "left"))]  # fmt: skip
        return d[::-1] if k % 2 else d

    eng = SceneOracle([a, b], S)
    pred = Predictor(eng, hand_layer(), image_size=S, fov=60.0)
    eng.predictor = pred
    hands = HandsPredictor(pred, detect, redetect=4, max_hands=2)
    with tempfile.TemporaryDirectory() as tmp:
        res = infer_video(Frames(scene["frames"]), hands, tmp, videos=False, meshes="ply",
                          progress=False)  # fmt: skip
        tiles = [overlay_hands(scene["frames"][k], res.outputs[k], pred.faces) for k in (3, 8, 13)]
        side = side_by_side(tiles[1], res.outputs[8], pred.faces)[:, W:]
        grid = np.concatenate([*tiles, side], axis=1)
        Image.fromarray(grid).save(OUT / "infer_two_hands.png")
        print("ids per frame:", [[o.track_id for o in outs if o.found] for outs in res.outputs])

        import trimesh

        k = 8
        meshes = [trimesh.load(Path(tmp) / "meshes" / f"hand{i}" / f"frame{k:06d}.ply",
                               process=False) for i in (0, 1)]  # fmt: skip
        panel = render_files(meshes)
        Image.fromarray(panel).save(OUT / "infer_mesh_file.png")


def render_files(meshes, size: int = 360) -> np.ndarray:
    """The meshes (camera space, metres) seen from above-left: turned 35 deg about y then 25
    deg about x, orthographic, on a 5 cm grid."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("x", -25, degrees=True) * Rotation.from_euler("y", 35, degrees=True)
    verts = [np.asarray(m.vertices, np.float64) for m in meshes]
    centre = np.concatenate(verts).mean(0)
    turned = [rot.apply(v - centre) for v in verts]
    extent = float(np.abs(np.concatenate(turned)[:, :2]).max()) * 2.4
    s = size / extent
    img = np.full((size, size, 3), 235, np.uint8)
    d = ImageDraw.Draw(im := Image.fromarray(img))
    for g in range(-20, 21):
        c = size / 2 + g * 0.05 * s
        d.line([(c, 0), (c, size)], fill=(215, 215, 215))
        d.line([(0, c), (size, c)], fill=(215, 215, 215))
    img = np.asarray(im).copy()
    for i, (m, v) in enumerate(zip(meshes, turned)):
        f = np.asarray(m.faces)
        img = render_mesh(img, s * v[:, :2] + (size - 1) / 2, v[:, 2], vertex_normals(v, f), f,
                          alpha=1.0, color=TRACK_COLORS[i])  # fmt: skip
    im = Image.fromarray(img)
    ImageDraw.Draw(im).text((6, 6), "hand0/frame000008.ply + hand1/frame000008.ply, 5 cm grid",
                            fill=(60, 60, 60))  # fmt: skip
    return np.asarray(im)


if __name__ == "__main__":
    main()
