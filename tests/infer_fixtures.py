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
