"""Writes a listing as shuffled, equal-count WebDataset shards; resumes after a kill.

Inputs are shuffled with the seed, read and checked (converted where needed) by a pool
of threads in that order, and streamed into shards of `samples_per_shard` accepted samples each. Sample
ids are given in the shuffled order, so ids are contiguous 0..N-1 whatever is rejected.
After each shard a line goes to a journal (`.progress.jsonl`) with the input position
reached; a restarted run with the same inputs and options checks the finished shards'
hashes and carries on from there, producing the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from viewkit import storage
from viewkit.shards import format as fmt
from viewkit.shards.manifest import SPLIT_NAME
from viewkit.shards.order import samples_per_shard, shuffled_order
from viewkit.shards.summaries import every_input_rejected
from viewkit.shards.outdir import (JOURNAL_NAME, clear_output, refuse_foreign_files, refuse_links,
                                   writer_lock)
from viewkit.shards.sources import SourceListing
from viewkit.shards.samples import component_table, in_order, prepare_tasks, sample_components
from viewkit.shards.tarwriter import ShardWriter
from viewkit.writes import open_append, open_new, writing

__all__ = ["JOURNAL_NAME", "ShardOptions", "write_dataset", "clear_output", "samples_per_shard", "shuffled_order"]
@dataclass(frozen=True)
class ShardOptions:
    shard_size: int = 1_000_000_000  # bytes per shard, a target: counts are what is exact
    shard_samples: int | None = None  # fixes samples per shard, overriding shard_size
    max_side: int | None = None  # downscale larger images to this longest side, re-encoding
    quality: int = 90  # JPEG quality of re-encoded images
    workers: int = 0  # reading/converting threads; 0: all cores
    seed: int = 0  # global shuffle
    full_check: bool = False  # also decode pass-through JPEGs (about 30x slower)

    def __post_init__(self):
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be positive bytes, got {self.shard_size}")
        if self.shard_samples is not None and self.shard_samples <= 0:
            raise ValueError(f"shard_samples must be positive, got {self.shard_samples}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side {self.max_side} is too small (at least 16 px)")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be within 1..100, got {self.quality}")


_SHARD_KEYS = ("tar", "index", "samples", "bytes", "sha256", "index_sha256", "first_id")


def _shard_entries(done: list[dict]) -> list[dict]:
    """Manifest entries of journal records. `inputs` is the slice of the shuffled input order
    a shard was cut from: it lets a later run rewrite that one shard alone."""
    entries, start = [], 0
    for record in done:
        entry = {key: record[key] for key in _SHARD_KEYS} | {"inputs": [start, record["next_input"]]}
        entries.append(entry | ({"converted": record["converted"]} if "converted" in record else {}))
        start = record["next_input"]
    return entries


def _fingerprint(listing: SourceListing, split: str, options: ShardOptions) -> str:
    """Everything the output bytes depend on: inputs (with size and mtime) and options."""
    digest = hashlib.sha256()
    output_options = {k: v for k, v in asdict(options).items() if k != "workers"}
    digest.update(fmt.canonical_json([fmt.FORMAT_VERSION, listing.kind, split, output_options, listing.classes]).encode())
    for item in listing.items:
        stat = os.stat(item.path)
        digest.update(fmt.canonical_json([item.rel, item.label, stat.st_size, stat.st_mtime_ns, item.coco]).encode())
    return digest.hexdigest()


def _read_journal(out: Path, fingerprint: str, intact=None) -> list[dict]:
    """Shards finished by an earlier run of the same job whose files are intact (here, or
    as `intact(record)` says: a store's objects, for a dataset written there)."""
    journal = out / JOURNAL_NAME
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    try:
        header = json.loads(lines[0])
    except (IndexError, json.JSONDecodeError):
        return []
    if header.get("fingerprint") != fingerprint:
        raise FileExistsError(
            f"{out} holds an unfinished run with other inputs or options; "
            "pass --overwrite to start again or choose another output folder"
        )
    done = []
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # torn last line from a kill
        if intact is not None:
            if not intact(record):
                break
            done.append(record)
            continue
        tar, index = out / record["tar"], out / record["index"]
        if not (tar.exists() and index.exists()):
            break
        if fmt.sha256_file(tar) != record["sha256"] or fmt.sha256_file(index) != record["index_sha256"]:
            break
        done.append(record)
    return done


def write_dataset(listing: SourceListing, out: str | os.PathLike, *, split: str, options: ShardOptions,
                  overwrite: bool = False, progress: bool = True, check_hashes: bool = False,
                  after_shard=None, engine: str = "local", address: str | None = None, store=None) -> dict:
    """Shards `listing` into `out`; returns the manifest. `after_shard(record)` is a test hook.
    `engine` "ray" writes the same bytes with the tasks of a Ray cluster (`address`, or a
    local Ray), see viewkit.shards.ray_engine. `out` may be a URL (s3://bucket/prefix): the
    shards are written in a local staging folder and each uploaded when done (store.py).

    A finished dataset of the same inputs and options is checked, not trusted: shards whose
    files are missing or differ (sizes and indices; tar hashes with `check_hashes`) are
    written again, byte for byte as before.
    """
    if not SPLIT_NAME.fullmatch(split):
        raise ValueError(f"split {split!r} names the shard files ({split}-000000.tar) and must be a plain name "
                         "such as train or val: letters, digits and _ . + = -, without a leading '.'")
    if storage.is_url(out):
        from viewkit.shards.store import write_to_store

        return write_to_store(listing, str(out), split=split, options=options, overwrite=overwrite, progress=progress,
                              after_shard=after_shard, engine=engine, address=address,
                              fingerprint=_fingerprint(listing, split, options), write_dataset=write_dataset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out):
        refuse_links(out, split)
        fingerprint = _fingerprint(listing, split, options)
        manifest_path = out / fmt.MANIFEST_NAME
        if overwrite:
            clear_output(out)
        elif manifest_path.exists():
            from viewkit.shards.completion import complete_dataset

            return complete_dataset(listing, out, split, options, fingerprint, check_hashes, progress)
        if engine not in ("local", "ray"):
            raise ValueError(f"engine {engine!r}: local or ray")
        per_shard = samples_per_shard(listing, options)  # a stat of every input: once
        refuse_foreign_files(out, split, -(-len(listing.items) // per_shard))
        job = start_job(listing, out, split, options, fingerprint, per_shard, store)
        if engine == "ray":
            from viewkit.shards.ray_engine import write_shards_ray

            trailing, started = write_shards_ray(job, progress, after_shard, address)
            return finish_job(job, trailing, started)
        return write_shards(job, progress, after_shard)


@dataclass
class ShardJob:
    """A run of the writer: its plan (shard size, shuffled order) and the shards finished so
    far, as the journal holds them. Both engines, local threads and Ray, work from one."""

    listing: SourceListing
    out: Path  # for a dataset written to a store, the local staging folder
    split: str
    options: ShardOptions
    fingerprint: str
    per_shard: int
    order: list[int]
    shards: list[dict]
    rejected: list[dict]
    position: int  # inputs (in shuffled order) consumed by the finished shards
    next_id: int
    store: object | None = None  # a dataset written to object storage: its Store (store.py)

    @property
    def prefix(self) -> str:
        return self.split or "data"

    @property
    def journal(self) -> Path:
        return self.out / JOURNAL_NAME

    def record_shard(self, record: dict, shard_rejected: list[dict]) -> None:
        """A finished shard into the journal, then into the job: a kill after this line keeps it."""
        with writing(self.journal), open_append(self.journal) as f:  # a torn last line is dropped on resume
            f.write(json.dumps(record | {"next_input": record["inputs"][1], "rejected": shard_rejected}) + "\n")
        if self.store is not None:  # the shard's files up, then the journal that names them
            self.store.publish_shard(self.out, record, self.journal)
        self.shards.append(record)
        self.rejected += shard_rejected
        self.position = record["inputs"][1]
        self.next_id = record["first_id"] + record["samples"]


def start_job(listing: SourceListing, out: Path, split: str, options: ShardOptions, fingerprint: str,
              per_shard: int, store=None) -> ShardJob:
    """The plan, and the shards an earlier run of the same job finished (the caller holds the lock)."""
    done = _read_journal(out, fingerprint, store.intact if store is not None else None)
    job = ShardJob(listing, out, split, options, fingerprint, per_shard,
                   shuffled_order(len(listing.items), options.seed), _shard_entries(done),
                   [r for record in done for r in record["rejected"]], done[-1]["next_input"] if done else 0, 0,
                   store)
    job.next_id = sum(s["samples"] for s in job.shards)
    fresh = job.journal.with_name(JOURNAL_NAME + ".tmp")
    with writing(job.journal), open_new(fresh, "w") as f:  # rewritten: drops any torn or unverified tail
        f.write(json.dumps({"fingerprint": fingerprint, "prefix": job.prefix}) + "\n")
        for record in done:
            f.write(json.dumps(record) + "\n")
    os.replace(fresh, job.journal)
    return job


def finish_job(job: ShardJob, trailing_rejected: list[dict], started: float) -> dict:
    """rejected.jsonl and the manifest, written when every shard is; the journal goes."""
    rejected = sorted(job.listing.rejected + job.rejected + trailing_rejected, key=lambda r: r["path"])
    if job.next_id == 0:  # no dataset of 0 samples is left behind: a loader could only fail on it
        job.journal.unlink()
        raise ValueError(every_input_rejected(rejected))
    with writing(job.out / fmt.REJECTED_NAME), open_new(job.out / (fmt.REJECTED_NAME + ".tmp"), "w") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rejected)
    os.replace(job.out / (fmt.REJECTED_NAME + ".tmp"), job.out / fmt.REJECTED_NAME)
    listing, options = job.listing, job.options
    manifest = {
        "format": fmt.FORMAT_NAME,
        "version": fmt.FORMAT_VERSION,
        "source": listing.kind,
        "split": job.split,
        "num_samples": job.next_id,
        "num_inputs": len(listing.items) + len(listing.rejected),
        "num_rejected": len(rejected),
        "samples_per_shard": job.per_shard,
        "classes": listing.classes,
        "components": component_table(has_boxes=any(i.coco is not None for i in listing.items)),
        "shards": job.shards,
        "options": {k: v for k, v in asdict(options).items() if k != "workers"},
        "fingerprint": job.fingerprint,
    }
    fmt.write_json_atomic(job.out / fmt.MANIFEST_NAME, manifest)
    job.journal.unlink()
    manifest["seconds"] = time.perf_counter() - started
    return manifest


def write_shards(job: ShardJob, progress, after_shard) -> dict:
    """Every shard from the journal's end on, then the manifest (the caller holds the lock)."""
    listing, out, options = job.listing, job.out, job.options
    position = shard_start = job.position
    next_id = job.next_id
    workers = options.workers or os.cpu_count() or 1
    tasks = prepare_tasks(listing, job.order[position:], options)
    # Threads, not processes: Pillow releases the GIL while decoding, converting and
    # encoding (measured: 2 threads convert as fast as 2 processes), and pass-through
    # bytes then need no pickling between processes (which halved throughput).
    pool = ThreadPoolExecutor(workers, thread_name_prefix="viewkit-shard")
    results = in_order(pool, tasks, window=4 * workers)
    started = time.perf_counter()
    bar = tqdm(total=len(job.order), initial=position, unit="img", desc=f"shard {job.prefix}", disable=not progress)
    writer, shard_rejected = None, []
    try:
        for position, prepared in enumerate(results, start=position + 1):
            item = listing.items[job.order[position - 1]]
            components = prepared.rejection or sample_components(next_id, item, prepared)
            if isinstance(components, str):
                shard_rejected.append({"path": item.rel, "reason": components})
            else:
                if writer is None:
                    writer = ShardWriter(out / f"{fmt.shard_name(job.prefix, len(job.shards))}.tar")
                    first_id = next_id
                writer.add_sample(fmt.sample_key(next_id), components, prepared.conversion)
                next_id += 1
            bar.update(1)
            if writer is not None and (len(writer.samples) == job.per_shard or position == len(job.order)):
                record = writer.finish() | {"first_id": first_id, "inputs": [shard_start, position]}
                writer, shard_start = None, position
                job.record_shard(record, shard_rejected)
                shard_rejected = []
                bar.set_postfix(shards=len(job.shards), rejected=len(job.rejected) + len(listing.rejected))
                if after_shard is not None:
                    after_shard(record)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    return finish_job(job, shard_rejected, started)
