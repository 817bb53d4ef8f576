"""The CLI's own shard run, killed by SIGKILL from the writer's hook after its Nth shard is
journaled: a kill at the same point on every machine, without polling."""

SCRIPT = """
import os, signal, sys
import viewkit.tools.shard as shard
from viewkit.tools.cli import main

write = shard.write_dataset
def write_then_die(*args, **kwargs):
    done = []
    def after_shard(record):
        done.append(record)
        if len(done) == {shards}:
            os.kill(os.getpid(), signal.SIGKILL)
    return write(*args, **kwargs, after_shard=after_shard)
shard.write_dataset = write_then_die
sys.exit(main(sys.argv[1:]))
"""


def killed_after(shards: int) -> str:
    """`python -c` source that runs `viewkit ARGS...` and dies after `shards` shards."""
    return SCRIPT.replace("{shards}", str(shards))
