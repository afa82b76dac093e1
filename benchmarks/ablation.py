"""A small-scale version of the paper's Table 2 on a CPU: the per-frame baseline vs + LSTM vs
+ ConvLSTM (SeqHAND-Net), same data, same budget, same backbone (a half-width ResNet-18),
evaluated on held-out generated sequences (3D / 2D error and AUC 20-50 mm, root-aligned), and
the temporal smoothness of each (acceleration error, jitter, the paper's mean |delta beta| /
|delta theta| between frames; section 5.2), with the recurrent variants also run with their state
reset at every frame (``--per-frame``) - the smoothness comparison of issue 7.

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
            (run / "train_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
        seconds_file = run / "train_seconds.txt"
        seconds = float(seconds_file.read_text()) if seconds_file.is_file() else float("nan")
        model, rec = load_model(run / "model.pt")
        runs = [(label, False)] + ([(f"{label}, state reset every frame", True)]
                                   if model.is_recurrent else [])  # fmt: skip
        for row_label, per_frame in runs:
            acc = MetricAccumulator(alignment="root")
            evaluate_sequences(model, generated_sequences(data, "test", rec["image_size"]),
                               accumulator=acc, decoder=HandDecoder(None), per_frame=per_frame,
                               progress=False)  # fmt: skip
            m = acc.evaluate()
            change = m.get("param_change", {})
            rows[row_label] = {
                "model": name, "per_frame": per_frame,
                "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                "auc_20_50": m["auc"], "epe3d_mm": m["epe3d_mean_mm"],
                "epe2d_px": m["epe2d_mean_px"],
                "accel_error_mm": m["accel_error_mm_per_frame2"],
                "jitter_mm": m["jitter_mm_per_frame3"],
                "mean_abs_dbeta": change.get("betas", {}).get("mean_abs"),
                "mean_abs_dtheta": change.get("pose", {}).get("mean_abs"),
                "train_seconds": round(seconds, 1),
            }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))
    print(f"| framework | AUC 20-50 mm | 3D error (mm) | 2D error (px @ {args.image_size}) "
          "| accel. error (mm/frame^2) | jitter (mm/frame^3) | mean abs d-beta "
          "| mean abs d-theta_pca | params | train time |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['auc_20_50']:.3f} | {r['epe3d_mm']:.1f} | {r['epe2d_px']:.2f} | "
              f"{r['accel_error_mm']:.1f} | {r['jitter_mm']:.1f} | {r['mean_abs_dbeta']:.4f} | "
              f"{r['mean_abs_dtheta']:.3f} | {r['params_M']:.2f}M | {r['train_seconds']:.0f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
