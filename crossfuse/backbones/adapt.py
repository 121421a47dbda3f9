"""What of a backbone trains, and gradient checkpointing, set by the ``backbone`` config keys.

- ``freeze: true``: nothing of the backbone trains (a linear probe of the head);
- ``train_blocks: N``: its top N blocks train, with what runs after them (a final norm, a pooler);
  the stem or embeddings and the lower blocks keep their loaded weights;
- ``lora.r: R``: LoRA adapters of rank R (through ``peft``) on a transformer's projections, and only
  the adapters train;
- ``gradient_checkpointing: true``: activations are recomputed in backward (less memory, more time).

:func:`adapt_backbone` runs once every weight is in place (pretrained, ``backbone.weights``,
``backbone.init_from``), and again when a saved run is rebuilt, so that LoRA's extra modules exist
before its checkpoint loads. A task's head lies outside the backbone: it always trains.

"Blocks" are found by :func:`find_blocks`: a ResNet's ``layer1`` ... ``layer4``, the stages of a
torchvision ``features`` stack, a ``stages`` or ``blocks`` stack (timm), else the list of same-type
layers holding the most parameters (the layers of a transformers or torchaudio encoder).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Iterator

import torch
from torch import nn

from ..config import BackboneConfig, LoraConfig
from ..errors import ConfigError, CrossfuseError

__all__ = ["adapt_backbone", "find_blocks", "lora_root", "merge_lora"]


def adapt_backbone(backbone: nn.Module, config: BackboneConfig, *, quiet: bool = False) -> None:
    """Apply ``config``'s freeze / train_blocks / lora / gradient_checkpointing to ``backbone`` in place.

    Prints one line to stderr saying what trains, unless nothing was asked or ``quiet``.

    >>> adapt_backbone(backbone, BackboneConfig(name="tiny-bert", train_blocks=1))  # doctest: +SKIP
    backbone: training the top 1 of 2 blocks (0.0335 M of 0.107 M parameters)
    """
    _check_choices(config)
    how = enable_gradient_checkpointing(backbone, config.name) if config.gradient_checkpointing else None
    notes = [note for note in (_set_trainable(backbone, config), how and f"gradient checkpointing on ({how})") if note]
    if notes and not quiet:
        print("backbone: " + "; ".join(notes), file=sys.stderr)


def _set_trainable(backbone: nn.Module, config: BackboneConfig) -> str | None:
    """Apply lora / freeze / train_blocks (at most one is set); return what trains now, None when all does."""
    if config.lora.r:
        return add_lora(backbone, config.lora, config.name)
    if config.freeze:
        backbone.requires_grad_(False)
        return f"frozen, the head trains alone (0 of {_millions(_count(backbone))} parameters)"
    if config.train_blocks is not None:
        return train_top_blocks(backbone, config.train_blocks, config.name)
    return None


def _check_choices(config: BackboneConfig) -> None:
    """Refuse values and combinations that cannot mean anything."""
    lora = config.lora
    if lora.r < 0:
        raise ConfigError(f"backbone.lora.r must be 0 (no adapters) or a rank such as 8, got {lora.r}")
    if not 0.0 <= lora.dropout < 1.0:
        raise ConfigError(f"backbone.lora.dropout must be in [0, 1), got {lora.dropout}")
    if config.train_blocks is not None and config.train_blocks < 0:
        raise ConfigError(f"backbone.train_blocks must be 0 or more (0: train none, like backbone.freeze), "
                          f"got {config.train_blocks}")
    chosen = [key for key, on in (("backbone.freeze", config.freeze), ("backbone.train_blocks",
                                  config.train_blocks is not None), ("backbone.lora.r", lora.r > 0)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} each choose what of the backbone trains: set only one "
                          f"(freeze: nothing; train_blocks: the top N blocks; lora.r: adapters only)")


def _count(module: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def _millions(count: int) -> str:
    return f"{count / 1e6:.3g} M"


# -- blocks ------------------------------------------------------------------------------------


def find_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's blocks with parameters, bottom to top; empty when it has none crossfuse recognises.

    ResNets (torchvision, timm): ``layer1`` ... ``layer4``; a torchvision ``features`` stack: its
    children after the stem; timm and similar: ``stages`` or ``blocks``; otherwise (transformers and
    torchaudio encoders) the list of same-type layers holding the most parameters.
    """
    for finder in (_resnet_layers, _feature_stages, _named_stages, _repeated_layers):
        blocks = [block for block in finder(backbone) if _count(block)]
        if blocks:
            return blocks
    return []


def _resnet_layers(root: nn.Module) -> list[nn.Module]:
    for module in root.modules():
        layers = []
        while isinstance(getattr(module, f"layer{len(layers) + 1}", None), nn.Module):
            layers.append(getattr(module, f"layer{len(layers) + 1}"))
        if len(layers) >= 2:
            return layers
    return []


def _feature_stages(root: nn.Module) -> list[nn.Module]:
    """torchvision's MobileNet, EfficientNet, ConvNeXt ...: ``features`` is [stem, stage, ..., stage]."""
    for module in root.modules():
        features = getattr(module, "features", None)
        if isinstance(features, nn.Sequential) and len(features) > 2 and len({type(m) for m in features}) > 1:
            return list(features)[1:]
    return []


def _named_stages(root: nn.Module) -> list[nn.Module]:
    for module in root.modules():
        for name in ("stages", "blocks"):
            stack = getattr(module, name, None)
            if isinstance(stack, (nn.Sequential, nn.ModuleList)) and len(stack) >= 2:
                return list(stack)
    return []


def _repeated_layers(root: nn.Module) -> list[nn.Module]:
    """The ModuleList / Sequential of same-type layers with the most parameters (an encoder's layers,
    rather than, say, wav2vec 2.0's convolutional front end)."""
    best: list[nn.Module] = []
    best_size = 0
    for module in root.modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        if len({type(layer) for layer in module}) == 1 and _count(module) > best_size:
            best, best_size = list(module), _count(module)
    return best


def _tail_parameters(backbone: nn.Module, blocks: list[nn.Module]) -> list[nn.Parameter]:
    """Parameters that run after the blocks: those registered after the last block (a final norm, a pooler),
    and the final norms that some encoders register before their layers."""
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    last = {id(p) for p in blocks[-1].parameters()}
    params = list(backbone.parameters())
    end = max(i for i, p in enumerate(params) if id(p) in last)
    return [p for p in params[end + 1:] if id(p) not in in_blocks] + \
        [p for norm in _late_norms(backbone) for p in norm.parameters()]


def _late_norms(backbone: nn.Module) -> Iterator[nn.Module]:
    for module in backbone.modules():
        norm = getattr(module, "layer_norm", None)
        if not isinstance(norm, nn.Module) or not hasattr(module, "layers"):
            continue
        if type(module).__name__.endswith("StableLayerNorm"):  # transformers' pre-norm wav2vec 2.0 family
            yield norm
        elif getattr(module, "layer_norm_first", None) is False:  # torchaudio: the norm then follows the layers
            yield norm


def train_top_blocks(backbone: nn.Module, count: int, name: str) -> str:
    """Train only the top ``count`` blocks (and what follows them); return the summary."""
    blocks = find_blocks(backbone)
    if not blocks:
        raise ConfigError(f"backbone.train_blocks={count}: found no repeated blocks in {name} "
                          f"({_describe(backbone)}); use backbone.freeze=true to train the head alone, or leave "
                          f"train_blocks unset to train the whole backbone")
    if count > len(blocks):
        raise ConfigError(f"backbone.train_blocks={count}: {name} has {len(blocks)} blocks; choose 0 to "
                          f"{len(blocks)} (0 trains none, like backbone.freeze), or leave it unset to train all")
    backbone.requires_grad_(False)
    if count:
        for block in blocks[-count:]:
            block.requires_grad_(True)
        for parameter in _tail_parameters(backbone, blocks):
            parameter.requires_grad_(True)
    return (f"training the top {count} of {len(blocks)} blocks ({_millions(_count(backbone, trainable=True))} "
            f"of {_millions(_count(backbone))} parameters)")


def _describe(backbone: nn.Module) -> str:
    inner = [type(m).__name__ for m in backbone.children() if _count(m)]
    return type(backbone).__name__ + (f" of {', '.join(inner)}" if inner else "")


# -- gradient checkpointing --------------------------------------------------------------------


def enable_gradient_checkpointing(backbone: nn.Module, name: str) -> str:
    """Recompute activations in backward, the way the backbone's library does it; return which way."""
    hf = hf_model(backbone)
    if hf is not None:
        if not getattr(hf, "supports_gradient_checkpointing", False):
            raise ConfigError(f"backbone.gradient_checkpointing: {name} ({type(hf).__name__}) does not support "
                              f"gradient checkpointing in transformers; set it to false")
        # Non-reentrant: frozen embeddings (train_blocks, LoRA) would otherwise cut the gradient off.
        options = {"use_reentrant": False}
        if getattr(hf.config, "use_cache", False):  # a key-value cache cannot be checkpointed; encoders need none
            hf.config.use_cache = False
        if hasattr(hf, "activation_checkpointing_enable"):  # transformers 5 renamed gradient_checkpointing_enable
            hf.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
        return "transformers"
    timm_model = next((m for m in backbone.modules() if callable(getattr(m, "set_grad_checkpointing", None))), None)
    if timm_model is not None:
        try:
            timm_model.set_grad_checkpointing(True)
        except (AssertionError, NotImplementedError) as exc:
            raise ConfigError(f"backbone.gradient_checkpointing: {name} does not support it in timm ({exc}); "
                              f"set it to false") from None
        return "timm"
    blocks = find_blocks(backbone)
    if not blocks:
        raise ConfigError(f"backbone.gradient_checkpointing: {name} ({_describe(backbone)}) does not support it: it "
                          f"is not a transformers or timm model and has no repeated blocks to checkpoint; set it "
                          f"to false")
    for block in blocks:
        block.forward = _CheckpointedForward(block)  # an instance attribute: state-dict keys stay the same
    return f"{len(blocks)} blocks"


class _CheckpointedForward:
    """A block's forward that, while training with gradients on, keeps no activations inside the block
    and recomputes them in backward (``torch.utils.checkpoint``, non-reentrant)."""

    def __init__(self, block: nn.Module):
        self.block = block

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        forward = type(self.block).forward.__get__(self.block)
        if not (self.block.training and torch.is_grad_enabled()):
            return forward(*args, **kwargs)
        from torch.utils.checkpoint import checkpoint

        contexts = partial(_recompute_contexts, self.block)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts, **kwargs)


def _recompute_contexts(block: nn.Module) -> tuple[Any, Any]:
    return nullcontext(), _buffers_kept(block)


@contextmanager
def _buffers_kept(block: nn.Module) -> Iterator[None]:
    """Recomputing runs the block's batch norms a second time on the same batch: put their running
    statistics back as the first pass left them."""
    saved = [(buffer, buffer.clone()) for buffer in block.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


# -- LoRA --------------------------------------------------------------------------------------


def hf_model(backbone: nn.Module) -> nn.Module | None:
    """The transformers model inside a crossfuse backbone (``.model`` or ``.encoder``), None for others."""
    transformers = sys.modules.get("transformers")  # not imported yet: no transformers model can be here
    if transformers is None:
        return None
    for module in (backbone, *backbone.children()):
        if isinstance(module, transformers.PreTrainedModel):
            return module
    return None


def add_lora(backbone: nn.Module, lora: LoraConfig, name: str) -> str:
    """Inject LoRA adapters with peft and make them the only trainable backbone parameters; return the summary."""
    import peft

    hf = hf_model(backbone)
    targets = list(lora.target_modules or _default_targets(backbone, hf, name))
    config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
    try:
        peft.inject_adapter_in_model(config, hf if hf is not None else backbone)
    except ValueError as exc:  # no module of that name, or one of a type LoRA cannot adapt
        raise ConfigError(f"backbone.lora.target_modules={targets}: {exc} Modules of {name} that can take "
                          f"adapters: {', '.join(_adaptable_names(backbone))}") from None
    for key, parameter in backbone.named_parameters():
        parameter.requires_grad_(".lora_" in key)  # the base weights stay as loaded
    return (f"LoRA r={lora.r} on {', '.join(sorted(targets))}: {_millions(_count(backbone, trainable=True))} of "
            f"{_millions(_count(backbone))} parameters train")


def _default_targets(backbone: nn.Module, hf: nn.Module | None, name: str) -> list[str]:
    """peft's usual targets for the architecture (the attention's query and value projections)."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    examples = ", ".join(_adaptable_names(backbone)) or "none found"
    if hf is None:
        raise ConfigError(f"backbone.lora: {name} is not a transformers model, so peft has no default modules to put "
                          f"LoRA adapters on. Name some in backbone.lora.target_modules (its Linear and "
                          f"convolution layers: {examples}), or use backbone.train_blocks or backbone.freeze")
    model_type = getattr(hf.config, "model_type", None)
    targets = DEFAULTS.get(model_type or "")
    if not targets:
        raise ConfigError(f"backbone.lora: peft has no default target modules for {model_type!r} models ({name}); "
                          f"set backbone.lora.target_modules, for example to some of: {examples}")
    return [targets] if isinstance(targets, str) else list(targets)


def _adaptable_names(backbone: nn.Module, limit: int = 8) -> list[str]:
    """Layers LoRA can adapt: short names inside the blocks (they match in every block), full names elsewhere."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d)
    blocks = find_blocks(backbone)
    names: list[str] = []
    for root in blocks or [backbone]:
        for key, module in root.named_modules():
            if key and (isinstance(module, kinds) or type(module).__name__ == "Conv1D"):
                short = key.rsplit(".", 1)[-1] if blocks else key
                if short not in names:
                    names.append(short)
    return names[:limit]


def lora_root(backbone: nn.Module) -> tuple[str, nn.Module] | None:
    """Where LoRA adapters were injected (the module holding peft's config) and its name in ``backbone``;
    None for a backbone without adapters."""
    for key, module in backbone.named_modules():
        if isinstance(getattr(module, "peft_config", None), dict):
            return key, module
    return None


def merge_lora(state: dict[str, torch.Tensor], alpha: float) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A state dict with peft LoRA keys as a plain one, and the modules merged.

    Each adapted weight becomes ``W + alpha / r * B @ A`` (what ``merge_and_unload`` computes);
    ``<module>.base_layer.<name>`` becomes ``<module>.<name>``. A state without LoRA keys comes back as it is.
    """
    merged: dict[str, torch.Tensor] = {}
    modules = []
    for key, tensor in state.items():
        if ".lora_" in key:
            continue
        module, found, leaf = key.partition(".base_layer.")
        if not found:
            merged[key] = tensor
            continue
        factors = _lora_factors(state, module)
        if leaf == "weight" and factors is not None:
            tensor = tensor + _lora_delta(*factors, tensor.shape, key).to(tensor.dtype) * (alpha / factors[0].shape[0])
            modules.append(module)
        merged[f"{module}.{leaf}"] = tensor
    orphans = [k for k in state if ".lora_" in k and k.split(".lora_")[0] not in modules]
    if orphans:
        raise CrossfuseError(f"init_from: cannot merge the LoRA adapter {orphans[0]!r} into its base weight "
                             f"(no {orphans[0].split('.lora_')[0]}.base_layer.weight beside it)")
    return merged, modules


def _lora_factors(state: dict[str, torch.Tensor], module: str) -> tuple[torch.Tensor, torch.Tensor, bool] | None:
    """(A, B, whether B @ A is the transpose of the weight) of ``module``'s adapter, None without one."""
    for a_key, b_key, transposed in ((f"{module}.lora_A.default.weight", f"{module}.lora_B.default.weight", False),
                                     (f"{module}.lora_embedding_A.default", f"{module}.lora_embedding_B.default", True)):
        if a_key in state and b_key in state:
            return state[a_key], state[b_key], transposed
    return None


def _lora_delta(a: torch.Tensor, b: torch.Tensor, transposed: bool, shape: torch.Size, key: str) -> torch.Tensor:
    """``B @ A`` shaped as the base weight: a Linear's or a convolution's, or the transpose for an embedding
    (and for GPT-2's Conv1D, which stores its weight as [in, out])."""
    delta = b.flatten(1).float() @ a.flatten(1).float()
    if transposed or (delta.shape != shape and delta.T.shape == shape):
        delta = delta.T
    if delta.numel() != torch.Size(shape).numel():
        raise CrossfuseError(f"init_from: the LoRA factors of {key!r} do not fit its shape {list(shape)}")
    return delta.reshape(shape)
