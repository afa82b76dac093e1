"""Is there a hand where the prediction says? A check from the image, outside the network.

The network always answers with a hand, also on a crop of empty background (a track that
outlived the hand). :func:`silhouette_contrast` measures whether the predicted hand explains the
crop: it draws the predicted mesh's silhouette in the crop and asks how well the pixel colours
alone tell the silhouette's inside from a ring of background around it. A hand in front of a
background does (skin against something else); a mesh placed on empty background does not (the
same texture on both sides).

"How well" is a cross-validated colour classifier, so it is unbiased at zero: the inner pixels
and the ring pixels are split in two halves (a fixed pixel pattern, no randomness); a colour
histogram of each class (6 levels per channel, 216 bins) learnt on one half classifies the other
half by the likelier class, and the balanced accuracy ``a`` of both directions gives the score
``2 * (a - 0.5)`` clipped to [0, 1]: 0 = colours say nothing, 1 = perfectly separable. Pixels of
the crop outside the frame (padding) take part in neither class.

Once a detector or the user has placed the box on the hand, the track also knows the hand's
colours (:func:`hand_colours`), and tracked frames are scored by :func:`hand_likeness`: the skin
likelihood inside the silhouette against the ring around it.

Measured on rendered videos (10 procedural textured backgrounds, the built-in hand moving, then
gone; docs/inference.md): with the true parameters (an oracle model) the tracked frames with
the hand score 0.27-1.00 (median 0.97), the first frame after the hand vanished 0.00-0.15; with
parameters perturbed like a weak model's (scale and position off by up to 15%, pose noise) the
frames with the hand score median 0.45 (5% of frames below 0.02) and the first empty frame still
at most 0.12. The predictor's default threshold for tracked boxes is 0.2.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion

LEVELS = 6
"""Colour levels per channel of the histograms (216 bins)."""
NBINS = LEVELS**3
MIN_PIXELS = 24
"""Fewer inner or ring pixels than this (a mesh almost outside the frame): score 0."""


def silhouette_mask(vertices2d: np.ndarray, faces: np.ndarray, height: int, width: int):
    """``(H, W)`` bool: pixels whose centre the projected mesh covers.

    Args:
        vertices2d: ``(V, 2)`` pixels (x right, y down, pixel centres at integers).
        faces: ``(F, 3)`` vertex ids (winding ignored).
    """
    v = np.asarray(vertices2d, np.float64)
    if not np.isfinite(v).all():
        return np.zeros((height, width), bool)
    from seqhand.synth.raster import render_batch

    n = len(v)
    res = render_batch(
        v[None], np.zeros((1, n)), np.tile([0.0, 0.0, -1.0], (1, n, 1)), np.asarray(faces),
        np.ones((n, 3)), np.array([0.0, 0.0, -1.0]), 1.0, int(height), int(width),
        cull_backfaces=False,
    )  # fmt: skip
    return res.mask[0]


def _regions(image, vertices2d, faces, valid, ring):
    img = np.asarray(image)
    h, w = img.shape[:2]
    mask = silhouette_mask(vertices2d, faces, h, w)
    area = int(mask.sum())
    if area < MIN_PIXELS:
        return None
    width = max(2, int(round(ring * 2.0 * np.sqrt(area / np.pi))))
    gap = binary_dilation(mask, iterations=1)
    outer = binary_dilation(gap, iterations=width) & ~gap
    inner = binary_erosion(mask, iterations=1)
    if valid is not None:
        inner &= valid
        outer &= valid
    if inner.sum() < MIN_PIXELS or outer.sum() < MIN_PIXELS:
        return None
    q = (img[..., :3].astype(np.int32) * LEVELS) // 256
    bins = (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]
    half = ((np.arange(h)[:, None] // 2 + np.arange(w)[None, :] // 2) % 2).astype(bool)
    return bins, inner, outer, half


def _hist(b: np.ndarray) -> np.ndarray:
    c = np.bincount(b, minlength=NBINS).astype(np.float64)
    return c / max(c.sum(), 1.0)


def silhouette_contrast(
    image: np.ndarray,
    vertices2d: np.ndarray,
    faces: np.ndarray,
    valid: np.ndarray | None = None,
    ring: float = 0.25,
) -> float:
    """How well colour separates the predicted silhouette from the ring around it, in [0, 1].

    Args:
        image: ``(H, W, 3)`` uint8 RGB (the crop the network saw).
        vertices2d: ``(V, 2)`` the predicted vertices in the image's pixels.
        faces: ``(F, 3)`` the mesh's faces.
        valid: ``(H, W)`` bool, pixels that show the frame (not padding); default all.
        ring: width of the background ring as a fraction of the silhouette's equivalent
            diameter (``2 sqrt(area / pi)``), at least 2 pixels.

    Returns:
        the score (module docstring); 0 when the silhouette or the ring has fewer than
        :data:`MIN_PIXELS` valid pixels.
    """
    reg = _regions(image, vertices2d, faces, valid, ring)
    if reg is None:
        return 0.0
    bins, inner, outer, half = reg
    accs = []
    for train in (half, ~half):
        test = ~train
        hist = []
        for cls in (inner, outer):
            c = np.bincount(bins[cls & train], minlength=NBINS).astype(np.float64)
            hist.append((c + 0.5) / (c.sum() + 0.5 * NBINS))
        says_inner = hist[0] > hist[1]
        tie = hist[0] == hist[1]
        for cls, want in ((inner, True), (outer, False)):
            b = bins[cls & test]
            if len(b) == 0:
                return 0.0
            right = (says_inner[b] == want) & ~tie[b]
            accs.append(float(right.mean() + 0.5 * tie[b].mean()))
    acc = float(np.mean(accs))  # balanced: the mean of both classes' accuracies
    return float(np.clip(2.0 * (acc - 0.5), 0.0, 1.0))


def hand_colours(
    image: np.ndarray,
    vertices2d: np.ndarray,
    faces: np.ndarray,
    valid: np.ndarray | None = None,
    ring: float = 0.25,
) -> np.ndarray | None:
    """The hand's colour model from a frame where the hand is known to be there.

    The colours over-represented inside the predicted silhouette against its ring,
    ``max(0, p_inside - p_ring)`` normalised (``(216,)``): background that the silhouette
    happens to cover is in the ring too and cancels out. ``None`` if the regions are too small.
    """
    reg = _regions(image, vertices2d, faces, valid, ring)
    if reg is None:
        return None
    bins, inner, outer, _ = reg
    d = np.maximum(_hist(bins[inner]) - _hist(bins[outer]), 0.0)
    return d / d.sum() if d.sum() > 0 else None


def hand_likeness(
    image: np.ndarray,
    vertices2d: np.ndarray,
    faces: np.ndarray,
    colours: np.ndarray,
    valid: np.ndarray | None = None,
    ring: float = 0.25,
) -> float:
    """Skin likelihood inside the predicted silhouette against the ring around it, in [0, 1].

    A pixel is called "hand" when its colour is likelier under the track's hand colours
    (:func:`hand_colours`, learnt where a detector or the user placed the box) than under this
    frame's background (the ring's colours; both mixed 9:1 with uniform, so a colour neither
    has seen is not "hand"). The score is the share of inside pixels called "hand" minus the
    share of ring pixels called "hand" (the background model learnt on one half of the ring,
    tested on the other), clipped to [0, 1].
    """
    reg = _regions(image, vertices2d, faces, valid, ring)
    if reg is None:
        return 0.0
    bins, inner, outer, half = reg
    p_hand = 0.9 * np.asarray(colours, np.float64) + 0.1 / NBINS
    scores = []
    for train in (half, ~half):
        p_bg = 0.9 * _hist(bins[outer & train]) + 0.1 / NBINS
        is_hand = p_hand > p_bg
        tpr = is_hand[bins[inner]].mean()
        ring_test = bins[outer & ~train]
        fpr = is_hand[ring_test].mean() if len(ring_test) else 1.0
        scores.append(tpr - fpr)
    return float(np.clip(np.mean(scores), 0.0, 1.0))


def crop_valid_mask(crop, frame_shape: tuple[int, ...]) -> np.ndarray:
    """``(S, S)`` bool: crop pixels whose centre maps inside the frame (not padding)."""
    s = int(crop.size)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    full = crop.to_full(np.stack([xx, yy], -1).reshape(-1, 2)).reshape(s, s, 2)
    h, w = frame_shape[:2]
    return (
        (full[..., 0] >= -0.5) & (full[..., 0] <= w - 0.5)
        & (full[..., 1] >= -0.5) & (full[..., 1] <= h - 0.5)
    )  # fmt: skip
