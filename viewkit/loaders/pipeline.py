"""One rank's DALI pipeline for one epoch: shards in, decoded once, every view out.

The reader reads the epoch's shard order with DALI's native webdataset reader and the
`.idx` files (no Python per sample), takes this rank's part, shuffles within a buffer,
and pads the last batch. The graph of views comes from `viewkit.views.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvidia.dali import fn, pipeline_def, types

from viewkit.loaders.dataset import ShardSet
from viewkit.shards import format as fmt
from viewkit.views.families import Recipe
from viewkit.views.graph import build_views


@dataclass(frozen=True)
class PipelineOptions:
    shuffle: bool = True
    initial_fill: int = 1024  # shuffle buffer, samples (DALI's default)
    prefetch: int = 2  # batches prepared ahead
    threads: int = 0  # DALI CPU threads; 0: all cores of this process / world on one host
    hw_decoder_load: float = 0.65  # share of JPEG decoding on the A100/H100 hardware decoder
    augment: bool = True  # False: geometry only (crops, flips), for checks and previews
    # Build the next epoch's pipeline on a background thread from mid-epoch on, so that the
    # epoch boundary does not wait for it (one second to several on a GPU: the decoders'
    # set-up). Costs a second pipeline's host and GPU memory for the rest of the epoch.
    build_ahead: bool = True

    def __post_init__(self):
        if self.initial_fill < 1 or self.prefetch < 1 or self.threads < 0:
            raise ValueError("initial_fill and prefetch must be >= 1, threads >= 0")
        if not 0.0 <= self.hw_decoder_load <= 1.0:
            raise ValueError(f"hw_decoder_load={self.hw_decoder_load} must lie in [0, 1]")


# Decoder memory set up front, so that the first large images do not reallocate mid-epoch:
# the values of DALI's ResNet-50 example (padding in bytes, hints in pixels of the largest
# ImageNet image). Not tuned here: no GPU was at hand to measure them against others.
GPU_DECODER = dict(device_memory_padding=211_025_920, host_memory_padding=140_544_512,
                   preallocate_width_hint=5_980, preallocate_height_hint=6_430)


def read_samples(shards: ShardSet, shard_order: list[int], rank: int, world: int, options: PipelineOptions,
                 files: tuple[list[str], list[str]] | None = None):
    """(jpeg, sample id, label, shape) DataNodes of this rank's part; call inside a pipeline.
    `files`: (tars, index files) that list this rank's samples alone (part_files.py), read
    whole; without them every shard in `shard_order`, split by DALI over the ranks."""
    if files is not None:
        paths, index_paths, rank, world = files[0], files[1], 0, 1
    else:
        paths, index_paths = [shards.tars[i] for i in shard_order], [shards.indices[i] for i in shard_order]
    jpeg, sample_id, label = fn.readers.webdataset(
        paths=paths,
        index_paths=index_paths,
        ext=[fmt.IMAGE, fmt.SAMPLE_ID, fmt.LABEL],
        dtypes=[types.UINT8, types.INT64, types.INT64],
        missing_component_behavior="error",
        num_shards=world, shard_id=rank, pad_last_batch=True, stick_to_shard=True,
        random_shuffle=options.shuffle, initial_fill=options.initial_fill, name="reader")
    shape = fn.peek_image_shape(jpeg, dtype=types.INT64)  # [H, W, 3] on the CPU, for crop windows
    return jpeg, sample_id, label, shape


def join_side_data(sample_id, recipe: Recipe, side_data) -> dict:
    """Saliency regions and scores of each sample, joined by id; {} for a recipe that reads none."""
    if not recipe.regions:
        return {}
    regions, scores = fn.python_function(sample_id, function=side_data.join_batch, batch_processing=True,
                                         num_outputs=2)
    return {"regions": regions, "region_scores": scores}


def build_pipeline(shards: ShardSet, shard_order: list[int], recipe: Recipe, *, batch_size: int, rank: int,
                   world: int, device: str, device_id: int | None, seed: int, threads: int,
                   options: PipelineOptions, view_key: tuple[int, int], side_data=None,
                   checkpoint: str | None = None, build: bool = True, files=None):
    """Returns (pipeline, output names); outputs are the views' (`viewkit.views.graph`) plus
    label and id. `seed` drives the reader's shuffle; `view_key` = (seed, epoch) keys every
    view draw together with the sample id. `build=False` defines the graph without building
    it (a GPU graph can be inspected on a machine without one)."""
    names: list[str] = []

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, seed=seed,
                  prefetch_queue_depth=options.prefetch, enable_checkpointing=True)
    def pipeline():
        jpeg, sample_id, label, shape = read_samples(shards, shard_order, rank, world, options, files)
        if device == "gpu":
            image = fn.decoders.image(jpeg, device="mixed", output_type=types.RGB,
                                      hw_decoder_load=options.hw_decoder_load, **GPU_DECODER)
        else:
            image = fn.decoders.image(jpeg, device="cpu", output_type=types.RGB)
        outputs = build_views(image, shape, sample_id, recipe, batch_size, seed=view_key[0], epoch=view_key[1],
                              augment=options.augment, **join_side_data(sample_id, recipe, side_data))
        outputs |= {"label": label, "id": sample_id}
        names.extend(outputs)
        return tuple(outputs.values())

    pipe = pipeline(checkpoint=checkpoint) if checkpoint else pipeline()
    if build:
        pipe.build()
    return pipe, names
