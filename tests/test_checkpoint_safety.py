"""Checkpoints are read with ``weights_only=True``: a crafted pickle payload is refused in one
line by every command that reads a checkpoint, and nothing in it runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seqhand.cli import main
from seqhand.models import build_model
from seqhand.training.checkpoint import CheckpointError, load_model, safe_load, save_model


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file proves that code ran."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(build_model("tiny"), tmp_path_factory.mktemp("ck") / "model.pt",
                      image_size=32)  # fmt: skip


def craft(good, path, marker):
    """A real model file with one extra entry that runs code when unpickled."""
    ck = torch.load(good, weights_only=True)
    ck["extra"] = _Payload(marker)
    torch.save(ck, path)
    return path


def test_good_model_loads(good):
    model, rec = load_model(good)
    assert rec["image_size"] == 32 and not model.training


def test_crafted_payload_is_refused_and_does_not_run(good, tmp_path):
    marker = tmp_path / "pwned"
    evil = craft(good, tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match="refused") as e:
        load_model(evil)
    assert "\n" not in str(e.value) and "io.open" in str(e.value)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        safe_load(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--checkpoint", "{evil}", "--dataset", "seqhand-test", "--data-root", "{tmp}",
         "--out", "{tmp}/ev"],
        ["export", "--checkpoint", "{evil}", "--onnx", "{tmp}/m.onnx"],
        ["infer", "{tmp}/frames", "--checkpoint", "{evil}", "--out", "{tmp}/inf", "--box", "0,0,8,8"],
        ["train", "--out", "{tmp}/run", "--resume", "{evil}", "--data", "{tmp}"],
        ["finetune", "--out", "{tmp}/ft", "--checkpoint", "{evil}", "--dataset", "freihand",
         "--data-root", "{tmp}"],
    ],
    ids=["evaluate", "export", "infer", "train-resume", "finetune"],
)  # fmt: skip
def test_every_command_refuses_the_payload(good, tmp_path, capsys, argv):
    marker = tmp_path / "pwned"
    evil = craft(good, tmp_path / "evil.pt", marker)
    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "frames" / "000.png")
    argv = [a.format(evil=evil, tmp=tmp_path) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "refused" in err, err
    assert not marker.exists()


def test_truncated_and_foreign_checkpoints_are_clean_errors(good, tmp_path):
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    ck = torch.load(good, weights_only=True)
    ck["state_dict"] = {k: v[..., :1] if v.ndim else v for k, v in ck["state_dict"].items()}
    torch.save(ck, tmp_path / "shapes.pt")
    ck2 = torch.load(good, weights_only=True)
    del ck2["state_dict"]
    torch.save(ck2, tmp_path / "nostate.pt")
    ck3 = torch.load(good, weights_only=True)
    ck3["model_spec"] = {"name": "no-such-model"}
    torch.save(ck3, tmp_path / "spec.pt")
    for name in ("trunc", "foreign", "list", "shapes", "nostate", "spec"):
        with pytest.raises(CheckpointError) as e:
            load_model(tmp_path / f"{name}.pt")
        assert "\n" not in str(e.value), name


def test_bad_resume_files_are_clean_errors(good, tmp_path, capsys):
    """Truncated, foreign (a model.pt) or mismatched resume files: one line, exit 2."""
    from robust_fixtures import write_fake_dataset

    data = write_fake_dataset(tmp_path / "ds", num_train=2, num_test=0)
    raw = good.read_bytes()
    (tmp_path / "trunc.ckpt").write_bytes(raw[: len(raw) // 3])
    (tmp_path / "text.ckpt").write_text("hello")
    for f, word in (("trunc.ckpt", "unreadable"), ("text.ckpt", "unreadable"),
                    (str(good), "not a training checkpoint")):  # fmt: skip
        rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--resume",
                   str(tmp_path / f)])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and word in err, err
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run2"), "--resume"])
    assert rc == 2 and "last.ckpt" in capsys.readouterr().err
