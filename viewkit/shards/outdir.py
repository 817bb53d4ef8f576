"""The output folder of a sharding run: one writer at a time, and only viewkit's files touched.

A folder may hold a user's own files beside a dataset (notes, backups, other tools'
indices), so `--overwrite` removes exactly what the manifest and the unfinished run's
journal name, never whatever matches a suffix. A second run into the same folder while
one is writing is refused: its `--overwrite` would delete shards the first still reports.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from pathlib import Path

from viewkit.shards import format as fmt

JOURNAL_NAME = ".progress.jsonl"


@contextlib.contextmanager
def writer_lock(out: Path):
    """Holds an exclusive lock on the folder itself while a run writes there.

    choice: flock on the directory's own descriptor, not a lock file: nothing is left in OUT
    for a user to wonder about, and the kernel drops the lock when a killed run's process
    ends, so a kill never leaves a stale lock behind.
    """
    descriptor = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise FileExistsError(f"{out}: another `viewkit shard` run is writing here; wait for it to end "
                                      "or choose another output folder") from None
            raise
        yield
    finally:
        os.close(descriptor)


def _named_by_journal(out: Path) -> tuple[set[str], set[str]]:
    """Shard files an unfinished run recorded, and the shard-name prefixes it wrote under."""
    names, prefixes = set(), set()
    journal = out / JOURNAL_NAME
    if not journal.exists():
        return names, prefixes
    lines = journal.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a kill
        if number == 0 and "prefix" in record:
            prefixes.add(record["prefix"])
        for key in ("tar", "index"):
            if isinstance(record.get(key), str):
                names.add(record[key])
    return names, prefixes


def viewkit_files(out: Path) -> list[Path]:
    """The files of `out` that a viewkit run wrote, as its manifest and journal name them.

    Shard temporaries (`<prefix>-NNNNNN.tar.tmp`, `.idx.tmp`) count when their prefix is the
    manifest's split or the journal's: that is the shard a killed run was writing.
    """
    names, prefixes = _named_by_journal(out)
    names |= {fmt.MANIFEST_NAME, fmt.REJECTED_NAME, JOURNAL_NAME}
    manifest_path = out / fmt.MANIFEST_NAME
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            manifest = {}
        for shard in manifest.get("shards", []) if isinstance(manifest, dict) else []:
            names |= {shard.get("tar"), shard.get("index")} - {None}
        if isinstance(manifest, dict) and isinstance(manifest.get("split"), str):
            prefixes.add(manifest["split"])
    names |= {name + ".tmp" for name in list(names)}
    shard_tmp = re.compile("|".join(re.escape(p) + r"-\d{6}\.(tar|idx)\.tmp" for p in prefixes) or r"(?!)")
    return sorted(p for p in out.iterdir() if p.is_file() and (p.name in names or shard_tmp.fullmatch(p.name)))


def clear_output(out: Path) -> None:
    """Removes what an earlier viewkit run wrote there, and nothing else."""
    for path in viewkit_files(out):
        path.unlink()


def damaged_shards(out: Path, manifest: dict, check_hashes: bool = False) -> list[tuple[int, str]]:
    """Shards of a finished dataset whose files are missing or differ from the manifest:
    (position in manifest["shards"], why). Sizes and index hashes always; tar hashes when asked."""
    damaged = []
    for position, shard in enumerate(manifest["shards"]):
        tar, index = out / shard["tar"], out / shard["index"]
        if not tar.exists() or not index.exists():
            why = "missing " + " and ".join(p.name for p in (tar, index) if not p.exists())
        elif tar.stat().st_size != shard["bytes"]:
            why = f"{tar.name} has {tar.stat().st_size} bytes, the manifest says {shard['bytes']}"
        elif fmt.sha256_file(index) != shard["index_sha256"]:
            why = f"{index.name} differs from the manifest"
        elif check_hashes and fmt.sha256_file(tar) != shard["sha256"]:
            why = f"{tar.name}: sha256 differs from the manifest"
        else:
            continue
        damaged.append((position, why))
    return damaged


def _written_names(prefix: str) -> re.Pattern:
    """Every name a run with shard prefix `prefix` writes in OUT, temporaries included."""
    shard = re.escape(prefix) + r"-\d{6}\.(tar|idx)"
    ours = "|".join(re.escape(n) for n in (fmt.MANIFEST_NAME, fmt.REJECTED_NAME, JOURNAL_NAME))
    return re.compile(rf"({shard}|{ours})(\.tmp)?")


def refuse_links(out: Path, prefix: str) -> None:
    """A link named like a file this run writes is refused before anything is read or written:
    writing there would overwrite the link's target, wherever it is."""
    names = _written_names(prefix)
    links = sorted(p.name for p in out.iterdir() if p.is_symlink() and names.fullmatch(p.name))
    if links:
        raise ValueError(f"{out}: {_listed(links)} {'is a link' if len(links) == 1 else 'are links'} where viewkit "
                         "writes its own files; it never writes through links: remove "
                         f"{'it' if len(links) == 1 else 'them'} or choose another output folder")


def refuse_foreign_files(out: Path, prefix: str, max_shards: int) -> None:
    """Files a new run would write over (shards numbered below `max_shards`, its other files),
    when no manifest or journal says a viewkit run made them."""
    if (out / JOURNAL_NAME).exists() or (out / fmt.MANIFEST_NAME).exists():
        return
    names = _written_names(prefix)

    def would_write(name: str) -> bool:
        if not names.fullmatch(name) or name.startswith(JOURNAL_NAME):
            return False
        number = name[len(prefix) + 1 : len(prefix) + 7]
        return not name.startswith(prefix + "-") or not number.isdigit() or int(number) < max_shards

    foreign = sorted(p.name for p in out.iterdir() if would_write(p.name))
    if foreign:
        raise ValueError(f"{out}: holds {_listed(foreign)}, named like the files this run writes, and no viewkit "
                         "manifest or journal names them; move them away or choose another output folder")


def _listed(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
