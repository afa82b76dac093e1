"""Read the official MANO pickles safely: no chumpy, and nothing in the file can run.

``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are Python-2 pickles: a dict of numpy arrays where
``shapedirs`` is a chumpy object -- in the official files a ``chumpy.reordering.Select`` (a
slice of a ``chumpy.ch.Ch``; its value is ``a.r.ravel()[idxs].reshape(preferred_shape)``), in
some re-saved copies a plain ``Ch`` -- and ``J_regressor`` a ``scipy.sparse.csc_matrix``. Both
pickle layouts of Python 2 are read: protocol 2 (``NEWOBJ``) and protocol 0/1
(``copy_reg._reconstructor``).
A plain ``pickle.load`` would import chumpy (broken on numpy >= 1.24) and would execute any
callable the file names. :class:`RestrictedUnpickler` admits only the handful of globals such a
file needs; chumpy and scipy-sparse objects are rebuilt as inert stand-ins and turned into
arrays. Anything else (``os.system``, ``builtins.eval``, ...) is refused before it is called,
and no array may be larger than :data:`MAX_ARRAY_BYTES` (a MANO file's largest array,
``posedirs``, holds 2.5 MB), so a file cannot make the reader allocate terabytes.
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
from seqhand.hand.asset import AssetError, HandAsset, asset_from_dict, validate_fields

#: Largest array (bytes) the reader builds. MANO's largest field, ``posedirs`` (778, 3, 135)
#: float64, is 2.5 MB; the bound leaves room for a ``Select`` over a larger source array.
MAX_ARRAY_BYTES = 256 * 2**20
#: Deepest nesting of chumpy objects (``Select`` over ``Select`` over ``Ch`` ...) accepted.
MAX_CHUMPY_DEPTH = 8

LEFT_FIX_CHOICES = ("auto", "apply", "skip")


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


class _SelectStandIn(_ChumpyStandIn):
    """``chumpy.reordering.Select``: value ``a.r.ravel()[idxs].reshape(preferred_shape)``."""

    kind = "chumpy Select"


class _SparseStandIn(_Inert):
    kind = "sparse matrix"


def _reconstructor(cls, base, state):
    """Safe replacement of ``copy_reg._reconstructor``: only builds our inert stand-ins."""
    if isinstance(cls, type) and issubclass(cls, _Inert) and base is object:
        return cls()
    raise UnsafePickleError(f"refused to reconstruct {cls!r} from base {base!r}")


def _bounded_size(shape, itemsize: int, what: str) -> None:
    try:
        dims = [int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,))]
    except (TypeError, ValueError):
        raise UnsafePickleError(f"{what}: shape {shape!r} is not a tuple of integers") from None
    n = 1
    for d in dims:
        if d < 0:
            raise UnsafePickleError(f"{what}: negative dimension in shape {tuple(dims)}")
        n *= d
    if n * max(int(itemsize), 1) > MAX_ARRAY_BYTES:
        raise UnsafePickleError(
            f"{what}: an array of shape {tuple(dims)} ({n * max(int(itemsize), 1) / 2**30:.3g} GiB) "
            f"is larger than anything a MANO file holds (limit {MAX_ARRAY_BYTES // 2**20} MiB); "
            "refused"
        )


def _reconstruct(subtype, shape, dtype):
    """``numpy...multiarray._reconstruct`` with the array's size bounded (see
    :data:`MAX_ARRAY_BYTES`); only plain ``numpy.ndarray`` is built."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refused to reconstruct an array of type {subtype!r}")
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        raise UnsafePickleError(f"refused an array of dtype {dtype!r}") from None
    _bounded_size(shape, itemsize, "array")
    return _multiarray._reconstruct(subtype, shape, dtype)


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
            if name == "_reconstruct":
                return _reconstruct
            if name == "scalar":
                return _multiarray.scalar
            return getattr(np, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "_codecs" and name == "encode":  # bytes in a pickle re-saved by Python 3
            return _codecs_encode
        if module in _CHUMPY_MODULES and name == "Ch":
            return _ChumpyStandIn
        if module in ("chumpy.reordering", "chumpy") and name == "Select":
            return _SelectStandIn
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return _SparseStandIn
        raise UnsafePickleError(
            f"the pickle asks for '{module}.{name}', which a MANO model file never needs; "
            "refused (nothing was executed)"
        )


def _chumpy_value(value: _ChumpyStandIn, where: str, depth: int = 0) -> np.ndarray:
    """The numeric value of a chumpy stand-in, computed from its pickled state only."""
    if depth > MAX_CHUMPY_DEPTH:
        raise AssetError(f"{where}: chumpy objects nested deeper than {MAX_CHUMPY_DEPTH}")
    st = value.state
    if isinstance(value, _SelectStandIn):
        if "a" not in st or "idxs" not in st:
            raise AssetError(f"{where}: chumpy Select without its 'a' and 'idxs' terms")
        a = st["a"]
        src = _chumpy_value(a, where, depth + 1) if isinstance(a, _ChumpyStandIn) else a
        src = np.asarray(src)
        idxs = np.asarray(st["idxs"])
        if src.dtype == object or not np.issubdtype(idxs.dtype, np.integer):
            raise AssetError(
                f"{where}: chumpy Select with a non-numeric source or non-integer idxs"
            )
        flat = src.ravel()
        if idxs.size and (idxs.min() < -flat.size or idxs.max() >= flat.size):
            raise AssetError(
                f"{where}: chumpy Select indexes outside its source of {flat.size} values"
            )
        out = flat[idxs.ravel()]
        shape = st.get("preferred_shape")
        if shape is not None:
            try:
                out = out.reshape(tuple(int(d) for d in shape))
            except (TypeError, ValueError):
                raise AssetError(
                    f"{where}: chumpy Select of {out.size} values cannot take the shape {shape!r}"
                ) from None
        return out
    for k in ("x", "a"):
        if k in st:
            v = st[k]
            if isinstance(v, _ChumpyStandIn):
                return _chumpy_value(v, where, depth + 1)
            arr = np.asarray(v)
            if arr.dtype == object:
                raise AssetError(f"{where}: chumpy object whose '{k}' is not a numeric array")
            return arr
    raise AssetError(f"{where}: a chumpy object without an 'x' array")


def _to_array(key: str, value, source: str):
    if isinstance(value, _ChumpyStandIn):
        return _chumpy_value(value, f"{source}: field '{key}'")
    if isinstance(value, _SparseStandIn):
        s = value.state
        _bounded_size(s.get("_shape", s.get("shape")), 8, f"{source}: field '{key}'")
        try:
            from scipy.sparse import csc_matrix, csr_matrix

            shape = tuple(int(d) for d in s.get("_shape", s.get("shape")))
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
    except MemoryError:
        raise AssetError(
            f"{path}: the pickle asks for more memory than a MANO file needs"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as e:  # fmt: skip
        raise AssetError(
            f"{path}: not a readable MANO pickle (truncated or corrupt: {type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise AssetError(f"{path}: expected a dict of MANO fields, found {type(obj).__name__}")
    try:
        return {k: _to_array(k, v, str(path)) for k, v in obj.items()}
    except UnsafePickleError as e:
        raise UnsafePickleError(str(e) if str(path) in str(e) else f"{path}: {e}") from None


def _axis_scale_agreement(shapedirs: np.ndarray, v_template: np.ndarray) -> tuple[float, float]:
    """How the x part of the shape space's size directions agrees with their y/z part.

    Per shape direction k and axis a, ``alpha[a, k]`` is the least-squares scale mapping the
    centred template's coordinate a onto ``shapedirs[:, a, k]``; ``explained[k]`` is the
    fraction of direction k's energy those three scales explain. Directions with
    ``explained >= 0.5`` are *size directions* (MANO's first shape component grows the hand).
    Returns ``(agreement, best_explained)``: agreement in [-1, 1] is +1 when the size
    directions grow the hand in x together with y/z, -1 when x is mirrored against the
    template (MANO_LEFT as published, smplx issue #48), 0 when there is no size direction.
    """
    vc = v_template - v_template.mean(0)
    var = np.maximum((vc**2).sum(0), 1e-30)
    alpha = np.einsum("va,vak->ak", vc, shapedirs) / var[:, None]
    energy = np.maximum((shapedirs**2).sum((0, 1)), 1e-30)
    explained = (alpha**2 * var[:, None]).sum(0) / energy
    size = explained >= 0.5
    if not size.any():
        return 0.0, float(explained.max(initial=0.0))
    prod = alpha[0, size] * 0.5 * (alpha[1, size] + alpha[2, size])
    den = float(np.abs(prod).sum())
    return (float(prod.sum() / den) if den > 0 else 0.0), float(explained.max())


def decide_left_fix(
    shapedirs: np.ndarray,
    v_template: np.ndarray,
    choice: str = "auto",
    right_shapedirs: np.ndarray | None = None,
    source: str = "MANO_LEFT",
) -> tuple[bool, str]:
    """Decide whether the left model needs ``shapedirs[:, 0, :] *= -1``; return (apply, why).

    ``choice``: ``"apply"`` / ``"skip"`` take the user's word. ``"auto"`` compares with the
    right model's ``shapedirs`` when given (the published left file holds the right's shape
    space unchanged; a corrected one has its x part negated), else uses
    :func:`_axis_scale_agreement` and refuses to guess when it is not clearly +-1.
    """
    if choice not in LEFT_FIX_CHOICES:
        raise AssetError(
            f"left-hand shapedirs fix must be one of {LEFT_FIX_CHOICES}, got {choice!r}"
        )
    if choice == "apply":
        return True, "applied: shapedirs[:, 0, :] *= -1 (explicit choice)"
    if choice == "skip":
        return False, "not applied (explicit choice: the left shapedirs were taken as corrected)"
    if right_shapedirs is not None:
        r = np.asarray(right_shapedirs, dtype=np.float64)
        if r.shape != shapedirs.shape:
            raise AssetError(
                f"{source}: right model's shapedirs {r.shape} do not match the left's "
                f"{shapedirs.shape}"
            )
        same_yz = np.allclose(shapedirs[:, 1:], r[:, 1:], rtol=1e-6, atol=1e-12)
        if same_yz and np.allclose(shapedirs[:, 0], r[:, 0], rtol=1e-6, atol=1e-12):
            return True, (
                "applied: shapedirs[:, 0, :] *= -1 (detected: the left shapedirs equal the "
                "right model's)"
            )
        if same_yz and np.allclose(shapedirs[:, 0], -r[:, 0], rtol=1e-6, atol=1e-12):
            return False, (
                "not applied (detected: the left shapedirs are already the right model's "
                "mirrored in x)"
            )
        raise AssetError(
            f"{source}: the left shapedirs are neither equal to the right model's nor their "
            "x-mirror; choose the fix explicitly (--left-fix apply or skip)"
        )
    agree, explained = _axis_scale_agreement(shapedirs, v_template)
    if agree <= -0.5:
        return True, (
            f"applied: shapedirs[:, 0, :] *= -1 (detected: x part of the shape space mirrored "
            f"against the template, agreement {agree:+.2f})"
        )
    if agree >= 0.5:
        return False, (
            f"not applied (detected: shape space already agrees with the template in x, "
            f"agreement {agree:+.2f})"
        )
    raise AssetError(
        f"{source}: cannot tell whether the left shapedirs are already corrected (no clear "
        f"size direction: best explained {explained:.2f}, x/yz agreement {agree:+.2f}); choose explicitly (--left-fix apply or skip, or give the "
        "right model with --right-model)"
    )


def load_mano_pickle(
    path: str | os.PathLike,
    side: str | None = None,
    left_fix: str = "auto",
    right_model: str | os.PathLike | None = None,
) -> HandAsset:
    """Load ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` as a validated :class:`HandAsset`.

    The side is taken from the file name unless given. The left model as published needs
    ``shapedirs[:, 0, :] *= -1`` (its shape space is the right hand's, not mirrored in x;
    smplx issue #48); some distributions ship it corrected already. ``left_fix`` is
    ``"auto"`` (detect, see :func:`decide_left_fix`; ``right_model`` makes the detection
    exact), ``"apply"`` or ``"skip"``. What was done is kept in the asset's ``shapedirs_fix``.
    """
    path = Path(path)
    d = read_mano_pickle_dict(path)
    if side is None:
        side = "left" if "LEFT" in path.name.upper() else "right"
    d.setdefault("tip_vertex_ids", np.asarray(MANO_TIP_VERTEX_IDS))
    fix_note = "none (right hand)"
    if side == "left":
        validate_fields(d, str(path))
        sd = np.array(d["shapedirs"], dtype=np.float64, copy=True)
        right_sd = None
        if right_model is not None and left_fix == "auto":
            right_sd = np.asarray(read_mano_pickle_dict(right_model)["shapedirs"], np.float64)
        apply, fix_note = decide_left_fix(
            sd, np.asarray(d["v_template"], np.float64), left_fix, right_sd, str(path)
        )
        if apply:
            sd[:, 0, :] *= -1
        d["shapedirs"] = sd
    d["shapedirs_fix"] = fix_note
    return asset_from_dict(d, str(path), side=side, name=path.stem)
