"""Backgrounds: any folder of images, a built-in procedural set, sliding patches, compositing.

The paper (Sec. 3.2) takes, per sequence, two random w x h patches (start and end) of one
PASCAL VOC2012 image and moves the patch location along the frames. Here:

- :class:`ImageFolderBackgrounds` serves any folder of images (e.g. VOC2012 ``JPEGImages/``,
  17,125 JPEGs): the file names are listed once, images are decoded with Pillow only when used;
  unreadable or corrupt files are skipped (the next readable image is used) and counted.
- :class:`ProceduralBackgrounds` is the default, with no download: gradients, multi-scale noise
  textures, stripes and checks, clutter of random shapes and blurred "room-like" layouts,
  each image a pure function of ``(seed, index)``.
- :class:`CachedBackgrounds` keeps the most recently used images of any set in memory (up to a
  byte budget), so a process that draws the same index again neither decodes nor re-computes it.
- :func:`sliding_patches` cuts the T moving patches; :func:`composite` lays a rendered hand over.

Every set has ``len(bg)`` and ``bg[i] -> (H, W, 3) uint8`` (indices wrap modulo the length).
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError

from seqhand.errors import SeqhandError

__all__ = [
    "IMAGE_EXTENSIONS",
    "BackgroundError",
    "CachedBackgrounds",
    "ImageFolderBackgrounds",
    "ProceduralBackgrounds",
    "composite",
    "load_backgrounds",
    "sliding_patches",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


class BackgroundError(SeqhandError, ValueError):
    """A background folder is missing, empty or holds no readable image."""


# ---------------------------------------------------------------------------------------------
# A folder of images
# ---------------------------------------------------------------------------------------------
class ImageFolderBackgrounds(Sequence):
    """Images from a folder, decoded lazily; corrupt or unreadable files are skipped and counted.

    Args:
        root: the folder (e.g. ``.../VOC2012/JPEGImages``).
        recursive: also list images in sub-folders.
        extensions: file suffixes taken as images (case-insensitive).

    ``bg[i]`` decodes file ``i`` (sorted by relative path) as RGB, applying its EXIF
    orientation. If that file cannot be decoded, the next files are tried in order, so the
    result is a deterministic function of ``i`` and of the folder's content. Skipped files are
    recorded in :attr:`skipped` (name -> reason) and summarised by :meth:`skipped_summary`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        recursive: bool = False,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise BackgroundError(f"{self.root}: background folder does not exist")
        exts = tuple(e.lower() for e in extensions)
        pattern = "**/*" if recursive else "*"
        self.files = sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.glob(pattern)
            if p.suffix.lower() in exts and p.is_file()
        )
        if not self.files:
            raise BackgroundError(
                f"{self.root}: no images ({', '.join(exts)}) in the background folder"
                + ("" if recursive else " (sub-folders are not searched)")
            )
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, name: str) -> np.ndarray | None:
        if name in self.skipped:
            return None
        try:
            with Image.open(self.root / name) as im:
                im = ImageOps.exif_transpose(im)
                arr = np.asarray(im.convert("RGB"))
            if arr.ndim != 3 or min(arr.shape[:2]) < 1:
                raise ValueError(f"decoded to shape {arr.shape}")
            return arr
        except (
            OSError,
            UnidentifiedImageError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
        ) as e:
            self.skipped[name] = f"{type(e).__name__}: {e}"
            return None

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        """``(H, W, 3)`` uint8 image ``index`` (wrapping), or the next readable one."""
        n = len(self.files)
        for k in range(n):
            arr = self._decode(self.files[(int(index) + k) % n])
            if arr is not None:
                return arr
        raise BackgroundError(
            f"{self.root}: none of the {n} images could be decoded ({self.skipped_summary()})"
        )

    def scan(self) -> int:
        """Decode every file once (slow on a big folder); returns how many are readable."""
        return sum(self._decode(name) is not None for name in self.files)

    def skipped_summary(self, show: int = 3) -> str:
        """One line: how many files were skipped so far and a few of their names."""
        if not self.skipped:
            return "no background images skipped"
        names = sorted(self.skipped)
        shown = ", ".join(f"{n} ({self.skipped[n]})" for n in names[:show])
        more = f" and {len(names) - show} more" if len(names) > show else ""
        return f"{len(names)} unreadable background image(s) skipped: {shown}{more}"


# ---------------------------------------------------------------------------------------------
# Procedural backgrounds
# ---------------------------------------------------------------------------------------------
_KINDS = ("gradient", "noise", "stripes", "clutter", "room")
_KIND_P = np.array([0.12, 0.2, 0.13, 0.3, 0.25])


class ProceduralBackgrounds(Sequence):
    """A built-in set of ``n`` procedural images, each a pure function of ``(seed, index)``.

    Args:
        n: number of distinct images (generation is lazy; any size costs nothing up front).
        size: ``(H, W)`` of each image; larger than the frames so that patches can slide.
        seed: the set's seed.

    Kinds (chosen per image): linear/radial colour gradients, fractal value noise at several
    scales (marble- and wood-like banding), stripes and checks at random angles, clutter of
    random rectangles / ellipses / polygons / lines over a textured base, and blurred
    "room-like" layouts (wall, floor, windows, furniture blocks, a light fall-off). Half of
    the images get a second kind blended in through a noise mask, most get fine grain.
    """

    def __init__(self, n: int = 10_000, size: tuple[int, int] = (320, 320), seed: int = 0):
        if n < 1:
            raise BackgroundError(f"a procedural background set needs n >= 1, got {n}")
        self.n = int(n)
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.n

    def kind(self, index: int) -> str:
        """Which generator makes (the base of) image ``index``."""
        return _KINDS[int(_rng(self.seed, int(index) % self.n).choice(len(_KINDS), p=_KIND_P))]

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        index = int(index) % self.n
        rng = _rng(self.seed, index)
        h, w = self.size
        img = _GENERATORS[_KINDS[int(rng.choice(len(_KINDS), p=_KIND_P))]](rng, h, w)
        if rng.random() < 0.5:  # blend in a second kind through a soft noise mask
            other = _GENERATORS[_KINDS[int(rng.choice(len(_KINDS), p=_KIND_P))]](rng, h, w)
            m = np.clip(_fractal(rng, h, w, 3) * rng.uniform(2, 6) + 0.5, 0, 1)[..., None]
            img = img * (1 - m) + other * m
        if rng.random() < 0.7:  # fine grain
            grain = _value_noise(rng, h, w, cells=int(rng.integers(60, 160)))
            img = img + grain[..., None] * np.float32(rng.uniform(3, 12))
        out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        if rng.random() < 0.3:
            out = out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.5))))
        return np.asarray(out)


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), 0x6B67])  # "bg"


def _color(rng: np.random.Generator, muted: bool = True) -> np.ndarray:
    """A random RGB colour (0..255), muted towards grey most of the time, like real scenes."""
    c = rng.uniform(0, 255, 3)
    if muted:
        grey = c.mean()
        c = grey + (c - grey) * rng.uniform(0.15, 0.8)
    return c.astype(np.float32)


def _palette(rng: np.random.Generator, k: int) -> np.ndarray:
    """``(256, 3)`` float32 lookup table through k random colour stops."""
    stops = np.stack([_color(rng, muted=rng.random() < 0.75) for _ in range(k)])
    pos = np.concatenate([[0.0], np.sort(rng.uniform(0.15, 0.85, k - 2)), [1.0]])
    x = np.linspace(0, 1, 256)
    return np.stack([np.interp(x, pos, stops[:, c]) for c in range(3)], 1).astype(np.float32)


def _apply(lut: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``lut[round(255 t)]``: ``(..., 3)`` float32 colours of ``t`` in [0, 1]. Each RGB row is
    gathered as one 12-byte item (2-3x faster than indexing the (256, 3) table)."""
    idx = np.clip(t * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rows = np.ascontiguousarray(lut, np.float32).view(np.dtype((np.void, 12)))
    return rows[idx].view(np.float32).reshape(idx.shape + (3,))


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a random ``cells``-wide grid upscaled bicubically to (h, w)."""
    gh = max(2, int(round(cells * h / max(h, w))))
    gw = max(2, int(round(cells * w / max(h, w))))
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    up = Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(up), -1, 1)


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = int(rng.integers(2, 6))
    for _ in range(octaves):
        out += np.float32(amp) * _value_noise(rng, h, w, cells)
        total += amp
        amp *= rng.uniform(0.4, 0.65)
        cells *= 2
    return out / np.float32(total)


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> np.ndarray:
    """``(2, h, w)`` float32 row and column coordinates (cached, read-only)."""
    g = np.mgrid[0:h, 0:w].astype(np.float32)
    g.flags.writeable = False
    return g


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = _grid(h, w)
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        t = xx * np.float32(np.cos(ang)) + yy * np.float32(np.sin(ang))
    else:
        cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
        t = np.hypot(yy - np.float32(cy), xx - np.float32(cx))
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return _apply(_palette(rng, int(rng.integers(2, 4))), t)


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    f = _fractal(rng, h, w, octaves=int(rng.integers(3, 6)))
    f = (f - f.min()) / max(float(np.ptp(f)), 1e-6)
    if rng.random() < 0.4:  # marble / wood-like banding
        f = 0.5 + 0.5 * np.sin(f * np.float32(rng.uniform(8, 40)))
    return _apply(_palette(rng, int(rng.integers(2, 5))), f)


def _stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = _grid(h, w)
    ang = rng.uniform(0, np.pi)
    period = np.float32(rng.uniform(6, 60))
    ca, sa = np.float32(np.cos(ang)), np.float32(np.sin(ang))
    warp = _value_noise(rng, h, w, cells=4) * np.float32(rng.uniform(0, 0.6))
    u = (xx * ca + yy * sa) / period + warp
    if rng.random() < 0.35:  # checks
        v = (yy * ca - xx * sa) / period + warp
        t = (np.floor(u) + np.floor(v)) % 2
    elif rng.random() < 0.5:  # soft stripes
        t = 0.5 + 0.5 * np.sin(np.float32(2 * np.pi) * u)
    else:
        t = np.floor(u) % 2
    return _apply(_palette(rng, 2), t)


def _draw_shapes(rng: np.random.Generator, img: Image.Image, count: int, scale: float) -> None:
    h, w = img.height, img.width
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        c = tuple(int(v) for v in _color(rng, muted=rng.random() < 0.6))
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        rx, ry = rng.uniform(0.02, scale) * w, rng.uniform(0.02, scale) * h
        kind = rng.integers(4)
        if kind == 0:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=c)
        elif kind == 1:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=c)
        elif kind == 2:
            k = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            draw.polygon([(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in ang], fill=c)
        else:
            x2, y2 = cx + rng.normal(0, rx * 2), cy + rng.normal(0, ry * 2)
            draw.line([cx, cy, x2, y2], fill=c, width=int(rng.integers(1, 8)))


def _clutter(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _noise_texture(rng, h, w) if rng.random() < 0.5 else _gradient(rng, h, w)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    for scale, count in ((0.35, int(rng.integers(3, 8))), (0.12, int(rng.integers(10, 40)))):
        _draw_shapes(rng, img, count, scale)
        if rng.random() < 0.5:
            img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.5))))
    return np.asarray(img, np.float32)


def _room(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    horizon = rng.uniform(0.45, 0.85) * h
    img = Image.new("RGB", (w, h), tuple(int(v) for v in _color(rng)))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, horizon, w, h], fill=tuple(int(v) for v in _color(rng)))
    for _ in range(int(rng.integers(1, 4))):  # windows, doors, pictures: bright/dark panels
        x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(0.0, 0.6) * horizon
        x1, y1 = x0 + rng.uniform(0.1, 0.4) * w, y0 + rng.uniform(0.15, 0.6) * horizon
        lum = rng.uniform(190, 255) if rng.random() < 0.5 else rng.uniform(20, 90)
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in _color(rng) * 0.3 + lum * 0.7))
    for _ in range(int(rng.integers(1, 5))):  # furniture blocks standing on the floor
        x0 = rng.uniform(-0.2, 1.0) * w
        bw, bh = rng.uniform(0.1, 0.5) * w, rng.uniform(0.1, 0.5) * h
        y1 = horizon + rng.uniform(0.0, 0.5) * (h - horizon)
        draw.rectangle([x0, y1 - bh, x0 + bw, y1], fill=tuple(int(v) for v in _color(rng)))
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.0, 6.0))))
    # Light fall-off from a random point (a lamp / window), computed at 1/8 size and upscaled.
    ly, lx = rng.uniform(0, 1), rng.uniform(0, 1)
    gy, gx = np.mgrid[0:1:9j, 0:1:9j]
    fall = (1.0 - rng.uniform(0.2, 0.6) * np.hypot(gy - ly, gx - lx) / np.sqrt(2)).astype(
        np.float32
    )
    fall = np.asarray(Image.fromarray(fall, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    return np.asarray(img, np.float32) * fall[..., None]


_GENERATORS = {
    "gradient": _gradient,
    "noise": _noise_texture,
    "stripes": _stripes,
    "clutter": _clutter,
    "room": _room,
}


# ---------------------------------------------------------------------------------------------
# A cache in front of any set
# ---------------------------------------------------------------------------------------------
CACHE_BYTES = 256 * 2**20
"""Default memory budget of :class:`CachedBackgrounds` per process (~850 procedural images)."""


class CachedBackgrounds(Sequence):
    """Any background set behind a least-recently-used cache of at most ``max_bytes``.

    ``cached[i]`` equals ``backgrounds[i]`` (the same pixels; returned read-only, as the
    patches are cut from it, never written). Images larger than the budget are not kept.
    ``hits`` and ``misses`` count the lookups.
    """

    def __init__(self, backgrounds: Sequence, max_bytes: int = CACHE_BYTES) -> None:
        self.backgrounds = backgrounds
        self.max_bytes = int(max_bytes)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.backgrounds)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        key = int(index) % len(self)
        img = self._cache.get(key)
        if img is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return img
        self.misses += 1
        img = np.asarray(self.backgrounds[key])
        img.flags.writeable = False
        if img.nbytes <= self.max_bytes:
            self._cache[key] = img
            self._bytes += img.nbytes
            while self._bytes > self.max_bytes:
                self._bytes -= self._cache.popitem(last=False)[1].nbytes
        return img


def load_backgrounds(spec: str | os.PathLike | None = None, *, seed: int = 0,
                     cache_bytes: int = 0):  # fmt: skip
    """``None`` / ``"builtin"`` -> :class:`ProceduralBackgrounds`; a folder ->
    :class:`ImageFolderBackgrounds` of its images (not recursive: a VOC2012 root also holds
    segmentation PNGs). A folder without images but with a ``JPEGImages/`` sub-folder (the
    VOC2012 root) uses that sub-folder. With ``cache_bytes > 0`` the set is wrapped in a
    :class:`CachedBackgrounds` of that budget."""
    bg = _load_backgrounds(spec, seed)
    return CachedBackgrounds(bg, cache_bytes) if cache_bytes > 0 else bg


def _load_backgrounds(spec, seed: int):
    if spec is None or str(spec) == "builtin":
        return ProceduralBackgrounds(seed=seed)
    root = Path(spec)
    voc = root / "JPEGImages"
    if voc.is_dir() and not any(
        p.suffix.lower() in IMAGE_EXTENSIONS for p in root.iterdir() if p.is_file()
    ):
        root = voc
    return ImageFolderBackgrounds(root)


# ---------------------------------------------------------------------------------------------
# Sliding patches and compositing
# ---------------------------------------------------------------------------------------------
def sliding_patches(
    image: np.ndarray, num_frames: int, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """Cut ``num_frames`` w x h patches whose top-left corner slides linearly from a random
    start to a random end position (the paper's moving background).

    The image is upscaled (bilinear, aspect kept) when it is smaller than a patch in either
    dimension. Corners are drawn uniformly (start first, then end, two integers each from
    ``rng``) and interpolated linearly over the frames, rounded to whole pixels.

    Args:
        image: ``(H, W, 3)`` uint8.
        num_frames: T >= 1.
        width, height: patch size w, h in pixels.
        rng: the sequence's generator.

    Returns:
        ``(T, h, w, 3)`` uint8 patches (frame 0 at the start position, frame T-1 at the end).
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if num_frames < 1 or width < 1 or height < 1:
        raise ValueError(f"need num_frames, width, height >= 1, got {num_frames, width, height}")
    ih, iw = img.shape[:2]
    if ih < height or iw < width:
        f = max(height / ih, width / iw)
        size = (max(width, int(np.ceil(iw * f))), max(height, int(np.ceil(ih * f))))
        img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))
        ih, iw = img.shape[:2]
    y0, x0 = rng.integers(0, ih - height + 1), rng.integers(0, iw - width + 1)
    y1, x1 = rng.integers(0, ih - height + 1), rng.integers(0, iw - width + 1)
    frac = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    ys = np.rint(y0 + (y1 - y0) * frac).astype(np.int64)
    xs = np.rint(x0 + (x1 - x0) * frac).astype(np.int64)
    out = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        out[t] = img[ys[t] : ys[t] + height, xs[t] : xs[t] + width]
    return out


def composite(rgb: np.ndarray, alpha_or_mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Lay a rendered image over a background: ``rgb + background * (1 - alpha)``.

    Args:
        rgb: ``(..., H, W, 3)`` uint8 rendered **over black** (as :mod:`seqhand.synth.raster`
            does without a background; with anti-aliasing this is premultiplied colour).
        alpha_or_mask: ``(..., H, W)`` float coverage in [0, 1], or a bool mask.
        background: ``(..., H, W, 3)`` uint8, broadcastable to ``rgb``.

    Returns:
        ``(..., H, W, 3)`` uint8.
    """
    rgb = np.asarray(rgb)
    a = np.asarray(alpha_or_mask)
    bg = np.asarray(background)
    if a.shape != rgb.shape[:-1] or rgb.shape[-1] != 3:
        raise ValueError(
            f"rgb (..., H, W, 3) and alpha (..., H, W) disagree: {rgb.shape}, {a.shape}"
        )
    if a.dtype == np.bool_:
        return np.where(a[..., None], rgb, np.broadcast_to(bg, rgb.shape)).astype(np.uint8)
    out = rgb.astype(np.float32) + bg.astype(np.float32) * (1.0 - a[..., None].astype(np.float32))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
