"""YAML configs with dotted overrides: the one config system of seqhand.

A config is a nested dict. ``load_config(path_or_preset, overrides)`` reads a YAML file (or a
preset name from ``configs/`` / the packaged presets), applies ``key.sub=value`` overrides
(values parsed as YAML: ``optim.lr=3e-4``, ``model.name=resnet50``, ``data.root=out/x``) and
returns the resolved dict, which runs save beside their outputs (``config.yaml``).
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import yaml

from seqhand.errors import SeqhandError


class ConfigError(SeqhandError):
    """A config file or override is malformed."""


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("seqhand.presets").iterdir()
                  if p.name.endswith(".yaml"))  # fmt: skip


def _read_yaml(spec: str | Path) -> dict:
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        text, where = p.read_text(), str(p)
    else:
        name = p.stem if p.suffix in (".yaml", ".yml") else str(spec)
        res = resources.files("seqhand.presets") / f"{name}.yaml"
        if not res.is_file():
            raise ConfigError(
                f"no config file {spec!r} and no preset of that name; presets: {preset_names()}"
            )
        text, where = res.read_text(), f"preset {name}"
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: invalid YAML ({e})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: a config must be a mapping at the top level")
    base = cfg.pop("base", None)
    if base:
        cfg = merge(_read_yaml(base), cfg)
    return cfg


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge (``over`` wins); inputs are not modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """Apply ``a.b.c=value`` overrides; unknown top-level sections are refused."""
    cfg = copy.deepcopy(cfg)
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} must look like key.sub=value")
        key, raw = ov.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in cfg:
            raise ConfigError(f"override {ov!r}: unknown section {parts[0]!r}; have {sorted(cfg)}")
        node = cfg
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {ov!r}: {p!r} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return cfg


def load_config(spec: str | Path, overrides: list[str] | None = None) -> dict:
    return apply_overrides(_read_yaml(spec), overrides)


def save_config(cfg: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
