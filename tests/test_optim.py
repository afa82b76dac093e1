"""``optim.name``: Muon for the hidden convolutions, AdamW for the rest (seqhand.training.optim).

References: the polar factor ``U V^T`` of numpy's SVD for the Newton-Schulz orthogonalisation;
``torch.optim.AdamW`` for the AdamW part; Muon's update as defined by Jordan et al. (Nesterov
momentum, orthogonalised, the kernel as an ``(out, in * k * k)`` matrix).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from seqhand.errors import SeqhandError
from seqhand.models import build_model
from seqhand.training.optim import MuonAdamW, build_optimizer, muon_split, orthogonalize


def _polar(g: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    return u @ vt


@pytest.mark.parametrize("shape", [(32, 288), (288, 32), (64, 64)])
def test_orthogonalize_approximates_the_polar_factor(shape):
    g = np.random.default_rng(0).normal(size=shape)
    o = orthogonalize(torch.from_numpy(g)).double().numpy()
    assert o.shape == g.shape
    s = np.linalg.svd(o, compute_uv=False)
    # The quintic's band (not exactly 1; the smallest of a square matrix's values lag behind).
    assert np.percentile(s, 5) > 0.6 and s.max() < 1.3
    ref = _polar(g)
    cos = np.sum(o * ref) / (np.linalg.norm(o) * np.linalg.norm(ref))
    assert cos > 0.97
    with pytest.raises(ValueError, match="matrix"):
        orthogonalize(torch.zeros(2, 3, 4))


def test_the_adamw_part_equals_torch_adamw():
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(5))
    b = nn.Parameter(a.detach().clone())
    ours = MuonAdamW([], [a], lr=1e-2, weight_decay=0.1)
    ref = torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1)
    for k in range(6):
        g = torch.randn(5, generator=torch.Generator().manual_seed(k))
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_the_muon_step_of_a_conv_kernel():
    """Two steps from zero momentum against the definition written out with SVD."""
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(16, 8, 3, 3))
    p = nn.Parameter(torch.from_numpy(w0).float())
    lr, wd, mom = 0.01, 0.05, 0.9
    opt = MuonAdamW([p], [], lr=lr, weight_decay=wd, momentum=mom, ns_steps=5)
    w, buf = w0.copy(), np.zeros_like(w0)
    for _ in range(2):
        g = rng.normal(size=w0.shape)
        p.grad = torch.from_numpy(g).float()
        opt.step()
        buf = mom * buf + (1 - mom) * g
        nesterov = (1 - mom) * g + mom * buf
        u = _polar(nesterov.reshape(16, -1)).reshape(w0.shape)
        w = w * (1 - lr * wd) - lr * 0.2 * np.sqrt(72) * u
    got = p.detach().double().numpy()
    # Newton-Schulz is not the exact polar factor: compare the step, not the weights.
    step_got, step_ref = got - w0 * (1 - lr * wd) ** 2, w - w0 * (1 - lr * wd) ** 2
    cos = np.sum(step_got * step_ref) / (np.linalg.norm(step_got) * np.linalg.norm(step_ref))
    assert cos > 0.97
    assert np.linalg.norm(step_got) == pytest.approx(np.linalg.norm(step_ref), rel=0.15)


def test_muon_split_keeps_the_stem_head_and_vectors_on_adamw():
    model = build_model("tiny", head_grid=3)
    hidden, other = muon_split(model)
    names = {id(p): n for n, p in model.named_parameters()}
    hidden_names = {names[id(p)] for p in hidden}
    other_names = {names[id(p)] for p in other}
    assert "backbone.conv1.weight" in other_names  # sees the image
    assert "head.out.weight" in other_names  # the output layer
    assert "convlstm.cell.conv.weight" in hidden_names
    assert "backbone.layer4.0.conv2.weight" in hidden_names
    assert all(p.ndim >= 2 for p in hidden)
    assert all(p.ndim == 1 for n, p in model.named_parameters() if names[id(p)] in other_names
               and n not in ("backbone.conv1.weight", "head.out.weight"))  # fmt: skip
    assert len(hidden) + len(other) == len(list(model.parameters()))


def test_build_optimizer_by_name():
    model = build_model("tiny", head_grid=3)
    assert isinstance(build_optimizer(model, "adamw", 1e-3, 0.0), torch.optim.AdamW)
    assert isinstance(build_optimizer(model, "muon", 1e-3, 0.0), MuonAdamW)
    with pytest.raises(SeqhandError, match="adamw, muon"):
        build_optimizer(model, "sgd", 1e-3, 0.0)


def test_optim_name_in_the_config_reaches_the_trainer():
    from seqhand.config import ConfigError, load_config
    from seqhand.training.module import SeqHandModule

    cfg = load_config("tiny", ["optim.name=muon", "trainer.max_steps=10"])
    opt = SeqHandModule(cfg).configure_optimizers()["optimizer"]
    assert isinstance(opt, MuonAdamW)
    assert {g["muon"] for g in opt.param_groups} == {True, False}
    cfg = load_config("tiny", ["trainer.max_steps=10"])
    assert isinstance(SeqHandModule(cfg).configure_optimizers()["optimizer"], torch.optim.AdamW)
    with pytest.raises(ConfigError, match="optim.name"):
        load_config("tiny", ["optim.name=sgd"])


def test_muon_state_round_trips_for_an_exact_resume():
    def make():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.LazyLinear(2)
        )
        model(torch.zeros(1, 3, 8, 8))
        return model, build_optimizer(model, "muon", 1e-2, 0.01)

    def step(model, opt, k):
        x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(k))
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()

    a, oa = make()
    for k in range(3):
        step(a, oa, k)
    b, ob = make()
    buf = io.BytesIO()  # through a file, as a resume does (load_state_dict alone aliases)
    torch.save({"model": a.state_dict(), "optim": oa.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b.load_state_dict(saved["model"])
    ob.load_state_dict(saved["optim"])
    for k in range(3, 5):
        step(a, oa, k)
        step(b, ob, k)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
