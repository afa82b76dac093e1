"""A small-scale version of the paper's Table 2 on a CPU: the per-frame baseline vs + LSTM vs
+ ConvLSTM (SeqHAND-Net), same data, same budget, same backbone (the `tiny` preset's
one-block-per-stage ResNet, width 32; the ConvLSTM with the preset's 3 x 3 grid head, the
others pooled as in the paper's baseline), several training seeds (mean +- sd), evaluated on
held-out generated sequences: root-relative 3D error, PA-MPJPE, 2D error, AUC 20-50 mm, median
rotation error, and the temporal smoothness of each (acceleration error, jitter, the paper's
mean |delta beta| / |delta theta| between frames; section 5.2). The recurrent variants are also
run with their state reset at every frame (``per-frame``).

    python benchmarks/ablation.py --data out/demo/data --steps 1500 --seeds 0,1,2 --out runs/ablation

Writes ``OUT/<variant>-s<seed>/`` runs and ``OUT/ablation.json``, which keeps the rows of earlier
invocations on the same ``OUT`` (so the seeds of one table may be run one at a time); prints a
Markdown table of all its rows, in the order of ``VARIANTS``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from seqhand.config import load_config
from seqhand.data.generate import generate, preset
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.evaluator import evaluate_sequences, generated_sequences
from seqhand.evaluation.view import ViewMetrics
from seqhand.models import HandDecoder
from seqhand.training.checkpoint import load_model
from seqhand.training.run import train

BACKBONE = {"backbone": "resnet10", "backbone_width": 32}
VARIANTS = {  # Table 2 rows, scaled down
    "per-frame baseline": ("resnet50", {**BACKBONE, "head_hidden": [256]}),
    "+ LSTM": ("resnet50_lstm", {**BACKBONE, "hidden_size": 256}),
    "+ ConvLSTM (SeqHAND-Net)": ("resnet50_convlstm", {**BACKBONE, "reduce_channels": 64,
                                                       "hidden_channels": 64, "head_grid": 3}),
}  # fmt: skip
COLUMNS = {  # key -> (header, format)
    "epe3d_mm": ("3D (mm)", "{:.1f}"), "pa_mpjpe_mm": ("PA-MPJPE (mm)", "{:.1f}"),
    "epe2d_px": ("2D (px)", "{:.2f}"), "auc_20_50": ("AUC 20-50", "{:.3f}"),
    "rot_err_median_deg": ("rot. err. (deg)", "{:.1f}"),
    "accel_error_mm": ("accel. err. (mm/f^2)", "{:.1f}"), "jitter_mm": ("jitter (mm/f^3)", "{:.1f}"),
    "mean_abs_dbeta": ("mean abs d-beta", "{:.4f}"), "mean_abs_dtheta": ("mean abs d-theta", "{:.3f}"),
}  # fmt: skip


def run_variant(label, name, kwargs, data, out, steps, seed, size, precision) -> dict:
    run = out / f"{name}-s{seed}"
    t0 = time.time()
    if not (run / "model.pt").is_file():
        cfg = load_config("tiny", [f"data.root={data}", f"model.name={name}",
                                   f"model.image_size={size}", f"trainer.max_steps={steps}",
                                   f"trainer.seed={seed}", f"trainer.val_every_n_steps={steps}",
                                   f"trainer.ckpt_every_n_steps={steps}",
                                   f"trainer.precision={precision}"])  # fmt: skip
        cfg["model"]["kwargs"] = kwargs
        train(cfg, run, progress=False)
        (run / "train_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    model, rec = load_model(run / "model.pt")
    rows = {}
    for per_frame in (False, True) if model.is_recurrent else (False,):
        acc, view = MetricAccumulator(alignment="root"), ViewMetrics()
        evaluate_sequences(model, generated_sequences(data, "test", rec["image_size"]),
                           accumulator=acc, decoder=HandDecoder(None), per_frame=per_frame,
                           progress=False, view=view)  # fmt: skip
        m = {**acc.evaluate(), **view.evaluate()}
        change = m.get("param_change", {})
        rows[label + (", state reset every frame" if per_frame else "")] = {
            "model": name, "seed": seed, "per_frame": per_frame,
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "epe3d_mm": m["epe3d_mean_mm"], "pa_mpjpe_mm": m["pa_mpjpe_mm"],
            "epe2d_px": m["epe2d_mean_px"], "auc_20_50": m["auc"],
            "rot_err_median_deg": m["rot_err_median_deg"],
            "accel_error_mm": m["accel_error_mm_per_frame2"],
            "jitter_mm": m["jitter_mm_per_frame3"],
            "mean_abs_dbeta": change.get("betas", {}).get("mean_abs"),
            "mean_abs_dtheta": change.get("pose", {}).get("mean_abs"),
            "train_seconds": float((run / "train_seconds.txt").read_text()),
        }  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="out/demo/data", help="a generated dataset (made if missing)")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated labels")
    ap.add_argument("--precision", default="32-true",
                    help="trainer.precision (default 32-true, as the tables of docs/results.md; "
                    "the tiny preset's bf16-backbone is faster where the CPU has bf16)")  # fmt: skip
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not (data / "manifest.json").is_file():
        generate(preset("demo"), data, workers=2)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "ablation.json"
    # rows of earlier invocations on the same OUT stay (a table's seeds may span sessions);
    # a (row, seed) run again replaces its old entry
    results: list[dict] = json.loads(table.read_text()) if table.is_file() else []
    for seed in (int(s) for s in args.seeds.split(",")):
        for label in args.variants.split(","):
            name, kwargs = VARIANTS[label]
            rows = run_variant(label, name, kwargs, data, out, args.steps, seed, args.image_size,
                               args.precision)  # fmt: skip
            done = {(k, seed) for k in rows}
            results = [r for r in results if (r["row"], r["seed"]) not in done]
            results += [{"row": k, **v} for k, v in rows.items()]
            tmp = table.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(results, indent=2))
            tmp.replace(table)
    print_table(results, args.image_size)


def print_table(results: list[dict], size: int) -> None:
    print("| framework | seeds | " + " | ".join(h for h, _ in COLUMNS.values()) + " | params |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 1))

    def order(row: str) -> tuple[int, str]:  # VARIANTS' order, "state reset" after its row
        return next((i for i, label in enumerate(VARIANTS) if row.startswith(label)), 99), row

    for row in sorted(dict.fromkeys(r["row"] for r in results), key=order):
        rs = sorted((r for r in results if r["row"] == row), key=lambda r: r["seed"])
        cells = []
        for key, (_, fmt) in COLUMNS.items():
            v = np.array([r[key] for r in rs], float)
            sd = f" +- {fmt.format(v.std(ddof=1))}" if len(v) > 1 else ""
            cells.append(fmt.format(v.mean()) + sd)
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(f"| {row} | {seeds} | " + " | ".join(cells) + f" | {rs[0]['params_M']:.2f}M |")


if __name__ == "__main__":
    main()
