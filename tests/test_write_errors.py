"""A full disk, a read-only file system and a refused permission end every writing command in
one line naming the path and the cause, and leave no partial file behind.

The full and read-only file systems are real: small tmpfs mounts, which need root (tests
that need them skip without it); /dev/full gives a real full disk to any user.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from viewkit.tools.cli import main

CAUSES = {"full": "No space left on device", "read-only": "Read-only file system",
          "forbidden": ("Permission denied", "Operation not permitted")}


@pytest.fixture(params=["full", "read-only", "forbidden"])
def broken_output(request, tmp_path):
    """(kind, folder): writing anything under the folder fails for the kind's reason."""
    kind = request.param
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "forbidden":
        if os.geteuid() == 0:  # permissions do not bind root; sysfs refuses new files to everyone
            yield kind, Path("/sys")
            return
        folder.chmod(0o500)
        yield kind, folder
        folder.chmod(0o700)
        return
    options = "ro,size=64k" if kind == "read-only" else "size=64k"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "viewkit-test", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"a {kind} file system needs a tmpfs mount, refused here: {mounted.stderr.decode().strip()}")
    try:
        if kind == "full":
            (folder / "filler").write_bytes(bytes(64 * 1024 - 4096))  # tmpfs rounds to pages: 4 KiB stay free
        yield kind, folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _says_cause(kind: str, line: str, path: Path) -> None:
    causes = CAUSES[kind] if isinstance(CAUSES[kind], tuple) else (CAUSES[kind],)
    assert str(path) in line and any(line.endswith(cause) for cause in causes), line
    assert len(line.splitlines()) == 1


def _last_error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def _leftovers(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name != "filler" and p.stat().st_size
                  and not p.name.startswith("."))


def test_shard_preview_saliency_and_eval_name_the_path_and_cause(broken_output, embedded_source, embedded_shards,
                                                                tmp_path, capsys):
    kind, folder = broken_output
    commands = {
        "shard": ["shard", "folder", embedded_source["images"], str(folder / "shards"), "--split", "train",
                  "--workers", "1"],
        "preview": ["preview", str(embedded_shards), "--recipe", "moco_v2", "--out", str(folder / "sheet.png"), "--n", "2"],
        "saliency": ["saliency", str(embedded_shards), "--out", str(folder / "store"), "--source", "random"],
    }
    for name, command in commands.items():
        assert main(command) == 2, name
        line = _last_error(capsys)
        assert line.startswith(f"viewkit {name}: error: {folder}")
        _says_cause(kind, line, folder)
    if kind != "forbidden":
        assert _leftovers(folder) == []  # no cut shard, sheet or store version


def test_a_checkpoint_on_a_full_disk_names_itself_and_leaves_no_temporary(tmp_path):
    from viewkit.trainer import checkpoint as ckpt
    import torch

    target = tmp_path / "checkpoint-last.pt"
    (tmp_path / "checkpoint-last.pt.tmp").symlink_to("/dev/full")  # the temporary lands on a full device
    with pytest.raises(OSError) as raised:
        ckpt.save(target, {"weights": torch.zeros(100_000)})
    assert (raised.value.filename, raised.value.strerror) == (str(target), "No space left on device")
    assert not (tmp_path / "checkpoint-last.pt.tmp").exists() and not target.exists()


def test_train_and_eval_on_a_full_disk_end_in_one_line(embedded_shards, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("method: simsiam\narch: resnet18\nepochs: 1\nbatch_size: 20\ndevice: cpu\nprecision: fp32\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint-last.pt.tmp").symlink_to("/dev/full")
    overrides = ["method_options.dim=64", "recipe_overrides.global_size=32", "threads=2"]
    assert main(["train", str(config), "--data", str(embedded_shards), "--out", str(run), "--quiet", *overrides]) == 2
    assert _last_error(capsys) == f"viewkit train: error: {run / 'checkpoint-last.pt'}: No space left on device"
    assert not (run / "checkpoint-last.pt.tmp").exists() and not (run / "checkpoint-last.pt").exists()

    assert main(["train", str(config), "--data", str(embedded_shards), "--out", str(tmp_path / "ok"), "--quiet",
                 *overrides]) == 0
    (tmp_path / "knn.json").symlink_to("/dev/full")
    assert main(["eval", "knn", "--checkpoint", str(tmp_path / "ok" / "checkpoint-last.pt"), "--train",
                 str(embedded_shards), "--val", str(embedded_shards), "--resolution", "32", "--device", "cpu",
                 "--json", str(tmp_path / "knn.json")]) == 2
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1].startswith("knn_top1=")  # printed before the write that failed
    assert err.strip().splitlines()[-1] == f"viewkit eval: error: {tmp_path / 'knn.json'}: No space left on device"


def test_a_malformed_override_on_the_command_line_is_one_line(embedded_shards, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("method: simsiam\n")
    assert main(["train", str(config), "--data", str(embedded_shards), "--out", str(tmp_path / "run"),
                 "batch_size=abc"]) == 2
    assert capsys.readouterr().err.strip() == ("viewkit train: error: override 'batch_size=abc': "
                                                "batch_size='abc' must be an integer")
