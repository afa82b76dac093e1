"""Fast A/B probes of the `tiny` recipe: the same model, losses and batches as `seqhand train`
(``SeqHandModule``), in a plain loop on one core with the dataset held in memory, so that two
variants run side by side in ~10 minutes. It is how the "probes" table of docs/results.md was
measured; a variant that wins here still has to win in `benchmarks/learning.py` (the real
trainer) before it becomes a default.

    python benchmarks/learning_probe.py --data out/demo/data --name base --steps 800
    python benchmarks/learning_probe.py --data out/demo/data --name jitter --augment roll_deg=30 zoom=0.1 shift=0.05
    python benchmarks/learning_probe.py --data out/demo/data --name f2 --clip 2 --batch 32
    python benchmarks/learning_probe.py --data out/demo/data --name s16 --stride16 --grid 6
    python benchmarks/learning_probe.py --data out/demo/data --name aux --aux 5

Variants: ``--augment`` (``data.augment`` fields), ``--clip/--batch`` (clip length, clips per
step), ``--ntrain`` (training sequences), ``--stride16`` (the last stage without its stride: a
6 x 6 map at 96 px, ~1.3x the compute), ``--grid`` (``head_grid``), ``--aux W`` (an auxiliary
1x1-conv head on the stride-8 features during training only: soft-argmax 2D joints, L1 summed
over joints / image side, weight W, plus the silhouette at that resolution, BCE weight 1),
``--rot-weight W`` (an extra Frobenius rotation term), ``--no-beta-cam`` (beta out of L_cam).

Probes of *why* it learns slowly (docs/results.md, "Why the articulation is not learned"):
``--model perframe`` (the tiny backbone, global pooling, one linear layer: no ConvLSTM),
``--theta-only`` (the loss is only the squared error of the 10 pose-PCA numbers),
``--background none|swap`` (training frames with the background blacked out - the
normalised mean colour - or pasted, by the silhouette, onto the background of another clip of
the batch whose own hand is filled with a blur of its surroundings), ``--detach-pose`` (theta
and beta get no gradient from the terms on the decoded hand, only from L_cam),
``--canonical W`` (an extra squared 3D joint error without the global rotation, summed over
joints in m^2, weight W), ``--rot-bins W`` (a training-only linear classifier of the nearest
of the 24 rotations of the cube group, cross-entropy weight W, on the head's input features).

Later probes: ``--set KEY=VALUE ...`` (overrides of the ``tiny`` config, e.g.
``loss.rotation=geodesic``), ``--ema D`` (also evaluates an exponential moving average of the
weights, decay D), ``--joint-head W`` (a training-only linear head on the head's input features
regressing the 21 root-relative 3D joints directly, squared error summed over joints in m^2,
weight W; its held-out error is printed as ``jh``; ``--joint-only`` trains nothing else),
``--mh K`` (K output hypotheses and K logits; each clip's loss goes to the hypothesis of the
smallest rotation error, the logits learn which one by cross-entropy ``--mh-ce``, every
hypothesis gets ``--mh-relax`` x its rotation error; evaluation takes the most likely one).

And: ``--kp W`` (a training-only 2.5D keypoint head on the stride-8 features: soft-argmax heat
maps, 2D L1 summed over joints / image side x W, and depth maps read at them, root-relative z
squared and summed in m^2 x ``--kp-z``; printed: its 2D error ``kp_2d`` and its joints lifted
to 3D with the MANO head's scale ``kp_e3`` or the true one ``kp_e3_true_s``; ``kp_check`` is
the lift's error on the true 2.5D joints, 0 for this weak-perspective camera), ``--hard A``
(sequences drawn with probability ~ (their last clip's 3D error)^A), ``--anchors W`` (the
rotation as one of the cube group's 24 rotations plus a 6D residual about it; the true
rotation's nearest anchor trained, a classifier with cross-entropy x W picks one at test),
``--curriculum F`` (for the first F x steps, only sequences whose mean angle between the palm's
normal and the direction to the camera is under a limit opening from 40 to 180 degrees),
``--optim muon`` (Muon for the hidden convolutions, ``optim.name: muon``; AdamW by default).

Prints one JSON line per evaluation, measured as `seqhand evaluate` does (``evaluate_sequences``):
held-out and training-subset 3D error (mm, root-relative), PA-MPJPE, median rotation error,
median size ratio, and the R^2 of the first pose-PCA coefficient (how open or closed the
hand is; 0 = no better than its mean); ``--out`` also writes them as a JSON file.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import nn

from seqhand.config import load_config
from seqhand.conventions import OUTPUT_SLICES
from seqhand.data.seqhand_dataset import read_sequences
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.evaluator import evaluate_sequences, generated_sequences
from seqhand.evaluation.view import ViewMetrics
from seqhand.geometry.rotations import axis_angle_to_matrix
from seqhand.models import build_model
from seqhand.training.augment import augment_from_config
from seqhand.training.batch import clip_sample, collate, sequence_item
from seqhand.training.module import SeqHandModule
from seqhand.training.optim import OPTIMIZERS, MuonAdamW, muon_split


def _model(args) -> nn.Module:
    from seqhand.models.resnet import BasicBlock, ResNet
    from seqhand.models.variants import PerFrameRegressor

    bb = ResNet(BasicBlock, (1, 1, 1, 1), 0, 32)  # the tiny preset's backbone
    if args.stride16:
        bb.layer4[0].conv1.stride = (1, 1)
        bb.layer4[0].downsample[0].stride = (1, 1)
    if args.model == "perframe":
        return PerFrameRegressor(bb, head_hidden=())
    return build_model("tiny", backbone=bb, head_grid=args.grid, head_hidden=args.head_hidden)


def swap_backgrounds(frames: torch.Tensor, masks: torch.Tensor, rng) -> torch.Tensor:
    """``(B, T, 3, S, S)`` normalised frames, ``(B, T, S, S)`` silhouettes -> each clip's hand
    on the background of another clip of the batch, whose own hand (silhouette grown by 2 px)
    is filled with an 8 x 8 area average of the rest of its frame, upsampled."""
    b, t, _, h, w = frames.shape
    m = masks[:, :, None].float()
    perm = torch.from_numpy(rng.permutation(b))
    other = frames[perm].flatten(0, 1)
    hole = nn.functional.max_pool2d(m[perm].flatten(0, 1), 5, 1, 2)
    keep = nn.functional.adaptive_avg_pool2d(1 - hole, 8).clamp(min=1e-3)
    fill = nn.functional.adaptive_avg_pool2d(other * (1 - hole), 8) / keep
    fill = nn.functional.interpolate(fill, size=(h, w), mode="bilinear", align_corners=False)
    bg = (other * (1 - hole) + fill * hole).reshape(frames.shape)
    return m * frames + (1 - m) * bg


def pc1_r2(model: nn.Module, items: list[dict]) -> float:
    """R^2 of the first pose-PCA coefficient over every frame of ``items`` (eval mode)."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(it["frames"][None])[0][0] for it in items])
    model.train()
    k = OUTPUT_SLICES["pose_pca"].start
    y = torch.cat([it["params"] for it in items])[:, k]
    return float(1 - (pred[:, k] - y).pow(2).mean() / y.var(unbiased=False))


def soft_argmax(logits: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, J, h, w)`` heat-map logits over an image of ``side`` pixels -> ``(N, J, 2)``
    expected pixel positions and the ``(N, J, h, w)`` softmax maps."""
    n, j, h, w = logits.shape
    hm = logits.flatten(2).softmax(-1).reshape(n, j, h, w)
    cx = (torch.arange(w) + 0.5) * (side / w) - 0.5
    cy = (torch.arange(h) + 0.5) * (side / h) - 0.5
    return torch.stack([(hm.sum(2) * cx).sum(-1), (hm.sum(3) * cy).sum(-1)], -1), hm


def l1_2d(pred: torch.Tensor, b: dict) -> torch.Tensor:
    """``(N, 21, 2)`` pixels against the batch's visible 2D joints: L1 summed over joints /
    image side, mean over frames (the authors' reduction)."""
    n, side = pred.shape[0], b["frames"].shape[-1]
    gt, v = b["joints2d"].reshape(n, 21, 2), b["joints2d_valid"].reshape(n, 21).float()
    return ((pred - gt).abs().sum(-1) / side * v).sum() / n


class AuxHead(nn.Module):
    """Training-only dense supervision on the backbone's stride-8 features (layer2)."""

    def __init__(self, model: nn.Module, channels: int = 64) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 22, 1)
        self.feats = None
        model.backbone.layer2.register_forward_hook(lambda m, i, o: setattr(self, "feats", o))

    def loss(self, b: dict) -> torch.Tensor:
        f = self.conv(self.feats)
        n, _, h, w = f.shape
        side = b["frames"].shape[-1]
        l2d = l1_2d(soft_argmax(f[:, :21], side)[0], b)
        m = nn.functional.adaptive_avg_pool2d(b["mask"].reshape(n, 1, side, side).float(), (h, w))
        return l2d, nn.functional.binary_cross_entropy_with_logits(f[:, 21:], m)


class MHHead(nn.Module):
    """K raw outputs and K logits (``--mh``); returns the most likely hypothesis and keeps all
    of them in ``.last`` for the training loss."""

    def __init__(self, head, k):
        super().__init__()
        self.hidden, self.k = head.hidden, k
        f, self.raw = head.out.in_features, head.out.out_features
        self.out = nn.Linear(f, k * self.raw + k)
        nn.init.normal_(self.out.weight, std=1e-3)
        with torch.no_grad():
            bias = self.out.bias[: k * self.raw].view(k, self.raw)
            bias.zero_()
            bias[:, :] = head.out.bias
            bias[:, 3:9] += 0.5 * torch.randn(k, 6)  # different initial rotations
            self.out.bias[k * self.raw :] = 0

    def forward(self, x):
        y = self.out(self.hidden(x))
        raws = y[..., : self.k * self.raw].unflatten(-1, (self.k, self.raw))
        logits = y[..., self.k * self.raw :]
        self.last = (raws, logits)
        idx = logits.argmax(-1)[..., None, None].expand(*raws.shape[:-2], 1, self.raw)
        return raws.gather(-2, idx)[..., 0, :]


class KPHead(nn.Module):
    """Training-only 2.5D joints on the stride-8 features (``--kp``): 21 soft-argmax heat maps
    (image pixels) and 21 depth maps (root-relative z, metres) read at the heat maps."""

    def __init__(self, model: nn.Module, channels: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 42, 1),
        )
        self.feats = None
        model.backbone.layer2.register_forward_hook(lambda m, i, o: setattr(self, "feats", o))

    def forward(self, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.net(self.feats)
        uv, hm = soft_argmax(f[:, :21], side)
        z = (hm * f[:, 21:]).sum((-2, -1)) * 0.1
        return uv, z - z[:, :1]

    def loss(self, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
        side = b["frames"].shape[-1]
        uv, z = self(side)
        l2d = l1_2d(uv, b)
        j = b["joints3d"].reshape(uv.shape[0], 21, 3)
        lz = (z - (j[..., 2] - j[:, :1, 2])).pow(2).sum(-1).mean()
        return l2d, lz


def lift(uv: torch.Tensor, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """2.5D joints and a scale (pixels per metre) -> root-relative 3D joints (metres)."""
    xy = (uv - uv[:, :1]) / s[:, None, None]
    return torch.cat([xy, z[..., None]], -1)


def scale_of(j2: torch.Tensor, j3: torch.Tensor) -> torch.Tensor:
    """Least-squares pixels per metre between root-relative 2D and 3D (x, y) joints."""
    d2, d3 = j2 - j2[:, :1], j3[..., :2] - j3[:, :1, :2]
    return (d2 * d3).sum((-2, -1)) / d3.pow(2).sum((-2, -1))


class AnchorHead(nn.Module):
    """``--anchors W``: one raw output per rotation of the cube group (24) and 24 logits.
    Output k's rotation is ``A_k GS(z_k + 6D(offset))`` (Gram-Schmidt commutes with A_k), so
    each output regresses a residual about its anchor. Training takes the output of the true
    rotation's nearest anchor (``.target``) and learns the logits by cross-entropy; evaluation
    takes the most likely."""

    def __init__(self, head, offset6: torch.Tensor):
        super().__init__()
        self.hidden = head.hidden
        self.anchors = torch.from_numpy(Rotation.create_group("O").as_matrix()).float()
        self.k, f, self.raw = len(self.anchors), head.out.in_features, head.out.out_features
        self.out = nn.Linear(f, self.k * (self.raw + 1))
        nn.init.normal_(self.out.weight, std=1e-3)
        with torch.no_grad():
            self.out.bias.zero_()
            bias = self.out.bias[: self.k * self.raw].view(self.k, self.raw)
            bias[:] = head.out.bias
            bias[:, 3:9] = 0  # each output starts at its anchor
        self.offset6 = offset6
        self.target = None
        self.logits = None

    def forward(self, x):
        y = self.out(self.hidden(x))
        raws = y[..., : self.k * self.raw].unflatten(-1, (self.k, self.raw))
        self.logits = y[..., self.k * self.raw :]
        d = raws[..., 3:9] + self.offset6
        a = self.anchors.to(d)
        col = [torch.einsum("kij,...kj->...ki", a, d[..., i : i + 3]) for i in (0, 3)]
        rot6 = torch.cat(col, -1) - self.offset6
        raws = torch.cat([raws[..., :3], rot6, raws[..., 9:]], -1)
        idx = self.target if self.training and self.target is not None else self.logits.argmax(-1)
        idx = idx[..., None, None].expand(*raws.shape[:-2], 1, self.raw)
        return raws.gather(-2, idx)[..., 0, :]


def palm_view_deg(sample: dict) -> np.ndarray:
    """Per frame, the angle (degrees) between the palm's normal and the direction to the camera
    (0 = palm to the camera), from the camera-aligned wrist, index and pinky MCP joints."""
    from seqhand.geometry.rotations import axis_angle_to_matrix as rodrigues

    ann = sample["ann"]
    r = rodrigues(torch.as_tensor(ann["rot"], dtype=torch.float64)).numpy()
    j = np.einsum("tij,tkj->tki", r, ann["joints3d"])
    n = np.cross(j[:, 5] - j[:, 0], j[:, 17] - j[:, 0])
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(-n[:, 2], -1, 1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a generated dataset (train and test splits)")
    ap.add_argument("--name", default="probe")
    ap.add_argument("--out", default=None, help="write the evaluations to this JSON file")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16, help="clips per step")
    ap.add_argument("--clip", type=int, default=4, help="frames per clip")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optim", choices=OPTIMIZERS, default="adamw")
    ap.add_argument("--ntrain", type=int, default=2000, help="training sequences (first N)")
    ap.add_argument("--ntest", type=int, default=48, help="held-out sequences (first N)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--augment", nargs="*", default=[], help="data.augment fields, key=value")
    ap.add_argument("--stride16", action="store_true")
    ap.add_argument("--grid", type=int, default=3)
    ap.add_argument("--head-hidden", type=int, nargs="*", default=[], help="head MLP widths")
    ap.add_argument("--aux", type=float, default=0.0)
    ap.add_argument("--hard", type=float, default=0.0,
                    help="sample sequences with p ~ (last 3D error)^A")  # fmt: skip
    ap.add_argument("--curriculum", type=float, default=0.0,
                    help="share of the steps over which the sequences' palm-view limit opens")  # fmt: skip
    ap.add_argument("--anchors", type=float, default=0.0,
                    help="24 anchor rotations with residuals; cross-entropy weight")  # fmt: skip
    ap.add_argument("--kp", type=float, default=0.0, help="2.5D joint head, 2D weight")
    ap.add_argument("--kp-z", type=float, default=100.0, help="2.5D joint head, depth weight")
    ap.add_argument("--rot-weight", type=float, default=0.0, help="extra ||R_hat - R||_F^2")
    ap.add_argument("--no-beta-cam", action="store_true", help="beta out of L_cam")
    ap.add_argument("--model", choices=("tiny", "perframe"), default="tiny")
    ap.add_argument("--theta-only", action="store_true", help="loss: pose-PCA error only")
    ap.add_argument("--background", choices=("keep", "none", "swap"), default="keep")
    ap.add_argument("--detach-pose", action="store_true", help="theta, beta only from L_cam")
    ap.add_argument("--canonical", type=float, default=0.0, help="rotation-free 3D term")
    ap.add_argument("--rot-bins", type=float, default=0.0, help="24-way rotation classifier")
    ap.add_argument("--l3d-euclid", type=float, default=0.0,
                    help="3D joint term as summed distances (m) x W instead of squared")  # fmt: skip
    ap.add_argument("--joint-head", type=float, default=0.0, help="direct 3D joint head weight")
    ap.add_argument("--joint-only", action="store_true", help="train only the joint head")
    ap.add_argument("--mh", type=int, default=0, help="K rotation hypotheses, winner takes all")
    ap.add_argument("--mh-ce", type=float, default=1.0)
    ap.add_argument("--mh-relax", type=float, default=0.05)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--bf16", action="store_true", help="the backbone under bfloat16 autocast")
    ap.add_argument("--ema", type=float, default=0.0, help="evaluate an EMA of the weights")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    cfg = load_config("tiny", list(args.set))
    size = int(cfg["model"]["image_size"])
    model = _model(args)
    model.backbone_bf16 = args.bf16
    aux = AuxHead(model) if args.aux else None
    kp = KPHead(model) if args.kp else None
    if args.mh:
        model.head = MHHead(model.head, args.mh)
    if args.anchors:
        from seqhand.geometry.rotations import matrix_to_rotation_6d

        model.head = AnchorHead(model.head, matrix_to_rotation_6d(
            axis_angle_to_matrix(model.rot_offset)))  # fmt: skip
    mod = SeqHandModule(cfg, model=model)
    aug = augment_from_config({k: float(v) for k, v in (x.split("=") for x in args.augment)})
    train = read_sequences(args.data, "train", limit=args.ntrain)
    frames = len(train[0]["frames"])
    test = list(generated_sequences(args.data, "test", size, limit=args.ntest))
    train_eval = list(generated_sequences(args.data, "train", size, limit=args.ntest))
    r2_items = {
        "test": [sequence_item(x, size, with_mask=False)
                 for x in read_sequences(args.data, "test", limit=args.ntest)],
        "train": [sequence_item(x, size, with_mask=args.background == "none")
                  for x in train[: args.ntest]],
    }  # fmt: skip
    if args.background == "none":  # R^2 on training sequences then sees them as trained
        for it in r2_items["train"]:
            it["frames"] = it["frames"] * it["mask"][:, None]
    bins = nn.Linear(model.head.out.in_features, 24) if args.rot_bins else None
    jhead = nn.Linear(model.head.out.in_features, 63) if args.joint_head else None
    feats: dict = {}  # the head's input features, for the extra heads
    if jhead is not None or bins is not None:
        model.head.register_forward_hook(lambda m, i, o: feats.__setitem__("x", i[0]))
    if bins is not None:
        anchors = torch.from_numpy(Rotation.create_group("O").as_matrix()).float()

    params = list(model.parameters()) + (list(aux.parameters()) if aux else [])
    params += list(kp.parameters()) if kp is not None else []
    params += list(bins.parameters()) if bins is not None else []
    params += list(jhead.parameters()) if jhead is not None else []
    wd = float(cfg["optim"]["weight_decay"])
    if args.optim == "muon":
        hidden, other = muon_split(model)
        extra = params[len(list(model.parameters())) :]
        opt = MuonAdamW(hidden, other + extra, lr=args.lr, weight_decay=wd)
    else:
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=wd)
    warm = int(cfg["optim"]["warmup_steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (
        1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, args.steps - warm)))))  # fmt: skip
    rng = np.random.default_rng(args.seed)
    ema = None
    if args.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)

    def evaluate(sequences, r2_set: list[dict]) -> dict:
        """The metrics of `seqhand evaluate` (root-relative 3D, PA-MPJPE, rotation, size)."""
        acc, view = MetricAccumulator(alignment="root"), ViewMetrics()
        model.backbone_bf16 = False  # evaluated in float32, as `seqhand evaluate` loads it
        evaluate_sequences(model, sequences, accumulator=acc, decoder=mod.decoder,
                           progress=False, view=view)  # fmt: skip
        model.train()
        model.backbone_bf16 = args.bf16
        m = {**acc.evaluate(), **view.evaluate()}
        if jhead is not None:
            errs = []
            with torch.no_grad():
                model.eval()
                for it in r2_set:
                    model(it["frames"][None])
                    pj = jhead(feats["x"])[0].reshape(-1, 21, 3)
                    tj = it["joints3d"] - it["joints3d"][:, :1]
                    pj = pj - pj[:, :1]
                    errs.append((pj - tj).norm(dim=-1).mean(-1))
                model.train()
            m["jh_e3"] = 1000 * float(torch.cat(errs).mean())
        if kp is not None:
            e2, et, ep, chk = [], [], [], []
            with torch.no_grad():
                model.eval()
                kp.eval()
                for it in r2_set:
                    p, r, _ = model.forward_full(it["frames"][None])
                    d = mod.decoder(p[0], r[0])
                    uv, z = kp(size)
                    j2, j3 = it["joints2d"], it["joints3d"] - it["joints3d"][:, :1]
                    e2.append((uv - j2).norm(dim=-1).mean(-1))
                    s_true = scale_of(j2, j3)
                    s_pred = scale_of(d.joints2d, d.joints3d)
                    et.append((lift(uv, z, s_true) - j3).norm(dim=-1).mean(-1))
                    ep.append((lift(uv, z, s_pred) - j3).norm(dim=-1).mean(-1))
                    chk.append((lift(j2, j3[..., 2], s_true) - j3).norm(dim=-1).mean(-1))
                model.train()
                kp.train()
            m["kp_2d"] = float(torch.cat(e2).mean())
            m["kp_e3_true_s"] = 1000 * float(torch.cat(et).mean())
            m["kp_e3"] = 1000 * float(torch.cat(ep).mean())
            m["kp_check"] = 1000 * float(torch.cat(chk).mean())  # the lift's own error
        return {
            "e3": m["epe3d_mean_mm"],
            "pa": m["pa_mpjpe_mm"],
            "rot": m["rot_err_median_deg"],
            "size": m["size_ratio_median"],
            "pc1_r2": pc1_r2(model, r2_set),
            **({"jh": m["jh_e3"]} if "jh_e3" in m else {}),
            **{k: m[k] for k in ("kp_2d", "kp_e3_true_s", "kp_e3", "kp_check") if k in m},
        }

    t0, hist = time.time(), []
    hard = np.full(len(train), np.nan)  # --hard: each sequence's last clip 3D error (mm)
    if args.curriculum:  # each sequence's palm-view angles, computed once
        angles = [palm_view_deg(x) for x in train]
        palm_view = np.array([a.mean() for a in angles])
        under_30 = float((np.concatenate(angles) < 30).mean())
        print(json.dumps({"palm_view_frames_under_30": under_30}))
    for step in range(1, args.steps + 1):
        p_seq = None
        if args.hard:
            known = np.where(np.isnan(hard), np.nanmean(hard) if step > 1 else 1.0, hard)
            p_seq = known**args.hard / (known**args.hard).sum()
        if args.curriculum and step <= args.curriculum * args.steps:
            limit = 40 + 140 * step / (args.curriculum * args.steps)  # degrees
            ok = (palm_view <= limit).astype(float)
            p_seq = ok / ok.sum() if ok.sum() >= args.batch else None
        idx = rng.choice(len(train), args.batch, replace=False, p=p_seq)
        starts = rng.integers(0, frames - args.clip + 1, args.batch)
        items = []
        for i, s0 in zip(idx, starts):
            s = clip_sample(train[i], int(s0), args.clip)
            items.append(sequence_item(aug(s, rng) if aug.active else s, size))
        b = collate(items)
        if args.anchors:  # the nearest anchor of each true rotation: the largest trace(A^T R)
            r_gt = axis_angle_to_matrix(b["params"][..., OUTPUT_SLICES["rot"]])
            model.head.target = torch.einsum("btij,kij->btk", r_gt, model.head.anchors).argmax(-1)
        if args.background == "none":
            b["frames"] = b["frames"] * b["mask"][:, :, None]
        elif args.background == "swap":
            b["frames"] = swap_backgrounds(b["frames"], b["mask"], rng)
        params, rotmat, _ = model.forward_full(b["frames"])
        if args.mh:
            raws, logits = model.head.last
            hw = tuple(b["frames"].shape[-2:])
            r_t = axis_angle_to_matrix(b["params"][..., OUTPUT_SLICES["rot"]])
            decs = [model.decode_raw(raws[..., k, :], hw) for k in range(args.mh)]
            errs = torch.stack([(r - r_t).pow(2).sum((-2, -1)) for _, r in decs], -1)  # B,T,K
            best = errs.detach().sum(1).argmin(-1)  # per clip
            ps = torch.stack([p for p, _ in decs], 2)
            rs = torch.stack([r for _, r in decs], 2)
            bi = best[:, None].expand(-1, ps.shape[1])
            params = ps.gather(2, bi[..., None, None].expand(-1, -1, 1, ps.shape[-1]))[:, :, 0]
            rotmat = rs.gather(2, bi[..., None, None, None].expand(-1, -1, 1, 3, 3))[:, :, 0]
            mh_extra = (
                args.mh_ce * nn.functional.cross_entropy(logits.flatten(0, 1), bi.flatten())
                + args.mh_relax * errs.mean()
            )
        sl = OUTPUT_SLICES
        j_rel = b["joints3d"] - b["joints3d"][..., :1, :]  # root-relative, camera-aligned
        if args.theta_only:
            loss = (params[..., sl["pose_pca"]] - b["params"][..., sl["pose_pca"]]).pow(2)
            loss = loss.sum(-1).mean()
        else:
            targets = {k: v for k, v in b.items() if k != "frames"}
            if args.detach_pose:
                pose = sl["pose_pca"].start
                dec = torch.cat([params[..., :pose], params[..., pose:].detach()], -1)
            else:
                dec = params
            decoded = mod.decoder(dec, rotmat)
            out = mod.loss_fn(params, decoded, targets, image_hw=tuple(b["frames"].shape[-2:]),
                              rotmat=rotmat)  # fmt: skip
            loss = out.total
            if args.hard:
                with torch.no_grad():
                    e = (decoded.joints3d - j_rel).norm(dim=-1).mean((-2, -1)) * 1000
                hard[idx] = e.numpy()
            if jhead is not None:
                pj = jhead(feats["x"]).reshape(*j_rel.shape)
                jl = (pj - j_rel).pow(2).sum((-2, -1)).mean()
                loss = (0 * loss if args.joint_only else loss) + args.joint_head * jl
            if args.l3d_euclid:  # the 3D joint term as distances, not squared distances
                dist = (decoded.joints3d - j_rel).norm(dim=-1).sum(-1).mean()
                loss = loss - out.weighted["joints3d"] + args.l3d_euclid * dist
        r_true = axis_angle_to_matrix(b["params"][..., sl["rot"]])
        if args.canonical:  # both hands without their global rotation, root-relative
            eye = torch.eye(3).expand(rotmat.shape)
            j_true = torch.einsum("btji,btkj->btki", r_true, j_rel)
            err = (mod.decoder(params, eye).joints3d - j_true).pow(2).sum((-2, -1))
            loss = loss + args.canonical * err.mean()
        if bins is not None:  # nearest anchor: the largest trace(A^T R)
            near = torch.einsum("btij,kij->btk", r_true, anchors).argmax(-1)
            logits = bins(feats["x"])
            loss = loss + args.rot_bins * nn.functional.cross_entropy(
                logits.flatten(0, 1), near.flatten()
            )
        if args.mh:
            loss = loss + mh_extra
        if args.anchors:
            ce = nn.functional.cross_entropy(model.head.logits.flatten(0, 1),
                                             model.head.target.flatten())  # fmt: skip
            loss = loss + args.anchors * ce
        if args.rot_weight:
            loss = loss + args.rot_weight * (rotmat - r_true).pow(2).sum((-2, -1)).mean()
        if args.no_beta_cam:  # L_cam is a mean over frames of a sum over groups
            beta = OUTPUT_SLICES["betas"]
            err = (params[..., beta] - b["params"][..., beta]).pow(2).sum(-1).mean()
            loss = loss - float(cfg["loss"]["camera"]) * err
        if aux is not None:
            l2d, lmask = aux.loss(b)
            loss = loss + args.aux * l2d + lmask
        if kp is not None:
            l2d, lz = kp.loss(b)
            loss = loss + args.kp * l2d + args.kp_z * lz
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        if step % args.eval_every == 0 or step == args.steps:
            row = {"name": args.name, "step": step, "sec": round(time.time() - t0)}
            for split, seqs in (("test", test), ("train", train_eval)):
                m = evaluate(seqs, r2_items[split])
                row.update({f"{split}_{k}": round(float(v), 3) for k, v in m.items()})
            if ema is not None:
                live = {k: v.clone() for k, v in model.state_dict().items()}
                model.load_state_dict(ema.module.state_dict())
                m = evaluate(test, r2_items["test"])
                row.update({f"ema_{k}": round(float(v), 3) for k, v in m.items()})
                model.load_state_dict(live)
            hist.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "hist": hist}, fh, indent=1)


if __name__ == "__main__":
    main()
