"""How `seqhand train` feeds the `tiny` preset on a small CPU: the real trainer, side by side,
with the data read as before (one DataLoader worker decoding the shards, silhouette distance
maps computed for every clip) and as the preset now reads it (``data.num_workers: 0``,
``data.cache: true``: decoded sequences and their distance maps kept in memory). Same data,
seed and steps; prints seconds per step, the ratio, and the validation error of both runs
(the cache changes no number, so they must be equal).

    seqhand generate --out data/demo --preset demo --workers 2
    python benchmarks/trainer_data.py --data data/demo --steps 900

With 2,000 sequences of 8 frames a step of 16 four-frame clips, the cache is filled after
about 600 steps (one pass over the 10,000 clips); the runs alternate (A, B, A, B) so that a
change in the machine's load shows as a difference between repeats.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from seqhand.config import load_config
from seqhand.training.run import train

SETTINGS = {
    "before: 1 worker, no cache": ["data.num_workers=1", "data.cache=false"],
    "now: no worker, cache": ["data.num_workers=0", "data.cache=true"],
}


def run(data: str, steps: int, overrides: list[str], out: Path) -> tuple[float, float]:
    cfg = load_config("tiny", [f"data.root={data}", f"trainer.max_steps={steps}",
                               f"trainer.val_every_n_steps={steps}", *overrides])  # fmt: skip
    t0 = time.perf_counter()
    summary = train(cfg, out, progress=False)
    return (time.perf_counter() - t0) / steps, float(summary["metrics"]["val/epe3d_mm"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", required=True, help="a generated dataset (make demo's: out/demo/data)"
    )
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    val: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, (name, overrides) in enumerate(SETTINGS.items()):
                sec, val[name] = run(args.data, args.steps, overrides, Path(tmp) / f"{r}-{i}")
                times[name].append(sec)
                print(f"  {name}: {sec * 1000:.0f} ms/step, val 3D {val[name]:.3f} mm", flush=True)
    (a, ta), (b, tb) = times.items()
    print("\n| data | ms/step (repeats) | val 3D (mm) |\n|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {' / '.join(f'{t * 1000:.0f}' for t in ts)} | {val[name]:.3f} |")
    print(
        f"\nspeed-up {min(ta) / min(tb):.2f}x (best of {args.repeats}); "
        f"same validation error: {val[a] == val[b]}"
    )


if __name__ == "__main__":
    main()
