"""``seqhand train --resume`` is exact from any step (early, middle, late), in a run folder that
was copied elsewhere (training on augmented frame windows, ``data.clip_frames`` and
``data.augment``), and the run's
``logs/metrics.csv`` keeps its history."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch

from robust_fixtures import TINY_TRAIN, write_fake_dataset
from seqhand.cli import main
from seqhand.training.sampler import StepSampler

STEPS = 6


def run_args(data, out, *extra):
    sets = [a for o in [*TINY_TRAIN, f"trainer.max_steps={STEPS}", "data.val_split=null",
                        "data.clip_frames=2",  # 3-frame sequences: training on 2-frame windows
                        "data.augment={roll_deg: 20, zoom: 0.1, shift: 0.05, color: 0.5}"]
            for a in ("--set", o)]  # fmt: skip
    return ["train", "--config", "tiny", *sets, "--data", str(data), "--out", str(out),
            "--no-progress", *extra]  # fmt: skip


def tensors(obj, prefix=""):
    """Every tensor of a nested checkpoint structure, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for k, v in enumerate(obj):
            out.update(tensors(v, f"{prefix}/{k}"))
    return out


def metrics_rows(run):
    with open(run / "logs" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = write_fake_dataset(root / "data", num_train=8, num_test=0, frames=3)
    out = root / "full"
    assert main(run_args(data, out)) == 0
    return data, out


def test_sampler_length_does_not_depend_on_the_start_step():
    """Lightning restores the in-epoch batch counter on resume: the epoch must stay as long as
    the whole run, whatever the start step, or it ends early and replays batches."""
    full_len = len(StepSampler(10, 2, max_steps=40))
    for start in (0, 5, 15, 25, 39):
        s = StepSampler(10, 2, start_step=start, max_steps=40)
        assert len(s) == full_len
        assert list(s) == list(StepSampler(10, 2, max_steps=40))[start * 2 :]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("k", [1, 3, 5], ids=["early", "middle", "late"])
def test_resume_is_exact_in_a_copied_run_folder(full, tmp_path, k):
    data, ref = full
    run = tmp_path / "copied"
    shutil.copytree(ref, run)  # a run folder moved/copied elsewhere, "killed" at step k
    ck = run / "checkpoints"
    for p in ck.glob("step*.ckpt"):
        if int(p.stem[4:]) > k:
            p.unlink()
    shutil.copy(ck / f"step{k:07d}.ckpt", ck / "last.ckpt")
    (run / "model.pt").unlink()
    assert main(run_args(data, run, "--resume")) == 0
    assert sorted(p.name for p in ck.iterdir()) == sorted(
        p.name for p in (ref / "checkpoints").iterdir()
    )
    a = tensors(torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True))
    b = tensors(torch.load(ck / "last.ckpt", weights_only=True))
    assert a.keys() == b.keys() and len(a) > 50
    assert [n for n in a if not torch.equal(a[n], b[n])] == []
    ma = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
    mb = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    assert [n for n in ma if not torch.equal(ma[n], mb[n])] == []
    # the log keeps the rows before step k and gets the same rows after it
    assert metrics_rows(run) == metrics_rows(ref)


def test_resume_twice_reads_the_newest_checkpoint(full, tmp_path):
    """A second --resume in a copied folder continues from the newest state (no stale
    last.ckpt beside a last-v1.ckpt)."""
    data, ref = full
    run = tmp_path / "again"
    shutil.copytree(ref, run)
    ck = run / "checkpoints"
    for p in ck.glob("step*.ckpt"):
        if int(p.stem[4:]) > 4:
            p.unlink()
    shutil.copy(ck / "step0000004.ckpt", ck / "last.ckpt")
    args = run_args(data, run, "--resume")
    args[args.index(f"trainer.max_steps={STEPS}")] = "trainer.max_steps=5"
    assert main(args) == 0
    assert not list(ck.glob("last-v*.ckpt"))
    assert torch.load(ck / "last.ckpt", weights_only=True)["global_step"] == 5


def test_resume_with_another_model_is_refused(full, tmp_path, capsys):
    data, ref = full
    args = run_args(data, tmp_path / "other", "--resume", str(ref / "checkpoints" / "last.ckpt"))
    args[args.index("--data") : args.index("--data")] = ["--set", "model.name=resnet18_convlstm"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tiny" in err and "resnet18_convlstm" in err
