"""The types every real-dataset loader yields, the loaders' base class and their errors.

A loader turns one published benchmark layout into :class:`RealSample` objects that all follow
the project's conventions (``seqhand.conventions``): the project's 21-joint order, a right hand
(left hands are mirrored at this boundary and flagged ``mirrored=True``), metres in the camera
frame, pixels with the origin at the top-left corner.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from seqhand.conventions import NUM_JOINTS
from seqhand.errors import SeqhandError

RootKind = Literal["wrist", "palm"]
PoseOrigin = Literal["flat", "mean"]


class DatasetError(SeqhandError):
    """A dataset cannot be used as given (missing directory, missing files)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset root (or a file the published layout requires) does not exist."""


class DatasetFormatError(DatasetError, ValueError):
    """A dataset file does not follow the published format; the message names file and line."""


def format_error(path: str | os.PathLike, msg: str, line: int | None = None) -> DatasetFormatError:
    """Build a :class:`DatasetFormatError` whose message starts with ``file[:line]:``."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetFormatError(f"{where}: {msg}")


@dataclasses.dataclass
class ManoParams:
    """MANO parameters as a dataset publishes them (right hand).

    Attributes:
        global_orient: ``(3,)`` axis-angle root rotation (radians).
        hand_pose: ``(45,)`` axis-angle finger articulation (radians).
        betas: ``(10,)`` shape coefficients.
        pose_origin: what a zero ``hand_pose`` means: ``"mean"`` (MANO's ``hands_mean`` is added,
            as in FreiHAND's annotations) or ``"flat"``.
        extras: dataset-specific numbers that come with the fit (FreiHAND: ``uv_root`` (2,) in
            pixels and ``scale`` (1,), its weak-perspective root placement).
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    pose_origin: PoseOrigin
    extras: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(kw_only=True)
class RealSample:
    """One frame of a real benchmark, in the project's conventions.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB (horizontally flipped if ``mirrored``).
        joints3d: ``(21, 3)`` metres in the camera frame of ``image`` (x right, y down, z forward),
            project joint order, right hand; ``None`` if the split has no 3D labels.
        joints2d: ``(21, 2)`` pixels in ``image``; ``None`` if unavailable.
        joint_valid: ``(21,)`` bool, which rows of ``joints3d``/``joints2d`` are annotated
            (fingertip-only sets mark at most the 5 tips).
        K: ``(3, 3)`` intrinsics of ``image`` (``cx`` already mirrored), or ``None``.
        mask: ``(H, W)`` bool hand mask, or ``None``.
        verts3d: ``(778, 3)`` metres, or ``None``.
        mano: :class:`ManoParams` or ``None``.
        dataset: dataset name (``"freihand"``, ``"stb"``, ...).
        index: position of this sample in its dataset.
        sequence_id: sequence name for sequential sets (``None`` otherwise).
        frame_index: position of the frame inside its sequence (0 for single images).
        mirrored: True if a left hand was mirrored into a right hand (x -> -x in camera space,
            image flipped, 2D x -> W - 1 - x); undo with :func:`unmirror_points`.
        root_kind: what slot 0 of the joints is: ``"wrist"``, or STB's ``"palm"`` centre.
        joint_visible: ``(21,)`` bool 2D visibility where the dataset gives it (RHD), else None.
        metric_scale: FreiHAND's per-sample reference bone length (metres), else None.
        image_path: the file the image was read from.
    """

    image: np.ndarray
    joints3d: np.ndarray | None
    joints2d: np.ndarray | None
    joint_valid: np.ndarray
    K: np.ndarray | None
    dataset: str
    index: int
    mask: np.ndarray | None = None
    verts3d: np.ndarray | None = None
    mano: ManoParams | None = None
    sequence_id: str | None = None
    frame_index: int = 0
    mirrored: bool = False
    root_kind: RootKind = "wrist"
    joint_visible: np.ndarray | None = None
    metric_scale: float | None = None
    image_path: str = ""


# ------------------------------------------------------------------------------------------
# Mirroring at the dataset boundary
# ------------------------------------------------------------------------------------------
def mirror_points3d(points: np.ndarray) -> np.ndarray:
    """x -> -x in camera space, ``(..., 3)`` (a left hand becomes a right hand)."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] *= -1.0
    return out


def mirror_points2d(points: np.ndarray, width: int) -> np.ndarray:
    """x -> W - 1 - x for ``(..., 2)`` pixel coordinates of an image ``width`` pixels wide."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics of the flipped image: ``cx -> W - 1 - cx`` (``K`` then projects mirrored 3D
    points onto mirrored 2D points: ``u' = fx (-X)/Z + W - 1 - cx = W - 1 - u``)."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[0, 2] = (width - 1) - out[0, 2]
    out[0, 1] *= -1.0  # skew, if any, changes sign under the flip
    return out


def mirror_view(image: np.ndarray, joints3d: np.ndarray, joints2d: np.ndarray, K: np.ndarray,
                mask: np.ndarray | None = None):  # fmt: skip
    """Mirror a left-hand view into a right-hand one: image (and mask) flipped left-right,
    3D x -> -x, 2D u -> W-1-u, intrinsics mirrored so projecting the 3D gives the 2D again.

    Returns ``(image, joints3d, joints2d, K, mask)``.
    """
    w = image.shape[1]
    flip = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
    return (np.ascontiguousarray(image[:, ::-1]), mirror_points3d(joints3d),
            mirror_points2d(joints2d, w), mirror_intrinsics(K, w), flip)  # fmt: skip


def unmirror_points(points: np.ndarray, mirrored: bool, width: int | None = None) -> np.ndarray:
    """Undo the boundary mirror on model outputs: 3D ``(..., 3)`` or, with ``width``, 2D."""
    if not mirrored:
        return np.asarray(points, dtype=np.float64)
    if points.shape[-1] == 3:
        return mirror_points3d(points)
    if width is None:
        raise ValueError("un-mirroring 2D points needs the image width")
    return mirror_points2d(points, width)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of ``(..., 3)`` camera-frame points with ``(3, 3)`` ``K`` -> pixels."""
    uvw = np.asarray(points, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return uvw[..., :2] / uvw[..., 2:3]


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------
def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetNotFoundError(f"{path}: expected the {what} directory, found nothing there")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: expected the {what} file, found nothing there")
    return path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB; a missing or unreadable file raises a DatasetError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: image file missing")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except OSError as e:
        raise format_error(path, f"cannot decode the image ({e})") from None


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """``(H, W)`` uint8 single channel (a colour file is reduced to its first channel)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: image file missing")
    try:
        with Image.open(path) as im:
            a = np.asarray(im)
    except OSError as e:
        raise format_error(path, f"cannot decode the image ({e})") from None
    return a[..., 0] if a.ndim == 3 else a


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str):
    """Sort key treating digit runs as numbers (``img_2.png`` < ``img_10.png``)."""
    return [int(t) if t.isdigit() else t for t in _DIGITS.split(name)]


def list_images(directory: Path) -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".bmp"}
    files = [p for p in directory.iterdir() if p.suffix.lower() in exts and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


# ------------------------------------------------------------------------------------------
# The loaders' base class
# ------------------------------------------------------------------------------------------
class RealDataset(torch.utils.data.Dataset):
    """Base of the real-benchmark loaders: a map-style dataset of :class:`RealSample`.

    Subclasses fill ``self._sequences`` (an ordered dict ``seq_id -> [dataset indices]``, in
    frame order) and implement ``__len__`` / ``__getitem__``. Non-sequential sets expose each
    image as its own one-frame sequence, so an evaluator can treat every set the same way.
    """

    name: str = "real"
    sequential: bool = False
    root_kind: RootKind = "wrist"

    def __init__(self) -> None:
        self._sequences: dict[str, list[int]] = {}

    def sequences(self) -> list[tuple[str, list[int]]]:
        """``[(sequence_id, [dataset indices in frame order]), ...]`` in dataset order."""
        if not self._sequences:
            return [(f"{self.name}_{i:08d}", [i]) for i in range(len(self))]
        return [(k, list(v)) for k, v in self._sequences.items()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, sequences={len(self.sequences())})"


def empty_valid() -> np.ndarray:
    return np.zeros(NUM_JOINTS, dtype=bool)


def collate_samples(samples: list[RealSample]) -> dict:
    """Batch samples for a ``DataLoader``: array fields present in every sample are stacked into
    tensors (images stay uint8 ``(B, H, W, 3)``, so equal sizes are required); fields missing in
    any sample become ``None``; the rest are lists."""
    out: dict = {}
    for f in dataclasses.fields(RealSample):
        vals = [getattr(s, f.name) for s in samples]
        if all(isinstance(v, np.ndarray) for v in vals):
            shapes = {v.shape for v in vals}
            out[f.name] = torch.from_numpy(np.stack(vals)) if len(shapes) == 1 else vals
        elif any(v is None for v in vals) and f.name != "sequence_id":
            out[f.name] = None if all(v is None for v in vals) else vals
        else:
            out[f.name] = vals
    return out
