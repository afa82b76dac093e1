"""The built-in procedural hand model: MANO's fields, generated in code (no download, no licence).

This is the default hand model whenever no MANO file is given. It is stored in exactly the asset
format of a converted MANO file (:class:`~seqhand.hand.asset.HandAsset`), so one loader and one
layer (:class:`~seqhand.hand.layer.HandLayer`) serve both. See ``docs/hand_model.md``. The
anatomy and the mesh generator live in :mod:`seqhand.hand.builtin_mesh`; this module turns them
into the asset.

Frame (rest pose = the flat hand, metres, right hand):

* the wrist joint is at the origin (for every shape ``beta``);
* the middle finger points along **-y** (an identity weak-perspective camera, image y down, shows
  the fingers pointing up);
* the palm faces **-z** (toward a camera looking along +z); the back of the hand is +z;
* the thumb is toward **+x**.

In this frame flexion of the four fingers (curling toward the palm) is a **positive rotation
about +x** (checked in ``tests/test_builtin_hand.py``).

Construction: elliptical / superelliptical cross-section rings are swept along the palm and along
each finger's bone chain. The palm is a tube from the wrist (capped) to a distal loop made of the
four fingers' base rings, whose neighbouring side vertices are merged into web vertices; the thumb
tube is stitched into a hole in the palm's radial-palmar side (thenar and thumb web). Fingertips
are ellipsoidal caps ending in one apex vertex (the ``tip_vertex_ids``). The surface is a closed,
consistently oriented 2-manifold (genus 0).

* ``J_regressor``: each joint is a weighted mean of the vertices of the cross-section ring at
  that joint (the MCPs: the knuckle ring and the palm ring before it; the thumb's CMC, deep in
  the thenar: the palm rings around it), weights solved so that it equals the skeleton joint for
  the mean shape and follows it exactly under every shape direction (the rings' shape changes
  are linear in the skeleton's), with small, near-convex weights.
* ``weights``: each vertex follows the bone of the segment it lies on and blends smoothly
  (smoothstep) into the neighbouring bone over a short zone centred on each joint.
* ``posedirs``: zeros (no pose-corrective blend shapes).
* ``shapedirs``: 10 named, linear shape directions (:data:`BETA_NAMES`), the derivative of the
  generator with respect to ``beta`` at the mean shape.
* ``hands_components`` / ``hands_mean``: the PCA of the built-in pose prior
  (:func:`seqhand.hand.prior.prior_pose_pca`) when that module is present; otherwise a
  hand-crafted synergy basis (:func:`synergy_pca`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from seqhand.conventions import MANO_NUM_JOINTS, MANO_PARENTS, NUM_BETAS, NUM_POSE
from seqhand.errors import SeqhandError
from seqhand.hand.asset import ASSET_FORMAT_VERSION, HandAsset, load_npz_asset
from seqhand.hand.builtin_mesh import (
    BETA_GAINS,
    BETA_NAMES,
    CHAINS,
    CM,
    FINGER_ORDER,
    THUMB_CHAIN,
    THUMB_PAD_ULNAR,
    Generated,
    generate,
)
from seqhand.hand.sweep import perp, unit

__all__ = [
    "BETA_GAINS",
    "BETA_NAMES",
    "CACHE_PATH",
    "FINGER_ORDER",
    "builtin_asset",
    "builtin_geometry",
    "generate_builtin_asset",
    "load_cached_asset",
    "regenerate_cache",
    "skeleton",
    "source_fingerprint",
    "synergy_pca",
    "write_cache",
]


def _regressor(gen0: Generated, vdirs: np.ndarray, jdirs: np.ndarray) -> np.ndarray:
    """``(16, V)`` joint regressor: per joint, weights on the vertices of its ring(s).

    For each joint, the weights ``w`` on its vertex set satisfy ``sum w = 1`` and
    ``sum w_i v_i = joint`` exactly (mean shape) and ``sum w_i dv_i/dbeta = djoint/dbeta`` (least
    squares; exact for every joint of this model), and among those minimise
    ``sum (1 + (|v_i - joint| / 1 cm)^2) w_i^2`` - small weights, favouring near vertices.
    """
    nv = len(gen0.verts)
    reg = np.zeros((MANO_NUM_JOINTS, nv))
    scale = 1.0 / CM  # work in centimetres for conditioning
    for j, ids in gen0.joint_sets.items():
        ids = np.asarray(ids)
        m = len(ids)
        pts = gen0.verts[ids] * scale
        c = np.vstack([pts.T, np.ones((1, m))])  # exact constraints (4, m)
        d = np.concatenate([gen0.joints[j] * scale, [1.0]])
        a = vdirs[ids].transpose(1, 2, 0).reshape(-1, m) * scale  # (3 * S, m)
        b = jdirs[j].reshape(-1) * scale
        cost = 1.0 + np.sum((pts - d[:3]) ** 2, axis=1)
        # KKT system of  min |A w - b|^2 + eps sum cost w^2  s.t.  C w = d
        eps = 1e-6
        h = 2 * (a.T @ a + eps * np.diag(cost))
        kkt = np.block([[h, c.T], [c, np.zeros((4, 4))]])
        sol = np.linalg.lstsq(kkt, np.concatenate([2 * a.T @ b, d]), rcond=None)[0]
        reg[j, ids] = sol[:m]
    return reg


def _shape_derivatives(h: float = 1e-3) -> tuple[Generated, np.ndarray, np.ndarray]:
    """The mean-shape mesh and the derivatives ``(V, 3, 10)``, ``(16, 3, 10)`` w.r.t. beta."""
    gen0 = generate(np.zeros(NUM_BETAS))
    vdirs = np.zeros(gen0.verts.shape + (NUM_BETAS,))
    jdirs = np.zeros(gen0.joints.shape + (NUM_BETAS,))
    for k in range(NUM_BETAS):
        e = np.zeros(NUM_BETAS)
        e[k] = h
        gp, gm = generate(e), generate(-e)
        vdirs[..., k] = (gp.verts - gm.verts) / (2 * h)
        jdirs[..., k] = (gp.joints - gm.joints) / (2 * h)
    return gen0, vdirs, jdirs


def skeleton(beta: np.ndarray | None = None) -> np.ndarray:
    """The skeleton the built-in mesh is built around: ``(16, 3)`` metres, MANO's joint order.

    Linear in ``beta`` (10,) like the mesh: ``joints(0) + d joints / d beta @ beta``; the
    asset's ``J_regressor`` reproduces it from the shaped vertices.
    """
    gen0, _, jdirs = _cached_derivatives()
    b = np.zeros(NUM_BETAS) if beta is None else np.asarray(beta, dtype=np.float64)
    return gen0.joints + jdirs @ b


@functools.lru_cache(maxsize=1)
def _cached_derivatives():
    return _shape_derivatives()


@functools.lru_cache(maxsize=1)
def builtin_geometry() -> HandAsset:
    """The built-in hand's geometry with the stand-in pose PCA (:func:`synergy_pca`).

    Everything but ``hands_components`` / ``hands_mean`` is final; the pose prior computes its
    axes from this asset without importing :func:`builtin_asset` (no circular import).
    """
    gen0, vdirs, jdirs = _cached_derivatives()
    nv = len(gen0.verts)
    kt = np.stack([np.array(MANO_PARENTS), np.arange(MANO_NUM_JOINTS)]).astype(np.int64)
    geom = HandAsset(
        v_template=gen0.verts,
        f=gen0.faces,
        shapedirs=vdirs,
        posedirs=np.zeros((nv, 3, (MANO_NUM_JOINTS - 1) * 9)),
        J_regressor=_regressor(gen0, vdirs, jdirs),
        weights=gen0.weights,
        kintree_table=kt,
        hands_components=np.eye(NUM_POSE),
        hands_mean=np.zeros(NUM_POSE),
        tip_vertex_ids=gen0.tips,
        side="right",
        name="builtin",
    )
    comps, mean = synergy_pca(geom)
    return geom.replace(hands_components=comps, hands_mean=mean).validate("builtin hand")


CACHE_PATH = Path(__file__).resolve().parent.parent / "assets" / "builtin_hand.npz"
"""Where the packaged copy of :func:`builtin_asset` lives (regenerate with
``seqhand hand export --regenerate --out <this path>``)."""


def source_fingerprint() -> str:
    """SHA-256 of the sources the built-in asset is computed from (generator, sweep, prior).

    A cached asset whose stored fingerprint differs is ignored (and regenerated in memory).
    """
    h = hashlib.sha256()
    for mod in (
        "seqhand.hand.builtin",
        "seqhand.hand.builtin_mesh",
        "seqhand.hand.sweep",
        "seqhand.hand.prior",
    ):
        spec = importlib.util.find_spec(mod)
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            h.update(mod.encode() + b"\0" + Path(spec.origin).read_bytes())
    return h.hexdigest()


def generate_builtin_asset() -> HandAsset:
    """Compute the built-in asset from scratch (no cache): geometry + the prior's pose PCA."""
    geom = builtin_geometry()
    if importlib.util.find_spec("seqhand.hand.prior") is None:
        return geom
    from seqhand.hand import prior

    if not hasattr(prior, "prior_pose_pca"):
        return geom
    comps, mean = prior.prior_pose_pca(geom)
    return geom.replace(
        hands_components=np.asarray(comps, dtype=np.float64),
        hands_mean=np.asarray(mean, dtype=np.float64),
    ).validate("builtin hand")


def load_cached_asset(path: str | os.PathLike = CACHE_PATH) -> HandAsset | None:
    """The cached built-in asset at ``path`` if it exists and matches the current sources."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if "builtin_fingerprint" not in z.files:
            return None
        if str(z["builtin_fingerprint"]) != source_fingerprint():
            return None
    return load_npz_asset(path)


def write_cache(
    asset: HandAsset, path: str | os.PathLike = CACHE_PATH, fingerprint: str | None = None
) -> Path:
    """Write ``asset`` as a compressed ``.npz`` asset stamped with ``fingerprint``.

    Take the fingerprint (:func:`source_fingerprint`) *before* computing the asset: a file
    stamped with sources newer than the code that made it would pass for fresh.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        f.name: np.asarray(getattr(asset, f.name))
        for f in dataclasses.fields(HandAsset)
        if f.name not in ("side", "name")
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        **arrays,
        side=np.array(asset.side),
        name=np.array(asset.name),
        format_version=np.array(ASSET_FORMAT_VERSION),
        builtin_fingerprint=np.array(fingerprint or source_fingerprint()),
    )
    os.replace(tmp, path)
    return path


def regenerate_cache(path: str | os.PathLike = CACHE_PATH) -> tuple[HandAsset, Path]:
    """Recompute the built-in asset and write it as the cache at ``path``."""
    before = source_fingerprint()
    asset = generate_builtin_asset()
    if source_fingerprint() != before:
        raise SeqhandError(
            "the built-in hand's sources changed while it was being generated; run again"
        )
    return asset, write_cache(asset, path, before)


@functools.lru_cache(maxsize=1)
def builtin_asset() -> HandAsset:
    """The built-in hand model (deterministic; computed or loaded once per process).

    Loads the packaged cache (:data:`CACHE_PATH`) when it matches the current sources; otherwise
    computes :func:`generate_builtin_asset` (geometry from :func:`builtin_geometry`, pose PCA
    from :func:`seqhand.hand.prior.prior_pose_pca` when that module exists, else the stand-in).
    """
    cached = load_cached_asset()
    return cached if cached is not None else generate_builtin_asset()


def synergy_pca(geom: HandAsset) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in pose PCA: a hand-crafted synergy basis, completed to an orthonormal basis.

    Rows, in order: curl of all fingers (with the thumb), curl of index, middle, ring, pinky
    (each orthogonalised against the previous), spread, thumb opposition, thumb flexion; then
    the remaining 37 directions of R^45 (QR completion). ``mean`` is a relaxed, slightly
    curled hand. Flexion axes come from the rest skeleton (bone x dorsal normal).
    """
    j = geom.J_regressor @ geom.v_template
    tips = geom.v_template[geom.tip_vertex_ids]
    dorsal = np.array([0.0, 0.0, 1.0])
    child = {1: 2, 2: 3, 4: 5, 5: 6, 7: 8, 8: 9, 10: 11, 11: 12, 13: 14, 14: 15}
    tip_of = {3: tips[1], 6: tips[2], 9: tips[4], 12: tips[3], 15: tips[0]}
    flex = np.zeros((16, 3))
    for a in range(1, 16):
        bone = unit((j[child[a]] if a in child else tip_of[a]) - j[a])
        pad = dorsal if a < 13 else perp(np.array([THUMB_PAD_ULNAR, 0.0, 1.0]), bone)
        flex[a] = unit(np.cross(pad, bone))

    def pose(per_joint: dict[int, float], axis=flex) -> np.ndarray:
        v = np.zeros((16, 3))
        for a, ang in per_joint.items():
            v[a] = ang * axis[a]
        return v[1:].reshape(-1)

    def curl(chain, g=(1.0, 1.0, 0.7)):
        return dict(zip(chain, g))

    all_fingers = {}
    for ch in CHAINS.values():
        all_fingers.update(curl(ch))
    all_fingers.update(curl(THUMB_CHAIN, (0.3, 0.5, 0.5)))
    spread_axis = np.tile(dorsal, (16, 1))
    spread = pose({1: 0.3, 4: 0.05, 10: -0.17, 7: -0.34}, spread_axis)
    thumb_opp = np.zeros(45)
    bone0 = unit(j[14] - j[13])
    thumb_opp[36:39] = 0.8 * flex[13] + 0.6 * bone0
    rows = [pose(all_fingers)] + [pose(curl(CHAINS[f])) for f in FINGER_ORDER]
    rows += [spread, thumb_opp, pose(curl(THUMB_CHAIN[1:], (1.0, 1.0)))]
    basis = np.linalg.qr(np.concatenate([np.array(rows).T, np.eye(NUM_POSE)], axis=1))[0]
    comps = basis[:, :NUM_POSE].T
    signs = np.sign(np.sum(comps[: len(rows)] * np.array(rows), axis=1))
    comps[: len(rows)] *= signs[:, None]
    relaxed = {}
    for f, g in zip(FINGER_ORDER, (0.15, 0.2, 0.25, 0.3)):
        relaxed.update(curl(CHAINS[f], (g, 1.4 * g, g)))
    relaxed.update(curl(THUMB_CHAIN, (0.1, 0.15, 0.15)))
    return comps, pose(relaxed)
