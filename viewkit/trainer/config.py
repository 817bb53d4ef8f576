"""The one typed config of `viewkit train`: YAML in, key=value overrides, checked when built."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml


# Data-side knobs a GPU machine tunes: the share of JPEGs for the hardware decoder (the rest
# costs CPU time), batches prepared ahead, the shuffle buffer, and whether the next epoch's
# pipeline is built ahead (off saves its memory).
LOADER_OPTIONS = ("hw_decoder_load", "prefetch", "initial_fill", "build_ahead")
# Keys `--resume` lets differ from the checkpoint's: where and how fast the run goes, and
# what it reports; and epochs, so that a run can be extended (the cosine schedule is then
# stretched over the new count from the step reached, said in one line at resume). Every
# other key changes what is trained.
RESUME_MAY_CHANGE = ("device", "threads", "loader_options", "verify_checksums", "cache_dir", "cache_limit",
                     "compile", "log_every",
                     "checkpoint_every", "checkpoint_every_steps", "knn_every", "knn_train", "knn_val",
                     "knn_resolution", "epochs")


@dataclass
class TrainConfig:
    method: str = "moco_v2"  # a name of viewkit.trainer.methods.METHODS
    method_options: dict = field(default_factory=dict)  # e.g. {queue: 4096, temperature: 0.2}
    recipe: str | None = None  # view recipe: a preset's name or a recipe YAML file; default: the method's own
    recipe_overrides: dict = field(default_factory=dict)  # e.g. {global_size: 96}
    arch: str = "resnet50"  # torchvision ResNet, random init
    epochs: int = 200
    batch_size: int = 256  # global: split evenly over the ranks
    base_lr: float = 0.03  # at batch 256: lr = base_lr * batch_size / 256 (printed at start)
    optimizer: str = "sgd"  # sgd or lars
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0
    device: str = "gpu"  # gpu or cpu (DALI and torch both)
    precision: str = "bf16"  # bf16 autocast on GPU; fp32 runs everywhere
    channels_last: bool = True
    compile: bool = False  # torch.compile the method
    sync_bn: bool = False  # SyncBatchNorm under DDP
    seed: int = 0
    threads: int = 0  # DALI threads per process, and torch's on the CPU; 0: cores / processes on the host
    loader_options: dict = field(default_factory=dict)  # the training loader's, see LOADER_OPTIONS
    verify_checksums: bool = True  # hash every shard once at start (README: its cost); false skips it
    # --data in object storage (s3://...): the node-local shard cache, its folder and budget
    # ("500GB"); defaults: VIEWKIT_CACHE_DIR / VIEWKIT_CACHE_LIMIT, else README's rule
    cache_dir: str | None = None
    cache_limit: str | None = None
    log_every: int = 10  # steps between metric lines
    checkpoint_every: int = 10  # epochs between kept checkpoints (checkpoint-last.pt every epoch)
    # steps between mid-epoch checkpoint-last.pt saves; 0: at epoch ends only. A preempted job
    # resumes from the last one, on any number of GPUs (README: resume on another number of GPUs)
    checkpoint_every_steps: int = 0
    knn_every: int = 0  # epochs between kNN monitors; 0: off
    knn_train: str | None = None  # labelled shards for the kNN monitor
    knn_val: str | None = None
    knn_resolution: int = 224

    def __post_init__(self):
        from viewkit.trainer.methods import METHODS

        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: one of {', '.join(sorted(METHODS))}")
        if self.optimizer not in ("sgd", "lars"):
            raise ValueError(f"optimizer {self.optimizer!r}: sgd or lars")
        if self.device not in ("gpu", "cpu") or self.precision not in ("bf16", "fp32"):
            raise ValueError("device: gpu|cpu, precision: bf16|fp32")
        if self.epochs < 1 or self.batch_size < 1 or self.base_lr <= 0:
            raise ValueError("epochs, batch_size and base_lr must be positive")
        if self.checkpoint_every < 1 or self.checkpoint_every_steps < 0 or self.log_every < 1:
            raise ValueError("checkpoint_every and log_every must be positive, checkpoint_every_steps >= 0 (0: off)")
        if self.knn_every and not (self.knn_train and self.knn_val):
            raise ValueError("knn_every needs knn_train and knn_val shards")
        _check_method_options(self.method, self.method_options)
        unknown = set(self.loader_options) - set(LOADER_OPTIONS)
        if unknown:  # shuffle, augment and threads belong to the trainer and its own keys
            raise ValueError(f"loader_options {sorted(unknown)}: the trainer's loader takes {list(LOADER_OPTIONS)}")
        from viewkit.loaders.pipeline import PipelineOptions

        PipelineOptions(**self.loader_options)  # its own range checks, named

    @property
    def lr(self) -> float:
        return self.base_lr * self.batch_size / 256

    @property
    def recipe_name(self) -> str:
        from viewkit.trainer.methods import METHODS

        return self.recipe or METHODS[self.method].recipe


def _check_method_options(method: str, options: dict) -> None:
    """Every method option known, of its default's type: a typo or `queue=abc` in one line."""
    from viewkit.trainer.methods import METHODS

    defaults = METHODS[method].defaults
    for key, value in options.items():
        if key not in defaults:
            raise ValueError(f"method_options.{key}: {method} has no such option{did_you_mean(key, defaults)}; "
                             f"its options: {', '.join(defaults)}")
        default = defaults[key]
        kinds = {bool: (bool, "true or false"), int: (int, "an integer"), float: ((int, float), "a number"),
                 str: (str, "a string")}
        if type(default) in kinds:
            types, said = kinds[type(default)]
            if not isinstance(value, types) or (type(default) is not bool and isinstance(value, bool)):
                raise ValueError(f"method_options.{key}={value!r} must be {said} (default {default!r})")
            if type(default) in (int, float) and value < 0 <= default:
                raise ValueError(f"method_options.{key}={value!r} must not be negative (default {default!r})")


def resume_conflicts(saved: dict, config: TrainConfig) -> list[str]:
    """The keys where a checkpoint's config and `config` disagree on what is trained, as
    "key: saved -> given"; keys a checkpoint from an older version lacks read as their default,
    and so do method options (a method that gained an option still resumes its older runs)."""
    from viewkit.trainer.methods import METHODS

    defaults = dataclasses.asdict(TrainConfig())
    given = dataclasses.asdict(config)
    moved = {key: saved[key] for key in MOVED if key in saved}  # a run saved before they moved
    saved = {key: saved.get(key, defaults[key]) for key in given}
    if moved and saved["method"] == "sgcl":
        saved["method_options"] = moved | saved["method_options"]
    option_defaults = METHODS[config.method].defaults if config.method in METHODS else {}
    if saved["method"] == config.method:
        saved["method_options"] = option_defaults | saved["method_options"]
        given["method_options"] = option_defaults | given["method_options"]
    return [f"{key}: {saved[key]!r} -> {value!r}" for key, value in given.items()
            if key not in RESUME_MAY_CHANGE and saved[key] != value]


def _parse(value: str, where: str):
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not a YAML value ({_yaml_problem(e)})") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line of a YAML error: its problem and where (a ConstructorError runs to 45 lines)."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    if "could not determine a constructor" in problem:
        problem = f"{problem.split('tag ', 1)[-1]} is a Python-object tag, which configs do not load"
    return f"{problem}, line {mark.line + 1}" if mark is not None else problem


# Keys that left TrainConfig for a method's own options (the method's file documents them).
MOVED = {"saliency_interval": "method_options.saliency_interval (sgcl's own option)",
         "saliency_resolution": "method_options.saliency_resolution (sgcl's own option)"}


def _moved(key: str) -> str:
    return f" (it is now {MOVED[key]})" if key in MOVED else ""


def did_you_mean(word: str, choices) -> str:
    """' (did you mean X?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_types(data: dict, where: str) -> None:
    """Each value of the type its field declares, said in one line (YAML reads `abc` as a string)."""
    expected = {"int": (int, "an integer"), "float": ((int, float), "a number"), "bool": (bool, "true or false"),
                "str": (str, "a string"), "dict": (dict, "a mapping")}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in data or data[f.name] is None:
            continue
        kind = str(f.type).split(" | ")[0]  # the annotation as written: "int", "str | None", ...
        if kind not in expected:
            continue
        value, (types, said) = data[f.name], expected[kind]
        if not isinstance(value, types) or (kind in ("int", "float") and isinstance(value, bool)):
            raise ValueError(f"{where}: {f.name}={value!r} must be {said}")


MERGED = ("method_options", "recipe_overrides", "loader_options")  # a derived config changes single entries


def read_yaml_config(path: str | Path, seen: tuple = ()) -> dict:
    """A config file's keys; `base: OTHER.yaml` (relative to the file) gives the keys it does
    not set, and the entries of its mappings (method_options, recipe_overrides,
    loader_options) that it does not set."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not a YAML config ({_yaml_problem(e)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config is a YAML mapping of keys to values, this file holds {type(data).__name__}")
    if "base" not in data:
        return data
    base_path = (path.parent / str(data.pop("base"))).resolve()
    if base_path in seen:
        raise ValueError(f"{path}: base: {base_path} leads back to itself")
    if not base_path.is_file():
        raise ValueError(f"{path}: base: {base_path} is not a file")
    merged = read_yaml_config(base_path, seen + (path.resolve(),))
    for key, value in data.items():
        if key in MERGED and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merged[key] | value
        else:
            merged[key] = value
    return merged


# The configs shipped in the package: `viewkit train moco_v2` or `cpu/byol` from anywhere.
SHIPPED = Path(__file__).resolve().parents[1] / "configs"


def shipped_configs() -> list[str]:
    """The names of the shipped configs: `moco_v2`, `cpu/byol`, ..."""
    return sorted(p.relative_to(SHIPPED).with_suffix("").as_posix() for p in SHIPPED.rglob("*.yaml"))


def find_config(name: str | Path) -> Path:
    """A config file: a path that exists, else a shipped config by name (`cpu/byol`, also spelt
    `configs/cpu/byol.yaml` as in a clone of the repository before the configs moved)."""
    path = Path(name)
    if path.is_file():
        return path
    key = str(name).removesuffix(".yaml").removeprefix("./").removeprefix("configs/")
    if key in shipped_configs():
        return SHIPPED / f"{key}.yaml"
    raise ValueError(f"config {str(name)!r}: no such file, nor a shipped config of that name"
                     f"{did_you_mean(key, shipped_configs())}; `viewkit train --list` names them")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """YAML file (with its `base:` chain) or shipped config name, then `key=value` overrides
    (`method_options.queue=4096` reaches into dicts)."""
    path = find_config(path) if path else None
    data = read_yaml_config(path) if path else {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in data:
        if key not in names:
            raise ValueError(f"{path}: unknown config key {key!r}{_moved(key) or did_you_mean(key, names)}")
    _check_types(data, str(path))
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ValueError(f"override {override!r}: expected key=value")
        head, _, sub = key.partition(".")
        if head not in names:
            raise ValueError(f"override {override!r}: unknown key {head!r}{_moved(head) or did_you_mean(head, names)}")
        if sub:
            data.setdefault(head, {})[sub] = _parse(value, f"override {override!r}")
        else:
            data[head] = _parse(value, f"override {override!r}")
            _check_types({head: data[head]}, f"override {override!r}")
    return TrainConfig(**data)
