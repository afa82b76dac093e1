"""An OpenGL reference backend for the rasteriser, through pyrender (headless EGL or OSMesa).

Optional: used by the tests and ``benchmarks/render.py`` as the standard renderer to compare
:mod:`seqhand.synth.raster` against. It draws the same inputs with the same camera and the same
lighting model: an orthographic camera whose pixel centres are at integer coordinates, vertex
colours, and ``colour * (ambient + (1 - ambient) * max(0, n . l))`` on interpolated normals, in
a small custom GLSL shader pair that replaces pyrender's PBR shaders (pyrender still sets the
light and ambient uniforms from its scene).

Needs ``pip install pyrender`` and a headless GL: EGL (``libegl1`` + ``libegl-mesa0`` +
``libgl1-mesa-dri`` on Debian/Ubuntu; works with pyrender's pinned PyOpenGL 3.1.0) or OSMesa
(``libosmesa6``; needs PyOpenGL >= 3.1.5). pyrender always draws with 4x MSAA, so its edge
pixels are blended; its silhouette is taken as "at least half the samples covered".
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from seqhand.errors import MissingExtraError, SeqhandError
from seqhand.synth.raster import RenderResult, _as_array

__all__ = ["GLRenderer", "gl_available"]

_VERT = """#version 330 core
layout(location = 0) in vec3 position;
layout(location = NORMAL_LOC) in vec3 normal;
layout(location = COLOR_0_LOC) in vec4 color_0;
layout(location = INST_M_LOC) in mat4 inst_m;
uniform mat4 M;
uniform mat4 V;
uniform mat4 P;
out vec3 frag_normal;
out vec4 frag_rgb;
void main() {
    gl_Position = P * V * M * inst_m * vec4(position, 1.0);
    frag_normal = normal;   // given in the GL camera frame; the model matrix is the identity
    frag_rgb = color_0;
}
"""

_FRAG = """#version 330 core
struct DirectionalLight { vec3 direction; };
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform vec3 ambient_light;
in vec3 frag_normal;
in vec4 frag_rgb;
out vec4 frag_color;
void main() {
    vec3 n = normalize(frag_normal);
    if (!gl_FrontFacing) n = -n;            // two-sided lighting when culling is off
    vec3 l = -directional_lights[0].direction;
    float a = ambient_light.r;
    float shade = a + (1.0 - a) * max(dot(n, l), 0.0);
    frag_color = vec4(clamp(frag_rgb.rgb * shade, 0.0, 1.0), 1.0);
}
"""


class GLBackendError(SeqhandError, RuntimeError):
    """pyrender is installed but no headless OpenGL context could be created."""


def _import_pyrender(platform: str):
    current = os.environ.get("PYOPENGL_PLATFORM")
    if "OpenGL" in sys.modules and current not in (None, platform):
        raise GLBackendError(
            f"PyOpenGL was already imported for platform {current!r}; cannot switch to "
            f"{platform!r} in the same process"
        )
    os.environ["PYOPENGL_PLATFORM"] = platform
    try:
        import pyrender
    except ImportError as e:
        if "pyrender" in str(e):
            raise MissingExtraError("pyrender", "gl", "the OpenGL reference renderer") from None
        raise GLBackendError(f"pyrender failed to import with {platform}: {e}") from None
    return pyrender


def gl_available(platform: str = "egl") -> tuple[bool, str]:
    """``(True, "")`` if a headless pyrender context can be made, else ``(False, reason)``."""
    try:
        GLRenderer(8, 8, platform=platform).close()
    except Exception as e:  # noqa: BLE001 - any failure means "not available", with the reason
        return False, f"{type(e).__name__}: {e}"
    return True, ""


class GLRenderer:
    """pyrender with the rasteriser's conventions, for one image size.

    Args:
        height, width: image size in pixels.
        platform: ``"egl"`` or ``"osmesa"`` (sets ``PYOPENGL_PLATFORM`` before OpenGL loads).
    """

    def __init__(self, height: int, width: int, *, platform: str = "egl") -> None:
        self._pr = _import_pyrender(platform)
        self.height, self.width = int(height), int(width)
        self._shader_dir = tempfile.TemporaryDirectory(prefix="seqhand_gl_")
        Path(self._shader_dir.name, "mesh.vert").write_text(_VERT)
        Path(self._shader_dir.name, "mesh.frag").write_text(_FRAG)
        try:
            self._renderer = self._pr.OffscreenRenderer(self.width, self.height)
        except Exception as e:  # noqa: BLE001 - report the platform's reason
            self._shader_dir.cleanup()
            raise GLBackendError(f"no headless OpenGL context ({platform}): {e}") from None
        from pyrender.shader_program import ShaderProgramCache

        # pyrender asks its program cache for 'mesh.vert'/'mesh.frag': serve ours instead.
        self._renderer._renderer._program_cache = ShaderProgramCache(
            shader_dir=self._shader_dir.name
        )

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.delete()
            self._renderer = None
        self._shader_dir.cleanup()

    def __enter__(self) -> GLRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render_batch(
        self,
        verts2d: np.ndarray,
        depth: np.ndarray,
        normals: np.ndarray,
        faces: np.ndarray,
        colors: np.ndarray,
        light_dirs: np.ndarray,
        ambient: np.ndarray | float,
        *,
        cull_backfaces: bool = True,
    ) -> RenderResult:
        """Same inputs and conventions as :func:`seqhand.synth.raster.render_batch`.

        Returns ``rgb (N, H, W, 3)`` uint8 over black (MSAA-blended edges), ``mask`` = MSAA
        coverage >= 1/2, ``alpha`` = MSAA coverage (multiples of 1/4).
        """
        pr = self._pr
        xy = _as_array(verts2d, "verts2d", np.float64, (-1, -1, 2))
        n, nv = xy.shape[:2]
        z = _as_array(depth, "depth", np.float64, (n, nv))
        nrm = _as_array(normals, "normals", np.float64, (n, nv, 3))
        fcs = _as_array(faces, "faces", np.int64, (-1, 3))
        col = np.asarray(colors, np.float64)
        col = np.broadcast_to(col, (n, nv, 3)) if col.ndim == 2 else col
        light = np.broadcast_to(np.asarray(light_dirs, np.float64), (n, 3))
        amb = np.broadcast_to(np.asarray(ambient, np.float64), (n,))
        h, w = self.height, self.width
        rgb = np.zeros((n, h, w, 3), np.uint8)
        alpha = np.zeros((n, h, w), np.float32)
        flip = np.array([1.0, -1.0, -1.0])  # our camera frame (y down, z ahead) -> GL's
        for i in range(n):
            # Depth range [1, 1 + extent] in front of the camera; near/far hug it so that the
            # 24-bit depth buffer resolves it finely (orthographic depth is linear).
            extent = float(z[i].max() - z[i].min())
            cam = pr.OrthographicCamera(xmag=w / 2.0, ymag=h / 2.0, znear=0.5, zfar=extent + 1.5)
            # Pixel centre u lands on GL's pixel centre: x_gl = u + 0.5 - W/2, y flipped.
            zi = z[i] - z[i].min() + 1.0
            pos = np.stack([xy[i, :, 0] + 0.5 - w / 2.0, h / 2.0 - 0.5 - xy[i, :, 1], -zi], 1)
            prim = pr.Primitive(
                positions=pos.astype(np.float32),
                normals=(nrm[i] * flip).astype(np.float32),
                color_0=np.concatenate([col[i], np.ones((nv, 1))], 1).astype(np.float32),
                indices=fcs,
                material=pr.MetallicRoughnessMaterial(doubleSided=not cull_backfaces),
                mode=pr.GLTF.TRIANGLES,
            )
            a = float(amb[i])
            scene = pr.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[a, a, a])
            scene.add(pr.Mesh([prim]))
            scene.add(cam, pose=np.eye(4))
            scene.add(pr.DirectionalLight(), pose=_light_pose(light[i] * flip))
            color, _ = self._renderer.render(scene, flags=pr.RenderFlags.RGBA)
            rgb[i] = color[..., :3]
            alpha[i] = color[..., 3] / 255.0
        return RenderResult(rgb, alpha >= 0.5, alpha)


def _light_pose(towards_light: np.ndarray) -> np.ndarray:
    """A pose whose +z axis points towards the light (pyrender's light shines along -z)."""
    zax = towards_light / np.linalg.norm(towards_light)
    helper = np.array([1.0, 0.0, 0.0]) if abs(zax[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    xax = np.cross(helper, zax)
    xax /= np.linalg.norm(xax)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = xax, np.cross(zax, xax), zax
    return pose
