"""FreiHAND (Zimmermann et al., ICCV 2019), read from its published layout.

Layout (``FreiHAND_pub_v2`` plus the evaluation release)::

    training/rgb/%08d.jpg          32,560 unique samples x 4 versions: image i + k * 32560 shows
                                   annotation i in version k of (gs, hom, sample, auto)
    training/mask/%08d.jpg         one mask per unique sample (shared by the 4 versions)
    training_K.json                [N][3][3] intrinsics
    training_xyz.json              [N][21][3] joints, metres, camera frame, project order
    training_mano.json             [N][1][61] = pose 48 (global 3 + hand 45, relative to MANO's
                                   mean hand) + shape 10 + uv_root 2 + scale 1
    training_scale.json            [N] metric length of the reference bone (optional)
    training_verts.json            [N][778][3] metres (optional, large: ``load_verts=True``)
    evaluation/rgb/%08d.jpg        3,960 samples, one version
    evaluation_K.json, evaluation_scale.json, and where released evaluation_xyz.json,
    evaluation_verts.json, evaluation_mano.json

Version order and the index map follow the toolbox's ``sample_version`` (lmb-freiburg/freihand,
``utils/fh_utils.py``). All hands are right hands; nothing is mirrored. Images are 224 x 224.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqhand.conventions import FREIHAND_TO_PROJECT, NUM_JOINTS
from seqhand.data.roots import resolve_root
from seqhand.data.types import (
    ManoParams,
    RealDataset,
    RealSample,
    format_error,
    project,
    read_gray,
    read_image,
    require_dir,
    require_file,
)

VERSIONS: tuple[str, ...] = ("gs", "hom", "sample", "auto")
SPLITS = ("training", "evaluation")
NUM_VERTICES = 778


def load_json(path: Path):
    """Parse a JSON file; a syntax error becomes a DatasetFormatError naming file and line."""
    require_file(path, "annotation")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise format_error(path, f"invalid JSON, column {e.colno}: {e.msg}", e.lineno) from None


def as_array(
    entries, path: Path, shape: tuple[int, ...], what: str, alt: tuple[int, ...] | None = None
) -> np.ndarray:
    """Convert a JSON list of per-sample entries to ``(N, *shape)``; name the first bad entry.

    ``alt`` is a second accepted per-entry shape with the same number of values (reshaped).
    """
    if not isinstance(entries, list):
        raise format_error(
            path, f"expected a list of {what} entries, found {type(entries).__name__}"
        )
    ok = [shape] if alt is None else [shape, alt]
    try:
        arr = np.asarray(entries, dtype=np.float64)
        if arr.shape[1:] in ok:
            return arr.reshape((len(arr),) + shape)
    except (ValueError, TypeError):
        pass
    for i, e in enumerate(entries):
        try:
            a = np.asarray(e, dtype=np.float64)
        except (ValueError, TypeError):
            raise format_error(path, f"entry {i}: {what} is not numeric / ragged") from None
        if a.shape not in ok:
            raise format_error(
                path, f"entry {i}: expected a {what} of shape {shape}, found {a.shape}"
            )
    raise format_error(path, f"expected {what} entries of shape {shape}")  # pragma: no cover


class FreiHAND(RealDataset):
    """FreiHAND as a dataset of :class:`RealSample` (each image is a one-frame sequence).

    Args:
        root: the FreiHAND directory; default ``$SEQHAND_DATA/FreiHAND``.
        split: ``"training"`` or ``"evaluation"``.
        versions: training image versions to include, any of ``("gs", "hom", "sample",
            "auto")`` or ``"all"`` (the paper's 130,240 images). Evaluation has ``gs`` only.
        load_verts: also read ``*_verts.json`` (a ~1 GB file for training) when it exists.
        load_mask: read ``training/mask`` (training only).
    """

    name = "freihand"
    sequential = False
    root_kind = "wrist"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "training",
        versions: str | Sequence[str] = "all",
        *,
        load_verts: bool = False,
        load_mask: bool = True,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = resolve_root("freihand", root)
        self.split = split
        if isinstance(versions, str):
            versions = VERSIONS if versions == "all" else (versions,)
        versions = tuple(versions)
        bad = [v for v in versions if v not in VERSIONS]
        if bad or not versions:
            raise ValueError(f"versions must be drawn from {VERSIONS} or 'all', got {versions}")
        if split == "evaluation":
            if versions not in (("gs",), VERSIONS):
                raise ValueError("the evaluation split has only the 'gs' version")
            versions = ("gs",)
        self.versions = versions
        self.image_dir = require_dir(self.root / split / "rgb", f"FreiHAND {split} image")
        self.mask_dir = self.root / split / "mask"
        self.load_mask = load_mask and split == "training" and self.mask_dir.is_dir()

        def opt(name: str) -> Path | None:
            p = self.root / f"{split}_{name}.json"
            return p if p.is_file() else None

        k_path = require_file(self.root / f"{split}_K.json", f"FreiHAND {split}_K.json")
        self.K = as_array(load_json(k_path), k_path, (3, 3), "3x3 intrinsics")
        n = len(self.K)
        self.num_unique = n

        def load_opt(name: str, shape: tuple[int, ...], what: str, alt=None) -> np.ndarray | None:
            p = opt(name)
            if p is None:
                return None
            a = as_array(load_json(p), p, shape, what, alt)
            if len(a) != n:
                raise format_error(p, f"expected {n} entries (as in {k_path.name}), found {len(a)}")
            return a

        self.xyz = load_opt("xyz", (NUM_JOINTS, 3), "21x3 joint array")
        self.mano = load_opt("mano", (1, 61), "1x61 MANO vector", alt=(61,))
        self.scale = load_opt("scale", (), "scalar bone length")
        self.verts = (
            load_opt("verts", (NUM_VERTICES, 3), "778x3 vertex array") if load_verts else None
        )
        self._order = list(FREIHAND_TO_PROJECT)

    def __len__(self) -> int:
        return self.num_unique * len(self.versions)

    def image_file_index(self, index: int) -> tuple[int, int]:
        """Dataset index -> (annotation index i, image file number i + k * N)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        v, i = divmod(index, self.num_unique)
        return i, i + VERSIONS.index(self.versions[v]) * self.num_unique

    def __getitem__(self, index: int) -> RealSample:
        i, file_id = self.image_file_index(index)
        img_path = self.image_dir / f"{file_id:08d}.jpg"
        image = read_image(img_path)
        K = self.K[i].copy()
        valid = np.zeros(NUM_JOINTS, dtype=bool)
        joints3d = joints2d = None
        if self.xyz is not None:
            joints3d = self.xyz[i][self._order].copy()
            joints2d = project(joints3d, K)
            valid[:] = True
        mask = None
        if self.load_mask:
            mask = read_gray(self.mask_dir / f"{i:08d}.jpg") > 127  # JPEG: threshold the noise
        mano = None
        if self.mano is not None:
            m = self.mano[i, 0]
            mano = ManoParams(
                global_orient=m[:3].copy(),
                hand_pose=m[3:48].copy(),
                betas=m[48:58].copy(),
                pose_origin="mean",
                extras={"uv_root": m[58:60].copy(), "scale": m[60:61].copy()},
            )
        return RealSample(
            image=image,
            joints3d=joints3d,
            joints2d=joints2d,
            joint_valid=valid,
            K=K,
            mask=mask,
            verts3d=None if self.verts is None else self.verts[i].copy(),
            mano=mano,
            dataset=self.name,
            index=index,
            metric_scale=None if self.scale is None else float(self.scale[i]),
            image_path=str(img_path),
        )
