"""Writes one shard: a deterministic tar plus its DALI index, hashed while written.

Written by hand rather than with `tarfile.TarFile.addfile` because the index needs each
member's data offset and the manifest its sha256, both known here for free as the bytes
stream out. Headers are filled into a fixed ustar template: `tarfile.TarInfo.tobuf`
gives the same bytes (tested) but took 32 us a header, the largest cost per sample.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tarfile
import threading
from pathlib import Path

from viewkit.shards.format import TAR_BLOCK, index_text
from viewkit.writes import open_new, writing

_TAR_RECORD = 20 * TAR_BLOCK  # GNU tar and Python's tarfile pad archives to whole records
_NAME, _SIZE, _CHECKSUM = slice(0, 100), slice(124, 136), slice(148, 156)


def _header_template() -> bytes:
    info = tarfile.TarInfo("x")
    info.size, info.mtime, info.mode = 0, 0, 0o644
    info.uname = info.gname = ""
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[_NAME] = bytes(100)
    header[_SIZE] = bytes(12)
    header[_CHECKSUM] = b" " * 8
    return bytes(header)


_TEMPLATE = _header_template()
_TEMPLATE_SUM = sum(_TEMPLATE)


def ustar_header(name: str, size: int) -> bytes:
    """The header `tarfile.TarInfo(name).tobuf(USTAR_FORMAT)` writes for a regular file
    of `size` bytes with mtime 0, mode 0644 and no owner."""
    encoded = name.encode("ascii")
    if len(encoded) > 100:
        raise ValueError(f"member name {name!r} is longer than ustar's 100 bytes")
    size_field = b"%011o\0" % size
    checksum = _TEMPLATE_SUM + sum(encoded) + sum(size_field)
    header = bytearray(_TEMPLATE)
    header[0 : len(encoded)] = encoded
    header[_SIZE] = size_field
    header[_CHECKSUM] = b"%06o\0 " % checksum
    return bytes(header)


class _BackgroundHash:
    """sha256 in a helper thread: hashlib releases the GIL, so hashing overlaps with
    writing (it was the largest serial cost left, 75 us for a 110 kB sample)."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="viewkit-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            self._digest.update(block)

    def update(self, block: bytes) -> None:
        self._queue.put(block)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest()


class ShardWriter:
    def __init__(self, tar_path: Path):
        self.tar_path = tar_path
        self.tmp_path = tar_path.with_name(tar_path.name + ".tmp")
        self._file = open_new(self.tmp_path)
        self._hash = _BackgroundHash()
        self.offset = 0
        self.samples: list[list[tuple[str, int, int, str]]] = []
        self.converted: dict[str, int] = {}  # why samples were re-encoded -> how many

    def _write(self, block: bytes) -> None:
        with writing(self.tar_path):
            self._file.write(block)
        self._hash.update(block)
        self.offset += len(block)

    def add_sample(self, key: str, components: list[tuple[str, bytes]], conversion: str | None = None) -> None:
        if conversion is not None:
            self.converted[conversion] = self.converted.get(conversion, 0) + 1
        entries, parts, offset = [], [], self.offset
        for extension, data in components:
            name = f"{key}.{extension}"
            parts += (ustar_header(name, len(data)), data)
            entries.append((extension, offset + TAR_BLOCK, len(data), name))
            padding = -len(data) % TAR_BLOCK
            if padding:
                parts.append(bytes(padding))
            offset += TAR_BLOCK + len(data) + padding
        self._write(b"".join(parts))  # one write and one hash hand-off per sample
        self.samples.append(entries)

    def finish(self, install: bool = True) -> dict:
        """Closes the tar, writes the index, renames both into place; returns their record.
        `install=False` leaves both at their temporary names, for `install` or `discard` later."""
        self._write(bytes(2 * TAR_BLOCK))
        if remainder := self.offset % _TAR_RECORD:
            self._write(bytes(_TAR_RECORD - remainder))
        with writing(self.tar_path):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        index_path = self.index_path
        index_bytes = index_text(self.samples).encode("ascii")
        tmp_index = index_path.with_name(index_path.name + ".tmp")
        try:
            with writing(index_path), open_new(tmp_index) as f:
                f.write(index_bytes)
        except OSError:
            tmp_index.unlink(missing_ok=True)
            raise
        if install:
            self.install()
        return {
            "tar": self.tar_path.name,
            "index": index_path.name,
            "samples": len(self.samples),
            "bytes": self.offset,
            "sha256": self._hash.hexdigest(),
            "index_sha256": hashlib.sha256(index_bytes).hexdigest(),
            "converted": dict(sorted(self.converted.items())),
        }

    @property
    def index_path(self) -> Path:
        return self.tar_path.with_suffix(".idx")

    def install(self) -> None:
        """The finished temporaries renamed over the shard's names (index first: a tar in place
        never pairs with an index of other bytes)."""
        os.replace(self.index_path.with_name(self.index_path.name + ".tmp"), self.index_path)
        os.replace(self.tmp_path, self.tar_path)

    def discard(self) -> None:
        for path in (self.tmp_path, self.index_path.with_name(self.index_path.name + ".tmp")):
            path.unlink(missing_ok=True)

    def abort(self) -> None:
        self._hash.hexdigest()  # stops the helper thread
        with contextlib.suppress(OSError):  # a full disk fails the close's flush too; the file goes anyway
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)
