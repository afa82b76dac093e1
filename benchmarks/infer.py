"""Streaming inference speed on the CPU: PyTorch vs onnxruntime, backbone alone vs full step.

For each model (ResNet-18 and ResNet-50 SeqHAND-Net at 224 x 224, batch 1) it times

* ``backbone``  - the ResNet's ``forward_features`` alone (what a per-frame network pays),
* ``step``      - one streaming step: backbone + 1x1 reduction + ConvLSTM + head, state carried,
* ``predictor`` - ``Predictor.step`` on a 640 x 480 frame: crop + step + hand decode,

in PyTorch and in onnxruntime (the graph ``seqhand export`` writes, and the backbone exported
alone), and prints frames per second and the ratios: ``step / backbone`` (the cost of the
recurrent layer; target <= 1.30) and ``torch / onnx``. Target: ResNet-18 streaming >= 30 fps on
2 cores with onnxruntime. Weights are random, batch-norm statistics calibrated on random
images (``calibrate_batchnorm``) so that activations have a trained network's scale. The functions
are timed in interleaved rounds and the best round is kept, so that load from other processes
on a shared machine hits all of them alike; the load average is printed before and after.
The arithmetic (multiply-accumulates of the convolutions and linear layers) is printed too.

    python benchmarks/infer.py [--threads 2] [--rounds 8] [--models resnet18_convlstm,...]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seqhand.geometry.crop import Box  # noqa: E402
from seqhand.inference.export import OnnxEngine, export_onnx  # noqa: E402
from seqhand.inference.predictor import Predictor  # noqa: E402
from seqhand.models import build_model, normalize_frames  # noqa: E402
from seqhand.models.convlstm import ConvLSTMCell  # noqa: E402


def ort_session(module: torch.nn.Module, x: torch.Tensor, threads: int):
    """Export a plain module (one input) and open it with onnxruntime."""
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), buf, dynamo=False, input_names=["x"],
                          opset_version=17)  # fmt: skip
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def count_macs(fn, module: torch.nn.Module) -> int:
    """Multiply-accumulates of the convolutions and linear layers run by ``fn()``."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total[0] += out.numel() * k
        elif isinstance(m, torch.nn.Linear):
            total[0] += out.numel() * m.in_features

    def cell_hook(m, inp, out):  # the gate convolution, run as a matrix product at batch 1
        total[0] += out[0].numel() * 4 * m.conv.in_channels * m.kernel_size**2

    cells = [m for m in module.modules() if isinstance(m, ConvLSTMCell)]
    skip = {id(m.conv) for m in cells}
    hs = [m.register_forward_hook(hook) for m in module.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and id(m) not in skip]  # fmt: skip
    hs += [m.register_forward_hook(cell_hook) for m in cells]
    try:
        with torch.inference_mode():
            fn()
    finally:
        for h in hs:
            h.remove()
    return total[0]


def calibrate_batchnorm(model: torch.nn.Module, size: int, batches: int = 4) -> torch.nn.Module:
    """Set the batch-norm statistics from a few random images, then ``eval()``.

    With random weights and the initial statistics (mean 0, variance 1) the activations grow
    through the ResNet to hundreds, the ConvLSTM's gates saturate and its arithmetic no longer
    resembles a trained network's. Calibrated statistics keep activations at a trained
    network's scale (about unit variance after every batch norm).
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(batches):
            model(normalize_frames(torch.rand(2, 1, 3, size, size, generator=g)))
    return model.eval()


class Backbone(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.backbone = model.backbone

    def forward(self, x):
        return self.backbone.forward_features(x)


def interleaved_best(
    fns: dict[str, object], rounds: int, calls: int = 3, pause: float = 0.2
) -> dict[str, float]:
    """Seconds per call of each function: the best of ``rounds`` rounds, each round running
    every function ``calls`` times in turn, so that load from other processes hits all of them
    alike (the best round is the closest to an idle machine). A ``pause`` before each block
    lets the thread pools of the previous block (OpenMP's, each onnxruntime session's), which
    spin for a while after work, go idle instead of stealing the cores from the next block."""
    import time

    best = {k: float("inf") for k in fns}
    for f in fns.values():  # warm-up
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            time.sleep(pause)
            f()  # one untimed call: wake this block's threads
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            best[k] = min(best[k], (time.perf_counter() - t0) / calls)
    return best


def bench_model(name: str, size: int, threads: int, rounds: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = calibrate_batchnorm(build_model(name), size)
    x01 = torch.rand(1, 3, size, size)
    x = normalize_frames(x01)
    with torch.inference_mode():
        _, s0 = model.step(x, None)
    macs = {
        "GMACs backbone": count_macs(lambda: model.backbone.forward_features(x), model) / 1e9,
        "GMACs step": count_macs(lambda: model.step(x, s0), model) / 1e9,
    }
    st = {"torch": None, "onnx": None}

    def torch_backbone():
        with torch.inference_mode():
            model.backbone.forward_features(x)

    def torch_step():
        with torch.inference_mode():
            _, st["torch"] = model.step(x, st["torch"])

    bb = ort_session(Backbone(model), x, threads)
    feed = {"x": x.numpy()}
    eng = OnnxEngine(export_onnx(model, None, size), threads=threads)
    xo = x01.numpy()

    def onnx_step():
        _, st["onnx"] = eng(xo, st["onnx"])

    # the same graph with the ConvLSTM's gate product in int8 (seqhand export --quantize-recurrent)
    engq = OnnxEngine(export_onnx(model, None, size, quantize_recurrent=True), threads=threads)

    def onnx_step_int8():
        _, st["onnx int8"] = engq(xo, st.get("onnx int8"))

    frame = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    box = Box(250, 170, 390, 310)
    preds = {rt: Predictor(src, None, runtime=rt, image_size=size)
             for rt, src in (("torch", model), ("onnx", eng))}  # fmt: skip

    def onnx_predictor():
        # as `seqhand infer --runtime onnx` does: onnxruntime has the cores, torch (crop and
        # hand decode, ~4 ms) one thread - two spinning thread pools would fight for 2 cores
        torch.set_num_threads(1)
        try:
            preds["onnx"](frame, box=box)
        finally:
            torch.set_num_threads(threads)

    fns = {
        "torch backbone": torch_backbone,
        "torch step": torch_step,
        "torch predictor": lambda: preds["torch"](frame, box=box),
        "onnx backbone": lambda: bb.run(None, feed),
        "onnx step": onnx_step,
        "onnx step (int8 ConvLSTM)": onnx_step_int8,
        "onnx predictor": onnx_predictor,
    }
    return {**macs, **interleaved_best(fns, rounds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--models", default="resnet18_convlstm,resnet50_convlstm")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    load0 = os.getloadavg()
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, threads="
          f"{args.threads}, {args.size}x{args.size}, batch 1, cores={os.cpu_count()}, "
          f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")  # fmt: skip
    for name in args.models.split(","):
        t = bench_model(name, args.size, args.threads, args.rounds)
        print(f"\n{name}")
        print(f"  {'':26s} {'ms/frame':>10s} {'fps':>8s}")
        gb, gs = t.pop("GMACs backbone"), t.pop("GMACs step")
        print(f"  GMACs: backbone {gb:.2f}, step {gs:.2f} -> step / backbone = {gs / gb:.2f} "
              "(the recurrent part's share of the arithmetic)")  # fmt: skip
        for k, v in t.items():
            print(f"  {k:26s} {v * 1e3:10.2f} {1 / v:8.1f}")
        for rt, step in (("torch", "torch step"), ("onnx", "onnx step"),
                         ("onnx", "onnx step (int8 ConvLSTM)")):  # fmt: skip
            r = t[step] / t[f"{rt} backbone"]
            print(f"  {step:26s} / backbone = {r:5.2f}  (recurrent part +{(r - 1) * 100:.0f}%;"
                  f" target <= +30%)")  # fmt: skip
        for part in ("backbone", "step", "predictor"):
            print(f"  torch / onnx ({part:9s}) = {t[f'torch {part}'] / t[f'onnx {part}']:5.2f}")
    load1 = os.getloadavg()
    print(f"\nload average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} "
          f"(other processes share these cores; high load = slower numbers)")  # fmt: skip


if __name__ == "__main__":
    main()
