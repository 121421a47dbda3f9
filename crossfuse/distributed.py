"""Processes, devices and the distributed engine: PyTorch's own DDP and FSDP2, launched by ``torchrun``.

The trainer asks this module for its device, has its model wrapped here (DDP, or FSDP2's
``fully_shard`` when a model does not fit one device), and reads and writes whole (unsharded)
state dicts through it, so one training loop serves one CPU and many GPUs alike. Several
processes come from ``torchrun`` (or ``accelerate launch``, which sets the same variables), or
from ``crossfuse run --nproc N``, which starts ``torchrun`` for the local machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, CrossfuseError


@dataclass
class Distributed:
    """Rank information from the launcher's environment (``torchrun`` sets these variables)."""

    rank: int = field(default_factory=lambda: int(os.environ.get("RANK", 0)))
    world_size: int = field(default_factory=lambda: int(os.environ.get("WORLD_SIZE", 1)))
    local_rank: int = field(default_factory=lambda: int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        """This process's seed for dropout and augmentation: ``seed`` itself on rank 0 (a one-process
        run is unchanged), an independent stream derived from (seed, rank) on the others, so ranks
        do not draw the same masks for different samples."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])


def select_device(name: str, dist: Distributed) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; under torchrun each rank takes its local GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise CrossfuseError("train.device=cuda but no CUDA device is available; use --device auto or cpu")
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        if dist.enabled:  # NCCL and the CUDA caching allocator work on the current device: one per rank
            torch.cuda.set_device(device)
        return device
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision``; ``auto`` means bf16 (or fp16) on CUDA, fp32 elsewhere."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision in ``dtype`` on ``device`` (from :func:`autocast_dtype`); a no-op for fp32 (None)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def configure_backends(device: torch.device, tf32: bool) -> None:
    """TF32 for the fp32 parts of matmuls and convolutions on Ampere and newer GPUs (ignored elsewhere)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def init_process_group(dist: Distributed, device_name: str) -> None:
    """Join the launcher's process group: NCCL for GPUs, gloo for CPU processes."""
    if dist.enabled and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device_name != "cpu" else "gloo"
        torch.distributed.init_process_group(backend)


def strategy_of(config_strategy: str, dist: Distributed) -> str:
    """``none`` for one process, else ``ddp`` or ``fsdp`` (``auto`` is ddp)."""
    if not dist.enabled:
        return "none"
    return "ddp" if config_strategy == "auto" else config_strategy


# -- wrapping ----------------------------------------------------------------------------------


def wrap_model(model: nn.Module, strategy: str, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """The module the training loop calls: ``model`` itself, DDP around it, or ``model`` sharded in
    place by FSDP2 (then the returned module *is* ``model``)."""
    if strategy == "ddp":
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                   find_unused_parameters=find_unused_parameters)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for unit in shard_units(model):
            fully_shard(unit)
        fully_shard(model)
    return model


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards one by one (each gathers its parameters just for its own forward):
    a transformer's layers as its Hugging Face class declares them (``_no_split_modules``), else the
    blocks ``backbone.train_blocks`` counts (ResNet layers, CNN stages, repeated layers: see
    :func:`crossfuse.backbones.adapt.find_blocks`). Deepest first, as ``fully_shard`` wants."""
    from .backbones.adapt import find_blocks

    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    units = [m for m in model.modules() if type(m).__name__ in names] or find_blocks(model)
    depth = {id(m): name.count(".") for name, m in model.named_modules()}
    return sorted(units, key=lambda m: -depth[id(m)])


def reshard(model: nn.Module, strategy: str) -> None:
    """Free the gathered parameters FSDP keeps after a forward without backward (evaluation): the
    optimizer and the state-dict functions work on the sharded ones."""
    if strategy == "fsdp":
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()


def no_sync(wrapped: nn.Module, strategy: str, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient reduction on micro-batches that only accumulate (``sync`` False)."""
    if sync or strategy == "none":
        return contextlib.nullcontext()
    if strategy == "ddp":
        return wrapped.no_sync()
    return _fsdp_no_sync(wrapped)


@contextlib.contextmanager
def _fsdp_no_sync(model: nn.Module):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


# -- whole state dicts -------------------------------------------------------------------------


def _full_options(**extra: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def model_state(model: nn.Module, strategy: str) -> dict[str, torch.Tensor]:
    """The whole model's tensors on the CPU. Collective under FSDP (every rank must call it);
    only rank 0 gets them there, the others an empty dict."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_full_options(cpu_offload=True))
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], strategy: str, where: str,
                     inference: bool = False) -> None:
    """Load a whole state dict strictly: a missing or unexpected tensor is an error naming ``where``.
    With ``inference``, tensors of modules that only training uses (a face margin head, which
    the task leaves out of its inference model) may be left over."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        result = set_model_state_dict(model, state, options=_full_options(strict=False))
    else:
        result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), [] if inference else list(result.unexpected_keys)
    if missing or unexpected:
        raise CrossfuseError(f"{where} does not match the model: {len(missing)} tensors missing (e.g. "
                             f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); it was written "
                             f"for another architecture or configuration")


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, strategy: str) -> dict[str, Any]:
    """The optimizer's whole state (collective under FSDP)."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_full_options(cpu_offload=True))
    return optimizer.state_dict()


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                         strategy: str) -> None:
    """Restore what :func:`optimizer_state` returned (every rank passes the whole state)."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=_full_options())
    else:
        optimizer.load_state_dict(state)


# -- collectives -------------------------------------------------------------------------------


def gather_objects(dist: Distributed, value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in one process)."""
    if not dist.enabled:
        return [value]
    gathered: list[Any] = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def any_rank(dist: Distributed, device: torch.device, *flags: torch.Tensor | bool) -> list[bool]:
    """For each flag, whether it is set on any rank: one small all-reduce for all of them."""
    if not dist.enabled:
        return [bool(f) for f in flags]
    values = torch.stack([torch.as_tensor(f, device=device).reshape(()).to(torch.float32) for f in flags])
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


# -- launching ---------------------------------------------------------------------------------


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``crossfuse ARGV`` in ``nproc`` local processes under ``torchrun``; return its exit code.

    Ctrl-C reaches every process: the workers save a checkpoint at their next optimizer step and
    exit, and this process waits for them before it returns 130.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if "RANK" in os.environ:
        raise ConfigError("--nproc starts torchrun itself; this process already runs under a launcher "
                          "(RANK is set): drop --nproc")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "crossfuse.cli", *argv]
    # Ctrl-C must reach this process as KeyboardInterrupt even when it was started with SIGINT ignored
    # (a background job of a script): the workers' own handlers do not depend on that either.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(command)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.wait()
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
