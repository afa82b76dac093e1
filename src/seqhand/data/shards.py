"""SeqHAND shards: tar files in the WebDataset layout, one sample per sequence, + a manifest.

Layout of a dataset folder::

    manifest.json            config, seed, counts, schema version, per-shard sha256 (written last)
    train-000000.tar         sequences 0..k-1 of the training split
    ...
    test-000000.tar

A sample is the group of tar members sharing a key (WebDataset: the basename up to the first
dot), e.g. for key ``train-0000042``::

    train-0000042.f00.jpg ... .f09.jpg    frames (JPEG, quality 95) or .png (lossless), option
    train-0000042.mask.png                 the T silhouettes stacked vertically (T*H, W), 1-bit
    train-0000042.ann.npz                  annotations (float32 / bool arrays, see SCHEMA)
    train-0000042.json                     key, split, index, seed, schema version, ids

Every byte is deterministic (fixed tar header fields, fixed zip timestamps), so the same seed
gives identical shards whatever the number of workers. Shards are written to a hidden temp
file of a unique name (``.<name>.<pid>.<random>.tmp``) and renamed when complete: a killed run
leaves no half shard, two writers never share a temp file, and a re-run skips finished shards.

Readers check what they read: every member name is a plain ``key.suffix``; every sample decodes
(frames, silhouettes, annotations, metadata of this schema version) or is named in a one-line
:class:`ShardError` ("shard: sample key: what"); counts are compared with the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import uuid
import zipfile
import zlib
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


OPTIONAL_ANN = frozenset({"vertices"})
_FRAME = re.compile(r"f(\d{2,})\.(jpg|png)$")  # f00.jpg ... f99.jpg, f100.jpg ...


class ShardError(SeqhandError):
    """A shard or dataset folder is missing, incomplete or corrupt."""


class SampleError(ShardError):
    """One sample cannot be decoded (the message says what; readers add shard and key)."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (tarfile and PIL messages span several)."""
    return " ".join(str(e).split())


def required_annotations(manifest: dict) -> frozenset[str]:
    """The annotation arrays every sample of a dataset must hold: its manifest's schema."""
    return frozenset(manifest.get("schema") or {}) - OPTIONAL_ANN


# ------------------------------------------------------------------------------------------
# Encoding of one sample
# ------------------------------------------------------------------------------------------
def png_bytes(a: np.ndarray) -> bytes:
    """An ``(H, W)`` or ``(H, W, 3)`` uint8 image, or an ``(H, W)`` bool image (stored 1-bit),
    as PNG (zlib level 6)."""
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def jpeg_bytes(a: np.ndarray, quality: int) -> bytes:
    """An ``(H, W, 3)`` uint8 image as JPEG (no chroma subsampling), as stored in shards."""
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
            out[f"f{k:02d}.jpg"] = jpeg_bytes(f, jpeg_quality)
        elif image_format == "png":
            out[f"f{k:02d}.png"] = png_bytes(f)
        else:
            raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    t, h, w = masks.shape
    # 1-bit PNG: the same pixels in ~0.45 of the 8-bit one's encoding time and ~0.6 of its bytes
    out["mask.png"] = png_bytes(masks.reshape(t * h, w) > 0)
    out["ann.npz"] = npz_bytes(sample["ann"])
    meta = dict(sample.get("meta", {}))
    meta["schema_version"] = SCHEMA_VERSION
    out["json"] = json.dumps(meta, sort_keys=True).encode()
    return out


def _image(files: dict[str, bytes], name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(files[name])) as im:
            im.load()
            if name == "mask.png":  # 1-bit (since 2026-12) or 8-bit (older datasets) -> 0/255
                return np.asarray(im.convert("L") if im.mode == "1" else im)
            return np.asarray(im.convert("RGB"))
    except KeyError:
        raise SampleError(f"no {name}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise SampleError(f"{name} is not a readable image ({one_line(e)})") from None


def decode_sample(files: dict[str, bytes], required: frozenset[str] = frozenset()) -> dict:
    """Inverse of :func:`encode_sample` (frames decoded to uint8 arrays).

    Raises :class:`SampleError` (one line: which member and what) for a missing or corrupt
    member, inconsistent shapes, a sample of another schema version, or annotations that lack
    one of ``required``.
    """
    try:
        meta = json.loads(files["json"])
    except KeyError:
        raise SampleError("no json member (metadata)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise SampleError(f"json member is not JSON ({one_line(e)})") from None
    if not isinstance(meta, dict):
        raise SampleError("json member is not a JSON object")
    if meta.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise SampleError(
            f"schema version {meta.get('schema_version')!r} but this seqhand reads "
            f"{SCHEMA_VERSION}; regenerate the dataset"
        )
    frame_keys = sorted((k for k in files if _FRAME.match(k)), key=lambda k: int(k[1:-4]))
    if not frame_keys:
        raise SampleError("no frames (members f00.jpg / f00.png ...)")
    frames = [_image(files, k) for k in frame_keys]
    if len({f.shape for f in frames}) != 1:
        raise SampleError(f"frames of different sizes {sorted({f.shape for f in frames})}")
    frames = np.stack(frames)
    t, h, w = frames.shape[:3]
    m = _image(files, "mask.png")
    if m.ndim != 2 or m.shape != (t * h, w):
        raise SampleError(f"mask.png is {m.shape}, expected the {t} silhouettes stacked: "
                          f"({t * h}, {w})")  # fmt: skip
    masks = m.reshape(t, h, w) > 127
    try:
        with np.load(io.BytesIO(files["ann.npz"]), allow_pickle=False) as z:
            ann = {k: z[k] for k in z.files}
    except KeyError:
        raise SampleError("no ann.npz") from None
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile,
            NotImplementedError, RuntimeError) as e:  # damaged: bad deflate / method / flags  # fmt: skip
        raise SampleError(
            f"ann.npz is not a readable .npz ({type(e).__name__}: {one_line(e)})"
        ) from None
    missing = sorted(required - set(ann))
    if missing:
        raise SampleError(f"ann.npz lacks {missing}")
    for k, a in ann.items():
        if k in SCHEMA and k != "betas" and (a.ndim == 0 or a.shape[0] != t):
            raise SampleError(f"ann.npz {k} has shape {a.shape}, expected {t} frames first")
    return {"frames": frames, "masks": masks, "ann": ann, "meta": meta}


# ------------------------------------------------------------------------------------------
# Shards
# ------------------------------------------------------------------------------------------
def shard_name(split: str, shard_index: int) -> str:
    return f"{split}-{shard_index:06d}.tar"


def write_shard(path: Path, samples: list[tuple[str, dict]]) -> str:
    """Write ``[(key, {suffix: bytes})]`` to ``path`` atomically; return the sha256 hex digest."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
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


def member_key(shard: Path, name: str) -> tuple[str, str]:
    """``(key, suffix)`` of a member name; a name with a folder part is refused."""
    if "/" in name or "\\" in name or name.startswith(".") or "." not in name:
        raise ShardError(f"{shard}: member {name!r} is not a sample file (key.suffix)")
    k, _, suffix = name.partition(".")
    return k, suffix


def check_tar_end(path: Path, end: int, key: str | None) -> None:
    """A complete tar has two zero blocks after its last member (``end``: where that member's
    data ends, block-aligned); a file cut inside a member or header has not."""
    with open(path, "rb") as fh:
        fh.seek(end)
        tail = fh.read(1024)
    if len(tail) < 1024 or any(tail):
        where = f" after sample {key}" if key else ""
        raise ShardError(f"{path}: truncated shard{where} (no end-of-archive marker)")


def _data_end(member: tarfile.TarInfo) -> int:
    return member.offset_data + -(-member.size // 512) * 512


def iter_shard(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {suffix: bytes})`` groups from a shard, in order."""
    key, end = None, 0
    try:
        with tarfile.open(path, mode="r") as tar:
            files: dict[str, bytes] = {}
            for member in tar:
                end = _data_end(member)
                if not member.isfile():
                    raise ShardError(f"{path}: member {member.name!r} is not a regular file")
                k, suffix = member_key(path, member.name)
                if k != key and key is not None:
                    yield key, files
                    files = {}
                key = k
                data = tar.extractfile(member).read()
                if len(data) != member.size:
                    raise tarfile.ReadError(f"member {member.name} is cut short")
                files[suffix] = data
            check_tar_end(path, end, key)
            if key is not None:
                yield key, files
    except (tarfile.TarError, OSError, EOFError) as e:
        where = f" after sample {key}" if key else ""
        raise ShardError(
            f"{path}: unreadable shard{where} ({type(e).__name__}: {one_line(e)})"
        ) from None


# ------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------
def write_manifest(root: Path, manifest: dict, name: str = MANIFEST) -> Path:
    """Write ``root/name`` atomically (unique temp file, fsync, rename)."""
    root = Path(root)
    tmp = root / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(json.dumps(manifest, indent=2, sort_keys=True))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, root / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return root / name


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
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise ShardError(f"{p}: corrupt manifest ({one_line(e)})") from None
    if not isinstance(m, dict):
        raise ShardError(f"{p}: corrupt manifest (not a JSON object)")
    if m.get("schema_version") != SCHEMA_VERSION:
        raise ShardError(
            f"{p}: schema version {m.get('schema_version')} but this seqhand reads "
            f"{SCHEMA_VERSION}; regenerate the dataset"
        )
    _check_manifest(p, m)
    return m


def _check_manifest(p: Path, m: dict) -> None:
    """The manifest's structure: splits of ``num_sequences`` and shards of plain file names."""
    splits = m.get("splits")
    if not isinstance(splits, dict):
        raise ShardError(f"{p}: corrupt manifest (no 'splits' mapping)")
    for name, split in splits.items():
        ok = (isinstance(split, dict) and isinstance(split.get("num_sequences"), int)
              and split["num_sequences"] >= 0 and isinstance(split.get("shards"), list))  # fmt: skip
        if not ok:
            raise ShardError(f"{p}: corrupt manifest (split {name!r} needs num_sequences and "
                             "a list of shards)")  # fmt: skip
        for sh in split["shards"]:
            fname = sh.get("name") if isinstance(sh, dict) else None
            if (not isinstance(fname, str) or not fname or "/" in fname or "\\" in fname
                    or fname.startswith(".")):  # fmt: skip
                raise ShardError(f"{p}: corrupt manifest (shard entry {sh!r} of {name!r} is not "
                                 "a file name in the dataset folder)")  # fmt: skip
            count = sh.get("count")
            if count is not None and (not isinstance(count, int) or count < 0):
                raise ShardError(f"{p}: corrupt manifest (shard {fname}: count {count!r})")


def count_samples(path: Path) -> int:
    """Samples in a shard (member headers only, nothing decoded)."""
    keys, end = set(), 0
    try:
        with tarfile.open(path, mode="r") as tar:
            for member in tar:
                keys.add(member_key(path, member.name)[0])
                end = _data_end(member)
        check_tar_end(path, end, None)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ShardError(f"{path}: unreadable shard ({type(e).__name__}: {one_line(e)})") from None
    return len(keys)


def verify_dataset(root: Path, splits: list[str] | None = None) -> list[str]:
    """Check every shard against the manifest: present, sha256 equal, sample count equal.

    Returns the list of problems (one line each, naming the shard); empty when all is well.
    """
    m = read_manifest(root)
    problems = []
    for name, split in m["splits"].items():
        if splits is not None and name not in splits:
            continue
        total = 0
        for sh in split["shards"]:
            p = Path(root) / sh["name"]
            if not p.is_file():
                problems.append(f"{p}: missing")
                continue
            digest = sha256_file(p)
            if digest != sh.get("sha256"):
                problems.append(f"{p}: sha256 {digest[:12]}... but the manifest records "
                                f"{str(sh.get('sha256'))[:12]}... (damaged or changed)")  # fmt: skip
                continue
            try:
                n = count_samples(p)
            except ShardError as e:
                problems.append(str(e))
                continue
            total += n
            if "count" in sh and n != sh["count"]:
                problems.append(f"{p}: {n} samples but the manifest says {sh['count']}")
        if not problems and total != split.get("num_sequences", total):
            problems.append(f"{root}: split {name!r} holds {total} sequences but the manifest "
                            f"says {split['num_sequences']}")  # fmt: skip
    return problems
