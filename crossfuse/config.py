"""Run configuration: YAML files + dotted ``--set`` overrides -> typed dataclasses.

The core owns the ``backbone`` and ``train`` sections; each task owns its ``data`` and
``head`` sections through its own dataclasses (``Task.DataConfig``, ``Task.HeadConfig``).
Unknown keys, wrong types and values outside a ``Literal`` raise :class:`ConfigError` naming
the key, the file and line where known, and the valid choices. Config text is parsed with a
safe loader (:class:`ConfigLoader`): nothing in a config is ever evaluated, and only ``true`` and
``false`` are booleans (YAML 1.2), so words such as ``yes``, ``no``, ``on``, ``off`` stay words.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .errors import ConfigError


@dataclass
class LoraConfig:
    """LoRA adapters (through ``peft``) on a transformer backbone; ``r: 0`` leaves them off."""

    r: int = 0  # rank of each adapter; 8 or 16 are common starting points
    alpha: int = 16  # scaling numerator: the update is scaled by alpha / r
    dropout: float = 0.05
    target_modules: Optional[list[str]] = None  # module names to adapt; None: peft's choice for the architecture


@dataclass
class BackboneConfig:
    """Which backbone to build and how. Options left ``None`` use the backbone's defaults."""

    name: str = ""  # registry name, hf:ORG/NAME, timm:NAME, or a local folder / file
    pretrained: bool = True  # the source's pretrained weights (downloaded once, or from a local cache)
    weights: Optional[str] = None  # a local state dict (torchvision, timm, transformers or crossfuse keys)
    init_from: Optional[str] = None  # a finished run directory whose fine-tuned backbone starts this one
    freeze: bool = False  # train nothing of the backbone (a linear probe of the head)
    train_blocks: Optional[int] = None  # train only the backbone's top N blocks, freeze the rest
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, more time
    lora: LoraConfig = field(default_factory=LoraConfig)
    trust_remote_code: bool = False
    layers: Optional[int] = None  # transformers: keep only the first N layers (a smaller student, same weights)
    max_length: Optional[int] = None  # text: tokens per input
    pooling: Optional[Literal["mean", "cls"]] = None  # text: how token states become one vector
    image_size: Optional[int] = None  # image: side of the square input
    in_channels: Optional[int] = None  # image: 1 for grey-scale input (the first convolution is adapted)
    sample_rate: Optional[int] = None  # audio: Hz the waveforms are given at


@dataclass
class TrainConfig:
    """Everything the shared trainer needs; nothing domain-specific."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: Optional[int] = None
    lr: float = 5e-5
    head_lr: Optional[float] = None
    layer_decay: Optional[float] = None  # layer-wise lr decay of a pretrained backbone, e.g. 0.8; None: off
    weight_decay: float = 0.01
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.1
    grad_clip: Optional[float] = 1.0
    grad_accum: int = 1
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    early_stopping_patience: Optional[int] = 3  # evaluations without a better main metric before stopping
    eval_every: int = 1  # evaluate the validation split every N epochs (and always after the last one)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    num_workers: int = 0
    find_unused_parameters: bool = False  # DDP: for models whose forward skips some parameters
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"  # several processes: auto is ddp; fsdp shards the model
    nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss stops the run, or its optimizer step is skipped
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # vision: NHWC memory format (faster convolutions on recent GPUs)
    tf32: bool = True  # CUDA (Ampere and newer): TF32 matmuls and convolutions in fp32 parts
    pin_memory: Optional[bool] = None  # page-locked batches for faster copies; None: on with CUDA
    prefetch_factor: Optional[int] = None  # batches each DataLoader worker prepares ahead (num_workers > 0)
    threads: Optional[int] = None
    checkpoint_every: int = 0
    max_steps: Optional[int] = None
    log_every: int = 10
    progress: bool = True
    sampler: Literal["shuffle", "balanced", "weighted"] = "shuffle"  # balanced: every class drawn equally often
    keep_resume_state: bool = False  # keep last-state.pt (optimizer moments) once the run has finished
    tensorboard: Optional[bool] = None  # TensorBoard event files in the run directory; None: when installed
    mlflow_uri: Optional[str] = None  # also log params, metrics and the report to this MLflow tracking URI
    mlflow_experiment: Optional[str] = None  # MLflow experiment name (default: the task's name)


@dataclass
class EvalConfig:
    """Evaluation options shared by every task."""

    metrics: list[str] = field(default_factory=list)  # registered metrics added to the task's own (ece, brier ...)


@dataclass
class DistillConfig:
    """Knowledge distillation: train this run's (smaller) model against a finished run's outputs."""

    teacher: Optional[str] = None  # a finished run directory of the same task; None: no distillation
    alpha: float = 0.5  # weight of the teacher's soft targets; 1 - alpha weighs the task's own loss
    temperature: float = 2.0  # softens both distributions (Hinton et al. 2015); the soft loss is scaled by T^2


@dataclass
class ServeConfig:
    """``crossfuse serve``: how requests are batched and what a request may hold."""

    max_batch_size: int = 8  # inputs run through the model together, gathered from concurrent requests
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for others
    max_inputs: int = 64  # inputs (texts or files) in one request
    max_upload_mb: float = 16.0  # total size of the files of one request


@dataclass
class RunConfig:
    """A whole run. ``data`` and ``head`` are instances of the task's own dataclasses."""

    task: str
    seed: int = 13
    output: Optional[str] = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    backbones: dict[str, BackboneConfig] = field(default_factory=dict)  # tasks with several inputs (fusion)
    data: Any = None
    head: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, ready for YAML or JSON."""
        return dataclasses.asdict(self)


# -- reading ---------------------------------------------------------------------------------


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 booleans: voice commands, labels and keys named yes / no /
    on / off are strings, not True / False (YAML 1.1 turns all of them into booleans)."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass: no object construction



def read_yaml(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a YAML mapping; return it and the line number of every dotted key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = load_yaml(text)
        lines = _key_lines(yaml.compose(text, Loader=ConfigLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data, lines


def _key_lines(node: Any, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key + "."))
    return lines


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.lr=1e-4", "data.labels=[a, b]"]`` -> nested dict. Values are YAML scalars/lists."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (for example train.lr=1e-4), got {pair!r}")
        try:
            value = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        set_dotted(result, key, value)
    return result


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``target["a"]["b"] = value`` for ``dotted == "a.b"``, creating mappings on the way."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``; mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# -- typing ----------------------------------------------------------------------------------


def build(cls: type, data: Any, *, prefix: str = "", source: str = "config",
          lines: dict[str, int] | None = None) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, checking keys and types recursively."""
    lines = lines or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _error(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}", prefix.rstrip("."),
                     source, lines)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            raise _error(f"unknown key {dotted!r}.{hint} Valid keys here: {', '.join(names)}", dotted, source, lines)
        kwargs[key] = coerce(hints[key], value, dotted, source, lines)
    return cls(**kwargs)


def coerce(tp: Any, value: Any, key: str, source: str = "config", lines: dict[str, int] | None = None) -> Any:
    """Check ``value`` against annotation ``tp``, converting where it is safe (e.g. "1e-4" -> float)."""
    lines = lines or {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, key, source, lines)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1])
    if origin is Literal:
        if value not in args:
            raise _error(f"{key} must be one of {', '.join(map(repr, args))}, got {value!r}", key, source, lines)
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, prefix=key + ".", source=source, lines=lines)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _error(f"{key} must be a list, got {value!r}", key, source, lines)
        item = args[0] if args else Any
        return [coerce(item, v, f"{key}[{i}]", source, lines) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _error(f"{key} must be a mapping, got {value!r}", key, source, lines)
        if len(args) != 2:
            return dict(value)
        return {coerce(args[0], k, key, source, lines): coerce(args[1], v, f"{key}.{k}", source, lines)
                for k, v in value.items()}
    if tp is Any:
        return value
    return _scalar(tp, value, key, source, lines)


def _scalar(tp: type, value: Any, key: str, source: str, lines: dict[str, int]) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise _error(f"{key} must be {tp.__name__}, got {value!r}", key, source, lines)


def _error(message: str, key: str, source: str, lines: dict[str, int]) -> ConfigError:
    line = lines.get(key.split("[")[0])
    where = f"{source}, line {line}" if line else source
    return ConfigError(f"{where}: {message}")
