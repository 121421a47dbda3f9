"""The backbones of one run: which a task needs, building them, and keeping them reloadable offline.

A task with one input has one backbone, configured under ``backbone:`` and snapshotted in
``RUN_DIR/backbone/``. A task declaring several :attr:`~crossfuse.task.Task.inputs` (fusion) has
one per input, under ``backbones.<input>:`` and ``RUN_DIR/backbones/<input>/``. A snapshot holds
what rebuilding needs without the original source (tokenizer, model config, processor) and
``keys.json``, which says where each backbone tensor sits in the run's checkpoint, so another run
can start from this one's fine-tuned backbone (``backbone.init_from``). A LoRA run's adapter can be
written there in peft's format too (``lora/``, :func:`save_adapters`).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from .config import BackboneConfig, RunConfig
from .errors import ConfigError, CrossfuseError
from .runs import RunDir, atomic_write

SINGLE = "backbone"  # the input name of a single-backbone task
KEYS_FILE = "keys.json"


def backbone_configs(task_class: type, config: RunConfig) -> dict[str, BackboneConfig]:
    """The backbone config of each input: ``{"backbone": config.backbone}`` for a one-input task."""
    if task_class.inputs:
        return dict(config.backbones)
    return {SINGLE: config.backbone}


def snapshot_dir(run: RunDir, name: str) -> Path:
    """Where the snapshot of input ``name``'s backbone lives in a run directory."""
    return run.path / "backbone" if name == SINGLE else run.path / "backbones" / name


def expected_modality(task_class: type, name: str) -> str:
    """The modality input ``name`` of the task takes."""
    return task_class.inputs.get(name, "") if task_class.inputs else task_class.modality


def build_backbones(task_class: type, config: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build every backbone of a run (pretrained weights, ``weights`` files, ``init_from`` runs applied, then
    ``freeze`` / ``train_blocks`` / ``lora`` / ``gradient_checkpointing``).

    Returns the backbones by input name, and for those started from another run, where they came from.
    """
    from .backbones import build_backbone
    from .backbones.adapt import adapt_backbone

    built, origins = {}, {}
    for name, backbone_config in backbone_configs(task_class, config).items():
        backbone = build_backbone(backbone_config, adapt=False)
        _check_modality(task_class, name, backbone_config.name, backbone)
        if backbone_config.init_from:
            origins[name] = init_from(backbone, backbone_config.init_from, name, expected_modality(task_class, name))
        adapt_backbone(backbone, backbone_config)  # last: LoRA wraps the weights init_from loaded
        built[name] = backbone
    return built, origins


def _check_modality(task_class: type, name: str, source: str, backbone: Any) -> None:
    wanted = expected_modality(task_class, name)
    actual = getattr(backbone, "modality", None)
    if wanted and actual != wanted:
        where = "backbone" if name == SINGLE else f"backbones.{name}"
        raise ConfigError(f"{where}: {source!r} is a {actual or 'non-crossfuse'} backbone but task "
                          f"{task_class.name!r} needs {wanted!r} there; see `crossfuse list backbones`")


def backbone_keys(model: Any, backbone: Any) -> dict[str, str]:
    """``{checkpoint key: backbone key}`` for every backbone tensor found in ``model`` (by identity, so
    wrappers and feature extractors that reuse the backbone's modules are followed)."""
    own = {id(tensor): key for key, tensor in backbone.state_dict(keep_vars=True).items()}
    return {key: own[id(tensor)] for key, tensor in model.state_dict(keep_vars=True).items() if id(tensor) in own}


def save_snapshots(run: RunDir, model: Any, backbones: dict[str, Any]) -> None:
    """Write each backbone's reload files and checkpoint key map into the run directory."""
    for name, backbone in backbones.items():
        folder = snapshot_dir(run, name)
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(backbone, "save_architecture"):
            backbone.save_architecture(folder)
        atomic_write(folder / KEYS_FILE, json.dumps(backbone_keys(model, backbone), indent=0) + "\n")


def rebuild_configs(run: RunDir, task_class: type, config: RunConfig) -> dict[str, BackboneConfig]:
    """Backbone configs that rebuild a saved run's architectures offline (weights come from its checkpoint).

    LoRA stays (its adapters are modules the checkpoint holds); what only mattered for training
    (freeze, train_blocks, gradient_checkpointing) is dropped, so explanations get gradients everywhere.
    """
    configs = {}
    for name, saved in backbone_configs(task_class, config).items():
        rebuilt = copy.deepcopy(saved)
        rebuilt.pretrained, rebuilt.weights, rebuilt.init_from = False, None, None
        rebuilt.freeze, rebuilt.train_blocks, rebuilt.gradient_checkpointing = False, None, False
        if (snapshot_dir(run, name) / "config.json").is_file():
            rebuilt.name = str(snapshot_dir(run, name))
        configs[name] = rebuilt
    return configs


def rebuild_backbones(run: RunDir, task_class: type, config: RunConfig) -> dict[str, Any]:
    """The backbones of a saved run by input name, rebuilt offline with the same modules (LoRA adapters
    included) so that its checkpoint loads into the task's model; their weights come from that checkpoint."""
    from .backbones import build_backbone
    from .backbones.adapt import adapt_backbone

    backbones = {}
    for name, backbone_config in rebuild_configs(run, task_class, config).items():
        backbones[name] = build_backbone(backbone_config, adapt=False)
        adapt_backbone(backbones[name], backbone_config, quiet=True)
    return backbones


def save_adapters(run: RunDir, backbones: dict[str, Any]) -> list[Path]:
    """Write the LoRA adapter of each backbone that has one in peft's format, from the run's best checkpoint,
    into ``<snapshot>/lora/`` (``adapter_config.json``, ``adapter_model.safetensors``); return the folders.

    ``peft.PeftModel.from_pretrained(base_model, folder)`` then loads it onto the base model. Call it after
    training: before, the checkpoint holds no adapter weights or only early ones.
    """
    from safetensors.torch import load_file, save_file

    from .backbones.adapt import lora_root

    adapted = {name: found for name, backbone in backbones.items() if (found := lora_root(backbone)) is not None}
    checkpoint = load_file(str(run.best_weights())) if adapted else {}
    written = []
    for name, (prefix, root) in adapted.items():
        key_map = json.loads((snapshot_dir(run, name) / KEYS_FILE).read_text(encoding="utf-8"))
        start = f"{prefix}." if prefix else ""
        # peft's file keys: "base_model.model." + the module path in the adapted model, adapter name left out.
        tensors = {"base_model.model." + key[len(start):].replace(".default.", ".").removesuffix(".default"):
                   checkpoint[source].contiguous()
                   for source, key in key_map.items() if ".lora_" in key and key.startswith(start)}
        folder = snapshot_dir(run, name) / "lora"
        folder.mkdir(parents=True, exist_ok=True)
        root.peft_config["default"].save_pretrained(str(folder))
        save_file(tensors, str(folder / "adapter_model.safetensors"))
        written.append(folder)
    return written


def init_from(backbone: Any, run_dir: str | Path, name: str, modality: str) -> dict[str, Any]:
    """Load the fine-tuned backbone of the finished run ``run_dir`` into ``backbone``; return where it came from.

    The source run may be of any task; its backbone must have the same architecture. With several
    backbones there, the one of the same input name, else the only one of the same modality, is used.
    """
    from safetensors.torch import load_file

    from .backbones.adapt import merge_lora
    from .backbones.weights import adapt_input_channels

    source = RunDir.open(run_dir)
    chosen = _source_input(source, name, modality)
    keys_file = snapshot_dir(source, chosen) / KEYS_FILE
    if not keys_file.is_file():
        raise CrossfuseError(f"init_from: {source.path} has no {keys_file.relative_to(source.path)} (a run made "
                             f"before crossfuse kept backbone key maps); start from its weights with backbone.weights")
    key_map = json.loads(keys_file.read_text(encoding="utf-8"))
    checkpoint = load_file(str(source.best_weights()))
    state = {key_map[key]: tensor for key, tensor in checkpoint.items() if key in key_map}
    # A LoRA run's backbone starts this one as its fine-tuned weights: adapters merged into the base.
    state, merged = merge_lora(state, float((_saved_section(source, chosen).get("lora") or {}).get("alpha", 16)))
    expected = backbone.state_dict()
    adapted = []  # a grey-scale run's first convolution for an RGB one, or the other way round
    for key, tensor in expected.items():
        if key in state and state[key].shape != tensor.shape:
            converted = adapt_input_channels(state[key], tensor.shape)
            if converted is not None:
                state[key] = converted
                adapted.append(key)
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if wrong:
        raise CrossfuseError(f"init_from: the backbone of {source.path} ({_saved_name(source, chosen)}) does not have "
                             f"this run's architecture ({len(wrong)} of {len(expected)} tensors differ, e.g. "
                             f"{wrong[0]!r}); choose a run with the same backbone")
    backbone.load_state_dict({k: state[k] for k in expected})
    note = f"; input channels adapted in {', '.join(adapted)}" if adapted else ""
    note += f"; LoRA adapters merged into {len(merged)} weights" if merged else ""
    print(f"init_from: loaded all {len(expected)} backbone tensors from {source.path} "
          f"({_saved_name(source, chosen)}, task {source.read_config().get('task')}){note}", file=sys.stderr)
    return {"run": str(source.path), "task": source.read_config().get("task"), "input": chosen,
            "backbone": _saved_name(source, chosen), "checkpoint": source.best_weights().name,
            "adapted": adapted, **({"lora_merged": len(merged)} if merged else {})}


def _source_input(source: RunDir, name: str, modality: str) -> str:
    """Which backbone of the source run to start from."""
    from .plugins import get_plugin_manager

    saved = source.read_config()
    names = list((saved.get("backbones") or {}).keys()) or [SINGLE]
    if name in names:
        return name
    if len(names) == 1:
        return names[0]
    source_inputs = get_plugin_manager().tasks.get(saved.get("task", "")).load().inputs
    same = [n for n in names if source_inputs.get(n) == modality]
    if len(same) == 1:
        return same[0]
    raise CrossfuseError(f"init_from: {source.path} has backbones {', '.join(names)}; none is called {name!r} "
                         f"or is the only {modality} one")


def _saved_section(source: RunDir, name: str) -> dict[str, Any]:
    """The saved config section of input ``name``'s backbone in a run."""
    saved = source.read_config()
    section = saved.get("backbone") if name == SINGLE else (saved.get("backbones") or {}).get(name)
    return section or {}


def _saved_name(source: RunDir, name: str) -> str:
    return _saved_section(source, name).get("name", "?")
