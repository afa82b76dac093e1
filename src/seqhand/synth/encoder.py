"""The joints -> theta encoder (paper Sec. 3.2): a 4-layer MLP trained through the frozen layer.

Input: canonical joints ``(B, 21, 3)`` in metres (root-relative, wrist/palm frame, project
order - exactly a pose bank's poses, :mod:`seqhand.synth.bank`). Output: the 45 hand-pose
numbers ``(B, 45)`` (axis-angle, relative to the **flat** hand, MANO's joint order). No global
orientation is predicted: the bank is canonicalised, and the hand layer's palm frame does not
depend on the finger pose, so the layer's joints are compared *after the same
canonicalisation* (:func:`canonicalize_torch`). :func:`canonical_placement` gives the global
orientation and translation that put the layer's output into the canonical frame, for
rendering.

Training minimises the mean per-joint distance between the input joints and
``canonicalize(layer(theta))`` with the layer frozen (its buffers are constants; gradients flow
through it to the MLP), plus a tiny L2 on theta that pins the directions the joints cannot see
(e.g. a fingertip's twist about its own bone). Batches are drawn by a generator seeded from
(seed, step), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqhand.conventions import MANO21_TO_PROJECT, NUM_JOINTS, NUM_POSE
from seqhand.errors import SeqhandError

ENCODER_FORMAT = "seqhand-joints-encoder"
BUILTIN_ENCODER = Path(__file__).resolve().parent.parent / "assets" / "builtin_encoder.pt"
_MIDDLE_MCP, _INDEX_MCP, _PINKY_MCP = 9, 5, 17


class EncoderError(SeqhandError, ValueError):
    """An encoder file is missing, unreadable or made for another hand model."""


class JointsToPose(nn.Module):
    """4-layer MLP: canonical joints ``(B, 21, 3)`` metres -> hand pose ``(B, 45)`` radians.

    Args:
        hidden: width of the three hidden layers.
        in_scale: inputs are multiplied by this (metres -> about unit range).
    """

    def __init__(self, hidden: int = 512, in_scale: float = 10.0) -> None:
        super().__init__()
        self.hidden = int(hidden)
        self.in_scale = float(in_scale)
        d = NUM_JOINTS * 3
        self.net = nn.Sequential(
            nn.Linear(d, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, NUM_POSE),
        )
        self.register_buffer("in_mean", torch.zeros(d))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        if joints.dim() != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"joints must be (B, 21, 3), got {tuple(joints.shape)}")
        x = (joints.reshape(len(joints), -1) - self.in_mean) * self.in_scale
        return self.net(x)


def _palm_rotation_torch(j: torch.Tensor) -> torch.Tensor:
    """:func:`seqhand.synth.bank.palm_frame` in torch for wrist-relative ``(B, 21, 3)``
    joints: ``(B, 3, 3)``, rows ``e_x, e_y, e_z``."""
    return _palm_axes(j[:, _MIDDLE_MCP], j[:, _INDEX_MCP] - j[:, _PINKY_MCP])


def _palm_axes(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rows ``e_x, e_y, e_z`` ``(B, 3, 3)`` from the wrist->middle-MCP vector u and the
    pinky->index-MCP vector v, ``(B, 3)`` each."""
    ey = -u / u.norm(dim=-1, keepdim=True)
    ez = torch.cross(u, v, dim=-1)
    ez = ez - (ez * ey).sum(-1, keepdim=True) * ey
    ez = ez / ez.norm(dim=-1, keepdim=True)
    return torch.stack([torch.cross(ey, ez, dim=-1), ey, ez], dim=1)


def canonicalize_torch(joints: torch.Tensor) -> torch.Tensor:
    """Differentiable :func:`seqhand.synth.bank.canonicalize` (no scaling): ``(B, 21, 3)``."""
    j = joints - joints[:, :1]
    return j @ _palm_rotation_torch(j).transpose(1, 2)


def canonical_placement(layer, betas: torch.Tensor | None = None):
    """Global orientation ``(B, 3)`` and translation ``(B, 3)`` that put the layer's output in
    the canonical bank frame: ``layer(go, pose, betas, transl).joints == canonicalize(...)``.

    The palm frame depends on the shape only (the MCPs hang from the wrist), so one placement
    serves every pose of a shape.
    """
    from seqhand.geometry.rotations import matrix_to_axis_angle

    dt, dev = layer.v_template.dtype, layer.v_template.device
    b = 1 if betas is None else len(betas)
    mid, ind, pinky = (MANO21_TO_PROJECT[k] for k in (_MIDDLE_MCP, _INDEX_MCP, _PINKY_MCP))
    with torch.no_grad():
        # the wrist and MCPs are kinematic joints: the skeleton suffices (no mesh, no tips)
        j = layer.skeleton(hand_pose=torch.zeros(b, NUM_POSE, dtype=dt, device=dev), betas=betas)
        rel = j - j[:, :1]
        go = matrix_to_axis_angle(_palm_axes(rel[:, mid], rel[:, ind] - rel[:, pinky]))
        # The layer rotates about the wrist joint j0: X -> R (X - j0) + j0 + transl.
        transl = -j[:, 0]
    return go, transl


@dataclasses.dataclass
class EncoderConfig:
    """Training options of :func:`train_encoder`."""

    hidden: int = 512
    steps: int = 40_000
    batch: int = 512
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 500
    pose_l2: float = 1e-5
    seed: int = 0
    val_fraction: float = 0.02
    max_val: int = 20_000
    checkpoint_every: int = 1000


def _frozen_layer(asset):
    from seqhand.hand import HandLayer, load_asset
    from seqhand.hand.prior import joints_only_asset

    asset = load_asset(asset)
    layer = HandLayer(joints_only_asset(asset), pose_origin="flat", dtype=torch.float32)
    layer.requires_grad_(False)
    return asset, layer


def rest_joints_digest(asset) -> str:
    """Fingerprint of a hand model's rest skeleton (what an encoder is specific to)."""
    import hashlib

    from seqhand.hand.prior import rest_joints

    return hashlib.sha256(np.round(rest_joints(asset), 6).astype(np.float64).tobytes()).hexdigest()


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train / held-out split of ``n`` bank rows."""
    perm = np.random.default_rng(np.random.SeedSequence((int(seed), 7))).permutation(n)
    n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def reconstruct(model: JointsToPose, layer, joints: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(pose (B, 45), reconstructed canonical joints (B, 21, 3))`` for input joints."""
    pose = model(joints)
    return pose, canonicalize_torch(layer(hand_pose=pose).joints)


def _lr_at(step: int, cfg: EncoderConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def train_encoder(
    bank,
    asset=None,
    config: EncoderConfig | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[JointsToPose, dict]:
    """Train the encoder on a bank through the frozen hand layer.

    Args:
        bank: a :class:`~seqhand.synth.bank.PoseBank` (canonical joints; ``bank.poses``, when
            present, are used only to report the pose-parameter error).
        asset: the hand model (default: the built-in hand).
        config: :class:`EncoderConfig`.
        checkpoint: file to save progress to every ``checkpoint_every`` steps and to resume
            from if it exists (same config and bank size required).
        stop_after: run at most this many steps in this call (then save the checkpoint and
            return the model as it is); a later call with the same checkpoint resumes.
    Returns:
        The trained model (eval mode) and a report (held-out errors, see
        :func:`evaluate_encoder`).
    """
    cfg = config or EncoderConfig()
    asset, layer = _frozen_layer(asset)
    torch.manual_seed(cfg.seed)  # initial weights only; batches come from (seed, step)
    model = JointsToPose(cfg.hidden)
    train_idx, val_idx = split_indices(len(bank), cfg.val_fraction, cfg.seed)
    joints_all = torch.from_numpy(np.array(bank.joints, dtype=np.float32))
    with torch.no_grad():
        model.in_mean.copy_(
            joints_all[torch.from_numpy(train_idx[:200_000])].reshape(-1, 63).mean(0)
        )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        saved = json.loads(state["config"])
        if saved != dataclasses.asdict(cfg) or int(state["bank_size"]) != len(bank):
            raise EncoderError(
                f"{ckpt}: checkpoint was made with another config or bank "
                f"(config {saved}, bank size {int(state['bank_size'])}); delete it to restart"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    end = cfg.steps if stop_after is None else min(cfg.steps, start + int(stop_after))
    steps = range(start, end)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="encoder", unit="step")
    model.train()
    run = 0.0
    for step in steps:
        rng = np.random.default_rng(np.random.SeedSequence((cfg.seed, step)))
        idx = train_idx[rng.integers(0, len(train_idx), cfg.batch)]
        x = joints_all[torch.from_numpy(idx)]
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        pose, rec = reconstruct(model, layer, x)
        err = torch.sqrt(((rec - x) ** 2).sum(-1) + 1e-12).mean()
        loss = err + cfg.pose_l2 * (pose**2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        e_val = float(err.detach())
        run = 0.98 * run + 0.02 * e_val if step > start else e_val
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(mpjpe_mm=f"{run * 1000:.2f}")
        if ckpt and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == end):
            _save_checkpoint(ckpt, model, opt, step + 1, cfg, len(bank))
    if bar is not None:
        bar.close()
    model.eval()
    report = evaluate_encoder(model, bank, val_idx[: cfg.max_val], layer=layer)
    report.update(train_size=int(len(train_idx)), steps=end, hand=asset.name,
                  rest_joints_sha256=rest_joints_digest(asset))  # fmt: skip
    return model, report


def _save_checkpoint(path: Path, model, opt, step: int, cfg: EncoderConfig, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "config": json.dumps(dataclasses.asdict(cfg)),
            "bank_size": n,
        },
        tmp,
    )
    os.replace(tmp, path)


def pose_angle_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-joint geodesic angle (radians) between two ``(B, 45)`` poses: ``(B, 15)``."""
    from scipy.spatial.transform import Rotation

    a = Rotation.from_rotvec(np.asarray(pred, np.float64).reshape(-1, 3))
    b = Rotation.from_rotvec(np.asarray(true, np.float64).reshape(-1, 3))
    return (a.inv() * b).magnitude().reshape(-1, 15)


@torch.no_grad()
def evaluate_encoder(
    model: JointsToPose,
    bank,
    indices: np.ndarray | None = None,
    layer=None,
    asset=None,
    noise_mm: float = 0.0,
    seed: int = 0,
    batch: int = 8192,
) -> dict:
    """Reconstruction error of the encoder on bank rows (millimetres, degrees).

    Args:
        indices: rows to evaluate (default: all). layer/asset: the frozen hand layer.
        noise_mm: optional Gaussian noise (per coordinate, mm) added to the input joints; the
            error is then measured against the noisy input (the encoder's job is to explain it).
    Returns: ``mpjpe_mm`` (mean per-joint position error), its median and 95th percentile,
    ``tip_mpjpe_mm``, and with true poses (prior banks) ``pose_angle_deg`` (mean per-joint
    geodesic angle) and ``pose_angle_deg_median``.
    """
    if layer is None:
        _, layer = _frozen_layer(asset)
    idx = np.arange(len(bank)) if indices is None else np.asarray(indices)
    errs, preds = [], []
    gen = torch.Generator().manual_seed(int(seed))
    for lo in range(0, len(idx), batch):
        x = torch.from_numpy(np.array(bank.joints[idx[lo : lo + batch]], dtype=np.float32))
        if noise_mm:
            x = x + torch.randn(x.shape, generator=gen) * (noise_mm / 1000.0)
        pose, rec = reconstruct(model, layer, x)
        errs.append(((rec - x) ** 2).sum(-1).sqrt().numpy())
        preds.append(pose.numpy())
    e = np.concatenate(errs) * 1000.0
    per_pose = e.mean(1)
    out = {
        "count": int(len(idx)),
        "mpjpe_mm": float(e.mean()),
        "mpjpe_mm_median_pose": float(np.median(per_pose)),
        "mpjpe_mm_p95_pose": float(np.percentile(per_pose, 95)),
        "tip_mpjpe_mm": float(e[:, (4, 8, 12, 16, 20)].mean()),
        "noise_mm": float(noise_mm),
    }
    if getattr(bank, "poses", None) is not None:
        ang = np.degrees(pose_angle_error(np.concatenate(preds), bank.poses[idx]))
        out["pose_angle_deg"] = float(ang.mean())
        out["pose_angle_deg_median"] = float(np.median(ang))
    return out


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def save_encoder(model: JointsToPose, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write an encoder file (state dict + JSON metadata; loadable with ``weights_only``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"format": ENCODER_FORMAT, "version": 1, "hidden": model.hidden,
            "in_scale": model.in_scale, **(meta or {})}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": json.dumps(info)}, tmp)
    os.replace(tmp, path)
    return path


def load_encoder(path: str | os.PathLike) -> tuple[JointsToPose, dict]:
    """Read an encoder file: ``(model in eval mode, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: no such encoder file (train one: seqhand poses fit-encoder)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise EncoderError(
            f"{path}: not a readable encoder file ({type(e).__name__}: {e})"
        ) from None
    if meta.get("format") != ENCODER_FORMAT:
        raise EncoderError(f"{path}: format {meta.get('format')!r}, expected {ENCODER_FORMAT!r}")
    model = JointsToPose(meta["hidden"], meta["in_scale"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), meta


def load_builtin_encoder() -> tuple[JointsToPose, dict]:
    """The shipped encoder for the built-in hand, trained on the built-in pose prior."""
    return load_encoder(BUILTIN_ENCODER)
