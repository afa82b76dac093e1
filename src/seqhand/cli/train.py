"""``seqhand train`` (pre-training on SeqHAND shards, Eq. 14) and ``seqhand finetune``
(synthetic-to-real on real datasets, Eq. 15, ConvLSTM frozen for Train_C)."""

from __future__ import annotations

from pathlib import Path


def _common(p) -> None:
    p.add_argument("--config", default="tiny",
                   help="a YAML file, or a preset: tiny (SeqHAND-Net on a small 4-block ResNet, 96 "
                   "px, CPU minutes; make demo) or paper (ResNet-50 SeqHAND-Net at 224 px, the paper's "
                   "schedule; a GPU); default tiny. The presets are in seqhand/presets/*.yaml")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set optim.lr=3e-4 (repeatable)")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder (config, checkpoints, logs, model.pt)")
    p.add_argument("--devices", type=int, default=None, help="devices per node (DDP if > 1)")
    p.add_argument("--num-nodes", type=int, default=None, help="nodes (DDP)")
    p.add_argument("--resume", nargs="?", const="last", default=None,
                   help="continue exactly from a checkpoint (default: the run's last.ckpt)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser("train", help="train SeqHAND-Net (or a Table 2 variant) on SeqHAND shards")
    _common(p)
    p.add_argument("--data", default=None, help="dataset folder (overrides data.root)")
    p.add_argument("--verify-data", action="store_true",
                   help="check every shard's sha256 and count first (data.verify=true)")  # fmt: skip
    p.set_defaults(func=_train)

    f = sub.add_parser("finetune", help="fine-tune a trained model on real images (Eq. 15)")
    _common(f)
    f.add_argument("--checkpoint", required=True, help="pre-trained model (model.pt or .ckpt)")
    f.add_argument("--dataset", required=True, type=_datasets,
                   help="real training data, e.g. freihand, stb, rhd or freihand+stb (the "
                   "paper's FH + STB); each image is a one-frame sequence")  # fmt: skip
    f.add_argument("--data-root", default=None, help="dataset root (default: $SEQHAND_DATA/...)")
    f.add_argument("--mode", choices=["train_c", "train"], default="train_c",
                   help="train_c: ConvLSTM frozen (the paper's Train_C); train: all layers")  # fmt: skip
    f.set_defaults(func=_finetune)


def _datasets(text: str) -> str:
    import argparse

    names = text.split("+")
    bad = [n for n in names if n not in ("freihand", "stb", "rhd")]
    if bad or not all(names):
        raise argparse.ArgumentTypeError(
            f"unknown dataset(s) {bad or [text]}: use freihand, stb, rhd, joined with '+'"
        )
    return text


def _train(args) -> int:
    from seqhand.config import load_config
    from seqhand.training.run import train

    overrides = list(args.overrides)
    if args.verify_data:
        overrides.append("data.verify=true")
    cfg = load_config(args.config, overrides)
    if args.data:  # a path, not YAML (a folder named 123 or yes stays a string)
        cfg.setdefault("data", {})["root"] = str(args.data)
    summary = train(cfg, Path(args.out), resume=args.resume, devices=args.devices,
                    num_nodes=args.num_nodes, progress=not args.no_progress)  # fmt: skip
    _print_summary(summary, args.out)
    return 0


def _finetune(args) -> int:
    from seqhand.config import load_config
    from seqhand.training.real import finetune

    cfg = load_config(args.config, args.overrides)
    summary = finetune(cfg, Path(args.out), checkpoint=args.checkpoint, dataset=args.dataset,
                       data_root=args.data_root, freeze_recurrent=args.mode == "train_c",
                       resume=args.resume, devices=args.devices, num_nodes=args.num_nodes,
                       progress=not args.no_progress)  # fmt: skip
    _print_summary(summary, args.out)
    return 0


def _print_summary(summary: dict, out) -> None:
    m = summary.get("metrics", {})
    extra = "".join(f", {k}={m[k]:.3f}" for k in ("val/epe3d_mm", "val/epe2d_px") if k in m)
    print(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s{extra}; "
          f"model: {Path(out) / 'model.pt'}")  # fmt: skip
