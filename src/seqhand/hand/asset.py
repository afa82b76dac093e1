"""The hand-model *asset*: MANO's fields in a plain ``.npz``, and its validation.

One asset format serves both sources of a hand model: an official MANO pickle converted with
:func:`seqhand.hand.mano_pickle.load_mano_pickle` (``seqhand mano convert``), and the project's
built-in procedural hand (:mod:`seqhand.hand.builtin`). Fields (V vertices, F faces, S shape
directions, 16 joints):

==================  ============  =========================================================
field               shape         meaning
==================  ============  =========================================================
v_template          (V, 3)        rest-pose template, metres, flat hand
f                   (F, 3)        triangle vertex ids (int), counter-clockwise seen from outside
shapedirs           (V, 3, S)     shape blend shapes (per unit beta), metres
posedirs            (V, 3, 135)   pose-corrective blend shapes (per (R - I) element)
J_regressor         (16, V)       joint regressor (dense)
weights             (V, 16)       skinning weights, rows sum to 1
kintree_table       (2, 16)       row 0 = parent of each joint (MANO's kinematic order)
hands_components    (45, 45)      pose PCA basis, one component per row
hands_mean          (45,)         mean hand pose (axis-angle), relative to the flat hand
tip_vertex_ids      (5,)          fingertip vertices thumb, index, middle, ring, pinky
side                ()            "right" or "left"
name                ()            a label, e.g. "MANO_RIGHT" or "builtin"
shapedirs_fix       ()            what was done to a left model's shapedirs on conversion
                                  (``shapedirs[:, 0, :] *= -1`` applied or not, and why)
==================  ============  =========================================================
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from seqhand.conventions import MANO_NUM_JOINTS, MANO_PARENTS, NUM_POSE
from seqhand.errors import SeqhandError

ASSET_FORMAT_VERSION = 1
_ARRAY_FIELDS = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
    "hands_components",
    "hands_mean",
    "tip_vertex_ids",
)


class AssetError(SeqhandError, ValueError):
    """A hand-model asset is missing, unreadable or has a field of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class HandAsset:
    """A hand model's data (see the module docstring for every field)."""

    v_template: np.ndarray
    f: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_table: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    tip_vertex_ids: np.ndarray
    side: str = "right"
    name: str = "unnamed"
    shapedirs_fix: str = "none"

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def parents(self) -> np.ndarray:
        p = self.kintree_table[0].astype(np.int64)
        p[0] = -1  # MANO stores a large sentinel for the root's parent
        return p

    def validate(self, source: str = "asset") -> HandAsset:
        """Check every field's shape and values; raise :class:`AssetError` naming the field."""
        validate_fields({k: getattr(self, k) for k in _ARRAY_FIELDS}, source)
        if self.side not in ("right", "left"):
            raise AssetError(f"{source}: side must be 'right' or 'left', found {self.side!r}")
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write the asset as a plain ``.npz`` (atomically: temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {k: np.asarray(getattr(self, k)) for k in _ARRAY_FIELDS}
        np.savez(
            tmp,
            **arrays,
            side=np.array(self.side),
            name=np.array(self.name),
            shapedirs_fix=np.array(self.shapedirs_fix),
            format_version=np.array(ASSET_FORMAT_VERSION),
        )
        os.replace(tmp, path)
        return path

    def replace(self, **changes) -> HandAsset:
        return dataclasses.replace(self, **changes)


def _expect(cond: bool, source: str, field: str, msg: str) -> None:
    if not cond:
        raise AssetError(f"{source}: field '{field}' {msg}")


def validate_fields(d: dict, source: str) -> None:
    """Validate a dict of asset arrays; the error names the file and the field."""
    for k in _ARRAY_FIELDS:
        if k not in d:
            raise AssetError(f"{source}: missing field '{k}'")
    v = np.asarray(d["v_template"])
    _expect(v.ndim == 2 and v.shape[1] == 3 and v.shape[0] >= 3, source, "v_template",
            f"must be (V, 3), found {v.shape}")  # fmt: skip
    nv = v.shape[0]
    shapes = {
        "f": (None, 3),
        "shapedirs": (nv, 3, None),
        "posedirs": (nv, 3, (MANO_NUM_JOINTS - 1) * 9),
        "J_regressor": (MANO_NUM_JOINTS, nv),
        "weights": (nv, MANO_NUM_JOINTS),
        "kintree_table": (2, MANO_NUM_JOINTS),
        "hands_components": (NUM_POSE, NUM_POSE),
        "hands_mean": (NUM_POSE,),
        "tip_vertex_ids": (5,),
    }
    for k, want in shapes.items():
        a = np.asarray(d[k])
        ok = a.ndim == len(want) and all(w is None or w == s for w, s in zip(want, a.shape))
        shown = tuple("*" if w is None else w for w in want)
        _expect(ok, source, k, f"must have shape {shown}, found {a.shape}")
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
              "hands_components", "hands_mean"):  # fmt: skip
        _expect(bool(np.all(np.isfinite(np.asarray(d[k], dtype=np.float64)))), source, k,
                "contains NaN or inf")  # fmt: skip
    f = np.asarray(d["f"])
    _expect(np.issubdtype(f.dtype, np.integer), source, "f", f"must be integers, found {f.dtype}")
    _expect(f.size == 0 or (f.min() >= 0 and f.max() < nv), source, "f",
            f"has vertex ids outside [0, {nv})")  # fmt: skip
    tips = np.asarray(d["tip_vertex_ids"])
    _expect(bool(np.all((tips >= 0) & (tips < nv))), source, "tip_vertex_ids",
            f"has vertex ids outside [0, {nv})")  # fmt: skip
    parents = np.asarray(d["kintree_table"])[0].astype(np.int64)
    parents[0] = -1  # MANO stores a large sentinel for the root
    _expect(tuple(parents.tolist()) == MANO_PARENTS, source, "kintree_table",
            f"must encode MANO's tree {MANO_PARENTS}, found {tuple(parents.tolist())}")  # fmt: skip
    w = np.asarray(d["weights"], dtype=np.float64)
    _expect(bool(np.allclose(w.sum(1), 1.0, atol=1e-4)), source, "weights",
            "rows must sum to 1")  # fmt: skip


def asset_from_dict(d: dict, source: str, side: str | None = None, name: str | None = None):
    """Build and validate a :class:`HandAsset` from a mapping of arrays."""
    validate_fields(d, source)
    kt = np.asarray(d["kintree_table"]).astype(np.int64)
    kt[0, 0] = -1
    side = side or str(np.asarray(d.get("side", "right")))
    return HandAsset(
        v_template=np.asarray(d["v_template"], dtype=np.float64),
        f=np.asarray(d["f"]).astype(np.int64),
        shapedirs=np.asarray(d["shapedirs"], dtype=np.float64),
        posedirs=np.asarray(d["posedirs"], dtype=np.float64),
        J_regressor=np.asarray(d["J_regressor"], dtype=np.float64),
        weights=np.asarray(d["weights"], dtype=np.float64),
        kintree_table=kt,
        hands_components=np.asarray(d["hands_components"], dtype=np.float64),
        hands_mean=np.asarray(d["hands_mean"], dtype=np.float64),
        tip_vertex_ids=np.asarray(d["tip_vertex_ids"]).astype(np.int64),
        side=side,
        name=name or str(np.asarray(d.get("name", Path(source).stem))),
        shapedirs_fix=str(np.asarray(d.get("shapedirs_fix", "none"))),
    ).validate(source)


def load_npz_asset(path: str | os.PathLike) -> HandAsset:
    """Load a plain ``.npz`` asset (never with ``allow_pickle``)."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise AssetError(f"{path}: not a readable .npz asset ({type(e).__name__}: {e})") from None
    return asset_from_dict(d, str(path))


def load_asset(spec: str | os.PathLike | HandAsset | None = None) -> HandAsset:
    """Load a hand model: ``None``/``"builtin"`` -> the built-in hand; ``*.npz``; ``*.pkl``.

    A MANO pickle is read with the restricted unpickler (nothing in the file can run).
    """
    if isinstance(spec, HandAsset):
        return spec
    if spec is None or str(spec) == "builtin":
        from seqhand.hand.builtin import builtin_asset

        return builtin_asset()
    path = Path(spec)
    if path.suffix == ".pkl":
        from seqhand.hand.mano_pickle import load_mano_pickle

        return load_mano_pickle(path)
    if path.suffix == ".npz":
        return load_npz_asset(path)
    raise AssetError(f"{path}: unknown hand-model file type (expected .npz or .pkl, or 'builtin')")
