"""One training step of SeqHAND-Net with the convolutions in the default (contiguous NCHW) and
in channels-last memory format, side by side in one process, and the ratio.

``SeqHandModule`` (``seqhand train``) puts the model in channels-last format; this script is
the measurement behind that choice. A step is the module's own (forward, hand decoder, the
Eq. 14 losses, backward, AdamW). Both models start from the same weights and see the same
batch (random frames; targets decoded from random parameters); steps alternate so that a noisy
machine slows both alike; the first outputs are compared too (the same function).

    python benchmarks/memory_format.py [--preset tiny] [--clips 16] [--frames 4] [--repeats 6]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from seqhand.config import load_config
from seqhand.training.module import SeqHandModule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", help="tiny (96 px) or paper (ResNet-50, 224 px)")
    ap.add_argument("--clips", type=int, default=16, help="clips per step (tiny: 16)")
    ap.add_argument("--frames", type=int, default=4, help="frames per clip (tiny: 4)")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, [])
    size = int(cfg["model"]["image_size"])
    torch.manual_seed(0)
    base = SeqHandModule(cfg)
    b, t = args.clips, args.frames
    params = torch.zeros(b, t, 26)
    params[..., 0] = 0.45 * size  # s: a hand of ~0.2 m fills ~ half the crop
    params[..., 1:3] = size / 2.0
    params[..., 3:] = 0.5 * torch.randn(b, t, 23)
    with torch.no_grad():
        dec = base.decoder(params)
    batch = {
        "frames": torch.randn(b, t, 3, size, size),
        "joints2d": dec.joints2d, "joints3d": dec.joints3d, "vertices3d": dec.vertices3d,
        "params": params,
    }  # fmt: skip

    def stepper(channels_last: bool):
        module = copy.deepcopy(base)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        module.model.to(memory_format=fmt)
        opt = torch.optim.AdamW(module.model.parameters(), lr=1e-3)

        def step() -> torch.Tensor:
            out, _, loss = module._step(batch)
            opt.zero_grad()
            loss.total.backward()
            opt.step()
            return out.detach()

        return step

    steps = {"contiguous": stepper(False), "channels_last": stepper(True)}
    first = {k: f() for k, f in steps.items()}  # warm-up, and the same function
    diff = float((first["contiguous"] - first["channels_last"]).abs().max())
    times = dict.fromkeys(steps, 0.0)
    for _ in range(args.repeats):
        for k, f in steps.items():
            t = time.perf_counter()
            f()
            times[k] += time.perf_counter() - t
    n = args.clips * args.frames
    print(f"{args.preset}: {args.clips} clips x {args.frames} frames at {size} px, "
          f"{torch.get_num_threads()} threads, {args.repeats} steps each")  # fmt: skip
    for k, v in times.items():
        print(
            f"  {k:14s} {v / args.repeats * 1e3:8.1f} ms/step  {n * args.repeats / v:7.1f} frames/s"
        )
    print(
        f"  speed-up (contiguous / channels_last): {times['contiguous'] / times['channels_last']:.2f}x"
    )
    print(f"  max |output difference| at the first step: {diff:.2e}")


if __name__ == "__main__":
    main()
