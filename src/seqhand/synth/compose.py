"""The sequence composer (no I/O): pose flow + encoder + hand layer + camera + appearance
-> frames, masks and annotations of SeqHAND sequences (paper section 3.2).

For each sequence (a :class:`SequencePlan`, everything random about it drawn beforehand from
``(seed, index)``):

1. the flow's canonical joints (T, 21, 3) go through the joints->theta encoder to pose
   parameters theta (T, 45), relative to the flat hand; with ``render_pca`` (default) theta
   is replaced by its reconstruction from the ``num_pca``-component PCA code - the pose the
   network regresses - so a perfect network reaches the stored joints exactly;
2. the hand layer poses the hand model with theta and the sequence's beta (global orientation
   0: the camera rotation R carries the hand's orientation) -> vertices and joints in the
   hand-model frame, metres;
3. the weak-perspective camera ``x2d = s * Pi(R X) + t`` projects them (Eq. 3-4);
4. the rasteriser draws the mesh with the sequence's colour template and light over the two
   sliding background patches.

**Keeping the hand in the frame.** The camera flow (:mod:`seqhand.synth.flow`) aims its palm
point at the crop centre +- 12 %. Then, per sequence, if the projected hand (all vertices) would
be wider or taller than ``fit_fraction`` of the frame in any frame, ``s`` is reduced for the
whole sequence (about each frame's hand centre, the mean of its joints); and per frame, a hand
whose box leaves the frame by more than ``max_outside`` of the frame side is shifted back. So at
most ``max_outside`` (10 %) of the frame side of a hand is ever cut off. The annotations' ``s``
and ``t`` are the final ones: ``x2d = s * Pi(R X) + t`` holds exactly for them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.hand.layer import HandLayer
from seqhand.stages import StageTimes, stage
from seqhand.synth.backgrounds import sliding_patches
from seqhand.synth.flow import authors_extent, authors_posed_scale
from seqhand.synth.raster import render_batch, vertex_normals


@dataclasses.dataclass
class SequencePlan:
    """Everything random about one sequence (T frames), drawn from ``(seed, index)``.

    joints: ``(T, 21, 3)`` canonical joints of the pose flow (metres). bank_index: ``(T,)``.
    rot: ``(T, 3)`` camera axis-angle. scale: ``(T,)`` px/m and trans: ``(T, 2)`` px, for a
    ``reference_size`` frame. theta: optional ``(T, 45)`` known pose parameters (prior banks).
    betas: ``(10,)``. template: colour-template index. background: background index.
    light: ``(3,)`` direction towards the light (camera frame). ambient: in [0, 1].
    """

    index: int
    joints: np.ndarray
    bank_index: np.ndarray
    rot: np.ndarray
    scale: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    template: int
    background: int
    light: np.ndarray
    ambient: float
    patch_seed: int
    reference_size: int = 224
    theta: np.ndarray | None = None


def plans_from_flows(flows, bank, seed_key: tuple[int, int], num_backgrounds: int,
                     use_bank_poses: bool = False) -> list[SequencePlan]:  # fmt: skip
    """Turn a :class:`~seqhand.synth.flow.FlowBatch` into plans, adding what the flow does not
    draw: background, light, ambient and the patch motion, from
    ``SeedSequence((*seed_key, flow index))``."""
    from seqhand.synth.raster import random_lighting

    joints = flows.joints(bank)
    plans = []
    for i in range(len(flows)):
        idx = int(flows.index[i])
        rng = np.random.default_rng(np.random.SeedSequence((*seed_key, idx)))
        light, ambient = random_lighting(rng, 1)
        theta = None
        if use_bank_poses:
            theta = np.asarray(bank.poses)[flows.bank_indices[i]].astype(np.float32)
        plans.append(SequencePlan(
            index=idx, joints=joints[i], bank_index=flows.bank_indices[i],
            rot=flows.cam_rot[i], scale=flows.cam_scale[i], trans=flows.cam_trans[i],
            betas=flows.betas[i], template=int(flows.template[i]),
            background=int(rng.integers(num_backgrounds)), light=np.asarray(light).reshape(3),
            ambient=float(np.asarray(ambient).reshape(-1)[0]),
            patch_seed=int(rng.integers(2**63 - 1)), theta=theta,
        ))  # fmt: skip
    return plans


@dataclasses.dataclass
class Composer:
    """Holds the parts shared by every sequence (build once per worker process).

    Args:
        layer: hand layer with ``pose_origin="flat"`` (theta from the encoder is relative to the
            flat hand). encoder: callable ``(N, 21, 3) float32 tensor -> (N, 45)`` theta.
        templates: sequence of ``(V, 3)`` colour templates. backgrounds: sequence of images.
        image_size: output frame side in pixels. supersample: anti-aliasing factor (1 = off).
        num_pca: length of the theta PCA code stored in the annotations.
        render_pca: render theta rebuilt from its PCA code (reachable targets) rather than the
            encoder's full theta.
        posed_extent: the nominal hand extent (metres) the flows' authors' scales were drawn
            for; set, each sequence's scale is redrawn for its posed hand's own extent, as
            the authors do (:func:`~seqhand.synth.flow.authors_posed_scale`). None: as drawn.
    """

    layer: HandLayer
    encoder: object
    templates: object
    backgrounds: object
    image_size: int = 224
    supersample: int = 1
    num_pca: int = 10
    fit_fraction: float = 0.9
    max_outside: float = 0.1
    with_vertices: bool = False
    render_pca: bool = True
    posed_extent: float | None = None

    def __post_init__(self) -> None:
        if self.layer.pose_origin != "flat":
            raise ValueError("the composer's hand layer must use pose_origin='flat'")
        self.faces = self.layer.faces.numpy().astype(np.int32)

    @torch.no_grad()
    def pose(self, plans: list[SequencePlan], times: StageTimes | None = None):
        """Encoder + hand layer for all frames of ``plans`` at once.

        Returns theta (N, 45) as rendered, its PCA code (N, num_pca), vertices and joints in
        the hand-model frame (N, V, 3) / (N, 21, 3), and the canonical placement per frame:
        rotation (N, 3, 3) and wrist (N, 3) (the bank's canonical frame is
        ``R_place (X - wrist)``; identity for the built-in hand).
        """
        from seqhand.synth.encoder import canonical_placement

        t = plans[0].joints.shape[0]
        with stage(times, "encoder"):
            if plans[0].theta is not None:  # known parameters (a prior bank)
                theta = torch.from_numpy(np.concatenate([p.theta for p in plans])).float()
            else:
                joints = np.concatenate([p.joints for p in plans]).astype(np.float32)
                theta = self.encoder(torch.from_numpy(joints)).float()
            code = self.pca_code(theta.numpy())
            if self.render_pca:
                theta = torch.from_numpy(self.pca_pose(code)).float()
        with stage(times, "hand layer"):
            betas_seq = torch.from_numpy(np.stack([p.betas for p in plans])).float()
            betas = betas_seq.repeat_interleave(t, 0)
            out = self.layer(hand_pose=theta, betas=betas)
            go, transl = canonical_placement(self.layer, betas_seq)
            rplace = axis_angle_to_matrix(go).repeat_interleave(t, 0)
            wrist = (-transl).repeat_interleave(t, 0)
        return (theta.numpy(), code, out.vertices.numpy(), out.joints.numpy(),
                rplace.double().numpy(), wrist.double().numpy())  # fmt: skip

    def compose(self, plans: list[SequencePlan], times: StageTimes | None = None) -> list[dict]:
        """Make the samples (frames, masks, ann, meta) of ``plans`` (same T for all).

        ``times`` (optional) accumulates the seconds spent per stage (encoder, hand layer,
        camera, backgrounds, render, composite)."""
        if not plans:
            return []
        # one sequence at a time: float results do not depend on which sequences share a batch,
        # so sample k is the same bytes in a shard and generated alone (data.source: online)
        return [self._one(plan, *self.pose([plan], times), times=times) for plan in plans]

    def pca_code(self, theta: np.ndarray) -> np.ndarray:
        """PCA code of theta relative to the mean hand (the network's pose parametrisation)."""
        comps = self.layer.hands_components.double().numpy()[: self.num_pca]
        rel = theta.astype(np.float64) - self.layer.hands_mean.double().numpy()
        return np.linalg.lstsq(comps.T, rel.T, rcond=None)[0].T.astype(np.float32)

    def pca_pose(self, code: np.ndarray) -> np.ndarray:
        """theta (relative to the flat hand) of a PCA code: ``mean + code @ components``, exactly
        what the decoder's hand layer (``pose_origin="mean"``) builds from the code."""
        comps = self.layer.hands_components.double().numpy()[: self.num_pca]
        mean = self.layer.hands_mean.double().numpy()
        return (mean + code.astype(np.float64) @ comps).astype(np.float32)

    def _camera(self, plan: SequencePlan, verts, joints, rplace, wrist):
        """Final camera: total rotation R = R_cam R_place (hand-model frame -> camera), s, and t
        for the hand-model origin, so that ``x2d = s Pi(R X) + t`` for hand-model points X."""
        size = self.image_size
        f = size / plan.reference_size
        rmat = Rotation.from_rotvec(plan.rot).as_matrix() @ rplace  # (T, 3, 3)
        vr = np.einsum("tij,tvj->tvi", rmat, verts - wrist[:, None])
        jr = np.einsum("tij,tvj->tvi", rmat, joints - wrist[:, None])
        s = plan.scale.astype(np.float64) * f
        trans = (plan.trans.astype(np.float64) + 0.5) * f - 0.5
        c3 = jr.mean(1)[:, :2]  # hand centre (rotated, projected without s)
        centre = s[:, None] * c3 + trans
        if self.posed_extent is not None:  # the authors' scale: by the posed hand's extent
            ends = [0, -1]  # the authors measure the first and the last pose only
            ext = authors_extent(np.einsum("tij,tvj->tvi", rplace[ends],
                                           verts[ends] - wrist[ends, None]))  # fmt: skip
            s = authors_posed_scale(plan.scale, ext[0], ext[1], self.posed_extent) * f
        # shrink s for the whole sequence if the hand would not fit, keeping the centres
        ext = (vr[..., :2].max(1) - vr[..., :2].min(1)).max(1)  # (T,) metres
        s = s * min(1.0, float((self.fit_fraction * size / (s * ext)).min()))
        trans = centre - s[:, None] * c3
        x2d = s[:, None, None] * vr[..., :2] + trans[:, None]
        lo, hi = x2d.min(1), x2d.max(1)
        slack = self.max_outside * size
        shift = np.maximum(0.0, (-slack - 0.5) - lo) - np.maximum(0.0, hi - (size - 0.5 + slack))
        trans = trans + shift
        # re-express for hand-model points: R (X - w) = R X - R w
        trans_model = trans - s[:, None] * np.einsum("tij,tj->ti", rmat, wrist)[:, :2]
        rot = Rotation.from_matrix(rmat).as_rotvec()
        return vr, jr, s, trans, trans_model, rot

    def _one(self, plan, theta, code, verts, joints, rplace, wrist, times=None) -> dict:
        size = self.image_size
        with stage(times, "camera"):
            vr, jr, s, trans, trans_model, rot = self._camera(plan, verts, joints, rplace, wrist)
            v2d = s[:, None, None] * vr[..., :2] + trans[:, None]
            j2d = s[:, None, None] * jr[..., :2] + trans[:, None]
            normals = vertex_normals(vr, self.faces)
        with stage(times, "backgrounds"):
            image = self.backgrounds[plan.background]
        with stage(times, "composite"):  # the sliding patches the hand is drawn over
            bg = sliding_patches(image, len(s), size, size, np.random.default_rng(plan.patch_seed))
        with stage(times, "render"):
            res = render_batch(
                v2d, vr[..., 2], normals, self.faces,
                np.asarray(self.templates[plan.template], np.float32), plan.light, plan.ambient,
                size, size, background=bg, supersample=self.supersample, return_depth=True,
            )  # fmt: skip
        with stage(times, "composite"):  # annotations
            in_frame = np.all((j2d >= -0.5) & (j2d <= size - 0.5), axis=-1)
            ann = {
                "theta": theta.astype(np.float32),
                "theta_pca": code.astype(np.float32),
                "betas": plan.betas.astype(np.float32),
                "rot": rot.astype(np.float32),
                "scale": s.astype(np.float32),
                "trans": trans_model.astype(np.float32),
                "joints3d": joints.astype(np.float32),
                "joints2d": j2d.astype(np.float32),
                "in_frame": in_frame,
                "visible": in_frame & joint_visibility(res, j2d, jr[..., 2], size),
                "bank_index": plan.bank_index.astype(np.int64),
            }
            if self.with_vertices:
                ann["vertices"] = verts.astype(np.float32)
        meta = {"index": plan.index, "template": int(plan.template),
                "background": int(plan.background)}  # fmt: skip
        return {"frames": res.rgb, "masks": res.mask, "ann": ann, "meta": meta}


def joint_visibility(res, j2d: np.ndarray, jz: np.ndarray, size: int) -> np.ndarray:
    """Joints not hidden by the hand itself: the z-buffer at the joint's pixel is no nearer than
    the joint by more than a finger's half-thickness (12 mm; joints lie inside the surface)."""
    u = np.clip(np.rint(j2d[..., 0]).astype(int), 0, size - 1)
    v = np.clip(np.rint(j2d[..., 1]).astype(int), 0, size - 1)
    t = np.arange(j2d.shape[0])[:, None]
    return res.depth[t, v, u] >= jz - 0.012
