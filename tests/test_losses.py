"""The losses of Eq. 8-15 against slow naive references; the mask loss is differentiable."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mano_fixtures import random_mano_asset
from seqhand.hand import HandLayer
from seqhand.losses import (
    REF_LENGTH_3D_M,
    CameraLoss,
    Joints2DLoss,
    Joints3DLoss,
    LossWeights,
    MaskLoss,
    Mesh3DLoss,
    SeqHandLoss,
    TemporalLoss,
    camera_loss,
    joints2d_loss,
    joints3d_loss,
    mask_distance_map,
    mask_loss,
    mask_outside_fraction,
    mesh3d_loss,
    sample_distance_map,
    temporal_loss,
    weighted_total,
)
from seqhand.models import decode_params, reference_scale

G = torch.Generator()


@pytest.fixture(autouse=True)
def _reseed():
    """Every test draws the same numbers whatever ran before it."""
    G.manual_seed(0)


def rand(*shape, scale=1.0):
    return torch.randn(*shape, generator=G, dtype=torch.float64) * scale


# --------------------------------------------------------------------------------------------
# Eq. 8-10
# --------------------------------------------------------------------------------------------
def test_joints2d_loss_vs_naive():
    pred, target = rand(2, 3, 21, 2, scale=50), rand(2, 3, 21, 2, scale=50)
    valid = torch.rand(2, 3, 21, generator=G) > 0.3
    total, n = 0.0, 0
    for b in range(2):
        for t in range(3):
            for j in range(21):
                if valid[b, t, j]:
                    d = pred[b, t, j] - target[b, t, j]
                    total += (abs(d[0].item()) + abs(d[1].item())) / 224.0
                    n += 1
    got = joints2d_loss(pred, target, valid, image_size=224)
    assert got.item() == pytest.approx(total / n, rel=1e-12)
    unmasked = joints2d_loss(pred, target, image_size=224)
    assert unmasked.item() == pytest.approx(
        (pred - target).abs().sum().item() / 224.0 / (2 * 3 * 21), rel=1e-12
    )
    assert Joints2DLoss()(pred, target, valid, image_size=224) == got
    assert joints2d_loss(pred, target, torch.zeros(2, 3, 21), image_size=224) == 0


def test_joints3d_and_mesh_loss_vs_naive():
    pred, target = rand(2, 21, 3, scale=0.05), rand(2, 21, 3, scale=0.05)
    valid = torch.tensor([[1] * 10 + [0] * 11, [1] * 21], dtype=torch.float64)
    total, n = 0.0, 0
    for b in range(2):
        for j in range(21):
            if valid[b, j]:
                d = (pred[b, j] - target[b, j]).tolist()
                total += sum((x / REF_LENGTH_3D_M) ** 2 for x in d)
                n += 1
    got = joints3d_loss(pred, target, valid)
    assert got.item() == pytest.approx(total / n, rel=1e-12)
    assert Joints3DLoss()(pred, target, valid) == got
    # a 1 cm error on every joint, in one axis, costs (0.01 / 0.1)^2 = 0.01
    shifted = target + torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)
    assert joints3d_loss(shifted, target).item() == pytest.approx(0.01)
    verts, vt = rand(3, 50, 3, scale=0.05), rand(3, 50, 3, scale=0.05)
    has = torch.tensor([True, False, True])
    ref = np.mean([((verts[i] - vt[i]) / 0.1).pow(2).sum(-1).mean().item() for i in (0, 2)])
    assert mesh3d_loss(verts, vt, has).item() == pytest.approx(ref, rel=1e-12)
    assert Mesh3DLoss()(verts, vt, has) == mesh3d_loss(verts, vt, has)


# --------------------------------------------------------------------------------------------
# The mask loss
# --------------------------------------------------------------------------------------------
def _blob_mask(h=12, w=16):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - 5.3) ** 2 / 9 + (xx - 7.1) ** 2 / 16) < 1.0


def test_mask_distance_map_vs_brute_force():
    mask = _blob_mask()
    dist = mask_distance_map(mask)
    h, w = mask.shape
    inside = np.argwhere(mask)
    for i in range(h):
        for j in range(w):
            ref = 0.0 if mask[i, j] else np.sqrt(((inside - [i, j]) ** 2).sum(1)).min()
            assert dist[i, j] == pytest.approx(ref / max(h, w), rel=1e-6)
    batch = mask_distance_map(np.stack([mask, mask[::-1], np.zeros_like(mask)]))
    assert batch.shape == (3, h, w) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], dist[::-1])
    assert not batch[2].any()  # empty mask -> zero map (mark the sample invalid)


def test_sample_distance_map_bilinear_and_outside():
    dmap = rand(1, 5, 6).abs()
    # pixel centres give the pixel values
    ij = [(0, 0), (2, 3), (4, 5)]
    pts = torch.tensor([[[j + 0.5, i + 0.5] for i, j in ij]], dtype=torch.float64)
    got = sample_distance_map(dmap, pts)[0]
    assert torch.allclose(got, torch.stack([dmap[0, i, j] for i, j in ij]), atol=1e-12)
    # between four pixel centres: bilinear weights
    p = torch.tensor([[[2.75, 2.25]]], dtype=torch.float64)  # x: centres 2.5 | 3.5, y: 1.5 | 2.5
    d = dmap[0]
    wy, wx = {1: 0.25, 2: 0.75}, {2: 0.75, 3: 0.25}
    ref = sum(wy[i] * wx[j] * d[i, j] for i in wy for j in wx)
    assert sample_distance_map(dmap, p)[0, 0].item() == pytest.approx(ref.item(), rel=1e-12)
    # beyond the image: border value + distance to the outermost pixel centres / max(H, W)
    far = torch.tensor([[[-3.5, 0.5], [6.0 + 2.5, 5.0 + 1.5]]], dtype=torch.float64)
    out = sample_distance_map(dmap, far)[0]
    assert out[0].item() == pytest.approx(d[0, 0].item() + 4.0 / 6, rel=1e-12)
    assert out[1].item() == pytest.approx(d[4, 5].item() + math.hypot(3.0, 2.0) / 6, rel=1e-12)


def test_mask_loss_gradcheck():
    dmap = torch.from_numpy(mask_distance_map(_blob_mask())).double()[None].expand(2, -1, -1)
    # points inside, outside the mask and outside the image; away from pixel-centre kinks
    pts = torch.tensor(
        [
            [[7.3, 5.2], [1.2, 1.3], [14.7, 10.9], [-2.3, 4.2], [20.1, -1.6]],
            [[3.3, 8.8], [9.2, 3.7], [0.2, 11.4], [18.3, 13.1], [6.6, 6.1]],
        ],
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(lambda v: mask_loss(v, dmap), (pts,))
    assert torch.autograd.gradcheck(lambda v: sample_distance_map(dmap, v), (pts,))


def test_mask_loss_pulls_vertices_onto_the_mask():
    mask = _blob_mask()
    dmap = torch.from_numpy(mask_distance_map(mask)).double()[None]
    pts = rand(1, 40, 2, scale=8.0) + torch.tensor([8.0, 6.0], dtype=torch.float64)
    pts.requires_grad_(True)
    before = mask_outside_fraction(pts.detach(), torch.from_numpy(mask)[None]).item()
    opt = torch.optim.SGD([pts], lr=200.0)
    for _ in range(150):
        opt.zero_grad()
        loss = mask_loss(pts, dmap)
        loss.backward()
        opt.step()
    after = mask_outside_fraction(pts.detach(), torch.from_numpy(mask)[None]).item()
    assert before > 0.5 and after == 0.0
    assert MaskLoss()(pts, dmap).item() == pytest.approx(mask_loss(pts, dmap).item())


def test_mask_outside_fraction_vs_naive():
    mask = torch.from_numpy(np.stack([_blob_mask(), _blob_mask()[::-1].copy()]))
    pts = rand(2, 3, 30, 2, scale=6.0) + torch.tensor([8.0, 6.0], dtype=torch.float64)
    masks = mask[:, None].expand(-1, 3, -1, -1)
    got = mask_outside_fraction(pts, masks)
    assert got.shape == (2, 3)
    h, w = mask.shape[-2:]
    for b in range(2):
        for t in range(3):
            hits = 0
            for x, y in pts[b, t].tolist():
                i, j = math.floor(y), math.floor(x)
                hits += bool(0 <= i < h and 0 <= j < w and mask[b, i, j])
            assert got[b, t].item() == pytest.approx(1 - hits / 30)


def test_mask_loss_valid_samples():
    dmap = torch.from_numpy(mask_distance_map(np.stack([_blob_mask()] * 2))).double()
    pts = rand(2, 10, 2, scale=5.0) + 6.0
    only0 = mask_loss(pts, dmap, torch.tensor([True, False]))
    assert only0.item() == pytest.approx(mask_loss(pts[:1], dmap[:1]).item())
    with pytest.raises(ValueError, match="leading dims"):
        mask_loss(pts, dmap[:1])


# --------------------------------------------------------------------------------------------
# Eq. 12-13
# --------------------------------------------------------------------------------------------
def test_temporal_loss_vs_naive():
    pose, betas = rand(3, 5, 10), rand(3, 5, 10)
    total, n = 0.0, 0
    for b in range(3):
        for t in range(1, 5):
            db = sum((betas[b, t - 1, k] - betas[b, t, k]).item() ** 2 for k in range(10))
            dp = sum((pose[b, t - 1, k] - pose[b, t, k]).item() ** 2 for k in range(10))
            total += db + 0.01 * dp
            n += 1
    got = temporal_loss(pose, betas, theta_weight=0.01)
    assert got.item() == pytest.approx(total / n, rel=1e-12)
    assert TemporalLoss(0.01)(pose, betas) == got
    assert temporal_loss(pose[:, :1], betas[:, :1]).item() == 0.0  # one-frame sequences
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[1, 3:] = False  # frames 3, 4 of sequence 1 are padding: pairs (2,3), (3,4) dropped
    d = (betas[:, 1:] - betas[:, :-1]).pow(2).sum(-1) + 0.01 * (pose[:, 1:] - pose[:, :-1]).pow(
        2
    ).sum(-1)
    keep = torch.ones(3, 4, dtype=torch.bool)
    keep[1, 2:] = False
    assert temporal_loss(pose, betas, theta_weight=0.01, valid=valid).item() == pytest.approx(
        d[keep].mean().item(), rel=1e-12
    )


def test_camera_loss_vs_naive():
    hw = (112, 128)
    pred, target = rand(4, 26), rand(4, 26)
    pred[:, 0] = 500 + pred[:, 0].abs() * 100
    target[:, 0] = 500 + target[:, 0].abs() * 100
    pred[:, 1:3] = 60 + 20 * pred[:, 1:3]
    s_ref = reference_scale(112)
    ref = []
    for i in range(4):
        e = ((pred[i, 0] - target[i, 0]) / s_ref) ** 2
        e += ((pred[i, 1] - target[i, 1]) / 64.0) ** 2 + ((pred[i, 2] - target[i, 2]) / 56.0) ** 2
        e += ((pred[i, 3:] - target[i, 3:]) ** 2).sum()  # r, theta, beta as they are
        ref.append(e.item())
    got = camera_loss(pred, target, image_hw=hw)
    assert got.item() == pytest.approx(float(np.mean(ref)), rel=1e-12)
    assert CameraLoss()(pred, target, image_hw=hw) == got
    valid = torch.tensor([1, 0, 0, 1])
    assert camera_loss(pred, target, valid, image_hw=hw).item() == pytest.approx(
        (ref[0] + ref[3]) / 2, rel=1e-12
    )


# --------------------------------------------------------------------------------------------
# Eq. 14-15
# --------------------------------------------------------------------------------------------
def test_paper_weights_by_default():
    w = LossWeights()
    assert dataclasses.asdict(w) == {
        "joints2d": 5.0,
        "joints3d": 100.0,
        "mesh3d": 100.0,
        "temporal": 100.0,
        "theta_temp": 2e-4,
        "camera": 1.0,
        "mask": 10.0,
        "reduction": "authors",
        "rotation": "frobenius",
    }
    total, weighted = weighted_total({"joints2d": torch.tensor(2.0), "mask": torch.tensor(0.5)}, w)
    assert total.item() == 15.0 and weighted["mask"].item() == 5.0
    with pytest.raises(KeyError):
        weighted_total({"theta_temp": torch.tensor(1.0)}, w)


@pytest.fixture(scope="module")
def layer():
    return HandLayer(random_mano_asset(1), pose_origin="mean", dtype=torch.float64)


def test_seqhand_loss_combines_every_term(layer):
    b, t, hw = 2, 3, (64, 64)
    params = rand(b, t, 26, scale=0.3)
    params[..., 0] = 300.0
    params[..., 1:3] = 32.0
    params.requires_grad_(True)
    gt = rand(b, t, 26, scale=0.3)
    gt[..., 0] = 280.0
    gt[..., 1:3] = 30.0
    dec = decode_params(params, layer)
    gdec = decode_params(gt, layer)
    offset = torch.tensor([0.1, -0.2, 0.5], dtype=torch.float64)  # GT not root-relative
    masks = np.zeros((b, t) + hw, bool)
    masks[..., 20:44, 18:46] = True
    targets = {
        "joints2d": gdec.joints2d,
        "joints3d": gdec.joints3d + offset,
        "vertices3d": gdec.vertices3d + offset,
        "mask_dist": torch.from_numpy(mask_distance_map(masks)).double(),
        "mask": torch.from_numpy(masks),
        "params": gt,
    }
    out = SeqHandLoss()(params, dec, targets, hw)
    w = LossWeights()
    # the default (authors') reductions, written out: 2D L1 summed over joints in image
    # sides, 3D squared error summed over joints in m^2 (mesh: mean over vertices x 21),
    # each averaged over frames; the rotation term ||R_hat - R||_F^2
    d2 = (dec.joints2d - gdec.joints2d).abs().sum(-1).sum(-1) / 64
    d3 = (dec.joints3d - gdec.joints3d).pow(2).sum(-1).sum(-1)
    dm = (dec.vertices3d - gdec.vertices3d).pow(2).sum(-1).mean(-1) * 21
    expect = {
        "joints2d": d2.mean(),
        "joints3d": d3.mean(),
        "mesh3d": dm.mean(),
        "mask": mask_loss(dec.vertices2d, targets["mask_dist"]),
        "camera": camera_loss(params, gt, image_hw=hw, rotation="frobenius"),
        "temporal": temporal_loss(params[..., 6:16], params[..., 16:], theta_weight=2e-4),
    }
    assert set(out.terms) == set(expect)
    for k, v in expect.items():
        assert out.terms[k].item() == pytest.approx(v.item(), rel=1e-10), k
        assert out.weighted[k].item() == pytest.approx(getattr(w, k) * v.item(), rel=1e-10)
    assert out.total.item() == pytest.approx(sum(out.weighted.values()).item(), rel=1e-12)
    frac = mask_outside_fraction(dec.vertices2d, targets["mask"]).mean()
    assert out.metrics["mask_outside_fraction"].item() == pytest.approx(frac.item())
    mean = SeqHandLoss(LossWeights(reduction="mean", rotation="axis_angle"))(
        params, dec, targets, hw)  # the earlier seqhand reductions  # fmt: skip
    for k, v in {"joints2d": joints2d_loss(dec.joints2d, gdec.joints2d, image_size=64),
                 "joints3d": joints3d_loss(dec.joints3d, gdec.joints3d),
                 "mesh3d": mesh3d_loss(dec.vertices3d, gdec.vertices3d),
                 "camera": camera_loss(params, gt, image_hw=hw)}.items():  # fmt: skip
        assert mean.terms[k].item() == pytest.approx(v.item(), rel=1e-10), k
    out.total.backward()
    assert torch.isfinite(params.grad).all() and (params.grad != 0).all()
    # the loss is zero at the ground truth (temporal aside)
    zero = SeqHandLoss()(gt, gdec, {k: v for k, v in targets.items() if "mask" not in k}, hw)
    for k in ("joints2d", "joints3d", "mesh3d", "camera"):
        assert zero.terms[k].item() == pytest.approx(0.0, abs=1e-20)


def test_finetuning_loss_without_parameters_or_mesh(layer):
    """Eq. 15 on STB-like data: 2D + 3D joints only, one-frame sequences."""
    params = rand(4, 1, 26, scale=0.3)
    params[..., 0] = 300.0
    dec = decode_params(params, layer)
    targets = {"joints2d": dec.joints2d + 1.0, "joints3d": dec.joints3d}
    out = SeqHandLoss()(params, dec, targets, (64, 64))
    assert set(out.terms) == {"joints2d", "joints3d", "temporal"}
    assert out.terms["temporal"].item() == 0.0
    assert out.terms["joints2d"].item() == pytest.approx(21 * 2.0 / 64)  # summed over joints
