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
        item["mask_dist"] = torch.from_numpy(
            np.stack([mask_distance_map(x) for x in m]).astype(np.float32)
        )
        item["mask_valid"] = torch.from_numpy(m.reshape(t, -1).any(1))  # empty mask: no term
    return item


def collate(items: list[dict]) -> dict:
    """Stack items of equal keys along a new batch dim ``(B, T, ...)``."""
    keys = items[0].keys()
    return {k: torch.stack([it[k] for it in items]) for k in keys}
