"""RHD, the Rendered Hand Pose Dataset (Zimmermann & Brox, ICCV 2017), a training source.

Layout (``RHD_published_v2``)::

    <split>/color/%05d.png          320 x 320 renders
    <split>/mask/%05d.png           labels: 0 background, 1 person, 2-17 left hand, 18-33 right
    <split>/anno_<split>.pickle     {sample_id: {'uv_vis': (42, 3), 'xyz': (42, 3) metres,
                                    'K': (3, 3)}} with split in {training, evaluation}

The 42 keypoints are the left hand (0-20) then the right hand (21-41), each wrist then thumb ->
little finger, tip -> base (``RHD_TO_PROJECT``). Each sample keeps the hand with more visible
keypoints (ties go to the right hand), the choice of common loaders (e.g. Minimal-Hand-pytorch
``datasets/rhd.py``); a left hand is mirrored into a right hand. The pickle is read with an
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
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = resolve_root("rhd", root)
        self.split_dir = require_dir(self.root / split, f"RHD {split}")
        self.annotation_path = self.split_dir / f"anno_{split}.pickle"
        self._anno = load_rhd_annotations(self.annotation_path)
        self._ids = sorted(self._anno)
        self.load_mask = load_mask

    def __len__(self) -> int:
        return len(self._ids)

    def hand_side(self, index: int) -> str:
        """``"left"`` or ``"right"``: the hand with more visible keypoints (ties: right)."""
        vis = self._anno[self._ids[index]]["uv_vis"][:, 2] == 1
        return "left" if vis[RHD_LEFT_SLICE].sum() > vis[RHD_RIGHT_SLICE].sum() else "right"

    def __getitem__(self, index: int) -> RealSample:
        sid = self._ids[index]
        a = self._anno[sid]
        side = self.hand_side(index)
        sl = RHD_LEFT_SLICE if side == "left" else RHD_RIGHT_SLICE
        order = list(RHD_TO_PROJECT)
        joints3d = a["xyz"][sl][order]
        joints2d = a["uv_vis"][sl, :2][order]
        visible = a["uv_vis"][sl, 2][order] == 1
        K = a["K"].copy()
        img_path = self.split_dir / "color" / f"{sid:05d}.png"
        image = read_image(img_path)
        mask = None
        if self.load_mask:
            mask_path = self.split_dir / "mask" / f"{sid:05d}.png"
            labels = read_gray(mask_path)
            if labels.shape != image.shape[:2]:
                raise DatasetFormatError(
                    f"{mask_path}: mask is {labels.shape}, "
                    f"image {img_path.name} is {image.shape[:2]}"
                )
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
