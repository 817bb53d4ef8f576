"""`viewkit bench --train` and `--saliency`: the trainer's data stall and the saliency refresh
rate, each against its own reference measured in the same run (see `viewkit.tools.bench`)."""

from __future__ import annotations

import argparse
import itertools
import time

from viewkit.tools.bench_common import decoder_options, machine


def repeat_first(loader):
    """The loader's first batch, again and again: data that never stalls (the ceiling)."""
    first = next(iter(loader))
    while True:
        yield first


def every_epoch(loader):
    """The loader's batches, epoch after epoch."""
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield from loader


def bench_train(args: argparse.Namespace) -> dict:
    """Data stall of the real trainer: real loader against one batch repeated in memory."""
    import tempfile

    from viewkit.trainer.config import TrainConfig
    from viewkit.trainer.devices import cpu_threads
    from viewkit.trainer.engine import train_one_epoch
    from viewkit.trainer.run import start_run

    config = TrainConfig(method=args.train, arch=args.arch, epochs=1000, batch_size=args.batch_size, device=args.device,
                         precision=args.precision or ("bf16" if args.device == "gpu" else "fp32"), threads=args.workers,
                         log_every=args.batches,
                         loader_options=decoder_options(args))
    # The trainer reports windows of log_every steps: the last one starts after the warm-up
    # (the pipeline's first batch, cuDNN's algorithm search), which would swamp a 2% stall.
    steps = args.batches * (1 + -(-args.warmup // args.batches))
    sides = {}
    with tempfile.TemporaryDirectory() as run:
        for side in ("real_data", "in_memory"):
            with cpu_threads(config.threads, config.device):
                trainer = start_run(config, args.shards, f"{run}/{side}")
                try:
                    batches = every_epoch(trainer.loader) if side == "real_data" else repeat_first(trainer.loader)
                    last = train_one_epoch(trainer, 0, itertools.islice(batches, steps), progress=False)
                finally:
                    trainer.close()
            sides[side] = {"data_wait": last["data_wait"], "samples_per_s": last["samples_per_s"],
                           "step_ms": 1000 * args.batch_size / last["samples_per_s"]}
    return {"train": args.train, "arch": args.arch, "device": args.device, "batch_size": args.batch_size,
            "batches": args.batches, "warmup_steps": steps - args.batches, "machine": machine(), **sides,
            "stall": sides["real_data"]["data_wait"],
            "ratio_to_ceiling": sides["real_data"]["samples_per_s"] / sides["in_memory"]["samples_per_s"]}


def bench_saliency(args: argparse.Namespace) -> dict:
    """Images/s of a saliency refresh with an untrained backbone of the given architecture
    (the work per image does not depend on the weights): the CPU labelling overlapped with
    the next batch's features (viewkit's refresh), against the same work done in sequence."""
    import torch

    from viewkit.loaders.dataset import open_dataset
    from viewkit.saliency.sources import ncut_regions
    from viewkit.trainer.nets import Backbone

    trunk = Backbone(args.arch).trunk
    sides = {}
    for overlap in (False, True):
        started = time.perf_counter()
        _, _, counts = ncut_regions(args.shards, trunk, resolution=args.resolution, batch_size=args.batch_size,
                                    device=args.device, progress=True, threads=args.workers, overlap=overlap)
        if args.device == "gpu":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        sides["overlapped" if overlap else "sequential"] = {"seconds": seconds, "images_per_s": len(counts) / seconds}
    return {"saliency": True, "arch": args.arch, "resolution": args.resolution, "device": args.device,
            "images": open_dataset(args.shards).num_samples, **sides, "seconds": sides["overlapped"]["seconds"],
            "images_per_s": sides["overlapped"]["images_per_s"],
            "overlap_speedup": sides["overlapped"]["images_per_s"] / sides["sequential"]["images_per_s"],
            "mean_regions": float(counts.mean()), "machine": machine()}
