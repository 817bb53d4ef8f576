"""`viewkit` command line: one module per command, dispatched from a dict of names."""

from __future__ import annotations

import argparse
import sys

from viewkit.tools import bench, demo, eval, info, preview, saliency, shard, train, verify

COMMANDS = {
    "shard": shard,
    "verify": verify,
    "info": info,
    "preview": preview,
    "bench": bench,
    "saliency": saliency,
    "train": train,
    "eval": eval,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="viewkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        summary = module.__doc__.strip().splitlines()[0]
        sub = commands.add_parser(name, help=summary, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `viewkit train CONFIG --data D --out R key=value ...`: argparse cannot take positionals
    # after options, so trailing key=value pairs are collected here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) != "train" or any(item.startswith("-") or "=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    if getattr(args, "device", None) == "gpu" and not getattr(args, "graph", False):
        # eval, bench, saliency: before any model moves to a missing GPU (bench --graph only defines the graph)
        import torch

        if not torch.cuda.is_available():
            parser.error(f"{args.command} --device gpu: torch sees no CUDA GPU here; --device cpu runs the same work")
    try:
        return args.run(args) or 0
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"viewkit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
