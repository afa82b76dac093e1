"""The hand layer: MANO's linear blend skinning in PyTorch, for MANO and the built-in hand.

Stateless: the model data are registered buffers (``.to(device)``, ``.double()`` and
``state_dict`` just work); the pose and shape come in as arguments. Output joints are in the
project's 21-joint order (16 kinematic joints + 5 fingertip vertices), in metres.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
from torch import nn

from seqhand.conventions import MANO21_TO_PROJECT, MANO_NUM_JOINTS, NUM_POSE
from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.hand.asset import HandAsset, load_asset

PoseOrigin = Literal["flat", "mean"]
# Joints of MANO's tree grouped by depth; a level's transforms are composed in one batched op.
_LEVELS = ((1, 4, 7, 10, 13), (2, 5, 8, 11, 14), (3, 6, 9, 12, 15))
# Position, in the concatenation [root, level 1, level 2, level 3], of each MANO joint.
_LEVEL_ORDER = torch.as_tensor(np.argsort(np.array((0,) + sum(_LEVELS, ()))), dtype=torch.long)


@dataclasses.dataclass
class HandOutput:
    """What the hand layer returns (all in metres, hand-model frame + optional translation).

    Attributes:
        vertices: ``(B, V, 3)`` posed mesh vertices.
        joints: ``(B, 21, 3)`` joints in the project's order.
        transforms: ``(B, 16, 4, 4)`` world transform of each kinematic joint (MANO order):
            rotation = accumulated joint rotation, translation = posed joint position.
        skinning: ``(B, 16, 4, 4)`` skinning transforms (rest pose -> posed) per joint.
        full_pose: ``(B, 48)`` global orientation + the 45 hand-pose numbers actually applied
            (relative to the flat hand).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    transforms: torch.Tensor
    skinning: torch.Tensor
    full_pose: torch.Tensor


class HandLayer(nn.Module):
    """Differentiable MANO-style hand layer.

    Args:
        asset: a :class:`HandAsset`, a path (``.npz`` / MANO ``.pkl``) or ``None``/"builtin".
        pose_origin: what a zero hand pose means - ``"flat"`` (the flat template hand) or
            ``"mean"`` (MANO's ``hands_mean`` is added to the given pose, as in MANO's default).
            Explicit on purpose: this choice is silently different between libraries.
        num_betas: how many shape directions to use (default: all in the asset, at most 10).
        dtype: dtype of the buffers (``float32`` or ``float64``).
        compile: run the skinning core through ``torch.compile`` for batches of at least
            :data:`COMPILE_MIN_BATCH` (fused kernels: ~2x the whole layer at batch 1,024 on a
            CPU; smaller batches stay eager, where compiled calls cost more than they save).
            The first call pays a compile of ~10-20 s, cached on disk afterwards. Off by default.

    The PCA basis (``hands_components``, one component per row) is always available; pass
    ``pose_pca`` with k <= 45 coefficients instead of ``hand_pose``.
    """

    def __init__(
        self,
        asset: HandAsset | str | None = None,
        *,
        pose_origin: PoseOrigin,
        num_betas: int | None = None,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self._compiled = _compiled_skin() if compile else None
        if pose_origin not in ("flat", "mean"):
            raise ValueError(f"pose_origin must be 'flat' or 'mean', got {pose_origin!r}")
        asset = load_asset(asset)
        self.asset_name = asset.name
        self.side = asset.side
        self.pose_origin = pose_origin
        nb = asset.num_betas if num_betas is None else int(num_betas)
        if not 0 < nb <= asset.num_betas:
            raise ValueError(f"num_betas must be in [1, {asset.num_betas}], got {num_betas}")
        self.num_betas = nb
        nv = asset.num_vertices

        def buf(name: str, a: np.ndarray, dt=dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(a), dtype=dt))

        shapedirs = asset.shapedirs[:, :, :nb]
        buf("v_template", asset.v_template)
        buf("v_template_flat", asset.v_template.reshape(-1))
        # Shape (S, V*3) and pose-corrective (135, V*3) blend shapes stacked: one product.
        blend = np.concatenate(
            [shapedirs.reshape(nv * 3, nb).T, asset.posedirs.reshape(nv * 3, -1).T], 0
        )
        buf("blend_dirs", blend)
        # Joints are linear in beta: precompute the regressed template and shape directions,
        # stored coordinate-major (x of 16 joints, then y, then z).
        jreg = asset.J_regressor
        buf("J_template", jreg @ asset.v_template)  # (16, 3)
        buf("J_template_flat", (jreg @ asset.v_template).T.reshape(-1))  # (48,)
        buf("J_shapedirs", np.einsum("jv,vcs->scj", jreg, shapedirs).reshape(nb, -1))  # (S, 48)
        buf("J_regressor", jreg)
        buf("lbs_weights", asset.weights)
        buf("hands_components", asset.hands_components)
        buf("hands_mean", asset.hands_mean)  # always the asset's mean, whatever pose_origin
        mean = asset.hands_mean if pose_origin == "mean" else np.zeros(NUM_POSE)
        buf("pose_mean", mean)
        buf("faces", asset.f, torch.long)
        buf("tip_vertex_ids", asset.tip_vertex_ids, torch.long)
        self.register_buffer(
            "joint_order", torch.as_tensor(MANO21_TO_PROJECT, dtype=torch.long), persistent=False
        )

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def extra_repr(self) -> str:
        return (
            f"asset={self.asset_name!r}, side={self.side}, vertices={self.num_vertices}, "
            f"num_betas={self.num_betas}, pose_origin={self.pose_origin!r}"
        )

    def pca_to_pose(self, pose_pca: torch.Tensor) -> torch.Tensor:
        """``(B, k)`` PCA coefficients -> ``(B, 45)`` axis-angle, relative to ``pose_origin``."""
        k = pose_pca.shape[-1]
        if not 0 < k <= NUM_POSE:
            raise ValueError(f"pose_pca must have 1..45 coefficients, got {k}")
        return pose_pca @ self.hands_components[:k]

    def pose_to_pca(self, hand_pose: torch.Tensor, k: int) -> torch.Tensor:
        """Project ``(B, 45)`` axis-angle (relative to ``pose_origin``) onto the first k PCs.

        Exact inverse of :meth:`pca_to_pose` when k = 45 and the basis is orthonormal
        (least squares otherwise).
        """
        comps = self.hands_components[:k]
        return torch.linalg.lstsq(comps.T, hand_pose.T).solution.T

    def forward(
        self,
        global_orient: torch.Tensor | None = None,
        hand_pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        *,
        pose_pca: torch.Tensor | None = None,
    ) -> HandOutput:
        """Pose and shape the hand.

        Args:
            global_orient: ``(B, 3)`` axis-angle of the wrist (default zeros).
            hand_pose: ``(B, 45)`` axis-angle of the 15 finger joints, relative to
                ``pose_origin``. Mutually exclusive with ``pose_pca``.
            betas: ``(B, S)`` shape, S <= num_betas (missing ones are zero).
            transl: ``(B, 3)`` translation in metres added to vertices and joints.
            pose_pca: ``(B, k)`` PCA coefficients, k <= 45.
        """
        full_pose, betas = self._prepare(global_orient, hand_pose, betas, transl, pose_pca)
        bsz = full_pose.shape[0]
        rot, j_rest, glob_r, glob_t = self._kinematics(full_pose, betas)
        # Shape + pose blend shapes in one matrix product (joints are linear in beta).
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        feats = torch.cat([betas, (rot[:, 1:] - eye).reshape(bsz, -1)], 1)
        nv = self.v_template.shape[0]
        v_posed = torch.addmm(self.v_template_flat, feats, self.blend_dirs).view(bsz, nv, 3)
        # Skinning transforms: X -> G_R (X - J_rest) + G_t  =>  A_t = G_t - G_R J_rest.
        skin_t = glob_t - (glob_r @ j_rest.unsqueeze(-1)).squeeze(-1)
        a12 = torch.cat([glob_r, skin_t.unsqueeze(-1)], dim=-1).reshape(bsz, MANO_NUM_JOINTS, 12)
        use_compiled = self._compiled is not None and bsz >= COMPILE_MIN_BATCH
        verts = (self._compiled if use_compiled else skin)(self.lbs_weights, a12, v_posed)

        joints21 = torch.cat([glob_t, verts[:, self.tip_vertex_ids]], dim=1)[:, self.joint_order]
        if transl is not None:
            verts = verts + transl[:, None]
            joints21 = joints21 + transl[:, None]
            glob_t = glob_t + transl[:, None]
            skin_t = skin_t + transl[:, None]
        return HandOutput(
            vertices=verts,
            joints=joints21,
            transforms=_homogeneous(glob_r, glob_t),
            skinning=_homogeneous(glob_r, skin_t),
            full_pose=full_pose,
        )

    def skeleton(
        self,
        global_orient: torch.Tensor | None = None,
        hand_pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, 16, 3)`` posed kinematic joints (MANO order, metres) without the mesh: the same
        numbers as ``forward(...).transforms[..., :3, 3]``, at a fraction of the cost (no
        blend shapes, no skinning). Arguments as in :meth:`forward`."""
        full_pose, betas = self._prepare(global_orient, hand_pose, betas, None, None)
        return self._kinematics(full_pose, betas)[3]

    def _prepare(self, global_orient, hand_pose, betas, transl, pose_pca):
        """Check the inputs; return the full pose ``(B, 48)`` (relative to the flat hand) and
        ``(B, num_betas)`` betas."""
        tensors = [t for t in (global_orient, hand_pose, betas, transl, pose_pca) if t is not None]
        bsz = tensors[0].shape[0] if tensors else 1
        dt, dev = self.v_template.dtype, self.v_template.device
        for name, t, width in (
            ("global_orient", global_orient, 3),
            ("hand_pose", hand_pose, NUM_POSE),
            ("transl", transl, 3),
        ):
            if t is not None and (t.dim() != 2 or t.shape != (bsz, width)):
                raise ValueError(f"{name} must be ({bsz}, {width}), got {tuple(t.shape)}")
        if hand_pose is not None and pose_pca is not None:
            raise ValueError("pass either hand_pose (axis-angle) or pose_pca, not both")
        if pose_pca is not None:
            if pose_pca.dim() != 2 or pose_pca.shape[0] != bsz:
                raise ValueError(f"pose_pca must be ({bsz}, k), got {tuple(pose_pca.shape)}")
            hand_pose = self.pca_to_pose(pose_pca)
        if hand_pose is None:
            hand_pose = torch.zeros(bsz, NUM_POSE, dtype=dt, device=dev)
        if global_orient is None:
            global_orient = torch.zeros(bsz, 3, dtype=dt, device=dev)
        hand_pose = hand_pose + self.pose_mean
        full_pose = torch.cat([global_orient, hand_pose], dim=1)
        if betas is None:
            betas = torch.zeros(bsz, self.num_betas, dtype=dt, device=dev)
        elif betas.dim() != 2 or betas.shape[0] != bsz or betas.shape[1] > self.num_betas:
            raise ValueError(
                f"betas must be ({bsz}, <= {self.num_betas}), got {tuple(betas.shape)}"
            )
        elif betas.shape[1] < self.num_betas:
            betas = torch.cat([betas, betas.new_zeros(bsz, self.num_betas - betas.shape[1])], 1)
        return full_pose, betas

    def _kinematics(self, full_pose: torch.Tensor, betas: torch.Tensor):
        """Local rotations ``(B, 16, 3, 3)``, rest joints ``(B, 16, 3)`` of the shape, and the
        world rotations and positions of the joints (:func:`_forward_kinematics`)."""
        bsz = full_pose.shape[0]
        j_rest = torch.addmm(self.J_template_flat, betas, self.J_shapedirs)
        j_rest = j_rest.view(bsz, 3, MANO_NUM_JOINTS).transpose(1, 2)
        rot = axis_angle_to_matrix(full_pose.view(bsz, MANO_NUM_JOINTS, 3))  # (B, 16, 3, 3)
        glob_r, glob_t = _forward_kinematics(rot, j_rest)
        return rot, j_rest, glob_r, glob_t


def skin(weights: torch.Tensor, a12: torch.Tensor, v_posed: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning core.

    Args:
        weights: ``(V, 16)`` skinning weights.
        a12: ``(B, 16, 12)`` per-joint skinning transforms, rows of ``[R | t]`` flattened.
        v_posed: ``(B, V, 3)`` shaped and pose-corrected rest vertices.
    Returns:
        ``(B, V, 3)`` skinned vertices ``sum_j w_vj (R_j v + t_j)``.
    """
    b, nv = v_posed.shape[:2]
    t = torch.matmul(weights, a12).view(b, nv, 3, 4)  # (B, V, 3, 4) blended transforms
    return (t[..., :3] * v_posed.unsqueeze(-2)).sum(-1) + t[..., 3]


_COMPILED = None
COMPILE_MIN_BATCH = 32


def _compiled_skin():
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(skin, dynamic=True)
    return _COMPILED


def _forward_kinematics(rot: torch.Tensor, j_rest: torch.Tensor):
    """Compose local rotations down MANO's tree, one batched op per depth level.

    Args:
        rot: ``(B, 16, 3, 3)`` local rotations. j_rest: ``(B, 16, 3)`` rest joint positions.
    Returns:
        ``(B, 16, 3, 3)`` world rotations and ``(B, 16, 3)`` posed joint positions.
    """
    pr, pt = rot[:, :1], j_rest[:, :1]  # the root
    prev_j = j_rest[:, :1]
    rs, ts = [pr], [pt]
    for level in _LEVELS:
        idx = list(level)
        jl = j_rest[:, idx]
        offset = (jl - prev_j).unsqueeze(-1)
        pt = pt + (pr @ offset).squeeze(-1)
        pr = pr @ rot[:, idx]
        rs.append(pr)
        ts.append(pt)
        prev_j = jl
    order = _LEVEL_ORDER.to(rot.device)
    return torch.cat(rs, 1)[:, order], torch.cat(ts, 1)[:, order]


def _homogeneous(r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    bottom = torch.zeros(r.shape[:-2] + (1, 4), dtype=r.dtype, device=r.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([torch.cat([r, t.unsqueeze(-1)], -1), bottom], -2)
