"""Summarise a sharded dataset from its manifest.

    viewkit info OUT
"""

from __future__ import annotations

import argparse

from viewkit.shards.manifest import read_manifest
from viewkit.shards.summaries import conversions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset folder (holding dataset.json), or its URL (s3://bucket/prefix)")


def _shard_counts(shards: list[dict]) -> str:
    """"3 x 150 + 1 x 42 samples": the last shard holds the remainder."""
    *full, last = [s["samples"] for s in shards]
    if not full or full[0] == last:
        return f"{len(shards)} x {last} samples"
    return f"{len(full)} x {full[0]} + 1 x {last} samples"


def describe(manifest: dict) -> str:
    shards = manifest["shards"]
    total_bytes = sum(s["bytes"] for s in shards)
    classes = manifest["classes"]
    class_names = ", ".join(str(c["name"]) for c in classes[:6]) + (" ..." if len(classes) > 6 else "")
    lines = [
        f"dataset    {manifest.get('url') or manifest['root']}",
        f"format     {manifest['format']} v{manifest['version']} from {manifest['source']}, split {manifest['split']!r}",
        f"samples    {manifest['num_samples']} of {manifest['num_inputs']} inputs ({manifest['num_rejected']} rejected)",
        f"shards     {_shard_counts(shards)}, {total_bytes / 1e6:.1f} MB",
        f"stored     {conversions(manifest) or 'every image as its input bytes'}",
        f"classes    {len(classes)}" + (f": {class_names}" if classes else ""),
        f"components {', '.join(manifest['components'])}",
        f"options    {', '.join(f'{k}={v}' for k, v in sorted(manifest['options'].items()))}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from viewkit import storage

    if storage.is_url(args.out):  # the manifest and index files, through the cache; no shard is fetched
        from viewkit.loaders.dataset import open_dataset

        shards = open_dataset(args.out)
        print(describe(shards.manifest | {"url": shards.url}))
    else:
        print(describe(read_manifest(args.out)))
    return 0
