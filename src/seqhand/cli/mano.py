"""``seqhand mano convert IN.pkl OUT.npz``: the official MANO pickle -> a plain asset."""

from __future__ import annotations

from seqhand.hand.mano_pickle import load_mano_pickle


def register(sub) -> None:
    p = sub.add_parser("mano", help="MANO model files: convert the official pickle safely")
    msub = p.add_subparsers(dest="mano_command", metavar="ACTION", required=True)
    c = msub.add_parser(
        "convert",
        help="read MANO_RIGHT.pkl / MANO_LEFT.pkl without chumpy (nothing in it runs) and write "
        "a plain .npz asset",
    )
    c.add_argument("input", help="MANO_RIGHT.pkl or MANO_LEFT.pkl")
    c.add_argument("output", help="output .npz")
    c.add_argument("--side", choices=["right", "left"], help="default: from the file name")
    c.add_argument(
        "--left-fix",
        choices=["auto", "apply", "skip"],
        default="auto",
        help="left model only: apply MANO's known shapedirs[:, 0, :] *= -1 fix ('apply'), "
        "leave shapedirs as they are because the file is already corrected ('skip'), or "
        "detect which ('auto', default; refuses to guess when unclear). The choice is stored "
        "in the asset",
    )
    c.add_argument(
        "--right-model",
        metavar="MANO_RIGHT.pkl",
        help="with --left-fix auto: compare with the right model's shapedirs (exact detection)",
    )
    c.set_defaults(func=_convert)


def _convert(args) -> int:
    asset = load_mano_pickle(
        args.input, side=args.side, left_fix=args.left_fix, right_model=args.right_model
    )
    out = asset.save(args.output)
    print(
        f"wrote {out}: {asset.side} hand, {asset.num_vertices} vertices, {len(asset.f)} faces, "
        f"{asset.num_betas} shape directions"
        + (f"; left shapedirs fix {asset.shapedirs_fix}" if asset.side == "left" else "")
    )
    return 0
