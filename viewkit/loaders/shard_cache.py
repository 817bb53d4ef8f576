"""A node-local cache of a dataset in object storage, so that DALI reads local files.

DALI's webdataset reader takes `s3://` paths but asks the store for every member of every
sample (two ranged GETs a sample): 135-189 samples/s from a local S3 server, against
5,200-8,100 from local files. Here each shard is fetched whole (one GET; s3fs splits a large
one into parallel ranged GETs), checked against the manifest's sha256 before any pipeline
sees it, written under a temporary name and renamed. The manifest is fetched at every
open (one small GET: the store is the truth), index files when missing or stale.

DALI opens every shard of its part when a pipeline is built, so a rank's part of an epoch
must be here at once: the tars are fetched in parallel just before the build, and for the
next epoch while this one runs (the loader builds it ahead from mid-epoch). Shards not
needed now are evicted, least recently used first, to stay within the budget. The ranks of
a node share the folder and fetch each shard once: a shard's lock file is held exclusively
while it is fetched and shared while a pipeline opens it, and eviction takes a shard only
when it can lock it exclusively, so it never removes one that a pipeline is about to open
(one a pipeline has opened stays readable: its file is open).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from viewkit import storage
from viewkit.shards import format as fmt

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(value) -> int:
    """50GB, 1.5TiB, 2e9 or an integer: bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"cache_limit {value!r}: a size such as 50GB, 500MiB or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def default_folder() -> Path:
    """VIEWKIT_CACHE_DIR, else $XDG_CACHE_HOME/viewkit, else ~/.cache/viewkit."""
    if os.environ.get("VIEWKIT_CACHE_DIR"):
        return Path(os.environ["VIEWKIT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "viewkit"


def dataset_folder(url: str, cache_dir: str | os.PathLike | None) -> Path:
    """One folder per dataset URL under the cache folder."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", url.split("://", 1)[1].rstrip("/"))[-60:].strip("-.") or "dataset"
    return Path(cache_dir or default_folder()) / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def default_limit(folder: Path) -> int:
    """VIEWKIT_CACHE_LIMIT, else 80% of what the cache disk has free plus what the cache holds."""
    if os.environ.get("VIEWKIT_CACHE_LIMIT"):
        return parse_bytes(os.environ["VIEWKIT_CACHE_LIMIT"])
    folder.mkdir(parents=True, exist_ok=True)
    held = sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())
    return int(0.8 * (shutil.disk_usage(folder).free + held))


class ShardCache:
    def __init__(self, url: str, folder: Path, limit: int, workers: int = 8, rehash: bool = False):
        """`rehash`: a shard the cache held before this process is hashed again once, before
        this process uses it (a shard fetched here was checked as it came)."""
        self.url, self.folder, self.limit, self.workers, self.rehash = url, folder, limit, workers, rehash
        self._checked_here: set[str] = set()
        self.fs = storage.filesystem(url)
        (folder / ".locks").mkdir(parents=True, exist_ok=True)
        self.fetched = 0  # objects fetched by this process, and their bytes: tests and benchmarks count them
        self.fetched_bytes = 0
        self._counting = threading.Lock()  # the fetch threads add to both

    # --- small files: the manifest and the index files -------------------------------------

    def fetch_manifest(self) -> Path:
        """dataset.json, fetched again at every open."""
        path = self.folder / fmt.MANIFEST_NAME
        self._download(fmt.MANIFEST_NAME, path, what="the manifest")
        return path

    def fetch_indices(self, shards: list[dict]) -> None:
        """Each shard's index file, where missing or not the manifest's (index_sha256)."""
        def one(shard):
            path = self.folder / shard["index"]
            with self._lock(shard["index"], fcntl.LOCK_EX):
                if not (path.is_file() and fmt.sha256_file(path) == shard["index_sha256"]):
                    self._download(shard["index"], path, what=f"index {shard['index']}",
                                   expect=(None, shard["index_sha256"]))
        self._parallel(one, shards)

    # --- tars -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def holding(self, shards: list[dict]):
        """Every shard's tar here and checked while the block runs (a pipeline opens them)."""
        need = sum(shard["bytes"] for shard in shards)
        if need > self.limit:
            raise ValueError(f"cache_limit {human_size(self.limit)} is below the {human_size(need)} of the "
                             f"{len(shards)} shards this rank's pipeline opens at once (DALI opens every shard of "
                             f"its part when it builds); raise cache_limit (or VIEWKIT_CACHE_LIMIT) or use more ranks")
        held = []  # appended by the threads (atomic): a shard that fails leaves the others' locks to release

        def hold(shard):
            held.append(self._hold(shard))

        try:
            missing = [shard for shard in shards if not self._verified(shard)]
            # also with nothing to fetch: another rank may have left the folder over budget
            self._evict(sum(shard["bytes"] for shard in missing), keep={shard["tar"] for shard in shards})
            self._parallel(hold, shards)
            yield
        finally:
            for handle in held:
                os.close(handle)

    def _hold(self, shard: dict) -> int:
        """The tar checked (fetched first if it is not): returns its lock, held shared."""
        while True:
            with self._lock(shard["tar"], fcntl.LOCK_EX):
                if self._verified(shard) and self.rehash and shard["tar"] not in self._checked_here \
                        and fmt.sha256_file(self.folder / shard["tar"]) != shard["sha256"]:
                    self._record(shard["tar"]).unlink()  # changed on this disk since it was checked
                if not self._verified(shard):
                    self._fetch_tar(shard)
                self._checked_here.add(shard["tar"])
            handle = self._open_lock(shard["tar"])
            fcntl.flock(handle, fcntl.LOCK_SH)
            if self._verified(shard):  # not evicted between the two locks
                os.utime(self._record(shard["tar"]))  # used now: the last to be evicted
                return handle
            os.close(handle)

    def _fetch_tar(self, shard: dict) -> None:
        path = self.folder / shard["tar"]
        path.unlink(missing_ok=True)
        self._record(shard["tar"]).unlink(missing_ok=True)
        self._download(shard["tar"], path, what=f"shard {shard['tar']}", expect=(shard["bytes"], shard["sha256"]))
        stat = path.stat()
        record = {"sha256": shard["sha256"], "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        temporary = self._record(shard["tar"]).with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, self._record(shard["tar"]))

    def _verified(self, shard: dict) -> bool:
        """Fetched and checked by some rank, and untouched since (size and mtime as recorded)."""
        try:
            record = json.loads(self._record(shard["tar"]).read_text())
            stat = (self.folder / shard["tar"]).stat()
        except (OSError, ValueError):
            return False
        return record == {"sha256": shard["sha256"], "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns} \
            and stat.st_size == shard["bytes"]

    def _evict(self, incoming: int, keep: set[str]) -> None:
        """Removes shards not in `keep`, least recently used first, until `incoming` bytes fit
        the budget. A shard another rank holds (its lock taken) is passed over."""
        records = sorted(self.folder.glob("*.tar.verified"), key=lambda path: path.stat().st_mtime_ns)
        used = sum(path.stat().st_size for path in self.folder.glob("*.tar*") if path.suffix != ".verified")
        for record in records:
            if used + incoming <= self.limit:
                return
            name = record.name.removesuffix(".verified")
            if name in keep:
                continue
            handle = self._open_lock(name)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            try:
                tar = self.folder / name
                used -= tar.stat().st_size if tar.exists() else 0
                record.unlink(missing_ok=True)
                tar.unlink(missing_ok=True)
            finally:
                os.close(handle)

    # --- plumbing ---------------------------------------------------------------------------

    def _record(self, name: str) -> Path:
        return self.folder / f"{name}.verified"

    def _open_lock(self, name: str) -> int:
        return os.open(self.folder / ".locks" / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def _lock(self, name: str, kind: int):
        handle = self._open_lock(name)
        try:
            fcntl.flock(handle, kind)
            yield
        finally:
            os.close(handle)

    def _parallel(self, action, items: list) -> list:
        if len(items) <= 1:
            return [action(item) for item in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
            return list(pool.map(action, items))

    def _download(self, name: str, path: Path, what: str, expect: tuple[int | None, str] | None = None) -> None:
        """One object to `path` through a temporary name; with `expect` = (size, sha256) the
        bytes are checked first, and a download that differs is fetched again (then refused)."""
        url = storage.join(self.url, name)
        temporary = path.with_name(f"{path.name}.part-{os.getpid()}")

        def fetch():
            try:
                actual, digest = storage.download(self.fs, url, temporary)
                with self._counting:
                    self.fetched += 1
                    self.fetched_bytes += actual
                if expect is not None:
                    size, sha256 = expect
                    if size is not None and actual != size:
                        raise _Corrupt(f"{actual} bytes, the manifest says {size}")
                    if digest != sha256:
                        raise _Corrupt("its sha256 differs from the manifest's")
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise

        storage.retrying(fetch, url, what)
        os.replace(temporary, path)


class _Corrupt(ConnectionError):
    """A download whose bytes are not the manifest's: fetched again, then refused."""
    corrupt = True


def human_size(count: int) -> str:
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} B"
