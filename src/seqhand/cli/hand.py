"""``seqhand hand sheet|info|export``: look at, describe and export the hand model."""

from __future__ import annotations

import json

from seqhand.errors import SeqhandError
from seqhand.hand.sheet import DEFAULT_SHEET_POSES

_MODEL_HELP = "MANO .pkl or converted .npz asset (default: the built-in hand)"


def register(sub) -> None:
    p = sub.add_parser("hand", help="the hand model: picture sheet, facts, export")
    hsub = p.add_subparsers(dest="hand_command", metavar="ACTION", required=True)

    s = hsub.add_parser("sheet", help="render a PNG of the hand in several poses and shapes")
    s.add_argument("--out", required=True, help="output .png")
    s.add_argument("--hand-model", default=None, help=_MODEL_HELP)
    s.add_argument("--size", type=int, default=240, help="pixels per panel (default 240)")
    s.add_argument(
        "--poses",
        default=",".join(DEFAULT_SHEET_POSES),
        help="comma-separated gesture names (default: %(default)s)",
    )
    s.set_defaults(func=_sheet)

    i = hsub.add_parser("info", help="print vertex/face counts, hand length, volume, ...")
    i.add_argument("--hand-model", default=None, help=_MODEL_HELP)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_info)

    e = hsub.add_parser("export", help="write the hand model as a plain .npz asset")
    e.add_argument("--out", required=True, help="output .npz")
    e.add_argument("--hand-model", default=None, help=_MODEL_HELP)
    e.add_argument(
        "--regenerate",
        action="store_true",
        help="built-in hand only: recompute it instead of loading the packaged cache, and stamp "
        "the file as a cache (used to refresh src/seqhand/assets/builtin_hand.npz)",
    )
    e.set_defaults(func=_export)


def _sheet(args) -> int:
    from seqhand.hand.gestures import GESTURES
    from seqhand.hand.sheet import render_sheet

    poses = tuple(p.strip() for p in args.poses.split(",") if p.strip())
    unknown = [p for p in poses if p not in GESTURES]
    if unknown:
        raise SeqhandError(f"unknown pose(s) {unknown} in --poses; known: {list(GESTURES)}")
    out = render_sheet(args.out, args.hand_model, size=args.size, poses=poses)
    print(f"wrote {out}")
    return 0


def _info(args) -> int:
    from seqhand.hand.report import asset_summary

    info = asset_summary(args.hand_model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k:<{width}}  {v}")
    return 0


def _export(args) -> int:
    from seqhand.hand.asset import load_asset

    if args.regenerate:
        if args.hand_model not in (None, "builtin"):
            raise SeqhandError(
                f"--regenerate is for the built-in hand only, got --hand-model {args.hand_model}"
            )
        from seqhand.hand.builtin import regenerate_cache

        asset, out = regenerate_cache(args.out)
    else:
        asset = load_asset(args.hand_model)
        out = asset.save(args.out)
    print(f"wrote {out}: '{asset.name}', {asset.num_vertices} vertices, {len(asset.f)} faces")
    return 0
