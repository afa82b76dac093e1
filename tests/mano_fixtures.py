"""Test fixtures in MANO's published formats, with random values (never MANO's own data)."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

from seqhand.conventions import MANO_PARENTS, MANO_TIP_VERTEX_IDS
from seqhand.hand.asset import HandAsset


def random_mano_asset(seed: int = 0, nv: int = 778, nf: int = 1538, side="right") -> HandAsset:
    """A MANO-shaped asset with random values: the right field shapes, nothing of MANO's."""
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=0.04, size=(nv, 3))
    f = rng.integers(0, nv, size=(nf, 3))
    shapedirs = rng.normal(scale=2e-3, size=(nv, 3, 10))
    posedirs = rng.normal(scale=2e-3, size=(nv, 3, 135))
    jreg = np.zeros((16, nv))
    for j in range(16):
        ids = rng.choice(nv, size=20, replace=False)
        w = rng.random(20)
        jreg[j, ids] = w / w.sum()
    logits = rng.normal(scale=3.0, size=(nv, 16))
    weights = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    kt = np.stack([np.array(MANO_PARENTS), np.arange(16)])
    kt[0, 0] = 4294967295  # MANO's sentinel for the root's parent
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0].T * rng.uniform(0.5, 2.0, size=(45, 1))
    return HandAsset(
        v_template=v,
        f=f,
        shapedirs=shapedirs,
        posedirs=posedirs,
        J_regressor=jreg,
        weights=weights,
        kintree_table=kt,
        hands_components=comps,
        hands_mean=rng.normal(scale=0.2, size=45),
        tip_vertex_ids=np.asarray(MANO_TIP_VERTEX_IDS) % nv,
        side=side,
        name="random",
    )


def write_mano_style_pickle(asset: HandAsset, path: Path, extra: dict | None = None) -> Path:
    """Write ``asset`` as the official files are laid out: a dict whose ``shapedirs`` is a
    ``chumpy.ch.Ch`` and ``J_regressor`` a ``scipy.sparse.csc_matrix``, pickled with protocol 2.

    chumpy is not installed: a throw-away module of that name is put in ``sys.modules`` only
    while pickling, so the file references ``chumpy.ch.Ch`` exactly like the real one does.
    """
    ch_mod = types.ModuleType("chumpy.ch")

    class Ch:  # minimal stand-in with chumpy's pickled state layout
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch_mod.Ch = Ch
    pkg = types.ModuleType("chumpy")
    pkg.ch = ch_mod
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch_mod
    try:
        d = {
            "v_template": asset.v_template,
            "f": asset.f.astype(np.uint32),
            "shapedirs": Ch(asset.shapedirs),
            "posedirs": asset.posedirs,
            "J_regressor": scipy.sparse.csc_matrix(asset.J_regressor),
            "weights": asset.weights,
            "kintree_table": asset.kintree_table.astype(np.uint32),
            "hands_components": asset.hands_components,
            "hands_mean": asset.hands_mean,
            "hands_coeffs": np.zeros((4, 45)),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
            "J": asset.J_regressor @ asset.v_template,
        }
        d.update(extra or {})
        path.write_bytes(pickle.dumps(d, protocol=2))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path
