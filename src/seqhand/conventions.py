"""The project's conventions, written down once.

Everything that names a joint, a unit, a frame or a slot of the network output lives here.
Other orders (MANO's kinematic order, BigHand, STB, RHD, fingertip-only sets) are *named data*
with explicit index maps; they are converted at dataset boundaries and nowhere else.

Units: metres and radians inside; millimetres only in reported metrics; pixels for image
coordinates (origin at the top-left corner, x right, y down).
Canonical hand: right. Left hands are mirrored (x -> -x) at the dataset boundary.
See ``docs/conventions.md`` for the write-up with pictures.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------
M_TO_MM = 1000.0
MM_TO_M = 1.0 / M_TO_MM

# --------------------------------------------------------------------------------------------
# The project's 21-joint order (FreiHAND's): wrist, then per finger thumb->pinky: MCP, PIP, DIP, TIP
# (for the thumb the anatomical CMC, MCP, IP, tip sit in the MCP, PIP, DIP, TIP slots).
# --------------------------------------------------------------------------------------------
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
FINGER_JOINTS = ("mcp", "pip", "dip", "tip")
JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{f}_{j}" for f in FINGERS for j in FINGER_JOINTS
)
NUM_JOINTS = 21
WRIST = 0
TIP_IDS = (4, 8, 12, 16, 20)  # fingertips in the project's order
MCP_IDS = (1, 5, 9, 13, 17)


def finger_of_joint(j: int) -> str | None:
    """Name of the finger a project joint belongs to (``None`` for the wrist)."""
    return None if j == 0 else FINGERS[(j - 1) // 4]


# Parent of each project joint (the skeleton drawn in previews, bones for bone-length checks).
JOINT_PARENTS: tuple[int, ...] = (-1,) + tuple(
    0 if k == 0 else 1 + 4 * f + k - 1 for f in range(5) for k in range(4)
)
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(JOINT_PARENTS) if p >= 0)

# --------------------------------------------------------------------------------------------
# MANO's kinematic order: 16 joints = wrist, index(3), middle(3), pinky(3), ring(3), thumb(3).
# --------------------------------------------------------------------------------------------
MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
MANO_NUM_JOINTS = 16
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
MANO_FINGER_CHAINS = {  # finger -> its three MANO joints, base to tip
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "pinky": (7, 8, 9),
    "ring": (10, 11, 12),
    "thumb": (13, 14, 15),
}
# Fingertip vertex ids of the real MANO mesh (thumb, index, middle, ring, pinky): the ids
# FreiHAND's ground truth was made with. smplx uses 554/671 for ring/pinky; we name our choice.
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (744, 320, 443, 555, 672)

# "MANO-21": the 16 kinematic joints followed by the 5 tips (thumb, index, middle, ring, pinky).
# MANO21_TO_PROJECT[i] = index into MANO-21 of project joint i.
MANO21_TO_PROJECT: tuple[int, ...] = (
    0,
    13, 14, 15, 16,
    1, 2, 3, 17,
    4, 5, 6, 18,
    10, 11, 12, 19,
    7, 8, 9, 20,
)  # fmt: skip

# --------------------------------------------------------------------------------------------
# Other datasets' orders. Each map M is such that project_joints = dataset_joints[M].
# --------------------------------------------------------------------------------------------
# BigHand2.2M: wrist, MCPs thumb->pinky, then (PIP, DIP, TIP) of thumb, index, middle, ring, pinky.
BIGHAND_TO_PROJECT: tuple[int, ...] = (
    0,
    1, 6, 7, 8,
    2, 9, 10, 11,
    3, 12, 13, 14,
    4, 15, 16, 17,
    5, 18, 19, 20,
)  # fmt: skip
# STB: palm centre, then pinky->thumb, each finger base->tip (MCP, PIP, DIP, TIP).
# Slot 0 of the project order receives STB's *palm centre* (not a wrist): see
# ``STB_ROOT_IS_PALM`` and docs/conventions.md for how the model side predicts a palm point.
STB_TO_PROJECT: tuple[int, ...] = (
    0,
    17, 18, 19, 20,
    13, 14, 15, 16,
    9, 10, 11, 12,
    5, 6, 7, 8,
    1, 2, 3, 4,
)  # fmt: skip
STB_ROOT_IS_PALM = True
# RHD (per hand, 21 of its 42): wrist, then thumb->pinky each tip->base (TIP, DIP, PIP, MCP).
RHD_TO_PROJECT: tuple[int, ...] = (
    0,
    4, 3, 2, 1,
    8, 7, 6, 5,
    12, 11, 10, 9,
    16, 15, 14, 13,
    20, 19, 18, 17,
)  # fmt: skip
RHD_LEFT_SLICE = slice(0, 21)  # RHD's 42 keypoints: left hand first, then right
RHD_RIGHT_SLICE = slice(21, 42)
# FreiHAND uses the project's order.
FREIHAND_TO_PROJECT: tuple[int, ...] = tuple(range(21))
# Fingertip-only sets (EgoDexter, Dexter+Object): thumb, index, middle, ring, little.
FINGERTIPS_TO_PROJECT: tuple[int, ...] = TIP_IDS

JOINT_ORDERS: dict[str, tuple[int, ...]] = {
    "project": tuple(range(21)),
    "freihand": FREIHAND_TO_PROJECT,
    "mano21": MANO21_TO_PROJECT,
    "bighand": BIGHAND_TO_PROJECT,
    "stb": STB_TO_PROJECT,
    "rhd": RHD_TO_PROJECT,
}


def invert_order(order: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Inverse permutation: if ``project = data[order]`` then ``data = project[invert(order)]``."""
    inv = np.empty(len(order), dtype=np.int64)
    inv[np.asarray(order)] = np.arange(len(order))
    return tuple(int(i) for i in inv)


def to_project_order(joints: np.ndarray, order: str) -> np.ndarray:
    """Reorder ``(..., 21, D)`` joints given in the named ``order`` into the project's order."""
    if order not in JOINT_ORDERS:
        raise ValueError(f"unknown joint order {order!r}; known: {sorted(JOINT_ORDERS)}")
    if joints.shape[-2] != 21:
        raise ValueError(f"expected (..., 21, D) joints, got shape {tuple(joints.shape)}")
    return joints[..., list(JOINT_ORDERS[order]), :]


def from_project_order(joints: np.ndarray, order: str) -> np.ndarray:
    """Inverse of :func:`to_project_order`."""
    if order not in JOINT_ORDERS:
        raise ValueError(f"unknown joint order {order!r}; known: {sorted(JOINT_ORDERS)}")
    return joints[..., list(invert_order(JOINT_ORDERS[order])), :]


def mirror_x(points: np.ndarray) -> np.ndarray:
    """Mirror 3D points (..., 3) through the x=0 plane: a left hand becomes a right hand."""
    out = np.array(points, copy=True)
    out[..., 0] *= -1
    return out


# --------------------------------------------------------------------------------------------
# Hand-model parameters and the network's 26-number output
# --------------------------------------------------------------------------------------------
NUM_POSE = 45  # 15 joints x axis-angle, hand pose without the global orientation
NUM_BETAS = 10
NUM_PCA = 10
# [s, tx, ty, rx, ry, rz, theta_pca(10), beta(10)]
OUTPUT_SLICES: dict[str, slice] = {
    "scale": slice(0, 1),
    "trans": slice(1, 3),
    "rot": slice(3, 6),
    "pose_pca": slice(6, 16),
    "betas": slice(16, 26),
}
OUTPUT_DIM = 26


def split_output(params):
    """Split a ``(..., 26)`` network output into its named parts (works for numpy and torch)."""
    if params.shape[-1] != OUTPUT_DIM:
        raise ValueError(f"expected (..., {OUTPUT_DIM}) parameters, got {tuple(params.shape)}")
    return {k: params[..., s] for k, s in OUTPUT_SLICES.items()}


# --------------------------------------------------------------------------------------------
# Camera: weak perspective, x2d = s * Pi(R X) + t; R from a 3-vector (Rodrigues); s in pixels
# per metre; t in pixels of the crop. Pi drops z. Image frame: x right, y down, so the camera
# looks along +z with y down (an OpenCV-style frame).
# --------------------------------------------------------------------------------------------
IMAGE_SIZE = 224

# Crops (seqhand.geometry.crop): a square of CROP_FACTOR x the longer side of the hand's tight
# box, centred on the box (paper section 5, "Hand Localizations", after Boukhayma et al.).
CROP_FACTOR = 2.2
HAND_EXTENT_M = 0.18
"""Typical length of a hand's tight bounding box, metres (wrist to middle fingertip)."""
