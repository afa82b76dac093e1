"""A small-scale version of the paper's Table 2 on a CPU: the per-frame baseline vs + LSTM vs
+ ConvLSTM (SeqHAND-Net), same data, same budget, same backbone (a half-width ResNet-18),
evaluated on held-out generated sequences (3D / 2D error and AUC 20-50 mm, root-aligned).

    python benchmarks/ablation.py --data out/demo/data --steps 600 --out runs/ablation

Writes ``OUT/<variant>/`` runs and ``OUT/ablation.json``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seqhand.config import load_config
from seqhand.data.generate import generate, preset
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.evaluator import evaluate_sequences, generated_sequences
from seqhand.models import HandDecoder
from seqhand.training.checkpoint import load_model
from seqhand.training.run import train

BACKBONE = {"backbone": "resnet18", "backbone_width": 32}
VARIANTS = {  # Table 2 rows, scaled down
    "per-frame baseline": ("resnet50", {**BACKBONE, "head_hidden": [256]}),
    "+ LSTM": ("resnet50_lstm", {**BACKBONE, "hidden_size": 256}),
    "+ ConvLSTM (SeqHAND-Net)": ("resnet50_convlstm",
                                 {**BACKBONE, "reduce_channels": 64, "hidden_channels": 64}),
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="out/demo/data", help="a generated dataset (made if missing)")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--image-size", type=int, default=96)
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not (data / "manifest.json").is_file():
        generate(preset("demo"), data)
    rows = {}
    for label, (name, kwargs) in VARIANTS.items():
        run = out / name
        t0 = time.time()
        if not (run / "model.pt").is_file():
            cfg = load_config("tiny", [f"data.root={data}", f"model.name={name}",
                                       f"model.image_size={args.image_size}",
                                       f"trainer.max_steps={args.steps}",
                                       f"trainer.val_every_n_steps={args.steps}"])  # fmt: skip
            cfg["model"]["kwargs"] = kwargs
            train(cfg, run, progress=False)
        seconds = time.time() - t0
        model, rec = load_model(run / "model.pt")
        acc = MetricAccumulator(alignment="root")
        evaluate_sequences(model, generated_sequences(data, "test", rec["image_size"]),
                           accumulator=acc, decoder=HandDecoder(None), progress=False)  # fmt: skip
        m = acc.evaluate()
        rows[label] = {
            "model": name, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "auc_20_50": m["auc"], "epe3d_mm": m["epe3d_mean_mm"], "epe2d_px": m["epe2d_mean_px"],
            "train_seconds": round(seconds, 1),
        }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))
    print(f"| framework | AUC 20-50 mm | 3D error (mm) | 2D error (px @ {args.image_size}) "
          "| params | train time |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['auc_20_50']:.3f} | {r['epe3d_mm']:.1f} | {r['epe2d_px']:.2f} | "
              f"{r['params_M']:.2f}M | {r['train_seconds']:.0f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
