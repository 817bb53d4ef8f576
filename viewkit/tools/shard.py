"""Write ImageNet, COCO or an image folder as shuffled WebDataset shards with DALI indices.

    viewkit shard imagenet SRC OUT --split train        # SRC/train/<wnid>/*.JPEG
    viewkit shard imagenet SRC OUT --split val --labels LOC_val_solution.csv
    viewkit shard coco IMAGES OUT --annotations instances_train2017.json
    viewkit shard folder SRC OUT                       # SRC/<class>/* or a flat folder

Writes OUT/<split>-NNNNNN.{tar,idx}, OUT/dataset.json and OUT/rejected.jsonl. A run that
was killed resumes when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from viewkit import storage
from viewkit.shards import sources
from viewkit.shards.summaries import conversions
from viewkit.tools.argtypes import non_negative_int, positive_int
from viewkit.shards.writer import ShardOptions, write_dataset


_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def byte_size(text: str) -> int:
    """Bytes from `1000000`, `500MB`, `1GB`, `1.5GiB` (decimal units, binary with an i)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?|(b))?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write bytes or a unit, e.g. 500MB, 1GB, 2GiB")
    number, unit, binary, _ = match.groups()
    scale = 1024 ** "kmgt".index(unit.lower()) * 1024 if binary else _UNITS[(unit or "").lower()]
    size = int(float(number) * scale)
    if size < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is no size: a shard holds at least one byte")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=["imagenet", "coco", "folder"], help="input layout")
    parser.add_argument("src", help="input folder (COCO: the images folder)")
    parser.add_argument("out", help="output folder, or a URL (s3://bucket/prefix): each shard is written in a local "
                                    "staging folder and uploaded when done")
    parser.add_argument("--split", default=None, help="ImageNet split folder (train|val); shard name prefix")
    parser.add_argument("--labels", help="ImageNet flat val: LOC_val_solution.csv or 'filename label' lines")
    parser.add_argument("--annotations", help="COCO instances JSON; without it, images only")
    parser.add_argument("--shard-size", type=byte_size, default=1_000_000_000,
                        help="bytes per shard, units allowed: 500MB, 1GB (a target; default 1GB)")
    parser.add_argument("--shard-samples", type=positive_int, help="samples per shard (overrides --shard-size)")
    parser.add_argument("--max-side", type=int, help="downscale images whose longest side is larger (re-encodes)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of re-encoded images (default 90)")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="reading/converting threads (default: all cores); with --engine ray and no --address, "
                             "the local Ray's CPUs")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: this machine's threads; ray: a Ray cluster's tasks, the same bytes "
                             "(pip install 'viewkit[ray]')")
    parser.add_argument("--address", help="with --engine ray: the cluster (auto, HOST:PORT); default: a local Ray")
    parser.add_argument("--seed", type=int, default=0, help="global shuffle seed (default 0)")
    parser.add_argument("--full-check", action="store_true",
                        help="also decode pass-through JPEGs while sharding (verify decodes all anyway)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier dataset in OUT (only the files its manifest names)")
    parser.add_argument("--check-hashes", action="store_true",
                        help="when OUT is already complete, also hash every tar (sizes and indices are always checked)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_args(argv: list[str]) -> argparse.Namespace:
    """Parses `viewkit shard` arguments, for callers that shard from Python (demo, tests)."""
    parser = argparse.ArgumentParser(prog="viewkit shard")
    add_arguments(parser)
    return parser.parse_args(argv)


def shard(args: argparse.Namespace) -> dict:
    if args.address and args.engine != "ray":
        raise ValueError(f"--address {args.address} names a Ray cluster: add --engine ray")
    listed = Path(args.src, args.split or "train") if args.source == "imagenet" else Path(args.src)
    out = Path(args.out).resolve()
    if out == listed.resolve() or listed.resolve() in out.parents:  # the next run would list the shards as inputs
        raise ValueError(f"{args.out} lies inside the input folder {listed}: its shards would be read as images "
                         "on the next run; write them outside it")
    if args.source == "imagenet":
        split = args.split or "train"
        listing = sources.imagenet_items(args.src, split, args.labels)
    elif args.source == "coco":
        split = args.split or "train"
        listing = sources.coco_items(args.src, args.annotations)
    else:
        split = args.split or "data"
        listing = sources.folder_items(args.src)
    if not listing.items and not listing.rejected:
        raise ValueError(f"{args.src}: no files found to shard (looked for images below {listed})")
    options = ShardOptions(shard_size=args.shard_size, shard_samples=args.shard_samples, max_side=args.max_side,
                           quality=args.quality, workers=args.workers, seed=args.seed, full_check=args.full_check)
    return write_dataset(listing, args.out, split=split, options=options, overwrite=args.overwrite,
                         progress=not args.quiet, check_hashes=args.check_hashes, engine=args.engine,
                         address=args.address)


def summary_line(manifest: dict, out: str) -> str:
    total_bytes = sum(s["bytes"] for s in manifest["shards"])
    line = (f"{out}: {manifest['num_samples']} written, {manifest['num_rejected']} rejected, "
            f"{_count(len(manifest['shards']), 'shard')}, {total_bytes / 1e6:.1f} MB")
    if "seconds" in manifest:
        seconds = manifest["seconds"]
        line += f", {seconds:.1f} s ({manifest['num_inputs'] / max(seconds, 1e-9):.0f} inputs/s)"
    if converted := conversions(manifest):
        line += f"; of those written, {converted}"
    if manifest.get("already_complete"):
        line += " (already complete: files checked, nothing to do)"
    if manifest.get("repaired"):
        line += f" (complete again: rewrote {', '.join(manifest['repaired'])})"
    return line


def run(args: argparse.Namespace) -> int:
    manifest = shard(args)
    print(summary_line(manifest, args.out))
    rejected = args.out.rstrip("/") + "/rejected.jsonl" if storage.is_url(args.out) else os.path.join(args.out, "rejected.jsonl")
    if manifest["num_rejected"]:
        print(f"rejections with reasons: {rejected}")
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
