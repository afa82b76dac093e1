"""``seqhand generate`` (the SeqHAND dataset) and ``seqhand preview`` (a GIF + contact sheet)."""

from __future__ import annotations

import dataclasses


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate a SeqHAND dataset (pose flows -> shards)")
    p.add_argument("--out", required=True, help="dataset folder (shards + manifest.json)")
    p.add_argument("--preset", default="small", choices=["paper", "small", "demo"],
                   help="sizes: paper 40,000 + 1,000 sequences, 10 frames, 224 px, shards of "
                   "100, a 1,000,000-pose bank; small 200 + 40, 10 frames, 224 px, shards of 50, "
                   "100,000 poses; demo 2,000 + 48, 8 frames, 96 px, shards of 100, 50,000 poses "
                   "(default: small). The options below override the preset.")  # fmt: skip
    p.add_argument("--num-sequences", type=int,
                   help="training sequences (default: the preset's; Python: "
                   "preset(num_train=...))")  # fmt: skip
    p.add_argument("--num-test", type=int, help="test sequences (default: the preset's)")
    p.add_argument(
        "--frames", type=int, help="frames per sequence (default: the preset's, 10 or 8 for demo)"
    )
    p.add_argument(
        "--image-size",
        type=int,
        help="frame side in pixels (default: the preset's, 224 or 96 for demo)",
    )
    p.add_argument("--hand-model", help="MANO .npz/.pkl (default: the built-in hand)")
    p.add_argument("--poses", help="pose bank .npz from `seqhand poses build` "
                   "(default: the built-in prior bank)")  # fmt: skip
    p.add_argument("--bank-size", type=int,
                   help="poses in the built-in prior bank, when --poses is not given (default: "
                   "the preset's, 1,000,000 / 100,000 / 50,000)")  # fmt: skip
    p.add_argument("--backgrounds", help="folder of background images, e.g. VOC2012/JPEGImages "
                   "(default: built-in procedural backgrounds)")  # fmt: skip
    p.add_argument("--templates", help="folder of OBJ colour templates (default: built-in skins)")
    p.add_argument("--seed", type=int, help="dataset seed (default 0)")
    p.add_argument("--image-format", choices=["jpg", "png"], help="frame encoding (default jpg)")
    p.add_argument(
        "--shard-size",
        type=int,
        help="sequences per tar shard (default: the preset's, 100 / 50 / 48)",
    )
    p.add_argument("--alpha", type=float,
                   help="pose-flow update size of Eq. 6: each frame moves alpha/n of the "
                   "remaining distance to the flow's last pose (default 3.0; docs/pose_flows.md)")  # fmt: skip
    p.add_argument("--literal-flows", action="store_true", default=None,
                   help="Eq. 7 as written: a step that snaps back stays (freezes flows on "
                   "sparse banks; see docs/pose_flows.md)")  # fmt: skip
    p.add_argument("--views", choices=["authors", "seqhand"],
                   help="camera model (default authors: the authors' generator's views and "
                   "update rates; seqhand: the earlier yaw/pitch/roll model; docs/dataset.md)")  # fmt: skip
    p.add_argument(
        "--ego-fraction",
        type=float,
        help="share of sequences seen by the egocentric camera (default 0.2)",
    )
    p.add_argument("--render-pose", choices=["pca", "full"],
                   help="pca (default): render theta rebuilt from its 10 PCA coefficients, the "
                   "pose the network regresses; full: the encoder's 45-d theta")  # fmt: skip
    p.add_argument("--hand-scale", choices=["posed", "nominal"],
                   help="authors' views: posed (default: the hand as posed and shaped fills "
                   "1/U(1.7, 2.1) of the frame, the authors' rule); nominal: a fixed 0.2 m "
                   "extent, as datasets made before this option")  # fmt: skip
    p.add_argument("--theta-source", choices=["encoder", "bank"],
                   help="encoder: joints->theta MLP (paper); bank: a prior bank's true params")  # fmt: skip
    p.add_argument("--encoder", help="joints->theta encoder .pt (default: the built-in hand's)")
    p.add_argument("--supersample", type=int, help="anti-aliasing factor (1 = off)")
    p.add_argument("--with-vertices", action="store_true", default=None,
                   help="store mesh vertices per frame")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="1: in this process; N: a Dask LocalCluster of N processes")  # fmt: skip
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_generate)

    c = sub.add_parser("verify", help="check every shard of a dataset against its manifest "
                       "(sha256, sample counts)")  # fmt: skip
    c.add_argument("root", help="dataset folder")
    c.add_argument("--decode", action="store_true",
                   help="also decode every sample (frames, masks, annotations)")  # fmt: skip
    c.set_defaults(func=_verify)

    v = sub.add_parser("preview", help="write preview.gif and contact_sheet.png of a dataset")
    v.add_argument("root", help="dataset folder")
    v.add_argument("--out", help="where to write (default: the dataset folder)")
    v.add_argument("--split", default="train")
    v.add_argument("--num", type=int, default=8, help="sequences to show")
    v.add_argument("--no-joints", action="store_true", help="do not draw the joints")
    v.set_defaults(func=_preview)


def _generate(args) -> int:
    from seqhand.data.generate import GenerateConfig, generate, preset

    names = {f.name for f in dataclasses.fields(GenerateConfig)}
    over = {k: getattr(args, k) for k in ("frames", "image_size", "hand_model", "poses",
            "bank_size", "backgrounds", "templates", "seed", "image_format", "shard_size",
            "alpha", "literal_flows", "theta_source", "encoder", "supersample",
            "with_vertices", "views", "ego_fraction", "render_pose", "hand_scale") if k in names}  # fmt: skip
    over["num_train"], over["num_test"] = args.num_sequences, args.num_test
    cfg = preset(args.preset, **over)
    m = generate(cfg, args.out, workers=args.workers, scheduler=args.scheduler,
                 progress=not args.no_progress)  # fmt: skip
    counts = ", ".join(f"{k}: {v['num_sequences']} sequences in {len(v['shards'])} shards"
                       for k, v in m["splits"].items())  # fmt: skip
    print(f"wrote {args.out} ({counts}; {cfg.frames} frames of {cfg.image_size}x{cfg.image_size})")
    return 0


def _verify(args) -> int:
    import sys

    from seqhand.data.seqhand_dataset import SeqHandShards
    from seqhand.data.shards import ShardError, read_manifest, verify_dataset

    problems = verify_dataset(args.root)
    m = read_manifest(args.root)
    if not problems and args.decode:
        for split in m["splits"]:
            stream = SeqHandShards(args.root, split, rank=0, world_size=1, on_error="skip")
            for _ in stream:
                pass
            problems += [f"{args.root}/{s}" for s in stream.skipped]
    for p in problems[1:]:
        print(p, file=sys.stderr)
    if problems:
        raise ShardError(f"{problems[0]}" + (f" (+{len(problems) - 1} more problems above)"
                                             if len(problems) > 1 else ""))  # fmt: skip
    n = sum(len(s["shards"]) for s in m["splits"].values())
    seqs = sum(s["num_sequences"] for s in m["splits"].values())
    print(f"ok: {n} shards, {seqs} sequences match the manifest (sha256 and counts"
          f"{', every sample decoded' if args.decode else ''})")  # fmt: skip
    return 0


def _preview(args) -> int:
    from seqhand.data.preview import preview_dataset

    gif, sheet = preview_dataset(args.root, args.out, args.split, args.num, not args.no_joints)
    print(f"wrote {gif} and {sheet}")
    return 0
