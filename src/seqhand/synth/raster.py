"""A CPU triangle rasteriser for the weak-perspective camera, compiled with numba.

It draws a posed mesh with per-vertex colours (Gouraud interpolation), Lambert lighting on
interpolated vertex normals (ambient + one directional light), a z-buffer and a silhouette mask,
optionally anti-aliased by supersampling. One numba call renders a whole batch of frames on one
CPU core; no OpenGL is needed. See ``docs/rendering.md`` for the conventions with pictures.

Conventions (the camera of :mod:`seqhand.geometry.camera`):

- Image coordinates are pixels, x right, y down, and **pixel centres sit at integer
  coordinates**: pixel ``img[i, j]`` is centred at ``(x, y) = (j, i)`` and covers
  ``[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]`` (OpenCV's convention; a 2D joint at ``(u, v)``
  lies in pixel ``img[round(v), round(u)]``).
- ``depth`` is the z of the camera-frame points ``R X`` (metres); the camera looks along +z,
  so a **smaller z is nearer**. The projection is orthographic, so depth and every attribute are
  interpolated linearly in screen space (no perspective correction).
- Faces are counter-clockwise seen from outside (outward normal ``(v1 - v0) x (v2 - v0)``).
  A face is front-facing when its normal's z is negative (it points at the camera), which for
  the x-right / y-down image is a *negative* signed area
  ``(x1 - x0)(y2 - y0) - (x2 - x0)(y1 - y0) < 0``. Requires the scale s > 0.
- Lighting: ``light_dir`` is a unit vector in the camera frame pointing *from the surface
  towards the light* (``(0, 0, -1)`` = light from the camera). A pixel's colour is
  ``c * (ambient + (1 - ambient) * max(0, n . l))`` with ``c`` the interpolated vertex colour
  (RGB in [0, 1]) and ``n`` the interpolated, re-normalised vertex normal.
- Coverage: a pixel (or sub-sample) belongs to a triangle when its centre is inside it or on
  one of its edges. Shared edges are watertight (a tiny conservative slack; the z-buffer
  settles double hits).

The output ``rgb`` is the shaded mesh composited over the given background (black if none):
with supersampling, ``rgb = colour * alpha + background * (1 - alpha)`` with ``alpha`` the
fraction of covered sub-samples, i.e. over black it is premultiplied colour, ready for
:func:`seqhand.synth.backgrounds.composite`.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from seqhand.errors import SeqhandError

__all__ = [
    "RenderResult",
    "RasterInputError",
    "random_lighting",
    "render",
    "render_batch",
    "render_posed",
    "vertex_normals",
]

# Barycentric slack: a pixel centre up to 1e-7 (in barycentric units) outside a triangle still
# counts, which makes shared edges crack-free under float64 rounding.
_EDGE_SLACK = 1e-7
# Depth of an empty sample. A finite sentinel: comparisons stay well defined under fastmath.
_FAR = 1e30
# Fast-math without 'nnan'/'ninf'/'reassoc': FMA contraction and cheap division are safe here,
# assuming finite values or reordering sums is not (coverage relies on exact comparisons).
_FASTMATH = {"contract", "arcp", "nsz", "afn"}


class RasterInputError(SeqhandError, ValueError):
    """An input array of the rasteriser has the wrong shape, dtype range or non-finite values."""


class RenderResult(NamedTuple):
    """What the rasteriser returns for N frames of H x W pixels.

    Attributes:
        rgb: ``(N, H, W, 3)`` uint8, the mesh over the background (black if none given).
        mask: ``(N, H, W)`` bool silhouette: the pixel centre is covered (with supersampling:
            at least half of the pixel's sub-samples are covered).
        alpha: ``(N, H, W)`` float32 coverage in [0, 1] when ``supersample > 1``, else ``None``
            (then the mask is the coverage).
        depth: ``(N, H, W)`` float32 camera-frame z of the nearest surface (the z-buffer; with
            supersampling the nearest covered sub-sample), ``inf`` where nothing is drawn;
            only with ``return_depth=True``, else ``None``.
    """

    rgb: np.ndarray
    mask: np.ndarray
    alpha: np.ndarray | None
    depth: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _vertex_normals_kernel(points, faces, out):  # pragma: no cover - compiled
    n_frames, n_verts = points.shape[0], points.shape[1]
    acc = np.empty((n_verts, 3), np.float64)
    for n in range(n_frames):
        acc[:, :] = 0.0
        for f in range(faces.shape[0]):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            ax = points[n, i1, 0] - points[n, i0, 0]
            ay = points[n, i1, 1] - points[n, i0, 1]
            az = points[n, i1, 2] - points[n, i0, 2]
            bx = points[n, i2, 0] - points[n, i0, 0]
            by = points[n, i2, 1] - points[n, i0, 1]
            bz = points[n, i2, 2] - points[n, i0, 2]
            # Unnormalised face normal = 2 x area x unit normal: area weighting for free.
            cx = ay * bz - az * by
            cy = az * bx - ax * bz
            cz = ax * by - ay * bx
            for i in (i0, i1, i2):
                acc[i, 0] += cx
                acc[i, 1] += cy
                acc[i, 2] += cz
        for v in range(n_verts):
            norm = np.sqrt(acc[v, 0] ** 2 + acc[v, 1] ** 2 + acc[v, 2] ** 2)
            if norm > 0.0:
                out[n, v, 0] = acc[v, 0] / norm
                out[n, v, 1] = acc[v, 1] / norm
                out[n, v, 2] = acc[v, 2] / norm
            else:
                out[n, v, 0] = 0.0
                out[n, v, 1] = 0.0
                out[n, v, 2] = -1.0


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _draw_frame(vd, faces, cull, lx, ly, lz, amb, x_lo, x_hi, y_lo, y_hi, zbuf, out, ss_mode):
    """Draw one frame's faces with an early depth test; shade each sample that passes.

    ``vd`` is ``(V, 9)`` per-vertex data ``[x, y, z, nx, ny, nz, r, g, b]`` on the sample grid.
    ``ss_mode`` False: ``out`` is the ``(H, W, 3)`` uint8 image (shaded samples overwrite it);
    True: ``out`` is a ``(H', W', 3)`` float32 sample-colour buffer resolved by the caller.
    """
    dif = 1.0 - amb
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0, z0 = vd[i0, 0], vd[i0, 1], vd[i0, 2]
        x1, y1, z1 = vd[i1, 0], vd[i1, 1], vd[i1, 2]
        x2, y2, z2 = vd[i2, 0], vd[i2, 1], vd[i2, 2]
        area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        sign = 1.0
        if area2 >= 0.0:  # back-facing (or degenerate)
            if cull:
                continue
            sign = -1.0  # two-sided lighting for back faces drawn without culling
        if abs(area2) < 1e-12:
            continue
        # Triangle bounding box in sample-centre units, clipped to the frame's box.
        xa = max(int(np.ceil(min(x0, x1, x2))), x_lo)
        xb = min(int(np.floor(max(x0, x1, x2))), x_hi)
        ya = max(int(np.ceil(min(y0, y1, y2))), y_lo)
        yb = min(int(np.floor(max(y0, y1, y2))), y_hi)
        if xa > xb or ya > yb:
            continue
        inv = 1.0 / area2
        # Barycentrics b_k(x, y) = akx * x + aky * y + akc (edge functions over the area).
        a0x = (y1 - y2) * inv
        a0y = (x2 - x1) * inv
        a0c = (x1 * y2 - x2 * y1) * inv
        a1x = (y2 - y0) * inv
        a1y = (x0 - x2) * inv
        a1c = (x2 * y0 - x0 * y2) * inv
        a2x = (y0 - y1) * inv
        a2y = (x1 - x0) * inv
        a2c = (x0 * y1 - x1 * y0) * inv
        dz0 = z0 - z2
        dz1 = z1 - z2
        r0 = 1.0 / a0x if a0x != 0.0 else 0.0
        r1 = 1.0 / a1x if a1x != 0.0 else 0.0
        r2 = 1.0 / a2x if a2x != 0.0 else 0.0
        # Attributes as A = A2 + b0 (A0 - A2) + b1 (A1 - A2).
        n2x, n2y, n2z = vd[i2, 3], vd[i2, 4], vd[i2, 5]
        n0x, n0y, n0z = vd[i0, 3] - n2x, vd[i0, 4] - n2y, vd[i0, 5] - n2z
        n1x, n1y, n1z = vd[i1, 3] - n2x, vd[i1, 4] - n2y, vd[i1, 5] - n2z
        c2r, c2g, c2b = vd[i2, 6], vd[i2, 7], vd[i2, 8]
        c0r, c0g, c0b = vd[i0, 6] - c2r, vd[i0, 7] - c2g, vd[i0, 8] - c2b
        c1r, c1g, c1b = vd[i1, 6] - c2r, vd[i1, 7] - c2g, vd[i1, 8] - c2b
        # Small triangles test every pixel of their box; wider ones first narrow each row to
        # the span where all b_k >= -slack (the bounds' rounding, ~1e-14 px, is far inside the
        # slack, so the span never drops a pixel the per-pixel test would keep).
        wide = xb - xa > 2
        for py in range(ya, yb + 1):
            fy = float(py)
            c0 = a0y * fy + a0c
            c1 = a1y * fy + a1c
            c2 = a2y * fy + a2c
            pxa = xa
            pxb = xb
            if wide:
                lo = float(xa)
                hi = float(xb)
                if a0x > 0.0:
                    lo = max(lo, -(_EDGE_SLACK + c0) * r0)
                elif a0x < 0.0:
                    hi = min(hi, -(_EDGE_SLACK + c0) * r0)
                if a1x > 0.0:
                    lo = max(lo, -(_EDGE_SLACK + c1) * r1)
                elif a1x < 0.0:
                    hi = min(hi, -(_EDGE_SLACK + c1) * r1)
                if a2x > 0.0:
                    lo = max(lo, -(_EDGE_SLACK + c2) * r2)
                elif a2x < 0.0:
                    hi = min(hi, -(_EDGE_SLACK + c2) * r2)
                if lo > hi:
                    continue
                pxa = max(xa, int(np.ceil(lo)))
                pxb = min(xb, int(np.floor(hi)))
            for px in range(pxa, pxb + 1):
                fx = float(px)
                b0 = c0 + a0x * fx
                b1 = c1 + a1x * fx
                b2 = c2 + a2x * fx
                z = z2 + b0 * dz0 + b1 * dz1
                if min(b0, b1, b2) < -_EDGE_SLACK:  # one well-predicted branch for both tests
                    z = _FAR
                upy = np.uintp(py)  # unsigned indices: no negative-index wraparound code
                upx = np.uintp(px)
                if z >= zbuf[upy, upx]:
                    continue
                zbuf[upy, upx] = z
                nx = n2x + b0 * n0x + b1 * n1x
                ny = n2y + b0 * n0y + b1 * n1y
                nz = n2z + b0 * n0z + b1 * n1z
                nn = np.sqrt(nx * nx + ny * ny + nz * nz)
                lam = sign * (nx * lx + ny * ly + nz * lz) / nn if nn > 1e-12 else 0.0
                shade = amb + dif * max(lam, 0.0)
                r = min(max((c2r + b0 * c0r + b1 * c1r) * shade, 0.0), 1.0)
                g = min(max((c2g + b0 * c0g + b1 * c1g) * shade, 0.0), 1.0)
                b = min(max((c2b + b0 * c0b + b1 * c1b) * shade, 0.0), 1.0)
                if ss_mode:
                    out[upy, upx, 0] = r
                    out[upy, upx, 1] = g
                    out[upy, upx, 2] = b
                else:
                    out[upy, upx, 0] = np.uint8(r * 255.0 + 0.5)
                    out[upy, upx, 1] = np.uint8(g * 255.0 + 0.5)
                    out[upy, upx, 2] = np.uint8(b * 255.0 + 0.5)


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _render_kernel(
    x2d, depth, normals, faces, colors, light_dirs, ambient, background, has_bg, height, width,
    ss, cull, rgb, mask, alpha, want_depth, depth_out,
):  # fmt: skip  # pragma: no cover - compiled
    n_frames, n_verts = x2d.shape[0], x2d.shape[1]
    hh, ww = height * ss, width * ss
    zbuf = np.full((hh, ww), _FAR)  # kept at _FAR between frames: each frame resets its hits
    vd = np.empty((n_verts, 9), np.float64)
    sbuf = np.zeros((hh, ww, 3), np.float32) if ss > 1 else np.zeros((1, 1, 3), np.float32)
    inv_ss2 = 1.0 / (ss * ss)
    for n in range(n_frames):
        # Background first; the mesh overwrites (or blends into) it below.
        if has_bg:
            rgb[n] = background[n]
        else:
            rgb[n] = 0
        mask[n] = False
        if want_depth:
            depth_out[n] = np.inf
        # Sample-grid coordinates: with ss sub-samples per pixel, u' = ss * (u + 0.5) - 0.5.
        cn = n if colors.shape[0] > 1 else 0
        xmin, xmax, ymin, ymax = np.inf, -np.inf, np.inf, -np.inf
        for v in range(n_verts):
            x = ss * (x2d[n, v, 0] + 0.5) - 0.5
            y = ss * (x2d[n, v, 1] + 0.5) - 0.5
            vd[v, 0] = x
            vd[v, 1] = y
            vd[v, 2] = depth[n, v]
            for k in range(3):
                vd[v, 3 + k] = normals[n, v, k]
                vd[v, 6 + k] = colors[cn, v, k]
            xmin = min(xmin, x)
            xmax = max(xmax, x)
            ymin = min(ymin, y)
            ymax = max(ymax, y)
        x_lo = max(0, int(np.ceil(xmin)))
        x_hi = min(ww - 1, int(np.floor(xmax)))
        y_lo = max(0, int(np.ceil(ymin)))
        y_hi = min(hh - 1, int(np.floor(ymax)))
        if x_lo > x_hi or y_lo > y_hi:
            continue
        lx, ly, lz = light_dirs[n, 0], light_dirs[n, 1], light_dirs[n, 2]
        if ss == 1:
            _draw_frame(vd, faces, cull, lx, ly, lz, ambient[n], x_lo, x_hi, y_lo, y_hi, zbuf,
                        rgb[n], False)  # fmt: skip
            for py in range(y_lo, y_hi + 1):
                for px in range(x_lo, x_hi + 1):
                    if zbuf[py, px] < _FAR:
                        mask[n, py, px] = True
                        if want_depth:
                            depth_out[n, py, px] = zbuf[py, px]
                        zbuf[py, px] = _FAR
            continue
        _draw_frame(vd, faces, cull, lx, ly, lz, ambient[n], x_lo, x_hi, y_lo, y_hi, zbuf,
                    sbuf, True)  # fmt: skip
        # Resolve: average the ss x ss samples of each pixel (uncovered samples count as 0).
        for qy in range(y_lo // ss, y_hi // ss + 1):
            for qx in range(x_lo // ss, x_hi // ss + 1):
                cov = 0.0
                zmin = _FAR
                sr = 0.0
                sg = 0.0
                sb = 0.0
                for sy in range(qy * ss, qy * ss + ss):
                    if sy < y_lo or sy > y_hi:
                        continue
                    for sx in range(qx * ss, qx * ss + ss):
                        if sx < x_lo or sx > x_hi or zbuf[sy, sx] == _FAR:
                            continue
                        zmin = min(zmin, zbuf[sy, sx])
                        zbuf[sy, sx] = _FAR
                        cov += 1.0
                        sr += sbuf[sy, sx, 0]
                        sg += sbuf[sy, sx, 1]
                        sb += sbuf[sy, sx, 2]
                if cov == 0.0:
                    continue
                cov *= inv_ss2
                alpha[n, qy, qx] = cov
                mask[n, qy, qx] = cov >= 0.5
                if want_depth:
                    depth_out[n, qy, qx] = zmin
                keep = 1.0 - cov
                for c, val in enumerate((sr, sg, sb)):
                    out = val * inv_ss2 * 255.0 + keep * rgb[n, qy, qx, c]
                    rgb[n, qy, qx, c] = np.uint8(min(out, 255.0) + 0.5)


# ---------------------------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------------------------
def _as_array(a, name: str, dtype, shape: tuple) -> np.ndarray:
    """Cast ``a`` to a C-contiguous ``dtype`` array and check it against ``shape`` (-1 = any)."""
    arr = np.ascontiguousarray(a, dtype=dtype)
    if not arr.flags.writeable:  # one compiled signature: numba types read-only arrays apart
        arr = arr.copy()
    if arr.ndim != len(shape) or any(s not in (-1, d) for s, d in zip(shape, arr.shape)):
        want = tuple("*" if s == -1 else s for s in shape)
        raise RasterInputError(f"{name} must have shape {want}, got {tuple(arr.shape)}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise RasterInputError(f"{name} contains NaN or inf")
    return arr


def vertex_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a posed mesh.

    Args:
        points: ``(N, V, 3)`` or ``(V, 3)`` vertices (any frame, any unit; the normals come out
            in the same frame - give camera-frame points ``R X`` for :func:`render_batch`).
        faces: ``(F, 3)`` vertex ids, counter-clockwise seen from outside.

    Returns:
        float32 normals of the same shape as ``points``, pointing outwards. A vertex used by no
        face (or only degenerate ones) gets ``(0, 0, -1)``.
    """
    pts = np.asarray(points)
    single = pts.ndim == 2
    pts = _as_array(pts[None] if single else pts, "points", np.float64, (-1, -1, 3))
    fcs = _as_array(faces, "faces", np.int64, (-1, 3))
    _check_face_ids(fcs, pts.shape[1])
    fcs = fcs.astype(np.uint32)
    out = np.empty(pts.shape, np.float32)
    _vertex_normals_kernel(pts, fcs, out)
    return out[0] if single else out


def _broadcast(a, shape: tuple, name: str) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(a, np.float64), shape)
    except ValueError:
        raise RasterInputError(f"{name} must broadcast to {shape}, got {np.shape(a)}") from None


def _check_face_ids(faces: np.ndarray, n_verts: int) -> None:
    if faces.size and (faces.min() < 0 or faces.max() >= n_verts):
        raise RasterInputError(
            f"faces refer to vertex ids in [{faces.min()}, {faces.max()}], "
            f"but the mesh has {n_verts} vertices"
        )


def render_batch(
    verts2d: np.ndarray,
    depth: np.ndarray,
    normals: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    light_dirs: np.ndarray,
    ambient: np.ndarray | float,
    height: int,
    width: int,
    *,
    background: np.ndarray | None = None,
    supersample: int = 1,
    cull_backfaces: bool = True,
    return_depth: bool = False,
) -> RenderResult:
    """Render N frames of one mesh topology in a single compiled call (one CPU core).

    Args:
        verts2d: ``(N, V, 2)`` projected vertices in pixels (x right, y down, pixel centres at
            integers), e.g. ``s * (R X)[..., :2] + t``.
        depth: ``(N, V)`` camera-frame z of the vertices (smaller = nearer), metres.
        normals: ``(N, V, 3)`` camera-frame unit vertex normals (:func:`vertex_normals` of
            ``R X``).
        faces: ``(F, 3)`` vertex ids, counter-clockwise seen from outside.
        colors: ``(N, V, 3)`` or ``(V, 3)`` (shared by all frames) RGB in [0, 1] per vertex.
        light_dirs: ``(N, 3)`` or ``(3,)`` direction from the surface towards the light, camera
            frame; normalised here.
        ambient: ``(N,)`` or a float in [0, 1]: the ambient share of the lighting.
        height, width: image size H, W in pixels.
        background: optional ``(N, H, W, 3)`` uint8 images to draw over (default black).
        supersample: k >= 1 sub-samples per pixel side (k = 2: 2x2 anti-aliasing, about 2.5-3x
            the time); with k > 1 the result carries the float coverage ``alpha``.
        cull_backfaces: skip faces pointing away from the camera (right for closed meshes);
            without culling, back faces are drawn with two-sided lighting.
        return_depth: also return the ``(N, H, W)`` float32 depth map (e.g. to tell which
            joints the hand hides: a joint is visible when the map is not nearer than it).

    Returns:
        :class:`RenderResult` ``(rgb (N, H, W, 3) uint8, mask (N, H, W) bool, alpha, depth)``.
    """
    xy = _as_array(verts2d, "verts2d", np.float64, (-1, -1, 2))
    n, nv = xy.shape[:2]
    z = _as_array(depth, "depth", np.float64, (n, nv))
    nrm = _as_array(normals, "normals", np.float32, (n, nv, 3))
    fcs = _as_array(faces, "faces", np.int64, (-1, 3))
    _check_face_ids(fcs, nv)
    fcs = fcs.astype(np.uint32)  # unsigned: the kernel's gathers skip wraparound checks
    col = np.asarray(colors)
    col = _as_array(col[None] if col.ndim == 2 else col, "colors", np.float32, (-1, nv, 3))
    if col.shape[0] not in (1, n):
        raise RasterInputError(f"colors must be ({nv}, 3) or ({n}, {nv}, 3), got {col.shape}")
    light = _as_array(
        _broadcast(light_dirs, (n, 3), "light_dirs"), "light_dirs", np.float64, (n, 3)
    )
    lnorm = np.linalg.norm(light, axis=1, keepdims=True)
    if np.any(lnorm < 1e-12):
        raise RasterInputError("light_dirs must be non-zero vectors")
    light = np.ascontiguousarray(light / lnorm)
    amb = _as_array(_broadcast(ambient, (n,), "ambient"), "ambient", np.float64, (n,))
    if np.any((amb < 0) | (amb > 1)):
        raise RasterInputError(f"ambient must lie in [0, 1], got {amb.min()}..{amb.max()}")
    height, width, ss = int(height), int(width), int(supersample)
    if height < 1 or width < 1 or ss < 1:
        raise RasterInputError(f"need height, width, supersample >= 1, got {height, width, ss}")
    if background is None:
        bg = np.zeros((1, 1, 1, 3), np.uint8)
    else:
        bg = _as_array(background, "background", np.uint8, (n, height, width, 3))
    rgb = np.empty((n, height, width, 3), np.uint8)
    mask = np.empty((n, height, width), np.bool_)
    alpha = np.zeros((n, height, width), np.float32) if ss > 1 else np.zeros((1, 1, 1), np.float32)
    zout = np.empty((n if return_depth else 1, height, width), np.float32)
    _render_kernel(
        xy, z, nrm, fcs, col, light, amb, bg, background is not None, height, width, ss,
        bool(cull_backfaces), rgb, mask, alpha, bool(return_depth), zout,
    )  # fmt: skip
    return RenderResult(rgb, mask, alpha if ss > 1 else None, zout if return_depth else None)


def render(
    verts2d: np.ndarray,
    depth: np.ndarray,
    normals: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    light_dir: np.ndarray,
    ambient: float,
    height: int,
    width: int,
    *,
    background: np.ndarray | None = None,
    supersample: int = 1,
    cull_backfaces: bool = True,
    return_depth: bool = False,
) -> RenderResult:
    """One frame: :func:`render_batch` with ``(V, 2)``, ``(V,)``, ``(V, 3)`` inputs, a
    ``(3,)`` light and an ``(H, W, 3)`` background; returns ``(H, W, 3)``, ``(H, W)`` arrays."""
    res = render_batch(
        np.asarray(verts2d)[None],
        np.asarray(depth)[None],
        np.asarray(normals)[None],
        faces,
        colors,
        np.asarray(light_dir, np.float64).reshape(1, 3),
        float(ambient),
        height,
        width,
        background=None if background is None else np.asarray(background)[None],
        supersample=supersample,
        cull_backfaces=cull_backfaces,
        return_depth=return_depth,
    )
    first = [None if a is None else a[0] for a in res]
    return RenderResult(*first)


def render_posed(
    points_cam: np.ndarray,
    scale: np.ndarray | float,
    trans: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    light_dirs: np.ndarray,
    ambient: np.ndarray | float,
    height: int,
    width: int,
    **kwargs,
) -> RenderResult:
    """Render camera-frame points under the weak-perspective camera ``x2d = s * (R X)_xy + t``.

    Args:
        points_cam: ``(N, V, 3)`` camera-frame vertices ``R X`` in metres (the second output of
            :func:`seqhand.geometry.camera.weak_perspective_project`).
        scale: ``(N,)`` or a float, s in pixels per metre (> 0).
        trans: ``(N, 2)`` or ``(2,)`` t in pixels.
        Other arguments as in :func:`render_batch` (keyword options passed through).
    """
    pts = _as_array(points_cam, "points_cam", np.float64, (-1, -1, 3))
    n = pts.shape[0]
    s = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), (n,))
    if np.any(s <= 0):
        raise RasterInputError("scale must be > 0 (a negative scale mirrors the image)")
    t = np.broadcast_to(np.asarray(trans, np.float64).reshape(-1, 2), (n, 2))
    xy = s[:, None, None] * pts[..., :2] + t[:, None, :]
    return render_batch(
        xy, pts[..., 2], vertex_normals(pts, faces), faces, colors, light_dirs, ambient,
        height, width, **kwargs,
    )  # fmt: skip


def random_lighting(
    rng: np.random.Generator,
    n: int,
    *,
    max_angle_deg: float = 75.0,
    ambient_range: tuple[float, float] = (0.25, 0.6),
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` lights: directions uniform on the cap within ``max_angle_deg`` of the camera
    direction ``(0, 0, -1)`` (so the visible side is lit), and ambient shares uniform in
    ``ambient_range``. Returns ``(light_dirs (n, 3) float64 unit, ambient (n,) float64)``.
    """
    cos_min = np.cos(np.radians(max_angle_deg))
    cos_t = rng.uniform(cos_min, 1.0, n)  # uniform in solid angle
    phi = rng.uniform(0.0, 2 * np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    dirs = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), -cos_t], 1)
    return dirs, rng.uniform(ambient_range[0], ambient_range[1], n)
