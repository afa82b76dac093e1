"""Pictures of predictions: the mesh over the frame, the skeleton, and a fixed side view.

Everything is drawn with the project's rasteriser (:mod:`seqhand.synth.raster`) under the same
weak-perspective camera the network uses: a :class:`~seqhand.inference.predictor.FrameOutput`
gives the full-image 2D vertices and the camera-aligned 3D vertices (their z orders the
z-buffer), so the overlay shows exactly what the model predicted.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from seqhand.conventions import BONES, finger_of_joint
from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.synth.raster import render_batch, vertex_normals

MESH_COLOR = (0.55, 0.75, 0.95)
"""RGB in [0, 1] of the overlaid mesh (light blue: tells the estimate from real skin)."""
FINGER_COLORS = {
    None: (255, 255, 255),
    "thumb": (230, 60, 60),
    "index": (240, 170, 40),
    "middle": (70, 200, 90),
    "ring": (60, 140, 240),
    "pinky": (190, 90, 220),
}
TRACK_COLORS = (
    (0.55, 0.75, 0.95),  # light blue
    (0.98, 0.62, 0.35),  # orange
    (0.60, 0.90, 0.55),  # green
    (0.90, 0.55, 0.90),  # pink
    (0.95, 0.90, 0.45),  # yellow
    (0.55, 0.90, 0.90),  # cyan
)
"""Mesh colours by track id (id modulo 6): the same hand keeps its colour through a video."""
LIGHT_DIR = np.array([0.3, -0.4, -1.0])  # from the surface towards the light, camera frame


def render_mesh(
    frame: np.ndarray,
    vertices2d: np.ndarray,
    depth: np.ndarray,
    normals: np.ndarray,
    faces: np.ndarray,
    alpha: float = 0.7,
    color: tuple[float, float, float] = MESH_COLOR,
) -> np.ndarray:
    """Blend a shaded mesh into ``frame``.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        vertices2d: ``(V, 2)`` pixels of the frame.
        depth: ``(V,)`` camera-frame z (smaller = nearer), any offset.
        normals: ``(V, 3)`` camera-frame unit normals.
        faces: ``(F, 3)`` counter-clockwise faces.
        alpha: opacity of the mesh in [0, 1].

    Returns:
        ``(H, W, 3)`` uint8.
    """
    h, w = frame.shape[:2]
    out = np.array(frame, dtype=np.uint8, copy=True)
    v2 = np.asarray(vertices2d, dtype=np.float64)
    # Render only the mesh's bounding window (a hand is small in an HD frame).
    x0 = max(0, int(np.floor(v2[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(v2[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(v2[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(v2[:, 1].max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return out
    colors = np.broadcast_to(np.asarray(color, np.float32), (len(v2), 3))
    res = render_batch(
        (v2 - [x0, y0])[None], depth[None], normals[None], faces, colors, LIGHT_DIR, 0.35,
        y1 - y0, x1 - x0, supersample=2,
    )  # fmt: skip
    cov = res.alpha[0][..., None]
    shade = res.rgb[0].astype(np.float32) / np.maximum(cov, 1e-6)  # un-premultiply
    a = cov * float(alpha)
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region * (1.0 - a) + shade * a + 0.5, 0, 255).astype(np.uint8)
    return out


def draw_skeleton(
    image: np.ndarray, joints2d: np.ndarray, radius: float | None = None
) -> np.ndarray:
    """Draw the 21-joint skeleton (bones coloured per finger) on a copy of ``image``."""
    im = Image.fromarray(np.ascontiguousarray(image))
    d = ImageDraw.Draw(im)
    j = np.asarray(joints2d, dtype=np.float64)
    ext = float(np.ptp(j, axis=0).max()) if np.isfinite(j).all() else 0.0
    r = radius if radius is not None else max(1.5, ext / 60.0)
    width = max(1, int(round(r * 0.8)))
    for p, c in BONES:
        col = FINGER_COLORS[finger_of_joint(c)]
        d.line([tuple(j[p]), tuple(j[c])], fill=col, width=width)
    for i, (x, y) in enumerate(j):
        col = FINGER_COLORS[finger_of_joint(i)]
        d.ellipse([x - r, y - r, x + r, y + r], fill=col, outline=(0, 0, 0))
    return np.asarray(im)


def track_color(track_id: int) -> tuple[float, float, float]:
    """The mesh colour of track ``track_id`` (RGB in [0, 1])."""
    return TRACK_COLORS[int(track_id) % len(TRACK_COLORS)]


def draw_box(
    image: np.ndarray, box, crop=None, label: str | None = None, color=(255, 220, 0)
) -> np.ndarray:
    """Draw the hand box (``color``, default yellow), the crop square (grey) and a label on a
    copy of ``image``."""
    im = Image.fromarray(np.ascontiguousarray(image))
    d = ImageDraw.Draw(im)
    if crop is not None:
        x0, y0 = crop.origin
        d.rectangle([x0, y0, x0 + crop.side, y0 + crop.side], outline=(160, 160, 160))
    if box is not None:
        d.rectangle([box.x0, box.y0, box.x1, box.y1], outline=tuple(color), width=2)
    if label:
        xy = (4, 4) if box is None else (box.x0, max(0.0, box.y0 - 12))
        d.text(xy, label, fill=tuple(color))
    return np.asarray(im)


def overlay_frame(frame: np.ndarray, output, faces: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """The frame with the predicted mesh, skeleton and box drawn; "no hand" otherwise.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        output: a :class:`~seqhand.inference.predictor.FrameOutput`.
        faces: ``(F, 3)`` faces of the hand model (right-hand winding; flipped here for a left
            hand, whose mirrored vertices reverse it).
    """
    img = np.asarray(frame, dtype=np.uint8)[..., :3]
    if not output.found:
        return draw_box(img, output.box, None, "no hand")
    f = faces[:, ::-1] if output.side == "left" else faces
    v3 = np.asarray(output.vertices3d, dtype=np.float64)
    img = render_mesh(img, output.vertices2d, v3[:, 2], vertex_normals(v3, f), f, alpha)
    img = draw_skeleton(img, output.joints2d)
    label = output.side if output.confidence is None else f"{output.side} {output.confidence:.2f}"
    return draw_box(img, output.box, output.crop, label)


def overlay_hands(frame: np.ndarray, outputs: list, faces: np.ndarray, alpha: float = 0.7):
    """The frame with every found hand drawn in its track's colour (mesh, skeleton, box and
    a label ``#id side confidence``); "no hand" when there is none."""
    img = np.asarray(frame, dtype=np.uint8)[..., :3]
    found = [o for o in outputs if o.found]
    if not found:
        return draw_box(img, None, None, "no hand")
    for o in found:  # meshes first, nearest last (camera-space depth when known)
        f = faces[:, ::-1] if o.side == "left" else faces
        v3 = np.asarray(o.vertices3d, dtype=np.float64)
        img = render_mesh(img, o.vertices2d, v3[:, 2], vertex_normals(v3, f), f, alpha,
                          track_color(o.track_id))  # fmt: skip
    for o in found:
        img = draw_skeleton(img, o.joints2d)
        rgb = tuple(int(255 * c) for c in track_color(o.track_id))
        img = draw_box(img, o.box, o.crop, f"#{o.track_id} {o.side} {o.confidence:.2f}", rgb)
    return img


SIDE_VIEW_ROTATION = (0.0, -np.pi / 2, 0.0)
"""Axis-angle of the side view: the camera-aligned hand turned 90 degrees about the image's
vertical axis, i.e. seen from the camera's right (depth runs left to right in the panel)."""


def side_view(
    output, faces: np.ndarray, size: int, metres: float = 0.3, rotation=SIDE_VIEW_ROTATION
) -> np.ndarray:
    """Render the predicted mesh from a fixed side view into a ``size x size`` panel.

    The mesh is rotated by ``rotation`` (axis-angle, camera frame) and shown orthographically
    with a fixed scale (``metres`` across the panel, more if the hands need it), centred on
    the vertices' centroid, so depth changes show as left-right motion of the fingers.
    ``output`` may be a list of hands: they are drawn where they are in camera space, each in
    its track's colour.
    """
    import torch

    outs = [o for o in (output if isinstance(output, list | tuple) else [output]) if o.found]
    rot = axis_angle_to_matrix(torch.as_tensor(rotation, dtype=torch.float64)).numpy()
    # several hands: placed in camera space (their distance apart shows); one: centred
    use_cam = len(outs) > 1 and all(o.vertices_cam is not None for o in outs)
    verts = [np.asarray(o.vertices_cam if use_cam else o.vertices3d, np.float64) for o in outs]
    rotated, extent = [], float(metres)
    if outs:
        centre = np.concatenate(verts).mean(axis=0)
        rotated = [(v - centre) @ rot.T for v in verts]
        extent = max(float(np.abs(np.concatenate(rotated)[:, :2]).max()) * 2.2, extent)
    s = size / extent
    panel = np.full((size, size, 3), 40, np.uint8)
    d = ImageDraw.Draw(im := Image.fromarray(panel))
    step = s * 0.05  # a 5 cm grid
    for k in range(-int(extent / 0.1) - 1, int(extent / 0.1) + 2):
        c = size / 2 + k * step
        d.line([(c, 0), (c, size)], fill=(55, 55, 55))
        d.line([(0, c), (size, c)], fill=(55, 55, 55))
    img = np.asarray(im).copy()
    if not outs:
        return np.asarray(draw_box(img, None, None, "no hand"))
    for o, v in zip(outs, rotated):
        f = faces[:, ::-1] if o.side == "left" else faces
        v2 = s * v[:, :2] + (size - 1) / 2.0
        color = track_color(o.track_id) if len(outs) > 1 else MESH_COLOR
        img = render_mesh(img, v2, v[:, 2], vertex_normals(v, f), f, alpha=1.0, color=color)
    im = Image.fromarray(img)
    ImageDraw.Draw(im).text((4, 4), "side view", fill=(200, 200, 200))
    return np.asarray(im)


def side_by_side(frame_overlay: np.ndarray, output, faces: np.ndarray) -> np.ndarray:
    """``[overlay | side view]``: the side panel is square, as tall as the frame."""
    h = frame_overlay.shape[0]
    return np.concatenate([frame_overlay, side_view(output, faces, h)], axis=1)
