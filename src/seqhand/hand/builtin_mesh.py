"""The built-in hand's anatomy and its procedural mesh (see :mod:`seqhand.hand.builtin`).

:func:`generate` builds the surface, skinning weights and skeleton for a shape ``beta`` (10,):
dimensions in centimetres below (an adult hand, wrist to middle fingertip ~18.6 cm), scaled to
metres at the end. The topology never depends on ``beta``; :mod:`seqhand.hand.builtin` turns
the mean shape and the derivatives with respect to ``beta`` into the asset.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from seqhand.conventions import MANO_NUM_JOINTS, NUM_BETAS
from seqhand.hand.sweep import (
    MeshBuilder,
    chain_weights,
    one_hot,
    perp,
    section,
    smoothstep,
    superellipse,
    unit,
)

CM = 0.01  # the generator works in centimetres; the asset is in metres

BETA_NAMES: tuple[str, ...] = (
    "size",  # overall scale of the whole hand
    "palm_width",  # breadth of the palm and spacing of the fingers
    "palm_length",  # wrist-to-knuckle length (also moves the thumb base)
    "finger_length",  # length of the four fingers' phalanges
    "finger_thickness",  # width and depth of the four fingers
    "thumb_length",  # length of the thumb's metacarpal and phalanges
    "palm_thickness",  # dorsal-palmar depth of the palm and wrist
    "index_ring_ratio",  # index longer / ring shorter (the 2D:4D ratio)
    "pinky_length",  # length of the little finger
    "thumb_thickness",  # girth of the thumb and thenar
)
# Relative change per unit beta of the quantity each shape direction scales.
BETA_GAINS = np.array([0.045, 0.04, 0.045, 0.05, 0.07, 0.05, 0.07, 0.035, 0.06, 0.08])

FINGER_ORDER = ("index", "middle", "ring", "pinky")  # radial -> ulnar, as laid out on the palm
CHAINS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12)}
THUMB_CHAIN = (13, 14, 15)
_TIP_FINGERS = ("thumb", "index", "middle", "ring", "pinky")

# Four fingers, centimetres: MCP joint (x, distance from the wrist along -y, z), divergence from
# -y toward +x (deg), joint-to-joint lengths (MCP-PIP, PIP-DIP, DIP-tip), girth factor, and the
# distance from the MCP to the finger's base ring (the web level).
_FINGER_SPEC = {
    "index": dict(x=2.85, d=8.50, z=0.20, angle=3.0, lengths=(4.20, 2.50, 2.15), q=1.06, web=1.50),
    "middle": dict(x=0.85, d=8.80, z=0.35, angle=0.0, lengths=(4.60, 2.80, 2.35), q=1.09, web=1.60),
    "ring": dict(x=-1.15, d=8.30, z=0.30, angle=-3.5, lengths=(4.30, 2.70, 2.25), q=1.02, web=1.55),
    "pinky": dict(x=-3.00, d=7.50, z=0.10, angle=-8.0, lengths=(3.40, 2.00, 2.00), q=0.90,
                  web=1.35),
}  # fmt: skip
# Finger ring stations: (half-width, half-depth, palmar pad) relative to the girth.
_FINGER_PROFILE = {
    "base": (1.00, 0.93, 0.10),
    "prox": (0.95, 0.87, 0.14),
    "pip-": (0.93, 0.84, 0.06),
    "pip": (0.97, 0.85, 0.02),
    "pip+": (0.92, 0.80, 0.06),
    "mid": (0.86, 0.75, 0.12),
    "dip-": (0.84, 0.72, 0.05),
    "dip": (0.86, 0.72, 0.02),
    "dip+": (0.83, 0.70, 0.08),
    "dist": (0.82, 0.68, 0.16),
    "end": (0.78, 0.63, 0.14),
}
_FINGER_STATIONS = tuple(_FINGER_PROFILE)
# Ring angles (deg) of the 12-vertex finger rings: 0 = radial side, 90 = dorsal, 180 = ulnar,
# 270 = palmar. Denser near the middle so that the palm's columns are evenly spread.
_HALF = np.array([0.0, 39.0, 65.0, 90.0, 115.0, 141.0])
_FINGER_THETA = np.deg2rad(np.concatenate([_HALF, 180.0 + _HALF]))
_NF = len(_FINGER_THETA)  # 12

# Thumb (cm): CMC joint, bone directions, lengths (CMC-MCP, MCP-IP, IP-tip), ring stations.
_THUMB_CMC = np.array([2.35, -2.30, -0.75])
_THUMB_DIRS = np.array([[0.60, -0.70, -0.40], [0.52, -0.83, -0.10], [0.43, -0.90, -0.02]])
_THUMB_LENGTHS = (4.6, 3.3, 2.9)
_THUMB_PROFILE = {
    "mcp-": (1.12, 1.00, 0.04),
    "mcp": (1.15, 1.00, 0.02),
    "mcp+": (1.08, 0.95, 0.06),
    "prox": (1.05, 0.90, 0.10),
    "ip-": (1.03, 0.86, 0.05),
    "ip": (1.06, 0.86, 0.02),
    "ip+": (1.02, 0.84, 0.08),
    "dist": (1.00, 0.82, 0.14),
    "end": (0.95, 0.74, 0.12),
}
# Thenar rings between the palm's hole and the thumb's MCP: (fraction of the way along the
# metacarpal, shrink of the hole toward its centre, lift off the palm (cm), ellipse half-width,
# half-depth, blend from the mound to the ellipse, least skinning weight of the CMC joint).
_THENAR = ((0.30, 0.25, 0.45, 1.85, 1.45, 0.20, 0.5), (0.65, 0.55, 0.90, 1.45, 1.20, 0.60, 0.9))
_THENAR_REACH = (1.0, 3.0)  # CMC weight 1 within 1 cm of the thumb metacarpal, 0 beyond 3 cm
# The thumb pad faces palm + 0.6 * ulnar (the bend direction of seqhand.hand.prior's thumb axes).
THUMB_PAD_ULNAR = 0.6

# Palm rings 0..7 (ring 8 is the fingers' base loop). Rings 0..6 sit at _PALM_AT x the MCP's
# distance from the wrist (per column, so ring 6 is the knuckle ring), ring 7 half-way between
# the knuckles and the webs. Superellipse half-width, half-depth, exponent, centre x (cm) and the
# nominal fraction of the palm's length (for the bumps) of each ring.
_PALM_AT = np.array([0.0, 0.19, 0.38, 0.57, 0.75, 0.89, 1.0])
_PALM_A = np.array([2.85, 3.25, 3.60, 3.85, 3.95, 4.00, 4.00, 4.00])
_PALM_B = np.array([1.85, 1.75, 1.60, 1.48, 1.42, 1.38, 1.32, 1.25])
_PALM_P = np.array([2.2, 2.4, 2.6, 2.8, 2.9, 3.0, 3.0, 3.0])
_PALM_CX = np.array([0.0, 0.05, 0.05, 0.05, 0.0, 0.0, 0.0, 0.0])
_PALM_F = np.array([0.0, 0.16, 0.32, 0.48, 0.64, 0.76, 0.85, 0.925])
_PALM_MIX = np.array([0.0, 0.0, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0])  # arc-length -> x-aligned columns
_RING7_BLEND = (0.60, 0.45)  # (dorsal, palmar) blend of ring 7 toward the base loop
_NC = 48  # palm columns: 4 fingers x 10 arc vertices + 3 webs x 2 + 2 sides
_WEB_COLUMNS = {6: 0, 42: 0, 12: 1, 36: 1, 18: 2, 30: 2}  # loop position -> web index
_HOLE_RINGS = (1, 4)  # the thumb hole spans palm rings 1..4 ...
_HOLE_COLS = (42, 1)  # ... and columns 42..47, 0, 1 (wrapping)
_NT = 20  # vertices per thumb ring (= length of the hole's boundary)
_BLEND_MCP = 0.70  # half-width (cm) of the skinning blend zone at the MCP joints
_BLEND_FINGER = 0.45  # ... at the finger PIP/DIP and thumb MCP/IP joints, times the girth


def _factors(beta: np.ndarray) -> dict[str, float]:
    """Scale factors of the anatomy for shape ``beta`` (10,): S size, PW/PL/PT palm width,
    length, thickness, FL/FT finger length, thickness, TL/TT thumb length, thickness, and a
    length factor per finger (index/ring ratio, pinky)."""
    g = 1.0 + BETA_GAINS * np.asarray(beta, dtype=np.float64)
    ir = g[7] - 1.0
    return dict(S=g[0], PW=g[1], PL=g[2], FL=g[3], FT=g[4], TL=g[5], PT=g[6],
                index=1.0 + ir, middle=1.0, ring=1.0 - ir, pinky=g[8], TT=g[9])  # fmt: skip


@dataclasses.dataclass
class _Finger:
    name: str
    chain: tuple[int, int, int]
    mcp: np.ndarray  # (3,) cm
    u: np.ndarray  # bone direction
    e: np.ndarray  # radial side (= flexion axis)
    n: np.ndarray  # dorsal side
    knots: np.ndarray  # joint positions along u: MCP, PIP, DIP
    halfwidths: tuple[float, float, float]  # skinning blend zones at MCP, PIP, DIP
    s: dict[str, float]  # ring stations along u
    rings: dict[str, np.ndarray]  # (12, 3) ring points per station
    r_cap: float
    tip: np.ndarray

    def weights_at(self, p: np.ndarray) -> np.ndarray:
        return chain_weights(float((p - self.mcp) @ self.u), self.chain, self.knots,
                              self.halfwidths)  # fmt: skip


def _fingers(fa: dict[str, float]) -> dict[str, _Finger]:
    """Skeleton and cross-section rings of the four fingers (cm, before the overall size)."""
    out = {}
    for name in FINGER_ORDER:
        sp = _FINGER_SPEC[name]
        lf = fa["FL"] * fa[name]
        q = sp["q"] * fa["FT"]
        mcp = np.array([sp["x"] * fa["PW"], -sp["d"] * fa["PL"], sp["z"] * fa["PT"]])
        ang = np.deg2rad(sp["angle"])
        u = np.array([np.sin(ang), -np.cos(ang), 0.0])
        n = np.array([0.0, 0.0, 1.0])
        e = np.cross(n, u)
        lens = np.array(sp["lengths"]) * lf
        knots = np.array([0.0, lens[0], lens[0] + lens[1]])
        hw = _BLEND_FINGER * q
        r_cap = 0.8 * _FINGER_PROFILE["end"][1] * q
        s_end = lens.sum() - r_cap
        s = {"base": sp["web"] * lf, "pip-": knots[1] - hw, "pip": knots[1],
             "pip+": knots[1] + hw, "mid": knots[1] + 0.5 * lens[1], "dip-": knots[2] - 0.85 * hw,
             "dip": knots[2], "dip+": knots[2] + 0.85 * hw, "end": s_end}  # fmt: skip
        s["prox"] = 0.5 * (s["base"] + s["pip-"])
        s["dist"] = 0.5 * (s["dip+"] + s_end)
        rings = {}
        for key in _FINGER_STATIONS:
            a, b, pad = _FINGER_PROFILE[key]
            sec = section(_FINGER_THETA, a * q, b * q, pad, 2.6 if key in ("dist", "end") else 2.3)
            rings[key] = mcp + s[key] * u + sec[:, :1] * e + sec[:, 1:] * n
        out[name] = _Finger(
            name=name, chain=CHAINS[name], mcp=mcp, u=u, e=e, n=n, knots=knots,
            halfwidths=(_BLEND_MCP * fa["PL"], hw, 0.85 * hw), s=s, rings=rings, r_cap=r_cap,
            tip=mcp + lens.sum() * u,
        )  # fmt: skip
    return out


def _base_loop(fingers: dict[str, _Finger]) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    """The palm's distal loop of 48 positions: the four base rings, neighbouring sides merged.

    Order: dorsal radial -> ulnar (index side, index arc, web, middle arc, ..., pinky side), then
    palmar ulnar -> radial. Returns the points ``(48, 3)``, each position's owning fingers
    (indices into :data:`FINGER_ORDER`; two for a web) and the three web points ``(3, 3)``.
    """
    base = [fingers[name].rings["base"] for name in FINGER_ORDER]
    webs = np.array([0.5 * (base[k][6] + base[k + 1][0]) for k in range(3)])
    pts, owners = [base[0][0]], [(0,)]
    for k in range(4):
        pts += list(base[k][1:6])
        owners += [(k,)] * 5
        if k < 3:
            pts.append(webs[k])
            owners.append((k, k + 1))
    pts.append(base[3][6])
    owners.append((3,))
    for k in range(3, -1, -1):
        pts += list(base[k][7:12])
        owners += [(k,)] * 5
        if k > 0:
            pts.append(webs[k - 1])
            owners.append((k - 1, k))
    return np.array(pts), owners, webs


@functools.lru_cache(maxsize=1)
def _column_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed per-column data of the palm (from the mean shape, so that shapes stay linear).

    Returns, per column of the 48-column palm (0..24 over the back radial -> ulnar, 24..47 over
    the palm side ulnar -> radial): its lateral position (the base loop's x normalised to
    [-1, 1], + radial), its position by arc length along the base loop (in [0, 2)), and its
    knuckle-bump factor (1 over a finger's middle, 0 at the webs and sides).
    """
    loop, owners, _ = _base_loop(_fingers(_factors(np.zeros(NUM_BETAS))))
    xi = loop[:, 0] / np.abs(loop[:, 0]).max()
    xz = loop[:, [0, 2]]
    seg = np.linalg.norm(np.roll(xz, -1, axis=0) - xz, axis=1)
    dors = np.concatenate([[0.0], np.cumsum(seg[:24])])
    palm = np.concatenate([[0.0], np.cumsum(seg[24:])])
    sig = np.concatenate([dors / dors[-1], 1.0 + palm[1:-1] / palm[-1]])
    arc = np.tile(np.cos(_FINGER_THETA[1:6]), 8)  # lateral position within each finger's arc
    knuckle = np.zeros(_NC)
    cols = [c for c in range(_NC) if len(owners[c]) == 1 and c not in (0, 24)]
    knuckle[cols] = 1.0 - arc**2
    return xi, sig, knuckle


@functools.lru_cache(maxsize=16)
def _arc_table(p: float) -> tuple[np.ndarray, np.ndarray]:
    """Angles over the unit superellipse's upper half and their normalised arc length."""
    phi = np.linspace(0.0, np.pi, 2001)
    xs, zs = superellipse(phi, p)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(zs)))])
    return phi, cum / cum[-1]


def _palmsection(xi: np.ndarray, sig: np.ndarray, p: float, mix: float):
    """Unit superellipse points ``(x, z)`` of the palm's columns: ``mix`` = 0 spaces them by arc
    length (smooth, proximal palm), 1 puts each above / below its finger's base (knuckles)."""
    z = (1.0 - np.abs(xi) ** p) ** (1.0 / p)
    z = np.where(np.arange(_NC) > 24, -z, z)
    z[[0, 24]] = 0.0
    phi, cum = _arc_table(float(p))
    ph = np.interp(np.where(sig <= 1.0, sig, sig - 1.0), cum, phi)
    xa, za = superellipse(np.where(sig <= 1.0, ph, ph + np.pi), p)
    return (1 - mix) * xa + mix * xi, (1 - mix) * za + mix * z


def _palm_rings(fa, fingers, loop, owners) -> np.ndarray:
    """Palm rings ``(9, 48, 3)`` cm: superellipse rings 0..6 up to the knuckles, ring 7 blended
    toward the base loop, ring 8 = the base loop."""
    xi, sig, knuckle = _column_table()
    d_mcp = np.array([np.mean([-fingers[FINGER_ORDER[k]].mcp[1] for k in o]) for o in owners])
    d_base = -loop[:, 1]
    rings = np.zeros((9, _NC, 3))
    for k in range(8):
        f = _PALM_F[k]
        x2, z2 = _palmsection(xi, sig, _PALM_P[k], _PALM_MIX[k])
        x = (_PALM_CX[k] + _PALM_A[k] * x2) * fa["PW"]
        palmar = np.arange(_NC) > 24
        bump = np.where(
            palmar,
            -0.35 * np.exp(-(((x2 + 0.62) / 0.30) ** 2) - ((f - 0.40) / 0.25) ** 2)  # hypothenar
            + 0.22 * np.exp(-(((x2 - 0.10) / 0.35) ** 2) - ((f - 0.55) / 0.18) ** 2)  # hollow
            - 0.15 * np.exp(-(((f - 0.85) / 0.07) ** 2)),  # distal palmar pads
            0.18 * knuckle * np.exp(-(((f - 0.86) / 0.06) ** 2)),  # knuckles
        )
        z = (_PALM_B[k] * z2 + bump) * fa["PT"]
        if k < 7:
            d = _PALM_AT[k] * d_mcp
        else:
            d = 0.5 * (d_mcp + d_base)
            lam = np.where(palmar, _RING7_BLEND[1], _RING7_BLEND[0])
            x = (1 - lam) * x + lam * loop[:, 0]
            z = (1 - lam) * z + lam * loop[:, 2]
        rings[k] = np.stack([x, -d, z], axis=-1)
    rings[8] = loop
    return rings


@dataclasses.dataclass
class Generated:
    verts: np.ndarray  # (V, 3) metres
    faces: np.ndarray  # (F, 3)
    weights: np.ndarray  # (V, 16)
    joints: np.ndarray  # (16, 3) metres, the skeleton the mesh was built around
    tips: np.ndarray  # (5,) apex vertex ids, thumb..pinky
    joint_sets: dict[int, np.ndarray]  # vertex ids each joint is regressed from


def generate(beta: np.ndarray) -> Generated:
    """Build the mesh for shape ``beta`` (10,). The topology never depends on ``beta``."""
    fa = _factors(beta)
    mb = MeshBuilder()
    joints = np.zeros((MANO_NUM_JOINTS, 3))
    sets: dict[int, np.ndarray] = {}
    tips: dict[str, int] = {}
    fingers = _fingers(fa)
    flist = [fingers[name] for name in FINGER_ORDER]
    for f in flist:
        joints[list(f.chain)] = f.mcp + f.knots[:, None] * f.u

    # ---- thumb skeleton (its CMC weights reach into the palm's thenar) -------------------
    tt = fa["TT"]
    cmc = _THUMB_CMC * np.array([fa["PW"], fa["PL"], fa["PT"]])
    dirs = unit(_THUMB_DIRS)
    tlen = np.array(_THUMB_LENGTHS) * fa["TL"]
    knots = np.array([0.0, tlen[0], tlen[0] + tlen[1]])
    joints[list(THUMB_CHAIN)] = [cmc, cmc + tlen[0] * dirs[0], cmc + tlen[0] * dirs[0]
                                  + tlen[1] * dirs[1]]  # fmt: skip
    tj = joints[list(THUMB_CHAIN)]
    pad_dir = np.array([-THUMB_PAD_ULNAR, 0.0, -1.0])  # palm (-z) + 0.6 * ulnar (-x)
    frames = []  # per bone: (radial-side e, nail n, bone u), e = n x u like the fingers
    for u in dirs:
        n = -perp(pad_dir, u)
        frames.append((np.cross(n, u), n, u))

    def thenar_weight(p: np.ndarray) -> float:
        """CMC weight: 1 near the thumb's metacarpal, fading to 0 at _THENAR_REACH from it."""
        t = np.clip((p - tj[0]) @ dirs[0] / tlen[0], 0.0, 1.0)
        dist = np.linalg.norm(p - tj[0] - t * tlen[0] * dirs[0])
        r0, r1 = _THENAR_REACH
        return float(1.0 - smoothstep((dist / fa["TT"] - r0) / (r1 - r0)))

    def palm_weights(p: np.ndarray, owner: tuple[int, ...]) -> np.ndarray:
        w = np.mean([flist[k].weights_at(p) for k in owner], axis=0)
        t = thenar_weight(p)
        w = (1.0 - t) * w
        w[THUMB_CHAIN[0]] += t
        return w

    # ---- palm: tube from the wrist ring to the base loop, with a hole for the thumb ----------
    loop, owners, webs = _base_loop(fingers)
    palm = _palm_rings(fa, fingers, loop, owners)
    web_ids = [int(mb.add(webs[k], palm_weights(webs[k], (k, k + 1)))[0]) for k in range(3)]
    (k0, k1), (c0, c1) = _HOLE_RINGS, _HOLE_COLS
    hole_cols = [(c0 + i) % _NC for i in range((c1 - c0) % _NC + 1)]
    inside = {(k, c) for k in range(k0 + 1, k1) for c in hole_cols[1:-1]}
    ids = np.full((9, _NC), -1, dtype=np.int64)
    for k in range(9):
        for c in range(_NC):
            if k == 8 and c in _WEB_COLUMNS:
                ids[k, c] = web_ids[_WEB_COLUMNS[c]]
            elif (k, c) not in inside:
                ids[k, c] = mb.add(palm[k, c], palm_weights(palm[k, c], owners[c]))[0]
    hole_quads = {(k, c) for k in range(k0, k1) for c in hole_cols[:-1]}
    for k in range(8):
        for c in range(_NC):
            if (k, c) not in hole_quads:
                c2 = (c + 1) % _NC
                mb.quad(ids[k, c], ids[k, c2], ids[k + 1, c2], ids[k + 1, c])
    # The hole's boundary: the palm's edges run c+1 -> c along it, the thumb's strip c -> c+1.
    hole = [ids[k0, c] for c in hole_cols]
    hole += [ids[k, hole_cols[-1]] for k in range(k0 + 1, k1 + 1)]
    hole += [ids[k1, c] for c in reversed(hole_cols[:-1])]
    hole += [ids[k, hole_cols[0]] for k in range(k1 - 1, k0, -1)]
    hole = np.array(hole)
    sets[0] = ids[0]
    # CMC (deep in the thenar): the palm rings around it, favouring the vertices near it.
    sets[THUMB_CHAIN[0]] = np.array([i for i in ids[1:4].reshape(-1) if i >= 0])

    # ---- wrist cap -----------------------------------------------------------------------
    centre = palm[0].mean(0)
    inner = centre + 0.55 * (palm[0] - centre) + np.array([0.0, 0.35 * fa["PL"], 0.0])
    inner_ids = mb.add(inner, one_hot(0))
    mid = int(mb.add(centre + np.array([0.0, 0.45 * fa["PL"], 0.0]), one_hot(0))[0])
    mb.strip(inner_ids, ids[0])
    mb.fan(inner_ids, mid, at_end=False)

    # ---- fingers: tubes from the base ring to the tip cap --------------------------------
    for k, f in enumerate(flist):
        base = np.empty(_NF, dtype=np.int64)
        base[0] = ids[8, 6 * k]
        base[1:7] = ids[8, 1 + 6 * k : 7 + 6 * k]
        base[7:12] = ids[8, 43 - 6 * k : 48 - 6 * k]
        rings = [base]
        for key in _FINGER_STATIONS[1:]:
            rings.append(mb.add(f.rings[key], f.weights_at(f.mcp + f.s[key] * f.u)))
            mb.strip(rings[-2], rings[-1])
            if key in ("pip", "dip"):
                sets[f.chain[1 if key == "pip" else 2]] = rings[-1]
        centre = f.mcp + f.s["end"] * f.u
        _, tips[f.name] = mb.cap(rings[-1], centre, f.u, f.r_cap, one_hot(f.chain[2]))
        # MCP: the knuckle ring and the ring before it (the regressor favours near columns).
        sets[f.chain[0]] = np.concatenate([ids[5], ids[6]])

    # ---- thumb: from the palm's hole through the thenar to the tip -----------------------
    hw = _BLEND_FINGER * tt
    r_cap = 0.8 * _THUMB_PROFILE["end"][1] * tt
    s_end = tlen.sum() - r_cap
    st = {"mcp-": knots[1] - hw, "mcp": knots[1], "mcp+": knots[1] + hw,
          "prox": knots[1] + 0.5 * tlen[1], "ip-": knots[2] - hw, "ip": knots[2],
          "ip+": knots[2] + hw, "end": s_end}  # fmt: skip
    st["dist"] = 0.5 * (st["ip+"] + s_end)

    def thumb_frame(s: float):
        """Centre and frame of the thumb ring at ``s`` (at a joint: the bisecting frame)."""
        for j in (1, 2):
            if abs(s - knots[j]) < 1e-9:
                (_, n0, u0), (_, n1, u1) = frames[j - 1], frames[j]
                u = unit(u0 + u1)
                n = perp(n0 + n1, u)
                return tj[j], (np.cross(n, u), n, u)
        seg = 0 if s < knots[1] else (1 if s < knots[2] else 2)
        return tj[seg] + (s - knots[seg]) * dirs[seg], frames[seg]

    hole_pts = mb.points(hole)
    e0, n0, u0 = frames[0]
    s_h = float((hole_pts.mean(0) - cmc) @ u0)
    rel = hole_pts - (cmc + s_h * u0)
    # Angles of the hole's vertices about the thumb axis: arc length along the loop (monotone
    # by construction), rotated to best match their actual directions from the axis.
    raw = np.arctan2(rel @ n0, rel @ e0)
    if np.sum(np.sin(np.diff(np.concatenate([raw, raw[:1]])))) <= 0:  # pragma: no cover
        raise AssertionError("thumb hole loop runs the wrong way around the thumb axis")
    seg = np.linalg.norm(np.roll(hole_pts, -1, axis=0) - hole_pts, axis=1)
    cum = 2 * np.pi * np.concatenate([[0.0], np.cumsum(seg[:-1])]) / seg.sum()
    th_hole = cum + np.angle(np.mean(np.exp(1j * (raw - cum))))
    th_uniform = th_hole[0] + 2 * np.pi * np.arange(_NT) / _NT
    # The thenar rises from the hole as a mound: each ring shrinks the hole toward its centre,
    # lifts it along the hole's outward normal (its vector area) and blends it into an ellipse
    # about the thumb's metacarpal.
    normal = unit(0.5 * np.sum(np.cross(hole_pts, np.roll(hole_pts, -1, axis=0)), axis=0))
    centre = hole_pts.mean(0)
    rings = [hole]
    for frac, shrink, lift, a, b, lam, w1 in _THENAR:
        s = s_h + frac * (st["mcp-"] - s_h)
        sec = section((1 - lam) * th_hole + lam * th_uniform, a * tt, b * tt, 0.08)
        ell = cmc + s * u0 + sec[:, :1] * e0 + sec[:, 1:] * n0
        mound = hole_pts + shrink * (centre - hole_pts) + lift * tt * normal
        pts = (1 - lam) * mound + lam * ell
        rings.append(mb.add(pts, [one_hot(THUMB_CHAIN[0], max(w1, thenar_weight(p))) for p in pts]))
        mb.strip(rings[-2], rings[-1])
    halfwidths = (1e-6, hw, hw)
    for key in _THUMB_PROFILE:
        a, b, pad = _THUMB_PROFILE[key]
        c, (e, n, u) = thumb_frame(st[key])
        sec = section(th_uniform, a * tt, b * tt, pad, 2.6 if key in ("dist", "end") else 2.3)
        w = chain_weights(st[key], THUMB_CHAIN, knots, halfwidths)
        rings.append(mb.add(c + sec[:, :1] * e + sec[:, 1:] * n, w))
        mb.strip(rings[-2], rings[-1])
        if key in ("mcp", "ip"):
            sets[THUMB_CHAIN[1 if key == "mcp" else 2]] = rings[-1]
    c, (e, n, u) = thumb_frame(s_end)
    _, tips["thumb"] = mb.cap(rings[-1], c, u, r_cap, one_hot(THUMB_CHAIN[2]))

    scale = CM * fa["S"]
    return Generated(
        verts=np.concatenate(mb.verts) * scale,
        faces=np.array(mb.faces, dtype=np.int64),
        weights=np.concatenate(mb.weights),
        joints=joints * scale,
        tips=np.array([tips[f] for f in _TIP_FINGERS], dtype=np.int64),
        joint_sets=sets,
    )
