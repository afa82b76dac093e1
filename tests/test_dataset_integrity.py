"""Datasets are never mixed, raced, or read short: a provisional manifest, one writer at a time,
unique temp names, counts and checksums compared, damaged samples named (or skipped, counted)."""

from __future__ import annotations

import fcntl
import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

import seqhand.data.generate as gen
from robust_fixtures import full_sample, write_fake_dataset
from seqhand.cli import main
from seqhand.data.generate import GenerateConfig, generate
from seqhand.data.seqhand_dataset import SeqHandIndexed, SeqHandShards
from seqhand.data.shards import (
    ShardError,
    decode_sample,
    encode_sample,
    iter_shard,
    read_manifest,
    sha256_file,
    write_manifest,
    write_shard,
)
from seqhand.errors import SeqhandError


def small_cfg(**kw) -> GenerateConfig:
    base = dict(num_train=4, num_test=2, frames=2, image_size=32, shard_size=2, bank_size=10,
                theta_source="bank", image_format="png", num_templates=2)  # fmt: skip
    return GenerateConfig(**{**base, **kw})


@pytest.fixture
def fake_render(monkeypatch, tmp_path):
    """generate() without rendering: samples are a pure function of (seed, split, index)."""

    def make_samples(cfg, bank_file, split, start, count, times=None):
        out = []
        for i in range(start, start + count):
            s = full_sample(i + 1000 * cfg.seed, split, cfg.frames, cfg.image_size)
            s["meta"].update({"key": f"{split}-{i:07d}", "split": split, "seed": cfg.seed})
            out.append(s)
        return out

    bank = tmp_path / "bank.npz"
    bank.write_bytes(b"bank")
    monkeypatch.setattr(gen, "make_samples", make_samples)
    monkeypatch.setattr(gen, "ensure_bank", lambda cfg, out, progress=False: bank)


# ---------------------------------------------------------------------------------------------
# generate: provisional manifest, lock, temp names
# ---------------------------------------------------------------------------------------------
def test_rerun_with_another_config_is_refused_before_any_shard(fake_render, tmp_path):
    out = tmp_path / "ds"
    generate(small_cfg(), out, progress=False)
    (out / "manifest.json").unlink()  # killed before the end
    (out / "train-000001.tar").unlink()
    with pytest.raises(SeqhandError, match=r"seed.*0.*7") as e:
        generate(small_cfg(seed=7), out, progress=False)
    assert "\n" not in str(e.value)
    assert not (out / "train-000001.tar").exists()  # nothing of seed 7 was written
    m = generate(small_cfg(), out, progress=False)  # the same config resumes
    assert m["seed"] == 0 and read_manifest(out)["config"]["seed"] == 0


def test_finished_dataset_names_the_difference(fake_render, tmp_path):
    out = tmp_path / "ds"
    generate(small_cfg(), out, progress=False)
    with pytest.raises(SeqhandError, match="frames"):
        generate(small_cfg(frames=3), out, progress=False)


def test_shards_of_unknown_origin_are_refused(fake_render, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "train-000000.tar").write_bytes(b"")
    with pytest.raises(SeqhandError, match="train-000000.tar"):
        generate(small_cfg(), out, progress=False)


def test_one_writer_at_a_time(fake_render, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    with open(out / ".seqhand-generate.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SeqhandError, match="another"):
            generate(small_cfg(), out, progress=False)
    assert not list(out.glob("*.tar"))
    generate(small_cfg(), out, progress=False)  # the lock is free again


def test_temp_names_are_unique(tmp_path, monkeypatch):
    import os

    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(str(a)), real(a, b)))
    sample = [("train-0000000", encode_sample(full_sample(0), "png"))]
    write_shard(tmp_path / "a.tar", sample)
    write_shard(tmp_path / "a.tar", sample)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(not s.endswith("a.tar.tmp") for s in seen)


# ---------------------------------------------------------------------------------------------
# readers: counts, checksums, damaged samples
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def ds(tmp_path):
    return write_fake_dataset(tmp_path / "ds", num_train=4, num_test=4, shard_size=2)


def truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def read_all(root, split="test", **kw):
    return list(SeqHandShards(root, split, rank=0, world_size=1, **kw))


def test_truncated_shard_is_an_error_not_a_short_read(ds):
    truncate(ds / "test-000001.tar")
    with pytest.raises(ShardError, match="test-000001.tar") as e:
        read_all(ds)
    assert "\n" not in str(e.value)
    with pytest.raises(ShardError, match="test-000001.tar"):
        SeqHandIndexed(ds, "test")


def test_manifest_counts_are_compared(ds):
    m = read_manifest(ds)
    m["splits"]["test"]["shards"][0]["count"] = 3
    m["splits"]["test"]["num_sequences"] = 5
    write_manifest(ds, m)
    with pytest.raises(ShardError, match="test-000000.tar.*2.*3"):
        read_all(ds)
    with pytest.raises(ShardError, match="test-000000.tar"):
        SeqHandIndexed(ds, "test")


def rewrite_sample(root, shard, key, change):
    """Rewrite one sample's members of a shard with ``change(files)`` (a valid tar again)."""
    path = root / shard
    groups = [(k, dict(f)) for k, f in iter_shard(path)]
    for k, files in groups:
        if k == key:
            change(files)
    write_shard(path, groups)


def _tamper_ann(files):
    with np.load(io.BytesIO(files["ann.npz"])) as z:
        ann = {k: z[k] for k in z.files}
    ann["joints3d"] = ann["joints3d"] * 2
    from seqhand.data.shards import npz_bytes

    files["ann.npz"] = npz_bytes(ann)


def test_tampered_shard_fails_verify(ds, capsys):
    assert main(["verify", str(ds)]) == 0
    rewrite_sample(ds, "test-000001.tar", "test-0000003", _tamper_ann)
    assert main(["verify", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "test-000001.tar" in err and "sha256" in err
    read_all(ds)  # without the opt-in check the content is readable...
    with pytest.raises(ShardError, match="test-000001.tar.*sha256"):
        read_all(ds, verify=True)  # ...with it, it is refused


def _old_schema(files):
    meta = json.loads(files["json"])
    meta["schema_version"] = 0
    files["json"] = json.dumps(meta).encode()


def _bad_zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("joints3d.npy", b"not an array")
    files["ann.npz"] = buf.getvalue()[:-5]


DAMAGE = {
    "corrupt-jpeg": lambda f: f.__setitem__("f00.png", b"\x89PNG\r\n\x1a\n" + b"x" * 40),
    "missing-mask": lambda f: f.pop("mask.png"),
    "bad-zip": _bad_zip,
    "no-frames": lambda f: [f.pop(k) for k in list(f) if k.startswith("f0")],
    "old-schema": _old_schema,
    "missing-json": lambda f: f.pop("json"),
    "mask-shape": lambda f: f.__setitem__("mask.png", f["f00.png"]),
    "missing-ann-key": lambda f: f.__setitem__("ann.npz", __import__(
        "seqhand.data.shards", fromlist=["npz_bytes"]).npz_bytes({"theta": np.zeros((2, 45))})),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_sample_is_named_or_skipped(ds, damage):
    rewrite_sample(ds, "test-000001.tar", "test-0000002", DAMAGE[damage])
    for reader in (lambda: read_all(ds), lambda: SeqHandIndexed(ds, "test")[2]):
        with pytest.raises(ShardError, match=r"test-000001.tar.*test-0000002") as e:
            reader()
        assert "\n" not in str(e.value)
    stream = SeqHandShards(ds, "test", rank=0, world_size=1, on_error="skip")
    got = [s["meta"]["key"] for s in stream]
    assert got == ["test-0000000", "test-0000001", "test-0000003"]
    assert stream.skipped == ["test-000001.tar:test-0000002"]


def test_member_with_a_path_is_refused(ds):
    path = ds / "test-000000.tar"
    data = b"x"
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("../../x.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    m = read_manifest(ds)
    m["splits"]["test"]["shards"][0]["sha256"] = sha256_file(path)
    write_manifest(ds, m)
    with pytest.raises(ShardError, match=r"test-000000.tar.*\.\./\.\./x"):
        read_all(ds)
    with pytest.raises(ShardError, match=r"test-000000.tar.*\.\./\.\./x"):
        SeqHandIndexed(ds, "test")


def test_evaluate_on_damaged_data_exits_2_or_skips_counted(ds, tmp_path, capsys):
    import torch

    from seqhand.models import build_model
    from seqhand.training.checkpoint import save_model

    torch.manual_seed(0)
    ck = save_model(build_model("tiny"), tmp_path / "m.pt", image_size=32)
    truncate(ds / "test-000001.tar")
    args = ["evaluate", "--checkpoint", str(ck), "--dataset", "seqhand-test", "--data-root",
            str(ds), "--out", str(tmp_path / "ev"), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "test-000001.tar" in err
    assert not (tmp_path / "ev" / "metrics.json").exists()
    assert main([*args, "--skip-bad-samples"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["skipped_samples"] and "test-000001.tar" in m["skipped_samples"][0]
    assert "skipped" in capsys.readouterr().out
    # a split the dataset does not have
    only_train = write_fake_dataset(tmp_path / "tr", num_train=2, num_test=0)
    args[args.index(str(ds))] = str(only_train)
    assert main(args) == 2
    assert "no split 'test'" in capsys.readouterr().err


def test_a_run_stopped_before_any_shard_may_change_its_config(fake_render, tmp_path):
    out = tmp_path / "ds"
    generate(small_cfg(), out, progress=False)
    for p in [*out.glob("*.tar"), out / "manifest.json"]:
        p.unlink()  # stopped (say, on a bad option) before its first shard
    assert generate(small_cfg(seed=7), out, progress=False)["seed"] == 7


def test_frames_beyond_99_keep_their_order():
    s = full_sample(0, t=101, size=16)
    s["frames"][:, 0, 0, 0] = np.arange(101)
    d = decode_sample(encode_sample(s, "png"))
    np.testing.assert_array_equal(d["frames"][:, 0, 0, 0], np.arange(101))
