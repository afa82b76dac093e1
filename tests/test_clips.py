"""``data.clip_frames``: training on every window of k consecutive frames of each sequence."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from seqhand.data.generate import GenerateConfig, generate
from seqhand.data.seqhand_dataset import SeqHandIndexed, read_sequences
from seqhand.training.batch import SequenceClips, clip_sample


def _sample(t: int) -> dict:
    """A decoded-form sample written from the dataset schema (frames, masks, ann), T frames;
    with T = 10 the per-sequence betas (10,) have the length of a per-frame array."""
    rng = np.random.default_rng(t)
    ann = {"betas": rng.normal(size=10), "rot": rng.normal(size=(t, 3)),
           "scale": rng.uniform(200, 300, t), "trans": rng.uniform(0, 96, (t, 2)),
           "theta_pca": rng.normal(size=(t, 10)), "joints2d": rng.uniform(0, 96, (t, 21, 2)),
           "joints3d": rng.normal(size=(t, 21, 3)), "in_frame": np.ones((t, 21), bool)}  # fmt: skip
    return {"frames": rng.integers(0, 255, (t, 8, 8, 3), dtype=np.uint8),
            "masks": rng.integers(0, 2, (t, 8, 8)).astype(bool), "ann": ann}  # fmt: skip


def test_clip_cuts_every_per_frame_array_and_keeps_betas():
    s = _sample(10)
    c = clip_sample(s, 3, 4)
    np.testing.assert_array_equal(c["frames"], s["frames"][3:7])
    np.testing.assert_array_equal(c["masks"], s["masks"][3:7])
    np.testing.assert_array_equal(c["ann"]["betas"], s["ann"]["betas"])  # (10,) stays whole
    for k in ("rot", "scale", "trans", "theta_pca", "joints2d", "joints3d", "in_frame"):
        np.testing.assert_array_equal(c["ann"][k], s["ann"][k][3:7], err_msg=k)
    with pytest.raises(ValueError, match="outside"):
        clip_sample(s, 8, 4)


def test_clips_enumerate_every_window_of_every_sequence(tmp_path):
    cfg = GenerateConfig(num_train=3, num_test=1, frames=4, image_size=32, shard_size=2,
                         bank_size=2000, theta_source="bank", image_format="png",
                         num_templates=2)  # fmt: skip
    generate(cfg, tmp_path / "ds", progress=False)
    whole = read_sequences(tmp_path / "ds", "train")
    clips = SequenceClips(SeqHandIndexed(tmp_path / "ds", "train"), frames=4, clip=2)
    assert len(clips) == 3 * 3  # 3 sequences x windows starting at 0, 1, 2
    seen = set()
    for k in range(len(clips)):
        c = clips[k]
        hits = [(i, st) for i, w in enumerate(whole) for st in range(3)
                if np.array_equal(c["frames"], w["frames"][st:st + 2])]  # fmt: skip
        assert len(hits) == 1
        ((i, st),) = hits
        np.testing.assert_array_equal(
            c["ann"]["joints2d"], whole[i]["ann"]["joints2d"][st : st + 2]
        )
        seen.add((i, st))
    assert len(seen) == 9
    with pytest.raises(ValueError, match="clip_frames"):
        SequenceClips(whole, frames=4, clip=5)


def test_training_on_clips_runs(tmp_path):
    from seqhand.config import load_config
    from seqhand.training.run import train

    cfg = GenerateConfig(num_train=2, num_test=1, frames=3, image_size=32, shard_size=2,
                         bank_size=2000, theta_source="bank", num_templates=2)  # fmt: skip
    generate(cfg, tmp_path / "ds", progress=False)
    run_cfg = load_config("tiny", [f"data.root={tmp_path / 'ds'}", "model.image_size=32",
                                   "data.clip_frames=2", "trainer.max_steps=2",
                                   "trainer.val_every_n_steps=2", "data.batch_size=2",
                                   "data.num_workers=0", "data.val_sequences=1"])  # fmt: skip
    summary = train(run_cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["metrics"]["val/epe3d_mm"])


def test_cached_sequences_give_the_items_of_the_shards(tmp_path):
    """data.cache: every training item (clipped, at another size, and after a view jitter
    that moves the silhouette) equals the item read from the shards without the cache."""
    import torch

    from seqhand.config import load_config
    from seqhand.training.run import _datasets

    cfg = GenerateConfig(num_train=3, num_test=1, frames=4, image_size=32, shard_size=2,
                         bank_size=2000, theta_source="bank", num_templates=2)  # fmt: skip
    generate(cfg, tmp_path / "ds", progress=False)
    for extra in ([], ["model.image_size=24"], ["data.augment={roll_deg: 40, shift: 0.1}"]):
        base = [f"data.root={tmp_path / 'ds'}", "model.image_size=32", "data.clip_frames=2",
                *extra]  # fmt: skip
        plain, _ = _datasets(load_config("tiny", base + ["data.cache=false"]), tmp_path)
        cached, _ = _datasets(load_config("tiny", base + ["data.cache=true"]), tmp_path)
        assert len(plain) == len(cached) == 9
        for _ in range(2):  # the second pass reads the cache
            for k in range(len(plain)):
                a, b = plain[k], cached[k]
                assert a.keys() == b.keys()
                for key in a:
                    assert torch.equal(a[key], b[key]), (extra, k, key)


def test_cache_slabs_keep_every_array_outside_the_heap():
    """The cache's memory maps hold exact copies, of any shape and dtype, across map
    boundaries; a later copy does not overwrite an earlier one; the source is not shared."""
    import mmap

    from seqhand.training.batch import _Slabs

    rng = np.random.default_rng(0)
    slabs = _Slabs(rows=2)
    src = [rng.integers(0, 255, (3, 4, 5), dtype=np.uint8) for _ in range(5)]
    src += [rng.random((2, 6)).astype(np.float32) for _ in range(3)] + [np.zeros((0, 3))]
    want = [a.copy() for a in src]
    kept = [slabs.keep(a) for a in src]
    for a in src:
        a += 1  # the copies are not views of the sources
    for a, k in zip(want, kept):
        assert k.dtype == a.dtype and k.shape == a.shape
        np.testing.assert_array_equal(k, a)

    def owner(a):
        while isinstance(a, np.ndarray):
            a = a.base
        return a.obj if isinstance(a, memoryview) else a

    assert all(isinstance(owner(k), mmap.mmap) for k in kept if k.size)


def test_cache_keeps_annotations_in_maps_and_trims_the_heap(monkeypatch):
    """Every array of a cached sample, annotations included, lives in a memory map (left on
    the heap they pinned it: a ConvLSTM run on 16,000 sequences grew 2.5-4.5 MB a step), and
    every ``trim_every`` reads the heap's free pages are given back."""
    import mmap

    from seqhand.training import batch

    calls = []
    monkeypatch.setattr(batch, "trim_heap", lambda: calls.append(1) or True)
    rng = np.random.default_rng(0)
    base = [{"frames": rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8),
             "ann": {"theta": rng.random((2, 45)).astype(np.float32), "note": "x"}}
            for _ in range(3)]  # fmt: skip
    cache = batch.CachedSequences(base, 8, trim_every=4)
    for k in [0, 1, 2, 0, 1, 2, 0, 1, 2]:
        s = cache[k]
        np.testing.assert_array_equal(s["ann"]["theta"], base[k]["ann"]["theta"])
        assert s["ann"]["note"] == "x"
        a = s["ann"]["theta"]
        while isinstance(a, np.ndarray):
            a = a.base
        assert isinstance(a.obj if isinstance(a, memoryview) else a, mmap.mmap)
    assert len(calls) == 2  # after reads 4 and 8


_ARENAS = """
import ctypes, sys, threading
from seqhand.training.batch import CachedSequences
if sys.argv[1] == "cached":
    CachedSequences([], 32)
bufs = []
def work():
    for _ in range(50):
        bufs.append(bytearray(200_000))
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_the_cache_keeps_the_heap_in_one_arena():
    """With the cache, threads allocate from glibc's one main arena (a long cached LSTM run
    grew 3x faster than its cache with an arena per thread); without it they get their own
    arenas - which is what makes this test able to fail."""
    import subprocess

    def arenas(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True,
                             text=True, check=True)  # fmt: skip
        return sum(line.startswith("Arena ") for line in out.stderr.splitlines())

    assert arenas("plain") > 1
    assert arenas("cached") == 1
