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


def load_model(path: str | os.PathLike, map_location: str = "cpu"):
    """Load a model file or a ``seqhand train`` Lightning checkpoint.

    Returns:
        ``(model, record)``: the model in eval mode and the record (spec, image_size,
        hand_model, config).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(ck, dict) and "seqhand" in ck and "state_dict" in ck:  # Lightning
        rec = dict(ck["seqhand"])
        prefix = "model."
        state = {k[len(prefix) :]: v for k, v in ck["state_dict"].items() if k.startswith(prefix)}
    elif isinstance(ck, dict) and ck.get("format") == FORMAT:
        rec, state = ck, ck["state_dict"]
    else:
        raise CheckpointError(f"{path}: not a seqhand model checkpoint")
    spec = dict(rec["model_spec"])
    model = build_model(spec.pop("name"), **spec)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the model {rec['model_spec']['name']!r} "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
        )
    model.eval()
    rec = {k: v for k, v in rec.items() if k != "state_dict"}
    return model, rec
