"""``trainer.precision: bf16-backbone``: the backbone alone under bfloat16 autocast where the
hardware computes bf16 natively; the recurrent layer, head, hand layer and losses in float32.

References: float32 features of the same backbone (bf16 keeps 8 bits of mantissa, so a relative
error of a few 1e-3 per operation); the dtype a convolution actually computed in, read by a hook.
"""

from __future__ import annotations

import logging

import torch

from robust_fixtures import TINY_TRAIN, write_fake_dataset
from seqhand.cli import main
from seqhand.models import build_model
from seqhand.training import run as run_mod
from seqhand.training.checkpoint import load_model


def _dtypes_seen(model):
    """The output dtypes of the stem convolution and the head, per forward."""
    seen = []
    model.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(("stem", o.dtype)))
    model.head.register_forward_hook(lambda m, i, o: seen.append(("head", o.dtype)))
    return seen


def test_backbone_bf16_runs_the_backbone_only_in_bf16_and_returns_float32():
    torch.manual_seed(0)
    model = build_model("tiny", head_grid=3).eval()
    frames = torch.randn(2, 3, 3, 96, 96)
    with torch.no_grad():
        ref = model.encode_frames(frames)
        seen = _dtypes_seen(model)
        model.backbone_bf16 = True
        feats = model.encode_frames(frames)
        params, _ = model(frames)
    assert feats.dtype == torch.float32 and params.dtype == torch.float32
    assert ("stem", torch.bfloat16) in seen and ("head", torch.float32) in seen
    assert not torch.equal(feats, ref)  # it did compute in bf16
    rel = (feats - ref).norm() / ref.norm()
    assert rel < 0.05, rel  # the same function, rounded to bf16


def test_resolve_precision(monkeypatch, caplog):
    monkeypatch.setattr(run_mod, "native_bf16", lambda: True)
    assert run_mod.resolve_precision("bf16-backbone") == ("32-true", True)
    monkeypatch.setattr(run_mod, "native_bf16", lambda: False)
    with caplog.at_level(logging.INFO):
        assert run_mod.resolve_precision("bf16-backbone") == ("32-true", False)
    assert "no native bfloat16 on this machine" in caplog.text
    assert run_mod.resolve_precision("32-true") == ("32-true", False)
    if not torch.cuda.is_available():
        assert run_mod.resolve_precision("bf16-mixed") == ("32-true", False)


def test_training_with_bf16_backbone(tmp_path, monkeypatch):
    """The trainer turns it on for the run (emulated where the CPU has no bf16: slow, not
    wrong), and the saved model loads in float32 with the flag off."""
    monkeypatch.setattr(run_mod, "native_bf16", lambda: True)
    from seqhand.training.module import SeqHandModule

    seen = []
    original = SeqHandModule.training_step

    def spy(self, batch, idx):
        seen.append(self.model.backbone_bf16)
        return original(self, batch, idx)

    monkeypatch.setattr(SeqHandModule, "training_step", spy)
    data = write_fake_dataset(tmp_path / "data", num_train=4, num_test=0, frames=3)
    sets = [a for o in [*TINY_TRAIN, "trainer.max_steps=2", "data.val_split=null",
                        "trainer.precision=bf16-backbone"] for a in ("--set", o)]  # fmt: skip
    args = ["train", "--config", "tiny", *sets, "--data", str(data), "--out", str(tmp_path / "r"),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert seen == [True, True]
    model, _ = load_model(tmp_path / "r" / "model.pt")
    assert model.backbone_bf16 is False
    assert all(p.dtype == torch.float32 for p in model.parameters())
