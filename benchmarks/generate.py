"""End-to-end speed of ``seqhand generate`` (flows, encoder, hand layer, render, composite,
encode, write) at the paper's settings (10 frames, 224 x 224, JPEG), and the extrapolated time
for the paper-size dataset (41,000 sequences x 10 frames). Target: < 15 minutes on 2 cores.

The pose bank is built once beforehand (it is cached with the dataset and reused by later runs;
its build time is printed separately). The reference point printed beside ours: pyrender's
rendering alone at the same size, measured by benchmarks/render.py (~70-300 frames/s here).

    python benchmarks/generate.py [--sequences 400] [--workers 2] [--bank-size 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from seqhand.data.generate import ensure_bank, generate, preset

PAPER_SEQUENCES = 41_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bank-size", type=int, default=1_000_000, help="paper preset: 1,000,000")
    ap.add_argument("--image-format", default="jpg")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = preset("paper", num_train=args.sequences, num_test=0, shard_size=50,
                     bank_size=args.bank_size, image_format=args.image_format)  # fmt: skip
        t0 = time.perf_counter()
        ensure_bank(cfg, tmp / "ds")
        t_bank = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate(cfg, tmp / "ds", workers=args.workers, progress=False)
        el = time.perf_counter() - t0
        frames = args.sequences * cfg.frames
        size = sum(p.stat().st_size for p in (tmp / "ds").glob("*.tar"))
        fps = frames / el
        total = PAPER_SEQUENCES * cfg.frames / fps
        print(f"prior pose bank of {args.bank_size:,} poses: built in {t_bank:.1f} s (once)")
        print(f"{args.sequences} sequences x {cfg.frames} frames at {cfg.image_size}px, "
              f"{args.workers} workers: {el:.1f} s -> {fps:.0f} frames/s "
              f"({size / frames / 1024:.1f} KiB/frame)")  # fmt: skip
        print(f"paper-size dataset (41,000 x 10 frames): {total / 60:.1f} min extrapolated "
              f"(target < 15 min) = {900 / total:.2f}x the target rate")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
