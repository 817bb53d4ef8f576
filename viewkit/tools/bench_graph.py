"""`viewkit bench SHARDS --recipe R --device gpu --graph [--json F]`: the loader's pipeline,
its operators counted and its host stage timed.

The loader's real pipeline for --device is defined but not built (a GPU graph needs no GPU
for that) and its operators are counted by device and kind. Then the GPU graph's CPU part
(reader, image shapes, side data and every view parameter; no decode) runs on this CPU at
--batch-size, in core-ms per sample, beside the reader + shapes floor measured in the same
run, rounds alternating. A round times batches of one epoch of one pipeline after its
warm-up: steady state only, never an epoch boundary or a pipeline build.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

from nvidia.dali import pipeline_def

from viewkit.loaders import epochs
from viewkit.loaders.dataset import open_dataset
from viewkit.loaders.pipeline import PipelineOptions, build_pipeline, join_side_data, read_samples
from viewkit.loaders.side_data import RegionTable
from viewkit.views import recipes
from viewkit.views.families import Context
from viewkit.views.graph import draw_parameters
from viewkit.views.plan import make_plan


def _flatten(value) -> list:
    if isinstance(value, dict):
        return [node for item in value.values() for node in _flatten(item)]
    if isinstance(value, (list, tuple)):
        return [node for item in value for node in _flatten(item)]
    return [] if value is None else [value]


def operators(pipe) -> list[tuple[str, str]]:
    """(device, kind) of every operator of a defined pipeline.

    choice: DALI has no public listing of a graph's operators; `_build_graph` and `_ops` are
    its own (DALI 2.4, pinned below 2.5 in pyproject)."""
    pipe._build_graph()
    return [(op._op.device, type(op._op).__name__) for op in pipe._ops]


def _side(shards, recipe):
    return RegionTable.empty(shards.num_samples, recipe.regions) if recipe.regions else None


def host_stage(shards, recipe, batch_size: int, threads: int, parameters: bool):
    """A CPU pipeline of the GPU graph's host part: with `parameters`, the view draws too."""
    options = PipelineOptions()
    order = epochs.shard_order(len(shards.tars), 0, 0)
    side_data = _side(shards, recipe)

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=1, prefetch_queue_depth=1)
    def pipeline():
        _, sample_id, _, shape = read_samples(shards, order, 0, 1, options)
        if not parameters:
            return sample_id, shape
        side = join_side_data(sample_id, recipe, side_data)
        context = Context(sample_id, shape, tuple(side.values()), 0, 0, batch_size)
        nodes = draw_parameters(make_plan(recipe), context)
        return tuple(_flatten(nodes))

    pipe = pipeline()
    pipe.build()
    return pipe


def _round(pipe, batch_size: int, warmup: int, batches: int) -> float:
    for _ in range(warmup):
        pipe.run()
    started = time.process_time()
    for _ in range(batches):
        pipe.run()
    return (time.process_time() - started) / (batches * batch_size) * 1e3


def bench_graph(args) -> dict:
    recipe = recipes.get(args.recipe)
    shards = open_dataset(args.shards)
    pipe, _ = build_pipeline(shards, list(range(len(shards.tars))), recipe, batch_size=args.batch_size, rank=0, world=1,
                             device=args.device, device_id=0 if args.device == "gpu" else None, seed=0,
                             threads=args.workers, options=PipelineOptions(), view_key=(0, 0),
                             side_data=_side(shards, recipe), build=False)
    counted = operators(pipe)
    per_device = Counter(device for device, _ in counted)
    per_epoch = shards.num_samples // args.batch_size
    batches = min(args.batches, per_epoch - args.warmup)
    if batches < 1:
        raise ValueError(f"{args.shards}: {shards.num_samples} samples make {per_epoch} batches of "
                         f"{args.batch_size}, too few for {args.warmup} warm-up and timed batches in one epoch; "
                         "lower --batch-size or --warmup")
    rounds = {"host": [], "floor": []}
    for _ in range(args.rounds):  # a fresh pipeline per round: each round is one epoch's steady state
        for side, with_parameters in (("host", True), ("floor", False)):
            stage = host_stage(shards, recipe, args.batch_size, args.workers, with_parameters)
            rounds[side].append(_round(stage, args.batch_size, args.warmup, batches))
            del stage
    host, floor = statistics.median(rounds["host"]), statistics.median(rounds["floor"])
    return {"name": "graph", "recipe": args.recipe, "device": args.device, "batch_size": args.batch_size,
            "threads": args.workers, "batches": batches, "rounds": args.rounds,
            "cpu": per_device.get("cpu", 0), "gpu": per_device.get("gpu", 0), "mixed": per_device.get("mixed", 0),
            "operators": {device: dict(Counter(kind for d, kind in counted if d == device))
                          for device in sorted(per_device)},
            "host_core_ms_per_sample": host, "floor_core_ms_per_sample": floor,
            "parameters_core_ms_per_sample": host - floor, "runs": rounds}


def graph_table(result: dict) -> str:
    rows = [f"recipe {result['recipe']}, {result['device']} graph: {result['cpu']} CPU, {result['gpu']} GPU, "
            f"{result['mixed']} mixed operators"]
    for device, kinds in result["operators"].items():
        rows.append(f"  {device:5} " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    rows.append(f"host stage at batch {result['batch_size']}, {result['threads']} threads (median of "
                f"{result['rounds']} rounds x {result['batches']} batches, steady state within one epoch):")
    rows.append(f"  reader + shapes + parameters {result['host_core_ms_per_sample']:.3f} core-ms/sample, "
                f"floor (reader + shapes) {result['floor_core_ms_per_sample']:.3f}, "
                f"parameters {result['parameters_core_ms_per_sample']:.3f}")
    return "\n".join(rows)
