"""ONNX export of the per-frame step, with the recurrent state as explicit inputs and outputs.

The exported graph is one streaming step::

    inputs:  frame    (B, 3, S, S) float32 RGB in [0, 1]   (ImageNet normalisation is inside)
             state_0 ... state_{n-1}                      (the recurrent state, flattened)
    outputs: params   (B, 26)                             (seqhand.conventions.OUTPUT_SLICES)
             state_out_0 ... state_out_{n-1}

For SeqHAND-Net the state is the ConvLSTM's ``(h, c)``, each ``(B, hidden, S/32, S/32)``; a
per-frame model has no state inputs. A sequence starts with all-zero state tensors (equal to
the model's ``state=None``; export checks it). The batch size is dynamic. The model's record
(image size, hand model, spec, state layout) is stored as JSON in the ONNX metadata under
``"seqhand"``; :class:`OnnxEngine` reads it.

Export uses PyTorch's TorchScript-based exporter (``dynamo=False``): it needs only ``onnx``,
and the graphs it writes for these models match PyTorch to ~1e-5 (docs/inference.md).
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqhand.errors import MissingExtraError, SeqhandError
from seqhand.models.convlstm import ConvLSTMCell
from seqhand.models.seqhandnet import normalize_frames

FORMAT = "seqhand-step-onnx"
VERSION = 1
OPSET = 17


class ExportError(SeqhandError):
    """The model cannot be exported / an ONNX file is not a seqhand step graph."""


# --------------------------------------------------------------------------------------------
# State trees: None | Tensor | tuple/list of trees  <->  a flat list of tensors
# --------------------------------------------------------------------------------------------
def flatten_state(state: Any) -> tuple[list[torch.Tensor], Any]:
    """``(leaves, treedef)``; ``treedef`` is JSON-ready (``"leaf"``, ``None``, lists)."""
    if state is None:
        return [], None
    if isinstance(state, torch.Tensor):
        return [state], "leaf"
    if isinstance(state, (tuple, list)):
        leaves, defs = [], []
        for s in state:
            lv, d = flatten_state(s)
            leaves += lv
            defs.append(d)
        return leaves, defs
    raise ExportError(f"cannot export a state of type {type(state).__name__}")


def unflatten_state(leaves: list[Any], treedef: Any) -> Any:
    """Inverse of :func:`flatten_state` (tuples come back as tuples)."""
    it = iter(leaves)

    def build(d):
        if d is None:
            return None
        if d == "leaf":
            return next(it)
        return tuple(build(x) for x in d)

    return build(treedef)


class StepModule(nn.Module):
    """``forward(frame01, *state_leaves) -> (params, *new_state_leaves)``: the exported step."""

    def __init__(self, model: nn.Module, treedef: Any) -> None:
        super().__init__()
        self.model = model
        self.treedef = treedef

    def forward(self, frame: torch.Tensor, *leaves: torch.Tensor):
        state = unflatten_state(list(leaves), self.treedef) if leaves else None
        params, new = self.model.step(normalize_frames(frame), state)
        return (params, *flatten_state(new)[0])


def _probe(model: nn.Module, image_size: int) -> tuple[Any, list[dict]]:
    """Run two steps at batch 1 and 2 to learn the state's layout and batch axes; check that a
    zero state equals ``state=None``."""
    gen = torch.Generator().manual_seed(0)
    layout, treedef = [], None
    with torch.no_grad():
        shapes = {}
        for b in (1, 2):
            x = normalize_frames(torch.rand(b, 3, image_size, image_size, generator=gen))
            p0, st = model.step(x, None)
            leaves, treedef = flatten_state(st)
            shapes[b] = [tuple(t.shape) for t in leaves]
            if leaves:
                zeros = unflatten_state([torch.zeros_like(t) for t in leaves], treedef)
                p1, _ = model.step(x, zeros)
                if not torch.allclose(p0, p1, rtol=1e-5, atol=1e-5):
                    name = getattr(model, "spec", {}).get("name", type(model).__name__)
                    raise ExportError(
                        f"model {name!r} does not start a sequence from an all-zero state (its "
                        "state=None means something else, e.g. the first frame repeated), so it "
                        "cannot be exported as one streaming step; export a ConvLSTM/LSTM or "
                        "per-frame model"
                    )
    for s1, s2 in zip(shapes[1], shapes[2]):
        axes = [i for i, (a, c) in enumerate(zip(s1, s2)) if a != c]
        if len(axes) != 1:
            raise ExportError(f"cannot find the batch axis of a state tensor {s1} / {s2}")
        layout.append({"shape": list(s1), "batch_axis": axes[0]})
    return treedef, layout


def weights_digest(model: nn.Module) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes, bytes): recorded in an export so
    a predictor can tell whether an ``.onnx`` file came from the checkpoint it was given."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike | None,
    image_size: int = 224,
    *,
    hand_model: str = "builtin",
    opset: int = OPSET,
    quantize_recurrent: bool = False,
) -> Path | bytes:
    """Export ``model``'s streaming step to ONNX (module docstring).

    Args:
        model: a seqhand model (any :class:`~seqhand.models.HandRegressor` whose start state
            is zeros: SeqHAND-Net, the LSTM and per-frame variants).
        path: output ``.onnx`` file (written atomically), or ``None`` to return the bytes.
        image_size: input side S (a multiple of 32).
        hand_model: the hand model the network was trained with (stored in the metadata).
        opset: ONNX opset.
        quantize_recurrent: store the ConvLSTM's gate product with int8 weights (onnxruntime
            dynamic quantization; everything else stays float32). At batch 1 that product is
            bound by reading its weights (ResNet-50: 75 MB a frame): int8 makes it ~7x faster
            and changes the outputs slightly (docs/inference.md has the numbers).

    Returns:
        the path written, or the serialized model when ``path`` is ``None``.
    """
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("onnx", "export", "ONNX export") from None
    if image_size % 32:
        raise ExportError(f"image_size must be a multiple of 32, got {image_size}")
    cells = [m for m in model.modules() if isinstance(m, ConvLSTMCell)]
    if quantize_recurrent and not cells:
        raise ExportError("quantize_recurrent: the model has no ConvLSTM to quantize")
    was_training = model.training
    model.eval()
    for c in cells:
        c.export_matmul = quantize_recurrent
    try:
        treedef, layout = _probe(model, image_size)
        step = StepModule(model, treedef).eval()
        n = len(layout)
        in_names = ["frame"] + [f"state_{i}" for i in range(n)]
        out_names = ["params"] + [f"state_out_{i}" for i in range(n)]
        dyn = {"frame": {0: "batch"}, "params": {0: "batch"}}
        for i, ent in enumerate(layout):
            dyn[f"state_{i}"] = {ent["batch_axis"]: "batch"}
            dyn[f"state_out_{i}"] = {ent["batch_axis"]: "batch"}
        x = torch.rand(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
        leaves = [torch.zeros(e["shape"]) for e in layout]
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about shape checks, deprecations
            torch.onnx.export(
                step, (x, *leaves), buf, dynamo=False, input_names=in_names,
                output_names=out_names, dynamic_axes=dyn, opset_version=opset,
                do_constant_folding=True,
            )  # fmt: skip
    finally:
        model.train(was_training)
        for c in cells:
            c.export_matmul = False
    proto = onnx.load_from_string(buf.getvalue())
    if quantize_recurrent:
        proto = _quantize_convlstm(proto)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "image_size": int(image_size),
        "hand_model": str(hand_model),
        "model_spec": _jsonable(getattr(model, "spec", {"name": type(model).__name__})),
        "state": layout,
        "input": "frame (B, 3, S, S) float32 RGB in [0, 1]",
        "quantized": "convlstm-int8-dynamic" if quantize_recurrent else None,
        "weights_sha256": weights_digest(model),
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = "seqhand", json.dumps(meta)
    data = proto.SerializeToString()
    if path is None:
        return data
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: a folder is in the way; give a file name such as model.onnx")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{path}: cannot write the ONNX file ({e.strerror or e})") from None
    return path


def _quantize_convlstm(proto):
    """The ConvLSTM gate MatMul(s) of an exported graph with int8 weights (onnxruntime dynamic
    quantization: activations quantized per call); every other node untouched."""
    import tempfile

    import onnx

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise MissingExtraError("onnxruntime", "export", "int8 quantization") from None
    nodes = [n.name for n in proto.graph.node if n.op_type == "MatMul" and "convlstm" in n.name]
    if not nodes:
        raise ExportError("no ConvLSTM matrix product found in the exported graph")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, src)
        quiet = logging.getLogger()  # the quantizer logs a pre-processing tip on the root
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            # reduce_range (7-bit weights) + per-channel scales: the u8 x s8 products cannot
            # saturate on x86 CPUs without VNNI (onnxruntime's documented accuracy issue). On
            # an AVX2-only machine the ConvLSTM state of a random tiny model drifted by 0.22
            # over 5 frames without them, 0.046 with them.
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                             op_types_to_quantize=["MatMul"], reduce_range=True,
                             per_channel=True)  # fmt: skip
        finally:
            quiet.setLevel(level)
        return onnx.load(dst)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


class OnnxEngine:
    """One streaming step with onnxruntime on the CPU (same call as the torch engine).

    ``engine(frames01 (B, 3, S, S) float32, state) -> (params (B, 26), state)``; ``state`` is
    the list of state arrays, ``None`` = start of a sequence (zeros).

    Args:
        model: an ``.onnx`` path or its bytes (from :func:`export_onnx`).
        threads: intra-op threads (``None``: onnxruntime's default, all cores).
    """

    runtime = "onnx"

    def __init__(self, model: str | os.PathLike | bytes, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingExtraError("onnxruntime", "export", "--runtime onnx") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        src = model if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise ExportError(f"{model}: no such ONNX file")
        try:
            self.session = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            where = "the ONNX bytes" if isinstance(model, bytes) else str(model)
            raise ExportError(f"{where}: not a loadable ONNX model ({e})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get("seqhand")
        if raw is None:
            where = "the ONNX bytes" if isinstance(model, bytes) else str(model)
            raise ExportError(f"{where}: not a seqhand step graph (no 'seqhand' metadata)")
        self.meta = json.loads(raw)
        self.image_size = int(self.meta["image_size"])
        self.hand_model = self.meta.get("hand_model", "builtin")
        self.layout = self.meta["state"]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def initial_state(self, batch: int = 1) -> list[np.ndarray]:
        """All-zero state arrays for a new sequence of ``batch`` streams."""
        out = []
        for ent in self.layout:
            shape = list(ent["shape"])
            shape[ent["batch_axis"]] = batch
            out.append(np.zeros(shape, np.float32))
        return out

    def __call__(
        self, frames01: np.ndarray, state: list[np.ndarray] | None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        x = np.ascontiguousarray(frames01, dtype=np.float32)
        if state is None:
            state = self.initial_state(x.shape[0])
        feeds = {"frame": x}
        feeds.update({f"state_{i}": s for i, s in enumerate(state)})
        outs = self.session.run(self.output_names, feeds)
        return outs[0], list(outs[1:])


def compare_with_torch(
    model: nn.Module, engine: OnnxEngine, frames: int = 4, seed: int = 0
) -> dict[str, float]:
    """Run a random sequence through both runtimes; report the largest differences.

    Returns:
        ``{"params_max_abs", "params_max_rel", "state_max_abs"}`` over ``frames`` steps
        (relative to the largest |param| per component).
    """
    gen = torch.Generator().manual_seed(seed)
    s = engine.image_size
    was = model.training
    model.eval()
    st_t, st_o = None, None
    p_abs = p_rel = s_abs = 0.0
    with torch.no_grad():
        for _ in range(frames):
            x = torch.rand(1, 3, s, s, generator=gen)
            pt, st_t = model.step(normalize_frames(x), st_t)
            po, st_o = engine(x.numpy(), st_o)
            d = np.abs(po - pt.numpy())
            p_abs = max(p_abs, float(d.max()))
            p_rel = max(p_rel, float((d / np.maximum(np.abs(pt.numpy()), 1.0)).max()))
            leaves = flatten_state(st_t)[0]
            for a, b in zip(st_o, leaves):
                s_abs = max(s_abs, float(np.abs(a - b.numpy()).max()))
    model.train(was)
    return {"params_max_abs": p_abs, "params_max_rel": p_rel, "state_max_abs": s_abs}
