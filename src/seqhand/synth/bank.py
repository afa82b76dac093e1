"""Pose banks: many hand poses as joints ``(N, 21, 3)``, canonicalised, and their file format.

A bank holds **articulation only**: every pose is root-relative and rotated into its own
wrist/palm frame (:func:`canonicalize`), so the nearest-neighbour search of a pose flow compares
finger configurations, not global orientation (which comes from the camera flow).

Normalisation ("wrist-palm-v1"), applied to every pose independently:

1. translate so the wrist (joint 0) is at the origin;
2. rotate by the palm frame ``R`` (rows ``e_x, e_y, e_z``): ``e_y = -(middle MCP - wrist)``
   normalised; ``e_z`` = the **dorsal** normal ``(middle MCP - wrist) x (index MCP - little
   MCP)``, made orthogonal to ``e_y`` and normalised; ``e_x = e_y x e_z``. So the canonical hand
   has its middle MCP on the -y axis, its palm facing -z and its thumb side toward +x - the
   frame of the built-in hand (whose rest pose is 6 degrees from canonical: its middle MCP is
   slightly off the y axis). For a right hand; left hands are mirrored (x -> -x) before this
   step;
3. optionally (off by default) scale so ``|wrist -> middle MCP|`` equals ``scale_to`` metres.

Joints are float32 metres in the project's joint order (:mod:`seqhand.conventions`). Bank
arrays are made read-only: nothing downstream can write into a bank.

File format (``.npz``, uncompressed, no pickles): ``joints`` (N, 21, 3) float32, ``meta`` a
JSON string (``format``, ``version``, ``source``, ``count``, ``units``, ``joint_order``,
``normalisation``, ``scale_to``, plus source details such as skipped-line counts or the prior's
seed), optional ``poses`` (N, 45) float32 (the true hand-pose parameters, prior banks only) and
optional ``names`` (N,) (BigHand image names).
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from seqhand.conventions import BONES, JOINT_ORDERS, MM_TO_M, NUM_JOINTS, to_project_order
from seqhand.errors import SeqhandError

BANK_FORMAT = "seqhand-pose-bank"
BANK_VERSION = 1
NORMALISATION = "wrist-palm-v1"
_MIDDLE_MCP, _INDEX_MCP, _PINKY_MCP = 9, 5, 17


class BankError(SeqhandError, ValueError):
    """A pose bank or joint array is missing, unreadable or of the wrong shape."""


def palm_frame(joints: np.ndarray) -> np.ndarray:
    """Rotation into the canonical wrist/palm frame: ``(..., 21, 3)`` -> ``(..., 3, 3)``.

    Rows are ``e_x, e_y, e_z`` (see the module docstring); ``canonical = (J - J_0) @ R.T``.
    Computed in float64. Degenerate poses (coincident palm joints) give NaN rows.
    """
    j = np.asarray(joints, np.float64)
    u = j[..., _MIDDLE_MCP, :] - j[..., 0, :]
    v = j[..., _INDEX_MCP, :] - j[..., _PINKY_MCP, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ey = -u / np.linalg.norm(u, axis=-1, keepdims=True)
        ez = np.cross(u, v)
        ez = ez - np.sum(ez * ey, -1, keepdims=True) * ey
        ez = ez / np.linalg.norm(ez, axis=-1, keepdims=True)
    ex = np.cross(ey, ez)
    return np.stack([ex, ey, ez], axis=-2)


def canonicalize(
    joints: np.ndarray, scale_to: float | None = None, return_frame: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Root-relative joints in the wrist/palm frame, ``(..., 21, 3)`` -> float32 ``(..., 21, 3)``.

    Args:
        joints: right-hand joints, project order, metres.
        scale_to: if given, scale each pose so ``|wrist -> middle MCP| = scale_to`` metres.
        return_frame: also return the rotations ``(..., 3, 3)`` and wrists ``(..., 3)`` so that
            ``joints = canonical @ R + wrist`` (without scaling).
    """
    j = np.asarray(joints, np.float64)
    if j.shape[-2:] != (NUM_JOINTS, 3):
        raise BankError(f"joints must be (..., 21, 3), got {j.shape}")
    rot = palm_frame(j)
    wrist = j[..., 0, :]
    out = np.einsum("...jc,...kc->...jk", j - wrist[..., None, :], rot)
    if scale_to is not None:
        length = np.linalg.norm(out[..., _MIDDLE_MCP, :], axis=-1)[..., None, None]
        out = out * (float(scale_to) / length)
    out = out.astype(np.float32)
    return (out, rot, wrist) if return_frame else out


@dataclasses.dataclass(frozen=True)
class PoseBank:
    """A bank of canonical poses (read-only arrays).

    Attributes:
        joints: ``(N, 21, 3)`` float32 metres, canonical (see the module docstring).
        meta: JSON-serialisable description (source, count, units, normalisation, ...).
        poses: optional ``(N, 45)`` float32 hand-model pose parameters (prior banks).
        names: optional ``(N,)`` str labels (e.g. BigHand image names).
    """

    joints: np.ndarray
    meta: dict
    poses: np.ndarray | None = None
    names: np.ndarray | None = None

    def __post_init__(self) -> None:
        j = np.ascontiguousarray(self.joints, dtype=np.float32)
        if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
            raise BankError(f"bank joints must be (N, 21, 3), got {j.shape}")
        if j is not self.joints:
            object.__setattr__(self, "joints", j)
        j.setflags(write=False)
        for name in ("poses", "names"):
            a = getattr(self, name)
            if a is not None:
                if len(a) != len(j):
                    raise BankError(f"bank {name} has {len(a)} rows, joints have {len(j)}")
                a = np.ascontiguousarray(a, np.float32 if name == "poses" else None)
                a.setflags(write=False)
                object.__setattr__(self, name, a)

    def __len__(self) -> int:
        return int(self.joints.shape[0])

    @property
    def flat(self) -> np.ndarray:
        """``(N, 63)`` float32 read-only view of the joints (the search space of pose flows)."""
        return self.joints.reshape(len(self), NUM_JOINTS * 3)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank ``.npz`` (atomically: a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {"joints": self.joints, "meta": np.array(json.dumps(self.meta))}
        if self.poses is not None:
            arrays["poses"] = self.poses
        if self.names is not None:
            arrays["names"] = np.asarray(self.names, dtype=str)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path


def make_meta(source: str, count: int, scale_to: float | None = None, **details) -> dict:
    """The metadata every bank carries (plus source-specific ``details``)."""
    return {
        "format": BANK_FORMAT,
        "version": BANK_VERSION,
        "source": source,
        "count": int(count),
        "units": "m",
        "joint_order": "project",
        "normalisation": NORMALISATION,
        "scale_to": scale_to,
        **details,
    }


def _npz_memmaps(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read-only memory maps of the arrays ``names`` of an ``.npz`` whose members are stored
    uncompressed (as :meth:`PoseBank.save` writes them); members that cannot be mapped
    (compressed, object arrays, unknown header versions) are left out."""
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for name in names:
            info = zf.getinfo(name + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)  # the member's local header: its data follows name and extra
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                continue
            if dtype.hasobject:
                continue
            out[name] = np.asarray(np.memmap(fh, dtype, "r", fh.tell(), shape,
                                             "F" if fortran else "C"))  # fmt: skip
    return out


def load_bank(path: str | os.PathLike, mmap: bool = False) -> PoseBank:
    """Read a bank ``.npz`` written by :meth:`PoseBank.save` (never with ``allow_pickle``).

    ``mmap``: map the arrays read-only from the file instead of reading them (instant, and
    processes loading the same bank share its pages); the values are the same.
    """
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such bank file (make one with `seqhand poses build`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "joints" not in z.files or "meta" not in z.files:
                raise BankError(
                    f"{path}: not a pose bank (expected arrays 'joints' and 'meta', "
                    f"found {sorted(z.files)})"
                )
            meta = json.loads(str(z["meta"]))
            present = [k for k in ("joints", "poses", "names") if k in z.files]
            arrays = _npz_memmaps(path, present) if mmap else {}
            arrays.update({k: z[k] for k in present if k not in arrays})
            joints, poses, names = (arrays.get(k) for k in ("joints", "poses", "names"))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, BankError):
            raise
        raise BankError(f"{path}: not a readable bank .npz ({type(e).__name__}: {e})") from None
    if meta.get("format") != BANK_FORMAT:
        raise BankError(f"{path}: meta format is {meta.get('format')!r}, expected {BANK_FORMAT!r}")
    if meta.get("version", 0) > BANK_VERSION:
        raise BankError(f"{path}: bank version {meta['version']} is newer than this seqhand")
    try:
        return PoseBank(joints=joints, meta=meta, poses=poses, names=names)
    except BankError as e:
        raise BankError(f"{path}: {e}") from None


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------
_UNITS = {"m": 1.0, "mm": MM_TO_M, "cm": 0.01}


def bank_from_joints(
    joints: np.ndarray,
    *,
    order: str = "project",
    unit: str = "m",
    side: str = "right",
    source: str = "array",
    scale_to: float | None = None,
    drop_invalid: bool = True,
    **details,
) -> PoseBank:
    """A bank from raw joints ``(N, 21, 3)`` in any named joint order and unit.

    Non-finite or degenerate poses are dropped (and counted in ``meta["dropped"]``) when
    ``drop_invalid``; otherwise they raise :class:`BankError`.
    """
    j = np.asarray(joints)
    if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
        raise BankError(f"{source}: joints must be (N, 21, 3), got {j.shape}")
    if order not in JOINT_ORDERS:
        raise BankError(f"{source}: unknown joint order {order!r}; known: {sorted(JOINT_ORDERS)}")
    if unit not in _UNITS:
        raise BankError(f"{source}: unknown unit {unit!r}; known: {sorted(_UNITS)}")
    if side not in ("right", "left"):
        raise BankError(f"{source}: side must be 'right' or 'left', got {side!r}")
    out = np.empty(j.shape, np.float32)
    ok = np.ones(len(j), bool)
    chunk = 1 << 18
    for lo in range(0, len(j), chunk):
        part = to_project_order(np.asarray(j[lo : lo + chunk], np.float64), order) * _UNITS[unit]
        if side == "left":
            part[..., 0] *= -1.0
        c = canonicalize(part, scale_to=scale_to)
        out[lo : lo + len(c)] = c
        ok[lo : lo + len(c)] = np.isfinite(c).all(axis=(1, 2))
    dropped = int((~ok).sum())
    if dropped and not drop_invalid:
        raise BankError(f"{source}: {dropped} poses are non-finite or degenerate")
    if dropped:
        out = out[ok]
    return PoseBank(
        joints=out,
        meta=make_meta(
            source,
            len(out),
            scale_to,
            input_order=order,
            input_unit=unit,
            input_side=side,
            dropped=dropped,
            **details,
        ),  # fmt: skip
    )


def load_joint_array(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    order: str = "project",
    unit: str = "m",
    side: str = "right",
    scale_to: float | None = None,
) -> PoseBank:
    """A bank from a ``.npy`` / ``.npz`` array of joints ``(N, 21, 3)`` or ``(N, 63)``.

    Args:
        key: the array's name inside a ``.npz`` (default: the only array, or ``"joints"``).
        order, unit, side: how the file's joints are laid out (declared by the user).
    """
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if key is None:
                    key = z.files[0] if len(z.files) == 1 else "joints"
                if key not in z.files:
                    raise BankError(f"{path}: no array {key!r}; arrays: {sorted(z.files)}")
                arr = z[key]
        else:
            arr = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, BankError):
            raise
        raise BankError(f"{path}: not a readable .npy/.npz ({type(e).__name__}: {e})") from None
    if arr.ndim == 2 and arr.shape[1] == NUM_JOINTS * 3:
        arr = arr.reshape(-1, NUM_JOINTS, 3)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise BankError(f"{path}: expected joints (N, 21, 3) or (N, 63), found {arr.shape}")
    return bank_from_joints(
        arr, order=order, unit=unit, side=side, source="array", scale_to=scale_to,
        path=str(path), key=key,
    )  # fmt: skip


def bank_from_prior(
    asset=None,
    n: int = 100_000,
    seed: int = 0,
    *,
    mode_weights: dict[str, float] | None = None,
    scale_to: float | None = None,
    batch: int = 8192,
    threads: int | None = 1,
    progress: bool = False,
) -> PoseBank:
    """The built-in pose prior as a bank: ``n`` prior poses through the hand layer.

    A stand-in for captured poses (see :mod:`seqhand.hand.prior`). The true pose parameters
    are kept in ``bank.poses``. Sample ``i`` depends only on (asset, seed, i, mode_weights).

    Args:
        batch: poses per layer call. threads: torch threads while running the layer (restored
            afterwards; the layer's many small ops run fastest on one thread, ``None`` keeps
            the current setting).
    """
    import torch

    from seqhand.hand import HandLayer, load_asset
    from seqhand.hand.prior import joints_only_asset, prior_joints, sample_prior_poses

    asset = load_asset(asset)
    layer = HandLayer(joints_only_asset(asset), pose_origin="flat", dtype=torch.float32)
    joints = np.empty((n, NUM_JOINTS, 3), np.float32)
    poses = np.empty((n, 45), np.float32)
    chunk = 1 << 18
    it = range(0, n, chunk)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="prior bank", unit="chunk", total=(n + chunk - 1) // chunk)
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        for lo in it:
            m = min(chunk, n - lo)
            p = sample_prior_poses(asset, m, seed, start=lo, mode_weights=mode_weights)
            raw = prior_joints(layer, p, batch=batch)
            if asset.side == "left":
                raw[..., 0] *= -1.0
            joints[lo : lo + m] = canonicalize(raw, scale_to=scale_to)
            poses[lo : lo + m] = p
    finally:
        torch.set_num_threads(prev_threads)
    return PoseBank(
        joints=joints,
        poses=poses,
        meta=make_meta(
            "prior",
            n,
            scale_to,
            seed=int(seed),
            hand=asset.name,
            side=asset.side,
            mode_weights=mode_weights or {},
        ),  # fmt: skip
    )


def bank_summary(bank: PoseBank, sample: int = 200_000) -> dict:
    """Summary statistics (JSON-serialisable; lengths in millimetres) of a bank.

    Includes the bone lengths (mean / std per bone), the hand length (wrist -> middle tip),
    the per-joint spread, and ``tips_palmar_fraction``: how often a flexed finger's tip lies on
    the palm side (z < 0) - close to 1 for right hands; near 0 means the input was mirrored
    (pass ``side="left"`` or fix the source's frame).
    """
    j = bank.joints
    if len(j) > sample:
        idx = np.linspace(0, len(j) - 1, sample).astype(np.int64)
        j = j[idx]
    j = j.astype(np.float64) * 1000.0
    bones = np.array([np.linalg.norm(j[:, c] - j[:, p], axis=-1) for p, c in BONES]).T
    # A finger counts as flexed when its MCP->tip distance is < 70% of its chain length.
    mcp, tip = j[:, (5, 9, 13, 17)], j[:, (8, 12, 16, 20)]
    chain = bones.reshape(len(j), 5, 4)[:, 1:, 1:].sum(-1)
    bent = np.linalg.norm(tip - mcp, axis=-1) < 0.7 * chain
    flexed_z = tip[..., 2][bent]
    return {
        **bank.meta,
        "count": len(bank),
        "summary_sample": int(len(j)),
        "bone_length_mm_mean": np.round(bones.mean(0), 3).tolist() if len(j) else [],
        "bone_length_mm_std": np.round(bones.std(0), 3).tolist() if len(j) else [],
        "hand_length_mm_mean": float(np.linalg.norm(j[:, 12], axis=-1).mean()) if len(j) else 0,
        "joint_std_mm": np.round(j.std(0).mean(-1), 3).tolist() if len(j) else [],
        "tips_palmar_fraction": float((flexed_z < 0).mean()) if len(flexed_z) else None,
    }
