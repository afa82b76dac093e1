"""Pictures of a generated dataset: an animated GIF and a contact sheet with joints drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from seqhand.conventions import BONES, finger_of_joint

FINGER_COLOURS = {  # thumb .. pinky, and the wrist
    "thumb": (255, 80, 80), "index": (255, 200, 40), "middle": (60, 220, 90),
    "ring": (60, 170, 255), "pinky": (200, 90, 255), None: (255, 255, 255),
}  # fmt: skip


def draw_skeleton(image: np.ndarray, joints2d: np.ndarray, visible: np.ndarray | None = None,
                  scale: int = 1, radius: float = 1.5) -> Image.Image:  # fmt: skip
    """Draw the 21-joint skeleton (pixels, integer = pixel centre) on an ``(H, W, 3)`` image.

    Occluded joints (``visible`` False) are drawn hollow. ``scale`` upsamples the image first.
    """
    img = Image.fromarray(image)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(img)
    p = (np.asarray(joints2d, np.float64) + 0.5) * scale - 0.5
    for a, b in BONES:
        d.line([tuple(p[a]), tuple(p[b])], fill=FINGER_COLOURS[finger_of_joint(b)],
               width=max(1, scale))  # fmt: skip
    r = radius * scale
    for j, (x, y) in enumerate(p):
        c = FINGER_COLOURS[finger_of_joint(j)]
        vis = True if visible is None else bool(visible[j])
        d.ellipse([x - r, y - r, x + r, y + r], fill=c if vis else None, outline=c)
    return img


def contact_sheet(sequences: list[dict], path: str | Path, joints: bool = True,
                  max_frames: int = 10, scale: int = 1) -> Path:  # fmt: skip
    """One row per sequence, one column per frame (joints drawn when ``joints``)."""
    rows = []
    for s in sequences:
        frames = s["frames"][:max_frames]
        ann = s["ann"]
        tiles = [
            draw_skeleton(f, ann["joints2d"][k], ann.get("visible", [None] * len(frames))[k], scale)
            if joints
            else Image.fromarray(f)  # fmt: skip
            for k, f in enumerate(frames)
        ]
        rows.append(np.concatenate([np.asarray(t) for t in tiles], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path


def animated_gif(sequences: list[dict], path: str | Path, columns: int = 4, joints: bool = True,
                 duration_ms: int = 120) -> Path:  # fmt: skip
    """A GIF playing ``len(sequences)`` sequences side by side in a grid."""
    t = min(len(s["frames"]) for s in sequences)
    h, w = sequences[0]["frames"].shape[1:3]
    rows = (len(sequences) + columns - 1) // columns
    frames = []
    for k in range(t):
        canvas = np.zeros((rows * h, columns * w, 3), np.uint8)
        for i, s in enumerate(sequences):
            f = s["frames"][k]
            if joints:
                f = np.asarray(draw_skeleton(f, s["ann"]["joints2d"][k], s["ann"]["visible"][k]))
            r, c = divmod(i, columns)
            canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = f
        frames.append(Image.fromarray(canvas))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def preview_dataset(root: str | Path, out: str | Path | None = None, split: str = "train",
                    num: int = 8, joints: bool = True) -> tuple[Path, Path]:  # fmt: skip
    """Write ``preview.gif`` and ``contact_sheet.png`` of the first ``num`` sequences."""
    from seqhand.data.seqhand_dataset import read_sequences

    out = Path(out) if out is not None else Path(root)
    seqs = read_sequences(root, split, limit=num)
    return (animated_gif(seqs, out / "preview.gif", joints=joints),
            contact_sheet(seqs, out / "contact_sheet.png", joints=joints))  # fmt: skip
