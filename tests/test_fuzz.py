"""Property-based fuzzing of every input category of issue 12 (fast: tens of examples each).

Each property: whatever the bytes or values, the outcome is either a correct result or the
project's one-line error (a ``SeqhandError`` subclass) - never another exception, never a short
read, never code run from a file.
"""

from __future__ import annotations

import io
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from robust_fixtures import full_sample, write_fake_dataset
from seqhand.config import ConfigError, load_config
from seqhand.config_schema import SCHEMA, loss_keys, validate_config
from seqhand.data.generate import GenerateConfig
from seqhand.data.seqhand_dataset import SeqHandIndexed, SeqHandShards
from seqhand.data.shards import SampleError, ShardError, decode_sample, encode_sample
from seqhand.errors import SeqhandError
from seqhand.models import build_model
from seqhand.training.checkpoint import CheckpointError, load_model, save_model
from seqhand.training.sampler import StepSampler

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip


def one_line(e: BaseException) -> None:
    assert isinstance(e, SeqhandError), repr(e)
    assert "\n" not in str(e) and str(e), repr(e)


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    torch.manual_seed(0)
    p = save_model(build_model("tiny"), tmp_path_factory.mktemp("ck") / "m.pt", image_size=32)
    return p.read_bytes()


class _Run:
    ran = False

    def __reduce__(self):
        return (_Run._mark, ())

    @staticmethod
    def _mark():
        _Run.ran = True


@FAST
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                          max_size=4))  # fmt: skip
def test_fuzz_damaged_checkpoints(model_bytes, cut, flips):
    data = bytearray(model_bytes[: max(1, int(len(model_bytes) * cut))])
    for pos, val in flips:
        data[min(len(data) - 1, int(pos * len(data)))] = val
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.pt"
        p.write_bytes(bytes(data))
        try:
            model, rec = load_model(p)
        except CheckpointError as e:
            one_line(e)
        else:
            assert isinstance(rec["image_size"], int)


@settings(FAST, max_examples=20)
@given(payload=st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                      st.just("RUN")),
                            lambda c: st.one_of(st.lists(c, max_size=3),
                                                st.dictionaries(st.text(max_size=4), c,
                                                                max_size=3)),
                            max_leaves=8))  # fmt: skip
def test_fuzz_checkpoint_structures_never_run_code(payload):
    def build(x):
        if x == "RUN":
            return _Run()
        if isinstance(x, list):
            return [build(v) for v in x]
        if isinstance(x, dict):
            return {k: build(v) for k, v in x.items()}
        return x

    _Run.ran = False
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.pt"
        torch.save(build(payload), p)
        with pytest.raises(CheckpointError) as e:
            load_model(p)
        one_line(e.value)
    assert not _Run.ran


def test_fuzz_plain_pickle_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(pickle.dumps(_Run()))
    _Run.ran = False
    with pytest.raises(CheckpointError):
        load_model(p)
    assert not _Run.ran


# ---------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))  # fmt: skip
KEYS = [f"{s}.{k}" for s, keys in {**SCHEMA, "loss": loss_keys()}.items() for k in keys]


@FAST
@given(edits=st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(min_size=1,
                                                                          max_size=12)),
                                VALUES), max_size=4))  # fmt: skip
def test_fuzz_config_overrides(edits):
    overrides = []
    for key, value in edits:
        assume("=" not in key and "\n" not in key)
        overrides.append(f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
                         .replace("\n...", ""))  # fmt: skip
    try:
        cfg = load_config("tiny", overrides)
    except ConfigError as e:
        one_line(e)
    else:
        assert validate_config(cfg) == cfg  # what loads is valid and stays so
        for sec, body in cfg.items():
            for k in body:
                assert f"{sec}.{k}" in KEYS


@FAST
@given(doc=st.text(max_size=60))
def test_fuzz_config_files(tmp_path, doc):
    p = tmp_path / "c.yaml"
    p.write_text(doc)
    try:
        load_config(str(p))
    except ConfigError as e:
        one_line(e)


# ---------------------------------------------------------------------------------------------
# samples and shards
# ---------------------------------------------------------------------------------------------
REQUIRED = frozenset(full_sample(0)["ann"])
MEMBERS = sorted(encode_sample(full_sample(0), "png"))


@FAST
@given(member=st.sampled_from(MEMBERS), how=st.sampled_from(["drop", "cut", "junk", "swap"]),
       cut=st.floats(0, 1), junk=st.binary(max_size=64))  # fmt: skip
def test_fuzz_damaged_sample(member, how, cut, junk):
    files = encode_sample(full_sample(1), "png")
    if how == "drop":
        files.pop(member)
    elif how == "cut":
        files[member] = files[member][: int(len(files[member]) * cut)]
    elif how == "junk":
        files[member] = junk
    else:
        files[member] = files[MEMBERS[(MEMBERS.index(member) + 1) % len(MEMBERS)]]
    try:
        s = decode_sample(files, REQUIRED)
    except SampleError as e:
        one_line(e)
    else:  # a sample that decodes is consistent
        t = s["frames"].shape[0]
        assert s["masks"].shape == s["frames"].shape[:3]
        assert all(s["ann"][k].shape[0] == t for k in REQUIRED - {"betas"})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_fake_dataset(tmp_path_factory.mktemp("fz") / "ds", num_train=3, num_test=0,
                              shard_size=3, frames=2, size=16)  # fmt: skip


@settings(FAST, max_examples=15)
@given(cut=st.integers(0, 10**6), flip=st.one_of(st.none(), st.integers(0, 10**6)))
@example(cut=475705, flip=999802)  # once let a zlib.error out of ann.npz
def test_fuzz_damaged_shard_is_never_read_short(dataset, cut, flip):
    full = [s["meta"]["key"] for s in SeqHandShards(dataset, "train", rank=0, world_size=1)]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ds"
        root.mkdir()
        for name in ("manifest.json", "train-000000.tar"):
            shutil.copy(dataset / name, root / name)
        p = root / "train-000000.tar"
        data = bytearray(p.read_bytes())
        data = data[: cut % (len(data) + 1)]
        if flip is not None and data:
            data[flip % len(data)] ^= 0xFF
        p.write_bytes(bytes(data))
        for read in (
            lambda: [s["meta"]["key"] for s in SeqHandShards(root, "train", rank=0, world_size=1)],
            lambda: [s["meta"]["key"] for s in SeqHandIndexed(root, "train")],
        ):
            try:
                got = read()
            except ShardError as e:
                one_line(e)
            else:
                assert got == full  # all of it, or an error: never a short read


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 10), st.text(max_size=6)),
                    lambda c: st.one_of(st.lists(c, max_size=3),
                                        st.dictionaries(st.text(max_size=6), c, max_size=3)),
                    max_leaves=10)  # fmt: skip


@FAST
@given(splits=st.one_of(JSON, st.dictionaries(st.sampled_from(["train", "test"]), JSON)),
       count=st.one_of(st.none(), st.integers(-1, 5)),
       name=st.sampled_from(["train-000000.tar", "../x.tar", "", "manifest.json", "nope.tar"]))  # fmt: skip
def test_fuzz_manifest(dataset, splits, count, name):
    import json

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        shutil.copy(dataset / "train-000000.tar", root / "train-000000.tar")
        m = json.loads((dataset / "manifest.json").read_text())
        for variant in (splits, {"train": {"num_sequences": count, "shards": [
                {"name": name, "count": count, "sha256": "0"}]}}):  # fmt: skip
            m["splits"] = variant
            (root / "manifest.json").write_text(json.dumps(m))
            for read in (lambda: list(SeqHandShards(root, "train", rank=0, world_size=1)),
                         lambda: [x for x in SeqHandIndexed(root, "train")]):  # fmt: skip
                try:
                    got = read()
                except ShardError as e:
                    one_line(e)
                else:  # what reads is what the manifest says is there
                    assert len(got) == m["splits"]["train"]["num_sequences"] == 3


# ---------------------------------------------------------------------------------------------
# resume (sampler) and generate options
# ---------------------------------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 30), b=st.integers(1, 5), steps=st.integers(1, 20),
       start=st.integers(0, 20), world=st.integers(1, 3), data=st.data())  # fmt: skip
def test_fuzz_sampler_resume(n, b, steps, start, world, data):
    start = min(start, steps)
    rank = data.draw(st.integers(0, world - 1))
    full = list(StepSampler(n, b, seed=3, max_steps=steps, rank=rank, world_size=world))
    res = StepSampler(n, b, seed=3, start_step=start, max_steps=steps, rank=rank,
                      world_size=world)  # fmt: skip
    assert len(res) == len(full) == steps * b
    assert list(res) == full[start * b :]


@FAST
@given(seed=st.integers(-5, 2**40), size=st.integers(-5, 10**6), frames=st.integers(-2, 2000),
       shard=st.integers(-2, 100), alpha=st.one_of(st.none(), st.floats(-2, 3)))  # fmt: skip
def test_fuzz_generate_options(seed, size, frames, shard, alpha):
    cfg = GenerateConfig(seed=seed, image_size=size, frames=frames, shard_size=shard,
                         alpha=alpha)  # fmt: skip
    try:
        cfg.validate()
    except SeqhandError as e:
        one_line(e)
    else:
        assert seed >= 0 and 16 <= size <= 2048 and 1 <= frames <= 1000 and shard >= 1


def test_fuzz_module_covers_each_category():
    """The categories of issue 12, each with a property above."""
    names = {n for n in globals() if n.startswith("test_fuzz_")}
    for need in ("checkpoint", "config", "sample", "shard", "manifest", "sampler", "generate"):
        assert any(need in n for n in names), need
    assert io and np  # imported for the strategies' helpers
