"""Named hand gestures (flat, relaxed, fist, pinch, OK, point, spread, ...) as hand poses.

A gesture is stored as *anatomical* angles in the layout of :mod:`seqhand.hand.prior`:
``(5, 3, 3)`` = finger (thumb, index, middle, ring, pinky), level (MCP, PIP, DIP; for the thumb
CMC, MCP, IP), angle (flex, abd, twist) in radians. For the thumb's CMC the three angles are
(across the palm, palmar abduction, opposition). :func:`gesture_pose` turns it into the 45
axis-angle numbers of a hand model (MANO's joint order, **relative to the flat hand**) with the
prior's anatomical axes computed from that model's rest joints, so the same gesture serves the
built-in hand and a MANO asset.

For the built-in hand (whose frame is described in :mod:`seqhand.hand.builtin`), the axes are
about +x for the flexion of the four fingers, so e.g. ``gesture_pose("fist")`` has a large
positive x component at every finger joint. The thumb angles were solved on the built-in hand:
in pinch and OK the thumb and index fingertips are ~9 mm apart (pads touching); in fist, point
and victory the thumb tip rests on the curled fingers' middle phalanges.
"""

from __future__ import annotations

import numpy as np

from seqhand.conventions import NUM_POSE
from seqhand.hand.asset import HandAsset, load_asset


def _gesture(
    fingers: tuple[tuple[float, float], ...],
    thumb: tuple[float, float, float, float, float],
    spread: float = 0.0,
    dip_ratio: float = 2.0 / 3.0,
) -> np.ndarray:
    """Anatomical ``(5, 3, 3)`` from (MCP, PIP) flexion per finger (index..pinky), the thumb's
    (CMC across, CMC palmar abduction, CMC opposition, MCP flex, IP flex), and a spread amount
    (abduction of the MCPs, radians at the index; the others proportionally)."""
    a = np.zeros((5, 3, 3))
    for k, (mcp, pip) in enumerate(fingers, start=1):
        a[k, 0, 0], a[k, 1, 0], a[k, 2, 0] = mcp, pip, dip_ratio * pip
    a[1:, 0, 1] = spread * np.array([1.0, 0.13, -0.57, -1.13])
    a[0, 0] = thumb[:3]
    a[0, 1, 0], a[0, 2, 0] = thumb[3], thumb[4]
    return a


GESTURES: dict[str, np.ndarray] = {
    "flat": np.zeros((5, 3, 3)),
    "relaxed": _gesture(((0.25, 0.35), (0.3, 0.45), (0.38, 0.55), (0.45, 0.65)),
                        (0.15, 0.3, 0.3, 0.2, 0.2), spread=0.08),
    "fist": _gesture(((1.45, 1.7), (1.5, 1.7), (1.55, 1.7), (1.6, 1.7)),
                     (0.161, -0.25, -0.226, 1.028, 1.35), spread=-0.05),
    "pinch": _gesture(((0.794, 0.763), (0.45, 0.6), (0.55, 0.7), (0.65, 0.8)),
                      (0.288, 0.273, 0.543, 0.187, 0.298), spread=0.09, dip_ratio=0.638),
    "ok": _gesture(((0.815, 0.883), (0.05, 0.1), (0.1, 0.15), (0.15, 0.2)),
                   (0.287, 0.224, 0.49, 0.265, 0.346), spread=0.09, dip_ratio=0.585),
    "point": _gesture(((0.0, 0.05), (1.45, 1.7), (1.5, 1.7), (1.55, 1.7)),
                      (0.567, -0.25, -0.101, 0.823, 1.35)),
    "spread": _gesture(((-0.1, 0.0), (-0.1, 0.0), (-0.1, 0.0), (-0.1, 0.0)),
                       (-0.35, 0.2, 0.0, 0.0, 0.0), spread=0.3),
    "victory": _gesture(((0.0, 0.0), (0.0, 0.0), (1.5, 1.7), (1.55, 1.7)),
                        (0.754, -0.25, -0.25, 0.862, 1.35), spread=0.25),
}  # fmt: skip
"""Anatomical angles ``(5, 3, 3)`` of each named gesture (see the module docstring)."""


def gesture_names() -> tuple[str, ...]:
    return tuple(GESTURES)


def gesture_pose(name: str, asset: HandAsset | str | None = None) -> np.ndarray:
    """The 45 axis-angle numbers ``(45,)`` of a named gesture, relative to the flat hand.

    Args:
        name: one of :data:`GESTURES`.
        asset: the hand model whose rest joints define the axes (default: the built-in hand).
    """
    if name not in GESTURES:
        raise ValueError(f"unknown gesture {name!r}; known: {list(GESTURES)}")
    if name == "flat":
        return np.zeros(NUM_POSE)
    from seqhand.hand.prior import anatomical_axes, anatomical_to_pose, rest_joints

    asset = load_asset(asset)
    axes = anatomical_axes(rest_joints(asset), asset.side)
    return anatomical_to_pose(GESTURES[name][None], axes)[0]
