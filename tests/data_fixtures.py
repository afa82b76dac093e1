"""Writers of tiny fixture datasets in the real benchmarks' published formats.

Each writer builds a "recorded" hand per frame (project-order joints in the dataset's camera
frame, on the side the dataset records), converts it to the dataset's own order / units /
frame with name tables written here independently of ``seqhand.conventions``, writes the files,
and paints a coloured dot per joint into the image at its projection. A test can then check a
loader end to end: its 3D output against the truth, and each output 2D joint against the colour
of the dot under it in the output image (which catches order, mirror and flip mistakes).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

# Project order by name, the FreiHAND order (written out here on purpose).
PROJECT_NAMES = ["wrist"] + [
    f"{f}_{j}"
    for f in ("thumb", "index", "middle", "ring", "pinky")
    for j in ("mcp", "pip", "dip", "tip")
]
# STB: palm (in the wrist slot), then pinky, ring, middle, index, thumb; each MCP -> tip.
STB_NAMES = ["wrist"] + [
    f"{f}_{j}"
    for f in ("pinky", "ring", "middle", "index", "thumb")
    for j in ("mcp", "pip", "dip", "tip")
]
# RHD, per hand: wrist, then thumb -> pinky, each tip -> MCP.
RHD_NAMES = ["wrist"] + [
    f"{f}_{j}"
    for f in ("thumb", "index", "middle", "ring", "pinky")
    for j in ("tip", "dip", "pip", "mcp")
]
TIP_NAMES = ["thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip"]

# 21 well separated colours, one per project joint (levels 0/127/254 per channel; black and
# greys excluded so that no dot looks like a background).
PALETTE = (
    np.array([c for c in np.ndindex(3, 3, 3) if len(set(c)) > 1][:21], dtype=np.int64) * 127
).astype(np.uint8)


def reorder(project_joints: np.ndarray, names: list[str]) -> np.ndarray:
    """Project-order ``(21, D)`` -> the order given by ``names``."""
    return np.stack([project_joints[PROJECT_NAMES.index(n)] for n in names])


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def hand_points(rng, K: np.ndarray, width: int, height: int, n: int = 21):
    """``n`` camera-frame points (m) whose projections sit on a jittered grid inside the image,
    at least ~12 px apart (so the dots never overlap)."""
    cols = 7
    rows = int(np.ceil(n / cols))
    xs = np.linspace(0.2 * width, 0.8 * width, cols)
    ys = np.linspace(0.3 * height, 0.7 * height, rows)
    uv = np.array([(xs[i % cols], ys[i // cols]) for i in range(n)])
    uv += rng.uniform(-2.0, 2.0, size=uv.shape)
    z = rng.uniform(0.35, 0.6, size=n)
    rays = np.linalg.solve(K, np.concatenate([uv, np.ones((n, 1))], 1).T).T
    return rays * z[:, None]


def paint(image: np.ndarray, uv: np.ndarray, colors: np.ndarray, radius: int = 1) -> None:
    for (u, v), c in zip(np.round(uv).astype(int), colors):
        image[max(v - radius, 0) : v + radius + 1, max(u - radius, 0) : u + radius + 1] = c


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@dataclass
class Truth:
    """What a loader must return: project-order joints (m) in the recorded camera frame, and
    which joints are annotated, per dataset index."""

    joints3d: list[np.ndarray] = field(default_factory=list)
    valid: list[np.ndarray] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# FreiHAND
# --------------------------------------------------------------------------------------------
def write_freihand(root: Path, n: int = 3, n_eval: int = 2, seed: int = 0, verts: bool = True):
    """training/ (4 versions per annotation, masks, K, xyz, mano, scale, verts) and
    evaluation/ (K, scale, xyz, verts). Version k's images have background level 40 * (k + 1)."""
    rng = np.random.default_rng(seed)
    truth = {"training": Truth(), "evaluation": Truth()}
    w = h = 224
    for split, count in (("training", n), ("evaluation", n_eval)):
        Ks, xyzs, manos, scales, vs = [], [], [], [], []
        versions = 4 if split == "training" else 1
        for i in range(count):
            f = rng.uniform(450, 650)
            K = np.array(
                [[f, 0, 112 + rng.uniform(-3, 3)], [0, f, 112 + rng.uniform(-3, 3)], [0, 0, 1]]
            )
            xyz = hand_points(rng, K, w, h)
            uv = project(xyz, K)
            for k in range(versions):
                img = np.full((h, w, 3), 40 * (k + 1), dtype=np.uint8)
                paint(img, uv, PALETTE, radius=3)
                p = root / split / "rgb" / f"{i + k * count:08d}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(p, quality=95)
            if split == "training":
                mask = np.zeros((h, w), dtype=np.uint8)
                mask[40:120, 30:100] = 255
                p = root / "training" / "mask" / f"{i:08d}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(p, quality=95)
            Ks.append(K.tolist())
            xyzs.append(xyz.tolist())
            manos.append([rng.normal(size=61).tolist()])
            scales.append(float(rng.uniform(0.02, 0.04)))
            vs.append(rng.normal(scale=0.05, size=(778, 3)).tolist())
            truth[split].joints3d.append(xyz)
            truth[split].valid.append(np.ones(21, dtype=bool))
        truth[split].extra = {"K": Ks, "mano": manos, "scale": scales, "verts": vs}
        files = {"K": Ks, "xyz": xyzs, "scale": scales}
        if split == "training":
            files["mano"] = manos
        if verts:  # training_verts.json and evaluation_verts.json (released with the labels)
            files["verts"] = vs
        for name, data in files.items():
            (root / f"{split}_{name}.json").write_text(json.dumps(data))
    return truth


# --------------------------------------------------------------------------------------------
# STB
# --------------------------------------------------------------------------------------------
def write_stb(
    root: Path, sequences=("B1Counting", "B1Random", "B2Counting"), n_frames: int = 3, seed: int = 1
):
    """labels/<Seq>_{BB,SK}.mat (handPara 3 x 21 x F, mm) and
    images/<Seq>/{BB_left,BB_right,SK_color}_%d.png.

    Truth per camera: ``{"BB": Truth, "SK": Truth}``, in the recorded (left-hand) frame, with
    the palm in slot 0."""
    from seqhand.data.stb import BB_INTRINSICS, SK_INTRINSICS, sk_color_to_depth

    rng = np.random.default_rng(seed)
    truth = {"BB": Truth(), "SK": Truth(), "BB_right": Truth()}
    for seq in sequences:
        for cam, K, prefix in (("BB", BB_INTRINSICS, "BB_left"), ("SK", SK_INTRINSICS, "SK_color")):
            para = np.zeros((3, 21, n_frames))
            for f in range(n_frames):
                xyz = hand_points(rng, K, 640, 480)
                stb = reorder(xyz, STB_NAMES) * 1000.0
                if cam == "SK":
                    stb = sk_color_to_depth(stb)
                para[:, :, f] = stb.T
                img = np.zeros((480, 640, 3), dtype=np.uint8)
                paint(img, project(xyz, K), PALETTE)
                save_png(root / "images" / seq / f"{prefix}_{f}.png", img)
                truth[cam].joints3d.append(xyz)
                truth[cam].valid.append(np.ones(21, dtype=bool))
                if cam == "BB":  # the right stereo image: labels shifted by the 120.054 mm
                    xyz_r = xyz - np.array([0.120054, 0.0, 0.0])  # baseline (create_db.m)
                    img = np.zeros((480, 640, 3), dtype=np.uint8)
                    paint(img, project(xyz_r, K), PALETTE)
                    save_png(root / "images" / seq / f"BB_right_{f}.png", img)
                    truth["BB_right"].joints3d.append(xyz_r)
                    truth["BB_right"].valid.append(np.ones(21, dtype=bool))
            (root / "labels").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "labels" / f"{seq}_{cam}.mat", {"handPara": para})
    return truth


# --------------------------------------------------------------------------------------------
# EgoDexter and Dexter+Object
# --------------------------------------------------------------------------------------------
def _tip_line(tips_mm: np.ndarray, valid: np.ndarray, missing: str) -> str:
    fields = []
    for t, v in zip(tips_mm, valid):
        fields.append(f"{t[0]:.6f}, {t[1]:.6f}, {t[2]:.6f}" if v else missing)
    return ";".join(fields) + ";"


def _write_tip_sequences(
    root, sequences, n_frames, seed, K, to_file, ann_path, missing_fmt, name_fmt
):
    rng = np.random.default_rng(seed)
    truth = Truth()
    for _s, seq in enumerate(sequences):
        lines = []
        for f in range(n_frames):
            xyz = hand_points(rng, K, 640, 480)
            tips = reorder(xyz, TIP_NAMES)
            valid = np.ones(5, dtype=bool)
            if f == 1:
                valid[[1, 3]] = False  # two missing tips in the second frame
            missing = missing_fmt(rng) if callable(missing_fmt) else missing_fmt
            lines.append(_tip_line(to_file(tips * 1000.0), valid, missing))
            img = np.zeros((480, 640, 3), dtype=np.uint8)
            tip_ids = [PROJECT_NAMES.index(n) for n in TIP_NAMES]
            paint(img, project(tips[valid], K), PALETTE[tip_ids][valid])
            save_png(root / "data" / seq / "color" / name_fmt(f), img)
            full_valid = np.zeros(21, dtype=bool)
            full_valid[np.array(tip_ids)[valid]] = True
            truth.joints3d.append(xyz)
            truth.valid.append(full_valid)
        p = root / "data" / seq / ann_path(seq)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(lines) + "\n")
    return truth


def write_egodexter(root: Path, sequences=("Desk", "Kitchen"), n_frames: int = 3, seed: int = 2):
    """data/<Seq>/color/image_%05d_color.png and data/<Seq>/annotation.txt_3D.txt (depth frame,
    mm); missing tips alternate between an empty field and '0, 0, 0'."""
    from seqhand.data.egodexter import COLOR_EXTRINSICS, COLOR_INTRINSICS

    r, t = COLOR_EXTRINSICS[:, :3], COLOR_EXTRINSICS[:, 3]
    state = {"k": 0}

    def missing(_rng):
        state["k"] += 1
        return "" if state["k"] % 2 else " 0, 0, 0"

    return _write_tip_sequences(
        root,
        sequences,
        n_frames,
        seed,
        COLOR_INTRINSICS,
        to_file=lambda x: np.linalg.solve(r, (x - t).T).T,
        ann_path=lambda seq: "annotation.txt_3D.txt",
        missing_fmt=missing,
        name_fmt=lambda f: f"image_{f:05d}_color.png",
    )


def write_dexter_object(
    root: Path, sequences=("Grasp1", "Rotate"), n_frames: int = 3, seed: int = 3
):
    """data/<Seq>/color/Color_%04d.bmp (BMP, as the published set) and
    data/<Seq>/annotations/<Seq>3D.txt (depth frame with x, y flipped, mm); a missing tip is
    written with z = 32001."""
    from seqhand.data.dexter_object import COLOR_EXTRINSICS, COLOR_INTRINSICS

    r, t = COLOR_EXTRINSICS[:, :3], COLOR_EXTRINSICS[:, 3]
    flip = np.array([-1.0, -1.0, 1.0])
    return _write_tip_sequences(
        root,
        sequences,
        n_frames,
        seed,
        COLOR_INTRINSICS,
        to_file=lambda x: np.linalg.solve(r, (x - t).T).T * flip,
        ann_path=lambda seq: f"annotations/{seq}3D.txt",
        missing_fmt=lambda rng: f"{rng.uniform(-50, 50):.3f}, {rng.uniform(-50, 50):.3f}, 32001",
        name_fmt=lambda f: f"Color_{f:04d}.bmp",
    )


# --------------------------------------------------------------------------------------------
# RHD
# --------------------------------------------------------------------------------------------
def write_rhd(root: Path, sides=("left", "right", "right"), split: str = "training", seed: int = 4,
              mask_sides=None):  # fmt: skip
    """<split>/color/%05d.png, <split>/mask/%05d.png (part labels) and anno_<split>.pickle.

    Sample i shows its ``sides[i]`` hand with more visible keypoints; the other hand is
    annotated too, with fewer visible keypoints and no dots. The left hand's mask region has
    label 5, the right hand's label 20; the ``mask_sides[i]`` hand (default ``sides[i]``) has
    the larger region."""
    mask_sides = sides if mask_sides is None else mask_sides
    rng = np.random.default_rng(seed)
    truth = Truth()
    anno = {}
    w = h = 320
    for i, side in enumerate(sides):
        f = rng.uniform(280, 320)
        K = np.array([[f, 0, 160.0], [0, f, 160.0], [0, 0, 1]])
        main = hand_points(rng, K, w, h)
        other = hand_points(rng, K, w, h) + np.array([0.02, 0.0, 0.1])
        vis_main = np.ones(21)
        vis_main[:3] = 0  # 18 visible
        vis_other = np.zeros(21)
        vis_other[:5] = 1  # 5 visible
        left, right = (main, other) if side == "left" else (other, main)
        vl, vr = (vis_main, vis_other) if side == "left" else (vis_other, vis_main)
        xyz = np.concatenate([reorder(left, RHD_NAMES), reorder(right, RHD_NAMES)])
        uv = np.concatenate(
            [reorder(project(left, K), RHD_NAMES), reorder(project(right, K), RHD_NAMES)]
        )
        uv_vis = np.concatenate(
            [
                uv,
                np.concatenate([reorder(vl[:, None], RHD_NAMES), reorder(vr[:, None], RHD_NAMES)]),
            ],
            1,
        )
        anno[i] = {
            "uv_vis": uv_vis.astype(np.float32),
            "xyz": xyz.astype(np.float32),
            "K": K.astype(np.float32),
        }
        img = np.zeros((h, w, 3), dtype=np.uint8)
        paint(img, project(main, K), PALETTE)
        save_png(root / split / "color" / f"{i:05d}.png", img)
        labels = np.zeros((h, w), dtype=np.uint8)
        labels[10:40, 10:60] = 1  # person
        big = 130 if mask_sides[i] == "left" else 60
        labels[50:90, 20:70] = 5  # left hand part
        labels[50:big, 20:70] = 5
        labels[50:90, 200:260] = 20  # right hand part (2400 px; the left has 2000 or 4000)
        save_png(root / split / "mask" / f"{i:05d}.png", labels)
        shown = xyz[:21] if side == "left" else xyz[21:]  # as stored (float32)
        truth.joints3d.append(shown[[RHD_NAMES.index(n) for n in PROJECT_NAMES]].astype(float))
        truth.valid.append(np.ones(21, dtype=bool))
        truth.extra.setdefault("sides", []).append(side)
        truth.extra.setdefault("labels", []).append(labels)
        truth.extra.setdefault("xyz42", []).append(xyz.astype(np.float32))
    with open(root / split / f"anno_{split}.pickle", "wb") as fo:
        pickle.dump(anno, fo, protocol=2)
    return truth
