"""Does SeqHAND-Net learn the hand? One table: a fixed small model trained on a fixed generated
dataset for a fixed budget, for the earlier recipe, each change of issue 11 alone, and all of
them together (held-out generated sequences, root-relative):

* ``today``       - views "seqhand", full-45-d theta rendered, axis-angle head and loss, "mean"
                    loss reduction (the recipe before issue 11);
* ``+rotation``   - the 6D rotation head and the Frobenius rotation loss;
* ``+views``      - the authors' camera model and update rates;
* ``+targets``    - theta rendered from its 10 PCA coefficients (reachable targets);
* ``+losses``     - the authors' loss reductions (2D summed over joints, 3D summed in m^2);
* ``all``         - all four;
* ``+grid``       - all four, and the hidden map pooled to a 3 x 3 grid and flattened for the
                    head instead of averaged (``model.kwargs.head_grid: 3``);
* ``+clips``      - all four, trained on 4-frame windows, 16 per batch instead of whole 8-frame
                    sequences, 8 per batch (the same frames per step; ``data.clip_frames: 4``);
* ``demo``        - all of them (the recipe of ``make demo`` and the ``tiny`` preset).

Each row is evaluated on the test split of its own dataset (the views change the data), so
the table also prints the constant mean-pose baseline of each dataset.

    python benchmarks/learning.py --out runs/learning --steps 1500 --seed 0
    python benchmarks/learning.py --out runs/learning --rows all --steps 12000   # longer run

Writes ``OUT/<row>-s<seed>/`` runs, ``OUT/learning.json`` and prints a Markdown table with
3D error, PA-MPJPE, 2D error, median rotation error, size ratio, jitter and the median rotation
error by the true rotation angle.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seqhand.config import load_config
from seqhand.data.generate import generate, preset
from seqhand.demo import mean_pose_baselines
from seqhand.evaluation.accumulator import MetricAccumulator
from seqhand.evaluation.evaluator import evaluate_sequences, generated_sequences
from seqhand.evaluation.view import ViewMetrics
from seqhand.models import HandDecoder
from seqhand.training.checkpoint import load_model
from seqhand.training.run import train

OLD = {"views": "seqhand", "render_pose": "full", "ego_fraction": 0.5,
       "rotation": "axis_angle", "loss_rotation": "axis_angle", "reduction": "mean",
       "head_grid": 0, "clip_frames": None, "batch_size": 8}  # fmt: skip
NEW = {"views": "authors", "render_pose": "pca", "ego_fraction": 0.2,
       "rotation": "6d", "loss_rotation": "frobenius", "reduction": "authors",
       "head_grid": 3, "clip_frames": 4, "batch_size": 16}  # fmt: skip
FOUR = ("views", "render_pose", "ego_fraction", "rotation", "loss_rotation", "reduction")
CHANGES = {  # row -> the keys taken from NEW
    "today": (),
    "+rotation": ("rotation", "loss_rotation"),
    "+views": ("views", "ego_fraction"),
    "+targets": ("render_pose",),
    "+losses": ("reduction",),
    "all": FOUR,
    "+grid": FOUR + ("head_grid",),
    "+clips": FOUR + ("clip_frames", "batch_size"),
    "demo": tuple(NEW),
}


def recipe(row: str) -> dict:
    return {**OLD, **{k: NEW[k] for k in CHANGES[row]}}


def dataset(root: Path, r: dict, num_train: int) -> Path:
    """The demo preset's dataset for a recipe's data settings (generated once, then reused)."""
    name = f"data-{r['views']}-{r['render_pose']}-{num_train}"
    path = root / name
    if not (path / "manifest.json").is_file():
        # the demo preset's frames when the table was made: 128 px, shards of 48
        cfg = preset("demo", views=r["views"], render_pose=r["render_pose"],
                     ego_fraction=r["ego_fraction"], num_train=num_train, image_size=128,
                     shard_size=48)  # fmt: skip
        generate(cfg, path, workers=2, progress=False)
    return path


def run_row(row: str, out: Path, steps: int, seed: int, num_train: int, size: int) -> dict:
    r = recipe(row)
    data = dataset(out, r, num_train)
    run = out / f"{row}-s{seed}-{steps}"
    t0 = time.time()
    if not (run / "model.pt").is_file():
        cfg = load_config("tiny", [f"data.root={data}", f"trainer.max_steps={steps}",
                                   f"trainer.seed={seed}", f"model.image_size={size}",
                                   f"trainer.val_every_n_steps={steps}",
                                   f"trainer.ckpt_every_n_steps={steps}",
                                   f"loss.reduction={r['reduction']}",
                                   f"loss.rotation={r['loss_rotation']}",
                                   f"data.batch_size={r['batch_size']}"])  # fmt: skip
        cfg["data"]["clip_frames"] = r["clip_frames"]
        cfg["model"]["kwargs"] = {**(cfg["model"].get("kwargs") or {}), "rotation": r["rotation"],
                                  "head_grid": r["head_grid"]}  # fmt: skip
        train(cfg, run, progress=False)
        (run / "train_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    model, rec = load_model(run / "model.pt")
    acc, view = MetricAccumulator(alignment="root"), ViewMetrics()
    evaluate_sequences(model, generated_sequences(data, "test", rec["image_size"]),
                       accumulator=acc, decoder=HandDecoder(None), progress=False,
                       view=view)  # fmt: skip
    m = {**acc.evaluate(), **view.evaluate()}
    base, _ = mean_pose_baselines(data)
    bins = m["rot_err_by_true_angle"]
    return {
        "row": row, "seed": seed, "steps": steps, "recipe": r,
        "epe3d_mm": m["epe3d_mean_mm"], "pa_mpjpe_mm": m["pa_mpjpe_mm"],
        "epe2d_px": m["epe2d_mean_px"], "rot_err_median_deg": m["rot_err_median_deg"],
        "size_ratio_median": m["size_ratio_median"], "jitter_mm": m["jitter_mm_per_frame3"],
        "rot_err_by_true_angle": bins, "mean_pose_epe3d_mm": base,
        "train_seconds": float((run / "train_seconds.txt").read_text()),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/learning")
    ap.add_argument("--rows", default=",".join(CHANGES), help="comma-separated rows")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per row")
    ap.add_argument("--seed", type=int, default=0, help="training seed(s), comma-separated")
    ap.add_argument("--num-train", type=int, default=480, help="training sequences")
    ap.add_argument("--image-size", type=int, default=96)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "learning.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else []
    for seed in (int(s) for s in str(args.seed).split(",")):
        for row in args.rows.split(","):
            res = run_row(row, out, args.steps, seed, args.num_train, args.image_size)
            results = [x for x in results if (x["row"], x["seed"], x["steps"]) !=
                       (row, seed, args.steps)] + [res]  # fmt: skip
            results_file.write_text(json.dumps(results, indent=2))
            print_table([x for x in results if x["steps"] == args.steps])


def print_table(results: list[dict]) -> None:
    print("| recipe | seed | 3D (mm) | PA-MPJPE (mm) | 2D (px) | rot. err. median (deg) "
          "| size ratio | jitter (mm/f^3) | rot. err. by true angle 0-60 / 60-120 / 120-180 "
          "| mean-pose 3D (mm) | train (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        b = " / ".join(f"{v['median_deg']:.0f}" if v["median_deg"] is not None else "-"
                       for v in r["rot_err_by_true_angle"].values())  # fmt: skip
        print(f"| {r['row']} | {r['seed']} | {r['epe3d_mm']:.1f} | {r['pa_mpjpe_mm']:.1f} | "
              f"{r['epe2d_px']:.2f} | {r['rot_err_median_deg']:.1f} | "
              f"{r['size_ratio_median']:.2f} | {r['jitter_mm']:.1f} | {b} | "
              f"{r['mean_pose_epe3d_mm']:.1f} | {r['train_seconds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
