"""The training engine: epochs of steps over a run that run.py set up.

    train(config, data="OUT/train", out="runs/moco", resume=False)

Per step: wait for the batch (timed: the data stall), lr from the schedule, forward under
bf16 autocast on GPU, backward, SGD/LARS step, then the method's after_step (its EMA).
Per epoch: the method's on_epoch_start before, checkpoint-last.pt (atomic; every
`checkpoint_every` epochs a kept copy; also every `checkpoint_every_steps` steps within the
epoch) and the optional kNN monitor after. Metrics go to
metrics.jsonl and TensorBoard; the resolved config and git revision to config.yaml.

Benchmarks and tests compose the same parts: `start_run`, then `train_one_epoch` over
batches of their own (one batch repeated: the data-stall ceiling; the first N: a run
stopped mid-epoch), then `end_of_epoch`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterable

import torch
from tqdm import tqdm

from viewkit.trainer import checkpoint as ckpt
from viewkit.trainer.config import TrainConfig
from viewkit.trainer.devices import cpu_threads, to_device
from viewkit.trainer.optimizers import set_learning_rate
from viewkit.trainer.run import Run, loader_states, start_run, training_state
from viewkit.trainer.schedules import learning_rate


def train(config: TrainConfig, data: str, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Pretrains; returns the last logged metrics."""
    with cpu_threads(config.threads, config.device):
        run = start_run(config, data, out, resume)
        last = {}
        try:
            for epoch in range(run.start_epoch, config.epochs):
                run.method.on_epoch_start(run.epoch_start(epoch))
                run.loader.set_epoch(epoch)
                last = train_one_epoch(run, epoch, run.loader, progress) or last
                last |= end_of_epoch(run, epoch)
        finally:
            run.close()
    return last


def train_one_epoch(run: Run, epoch: int, batches: Iterable[dict], progress: bool = True) -> dict:
    """Steps over `batches`; returns the last row logged (every `log_every` steps)."""
    config, method, optimizer = run.config, run.method, run.optimizer
    bar = tqdm(total=len(run.loader), initial=run.loader.steps_done, desc=f"epoch {epoch}",
               disable=not (progress and run.is_main))
    last, waited, busy = {}, 0.0, 0.0
    ready = time.perf_counter()
    for index, batch in enumerate(batches):
        fetched = time.perf_counter()
        lr = learning_rate(run.step, run.total_steps, config.lr, run.warmup_steps)
        set_learning_rate(optimizer, lr, peak=config.lr)
        if run.log is not None and index == 0:  # counted here: the in-memory ceiling never advances the loader
            run.log.views(batch, run.step)
        batch = to_device(batch, run.device, config.channels_last)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.autocast):
            loss, extra = run.forward(batch)
        optimizer.zero_grad(set_to_none=True)
        method.backward(loss)
        optimizer.step()
        method.after_step(run.step, run.total_steps)
        run.step += 1
        loss_value = loss.item()  # syncs the device: the step's time is complete
        if not math.isfinite(loss_value):  # as DINO and MAE: no checkpoint of a diverged network
            raise ValueError(f"step {run.step} (epoch {epoch}): the loss is {loss_value}"
                             f"{_parts(extra)}; the run stops without a checkpoint of it "
                             f"({run.out / 'checkpoint-last.pt'} holds the last finished epoch): lower base_lr, "
                             "or check the data and the method's options")
        done = time.perf_counter()
        waited, busy, ready = waited + fetched - ready, busy + done - fetched, done
        bar.update(1)
        if run.step % config.log_every == 0 or run.step == run.total_steps:
            full_window = run.step % config.log_every == 0
            last = {"step": run.step, "epoch": epoch, "loss": loss_value, "lr": lr,
                    "samples_per_s": config.batch_size * config.log_every / max(waited + busy, 1e-9) if full_window else None,
                    "data_wait": waited / max(waited + busy, 1e-9)} | {k: float(v) for k, v in extra.items()}
            waited = busy = 0.0
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.3g}", wait=f"{last['data_wait']:.0%}",
                            **({"samples/s": f"{last['samples_per_s']:.0f}"} if full_window else {}))
            if run.log is not None:
                run.log.row(last, run.step)
        if config.checkpoint_every_steps and run.step % config.checkpoint_every_steps == 0 \
                and run.loader.steps_done < len(run.loader):  # an epoch's end saves its own
            save_last(run, epoch)
    bar.close()
    return last


def save_last(run: Run, epoch: int) -> tuple[dict, bool]:
    """checkpoint-last.pt, written by rank 0 with every rank's loader state (all ranks call
    it at the same step); returns (the state on rank 0, None elsewhere; whether the epoch is done)."""
    loaders = loader_states(run)
    finished = loaders[run.rank]["finished"]
    if not run.is_main:
        return None, finished
    state = training_state(run, epoch, finished, loaders)
    ckpt.save(run.out / "checkpoint-last.pt", state)
    return state, finished


def _parts(extra: dict) -> str:
    return " (" + ", ".join(f"{k} {float(v):.4g}" for k, v in extra.items()) + ")" if extra else ""


def end_of_epoch(run: Run, epoch: int) -> dict:
    """Checkpoints (also after a partial epoch: a resume continues it) and the kNN monitor;
    returns {"knn_top1": ...} when the monitor ran."""
    state, finished = save_last(run, epoch)
    if not run.is_main:
        return {}
    config = run.config
    if finished and (epoch + 1) % config.checkpoint_every == 0:
        ckpt.save(run.out / f"checkpoint-{epoch + 1:04d}.pt", state)
    if not (config.knn_every and finished and (epoch + 1) % config.knn_every == 0):
        return {}
    from viewkit.trainer.evaluate.knn import extract, knn_top1

    backbone = run.method.backbone
    train_set = extract(backbone, config.knn_train, resolution=config.knn_resolution, device=config.device,
                        threads=config.threads)
    val_set = extract(backbone, config.knn_val, resolution=config.knn_resolution, device=config.device,
                      threads=config.threads)
    top1 = knn_top1(*train_set, *val_set)
    run.log.row({"epoch": epoch + 1, "knn_top1": top1}, run.step)
    print(f"epoch {epoch + 1}: knn_top1={top1:.4f}")
    return {"knn_top1": top1}
