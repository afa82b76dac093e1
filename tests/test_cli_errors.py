"""The remaining bad inputs of issue 12: one-line errors with exit status 2, nothing
half-written under a final name, and suspicious inputs converted correctly or warned about."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import write_freihand
from robust_fixtures import write_fake_dataset
from seqhand.cli import main
from seqhand.models import build_model
from seqhand.training.checkpoint import save_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(build_model("tiny"), tmp_path_factory.mktemp("m") / "m.pt", image_size=32)


def one_line_error(capsys, rc):
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "error:" in err, err
    return err


@pytest.fixture
def frames(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for k in range(2):
        Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(d / f"{k}.png")
    return d


def test_out_that_is_a_file(ckpt, tmp_path, frames, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    ds = write_fake_dataset(tmp_path / "ds", num_train=2, num_test=2, shard_size=2)
    cases = [
        ["train", "--data", str(ds), "--out", str(f), "--set", "trainer.max_steps=1"],
        ["evaluate", "--checkpoint", str(ckpt), "--dataset", "seqhand-test", "--data-root",
         str(ds), "--out", str(f)],
        ["infer", str(frames), "--checkpoint", str(ckpt), "--out", str(f), "--box", "0,0,8,8"],
    ]  # fmt: skip
    for argv in cases:
        err = one_line_error(capsys, main(argv))
        assert str(f) in err
    assert f.read_text() == "x"


def test_export_onto_a_folder_or_unwritable_path(ckpt, tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.mkdir()
    one_line_error(capsys, main(["export", "--checkpoint", str(ckpt), "--onnx", str(target),
                                 "--no-check"]))  # fmt: skip
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".*.tmp")) == []
    one_line_error(capsys, main(["export", "--checkpoint", str(ckpt), "--onnx",
                                 "/proc/seqhand/m.onnx", "--no-check"]))  # fmt: skip


@pytest.mark.parametrize("fps", ["-5", "0", "nan"])
def test_infer_bad_fps(ckpt, tmp_path, frames, capsys, fps):
    out = tmp_path / "inf"
    rc = main(["infer", str(frames), "--checkpoint", str(ckpt), "--out", str(out), "--box",
               "0,0,8,8", "--fps", fps])  # fmt: skip
    assert "--fps" in one_line_error(capsys, rc)
    assert not out.exists() or not any(out.iterdir())


GEN = ["generate", "--preset", "demo", "--num-sequences", "2", "--num-test", "0", "--frames", "2",
       "--no-progress"]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--seed", "-1"], "seed"),
        (["--image-size", "100000"], "image_size"),
        (["--frames", "0"], "frames"),
        (["--shard-size", "0"], "shard_size"),
        (["--bank-size", "0"], "bank_size"),
        (["--alpha", "-1"], "alpha"),
    ],
)
def test_generate_bad_numbers(tmp_path, capsys, extra, word):
    out = tmp_path / "g"
    assert word in one_line_error(capsys, main([*GEN, "--out", str(out), *extra]))
    assert not list(out.glob("*.tar")) if out.exists() else True


def test_generate_raw_npy_as_poses(tmp_path, capsys):
    np.save(tmp_path / "joints.npy", np.zeros((10, 21, 3), np.float32))
    (tmp_path / "text.npz").write_text("not a zip")
    for name in ("joints.npy", "text.npz"):
        err = one_line_error(capsys, main([*GEN, "--out", str(tmp_path / "g"), "--poses",
                                           str(tmp_path / name)]))  # fmt: skip
        assert name in err


def test_generate_unreachable_scheduler(tmp_path, capsys, monkeypatch):
    import seqhand.data.generate as gen

    monkeypatch.setattr(gen, "SCHEDULER_TIMEOUT", "1s")
    monkeypatch.setattr(gen, "ensure_bank", lambda cfg, out, progress=False: tmp_path / "b.npz")
    err = one_line_error(capsys, main([*GEN, "--out", str(tmp_path / "g"), "--scheduler",
                                       "tcp://127.0.0.1:9"]))  # fmt: skip
    assert "scheduler" in err


@pytest.mark.parametrize(
    "array",
    [np.array([["a"] * 3] * 21), np.full((4, 21, 3), np.nan), np.zeros((0, 21, 3))],
    ids=["strings", "all-nan", "empty"],
)
def test_poses_build_from_a_bad_array(tmp_path, capsys, array):
    src = tmp_path / "j.npy"
    np.save(src, array)
    out = tmp_path / "bank.npz"
    rc = main(["poses", "build", "--source", "array", "--input", str(src), "--out", str(out)])
    one_line_error(capsys, rc)
    assert not out.exists()


def test_nan_in_benchmark_ground_truth_is_not_a_coordinate(tmp_path):
    from seqhand.evaluation.real import real_sequences

    write_freihand(tmp_path / "fh", n=2, n_eval=2)
    p = tmp_path / "fh" / "evaluation_xyz.json"
    xyz = json.loads(p.read_text())
    xyz[0][5][1] = float("nan")
    p.write_text(json.dumps(xyz))
    seqs, _ = real_sequences("freihand", tmp_path / "fh", 32)
    frames = [f for _, fs in seqs for f in fs]
    assert not frames[0].valid[5] and frames[0].valid.sum() == 20
    assert frames[1].valid.all()


def test_16_bit_and_float_frames_are_scaled(tmp_path):
    from seqhand.inference.video import open_frames

    d = tmp_path / "deep"
    d.mkdir()
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(d / "0.png")  # mid grey, 16-bit
    Image.fromarray(np.full((8, 8), 0.25, np.float32), mode="F").save(d / "1.tif")  # [0, 1]
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(d / "2.png")
    got = [f for _, f in open_frames(str(d))]
    assert [int(f[0, 0, 0]) for f in got] == [128, 64, 200]


def test_onnx_from_another_checkpoint_is_warned_about(ckpt, tmp_path, caplog):
    from seqhand.inference.export import export_onnx
    from seqhand.inference.predictor import Predictor

    torch.manual_seed(1)
    other = build_model("tiny")
    onnx = export_onnx(other, tmp_path / "other.onnx", 32)
    with caplog.at_level(logging.WARNING):
        Predictor.from_checkpoint(str(ckpt), runtime="onnx", onnx=str(onnx))
    assert any("other.onnx" in r.message and "weights" in r.message for r in caplog.records)
    caplog.clear()
    from seqhand.training.checkpoint import load_model

    same = export_onnx(load_model(ckpt)[0], tmp_path / "same.onnx", 32)
    with caplog.at_level(logging.WARNING):
        Predictor.from_checkpoint(str(ckpt), runtime="onnx", onnx=str(same))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
