"""Hand boxes and square crops: the exact map between a full image and a model-input crop.

The paper crops, around each localised hand, a square of ``2.2 x`` the longer side of the
hand's tight box, centred on the box, and resizes it to the network's input (section 5, "Hand
Localizations", after Boukhayma et al.). This module owns that map, in both directions, for
points and for images, including crops that run off the image border (padded) and left hands
(mirrored into the right hand the model knows, and back).

Coordinates (the project's image convention, as in :mod:`seqhand.synth.raster`): pixels, x
right, y down, **pixel centres at integer coordinates** (pixel ``img[i, j]`` covers
``[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]``). A :class:`Box` is a rectangle in these continuous
coordinates; the tight box of points is ``[min, max]`` of their coordinates.

The crop of side ``L`` full-image pixels centred at ``(cx, cy)`` covers the square
``[cx - L/2, cx + L/2]^2`` and becomes an ``S x S`` image, so with ``k = S / L``::

    u' = (u - cx + L/2) * k - 1/2        v' = (v - cy + L/2) * k - 1/2        (right hand)
    u' = (cx + L/2 - u) * k - 1/2                                              (left: mirrored)

and the inverse solves these for ``(u, v)``. Image resampling uses the same map (PIL's
antialiased bilinear filter when shrinking, plain bilinear when enlarging); pixels outside the
source image take ``pad_value``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from PIL import Image

from seqhand.conventions import CROP_FACTOR
from seqhand.errors import SeqhandError

Side = Literal["right", "left"]
SIDES = ("right", "left")


class BoxError(SeqhandError, ValueError):
    """A hand box is malformed (non-finite, empty, inverted) or has an unknown side."""


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned hand box in full-image pixel coordinates (see the module docstring).

    Attributes:
        x0, y0, x1, y1: corners, pixels, ``x0 <= x1`` and ``y0 <= y1``.
        side: ``"right"``, ``"left"`` or ``None`` (unknown: the predictor's default applies).
        score: a detector's confidence in [0, 1], if any.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    side: Side | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        try:
            vals = tuple(float(v) for v in (self.x0, self.y0, self.x1, self.y1))
        except (TypeError, ValueError):
            corners = (self.x0, self.y0, self.x1, self.y1)
            raise BoxError(f"box corners must be numbers, got {corners}") from None
        for name, v in zip(("x0", "y0", "x1", "y1"), vals):
            object.__setattr__(self, name, v)  # plain floats (not numpy scalars)
        if self.score is not None:
            object.__setattr__(self, "score", float(self.score))
        if not all(math.isfinite(v) for v in vals):
            raise BoxError(f"box corners must be finite numbers, got {vals}")
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise BoxError(f"box must have x0 <= x1 and y0 <= y1, got {vals}")
        if self.side is not None and self.side not in SIDES:
            raise BoxError(f"box side must be 'right' or 'left', got {self.side!r}")

    @classmethod
    def from_points(
        cls, points: np.ndarray, side: Side | None = None, score: float | None = None
    ) -> Box:
        """The tight box ``[min, max]`` of ``(N, 2)`` pixel points (non-finite rows ignored)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        p = p[np.isfinite(p).all(axis=1)]
        if len(p) == 0:
            raise BoxError("cannot make a box from no finite points")
        (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
        return cls(float(x0), float(y0), float(x1), float(y1), side, score)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))

    @property
    def longer_side(self) -> float:
        return max(self.width, self.height)

    def as_array(self) -> np.ndarray:
        """``(4,)`` float64 ``[x0, y0, x1, y1]``."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    def scaled(self, factor: float) -> Box:
        """The box scaled about its centre by ``factor`` (side and score kept)."""
        cx, cy = self.center
        hw, hh = 0.5 * self.width * factor, 0.5 * self.height * factor
        return dataclasses.replace(self, x0=cx - hw, y0=cy - hh, x1=cx + hw, y1=cy + hh)

    def to_dict(self) -> dict:
        return {"box": [float(v) for v in self.as_array()], "side": self.side, "score": self.score}


@dataclasses.dataclass(frozen=True)
class CropTransform:
    """The similarity map between a full image and a square, possibly mirrored, model crop.

    Attributes:
        cx, cy: centre of the crop square in the full image, pixels.
        side: side ``L`` of the crop square in full-image pixels.
        size: side ``S`` of the crop image in pixels (the model's input size).
        mirror: the crop is mirrored left-right (a left hand shown to a right-hand model).
    """

    cx: float
    cy: float
    side: float
    size: int
    mirror: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.side) and self.side > 0):
            raise BoxError(f"crop side must be a positive number of pixels, got {self.side}")
        if int(self.size) < 1:
            raise BoxError(f"crop size must be >= 1 pixel, got {self.size}")

    @classmethod
    def from_box(
        cls, box: Box, size: int, factor: float = CROP_FACTOR, mirror: bool = False
    ) -> CropTransform:
        """The paper's crop: a square of ``factor x box.longer_side`` around the box centre.

        A degenerate box (a point) is refused: it has no scale to crop at.
        """
        if box.longer_side <= 0:
            raise BoxError(f"cannot crop around an empty box {box.as_array().tolist()}")
        cx, cy = box.center
        return cls(cx, cy, float(factor) * box.longer_side, int(size), bool(mirror))

    @property
    def scale(self) -> float:
        """Crop pixels per full-image pixel, ``k = S / L``."""
        return self.size / self.side

    @property
    def origin(self) -> tuple[float, float]:
        """Full-image coordinates of the crop square's top-left corner (before any mirror)."""
        return (self.cx - 0.5 * self.side, self.cy - 0.5 * self.side)

    def matrix(self) -> np.ndarray:
        """``(2, 3)`` affine ``A`` with ``crop = A @ [u, v, 1]``."""
        k = self.scale
        x0, y0 = self.origin
        sx = -k if self.mirror else k
        bx = (x0 + self.side) * k - 0.5 if self.mirror else -x0 * k - 0.5
        return np.array([[sx, 0.0, bx], [0.0, k, -y0 * k - 0.5]])

    def inverse_matrix(self) -> np.ndarray:
        """``(2, 3)`` affine with ``full = M @ [u', v', 1]``."""
        a = self.matrix()
        lin = np.diag(1.0 / np.diag(a[:, :2]))
        return np.concatenate([lin, -(lin @ a[:, 2:])], axis=1)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Full-image pixels ``(..., 2)`` -> crop pixels ``(..., 2)`` (float64)."""
        return _apply(self.matrix(), points)

    def to_full(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels ``(..., 2)`` -> full-image pixels ``(..., 2)`` (float64)."""
        return _apply(self.inverse_matrix(), points)

    def crop_image(self, image: np.ndarray, pad_value: float = 0) -> np.ndarray:
        """Cut the crop out of ``image`` and resample it to ``S x S``.

        Args:
            image: ``(H, W, C)`` or ``(H, W)`` uint8 or float image.
            pad_value: value of crop pixels that fall outside the image.

        Returns:
            ``(S, S, C)`` / ``(S, S)`` image of the input's dtype (float images are resampled
            in float32). Mirrored when ``self.mirror``.
        """
        img = np.asarray(image)
        if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
            raise BoxError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
        size = int(self.size)
        # Shrinking by f = L / S: average n x n blocks (n = floor(f)), then sample bilinearly
        # (the remaining factor is < 2). Both steps reproduce a linear image exactly, so the
        # crop follows the geometric map with no shift. The source region carries a margin
        # for the filters and is padded outside the image.
        n = max(1, int(math.floor(1.0 / self.scale + 1e-9)))
        margin = 2 * n + 2
        x0, y0 = self.origin
        ix0 = int(math.floor(x0)) - margin
        iy0 = int(math.floor(y0)) - margin
        ix1 = ix0 + n * math.ceil((math.ceil(x0 + self.side) + margin - ix0) / n)
        iy1 = iy0 + n * math.ceil((math.ceil(y0 + self.side) + margin - iy0) / n)
        region = _padded_region(img, ix0, iy0, ix1, iy1, pad_value)
        # Output pixel j (PIL centre x_p = j + 0.5) samples the region at
        # r = (j + 0.5) / k + x0 - ix0, i.e. the reduced image at q = (r - (n - 1) / 2) / n,
        # whose PIL coordinate is q + 0.5.
        step = 1.0 / (self.scale * n)
        cx = (x0 - ix0 - 0.5 * (n - 1)) / n + 0.5
        cy = (y0 - iy0 - 0.5 * (n - 1)) / n + 0.5
        out = _warp(region, n, (step, 0.0, cx, 0.0, step, cy), size)
        return np.ascontiguousarray(out[:, ::-1]) if self.mirror else out

    def uncrop_image(
        self, crop: np.ndarray, full_shape: tuple[int, int], fill: float = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map a crop-space image back into the full image (bilinear), the inverse of
        :meth:`crop_image` up to resampling.

        Args:
            crop: ``(S, S, C)`` or ``(S, S)`` image in crop space.
            full_shape: ``(H, W)`` of the full image.
            fill: value of full-image pixels the crop does not cover.

        Returns:
            ``(image (H, W[, C]) float32, covered (H, W) bool)``: a pixel is covered when its
            centre maps inside the crop's pixel-centre grid ``[0, S - 1]^2``.
        """
        from scipy.ndimage import map_coordinates

        c = np.asarray(crop, dtype=np.float32)
        if c.shape[:2] != (self.size, self.size):
            raise BoxError(f"crop must be ({self.size}, {self.size}[, C]), got {c.shape}")
        h, w = int(full_shape[0]), int(full_shape[1])
        out = np.full((h, w) + c.shape[2:], fill, dtype=np.float32)
        covered = np.zeros((h, w), dtype=bool)
        (ax, ay), (bx, by) = self.to_full(np.array([[0.0, 0.0], [self.size - 1.0] * 2]))
        eps = 1e-9
        lo_x, hi_x = max(0, math.ceil(min(ax, bx) - eps)), min(w - 1, math.floor(max(ax, bx) + eps))
        lo_y, hi_y = max(0, math.ceil(min(ay, by) - eps)), min(h - 1, math.floor(max(ay, by) + eps))
        if lo_x > hi_x or lo_y > hi_y:
            return out, covered
        vv, uu = np.mgrid[lo_y : hi_y + 1, lo_x : hi_x + 1].astype(np.float64)
        cc = self.to_crop(np.stack([uu, vv], axis=-1))
        coords = [cc[..., 1], cc[..., 0]]
        planes = [c] if c.ndim == 2 else [c[..., k] for k in range(c.shape[2])]
        vals = [map_coordinates(p, coords, order=1, mode="nearest") for p in planes]
        block = vals[0] if c.ndim == 2 else np.stack(vals, axis=-1)
        out[lo_y : hi_y + 1, lo_x : hi_x + 1] = block
        covered[lo_y : hi_y + 1, lo_x : hi_x + 1] = True
        return out, covered

    def to_dict(self) -> dict:
        return {"center": [self.cx, self.cy], "side": self.side, "size": int(self.size),
                "mirror": bool(self.mirror)}  # fmt: skip


def full_frame_box(height: int, width: int, factor: float = CROP_FACTOR) -> Box:
    """The box whose crop is exactly the whole ``(height, width)`` frame (its longer side).

    Use it for inputs that are hand crops already (e.g. generated SeqHAND frames).
    """
    side = max(height, width) / float(factor)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


# --------------------------------------------------------------------------------------------
def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] != 2:
        raise BoxError(f"points must be (..., 2) pixels, got shape {p.shape}")
    return p @ affine[:, :2].T + affine[:, 2]


def _padded_region(
    img: np.ndarray, x0: int, y0: int, x1: int, y1: int, pad_value: float
) -> np.ndarray:
    """``img[y0:y1, x0:x1]`` with out-of-image pixels set to ``pad_value``."""
    h, w = img.shape[:2]
    out = np.full((y1 - y0, x1 - x0) + img.shape[2:], pad_value, dtype=img.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def _warp(region: np.ndarray, reduce: int, affine: tuple[float, ...], size: int) -> np.ndarray:
    """Box-reduce ``region`` by ``reduce``, then sample it bilinearly with PIL's ``affine``.

    Samples per channel in float32 (PIL's 8-bit bilinear truncates, a -0.5 level bias); uint8
    RGB is block-reduced in 8 bits first (PIL rounds there) and rounded back at the end.
    """
    if reduce > 1 and region.dtype == np.uint8 and region.ndim == 3 and region.shape[2] == 3:
        region_in = np.asarray(Image.fromarray(np.ascontiguousarray(region), "RGB").reduce(reduce))
        reduce_now = 1
    else:
        region_in, reduce_now = region, reduce
    chans = (
        [region_in]
        if region_in.ndim == 2
        else [region_in[..., k] for k in range(region_in.shape[2])]
    )
    out = []
    for c in chans:
        im = Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), "F")
        if reduce_now > 1:
            im = im.reduce(reduce_now)
        out.append(np.asarray(im.transform((size, size), Image.AFFINE, affine, Image.BILINEAR)))
    res = out[0] if region.ndim == 2 else np.stack(out, axis=-1)
    if region.dtype == np.uint8:
        return np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return res.astype(np.float32)
