"""Backbones, SeqHAND-Net and the ablation variants, and decoding parameters to a hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mano_fixtures import random_mano_asset
from seqhand.conventions import OUTPUT_SLICES, WRIST
from seqhand.geometry import weak_perspective_project
from seqhand.hand import HandLayer
from seqhand.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_PARAM_COUNTS_M,
    BackboneWeightsError,
    HandDecoder,
    build_model,
    build_resnet,
    decode_params,
    list_models,
    load_backbone_weights,
    normalize_frames,
    params_to_raw,
    raw_to_params,
    reference_scale,
)
from seqhand.models.inflated import InflatedResNet

DATA = Path(__file__).parent / "data"
VARIANTS = ["resnet50", "resnet50_lstm", "resnet50_convlstm", "i3d_resnet50", "mfnet"]


SMALL = {  # narrower recurrent layers and heads: same structure, faster tests
    "resnet50": {"head_hidden": (64,)},
    "resnet50_lstm": {"hidden_size": 64},
    "resnet50_convlstm": {"reduce_channels": 32, "hidden_channels": 32},
    "i3d_resnet50": {"head_hidden": (64,)},
    "mfnet": {"head_hidden": (64,)},
}


def small(name: str, **kw):
    """The ResNet-18 version of a variant (``tiny`` is small already)."""
    if name != "tiny":
        kw = {"backbone": "resnet18", **SMALL.get(name, {}), **kw}
    return build_model(name, **kw)


def torchvision_resnet50_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (DATA / "torchvision_resnet50_state_dict.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape = line.split(" ")
        rows.append((key, tuple(int(s) for s in shape.split(",")) if shape else ()))
    return rows


# --------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------
def test_resnet50_state_dict_is_torchvisions():
    ref = torchvision_resnet50_keys()
    assert len(ref) == 320
    ours = [(k, tuple(v.shape)) for k, v in build_resnet("resnet50").state_dict().items()]
    assert ours == ref


@pytest.mark.parametrize(
    "name,count",
    [
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
    ],
)
def test_resnet_parameter_counts(name, count):
    model = build_resnet(name, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == count
    no_fc = build_resnet(name, num_classes=0)
    assert sum(p.numel() for p in no_fc.parameters()) == count - (no_fc.num_features + 1) * 1000
    assert not any(k.startswith("fc.") for k in no_fc.state_dict())


def test_forward_features_at_224():
    model = build_resnet("resnet50", num_classes=0).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 224, 224))
        pooled = model.forward_head(feats)
    assert model.num_features == 2048
    assert feats.shape == (1, 2048, 7, 7)
    assert pooled.shape == (1, 2048)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.forward_features(torch.randn(1, 1, 64, 64))


def test_kaiming_fan_out_init():
    torch.manual_seed(0)
    conv = build_resnet("resnet18").layer4[0].conv2  # 512 x 512 x 3 x 3
    expected = (2.0 / (512 * 9)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1.0) < 0.02
    bn = build_resnet("resnet18").layer1[0].bn1
    assert torch.equal(bn.weight, torch.ones(64)) and torch.equal(bn.bias, torch.zeros(64))


def _save_tv_checkpoint(path: Path, name: str = "resnet18", seed: int = 3) -> dict:
    torch.manual_seed(seed)
    sd = build_resnet(name, num_classes=1000).state_dict()
    for k, v in sd.items():  # random (Kaiming-initialised convs), batch norms not trivial
        is_bn = ".bn" in f".{k}" or "downsample.1" in k
        if k.endswith("running_var") or (is_bn and k.endswith("weight")):
            v.copy_(torch.rand_like(v) + 0.5)
        elif k.endswith(("running_mean", "bias")):
            v.copy_(0.1 * torch.randn_like(v))
    torch.save(sd, path)
    return sd


def test_load_backbone_weights_into_a_regressor(tmp_path):
    sd = _save_tv_checkpoint(tmp_path / "resnet18.pth")
    model = build_model("resnet50_convlstm", backbone="resnet18")
    ignored = load_backbone_weights(model, tmp_path / "resnet18.pth")
    assert sorted(ignored) == ["fc.bias", "fc.weight"]
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # build_model(backbone_weights=...) does the same
    model2 = build_model(
        "resnet50", backbone="resnet18", backbone_weights=tmp_path / "resnet18.pth"
    )
    assert torch.equal(model2.backbone.conv1.weight, sd["conv1.weight"])


def test_load_backbone_weights_unwraps_and_strips_module_prefix(tmp_path):
    sd = _save_tv_checkpoint(tmp_path / "a.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "b.pth")
    model = build_resnet("resnet18")
    load_backbone_weights(model, tmp_path / "b.pth")
    assert torch.equal(model.fc.weight, sd["fc.weight"])  # a classifier model keeps fc


def test_old_checkpoints_without_num_batches_tracked_load(tmp_path):
    sd = _save_tv_checkpoint(tmp_path / "a.pth")
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert len(old) == len(sd) - 20
    torch.save(old, tmp_path / "old.pth")
    model = build_resnet("resnet18", num_classes=0)
    load_backbone_weights(model, tmp_path / "old.pth")
    assert torch.equal(model.layer4[1].bn2.running_var, sd["layer4.1.bn2.running_var"])


def test_load_backbone_weights_errors(tmp_path):
    _save_tv_checkpoint(tmp_path / "r34.pth", "resnet34")
    model = build_resnet("resnet18", num_classes=0)
    with pytest.raises(BackboneWeightsError) as e:
        load_backbone_weights(model, tmp_path / "r34.pth")
    msg = str(e.value)
    assert "r34.pth" in msg and "unexpected keys: layer1.2." in msg and "(96 in all)" in msg
    sd = build_resnet("resnet18").state_dict()
    del sd["layer3.1.bn2.running_var"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(BackboneWeightsError, match=r"missing.pth.*missing keys: layer3\.1\.bn2"):
        load_backbone_weights(model, tmp_path / "missing.pth")
    torch.save(build_resnet("resnet18", width=32).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(BackboneWeightsError, match=r"narrow.pth: key 'conv1.weight' has shape"):
        load_backbone_weights(model, tmp_path / "narrow.pth")
    with pytest.raises(BackboneWeightsError, match="not found"):
        load_backbone_weights(model, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="junk.pth: not a readable"):
        load_backbone_weights(model, tmp_path / "junk.pth")
    with pytest.raises(TypeError):
        load_backbone_weights(torch.nn.Linear(2, 2), tmp_path / "r34.pth")


def test_inflated_weights_on_a_still_video_equal_the_2d_network(tmp_path):
    """I3D bootstrapping: kernels repeated over time / kt, past = first frame -> same output."""
    _save_tv_checkpoint(tmp_path / "r18.pth")
    net2d = build_resnet("resnet18", num_classes=0).double().eval()
    load_backbone_weights(net2d, tmp_path / "r18.pth")
    net3d = InflatedResNet("resnet18").double().eval()
    ignored = load_backbone_weights(net3d, tmp_path / "r18.pth")  # inflates in float64
    assert ignored == ["fc.weight", "fc.bias"]
    assert net3d.conv1.weight.shape == (64, 3, 5, 7, 7)
    assert len(net3d.temporal_convs()) == 4  # stem + block 0 of stages 1-3
    frame = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = net2d.forward_features(frame)
        out, _ = net3d.forward_features(frame[:, None].expand(-1, 4, -1, -1, -1))
    for t in range(4):
        torch.testing.assert_close(out[:, t], ref, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Regressors: one surface
# --------------------------------------------------------------------------------------------
def test_registry_names():
    names = set(list_models())
    assert set(VARIANTS) | {"resnet101", "resnet18_convlstm", "tiny"} <= names
    with pytest.raises(ValueError, match="unknown model 'nope'; known: "):
        build_model("nope")
    model = build_model("tiny", hidden_channels=16)
    assert model.convlstm.hidden_channels == 16
    assert model.spec == {"name": "tiny", "hidden_channels": 16}


@pytest.mark.parametrize("name", VARIANTS + ["tiny"])
def test_shapes_and_every_parameter_gets_a_finite_gradient(name):
    torch.manual_seed(0)
    model = small(name).train()
    frames = torch.randn(2, 2, 3, 64, 64)
    params, state = model(frames)
    assert params.shape == (2, 2, 26)
    assert torch.isfinite(params).all()
    assert (state is None) == (not model.is_temporal)
    (params**2).mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {n} has no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {n} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {n} has an all-zero gradient"


@pytest.mark.parametrize("name", VARIANTS + ["tiny"])
def test_streaming_equals_batch(name):
    torch.manual_seed(1)
    model = small(name).double().eval()
    frames = torch.randn(1, 4, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        whole, _ = model(frames)
        st, steps = None, []
        for t in range(frames.shape[1]):
            p, st = model.step(frames[:, t], st)
            steps.append(p)
        a, st2 = model(frames[:, :2])
        b, _ = model(frames[:, 2:], st2)
    tol = {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(torch.stack(steps, 1), whole, **tol)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, **tol)
    if model.is_temporal:  # the state matters: a fresh start on frames 2.. differs
        fresh, _ = model(frames[:, 2:])
        assert not torch.allclose(fresh, whole[:, 2:], rtol=1e-6, atol=1e-8)


def test_recurrent_parameters():
    expected_recurrent = {"resnet50_lstm": "lstm", "resnet50_convlstm": "convlstm"}
    for name in VARIANTS:
        model = small(name)
        rec = {id(p) for p in model.recurrent_parameters()}
        assert model.is_recurrent == (name in expected_recurrent)
        if name in expected_recurrent:
            sub = getattr(model, expected_recurrent[name])
            assert rec == {id(p) for p in sub.parameters()} and rec
        else:
            assert rec == set()


def test_initial_output_is_a_plausible_hand():
    torch.manual_seed(0)
    for name in VARIANTS:
        model = small(name, rot_offset=(3.1, 0.0, 0.0)).eval()
        with torch.no_grad():
            params, _ = model(torch.randn(2, 2, 3, 96, 96))
        sl = OUTPUT_SLICES
        s_ref = reference_scale(96)
        assert abs(s_ref - 96 / (2.2 * 0.18)) < 1e-9
        torch.testing.assert_close(params[..., sl["scale"]], torch.full((2, 2, 1), s_ref),
                                   rtol=0.05, atol=0)  # fmt: skip
        torch.testing.assert_close(params[..., sl["trans"]], torch.full((2, 2, 2), 48.0),
                                   rtol=0, atol=3.0)  # fmt: skip
        torch.testing.assert_close(
            params[..., sl["rot"]], torch.tensor([3.1, 0, 0]).expand(2, 2, 3), rtol=0, atol=0.1
        )
        assert params[..., 6:].abs().max() < 0.1


def test_seqhandnet_at_224_has_a_7x7_convlstm_state():
    model = build_model("resnet50_convlstm").eval()
    with torch.no_grad():
        params, (h, c) = model(torch.randn(1, 2, 3, 224, 224))
    assert params.shape == (1, 2, 26)
    assert h.shape == c.shape == (1, 512, 7, 7)


def test_raw_params_round_trip():
    raw = torch.randn(4, 3, 26, dtype=torch.float64)
    off = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    params = raw_to_params(raw, (112, 128), rot_offset=off)
    assert (params[..., 0] > 0).all()
    torch.testing.assert_close(params_to_raw(params, (112, 128), rot_offset=off), raw)
    zero = raw_to_params(torch.zeros(26), (112, 128))
    assert zero[0].item() == pytest.approx(reference_scale(112))
    assert zero[1:3].tolist() == [64.0, 56.0]


def test_normalize_frames():
    img = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    a = normalize_frames(img)
    b = normalize_frames(img.float() / 255.0)
    torch.testing.assert_close(a, b)
    for c in range(3):
        ref = (img[:, c].float() / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(a[:, c], ref)


def test_bad_inputs_say_what_was_expected():
    model = build_model("tiny")
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\).*step\(\)"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="one"):
        model.step(torch.randn(2, 1, 3, 64, 64))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 1, 3, 64, 64, dtype=torch.uint8))


def test_parameter_counts_near_table_2():
    for name, paper in PAPER_PARAM_COUNTS_M.items():
        ours = build_model(name).num_parameters() / 1e6
        print(f"{name:20s} ours {ours:6.2f}M  paper {paper:5.1f}M")
        assert abs(ours / paper - 1) < 0.05, name


# --------------------------------------------------------------------------------------------
# Decode
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def layer():
    return HandLayer(random_mano_asset(0), pose_origin="mean", dtype=torch.float64)


def test_decode_follows_eq_3_4(layer):
    torch.manual_seed(0)
    b, t = 2, 3
    params = torch.randn(b, t, 26, dtype=torch.float64)
    params[..., 0] = 500 + 50 * params[..., 0].abs()
    dec = decode_params(params, layer)
    nv = layer.num_vertices
    assert dec.joints3d.shape == (b, t, 21, 3) and dec.vertices3d.shape == (b, t, nv, 3)
    assert dec.joints2d.shape == (b, t, 21, 2) and dec.vertices2d.shape == (b, t, nv, 2)
    flat = params.reshape(-1, 26)
    out = layer(pose_pca=flat[:, 6:16], betas=flat[:, 16:])  # global_orient = 0
    pts = torch.cat([out.joints, out.vertices], 1)
    x2d, rotated = weak_perspective_project(pts, flat[:, 3:6], flat[:, 0], flat[:, 1:3])
    torch.testing.assert_close(dec.joints2d.reshape(-1, 21, 2), x2d[:, :21])
    torch.testing.assert_close(dec.vertices2d.reshape(-1, nv, 2), x2d[:, 21:])
    root = rotated[:, WRIST : WRIST + 1]
    torch.testing.assert_close(dec.joints3d.reshape(-1, 21, 3), (rotated - root)[:, :21])
    torch.testing.assert_close(dec.vertices3d.reshape(-1, nv, 3), (rotated - root)[:, 21:])
    assert dec.joints3d[..., WRIST, :].abs().max() == 0
    assert dec.params["betas"].shape == (b, t, 10)


def test_camera_rotation_is_the_hands_global_orientation(layer):
    """Root-relative, R applied to the layer's output == the layer with global_orient = r."""
    torch.manual_seed(1)
    params = torch.randn(5, 26, dtype=torch.float64)
    params[:, 0] = 600.0
    dec = decode_params(params, layer)
    out = layer(global_orient=params[:, 3:6], pose_pca=params[:, 6:16], betas=params[:, 16:])
    ref = out.joints - out.joints[:, WRIST : WRIST + 1]
    torch.testing.assert_close(dec.joints3d, ref)


def test_decode_gradients_and_module(layer):
    params = torch.randn(2, 26, dtype=torch.float64, requires_grad=True)
    dec = HandDecoder(layer)(params)
    (dec.joints2d.sum() + dec.vertices3d.pow(2).sum()).backward()
    assert torch.isfinite(params.grad).all() and (params.grad != 0).all()
    assert HandDecoder(layer).faces.shape[1] == 3


def test_decode_needs_mean_pose_origin():
    flat = HandLayer(random_mano_asset(0), pose_origin="flat")
    with pytest.raises(ValueError, match="pose_origin='mean'"):
        decode_params(torch.zeros(1, 26), flat)
    with pytest.raises(ValueError, match="26"):
        decode_params(torch.zeros(1, 25), HandLayer(random_mano_asset(0), pose_origin="mean"))


@pytest.mark.parametrize("h,w", [(3, 3), (2, 2), (7, 7), (1, 5), (4, 6)])
def test_grid_head_pools_like_adaptive_average_pooling(h, w):
    """head_grid=3 reads torch's adaptive_avg_pool2d(hidden, 3) flattened channel-major, for
    maps smaller, equal to and larger than the grid (the ONNX-friendly matrices)."""
    import torch.nn.functional as F

    m = build_model("tiny", head_grid=3).eval()
    x = torch.randn(2, 4, 64, h, w)
    ref = F.adaptive_avg_pool2d(x.flatten(0, 1), 3).reshape(2, 4, 64 * 9)
    torch.testing.assert_close(m.pool(x), ref, rtol=1e-6, atol=1e-6)
    assert m.head.out.in_features == 64 * 9
    assert build_model("tiny", head_grid=0).pool(x).shape == (2, 4, 64)
    with pytest.raises(ValueError, match="head_grid"):
        build_model("tiny", head_grid=-1)
