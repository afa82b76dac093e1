"""From the network's 26 numbers to a hand: the hand layer, Rodrigues and the camera (Eq. 3-4).

For a parameter vector ``[s, t(2), r(3), theta_pca(10), beta(10)]``:

1. the hand layer (``pose_origin="mean"``) poses and shapes the hand with
   ``pose_pca = theta_pca`` and ``betas = beta`` and its own global orientation at zero, giving
   joints J and vertices M in the hand model's frame (metres);
2. ``R = Rodrigues(r)`` carries the hand's global orientation (as in Boukhayma et al. and the
   paper, the hand model has none of its own): ``R J``, ``R M`` are camera-aligned;
3. the weak-perspective camera projects: ``x2d = s * Pi(R X) + t`` (pixels; Pi drops z).

So ``t`` is where the *origin of the hand model's frame* lands in the image (not the wrist),
exactly Eq. 3-4 applied to the hand layer's output.

The 3D outputs are camera-aligned and **root-relative**: ``R X - R J_wrist`` (metres, wrist at
the origin), the frame the 3D losses (Eq. 9-10) and the metrics compare in; ground truth must be
brought to it by subtracting its own wrist (or other root).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from seqhand.conventions import OUTPUT_DIM, WRIST, split_output
from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.hand.layer import HandLayer


@dataclasses.dataclass
class DecodedHand:
    """A decoded hand; leading dims ``(...)`` are those of the parameters, e.g. ``(B, T)``.

    Attributes:
        joints3d: ``(..., 21, 3)`` joints, camera-aligned (R applied), root-relative, metres.
        vertices3d: ``(..., V, 3)`` vertices in the same frame, metres.
        joints2d: ``(..., 21, 2)`` projected joints, pixels.
        vertices2d: ``(..., V, 2)`` projected vertices, pixels.
        root3d: ``(..., 3)`` ``R J_wrist`` in the hand model's frame (add it back to undo the
            root-relative shift), metres.
        params: the named parts of the input (``scale (..., 1)``, ``trans (..., 2)``,
            ``rot (..., 3)``, ``pose_pca (..., 10)``, ``betas (..., 10)``).
    """

    joints3d: torch.Tensor
    vertices3d: torch.Tensor
    joints2d: torch.Tensor
    vertices2d: torch.Tensor
    root3d: torch.Tensor
    params: dict[str, torch.Tensor]


def decode_params(
    params: torch.Tensor, hand_layer: HandLayer, rotmat: torch.Tensor | None = None
) -> DecodedHand:
    """Decode ``(..., 26)`` network parameters (any leading dims) with ``hand_layer``.

    ``rotmat``: optional ``(..., 3, 3)`` rotation used instead of ``Rodrigues(r)`` (the 6D
    head's R, so that gradients do not pass through the axis-angle).

    ``hand_layer`` must use ``pose_origin="mean"`` (the network's pose PCA code is relative to
    the mean hand). See the module docstring for frames and units.
    """
    if params.shape[-1] != OUTPUT_DIM:
        raise ValueError(f"expected (..., {OUTPUT_DIM}) parameters, got {tuple(params.shape)}")
    if getattr(hand_layer, "pose_origin", None) != "mean":
        raise ValueError(
            "decode needs a HandLayer with pose_origin='mean' (theta_pca is relative to the mean "
            f"hand), got pose_origin={getattr(hand_layer, 'pose_origin', None)!r}"
        )
    lead = params.shape[:-1]
    flat = params.reshape(-1, OUTPUT_DIM).to(hand_layer.v_template.dtype)
    parts = split_output(flat)
    out = hand_layer(pose_pca=parts["pose_pca"], betas=parts["betas"])
    nj = out.joints.shape[1]
    pts = torch.cat([out.joints, out.vertices], dim=1)  # (N, 21 + V, 3), hand-model frame
    if rotmat is None:
        rmat = axis_angle_to_matrix(parts["rot"])
    else:
        rmat = rotmat.reshape(-1, 3, 3).to(flat.dtype)
    rotated = pts @ rmat.transpose(-1, -2)  # R X
    x2d = parts["scale"][:, None, :] * rotated[..., :2] + parts["trans"][:, None, :]
    root = rotated[:, WRIST]
    rel = rotated - root[:, None]

    def shape(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(lead + x.shape[1:])

    return DecodedHand(
        joints3d=shape(rel[:, :nj]),
        vertices3d=shape(rel[:, nj:]),
        joints2d=shape(x2d[:, :nj]),
        vertices2d=shape(x2d[:, nj:]),
        root3d=shape(root),
        params={k: shape(v) for k, v in parts.items()},
    )


class HandDecoder(nn.Module):
    """Thin module around :func:`decode_params` that owns the hand layer.

    Args:
        hand_layer: a :class:`HandLayer` with ``pose_origin="mean"``, or an asset spec (path,
            ``None``/``"builtin"``) to build one.
    """

    def __init__(self, hand_layer: HandLayer | str | None = None) -> None:
        super().__init__()
        if not isinstance(hand_layer, HandLayer):
            hand_layer = HandLayer(hand_layer, pose_origin="mean")
        self.hand_layer = hand_layer

    @property
    def faces(self) -> torch.Tensor:
        """``(F, 3)`` triangle vertex ids of the mesh."""
        return self.hand_layer.faces

    def forward(self, params: torch.Tensor, rotmat: torch.Tensor | None = None) -> DecodedHand:
        return decode_params(params, self.hand_layer, rotmat)
