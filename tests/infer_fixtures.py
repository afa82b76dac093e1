"""Synthetic hand videos for the inference tests: the built-in hand rendered with known
parameters (so the ground truth of every frame is exact), pasted into larger frames."""

from __future__ import annotations

import functools

import numpy as np
import torch

from seqhand.hand.layer import HandLayer
from seqhand.models import decode_params, reference_scale
from seqhand.synth.raster import render_posed


@functools.lru_cache(maxsize=1)
def hand_layer() -> HandLayer:
    return HandLayer(None, pose_origin="mean")


def sequence_params(t: int, size: int, seed: int = 0) -> np.ndarray:
    """``(T, 26)`` smoothly varying crop-space parameters of a hand that fits a size^2 crop."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 26)) * 0.4
    w = np.linspace(0.0, 1.0, t)[:, None]
    p = (1 - w) * a + w * b
    p[:, 0] = reference_scale(size) * (0.9 + 0.1 * w[:, 0])
    p[:, 1:3] = size / 2 + (p[:, 1:3] * size / 10)
    p[:, 3:6] = p[:, 3:6] + np.array([0.2, 0.3, 2.8])  # fingers roughly up, palm to camera
    return p.astype(np.float32)


def render_crops(params: np.ndarray, size: int, bg: int = 70) -> dict[str, np.ndarray]:
    """Render the built-in hand for ``(T, 26)`` parameters into ``(T, size, size, 3)`` frames.

    Returns frames, the ground truth 2D joints ``(T, 21, 2)`` (crop pixels) and the 3D joints.
    """
    layer = hand_layer()
    p = torch.as_tensor(params)
    with torch.no_grad():
        d = decode_params(p, layer)
    pts = (d.vertices3d + d.root3d[:, None]).double().numpy()
    t = len(params)
    yy, xx = np.mgrid[0:size, 0:size]
    backdrop = np.stack([bg + 30 * xx / size, bg + 20 * yy / size, bg + 0 * xx], -1)
    res = render_posed(
        pts, params[:, 0], params[:, 1:3], layer.faces.numpy(),
        np.full((pts.shape[1], 3), [0.85, 0.65, 0.55]), np.array([0.2, -0.3, -1.0]), 0.4,
        size, size, background=np.repeat(backdrop[None].astype(np.uint8), t, 0),
    )  # fmt: skip
    return {
        "frames": res.rgb,
        "joints2d": d.joints2d.double().numpy(),
        "joints3d": d.joints3d.double().numpy(),
    }


def paste(crops: np.ndarray, height: int, width: int, offsets: np.ndarray, fill: int = 30):
    """Paste ``(T, S, S, 3)`` crops into ``(T, height, width, 3)`` frames at integer
    ``offsets (T, 2)`` (x, y of the crop's top-left pixel)."""
    t, s = crops.shape[:2]
    out = np.full((t, height, width, 3), fill, np.uint8)
    for k in range(t):
        x, y = (int(v) for v in offsets[k])
        out[k, y : y + s, x : x + s] = crops[k]
    return out


def moving_offsets(t: int, size: int, height: int, width: int) -> np.ndarray:
    """Integer top-left corners moving across the frame, crop fully inside."""
    xs = np.linspace(0, width - size, t).round()
    ys = (0.5 * (height - size) * (1 + np.sin(np.linspace(0, 3, t)))).round()
    return np.stack([xs, ys], -1).astype(int)


class OracleEngine:
    """A step engine that returns known crop-space parameters, frame after frame."""

    runtime = "oracle"

    def __init__(self, params: np.ndarray) -> None:
        self.params = np.asarray(params, np.float32)

    def __call__(self, frames01, state):
        k = 0 if state is None else state + 1
        return self.params[k : k + 1], k


class RecordingSource:
    """Wraps a box source and remembers the box it gave for each frame."""

    def __init__(self, source) -> None:
        self.source = source
        self.boxes: dict = {}

    def __call__(self, index, frame, previous):
        b = self.source(index, frame, previous)
        self.boxes[index] = b
        return b


class FullFrameOracle:
    """Returns the true parameters of the frame, expressed in whatever crop the predictor cut
    (read from a :class:`RecordingSource`): ``s' = s k``, ``t' = crop.to_crop(t)``.

    Args:
        params_full: ``(T, 26)`` parameters in full-frame pixels.
        recorder: the predictor's box source, wrapped.
        size: crop size S.
    """

    runtime = "oracle"

    def __init__(self, params_full: np.ndarray, recorder: RecordingSource, size: int) -> None:
        self.params = np.asarray(params_full, np.float64)
        self.recorder = recorder
        self.size = size

    def __call__(self, frames01, state):
        from seqhand.geometry.crop import CropTransform

        k = max(self.recorder.boxes)
        crop = CropTransform.from_box(self.recorder.boxes[k], self.size)
        p = self.params[k].copy()
        p[0] *= crop.scale
        p[1:3] = crop.to_crop(p[1:3])
        return p[None].astype(np.float32), state


# --------------------------------------------------------------------------------------------
# Whole scenes: hands over a textured background, in full-frame pixels
# --------------------------------------------------------------------------------------------
SKIN = (0.85, 0.65, 0.55)


def full_params(t: int, scale: float, start, end, seed: int = 0, rot=(0.2, 0.3, 2.8)):
    """``(T, 26)`` full-frame parameters: a hand of ``scale`` px/m whose model origin moves on
    a straight line from ``start`` to ``end`` (pixels), changing gesture and turning a little."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 26)) * 0.4
    w = np.linspace(0.0, 1.0, t)[:, None]
    p = (1 - w) * a + w * b
    p[:, 0] = scale
    p[:, 1:3] = (1 - w) * np.asarray(start, float) + w * np.asarray(end, float)
    p[:, 3:6] = p[:, 3:6] * 0.5 + np.asarray(rot)
    return p.astype(np.float32)


def background(height: int, width: int, index: int = 3) -> np.ndarray:
    from seqhand.synth.backgrounds import ProceduralBackgrounds

    return ProceduralBackgrounds(16, (height, width), seed=5)[index]


def render_scene(hands: list[np.ndarray], height: int, width: int, bg: np.ndarray | None = None,
                 colors=None) -> dict:  # fmt: skip
    """Render hands (each ``(T, 26)`` full-frame parameters, NaN rows = absent) over ``bg``.

    Hands are drawn in list order (later ones in front). Returns ``frames (T, H, W, 3)`` and
    per hand ``joints2d (T, 21, 2)``, ``vertices2d (T, V, 2)``, ``boxes (T, 4)`` (the mesh's
    tight box, NaN where absent or fully outside).
    """
    layer = hand_layer()
    t = len(hands[0])
    bg = background(height, width) if bg is None else bg
    frames = np.repeat(bg[None], t, 0).astype(np.uint8)
    out = {"frames": frames, "joints2d": [], "vertices2d": [], "boxes": []}
    faces = layer.faces.numpy()
    for i, p in enumerate(hands):
        present = np.isfinite(p).all(1)
        q = torch.as_tensor(np.where(present[:, None], p, 0).astype(np.float32))
        with torch.no_grad():
            d = decode_params(q, layer)
        pts = (d.vertices3d + d.root3d[:, None]).double().numpy()
        col = SKIN if colors is None else colors[i]
        res = render_posed(
            pts[present], np.asarray(p)[present, 0], np.asarray(p)[present, 1:3], faces,
            np.full((pts.shape[1], 3), col), np.array([0.2, -0.3, -1.0]), 0.4, height, width,
            background=frames[present],
        )  # fmt: skip
        frames[present] = res.rgb
        v2 = d.vertices2d.double().numpy()
        boxes = np.full((t, 4), np.nan)
        for k in np.flatnonzero(present):
            x0, y0 = np.clip(v2[k].min(0), -0.5, [width - 0.5, height - 0.5])
            x1, y1 = np.clip(v2[k].max(0), -0.5, [width - 0.5, height - 0.5])
            if x1 - x0 > 2 and y1 - y0 > 2:
                boxes[k] = [x0, y0, x1, y1]
        out["joints2d"].append(
            np.where(present[:, None, None], d.joints2d.double().numpy(), np.nan)
        )
        out["vertices2d"].append(np.where(present[:, None, None], v2, np.nan))
        out["boxes"].append(boxes)
    out["frames"] = frames
    return out


class SceneOracle:
    """A step engine that knows the true full-frame parameters of every hand in the scene.

    For the crop the predictor cut (``predictor.last_crop``) it returns the parameters of the
    true hand whose model origin lies nearest the crop's centre, expressed in that crop (``s' =
    s k``, ``t' = crop.to_crop(t)``). When no true hand lies within half a crop side (the hand
    has left) it returns what a network does on a crop of background: some hand, centred in the
    crop at the reference scale (``hallucinate=True``).
    """

    runtime = "oracle"

    def __init__(self, hands: list[np.ndarray], size: int, hallucinate: bool = True) -> None:
        self.hands = [np.asarray(p, np.float64) for p in hands]
        self.size = size
        self.hallucinate = hallucinate
        self.predictor = None
        self.frame = 0

    def __call__(self, frames01, state):
        crop = self.predictor.last_crop
        k = self.predictor.last_index
        c = np.array([crop.cx, crop.cy])
        best, dist = None, np.inf
        for p in self.hands:
            if np.isfinite(p[k]).all() and np.linalg.norm(p[k, 1:3] - c) < dist:
                best, dist = p[k], np.linalg.norm(p[k, 1:3] - c)
        if best is None or dist > crop.side / 2:
            if not self.hallucinate:
                best = np.full(26, np.nan)
            else:
                q = np.asarray(self.hands[0][np.isfinite(self.hands[0]).all(1)][-1]).copy()
                q[0] = reference_scale(self.size)
                q[1:3] = self.size / 2
                return q[None].astype(np.float32), state
        q = best.copy()
        q[0] *= crop.scale
        q[1:3] = crop.to_crop(q[1:3])
        if crop.mirror:  # the model sees the mirrored hand: the oracle knows right hands only
            pass
        return q[None].astype(np.float32), state
