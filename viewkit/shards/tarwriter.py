"""Writes one shard: a deterministic tar plus its DALI index, hashed while written.

Written by hand rather than with `tarfile.TarFile.addfile` because the index needs each
member's data offset and the manifest its sha256, both known here for free as the bytes
stream out; headers still come from `tarfile.TarInfo.tobuf`.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

from viewkit.shards.format import TAR_BLOCK, index_text

_TAR_RECORD = 20 * TAR_BLOCK  # GNU tar and Python's tarfile pad archives to whole records


class ShardWriter:
    def __init__(self, tar_path: Path):
        self.tar_path = tar_path
        self.tmp_path = tar_path.with_name(tar_path.name + ".tmp")
        self._file = open(self.tmp_path, "wb")
        self._hash = hashlib.sha256()
        self.offset = 0
        self.samples: list[list[tuple[str, int, int, str]]] = []

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)

    def add_sample(self, key: str, components: list[tuple[str, bytes]]) -> None:
        entries = []
        for extension, data in components:
            name = f"{key}.{extension}"
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uname = info.gname = ""
            self._write(info.tobuf(format=tarfile.USTAR_FORMAT, encoding="ascii", errors="strict"))
            entries.append((extension, self.offset, len(data), name))
            self._write(data)
            if remainder := len(data) % TAR_BLOCK:
                self._write(b"\0" * (TAR_BLOCK - remainder))
        self.samples.append(entries)

    def finish(self) -> dict:
        """Closes the tar, writes the index, renames both into place; returns their record."""
        self._write(b"\0" * (2 * TAR_BLOCK))
        if remainder := self.offset % _TAR_RECORD:
            self._write(b"\0" * (_TAR_RECORD - remainder))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        index_path = self.tar_path.with_suffix(".idx")
        index_bytes = index_text(self.samples).encode("ascii")
        tmp_index = index_path.with_name(index_path.name + ".tmp")
        tmp_index.write_bytes(index_bytes)
        os.replace(tmp_index, index_path)
        os.replace(self.tmp_path, self.tar_path)
        return {
            "tar": self.tar_path.name,
            "index": index_path.name,
            "samples": len(self.samples),
            "bytes": self.offset,
            "sha256": self._hash.hexdigest(),
            "index_sha256": hashlib.sha256(index_bytes).hexdigest(),
        }

    def abort(self) -> None:
        self._file.close()
        self.tmp_path.unlink(missing_ok=True)
