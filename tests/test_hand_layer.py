"""The hand layer equals smplx's MANO on the same asset, and has finite gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mano_fixtures import random_mano_asset
from seqhand.conventions import MANO21_TO_PROJECT
from seqhand.hand import HandLayer

smplx = pytest.importorskip("smplx")


class _Struct:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def smplx_mano(asset, flat: bool, num_pca: int, use_pca: bool):
    ds = _Struct(
        v_template=asset.v_template,
        f=asset.f,
        shapedirs=asset.shapedirs,
        posedirs=asset.posedirs,
        J_regressor=asset.J_regressor,
        weights=asset.weights,
        kintree_table=asset.kintree_table,
        hands_components=asset.hands_components,
        hands_mean=asset.hands_mean,
    )
    return smplx.MANO(
        model_path="unused",
        data_struct=ds,
        use_pca=use_pca,
        num_pca_comps=num_pca,
        flat_hand_mean=flat,
        num_betas=10,
        dtype=torch.float64,
        is_rhand=True,
    )


def _smplx_joints21(asset, out):
    tips = out.vertices[:, torch.as_tensor(asset.tip_vertex_ids)]
    return torch.cat([out.joints, tips], 1)[:, list(MANO21_TO_PROJECT)]


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("mode", ["full", "pca6", "pca45"])
def test_equals_smplx_mano(flat, mode):
    asset = random_mano_asset(seed=1)
    gen = torch.Generator().manual_seed(3)
    b = 8
    go = torch.randn(b, 3, generator=gen, dtype=torch.float64)
    betas = 2 * torch.randn(b, 10, generator=gen, dtype=torch.float64)
    transl = 0.1 * torch.randn(b, 3, generator=gen, dtype=torch.float64)
    ours = HandLayer(asset, pose_origin="flat" if flat else "mean", dtype=torch.float64)
    if mode == "full":
        pose = 0.7 * torch.randn(b, 45, generator=gen, dtype=torch.float64)
        ref = smplx_mano(asset, flat, 45, use_pca=False)
        out = ours(go, pose, betas, transl)
    else:
        k = int(mode[3:])
        pose = torch.randn(b, k, generator=gen, dtype=torch.float64)
        ref = smplx_mano(asset, flat, k, use_pca=True)
        out = ours(go, betas=betas, transl=transl, pose_pca=pose)
        if k == 45:  # smplx switches PCA off at 45 components: give it the axis-angle pose
            pose = pose @ torch.as_tensor(asset.hands_components)
    r = ref(global_orient=go, hand_pose=pose, betas=betas, transl=transl)
    assert torch.allclose(out.vertices, r.vertices, atol=1e-7, rtol=0)  # smplx adds 1e-8 to angles
    assert (out.vertices - r.vertices).abs().max() < 1e-6
    assert torch.allclose(
        out.joints, _smplx_joints21(asset, r), atol=1e-7, rtol=0
    )  # smplx adds 1e-8 to angles


def test_outputs_shapes_and_transforms():
    asset = random_mano_asset(seed=2)
    layer = HandLayer(asset, pose_origin="flat")
    out = layer(torch.zeros(2, 3), torch.zeros(2, 45), torch.zeros(2, 10))
    assert out.vertices.shape == (2, 778, 3) and out.joints.shape == (2, 21, 3)
    assert out.transforms.shape == (2, 16, 4, 4) and out.skinning.shape == (2, 16, 4, 4)
    # Rest pose: skinning transforms are the identity; joint transforms translate to the joints.
    eye = torch.eye(4).expand(2, 16, 4, 4)
    assert torch.allclose(out.skinning, eye, atol=1e-6)
    jrest = torch.as_tensor(asset.J_regressor @ asset.v_template, dtype=torch.float32)
    assert torch.allclose(out.transforms[0, :, :3, 3], jrest, atol=1e-6)
    assert torch.allclose(out.vertices[0], torch.as_tensor(asset.v_template).float(), atol=1e-6)


def test_dtype_and_device_moves():
    layer = HandLayer(random_mano_asset(), pose_origin="flat")
    assert layer.v_template.dtype == torch.float32
    d = layer.double()
    out = d(torch.zeros(1, 3, dtype=torch.float64))
    assert out.vertices.dtype == torch.float64
    assert "v_template" in layer.state_dict()


def test_gradcheck_float64():
    asset = random_mano_asset(seed=4, nv=60, nf=40)
    layer = HandLayer(asset, pose_origin="mean", dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    inputs = (
        torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True),
        (0.5 * torch.randn(2, 45, generator=gen, dtype=torch.float64)).requires_grad_(),
        torch.randn(2, 10, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True),
    )

    def fn(go, hp, b, t):
        o = layer(go, hp, b, t)
        return o.vertices, o.joints

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_finite_gradients_at_zero_pose():
    layer = HandLayer(random_mano_asset(seed=5), pose_origin="flat")
    inputs = [torch.zeros(3, w, requires_grad=True) for w in (3, 45, 10, 3)]
    out = layer(*inputs)
    (out.vertices.square().sum() + out.joints.sum()).backward()
    for t in inputs:
        assert t.grad is not None and torch.isfinite(t.grad).all()
    pca = torch.zeros(3, 10, requires_grad=True)
    layer(pose_pca=pca).vertices.sum().backward()
    assert torch.isfinite(pca.grad).all() and pca.grad.abs().sum() > 0


def test_pca_roundtrip():
    layer = HandLayer(random_mano_asset(seed=6), pose_origin="flat", dtype=torch.float64)
    coeffs = torch.randn(4, 12, dtype=torch.float64)
    pose = layer.pca_to_pose(coeffs)
    assert torch.allclose(layer.pose_to_pca(pose, 12), coeffs, atol=1e-8)


def test_bad_inputs_have_clear_errors():
    layer = HandLayer(random_mano_asset(), pose_origin="flat")
    with pytest.raises(ValueError, match="hand_pose must be"):
        layer(torch.zeros(2, 3), torch.zeros(2, 44))
    with pytest.raises(ValueError, match="either hand_pose"):
        layer(hand_pose=torch.zeros(1, 45), pose_pca=torch.zeros(1, 6))
    with pytest.raises(ValueError, match="pose_origin"):
        HandLayer(random_mano_asset(), pose_origin="mean_hand")
    with pytest.raises(ValueError, match="betas"):
        layer(torch.zeros(1, 3), betas=torch.zeros(1, 11))


def test_matches_numpy_reference_lbs():
    """A slow, obvious numpy LBS (loop over joints) agrees with the batched layer."""
    from scipy.spatial.transform import Rotation

    asset = random_mano_asset(seed=7)
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.5, size=48)
    betas = rng.normal(size=10)
    v = asset.v_template + asset.shapedirs @ betas
    j = asset.J_regressor @ v
    rots = Rotation.from_rotvec(pose.reshape(16, 3)).as_matrix()
    v = v + (asset.posedirs @ (rots[1:] - np.eye(3)).reshape(-1))
    g = np.zeros((16, 4, 4))
    for k in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[k]
        p = asset.parents[k]
        local[:3, 3] = j[k] - (j[p] if p >= 0 else 0)
        g[k] = local if p < 0 else g[p] @ local
    a = g.copy()
    for k in range(16):
        a[k, :3, 3] -= g[k, :3, :3] @ j[k]
    t = np.einsum("vj,jab->vab", asset.weights, a)
    verts = np.einsum("vab,vb->va", t[:, :3, :3], v) + t[:, :3, 3]
    layer = HandLayer(asset, pose_origin="flat", dtype=torch.float64)
    out = layer(
        torch.as_tensor(pose[None, :3]),
        torch.as_tensor(pose[None, 3:]),
        torch.as_tensor(betas[None]),
    )
    assert np.abs(out.vertices[0].numpy() - verts).max() < 1e-10


@pytest.mark.slow
def test_compiled_skinning_equals_eager():
    asset = random_mano_asset(seed=8)
    eager = HandLayer(asset, pose_origin="flat")
    compiled = HandLayer(asset, pose_origin="flat", compile=True)
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(64, 3, generator=g), 0.5 * torch.randn(64, 45, generator=g),
            torch.randn(64, 10, generator=g))  # fmt: skip
    assert torch.allclose(eager(*args).vertices, compiled(*args).vertices, atol=1e-6)
