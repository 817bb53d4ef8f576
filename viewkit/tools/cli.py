"""`viewkit` command line: one module per command, dispatched from a dict of names."""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys

from viewkit.local_paths import url_refusal
from viewkit.writes import system_error

# Command -> its one-line summary (the first line of its module's docstring; a test holds
# them equal). Only the command run is imported: torch and DALI take seconds to load, and
# `viewkit --help` or `viewkit info` need neither.
COMMANDS = {
    "shard": "Write ImageNet, COCO or an image folder as shuffled WebDataset shards with DALI indices.",
    "verify": "Check a sharded dataset: checksums, index entries against tars, counts, ids, and decode every image.",
    "info": "Summarise a sharded dataset from its manifest.",
    "preview": "Contact sheet of a recipe's views: per sample, the source with every window drawn, then every view.",
    "bench": "Throughput of a recipe's views: viewkit against a torchvision DataLoader in the same run.",
    "saliency": "Build a saliency store (regions by sample id) for SGCL's saliency-guided crops.",
    "train": "Pretrain with one of the SSL methods on viewkit shards.",
    "eval": "Evaluate a pretrained backbone on labelled shards.",
    "demo": "Run viewkit end to end on the embedded default dataset (no download, no GPU needed).",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless its text gives it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").strip()
        if (not action.option_strings or any(action.default is v for v in (None, False, argparse.SUPPRESS))
                or "default" in text):
            return text
        return f"{text} (default: %(default)s)".strip()


def command_module(name: str):
    return importlib.import_module(f"viewkit.tools.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of `command` only (every command is listed)."""
    parser = argparse.ArgumentParser(prog="viewkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if name != command:
            commands.add_parser(name, help=summary)
            continue
        module = command_module(name)
        sub = commands.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
        module.add_arguments(sub)
        for action in sub._actions:  # an option without help text still shows its default
            if action.help is None and action.option_strings and action.default is not None and action.default is not False:
                action.help = "(default: %(default)s)"
        sub.set_defaults(run=module.run)
    return parser


# Arguments that name a dataset: a URL there (s3://bucket/prefix) is read through the
# node-local shard cache (viewkit/loaders/shard_cache.py), or written through a staging
# folder (viewkit/shards/store.py). Everything else is a local path.
DATASET_ARGUMENTS = {"shard": ("out",), "info": ("out",), "verify": ("out",), "train": ("data",), "eval": ("train", "val"),
                     "saliency": ("shards",), "preview": ("shards",), "bench": ("shards",)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
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
    datasets = DATASET_ARGUMENTS.get(getattr(args, "command", None), ())
    for name, value in vars(args).items():  # before any work: a URL would become a local folder named "s3:"
        if name in datasets or name == "address":  # datasets are read through fsspec; Ray's address is a URL
            continue
        if (refusal := url_refusal(value, "an argument")) is not None:
            print(f"viewkit {args.command}: error: {refusal}", file=sys.stderr)
            return 2
    try:
        return args.run(args) or 0
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # `viewkit info D | head -1`: the reader has all it wanted, which is no error. Later
        # writes (the interpreter's flush at exit) go nowhere instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, ValueError, RuntimeError) as e:
        message = one_line(e, getattr(args, "out", None) or getattr(args, "json", None))
        if message is None:
            raise
        print(f"viewkit {args.command}: error: {message}", file=sys.stderr)
        return 2


def _stdout_closed() -> bool:
    """Whether the reader of standard output has gone (a pipe whose read end closed polls POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def one_line(error: Exception, output: str | None) -> str | None:
    """What a command prints for `error`; None for a RuntimeError that is no failed write (a bug:
    its traceback is the report)."""
    # Our own errors carry a message; the system's (no space left, read-only file system,
    # permission denied, not a directory) a path and a cause. A write the library did not
    # name (a log line, TensorBoard) failed under the command's output.
    if isinstance(error, ValueError):
        return str(error)
    cause = system_error(error)
    if cause is None:  # a RuntimeError that no failed write caused
        return None
    if cause.strerror and cause.filename:
        return f"{cause.filename}: {cause.strerror}"
    if cause.strerror and output:
        return f"writing under {output}: {cause.strerror}"
    return str(cause)


if __name__ == "__main__":
    sys.exit(main())
