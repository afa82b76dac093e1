"""The joints->theta encoder: canonical frames, tiny training, resuming, files, shipped model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqhand.cli import main
from seqhand.hand import HandLayer, load_asset
from seqhand.synth.bank import bank_from_prior, canonicalize
from seqhand.synth.encoder import (
    BUILTIN_ENCODER,
    EncoderConfig,
    EncoderError,
    JointsToPose,
    canonical_placement,
    canonicalize_torch,
    evaluate_encoder,
    load_builtin_encoder,
    load_encoder,
    pose_angle_error,
    rest_joints_digest,
    save_encoder,
    train_encoder,
)

TINY = EncoderConfig(hidden=64, steps=60, batch=128, warmup=10, checkpoint_every=20)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: fastest (and bit-reproducible) on one thread
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bank():
    return bank_from_prior(None, 4000, seed=21)


def test_canonicalize_torch_equals_numpy(bank):
    rng = np.random.default_rng(0)
    j = bank.joints[:20].astype(np.float64) + rng.normal(scale=0.01, size=(20, 21, 3))
    got = canonicalize_torch(torch.as_tensor(j)).numpy()
    np.testing.assert_allclose(got, canonicalize(j), atol=1e-6)


def test_canonical_placement_puts_the_layer_in_the_bank_frame(bank):
    layer = HandLayer(load_asset(None), pose_origin="flat", dtype=torch.float64)
    betas = torch.as_tensor(np.random.default_rng(1).uniform(-2, 2, (4, 10)))
    go, transl = canonical_placement(layer, betas)
    pose = torch.as_tensor(bank.poses[:4].astype(np.float64))
    placed = layer(go, pose, betas, transl).joints.numpy()
    raw = layer(hand_pose=pose, betas=betas).joints.numpy()
    np.testing.assert_allclose(placed, canonicalize(raw), atol=1e-6)
    # With the mean shape this reproduces the bank's own joints.
    go0, tr0 = canonical_placement(layer)
    j0 = layer(go0.expand(4, 3), pose, None, tr0.expand(4, 3)).joints.numpy()
    np.testing.assert_allclose(j0, bank.joints[:4], atol=2e-6)


def test_tiny_training_reduces_the_error(bank, tmp_path):
    untrained = evaluate_encoder(JointsToPose(64), bank, np.arange(200))
    model, rep = train_encoder(bank, config=TINY, progress=False)
    assert rep["mpjpe_mm"] < 0.6 * untrained["mpjpe_mm"]
    assert rep["mpjpe_mm"] < 25.0  # 60 steps of a 64-wide MLP: only a sanity bound
    assert {"pose_angle_deg", "tip_mpjpe_mm", "count", "train_size"} <= set(rep)
    assert rep["count"] == 80 and rep["train_size"] == 3920  # 2 % held out


def test_resuming_equals_an_uninterrupted_run(bank, tmp_path):
    full, _ = train_encoder(bank, config=TINY, progress=False)
    ckpt = tmp_path / "enc.ckpt"
    train_encoder(bank, config=TINY, checkpoint=ckpt, progress=False, stop_after=25)
    assert ckpt.is_file()
    resumed, _ = train_encoder(bank, config=TINY, checkpoint=ckpt, progress=False)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    other = EncoderConfig(**{**TINY.__dict__, "lr": 5e-4})
    with pytest.raises(EncoderError, match="another config"):
        train_encoder(bank, config=other, checkpoint=ckpt, progress=False)


def test_file_round_trip(tmp_path):
    model = JointsToPose(32)
    path = save_encoder(model, tmp_path / "e.pt", {"note": "x"})
    back, meta = load_encoder(path)
    assert meta["note"] == "x" and meta["hidden"] == 32
    x = torch.randn(3, 21, 3) * 0.05
    torch.testing.assert_close(back(x), model(x))
    with pytest.raises(EncoderError, match="no such encoder"):
        load_encoder(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(EncoderError, match="not a readable"):
        load_encoder(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match=r"\(B, 21, 3\)"):
        model(torch.zeros(2, 63))


def test_pose_angle_error():
    a = np.zeros((2, 45))
    b = np.zeros((2, 45))
    b[0, 3:6] = [0.0, 0.0, 0.5]
    err = pose_angle_error(a, b)
    assert err.shape == (2, 15)
    np.testing.assert_allclose(err[0, 1], 0.5)
    assert err.sum() == pytest.approx(0.5)


def test_shipped_encoder_on_fresh_prior_poses():
    """The packaged encoder on poses it was not trained on (another seed of the prior): the
    issue's bound is < 5 mm mean per joint."""
    assert BUILTIN_ENCODER.is_file() and BUILTIN_ENCODER.stat().st_size < 5e6
    model, meta = load_builtin_encoder()
    # The skeleton fingerprint is a hash of floats rounded to 1 um: it is not stable across
    # machines (it differs on an AVX2-only machine), so the test checks what the fingerprint
    # stands for - the encoder fits this machine's built-in hand (0.094 mm there).
    assert len(meta["rest_joints_sha256"]) == len(rest_joints_digest(load_asset(None))) == 64
    fresh = bank_from_prior(None, 3000, seed=987_654)
    rep = evaluate_encoder(model, fresh)
    assert rep["mpjpe_mm"] < 5.0
    assert rep["mpjpe_mm"] <= meta["report"]["mpjpe_mm"] * 1.5 + 0.5  # as documented


def test_cli_fit_encoder(tmp_path, bank, capsys):
    bank.save(tmp_path / "b.npz")
    out = tmp_path / "e.pt"
    args = ["poses", "fit-encoder", str(tmp_path / "b.npz"), "--out", str(out), "--steps", "30",
            "--batch", "64", "--hidden", "32", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "held-out joint error" in text and "pose-parameter error" in text
    model, meta = load_encoder(out)
    assert meta["config"]["steps"] == 30 and meta["report"]["count"] == 80
    assert (tmp_path / "e.pt.ckpt").is_file()
    assert main(args) == 0  # resumes from the finished checkpoint: nothing left to do
    assert "resuming from" in capsys.readouterr().out
    assert json.loads(json.dumps(meta))  # metadata is plain JSON
