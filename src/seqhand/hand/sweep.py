"""Sweeping cross-section rings into a closed triangle mesh with skinning weights.

Small geometric building blocks of the built-in hand (:mod:`seqhand.hand.builtin_mesh`):
superelliptical sections, smoothstep skinning blends along a bone chain, and a mesh builder that
stitches rings into tubes (quads split into two counter-clockwise triangles), closes them with
fans and rounds them off with ellipsoidal caps. Units are whatever the caller uses.
"""

from __future__ import annotations

import numpy as np

from seqhand.conventions import MANO_NUM_JOINTS


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def perp(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    return unit(v - np.dot(v, t) * t)


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def superellipse(theta: np.ndarray, p: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(theta), np.sin(theta)
    e = 2.0 / np.asarray(p, dtype=np.float64)
    return np.sign(c) * np.abs(c) ** e, np.sign(s) * np.abs(s) ** e


def section(theta: np.ndarray, a: float, b: float, pad: float, p: float = 2.3) -> np.ndarray:
    """2D cross-section points ``(n, 2)`` (lateral, dorsal) at ring angles ``theta``."""
    x, z = superellipse(theta, p)
    z = np.where(z < 0, z * (1.0 + pad), z)
    return np.stack([a * x, b * z], axis=-1)


def chain_weights(s: float, chain, knots, halfwidths) -> np.ndarray:
    """Skinning weights ``(16,)`` at position ``s`` along a bone chain whose parent is the wrist.

    ``knots`` are the three joints' positions along the chain; joint k hands the weight from
    its parent bone to its own bone over ``[knot - halfwidth, knot + halfwidth]`` (smoothstep).
    """
    t = [float(smoothstep((s - k + h) / (2 * h))) for k, h in zip(knots, halfwidths)]
    w = np.zeros(MANO_NUM_JOINTS)
    w[0] = 1.0 - t[0]
    w[chain[0]], w[chain[1]], w[chain[2]] = t[0] - t[1], t[1] - t[2], t[2]
    return w


def one_hot(j: int, value: float = 1.0) -> np.ndarray:
    w = np.zeros(MANO_NUM_JOINTS)
    w[0] = 1.0 - value
    w[j] += value
    return w


class MeshBuilder:
    """Accumulates vertices (with skinning weights) and triangles of the swept surface."""

    def __init__(self) -> None:
        self.verts: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.faces: list[tuple[int, int, int]] = []
        self.n = 0

    def add(self, pts: np.ndarray, w: np.ndarray) -> np.ndarray:
        pts = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        w = np.broadcast_to(np.asarray(w, dtype=np.float64), (len(pts), MANO_NUM_JOINTS))
        ids = np.arange(self.n, self.n + len(pts))
        self.verts.append(pts)
        self.weights.append(np.array(w))
        self.n += len(pts)
        return ids

    def points(self, ids: np.ndarray) -> np.ndarray:
        return np.concatenate(self.verts)[ids]

    def quad(self, a: int, b: int, c: int, d: int) -> None:
        """Quad a-b-c-d, counter-clockwise seen from outside."""
        self.faces += [(a, b, c), (a, c, d)]

    def strip(self, r0: np.ndarray, r1: np.ndarray) -> None:
        """Quads between two rings of equal length; ``r1`` lies further along the tube's axis
        and both run counter-clockwise about it (radial side -> dorsal -> ulnar -> palmar)."""
        m = len(r0)
        for i in range(m):
            j = (i + 1) % m
            self.quad(r0[i], r0[j], r1[j], r1[i])

    def fan(self, ring: np.ndarray, apex: int, at_end: bool) -> None:
        """Close a tube's end (``at_end``) or start with triangles to one apex vertex."""
        m = len(ring)
        for i in range(m):
            a, b = ring[i], ring[(i + 1) % m]
            self.faces.append((a, b, apex) if at_end else (apex, b, a))

    def cap(self, ring: np.ndarray, centre, axis, length, weights) -> tuple[list, int]:
        """Ellipsoidal cap past ``ring``: two rings and an apex ``centre + length * axis``."""
        pts0 = self.points(ring)
        rings = [ring]
        for psi in np.deg2rad([40.0, 70.0]):
            pts = centre + np.sin(psi) * length * axis + np.cos(psi) * (pts0 - centre)
            rings.append(self.add(pts, weights))
        apex = int(self.add(centre + length * axis, weights)[0])
        for r0, r1 in zip(rings[:-1], rings[1:]):
            self.strip(r0, r1)
        self.fan(rings[-1], apex, at_end=True)
        return rings, apex
