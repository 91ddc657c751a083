"""`zeroflow` command line: one sub-command per entry point of the package."""
from __future__ import annotations

import argparse
import sys


def _optimizers(args: argparse.Namespace) -> int:
    from zeroflow_core.optim import OPTIMIZERS

    width = max(map(len, OPTIMIZERS))
    for spec in OPTIMIZERS.values():
        kind = "forward passes" if spec.forward_pass_only else "backprop"
        print(f"{spec.name:<{width}}  [{kind}]  {spec.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zeroflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("optimizers", help="list the optimizer registry").set_defaults(run=_optimizers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"zeroflow {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
