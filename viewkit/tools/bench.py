"""Throughput of a recipe's views: viewkit against a torchvision DataLoader in the same run.

    viewkit bench SHARDS --recipe logo [--device cpu|gpu] [--batch-size 64] [--batches 20]
                  [--workers N] [--rounds 2] [--baseline torchvision|none] [--json FILE]
    viewkit bench SHARDS --train moco_v2 [--arch resnet50] [--batch-size 256] [--batches 50]
    viewkit bench SHARDS --saliency [--arch resnet50] [--resolution 640] [--batch-size 32]

--saliency times a full saliency refresh (features, affinity, eigh, threshold, labelling,
boxes) of every sample: images/s, the figure to hold against SGCL's 5% time budget.
--train runs the real trainer for --batches steps after at least --warmup steps and prints
its data-stall fraction (time waiting for the next batch / step time) and step time, next
to the same steps on one batch held in memory (the ceiling: data never waits).

The two sides run interleaved (A B A B ...), each for --batches batches after --warmup
batches, and the medians over rounds are compared: the machine is noisy, a ratio
measured in one run is what holds. Both sides get the same number of CPU workers: DALI
threads for viewkit, DataLoader worker processes for the baseline (see bench_baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import threading
import time
from pathlib import Path

from tqdm import tqdm

from viewkit.tools.argtypes import recipe_help
from viewkit.tools.bench_common import decoder_options, machine

FIELDS = ("samples_per_s", "views_per_s", "pixels_per_s", "cpu_core_s_per_sample", "peak_host_memory_mb",
          "gpu_memory_mb", "seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", help="dataset folder (holding dataset.json)")
    parser.add_argument("--recipe", default="logo", help=recipe_help())
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per round and side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches before each timed run")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="CPU workers per side (default: all cores)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds; medians are reported")
    parser.add_argument("--baseline", choices=["torchvision", "none"], default="torchvision")
    parser.add_argument("--baseline-blur", choices=["paper", "capped"], default="paper",
                        help="baseline blur kernel: the papers' 10%% of the view (default), or capped at "
                             "+-3 sigma_max like viewkit's widest kernel")
    parser.add_argument("--json", help="write every figure and the machine description here")
    parser.add_argument("--train", help="method: measure the trainer's data stall instead of the views")
    parser.add_argument("--saliency", action="store_true", help="time the saliency refresh instead of the views")
    parser.add_argument("--graph", action="store_true",
                        help="count the pipeline's operators (a gpu graph needs no GPU) and time its host stage")
    parser.add_argument("--resolution", type=int, default=640, help="--saliency: original view size (SGCL: 640)")
    parser.add_argument("--arch", default="resnet50", help="backbone for --train and --saliency")
    parser.add_argument("--hw-decoder-load", type=float, default=None,
                        help="gpu: share of JPEGs for the hardware decoder (default: the loader's 0.65); the rest "
                             "is Huffman-decoded on the CPU workers (views and --train)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default=None,
                        help="--train precision (default: bf16 on gpu, fp32 on cpu)")


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


class PeakMemory:
    """Peak resident memory of this process and its children (DataLoader workers), sampled."""

    def __init__(self, interval: float = 0.05):
        self.peak, self.interval, self._stop = 0.0, interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pid = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb(pid) + sum(_rss_mb(c) for c in _children(pid)))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    self_usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_usage.ru_utime + self_usage.ru_stime + children.ru_utime + children.ru_stime


def _gpu_memory_mb(device: str) -> float | None:
    if device != "gpu":
        return None
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def measure(make_iterator, batch_size: int, batches: int, warmup: int, views: int, pixels: int, device: str, label: str,
            in_flight: int = 0) -> dict:
    """Times `batches` batches of a fresh iterator (after warm-up); CPU time includes workers
    because they have exited (and been reaped) when the iterator is dropped. `in_flight`:
    batches the workers had prepared ahead and that were never taken (DataLoader prefetch)."""
    cpu_before, started = _cpu_seconds(), None
    with PeakMemory() as memory:
        iterator = make_iterator()
        for step in tqdm(range(warmup + batches), desc=label, unit="batch", leave=False):
            if step == warmup:
                started, cpu_started = time.perf_counter(), _cpu_seconds()
            next(iterator)
        seconds = time.perf_counter() - started
        cpu_warm = _cpu_seconds() - cpu_started
        gpu = _gpu_memory_mb(device)
        del iterator
    cpu_total = _cpu_seconds() - cpu_before
    samples = batch_size * batches
    # Workers' CPU is only counted once they exit: use the whole run's CPU time scaled to
    # the timed share of the batches made when the in-process figure misses them.
    cpu = max(cpu_warm, cpu_total * batches / (warmup + batches + in_flight))
    return {"samples_per_s": samples / seconds, "views_per_s": samples * views / seconds,
            "pixels_per_s": samples * pixels / seconds, "cpu_core_s_per_sample": cpu / samples,
            "peak_host_memory_mb": memory.peak, "gpu_memory_mb": gpu, "seconds": seconds}


def bench(args: argparse.Namespace) -> dict:
    from viewkit import ViewLoader, recipes
    from viewkit.tools.bench_baseline import PREFETCH as BASELINE_PREFETCH, baseline_loader, views_per_sample

    recipe = recipes.get(args.recipe)
    views, pixels = views_per_sample(recipe)
    world_loader = ViewLoader(args.shards, recipe, args.batch_size, device=args.device, threads=args.workers,
                              drop_last=True, rank=0, world_size=1, **decoder_options(args))
    needed = args.warmup + args.batches

    # Every round in one epoch of one pipeline, one after another: no pipeline build and no
    # epoch boundary in the timed batches (steady state only).
    if len(world_loader) < args.rounds * needed:
        raise ValueError(f"{args.shards}: an epoch has {len(world_loader)} batches of {args.batch_size}, fewer than "
                         f"--rounds {args.rounds} x (--warmup {args.warmup} + --batches {args.batches}); lower them "
                         "or the batch size")
    world_loader.set_epoch(0)
    epoch = iter(world_loader)

    def viewkit_iterator():
        return iter(x for x, _ in zip(epoch, range(needed)))

    def baseline_iterator():
        return iter(baseline_loader(list(world_loader.shards.tars), recipe, args.batch_size, args.workers,
                                    blur=args.baseline_blur))

    rounds = {"viewkit": [], "baseline": []}
    for round_ in range(args.rounds):
        rounds["viewkit"].append(measure(viewkit_iterator, args.batch_size, args.batches, args.warmup, views, pixels,
                                         args.device, f"round {round_ + 1} viewkit"))
        if args.baseline != "none":
            with world_loader.shards.holding(list(world_loader.shards.tars)):  # a dataset in a store: fetched
                rounds["baseline"].append(measure(baseline_iterator, args.batch_size, args.batches, args.warmup, views,
                                                  pixels, "cpu", f"round {round_ + 1} torchvision",
                                                  in_flight=args.workers * BASELINE_PREFETCH))
    summary = {}
    for side, results in rounds.items():
        if results:
            summary[side] = {f: (statistics.median(r[f] for r in results) if results[0][f] is not None else None)
                             for f in FIELDS}
    if "baseline" in summary:
        summary["ratio_samples_per_s"] = summary["viewkit"]["samples_per_s"] / summary["baseline"]["samples_per_s"]
    return {"recipe": args.recipe, "device": args.device, "hw_decoder_load": world_loader.options.hw_decoder_load,
            "baseline_blur": args.baseline_blur, "batch_size": args.batch_size, "batches": args.batches,
            "rounds": args.rounds, "workers": args.workers, "views_per_sample": views, "machine": machine(),
            "summary": summary, "runs": rounds}


def table(result: dict) -> str:
    rows = [f"recipe {result['recipe']} on {result['device']}, {result['workers']} workers, batch {result['batch_size']}, "
            f"median of {result['rounds']} rounds x {result['batches']} batches ({result['machine']['cpu']}), "
            f"baseline blur kernel: {result['baseline_blur']}",
            f"{'':10} {'samples/s':>10} {'views/s':>10} {'Mpix/s':>8} {'core-ms/sample':>15} {'peak MB':>8}"]
    for side in ("viewkit", "baseline"):
        if side in result["summary"]:
            s = result["summary"][side]
            rows.append(f"{side:10} {s['samples_per_s']:10.1f} {s['views_per_s']:10.1f} {s['pixels_per_s'] / 1e6:8.1f} "
                        f"{s['cpu_core_s_per_sample'] * 1e3:15.2f} {s['peak_host_memory_mb']:8.0f}")
    if "ratio_samples_per_s" in result["summary"]:
        rows.append(f"ratio viewkit / baseline samples/s: {result['summary']['ratio_samples_per_s']:.2f}")
    return "\n".join(rows)


def _write(path: str | None, result: dict) -> None:
    """A .jsonl file gets one more line (a measurement record); any other name the JSON itself."""
    if path and path.endswith(".jsonl"):
        from viewkit.trainer.checkpoint import git_revision

        stamp = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision()}
        with open(path, "a") as f:
            f.write(json.dumps(stamp | result) + "\n")
    elif path:
        Path(path).write_text(json.dumps(result, indent=2))


def run(args: argparse.Namespace) -> int:
    if args.graph:
        from viewkit.tools.bench_graph import bench_graph, graph_table

        result = bench_graph(args) | {"machine": machine()}
        print(graph_table(result))
        _write(args.json, result)
        return 0
    if args.saliency:
        from viewkit.tools.bench_runs import bench_saliency

        result = bench_saliency(args)
        print(f"saliency refresh: {result['images']} images at {result['resolution']} px, {result['arch']}, "
              f"{result['device']}: {result['images_per_s']:.1f} images/s ({result['seconds']:.1f} s), "
              f"{result['mean_regions']:.1f} regions per image; labelling in sequence "
              f"{result['sequential']['images_per_s']:.1f} images/s, overlap speed-up {result['overlap_speedup']:.2f}x")
        _write(args.json, result)
        return 0
    if args.train:
        from viewkit.tools.bench_runs import bench_train

        result = bench_train(args)
        print(f"trainer {result['train']} on {result['arch']}, {result['device']}, batch {result['batch_size']}, "
              f"{result['batches']} steps ({result['machine']['cpu']}, gpu {result['machine']['gpu']})")
        for side in ("real_data", "in_memory"):
            s = result[side]
            print(f"  {side:10} data wait {s['data_wait']:6.1%}  step {s['step_ms']:8.1f} ms  {s['samples_per_s']:8.1f} samples/s")
        print(f"data stall {result['stall']:.1%}; real-data throughput / in-memory ceiling {result['ratio_to_ceiling']:.2f}")
        _write(args.json, result)
        return 0
    result = bench(args)
    print(table(result))
    _write(args.json, result)
    if args.json:
        print(f"wrote {args.json}")
    return 0
