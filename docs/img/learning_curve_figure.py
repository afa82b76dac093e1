"""Make docs/img/learning_curve.png from training runs' logs (validation 3D error and the
training loss over steps):

    python docs/img/learning_curve_figure.py RUN_DIR [RUN_DIR ...] [--labels "a|b"] [--out PNG]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(run: Path) -> tuple[list, list, list, list]:
    val_s, val, tr_s, tr = [], [], [], []
    with open(run / "logs" / "metrics.csv") as fh:
        for r in csv.DictReader(fh):
            if r.get("val/epe3d_mm"):
                val_s.append(int(r["step"]) + 1)
                val.append(float(r["val/epe3d_mm"]))
            if r.get("train/loss"):
                tr_s.append(int(r["step"]) + 1)
                tr.append(float(r["train/loss"]))
    return val_s, val, tr_s, tr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--labels", default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "learning_curve.png"))
    args = ap.parse_args()
    labels = args.labels.split("|") if args.labels else [Path(r).name for r in args.runs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for run, label in zip(args.runs, labels):
        vs, v, ts, t = read_log(Path(run))
        a1.plot(vs, v, "o-", label=label)
        k = 20  # running mean of the training loss over k logged points
        sm = [sum(t[max(0, i - k + 1) : i + 1]) / len(t[max(0, i - k + 1) : i + 1])
              for i in range(len(t))]  # fmt: skip
        a2.plot(ts, sm, label=label)
    a1.set_xlabel("training step")
    a1.set_ylabel("held-out root-relative 3D error (mm)")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8)
    a2.set_xlabel("training step")
    a2.set_ylabel("training loss (Eq. 14, running mean)")
    a2.set_yscale("log")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
