"""EgoDexter (Mueller et al., ICCV 2017): egocentric RGB-D sequences, fingertips only.

Layout::

    data/<Seq>/color/*.png             640 x 480 colour frames, in name order
    data/<Seq>/annotation.txt_3D.txt   one line per colour frame: 5 fields separated by ';'
                                       (thumb, index, middle, ring, little), each "x, y, z" in
                                       millimetres in the depth-camera frame; a missing tip is an
                                       empty field or all zeros
    data/<Seq>/annotation.txt          2D tips in the depth image (not used here)

Sequences: Desk, Fruits, Kitchen, Rotunda. 3D tips are moved to the colour camera with the
published colour extrinsics (``X_color = R X_depth + t``, mm) and projected with the colour
intrinsics; values as in the public loader of Minimal-Hand-pytorch
(``MengHao666/Minimal-Hand-pytorch``, ``datasets/egodexter.py``). The hands are left hands (same
source) and are mirrored into right hands here. Only the 5 fingertip slots
(``FINGERTIPS_TO_PROJECT``) can be valid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seqhand.conventions import FINGERTIPS_TO_PROJECT, MM_TO_M, NUM_JOINTS
from seqhand.data.roots import resolve_root
from seqhand.data.types import (
    RealDataset,
    RealSample,
    format_error,
    list_images,
    mirror_view,
    project,
    read_image,
    require_dir,
    require_file,
)

SEQUENCES: tuple[str, ...] = ("Desk", "Fruits", "Kitchen", "Rotunda")
ANNOTATION_3D = "annotation.txt_3D.txt"
COLOR_INTRINSICS = np.array([[617.173, 0.0, 315.453], [0.0, 617.173, 242.259], [0.0, 0.0, 1.0]])
# depth -> colour: X_color = R X_depth + t (millimetres)
COLOR_EXTRINSICS = np.array(
    [
        [1.0000, 0.00090442, -0.0074, 20.2365],
        [-0.00071933, 0.9997, 0.0248, 1.2846],
        [0.0075, -0.0248, 0.9997, 5.7360],
    ]
)
NUM_TIPS = 5


def parse_fingertip_file(
    path: Path, invalid: Callable[[np.ndarray], bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Parse a ';'-separated fingertip annotation file (EgoDexter / Dexter+Object format).

    Each non-empty line holds 5 fields (thumb -> little), each ``"x, y, z"``; an empty field or
    one for which ``invalid(xyz)`` is True marks a missing tip; a trailing ';' is allowed.

    Returns:
        ``(tips (F, 5, 3) mm, valid (F, 5) bool)``; missing tips are NaN.

    Raises:
        DatasetFormatError: naming ``path`` and the 1-based line of the first malformed entry.
    """
    require_file(path, "fingertip annotation")
    tips, valid = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for ln, line in enumerate(lines, start=1):
        fields = [s.strip() for s in line.split(";")]
        if len(fields) == NUM_TIPS + 1 and fields[-1] == "":
            fields = fields[:-1]
        if len(fields) != NUM_TIPS:
            raise format_error(
                path, f"expected {NUM_TIPS} ';'-separated fingertip fields, found {len(fields)}", ln
            )
        row = np.full((NUM_TIPS, 3), np.nan)
        ok = np.zeros(NUM_TIPS, dtype=bool)
        for k, fld in enumerate(fields):
            if fld == "":
                continue
            parts = [p.strip() for p in fld.split(",")]
            if len(parts) != 3:
                raise format_error(path, f"field {k + 1}: expected 'x, y, z', found {fld!r}", ln)
            try:
                xyz = np.array([float(p) for p in parts])
            except ValueError:
                raise format_error(path, f"field {k + 1}: not a number in {fld!r}", ln) from None
            if not np.all(np.isfinite(xyz)) or invalid(xyz):
                continue
            row[k], ok[k] = xyz, True
        tips.append(row)
        valid.append(ok)
    if not tips:
        return np.zeros((0, NUM_TIPS, 3)), np.zeros((0, NUM_TIPS), dtype=bool)
    return np.stack(tips), np.stack(valid)


def _zero_tip(xyz: np.ndarray) -> bool:
    return bool(np.all(np.abs(xyz) < 1e-6))


class FingertipSequences(RealDataset):
    """Shared machinery of the fingertip-only, sequential benchmarks (EgoDexter, D+O)."""

    sequential = True
    root_kind = "wrist"
    color_intrinsics: np.ndarray = COLOR_INTRINSICS

    def _setup(self, hand_side: str) -> None:
        if hand_side not in ("left", "right"):
            raise ValueError(f"hand_side must be 'left' or 'right', got {hand_side!r}")
        self.hand_side = hand_side
        self._frames: list[tuple[str, int, Path, np.ndarray, np.ndarray]] = []

    def _add_sequence(self, seq: str, images: list[Path], tips_mm, valid, ann: Path) -> None:
        if len(images) != len(tips_mm):
            raise format_error(
                ann,
                f"expected one annotation line per colour frame ({len(images)} frames in "
                f"{images[0].parent if images else 'the colour folder'}), found {len(tips_mm)}",
            )
        start = len(self._frames)
        for f, (img, t, v) in enumerate(zip(images, self.depth_to_color(tips_mm) * MM_TO_M, valid)):
            self._frames.append((seq, f, img, t, v))
        self._sequences[seq] = list(range(start, len(self._frames)))

    def depth_to_color(self, tips_mm: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> RealSample:
        seq, frame, path, tips, tvalid = self._frames[index]
        image = read_image(path)
        joints3d = np.zeros((NUM_JOINTS, 3))
        valid = np.zeros(NUM_JOINTS, dtype=bool)
        ids = list(FINGERTIPS_TO_PROJECT)
        joints3d[ids] = np.where(tvalid[:, None], tips, 0.0)
        valid[ids] = tvalid
        K = self.color_intrinsics.copy()
        joints2d = np.zeros((NUM_JOINTS, 2))
        joints2d[valid] = project(joints3d[valid], K)
        mirrored = self.hand_side == "left"
        if mirrored:
            image, joints3d, joints2d, K, _ = mirror_view(image, joints3d, joints2d, K)
            joints3d = np.where(valid[:, None], joints3d, 0.0)  # unannotated stay 0
            joints2d = np.where(valid[:, None], joints2d, 0.0)
        return RealSample(
            image=image,
            joints3d=joints3d,
            joints2d=joints2d,
            joint_valid=valid,
            K=K,
            dataset=self.name,
            index=index,
            sequence_id=seq,
            frame_index=frame,
            mirrored=mirrored,
            image_path=str(path),
        )


class EgoDexter(FingertipSequences):
    """EgoDexter as a sequential, fingertip-only dataset of :class:`RealSample`.

    Args:
        root: the directory holding ``data/``; default ``$SEQHAND_DATA/EgoDexter``.
        sequences: subset of :data:`SEQUENCES` (default all four).
        annotation_name: the 3D annotation file name in each sequence folder (corrected
            re-annotations can be used by passing their name).
        hand_side: the side of the recorded hands; ``"left"`` (published data) is mirrored.
    """

    name = "egodexter"
    color_intrinsics = COLOR_INTRINSICS

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        sequences: Sequence[str] = SEQUENCES,
        annotation_name: str = ANNOTATION_3D,
        hand_side: str = "left",
    ) -> None:
        super().__init__()
        self._setup(hand_side)
        self.root = resolve_root("egodexter", root)
        data = require_dir(self.root / "data", "EgoDexter data")
        for seq in sequences:
            folder = require_dir(data / seq, f"EgoDexter sequence {seq}")
            images = list_images(require_dir(folder / "color", f"{seq} colour"))
            ann = folder / annotation_name
            tips, valid = parse_fingertip_file(ann, _zero_tip)
            self._add_sequence(seq, images, tips, valid, ann)

    def depth_to_color(self, tips_mm: np.ndarray) -> np.ndarray:
        r, t = COLOR_EXTRINSICS[:, :3], COLOR_EXTRINSICS[:, 3]
        return tips_mm @ r.T + t
