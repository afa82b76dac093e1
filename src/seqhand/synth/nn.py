"""Nearest-neighbour search in pose space behind one small interface.

``index = build_nn(points, method)`` then ``indices, sqdist = index.query(queries, hint=None)``.
``points`` is the ``(N, D)`` float32 search space (for pose flows: a bank's ``(N, 63)`` joints
in metres); it is never written to.

**Exact** means: the index ``i`` minimising ``sum_d (q_d - x_id)^2`` evaluated in float64 from
the stored float32 numbers, ties broken by the lowest index. Exact methods return exactly that;
the returned ``sqdist`` (squared metres, float64) is always that exact value for the returned
index, whatever the method.

Methods:

============  ======  ============================================================================
name          exact   how
============  ======  ============================================================================
pca-tree      yes     balanced k-d tree over PCA-rotated points (median splits and data boxes
                      on the leading components), best-first search ordered by box lower bounds,
                      leaf rows tested on 8 leading components (vectorised) then the rest with
                      early exits, float32 with a float-error margin, then an exact float64
                      re-check of every candidate inside the margin. A ``hint`` (a bank index,
                      e.g. the previous pose of a flow) seeds the search radius and orders the
                      queries for cache locality. Numba, parallel over queries.
bruteforce    yes     float32 matmul with ``|x|^2 - 2 q.x`` (torch, blocked), top-k candidates
                      re-checked in float64; a rigorous float32 error bound certifies each
                      answer, uncertified queries are re-scanned in float64.
faiss-flat    ~yes    FAISS ``IndexFlatL2`` (the standard baseline; float32, its own tie order).
faiss-ivf     no      FAISS ``IndexIVFFlat`` (k-means cells, ``nprobe`` of them searched).
============  ======  ============================================================================

Use :func:`recall` to measure an approximate method against an exact one.

Building a ``pca-tree`` over a million poses takes seconds; :func:`cached_nn` keeps it in a
folder (one ``.npy`` per array, memory-mapped read-only when loaded, so processes share the
pages) keyed by a digest of the points and the build options: a stale folder is rebuilt, and
a folder is only ever replaced whole (written under a temporary name, then renamed).
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np

from seqhand.errors import MissingExtraError, SeqhandError

log = logging.getLogger(__name__)
CACHE_VERSION = 1


class NNError(SeqhandError, ValueError):
    """Bad input to a nearest-neighbour index (shape, dtype, unknown method)."""


def _as_points(points: np.ndarray, name: str = "points") -> np.ndarray:
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[0] == 0:
        raise NNError(f"{name} must be a non-empty (N, D) array, got shape {p.shape}")
    if p.dtype != np.float32:
        p = p.astype(np.float32)
    return np.ascontiguousarray(p)


def exact_sqdist(points: np.ndarray, indices: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``(Q,)`` float64 squared distances between ``queries (Q, D)`` and ``points[indices]``."""
    diff = points[np.asarray(indices)].astype(np.float64) - np.asarray(queries, np.float64)
    return np.einsum("qd,qd->q", diff, diff)


def _pick_exact(points, queries, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best of the candidates ``(Q, K)`` (``-1`` = none) by exact float64 distance, ties to the
    lowest index."""
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    diff = points[safe].astype(np.float64) - np.asarray(queries, np.float64)[:, None, :]
    d = np.einsum("qkd,qkd->qk", diff, diff)
    d[~valid] = np.inf
    dmin = d.min(1)
    big = np.iinfo(np.int64).max
    idx = np.where(d == dmin[:, None], safe, big).min(1)
    return idx.astype(np.int64), dmin


class NearestNeighbour(abc.ABC):
    """A nearest-neighbour index over ``(N, D)`` float32 points (never modified)."""

    name: str = "abstract"
    exact: bool = False
    cacheable: bool = False
    """Whether :meth:`state` / :meth:`from_state` can save and restore the built index."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = points

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(options, arrays)``: what :meth:`from_state` needs besides the points."""
        raise NotImplementedError(f"{self.name} indexes cannot be saved")

    @classmethod
    def from_state(cls, points: np.ndarray, options: dict, arrays: dict) -> NearestNeighbour:
        """The index over ``points`` that :meth:`state` described (no rebuilding)."""
        raise NotImplementedError(f"{cls.name} indexes cannot be loaded")

    @classmethod
    def build(cls, points: np.ndarray, **options) -> NearestNeighbour:
        """Build the index over ``points (N, D)``."""
        return cls(_as_points(points), **options)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise NNError(f"queries must be (Q, {self.dim}), got shape {q.shape}")
        return np.ascontiguousarray(q, dtype=np.float32)

    def query(
        self,
        queries: np.ndarray,
        hint: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest point of every query.

        Args:
            queries: ``(Q, D)`` points (float32 or float64; searched as float32 except where
                an exact method re-checks in float64 - the query values are used as given).
            hint: optional ``(Q,)`` indices of points known to be near each query (methods that
                can use them start their search radius there; results do not depend on it).
            exclude: optional ``(Q,)`` or ``(Q, m)`` indices: the points each query may not
                return (the nearest *other* point). Needs more than ``m`` points.
        Returns:
            ``indices (Q,)`` int64 and ``sqdist (Q,)`` float64 exact squared distances.
        """
        q = np.asarray(queries)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise NNError(f"queries must be (Q, {self.dim}), got shape {q.shape}")
        if len(q) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        if hint is not None:
            hint = np.asarray(hint, np.int64)
            if hint.shape != (len(q),) or hint.min() < 0 or hint.max() >= len(self):
                raise NNError(f"hint must be ({len(q)},) indices in [0, {len(self)})")
        if exclude is not None:
            exclude = np.asarray(exclude, np.int64)
            exclude = exclude[:, None] if exclude.ndim == 1 else exclude
            if (exclude.ndim != 2 or len(exclude) != len(q) or len(self) <= exclude.shape[1]
                    or exclude.min() < 0 or exclude.max() >= len(self)):  # fmt: skip
                raise NNError(
                    f"exclude must be ({len(q)},) or ({len(q)}, m) indices in [0, {len(self)}) "
                    f"with m < {len(self)}"
                )
        idx = self._query(q, hint, exclude)
        return idx, exact_sqdist(self.points, idx, q)

    @abc.abstractmethod
    def _query(
        self, queries: np.ndarray, hint: np.ndarray | None, exclude: np.ndarray | None
    ) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Exact brute force (torch matmul + float64 re-check)
# --------------------------------------------------------------------------------------------
class BruteForceNN(NearestNeighbour):
    """Exact brute force: float32 ``|x|^2 - 2 q.x`` in blocks, certified float64 re-check.

    Args:
        topk: candidates per query kept from the float32 pass.
        query_block, point_block: block sizes of the matmul.
    """

    name = "bruteforce"
    exact = True

    def __init__(self, points, topk: int = 4, query_block: int = 2048, point_block: int = 1 << 18):
        import torch

        super().__init__(points)
        self.topk = max(1, min(int(topk), len(points)))
        self.query_block = int(query_block)
        self.point_block = int(point_block)
        with warnings.catch_warnings():  # read-only numpy arrays: we never write through torch
            warnings.simplefilter("ignore", UserWarning)
            self._x = torch.from_numpy(points)
        self._xx = (self._x.double() ** 2).sum(1).float()
        self._max_norm2 = float(self._xx.max())

    def _query(self, queries, hint, exclude):
        import torch

        q32 = self._check_queries(queries)
        out = np.empty(len(q32), np.int64)
        k = self.topk
        for lo in range(0, len(q32), self.query_block):
            qb = torch.from_numpy(q32[lo : lo + self.query_block])
            best_v = torch.full((len(qb), k), float("inf"))
            best_i = torch.zeros((len(qb), k), dtype=torch.long)
            for plo in range(0, len(self), self.point_block):
                xb = self._x[plo : plo + self.point_block]
                d = torch.addmm(self._xx[plo : plo + len(xb)], qb, xb.T, alpha=-2.0)
                if exclude is not None:
                    ex = exclude[lo : lo + len(qb)] - plo
                    rows, cols = np.nonzero((ex >= 0) & (ex < len(xb)))
                    d[rows, ex[rows, cols]] = float("inf")
                v, i = torch.topk(d, min(k, len(xb)), dim=1, largest=False)
                allv = torch.cat([best_v, v], 1)
                alli = torch.cat([best_i, i + plo], 1)
                sel = torch.topk(allv, k, dim=1, largest=False).indices
                best_v, best_i = allv.gather(1, sel), alli.gather(1, sel)
            qd = queries[lo : lo + len(qb)]
            cand = best_i.numpy()
            if exclude is not None:  # slots padded with the excluded point (inf) are not valid
                cand = np.where(np.isinf(best_v.numpy()), -1, cand)
            idx, dmin = _pick_exact(self.points, qd, cand)
            # Certify: every non-candidate j has exact d_j >= approx_j - err >= kth - err.
            qq = np.einsum("qd,qd->q", q32[lo : lo + len(qb)].astype(np.float64),
                           q32[lo : lo + len(qb)].astype(np.float64))  # fmt: skip
            err = 1e-5 * (qq + self._max_norm2) + 1e-12
            kth = best_v[:, -1].double().numpy() + qq
            bad = ~((kth - err > dmin) | (k >= len(self)))
            for r in np.nonzero(bad)[0]:
                idx[r] = self._scan_exact(qd[r], None if exclude is None else exclude[lo + r])
            out[lo : lo + len(qb)] = idx
        return out

    def _scan_exact(self, q: np.ndarray, exclude: np.ndarray | None = None) -> int:
        """Exact float64 scan for one query (rare fallback)."""
        best, best_i = np.inf, 0
        q = np.asarray(q, np.float64)
        for plo in range(0, len(self), self.point_block):
            d = ((self.points[plo : plo + self.point_block].astype(np.float64) - q) ** 2).sum(1)
            if exclude is not None:
                ex = exclude - plo
                d[ex[(ex >= 0) & (ex < len(d))]] = np.inf
            i = int(d.argmin())
            if d[i] < best:
                best, best_i = float(d[i]), plo + i
        return best_i


# --------------------------------------------------------------------------------------------
# FAISS
# --------------------------------------------------------------------------------------------
def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingExtraError("faiss-cpu", "synth", "FAISS nearest-neighbour search") from None
    return faiss


def _first_not(cand: np.ndarray, exclude: np.ndarray | None, lo: int) -> np.ndarray:
    """The first of FAISS's ``(Q, m + 1)`` answers that is not excluded."""
    if exclude is None:
        return cand[:, 0]
    ex = exclude[lo : lo + len(cand)]
    ok = ~(cand[:, :, None] == ex[:, None, :]).any(-1)
    return cand[np.arange(len(cand)), ok.argmax(1)]


class FaissFlatNN(NearestNeighbour):
    """FAISS ``IndexFlatL2`` brute force (float32; near-ties may resolve differently)."""

    name = "faiss-flat"
    exact = False

    def __init__(self, points, query_block: int = 4096):
        super().__init__(points)
        faiss = _faiss()
        self.index = faiss.IndexFlatL2(points.shape[1])
        self.index.add(points)
        self.query_block = int(query_block)

    def _query(self, queries, hint, exclude):
        q = self._check_queries(queries)
        out = np.empty(len(q), np.int64)
        k = 1 if exclude is None else 1 + exclude.shape[1]
        for lo in range(0, len(q), self.query_block):
            i = self.index.search(q[lo : lo + self.query_block], k)[1]
            out[lo : lo + self.query_block] = _first_not(i, exclude, lo)
        return out


class FaissIVFNN(NearestNeighbour):
    """FAISS ``IndexIVFFlat`` (approximate): ``nlist`` k-means cells, ``nprobe`` searched."""

    name = "faiss-ivf"
    exact = False

    def __init__(self, points, nlist: int | None = None, nprobe: int = 32, seed: int = 0):
        super().__init__(points)
        faiss = _faiss()
        n, d = points.shape
        nlist = int(nlist or max(1, min(4096, int(4 * math.sqrt(n)))))
        quant = faiss.IndexFlatL2(d)
        self.index = faiss.IndexIVFFlat(quant, d, nlist)
        rng = np.random.default_rng(seed)
        train = points[np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))]
        self.index.cp.seed = int(seed)
        self.index.train(train)
        self.index.add(points)
        self.index.nprobe = int(nprobe)

    def _query(self, queries, hint, exclude):
        q = self._check_queries(queries)
        i = self.index.search(q, 1 if exclude is None else 1 + exclude.shape[1])[1]
        return np.maximum(_first_not(i, exclude, 0), 0).astype(np.int64)


def recall(found: np.ndarray, exact: np.ndarray, points: np.ndarray, queries: np.ndarray) -> float:
    """Fraction of queries whose found neighbour is as near as the exact one (ties count)."""
    d_found = exact_sqdist(points, found, queries)
    d_exact = exact_sqdist(points, exact, queries)
    return float(np.mean((np.asarray(found) == np.asarray(exact)) | (d_found <= d_exact)))


# --------------------------------------------------------------------------------------------
# The fast exact method: a k-d tree over PCA-rotated points
# --------------------------------------------------------------------------------------------
class PCATreeNN(NearestNeighbour):
    """Exact nearest neighbour with a k-d tree over PCA-rotated points (numba, parallel).

    Args:
        leaf_size: points per leaf (about).
        box_dims: leading principal components whose per-node data boxes bound the search.
        margin_abs, margin_lin, margin_rel: float-error margin of the float32 search, in squared
            units: ``abs + lin * sqrt(best) + rel * best`` (``lin`` covers float32 rounding of
            the rotated coordinates, ``rel`` float32 sums); every point within ``best +
            margin`` is re-checked in float64 on the original points.
        max_candidates: re-check buffer per query (a query overflowing it - only possible with
            many exact duplicates - is answered by brute force).
    """

    name = "pca-tree"
    exact = True
    cacheable = True
    ARRAYS = ("mean", "rotation", "perm", "lo", "hi", "rows", "head", "boxes", "pos")
    """The built index (:meth:`state`): PCA mean and rotation, the leaf order ``perm`` and its
    inverse ``pos``, node ranges ``lo``/``hi``, rows in leaf order, ``head`` and node boxes."""

    def __init__(
        self,
        points,
        leaf_size: int = 128,
        box_dims: int = 6,
        margin_abs: float = 1e-12,
        margin_lin: float = 1e-6,
        margin_rel: float = 3e-5,
        max_candidates: int = 16,
        pca_sample: int = 200_000,
    ):
        import numba

        from seqhand.synth import _nn_kernels as kern

        super().__init__(points)
        self._set_options(
            leaf_size=leaf_size, box_dims=box_dims, margin_abs=margin_abs,
            margin_lin=margin_lin, margin_rel=margin_rel, max_candidates=max_candidates,
            pca_sample=pca_sample,
        )  # fmt: skip
        n, d = points.shape
        # PCA from an evenly spaced sample (float64), components by decreasing variance.
        sample = points[np.linspace(0, n - 1, min(n, pca_sample)).astype(np.int64)]
        centred = sample.astype(np.float64) - sample.astype(np.float64).mean(0)
        mean = sample.astype(np.float64).mean(0)
        cov = centred.T @ centred / len(centred)
        w, v = np.linalg.eigh(cov)
        rotation = v[:, ::-1].copy()  # (D, D) columns = components
        # The tree only looks at the leading components: build it on those, then rotate every
        # point once, directly into leaf order.
        chunk = 1 << 18
        lead = np.empty((n, self.box_dims), np.float32)
        for lo in range(0, n, chunk):
            lead[lo : lo + chunk] = (points[lo : lo + chunk] - mean) @ rotation[:, : self.box_dims]
        depth = max(0, math.ceil(math.log2(max(1.0, n / max(1, leaf_size)))))
        with numba.parallel_chunksize(1):
            perm, lo_arr, hi_arr = kern.build_tree(lead, depth, self.box_dims)
        del lead
        rows = np.zeros((n, self.dpad), np.float32)  # leaf order, PCA coordinates
        for lo in range(0, n, chunk):
            rows[lo : lo + chunk, :d] = (points[perm[lo : lo + chunk]] - mean) @ rotation
        # Boxes from the stored rows themselves, so every bound holds bit for bit.
        with numba.parallel_chunksize(1):
            boxes = kern.node_boxes(rows, lo_arr, hi_arr, depth, self.box_dims)
        pos = np.empty(n, np.int64)
        pos[perm] = np.arange(n)
        self._set_arrays(
            {"mean": mean, "rotation": rotation, "perm": perm, "lo": lo_arr, "hi": hi_arr,
             "rows": rows, "head": np.ascontiguousarray(rows[:, : kern.HEAD].T),  # dims-major
             "boxes": boxes, "pos": pos}
        )  # fmt: skip

    def _set_options(self, **options) -> None:
        self.options = options
        self.margins = np.array(
            [options["margin_abs"], options["margin_lin"], options["margin_rel"]], np.float64
        )
        self.max_candidates = int(options["max_candidates"])
        self.box_dims = int(min(options["box_dims"], self.dim))
        self.dpad = ((self.dim + 7) // 8) * 8

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the built index's arrays (read-only from here on: built and loaded indexes
        then also share one compiled signature of the query kernel)."""
        n = len(self)
        for name in self.ARRAYS:
            a = np.asarray(arrays[name])
            a.setflags(write=False)
            setattr(self, name, a)
        n_nodes = len(self.lo)
        self.depth = n_nodes.bit_length() - 1  # n_nodes = 2 ** (depth + 1) - 1
        self.n_internal = (1 << self.depth) - 1
        shapes = {"mean": (self.dim,), "rotation": (self.dim, self.dim), "perm": (n,),
                  "hi": (n_nodes,), "rows": (n, self.dpad), "head": (self.head.shape[0], n),
                  "boxes": (n_nodes, 2, self.box_dims), "pos": (n,)}  # fmt: skip
        bad = [k for k, shape in shapes.items() if getattr(self, k).shape != shape]
        if bad or n_nodes != (1 << (self.depth + 1)) - 1:
            raise NNError(f"pca-tree arrays of the wrong shape: {bad or ['lo']}")

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return dict(self.options), {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def from_state(cls, points: np.ndarray, options: dict, arrays: dict) -> PCATreeNN:
        self = cls.__new__(cls)
        NearestNeighbour.__init__(self, _as_points(points))
        self._set_options(**options)
        self._set_arrays(arrays)
        return self

    def project(self, queries: np.ndarray) -> np.ndarray:
        """Queries ``(Q, D)`` in the tree's PCA coordinates, ``(Q, Dpad)`` float32."""
        out = np.zeros((len(queries), self.dpad), np.float32)
        out[:, : self.dim] = (np.asarray(queries, np.float64) - self.mean) @ self.rotation
        return out

    def _query(self, queries, hint, exclude):
        import numba

        from seqhand.synth import _nn_kernels as kern

        q64 = np.ascontiguousarray(queries, dtype=np.float64)
        qp = self.project(q64)
        hint_pos = np.full(len(qp), -1, np.int64) if hint is None else self.pos[hint]
        excl_pos = np.full((len(qp), 1), -1, np.int64) if exclude is None else self.pos[exclude]
        order = None
        if hint is not None:  # neighbouring queries share tree nodes: search them in tree order
            order = np.argsort(hint_pos, kind="stable")
            qp, hint_pos, excl_pos, q64 = qp[order], hint_pos[order], excl_pos[order], q64[order]
        with numba.parallel_chunksize(1):  # dynamic scheduling: robust to a busy core
            idx = kern.query_tree(
                self.head, self.rows, self.lo, self.hi, self.boxes, self.n_internal, qp, hint_pos,
                excl_pos, self.margins, self.max_candidates, self.points, self.perm, q64,
            )  # fmt: skip
        overflow = idx < 0
        if np.any(overflow):  # only possible with many exact duplicates in the bank
            ex = None if exclude is None else self.perm[excl_pos[overflow]]
            idx[overflow] = BruteForceNN(self.points)._query(q64[overflow], None, ex)
        if order is not None:
            out = np.empty_like(idx)
            out[order] = idx
            idx = out
        return idx


METHODS: dict[str, type[NearestNeighbour]] = {
    "pca-tree": PCATreeNN,
    "bruteforce": BruteForceNN,
    "faiss-flat": FaissFlatNN,
    "faiss-ivf": FaissIVFNN,
}


def build_nn(points: np.ndarray, method: str = "pca-tree", **options) -> NearestNeighbour:
    """Build a nearest-neighbour index over ``points (N, D)`` with a method of :data:`METHODS`."""
    if method not in METHODS:
        raise NNError(f"unknown nearest-neighbour method {method!r}; known: {sorted(METHODS)}")
    return METHODS[method].build(points, **options)


def points_digest(points: np.ndarray) -> str:
    """sha256 of ``(N, D)`` points as the index sees them (float32, C order) and their shape."""
    p = _as_points(points)
    h = hashlib.sha256(repr(p.shape).encode())
    h.update(p.data)
    return h.hexdigest()


def cached_nn(
    points: np.ndarray, folder: str | os.PathLike, method: str = "pca-tree", **options
) -> NearestNeighbour:
    """:func:`build_nn`, kept in ``folder`` for the next process.

    The folder holds the index of exactly these points and options (``key.json``: the method,
    its options with defaults, :func:`points_digest`, :data:`CACHE_VERSION`) and its arrays as
    ``.npy`` files, memory-mapped read-only here. A missing, stale or unreadable folder is
    rebuilt and replaced whole (written under a temporary name, then renamed); when it cannot
    be written the index is only built. Queries give the same answers either way.
    Methods without a saved form (:attr:`NearestNeighbour.cacheable`) are just built.
    """
    if method not in METHODS:
        raise NNError(f"unknown nearest-neighbour method {method!r}; known: {sorted(METHODS)}")
    cls = METHODS[method]
    if not cls.cacheable:
        return build_nn(points, method, **options)
    points = _as_points(points)
    bound = inspect.signature(cls).bind(points, **options)
    bound.apply_defaults()
    full = {k: v for k, v in bound.arguments.items() if k != "points"}
    key = {"version": CACHE_VERSION, "method": method, "options": full,
           "points": points_digest(points)}  # fmt: skip
    folder = Path(folder)
    index = _load_index(cls, points, folder, key)
    if index is None:
        log.info("building the %s search index of %d points -> %s", method, len(points), folder)
        index = cls.build(points, **full)
        _save_index(index, folder, key)
    return index


def _load_index(cls, points, folder: Path, key: dict) -> NearestNeighbour | None:
    try:
        if json.loads((folder / "key.json").read_text()) != key:
            return None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                  for name in cls.ARRAYS}  # fmt: skip
        return cls.from_state(points, key["options"], arrays)
    except (OSError, ValueError) as e:  # NNError is a ValueError
        if not isinstance(e, FileNotFoundError):
            log.warning("%s: unreadable search index (%s); rebuilding it", folder, e)
        return None


def _save_index(index: NearestNeighbour, folder: Path, key: dict) -> None:
    _, arrays = index.state()
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.mkdir(parents=True)
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", a)
        (tmp / "key.json").write_text(json.dumps(key, indent=1))
        try:
            os.rename(tmp, folder)  # atomic; refused when a (stale) folder is in the way
        except OSError:
            old = tmp.with_suffix(".old.tmp")
            os.rename(folder, old)  # processes that mapped it keep their pages
            os.rename(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        log.warning("could not save the search index to %s (%s); it is rebuilt next time",
                    folder, e)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
