"""Facts about a hand-model asset: mesh topology, size, volume (``seqhand hand info``)."""

from __future__ import annotations

import numpy as np

from seqhand.conventions import M_TO_MM
from seqhand.hand.asset import HandAsset, load_asset
from seqhand.hand.meshcheck import signed_volume, topology

_TIPS = ("thumb", "index", "middle", "ring", "pinky")


def asset_summary(asset: HandAsset | str | None = None) -> dict:
    """A JSON-friendly summary of a hand model (lengths in millimetres, volume in cm^3).

    Keys: name, side, vertices, faces, closed_oriented_genus0 (every edge in exactly two
    faces with opposite directions, Euler characteristic 2, one component), euler, volume_cm3,
    hand_length_mm (wrist joint to the middle fingertip vertex), palm_width_mm (index to
    pinky MCP joints), finger_lengths_mm (MCP joint -> tip vertex, thumb from its CMC),
    num_betas, pose_correctives (whether posedirs is non-zero), tip_vertex_ids.
    """
    a = load_asset(asset)
    topo = topology(a.f, a.num_vertices)
    j = a.J_regressor @ a.v_template
    tips = a.v_template[a.tip_vertex_ids]
    base = {"thumb": 13, "index": 1, "middle": 4, "ring": 10, "pinky": 7}
    return {
        "name": a.name,
        "side": a.side,
        "vertices": a.num_vertices,
        "faces": int(len(a.f)),
        "closed_oriented_genus0": topo.is_closed_oriented_sphere,
        "euler": topo.euler,
        "volume_cm3": round(float(signed_volume(a.v_template, a.f)) * 1e6, 1),
        "hand_length_mm": round(float(np.linalg.norm(tips[2] - j[0])) * M_TO_MM, 1),
        "palm_width_mm": round(float(np.linalg.norm(j[1] - j[7])) * M_TO_MM, 1),
        "finger_lengths_mm": {
            f: round(float(np.linalg.norm(tips[i] - j[base[f]])) * M_TO_MM, 1)
            for i, f in enumerate(_TIPS)
        },
        "num_betas": a.num_betas,
        "pose_correctives": bool(np.any(a.posedirs != 0)),
        "tip_vertex_ids": [int(t) for t in a.tip_vertex_ids],
    }
