"""From decoded samples (generated sequences, real images) to training tensors.

A training item is a dict of tensors for one sequence of T frames:

==================  ==============  ================================================================
key                 shape           meaning
==================  ==============  ================================================================
frames              (T, 3, S, S)    float32, ImageNet-normalised (``models.normalize_frames``)
joints2d            (T, 21, 2)      pixels of the S x S input; ``joints2d_valid`` (T, 21)
joints3d            (T, 21, 3)      metres, camera-aligned (R applied); ``joints3d_valid`` (T, 21)
vertices3d          (T, V, 3)       optional, same frame; ``vertices3d_valid`` (T,)
mask                (T, S, S)       bool silhouette; ``mask_dist`` its normalised distance map
params              (T, 26)         ground-truth ``[s, t, r, theta_pca, beta]`` when known
frames_valid        (T,)            all ones (sequences are complete)
==================  ==============  ================================================================
"""

from __future__ import annotations

import functools
import mmap

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from seqhand.losses import mask_distance_map
from seqhand.models import normalize_frames


def resize_points(x: np.ndarray, factor: float) -> np.ndarray:
    """Pixel coordinates (integer = pixel centre) after resizing an image by ``factor``."""
    return (x + 0.5) * factor - 0.5


def _frames_tensor(frames: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    h, w = t.shape[-2:]
    if h != w:
        raise ValueError(f"frames must be square crops, got {h}x{w}")
    factor = size / h
    if h != size:
        t = F.interpolate(
            t, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return normalize_frames(t), factor


def _masks(masks: np.ndarray, size: int) -> np.ndarray:
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None]
    if m.shape[-1] != size:
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
    return (m[:, 0] > 0.5).numpy()


def sequence_item(sample: dict, image_size: int, with_mask: bool = True) -> dict:
    """A generated SeqHAND sequence (decoded shard sample) -> training tensors."""
    ann = sample["ann"]
    frames, f = _frames_tensor(sample["frames"], image_size)
    t = frames.shape[0]
    rot = ann["rot"].astype(np.float64)
    rmat = Rotation.from_rotvec(rot).as_matrix()  # (T, 3, 3)
    j3 = np.einsum("tij,tkj->tki", rmat, ann["joints3d"].astype(np.float64))
    scale = ann["scale"].reshape(t, 1) * f
    trans = resize_points(ann["trans"].reshape(t, 2), f)
    betas = np.broadcast_to(ann["betas"].reshape(1, -1), (t, ann["betas"].shape[-1]))
    params = np.concatenate([scale, trans, rot, ann["theta_pca"], betas], axis=1)
    item = {
        "frames": frames,
        "joints2d": torch.from_numpy(resize_points(ann["joints2d"], f)).float(),
        "joints2d_valid": torch.from_numpy(ann["in_frame"].astype(bool)),
        "joints3d": torch.from_numpy(j3).float(),
        "joints3d_valid": torch.ones(t, 21, dtype=torch.bool),
        "params": torch.from_numpy(params).float(),
        "params_valid": torch.ones(t, dtype=torch.bool),
        "frames_valid": torch.ones(t, dtype=torch.bool),
    }
    if with_mask:
        m = _masks(sample["masks"], image_size)
        item["mask"] = torch.from_numpy(m)
        dist = sample.get("mask_dist")  # precomputed by CachedSequences at this size
        if dist is None or dist.shape != m.shape:
            dist = mask_distance_map(m)
        item["mask_dist"] = torch.from_numpy(dist)
        item["mask_valid"] = torch.from_numpy(m.reshape(t, -1).any(1))  # empty mask: no term
    return item


PER_SEQUENCE_KEYS = ("betas",)
"""Annotations that hold one value per sequence; every other ``ann`` array is per frame."""


def clip_sample(sample: dict, start: int, length: int) -> dict:
    """Frames ``start .. start + length - 1`` of a decoded sequence sample (frames, masks and
    every per-frame annotation; ``betas`` stay)."""
    t = len(sample["frames"])
    if not (0 <= start and length >= 1 and start + length <= t):
        raise ValueError(f"clip [{start}, {start + length}) outside a sequence of {t} frames")
    cut = slice(start, start + length)
    out = {**sample, "frames": sample["frames"][cut]}
    for k in ("masks", "mask_dist"):
        if k in sample:
            out[k] = sample[k][cut]
    out["ann"] = {k: (v if k in PER_SEQUENCE_KEYS else v[cut]) for k, v in sample["ann"].items()}
    return out


class SequenceClips(torch.utils.data.Dataset):
    """Every window of ``clip`` consecutive frames of every sequence of ``base`` (a map-style
    set of decoded samples with ``frames`` frames each): item ``k`` is window ``k % W`` of
    sequence ``k // W``, ``W = frames - clip + 1``. Deterministic in ``k``, so a step sampler's
    exact resume holds; training on short clips gives a batch more independent sequences for
    the same number of frames (``data.clip_frames``)."""

    def __init__(self, base, frames: int, clip: int, transform=None) -> None:
        if not 1 <= clip <= frames:
            raise ValueError(f"data.clip_frames must be in [1, {frames}], got {clip}")
        self.base, self.clip, self.transform = base, int(clip), transform
        self.windows = int(frames) - self.clip + 1

    def __len__(self) -> int:
        return len(self.base) * self.windows

    def __getitem__(self, k: int) -> dict:
        seq, start = divmod(int(k), self.windows)
        s = clip_sample(self.base[seq], start, self.clip)
        return self.transform(s) if self.transform is not None else s


class _Slabs:
    """Arrays kept for the life of a process, copied into anonymous memory maps of ``rows``
    arrays of one shape and dtype each. Kept on the C heap instead, ~0.3 MB arrays land between
    the training step's freed activations and glibc cannot reuse those holes for the next
    step's large blocks: the resident size of a 16,000-sequence run grew ~2x faster than its
    cache (24 GB at step 1,800). Maps are outside the heap, so the heap keeps its size."""

    def __init__(self, rows: int = 256) -> None:
        self.rows = int(rows)
        self._open: dict[tuple, tuple[np.ndarray, int]] = {}

    def keep(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` in a slab (a view of it)."""
        a = np.asarray(a)
        key = (a.shape, a.dtype.str)
        slab, used = self._open.get(key, (None, self.rows))
        if used == self.rows:  # a new map; the full one lives on through its views
            buf = mmap.mmap(-1, max(1, a.nbytes * self.rows))
            slab, used = np.frombuffer(buf, a.dtype, a.size * self.rows).reshape(
                (self.rows, *a.shape)), 0  # fmt: skip
        slab[used] = a
        self._open[key] = (slab, used + 1)
        return slab[used]


@functools.lru_cache(maxsize=1)
def _glibc():
    """The process's C library if it is glibc (``mallopt``, ``malloc_trim``), else None
    (looked up once)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them
        return libc if libc.gnu_get_libc_version and libc.malloc_trim else None
    except (OSError, AttributeError, TypeError):
        return None


def limit_malloc_arenas(n: int = 1) -> bool:
    """Cap glibc's malloc arenas at ``n`` (``mallopt(M_ARENA_MAX, n)``, as the environment
    variable ``MALLOC_ARENA_MAX`` would); False where there is no glibc.

    Why: a cached run of Table 2's + LSTM row on 16,000 sequences (``benchmarks/ablation.py``)
    grew by ~21 MB a step from step ~400, against ~7 MB for the per-frame row on the same data
    (the cache filling), until the machine swapped (23 GB by step 1,150). With one arena it
    grew ~6-7 MB a step, at the same speed: the heap the step's threads freed in their own
    arenas was not being reused. Where memory comes from changes no number computed.
    """
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(-8, int(n)))  # M_ARENA_MAX


def trim_heap() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``, which also
    releases whole free pages inside the heap). True if memory was released; False if none
    was, or where there is no glibc."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


class CachedSequences(torch.utils.data.Dataset):
    """``base`` (a map-style set of decoded samples) with each sample kept in memory after its
    first read, together with its silhouettes' distance maps at ``image_size`` (the costliest
    part of :func:`sequence_item`); ``transform`` is applied to the cached sample on every
    read. The same items as without the cache, for datasets that fit in memory (``data.cache``:
    ~0.7 MB per 8-frame sequence at 96 px); each DataLoader worker holds its own copy.

    The arrays, annotations included, are kept in memory maps (:class:`_Slabs`), and every
    ``trim_every`` reads the heap's free pages are given back (:func:`trim_heap`). Why: in the
    ConvLSTM row of Table 2 on 16,000 sequences (one malloc arena, only the images in maps) the
    heap grew ~2.5 MB a step from step ~500 and ~4.5 by step 2,000 (22 GB resident at step
    2,119). With the annotation arrays in the maps too, 0.28 MB a step (steps 529-939); with
    the trim as well, none (0.88-0.95 GB from step 529 to 929), at a cost within the noise.
    """

    def __init__(self, base, image_size: int, transform=None, trim_every: int = 1024) -> None:
        self.base, self.image_size, self.transform = base, int(image_size), transform
        self._cache: dict[int, dict] = {}
        self._slabs = _Slabs()
        self.trim_every, self._reads = int(trim_every), 0
        limit_malloc_arenas()  # a long cached run's heap otherwise grows (see there)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        s = self._cache.get(int(i))
        if s is None:
            s = dict(self.base[int(i)])
            if "masks" in s:
                s["mask_dist"] = mask_distance_map(_masks(s["masks"], self.image_size))
            for k in ("frames", "masks", "mask_dist"):
                if k in s:
                    s[k] = self._slabs.keep(s[k])
            if "ann" in s:
                s["ann"] = {k: self._slabs.keep(v) if isinstance(v, np.ndarray) else v
                            for k, v in s["ann"].items()}  # fmt: skip
            self._cache[int(i)] = s
        self._reads += 1
        if self.trim_every > 0 and self._reads % self.trim_every == 0:
            trim_heap()
        return self.transform(s) if self.transform is not None else s


def collate(items: list[dict]) -> dict:
    """Stack items of equal keys along a new batch dim ``(B, T, ...)``."""
    keys = items[0].keys()
    return {k: torch.stack([it[k] for it in items]) for k in keys}
