"""Pretrain with one of the SSL methods on viewkit shards.

    viewkit train CONFIG --data SHARDS --out RUN_DIR [--epochs N] [--resume] [key=value ...]
    viewkit train --list                  # the shipped configs: moco_v2, cpu/byol, ...
    torchrun --nproc_per_node 8 -m viewkit.tools.cli train byol --data ... --out ...

CONFIG is a shipped config's name (`moco_v2`: the paper's setting, `cpu/moco_v2`: a CPU check)
or a YAML file of your own.

Writes RUN_DIR/checkpoint-last.pt (every epoch), checkpoint-NNNN.pt, metrics.jsonl,
tensorboard/ and config.yaml (resolved, with the git revision).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from viewkit.trainer.config import load_config, shipped_configs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a shipped config's name (moco_v2, cpu/byol; see --list) or a "
                                                  "YAML file")
    parser.add_argument("--list", action="store_true", help="print the shipped configs and exit")
    parser.add_argument("--data", help="training shards (dataset folder); required")
    parser.add_argument("--out", help="run folder; required")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint-last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. batch_size=64 method_options.queue=4096")


def run(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(shipped_configs()))
        return 0
    missing = [name for name, value in (("CONFIG", args.config), ("--data", args.data), ("--out", args.out))
               if not value]
    if missing:
        raise ValueError(f"train needs {', '.join(missing)} (`viewkit train --list` names the shipped configs)")
    from viewkit.trainer.engine import train  # here: --help answers before torch and DALI load

    overrides = list(args.overrides) + ([f"epochs={args.epochs}"] if args.epochs else [])
    config = load_config(args.config, overrides)
    last = train(config, args.data, args.out, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: one closing line, rank 0's
        print(summary(args.out, config.epochs, last))
    return 0


def summary(out: str, epochs: int, last: dict) -> str:
    """The closing line of a run, for a person: where it went and how it ended."""
    parts = [f"{out}: finished {epochs} epoch{'' if epochs == 1 else 's'}"]
    if "step" in last:
        parts[0] += f" ({last['step']} steps)"
    named = (("loss", "last loss {:.4f}"), ("lr", "lr {:.3g}"), ("samples_per_s", "{:.0f} samples/s"),
             ("data_wait", "data wait {:.0%}"), ("knn_top1", "kNN top-1 {:.3f}"))
    parts += [text.format(last[key]) for key, text in named if last.get(key) is not None]
    return ", ".join(parts) + f"; checkpoint {Path(out) / 'checkpoint-last.pt'}, metrics {Path(out) / 'metrics.jsonl'}"
