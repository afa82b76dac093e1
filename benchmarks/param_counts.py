"""Parameter counts of our models beside the paper's Table 2.

    python benchmarks/param_counts.py

Prints, for every model of Table 2 (and the small presets), the parameters of the backbone, of
the temporal part (ConvLSTM / LSTM / motion blocks / inflation), of the reduction and head, the
total, the paper's number and the ratio.
"""

from __future__ import annotations

import torch

from seqhand.models import PAPER_PARAM_COUNTS_M, build_model, build_resnet
from seqhand.models.variants import I3DRegressor, MFNetRegressor

TABLE_2 = [
    ("resnet50", "ResNet50-Encoder (baseline)"),
    ("resnet101", "ResNet101-Encoder"),
    ("i3d_resnet50", "I3D-Encoder"),
    ("mfnet", "MFNet-Encoder"),
    ("resnet50_lstm", "ResNet50-Encoder+LSTM"),
    ("resnet50_convlstm", "ResNet50-Encoder+ConvLSTM (SeqHAND-Net)"),
    ("resnet18_convlstm", "(ours) SeqHAND-Net on ResNet-18"),
    ("tiny", "(ours) tiny CPU preset"),
]


def count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def breakdown(model) -> tuple[int, int, int]:
    """(backbone, temporal, rest) parameter counts."""
    total = model.num_parameters()
    if isinstance(model, I3DRegressor):
        name = model.spec.get("backbone", "resnet50")
        plain = count(build_resnet(name, num_classes=0))
        backbone, temporal = plain, count(model.backbone) - plain  # inflation = temporal part
    else:
        backbone = count(model.backbone)
        temporal = sum(p.numel() for p in model.recurrent_parameters())
        if isinstance(model, MFNetRegressor):
            temporal = count(model.motion3) + count(model.motion4)
    return backbone, temporal, total - backbone - temporal


def main() -> None:
    torch.manual_seed(0)
    head = f"{'model':18s} {'Table 2 row':42s} {'backbone':>9s} {'temporal':>9s} {'red+head':>8s}"
    print(head + f" {'total':>8s} {'paper':>7s} {'ratio':>6s}")
    for name, label in TABLE_2:
        model = build_model(name)
        b, t, r = breakdown(model)
        total = model.num_parameters()
        paper = PAPER_PARAM_COUNTS_M.get(name)
        ratio = f"{total / 1e6 / paper:6.3f}" if paper else "     -"
        paper_s = f"{paper:6.1f}M" if paper else "      -"
        print(
            f"{name:18s} {label:42s} {b / 1e6:8.2f}M {t / 1e6:8.2f}M {r / 1e6:7.2f}M "
            f"{total / 1e6:7.2f}M {paper_s} {ratio}"
        )


if __name__ == "__main__":
    main()
