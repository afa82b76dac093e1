"""Optimisers of ``optim.name``: AdamW (the default) and Muon for the hidden convolutions.

Muon (K. Jordan et al., 2024, "Muon: an optimizer for hidden layers"; J. Liu et al., 2025,
"Muon is scalable for LLM training") replaces each hidden weight matrix's update by the nearest
semi-orthogonal matrix to its Nesterov momentum, computed with a quintic Newton-Schulz iteration:
every direction of the layer's input space moves by the same amount, however rare its gradient.
A convolution's ``(out, in, k, k)`` kernel is treated as the ``(out, in * k * k)`` matrix it
multiplies the unfolded input with. The input layer (the stem), the output layer, biases and
normalisation parameters keep AdamW, as both papers prescribe.

``optim.name: muon`` uses one learning rate and weight decay for both parts: the orthogonal
update is scaled to the RMS of an AdamW update (0.2 x sqrt(max(rows, cols)), Liu et al.), so the
AdamW settings carry over. ``torch.optim.Muon`` is not used: it accepts only 2-D parameters and
iterates in bfloat16, which AVX2-only CPUs do not compute natively.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from seqhand.errors import SeqhandError

__all__ = ["OPTIMIZERS", "MuonAdamW", "build_optimizer", "muon_split", "orthogonalize"]

OPTIMIZERS = ("adamw", "muon")
_NS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz coefficients (Jordan et al.)


def orthogonalize(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """An approximation ``U S' V^T`` (S' mostly within ~[0.6, 1.2]) of the orthogonal factor ``U V^T``
    of ``g``'s SVD, for a 2-D ``g``, by ``steps`` quintic Newton-Schulz iterations in float32."""
    if g.ndim != 2:
        raise ValueError(f"orthogonalize needs a matrix, got shape {tuple(g.shape)}")
    a, b, c = _NS
    x = g.float()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm <= 1
    # Each iterate x_k = q_k x where q_k is a polynomial of the small Gram matrix g = x x^T, so
    # the iteration runs on (r, r) matrices - q_{k+1} = (a + b m + c m^2) q_k, m = q_k^2 g -
    # and touches the long side once: 2.5x fewer flops for a (256, 2304) kernel.
    g = x @ x.T
    eye = torch.eye(len(g), dtype=g.dtype)
    q = eye
    for _ in range(steps):
        m = q @ q @ g
        q = (a * eye + b * m + c * m @ m) @ q
    x = q @ x
    return x.T if tall else x


def muon_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(hidden, other)``: the weights of the hidden convolutions and linear layers with 2-D+
    kernels (for Muon) and everything else (for AdamW): the first convolution that sees the
    image, the last linear layer, biases and normalisation parameters."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    matrices = [n for n, p in named if p.ndim >= 2]
    first_conv = next((n for n, p in named if p.ndim == 4), None)
    last = matrices[-1] if matrices else None
    hidden, other = [], []
    for n, p in named:
        (hidden if p.ndim >= 2 and n not in (first_conv, last) else other).append(p)
    return hidden, other


class MuonAdamW(torch.optim.Optimizer):
    """Muon for the param groups marked ``muon=True``, AdamW for the others; one ``lr`` and
    ``weight_decay`` schedule for both (decoupled weight decay in both)."""

    def __init__(self, hidden: Iterable[nn.Parameter], other: Iterable[nn.Parameter], *,
                 lr: float, weight_decay: float = 0.0, momentum: float = 0.95,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 ns_steps: int = 5) -> None:  # fmt: skip
        groups = [{"params": list(hidden), "muon": True}, {"params": list(other), "muon": False}]
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, betas=betas,
                        eps=eps, ns_steps=ns_steps)  # fmt: skip
        super().__init__([g for g in groups if g["params"]], defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                g = p.grad
                p.mul_(1 - lr * wd)
                if group["muon"]:
                    buf = state.setdefault("momentum_buffer", torch.zeros_like(g))
                    buf.lerp_(g, 1 - group["momentum"])
                    u = orthogonalize(g.lerp(buf, group["momentum"]).reshape(len(g), -1),
                                      group["ns_steps"])  # fmt: skip
                    scale = 0.2 * max(u.shape) ** 0.5  # the RMS of an AdamW update
                    p.add_(u.view_as(p), alpha=-lr * scale)
                    continue
                b1, b2 = group["betas"]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / (1 - b2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-lr / (1 - b1**t))
        return loss


def build_optimizer(model: nn.Module, name: str, lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:  # fmt: skip
    """The optimiser ``optim.name`` (:data:`OPTIMIZERS`) over ``model``'s trainable parameters."""
    if name == "adamw":
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "muon":
        hidden, other = muon_split(model)
        return MuonAdamW(hidden, other, lr=lr, weight_decay=weight_decay)
    raise SeqhandError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
