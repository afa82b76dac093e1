"""``seqhand generate``: annotations consistent with the pixels, same bytes for every engine,
kill-and-resume, bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation
from scipy.spatial.transform import Rotation

from seqhand.cli import main as cli_main
from seqhand.data.generate import GenerateConfig, generate, make_samples, preset
from seqhand.data.seqhand_dataset import read_sequences
from seqhand.data.shards import ShardError, read_manifest, verify_dataset
from seqhand.errors import SeqhandError


def tiny_cfg(**kw) -> GenerateConfig:
    base = dict(num_train=6, num_test=3, frames=3, image_size=64, shard_size=3, bank_size=4000,
                theta_source="bank", image_format="png", num_templates=4)  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.tar"))} | {
        "manifest.json": (root / "manifest.json").read_bytes()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "ds"
    generate(tiny_cfg(), out, progress=False)
    return out


def test_roundtrip_and_annotation_consistency(dataset):
    cfg = tiny_cfg()
    seqs = read_sequences(dataset, "train")
    assert len(seqs) == 6 and seqs[0]["frames"].shape == (3, 64, 64, 3)
    bank = sorted((dataset / ".cache").glob("*.npz"))[0]
    direct = make_samples(cfg, bank, "train", 3, 3)  # what the writer was given (shard 1)
    for a, b in zip(direct, seqs[3:]):
        np.testing.assert_array_equal(a["frames"], b["frames"])  # png: lossless
        np.testing.assert_array_equal(a["masks"], b["masks"])
        for k in a["ann"]:
            np.testing.assert_array_equal(a["ann"][k], b["ann"][k])
    for s in seqs:
        ann = s["ann"]
        rmat = Rotation.from_rotvec(ann["rot"]).as_matrix()
        proj = np.einsum("tij,tkj->tki", rmat, ann["joints3d"])[..., :2]
        x2d = ann["scale"][:, None, None] * proj + ann["trans"][:, None]
        np.testing.assert_allclose(x2d, ann["joints2d"], atol=1e-3)  # Eq. 4 holds exactly
        # visible, in-frame joints land on the rendered hand (tips sit on the silhouette's
        # edge, so allow one pixel)
        vis = ann["visible"] & ann["in_frame"]
        u = np.rint(ann["joints2d"][..., 0]).astype(int).clip(0, 63)
        v = np.rint(ann["joints2d"][..., 1]).astype(int).clip(0, 63)
        t = np.arange(3)[:, None]
        grown = np.stack([binary_dilation(m, iterations=1) for m in s["masks"]])
        assert grown[t, v, u][vis].all()
        assert s["masks"][t, v, u][ann["in_frame"]].mean() > 0.5
        assert s["masks"].reshape(3, -1).mean(1).min() > 0.01  # a hand in every frame
        assert np.all(ann["betas"] == ann["betas"][0]) or ann["betas"].ndim == 1
    assert verify_dataset(dataset) == []


def test_same_bytes_for_every_engine(dataset, tmp_path):
    from dask.distributed import LocalCluster

    timeline: dict = {}
    generate(tiny_cfg(), tmp_path / "two", workers=2, progress=False, timeline=timeline)
    # the timeline of benchmarks/generate.py: the 3 shards, made by the 2 workers, not here
    assert len(timeline["shards"]) == 3 and timeline["engine_start"] >= 0
    assert os.getpid() not in {pid for pid, _, _ in timeline["shards"]}
    assert all(a <= b for _, a, b in timeline["shards"]) and timeline["engine_close"] >= 0
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        generate(tiny_cfg(), tmp_path / "sched", scheduler=cluster.scheduler_address,
                 progress=False)  # fmt: skip
    ref = _tree_bytes(dataset)
    assert _tree_bytes(tmp_path / "two") == ref
    assert _tree_bytes(tmp_path / "sched") == ref


def test_kill_and_resume_is_byte_identical(dataset, tmp_path):
    out = tmp_path / "resumed"
    generate(tiny_cfg(), out, progress=False)
    # simulate a run killed mid-way: no manifest, one shard missing, a half-written temp file
    (out / "manifest.json").unlink()
    (out / "train-000001.tar").unlink()
    (out / "test-000000.tar.tmp").write_bytes(b"half a shard")
    with pytest.raises(ShardError, match="resume"):
        read_manifest(out)
    generate(tiny_cfg(), out, progress=False)
    assert _tree_bytes(out) == _tree_bytes(dataset)
    assert verify_dataset(out) == []


def test_cached_search_index_gives_the_same_bytes(dataset, tmp_path):
    """A run with the bank's search index already cached loads it (not rebuilt); a stale one is
    rebuilt and replaced. The same bytes as the first run either way."""
    (index,) = (dataset / ".cache").glob("*.npz.pca-tree")
    for case in ("cached", "stale"):
        out = tmp_path / case
        shutil.copytree(dataset / ".cache", out / ".cache")
        key = out / ".cache" / index.name / "key.json"
        if case == "stale":
            key.write_text(key.read_text().replace('"points": "', '"points": "0'))
        stamp = key.stat().st_mtime_ns
        generate(tiny_cfg(), out, progress=False)
        assert _tree_bytes(out) == _tree_bytes(dataset)
        assert (key.stat().st_mtime_ns == stamp) == (case == "cached")
        assert key.read_text() == (index / "key.json").read_text()


def test_seed_changes_the_data(dataset, tmp_path):
    generate(tiny_cfg(seed=1), tmp_path / "s1", progress=False)
    assert (tmp_path / "s1" / "train-000000.tar").read_bytes() != (
        dataset / "train-000000.tar"
    ).read_bytes()


def test_bad_inputs(tmp_path, dataset):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SeqhandError, match="empty|no readable|no image"):
        generate(tiny_cfg(backgrounds=str(empty)), tmp_path / "o1", progress=False)
    assert not (tmp_path / "o1" / "manifest.json").exists()
    bad_tpl = tmp_path / "tpl"
    bad_tpl.mkdir()
    (bad_tpl / "a.obj").write_text("v 0 0 0 1 1 1\n")  # wrong vertex count
    with pytest.raises(SeqhandError, match="a.obj"):
        generate(tiny_cfg(templates=str(bad_tpl)), tmp_path / "o2", progress=False)
    with pytest.raises(SeqhandError, match="no such file"):
        generate(tiny_cfg(poses=str(tmp_path / "nope.npz")), tmp_path / "o3", progress=False)
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(SeqhandError, match="not writable"):
            generate(tiny_cfg(), ro / "x", progress=False)
    with pytest.raises(SeqhandError, match="not writable"):
        generate(tiny_cfg(), "/proc/seqhand-test", progress=False)
    with pytest.raises(SeqhandError, match="different dataset"):
        generate(tiny_cfg(seed=5), dataset, progress=False)


def test_cli_generate_and_preview(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["generate", "--out", str(out), "--preset", "demo", "--num-sequences", "3",
                   "--num-test", "2", "--frames", "2", "--image-size", "48", "--bank-size",
                   "3000", "--theta-source", "bank", "--no-progress"])  # fmt: skip
    assert rc == 0 and "train: 3 sequences" in capsys.readouterr().out
    assert cli_main(["preview", str(out), "--num", "3"]) == 0
    assert (out / "preview.gif").stat().st_size > 0 and (out / "contact_sheet.png").is_file()
    assert cli_main(["preview", str(tmp_path / "missing")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err


def test_presets():
    p = preset("paper")
    assert (p.num_train, p.num_test, p.frames, p.image_size) == (40_000, 1_000, 10, 224)
    with pytest.raises(SeqhandError, match="unknown preset"):
        preset("huge")


def _decode_stored(a: dict):
    """The stored 26 numbers through the decoder, and the stored joints in the decoder's frame
    (camera-aligned, root-relative)."""
    import torch

    from seqhand.models import HandDecoder

    t = len(a["rot"])
    params = np.concatenate([a["scale"][:, None], a["trans"], a["rot"], a["theta_pca"],
                             np.broadcast_to(a["betas"], (t, 10))], 1)  # fmt: skip
    out = HandDecoder(None)(torch.from_numpy(params).double())
    rmat = Rotation.from_rotvec(a["rot"].astype(np.float64)).as_matrix()
    j3 = np.einsum("tij,tkj->tki", rmat, a["joints3d"].astype(np.float64))
    return out, j3 - j3[:, :1]


def test_stored_parameters_decode_to_the_stored_joints(dataset):
    """Reachable targets: the 26 stored numbers [s, t, r, theta_pca, beta] through the decoder
    (pose rebuilt from 10 PCA coefficients) give the rendered joints - 3D to 1e-6 m, 2D to
    1e-3 px - so a perfect network reaches 0 mm."""
    for s in read_sequences(dataset, "train"):
        out, j3 = _decode_stored(s["ann"])
        np.testing.assert_allclose(out.joints3d.numpy(), j3, atol=1e-6)
        np.testing.assert_allclose(out.joints2d.numpy(), s["ann"]["joints2d"], atol=1e-3)


def test_full_theta_rendering_misses_the_pca_targets(tmp_path):
    """render_pose="full" renders the encoder's 45-d theta; its 10-d code then misses the
    joints by millimetres (the floor that render_pose="pca" removes)."""
    cfg = tiny_cfg(theta_source="encoder", render_pose="full", num_train=3, num_test=0)
    generate(cfg, tmp_path / "full", progress=False)
    errs = []
    for s in read_sequences(tmp_path / "full", "train"):
        out, j3 = _decode_stored(s["ann"])
        errs.append(np.linalg.norm(out.joints3d.numpy() - j3, axis=-1).mean())
    assert np.mean(errs) > 5e-4  # more than half a millimetre per joint


def _authors_extent(a: dict) -> np.ndarray:
    """Per frame, the authors' extent of the rendered hand (gen_sequential_synth_data.py:
    ``max(umax - umin, vmax - vmin)`` of the posed, shaped vertices at MANO's root rotation
    (pi, 0, 0)). There u runs along the fingers and v along the palm's normal; in our canonical
    frame (the decoder's frame without the global rotation) those are the y and z axes."""
    import torch

    from seqhand.models import HandDecoder

    t = len(a["rot"])
    params = np.concatenate([a["scale"][:, None], a["trans"], np.zeros((t, 3)), a["theta_pca"],
                             np.broadcast_to(a["betas"], (t, 10))], 1)  # fmt: skip
    v = HandDecoder(None)(torch.from_numpy(params).double()).vertices3d.numpy()
    return np.maximum(np.ptp(v[..., 1], axis=1), np.ptp(v[..., 2], axis=1))


@pytest.mark.parametrize("hand_scale", ["posed", "nominal"])
def test_authors_scale_fills_the_frame_by_the_posed_hand(tmp_path, hand_scale):
    """The authors draw s = size / (U(1.7, 2.1) x extent) at both ends of a flow, with the
    extent of the hand as posed in the first and in the last frame, and move s 0.5/10 of the
    remaining gap a frame (per 10 frames). "nominal" keeps a fixed 0.2 m extent instead."""
    cfg = tiny_cfg(num_train=8, num_test=0, hand_scale=hand_scale)
    generate(cfg, tmp_path / "ds", progress=False)
    lo, hi = 1 / 2.1 - 1e-4, 1 / 1.7 + 1e-4
    fills = []
    for s in read_sequences(tmp_path / "ds", "train"):
        a = s["ann"]
        ext = _authors_extent(a) if hand_scale == "posed" else np.full(len(a["scale"]), 0.2)
        scale = a["scale"].astype(np.float64)
        share = 1 - (1 - 0.05 * 10 / cfg.frames) ** (cfg.frames - 1)
        end = scale[0] + (scale[-1] - scale[0]) / share  # the scale the flow moves towards
        fills += [scale[0] * ext[0] / cfg.image_size, end * ext[-1] / cfg.image_size]
    assert lo <= min(fills) and max(fills) <= hi, (min(fills), max(fills))
    assert np.ptp(fills) > 0.05  # U(1.7, 2.1) is drawn, not a constant


def test_a_folder_made_before_hand_scale_means_nominal():
    from seqhand.data.generate import config_difference

    assert config_difference({"seed": 0}, {"seed": 0, "hand_scale": "nominal"}) == []
    assert config_difference({"seed": 0}, {"seed": 0, "hand_scale": "posed"}) == [
        "hand_scale: 'nominal' in the folder, 'posed' asked"
    ]
