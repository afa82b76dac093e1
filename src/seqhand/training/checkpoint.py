"""Model checkpoints that rebuild their model: a plain ``.pt`` and Lightning ``.ckpt`` alike.

A seqhand model file is a ``torch.save`` dict::

    {"format": "seqhand-model", "version": 1,
     "model_spec": {"name": ..., **build_model kwargs},   # model.spec
     "state_dict": {...},                                  # the model's own keys
     "image_size": 224, "hand_model": "builtin" | path, "config": {...}}

Lightning checkpoints written by ``seqhand train`` carry the same entries under
``"seqhand"`` (see :mod:`seqhand.training.module`), so :func:`load_model` reads both.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from seqhand.errors import SeqhandError
from seqhand.models import build_model

FORMAT = "seqhand-model"
VERSION = 1


class CheckpointError(SeqhandError):
    """A checkpoint is missing, unreadable or not a seqhand model."""


def model_record(model, config: dict | None = None, image_size: int | None = None,
                 hand_model: str | None = None) -> dict:  # fmt: skip
    """The entries that rebuild ``model`` (without its weights)."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise CheckpointError("the model has no .spec: build it with seqhand.models.build_model")
    cfg = config or {}
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_spec": dict(spec),
        "image_size": int(image_size or cfg.get("model", {}).get("image_size", 224)),
        "hand_model": hand_model or cfg.get("model", {}).get("hand_model") or "builtin",
        "config": cfg,
    }


def save_model(model, path: str | os.PathLike, config: dict | None = None,
               image_size: int | None = None, hand_model: str | None = None) -> Path:  # fmt: skip
    """Write a model file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = model_record(model, config, image_size, hand_model)
    rec["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(rec, tmp)
    os.replace(tmp, path)
    return path


def safe_load(path: str | os.PathLike, map_location: str = "cpu") -> object:
    """``torch.load`` with ``weights_only=True``: tensors and plain data only, nothing runs.

    Everything a seqhand model file or a Lightning checkpoint of ``seqhand train`` holds
    (tensors, dicts, lists, numbers, strings) passes; a file that asks for any other Python
    object (a crafted pickle payload) is refused with a one-line :class:`CheckpointError`
    before that object is built.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e) and "Unsupported operand" not in str(e):  # not a payload
            msg = " ".join(str(e).split())[:200]
            raise CheckpointError(
                f"{path}: unreadable checkpoint (UnpicklingError: {msg})"
            ) from None
        what = re.search(r"GLOBAL\s+([\w.]+)|Unsupported operand\s+(\S+)", str(e))
        found = (what.group(1) or what.group(2)) if what else str(e).splitlines()[0][:120]
        raise CheckpointError(
            f"{path}: refused: the file asks to build Python objects ({found}) that no seqhand "
            "checkpoint holds; it may be crafted to run code, so nothing in it was loaded"
        ) from None
    except Exception as e:  # torch raises many types for truncated / foreign files
        msg = " ".join(str(e).split())[:200]
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(e).__name__}: {msg})"
        ) from None


def load_model(path: str | os.PathLike, map_location: str = "cpu"):
    """Load a model file or a ``seqhand train`` Lightning checkpoint (safely: see
    :func:`safe_load`).

    Returns:
        ``(model, record)``: the model in eval mode and the record (spec, image_size,
        hand_model, config).
    """
    path = Path(path)
    ck = safe_load(path, map_location)
    if isinstance(ck, dict) and "seqhand" in ck and "state_dict" in ck:  # Lightning
        rec = dict(ck["seqhand"])
        prefix = "model."
        state = {k[len(prefix) :]: v for k, v in ck["state_dict"].items() if k.startswith(prefix)}
    elif isinstance(ck, dict) and ck.get("format") == FORMAT:
        if not isinstance(ck.get("state_dict"), dict):
            raise CheckpointError(f"{path}: a seqhand model file without weights (no state_dict)")
        rec, state = ck, ck["state_dict"]
    else:
        raise CheckpointError(f"{path}: not a seqhand model checkpoint")
    spec = rec.get("model_spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise CheckpointError(f"{path}: the checkpoint has no valid model_spec")
    spec = dict(spec)
    try:
        model = build_model(spec.pop("name"), **spec)
    except SeqhandError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path}: cannot build its model {rec['model_spec']!r} ({e})"
        ) from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = " ".join(str(e).split("\n\t")[1:2]).strip() or str(e).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit the model {rec['model_spec']['name']!r} ({first[:200]})"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the model {rec['model_spec']['name']!r} "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
        )
    model.eval()
    rec = {k: v for k, v in rec.items() if k != "state_dict"}
    return model, rec
