"""dataset.json checked against docs/format.md before any use: it is untrusted input.

A dataset folder may come from anywhere (a colleague's bucket, an archive, an edit by
hand), and every command and the loader join its shard names to the folder and read its
counts as sizes. So a name must be a plain file name inside the folder, a count an integer
in range, every field of its documented type, and the counts must agree with each other.
A failure is one ValueError naming the file and the field, e.g.
`OUT/dataset.json: shards[3].tar: '../victim.tar' is not a plain file name in the dataset folder`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from viewkit.local_paths import refuse_url
from viewkit.shards import format as fmt

# choice: 2**48 samples (281 trillion) is far past any image collection and still exact in
# a float64, so a count from a JSON file of any origin stays an exact integer downstream.
MAX_COUNT = 2**48
MAX_BYTES = 2**53
SOURCES = ("imagenet", "coco", "folder")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,199}")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,99}")


class _Check:
    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, why: str):
        raise ValueError(f"{self.where}: {field}: {why}")

    def mapping(self, value, field: str) -> dict:
        if not isinstance(value, dict):
            self.fail(field, f"expected an object, found {_kind(value)}")
        return value

    def listing(self, value, field: str) -> list:
        if not isinstance(value, list):
            self.fail(field, f"expected a list, found {_kind(value)}")
        return value

    def text(self, value, field: str) -> str:
        if not isinstance(value, str):
            self.fail(field, f"expected a string, found {_kind(value)}")
        return value

    def count(self, value, field: str, low: int = 0, high: int = MAX_COUNT) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"expected an integer, found {_kind(value)}")
        if not low <= value <= high:
            self.fail(field, f"{value} is outside {low}..{high}")
        return value

    def digest(self, value, field: str) -> str:
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            self.fail(field, f"expected 64 lowercase hex digits (a sha256), found {_short(value)}")
        return value

    def file_name(self, value, field: str, suffix: str) -> str:
        self.text(value, field)
        if not _PLAIN_NAME.fullmatch(value) or value in (".", "..") or not value.endswith(suffix):
            self.fail(field, f"{_short(value)} is not a plain file name in the dataset folder ending in {suffix} "
                             "(no '/', no leading '.')")
        return value


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number with a fraction or exponent", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_manifest(manifest, where: str, consistent: bool = True) -> dict:
    """`manifest` as parsed from JSON, checked field by field; returns it. `where` names the file.

    `consistent=False` checks names, types and ranges but not that the counts add up: for
    `verify`, which reports such disagreements among its findings, and `shard`, which derives
    the counts again from the inputs and the shard files and rewrites what differs."""
    check = _Check(where)
    if not isinstance(manifest, dict):
        check.fail("top level", f"expected an object, found {_kind(manifest)}")
    for key in ("format", "version", "source", "split", "num_samples", "num_inputs", "num_rejected",
                "samples_per_shard", "classes", "components", "shards", "options", "fingerprint"):
        if key not in manifest:
            check.fail(key, "missing")
    if manifest["format"] != fmt.FORMAT_NAME:
        check.fail("format", f"{_short(manifest['format'])}, expected {fmt.FORMAT_NAME!r}")
    if manifest["version"] != fmt.FORMAT_VERSION or isinstance(manifest["version"], bool):
        check.fail("version", f"{_short(manifest['version'])}, this viewkit reads {fmt.FORMAT_VERSION}; "
                              "re-shard with this version")
    if manifest["source"] not in SOURCES:
        check.fail("source", f"{_short(manifest['source'])}, expected one of {', '.join(SOURCES)}")
    split = check.text(manifest["split"], "split")
    if not SPLIT_NAME.fullmatch(split):
        check.fail("split", f"{_short(split)} is not a plain name (it prefixes the shard files)")
    num_samples = check.count(manifest["num_samples"], "num_samples")
    num_inputs = check.count(manifest["num_inputs"], "num_inputs")
    num_rejected = check.count(manifest["num_rejected"], "num_rejected")
    if consistent and num_inputs != num_samples + num_rejected:
        check.fail("num_inputs", f"{num_inputs} is not num_samples + num_rejected ({num_samples} + {num_rejected})")
    per_shard = check.count(manifest["samples_per_shard"], "samples_per_shard", low=1)
    _validate_classes(check, manifest["classes"])
    components = check.mapping(manifest["components"], "components")
    for name, description in components.items():
        check.text(description, f"components[{name!r}]")
    if fmt.IMAGE not in components or fmt.SAMPLE_ID not in components:
        check.fail("components", f"lacks {fmt.IMAGE!r} or {fmt.SAMPLE_ID!r}, which every viewkit shard holds")
    check.mapping(manifest["options"], "options")
    check.digest(manifest["fingerprint"], "fingerprint")
    _validate_shards(check, manifest["shards"], split, num_samples, num_inputs, per_shard, consistent)
    return manifest


def _validate_classes(check: _Check, classes) -> None:
    check.listing(classes, "classes")
    for position, entry in enumerate(classes):
        field = f"classes[{position}]"
        check.mapping(entry, field)
        if entry.get("index") != position or isinstance(entry.get("index"), bool):
            check.fail(f"{field}.index", f"{_short(entry.get('index'))}, expected {position} (its place in the list)")
        if isinstance(entry.get("id"), bool) or not isinstance(entry.get("id"), (str, int)):
            check.fail(f"{field}.id", f"expected a string or an integer, found {_kind(entry.get('id'))}")
        check.text(entry.get("name"), f"{field}.name")


def _validate_shards(check: _Check, shards, split: str, num_samples: int, num_inputs: int, per_shard: int,
                     consistent: bool) -> None:
    check.listing(shards, "shards")
    next_id, next_input = 0, 0
    for position, shard in enumerate(shards):
        field = f"shards[{position}]"
        check.mapping(shard, field)
        for key in ("tar", "index", "samples", "bytes", "sha256", "index_sha256", "first_id"):
            if key not in shard:
                check.fail(f"{field}.{key}", "missing")
        tar = check.file_name(shard["tar"], f"{field}.tar", ".tar")
        index = check.file_name(shard["index"], f"{field}.index", ".idx")
        expected = fmt.shard_name(split, position)
        if tar != expected + ".tar":  # the writer's names: no other file of the folder is a shard
            check.fail(f"{field}.tar", f"{tar!r}, expected {expected + '.tar'!r} (split {split!r}, shard {position})")
        if index != expected + ".idx":
            check.fail(f"{field}.index", f"{index!r} is not the index of {tar!r} ({expected}.idx)")
        last = position == len(shards) - 1
        samples = check.count(shard["samples"], f"{field}.samples", low=1)
        if consistent and (samples > per_shard or (not last and samples != per_shard)):
            check.fail(f"{field}.samples", f"{samples}, but every shard except the last holds samples_per_shard "
                                           f"({per_shard})")
        check.count(shard["bytes"], f"{field}.bytes", low=fmt.TAR_BLOCK, high=MAX_BYTES)
        check.digest(shard["sha256"], f"{field}.sha256")
        check.digest(shard["index_sha256"], f"{field}.index_sha256")
        if check.count(shard["first_id"], f"{field}.first_id") != next_id and consistent:
            check.fail(f"{field}.first_id", f"{shard['first_id']}, expected {next_id} (ids run on from shard to shard)")
        next_id += samples
        if "converted" in shard:
            for reason, count in check.mapping(shard["converted"], f"{field}.converted").items():
                check.count(count, f"{field}.converted[{reason!r}]", low=1, high=samples)
        if "inputs" in shard:
            inputs = check.listing(shard["inputs"], f"{field}.inputs")
            if len(inputs) != 2:
                check.fail(f"{field}.inputs", f"expected [start, end], found {_short(inputs)}")
            start = check.count(inputs[0], f"{field}.inputs[0]", high=num_inputs)
            end = check.count(inputs[1], f"{field}.inputs[1]", high=num_inputs)
            if start != next_input or end < start or (consistent and end - start < samples):
                check.fail(f"{field}.inputs", f"{inputs} does not continue the previous shard's slice at {next_input} "
                                              f"with at least its {samples} samples")
            next_input = end
    if consistent and next_id != num_samples:
        check.fail("num_samples", f"{num_samples}, but the shards hold {next_id}")


def read_manifest(root: str | os.PathLike, consistent: bool = True) -> dict:
    """OUT/dataset.json (or the file itself), parsed and validated; `root` is added: the folder."""
    refuse_url(root, "a dataset")
    path = Path(root)
    if path.is_dir():
        path = path / fmt.MANIFEST_NAME
    if path.name != fmt.MANIFEST_NAME or not path.is_file():
        raise FileNotFoundError(fmt.not_a_dataset(Path(root)))
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: the manifest is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{path}: the manifest nests too deeply to be a viewkit manifest") from None
    validate_manifest(manifest, str(path), consistent)
    manifest["root"] = str(path.parent.resolve())
    return manifest
