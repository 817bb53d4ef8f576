"""`viewkit shard ... s3://bucket/prefix`: a dataset written to object storage.

The writer works in a local staging folder as it does for a local output, and each shard,
once written and journaled, is uploaded (its tar, its index, then the journal that names
them) and let go here: staging holds a few shards, never the dataset. An object in a store
exists whole or not at all, so a killed run resumes from the journal in the store, a shard
counting as done when its objects are there with the journal's sizes. rejected.jsonl and
then dataset.json go up last: a manifest in the store means the dataset is complete. The
bytes are a local run's (the same writer makes them).

With the Ray engine each task writes its shard in a temporary folder of its node and
uploads it itself; the driver journals the shards in order and uploads the journal, as the
local engine does. The nodes then share no folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from viewkit import storage
from viewkit.shards import format as fmt
from viewkit.shards.outdir import JOURNAL_NAME


def staging_folder(url: str) -> Path:
    from viewkit.loaders.shard_cache import dataset_folder, default_folder

    return dataset_folder(url, default_folder() / "staging")


class Store:
    """One dataset's prefix in a store: its objects' sizes, uploads and downloads."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs = storage.filesystem(self.url)
        self._sizes: dict[str, int] | None = None

    def sizes(self) -> dict[str, int]:
        """Size of every object under the prefix, by name (listed once, then kept up to date)."""
        if self._sizes is None:
            def listing():
                try:
                    return self.fs.ls(self.url, detail=True, refresh=True)
                except FileNotFoundError:
                    if not self._bucket_exists():  # said as a missing bucket; a missing prefix is empty
                        raise
                    return []
            entries = storage.retrying(listing, self.url, "the listing of the prefix")
            self._sizes = {entry["name"].rsplit("/", 1)[-1]: entry["size"] for entry in entries
                           if entry.get("type") == "file"}
        return self._sizes

    def _bucket_exists(self) -> bool:
        return self.fs.exists(self.url.split("://", 1)[1].split("/", 1)[0])

    def get(self, name: str, local: Path) -> None:
        remote = storage.join(self.url, name)
        storage.retrying(lambda: self.fs.get_file(remote, str(local)), remote, name)

    def put(self, local: Path, name: str) -> None:
        remote = storage.join(self.url, name)
        storage.retrying(lambda: self.fs.put_file(str(local), remote), remote, name)
        self.sizes()[name] = local.stat().st_size

    def remove(self, name: str) -> None:
        if name in self.sizes():
            remote = storage.join(self.url, name)
            storage.retrying(lambda: self.fs.rm_file(remote), remote, name)
            del self._sizes[name]

    def intact(self, record: dict) -> bool:
        """A journaled shard whose tar and index are in the store, the tar of its size."""
        return self.sizes().get(record["tar"]) == record["bytes"] and record["index"] in self.sizes()

    def publish_shard(self, folder: Path, record: dict, journal: Path) -> None:
        """The shard's files up (unless a Ray task uploaded them), then the journal naming it."""
        for name in (record["tar"], record["index"]):
            if (folder / name).exists():
                self.put(folder / name, name)
                (folder / name).unlink()
            else:
                self.sizes()[name] = record["bytes"] if name == record["tar"] else 0
        self.put(journal, JOURNAL_NAME)


def write_to_store(listing, url: str, *, split: str, options, overwrite: bool, progress: bool, after_shard,
                   engine: str, address: str | None, fingerprint: str, write_dataset) -> dict:
    """`write_dataset` (the writer's, passed in: the writer calls this) into a staging
    folder, each shard uploaded as it is journaled."""
    from viewkit.shards.manifest import read_manifest

    store, staging = Store(url), staging_folder(url)
    if overwrite:
        for name in list(store.sizes()):
            if name in (fmt.MANIFEST_NAME, fmt.REJECTED_NAME, JOURNAL_NAME) or _is_shard_file(name, split):
                store.remove(name)
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    if fmt.MANIFEST_NAME in store.sizes():
        (staging / "in-store").mkdir(exist_ok=True)
        store.get(fmt.MANIFEST_NAME, staging / "in-store" / fmt.MANIFEST_NAME)
        manifest = read_manifest(staging / "in-store", consistent=True)
        manifest.pop("root")
        if manifest["fingerprint"] != fingerprint:
            raise FileExistsError(f"{url} holds another dataset (other inputs or options); pass --overwrite or choose "
                                  f"another prefix")
        damaged = [shard["tar"] for shard in manifest["shards"] if not store.intact(shard)]
        if damaged:
            raise ValueError(f"{url}: the manifest's shards {damaged[:3]} are missing or of another size in the store; "
                             f"pass --overwrite to write the dataset again")
        shutil.rmtree(staging, ignore_errors=True)
        return manifest | {"already_complete": True}
    staged = staging / fmt.MANIFEST_NAME
    if staged.exists() and json.loads(staged.read_text()).get("fingerprint") == fingerprint:
        manifest = json.loads(staged.read_text())  # finished here, killed before its upload
    else:
        staged.unlink(missing_ok=True)
        if JOURNAL_NAME in store.sizes():  # the store's journal is the truth: staging may be another machine's
            store.get(JOURNAL_NAME, staging / JOURNAL_NAME)
        manifest = write_dataset(listing, staging, split=split, options=options, progress=progress,
                                 after_shard=after_shard, engine=engine, address=address, store=store)
    if not all(store.intact(shard) for shard in manifest["shards"]):
        raise ValueError(f"{url}: shards went missing from the store while the run wrote it; run the command again")
    store.put(staging / fmt.REJECTED_NAME, fmt.REJECTED_NAME)
    store.put(staging / fmt.MANIFEST_NAME, fmt.MANIFEST_NAME)  # last: the dataset is complete
    store.remove(JOURNAL_NAME)
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _is_shard_file(name: str, split: str) -> bool:
    stem, _, suffix = name.rpartition(".")
    return suffix in ("tar", "idx") and stem.startswith(f"{split}-") and stem[len(split) + 1:].isdigit()
