"""Convolutional LSTM (Shi et al., NeurIPS 2015) with explicit state, so a network can stream.

For an input frame ``x_t`` and the previous state ``(h, c)``, with ``*`` a 2D convolution
(``kernel_size`` x ``kernel_size``, "same" padding) and ``o`` the Hadamard product::

    i_t = sigmoid(W_xi * x_t + W_hi * h_{t-1} [+ w_ci o c_{t-1}] + b_i)
    f_t = sigmoid(W_xf * x_t + W_hf * h_{t-1} [+ w_cf o c_{t-1}] + b_f)
    g_t = tanh   (W_xg * x_t + W_hg * h_{t-1} + b_g)
    c_t = f_t o c_{t-1} + i_t o g_t
    o_t = sigmoid(W_xo * x_t + W_ho * h_{t-1} [+ w_co o c_t] + b_o)
    h_t = o_t o tanh(c_t)

All eight convolutions are one convolution of ``cat(x_t, h_{t-1})`` with ``4 * hidden`` output
channels, gates in PyTorch's LSTM order (i, f, g, o). The forget-gate bias starts at 1.

**Peephole connections** (the bracketed terms) are *off by default*. Shi et al. use them, with
weights as large as the state (``hidden x H x W``); we leave them out because (1) the paper
does not say SeqHAND-Net used them and the common ConvLSTM implementations of its time had
none, (2) full-size peephole weights tie the layer to one feature-map size (a network trained
at 224x224 could not run at 112x112 or on another crop size), and (3) peepholes bring no
consistent gain in LSTM studies (Greff et al., "LSTM: A Search Space Odyssey", 2017).
``peephole=True`` adds them as *per-channel* weights (``hidden x 1 x 1``, broadcast over the
map) - a size-independent simplification of Shi et al.'s, documented in docs/model.md.

State: ``(h, c)``, each ``(B, hidden, H, W)``. ``None`` means zeros (the state is reset).
Running a sequence at once equals stepping it frame by frame with the state carried over.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ConvLSTMState = tuple[torch.Tensor, torch.Tensor]

# Batches up to this size compute the gate convolution as one matrix product (see _gates).
_MATMUL_MAX_BATCH = 4


def _flush_subnormal(x: torch.Tensor) -> torch.Tensor:
    """Set subnormal values (``|x| < finfo.tiny``) to zero.

    A saturated gate leaves subnormal numbers in the state (in float32 ``sigmoid(-86) *
    tanh(0.25)`` = 1.1e-38 < 1.18e-38, for example); the next step's matrix product
    over them runs up to 25x slower on x86 CPUs (measured: 8 ms -> 200 ms for ResNet-50's
    gate product). Values that small carry nothing, and every normal number is unchanged.
    """
    return x.masked_fill(x.abs() < torch.finfo(x.dtype).tiny, 0.0)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: ``cell(x_t (B, C, H, W), state) -> (h_t, c_t)``.

    Args:
        in_channels: C of the input frames.
        hidden_channels: channels of h and c.
        kernel_size: odd size of the square convolution kernel ("same" padding).
        peephole: add per-channel peephole weights (see the module docstring).
        bias: a bias on the gates.
        forget_bias: initial bias of the forget gate.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        *,
        peephole: bool = False,
        bias: bool = True,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.kernel_size = int(kernel_size)
        self.peephole = bool(peephole)
        self.export_matmul = False  # see _gates
        self.conv = nn.Conv2d(
            self.in_channels + self.hidden_channels,
            4 * self.hidden_channels,
            kernel_size=self.kernel_size,
            padding=self.kernel_size // 2,
            bias=bias,
        )
        if self.peephole:
            # w_ci, w_cf, w_co: per channel, broadcast over the feature map.
            self.peephole_weight = nn.Parameter(torch.zeros(3, self.hidden_channels, 1, 1))
        self.reset_parameters(forget_bias)

    def reset_parameters(self, forget_bias: float = 1.0) -> None:
        nn.init.xavier_uniform_(self.conv.weight)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
            with torch.no_grad():
                self.conv.bias[self.hidden_channels : 2 * self.hidden_channels].fill_(forget_bias)
        if self.peephole:
            nn.init.uniform_(self.peephole_weight, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"peephole={self.peephole}"

    def init_state(self, x: torch.Tensor) -> ConvLSTMState:
        """Zero state for a ``(B, C, H, W)`` input."""
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.hidden_channels, h, w)
        return z, z

    def _gates(self, xh: torch.Tensor) -> torch.Tensor:
        """The gate convolution of ``cat(x, h)``.

        For small batches (streaming inference: batch 1) the convolution is computed as one
        matrix product of the weight with the stacked shifted maps (im2col): at batch 1 on a
        7x7 map the ResNet-50 layer (1024 -> 2048 channels, 3x3) takes 9 ms this way against
        24 ms for the library convolution on the CPU (see benchmarks/infer.py), because the
        weight is read once by a single GEMM. The two are the same function (to rounding).
        ONNX export keeps the convolution (onnxruntime's is faster than its MatMul here: 5.6 vs
        7.8 ms for the same layer) unless ``export_matmul`` is set: ``seqhand export
        --quantize-recurrent`` exports the product, its weight a constant right operand, so
        that onnxruntime can quantize it to int8.
        """
        b, ch, height, width = xh.shape
        if b > _MATMUL_MAX_BATCH or (torch.onnx.is_in_onnx_export() and not self.export_matmul):
            return self.conv(xh)
        k = self.kernel_size
        p = k // 2
        xp = F.pad(xh, (p, p, p, p))
        # (B, C, k*k, H, W) -> (B, C*k*k, H*W): the order of the weight's (C, kh, kw) axes.
        cols = torch.stack(
            [xp[:, :, dy : dy + height, dx : dx + width] for dy in range(k) for dx in range(k)],
            dim=2,
        ).reshape(b, ch * k * k, height * width)
        # (B, H*W, C*k*k) @ (C*k*k, 4 hidden): the weight is the constant right operand
        out = torch.matmul(
            cols.transpose(1, 2), self.conv.weight.reshape(self.conv.out_channels, -1).t()
        )
        if self.conv.bias is not None:
            out = out + self.conv.bias
        return out.transpose(1, 2).reshape(b, self.conv.out_channels, height, width)

    def forward(self, x: torch.Tensor, state: ConvLSTMState | None = None) -> ConvLSTMState:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConvLSTMCell expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        h, c = self.init_state(x) if state is None else state
        if h.shape != (x.shape[0], self.hidden_channels) + x.shape[2:] or c.shape != h.shape:
            raise ValueError(
                f"state (h, c) must be {(x.shape[0], self.hidden_channels) + tuple(x.shape[2:])},"
                f" got {tuple(h.shape)} and {tuple(c.shape)}"
            )
        gates = self._gates(torch.cat([x, h], dim=1))
        gi, gf, gg, go = gates.chunk(4, dim=1)
        if self.peephole:
            wci, wcf, wco = self.peephole_weight.unbind(0)
            gi = gi + wci * c
            gf = gf + wcf * c
        c_new = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
        if self.peephole:
            go = go + wco * c_new
        h_new = torch.sigmoid(go) * torch.tanh(c_new)
        return _flush_subnormal(h_new), _flush_subnormal(c_new)


class ConvLSTM(nn.Module):
    """A ConvLSTM layer over sequences, with state in and out.

    ``layer(x (B, T, C, H, W), state=None) -> (outputs (B, T, hidden, H, W), (h_T, c_T))``.
    Pass the returned state to the next call to continue the sequence; pass ``None`` to
    start a new one. Arguments as for :class:`ConvLSTMCell`.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        *,
        peephole: bool = False,
        bias: bool = True,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(
            in_channels,
            hidden_channels,
            kernel_size,
            peephole=peephole,
            bias=bias,
            forget_bias=forget_bias,
        )

    @property
    def hidden_channels(self) -> int:
        return self.cell.hidden_channels

    def forward(
        self, x: torch.Tensor, state: ConvLSTMState | None = None
    ) -> tuple[torch.Tensor, ConvLSTMState]:
        if x.dim() != 5:
            raise ValueError(f"ConvLSTM expects (B, T, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise ValueError("ConvLSTM got an empty sequence (T = 0)")
        outputs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1), state

    def step(self, x: torch.Tensor, state: ConvLSTMState | None = None) -> ConvLSTMState:
        """One frame ``(B, C, H, W)`` -> the new state ``(h, c)`` (``h`` is the output)."""
        return self.cell(x, state)
