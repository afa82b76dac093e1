"""RHD, the Rendered Hand Pose Dataset (Zimmermann & Brox, ICCV 2017), a training source.

Layout (``RHD_published_v2``)::

    <split>/color/%05d.png          320 x 320 renders
    <split>/mask/%05d.png           labels: 0 background, 1 person, 2-17 left hand, 18-33 right
    <split>/anno_<split>.pickle     {sample_id: {'uv_vis': (42, 3), 'xyz': (42, 3) metres,
                                    'K': (3, 3)}} with split in {training, evaluation}

The 42 keypoints are the left hand (0-20) then the right hand (21-41), each wrist then thumb ->
little finger, tip -> base (``RHD_TO_PROJECT``). Each sample keeps one hand, by default the one
with more mask pixels (labels 2-17 left, 18 and above right; ties go to the right hand), as
hand3d's reader does (``data/BinaryDbReader.py``: ``num_px_left_hand > num_px_right_hand``);
``hand_choice="visible"`` keeps the hand with more visible keypoints instead (Minimal-Hand-pytorch
``datasets/rhd.py``). A left hand is mirrored into a right hand. The pickle is read with an
unpickler that only admits numpy arrays, so the file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from seqhand.conventions import NUM_JOINTS, RHD_LEFT_SLICE, RHD_RIGHT_SLICE, RHD_TO_PROJECT
from seqhand.data.roots import resolve_root
from seqhand.data.types import (
    DatasetFormatError,
    RealDataset,
    RealSample,
    format_error,
    mirror_view,
    read_gray,
    read_image,
    require_dir,
    require_file,
)

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core import multiarray as _multiarray

SPLITS = ("training", "evaluation")
LEFT_MASK_LABELS = (2, 17)  # inclusive range of the left hand's part labels
RIGHT_MASK_LABELS = (18, 33)
HAND_CHOICES = ("mask", "visible")


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what a pickle of numpy arrays in dicts needs; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise pickle.UnpicklingError(
            f"refused global '{module}.{name}' (an RHD annotation holds only numpy arrays; "
            "nothing was executed)"
        )


def _latin1_encode(obj, encoding="utf-8"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused a _codecs.encode call that is not str -> latin1")
    return obj.encode("latin1")


def load_rhd_annotations(path: Path) -> dict[int, dict[str, np.ndarray]]:
    """Read and check ``anno_<split>.pickle`` -> ``{sample_id: {'uv_vis', 'xyz', 'K'}}``."""
    require_file(path, "RHD annotation")
    try:
        raw = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise format_error(path, f"not a readable RHD annotation pickle ({e})") from None
    if not isinstance(raw, dict):
        raise format_error(path, f"expected a dict of samples, found {type(raw).__name__}")
    shapes = {"uv_vis": (42, 3), "xyz": (42, 3), "K": (3, 3)}
    out: dict[int, dict[str, np.ndarray]] = {}
    for sid in sorted(raw):
        entry = raw[sid]
        if not isinstance(entry, dict):
            raise format_error(path, f"sample {sid}: expected a dict, found {type(entry).__name__}")
        rec = {}
        for key, shape in shapes.items():
            if key not in entry:
                raise format_error(path, f"sample {sid}: missing key '{key}' (has {sorted(entry)})")
            a = np.asarray(entry[key], dtype=np.float64)
            if a.shape != shape:
                raise format_error(path, f"sample {sid}: '{key}' must be {shape}, found {a.shape}")
            rec[key] = a
        out[int(sid)] = rec
    return out


class RHD(RealDataset):
    """RHD as a dataset of right-hand :class:`RealSample` (each image a one-frame sequence).

    Args:
        root: the ``RHD_published_v2`` directory; default ``$SEQHAND_DATA/RHD_published_v2``.
        split: ``"training"`` or ``"evaluation"``.
        load_mask: read the part-label mask and keep the chosen hand's pixels.
        hand_choice: ``"mask"`` (default, hand3d: more mask pixels; reads the mask) or
            ``"visible"`` (more visible keypoints).
    """

    name = "rhd"
    sequential = False
    root_kind = "wrist"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "training",
        *,
        load_mask: bool = True,
        hand_choice: str = "mask",
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if hand_choice not in HAND_CHOICES:
            raise ValueError(f"hand_choice must be one of {HAND_CHOICES}, got {hand_choice!r}")
        self.hand_choice = hand_choice
        self.root = resolve_root("rhd", root)
        self.split_dir = require_dir(self.root / split, f"RHD {split}")
        self.annotation_path = self.split_dir / f"anno_{split}.pickle"
        self._anno = load_rhd_annotations(self.annotation_path)
        self._ids = sorted(self._anno)
        self.load_mask = load_mask

    def __len__(self) -> int:
        return len(self._ids)

    def _labels(self, sid: int, image_shape=None) -> np.ndarray:
        mask_path = self.split_dir / "mask" / f"{sid:05d}.png"
        labels = read_gray(mask_path)
        if image_shape is not None and labels.shape != tuple(image_shape[:2]):
            raise DatasetFormatError(
                f"{mask_path}: mask is {labels.shape}, image {sid:05d}.png is {image_shape[:2]}"
            )
        return labels

    def hand_side(self, index: int, labels: np.ndarray | None = None) -> str:
        """``"left"`` or ``"right"``: with ``hand_choice="mask"`` the hand with more mask pixels
        (hand3d), else the one with more visible keypoints; ties go to the right hand."""
        sid = self._ids[index]
        if self.hand_choice == "mask":
            lab = self._labels(sid) if labels is None else labels
            n_left = int(((lab >= LEFT_MASK_LABELS[0]) & (lab <= LEFT_MASK_LABELS[1])).sum())
            n_right = int((lab >= RIGHT_MASK_LABELS[0]).sum())
            return "left" if n_left > n_right else "right"
        vis = self._anno[sid]["uv_vis"][:, 2] == 1
        return "left" if vis[RHD_LEFT_SLICE].sum() > vis[RHD_RIGHT_SLICE].sum() else "right"

    def __getitem__(self, index: int) -> RealSample:
        sid = self._ids[index]
        a = self._anno[sid]
        img_path = self.split_dir / "color" / f"{sid:05d}.png"
        image = read_image(img_path)
        labels = None
        if self.load_mask or self.hand_choice == "mask":
            labels = self._labels(sid, image.shape)
        side = self.hand_side(index, labels)
        sl = RHD_LEFT_SLICE if side == "left" else RHD_RIGHT_SLICE
        order = list(RHD_TO_PROJECT)
        joints3d = a["xyz"][sl][order]
        joints2d = a["uv_vis"][sl, :2][order]
        visible = a["uv_vis"][sl, 2][order] == 1
        K = a["K"].copy()
        mask = None
        if self.load_mask:
            lo, hi = LEFT_MASK_LABELS if side == "left" else RIGHT_MASK_LABELS
            mask = (labels >= lo) & (labels <= hi)
        mirrored = side == "left"
        if mirrored:
            image, joints3d, joints2d, K, mask = mirror_view(image, joints3d, joints2d, K, mask)
        return RealSample(
            image=image,
            joints3d=joints3d,
            joints2d=joints2d,
            joint_valid=np.ones(NUM_JOINTS, dtype=bool),
            K=K,
            mask=mask,
            dataset=self.name,
            index=index,
            mirrored=mirrored,
            joint_visible=visible,
            image_path=str(img_path),
        )
