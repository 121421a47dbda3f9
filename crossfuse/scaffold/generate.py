"""Names, templates and writing for ``crossfuse new-plugin``.

Templates live in ``templates/<group>/`` as ``*.tmpl`` files holding ``{{key}}`` placeholders;
``__package__`` in a path becomes the package name. A modality reads its groups in order
(``common``, then ``files`` for file inputs, then its own), a later group replacing a file of an
earlier one. The package is written into a hidden sibling folder and renamed into place, so a
failure leaves nothing behind and nothing is ever written over.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
GROUPS = {"text": ("common", "text"), "image": ("common", "files", "image"), "audio": ("common", "files", "audio")}
MODALITIES = tuple(GROUPS)

# One line per `train.*` key of crossfuse.config.TrainConfig: the generated defaults.yaml lists every
# key with its value and this note (a test fails when the trainer gains a key this table lacks).
TRAIN_NOTES = {
    "epochs": "passes over the training split",
    "batch_size": "samples per optimizer step (before grad_accum)",
    "eval_batch_size": "null: batch_size",
    "lr": "peak learning rate of the backbone",
    "head_lr": "learning rate of the fresh head (Task.fresh_parameters); null: lr",
    "layer_decay": "layer-wise lr decay of a pretrained backbone, e.g. 0.8; null: off",
    "weight_decay": "AdamW weight decay",
    "schedule": "linear | cosine | constant, after the warm-up",
    "warmup_ratio": "fraction of the steps spent warming up",
    "grad_clip": "max gradient norm; null: no clipping",
    "grad_accum": "batches per optimizer step",
    "precision": "auto | fp32 | bf16 | fp16 (auto: bf16 or fp16 on CUDA, fp32 elsewhere)",
    "early_stopping_patience": "evaluations without a better main metric before stopping; null: never",
    "eval_every": "evaluate the validation split every N epochs (always after the last)",
    "device": "auto | cpu | cuda | mps",
    "num_workers": "DataLoader worker processes (0: in the main process)",
    "find_unused_parameters": "DDP: for models whose forward skips some parameters",
    "strategy": "several processes: auto | ddp | fsdp (sharded parameters, gradients, optimizer state)",
    "nonfinite": "a NaN / inf loss: stop naming the step | skip that optimizer step",
    "compile": "torch.compile the training model",
    "channels_last": "vision: NHWC memory format",
    "tf32": "CUDA (Ampere and newer): TF32 in fp32 matmuls and convolutions",
    "pin_memory": "page-locked batches; null: on with CUDA",
    "prefetch_factor": "batches each DataLoader worker prepares ahead (num_workers > 0)",
    "threads": "torch CPU threads; null: the cores shared between processes",
    "checkpoint_every": "also save a resumable checkpoint every N steps (0: at epoch ends only)",
    "max_steps": "stop after this many optimizer steps; null: no limit",
    "log_every": "steps between metrics.jsonl lines",
    "progress": "progress bars on stderr",
    "sampler": "shuffle | balanced (every class equally often) | weighted (Task.sample_weights)",
    "keep_resume_state": "keep last-state.pt (optimizer moments) once the run has finished",
    "tensorboard": "TensorBoard events in RUN_DIR/tensorboard; null: when the package is installed",
    "mlflow_uri": "also log params, metrics and the report to this MLflow tracking URI; null: off",
    "mlflow_experiment": "MLflow experiment name; null: the task's name",
}

# Trainer values of the generated defaults (the rest are TrainConfig's): tuned on the demo data.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "all": {"schedule": "cosine", "early_stopping_patience": 5},
    "text": {"epochs": 15, "batch_size": 16, "lr": 1.0e-3},
    "image": {"epochs": 15, "batch_size": 16, "lr": 3.0e-3},
    "audio": {"epochs": 15, "batch_size": 16, "lr": 3.0e-3},
}

# What differs between modalities outside the templates: README rows, test snippets, examples.
MODALITY_TEXT: dict[str, dict[str, str]] = {
    "text": {
        "input_column": "text", "noun": "text", "backbone": "tiny-bert",
        "description": "Classify short texts (demo: customer messages by intent)",
        "predict_example": '"Where is my parcel?"',
        "predict_setup": 'inputs = ["I was charged twice this month", "my parcel never arrived"]',
        "predict_count": "2",
        "data_keys": "| `data.input_column` | `text` | the manifest column holding the text |\n"
                     "| `data.word_dropout` | `0.1` | training only: chance of dropping each word (augmentation) |",
    },
    "image": {
        "input_column": "image", "noun": "image", "backbone": "tiny-cnn", "extensions": "IMAGE_EXTENSIONS",
        "description": "Classify images (demo: stripes, checks and dots under noise)",
        "predict_example": "photo.png pictures/",
        "predict_setup": 'folder = make_dataset("image", tmp_path / "new", labels=["unlabelled"], per_label=2).parent\n'
                         '    inputs = [str(folder)]  # a folder: predict finds the images in its subfolders',
        "predict_count": "2",
        "data_keys": "| `data.input_column` | `image` | the manifest column holding image paths (relative to it) |\n"
                     "| `data.augment.*` | flips, crop, colour | training only: `crossfuse.augment.ImageAugment` keys |",
    },
    "audio": {
        "input_column": "audio", "noun": "audio", "backbone": "mel-cnn", "extensions": "AUDIO_EXTENSIONS",
        "description": "Classify audio clips (demo: rising, falling and steady tones in noise)",
        "predict_example": "clip.wav recordings/",
        "predict_setup": 'folder = make_dataset("audio", tmp_path / "new", labels=["unlabelled"], per_label=2).parent\n'
                         '    inputs = [str(folder)]  # a folder: predict finds the clips in its subfolders',
        "predict_count": "2",
        "data_keys": "| `data.input_column` | `audio` | the manifest column holding clip paths (relative to it) |\n"
                     "| `data.max_seconds` | `1.0` | clips are cut to this length (training: a random window) |\n"
                     "| `data.gain_db`, `data.noise` | `6.0`, `0.005` | training only: random gain and added noise |",
    },
}


@dataclass(frozen=True)
class PluginNames:
    """Every name a generated plugin uses, derived from NAME (and ``--task``)."""

    name: str  # as given: leafspot, or crossfuse-leafspot
    short: str  # without a crossfuse- prefix: leafspot
    dist: str  # the distribution pip installs: crossfuse-leafspot
    package: str  # the import package: crossfuse_leafspot (prefixed: a bare `leafspot` could collide)
    plugin: str  # the entry-point name `crossfuse plugins` shows: leafspot
    task: str  # `crossfuse run TASK`: leafspot unless --task says otherwise
    prefix: str  # class-name prefix: Leafspot
    format: str  # the registered dataset format: leafspot-csv


def plugin_names(name: str, task: str | None = None) -> PluginNames:
    """Check NAME (and TASK) and derive the package's names; a bad one is a :class:`ConfigError`
    that says what would be accepted."""
    _check_name(name, "plugin name NAME")
    short = name[len("crossfuse-"):] if name.startswith("crossfuse-") else name
    if not short:
        raise ConfigError("plugin name NAME: give the domain after crossfuse-, e.g. crossfuse-leafspot")
    task = task or short
    _check_name(task, "--task")
    package = "crossfuse_" + short.replace("-", "_")
    prefix = "".join(part.capitalize() for part in short.split("-"))
    return PluginNames(name, short, "crossfuse-" + short, package, short, task, prefix, short + "-csv")


def _check_name(value: str, what: str) -> None:
    if NAME_PATTERN.match(value) and len(value) <= 40:
        return
    suggestion = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", value.lower())).strip("-")
    suggestion = re.sub(r"^[^a-z]+", "", suggestion) or "my-domain"
    raise ConfigError(f"{what} {value!r}: use lower-case letters, digits and single hyphens, starting with a letter, "
                      f"at most 40 characters (e.g. {suggestion[:40].rstrip('-')})")


def check_free(names: PluginNames, output: Path) -> None:
    """Refuse an existing output folder and names already taken in this environment."""
    import importlib.util

    from ..plugins import get_plugin_manager

    if output.exists() or output.is_symlink():
        raise ConfigError(f"{output} already exists; new-plugin never writes over files: choose another --output "
                          f"or remove that folder")
    if importlib.util.find_spec(names.package) is not None:
        raise ConfigError(f"a package named {names.package!r} is already installed; choose another NAME")
    manager = get_plugin_manager()
    if names.plugin in manager.plugins:
        raise ConfigError(f"a plugin named {names.plugin!r} is already installed ({manager.plugins[names.plugin].module}); "
                          f"choose another NAME")
    for registry, name, option in ((manager.tasks, names.task, "--task"), (manager.datasets, names.format, "NAME")):
        if name in registry:
            raise ConfigError(f"{registry.kind} {name!r} is already registered by plugin {registry.get(name).owner!r}; "
                              f"choose another {option}")


def context(names: PluginNames, modality: str) -> dict[str, str]:
    """The values the templates' ``{{key}}`` placeholders take."""
    from .. import __version__

    values = {field.name: getattr(names, field.name) for field in dataclasses.fields(names)}
    values.update(MODALITY_TEXT[modality], modality=modality, Class=names.prefix + "Task",
                  crossfuse_version=__version__, train_section=train_section(modality))
    return values


def train_section(modality: str) -> str:
    """The ``train:`` block of a generated defaults.yaml: every TrainConfig key, its value and a note."""
    from ..config import TrainConfig

    chosen = {**TRAIN_DEFAULTS["all"], **TRAIN_DEFAULTS[modality]}
    lines = ["train:"]
    for field in dataclasses.fields(TrainConfig):
        value = chosen.get(field.name, field.default)
        entry = f"  {field.name}: {_yaml_value(value)}"
        lines.append(f"{entry:<34}# {TRAIN_NOTES.get(field.name, '')}".rstrip(" #"))
    return "\n".join(lines)


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.1e}".replace("e-0", "e-") if value < 1e-2 else repr(value)
    return str(value)


def render(text: str, values: dict[str, str], where: str = "template") -> str:
    """Replace every ``{{key}}`` in ``text``; an unknown key is an error (a template bug, not the user's)."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"{where}: no value for placeholder {{{{{key}}}}}")
        return values[key]

    return re.sub(r"\{\{(\w+)\}\}", value, text)


def files_for(modality: str, values: dict[str, str]) -> dict[str, str]:
    """Relative path -> rendered content of every file of the package."""
    root = resources.files(__package__) / "templates"
    files: dict[str, str] = {}
    for group in GROUPS[modality]:
        for template, relative in _templates(root / group):
            path = relative.replace("__package__", values["package"])
            path = "/".join("." + part if part in ("gitignore",) else part for part in path.split("/"))
            files[path] = render(template.read_text(encoding="utf-8"), values, f"{group}/{relative}")
    return files


def _templates(folder: Any, prefix: str = "") -> list[tuple[Any, str]]:
    found = []
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.is_dir():
            found += _templates(item, f"{prefix}{item.name}/")
        elif item.name.endswith(".tmpl"):
            found.append((item, prefix + item.name[: -len(".tmpl")]))
    return found


def generate(name: str, modality: str, task: str | None = None, output: str | Path | None = None) -> Path:
    """Write the plugin package NAME for ``modality`` into ``output`` (default ``./NAME``); return its folder.

    Raises :class:`ConfigError` for a bad name or modality, an existing ``output`` or a name taken
    by an installed plugin. The folder appears whole or not at all.
    """
    if modality not in GROUPS:
        raise ConfigError(f"--modality {modality!r}: choose one of {', '.join(GROUPS)}")
    names = plugin_names(name, task)
    target = Path(output) if output is not None else Path(name)
    check_free(names, target)
    files = files_for(modality, context(names, modality))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; the package folder is not
        os.rename(staging, target)  # refuses a non-empty folder that appeared meanwhile
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
