"""`viewkit verify` catches damage and names it; a killed run resumes to identical bytes."""

import json
import shutil
import signal
import subprocess
import sys

import pytest

from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest
from viewkit.shards import sources
from viewkit.shards.verify import verify_dataset
from viewkit.shards.writer import JOURNAL_NAME, ShardOptions, write_dataset
from viewkit.tools.cli import main

from killed_run import killed_after


@pytest.fixture
def copy_of(embedded_shards, tmp_path):
    shutil.copytree(embedded_shards, tmp_path / "ds")
    return tmp_path / "ds"


def test_sound_dataset_verifies(embedded_shards, capsys):
    assert verify_dataset(embedded_shards, progress=False) == []
    assert main(["verify", str(embedded_shards), "--quiet"]) == 0
    assert "OK" in capsys.readouterr().out


def test_flipped_byte_names_shard_and_key(copy_of, capsys):
    shard = read_manifest(copy_of)["shards"][1]
    sample = fmt.parse_index(copy_of / shard["index"])[5]
    _, offset, size, name = sample[0]  # the jpg member
    with open(copy_of / shard["tar"], "r+b") as f:
        f.seek(offset + size // 2)
        byte = f.read(1)
        f.seek(offset + size // 2)
        f.write(bytes([byte[0] ^ 0x5A]))
    problems = [str(p) for p in verify_dataset(copy_of, progress=False)]
    key = name.split(".")[0]
    assert f"{shard['tar']}: sha256 differs from the manifest" in problems
    assert any(p.startswith(f"{shard['tar']}:{key}:") for p in problems)
    assert main(["verify", str(copy_of), "--quiet"]) == 1
    assert key in capsys.readouterr().out


def test_undecodable_image_is_named(copy_of):
    shard = read_manifest(copy_of)["shards"][0]
    _, offset, size, name = fmt.parse_index(copy_of / shard["index"])[2][0]
    with open(copy_of / shard["tar"], "r+b") as f:
        f.seek(offset)
        f.write(b"\x00" * 64)  # destroys the JPEG header
    problems = [str(p) for p in verify_dataset(copy_of, progress=False)]
    assert any(p.startswith(f"{shard['tar']}:{name.split('.')[0]}: DALI cannot decode") for p in problems)


def test_stale_index_and_missing_shard(copy_of):
    manifest = read_manifest(copy_of)
    first, second = manifest["shards"][0], manifest["shards"][1]
    shutil.copy(copy_of / second["index"], copy_of / first["index"])  # an index of another tar
    (copy_of / manifest["shards"][2]["tar"]).unlink()
    problems = [str(p) for p in verify_dataset(copy_of, progress=False)]
    assert f"{first['index']}: index does not match the tar from entry 0 on (stale index?)" in problems
    assert any(p.startswith(manifest["shards"][2]["tar"]) and "missing file" in p for p in problems)
    assert any("ids are not exactly" in p for p in problems)


class Killed(Exception):
    pass


def test_resume_after_kill_writes_identical_bytes(embedded_source, tmp_path):
    listing = sources.folder_items(embedded_source["images"])
    options = ShardOptions(shard_samples=8, workers=1)
    write_dataset(listing, tmp_path / "whole", split="train", options=options, progress=False)

    def kill_after_third(record):
        if record["tar"] == "train-000002.tar":
            raise Killed

    with pytest.raises(Killed):
        write_dataset(listing, tmp_path / "resumed", split="train", options=options, progress=False, after_shard=kill_after_third)
    # What a kill in the middle of the fourth shard leaves: a torn tar and a torn journal line.
    (tmp_path / "resumed" / "train-000003.tar.tmp").write_bytes(b"half a tar")
    with open(tmp_path / "resumed" / JOURNAL_NAME, "a") as f:
        f.write('{"tar": "train-0000')
    assert not (tmp_path / "resumed" / fmt.MANIFEST_NAME).exists()
    written = []
    write_dataset(listing, tmp_path / "resumed", split="train", options=options, progress=False,
                  after_shard=lambda r: written.append(r["tar"]))
    assert written[0] == "train-000003.tar"  # finished shards were kept, not redone
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    resumed = {p.name: p.read_bytes() for p in (tmp_path / "resumed").iterdir()}
    assert whole == resumed


def test_sigkilled_cli_run_resumes(embedded_source, tmp_path):
    args = [sys.executable, "-m", "viewkit.tools.cli", "shard", "folder", embedded_source["images"],
            str(tmp_path / "ds"), "--shard-samples", "2", "--workers", "1", "--quiet"]
    process = subprocess.run([sys.executable, "-c", killed_after(3), *args[3:]], capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    assert len((tmp_path / "ds" / JOURNAL_NAME).read_text().splitlines()) == 4  # its header and three shards
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(args[:6] + [str(tmp_path / "whole")] + args[7:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()} == whole


def test_rerun_is_a_no_op_and_other_options_need_overwrite(embedded_source, embedded_shards, tmp_path):
    listing = sources.folder_items(embedded_source["images"])
    again = write_dataset(listing, embedded_shards, split="train", options=ShardOptions(shard_samples=16, workers=1), progress=False)
    assert again["already_complete"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_dataset(listing, embedded_shards, split="train", options=ShardOptions(shard_samples=17, workers=1), progress=False)


def test_manifest_records_everything(embedded_shards):
    manifest = read_manifest(embedded_shards)
    assert manifest["num_inputs"] == manifest["num_samples"] + manifest["num_rejected"] == 60
    assert [c["name"] for c in manifest["classes"]] == sorted(["disk", "square", "triangle", "star", "ring", "cross"])
    for shard in manifest["shards"]:
        assert fmt.sha256_file(embedded_shards / shard["tar"]) == shard["sha256"]
        assert (embedded_shards / shard["tar"]).stat().st_size == shard["bytes"]
    assert [s["first_id"] for s in manifest["shards"]] == [0, 16, 32, 48]
    assert json.loads((embedded_shards / fmt.MANIFEST_NAME).read_text())["options"]["shard_samples"] == 16
    from viewkit.tools.info import describe

    assert "shards     3 x 16 + 1 x 12 samples," in describe(manifest)  # 60 samples, 16 per shard


@pytest.mark.parametrize("name,size", [("0000000000.jpg", 0), ("0000000001.id.i64", 8), ("a" * 100, 123456789),
                                       ("0000012345.categories.i64", 8 ** 11 - 1)])
def test_ustar_header_equals_tarfile(name, size):
    import tarfile

    from viewkit.shards.tarwriter import ustar_header

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uname = info.gname = ""
    assert ustar_header(name, size) == info.tobuf(format=tarfile.USTAR_FORMAT)
