"""The same shards written by a Ray cluster (`viewkit shard ... --engine ray [--address A]`).

The bytes equal the local engine's for the same inputs and seed, whatever the number of
workers. The local engine streams inputs in the shuffled order and closes a shard at every
`samples_per_shard` accepted samples, so where a shard ends depends on which inputs were
rejected. Here that is decided up front, in three steps:

1. decide: tasks over chunks of the shuffled order prepare each input and report only
   whether it becomes a sample (and why not);
2. cut: the driver cuts the order into shards exactly as the local stream would, and gives
   each shard its first sample id;
3. write: a task per shard prepares its inputs again and writes the whole shard (to a
   temporary name, renamed when complete); the driver journals finished shards in order.

choice: each input is prepared twice (once to decide, once to write) rather than staging
prepared bytes between the steps: no staging format, no second copy on the shared disk,
at the cost of the preparation's CPU time (the pass-through JPEG check is cheap; the
converted inputs pay twice). benchmarks/shard_engines.py measures it.

Inputs and OUT must be on storage every node sees (a shared file system); a probe task on
each node checks that OUT is writable there before any work.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from viewkit.shards import format as fmt
from viewkit.shards.samples import prepare_file, prepare_tasks, verdicts, write_one_shard

_DECIDE_CHUNK = 256  # inputs per decide task: a task's overhead (milliseconds) well under its work


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray, which is not installed: pip install 'viewkit[ray]'") from None
    return ray


def connect(ray, address: str | None, workers: int) -> bool:
    """Joins the cluster at `address` ("auto", "HOST:PORT"), or starts a local Ray with
    `workers` CPUs; True when this call started Ray (and so shuts it down)."""
    if address and address != "auto" and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        try:  # Ray itself retries an unreachable address for a minute before it gives up
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as e:
            raise ValueError(f"--address {address}: no Ray cluster answers there ({e}); start one with "
                             "`ray start --head` or give its address") from None
    if ray.is_initialized():  # this process joined a cluster already (a driver script, the tests)
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
    except ConnectionError as e:
        raise ValueError(f"--address {address}: {e}") from None
    return True


def _probe(out: str) -> str | None:
    """Run on a node: None when OUT is writable there, else why not."""
    probe = Path(out) / f".viewkit-ray-probe-{uuid.uuid4().hex}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
        return None
    except OSError as e:
        return f"{socket.gethostname()}: {e.strerror or e}"


def check_shared_output(ray, out: Path) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_probe)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                       .remote(str(out)) for node in nodes])
    failed = [a for a in answers if a]
    if failed:
        raise ValueError(f"{out}: a Ray worker cannot write it ({'; '.join(failed)}): inputs and output must be on "
                         "storage every node sees, such as a shared file system")


def own_inputs(listing, positions: list[int]):
    """A listing of only these inputs, and their positions in it: what one task is sent.

    choice: each task gets its own inputs, not the whole listing through the object store:
    every task unpickled all of it (109 B an input, 408 ms at 200k inputs, for each of ~1000
    tasks), which made the engine's overhead grow with the square of the dataset."""
    from viewkit.shards.sources import SourceListing

    return SourceListing(listing.kind, listing.root, [listing.items[p] for p in positions], [], []), \
        list(range(len(positions)))


def _write(listing, tar_path: str, positions: list[int], first_id: int, options) -> tuple[dict, list[dict]]:
    prepared = (prepare_file(task) for task in prepare_tasks(listing, positions, options))
    return write_one_shard(listing, Path(tar_path), positions, first_id, prepared)


def _write_and_upload(listing, url: str, name: str, positions: list[int], first_id: int, options):
    """A task writing to object storage: the shard in a temporary folder of its node, then
    uploaded (tar, index) by the task itself; the driver journals it."""
    import shutil
    import tempfile

    from viewkit.shards.store import Store

    folder = Path(tempfile.mkdtemp(prefix="viewkit-ray-shard-"))
    try:
        record, rejected = _write(listing, str(folder / name), positions, first_id, options)
        store = Store(url)
        for file in (record["tar"], record["index"]):
            store.put(folder / file, file)
        return record, rejected
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Cutter:
    """Cuts the decided inputs into shards as the local stream closes them, as the verdicts
    arrive in order: shard k is (input start, input end, first sample id)."""

    def __init__(self, start: int, total: int, per_shard: int, first_id: int):
        self.shard_start = self.position = start
        self.total, self.per_shard, self.next_id, self.count = total, per_shard, first_id, 0

    def feed(self, reasons: list[str | None]) -> list[tuple[int, int, int]]:
        closed = []
        for reason in reasons:
            self.position += 1
            self.count += reason is None
            if self.count and (self.count == self.per_shard or self.position == self.total):
                closed.append((self.shard_start, self.position, self.next_id))
                self.next_id += self.count
                self.shard_start, self.count = self.position, 0
        return closed


def write_shards_ray(job, progress: bool, after_shard, address: str | None) -> tuple[list[dict], float]:
    """Every shard from the job's position on, written by Ray tasks and journaled in order;
    returns the rejections after the last shard and the start time."""
    ray = import_ray()
    started_ray = connect(ray, address, job.options.workers)
    try:
        if job.store is None:
            check_shared_output(ray, job.out)
        started = time.perf_counter()
        decide, write = ray.remote(num_cpus=1)(verdicts), ray.remote(num_cpus=1)(_write)
        upload = ray.remote(num_cpus=1)(_write_and_upload)
        first_position = job.position  # reasons[i] is the verdict on input first_position + i
        remaining = job.order[first_position:]
        chunks = [remaining[i:i + _DECIDE_CHUNK] for i in range(0, len(remaining), _DECIDE_CHUNK)]
        decided = [decide.remote(*own_inputs(job.listing, chunk), job.options) for chunk in chunks]
        cutter = Cutter(first_position, len(job.order), job.per_shard, job.next_id)
        reasons, plan = [], {}  # plan: the shard tasks not yet journaled, in shard order
        bar = tqdm(total=len(remaining), unit="img", desc=f"shard {job.prefix} (ray)", disable=not progress)
        try:
            # a shard is written as soon as the verdicts up to its end are in, while later chunks are decided
            for ref in decided:
                chunk_reasons = ray.get(ref)
                reasons += chunk_reasons
                for shard in cutter.feed(chunk_reasons):
                    number = len(job.shards) + len(plan)
                    tar = job.out / f"{fmt.shard_name(job.prefix, number)}.tar"
                    inputs, positions = own_inputs(job.listing, job.order[shard[0]:shard[1]])
                    if job.store is None:
                        task = write.remote(inputs, str(tar), positions, shard[2], job.options)
                    else:  # the task's node uploads its shard: nodes need not share a folder
                        task = upload.remote(inputs, job.store.url, tar.name, positions, shard[2], job.options)
                    plan[task] = shard
                _journal_ready(ray, job, plan, bar, after_shard, wait=False)
            _journal_ready(ray, job, plan, bar, after_shard, wait=True)
        finally:
            bar.close()
        trailing = [{"path": job.listing.items[job.order[p]].rel, "reason": reasons[p - first_position]}
                    for p in range(cutter.shard_start, len(job.order))]
        return trailing, started
    finally:
        if started_ray:
            ray.shutdown()


def _journal_ready(ray, job, plan: dict, bar, after_shard, wait: bool) -> None:
    """Journals the finished shards at the head of `plan`, in shard order (the journal stays a
    prefix of the shard list); `wait`: until every shard is."""
    while plan:
        task = next(iter(plan))
        ready, _ = ray.wait([task], num_returns=1, timeout=None if wait else 0)
        if not ready:
            return
        (record, rejected), (start, end, first_id) = ray.get(task), plan.pop(task)
        job.record_shard(record | {"first_id": first_id, "inputs": [start, end]}, rejected)
        bar.update(end - start)
        bar.set_postfix(shards=len(job.shards))
        if after_shard is not None:
            after_shard(record)
