"""The Lightning module and data module of ``seqhand train`` / ``seqhand finetune``.

One module trains every variant on every data source: it decodes the network's 26 parameters
through the hand layer and applies :class:`seqhand.losses.SeqHandLoss` (Eq. 14 on SeqHAND,
Eq. 15 on real data). Fine-tuning ``Train_C`` freezes the recurrent layer (its parameters get
no gradient and are not given to the optimiser, so they stay bit-identical).
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from seqhand.errors import SeqhandError
from seqhand.evaluation.metrics import pck_from_errors, pck_thresholds
from seqhand.losses import LossWeights, SeqHandLoss
from seqhand.models import HandDecoder, build_model
from seqhand.training.batch import collate
from seqhand.training.checkpoint import model_record
from seqhand.training.optim import build_optimizer
from seqhand.training.sampler import StepSampler


class NonFiniteLossError(SeqhandError):
    """A loss became NaN/inf: the run stops before the checkpoint is overwritten."""


class SeqHandModule(L.LightningModule):
    """Args: cfg - the resolved config dict (sections model, loss, optim, trainer, finetune)."""

    def __init__(self, cfg: dict, model=None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": cfg})
        self.cfg = cfg
        m = cfg["model"]
        self.model = (
            model
            if model is not None
            else build_model(
                m["name"], backbone_weights=m.get("backbone_weights"), **(m.get("kwargs") or {})
            )
        )
        # Convolutions in channels-last memory format: the same function, 1.21x faster per
        # training step of the tiny preset on a 2-core CPU (benchmarks/memory_format.py).
        self.model.to(memory_format=torch.channels_last)
        self.decoder = HandDecoder(m.get("hand_model") or None)
        self.loss_fn = SeqHandLoss(LossWeights(**cfg.get("loss", {})))
        self.image_size = int(m.get("image_size", 224))
        if cfg.get("finetune", {}).get("freeze_recurrent", False):
            for p in self.model.recurrent_parameters():
                p.requires_grad_(False)

    # ---------------------------------------------------------------------------------------
    def forward(self, frames, state=None):
        return self.model(frames, state)

    def _step(self, batch: dict):
        params, rotmat, _ = self.model.forward_full(batch["frames"])
        decoded = self.decoder(params, rotmat)
        targets = {k: v for k, v in batch.items() if k != "frames"}
        out = self.loss_fn(params, decoded, targets, image_hw=tuple(batch["frames"].shape[-2:]),
                           rotmat=rotmat)  # fmt: skip
        return params, decoded, out

    def training_step(self, batch, batch_idx):
        _, _, out = self._step(batch)
        if not torch.isfinite(out.total):
            bad = [k for k, v in out.terms.items() if not torch.isfinite(v)]
            raise NonFiniteLossError(
                f"non-finite loss at step {self.global_step} (terms {bad}); stopped before "
                "writing a checkpoint - lower optim.lr or check the data"
            )
        bs = batch["frames"].shape[0]
        self.log("train/loss", out.total, prog_bar=True, batch_size=bs)
        for k, v in out.weighted.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return out.total

    def on_validation_epoch_start(self) -> None:
        self._val_err3d, self._val_err2d = [], []

    def validation_step(self, batch, batch_idx):
        _, decoded, out = self._step(batch)
        gt3 = batch["joints3d"] - batch["joints3d"][..., :1, :]
        e3 = torch.linalg.norm(decoded.joints3d - gt3, dim=-1) * 1000.0  # mm
        e2 = torch.linalg.norm(decoded.joints2d - batch["joints2d"], dim=-1)
        self._val_err3d.append(e3.reshape(-1, 21).cpu().numpy())
        self._val_err2d.append(e2.reshape(-1, 21).cpu().numpy())
        self.log("val/loss", out.total, batch_size=batch["frames"].shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if not self._val_err3d:
            return
        e3 = np.concatenate(self._val_err3d)
        e2 = np.concatenate(self._val_err2d)
        pck = pck_from_errors(e3, np.ones_like(e3, dtype=bool), pck_thresholds("paper"))
        self.log("val/epe3d_mm", float(e3.mean()), prog_bar=True, sync_dist=True)
        self.log("val/epe2d_px", float(e2.mean()), sync_dist=True)
        self.log("val/auc_20_50", float(pck.auc), sync_dist=True)

    # ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.cfg.get("optim", {})
        opt = build_optimizer(self.model, o.get("name", "adamw"), float(o.get("lr", 1e-4)),
                              float(o.get("weight_decay", 0.0)))  # fmt: skip
        total = int(self.cfg["trainer"]["max_steps"])
        warm = int(o.get("warmup_steps", 0))
        kind = o.get("scheduler", "cosine")

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / max(1, warm)
            if kind == "constant":
                return 1.0
            prog = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, prog)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["seqhand"] = model_record(self.model, self.cfg, self.image_size)


class SeqHandDataModule(L.LightningDataModule):
    """Wraps a map-style training set and a validation set with a resumable step sampler.

    Args:
        train_set / val_set: map-style datasets yielding training items (see training.batch).
        cfg: the resolved config (data.batch_size, data.num_workers, trainer.max_steps, seed).
    """

    def __init__(self, train_set, val_set, cfg: dict) -> None:
        super().__init__()
        self.train_set, self.val_set, self.cfg = train_set, val_set, cfg

    def train_dataloader(self):
        d, t = self.cfg["data"], self.cfg["trainer"]
        trainer = self.trainer
        start = trainer.global_step if trainer is not None else 0
        sampler = StepSampler(
            len(self.train_set), int(d["batch_size"]), seed=int(t.get("seed", 0)),
            start_step=start, max_steps=int(t["max_steps"]),
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            epoch_offsets=getattr(self.train_set, "epoch_offsets", False),
        )  # fmt: skip
        nw = int(d.get("num_workers", 0))
        return DataLoader(self.train_set, batch_size=int(d["batch_size"]), sampler=sampler,
                          num_workers=nw, collate_fn=collate, persistent_workers=False,
                          pin_memory=False, prefetch_factor=4 if nw else None)  # fmt: skip

    def val_dataloader(self):
        if self.val_set is None:
            return []
        d = self.cfg["data"]
        n = min(len(self.val_set), int(d.get("val_sequences", len(self.val_set))))
        return DataLoader(Subset(self.val_set, range(n)), batch_size=int(d["batch_size"]),
                          num_workers=int(d.get("num_workers", 0)), collate_fn=collate)  # fmt: skip
