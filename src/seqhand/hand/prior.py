"""A built-in prior over anatomically plausible hand poses (a stand-in for captured poses).

The prior samples the 45 hand-pose numbers of the hand model (15 finger joints x axis-angle,
**relative to the flat hand**, MANO's kinematic order) by way of *anatomical* parameters:

* per finger joint a flexion, an abduction and a twist angle (radians) about axes computed from
  the asset's **rest joints** (:func:`anatomical_axes`), so the same prior serves the built-in
  hand and a MANO asset;
* per-joint limits (:data:`LIMITS`), the DIP-PIP coupling (DIP ~ 2/3 PIP), inter-finger
  synergies (correlated flexion of neighbouring fingers, one "spread" latent for all
  abductions, abduction shrinking as the MCP flexes);
* a mixture of everyday grasps and gestures (:data:`PRIOR_MODES`: fist, pinch, point, open,
  spread, power grasp, tripod, ...), blended pairwise and perturbed with correlated noise.

It is deterministic by (seed, index): sample ``i`` of seed ``s`` is the same however many
samples are drawn and in which chunks (samples are made in fixed blocks of
:data:`BLOCK` rows, block ``b`` from ``numpy.random.SeedSequence((s, b))``). Everything is
vectorised (no threads needed): 2.2M poses take ~10 s on one core.

The prior is **not** captured data: it is a hand-designed distribution that makes every feature
work without a dataset. For paper-faithful pose flows, build a bank from BigHand2.2M.

Frames: a joint's axis-angle in MANO's layer is expressed in the rest-pose frame of the hand
model (local rotations compose down the tree), so the anatomical axes are rest-frame vectors.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from seqhand.conventions import MANO21_TO_PROJECT, MANO_FINGER_CHAINS, NUM_POSE

BLOCK = 8192
"""Rows per random block: sample ``i`` comes from block ``i // BLOCK``."""

# Fingers in the project's order; anatomical parameters are (n, 5 fingers, 3 levels, 3) with
# the last axis (flex, abd, twist) and levels (MCP, PIP, DIP) - for the thumb (CMC, MCP, IP).
PRIOR_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
FLEX, ABD, TWIST = 0, 1, 2

# Joint limits in radians, (5, 3, 3, 2) = finger, level, (flex, abd, twist), (low, high).
# Thumb CMC: "flex" = across the palm toward the little finger, "abd" = palmar abduction
# (out of the palm plane), "twist" = opposition (pronation about the thumb's own axis).
_F = ((-0.35, 1.60), (-0.35, 0.35), (-0.12, 0.12))  # finger MCP
_P = ((-0.05, 1.85), (-0.06, 0.06), (-0.05, 0.05))  # finger PIP
_D = ((-0.15, 1.35), (-0.04, 0.04), (-0.04, 0.04))  # finger DIP
LIMITS = np.array(
    [
        [((-0.45, 0.95), (-0.25, 1.05), (-0.25, 1.00)),  # thumb CMC
         ((-0.25, 1.05), (-0.10, 0.10), (-0.15, 0.15)),  # thumb MCP
         ((-0.35, 1.35), (-0.05, 0.05), (-0.05, 0.05))],  # thumb IP
        [_F, _P, _D],
        [_F, _P, _D],
        [_F, _P, _D],
        [_F, _P, _D],
    ],
    dtype=np.float64,
)  # fmt: skip

# How much each finger's MCP abducts (toward the thumb, radians) per unit of the spread latent.
SPREAD_GAIN = np.array([0.30, 0.04, -0.17, -0.34])  # index, middle, ring, pinky
DIP_PIP_RATIO = 2.0 / 3.0

# Correlation of flexion noise across index, middle, ring, pinky (neighbours move together).
_FINGER_CORR = np.array(
    [[1.0, 0.55, 0.35, 0.25], [0.55, 1.0, 0.75, 0.55], [0.35, 0.75, 1.0, 0.8],
     [0.25, 0.55, 0.8, 1.0]]
)  # fmt: skip
_FINGER_CHOL = np.linalg.cholesky(_FINGER_CORR)


def _spec(fingers, spread: float, thumb) -> np.ndarray:
    """Anatomical ``(5, 3, 3)`` from (MCP, PIP) flexion of index..pinky (DIP = 2/3 PIP), the
    spread latent and the thumb's (CMC across, CMC palmar abduction, CMC opposition, MCP flex,
    IP flex) - the layout of :mod:`seqhand.hand.gestures`."""
    a = np.zeros((5, 3, 3))
    for k, (mcp, pip) in enumerate(fingers):
        a[k + 1, 0, FLEX], a[k + 1, 1, FLEX] = mcp, pip
        a[k + 1, 2, FLEX] = DIP_PIP_RATIO * pip
        a[k + 1, 0, ABD] = spread * SPREAD_GAIN[k]
    a[0, 0] = thumb[:3]
    a[0, 1, FLEX], a[0, 2, FLEX] = thumb[3], thumb[4]
    return a


_FIST = ((1.5, 1.7),) * 4
# Everyday grasps and gestures beyond :data:`seqhand.hand.gestures.GESTURES` (which provides
# flat, relaxed, fist, pinch, ok, point, spread and victory, thumbs solved on the built-in hand).
_EXTRA_MODES: dict[str, np.ndarray] = {
    "flat_together": _spec(((0.05, 0.0),) * 4, -0.6, (0.25, 0.05, 0.1, 0.1, 0.0)),
    "power_grasp": _spec(((1.0, 1.15), (1.05, 1.2), (1.1, 1.25), (1.15, 1.3)), -0.1,
                         (0.3, 0.15, 0.25, 0.65, 0.75)),
    "tripod": _spec(((0.75, 0.75), (0.7, 0.8), (1.2, 1.4), (1.3, 1.5)), 0.0,
                    (0.33, 0.3, 0.6, 0.25, 0.35)),
    "thumbs_up": _spec(_FIST, -0.2, (-0.3, 0.1, 0.0, 0.0, 0.0)),
    "hook": _spec(((0.0, 1.7),) * 4, -0.1, (0.1, 0.2, 0.2, 0.1, 0.1)),
    "claw": _spec(((0.15, 1.3),) * 4, 0.7, (0.1, 0.3, 0.4, 0.3, 0.7)),
    "key_pinch": _spec(((0.9, 1.4), (1.1, 1.5), (1.2, 1.55), (1.3, 1.6)), -0.2,
                       (0.3, 0.15, 0.25, 0.35, 0.3)),
    "horns": _spec(((0.0, 0.0), (1.5, 1.7), (1.5, 1.7), (0.0, 0.0)), 0.6,
                   (0.754, -0.25, -0.25, 0.862, 1.35)),
    "call_me": _spec(((1.5, 1.7), (1.5, 1.7), (1.5, 1.7), (0.0, 0.0)), 0.6,
                     (-0.35, 0.2, 0.0, 0.0, 0.0)),
    "three": _spec(((0.0, 0.0), (0.0, 0.0), (0.05, 0.05), (1.55, 1.7)), 0.5,
                   (0.754, -0.25, -0.25, 0.862, 1.35)),
    "disk_grasp": _spec(((0.5, 0.55), (0.5, 0.55), (0.55, 0.6), (0.6, 0.65)), 0.9,
                        (0.1, 0.45, 0.5, 0.2, 0.2)),
    "open_relaxed": _spec(((0.1, 0.15), (0.12, 0.2), (0.15, 0.25), (0.2, 0.3)), 0.4,
                          (0.0, 0.2, 0.15, 0.1, 0.1)),
}  # fmt: skip
_MODE_WEIGHTS = {
    "flat": 1.5, "relaxed": 3.0, "open_relaxed": 2.0, "spread": 1.5, "fist": 2.0, "point": 1.5,
    "pinch": 1.5, "ok": 1.0, "victory": 1.0, "power_grasp": 1.5, "tripod": 1.0,
    "flat_together": 1.0, "thumbs_up": 1.0, "hook": 1.0, "claw": 1.0, "key_pinch": 1.0,
    "horns": 0.7, "call_me": 0.7, "three": 0.7, "disk_grasp": 1.0,
}  # fmt: skip


def _build_modes() -> dict[str, tuple[np.ndarray, float]]:
    from seqhand.hand.gestures import GESTURES

    modes = {name: np.asarray(a, np.float64) for name, a in GESTURES.items()}
    modes.update(_EXTRA_MODES)
    return {name: (modes[name], w) for name, w in _MODE_WEIGHTS.items()}


PRIOR_MODES: dict[str, tuple[np.ndarray, float]] = _build_modes()
"""Name -> (anatomical angles ``(5, 3, 3)``, default weight) of each mode of the prior."""
MODE_NAMES: tuple[str, ...] = tuple(PRIOR_MODES)

# Noise scales (radians) around the blended mode.
_SIGMA_MCP, _SIGMA_PIP, _SIGMA_DIP = 0.22, 0.25, 0.08
_SIGMA_SPREAD, _SIGMA_ABD, _SIGMA_TWIST = 0.25, 0.05, 0.03
_SIGMA_THUMB = np.array([0.2, 0.2, 0.2, 0.2, 0.25])


def mode_parameters(name: str) -> np.ndarray:
    """The anatomical parameters ``(5, 3, 3)`` of a named mode of :data:`PRIOR_MODES`."""
    if name not in PRIOR_MODES:
        raise ValueError(f"unknown prior mode {name!r}; known: {list(PRIOR_MODES)}")
    return PRIOR_MODES[name][0].copy()


def _mode_table() -> np.ndarray:
    """All modes as anatomical parameters, ``(M, 5, 3, 3)``."""
    return np.stack([a for a, _ in PRIOR_MODES.values()])


# --------------------------------------------------------------------------------------------
# Anatomical axes from the rest joints
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AnatomicalAxes:
    """Unit rotation axes, rest-pose frame of the hand model.

    Attributes:
        axes: ``(5, 3, 3, 3)`` = finger (thumb..pinky), level (MCP, PIP, DIP), which axis
            (flex, abd, twist), xyz. A positive angle about the flex axis curls a finger toward
            the palm; about the abd axis moves it toward the thumb side; the twist axis is the
            bone direction (sign mirrored for a left hand).
        palm_normal: ``(3,)`` unit normal pointing out of the palm (palmar side).
        radial: ``(3,)`` unit in-palm direction from the little finger toward the index.
    """

    axes: np.ndarray
    palm_normal: np.ndarray
    radial: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n < 1e-9):
        raise ValueError("degenerate rest skeleton: a bone or palm vector has zero length")
    return v / n


def _perp(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Unit component of ``v`` orthogonal to unit ``t``."""
    return _unit(v - np.dot(v, t) * t)


def rest_joints(asset) -> np.ndarray:
    """Rest-pose joints of a hand asset, ``(21, 3)`` metres, project order (regressed + tips)."""
    j16 = np.asarray(asset.J_regressor, np.float64) @ np.asarray(asset.v_template, np.float64)
    tips = np.asarray(asset.v_template, np.float64)[np.asarray(asset.tip_vertex_ids)]
    return np.concatenate([j16, tips])[list(MANO21_TO_PROJECT)]


def anatomical_axes(joints21: np.ndarray, side: str = "right") -> AnatomicalAxes:
    """Flexion / abduction / twist axes of every finger joint from rest joints ``(21, 3)``.

    Palm frame: ``u`` = wrist -> middle MCP, ``radial`` = little MCP -> index MCP (made
    orthogonal to ``u``); the dorsal normal is ``u x radial`` for a right hand (negated for a
    left hand) and the palm normal is its opposite. For every joint the twist axis ``t`` is the
    bone to its child. Fingers: flex axis = ``t x palm_normal`` (so a positive angle moves the
    bone toward the palm), abd axis = ``t x radial``. Thumb: the CMC's "flex" swings the thumb
    across the palm (axis ``t x ulnar``), its "abd" lifts it out of the palm plane (axis
    ``t x palm_normal``; the two swings are not orthogonal); the thumb MCP and IP bend toward a
    mix of palmar and ulnar (the pulp of the thumb faces the fingers). Finger abd axes are made
    orthogonal to the flex axis. Every axis is a pseudo-vector: for a left (mirrored) hand the
    axes are the mirrored right-hand axes negated, so equal angles give mirrored poses.
    """
    j = np.asarray(joints21, np.float64)
    if j.shape != (21, 3):
        raise ValueError(f"rest joints must be (21, 3), got {j.shape}")
    hand = 1.0 if side == "right" else -1.0
    u = _unit(j[9] - j[0])
    radial = _perp(j[5] - j[17], u)
    dorsal = hand * _unit(np.cross(u, radial))
    palm = -dorsal
    ulnar = -radial
    axes = np.zeros((5, 3, 3, 3))
    for f in range(5):
        base = 1 + 4 * f
        for lev in range(3):
            t = _unit(j[base + lev + 1] - j[base + lev])
            if f == 0 and lev == 0:
                flex = _unit(np.cross(t, _perp(ulnar, t)))
                abd = _unit(np.cross(t, _perp(palm, t)))
            elif f == 0:
                bend = _perp(palm + 0.6 * ulnar, t)
                flex = _unit(np.cross(t, bend))
                abd = _unit(np.cross(t, hand * np.cross(bend, t)))
            else:
                flex = _unit(np.cross(t, _perp(palm, t)))
                abd = _perp(np.cross(t, _perp(radial, t)), flex)
            axes[f, lev] = (flex, abd, hand * t)
    return AnatomicalAxes(axes=axes, palm_normal=palm, radial=radial)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------
def _reflect_clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Reflect values at the limits once (no pile-up at the bounds), then clip."""
    x = np.where(x < lo, 2 * lo - x, x)
    x = np.where(x > hi, 2 * hi - x, x)
    return np.clip(x, lo, hi)


def _sample_block(seed: int, block: int, modes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One block of :data:`BLOCK` anatomical samples ``(BLOCK, 5, 3, 3)``."""
    rng = np.random.default_rng(np.random.SeedSequence((int(seed), int(block))))
    n = BLOCK
    # Every draw below has a fixed shape, so the stream layout never depends on n.
    pick = rng.choice(len(modes), size=(n, 2), p=weights)
    pure = rng.random(n) < 0.35
    w = np.where(pure, 0.0, rng.random(n))[:, None, None, None]
    x = (1.0 - w) * modes[pick[:, 0]] + w * modes[pick[:, 1]]
    z_mcp = rng.standard_normal((n, 4)) @ _FINGER_CHOL.T
    z_pip = rng.standard_normal((n, 4)) @ _FINGER_CHOL.T
    z_dip = rng.standard_normal((n, 4))
    z_spread = rng.standard_normal(n)
    z_abd = rng.standard_normal((n, 4, 3))
    z_twist = rng.standard_normal((n, 4, 3))
    z_thumb = rng.standard_normal((n, 5))
    z_thumb_small = rng.standard_normal((n, 2, 2))
    scale = rng.uniform(0.5, 1.5, size=(n, 1))  # per-sample noise level

    lim = LIMITS
    fing = x[:, 1:]
    mcp = _reflect_clip(fing[:, :, 0, FLEX] + _SIGMA_MCP * scale * z_mcp, *lim[1:, 0, FLEX].T)
    pip = _reflect_clip(fing[:, :, 1, FLEX] + _SIGMA_PIP * scale * z_pip, *lim[1:, 1, FLEX].T)
    dip = _reflect_clip(DIP_PIP_RATIO * pip + _SIGMA_DIP * z_dip, *lim[1:, 2, FLEX].T)
    # Spread: the mode's abduction plus a shared latent, shrinking as the MCP flexes.
    abd = fing[:, :, 0, ABD] + (_SIGMA_SPREAD * scale * z_spread[:, None]) * SPREAD_GAIN
    abd = abd * np.clip(1.0 - np.maximum(mcp, 0.0) / 1.9, 0.15, 1.0)
    abd = _reflect_clip(abd + _SIGMA_ABD * z_abd[:, :, 0], *lim[1:, 0, ABD].T)
    out = np.zeros((n, 5, 3, 3))
    out[:, 1:, 0, FLEX], out[:, 1:, 1, FLEX], out[:, 1:, 2, FLEX] = mcp, pip, dip
    out[:, 1:, 0, ABD] = abd
    out[:, 1:, 1:, ABD] = _SIGMA_ABD * 0.5 * z_abd[:, :, 1:]
    out[:, 1:, :, TWIST] = _SIGMA_TWIST * z_twist
    thumb = np.stack(
        [x[:, 0, 0, FLEX], x[:, 0, 0, ABD], x[:, 0, 0, TWIST], x[:, 0, 1, FLEX], x[:, 0, 2, FLEX]],
        axis=1,
    )
    thumb = thumb + _SIGMA_THUMB * scale * z_thumb
    out[:, 0, 0] = thumb[:, :3]
    out[:, 0, 1, FLEX], out[:, 0, 2, FLEX] = thumb[:, 3], thumb[:, 4]
    out[:, 0, 1:, ABD] = 0.04 * z_thumb_small[:, :, 0]
    out[:, 0, 1:, TWIST] = 0.04 * z_thumb_small[:, :, 1]
    return _reflect_clip(out, lim[..., 0], lim[..., 1])


def sample_anatomical(
    n: int, seed: int = 0, start: int = 0, mode_weights: dict[str, float] | None = None
) -> np.ndarray:
    """Anatomical parameters of samples ``start .. start + n - 1``: ``(n, 5, 3, 3)`` radians.

    Args:
        n: number of samples.
        seed: the prior's seed; sample ``i`` depends only on (seed, i, mode_weights).
        start: index of the first sample.
        mode_weights: optional weight per mode name (others keep :data:`PRIOR_MODES`'
            weights; a weight of 0 removes a mode).
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    w = np.array([weight for _, weight in PRIOR_MODES.values()], dtype=np.float64)
    for name, val in (mode_weights or {}).items():
        if name not in PRIOR_MODES:
            raise ValueError(f"unknown prior mode {name!r}; known: {list(PRIOR_MODES)}")
        w[MODE_NAMES.index(name)] = float(val)
    if not (np.all(w >= 0) and w.sum() > 0):
        raise ValueError("mode weights must be >= 0 with a positive sum")
    w = w / w.sum()
    modes = _mode_table()
    out = np.empty((n, 5, 3, 3))
    b0, b1 = start // BLOCK, (start + n + BLOCK - 1) // BLOCK
    for b in range(b0, b1):
        lo, hi = max(start, b * BLOCK), min(start + n, (b + 1) * BLOCK)
        if hi <= lo:
            continue
        block = _sample_block(seed, b, modes, w)
        out[lo - start : hi - start] = block[lo - b * BLOCK : hi - b * BLOCK]
    return out


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions ``(..., 4)`` (w, x, y, z)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def _composition_tensor(axes: AnatomicalAxes) -> np.ndarray:
    """``(15, 8, 4)``: the quaternion of ``R_abd R_flex R_twist`` of each joint is trilinear in
    (cos, sin) of the three half-angles; row ``m`` of joint ``j`` is the coefficient of the
    monomial ``m`` = (i, k, l) in {cos, sin}^3 (i for abd, k for flex, l for twist)."""
    ax = axes.axes.reshape(15, 3, 3)  # (joint, which, xyz)
    out = np.empty((15, 8, 4))
    for m in range(8):
        sel = ((m >> 2) & 1, (m >> 1) & 1, m & 1)
        q = np.zeros((15, 4))
        q[:, 0] = 1.0
        for which, use_sin in zip((ABD, FLEX, TWIST), sel):
            f = np.zeros((15, 4))
            if use_sin:
                f[:, 1:] = ax[:, which]
            else:
                f[:, 0] = 1.0
            q = _qmul(q, f)
        out[:, m] = q
    return out


# MANO hand-pose slot (0..14) of each (finger, level) of the anatomical layout.
_MANO_SLOT = np.array([[j - 1 for j in MANO_FINGER_CHAINS[f]] for f in PRIOR_FINGERS]).reshape(-1)


def anatomical_to_pose(params: np.ndarray, axes: AnatomicalAxes) -> np.ndarray:
    """Anatomical ``(n, 5, 3, 3)`` -> hand pose ``(n, 45)`` axis-angle, flat-hand relative.

    Each joint's local rotation is ``R = R_abd @ R_flex @ R_twist`` (twist about the bone,
    then flexion, then abduction in the parent's frame - the swing of a finger). The result is
    laid out in MANO's joint order (index, middle, little, ring, thumb; 3 joints each).
    Vectorised: the composed quaternion is a fixed trilinear form of the half-angles' cosines
    and sines (:func:`_composition_tensor`).
    """
    p = np.asarray(params, np.float64)
    if p.ndim != 4 or p.shape[1:] != (5, 3, 3):
        raise ValueError(f"anatomical parameters must be (n, 5, 3, 3), got {p.shape}")
    comp = _composition_tensor(axes)
    out = np.empty((p.shape[0], 15, 3))
    chunk = 1 << 15
    for lo in range(0, len(p), chunk):
        h = 0.5 * p[lo : lo + chunk].reshape(-1, 15, 3).transpose(1, 2, 0)  # (15, 3, n)
        c, s = np.cos(h), np.sin(h)
        af = np.stack([c[:, ABD] * c[:, FLEX], c[:, ABD] * s[:, FLEX],
                       s[:, ABD] * c[:, FLEX], s[:, ABD] * s[:, FLEX]], axis=1)  # fmt: skip
        mono = np.stack([af * c[:, None, TWIST], af * s[:, None, TWIST]], axis=2)  # (15,4,2,n)
        q = np.einsum("jmk,jmn->njk", comp, mono.reshape(15, 8, -1))  # (n, 15, 4)
        q *= np.where(q[..., :1] < 0, -1.0, 1.0)
        vn = np.linalg.norm(q[..., 1:], axis=-1)
        angle = 2.0 * np.arctan2(vn, q[..., 0])
        scale = np.where(vn > 1e-12, angle / np.maximum(vn, 1e-12), 2.0)
        out[lo : lo + chunk][:, _MANO_SLOT] = q[..., 1:] * scale[..., None]
    return out.reshape(-1, NUM_POSE)


def sample_prior_poses(
    asset,
    n: int,
    seed: int = 0,
    start: int = 0,
    mode_weights: dict[str, float] | None = None,
) -> np.ndarray:
    """``(n, 45)`` float64 hand poses (axis-angle, relative to the flat hand) from the prior.

    Args:
        asset: a :class:`~seqhand.hand.asset.HandAsset` (its rest joints give the axes).
        n, seed, start, mode_weights: see :func:`sample_anatomical`.
    """
    axes = anatomical_axes(rest_joints(asset), asset.side)
    return anatomical_to_pose(sample_anatomical(n, seed, start, mode_weights), axes)


def prior_pose_pca(asset, n: int = 65536, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA of the prior's poses: ``(components (45, 45), mean (45,))``.

    Components are orthonormal rows sorted by decreasing variance (sign fixed so each row's
    largest-magnitude entry is positive); ``mean`` is the mean pose relative to the flat hand.
    This is the built-in hand's ``hands_components`` / ``hands_mean``.
    """
    poses = sample_prior_poses(asset, n, seed)
    mean = poses.mean(0)
    _, _, vt = np.linalg.svd(poses - mean, full_matrices=False)
    sign = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])
    return vt * sign[:, None], mean


# --------------------------------------------------------------------------------------------
# Joints through the hand layer
# --------------------------------------------------------------------------------------------
def joints_only_asset(asset):
    """An asset with only the vertices the 21 joints need: exactly the same joints, far faster.

    Vertices = the 16 regressed rest joints (identity regressor, no pose correctives) followed
    by the 5 fingertip vertices (their real skinning weights, pose correctives and shape
    directions). The layer's joints are linear in the template through ``J_regressor`` and the
    tips only read their own vertices, so ``HandLayer(joints_only_asset(a))`` returns the same
    joints as ``HandLayer(a)`` for any pose and shape.
    """
    jreg = np.asarray(asset.J_regressor, np.float64)
    tips = np.asarray(asset.tip_vertex_ids)
    v = np.concatenate([jreg @ asset.v_template, asset.v_template[tips]])
    sd = np.concatenate([np.einsum("jv,vcs->jcs", jreg, asset.shapedirs), asset.shapedirs[tips]])
    pd = np.concatenate([np.zeros((16, 3, asset.posedirs.shape[2])), asset.posedirs[tips]])
    w = np.concatenate([np.eye(16), asset.weights[tips]])
    return asset.replace(
        v_template=v,
        f=np.array([[0, 1, 2]]),
        shapedirs=sd,
        posedirs=pd,
        J_regressor=np.concatenate([np.eye(16), np.zeros((16, 5))], axis=1),
        weights=w,
        tip_vertex_ids=np.arange(16, 21),
        name=f"{asset.name}-joints",
    )


def prior_joints(layer, poses: np.ndarray, batch: int = 65536, betas=None) -> np.ndarray:
    """Joints of hand poses through a hand layer: ``(n, 45)`` -> ``(n, 21, 3)`` float32 metres.

    Args:
        layer: a :class:`~seqhand.hand.layer.HandLayer` (pass one built on
            :func:`joints_only_asset` for speed); its ``pose_origin`` must be ``"flat"``.
        poses: ``(n, 45)`` axis-angle relative to the flat hand.
        batch: poses per forward pass.
        betas: optional ``(S,)`` or ``(n, S)`` shape (default: the mean shape).
    Global orientation is zero: the joints are in the hand model's frame, root at the wrist's
    rest position (not moved to the origin).
    """
    if layer.pose_origin != "flat":
        raise ValueError("prior poses are relative to the flat hand: use pose_origin='flat'")
    poses = np.asarray(poses)
    if poses.ndim != 2 or poses.shape[1] != NUM_POSE:
        raise ValueError(f"poses must be (n, {NUM_POSE}), got {poses.shape}")
    dt = layer.v_template.dtype
    out = np.empty((len(poses), 21, 3), np.float32)
    b_all = None if betas is None else np.asarray(betas, np.float64)
    with torch.no_grad():
        for lo in range(0, len(poses), batch):
            hp = torch.as_tensor(poses[lo : lo + batch], dtype=dt)
            b = None
            if b_all is not None:
                bb = b_all if b_all.ndim == 2 else np.broadcast_to(b_all, (len(hp), len(b_all)))
                b = torch.as_tensor(bb[lo : lo + len(hp)] if b_all.ndim == 2 else bb, dtype=dt)
            out[lo : lo + len(hp)] = layer(hand_pose=hp, betas=b).joints.numpy()
    return out
