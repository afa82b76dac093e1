"""Checks on triangle meshes: closed 2-manifold, orientation, volume, degenerate and inverted faces.

Pure numpy functions on ``verts (V, 3)`` / ``(B, V, 3)`` and ``faces (F, 3)`` (counter-clockwise
seen from outside). Used by the tests of the built-in hand and by ``seqhand hand info``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TopologyReport:
    """What :func:`topology` found.

    Attributes:
        num_vertices, num_faces, num_edges: counts (unused vertices included in V).
        boundary_edges: edges with one face. nonmanifold_edges: edges with three or more faces.
        misoriented_edges: edges whose two faces traverse them in the same direction.
        unused_vertices: vertices in no face. euler: V - E + F (2 for a closed sphere-like surface).
        components: connected components of the face graph.
    """

    num_vertices: int
    num_faces: int
    num_edges: int
    boundary_edges: int
    nonmanifold_edges: int
    misoriented_edges: int
    unused_vertices: int
    euler: int
    components: int

    @property
    def is_closed_oriented_sphere(self) -> bool:
        """Watertight, every edge in exactly two faces with opposite directions, genus 0."""
        return (
            self.boundary_edges == 0
            and self.nonmanifold_edges == 0
            and self.misoriented_edges == 0
            and self.unused_vertices == 0
            and self.components == 1
            and self.euler == 2
        )


def topology(faces: np.ndarray, num_vertices: int) -> TopologyReport:
    """Edge-based topology of a triangle mesh ``faces (F, 3)`` over ``num_vertices`` vertices."""
    f = np.asarray(faces, dtype=np.int64)
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # directed half-edges
    key = np.sort(half, axis=1)
    uniq, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    # an edge is well oriented if its two half-edges run in opposite directions
    forward = (half[:, 0] < half[:, 1]).astype(np.int64)
    fwd_count = np.bincount(inv, weights=forward, minlength=len(uniq))
    two = counts == 2
    misoriented = int(np.sum(two & (fwd_count != 1)))
    used = np.zeros(num_vertices, dtype=bool)
    used[f.reshape(-1)] = True
    # connected components of faces via union-find over shared vertices
    parent = np.arange(num_vertices)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in uniq:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    roots = {find(int(v)) for v in np.nonzero(used)[0]}
    return TopologyReport(
        num_vertices=int(num_vertices),
        num_faces=len(f),
        num_edges=len(uniq),
        boundary_edges=int(np.sum(counts == 1)),
        nonmanifold_edges=int(np.sum(counts > 2)),
        misoriented_edges=misoriented,
        unused_vertices=int(np.sum(~used)),
        euler=int(num_vertices - len(uniq) + len(f)),
        components=len(roots),
    )


def face_normals(verts: np.ndarray, faces: np.ndarray, unit: bool = True) -> np.ndarray:
    """Face normals ``(..., F, 3)`` of ``verts (..., V, 3)``; length = 2 x area if not unit.

    Keeps a floating dtype (float32 in, float32 out)."""
    v = np.asarray(verts)
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float64)
    vt = np.moveaxis(v, -1, 0)  # (3, ..., V): component-wise products are much faster
    a, b, c = (vt[..., faces[:, k]] for k in range(3))
    e1, e2 = b - a, c - a
    n = np.stack(
        [
            e1[1] * e2[2] - e1[2] * e2[1],
            e1[2] * e2[0] - e1[0] * e2[2],
            e1[0] * e2[1] - e1[1] * e2[0],
        ],
        axis=-1,
    )
    if unit:
        n /= np.maximum(np.sqrt(np.sum(n * n, axis=-1, keepdims=True)), 1e-30)
    return n


def face_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangle areas ``(..., F)`` in squared vertex units."""
    return 0.5 * np.linalg.norm(face_normals(verts, faces, unit=False), axis=-1)


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Enclosed volume ``(...)`` of a closed mesh (divergence theorem); > 0 if normals point out."""
    v = np.asarray(verts, dtype=np.float64)
    a, b, c = (v[..., faces[:, k], :] for k in range(3))
    return np.einsum("...i,...i->...", a, np.cross(b, c)).sum(-1) / 6.0


def dominant_joint(weights: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per face ``(F,)``, the joint with the largest summed skinning weight of its 3 vertices."""
    return np.asarray(weights)[faces].sum(1).argmax(1)


def inverted_faces(
    rest_verts: np.ndarray,
    posed_verts: np.ndarray,
    faces: np.ndarray,
    weights: np.ndarray,
    joint_rotations: np.ndarray,
) -> np.ndarray:
    """Boolean ``(..., F)``: faces whose posed normal opposes their rotated rest normal.

    A face is *inverted* if its posed normal points opposite to its rest normal rotated by the
    world rotation of its dominant joint (:func:`dominant_joint`).

    Args:
        rest_verts: ``(V, 3)`` or ``(..., V, 3)`` shaped rest vertices.
        posed_verts: ``(..., V, 3)``. faces: ``(F, 3)``. weights: ``(V, J)``.
        joint_rotations: ``(..., J, 3, 3)`` world rotation of each joint.
    """
    dom = dominant_joint(weights, faces)
    n1 = face_normals(posed_verts, faces)
    n0 = np.broadcast_to(face_normals(rest_verts, faces), n1.shape)
    rot = np.asarray(joint_rotations)
    dot = np.empty(n1.shape[:-1])
    for j in np.unique(dom):  # (R n0) . n1 = (n1^T R) . n0, one matrix product per joint
        sel = dom == j
        dot[..., sel] = np.sum((n1[..., sel, :] @ rot[..., j, :, :]) * n0[..., sel, :], axis=-1)
    return dot < 0
