"""``seqhand demo``: the main job on the built-in defaults (no downloads, no licence, no GPU)."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job end to end on the built-in defaults")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--hand-model", default=None, help="a MANO .pkl/.npz to show beside ours")
    p.add_argument("--train-steps", type=int, default=None, help="training steps (default: preset)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests)")
    p.add_argument("--workers", type=int, default=2, help="generation processes")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    from seqhand.demo import run_demo

    run_demo(
        Path(args.out),
        hand_model=args.hand_model,
        quick=args.quick,
        train_steps=args.train_steps,
        workers=args.workers,
    )
    return 0
