"""A training run set up, in one place: ranks, loader, method, optimizer, logs, and the
state a resumed run continues from. The engine (engine.py) only steps it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import yaml

from viewkit.loaders import epochs
from viewkit.loaders.dataset import open_labelled_pair
from viewkit.loaders.view_loader import ViewLoader
from viewkit.trainer import checkpoint as ckpt
from viewkit.trainer.config import TrainConfig, resume_conflicts
from viewkit.trainer.devices import setup_distributed
from viewkit.trainer.methods import build_method
from viewkit.trainer.methods.base import EpochStart, Method
from viewkit.trainer.metrics import MetricsLog
from viewkit.trainer.optimizers import make_optimizer
from viewkit.views import recipes
from viewkit.writes import writing

RESUME_NEEDS = ("config", "model", "optimizer", "loader", "rng", "step")


@dataclass
class Run:
    config: TrainConfig
    data: str
    out: Path
    rank: int
    world: int
    device: torch.device
    method: Method  # the module: its state, hooks and backbone
    forward: Callable  # what computes the loss: `method`, inside DDP and torch.compile when asked
    optimizer: torch.optim.Optimizer
    loader: ViewLoader
    log: MetricsLog | None  # rank 0 only
    start_epoch: int = 0
    step: int = 0
    resumed_mid_epoch: bool = False
    # a whole epoch's steps on this world (the rest of an epoch resumed on another world may
    # run fewer or more: the loader's len), and the schedule's, once the start is known
    steps_per_epoch: int = 0
    total_steps: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def warmup_steps(self) -> int:
        return int(self.config.warmup_epochs * self.steps_per_epoch)

    @property
    def autocast(self) -> bool:
        return self.config.precision == "bf16" and self.device.type == "cuda"

    def continues_epoch(self, epoch: int) -> bool:
        """True for the epoch a mid-epoch checkpoint resumes into: its start-of-epoch work is done."""
        return epoch == self.start_epoch and self.resumed_mid_epoch

    def epoch_start(self, epoch: int) -> EpochStart:
        """What the method's on_epoch_start sees of the run."""
        return EpochStart(epoch, epoch == self.start_epoch, self.continues_epoch(epoch), self.data, self.out, self.rank,
                          self.world, self.config.device, self.config.threads, self.loader.set_side_data)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def start_run(config: TrainConfig, data: str, out: str | Path, resume: bool = False) -> Run:
    out = Path(out)
    _refuse_early(config, out, resume)
    rank, world = setup_distributed(config.device)
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} does not split over {world} ranks")
    # an indexed device: DDP needs device_ids=[this rank's GPU], set by setup_distributed
    device = torch.device("cuda", torch.cuda.current_device()) if config.device == "gpu" else torch.device("cpu")
    torch.manual_seed(config.seed)
    recipe = recipes.get(config.recipe_name, **config.recipe_overrides)
    loader = ViewLoader(data, recipe, config.batch_size // world, device=config.device, seed=config.seed,
                        drop_last=True, rank=rank, world_size=world, threads=config.threads,
                        verify_checksums=config.verify_checksums, cache_dir=config.cache_dir,
                        cache_limit=config.cache_limit, **config.loader_options)
    method, forward = _place_method(config, world, device)
    run = Run(config, data, out, rank, world, device, method, forward, make_optimizer(config, method), loader, None,
              steps_per_epoch=epochs.steps_per_epoch(loader.shards.num_samples, world, loader.batch_size, True))
    checkpoint = out / "checkpoint-last.pt"
    if resume and checkpoint.exists():
        _restore(run, ckpt.load(checkpoint, needs=RESUME_NEEDS))
    else:
        run.total_steps = config.epochs * run.steps_per_epoch
        if resume and run.is_main:
            print(f"{out}: no checkpoint-last.pt to resume from, starting the run")
    if run.is_main:
        _write_config(run, recipe)
        run.log = MetricsLog(out, run.step, run.start_epoch)
        print(f"{config.method} on {config.arch}: lr {config.lr:.4g} (= {config.base_lr} x {config.batch_size} / 256), "
              f"{run.steps_per_epoch} steps/epoch x {config.epochs} epochs, {world} rank(s), "
              f"{'bf16' if run.autocast else 'fp32'}, views {config.recipe_name}")
    return run


def _refuse_early(config: TrainConfig, out: Path, resume: bool) -> None:
    """What would fail later, said before any work."""
    if config.device == "gpu" and not torch.cuda.is_available():
        raise ValueError("device: gpu, and torch sees no CUDA GPU; device=cpu precision=fp32 runs the same "
                         "config on the CPU")
    if config.knn_every:
        open_labelled_pair(config.knn_train, config.knn_val, "the kNN monitor (knn_train, knn_val)")
    if not resume and (out / "checkpoint-last.pt").exists():  # its metrics and checkpoints would mix with this run's
        raise ValueError(f"{out}: holds a run already (checkpoint-last.pt); --resume continues it, or give another --out")


def _place_method(config: TrainConfig, world: int, device: torch.device) -> tuple[Method, Callable]:
    """The method on its device, and what computes its loss: inside DDP over ranks (unless it
    averages its own gradients) and torch.compile when asked."""
    method = build_method(config.method, config.arch, config.method_options).to(device)
    if config.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if world > 1 and config.sync_bn:
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    forward = method
    if world > 1 and method.averages_own_gradients:
        for tensor in list(method.parameters()) + list(method.buffers()):
            dist.broadcast(tensor.data, 0)  # the same start on every rank; its backward averages the gradients
    elif world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None)
    return method, torch.compile(forward) if config.compile else forward


def _restore(run: Run, state: dict) -> None:
    conflicts = resume_conflicts(state["config"], run.config)
    if conflicts:
        raise ValueError(f"{run.out / 'checkpoint-last.pt'}: --resume continues the run as it was configured, and "
                         f"this config differs in {'; '.join(conflicts)}. Give the run's own settings "
                         f"({run.out / 'config.yaml'}) or start a new run folder.")
    loader_states = state["loader"] if isinstance(state["loader"], list) else [state["loader"]]
    saved_world = loader_states[0]["world_size"]
    if len(loader_states) != saved_world:
        raise ValueError(f"{run.out / 'checkpoint-last.pt'}: holds the loader state of rank 0 only, of a run on "
                         f"{saved_world} ranks (written before checkpoints kept every rank's), so the rest of its "
                         f"epoch is unknown: resume it on {saved_world} ranks with the viewkit that wrote it")
    if state["epoch"] > run.config.epochs:
        raise ValueError(f"{run.out / 'checkpoint-last.pt'}: the run has finished {state['epoch']} epochs, more "
                         f"than epochs={run.config.epochs}; give epochs={state['epoch']} or more to extend it")
    run.method.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.loader.load_state_dict(loader_states)
    ckpt.restore_rng(state["rng"])
    # the loader knows where the epoch stands: on another world the rest of an epoch may be
    # under a batch per rank, dropped like an epoch's tail, and the run begins the next
    run.start_epoch, run.step = run.loader.epoch, state["step"]
    done = run.loader.steps_done
    left_in_epoch = len(run.loader) - done if run.start_epoch < run.config.epochs else 0
    run.total_steps = (run.step + left_in_epoch
                       + max(0, run.config.epochs - run.start_epoch - 1) * run.steps_per_epoch)
    rest = run.loader.rest_of_epoch is not None
    run.resumed_mid_epoch = 0 < done < len(run.loader) or rest
    if run.is_main:
        within = f", {done} of its {len(run.loader)} steps done" if 0 < done < len(run.loader) else ""
        within = within or (", part of it done" if rest else "")
        print(f"{run.out}: resuming at epoch {run.start_epoch + 1} of {run.config.epochs}{within} (step {run.step}) "
              f"from {run.out / 'checkpoint-last.pt'}", flush=True)
        for line in _what_changed(run, state, saved_world, done):
            print(f"{run.out}: {line}", flush=True)


def _what_changed(run: Run, state: dict, saved_world: int, done: int) -> list[str]:
    """One line per change a resume makes to the run's course: another world, more epochs."""
    lines = []
    config = run.config
    if saved_world != run.world:
        due = run.loader.rest_of_epoch
        steps = len(run.loader) - done
        rest = (f"the rest of epoch {run.start_epoch + 1} is the {due} samples no rank delivered, "
                f"{steps} step{'' if steps == 1 else 's'} per rank" if due is not None
                else f"epoch {run.start_epoch + 1} starts whole")
        lines.append(f"world size {saved_world} -> {run.world}: global batch {config.batch_size} stays "
                     f"({config.batch_size // saved_world} -> {config.batch_size // run.world} per rank), lr "
                     f"{config.lr:.4g} stays (= {config.base_lr} x {config.batch_size} / 256); {rest}")
    saved_epochs = state["config"].get("epochs", config.epochs)
    if saved_epochs != config.epochs:
        from viewkit.trainer.schedules import learning_rate

        lr = learning_rate(run.step, run.total_steps, config.lr, run.warmup_steps)
        lines.append(f"epochs {saved_epochs} -> {config.epochs}: the cosine schedule now ends at step "
                     f"{run.total_steps}, and goes on from lr {lr:.4g} at step {run.step}")
    return lines


def _write_config(run: Run, recipe) -> None:
    """config.yaml beside the logs: the config as resolved, the git revision and the views."""
    run.out.mkdir(parents=True, exist_ok=True)
    resolved = dataclasses.asdict(run.config) | {"lr": run.config.lr, "git": ckpt.git_revision(),
                                                 "world_size": run.world, "recipe_resolved": recipes.to_yaml(recipe)}
    with writing(run.out / "config.yaml"):
        (run.out / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))


def loader_states(run: Run) -> list[dict]:
    """Every rank's loader state, gathered on every rank (a collective: all ranks call it at
    the same step). A checkpoint holds them all, so that a job on another number of ranks
    knows which samples of the epoch no rank delivered."""
    state = run.loader.state_dict()
    if run.world == 1:
        return [state]
    gathered = [None] * run.world
    dist.all_gather_object(gathered, state)
    return gathered


def training_state(run: Run, epoch: int, finished_epoch: bool, loaders: list[dict]) -> dict:
    """Everything `--resume` needs, plus what evaluation reads (arch, backbone)."""
    return {"config": dataclasses.asdict(run.config), "model": run.method.state_dict(),
            "optimizer": run.optimizer.state_dict(), "epoch": epoch + 1 if finished_epoch else epoch,
            "step": run.step, "loader": loaders, "rng": ckpt.rng_state(), "arch": run.config.arch,
            "backbone": run.method.backbone.torchvision_state(), "git": ckpt.git_revision()} \
        | run.method.checkpoint_extras(run.out)
