"""Training throughput on CPU (sequences/s) for the ``tiny`` and ``paper`` presets, and the
share of time spent waiting for data (target < 5 %).

Runs the real pieces of ``seqhand train`` - the map-style shard reader, the step sampler, the
DataLoader with workers, the Lightning module's loss and an AdamW step - in a plain loop so the
two times can be told apart: ``wait`` = time blocked in ``next(loader)``, ``compute`` = forward,
decode, loss, backward, optimiser step.

    python benchmarks/train_step.py [--steps 20] [--presets tiny,paper] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from seqhand.config import load_config
from seqhand.data.generate import generate, preset
from seqhand.data.seqhand_dataset import SeqHandIndexed
from seqhand.training.batch import collate
from seqhand.training.module import SeqHandModule
from seqhand.training.run import SequenceTransform
from seqhand.training.sampler import StepSampler


def bench(name: str, data_root: Path, steps: int, workers: int, batch: int | None) -> dict:
    cfg = load_config(name, [f"data.root={data_root}"])
    if batch:
        cfg["data"]["batch_size"] = batch
    size = int(cfg["model"]["image_size"])
    ds = SeqHandIndexed(data_root, "train", transform=SequenceTransform(size))
    bs = int(cfg["data"]["batch_size"])
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
    return {"preset": name, "model": cfg["model"]["name"], "image": size, "batch": bs,
            "frames": t_seq, "seq_per_s": steps * bs / total, "wait_share": wait / total,
            "step_s": total / steps}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--presets", default="tiny,paper")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--paper-batch", type=int, default=2,
                    help="batch for the paper preset on CPU (16 on a GPU)")  # fmt: skip
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"DataLoader workers={args.workers}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.presets.split(","):
            size = 128 if name == "tiny" else 224
            frames = 8 if name == "tiny" else 10
            root = Path(tmp) / name
            generate(preset("demo", num_train=64, num_test=0, image_size=size, frames=frames,
                            shard_size=32, bank_size=20_000), root, progress=False)  # fmt: skip
            rows.append(bench(name, root, args.steps, args.workers,
                              args.paper_batch if name == "paper" else None))  # fmt: skip
    print(f"{'preset':>6} {'model':>18} {'input':>9} {'B x T':>7} {'seq/s':>7} {'s/step':>7} "
          f"{'data wait':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['preset']:>6} {r['model']:>18} {r['image']:>5}x{r['image']:<3} "
              f"{r['batch']:>3}x{r['frames']:<3} {r['seq_per_s']:7.2f} {r['step_s']:7.2f} "
              f"{100 * r['wait_share']:8.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
