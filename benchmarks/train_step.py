"""Training throughput on CPU (sequences/s) for the ``tiny`` and ``paper`` presets, and the
share of time spent waiting for data (target < 5 %), with data from shards and generated on
the fly (``data.source: online``).

Runs the real pieces of ``seqhand train`` - the map-style shard reader or the online dataset,
the step sampler, the DataLoader with workers, the Lightning module's loss and an AdamW step -
in a plain loop so the two times can be told apart: ``wait`` = time blocked in
``next(loader)``, ``compute`` = forward, decode, loss, backward, optimiser step.

Then the speed of online generation on one core at the paper's settings (224 px, 10 frames,
no JPEG: what a DataLoader worker does) and how many such cores would feed a ResNet-50 trainer
that consumes ``--gpu-rate`` frames/s on a GPU.

    python benchmarks/train_step.py [--steps 20] [--presets tiny,paper] [--sources shards,online]
        [--workers 2] [--gpu-rate 2000] [--online-sequences 30]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from seqhand.config import load_config
from seqhand.data.generate import ensure_bank, generate, make_samples, preset
from seqhand.data.online import OnlineSequences
from seqhand.data.seqhand_dataset import SeqHandIndexed
from seqhand.training.batch import collate
from seqhand.training.module import SeqHandModule
from seqhand.training.run import SequenceTransform
from seqhand.training.sampler import StepSampler


def bench(name: str, source: str, root: Path, gen_cfg, steps: int, workers: int,
          batch: int | None) -> dict:  # fmt: skip
    cfg = load_config(name, [f"data.root={root}"])
    if batch:
        cfg["data"]["batch_size"] = batch
    size = int(cfg["model"]["image_size"])
    bs = int(cfg["data"]["batch_size"])
    if source == "online":  # as seqhand train builds it for data.source: online
        ds = OnlineSequences(gen_cfg, "train", num_sequences=(steps + 2) * bs, cache_dir=root,
                             transform=SequenceTransform(size))  # fmt: skip
    else:
        ds = SeqHandIndexed(root, "train", transform=SequenceTransform(size))
    sampler = StepSampler(len(ds), bs, max_steps=steps + 2)
    loader = DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=workers,
                        collate_fn=collate, prefetch_factor=4 if workers else None)  # fmt: skip
    module = SeqHandModule(cfg)
    opt = torch.optim.AdamW(module.model.parameters(), lr=1e-4)
    it = iter(loader)
    wait = comp = 0.0
    for k in range(steps + 2):
        t0 = time.perf_counter()
        batch_ = next(it)
        t1 = time.perf_counter()
        _, _, out = module._step(batch_)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        t2 = time.perf_counter()
        if k >= 2:  # warm-up: worker start, first allocations
            wait += t1 - t0
            comp += t2 - t1
    t_seq = batch_["frames"].shape[1]
    total = wait + comp
    return {"preset": name, "source": source, "model": cfg["model"]["name"], "image": size,
            "batch": bs, "frames": t_seq, "seq_per_s": steps * bs / total, "wait_share": wait / total,
            "step_s": total / steps}  # fmt: skip


def online_rate(root: Path, sequences: int, bank_size: int) -> tuple[float, object]:
    """Frames/s of one core composing paper-setting sequences (224 px, 10 frames), no JPEG."""
    cfg = preset("paper", num_train=sequences, num_test=0, bank_size=bank_size)
    bank = ensure_bank(cfg, root)
    make_samples(cfg, bank, "train", 0, 1)  # warm-up: bank, search index, encoder, layer
    t0 = time.perf_counter()
    make_samples(cfg, bank, "train", 1, sequences)
    return sequences * cfg.frames / (time.perf_counter() - t0), cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--presets", default="tiny,paper")
    ap.add_argument("--sources", default="shards,online")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--paper-batch", type=int, default=2,
                    help="batch for the paper preset on CPU (16 on a GPU)")  # fmt: skip
    ap.add_argument("--gpu-rate", type=float, default=2000.0,
                    help="frames/s a ResNet-50 trainer consumes on a GPU")  # fmt: skip
    ap.add_argument("--online-sequences", type=int, default=30)
    ap.add_argument("--bank-size", type=int, default=100_000,
                    help="prior bank of the one-core online measurement (paper: 1,000,000)")  # fmt: skip
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"DataLoader workers={args.workers}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.presets.split(","):
            size = 128 if name == "tiny" else 224
            frames = 8 if name == "tiny" else 10
            root = Path(tmp) / name
            gen_cfg = preset("demo", num_train=64, num_test=0, image_size=size, frames=frames,
                             shard_size=32, bank_size=20_000)  # fmt: skip
            if "shards" in args.sources:  # in worker processes: the search index's OpenMP
                # threads must not start in this process, whose DataLoader forks its workers
                generate(gen_cfg, root, workers=2, progress=False)
            for source in args.sources.split(","):
                rows.append(bench(name, source, root, gen_cfg, args.steps, args.workers,
                                  args.paper_batch if name == "paper" else None))  # fmt: skip
        fps, ocfg = online_rate(Path(tmp) / "online", args.online_sequences, args.bank_size)
    print(f"{'preset':>6} {'source':>7} {'model':>18} {'input':>9} {'B x T':>7} {'seq/s':>7} "
          f"{'s/step':>7} {'data wait':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['preset']:>6} {r['source']:>7} {r['model']:>18} {r['image']:>5}x{r['image']:<3} "
              f"{r['batch']:>3}x{r['frames']:<3} {r['seq_per_s']:7.2f} {r['step_s']:7.2f} "
              f"{100 * r['wait_share']:8.1f}%")  # fmt: skip
    print(f"\nonline generation, one core, {ocfg.image_size} px x {ocfg.frames} frames, no JPEG "
          f"({args.online_sequences} sequences, {ocfg.bank_size:,}-pose prior bank): "
          f"{fps:.0f} frames/s per core")  # fmt: skip
    print(f"cores to feed a ResNet-50 trainer at {args.gpu_rate:,.0f} frames/s: "
          f"{args.gpu_rate:,.0f} / {fps:.0f} = {args.gpu_rate / fps:.1f} -> "
          f"{math.ceil(args.gpu_rate / fps)} cores")  # fmt: skip


if __name__ == "__main__":
    main()
