"""``train`` and ``finetune``: build everything from a resolved config and run Lightning.

Outputs in ``out_dir``: ``config.yaml`` (resolved), ``checkpoints/`` (``last.ckpt`` and every
``trainer.ckpt_every_n_steps``), ``logs/`` (CSV + TensorBoard), ``model.pt`` (final weights, a
:func:`seqhand.training.checkpoint.save_model` file) and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path

import torch

from seqhand.config import save_config
from seqhand.errors import SeqhandError
from seqhand.training.batch import sequence_item
from seqhand.training.checkpoint import CheckpointError, load_model, safe_load, save_model

log = logging.getLogger(__name__)


class SequenceTransform:
    """Picklable transform: decoded shard sample -> training item at ``image_size``."""

    def __init__(self, image_size: int, with_mask: bool = True) -> None:
        self.image_size, self.with_mask = image_size, with_mask

    def __call__(self, sample: dict) -> dict:
        return sequence_item(sample, self.image_size, self.with_mask)


def _history_csv_logger(out_dir: Path, keep_before_step: int):
    """Lightning's CSV logger, except that an existing ``logs/metrics.csv`` keeps its history
    (:class:`seqhand.training.csvlog.HistoryCSVLogger`; a module-level class, so that DDP's
    spawned processes can unpickle it)."""
    from seqhand.training.csvlog import HistoryCSVLogger

    return HistoryCSVLogger(out_dir, keep_before_step)


def native_bf16() -> bool:
    """Does this machine compute bfloat16 natively (a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX)? Elsewhere bf16 is emulated and slower than float32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return any(getattr(torch.cpu, f, lambda: False)()
               for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))  # fmt: skip


def resolve_precision(precision: str) -> tuple[str, bool]:
    """``trainer.precision`` -> (Lightning's precision, whether the backbone runs in bf16).

    ``"bf16-backbone"``: only the backbone under bfloat16 autocast (``HandRegressor.
    backbone_bf16``; the recurrent layer, head, hand layer and losses in float32), where the
    hardware computes bf16 natively (:func:`native_bf16`), else float32 (an info message: emulated
    bf16 would be slower than float32, so the fallback is part of the setting).
    ``"bf16-mixed"``: Lightning's autocast of the whole step, on a GPU only (float32 on a CPU,
    with a warning). Anything else goes to Lightning as it is."""
    precision = str(precision)
    if precision == "bf16-backbone":
        if native_bf16():
            return "32-true", True
        log.info("bf16-backbone: no native bfloat16 on this machine; the backbone runs in float32")
        return "32-true", False
    if "bf16" in precision and not torch.cuda.is_available():
        log.warning("bf16 mixed precision needs a GPU here; using 32-true on CPU")
        return "32-true", False
    return precision, False


def _trainer(cfg: dict, out_dir: Path, devices=None, num_nodes=None, progress: bool = True,
             start_step: int = 0, precision: str | None = None):  # fmt: skip
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    t = cfg["trainer"]
    devices = int(devices if devices is not None else t.get("devices", 1))
    num_nodes = int(num_nodes if num_nodes is not None else t.get("num_nodes", 1))
    accel = t.get("accelerator", "auto")
    strategy = "auto"
    if devices * num_nodes > 1:
        from lightning.pytorch.strategies import DDPStrategy

        cpu = accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())
        strategy = DDPStrategy(process_group_backend="gloo" if cpu else "nccl",
                               start_method="popen" if not cpu else "spawn")  # fmt: skip
    if precision is None:
        precision = resolve_precision(t.get("precision", "32-true"))[0]
    ckpt = ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=-1,
                           every_n_train_steps=int(t.get("ckpt_every_n_steps", 1000)),
                           filename="step{step:07d}", auto_insert_metric_name=False,
                           enable_version_counter=False)  # fmt: skip
    # enable_version_counter=False: a run folder that was copied or moved overwrites its own
    # last.ckpt instead of writing last-v1.ckpt beside a stale last.ckpt that the next
    # --resume would read.
    val_every = int(t.get("val_every_n_steps", 1000))
    return L.Trainer(
        max_steps=int(t["max_steps"]),
        max_epochs=-1,
        accelerator=accel,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        logger=[
            _history_csv_logger(out_dir, start_step),
            TensorBoardLogger(out_dir, name="logs", version=""),
        ],  # fmt: skip
        callbacks=[ckpt],
        val_check_interval=min(val_every, int(t["max_steps"])),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=int(t.get("log_every_n_steps", 50)),
        use_distributed_sampler=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        default_root_dir=out_dir,
        gradient_clip_val=t.get("gradient_clip_val", 1.0),
    )


def _training_clips(base, frames: int | None, d: dict, transform, seed: int = 0):
    """The training set: every window of ``data.clip_frames`` consecutive frames of the
    sequences of ``base`` (:class:`~seqhand.training.batch.SequenceClips`), or the whole
    sequences when ``clip_frames`` is null or not shorter than them (or the manifest does not
    say how long they are). With ``data.augment`` each clip is jittered first
    (:class:`~seqhand.training.augment.AugmentedSet`, seeded by ``trainer.seed`` and the index)."""
    from seqhand.training.augment import AugmentedSet, augment_from_config
    from seqhand.training.batch import SequenceClips

    aug = augment_from_config(d.get("augment"))
    inner = None if aug.active else transform
    clip = d.get("clip_frames")
    if not clip or not isinstance(frames, int) or int(clip) >= frames:
        base.transform = inner
        clips = base
    else:
        clips = SequenceClips(base, frames, int(clip), inner)
    return AugmentedSet(clips, aug, transform, seed) if aug.active else clips


def _datasets(cfg: dict, out_dir: Path):
    """The training and validation sets a config asks for: the SeqHAND shards at ``data.root``
    (``data.source: shards``, default) or sequences generated on the fly (``online``: the
    ``data.generate`` settings - ``preset`` plus GenerateConfig fields - with
    ``data.num_sequences`` training sequences, default ``max_steps x batch_size`` so that no
    sequence repeats; validation on the shards' ``val_split`` if ``data.root`` holds a dataset,
    else on ``data.val_sequences`` online test sequences)."""
    from seqhand.data.seqhand_dataset import SeqHandIndexed

    d = cfg["data"]
    tf = SequenceTransform(int(cfg["model"].get("image_size", 224)))
    seed = int(cfg["trainer"].get("seed", 0))
    source = d.get("source", "shards")
    if source not in ("shards", "online"):
        raise SeqhandError(f"data.source must be shards or online, got {source!r}")
    val_split = d.get("val_split")
    have_shards = bool(d.get("root")) and (Path(d["root"]) / "manifest.json").is_file()
    check = bool(d.get("verify", False))
    if source == "shards":
        if not d.get("root"):
            raise SeqhandError("no training data: give --data DIR (or set data.root)")
        train_set = SeqHandIndexed(d["root"], d.get("train_split", "train"), verify=check)
        if d.get("cache", False):
            from seqhand.training.batch import CachedSequences

            train_set = CachedSequences(train_set, tf.image_size)
        val_set = (SeqHandIndexed(d["root"], val_split, transform=tf, verify=check)
                   if val_split else None)  # fmt: skip
        frames = json.loads((Path(d["root"]) / "manifest.json").read_text()).get("frames")
        return _training_clips(train_set, frames, d, tf, seed), val_set
    from seqhand.data.generate import preset
    from seqhand.data.online import OnlineSequences

    gen = dict(d.get("generate") or {})
    gcfg = preset(gen.pop("preset", "demo"), **gen)
    n = d.get("num_sequences") or int(cfg["trainer"]["max_steps"]) * int(d["batch_size"])
    online = OnlineSequences(gcfg, "train", num_sequences=int(n), cache_dir=out_dir)
    train_set = _training_clips(online, gcfg.frames, d, tf, seed)
    if not val_split:
        return train_set, None
    if have_shards:
        return train_set, SeqHandIndexed(d["root"], val_split, transform=tf, verify=check)
    nval = int(d.get("val_sequences", 32))
    return train_set, OnlineSequences(gcfg, "test", num_sequences=nval, cache_dir=out_dir,
                                      transform=tf)  # fmt: skip


def check_resume(resume: str | None, out_dir: Path) -> tuple[str | None, int, dict | None]:
    """The checkpoint to resume from (``"last"``: the run's own ``last.ckpt``) after checking,
    safely, that it is a ``seqhand train`` checkpoint; returns ``(path or None, its step, its
    model spec)``."""
    if not resume:
        return None, 0, None
    if resume == "last":
        resume = str(out_dir / "checkpoints" / "last.ckpt")
        if not Path(resume).is_file():
            raise SeqhandError(f"{out_dir}: no checkpoints/last.ckpt to resume from")
    ck = safe_load(resume)
    if not (isinstance(ck, dict) and "seqhand" in ck and isinstance(ck.get("global_step"), int)
            and "loops" in ck and "optimizer_states" in ck):  # fmt: skip
        raise CheckpointError(
            f"{resume}: not a training checkpoint of seqhand train/finetune (a model.pt cannot "
            "be resumed: use it with finetune --checkpoint)"
        )
    spec = ck["seqhand"].get("model_spec") if isinstance(ck["seqhand"], dict) else None
    return str(resume), int(ck["global_step"]), spec


def train(cfg: dict, out_dir: str | os.PathLike, *, resume: str | None = None,
          init_checkpoint: str | None = None, train_set=None, val_set=None,
          devices=None, num_nodes=None, progress: bool = True) -> dict:  # fmt: skip
    """Train a model as configured; returns the summary dict (also written as summary.json).

    Args:
        cfg: resolved config. out_dir: run folder.
        resume: a Lightning checkpoint (or ``"last"``) to continue exactly (model, optimiser,
            scheduler, step, data position).
        init_checkpoint: a model file / checkpoint whose weights initialise the model (used by
            fine-tuning; the model spec must match).
        train_set / val_set: map-style datasets of training items; default: the SeqHAND shards
            at ``cfg.data.root``.
    """
    import lightning as L

    from seqhand.training.module import SeqHandDataModule, SeqHandModule

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SeqhandError(f"--out {out_dir}: a file is in the way; give a folder for the run")
    resume, start_step, resume_spec = check_resume(resume, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    L.seed_everything(int(cfg["trainer"].get("seed", 0)), workers=True, verbose=False)
    size = int(cfg["model"].get("image_size", 224))
    if train_set is None:
        train_set, val_set = _datasets(cfg, out_dir)
    model = None
    if init_checkpoint:
        model, _ = load_model(init_checkpoint)
        model.train()
    module = SeqHandModule(cfg, model=model)
    precision, module.model.backbone_bf16 = resolve_precision(
        cfg["trainer"].get("precision", "32-true")
    )
    if resume and resume_spec is not None and resume_spec != module.model.spec:
        raise CheckpointError(
            f"{resume}: holds model {resume_spec} but the config builds {module.model.spec}; "
            "resume with the run's own config.yaml (--config)"
        )
    dm = SeqHandDataModule(train_set, val_set, cfg)
    trainer = _trainer(cfg, out_dir, devices, num_nodes, progress, start_step, precision)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
    elapsed = time.time() - t0
    steps = int(trainer.global_step)
    last = out_dir / "checkpoints" / "last.ckpt"
    if steps == 0 and last.is_file():  # DDP spawn: the loops ran in the workers, not here
        ck = safe_load(last)
        steps = int(ck.get("global_step", 0))
    summary = {
        "steps": steps,
        "seconds": round(elapsed, 1),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "model": module.model.spec,
        "num_parameters": int(sum(p.numel() for p in module.model.parameters())),
    }
    if trainer.is_global_zero:
        save_model(module.model, out_dir / "model.pt", cfg, size)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
