"""Check a sharded dataset: checksums, index entries against tars, counts, ids, and decode every image.

    viewkit verify OUT

Exit 0 when everything holds; otherwise 1, naming each bad shard and sample key.
"""

from __future__ import annotations

import argparse

from viewkit.shards.verify import verify_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset folder (holding dataset.json), or its URL (s3://bucket/prefix): "
                                    "then each shard is fetched into a temporary folder, checked and let go")
    parser.add_argument("--threads", type=int, default=0, help="DALI decoding threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    problems = verify_dataset(args.out, threads=args.threads, progress=not args.quiet)
    for problem in problems:
        print(f"BAD {problem}")
    print(f"{args.out}: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0
