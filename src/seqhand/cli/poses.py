"""``seqhand poses build|stats|flows|fit-encoder``: pose banks, flows, the joints->theta MLP."""

from __future__ import annotations

import json
from pathlib import Path

from seqhand.errors import SeqhandError

_MODEL_HELP = "MANO .pkl or converted .npz asset (default: the built-in hand)"


def register(sub) -> None:
    p = sub.add_parser("poses", help="pose banks, pose flows and the joints->theta encoder")
    psub = p.add_subparsers(dest="poses_command", metavar="ACTION", required=True)

    b = psub.add_parser(
        "build",
        help="write a pose bank (.npz) + summary stats (.json) from BigHand, an array or the prior",
        description="Write a pose bank: 21 joints per pose, metres, the project's joint order. "
        "Example: seqhand poses build --out bank.npz --n 100000 --mode-weights fist=4,spread=0 "
        "(about 43 MB per 100,000 poses).",
    )
    b.add_argument("--source", choices=["prior", "bighand", "array"], default="prior",
                   help="prior: sample the built-in pose prior; bighand: BigHand2.2M's "
                   "Training_Annotation.txt; array: a .npy/.npz of joints (default: prior)")  # fmt: skip
    b.add_argument("--input", help="bighand: Training_Annotation.txt; array: .npy/.npz of joints")
    b.add_argument("--out", required=True, help="output bank .npz")
    b.add_argument("--stats", help="summary JSON (default: OUT with .json)")
    b.add_argument("--n", type=int, default=1_000_000,
                   help="prior: number of poses (default 1,000,000: a 432 MB bank, ~10 min; "
                   "100,000 is plenty to try things)")  # fmt: skip
    b.add_argument(
        "--seed",
        type=int,
        default=0,
        help="prior: seed; pose i depends only on (hand model, seed, i) (default 0)",
    )
    from seqhand.hand.prior import MODE_NAMES

    b.add_argument(
        "--mode-weights", default=None,
        help="prior: name=weight,... relative weights of the prior's modes, overriding their "
        f"defaults (e.g. fist=4,spread=0); modes: {', '.join(MODE_NAMES)}",
    )  # fmt: skip
    b.add_argument("--hand-model", default=None, help=_MODEL_HELP + " (prior)")
    b.add_argument("--order", default="project", help="array: joint order of the file")
    b.add_argument("--unit", default="m", choices=["m", "mm", "cm"], help="array: unit")
    b.add_argument("--key", default=None, help="array: name of the array in an .npz")
    b.add_argument(
        "--side",
        default="right",
        choices=["right", "left"],
        help="array/bighand: hand side of the data (left hands are mirrored)",
    )
    b.add_argument("--every", type=int, default=1, help="bighand: keep every k-th pose")
    b.add_argument("--limit", type=int, default=None, help="bighand: stop after this many")
    b.add_argument(
        "--scale-to",
        type=float,
        default=None,
        help="scale every pose so |wrist -> middle MCP| is this many metres (off)",
    )
    b.set_defaults(func=_build)

    s = psub.add_parser("stats", help="print a bank's summary statistics (JSON)")
    s.add_argument("bank")
    s.set_defaults(func=_stats)

    f = psub.add_parser("flows", help="generate pose flows (Eq. 5-7) from a bank into an .npz")
    f.add_argument("bank", help="pose bank .npz (seqhand poses build)")
    f.add_argument("--out", required=True, help="output .npz (bank indices, cameras, betas, ...)")
    f.add_argument("--count", type=int, default=100, help="number of flows to make (default 100)")
    f.add_argument("--start", type=int, default=0,
                   help="index of the first flow (default 0); flow i depends only on (seed, i), "
                   "so --start 100 --count 100 continues a run of 100")  # fmt: skip
    f.add_argument("--seed", type=int, default=0, help="seed of the flows (default 0)")
    f.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per flow, the paper's n, P_0 included (default 10)",
    )
    f.add_argument("--alpha", type=float, default=None,
                   help="update size of Eq. 6: each frame moves alpha/n of the remaining "
                   "distance to P_final (default 3.0, i.e. 30%% per frame at n = 10; must lie in "
                   "(0, 2n); docs/pose_flows.md)")  # fmt: skip
    f.add_argument(
        "--nn",
        default="pca-tree",
        help="nearest-neighbour method: pca-tree (exact, default), bruteforce, faiss",
    )
    f.add_argument("--literal", action="store_true",
                   help="Eq. 7 as written (a step that snaps back stays; see docs)")  # fmt: skip
    f.set_defaults(func=_flows)

    e = psub.add_parser(
        "fit-encoder",
        help="train the joints->theta MLP on a bank through the frozen hand layer",
    )
    e.add_argument("bank", help="bank .npz (seqhand poses build)")
    e.add_argument("--out", required=True, help="output encoder .pt")
    e.add_argument("--hand-model", default=None, help=_MODEL_HELP)
    e.add_argument("--steps", type=int, default=40_000)
    e.add_argument("--batch", type=int, default=512)
    e.add_argument("--hidden", type=int, default=512)
    e.add_argument("--lr", type=float, default=1e-3)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--checkpoint",
        default=None,
        help="resumable checkpoint (default: OUT.ckpt; resumed if it exists)",
    )
    e.add_argument("--no-resume", action="store_true", help="delete an existing checkpoint first")
    e.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: small ops are fastest single-threaded)",
    )
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_fit_encoder)


def _parse_weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, _, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise SeqhandError(f"--mode-weights: expected name=number, got {part!r}") from None
    return out


def _build(args) -> int:
    from seqhand.synth.bank import bank_from_prior, bank_summary, load_joint_array

    if args.source == "prior":
        try:
            bank = bank_from_prior(
                args.hand_model,
                args.n,
                args.seed,
                mode_weights=_parse_weights(args.mode_weights),
                scale_to=args.scale_to,
                progress=True,
            )
        except ValueError as e:
            raise SeqhandError(str(e)) from None
    else:
        if not args.input:
            raise SeqhandError(f"--source {args.source} needs --input PATH")
        if args.source == "bighand":
            from seqhand.synth.bighand import load_bighand

            bank, report = load_bighand(
                args.input,
                every=args.every,
                limit=args.limit,
                mirror=args.side == "left",
                scale_to=args.scale_to,
                progress=True,
            )
            print(report.summary())
        else:
            bank = load_joint_array(
                args.input,
                key=args.key,
                order=args.order,
                unit=args.unit,
                side=args.side,
                scale_to=args.scale_to,
            )
    if len(bank) == 0:
        raise SeqhandError(
            f"{args.input or args.source}: no usable pose (empty input, or every pose has a "
            "non-finite joint); nothing written"
        )
    out = bank.save(args.out)
    stats = bank_summary(bank)
    stats_path = Path(args.stats) if args.stats else out.with_suffix(".json")
    stats_path.write_text(json.dumps(stats, indent=1))
    print(f"wrote {out} ({len(bank):,} poses, source {bank.meta['source']}) and {stats_path}")
    frac = stats.get("tips_palmar_fraction")
    if frac is not None and frac < 0.5:
        print(
            f"warning: only {frac:.0%} of flexed fingertips are on the palm side: the input is "
            "probably mirrored (try --side left)"
        )
    return 0


def _stats(args) -> int:
    from seqhand.synth.bank import bank_summary, load_bank

    print(json.dumps(bank_summary(load_bank(args.bank)), indent=1))
    return 0


def _flows(args) -> int:
    import numpy as np

    from seqhand.synth.bank import load_bank
    from seqhand.synth.flow import FlowConfig, flow_randoms, flow_statistics, generate_flows
    from seqhand.synth.nn import build_nn

    bank = load_bank(args.bank)
    kw = {k: v for k, v in (("n_frames", args.frames), ("alpha", args.alpha)) if v is not None}
    cfg = FlowConfig(**kw, literal=args.literal)
    flows = generate_flows(
        bank, build_nn(bank.flat, args.nn), args.seed, args.start, args.count, cfg
    )
    ids, _ = flow_randoms(args.seed, flows.index, len(bank))
    stats = flow_statistics(bank.flat, flows.bank_indices, ids[:, 1])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        bank_indices=flows.bank_indices,
        joints=flows.joints(bank),
        cam_rot=flows.cam_rot,
        cam_scale=flows.cam_scale,
        cam_trans=flows.cam_trans,
        betas=flows.betas,
        template=flows.template,
        ego=flows.ego,
        index=flows.index,
        seed=np.array(flows.seed),
        meta=np.array(json.dumps({"config": cfg.__dict__, "stats": stats})),
    )
    print(
        f"wrote {out}: {len(flows)} flows x {cfg.n_frames} frames (alpha {cfg.alpha}); "
        f"mean joint step {stats['mean_step_mm']:.2f} mm/frame, remaining distance to "
        f"P_final {stats['dist_to_final_rel'][-1]:.2f} of the start"
    )
    return 0


def _fit_encoder(args) -> int:
    import torch

    from seqhand.synth.bank import load_bank
    from seqhand.synth.encoder import EncoderConfig, save_encoder, train_encoder

    torch.set_num_threads(max(1, args.threads))
    bank = load_bank(args.bank)
    out = Path(args.out)
    ckpt = Path(args.checkpoint) if args.checkpoint else out.with_name(out.name + ".ckpt")
    if args.no_resume and ckpt.exists():
        ckpt.unlink()
    elif ckpt.exists():
        print(f"resuming from {ckpt}")
    cfg = EncoderConfig(
        hidden=args.hidden, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed
    )
    model, report = train_encoder(
        bank, args.hand_model, cfg, checkpoint=ckpt, progress=not args.no_progress
    )
    save_encoder(
        model,
        out,
        {"bank": str(args.bank), "bank_meta": bank.meta, "report": report, "config": cfg.__dict__},
    )
    line = (
        f"held-out joint error {report['mpjpe_mm']:.2f} mm mean per joint (median pose "
        f"{report['mpjpe_mm_median_pose']:.2f}, 95% {report['mpjpe_mm_p95_pose']:.2f})"
    )
    if "pose_angle_deg" in report:
        line += f", pose-parameter error {report['pose_angle_deg']:.2f} deg mean per joint"
    print(f"wrote {out}: {line}")
    return 0
