"""STB, the Stereo Hand Pose Tracking Benchmark (Zhang et al., ICIP 2017), and its palm root.

Layout::

    labels/<Seq>_BB.mat, labels/<Seq>_SK.mat    ``handPara``: 3 x 21 x 1500, millimetres,
                                                 in the Bumblebee left camera / RealSense depth
                                                 camera frame respectively
    images/<Seq>/BB_left_%d.png                  640 x 480 stereo-left images
    images/<Seq>/BB_right_%d.png                 640 x 480 stereo-right images
    images/<Seq>/SK_color_%d.png                 640 x 480 RealSense colour images

Sequences B1..B6 x {Counting, Random}, 1500 frames each; the standard split (hand3d,
Zimmermann & Brox 2017 and the works after it, SeqHAND's [3]) tests on B1Counting and B1Random
and trains on B2-B6. Joint order: palm centre, then pinky, ring, middle, index, thumb, each
MCP -> tip (``STB_TO_PROJECT``); slot 0 of the project order receives the *palm centre*, so
samples carry ``root_kind="palm"``. All hands are left hands: they are mirrored at this boundary.

Views (``view=``): ``"BB-left"`` (the Bumblebee left images, 1,500 per sequence: 3,000 test
frames), ``"BB-both"`` (left and right images, 6,000 test frames: what hand3d's
``data/stb/create_db.m`` writes for its STB evaluation, the right view's labels being the left's
shifted by the stereo baseline, ``X_right = X_left - (120.054 mm, 0, 0)``), or ``"SK"`` (the
RealSense colour images). Each (sequence, view) is its own temporal sequence.

Camera parameters are STB's ``readme.txt`` values (quoted, e.g., in the hand3d STB reader
``lmb-freiburg/hand3d data/BinaryDbReaderSTB.py`` and in hand-graph-cnn's
``hand_shape_pose/data/dataset/real_world_testset.py``). The readme's SK rotation vector and
translation map colour-camera coordinates to depth-camera coordinates,
``X_depth = R X_color + t``; the labels are in the depth frame, so ``X_color = R^T (X_depth - t)``
(the same conversion as hand-graph-cnn's ``SK_xyz_depth2color``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import scipy.io

from seqhand.conventions import MM_TO_M, NUM_JOINTS, STB_TO_PROJECT
from seqhand.data.roots import resolve_root
from seqhand.data.types import (
    RealDataset,
    RealSample,
    format_error,
    mirror_view,
    project,
    read_image,
    require_dir,
    require_file,
)

SEQUENCES: tuple[str, ...] = tuple(f"B{i}{k}" for i in range(1, 7) for k in ("Counting", "Random"))
SPLIT_SEQUENCES: dict[str, tuple[str, ...]] = {
    "test": ("B1Counting", "B1Random"),
    "train": tuple(s for s in SEQUENCES if not s.startswith("B1")),
    "all": SEQUENCES,
}
# Bumblebee2 stereo camera (left image), from STB's readme.txt.
BB_INTRINSICS = np.array(
    [[822.79041, 0.0, 318.47345], [0.0, 822.79041, 250.31296], [0.0, 0.0, 1.0]]
)
BB_BASELINE_MM = 120.054
# RealSense F200 colour camera, and the colour -> depth transform (rotation vector, mm).
SK_INTRINSICS = np.array(
    [[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]]
)
SK_DEPTH_INTRINSICS = np.array(
    [[475.62768, 0.0, 336.41179], [0.0, 474.77709, 238.77962], [0.0, 0.0, 1.0]]
)
SK_ROTVEC = np.array([0.00531, -0.01196, 0.00301])
SK_TRANSLATION_MM = np.array([-24.0381, -0.4563, -1.2326])
IMAGE_PREFIX = {"BB": "BB_left", "SK": "SK_color"}
VIEWS = ("BB-left", "BB-both", "SK")
#: hand3d's STB evaluation set (``create_db.m``: BB left and right images of B1).
HAND3D_STB_VIEW = "BB-both"

# Palm-centre root. MANO-based models in the manopth family predict STB's palm as the mean of
# mesh vertices 95 and 22 (manopth ``ManoLayer(..., root_palm=True)``); from joints alone, the
# STB evaluation codes relate palm and wrist by ``wrist = MCP + 2 (palm - MCP)`` with the *ring*
# MCP (hand3d ``BinaryDbReaderSTB``: keypoint 16 of its order; hand-graph-cnn ``palm2wrist``:
# ``loc_bn_ring_L_01``), i.e. the palm is the midpoint of the wrist and the ring MCP.
MANOPTH_PALM_VERTEX_IDS: tuple[int, int] = (95, 22)
_PALM_MCP = {"ring": 13, "middle": 9}  # project joint ids


def _rodrigues(rotvec: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(rotvec))
    if theta < 1e-12:
        return np.eye(3)
    k = rotvec / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


SK_ROTATION = _rodrigues(SK_ROTVEC)


def sk_depth_to_color(points_mm: np.ndarray) -> np.ndarray:
    """SK labels (depth-camera frame, ``(..., 3)`` mm) -> colour-camera frame (mm)."""
    return (np.asarray(points_mm, dtype=np.float64) - SK_TRANSLATION_MM) @ SK_ROTATION


def sk_color_to_depth(points_mm: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sk_depth_to_color` (``X_depth = R X_color + t``)."""
    return np.asarray(points_mm, dtype=np.float64) @ SK_ROTATION.T + SK_TRANSLATION_MM


def palm_from_joints(joints21: np.ndarray, mcp: str = "ring") -> np.ndarray:
    """STB's palm centre from wrist-rooted joints: ``(wrist + MCP) / 2``.

    Args:
        joints21: ``(..., 21, 3)`` joints in the project order (slot 0 = wrist).
        mcp: ``"ring"`` (default; the relation the STB evaluation codes use, see the module
            notes) or ``"middle"`` (midpoint of wrist and middle MCP).

    Returns:
        ``(..., 3)`` palm points. To compare with STB labels, put it into slot 0:
        ``pred[..., 0, :] = palm_from_joints(pred)``.
    """
    j = np.asarray(joints21)
    if j.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"expected (..., 21, 3) joints, got {j.shape}")
    if mcp not in _PALM_MCP:
        raise ValueError(f"mcp must be one of {sorted(_PALM_MCP)}, got {mcp!r}")
    return 0.5 * (j[..., 0, :] + j[..., _PALM_MCP[mcp], :])


def wrist_from_palm(joints21_palm: np.ndarray, mcp: str = "ring") -> np.ndarray:
    """Inverse of :func:`palm_from_joints` on STB-style joints (slot 0 = palm): returns a copy
    with slot 0 replaced by ``MCP + 2 (palm - MCP)`` (hand3d's ``use_wrist_coord``)."""
    j = np.array(joints21_palm, dtype=np.float64, copy=True)
    m = j[..., _PALM_MCP[mcp], :]
    j[..., 0, :] = m + 2.0 * (j[..., 0, :] - m)
    return j


def palm_from_vertices(vertices: np.ndarray, ids: Sequence[int] = MANOPTH_PALM_VERTEX_IDS):
    """STB palm from a MANO mesh ``(..., 778, 3)``: the mean of ``ids`` (manopth's 95, 22)."""
    v = np.asarray(vertices)
    return v[..., list(ids), :].mean(-2)


def load_stb_labels(path) -> np.ndarray:
    """Read ``handPara`` from an STB label file -> ``(F, 21, 3)`` millimetres, STB order."""
    require_file(path, "STB label")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy's parser raises many types on garbage input
        raise format_error(
            path, f"not a readable MATLAB .mat file ({type(e).__name__}: {e})"
        ) from None
    if "handPara" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise format_error(path, f"expected a variable 'handPara', found {keys}")
    a = np.asarray(mat["handPara"])
    if a.ndim != 3 or a.shape[:2] != (3, NUM_JOINTS) or not np.issubdtype(a.dtype, np.number):
        raise format_error(path, f"'handPara' must be a numeric 3 x 21 x F array, found {a.shape}")
    return a.transpose(2, 1, 0).astype(np.float64)


class STB(RealDataset):
    """STB as a sequential dataset of mirrored (right-hand) :class:`RealSample`.

    Args:
        root: the STB directory holding ``images/`` and ``labels/``; default
            ``$SEQHAND_DATA/STB``.
        split: ``"test"`` (B1Counting, B1Random), ``"train"`` (B2-B6) or ``"all"``; or pass
            ``sequences`` explicitly.
        camera: ``"BB"`` (Bumblebee left image) or ``"SK"`` (RealSense colour image; labels
            converted from the depth to the colour frame). Superseded by ``view``.
        mirror: mirror the left hands into right hands (default True).
        view: ``"BB-left"``, ``"BB-both"`` (hand3d's evaluation set) or ``"SK"``; default
            from ``camera`` (``"BB"`` -> ``"BB-left"``).
    """

    name = "stb"
    sequential = True
    root_kind = "palm"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "test",
        *,
        camera: str = "BB",
        sequences: Sequence[str] | None = None,
        mirror: bool = True,
        view: str | None = None,
    ) -> None:
        super().__init__()
        if camera not in IMAGE_PREFIX:
            raise ValueError(f"camera must be 'BB' or 'SK', got {camera!r}")
        if view is None:
            view = "BB-left" if camera == "BB" else "SK"
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        camera = "SK" if view == "SK" else "BB"
        self.view = view
        if sequences is None:
            if split not in SPLIT_SEQUENCES:
                raise ValueError(f"split must be one of {sorted(SPLIT_SEQUENCES)}, got {split!r}")
            sequences = SPLIT_SEQUENCES[split]
        self.root = resolve_root("stb", root)
        self.camera = camera
        self.mirror = mirror
        self.K = BB_INTRINSICS if camera == "BB" else SK_INTRINSICS
        require_dir(self.root / "labels", "STB labels")
        self._frames: list[tuple[str, int, str]] = []  # (sequence, frame, image prefix)
        self._joints: dict[tuple[str, str], np.ndarray] = {}
        order = list(STB_TO_PROJECT)
        prefixes = ("BB_left", "BB_right") if view == "BB-both" else (IMAGE_PREFIX[camera],)
        for seq in sequences:
            lab = load_stb_labels(self.root / "labels" / f"{seq}_{camera}.mat")
            if camera == "SK":
                lab = sk_depth_to_color(lab)
            for prefix in prefixes:
                xyz = lab - np.array([BB_BASELINE_MM, 0.0, 0.0]) if prefix == "BB_right" else lab
                self._joints[(seq, prefix)] = xyz[:, order] * MM_TO_M
                start = len(self._frames)
                self._frames += [(seq, f, prefix) for f in range(len(lab))]
                name = f"{seq}-BB_right" if prefix == "BB_right" else seq
                self._sequences[name] = list(range(start, len(self._frames)))

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> RealSample:
        seq, f, prefix = self._frames[index]
        path = self.root / "images" / seq / f"{prefix}_{f}.png"
        image = read_image(path)
        joints3d = self._joints[(seq, prefix)][f].copy()
        K = self.K.copy()
        joints2d = project(joints3d, K)
        if self.mirror:
            image, joints3d, joints2d, K, _ = mirror_view(image, joints3d, joints2d, K)
        return RealSample(
            image=image,
            joints3d=joints3d,
            joints2d=joints2d,
            joint_valid=np.ones(NUM_JOINTS, dtype=bool),
            K=K,
            dataset=self.name,
            index=index,
            sequence_id=f"{seq}-BB_right" if prefix == "BB_right" else seq,
            frame_index=f,
            mirrored=self.mirror,
            root_kind="palm",
            image_path=str(path),
        )
