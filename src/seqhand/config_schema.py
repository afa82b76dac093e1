"""The schema of a training config: every section, key, type and range in one table.

:func:`validate_config` checks a resolved config dict when it is loaded and returns it (with
numbers written as strings, such as YAML's ``1e-3``, made floats). The dict stays what travels
through training; after validation every key it holds is known and of the right type.

To add a key, add one line to :data:`SCHEMA` (``Key(type, ...)``). Two sections need no edit:
``loss`` takes its keys and types from :class:`seqhand.losses.LossWeights` at run time, and
``model.kwargs`` is free-form (keyword arguments of the model's constructor).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from seqhand.errors import SeqhandError


class ConfigError(SeqhandError):
    """A config file or override is malformed."""


ANY = object()  # a key of any type


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: ``kind`` (int, float, bool, str, list, dict or ANY), whether None is
    allowed, optional ``choices`` and an inclusive numeric range ``lo``..``hi``."""

    kind: Any
    nullable: bool = False
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None


POS = {"lo": 1}
NONNEG = {"lo": 0}

SCHEMA: dict[str, dict[str, Key]] = {
    "model": {
        "name": Key(str),  # also checked against seqhand.models.list_models()
        "image_size": Key(int, lo=16, hi=2048),
        "backbone_weights": Key(str, nullable=True),
        "hand_model": Key(str, nullable=True),
        "kwargs": Key(dict, nullable=True),  # free-form: the model constructor checks them
    },
    "data": {
        "root": Key(str, nullable=True),
        "train_split": Key(str),
        "val_split": Key(str, nullable=True),
        "batch_size": Key(int, **POS),
        "num_workers": Key(int, **NONNEG),
        "cache": Key(bool),  # shards: keep decoded training sequences in memory
        "val_sequences": Key(int, **POS),
        "verify": Key(bool),  # check every shard's sha256 and count before training
        "source": Key(str, choices=("shards", "online")),  # online: composed on the fly
        "generate": Key(dict, nullable=True),  # online: preset + GenerateConfig fields
        "num_sequences": Key(int, nullable=True, **POS),  # online: training sequences
        "clip_frames": Key(int, nullable=True, **POS),  # train on windows of <= this many frames
        "augment": Key(dict, nullable=True),  # roll_deg, zoom, shift, color (training/augment.py)
    },
    "optim": {
        "name": Key(str, choices=("adamw", "muon")),  # seqhand.training.optim
        "lr": Key(float, lo=0, hi=10),
        "weight_decay": Key(float, **NONNEG),
        "scheduler": Key(str, choices=("cosine", "constant")),
        "warmup_steps": Key(int, **NONNEG),
    },
    "trainer": {
        "max_steps": Key(int, **POS),
        "devices": Key(int, **POS),
        "num_nodes": Key(int, **POS),
        "accelerator": Key(str, choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu")),
        "precision": Key(ANY),
        "log_every_n_steps": Key(int, **POS),
        "val_every_n_steps": Key(int, **POS),
        "ckpt_every_n_steps": Key(int, **POS),
        "seed": Key(int, **NONNEG),
        "gradient_clip_val": Key(float, nullable=True, **NONNEG),
    },
    "finetune": {  # seqhand.training.real.FINETUNE_DEFAULTS, plus what finetune records
        "freeze_recurrent": Key(bool),
        "reposition": Key(list),
        "shift": Key(float, **NONNEG),
        "scale_range": Key(list),
        "val_fraction": Key(float, lo=0, hi=1),
        "val_block": Key(int, **POS),
        "freihand_versions": Key(ANY),
        "stb_camera": Key(str),
        "load_vertices": Key(ANY),
        "dataset": Key(str, nullable=True),
        "data_root": Key(str, nullable=True),
        "checkpoint": Key(str, nullable=True),
    },
    "loss": {},  # from seqhand.losses.LossWeights (see loss_keys)
}

_TYPES = {"float": float, "int": int, "bool": bool, "str": str}


def loss_keys() -> dict[str, Key]:
    """The ``loss`` section: one key per field of :class:`seqhand.losses.LossWeights`."""
    from seqhand import losses

    out = {}
    choices = {"reduction": losses.REDUCTIONS, "rotation": losses.ROTATION_LOSSES}
    for f in dataclasses.fields(losses.LossWeights):
        kind = f.type if isinstance(f.type, type) else _TYPES.get(str(f.type), ANY)
        if f.name in choices:
            out[f.name] = Key(kind, choices=choices[f.name])
        else:
            out[f.name] = Key(kind, nullable=True) if kind is ANY else Key(kind)
    return out


def _nearest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(sorted(options))}"


def _describe(key: Key) -> str:
    name = {float: "a number", int: "an integer", bool: "true or false", str: "a string",
            list: "a list", dict: "a mapping"}.get(key.kind, "a value")  # fmt: skip
    if key.choices:
        name = f"one of {', '.join(key.choices)}"
    if key.lo is not None and key.hi is not None:
        name += f" in {key.lo:g}..{key.hi:g}"
    elif key.lo is not None:
        name += f" >= {key.lo:g}"
    return name + (" or null" if key.nullable else "")


def _check(value: Any, key: Key, where: str, path: str) -> Any:
    if value is None and key.nullable:
        return None
    if key.kind is ANY:
        return value
    bad = False
    if key.kind is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                bad = True
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            bad = True
        if not bad:
            value = float(value)
            bad = value != value  # NaN
    elif key.kind is int:
        bad = isinstance(value, bool) or not isinstance(value, int)
    else:
        bad = not isinstance(value, key.kind)
    if not bad and key.choices is not None:
        bad = value not in key.choices
    if not bad and key.lo is not None and value < key.lo:
        bad = True
    if not bad and key.hi is not None and value > key.hi:
        bad = True
    if bad:
        raise ConfigError(f"{where}: {path} must be {_describe(key)}, got {value!r}")
    return value


def validate_config(cfg: dict, where: str = "config") -> dict:
    """Check ``cfg`` against :data:`SCHEMA`; return it (numbers parsed). ``where`` names the
    file or preset in the one-line :class:`ConfigError`."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: a config must be a mapping at the top level")
    sections = {**SCHEMA, "loss": loss_keys()}
    out = {}
    for name, body in cfg.items():
        if name not in sections:
            raise ConfigError(f"{where}: unknown section {name!r}{_nearest(str(name), sections)}")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: {name} must be a mapping of keys, got {body!r}")
        keys = sections[name]
        sec = {}
        for k, v in body.items():
            path = f"{name}.{k}"
            if k not in keys:
                valid = [f"{name}.{x}" for x in keys]
                raise ConfigError(f"{where}: unknown key {path!r}{_nearest(path, valid)}")
            sec[k] = _check(v, keys[k], where, path)
        out[name] = sec
    model = out.get("model", {}).get("name")
    if model is not None:
        from seqhand.models import list_models

        if model not in list_models():
            raise ConfigError(
                f"{where}: model.name {model!r} is not a model{_nearest(model, list_models())}"
            )
    return out
