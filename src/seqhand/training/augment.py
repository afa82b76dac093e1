"""Training-time augmentation of generated sequences, with labels kept exact.

A *view jitter* is a similarity transform of the image plane, the same for every frame of a
clip: ``x' = k A(phi) (x - c) + c + d`` (``c`` the image centre, ``A`` a rotation by ``phi``,
``k`` a zoom, ``d`` a shift in pixels). Under the weak-perspective camera
``x = s Pi(R X) + t`` it is exactly a change of the camera parameters:

* ``R' = Rz(phi) R`` (a roll of the camera about its optical axis),
* ``s' = k s`` and ``t' = k A (t - c) + c + d``,

so the warped frames, masks and 2D joints stay consistent with the 3D joints and the 26
parameters without re-rendering anything. ``theta`` and ``beta`` do not change. Joints that
leave the frame lose ``in_frame``.

A *colour jitter* changes brightness, contrast, saturation and per-channel gain, and adds
pixel noise; it changes no label.

Both act on decoded samples (``frames (T, H, W, 3)`` uint8, ``masks``, ``ann``), before
:func:`~seqhand.training.batch.sequence_item`, and draw from a ``numpy`` generator, so a
caller that seeds it from the sample's index keeps training deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

__all__ = ["Augment", "AugmentedSet", "augment_from_config", "color_jitter", "warp_sample"]


def _roll(phi: float) -> np.ndarray:
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, -s], [s, c]])


def _warp_images(x: np.ndarray, theta: torch.Tensor, padding: str) -> torch.Tensor:
    """``x``: ``(T, C, H, W)`` float tensor-able; ``theta``: ``(2, 3)`` output -> input map
    in normalised coordinates (align_corners=False)."""
    t = torch.as_tensor(x, dtype=torch.float32)
    grid = F.affine_grid(theta.expand(t.shape[0], 2, 3), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def warp_sample(sample: dict, phi: float, zoom: float = 1.0, shift=(0.0, 0.0)) -> dict:
    """The view jitter ``(phi radians, zoom k, shift d pixels)`` of a decoded sample; returns
    a new sample (frames, masks and the camera annotations changed, see the module doc)."""
    frames = sample["frames"]
    t, h, w = frames.shape[:3]
    if h != w:
        raise ValueError(f"frames must be square, got {h}x{w}")
    a = _roll(phi)
    d = np.asarray(shift, dtype=np.float64)
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    # Normalised coordinates (align_corners=False): u = 2 (x - c) / S, so u' = k A u + 2 d / S
    # and the sampling grid needs the inverse, u = A^T (u' - 2 d / S) / k.
    inv = a.T / zoom
    theta = torch.tensor(np.hstack([inv, (-inv @ (2.0 * d / w))[:, None]]), dtype=torch.float32)
    img = _warp_images(frames.transpose(0, 3, 1, 2), theta, "border")
    warped = img.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = {**sample, "frames": warped}
    out.pop("mask_dist", None)  # of the unwarped silhouettes
    if "masks" in sample:
        m = _warp_images(sample["masks"][:, None].astype(np.float32), theta, "zeros")
        out["masks"] = (m[:, 0] > 0.5).numpy()
    ann = dict(sample["ann"])

    def move(x):
        x = np.asarray(x, dtype=np.float64)
        return (zoom * (x - centre) @ a.T + centre + d).astype(np.float32)

    j2 = move(ann["joints2d"])
    ann["joints2d"] = j2
    inside = np.all((j2 >= -0.5) & (j2 <= np.array([w, h]) - 0.5), axis=-1)
    ann["in_frame"] = np.asarray(ann["in_frame"], bool) & inside
    ann["trans"] = move(np.asarray(ann["trans"]).reshape(t, 2))
    ann["scale"] = (np.asarray(ann["scale"], dtype=np.float64) * zoom).astype(np.float32)
    roll = Rotation.from_rotvec([0.0, 0.0, phi])
    rot = roll * Rotation.from_rotvec(np.asarray(ann["rot"], float))
    ann["rot"] = rot.as_rotvec().astype(np.float32)
    out["ann"] = ann
    return out


def color_jitter(sample: dict, rng: np.random.Generator, strength: float = 1.0) -> dict:
    """Brightness, contrast, saturation, per-channel gain and pixel noise, drawn once per clip
    (noise per pixel); ``strength`` scales every range (0: unchanged)."""
    x = sample["frames"].astype(np.float32)
    u = lambda r: 1.0 + strength * rng.uniform(-r, r)  # noqa: E731
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * u(0.4)  # saturation
    x = x.mean() + (x - x.mean()) * u(0.3)  # contrast
    x = x * u(0.3) * np.array([u(0.1), u(0.1), u(0.1)], np.float32)  # brightness, gain
    x = x + rng.normal(0.0, strength * rng.uniform(0.0, 4.0), x.shape)
    return {**sample, "frames": np.clip(np.rint(x), 0, 255).astype(np.uint8)}


@dataclass(frozen=True)
class Augment:
    """``data.augment``: view jitter (roll within +-``roll_deg``, zoom within
    ``1 +- zoom``, shift within +-``shift`` of the image side) and colour jitter of
    ``color`` strength; each clip draws its own. All zero: the identity."""

    roll_deg: float = 0.0
    zoom: float = 0.0
    shift: float = 0.0
    color: float = 0.0

    @property
    def active(self) -> bool:
        return any((self.roll_deg, self.zoom, self.shift, self.color))

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if self.roll_deg or self.zoom or self.shift:
            side = sample["frames"].shape[2]
            sample = warp_sample(
                sample,
                np.radians(rng.uniform(-self.roll_deg, self.roll_deg)),
                1.0 + rng.uniform(-self.zoom, self.zoom),
                rng.uniform(-self.shift, self.shift, 2) * side,
            )
        if self.color:
            sample = color_jitter(sample, rng, self.color)
        return sample


class AugmentedSet(torch.utils.data.Dataset):
    """``base`` (untransformed decoded samples) with ``augment`` then ``transform`` applied.

    Indices may run past ``len(base)``: item ``k`` is sample ``k % len(base)`` augmented with a
    generator seeded by ``(seed, k)``. :class:`~seqhand.training.sampler.StepSampler` with
    ``epoch_offsets=True`` adds ``epoch * len`` to its indices, so each pass over the data
    draws new jitters while a step's batch stays a pure function of ``(seed, step)``."""

    epoch_offsets = True

    def __init__(self, base, augment: Augment, transform, seed: int = 0) -> None:
        self.base, self.augment, self.transform, self.seed = base, augment, transform, int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, k: int) -> dict:
        s = self.base[int(k) % len(self.base)]
        s = self.augment(s, np.random.default_rng([self.seed, int(k)]))
        return self.transform(s) if self.transform is not None else s


def augment_from_config(spec: dict | None) -> Augment:
    """``data.augment`` (a mapping of :class:`Augment`'s fields, or null) -> :class:`Augment`."""
    from seqhand.errors import SeqhandError

    spec = dict(spec or {})
    fields = set(Augment.__dataclass_fields__)
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise SeqhandError(f"data.augment: unknown key(s) {unknown}; known: {sorted(fields)}")
    try:
        aug = Augment(**{k: float(v) for k, v in spec.items()})
    except (TypeError, ValueError) as e:
        raise SeqhandError(f"data.augment: values must be numbers ({e})") from None
    if min(aug.roll_deg, aug.zoom, aug.shift, aug.color) < 0 or aug.zoom >= 1:
        raise SeqhandError("data.augment: values must be >= 0 (zoom < 1)")
    return aug
