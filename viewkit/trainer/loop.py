"""The training loop: one function a reader can hold in their head.

    train(config, data="OUT/train", out="runs/moco", resume=False)

Per step: wait for the batch (timed: the data stall), lr from the schedule, forward under
bf16 autocast on GPU, backward, SGD/LARS step, the method's EMA/queue update. Per epoch:
checkpoint-last.pt (atomic; every `checkpoint_every` epochs a kept copy), optional kNN
monitor. Metrics go to metrics.jsonl and TensorBoard; the resolved config and git
revision sit beside them in config.yaml.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from viewkit.loaders.dataset import open_dataset, open_labelled_pair
from viewkit.loaders.view_loader import ViewLoader
from viewkit.saliency.sources import ncut_regions
from viewkit.saliency.store import SaliencyStore
from viewkit.trainer import checkpoint as ckpt
from viewkit.trainer.config import TrainConfig, resume_conflicts
from viewkit.trainer.lars import LARS
from viewkit.trainer.methods import build_method
from viewkit.trainer.schedules import learning_rate
from viewkit.views import recipes


def setup_distributed(device: str) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if device == "gpu":  # before NCCL starts, so each rank's communicator binds its own GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "gpu" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """One parameter group, plus a `fixed_lr` one for the modules a method keeps at the peak
    lr (SimSiam's predictor)."""
    fixed = {id(p) for module in getattr(model, "fixed_lr_modules", ()) for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in fixed]}]
    if fixed:
        groups.append({"params": [p for p in trainable if id(p) in fixed], "fixed_lr": True})
    if config.optimizer == "lars":
        return LARS(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4 and value.shape[1] == 3:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def _repeat_first(loader):
    """The loader's first batch, again and again: data that never stalls (bench's ceiling)."""
    class Repeat:
        def __init__(self):
            self.batch = None

        def __len__(self):
            return len(loader)

        def __iter__(self):
            if self.batch is None:
                self.batch = next(iter(loader))
            for _ in range(len(loader)):
                yield self.batch

        def __getattr__(self, name):
            return getattr(loader, name)

    return Repeat()


def forget_rows_after(path: Path, step: int, epoch: int) -> None:
    """A run killed after its last checkpoint logged steps that the resumed run trains again;
    its rows go, so each step and each kNN epoch appears once."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ValueError(f"{path}: line {number} is not JSON ({line[:60]!r}); fix or move the file "
                                 f"before resuming") from None
            # a kill mid-write leaves a partial last row, written after the last checkpoint
    kept = [row for row in rows if (row["step"] <= step if "step" in row else row["epoch"] <= epoch)]
    path.write_text("".join(json.dumps(row) + "\n" for row in kept))


def log_views(writer, batch: dict, step: int, count: int = 8) -> None:
    """A grid of the first views of the batch, de-normalised, in TensorBoard."""
    from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) / 255
    for key, value in batch.items():
        if value.dim() == 5 and value.shape[2] == 3:  # [V, B, 3, S, S]: a view family
            images = value[0, :count].float().cpu() * std + mean
            writer.add_images(f"views/{key}", images.clamp(0, 1), step)


def refresh_saliency(config: TrainConfig, method, data: str, store: Path, epoch: int, rank: int, world: int) -> None:
    """SGCL step 1 with the model being trained: regions by Ncut on its features, written
    atomically by rank 0; the other ranks wait, then read the same store."""
    if rank == 0:
        boxes, scores, counts = ncut_regions(data, method.backbone.trunk, resolution=config.saliency_resolution,
                                             device=config.device, progress=False, threads=config.threads)
        method.backbone.train()
        SaliencyStore(store).write(boxes, scores, counts, source="ncut", epoch=epoch, shards=open_dataset(data))
        print(f"epoch {epoch}: saliency refreshed, {int((counts > 0).sum())} of {len(counts)} images with regions")
    if world > 1:
        dist.barrier()


def train(config: TrainConfig, data: str, out: str | Path, resume: bool = False, progress: bool = True,
          max_steps: int | None = None, synthetic: bool = False) -> dict:
    """Pretrains; returns the last metrics. `max_steps` stops early (tests, benchmarks);
    `synthetic` trains on the first batch over and over (the data-stall ceiling)."""
    # `threads` is the run's share of the host's cores, for torch's compute as for DALI's: with
    # torch's default (every core) two runs side by side with threads=1 each ran at 11 and 8
    # samples/s on 2 cores, against 34 and 30 with one torch thread each. Given back on return:
    # other code calls this function too.
    with cpu_threads(config.threads, config.device):
        return _train(config, data, out, resume, progress, max_steps, synthetic)


@contextlib.contextmanager
def cpu_threads(threads: int, device: str):
    """torch's compute threads at `threads` on the CPU (0: torch's own setting), as before after."""
    if threads < 0:
        raise ValueError(f"threads {threads}: 0 (every core) or a positive count")
    given = torch.get_num_threads()
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(given)


def _train(config: TrainConfig, data: str, out: str | Path, resume: bool, progress: bool, max_steps: int | None,
           synthetic: bool) -> dict:
    out = Path(out)
    if config.device == "gpu" and not torch.cuda.is_available():
        raise ValueError("device: gpu, and torch sees no CUDA GPU; device=cpu precision=fp32 runs the same "
                         "config on the CPU")
    if config.knn_every:  # found now, not after the first epochs
        open_labelled_pair(config.knn_train, config.knn_val, "the kNN monitor (knn_train, knn_val)")
    rank, world = setup_distributed(config.device)
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} does not split over {world} ranks")
    # an indexed device: DDP needs device_ids=[this rank's GPU], set by setup_distributed
    device = torch.device("cuda", torch.cuda.current_device()) if config.device == "gpu" else torch.device("cpu")
    torch.manual_seed(config.seed)
    recipe = recipes.get(config.recipe_name, **config.recipe_overrides)
    loader = ViewLoader(data, recipe, config.batch_size // world, device=config.device, seed=config.seed,
                        drop_last=True, rank=rank, world_size=world, threads=config.threads,
                        verify_checksums=config.verify_checksums, **config.loader_options)
    model = build_method(config.method, config.arch, config.method_options).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if world > 1 and config.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    method = model
    custom_backward = hasattr(method, "backward")  # e.g. LoGo's clipped second gradient
    if world > 1 and custom_backward:
        for tensor in list(method.parameters()) + list(method.buffers()):
            dist.broadcast(tensor.data, 0)  # the method averages its own gradients
    elif world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(model) if config.compile else model
    optimizer = make_optimizer(config, method)
    steps_per_epoch = len(loader)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    start_epoch, step = 0, 0
    if not resume and (out / "checkpoint-last.pt").exists():  # its metrics and checkpoints would mix with this run's
        raise ValueError(f"{out}: holds a run already (checkpoint-last.pt); --resume continues it, or give another --out")
    if resume and not (out / "checkpoint-last.pt").exists() and rank == 0:
        print(f"{out}: no checkpoint-last.pt to resume from, starting the run")
    if resume and (out / "checkpoint-last.pt").exists():
        state = ckpt.load(out / "checkpoint-last.pt", needs=("config", "model", "optimizer", "loader", "rng", "step"))
        conflicts = resume_conflicts(state["config"], config)
        if conflicts:
            raise ValueError(f"{out / 'checkpoint-last.pt'}: --resume continues the run as it was configured, and "
                             f"this config differs in {'; '.join(conflicts)}. Give the run's own settings "
                             f"({out / 'config.yaml'}) or start a new run folder.")
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        ckpt.restore_rng(state["rng"])
        start_epoch, step = state["epoch"], state["step"]
    autocast = config.precision == "bf16" and device.type == "cuda"
    writer = None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        resolved = dataclasses.asdict(config) | {"lr": config.lr, "git": ckpt.git_revision(), "world_size": world,
                                                 "recipe_resolved": recipes.to_yaml(recipe)}
        (out / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        print(f"{config.method} on {config.arch}: lr {config.lr:.4g} (= {config.base_lr} x {config.batch_size} / 256), "
              f"{steps_per_epoch} steps/epoch x {config.epochs} epochs, {world} rank(s), "
              f"{'bf16' if autocast else 'fp32'}, views {config.recipe_name}")
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events a killed run logged after its last checkpoint are dropped, not doubled
        writer = SummaryWriter(out / "tensorboard", purge_step=step + 1 if step else None)
    if rank == 0 and resume and step:
        forget_rows_after(out / "metrics.jsonl", step, start_epoch)
    # a new run truncates what a run killed before its first checkpoint logged
    metrics_file = open(out / "metrics.jsonl", "a" if step else "w") if rank == 0 else None
    last = {}
    batches = _repeat_first(loader) if synthetic else loader
    store = out / "saliency-store"
    if recipe.saliency is not None and (store / "meta.json").exists():
        loader.set_side_data(SaliencyStore(store).table())  # resumed: the regions it trained with
    resumed_mid_epoch = 0 < loader.state_dict()["step"] < steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        starts_fresh = not (epoch == start_epoch and resumed_mid_epoch)
        if config.saliency_interval and epoch and epoch % config.saliency_interval == 0 and starts_fresh:
            refresh_saliency(config, method, data, store, epoch, rank, world)
            loader.set_side_data(SaliencyStore(store).table())
        loader.set_epoch(epoch)
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", disable=not (progress and rank == 0))
        bar.update(loader.state_dict()["step"])
        waited = busy = 0.0
        ready = time.perf_counter()
        for index, batch in enumerate(batches):
            fetched = time.perf_counter()
            lr = learning_rate(step, total_steps, config.lr, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = config.lr if group.get("fixed_lr") else lr
            # once per epoch, counted here: the in-memory ceiling never advances the loader
            if rank == 0 and index == 0:
                log_views(writer, batch, step)
            batch = to_device(batch, device, config.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, extra = forward(batch)
            optimizer.zero_grad(set_to_none=True)
            method.backward(loss) if custom_backward else loss.backward()
            optimizer.step()
            method.after_step(step, total_steps)
            step += 1
            loss_value = loss.item()  # syncs the device: the step's time is complete
            done = time.perf_counter()
            waited, busy = waited + fetched - ready, busy + done - fetched
            ready = done
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                last = {"step": step, "epoch": epoch, "loss": loss_value, "lr": lr,
                        "samples_per_s": config.batch_size * config.log_every / max(waited + busy, 1e-9)
                        if step % config.log_every == 0 else None,
                        "data_wait": waited / max(waited + busy, 1e-9)} | {k: float(v) for k, v in extra.items()}
                waited = busy = 0.0
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.3g}", wait=f"{last['data_wait']:.0%}",
                                **({"samples/s": f"{last['samples_per_s']:.0f}"} if last["samples_per_s"] else {}))
                if rank == 0:
                    metrics_file.write(json.dumps(last) + "\n")
                    metrics_file.flush()
                    for key, value in last.items():
                        if value is not None and key not in ("step", "epoch"):
                            writer.add_scalar(key, value, step)
            if max_steps is not None and step >= max_steps:
                break
        bar.close()
        finished_epoch = loader.state_dict()["step"] >= steps_per_epoch
        if rank == 0:
            state = {"config": dataclasses.asdict(config), "model": method.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch + 1 if finished_epoch else epoch, "step": step, "loader": loader.state_dict(),
                     "rng": ckpt.rng_state(), "arch": config.arch, "backbone": method.backbone.torchvision_state(),
                     "saliency_store": SaliencyStore(store).meta if (store / "meta.json").exists() else None,
                     "git": ckpt.git_revision()}
            ckpt.save(out / "checkpoint-last.pt", state)
            if finished_epoch and (epoch + 1) % config.checkpoint_every == 0:
                ckpt.save(out / f"checkpoint-{epoch + 1:04d}.pt", state)
            if config.knn_every and finished_epoch and (epoch + 1) % config.knn_every == 0:
                from viewkit.trainer.knn import extract, knn_top1

                train_set = extract(method.backbone, config.knn_train, resolution=config.knn_resolution,
                                    device=config.device, threads=config.threads)
                val_set = extract(method.backbone, config.knn_val, resolution=config.knn_resolution,
                                  device=config.device, threads=config.threads)
                last["knn_top1"] = knn_top1(*train_set, *val_set)
                metrics_file.write(json.dumps({"epoch": epoch + 1, "knn_top1": last["knn_top1"]}) + "\n")
                writer.add_scalar("knn_top1", last["knn_top1"], step)
                print(f"epoch {epoch + 1}: knn_top1={last['knn_top1']:.4f}")
        if max_steps is not None and step >= max_steps:
            break
    if rank == 0:
        metrics_file.close()
        writer.close()
    return last
