"""Meshes, posed hands and a slow naive rasteriser for the rendering tests."""

from __future__ import annotations

import numpy as np


def torus(major: float = 0.05, minor: float = 0.02, nu: int = 40, nv: int = 20):
    """A closed torus, faces counter-clockwise seen from outside. Returns (V, 3), (F, 3)."""
    u, v = np.meshgrid(
        np.arange(nu) * 2 * np.pi / nu, np.arange(nv) * 2 * np.pi / nv, indexing="ij"
    )
    pts = np.stack(
        [(major + minor * np.cos(v)) * np.cos(u), (major + minor * np.cos(v)) * np.sin(u),
         minor * np.sin(v)], -1,
    ).reshape(-1, 3)  # fmt: skip
    faces = []
    for i in range(nu):
        for j in range(nv):
            a, b = i * nv + j, ((i + 1) % nu) * nv + j
            c, d = ((i + 1) % nu) * nv + (j + 1) % nv, i * nv + (j + 1) % nv
            faces += [(a, b, c), (a, c, d)]
    return orient_outward(pts, np.array(faces))


def uv_sphere(radius: float = 0.05, n_lat: int = 16, n_lon: int = 32):
    """A closed UV sphere (poles are single vertices), faces counter-clockwise from outside."""
    pts = [(0.0, 0.0, radius)]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            pts.append((radius * np.sin(th) * np.cos(ph), radius * np.sin(th) * np.sin(ph),
                        radius * np.cos(th)))  # fmt: skip
    pts.append((0.0, 0.0, -radius))
    ring = lambda i, j: 1 + (i - 1) * n_lon + j % n_lon  # noqa: E731
    faces = [(0, ring(1, j), ring(1, j + 1)) for j in range(n_lon)]
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            faces += [(ring(i, j), ring(i + 1, j), ring(i + 1, j + 1)),
                      (ring(i, j), ring(i + 1, j + 1), ring(i, j + 1))]  # fmt: skip
    last = len(pts) - 1
    faces += [(last, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)) for j in range(n_lon)]
    return orient_outward(np.array(pts), np.array(faces))


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


def orient_outward(v: np.ndarray, f: np.ndarray):
    """Flip all faces if the mesh's signed volume is negative (consistent winding assumed)."""
    return (v, f) if signed_volume(v, f) > 0 else (v, f[:, ::-1].copy())


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3, 3) uniformly random rotations (QR of Gaussian matrices, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def naive_render(xy, z, nrm, faces, col, light, amb, height, width, *, cull=True, ss=1):
    """Slow reference: every triangle's barycentrics at every sample centre (float64), nearest
    sample wins, Lambert on the re-normalised interpolated normal. With ``ss`` > 1 the samples
    of a pixel are averaged (coverage alpha, colour premultiplied).

    Returns ``(rgb float (H, W, 3) in [0, 1], coverage (H, W) float, depth (H, W))``, depth
    the nearest sample's z (``inf`` where empty).
    """
    hh, ww = height * ss, width * ss
    sxy = ss * (np.asarray(xy, np.float64) + 0.5) - 0.5
    light = np.asarray(light, np.float64) / np.linalg.norm(light)
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float64)
    zb = np.full((hh, ww), np.inf)
    img = np.zeros((hh, ww, 3))
    hit = np.zeros((hh, ww), bool)
    for f in np.asarray(faces):
        p = sxy[f]
        a2 = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1])
        if (a2 >= 0 and cull) or abs(a2) < 1e-12:
            continue

        b0, b1, b2 = (_edge(p, a, b, xs, ys) / a2 for a, b in ((1, 2), (2, 0), (0, 1)))
        zz = b0 * z[f[0]] + b1 * z[f[1]] + b2 * z[f[2]]
        upd = (b0 >= 0) & (b1 >= 0) & (b2 >= 0) & (zz < zb)
        if not upd.any():
            continue
        zb[upd] = zz[upd]
        hit |= upd
        bb = np.stack([b0[upd], b1[upd], b2[upd]], 1)
        n = bb @ np.asarray(nrm, np.float64)[f]
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        lam = np.maximum((1.0 if a2 < 0 else -1.0) * (n @ light), 0.0)
        c = bb @ np.asarray(col, np.float64)[f]
        img[upd] = np.clip(c * (amb + (1 - amb) * lam)[:, None], 0, 1)
    if ss == 1:
        return img, hit.astype(np.float64), zb
    img = img.reshape(height, ss, width, ss, 3).mean((1, 3))
    depth = zb.reshape(height, ss, width, ss).min((1, 3))
    return img, hit.reshape(height, ss, width, ss).mean((1, 3)), depth


def _edge(p, a, b, xs, ys):
    """Edge function of the directed edge p[a] -> p[b] at the sample centres (xs, ys)."""
    return (p[b, 0] - p[a, 0]) * (ys - p[a, 1]) - (p[b, 1] - p[a, 1]) * (xs - p[a, 0])


def posed_hands(n: int, seed: int, size: int = 224, scale: float = 800.0):
    """``n`` random poses and views of the built-in hand under the weak-perspective camera.

    Returns a dict: verts2d (n, V, 2), depth (n, V), points (n, V, 3) camera frame,
    joints2d (n, 21, 2), faces (F, 3), asset. Imports the hand model lazily.
    """
    import torch

    from seqhand.geometry.camera import weak_perspective_project
    from seqhand.hand import HandLayer, load_asset

    asset = load_asset("builtin")
    layer = HandLayer(asset, pose_origin="mean")
    g = torch.Generator().manual_seed(seed)
    out = layer(pose_pca=torch.randn(n, 10, generator=g) * 0.8, global_orient=torch.zeros(n, 3))
    centre = out.vertices.mean(1, keepdim=True)
    rot = torch.randn(n, 3, generator=g) * 1.2
    trans = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * size * 0.2
    s = torch.full((n,), scale * size / 224)
    verts2d, points = weak_perspective_project((out.vertices - centre).double(), rot.double(),
                                               s.double(), trans.double())  # fmt: skip
    joints2d, _ = weak_perspective_project((out.joints - centre).double(), rot.double(),
                                           s.double(), trans.double())  # fmt: skip
    return {
        "verts2d": verts2d.numpy(),
        "depth": points[..., 2].numpy(),
        "points": points.numpy(),
        "joints2d": joints2d.numpy(),
        "faces": asset.f,
        "asset": asset,
    }
