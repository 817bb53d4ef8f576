"""Checks a sharded dataset end to end: hashes, indices, counts, ids and every image.

Images are decoded with DALI's CPU decoder, the decoder the loaders use, so a dataset
that verifies is one the pipelines can read. DALI fails a whole batch on one bad image;
a failed batch is decoded again one image at a time to name the culprit.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tarfile
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from viewkit import storage
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest


@dataclass(frozen=True)
class Problem:
    shard: str
    key: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.shard}{':' + self.key if self.key else ''}: {self.message}"


class _DaliDecoder:
    """Decodes a batch of encoded images with DALI on the CPU; per-image errors."""

    def __init__(self, batch_size: int, threads: int):
        self.batch_size, self.threads = batch_size, threads
        self._pipes = {}

    def _pipe(self, batch_size: int):
        if batch_size not in self._pipes:
            from nvidia.dali import fn, pipeline_def, types

            @pipeline_def(batch_size=batch_size, num_threads=self.threads, device_id=None,
                          prefetch_queue_depth=1, exec_dynamic=True)
            def decode():
                encoded = fn.external_source(name="encoded", dtype=types.UINT8)
                return fn.decoders.image(encoded, device="cpu", output_type=types.RGB).shape()

            self._pipes[batch_size] = decode()
            self._pipes[batch_size].build()
        return self._pipes[batch_size]

    def _run(self, encoded: list[np.ndarray]) -> tuple[list[tuple[int, ...]], str]:
        """Shapes, and what the decoder warned about on the standard error while it ran."""
        pipe = self._pipe(len(encoded))
        pipe.feed_input("encoded", encoded)
        with _standard_error() as said:
            (shapes,) = pipe.run()
        return [tuple(int(v) for v in np.asarray(shapes[i])) for i in range(len(encoded))], _jpeg_warning(said[0])

    def shapes(self, encoded: list[np.ndarray]) -> list[tuple[int, ...] | str]:
        """Decoded HWC shape per image, or the decoder's error or warning message."""
        try:
            shapes, warned = self._run(encoded)
            if not warned:
                return shapes
        except RuntimeError:
            self._pipes.pop(len(encoded), None)  # a pipeline that failed is not reused
        answers = []
        for one in encoded:  # one at a time, to name the image an error or a warning is about
            try:
                (shape,), warned = self._run([one])
                answers.append(f"damaged JPEG data (the decoder warned: {warned})" if warned else shape)
            except RuntimeError as e:
                self._pipes.pop(1, None)
                answers.append(str(e).strip().splitlines()[0][:200])
        return answers


_ONE_AT_A_TIME = threading.Lock()  # fd 2 is the process's: one captured decode at a time
_single: list = []


def decode_problem(data: bytes) -> str | None:
    """Why DALI's CPU decoder, the loaders' own, cannot decode `data` cleanly; None when it can.
    For `viewkit shard --full-check`, from any thread."""
    with _ONE_AT_A_TIME:
        if not _single:
            _single.append(_DaliDecoder(1, 1))
        (answer,) = _single[0].shapes([np.frombuffer(data, np.uint8)])
    return answer if isinstance(answer, str) else None


def _problem_text(answer: str) -> str:
    return answer if answer.startswith("damaged JPEG data") else f"DALI cannot decode the image: {answer}"


# libjpeg's warnings about the entropy-coded data. It does not fail on them: it fills the rest
# of the image with grey, so the first half of a JPEG with an end marker appended decodes
# "fine". DALI and PIL only print them (PIL not even that), so they are read off fd 2.
_JPEG_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG file", "premature end of data segment")


def _jpeg_warning(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if any(w in line for w in _JPEG_WARNINGS)), "")


@contextlib.contextmanager
def _standard_error():
    """What native code writes to file descriptor 2 inside the block, as a one-item list."""
    sys.stderr.flush()
    said = [""]
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said[0] = sink.read().decode(errors="replace")
    if said[0] and not _jpeg_warning(said[0]):
        sys.stderr.write(said[0])  # anything else is passed on


def _tar_members(path: Path) -> list[tuple[str, int, int]]:
    with tarfile.open(path, "r:") as tar:
        return [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.isfile()]


def _check_shard(root: Path, shard: dict, decoder: _DaliDecoder, problems: list[Problem], seen_ids: list[int], bar) -> None:
    tar_path, index_path = root / shard["tar"], root / shard["index"]
    for path in (tar_path, index_path):
        if not path.exists():
            problems.append(Problem(shard["tar"], None, f"missing file {path}"))
            return
    if fmt.sha256_file(tar_path) != shard["sha256"]:
        problems.append(Problem(shard["tar"], None, "sha256 differs from the manifest"))
    if fmt.sha256_file(index_path) != shard["index_sha256"]:
        problems.append(Problem(shard["index"], None, "sha256 differs from the manifest"))
    try:
        index = fmt.parse_index(index_path)
        members = _tar_members(tar_path)
    except (ValueError, tarfile.TarError) as e:
        problems.append(Problem(shard["tar"], None, f"unreadable: {e}"))
        return
    indexed = [(name, offset, size) for sample in index for (_, offset, size, name) in sample]
    if indexed != members:
        mismatch = next((i for i, (a, b) in enumerate(zip(indexed, members)) if a != b), min(len(indexed), len(members)))
        problems.append(Problem(shard["index"], None, f"index does not match the tar from entry {mismatch} on (stale index?)"))
        return
    if len(index) != shard["samples"]:
        problems.append(Problem(shard["tar"], None, f"{len(index)} samples, manifest says {shard['samples']}"))
    with open(tar_path, "rb") as f:
        def read(offset, size):
            f.seek(offset)
            return f.read(size)

        batch = []
        for sample in index:
            components = {ext: read(offset, size) for ext, offset, size, _ in sample}
            key = sample[0][3].split(".", 1)[0]
            missing = {fmt.IMAGE, fmt.CLASS_TEXT, fmt.METADATA, fmt.SAMPLE_ID, fmt.LABEL} - components.keys()
            if missing:
                problems.append(Problem(shard["tar"], key, f"missing components {sorted(missing)}"))
                continue
            meta = json.loads(components[fmt.METADATA])
            sample_id = int(np.frombuffer(components[fmt.SAMPLE_ID], "<i8")[0])
            label = int(np.frombuffer(components[fmt.LABEL], "<i8")[0])
            if not (sample_id == meta["id"] and key == fmt.sample_key(sample_id)):
                problems.append(Problem(shard["tar"], key, f"id {sample_id} disagrees with key or json ({meta['id']})"))
            if not (label == meta["label"] == int(components[fmt.CLASS_TEXT])):
                problems.append(Problem(shard["tar"], key, "label.i64, cls and json label disagree"))
            if zlib.crc32(components[fmt.IMAGE]) != meta["image_crc32"]:
                problems.append(Problem(shard["tar"], key, "image bytes differ from their crc32 in the json"))
            seen_ids.append(sample_id)
            batch.append((key, meta, np.frombuffer(components[fmt.IMAGE], np.uint8)))
            if len(batch) == decoder.batch_size:
                _decode_batch(shard["tar"], batch, decoder, problems, bar)
                batch = []
        if batch:
            _decode_batch(shard["tar"], batch, decoder, problems, bar)


def _decode_batch(shard_name: str, batch, decoder: _DaliDecoder, problems: list[Problem], bar) -> None:
    for (key, meta, _), shape in zip(batch, decoder.shapes([encoded for _, _, encoded in batch])):
        if isinstance(shape, str):
            problems.append(Problem(shard_name, key, _problem_text(shape)))
        elif [shape[1], shape[0]] != meta["stored_size"] or shape[2] != 3:
            problems.append(Problem(shard_name, key, f"decoded shape {shape}, json says {meta['stored_size']} RGB"))
    bar.update(len(batch))


def verify_dataset(root: str | os.PathLike, *, progress: bool = True, threads: int = 0, batch_size: int = 64) -> list[Problem]:
    """Every problem found; an empty list means the dataset is sound. A URL (s3://...) is
    checked shard by shard in a temporary folder, each shard fetched whole and let go."""
    with contextlib.ExitStack() as stack:
        fetch = None
        if storage.is_url(root):
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viewkit-verify-")))
            fetch = _fetcher(str(root).rstrip("/"), scratch)
            for name in (fmt.MANIFEST_NAME, fmt.REJECTED_NAME):
                fetch(name, missing_ok=name == fmt.REJECTED_NAME)
            root = scratch
        return _verify(root, fetch, progress, threads, batch_size)


def _fetcher(url: str, folder: Path):
    fs = storage.filesystem(url)

    def fetch(name: str, missing_ok: bool = False) -> None:
        remote = storage.join(url, name)
        try:
            storage.retrying(lambda: fs.get_file(remote, str(folder / name)), remote, name)
        except FileNotFoundError:
            if not missing_ok:
                raise
    return fetch


def _verify(root, fetch, progress: bool, threads: int, batch_size: int) -> list[Problem]:
    manifest = read_manifest(root, consistent=False)
    root = Path(manifest["root"])
    problems: list[Problem] = []
    seen_ids: list[int] = []
    decoder = _DaliDecoder(batch_size, threads or os.cpu_count() or 1)
    with tqdm(total=manifest["num_samples"], unit="img", desc="verify", disable=not progress) as bar:
        for shard in manifest["shards"]:
            if fetch is None:
                _check_shard(root, shard, decoder, problems, seen_ids, bar)
                continue
            for name in (shard["tar"], shard["index"]):
                try:
                    fetch(name)
                except FileNotFoundError:
                    pass  # _check_shard names it missing
            _check_shard(root, shard, decoder, problems, seen_ids, bar)
            for name in (shard["tar"], shard["index"]):
                (root / name).unlink(missing_ok=True)
    total = sum(s["samples"] for s in manifest["shards"])
    if total != manifest["num_samples"]:
        problems.append(Problem(fmt.MANIFEST_NAME, None, f"shards hold {total} samples, num_samples is {manifest['num_samples']}"))
    if sorted(seen_ids) != list(range(manifest["num_samples"])):
        problems.append(Problem(fmt.MANIFEST_NAME, None, "sample ids are not exactly 0..num_samples-1, each once"))
    rejected_path = root / fmt.REJECTED_NAME
    rejected = len(rejected_path.read_text().splitlines()) if rejected_path.exists() else None
    if rejected != manifest["num_rejected"]:
        problems.append(Problem(fmt.REJECTED_NAME, None, f"{rejected} lines, manifest says {manifest['num_rejected']} rejected"))
    if manifest["num_samples"] + manifest["num_rejected"] != manifest["num_inputs"]:
        problems.append(Problem(fmt.MANIFEST_NAME, None, "written + rejected != inputs"))
    return problems


def find_undecodable(root: str | os.PathLike, tars: list[str], threads: int = 0) -> list[Problem]:
    """Samples of these tars that DALI cannot decode (no hashing): for naming a failure."""
    decoder = _DaliDecoder(64, threads or os.cpu_count() or 1)
    problems: list[Problem] = []
    for tar in tars:
        tar_path = Path(tar)
        index = fmt.parse_index(tar_path.with_suffix(".idx"))
        with open(tar_path, "rb") as f:
            batch = []
            for sample in index:
                _, offset, size, name = next(c for c in sample if c[0] == fmt.IMAGE)
                f.seek(offset)
                batch.append((name.split(".", 1)[0], np.frombuffer(f.read(size), np.uint8)))
            for start in range(0, len(batch), 64):
                chunk = batch[start : start + 64]
                for (key, _), shape in zip(chunk, decoder.shapes([encoded for _, encoded in chunk])):
                    if isinstance(shape, str):
                        problems.append(Problem(tar_path.name, key, _problem_text(shape)))
    return problems
