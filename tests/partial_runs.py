"""A training run stopped after N steps, composed from the engine's parts as a test needs it
(the library's `train` has no such flag): the resume and kill tests stop mid-epoch."""

from __future__ import annotations

from itertools import islice

from viewkit.trainer.devices import cpu_threads
from viewkit.trainer.engine import end_of_epoch, train_one_epoch
from viewkit.trainer.run import start_run


def train_steps(config, data, out, steps: int, resume: bool = False, batches=None) -> dict:
    """`train`, stopping after `steps` steps in all (a checkpoint written there);
    `batches(run)`: the epoch's batches instead of the run's loader."""
    with cpu_threads(config.threads, config.device):
        run = start_run(config, data, out, resume)
        last = {}
        try:
            for epoch in range(run.start_epoch, config.epochs):
                run.method.on_epoch_start(run.epoch_start(epoch))
                run.loader.set_epoch(epoch)
                source = run.loader if batches is None else batches(run)
                last = train_one_epoch(run, epoch, islice(source, steps - run.step), progress=False) or last
                last |= end_of_epoch(run, epoch)
                if run.step >= steps:
                    break
        finally:
            run.close()
    return last
