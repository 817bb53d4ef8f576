"""Arguments and configs out of range end in one line before any work, never in a traceback
or in a run that silently does something else."""

import json

import pytest

from viewkit.tools.cli import main
from viewkit.trainer.config import load_config

REFUSED = [
    (["eval", "knn", "--train", "T", "--val", "V", "--k", "-5"], "argument --k: -5 must be a positive integer"),
    (["eval", "knn", "--train", "T", "--val", "V", "--k", "0"], "argument --k: 0 must be a positive integer"),
    (["eval", "knn", "--train", "T", "--val", "V", "--temperature", "0"], "--temperature: 0 must be a positive number"),
    (["eval", "linear", "--train", "T", "--val", "V", "--batch-size", "0"], "--batch-size: 0 must be a positive"),
    (["eval", "linear", "--train", "T", "--val", "V", "--epochs", "-1"], "--epochs: -1 must be a positive integer"),
    (["saliency", "S", "--out", "O", "--batch-size", "-1"], "--batch-size: -1 must be a positive integer"),
    (["shard", "folder", "A", "B", "--shard-size", "0"], "--shard-size: '0' is no size"),
    (["shard", "folder", "A", "B", "--shard-samples", "0"], "--shard-samples: 0 must be a positive integer"),
    (["eval", "knn", "--train", "T", "--val", "V", "--temperature", "nan"], "--temperature: nan must be a positive"),
]


@pytest.mark.parametrize("argv, said", REFUSED, ids=[" ".join(a[:2] + a[-2:]) for a, _ in REFUSED])
def test_out_of_range_arguments_are_refused_when_parsed(argv, said, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("override, said", [
    ("method_options.queue=abc", "method_options.queue='abc' must be an integer (default 65536)"),
    ("method_options.queu=4096", "method_options.queu: moco_v2 has no such option (did you mean 'queue'?)"),
    ("method_options.temperature=-0.2", "method_options.temperature=-0.2 must not be negative"),
    ("method_options.momentum=true", "method_options.momentum=True must be a number"),
    ("method_options.queue=!!python/object/apply:os.system [ls]", "is a Python-object tag, which configs do not load"),
])
def test_bad_method_options_are_named(override, said):
    with pytest.raises(ValueError) as refused:
        load_config(None, ["method=moco_v2", override])
    assert said in str(refused.value)


def test_a_config_with_a_python_tag_is_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text('method: moco_v2\nbatch_size: !!python/object/apply:os.system ["echo pwned"]\n')
    assert main(["train", str(config), "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "line 2" in err and "Python-object tag" in err
    assert "pwned" not in out


def test_a_reader_that_stops_early_is_no_error(embedded_shards):
    """`viewkit info D | head -1`: the reader is gone before the output is written."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "viewkit.tools.cli", "info", str(embedded_shards)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == b""


def test_knn_on_its_own_training_set_or_with_too_many_neighbours_is_said(embedded_source, embedded_shards,
                                                                             tmp_path, capsys):
    import shutil

    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset

    same = ["eval", "knn", "--random-init", "--arch", "resnet18", "--device", "cpu", "--resolution", "32",
            "--threads", "1", "--train", str(embedded_shards)]
    json_file = tmp_path / "knn.json"
    assert main(same + ["--val", str(embedded_shards), "--json", str(json_file)]) == 0
    assert "warning: --train and --val are one dataset" in capsys.readouterr().err
    result = json.loads(json_file.read_text())
    assert result["same_dataset"] is True and json_file.read_text().endswith("}\n")
    shutil.copytree(embedded_shards, tmp_path / "copy")  # the same shards under another name
    assert main(same + ["--val", str(tmp_path / "copy")]) == 0
    assert "its copy" in capsys.readouterr().err
    other = tmp_path / "other"  # the same images in another order: another dataset
    write_dataset(sources.folder_items(embedded_source["images"]), other, split="train",
                  options=ShardOptions(shard_samples=16, workers=1, seed=1), progress=False)
    assert main(same + ["--val", str(other), "--k", "61", "--json", str(json_file)]) == 0
    out, err = capsys.readouterr()
    assert "warning: --k 61 is more neighbours than --train holds samples (60)" in err
    assert "one dataset" not in err and out.splitlines()[-2] == f"result: {json_file}"
    assert json.loads(json_file.read_text()) | {"same_dataset": False, "k": 61, "k_used": 60} == json.loads(
        json_file.read_text())
    assert main(same + ["--val", str(other), "--k", "60"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_shipped_configs_are_found_by_name_from_anywhere(tmp_path, monkeypatch, capsys):
    from viewkit.trainer.config import find_config, shipped_configs

    monkeypatch.chdir(tmp_path)  # no clone here
    names = shipped_configs()
    assert "moco_v2" in names and "cpu/byol" in names and len(names) == 24
    assert load_config("cpu/byol").arch == "resnet18-lowres"
    assert find_config("configs/cpu/byol.yaml") == find_config("cpu/byol")  # as a clone's README spelt it
    with pytest.raises(ValueError, match=r"config 'cpu/byl': no such file.*did you mean 'cpu/byol'"):
        load_config("cpu/byl")
    (tmp_path / "mine.yaml").write_text("method: simclr\nbatch_size: 8\n")
    assert load_config("mine.yaml").batch_size == 8  # a path still works
    assert main(["train", "--list"]) == 0
    assert capsys.readouterr().out.split() == names


def test_every_option_shows_its_default_and_recipe_names_the_presets():
    import argparse

    from viewkit.tools.cli import COMMANDS, HelpFormatter, build_parser
    from viewkit.views.recipes import PRESETS

    for command in COMMANDS:
        parser = build_parser(command)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        for action in sub._actions:
            if action.option_strings and not any(action.default is v for v in (None, False, argparse.SUPPRESS)):
                shown = HelpFormatter("x")._expand_help(action)
                assert "default" in shown, (command, action.dest, shown)
            if action.dest == "recipe":
                assert all(name in action.help for name in PRESETS), command


@pytest.mark.parametrize("argv", [["saliency", "S", "--out", "s3://b/store"],
                                  ["train", "cpu/byol", "--data", "D", "--out", "s3://b/run"],
                                  ["preview", "S", "--out", "gs://b/views.png"]])
def test_a_url_to_write_to_is_refused_in_one_line_and_no_local_folder_named_like_it_appears(argv, tmp_path, monkeypatch,
                                                                                            capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a URL (" in err and "writes local files only" in err
    assert list(tmp_path.iterdir()) == []  # no folder "s3:" or "gs:"


def test_the_library_refuses_unknown_schemes_and_says_when_credentials_are_missing(tmp_path, monkeypatch):
    from viewkit import ViewLoader
    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset

    with pytest.raises(ValueError, match=r"nope://b/x: unknown scheme nope://; viewkit reads local folders and object "
                                         r"storage through fsspec"):
        ViewLoader("nope://b/x", "logo", 8, device="cpu", cache_dir=tmp_path / "cache")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(b"")
    with pytest.raises(PermissionError, match=r"s3://b/out: no credentials for AWS S3 \(set AWS_ACCESS_KEY_ID"):
        write_dataset(sources.folder_items(tmp_path / "src"), "s3://b/out", split="train", options=ShardOptions())


def test_a_ray_address_may_be_a_url(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    assert main(["shard", "folder", str(tmp_path / "src"), str(tmp_path / "out"), "--address", "ray://127.0.0.1:1"]) == 2
    assert "names a Ray cluster: add --engine ray" in capsys.readouterr().err  # past the URL check
