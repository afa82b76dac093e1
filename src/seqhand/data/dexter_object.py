"""Dexter+Object (Sridhar et al., ECCV 2016): hand-object RGB-D sequences, fingertips only.

Layout::

    data/<Seq>/color/Color_%04d.bmp          640 x 480 colour frames (BMP), in name order
    data/<Seq>/annotations/<Seq>3D.txt       one line per colour frame: 5 ';'-separated fields
                                             (thumb, index, middle, ring, little), "x, y, z" mm
                                             in the depth-camera frame; z == 32001 marks an
                                             unannotated tip
    data/<Seq>/annotations/<Seq>2D.txt       2D tips in the depth image (not used here)

Sequences: Grasp1, Grasp2, Occlusion, Rigid, Pinch, Rotate. The 3D labels' x and y axes point
the other way from the colour camera's (x left, y up), so a tip goes to the colour camera as
``X_color = R diag(-1, -1, 1) X_depth + t`` (mm) and is projected with the colour intrinsics
(fx 587.45209, fy 600.67456, cx 325, cy 249). Values and the sign flip follow the public loader
of Minimal-Hand-pytorch (``MengHao666/Minimal-Hand-pytorch``, ``datasets/dexter_object.py``);
another public loader of the set uses the same intrinsics and extrinsics. The recorded hands are
left hands (same source) and are mirrored into right hands here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from seqhand.data.egodexter import FingertipSequences, parse_fingertip_file
from seqhand.data.roots import resolve_root
from seqhand.data.types import list_images, require_dir

SEQUENCES: tuple[str, ...] = ("Grasp1", "Grasp2", "Occlusion", "Rigid", "Pinch", "Rotate")
INVALID_Z_MM = 32001.0
COLOR_INTRINSICS = np.array([[587.45209, 0.0, 325.0], [0.0, 600.67456, 249.0], [0.0, 0.0, 1.0]])
COLOR_EXTRINSICS = np.array(
    [
        [0.9999, 0.0034, 0.0161, 19.0473],
        [-0.0033, 1.0000, -0.0079, -1.8514],
        [-0.0162, 0.0079, 0.9998, -4.7501],
    ]
)
DEPTH_INTRINSICS = np.array([[224.502, 0.0, 160.0], [0.0, 230.494, 120.0], [0.0, 0.0, 1.0]])
AXIS_FLIP = np.array([-1.0, -1.0, 1.0])


def _invalid_tip(xyz: np.ndarray) -> bool:
    return bool(xyz[2] == INVALID_Z_MM)


class DexterObject(FingertipSequences):
    """Dexter+Object as a sequential, fingertip-only dataset of :class:`RealSample`.

    Args:
        root: the directory holding ``data/``; default ``$SEQHAND_DATA/DexterObject``.
        sequences: subset of :data:`SEQUENCES` (default all six).
        hand_side: side of the recorded hands; ``"left"`` (published data) is mirrored.
    """

    name = "dexter_object"
    color_intrinsics = COLOR_INTRINSICS

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        sequences: Sequence[str] = SEQUENCES,
        hand_side: str = "left",
    ) -> None:
        super().__init__()
        self._setup(hand_side)
        self.root = resolve_root("dexter_object", root)
        data = require_dir(self.root / "data", "Dexter+Object data")
        for seq in sequences:
            folder = require_dir(data / seq, f"Dexter+Object sequence {seq}")
            images = list_images(require_dir(folder / "color", f"{seq} colour"))
            ann = folder / "annotations" / f"{seq}3D.txt"
            tips, valid = parse_fingertip_file(ann, _invalid_tip)
            self._add_sequence(seq, images, tips, valid, ann)

    def depth_to_color(self, tips_mm: np.ndarray) -> np.ndarray:
        r, t = COLOR_EXTRINSICS[:, :3], COLOR_EXTRINSICS[:, 3]
        return (tips_mm * AXIS_FLIP) @ r.T + t
