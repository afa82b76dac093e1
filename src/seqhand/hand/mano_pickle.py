"""Read the official MANO pickles safely: no chumpy, and nothing in the file can run.

``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are Python-2 pickles: a dict of numpy arrays where
``shapedirs`` is a ``chumpy.ch.Ch`` object and ``J_regressor`` a ``scipy.sparse.csc_matrix``.
A plain ``pickle.load`` would import chumpy (broken on numpy >= 1.24) and would execute any
callable the file names. :class:`RestrictedUnpickler` admits only the handful of globals such a
file needs; chumpy and scipy-sparse objects are rebuilt as inert stand-ins and turned into
arrays. Anything else (``os.system``, ``builtins.eval``, ...) is refused before it is called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core import multiarray as _multiarray

from seqhand.conventions import MANO_TIP_VERTEX_IDS
from seqhand.hand.asset import AssetError, HandAsset, asset_from_dict


class UnsafePickleError(AssetError):
    """The pickle asked for a global that a MANO file never needs; nothing was executed."""


class _Inert:
    """Stand-in for chumpy / scipy.sparse objects: stores the pickled state, runs nothing."""

    kind = "object"

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise UnsafePickleError(
                f"unexpected state of type {type(state).__name__} for a {self.kind}"
            )
        self.state = dict(state)


class _ChumpyStandIn(_Inert):
    kind = "chumpy object"


class _SparseStandIn(_Inert):
    kind = "sparse matrix"


def _reconstructor(cls, base, state):
    """Safe replacement of ``copy_reg._reconstructor``: only builds our inert stand-ins."""
    if isinstance(cls, type) and issubclass(cls, _Inert) and base is object:
        return cls()
    raise UnsafePickleError(f"refused to reconstruct {cls!r} from base {base!r}")


def _codecs_encode(obj, encoding="utf-8"):
    """``_codecs.encode`` restricted to what pickles use it for: str -> bytes."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refused a _codecs.encode call that is not str -> latin1 bytes")
    return obj.encode("latin1")


_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
# Inert containers that chumpy objects' pickled state may hold.
_SAFE_BUILTINS = {
    "object": object,
    "set": set,
    "frozenset": frozenset,
    "slice": slice,
    "bytes": bytes,
}
_CHUMPY_MODULES = ("chumpy.ch", "chumpy.reordering", "chumpy.ch_ops", "chumpy")
_SPARSE_MODULES = ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                   "scipy.sparse._csr", "scipy.sparse.compressed", "scipy.sparse")  # fmt: skip
_SPARSE_NAMES = ("csc_matrix", "csr_matrix")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only the globals a MANO file needs."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_ALLOWED:
            if name in ("_reconstruct", "scalar"):
                return getattr(_multiarray, name)
            return getattr(np, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "_codecs" and name == "encode":  # bytes in a pickle re-saved by Python 3
            return _codecs_encode
        if module in _CHUMPY_MODULES and name == "Ch":
            return _ChumpyStandIn
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return _SparseStandIn
        raise UnsafePickleError(
            f"the pickle asks for '{module}.{name}', which a MANO model file never needs; "
            "refused (nothing was executed)"
        )


def _to_array(key: str, value, source: str):
    if isinstance(value, _ChumpyStandIn):
        for k in ("x", "a"):
            if k in value.state:
                return np.asarray(value.state[k])
        raise AssetError(f"{source}: field '{key}' is a chumpy object without an 'x' array")
    if isinstance(value, _SparseStandIn):
        s = value.state
        try:
            from scipy.sparse import csc_matrix, csr_matrix

            shape = tuple(s.get("_shape", s.get("shape")))
            cls = csc_matrix if s.get("format", "csc") == "csc" else csr_matrix
            return cls((s["data"], s["indices"], s["indptr"]), shape=shape).toarray()
        except (KeyError, TypeError, ValueError) as e:
            raise AssetError(
                f"{source}: field '{key}' is a malformed sparse matrix ({e})"
            ) from None
    return value


def read_mano_pickle_dict(path: str | os.PathLike) -> dict:
    """Unpickle a MANO file with :class:`RestrictedUnpickler` and return plain arrays."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as e:  # fmt: skip
        raise AssetError(
            f"{path}: not a readable MANO pickle (truncated or corrupt: {type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise AssetError(f"{path}: expected a dict of MANO fields, found {type(obj).__name__}")
    return {k: _to_array(k, v, str(path)) for k, v in obj.items()}


def load_mano_pickle(path: str | os.PathLike, side: str | None = None) -> HandAsset:
    """Load ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` as a validated :class:`HandAsset`.

    The side is taken from the file name unless given. For the left model the known
    ``shapedirs[:, 0, :] *= -1`` fix is applied (the published left shape space is mirrored
    wrongly in x).
    """
    path = Path(path)
    d = read_mano_pickle_dict(path)
    if side is None:
        side = "left" if "LEFT" in path.name.upper() else "right"
    d.setdefault("tip_vertex_ids", np.asarray(MANO_TIP_VERTEX_IDS))
    if "shapedirs" in d and side == "left":
        sd = np.array(d["shapedirs"], dtype=np.float64, copy=True)
        if sd.ndim == 3:
            sd[:, 0, :] *= -1
        d["shapedirs"] = sd
    return asset_from_dict(d, str(path), side=side, name=path.stem)
