"""``seqhand <verb>``: the command-line tool. Only this package reads argv and user paths.

Each verb lives in its own module with a ``register(subparsers)`` function that adds its parser
and sets ``func``; the library functions it calls take plain arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from seqhand import __version__
from seqhand.errors import SeqhandError

# Modules under seqhand.cli, one per verb (or group of verbs).
COMMAND_MODULES = ("mano", "hand", "poses", "generate", "train", "evaluate", "infer", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqhand",
        description="SeqHAND: sequential synthetic hand data, a recurrent 3D hand pose and shape "
        "estimator, benchmarks and video inference.",
    )
    parser.add_argument("--version", action="version", version=f"seqhand {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"seqhand.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s"
    )
    for noisy in ("distributed", "numba", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for own in ("lightning", "lightning.pytorch", "lightning.fabric"):  # they print themselves
        logging.getLogger(own).propagate = False
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except SeqhandError as e:
        msg = " ".join(str(e).split())  # one line, whatever a library message held
        print(f"seqhand {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqhand {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
