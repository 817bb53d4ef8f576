"""`ViewLoader`: batches of views from viewkit shards, per rank, per epoch, resumable.

    loader = ViewLoader("OUT/dataset.json", recipe=recipes.get("logo"), batch_size=256)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:            # dict of torch tensors, see viewkit.views.outputs
            ...
    state = loader.state_dict()         # mid-epoch too; ViewLoader(...).load_state_dict(state)
    loader.load_state_dict([state_of_rank_0, state_of_rank_1, ...])   # an earlier job of any world size

Contract: every rank runs `len(loader)` batches per epoch. With drop_last=False every
sample id is delivered exactly once per epoch across ranks, and samples that pad a
rank's last batches carry `valid == False` (mask them out of losses). With drop_last=True
each rank drops the tail of its part that does not fill a batch of the smallest part.
Tensors are copies: they stay valid after the next batch is fetched.

Resumed from every rank's state of a job with another world size, the rest of that epoch
delivers the samples no rank delivered, each once over the new ranks (padded to whole
batches, the padding `valid == False`; with drop_last the tail that does not fill a batch of
the smallest share is dropped), with the views an uninterrupted run gives them; later epochs
are those of a fresh run on the new world (remainder.py).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import shutil
import tempfile
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import numpy as np
import torch

from viewkit.loaders import epochs, part_files, remainder
from viewkit.loaders.dataset import open_dataset
from viewkit.loaders.distributed import local_device_id, rank_and_world
from viewkit.loaders.pipeline import PipelineOptions, build_pipeline
from viewkit.loaders.side_data import RegionTable
from viewkit.progress import ticking
from viewkit.views import recipes
from viewkit.views.families import Recipe
from viewkit.views.outputs import arrange, image_size


class ViewLoader:
    def __init__(self, dataset, recipe: Recipe | str, batch_size: int, *, device: str = "gpu", seed: int = 0,
                 drop_last: bool = True, rank: int | None = None, world_size: int | None = None,
                 side_data: RegionTable | None = None, verify_checksums: bool = False,
                 cache_dir: str | os.PathLike | None = None, cache_limit: int | str | None = None, **pipeline_options):
        if isinstance(recipe, str):
            recipe = recipes.get(recipe)
        if not isinstance(recipe, Recipe):
            raise TypeError(f"recipe must be a viewkit Recipe or a preset's name, got {type(recipe).__name__}")
        if device not in ("gpu", "cpu"):
            raise ValueError(f"device={device!r}: 'gpu' or 'cpu'")
        if device == "gpu" and not torch.cuda.is_available():
            raise ValueError("device='gpu' needs a CUDA GPU, and torch sees none; device='cpu' runs the same "
                               "graph on DALI's CPU backend")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        unknown = set(pipeline_options) - set(PipelineOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown ViewLoader option(s) {sorted(unknown)}; options: "
                            f"{sorted(PipelineOptions.__dataclass_fields__)}")
        self.options = PipelineOptions(**pipeline_options)
        self.rank, self.world_size = rank_and_world(rank, world_size)
        self.shards = open_dataset(dataset, verify_checksums=verify_checksums, part=(self.rank, self.world_size),
                                   cache_dir=cache_dir, cache_limit=cache_limit)
        self.recipe, self.batch_size, self.device, self.seed, self.drop_last = recipe, batch_size, device, seed, drop_last
        smallest = min(e - s for s, e in (epochs.part_bounds(self.shards.num_samples, r, self.world_size)
                                          for r in range(self.world_size)))
        if smallest == 0:  # DALI's reader fails on an empty part only at the first batch, in a dump
            raise ValueError(f"world size {self.world_size} is larger than the {self.shards.num_samples} samples of "
                             f"{self.shards.root}: some ranks would read nothing; use at most "
                             f"{self.shards.num_samples} ranks")
        if drop_last and batch_size > smallest:
            raise ValueError(f"batch_size {batch_size} is larger than a rank's share ({smallest} samples of "
                             f"{self.shards.num_samples} over {self.world_size} ranks); lower it or set drop_last=False")
        if self.shards.cache is not None:
            self._check_cache_budget()
        if recipe.regions and side_data is None:
            side_data = RegionTable.empty(self.shards.num_samples, recipe.regions)
        self._check_side_data(side_data)
        self.side_data = side_data
        self.epoch, self._step, self._checkpoint = 0, 0, None
        self._delivered = np.zeros(self.shards.num_samples, bool)  # this rank's ids of this epoch so far
        self._due = None  # resumed on another world: the epoch's ids no earlier rank delivered
        # a mid-epoch state of a viewkit whose readers indexed the whole dataset: its DALI
        # checkpoint counts positions in it, so that epoch is read so to the end
        self._whole_reader = False
        self._pipe = self._names = None
        self._ahead = None  # (epoch, side data, future of (pipe, iterator)): the next epoch, built ahead
        self._builder = None  # its one thread, started on first use

    def _part_shards(self, epoch: int) -> list[int]:
        """Shards (indices into shards.tars) that this rank's part of `epoch` touches."""
        order = epochs.shard_order(len(self.shards.tars), self.seed, epoch)
        start, end = epochs.part_bounds(self.shards.num_samples, self.rank, self.world_size)
        return [order[i] for i in part_files.touched([self.shards.counts[i] for i in order], start, end)]

    def _check_cache_budget(self) -> None:
        """Refused at start: a cache that cannot hold what the ranks of this node open at once
        (every shard of each part; two epochs' parts while the next is built ahead)."""
        sizes = [shard["bytes"] for shard in self.shards.manifest["shards"]]
        part = max(sum(sizes[i] for i in self._part_shards(epoch)) for epoch in (0, 1))
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        need = part * local_ranks * (2 if self.options.build_ahead else 1)
        if need > self.shards.cache.limit:
            from viewkit.loaders.shard_cache import human_size

            cache = self.shards.cache
            ahead = ", twice while the next epoch is built ahead" if self.options.build_ahead else ""
            raise ValueError(
                f"{self.shards.name}: the cache ({cache.folder}) may hold {human_size(cache.limit)}, and the "
                f"{local_ranks} rank(s) of this node open about {human_size(need)} at once (a rank's part of an epoch "
                f"is {human_size(part)}{ahead}; DALI opens every shard of its part when it builds): raise cache_limit "
                f"(VIEWKIT_CACHE_LIMIT), use more nodes{', or set build_ahead=False' if ahead else ''}")

    def _check_side_data(self, side_data) -> None:
        """Rows are joined by sample id, so regions of other shards would land on the wrong images."""
        if side_data is not None and self.recipe.regions:
            name = side_data.origin or "side data"
            if side_data.max_regions != self.recipe.regions:
                raise ValueError(f"{name} has {side_data.max_regions} regions per sample, the recipe's "
                                 f"saliency.max_regions is {self.recipe.regions}")
            fingerprint = self.shards.manifest["fingerprint"]
            if side_data.dataset and side_data.dataset != fingerprint:
                raise ValueError(f"{name} was made for other shards (fingerprint {side_data.dataset[:12]}), not "
                                 f"{self.shards.root} ({fingerprint[:12]}); make it again on these shards "
                                 f"(`viewkit saliency {self.shards.root} --out ...`)")
            if len(side_data.scores) != self.shards.num_samples:
                raise ValueError(f"{name} has {len(side_data.scores)} rows, {self.shards.root} holds "
                                 f"{self.shards.num_samples} samples (one row per sample id): regions of other shards?")

    def __len__(self) -> int:
        if self._due is not None:
            return remainder.steps(self._due, self.world_size, self.batch_size, self.drop_last)
        return epochs.steps_per_epoch(self.shards.num_samples, self.world_size, self.batch_size, self.drop_last)

    @property
    def steps_done(self) -> int:
        """Batches of the current epoch delivered so far (as `state_dict()["step"]`, without
        taking the pipeline's checkpoint)."""
        return self._step

    @property
    def rest_of_epoch(self) -> int | None:
        """Resumed on another world: how many samples of the epoch no earlier rank delivered
        (over all ranks; the new ranks share them). None otherwise."""
        return None if self._due is None else len(self._due)

    def set_epoch(self, epoch: int) -> None:
        """Start of `epoch` (a no-op if a loaded state is already positioned in it)."""
        if epoch != self.epoch or self._step >= len(self):
            self.epoch, self._step, self._checkpoint = epoch, 0, None
            self._delivered[:] = False
            self._end_remainder()
            self._pipe = self._names = None

    def _end_remainder(self) -> None:
        self._due, self._whole_reader = None, False

    def _part(self) -> int:
        """Samples of this rank this epoch: the rest is padding."""
        if self._due is not None:
            return len(remainder.share(self._due, self.rank, self.world_size))
        start, end = epochs.part_bounds(self.shards.num_samples, self.rank, self.world_size)
        return end - start

    def set_side_data(self, side_data: RegionTable) -> None:
        """Replace the per-sample regions; used from the next epoch (or next iteration) on."""
        self._check_side_data(side_data)
        self.side_data = side_data
        self._pipe = self._names = None
        self._drop_ahead()

    def _threads(self) -> int:
        if self.options.threads:
            return self.options.threads
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        return max(1, (os.cpu_count() or 1) // local_world)

    def _device_id(self) -> int | None:
        # read on the calling thread: a new thread's current CUDA device is 0, not this rank's
        return local_device_id() if self.device == "gpu" else None

    def _build(self, epoch: int, side_data, checkpoint: str | None, device_id: int | None):
        """This rank's pipeline of `epoch`, its reader given index files of its part alone
        (part_files.py): memory and build time follow the part, not the dataset."""
        order = epochs.shard_order(len(self.shards.tars), self.seed, epoch)
        tars, indices = [self.shards.tars[i] for i in order], [self.shards.indices[i] for i in order]
        this_epoch = epoch == self.epoch
        folder = Path(tempfile.mkdtemp(prefix="viewkit-part-"))
        try:  # DALI reads the index files while it builds, and never again
            if this_epoch and self._whole_reader:
                files = None
            elif this_epoch and self._due is not None:
                files = part_files.listed(tars, indices, remainder.share(self._due, self.rank, self.world_size), folder)
            else:
                start, end = epochs.part_bounds(self.shards.num_samples, self.rank, self.world_size)
                files = part_files.positions(tars, indices, [self.shards.counts[i] for i in order], start, end,
                                             folder)
            with self.shards.holding(files[0] if files is not None else tars):  # fetched, if in object storage
                return build_pipeline(
                    self.shards, order, self.recipe, batch_size=self.batch_size, rank=self.rank, world=self.world_size,
                    device=self.device, device_id=device_id, seed=epochs.pipeline_seed(self.seed, epoch, self.rank),
                    threads=self._threads(), options=self.options, view_key=(self.seed, epoch), side_data=side_data,
                    checkpoint=checkpoint, files=files)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _build_ahead(self) -> None:
        """The next epoch's pipeline, started now on the builder thread. It is the pipeline
        `_start` would build (same shard order, seed and side data), so taking it changes no
        sample; a change of side data, position or epoch in between drops it."""
        if self.options.build_ahead and self._ahead is None:
            if self._builder is None:
                self._builder = ThreadPoolExecutor(1, thread_name_prefix="viewkit-build-ahead")
            side_data = self.side_data
            future = self._builder.submit(self._build, self.epoch + 1, side_data, None, self._device_id())
            self._ahead = (self.epoch + 1, side_data, future)

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[2].exception()  # let the build finish before its pipeline is let go; a failure
            # that matters comes again from the build that replaces it, where it is raised

    def _start(self) -> None:
        ahead = self._ahead
        # silent unless it takes seconds, as on the first run after an install
        label = "building the view pipeline (compiling its kernels on the first run after an install)"
        with ticking(label) if self.rank == 0 else contextlib.nullcontext():
            if ahead is not None and ahead[0] == self.epoch and ahead[1] is self.side_data and self._checkpoint is None:
                self._ahead = None
                self._pipe, self._names = ahead[2].result()
            else:
                self._drop_ahead()
                self._pipe, self._names = self._build(self.epoch, self.side_data, self._checkpoint, self._device_id())

    def __iter__(self):
        if self._step >= len(self):  # an empty epoch would pass for a finished training without a word
            raise RuntimeError(f"epoch {self.epoch} is over: call set_epoch({self.epoch + 1}) before iterating again "
                               f"(set_epoch({self.epoch}) repeats it)")
        part = self._part()
        if self._names is None:
            self._start()
        while self._step < len(self):
            batch = self._next_batch()
            position = self._step * self.batch_size + torch.arange(self.batch_size)
            batch["valid"] = (position < part).to(batch["id"].device)
            self._delivered[batch["id"][batch["valid"]].cpu().numpy()] = True
            self._step += 1
            if self._step == max(1, len(self) // 2):
                self._build_ahead()
            yield batch
        self._pipe = self._names = None

    def _next_batch(self) -> dict:
        try:
            outputs = self._pipe.run()
        except RuntimeError as error:
            raise self._explain(error) from error
        # Views of DALI's buffers (DLPack: on the GPU, torch's stream waits for DALI's work);
        # `arrange` makes the one copy into the tensors handed out. The views die on return,
        # while their pipeline lives: a generator left suspended must not hold them.
        raw = {name: torch.from_dlpack(tensors.as_tensor()) for name, tensors in zip(self._names, outputs)}
        batch = arrange(raw, self.recipe)
        batch["label"] = raw["label"].reshape(-1).clone()
        batch["id"] = raw["id"].reshape(-1).clone()
        batch["image_size"] = image_size(raw, self.recipe)
        return batch

    def _explain(self, error: RuntimeError) -> RuntimeError:
        """DALI fails a whole batch on one bad image and cannot skip it: find and name it."""
        if "decod" not in str(error).lower():
            return error
        from viewkit.shards.verify import find_undecodable

        order = epochs.shard_order(len(self.shards.tars), self.seed, self.epoch)
        bad = find_undecodable(self.shards.root, [self.shards.tars[i] for i in order])
        named = "; ".join(str(p) for p in bad[:5]) or "no single image fails alone (see DALI's message)"
        self._pipe = self._names = None
        return RuntimeError(f"DALI could not decode a sample of {self.shards.name}: {named}. DALI cannot skip "
                            f"samples: run `viewkit verify {self.shards.name}` and re-shard the source images")

    def state_dict(self) -> dict:
        """Where the loader stands: resume mid-epoch with load_state_dict."""
        checkpoint = None
        if self._pipe is not None and 0 < self._step < len(self):
            checkpoint = self._pipe.checkpoint()
        elif self._checkpoint is not None:
            checkpoint = self._checkpoint
        due = None
        if self._due is not None:
            due = np.zeros(self.shards.num_samples, bool)
            due[self._due] = True
        return {"epoch": self.epoch, "step": self._step, "checkpoint": checkpoint, "seed": self.seed,
                "rank": self.rank, "world_size": self.world_size, "batch_size": self.batch_size,
                "fingerprint": self.shards.manifest["fingerprint"], "options": asdict(self.options),
                "side_data_version": getattr(self.side_data, "version", None),
                "finished": self._step >= len(self),
                # kept when finished too: another rank of the job may be mid-epoch, and the
                # rest of the epoch is what none of them delivered
                "delivered": remainder.pack(self._delivered),
                "due": remainder.pack(due) if due is not None else None,
                "reads_part": not self._whole_reader}

    def load_state_dict(self, state: dict | list[dict]) -> None:
        """One state of this rank (the same world size), or the list of every rank's state of
        an earlier job, whatever its world size."""
        if isinstance(state, (list, tuple)):
            self._load_states(list(state))
            return
        for key in ("seed", "rank", "world_size", "batch_size", "fingerprint"):
            mine = self.state_dict()[key]
            if state[key] != mine:
                raise ValueError(f"cannot resume: saved {key}={state[key]!r}, this loader has {mine!r}")
        self._end_remainder()
        self.epoch, self._step, self._checkpoint = state["epoch"], state["step"], state["checkpoint"]
        self._whole_reader = bool(state["checkpoint"]) and not state.get("reads_part")
        if state.get("due") is not None:  # a rest of an epoch, dealt to this very world
            self._due = np.flatnonzero(remainder.unpack(state["due"], self.shards.num_samples))
        self._delivered[:] = False
        if state.get("delivered") is not None:
            self._delivered |= remainder.unpack(state["delivered"], self.shards.num_samples)
        if self._step >= len(self):  # saved at the end of an epoch: resume at the start of the next
            self.epoch, self._step, self._checkpoint = self.epoch + 1, 0, None
            self._delivered[:] = False
            self._end_remainder()
        self._pipe = self._names = None
        self._drop_ahead()

    def _load_states(self, states: list[dict]) -> None:
        """Every rank's state of an earlier job: the same world continues exactly, another one
        delivers the rest of the epoch over this job's ranks."""
        mine = {key: value for key, value in self.state_dict().items() if key in ("seed", "batch_size", "fingerprint")}
        worlds = {s["world_size"] for s in states}
        if len(worlds) != 1 or sorted(s["rank"] for s in states) != list(range(len(states))) \
                or worlds != {len(states)}:
            raise ValueError(f"cannot resume: give every rank's state of one job, ranks 0..W-1 of world W "
                             f"(got ranks {sorted(s['rank'] for s in states)} of worlds {sorted(worlds)})")
        for key, value in mine.items():
            saved = {s[key] for s in states}
            if key != "batch_size" and saved != {value}:
                raise ValueError(f"cannot resume: saved {key}={sorted(saved)!r}, this loader has {value!r}")
        if {s["epoch"] for s in states} != {states[0]["epoch"]}:  # a kill may leave them at different steps
            raise ValueError("cannot resume: the ranks' states are of different epochs")
        if states[0]["world_size"] == self.world_size and states[0]["batch_size"] == self.batch_size:
            self.load_state_dict(states[self.rank])
            return
        self._end_remainder()
        self.epoch, self._step, self._checkpoint = states[0]["epoch"], 0, None
        self._delivered[:] = False
        if all(s.get("finished") for s in states):  # saved at the end of an epoch
            self.epoch += 1
        elif any(s.get("delivered") is not None and remainder.unpack(s["delivered"], self.shards.num_samples).any()
                 for s in states):
            due = remainder.still_due(states, self.shards.num_samples)
            if remainder.steps(due, self.world_size, self.batch_size, self.drop_last) == 0:
                self.epoch += 1  # with drop_last, less than a batch per rank was left: dropped
            else:
                self._delivered[:] = True
                self._delivered[due] = False
                self._due = due
        self._pipe = self._names = None
        self._drop_ahead()
