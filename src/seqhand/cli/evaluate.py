"""``seqhand evaluate``: stream benchmark sequences through a model, write metrics and plots."""

from __future__ import annotations

from pathlib import Path

DATASETS = ("seqhand-test", "stb", "egodexter", "dexter_object", "freihand")
DEFAULT_ALIGNMENT = {  # see docs/metrics.md
    "seqhand-test": "root",
    "stb": "root_scale",
    "egodexter": "centroid_scale",
    "dexter_object": "centroid_scale",
    "freihand": "root",
}


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
    p.add_argument("--alignment", default=None,
                   help="override the dataset's alignment protocol (none, root, root_scale, "
                   "centroid_scale, scale, procrustes)")  # fmt: skip
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
    from seqhand.evaluation.evaluator import evaluate_sequences, write_report
    from seqhand.models import HandDecoder
    from seqhand.training.checkpoint import load_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SeqhandError(f"--out {out}: a file is in the way; give a folder")
    if args.limit is not None and args.limit < 1:
        raise SeqhandError(f"--limit must be >= 1, got {args.limit}")
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

        seqs, total = real_sequences(args.dataset, args.data_root, size, args.limit)
    acc = MetricAccumulator(alignment=args.alignment or DEFAULT_ALIGNMENT[args.dataset])
    seen = []

    def counted(it):
        for item in it:
            seen.append(item[0])
            yield item

    seqs = counted(seqs)
    hand = rec.get("hand_model") or None
    evaluate_sequences(model, seqs, accumulator=acc, decoder=HandDecoder(
        None if hand == "builtin" else hand), per_frame=args.per_frame,
        progress=not args.no_progress, total=total)  # fmt: skip
    if not seen:
        raise SeqhandError(
            f"no sequence was evaluated{f' ({len(skipped)} damaged, skipped)' if skipped else ''}"
        )
    label = rec["model_spec"]["name"] + (" (per-frame)" if args.per_frame else "")
    extra = {"checkpoint": str(args.checkpoint), "per_frame": args.per_frame}
    if skipped is not None:
        extra["skipped_samples"] = skipped
    m = write_report(acc, args.out, dataset=args.dataset, label=label, extra=extra)
    if skipped:
        print(f"skipped {len(skipped)} damaged shards/samples (named in metrics.json): "
              f"{skipped[0]}{' ...' if len(skipped) > 1 else ''}")  # fmt: skip
    print(f"{args.dataset}: EPE3D {m.get('epe3d_mean_mm') or float('nan'):.2f} mm, AUC {m.get('auc')}, "
          f"written to {args.out}/metrics.json and pck.png")  # fmt: skip
    return 0
