"""Run under torchrun by tests/test_distributed.py: `viewkit train` itself, each rank writing
the sample ids it trains on, every process killed (SIGKILL) right after the checkpoint of a
given step is written: a preempted job, killed at the same step on every machine.

    python -m torch.distributed.run --nproc_per_node W tests/elastic_worker.py RECORDS KILL_AT \\
        train CONFIG --data SHARDS --out RUN [--resume]       (KILL_AT 0: run to the end)
"""

import json
import os
import signal
import sys
from pathlib import Path

import viewkit.trainer.checkpoint as ckpt
from viewkit.loaders.view_loader import ViewLoader
from viewkit.tools.cli import main

records, kill_at = Path(sys.argv[1]), int(sys.argv[2])
log = open(records / f"world{os.environ['WORLD_SIZE']}-rank{os.environ['RANK']}.jsonl", "a")
iterate = ViewLoader.__iter__


def recording(loader):
    for batch in iterate(loader):
        log.write(json.dumps({"epoch": loader.epoch, "step": loader.steps_done, "size": len(batch["id"]),
                              "ids": batch["id"][batch["valid"]].tolist()}) + "\n")
        log.flush()
        yield batch


save = ckpt.save


def save_then_die(path, state):
    save(path, state)
    if state["step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # torchrun then stops the other ranks


ViewLoader.__iter__ = recording
ckpt.save = save_then_die
sys.exit(main(sys.argv[3:]))
