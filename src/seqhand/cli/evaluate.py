"""``seqhand evaluate``: stream benchmark sequences through a model, write metrics and plots."""

from __future__ import annotations

from pathlib import Path

from seqhand.geometry.alignment import ALIGNMENT_MODES

DATASETS = ("seqhand-test", "stb", "egodexter", "dexter_object", "freihand")
DEFAULT_ALIGNMENT = {  # the protocol table of docs/metrics.md
    "seqhand-test": "root",
    "stb": "hand3d",
    "egodexter": "centroid_scale",
    "dexter_object": "centroid_scale",
    "freihand": "root",
}
#: Frames with fewer annotated joints are skipped and counted (Minimal-Hand's ED / D+O rule).
DEFAULT_MIN_VALID_JOINTS = {"egodexter": 2, "dexter_object": 2}


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on a benchmark (PCK/AUC/EPE/temporal)")
    p.add_argument("--checkpoint", required=True, help="model.pt or a training .ckpt")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-root", default=None,
                   help="dataset folder (seqhand-test: the generated dataset; others: "
                   "default $SEQHAND_DATA/<name>)")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder (metrics.json, per_frame, pck.png)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N sequences")
    p.add_argument("--per-frame", action="store_true",
                   help="reset the recurrent state every frame (comparison run)")  # fmt: skip
    p.add_argument("--alignment", default=None, choices=ALIGNMENT_MODES,
                   help="override the dataset's alignment protocol (default: stb hand3d, "
                   "egodexter/dexter_object centroid_scale, freihand and seqhand-test root; "
                   "see docs/metrics.md)")  # fmt: skip
    p.add_argument("--stb-view", default="BB-both", choices=("BB-both", "BB-left", "SK"),
                   help="STB images: BB left and right (hand3d's 6,000-frame evaluation set, "
                   "default), BB left only (3,000), or the SK colour camera")  # fmt: skip
    p.add_argument("--min-valid-joints", type=int, default=None,
                   help="skip (and count) frames with fewer annotated joints (default 2 for "
                   "egodexter and dexter_object, as Minimal-Hand; 0 elsewhere)")  # fmt: skip
    p.add_argument("--temporal-reduction", default="per_sequence",
                   choices=("per_sequence", "pooled"),
                   help="temporal metrics: mean of per-sequence means, or pooled over all "
                   "frames (VIBE)")  # fmt: skip
    p.add_argument("--verify-data", action="store_true",
                   help="seqhand-test: check every shard's sha256 and count first")  # fmt: skip
    p.add_argument("--skip-bad-samples", action="store_true",
                   help="seqhand-test: leave damaged shards/samples out (counted and named in "
                   "metrics.json) instead of stopping")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    from seqhand.errors import SeqhandError
    from seqhand.evaluation.accumulator import MetricAccumulator
    from seqhand.evaluation.evaluator import evaluate_sequences, summary_lines, write_report
    from seqhand.evaluation.view import ViewMetrics
    from seqhand.models import HandDecoder
    from seqhand.training.checkpoint import load_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SeqhandError(f"--out {out}: a file is in the way; give a folder")
    if args.limit is not None and args.limit < 1:
        raise SeqhandError(f"--limit must be >= 1, got {args.limit}")
    min_valid = args.min_valid_joints
    if min_valid is None:
        min_valid = DEFAULT_MIN_VALID_JOINTS.get(args.dataset, 0)
    if min_valid < 0:
        raise SeqhandError(f"--min-valid-joints must be >= 0, got {min_valid}")
    model, rec = load_model(args.checkpoint)
    size = int(rec["image_size"])
    skipped: list[str] | None = [] if args.skip_bad_samples else None
    if args.dataset == "seqhand-test":
        from seqhand.data.shards import ShardError, read_manifest
        from seqhand.evaluation.evaluator import generated_sequences

        if not args.data_root:
            raise SeqhandError("--data-root is required for seqhand-test (the generated dataset)")
        splits = read_manifest(Path(args.data_root))["splits"]
        if "test" not in splits:
            raise ShardError(f"{args.data_root}: no split 'test'; it has {sorted(splits)}")
        n = splits["test"]["num_sequences"]
        seqs = generated_sequences(args.data_root, "test", size, args.limit,
                                   verify=args.verify_data, skipped=skipped)  # fmt: skip
        total = min(n, args.limit or n)
    else:
        from seqhand.evaluation.real import real_sequences

        seqs, total = real_sequences(args.dataset, args.data_root, size, args.limit,
                                     stb_view=args.stb_view)  # fmt: skip
    acc = MetricAccumulator(alignment=args.alignment or DEFAULT_ALIGNMENT[args.dataset],
                            min_valid_joints=min_valid,
                            temporal_reduction=args.temporal_reduction)  # fmt: skip
    seen = []

    def counted(it):
        for item in it:
            seen.append(item[0])
            yield item

    seqs = counted(seqs)
    hand = rec.get("hand_model") or None
    view = ViewMetrics()
    evaluate_sequences(model, seqs, accumulator=acc, decoder=HandDecoder(
        None if hand == "builtin" else hand), per_frame=args.per_frame,
        progress=not args.no_progress, total=total, view=view)  # fmt: skip
    if not seen:
        raise SeqhandError(
            f"no sequence was evaluated{f' ({len(skipped)} damaged, skipped)' if skipped else ''}"
        )
    label = rec["model_spec"]["name"] + (" (per-frame)" if args.per_frame else "")
    extra = {"checkpoint": str(args.checkpoint), "per_frame": args.per_frame}
    if args.dataset == "stb":
        extra["stb_view"] = args.stb_view
    if skipped is not None:
        extra["skipped_samples"] = skipped
    m = write_report(acc, args.out, dataset=args.dataset, label=label, extra=extra, view=view)
    if skipped:
        print(f"skipped {len(skipped)} damaged shards/samples (named in metrics.json): "
              f"{skipped[0]}{' ...' if len(skipped) > 1 else ''}")  # fmt: skip
    print(f"{args.dataset}" + (f" ({args.stb_view})" if args.dataset == "stb" else "") + ":")
    for line in summary_lines(m):
        print(f"  {line}")
    print(f"written to {args.out}/metrics.json and pck.png")
    return 0
