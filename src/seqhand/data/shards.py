"""SeqHAND shards: tar files in the WebDataset layout, one sample per sequence, + a manifest.

Layout of a dataset folder::

    manifest.json            config, seed, counts, schema version, per-shard sha256 (written last)
    train-000000.tar         sequences 0..k-1 of the training split
    ...
    test-000000.tar

A sample is the group of tar members sharing a key (WebDataset: the basename up to the first
dot), e.g. for key ``train-0000042``::

    train-0000042.f00.jpg ... .f09.jpg    frames (JPEG, quality 95) or .png (lossless), option
    train-0000042.mask.png                 the T silhouettes stacked vertically (T*H, W), lossless
    train-0000042.ann.npz                  annotations (float32 / bool arrays, see SCHEMA)
    train-0000042.json                     key, split, index, seed, schema version, ids

Every byte is deterministic (fixed tar header fields, fixed zip timestamps), so the same seed
gives identical shards whatever the number of workers. Shards are written to ``*.tmp`` and
renamed when complete: a killed run leaves no half shard, and a re-run skips finished shards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from seqhand.errors import SeqhandError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
# Annotation arrays of a sample (T frames, V vertices). Units: metres, radians, pixels.
SCHEMA = {
    "theta": "(T, 45) hand pose, axis-angle, relative to the flat hand",
    "theta_pca": "(T, 10) PCA code of theta (relative to the mean hand, hand layer's basis)",
    "betas": "(10,) shape, fixed per sequence",
    "rot": "(T, 3) camera rotation R, axis-angle",
    "scale": "(T,) weak-perspective scale s, pixels per metre",
    "trans": "(T, 2) weak-perspective translation t, pixels",
    "joints3d": "(T, 21, 3) joints in the hand-model frame (before R), metres",
    "joints2d": "(T, 21, 2) projected joints, pixels (x right, y down)",
    "visible": "(T, 21) joint not occluded by the hand itself (depth test against the z-buffer)",
    "in_frame": "(T, 21) joint inside the image",
    "bank_index": "(T,) index of the pose-bank pose used at each frame",
    "vertices": "(T, V, 3) optional: mesh vertices in the hand-model frame, metres",
}


class ShardError(SeqhandError):
    """A shard or dataset folder is missing, incomplete or corrupt."""


# ------------------------------------------------------------------------------------------
# Encoding of one sample
# ------------------------------------------------------------------------------------------
def _png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _jpeg_bytes(a: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A ``.npz`` with fixed timestamps (``np.savez`` stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k in sorted(arrays):
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            b = io.BytesIO()
            np.lib.format.write_array(b, np.ascontiguousarray(arrays[k]), allow_pickle=False)
            zf.writestr(info, b.getvalue())
    return buf.getvalue()


def encode_sample(sample: dict, image_format: str = "jpg", jpeg_quality: int = 95) -> dict:
    """Turn a sample dict into ``{member suffix: bytes}``.

    ``sample`` holds ``frames`` (T,H,W,3) uint8, ``masks`` (T,H,W) bool/uint8, ``ann`` (dict of
    arrays, see :data:`SCHEMA`) and ``meta`` (JSON-able dict).
    """
    frames = np.asarray(sample["frames"])
    masks = np.asarray(sample["masks"])
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be {frames.shape[:3]}, got {masks.shape}")
    out = {}
    for k, f in enumerate(frames):
        if image_format == "jpg":
            out[f"f{k:02d}.jpg"] = _jpeg_bytes(f, jpeg_quality)
        elif image_format == "png":
            out[f"f{k:02d}.png"] = _png_bytes(f)
        else:
            raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    t, h, w = masks.shape
    out["mask.png"] = _png_bytes((masks.reshape(t * h, w) > 0).astype(np.uint8) * 255)
    out["ann.npz"] = npz_bytes(sample["ann"])
    meta = dict(sample.get("meta", {}))
    meta["schema_version"] = SCHEMA_VERSION
    out["json"] = json.dumps(meta, sort_keys=True).encode()
    return out


def decode_sample(files: dict[str, bytes]) -> dict:
    """Inverse of :func:`encode_sample` (frames decoded to uint8 arrays)."""
    frame_keys = sorted(k for k in files if k.startswith("f") and k[1:3].isdigit())
    frames = np.stack(
        [np.asarray(Image.open(io.BytesIO(files[k])).convert("RGB")) for k in frame_keys]
    )
    t = len(frame_keys)
    m = np.asarray(Image.open(io.BytesIO(files["mask.png"])))
    masks = m.reshape(t, m.shape[0] // t, m.shape[1]) > 127
    with np.load(io.BytesIO(files["ann.npz"]), allow_pickle=False) as z:
        ann = {k: z[k] for k in z.files}
    meta = json.loads(files["json"])
    return {"frames": frames, "masks": masks, "ann": ann, "meta": meta}


# ------------------------------------------------------------------------------------------
# Shards
# ------------------------------------------------------------------------------------------
def shard_name(split: str, shard_index: int) -> str:
    return f"{split}-{shard_index:06d}.tar"


def write_shard(path: Path, samples: list[tuple[str, dict]]) -> str:
    """Write ``[(key, {suffix: bytes})]`` to ``path`` atomically; return the sha256 hex digest."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for key, files in samples:
                    for suffix in sorted(files):
                        data = files[suffix]
                        info = tarfile.TarInfo(f"{key}.{suffix}")
                        info.size = len(data)
                        info.mtime = 0
                        info.mode = 0o644
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        tar.addfile(info, io.BytesIO(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha256_file(path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iter_shard(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {suffix: bytes})`` groups from a shard, in order."""
    try:
        with tarfile.open(path, mode="r") as tar:
            key, files = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                k, _, suffix = base.partition(".")
                if k != key and key is not None:
                    yield key, files
                    files = {}
                key = k
                files[suffix] = tar.extractfile(member).read()
            if key is not None:
                yield key, files
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ShardError(f"{path}: unreadable shard ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------
def write_manifest(root: Path, manifest: dict) -> Path:
    root = Path(root)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, root / MANIFEST)
    return root / MANIFEST


def read_manifest(root: Path) -> dict:
    root = Path(root)
    p = root / MANIFEST
    if not root.is_dir():
        raise ShardError(f"{root}: no such dataset folder")
    if not p.is_file():
        partial = sorted(root.glob("*.tar"))
        hint = (
            f" ({len(partial)} finished shards found: the generation did not complete; run the "
            "same `seqhand generate` command again to resume)"
            if partial
            else ""
        )
        raise ShardError(f"{root}: no {MANIFEST}; not a complete SeqHAND dataset{hint}")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ShardError(f"{p}: corrupt manifest ({e})") from None
    if m.get("schema_version") != SCHEMA_VERSION:
        raise ShardError(
            f"{p}: schema version {m.get('schema_version')} but this seqhand reads "
            f"{SCHEMA_VERSION}; regenerate the dataset"
        )
    return m


def verify_dataset(root: Path) -> list[str]:
    """Check every shard's checksum against the manifest; return the list of problems."""
    m = read_manifest(root)
    problems = []
    for split in m["splits"].values():
        for sh in split["shards"]:
            p = Path(root) / sh["name"]
            if not p.is_file():
                problems.append(f"{p}: missing")
            elif sha256_file(p) != sh["sha256"]:
                problems.append(f"{p}: checksum mismatch")
    return problems
