"""Skin colour templates: one RGB per vertex of the hand model (paper 3.2, after [3]).

Two sources, one :class:`TemplateSet` API (``len(ts)``, ``ts[i] -> (V, 3) float32`` in [0, 1]):

- :meth:`TemplateSet.builtin` paints templates procedurally from the hand model's rest-pose
  geometry, so it works for any asset (MANO or the built-in hand): a base tone drawn along a
  Fitzpatrick I-VI-like ramp with undertone jitter, a lighter palm (more so for darker skin),
  pinkish nails on the dorsal side of each distal phalanx, darker dorsal knuckles, palmar
  flexion creases at the finger joints, redder fingertip pads and low-frequency mottling.
  Template ``i`` is a pure function of ``(seed, i)``.
- :meth:`TemplateSet.from_folder` reads the public format: one OBJ per template whose ``v``
  lines are ``v x y z r g b`` with colours in [0, 1], one line per vertex of the hand model.

Geometry used (all from the asset, nothing hard-coded to one mesh): rest vertex normals against
the palm normal (:func:`palm_normal`), skinning weights to find each finger's segments (MANO
joints 3, 6, 9, 12, 15 are the distal ones), regressed rest joints and ``tip_vertex_ids``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seqhand.errors import SeqhandError
from seqhand.hand.asset import HandAsset

__all__ = [
    "DISTAL_JOINTS",
    "SKIN_TONE_RAMP",
    "SkinGeometry",
    "TemplateError",
    "TemplateSet",
    "load_obj_colors",
    "load_templates",
    "palm_normal",
    "save_obj_colors",
    "skin_geometry",
    "skin_template",
    "tone_color",
]


class TemplateError(SeqhandError, ValueError):
    """A colour-template file or folder is missing or malformed (the message names it)."""


# Dorsal skin colour (sRGB in [0, 1]) at six points of a Fitzpatrick I..VI-like tone ramp.
SKIN_TONE_RAMP = np.array(
    [
        [0.953, 0.835, 0.765],
        [0.910, 0.749, 0.643],
        [0.824, 0.635, 0.502],
        [0.690, 0.502, 0.357],
        [0.490, 0.333, 0.227],
        [0.294, 0.196, 0.141],
    ]
)
_PALM_LIFT = np.array([0.9, 0.7, 0.6])  # palms: towards white, with a pink bias
_NAIL_PINK = np.array([0.930, 0.760, 0.730])
_NAIL_EDGE = np.array([0.960, 0.930, 0.880])

# MANO kinematic joints: distal joint of each finger and every finger's chain (base -> distal).
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")  # the order of tip_vertex_ids
_CHAINS = {"thumb": (13, 14, 15), "index": (1, 2, 3), "middle": (4, 5, 6),
           "ring": (10, 11, 12), "pinky": (7, 8, 9)}  # fmt: skip
DISTAL_JOINTS = (15, 3, 6, 12, 9)  # thumb, index, middle, ring, pinky


# ---------------------------------------------------------------------------------------------
# Geometry of the rest pose
# ---------------------------------------------------------------------------------------------
def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 0, n / np.maximum(norm, 1e-30), 0.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-30)


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def palm_normal(asset: HandAsset) -> np.ndarray:
    """Unit normal pointing out of the palm, from the rest joints ``J_regressor @ v_template``.

    For a right hand it is ``normalize((J_index_mcp - J_wrist) x (J_pinky_mcp - J_wrist))``
    (MANO joints 0, 1, 7): with the palm facing you and the fingers up, the index finger is on
    your right, so this cross product points at you. A left asset flips the sign.
    """
    j = asset.J_regressor @ asset.v_template
    n = _unit(np.cross(j[1] - j[0], j[7] - j[0]))
    return n if asset.side == "right" else -n


@dataclasses.dataclass(frozen=True)
class SkinGeometry:
    """Per-vertex features in [0, 1] that the skin painter mixes colours with.

    Attributes (all ``(V,)`` unless noted):
        palm: 1 on the palmar surface (palm and the palmar side of fingers and thumb).
        nail: 1 on the nail plate (dorsal, distal part of each distal phalanx).
        nail_edge: 1 at the free edge of the nail.
        knuckle: dorsal patches over the finger and thumb joints.
        crease: palmar flexion creases at the finger and thumb joints.
        pad: palmar pads of the distal phalanges.
        distal: 0 at the wrist, 1 at the farthest fingertip.
        position: ``(V, 3)`` rest vertices divided by the hand length (for mottling).
    """

    palm: np.ndarray
    nail: np.ndarray
    nail_edge: np.ndarray
    knuckle: np.ndarray
    crease: np.ndarray
    pad: np.ndarray
    distal: np.ndarray
    position: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.palm.shape[0])


def skin_geometry(asset: HandAsset) -> SkinGeometry:
    """Compute the :class:`SkinGeometry` of an asset's rest pose (any mesh, metres)."""
    v = np.asarray(asset.v_template, np.float64)
    f = np.asarray(asset.f, np.int64)
    w = np.asarray(asset.weights, np.float64)
    j = asset.J_regressor @ v
    tips = v[np.asarray(asset.tip_vertex_ids)]
    normals = _vertex_normals(v, f)
    n_palm = palm_normal(asset)
    hand_len = float(np.linalg.norm(tips[2] - j[0]))  # wrist -> middle fingertip
    if not hand_len > 0:
        raise TemplateError(f"hand model {asset.name!r}: middle fingertip coincides with wrist")

    # Palmar direction per vertex: the palm normal, turned for the thumb (its pad faces the
    # index finger more than the palm normal does).
    thumb_axis = _unit(tips[0] - j[13])
    to_index = j[1] - j[13]
    to_index = _unit(to_index - (to_index @ thumb_axis) * thumb_axis)
    thumb_palmar = _unit(np.cos(np.radians(50)) * n_palm + np.sin(np.radians(50)) * to_index)
    w_thumb = w[:, list(_CHAINS["thumb"])].sum(1, keepdims=True)
    palmar_dir = (1 - w_thumb) * n_palm + w_thumb * thumb_palmar
    palmar_dir /= np.linalg.norm(palmar_dir, axis=1, keepdims=True)
    facing = np.sum(normals * palmar_dir, axis=1)  # +1 palmar, -1 dorsal
    palm = _smoothstep(-0.2, 0.35, facing)
    dorsal = _smoothstep(0.0, 0.45, -facing)

    nail = np.zeros(len(v))
    nail_edge = np.zeros(len(v))
    pad = np.zeros(len(v))
    knuckle = np.zeros(len(v))
    crease = np.zeros(len(v))
    for k, finger in enumerate(_FINGERS):
        chain = _CHAINS[finger]
        jd = chain[2]
        axis = tips[k] - j[jd]
        length = float(np.linalg.norm(axis))
        if length <= 0:
            continue
        axis = axis / length
        rel = v - j[jd]
        s = rel @ axis / length  # 0 at the distal joint, 1 at the tip
        lateral = rel - np.outer(rel @ axis, axis)
        on_phalanx = _smoothstep(0.35, 0.65, w[:, jd]) * (s > -0.1)
        # Lateral position across the nail: distance from the axis along the side direction
        # (perpendicular to the axis and to the palmar direction), relative to the half-width.
        side = _unit(np.cross(axis, n_palm if finger != "thumb" else thumb_palmar))
        sel = on_phalanx > 0.5
        half_width = (
            np.median(np.abs(lateral[sel] @ side)) * 1.6 if sel.any() else 0.05 * hand_len
        ) + 1e-9
        across = np.abs(lateral @ side) / half_width
        shape = (
            _smoothstep(0.2, 0.45, s)
            * (1 - _smoothstep(1.02, 1.12, s))
            * (1 - _smoothstep(0.55, 0.8, across))
        )
        nail_k = on_phalanx * shape * _smoothstep(0.3, 0.6, -facing)
        nail = np.maximum(nail, nail_k)
        nail_edge = np.maximum(nail_edge, nail_k * _smoothstep(0.82, 0.97, s))
        pad = np.maximum(pad, on_phalanx * _smoothstep(0.3, 0.7, s) * palm)
        # Joints of this finger: knuckles on the back, creases on the palm side.
        pts = [j[c] for c in chain] + [tips[k]]
        for a in range(3):
            centre, child = pts[a], pts[a + 1]
            bone = child - centre
            bone_len = float(np.linalg.norm(bone))
            if bone_len <= 0:
                continue
            bone = bone / bone_len
            d = v - centre
            along = d @ bone
            radial = np.linalg.norm(d - np.outer(along, bone), axis=1)
            near = radial < 0.09 * hand_len
            sigma_k = (0.05 if a == 0 else 0.035) * hand_len
            kn = np.exp(-(along**2 + (0.5 * radial) ** 2) / sigma_k**2) * dorsal
            if a > 0 or finger != "thumb":  # no knuckle over the thumb's CMC joint
                knuckle = np.maximum(knuckle, kn * near * (0.7 if a == 0 else 1.0))
            if a > 0 or finger != "thumb":
                # A palmar crease sits slightly proximal to the joint (the finger-palm crease
                # at the MCP lies well distal of the joint: the web).
                offset = (0.045 if a == 0 else -0.004) * hand_len
                cr = np.exp(-(((along - offset) / (0.012 * hand_len)) ** 2)) * palm * near
                crease = np.maximum(crease, cr)
    distal = np.linalg.norm(v - j[0], axis=1)
    distal = distal / max(float(distal.max()), 1e-12)
    return SkinGeometry(
        palm=palm.astype(np.float32),
        nail=nail.astype(np.float32),
        nail_edge=nail_edge.astype(np.float32),
        knuckle=knuckle.astype(np.float32),
        crease=crease.astype(np.float32),
        pad=pad.astype(np.float32),
        distal=distal.astype(np.float32),
        position=((v - j[0]) / hand_len).astype(np.float32),
    )


# ---------------------------------------------------------------------------------------------
# Painting
# ---------------------------------------------------------------------------------------------
def tone_color(tone: float) -> np.ndarray:
    """Dorsal skin colour at ``tone`` in [0, 5] along :data:`SKIN_TONE_RAMP` (I=0 ... VI=5)."""
    t = float(np.clip(tone, 0.0, 5.0))
    i = min(int(t), 4)
    return SKIN_TONE_RAMP[i] * (1 - (t - i)) + SKIN_TONE_RAMP[i + 1] * (t - i)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1 - t[:, None]) + b * t[:, None]


def skin_template(geom: SkinGeometry, rng: np.random.Generator, tone: float) -> np.ndarray:
    """Paint one template: ``(V, 3)`` float32 RGB in [0, 1].

    Args:
        geom: the model's :class:`SkinGeometry`.
        rng: draws undertone, contrast and mottling.
        tone: position on the tone ramp, 0 (type I) .. 5 (type VI).
    """
    nv = geom.num_vertices
    base = tone_color(tone)
    # Undertone (warm/olive <-> pink/cool), saturation and brightness jitter.
    lum = base.mean()
    base = lum + (base - lum) * rng.uniform(0.85, 1.15)
    base = base + rng.normal(0, 1) * np.array([0.018, 0.0, -0.018]) + rng.normal(0, 0.008, 3)
    base = base * rng.uniform(0.94, 1.06)
    col = np.tile(base, (nv, 1))
    dark = tone / 5.0
    # Towards the fingertips skin is a little redder.
    col = col * (1 + np.outer(geom.distal, [0.03, -0.01, -0.02]) * rng.uniform(0.5, 1.5))
    # Palm: lighter and pinker, much more so for dark skin (palmar skin has little melanin).
    lift = (0.15 + 0.5 * dark) * rng.uniform(0.85, 1.15)
    palm_col = base + (1 - base) * lift * _PALM_LIFT
    col = _mix(col, np.tile(palm_col, (nv, 1)), geom.palm)
    # Fingertip pads: redder.
    col = _mix(col, col * np.array([1.04, 0.93, 0.93]), geom.pad * 0.7)
    # Dorsal knuckles: darker, slightly redder on fair skin.
    k_strength = rng.uniform(0.10, 0.2) + 0.08 * dark
    knuckle_col = col * (1 - k_strength) * np.array([1.0 + 0.06 * (1 - dark), 0.97, 0.97])
    col = _mix(col, knuckle_col, geom.knuckle)
    # Palmar creases: darker lines.
    col = _mix(col, col * rng.uniform(0.7, 0.82), geom.crease)
    # Nails: translucent pink over the skin tone, whiter at the free edge.
    nail_col = base * 0.45 + _NAIL_PINK * 0.55
    col = _mix(col, np.tile(nail_col, (nv, 1)), geom.nail * rng.uniform(0.8, 1.0))
    col = _mix(col, np.tile(_NAIL_EDGE * 0.8 + base * 0.2, (nv, 1)), geom.nail_edge * 0.8)
    # Low-frequency mottling: a few random plane waves, wavelengths 10-35 % of the hand length.
    p = geom.position.astype(np.float64)
    lum_n = np.zeros(nv)
    red_n = np.zeros(nv)
    for _ in range(6):
        k = rng.normal(size=3)
        k *= 2 * np.pi / (np.linalg.norm(k) * rng.uniform(0.1, 0.35))
        lum_n += np.sin(p @ k + rng.uniform(0, 2 * np.pi))
        red_n += np.sin(p @ (k * rng.uniform(0.8, 1.3)) + rng.uniform(0, 2 * np.pi))
    col = col * (1 + rng.uniform(0.015, 0.04) * lum_n[:, None] / 2.5)
    col = col + np.outer(red_n / 2.5, [0.012, -0.004, -0.006])
    return np.clip(col, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Template sets
# ---------------------------------------------------------------------------------------------
class TemplateSet(Sequence):
    """Per-vertex colour templates for one hand model: ``ts[i] -> (V, 3) float32`` in [0, 1].

    Use :meth:`builtin` or :meth:`from_folder`; ``names[i]`` says where template i came from.
    Returned arrays are read-only (a template is shared by every frame of a sequence).
    """

    def __init__(
        self,
        num_vertices: int,
        names: Sequence[str],
        *,
        arrays: Sequence[np.ndarray] | None = None,
        make: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        if (arrays is None) == (make is None):
            raise ValueError("give exactly one of arrays= or make=")
        self.num_vertices = int(num_vertices)
        self.names = list(names)
        self._make = make
        self._cache: dict[int, np.ndarray] = {}
        for i, a in enumerate(arrays or ()):
            self._cache[i] = self._check(a, self.names[i])
        if not self.names:
            raise TemplateError("a template set needs at least one template")

    def _check(self, a: np.ndarray, name: str) -> np.ndarray:
        a = np.array(a, dtype=np.float32)
        if a.shape != (self.num_vertices, 3):
            raise TemplateError(f"{name}: expected ({self.num_vertices}, 3) colours, got {a.shape}")
        a.flags.writeable = False
        return a

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"template {index} out of range for {len(self)} templates")
        i %= len(self)
        if i not in self._cache:
            self._cache[i] = self._check(self._make(i), self.names[i])
        return self._cache[i]

    @classmethod
    def builtin(cls, asset: HandAsset, n: int = 27, *, seed: int = 0) -> TemplateSet:
        """``n`` procedural skin templates for ``asset`` (painted lazily, then cached).

        Template ``i``'s tone is ``5 * frac(u0 + 0.618... * i)`` (a low-discrepancy walk over the
        ramp: any n covers it evenly) with ``u0`` from ``seed``; its other draws come from
        ``default_rng([seed, i])``.
        """
        if n < 1:
            raise TemplateError(f"need n >= 1 templates, got {n}")
        geom = skin_geometry(asset)
        u0 = float(np.random.default_rng([int(seed), 0x5E7]).random())
        tones = [5.0 * ((u0 + 0.6180339887498949 * i) % 1.0) for i in range(n)]

        def make(i: int) -> np.ndarray:
            return skin_template(geom, np.random.default_rng([int(seed), int(i), 0x5C1]), tones[i])

        names = [f"builtin-{seed}-{i:04d} (tone {t:.2f})" for i, t in enumerate(tones)]
        return cls(asset.num_vertices, names, make=make)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, asset: HandAsset) -> TemplateSet:
        """All ``*.obj`` files of ``folder`` (sorted by name), in the public template format."""
        folder = Path(folder)
        if not folder.is_dir():
            raise TemplateError(f"{folder}: template folder does not exist")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".obj" and p.is_file())
        if not files:
            raise TemplateError(f"{folder}: no *.obj colour templates in the folder")
        arrays = []
        for p in files:
            colors = load_obj_colors(p)
            if len(colors) != asset.num_vertices:
                raise TemplateError(
                    f"{p}: has {len(colors)} vertices, the hand model {asset.name!r} has "
                    f"{asset.num_vertices} (a template needs one 'v x y z r g b' line per vertex)"
                )
            arrays.append(colors)
        return cls(asset.num_vertices, [p.name for p in files], arrays=arrays)


def load_templates(
    spec: str | os.PathLike | None, asset: HandAsset, *, n: int = 27, seed: int = 0
) -> TemplateSet:
    """``None`` / ``"builtin"`` -> :meth:`TemplateSet.builtin`; a folder -> ``from_folder``."""
    if spec is None or str(spec) == "builtin":
        return TemplateSet.builtin(asset, n, seed=seed)
    return TemplateSet.from_folder(spec, asset)


def load_obj_colors(path: str | os.PathLike) -> np.ndarray:
    """Read the ``v x y z r g b`` lines of an OBJ: ``(V, 3)`` float32 colours in [0, 1].

    Other lines (faces, normals, comments) are ignored. Errors name the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"{path}: cannot read the template ({type(e).__name__}: {e})") from None
    colors = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] != "v":
            continue
        if len(parts) != 7:
            raise TemplateError(
                f"{path}, line {lineno}: expected 'v x y z r g b' (6 numbers), "
                f"found {len(parts) - 1}: {line.strip()[:60]!r}"
            )
        try:
            vals = [float(x) for x in parts[4:7]]
            [float(x) for x in parts[1:4]]
        except ValueError:
            raise TemplateError(
                f"{path}, line {lineno}: not a number in {line.strip()[:60]!r}"
            ) from None
        if not all(0.0 <= c <= 1.0 for c in vals):
            raise TemplateError(
                f"{path}, line {lineno}: colours must lie in [0, 1], found {vals}"
                + (" (0-255 values? divide by 255)" if max(vals) > 1 else "")
            )
        colors.append(vals)
    if not colors:
        raise TemplateError(f"{path}: no 'v x y z r g b' lines")
    return np.asarray(colors, dtype=np.float32)


def save_obj_colors(
    path: str | os.PathLike,
    vertices: np.ndarray,
    colors: np.ndarray,
    faces: np.ndarray | None = None,
) -> Path:
    """Write a template in the public format (``v x y z r g b`` lines, optional ``f`` lines)."""
    path = Path(path)
    v = np.asarray(vertices, np.float64)
    c = np.asarray(colors, np.float64)
    if v.shape != c.shape or v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices and colours must both be (V, 3), got {v.shape}, {c.shape}")
    lines = [
        f"v {x:.6f} {y:.6f} {z:.6f} {r:.6f} {g:.6f} {b:.6f}" for (x, y, z), (r, g, b) in zip(v, c)
    ]
    if faces is not None:
        lines += [f"f {a + 1} {b + 1} {d + 1}" for a, b, d in np.asarray(faces)]
    path.write_text("\n".join(lines) + "\n")
    return path
