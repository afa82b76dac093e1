"""Distributed data parallel training: a real 2-process CPU (gloo) run, plus fast checks of the
rank-aware pieces (sampler partition, strategy selection)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_fixtures import write_freihand
from seqhand.config import load_config
from seqhand.models import build_model
from seqhand.training.checkpoint import save_model
from seqhand.training.sampler import StepSampler


def test_sampler_ranks_partition_each_epoch():
    """Two ranks draw disjoint items that together cover each epoch's permutation, and a
    restart at step k yields what the uninterrupted stream yields from step k."""
    n, b, steps = 24, 3, 8  # 2 ranks x 3 items x 8 steps = 2 epochs
    per_rank = [list(StepSampler(n, b, seed=5, max_steps=steps, rank=r, world_size=2))
                for r in range(2)]  # fmt: skip
    stream = []
    for k in range(steps):
        for r in range(2):
            stream += per_rank[r][k * b : (k + 1) * b]
    for e in range(2):
        epoch = stream[e * n : (e + 1) * n]
        assert sorted(epoch) == list(range(n))
    assert stream[:n] != stream[n:]  # a new permutation per epoch
    resumed = list(StepSampler(n, b, seed=5, start_step=5, max_steps=steps, rank=1, world_size=2))
    assert resumed == per_rank[1][5 * b :]


def test_two_devices_on_cpu_select_gloo_ddp(tmp_path):
    from lightning.pytorch.strategies import DDPStrategy

    from seqhand.training.run import _trainer

    cfg = load_config("tiny", ["trainer.max_steps=2"])
    trainer = _trainer(cfg, tmp_path, devices=2, num_nodes=1, progress=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._process_group_backend == "gloo"
    assert trainer.num_devices == 2 and trainer.world_size == 2


@pytest.mark.timeout(300)
def test_two_process_gloo_finetune(tmp_path):
    """``finetune(devices=2)`` spawns two CPU processes (gloo), trains, and writes the model
    of rank 0; the frozen ConvLSTM stays bit-identical under DDP too."""
    from seqhand.training.real import finetune

    write_freihand(tmp_path / "fh", n=2, n_eval=1)
    torch.manual_seed(0)
    ckpt = save_model(build_model("tiny"), tmp_path / "pre.pt", image_size=64)
    overrides = ["data.batch_size=2", "data.num_workers=0", "data.val_sequences=2",
                 "trainer.max_steps=2", "trainer.val_every_n_steps=2",
                 "trainer.ckpt_every_n_steps=2", "trainer.log_every_n_steps=1"]  # fmt: skip
    cfg = load_config("tiny", overrides)
    out = tmp_path / "ddp"
    summary = finetune(cfg, out, checkpoint=ckpt, dataset="freihand", data_root=tmp_path / "fh",
                       devices=2, progress=False)  # fmt: skip
    assert summary["steps"] == 2
    assert np.isfinite(summary["metrics"]["train/loss"])
    model = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2
    for k, v in model.items():  # model.pt holds the trained weights of the workers
        assert torch.equal(v, last["state_dict"]["model." + k]), k
    before = torch.load(ckpt, weights_only=False)["state_dict"]
    assert not torch.equal(before["head.out.weight"], model["head.out.weight"])
    for k in (k for k in before if k.startswith("convlstm.")):
        assert torch.equal(before[k], model[k]), k
