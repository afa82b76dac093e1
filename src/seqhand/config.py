"""YAML configs with dotted overrides: the one config system of seqhand.

A config is a nested dict. ``load_config(path_or_preset, overrides)`` reads a YAML file (or a
preset name from ``configs/`` / the packaged presets), applies ``key.sub=value`` overrides
(values parsed as YAML: ``optim.lr=3e-4``, ``model.name=resnet50``, ``data.root=out/x``),
validates the result against :mod:`seqhand.config_schema` (unknown keys, types, ranges) and
returns the resolved dict, which runs save beside their outputs (``config.yaml``).

``base: other.yaml`` (a path relative to the including file, or a preset name) is merged
under a file; a chain of bases that comes back to a file already on it is refused.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import yaml

from seqhand.config_schema import ConfigError, validate_config

__all__ = ["ConfigError", "apply_overrides", "load_config", "merge", "preset_names",
           "save_config"]  # fmt: skip


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("seqhand.presets").iterdir()
                  if p.name.endswith(".yaml"))  # fmt: skip


def _read_yaml(spec: str | Path, chain: tuple[str, ...] = (), near: Path | None = None) -> dict:
    p = Path(spec)
    if near is not None and not p.is_absolute() and (near / p).is_file():
        p = near / p
    if p.suffix in (".yaml", ".yml") and p.is_file():
        where = str(p.resolve())
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: unreadable config ({e})") from None
    else:
        name = p.stem if p.suffix in (".yaml", ".yml") else str(spec)
        res = resources.files("seqhand.presets") / f"{name}.yaml"
        if not res.is_file():
            raise ConfigError(
                f"no config file {spec!r} and no preset of that name; presets: {preset_names()}"
            )
        text, where = res.read_text(), f"preset {name}"
    if where in chain:
        loop = " -> ".join(Path(c).name if "/" in c else c for c in (*chain, where))
        raise ConfigError(f"{spec}: base cycle ({loop})")
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: invalid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: a config must be a mapping at the top level")
    base = cfg.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{where}: base must be a file name or preset name, got {base!r}")
        folder = p.parent if where != f"preset {p.stem}" and p.is_file() else None
        cfg = merge(_read_yaml(base, (*chain, where), folder), cfg)
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
        if not all(parts):
            raise ConfigError(f"override {ov!r}: empty key part in {key!r}")
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
    """Read, override and validate a config (a one-line :class:`ConfigError` if it is not)."""
    where = str(spec) + (" with --set overrides" if overrides else "")
    return validate_config(apply_overrides(_read_yaml(spec), overrides), where)


def save_config(cfg: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
