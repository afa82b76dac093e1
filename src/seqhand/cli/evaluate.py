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
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    from seqhand.errors import SeqhandError
    from seqhand.evaluation.accumulator import MetricAccumulator
    from seqhand.evaluation.evaluator import evaluate_sequences, write_report
    from seqhand.evaluation.view import ViewMetrics
    from seqhand.models import HandDecoder
    from seqhand.training.checkpoint import load_model

    model, rec = load_model(args.checkpoint)
    size = int(rec["image_size"])
    if args.dataset == "seqhand-test":
        from seqhand.data.shards import read_manifest
        from seqhand.evaluation.evaluator import generated_sequences

        if not args.data_root:
            raise SeqhandError("--data-root is required for seqhand-test (the generated dataset)")
        n = read_manifest(Path(args.data_root))["splits"]["test"]["num_sequences"]
        seqs = generated_sequences(args.data_root, "test", size, args.limit)
        total = min(n, args.limit or n)
    else:
        from seqhand.evaluation.real import real_sequences

        seqs, total = real_sequences(args.dataset, args.data_root, size, args.limit)
    acc = MetricAccumulator(alignment=args.alignment or DEFAULT_ALIGNMENT[args.dataset])
    hand = rec.get("hand_model") or None
    view = ViewMetrics()
    evaluate_sequences(model, seqs, accumulator=acc, decoder=HandDecoder(
        None if hand == "builtin" else hand), per_frame=args.per_frame,
        progress=not args.no_progress, total=total, view=view)  # fmt: skip
    label = rec["model_spec"]["name"] + (" (per-frame)" if args.per_frame else "")
    m = write_report(acc, args.out, dataset=args.dataset, label=label,
                     extra={"checkpoint": str(args.checkpoint), "per_frame": args.per_frame},
                     view=view)  # fmt: skip
    rot = m.get("rot_err_median_deg")
    extra = (f", median rotation error {rot:.1f} deg" if rot is not None else "") + (
        f", size ratio {m['size_ratio_median']:.2f}" if "size_ratio_median" in m else ""
    )
    print(f"{args.dataset}: EPE3D {m.get('epe3d_mean_mm') or float('nan'):.2f} mm, AUC {m.get('auc')}"
          f"{extra}, written to {args.out}/metrics.json and pck.png")  # fmt: skip
    return 0
