"""The command line starts at once: only the command run is imported, and `--help`, `info`,
every command's `--help` and its argument errors load neither torch nor DALI."""

import subprocess
import sys

import pytest

from viewkit.tools.cli import COMMANDS, command_module


def test_summaries_are_the_commands_own_first_lines():
    for name, summary in COMMANDS.items():
        assert command_module(name).__doc__.strip().splitlines()[0] == summary, name


@pytest.mark.parametrize("args", [["--help"], ["info", "{shards}"], ["verify", "--help"], ["shard", "--help"],
                                  ["train", "--help"], ["eval", "--help"], ["saliency", "--help"],
                                  ["eval", "knn", "--train", "T", "--val", "V", "--k", "-5"],
                                  ["saliency", "S", "--out", "O", "--batch-size", "0"], ["train", "C", "--data", "D"]])
def test_light_commands_import_neither_torch_nor_dali(embedded_shards, args):
    args = [a.format(shards=embedded_shards) for a in args]
    code = ("import sys\nfrom viewkit.tools.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'nvidia.dali', 'torchvision') if m in sys.modules)\n"
            "print('HEAVY', heavy)" % args)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "HEAVY []" in out, out[-500:]


def test_contact_sheet_legend_names_every_mark():
    from viewkit.tools.preview import _COLOURS, legend, legend_entries
    from viewkit.views import recipes

    logo = dict(legend_entries(recipes.get("logo")))
    assert logo == {"global: 2 x 224 px, scale 0.4-1": _COLOURS[0], "local: 2 x 96 px, scale 0.05-0.4": _COLOURS[1]}
    regioncl = [text for text, _ in legend_entries(recipes.get("regioncl"))]
    sgcl = [text for text, _ in legend_entries(recipes.get("sgcl"))]
    assert regioncl[-1].startswith("swap box") and sgcl == ["saliency regions", "saliency crops: 4 pairs x 96 px"]
    assert legend(recipes.get("heavy_multicrop")).height == 16 * 3 + 8
