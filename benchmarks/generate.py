"""End-to-end speed of ``seqhand generate`` at the paper's settings (10 frames, 224 x 224, JPEG),
its stage breakdown, and two bounds measured in the same run.

1. ``generate`` with ``--workers`` processes, start-up included (the Dask ``LocalCluster`` and,
   in each worker, the imports, mapping the bank and its cached search index, the encoder and
   the hand layer). The pose bank and its search index are built once beforehand (cached with
   the dataset and reused by later runs; their build time is printed separately).
2. A one-process profile of ``--profile-sequences`` sequences: seconds per stage (flows,
   encoder, hand layer, camera, backgrounds, composite = sliding patches + annotations, render,
   encode, write), after a warm-up.
3. Bounds, frames/s for ``--workers`` cores (one core's speed x workers): *JPEG-only* - just
   encoding already-made frames of that size (quality 95, as in the shards) - and
   *render-only* - the rasteriser alone (the profile's render stage). The end-to-end rate is
   printed as a fraction of the JPEG-only bound.

On a shared machine, compare the ratios rather than the absolute rates.

    python benchmarks/generate.py [--sequences 2000] [--workers 2] [--bank-size 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from seqhand.data.generate import ensure_bank, generate, make_samples, preset, run_shard
from seqhand.data.shards import jpeg_bytes
from seqhand.stages import StageTimes

PAPER_SEQUENCES = 41_000


def jpeg_rate(frames, quality: int, min_time: float = 1.0) -> float:
    """Frames/s of one core encoding ``frames`` (a list of (H, W, 3) uint8) again and again."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time:
        for f in frames:
            jpeg_bytes(f, quality)
        n += len(frames)
    return n / (time.perf_counter() - t0)


def profile(cfg, bank: Path, out: Path, count: int) -> tuple[StageTimes, float]:
    """Stage times of ``count`` sequences made and written in this process (after a warm-up
    that loads the per-process context), and the JPEG-only rate of one core on their frames."""
    make_samples(cfg, bank, "train", 0, 1)  # warm-up: bank, search index, encoder, layer
    times = StageTimes()
    run_shard(cfg, str(out), str(bank), "train", 0, cfg.num_train, count, times)
    frames = [f for s in make_samples(cfg, bank, "train", 0, 4) for f in s["frames"]]
    return times, jpeg_rate(frames, cfg.jpeg_quality)


def print_timeline(timeline: dict, el: float, shard_size: int,
                   profiled: float) -> None:  # fmt: skip
    """Where the end-to-end run's time went, measured in it: the engine's start (worker
    processes up and the first shard begun), each worker's busy time in its shards (the first
    includes loading its context) within the span of all shards, and the engine's close."""
    per: dict[int, list[float]] = {}
    for pid, a, b in timeline["shards"]:
        per.setdefault(pid, []).append(b - a)
    first = min(a for _, a, _ in timeline["shards"])
    last = max(b for _, _, b in timeline["shards"])
    print(f"\nthe end-to-end run, measured in it ({el:.1f} s):")
    print(f"  engine start (processes up, first shard begun): {timeline['engine_start']:.1f} s")
    for pid, d in sorted(per.items()):
        n = len(d) * shard_size
        print(
            f"  worker {pid}: {len(d)} shards, busy {sum(d):.1f} s of the {last - first:.1f} s "
            f"of work -> {1e3 * sum(d) / n:.1f} ms/seq (one process alone: {1e3 * profiled:.1f})"
        )
    print(f"  engine close: {timeline['engine_close']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=2000, help="the issue's setting: 2,000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bank-size", type=int, default=1_000_000, help="paper preset: 1,000,000")
    ap.add_argument("--profile-sequences", type=int, default=100)
    ap.add_argument("--image-format", default="jpg")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = preset("paper", num_train=args.sequences, num_test=0, shard_size=50,
                     bank_size=args.bank_size, image_format=args.image_format)  # fmt: skip
        t0 = time.perf_counter()
        bank = ensure_bank(cfg, tmp / "ds")
        t_bank = time.perf_counter() - t0
        t0, timeline = time.perf_counter(), {}
        generate(cfg, tmp / "ds", workers=args.workers, progress=False, timeline=timeline)
        el = time.perf_counter() - t0
        frames = args.sequences * cfg.frames
        size = sum(p.stat().st_size for p in (tmp / "ds").glob("*.tar"))
        fps = frames / el
        (tmp / "profile").mkdir()
        times, jpeg_fps = profile(cfg, bank, tmp / "profile", args.profile_sequences)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_prof = args.profile_sequences
    render_fps = n_prof * cfg.frames / times["render"]
    jpeg_bound = jpeg_fps * args.workers
    total = PAPER_SEQUENCES * cfg.frames / fps
    print(f"prior pose bank of {args.bank_size:,} poses and its search index: built in "
          f"{t_bank:.1f} s (once)")  # fmt: skip
    print(f"{args.sequences} sequences x {cfg.frames} frames at {cfg.image_size}px, "
          f"{args.workers} workers, start-up included: {el:.1f} s -> {fps:.0f} frames/s "
          f"({size / frames / 1024:.1f} KiB/frame)")  # fmt: skip
    print(f"\nstage breakdown, one process, {n_prof} sequences ({n_prof * cfg.frames} frames):")
    print(f"{'stage':>12} {'s':>7} {'ms/seq':>8} {'share':>6}")
    for name, sec in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"{name:>12} {sec:7.2f} {1e3 * sec / n_prof:8.2f} {sec / times.total:6.1%}")
    print(f"{'total':>12} {times.total:7.2f} {1e3 * times.total / n_prof:8.2f} -> "
          f"{n_prof * cfg.frames / times.total:.0f} frames/s on one core")  # fmt: skip
    busy = args.sequences / args.workers * times.total / n_prof
    print(f"  -> {args.workers} workers need ~{busy:.1f} s for {args.sequences} sequences at this "
          f"rate; the other ~{max(0.0, el - busy):.1f} s of the run are start-up and "
          "overhead")  # fmt: skip
    print_timeline(timeline, el, cfg.shard_size, times.total / n_prof)
    print(f"\nbounds for {args.workers} cores (one core x {args.workers}), this run:")
    print(f"  JPEG-only (encoding made {cfg.image_size}px frames, quality {cfg.jpeg_quality}): "
          f"{jpeg_bound:.0f} frames/s")  # fmt: skip
    print(f"  render-only (rasteriser): {render_fps * args.workers:.0f} frames/s")
    print(f"  generate / JPEG-only bound: {fps / jpeg_bound:.2f} (target >= 0.5); "
          f"target >= 1,000 frames/s: {fps / 1000:.2f}x")  # fmt: skip
    print(f"paper-size dataset (41,000 x 10 frames): {total / 60:.1f} min extrapolated")


if __name__ == "__main__":
    main()
