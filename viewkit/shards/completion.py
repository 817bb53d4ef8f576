"""A finished dataset sharded again with the same inputs and options: checked, not trusted.

The manifest and rejected.jsonl are claims about the shards, and either may have been
edited or lost since. So everything they say that the inputs, the options and the shard
files determine is derived again here and compared: shards whose files are missing or
differ are written again (viewkit.shards.repair, never destroying), then the manifest and
rejected.jsonl are rewritten where they differ from what was derived, each change named.

Derived: every count (samples per shard from the index files, ids, inputs, rejections),
the classes, components and options from the listing. The rejection reasons come from
preparing again only the inputs of the shards that lost some (a shard's `inputs` slice holds
more inputs than samples), so a dataset without rejections costs no preparation at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest
from viewkit.shards.outdir import damaged_shards
from viewkit.shards.repair import rewrite_shard
from viewkit.shards.order import samples_per_shard, shuffled_order
from viewkit.shards.samples import component_table, verdicts
from viewkit.writes import open_new, writing


def complete_dataset(listing, out: Path, split: str, options, fingerprint: str, check_hashes: bool,
                     progress: bool) -> dict:
    """The manifest of OUT made true again (the caller holds the writer lock); the result says
    `already_complete`, or lists what was `repaired`."""
    manifest = read_manifest(out, consistent=False)
    manifest.pop("root")
    if manifest["fingerprint"] != fingerprint:
        raise FileExistsError(f"{out / fmt.MANIFEST_NAME} is another dataset (other inputs or options); pass "
                              "--overwrite or choose another folder")
    if manifest["split"] != split:
        raise ValueError(f"{out / fmt.MANIFEST_NAME}: split {manifest['split']!r}, the fingerprint says {split!r}")
    order = shuffled_order(len(listing.items), options.seed)
    workers = options.workers or os.cpu_count() or 1
    shards = [dict(shard) for shard in manifest["shards"]]
    if any("inputs" not in shard for shard in shards):
        _cut_again(listing, order, options, shards, samples_per_shard(listing, options))
    _check_slices(out, shards, len(order))
    _count_from_indices(out, shards)
    done = []
    with ThreadPoolExecutor(workers, thread_name_prefix="viewkit-repair") as pool:
        for position, why in damaged_shards(out, {"shards": shards}, check_hashes):
            if progress:
                tqdm.write(f"{out / shards[position]['tar']}: {why}; writing it again")
            how, shards[position] = rewrite_shard(listing, out, shards[position], order, options, pool, workers)
            done.append(f"{shards[position]['tar']} ({why})" if how == "rewrote"
                        else f"{fmt.MANIFEST_NAME}'s entry of {shards[position]['tar']} ({why}, the file is "
                             "what the inputs give)")
        rejected = _rejections(listing, order, options, shards, pool)
    derived = _derived_manifest(listing, split, options, fingerprint, shards, len(rejected))
    if _rejected_text(rejected) != _read_or_none(out / fmt.REJECTED_NAME):
        with writing(out / fmt.REJECTED_NAME), open_new(out / (fmt.REJECTED_NAME + ".tmp"), "w") as f:
            f.write(_rejected_text(rejected))
        os.replace(out / (fmt.REJECTED_NAME + ".tmp"), out / fmt.REJECTED_NAME)
        done.append(f"{fmt.REJECTED_NAME} (missing or differing from the inputs' rejections)")
    changed = _changed_fields(manifest, derived)
    if changed:
        fmt.write_json_atomic(out / fmt.MANIFEST_NAME, derived)
        done.append(f"{fmt.MANIFEST_NAME} ({_listed(changed)} differed from the inputs and shards)")
    return derived | ({"repaired": done} if done else {"already_complete": True})


def _cut_again(listing, order: list[int], options, shards: list[dict], per_shard: int) -> None:
    """The `inputs` slices of a manifest written before they were recorded, from a verdict on
    every input (the cost of preparing them all, once)."""
    from viewkit.shards.ray_engine import Cutter

    cutter = Cutter(0, len(order), per_shard, 0)
    cuts = cutter.feed(verdicts(listing, order, options))
    if len(cuts) != len(shards):
        raise ValueError(f"the inputs now make {len(cuts)} shards, the manifest lists {len(shards)}; an input "
                         "changed without changing its size or time: shard again with --overwrite")
    for shard, (start, end, _) in zip(shards, cuts):
        shard["inputs"] = [start, end]


def _count_from_indices(out: Path, shards: list[dict]) -> None:
    """Samples per shard from each index that is the one the entry names (by its sha256), and
    the ids they give; an index that is not stays for the repair to judge."""
    next_id = 0
    for shard in shards:
        index = out / shard["index"]
        if index.is_file():
            data = index.read_bytes()
            if hashlib.sha256(data).hexdigest() == shard["index_sha256"]:
                shard["samples"] = int(data.split(b"\n", 1)[0].split()[1])
        shard["first_id"] = next_id
        next_id += shard["samples"]


def _check_slices(out: Path, shards: list[dict], num_items: int) -> None:
    if shards and shards[-1]["inputs"][1] > num_items:
        raise ValueError(f"{out / fmt.MANIFEST_NAME}: shards[{len(shards) - 1}].inputs ends at "
                         f"{shards[-1]['inputs'][1]}, past the {num_items} inputs listed")


def _rejections(listing, order: list[int], options, shards: list[dict], pool) -> list[dict]:
    """Every rejected input with its reason: the listing's own, then the shards' and the trailing
    ones, found by preparing again only the slices that hold more inputs than samples."""
    slices = [(shard["inputs"][0], shard["inputs"][1], shard["samples"], shard["tar"]) for shard in shards]
    end = shards[-1]["inputs"][1] if shards else 0
    if end < len(order):
        slices.append((end, len(order), 0, "after the last shard"))
    lossy = [(start, stop, samples, name) for start, stop, samples, name in slices if stop - start > samples]
    found = list(listing.rejected)
    results = pool.map(lambda s: verdicts(listing, order[s[0]:s[1]], options), lossy)
    for (start, stop, samples, name), reasons in zip(lossy, results):
        lost = [(position, reason) for position, reason in zip(range(start, stop), reasons) if reason is not None]
        if len(lost) != stop - start - samples:
            raise ValueError(f"{name}: its {stop - start} inputs now give {stop - start - len(lost)} samples, the "
                             f"shard holds {samples}; an input changed without changing its size or time: shard "
                             "again with --overwrite")
        found += [{"path": listing.items[order[position]].rel, "reason": reason} for position, reason in lost]
    return sorted(found, key=lambda r: r["path"])


def _derived_manifest(listing, split: str, options, fingerprint: str, shards: list[dict], num_rejected: int) -> dict:
    return {
        "format": fmt.FORMAT_NAME,
        "version": fmt.FORMAT_VERSION,
        "source": listing.kind,
        "split": split,
        "num_samples": sum(shard["samples"] for shard in shards),
        "num_inputs": len(listing.items) + len(listing.rejected),
        "num_rejected": num_rejected,
        "samples_per_shard": samples_per_shard(listing, options),
        "classes": listing.classes,
        "components": component_table(has_boxes=any(i.coco is not None for i in listing.items)),
        "shards": shards,
        "options": {k: v for k, v in asdict(options).items() if k != "workers"},
        "fingerprint": fingerprint,
    }


def _changed_fields(found: dict, derived: dict) -> list[str]:
    changed = [key for key in sorted(set(found) | set(derived)) if key != "shards" and found.get(key) != derived.get(key)]
    for position, (old, new) in enumerate(zip(found["shards"], derived["shards"])):
        changed += [f"shards[{position}].{key}" for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    if len(found["shards"]) != len(derived["shards"]):
        changed.append("shards")
    return changed


def _listed(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _rejected_text(rejected: list[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejected)


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
