"""A picture sheet of a hand model: several poses and shapes, palm and back views, shaded.

``seqhand hand sheet --out PATH`` calls :func:`render_sheet`. The images come from a small
orthographic z-buffer rasteriser (:func:`render_mesh`, numpy, smooth Lambert shading), so the
sheet needs nothing beyond numpy and matplotlib (for the layout and the PNG).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seqhand.hand.asset import HandAsset, load_asset

SKIN = np.array([0.88, 0.68, 0.56])
BACKGROUND = np.array([1.0, 1.0, 1.0])


# Views: rotation applied to hand-model points before an orthographic camera looking along +z
# (image x right, y down). "palm": the builtin hand's palm faces the camera, fingers up.
def _rot(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


VIEWS: dict[str, np.ndarray] = {
    "palm": np.eye(3),
    "back": _rot(1, 180.0),
    "thumb side": _rot(1, 70.0) @ _rot(0, -10.0),  # from the thumb's side, a little distal
    "3/4": _rot(1, 40.0) @ _rot(0, -45.0),  # from the palm side, below and to the thumb's side
}


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` of a triangle mesh ``(V, 3)``, ``(F, 3)``."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def render_mesh(
    verts: np.ndarray,
    faces: np.ndarray,
    size: int = 256,
    *,
    rotation: np.ndarray | None = None,
    extent: float | None = None,
    centre: np.ndarray | None = None,
    color: np.ndarray = SKIN,
    face_colors: np.ndarray | None = None,
    supersample: int = 2,
) -> np.ndarray:
    """Render a mesh to a ``(size, size, 3)`` float image in [0, 1] (white background).

    Args:
        verts: ``(V, 3)`` vertices (any unit). faces: ``(F, 3)`` counter-clockwise from outside.
        rotation: ``(3, 3)`` applied to the vertices before projecting (default identity): the
            camera looks along +z, image x right, y down; nearer = smaller z.
        extent: side of the square field of view, in vertex units (default: fits the mesh).
        centre: ``(2,)`` image-plane point at the centre of the view (default: bbox centre).
        color: ``(3,)`` RGB of the surface; face_colors: optional ``(F, 3)`` per-face RGB.
    """
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    p = np.asarray(verts, dtype=np.float64) @ r.T
    faces = np.asarray(faces)
    lo, hi = p[:, :2].min(0), p[:, :2].max(0)
    if centre is None:
        centre = 0.5 * (lo + hi)
    if extent is None:
        extent = 1.1 * float(np.max(hi - lo))
    n = size * supersample
    scale = n / extent
    xy = (p[:, :2] - centre) * scale + 0.5 * n - 0.5  # pixel centres at integers
    z = p[:, 2]
    vn = vertex_normals(p, faces)
    fn = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    front = np.nonzero(fn[:, 2] < 0)[0]  # facing the camera (which looks along +z)
    zbuf = np.full((n, n), np.inf)
    fid = np.full((n, n), -1, dtype=np.int64)
    bary = np.zeros((n, n, 3))
    for f in front:
        i0, i1, i2 = faces[f]
        (x0, y0), (x1, y1), (x2, y2) = xy[i0], xy[i1], xy[i2]
        xmin, xmax = int(np.ceil(min(x0, x1, x2))), int(np.floor(max(x0, x1, x2)))
        ymin, ymax = int(np.ceil(min(y0, y1, y2))), int(np.floor(max(y0, y1, y2)))
        xmin, ymin, xmax, ymax = max(xmin, 0), max(ymin, 0), min(xmax, n - 1), min(ymax, n - 1)
        if xmin > xmax or ymin > ymax:
            continue
        den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(den) < 1e-12:
            continue
        gx, gy = np.meshgrid(np.arange(xmin, xmax + 1), np.arange(ymin, ymax + 1))
        b0 = ((y1 - y2) * (gx - x2) + (x2 - x1) * (gy - y2)) / den
        b1 = ((y2 - y0) * (gx - x2) + (x0 - x2) * (gy - y2)) / den
        b2 = 1.0 - b0 - b1
        inside = (b0 >= -1e-9) & (b1 >= -1e-9) & (b2 >= -1e-9)
        if not inside.any():
            continue
        depth = b0 * z[i0] + b1 * z[i1] + b2 * z[i2]
        sub = zbuf[ymin : ymax + 1, xmin : xmax + 1]
        win = inside & (depth < sub)
        sub[win] = depth[win]
        fid[ymin : ymax + 1, xmin : xmax + 1][win] = f
        bsub = bary[ymin : ymax + 1, xmin : xmax + 1]
        bsub[win] = np.stack([b0[win], b1[win], b2[win]], axis=-1)
    hit = fid >= 0
    img = np.broadcast_to(BACKGROUND, (n, n, 3)).copy()
    if hit.any():
        tri = faces[fid[hit]]
        nrm = np.einsum("pk,pkc->pc", bary[hit], vn[tri])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        light = np.array([-0.35, -0.45, -0.82])
        light /= np.linalg.norm(light)
        diffuse = np.clip(nrm @ light, 0.0, 1.0)
        half = light + np.array([0.0, 0.0, -1.0])
        half /= np.linalg.norm(half)
        spec = np.clip(nrm @ half, 0.0, 1.0) ** 24
        rim = np.clip(1.0 + nrm[:, 2], 0.0, 1.0) ** 3  # darken grazing silhouettes
        shade = 0.28 + 0.72 * diffuse - 0.12 * rim
        base = np.asarray(color) if face_colors is None else np.asarray(face_colors)[fid[hit]]
        img[hit] = np.clip(base * shade[:, None] + 0.12 * spec[:, None], 0.0, 1.0)
    if supersample > 1:
        img = img.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    return img


def canonical_rotation(asset: HandAsset) -> np.ndarray:
    """``(3, 3)`` rotation taking a hand model's rest frame to the built-in hand's frame.

    From the rest joints: wrist -> middle MCP goes to -y, the back of the hand to +z (for a right
    hand; a left hand keeps its thumb on -x). For the built-in hand this is a rotation of a few
    degrees about z (its middle MCP is slightly radial of the wrist).
    """
    j = asset.J_regressor @ asset.v_template
    up = j[4] - j[0]  # wrist -> middle1
    radial = j[1] - j[7]  # pinky1 -> index1
    ydir = -up / np.linalg.norm(up)
    x = radial - (radial @ ydir) * ydir
    x /= np.linalg.norm(x)
    if asset.side == "left":
        x = -x
    z = np.cross(x, ydir)
    return np.stack([x, ydir, z])


DEFAULT_SHEET_POSES = ("flat", "fist", "pinch", "point", "spread", "ok")
DEFAULT_SHEET_SHAPES: dict[str, dict[int, float]] = {
    "large": {0: 2.0, 3: 1.5, 4: 0.5},
    "small, slender": {0: -2.0, 1: -1.5, 4: -2.0},
}


def _beta_name(asset: HandAsset, k: int) -> str:
    if asset.name == "builtin":
        from seqhand.hand.builtin import BETA_NAMES

        return BETA_NAMES[k].replace("_", " ")
    return f"beta{k}"


def render_sheet(
    out: str | os.PathLike,
    asset: HandAsset | str | None = None,
    *,
    size: int = 240,
    poses: tuple[str, ...] = DEFAULT_SHEET_POSES,
    shapes: dict[str, dict[int, float]] | None = None,
    views: tuple[str, ...] = ("palm", "back", "thumb side"),
) -> Path:
    """Write a PNG sheet of a hand model in named poses and shapes, one row per view.

    Args:
        out: output ``.png`` path.
        asset: the hand model (default: the built-in hand).
        size: pixels per panel.
        poses: gesture names (:data:`seqhand.hand.gestures.GESTURES`) shown with the mean shape.
        shapes: extra panels ``{title: {beta index: value}}`` in the flat pose (default:
            :data:`DEFAULT_SHEET_SHAPES`; ignored beyond the asset's shape directions).
        views: rows, names of :data:`VIEWS`.
    Returns:
        the written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import torch

    from seqhand.hand.gestures import gesture_pose
    from seqhand.hand.layer import HandLayer

    asset = load_asset(asset)
    shapes = DEFAULT_SHEET_SHAPES if shapes is None else shapes
    layer = HandLayer(asset, pose_origin="flat", dtype=torch.float64)
    panels = []
    for name in poses:
        pose = torch.as_tensor(gesture_pose(name, asset))[None]
        panels.append((name, layer(hand_pose=pose).vertices[0]))
    for title, spec in shapes.items():
        betas = torch.zeros(1, layer.num_betas, dtype=torch.float64)
        for k, val in spec.items():
            if k < layer.num_betas:
                betas[0, k] = val
        label = "\n".join(f"{_beta_name(asset, k)} {val:+g}" for k, val in spec.items())
        panels.append((f"{title}\n{label}", layer(betas=betas).vertices[0]))
    canon = canonical_rotation(asset)
    shown = [(title, verts.detach().numpy() @ canon.T) for title, verts in panels]
    # One scale for every panel (so shapes compare), just large enough for the largest.
    extent = 1.1 * max(
        float(np.ptp(v @ VIEWS[view][:2].T, axis=0).max()) for _, v in shown for view in views
    )
    fig, axes = plt.subplots(
        len(views), len(panels), figsize=(1.6 * len(panels), 1.75 * len(views)), squeeze=False
    )
    for col, (title, v) in enumerate(shown):
        for row, view in enumerate(views):
            r = VIEWS[view]
            centre = 0.5 * ((v @ r.T)[:, :2].min(0) + (v @ r.T)[:, :2].max(0))
            img = render_mesh(v, asset.f, size, rotation=r, extent=extent, centre=centre)
            ax = axes[row, col]
            ax.imshow(img, interpolation="lanczos")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if row == 0:
                ax.set_title(title, fontsize=7)
            if col == 0:
                ax.set_ylabel(f"{view} view", fontsize=7)
    fig.suptitle(
        f"hand model '{asset.name}' ({asset.side}): {asset.num_vertices} vertices, "
        f"{len(asset.f)} faces, {asset.num_betas} shape directions",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95), pad=0.3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=max(100, size // 1.6))
    plt.close(fig)
    return out
