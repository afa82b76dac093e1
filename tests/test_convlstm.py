"""ConvLSTM: Shi et al.'s equations, explicit state, streaming == batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqhand.models.convlstm import ConvLSTM, ConvLSTMCell


def naive_convlstm(layer: ConvLSTM, x: torch.Tensor, state=None):
    """Reference: the eight convolutions of Shi et al. written out one by one."""
    cell = layer.cell
    ch, cin = cell.hidden_channels, cell.in_channels
    w, b = cell.conv.weight, cell.conv.bias
    pad = cell.kernel_size // 2
    wx = {g: w[k * ch : (k + 1) * ch, :cin] for k, g in enumerate("ifgo")}
    wh = {g: w[k * ch : (k + 1) * ch, cin:] for k, g in enumerate("ifgo")}
    bias = {g: b[k * ch : (k + 1) * ch] for k, g in enumerate("ifgo")}
    bsz, t, _, hh, ww = x.shape
    if state is None:
        h = x.new_zeros(bsz, ch, hh, ww)
        c = x.new_zeros(bsz, ch, hh, ww)
    else:
        h, c = state
    outs = []
    for step in range(t):
        xt = x[:, step]

        def pre(g, xt=xt, h=h):
            return (F.conv2d(xt, wx[g], padding=pad) + F.conv2d(h, wh[g], padding=pad)) + bias[
                g
            ].view(1, -1, 1, 1)

        gi, gf, gg, go = pre("i"), pre("f"), pre("g"), pre("o")
        if cell.peephole:
            wci, wcf, wco = cell.peephole_weight
            gi = gi + wci * c
            gf = gf + wcf * c
        i, f, g = torch.sigmoid(gi), torch.sigmoid(gf), torch.tanh(gg)
        c = f * c + i * g
        if cell.peephole:
            go = go + wco * c
        h = torch.sigmoid(go) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), (h, c)


@pytest.fixture(params=[False, True], ids=["plain", "peephole"])
def layer(request):
    torch.manual_seed(0)
    lay = ConvLSTM(5, 7, kernel_size=3, peephole=request.param).double()
    with torch.no_grad():  # non-trivial biases and peepholes
        lay.cell.conv.bias.normal_()
        if request.param:
            lay.cell.peephole_weight.normal_()
    return lay


def test_matches_naive_equations(layer):
    x = torch.randn(2, 4, 5, 6, 8, dtype=torch.float64)
    out, (h, c) = layer(x)
    ref, (rh, rc) = naive_convlstm(layer, x)
    assert out.shape == (2, 4, 7, 6, 8)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c, rc, rtol=1e-12, atol=1e-12)
    assert torch.equal(h, out[:, -1])


def test_sequence_equals_frame_by_frame(layer):
    x = torch.randn(3, 6, 5, 4, 4, dtype=torch.float64)
    out, state = layer(x)
    st = None
    steps = []
    for t in range(x.shape[1]):
        st = layer.step(x[:, t], st)
        steps.append(st[0])
    assert torch.equal(out, torch.stack(steps, 1))
    assert torch.equal(state[0], st[0]) and torch.equal(state[1], st[1])


def test_chunks_with_carried_state_equal_whole_sequence(layer):
    x = torch.randn(2, 7, 5, 4, 4, dtype=torch.float64)
    whole, _ = layer(x)
    a, st = layer(x[:, :3])
    b, _ = layer(x[:, 3:], st)
    assert torch.equal(whole, torch.cat([a, b], 1))


def test_none_state_resets(layer):
    x = torch.randn(1, 3, 5, 4, 4, dtype=torch.float64)
    first, st = layer(x)
    again, _ = layer(x)  # state not passed: a new sequence
    cont, _ = layer(x, st)  # state passed: continues, so differs
    assert torch.equal(first, again)
    assert not torch.allclose(first, cont)


def test_explicit_zero_state_equals_none(layer):
    x = torch.randn(2, 2, 5, 3, 3, dtype=torch.float64)
    z = torch.zeros(2, 7, 3, 3, dtype=torch.float64)
    assert torch.equal(layer(x)[0], layer(x, (z, z.clone()))[0])


def test_resolution_independent(layer):
    """No parameter depends on the feature-map size (also with per-channel peepholes)."""
    for hw in [(3, 3), (7, 7), (5, 9)]:
        out, _ = layer(torch.randn(1, 2, 5, *hw, dtype=torch.float64))
        assert out.shape == (1, 2, 7) + hw


def test_forget_bias_initialised_to_one():
    cell = ConvLSTMCell(3, 4, forget_bias=1.0)
    b = cell.conv.bias.detach()
    assert torch.equal(b[4:8], torch.ones(4))
    assert torch.equal(torch.cat([b[:4], b[8:]]), torch.zeros(12))


def test_gradcheck():
    torch.manual_seed(1)
    lay = ConvLSTM(2, 2, kernel_size=3, peephole=True).double()
    x = torch.randn(1, 2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, h, c: lay(a, (h, c))[0], (x, h0, c0))


def test_bad_inputs():
    lay = ConvLSTM(3, 4)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        lay(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="empty sequence"):
        lay(torch.randn(2, 0, 3, 4, 4))
    with pytest.raises(ValueError, match="expects"):
        lay(torch.randn(2, 1, 5, 4, 4))
    with pytest.raises(ValueError, match="state"):
        lay(torch.randn(2, 1, 3, 4, 4), (torch.zeros(2, 4, 5, 5), torch.zeros(2, 4, 5, 5)))
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(3, 4, kernel_size=2)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 4, 5])
def test_matmul_gates_equal_convolution(kernel_size, bias, batch):
    """Small batches take the im2col matrix-product path; it is the same convolution."""
    torch.manual_seed(1)
    cell = ConvLSTMCell(6, 4, kernel_size, bias=bias).double()
    if bias:
        with torch.no_grad():
            cell.conv.bias.normal_()
    xh = torch.randn(batch, 10, 5, 7, dtype=torch.float64, requires_grad=True)
    out = cell._gates(xh)
    ref = F.conv2d(xh, cell.conv.weight, cell.conv.bias, padding=kernel_size // 2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (xh, cell.conv.weight), g)
    grads_ref = torch.autograd.grad(ref, (xh, cell.conv.weight), g)
    for a, r in zip(grads, grads_ref):
        torch.testing.assert_close(a, r, rtol=0, atol=1e-12)


def test_state_has_no_subnormal_numbers():
    """Saturated gates must not leave subnormals in the state (they slow CPUs down ~25x)."""
    cell = ConvLSTMCell(3, 4)
    with torch.no_grad():
        cell.conv.weight.zero_()
        cell.conv.bias.zero_()
        cell.conv.bias[12:].fill_(-86.0)  # output gate sigmoid(-86) ~ 4.5e-38
    x = torch.randn(1, 3, 4, 4)
    h, c = cell(x, (torch.zeros(1, 4, 4, 4), torch.full((1, 4, 4, 4), 0.5)))
    tiny = torch.finfo(torch.float32).tiny
    for s in (h, c):
        assert not ((s != 0) & (s.abs() < tiny)).any()
    assert torch.equal(h, torch.zeros_like(h))
    # without the flush h = sigmoid(-86) * tanh(0.25) would be subnormal: the test can fail
    raw = torch.sigmoid(torch.tensor(-86.0)) * torch.tanh(torch.tensor(0.25))
    assert 0 < raw.item() < tiny
