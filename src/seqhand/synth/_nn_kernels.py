"""Numba kernels of :class:`seqhand.synth.nn.PCATreeNN` (build and query of the k-d tree).

The tree is an implicit complete binary tree of ``depth`` levels over the rows of a
``(N, Dpad)`` float32 array of PCA coordinates: node ``i`` has children ``2i+1`` and ``2i+2``,
covers the contiguous range ``[lo[i], hi[i])`` of the permuted rows and splits it at its middle
along the leading component (among the first ``box_dims``) of largest spread. Every node keeps
the data box (min / max per component) of its rows over the first ``box_dims`` components;
the squared distance from a query to a box lower-bounds its distance to every row inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _nth_element(keys, vals, k):
    """Partially sort ``keys`` (moving ``vals`` along) so that ``keys[k]`` is the k-th smallest,
    everything left of it <= and right of it >= it (Hoare selection, median-of-three pivot)."""
    lo, hi = 0, len(keys) - 1
    while hi > lo:
        mid = (lo + hi) // 2
        a, b, c = keys[lo], keys[mid], keys[hi]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while keys[i] < pivot:
                i += 1
            while keys[j] > pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                vals[i], vals[j] = vals[j], vals[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True, parallel=True)
def build_tree(rows, depth, box_dims):
    """Split ``rows (N, >= box_dims)`` (reordered in place, so every node's rows stay
    contiguous) into the implicit tree; returns ``perm`` (original row of each position) and
    the node ranges ``lo``, ``hi``."""
    n = rows.shape[0]
    n_nodes = (1 << (depth + 1)) - 1
    perm = np.arange(n).astype(np.int64)
    lo = np.zeros(n_nodes, np.int64)
    hi = np.zeros(n_nodes, np.int64)
    hi[0] = n
    for level in range(depth):
        first = (1 << level) - 1
        count = 1 << level
        for t in prange(count):
            node = first + t
            a, b = lo[node], hi[node]
            mid = a + (b - a) // 2
            best_dim, best_spread = 0, -1.0
            if b - a > 1:
                for d in range(box_dims):
                    mn, mx = np.inf, -np.inf
                    for r in range(a, b):
                        v = rows[r, d]
                        mn = min(mn, v)
                        mx = max(mx, v)
                    if mx - mn > best_spread:
                        best_spread, best_dim = mx - mn, d
                keys = rows[a:b, best_dim].copy()
                order = np.arange(b - a)
                _nth_element(keys, order, mid - a)
                perm[a:b] = perm[a:b][order]
                rows[a:b] = rows[a:b][order]
            lo[2 * node + 1], hi[2 * node + 1] = a, mid
            lo[2 * node + 2], hi[2 * node + 2] = mid, b
    return perm, lo, hi


@njit(cache=True, parallel=True)
def node_boxes(rows, lo, hi, depth, box_dims):
    """Data boxes ``(n_nodes, 2, box_dims)`` (min, max) of every node over the rows in leaf
    order (``rows[r]`` = the r-th row of the permuted order): leaves first, then unions."""
    n_nodes = len(lo)
    boxes = np.empty((n_nodes, 2, box_dims), np.float32)
    first_leaf = (1 << depth) - 1
    for t in prange(1 << depth):
        node = first_leaf + t
        for d in range(box_dims):
            mn, mx = np.inf, -np.inf
            for r in range(lo[node], hi[node]):
                v = rows[r, d]
                mn = min(mn, v)
                mx = max(mx, v)
            boxes[node, 0, d] = mn
            boxes[node, 1, d] = mx
    for level in range(depth - 1, -1, -1):
        first = (1 << level) - 1
        for t in prange(1 << level):
            node = first + t
            for d in range(box_dims):
                boxes[node, 0, d] = min(boxes[2 * node + 1, 0, d], boxes[2 * node + 2, 0, d])
                boxes[node, 1, d] = max(boxes[2 * node + 1, 1, d], boxes[2 * node + 2, 1, d])
    return boxes


# Reassociation / contraction only: the search compares against +inf, so no "ninf"/"nnan".
_FAST = {"reassoc", "contract", "nsz", "arcp"}

HEAD = 8
"""Leading components stored dims-major (``head[d, row]``) for the vectorised first pass."""


@njit(cache=True, inline="always", fastmath=_FAST)
def _box_dist(q, boxes, node):
    """Squared distance (float32) from ``q`` to the data box ``boxes[node] = (min, max)``."""
    acc = np.float32(0.0)
    for d in range(boxes.shape[2]):
        v = q[d]
        below = max(boxes[node, 0, d] - v, np.float32(0.0))
        above = max(v - boxes[node, 1, d], np.float32(0.0))
        acc += below * below + above * above
    return acc


@njit(cache=True, inline="always", fastmath=_FAST)
def _tail_dist(rows, r, q, acc, thr):
    """Add the components after the head to ``acc`` (float32), in blocks of 8, stopping early
    (returning a value > thr) once the sum exceeds ``thr``."""
    dpad = rows.shape[1]
    d = HEAD
    while d < dpad:
        part = np.float32(0.0)
        for k in range(d, d + 8):
            x = rows[r, k] - q[k]
            part += x * x
        acc += part
        if acc > thr:
            return acc
        d += 8
    return acc


@njit(cache=True, inline="always")
def _threshold(best, m_abs, m_lin, m_rel):
    """Search radius (squared) = best + float-error margin."""
    return best + m_abs + m_lin * np.sqrt(best) + m_rel * best


@njit(cache=True, inline="always")
def _heap_push(hn, hl, size, node, lb):
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if hl[parent] <= lb:
            break
        hn[i] = hn[parent]
        hl[i] = hl[parent]
        i = parent
    hn[i] = node
    hl[i] = lb


@njit(cache=True, inline="always")
def _heap_pop(hn, hl, size):
    """Remove the root of a heap of ``size`` entries (``size - 1`` remain)."""
    size -= 1
    node = hn[size]
    lb = hl[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and hl[c + 1] < hl[c]:
            c += 1
        if hl[c] >= lb:
            break
        hn[i] = hn[c]
        hl[i] = hl[c]
        i = c
    hn[i] = node
    hl[i] = lb


@njit(cache=True, fastmath=_FAST)
def _search_one(head, rows, lo, hi, boxes, n_internal, q, hint, excl, margins, hn, hl, acc,
                c_pos, c_d):  # fmt: skip
    """Best-first search for one query; returns the number of candidates (-1 on overflow).
    Rows ``excl`` (row positions, -1 for none) are never candidates.

    Nodes are expanded in order of their lower bound, so only nodes whose bound is below the
    final radius (+ margin) are visited. Each node is pushed at most once, so heaps of
    ``len(lo)`` entries never overflow. Leaf rows get a vectorised pass over the head
    components (``acc``), and the survivors the rest with early exits."""
    m_abs, m_lin, m_rel = margins[0], margins[1], margins[2]
    kmax = len(c_pos)
    nc = 0
    overflow = False
    best = np.inf
    excluded_hint = False
    for e in range(len(excl)):
        excluded_hint |= hint == excl[e]
    if hint >= 0 and not excluded_hint:
        a = np.float32(0.0)
        for d in range(HEAD):
            x = head[d, hint] - q[d]
            a += x * x
        best = float(_tail_dist(rows, hint, q, a, np.inf))
    thr = _threshold(best, m_abs, m_lin, m_rel)
    hn[0] = 0
    hl[0] = 0.0
    size = 1
    while size > 0:
        node = hn[0]
        nlb = hl[0]
        if nlb > thr:
            break  # every remaining node is farther
        _heap_pop(hn, hl, size)
        size -= 1
        if node >= n_internal:
            a0, n = lo[node], hi[node] - lo[node]
            for k in range(n):
                acc[k] = 0.0
            for d in range(HEAD):
                qd = q[d]
                for k in range(n):
                    x = head[d, a0 + k] - qd
                    acc[k] += x * x
            for k in range(n):
                if acc[k] > thr:
                    continue
                r = a0 + k
                skip = False
                for e in range(len(excl)):
                    skip |= r == excl[e]
                if skip:
                    continue
                dist = float(_tail_dist(rows, r, q, acc[k], thr))
                if dist > thr:
                    continue
                if dist < best:
                    best = dist
                    thr = _threshold(best, m_abs, m_lin, m_rel)
                if nc == kmax:  # compact: keep the candidates still inside the margin
                    k2 = 0
                    for j in range(nc):
                        if c_d[j] <= thr:
                            c_pos[k2] = c_pos[j]
                            c_d[k2] = c_d[j]
                            k2 += 1
                    nc = k2
                if nc < kmax:
                    c_pos[nc] = r
                    c_d[nc] = dist
                    nc += 1
                else:
                    overflow = True
        else:
            for c in range(2 * node + 1, 2 * node + 3):
                lb = max(nlb, float(_box_dist(q, boxes, c)))
                if lb <= thr:
                    _heap_push(hn, hl, size, c, lb)
                    size += 1
    k2 = 0
    for j in range(nc):
        if c_d[j] <= thr:
            c_pos[k2] = c_pos[j]
            k2 += 1
    return -1 if overflow else k2


@njit(cache=True)
def _exact_pick(points, perm, q64, c_pos, nc):
    """Exact float64 re-check of ``nc`` candidates (row positions) on the original points:
    the original index with the smallest distance, ties to the lowest index."""
    best_i = -1
    best_d = np.inf
    for j in range(nc):
        i = perm[c_pos[j]]
        acc = 0.0
        for d in range(points.shape[1]):
            x = np.float64(points[i, d]) - q64[d]
            acc += x * x
        if acc < best_d or (acc == best_d and i < best_i):
            best_d = acc
            best_i = i
    return best_i


@njit(cache=True, parallel=True)
def query_tree(head, rows, lo, hi, boxes, n_internal, queries, hint_pos, excl_pos, margins, kmax,
               points, perm, queries64):  # fmt: skip
    """Exact nearest neighbour of every query: original indices ``(Q,)``, -1 where the
    candidate buffer overflowed (the caller answers those by brute force). ``excl_pos``
    ``(Q, m)``: row positions that may not be a query's answer (-1: none).

    ``queries`` are in the tree's PCA coordinates (float32), ``queries64`` the same queries in
    the original coordinates (float64) for the final exact re-check on ``points``."""
    nq = queries.shape[0]
    out = np.full(nq, -1, np.int64)
    n_chunks = min(nq, 256)
    max_leaf = 0
    for i in range(n_internal, len(lo)):
        max_leaf = max(max_leaf, hi[i] - lo[i])
    for t in prange(n_chunks):
        hn = np.empty(len(lo), np.int64)
        hl = np.empty(len(lo), np.float64)
        acc = np.empty(max_leaf, np.float32)
        c_pos = np.empty(kmax, np.int64)
        c_d = np.empty(kmax, np.float64)
        for qi in range(t * nq // n_chunks, (t + 1) * nq // n_chunks):
            k = _search_one(head, rows, lo, hi, boxes, n_internal, queries[qi], hint_pos[qi],
                            excl_pos[qi], margins, hn, hl, acc, c_pos, c_d)  # fmt: skip
            if k >= 0:
                out[qi] = _exact_pick(points, perm, queries64[qi], c_pos, k)
    return out
