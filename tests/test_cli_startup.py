"""The command line starts at once: only the command run is imported, and `--help`, `info`
and `verify --help` load neither torch nor DALI."""

import subprocess
import sys

import pytest

from viewkit.tools.cli import COMMANDS, command_module


def test_summaries_are_the_commands_own_first_lines():
    for name, summary in COMMANDS.items():
        assert command_module(name).__doc__.strip().splitlines()[0] == summary, name


@pytest.mark.parametrize("args", [["--help"], ["info", "{shards}"], ["verify", "--help"], ["shard", "--help"]])
def test_light_commands_import_neither_torch_nor_dali(embedded_shards, args):
    args = [a.format(shards=embedded_shards) for a in args]
    code = ("import sys\nfrom viewkit.tools.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'nvidia.dali', 'torchvision') if m in sys.modules)\n"
            "print('HEAVY', heavy)" % args)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "HEAVY []" in out, out[-500:]
