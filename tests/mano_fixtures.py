"""Test fixtures in MANO's published formats, with random values (never MANO's own data)."""

from __future__ import annotations

import codecs
import pickle
import struct
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


# --------------------------------------------------------------------------------------------
# The official files byte for byte in form: Python 2 cPickle, protocol 2 or 0, written opcode by
# opcode from the pickle format (PEP 307, pickletools) -- not from seqhand's reader.


class Py2Object:
    """An instance of ``module.name`` as Python 2 pickles a new-style object: class + state."""

    def __init__(self, module: str, name: str, state: dict):
        self.module, self.name, self.state = module, name, state


def chumpy_state(**terms) -> dict:
    """The ``__dict__`` chumpy's ``Ch.__getstate__`` returns (``_parents``, ``_cache`` dropped)."""
    return {
        "_dirty_vars": set(),
        "_itr": None,
        "_make_dense": False,
        "_make_sparse": False,
        "_depends_on_deps": {},
        **terms,
    }


def chumpy_ch(x: np.ndarray) -> Py2Object:
    return Py2Object("chumpy.ch", "Ch", chumpy_state(x=np.asarray(x, np.float64)))


def chumpy_select(a, idxs: np.ndarray, preferred_shape: tuple) -> Py2Object:
    return Py2Object(
        "chumpy.reordering",
        "Select",
        chumpy_state(a=a, idxs=np.asarray(idxs, np.int64), preferred_shape=tuple(preferred_shape)),
    )


def py2_csc(m: np.ndarray) -> Py2Object:
    """``scipy.sparse.csc.csc_matrix`` as scipy 0.x under Python 2 pickled it (its __dict__)."""
    c = scipy.sparse.csc_matrix(m)
    return Py2Object(
        "scipy.sparse.csc",
        "csc_matrix",
        {"_shape": tuple(c.shape), "data": c.data, "indices": c.indices.astype(np.int32),
         "indptr": c.indptr.astype(np.int32), "maxprint": 50, "format": "csc"},
    )  # fmt: skip


class Py2Pickler:
    """Emit a Python-2 pickle (protocol 0 or 2) of dicts, tuples, lists, sets, str, int, float,
    bool, None, numpy arrays (``numpy.core.multiarray._reconstruct``) and :class:`Py2Object`."""

    def __init__(self, protocol: int):
        assert protocol in (0, 2)
        self.p = protocol
        self.out = bytearray(b"\x80\x02" if protocol == 2 else b"")

    def dumps(self, obj) -> bytes:
        self.save(obj)
        self.out += b"."
        return bytes(self.out)

    def glob(self, module: str, name: str):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def save(self, obj):  # noqa: C901 - one branch per type, as in pickle.py
        o = self.out
        if obj is None:
            o += b"N"
        elif isinstance(obj, bool):
            o += (b"\x88" if obj else b"\x89") if self.p == 2 else (b"I01\n" if obj else b"I00\n")
        elif isinstance(obj, (int, np.integer)):
            v = int(obj)
            if self.p == 2 and -(2**31) <= v < 2**31:
                o += b"J" + struct.pack("<i", v)
            else:
                o += b"I%d\n" % v
        elif isinstance(obj, float):
            o += b"G" + struct.pack(">d", obj) if self.p == 2 else b"F" + repr(obj).encode() + b"\n"
        elif isinstance(obj, (str, bytes)):  # a Python 2 str: bytes, decoded as latin1 on load
            b = obj.encode("latin1") if isinstance(obj, str) else obj
            if self.p == 2:
                o += b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))
                o += b
            else:
                o += b"S'" + codecs.escape_encode(b)[0] + b"'\n"  # Python 2's repr(str)
        elif isinstance(obj, tuple):
            o += b"("
            for x in obj:
                self.save(x)
            o += b"t"
        elif isinstance(obj, list):
            o += b"("
            for x in obj:
                self.save(x)
            o += b"l"
        elif isinstance(obj, dict):
            o += b"("
            for k, v in obj.items():
                self.save(k)
                self.save(v)
            o += b"d"
        elif isinstance(obj, (set, frozenset)):
            self.glob("__builtin__", "set")
            self.save((sorted(obj),))
            o += b"R"
        elif isinstance(obj, np.ndarray):
            self.glob("numpy.core.multiarray", "_reconstruct")
            self.save_global_args(("numpy", "ndarray"), (0,), "b")
            o += b"R"
            arr = np.ascontiguousarray(obj)
            self.save((1, arr.shape, arr.dtype, False, arr.tobytes()))
            o += b"b"
        elif isinstance(obj, np.dtype):
            self.glob("numpy", "dtype")
            self.save((obj.str[1:], 0, 1))
            o += b"R"
            self.save((3, obj.str[0] if obj.str[0] != "|" else "|", None, None, None, -1, -1, 0))
            o += b"b"
        elif isinstance(obj, Py2Object):
            if self.p == 2:  # NEWOBJ: cls.__new__(cls), then BUILD with the state
                self.glob(obj.module, obj.name)
                o += b")\x81"
            else:  # copy_reg._reconstructor(cls, object, None), then BUILD
                self.glob("copy_reg", "_reconstructor")
                o += b"("
                self.glob(obj.module, obj.name)
                self.glob("__builtin__", "object")
                o += b"Nt"
                o += b"R"
            self.save(obj.state)
            o += b"b"
        else:
            raise TypeError(type(obj))

    def save_global_args(self, cls, *args):
        """A tuple whose first item is the global ``cls`` followed by ``args``."""
        self.out += b"("
        self.glob(*cls)
        for a in args:
            self.save(a)
        self.out += b"t"


def official_mano_dict(asset: HandAsset, shapedirs_obj) -> dict:
    """The dict of the official MANO file, with ``shapedirs`` given as a chumpy object."""
    return {
        "v_template": asset.v_template,
        "f": asset.f.astype(np.uint32),
        "shapedirs": shapedirs_obj,
        "posedirs": asset.posedirs,
        "J_regressor": py2_csc(asset.J_regressor),
        "weights": asset.weights,
        "kintree_table": asset.kintree_table.astype(np.int64),
        "hands_components": asset.hands_components,
        "hands_mean": asset.hands_mean,
        "hands_coeffs": np.zeros((4, 45)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "J": asset.J_regressor @ asset.v_template,
    }


def write_py2_mano_pickle(path: Path, d: dict, protocol: int) -> Path:
    path.write_bytes(Py2Pickler(protocol).dumps(d))
    return path
