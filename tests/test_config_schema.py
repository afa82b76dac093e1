"""Configs are validated when loaded: unknown keys name the nearest valid key, types and ranges
are checked, ``base`` cycles are refused; the loss section follows ``LossWeights``."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from seqhand.cli import main
from seqhand.config import ConfigError, load_config, preset_names
from seqhand.config_schema import SCHEMA, validate_config


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_valid(name):
    cfg = load_config(name)
    assert validate_config(cfg) == cfg


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("optim.lrr=1", ["optim.lrr", "optim.lr"]),
        ("model.imagesize=64", ["model.imagesize", "model.image_size"]),
        ("trainer.max_stepz=3", ["trainer.max_stepz", "trainer.max_steps"]),
        ("loss.joint3d=1", ["loss.joint3d", "loss.joints3d"]),
    ],
)
def test_unknown_keys_name_the_nearest(override, words):
    with pytest.raises(ConfigError) as e:
        load_config("tiny", [override])
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_unknown_section_and_unknown_key_in_a_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"base": "tiny", "optimm": {"lr": 1.0}}))
    with pytest.raises(ConfigError, match=r"c.yaml.*optimm.*optim"):
        load_config(str(p))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_steps=abc", "trainer.max_steps"),
        ("trainer.max_steps=0", "trainer.max_steps"),
        ("trainer.max_steps=2.5", "trainer.max_steps"),
        ("data.batch_size=true", "data.batch_size"),
        ("optim.lr=[1]", "optim.lr"),
        ("optim.lr=-1", "optim.lr"),
        ("optim.scheduler=linear", "optim.scheduler"),
        ("model.image_size=100000", "model.image_size"),
        ("model.name=[1]", "model.name"),
        ("model.name=no_such_model", "model.name"),
        ("model.kwargs=3", "model.kwargs"),
        ("loss.mask=big", "loss.mask"),
        ("data.num_workers=-1", "data.num_workers"),
        ("trainer=3", "trainer"),
    ],
)
def test_wrong_types_are_refused(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
        load_config("tiny", [override])
    assert "\n" not in str(e.value)


def test_numbers_written_as_strings_become_floats():
    cfg = load_config("tiny", ["optim.lr=1e-3"])  # YAML reads 1e-3 as a string
    assert cfg["optim"]["lr"] == 1e-3 and isinstance(cfg["optim"]["lr"], float)


def test_model_kwargs_are_free_form():
    cfg = load_config("tiny", ["model.kwargs={anything: 1, nested: {x: 2}}"])
    assert cfg["model"]["kwargs"] == {"anything": 1, "nested": {"x": 2}}


def test_loss_keys_follow_the_dataclass(monkeypatch):
    from seqhand import losses

    names = {f.name for f in dataclasses.fields(losses.LossWeights)}
    cfg = load_config("tiny")
    assert set(cfg["loss"]) <= names
    # a new field of LossWeights is a valid key at once, with no edit of the schema
    extended = dataclasses.make_dataclass(
        "LossWeights", [("units", str, dataclasses.field(default="m"))],
        bases=(losses.LossWeights,),
    )  # fmt: skip
    monkeypatch.setattr(losses, "LossWeights", extended)
    assert load_config("tiny", ["loss.units=mm"])["loss"]["units"] == "mm"
    with pytest.raises(ConfigError, match="loss.unit.*loss.units"):
        load_config("tiny", ["loss.unit=mm"])


def test_schema_is_one_place_to_extend(monkeypatch):
    from seqhand import config_schema

    monkeypatch.setitem(SCHEMA["data"], "source", config_schema.Key(str, nullable=True))
    assert load_config("tiny", ["data.source=shards"])["data"]["source"] == "shards"


def test_base_cycles_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\noptim: {lr: 1.0}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    for name in ("a.yaml", "self.yaml"):
        with pytest.raises(ConfigError, match="cycle") as e:
            load_config(str(tmp_path / name))
        assert "\n" not in str(e.value)


def test_base_is_relative_to_the_including_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("base: tiny\noptim: {lr: 0.5}\n")
    (tmp_path / "sub" / "run.yaml").write_text("base: base.yaml\ntrainer: {max_steps: 3}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(str(tmp_path / "sub" / "run.yaml"))
    assert cfg["optim"]["lr"] == 0.5 and cfg["trainer"]["max_steps"] == 3


def test_cli_train_with_a_bad_key_exits_2_in_one_line(tmp_path, capsys):
    rc = main(["train", "--set", "optim.lrr=1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "optim.lr" in err
    assert not (tmp_path / "run").exists()  # nothing written for a refused config
