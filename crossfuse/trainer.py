"""The one shared trainer. It knows the :class:`~crossfuse.task.Task` contract and nothing of domains.

Features: device auto-selection, mixed precision, gradient accumulation and clipping, warm-up
schedules, early stopping on the task's main metric, best/last checkpoints (safetensors,
atomic), exact resume (weights, optimizer, scheduler, RNG, step, data order), JSONL logs,
progress bars, and DDP when launched by ``torchrun`` (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import TrainConfig
from .errors import CrossfuseError
from .metrics import is_defined, split_metrics
from .outputs import concat_outputs, move_to, split_rows, to_cpu
from .runs import STATE_FILE, RunDir, atomic_write, summarize
from .task import DataBundle, Task

# -- process and device ------------------------------------------------------------------------


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


def select_device(name: str, dist: Distributed) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; under DDP each rank takes its local GPU."""
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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG state the training loop consumes, in a form ``torch.load(weights_only=True)`` reads."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": _to_lists(random.getstate()),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


# -- schedule ----------------------------------------------------------------------------------


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then linear decay, cosine decay or constant."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return factor


def param_groups(model: nn.Module, config: TrainConfig, fresh: Iterable[nn.Parameter] = ()) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and norms; ``head_lr`` for the ``fresh`` parameters
    (what the task declares as trained from scratch, :meth:`Task.fresh_parameters`) when it is set."""
    fresh_ids = {id(p) for p in fresh} if config.head_lr else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        no_decay = parameter.ndim < 2 or "norm" in name.lower()
        groups.setdefault((id(parameter) in fresh_ids, no_decay), []).append(parameter)
    return [{"params": params, "lr": config.head_lr if is_fresh else config.lr,
             "weight_decay": 0.0 if no_decay else config.weight_decay}
            for (is_fresh, no_decay), params in sorted(groups.items())]


# -- the trainer -------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Counters that a checkpoint carries besides weights and optimizer state."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    best: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Callback:
    """Hooks into the loop. ``on_step_end`` runs after each optimizer step."""

    def on_step_end(self, trainer: "Trainer", state: TrainState) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", state: TrainState, metrics: dict[str, Any]) -> None:
        pass


class Trainer:
    """Train ``model`` on ``task`` with ``data``; write to ``run`` (only on the main rank)."""

    def __init__(self, task: Task, model: nn.Module, data: DataBundle, config: TrainConfig, *, seed: int,
                 run: RunDir | None = None, callbacks: Sequence[Callback] = ()):
        self.task, self.data, self.config, self.seed, self.run = task, data, config, seed, run
        self.callbacks = list(callbacks)
        self.dist = Distributed()
        self._init_process_group()
        self.device = select_device(config.device, self.dist)
        self._set_threads()
        self.model = model.to(self.device)
        self.ddp_model = self._wrap(self.model)
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, config, task.fresh_parameters(self.model)),
                                           lr=config.lr)
        self.total_steps = self._total_steps()
        warmup = int(config.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(config.schedule, warmup, self.total_steps))
        self._draw_weights = self._sampling_weights()
        self._undefined_reported = False
        self.state = TrainState()
        self._mark_boundary()

    # -- setup -----------------------------------------------------------------------------
    def _init_process_group(self) -> None:
        if self.dist.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and self.config.device != "cpu" else "gloo"
            torch.distributed.init_process_group(backend)

    def _set_threads(self) -> None:
        # Oversubscribed threads slow small CPUs down several-fold: share the cores between ranks.
        cores = os.cpu_count() or 1
        per_rank = max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", self.dist.world_size)))
        torch.set_num_threads(self.config.threads or min(torch.get_num_threads(), per_rank))

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                   find_unused_parameters=self.config.find_unused_parameters)

    def _batches_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.data.train) / self.dist.world_size)
        return math.ceil(per_rank / self.config.batch_size)

    def _total_steps(self) -> int:
        steps = math.ceil(self._batches_per_epoch() / self.config.grad_accum) * self.config.epochs
        return min(steps, self.config.max_steps) if self.config.max_steps else steps

    # -- data ------------------------------------------------------------------------------
    def _epoch_indices(self, epoch: int) -> list[int]:
        """This rank's sample order for ``epoch``, fixed by (seed, epoch) so a resume replays it exactly:
        a permutation, or with ``train.sampler`` balanced/weighted a draw with replacement."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self._draw_weights is None:
            order = torch.randperm(len(self.data.train), generator=generator).tolist()
        else:
            order = torch.multinomial(self._draw_weights, len(self.data.train), replacement=True,
                                      generator=generator).tolist()
        if self.dist.enabled:  # pad so every rank gets the same number of batches
            per_rank = math.ceil(len(order) / self.dist.world_size)
            order = (order * 2)[: per_rank * self.dist.world_size][self.dist.rank:: self.dist.world_size]
        return order

    def _sampling_weights(self) -> torch.Tensor | None:
        """Per-sample drawing weights for ``train.sampler`` (None: a plain shuffle)."""
        if self.config.sampler == "shuffle":
            return None
        if self.config.sampler == "weighted":
            weights = self.task.sample_weights(self.data.train)
            if weights is None:
                raise CrossfuseError(f"train.sampler=weighted: task {self.task.name!r} gives no sample weights "
                                     f"(Task.sample_weights); use train.sampler=shuffle or balanced")
        else:
            labels = self.task.sample_labels(self.data.train)
            if labels is None:
                raise CrossfuseError(f"train.sampler=balanced: task {self.task.name!r} gives no sample labels "
                                     f"(Task.sample_labels); use train.sampler=shuffle")
            counts = Counter(labels)
            weights = [1.0 / counts[label] for label in labels]  # every class drawn equally often
        tensor = torch.as_tensor(list(weights), dtype=torch.float64)
        if len(tensor) != len(self.data.train) or bool((tensor < 0).any()) or float(tensor.sum()) <= 0:
            raise CrossfuseError(f"train.sampler={self.config.sampler}: task {self.task.name!r} gave {len(tensor)} "
                                 f"weights for {len(self.data.train)} samples (non-negative, not all zero expected)")
        return tensor

    def _loader(self, samples: Sequence[Any], indices: list[int], batch_size: int,
                train: bool) -> torch.utils.data.DataLoader:
        dataset = Preprocessed(samples, indices, self.task, train)
        # A private generator: creating a loader iterator draws a worker seed, and drawing it from the
        # global RNG would shift every dropout mask after a resume.
        generator = torch.Generator().manual_seed(self.seed + self.state.epoch)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=generator,
                                           collate_fn=self.task.collate, num_workers=self.config.num_workers)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- training --------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainState:
        """Train for ``config.epochs`` (or until early stopping / ``max_steps``)."""
        if resume:
            self.load_checkpoint()
        else:  # dropout and augmentation draw from here: same seed, same run, whatever ran before
            seed_everything(self.seed)
            self._mark_boundary()
        try:
            while self.state.epoch < self.config.epochs and not self._out_of_steps():
                self._train_epoch()
                if self._end_epoch():  # also when max_steps ended the epoch early: evaluate, checkpoint
                    break
        except KeyboardInterrupt:
            self.save_checkpoint()
            raise
        if self.run is not None and self.dist.is_main and not self.data.validation:
            self._save_weights("best.safetensors")
        return self.state

    def _out_of_steps(self) -> bool:
        return bool(self.config.max_steps) and self.state.step >= self.config.max_steps

    def _train_epoch(self) -> None:
        indices = self._epoch_indices(self.state.epoch)
        skip = self.state.batch_in_epoch * self.config.batch_size
        loader = self._loader(self.data.train, indices[skip:], self.config.batch_size, train=True)
        self.ddp_model.train()
        progress = self._progress(total=self._batches_per_epoch(), initial=self.state.batch_in_epoch,
                                  desc=f"epoch {self.state.epoch + 1}/{self.config.epochs}")
        accum, per_epoch = self.config.grad_accum, self._batches_per_epoch()
        for batch in loader:
            boundary = (self.state.batch_in_epoch + 1) % accum == 0 or self.state.batch_in_epoch + 1 == per_epoch
            # The epoch's last group may hold fewer micro-batches: average over the ones it has.
            group = min(accum, per_epoch - self.state.batch_in_epoch // accum * accum)
            # Under DDP, skip the gradient all-reduce on micro-batches that only accumulate.
            sync = self.ddp_model.no_sync() if self.dist.enabled and not boundary else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    loss = self.task.training_step(self.ddp_model, move_to(batch, self.device))
                self.scaler.scale(loss / group).backward()
            self.state.batch_in_epoch += 1
            progress.update(1)
            if boundary:
                self._optimizer_step()
                progress.set_postfix(loss=f"{loss.item():.4f}")
                if self.state.step % self.config.log_every == 0:
                    self._log({"step": self.state.step, "epoch": self.state.epoch, "split": "train",
                               "loss": loss.item(), "lr": self.scheduler.get_last_lr()[0]})
                if self.config.checkpoint_every and self.state.step % self.config.checkpoint_every == 0:
                    self.save_checkpoint()
                for callback in self.callbacks:
                    callback.on_step_end(self, self.state)
                if self._out_of_steps():
                    break
        progress.close()

    def _optimizer_step(self) -> None:
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        self._mark_boundary()

    def _mark_boundary(self) -> None:
        """Remember where the last optimizer step left data and RNG: a checkpoint resumes from there,
        so micro-batches accumulated after it are replayed, not lost."""
        self._boundary_rng = rng_state()
        self._boundary_batch = self.state.batch_in_epoch

    def _end_epoch(self) -> bool:
        """Evaluate, checkpoint, decide on early stopping. Returns True to stop."""
        metrics = self.evaluate(self.data.validation) if self.data.validation else {}
        record = {"step": self.state.step, "epoch": self.state.epoch, "split": "validation", **_scalars(metrics)}
        if metrics:
            self._log(record)
            self._log_console(f"epoch {self.state.epoch + 1}: " + summarize(metrics, self.task.main_metric, limit=6))
        self.state.history.append(record)
        stop = self._track_best(metrics)
        for callback in self.callbacks:
            callback.on_epoch_end(self, self.state, metrics)
        self.state.epoch += 1
        self.state.batch_in_epoch = 0
        self._mark_boundary()
        self.save_checkpoint()
        return stop

    def _track_best(self, metrics: dict[str, Any]) -> bool:
        if not metrics:
            return False
        value = metrics[self.task.main_metric]
        if not is_defined(value):  # e.g. AUROC on a validation split without positives
            self._report_undefined(value)
            return self._count_bad_epoch()
        value = float(value)
        better = self.state.best is None or (
            value > self.state.best if self.task.greater_is_better else value < self.state.best)
        if better:
            self.state.best, self.state.best_epoch, self.state.bad_epochs = value, self.state.epoch, 0
            self._save_weights("best.safetensors")
            return False
        return self._count_bad_epoch()

    def _count_bad_epoch(self) -> bool:
        """One more epoch without improvement; True when early stopping ends the run."""
        self.state.bad_epochs += 1
        patience = self.config.early_stopping_patience
        last_epoch = self.state.epoch + 1 >= self.config.epochs
        if patience is not None and self.state.bad_epochs >= patience and not last_epoch:
            self._log_console(f"early stopping: {self.task.main_metric} has not improved for {patience} epochs")
            return True
        return False

    def _report_undefined(self, value: Any) -> None:
        """Say once per run that the main metric was undefined: such an epoch never becomes "best"."""
        if not self._undefined_reported:
            self._undefined_reported = True
            self._log_console(f"warning: the main metric {self.task.main_metric} is {value} on the validation split "
                              f"(epoch {self.state.epoch + 1}); such epochs are never kept as best. Check that the "
                              f"validation split holds every class")

    # -- evaluation ------------------------------------------------------------------------
    def predict(self, samples: Sequence[Any]) -> dict[str, Any]:
        """``predict_step`` outputs for every sample of a split, in order (gathered across ranks)."""
        indices = list(range(len(samples)))[self.dist.rank:: self.dist.world_size]
        loader = self._loader(samples, indices, self.config.eval_batch_size or self.config.batch_size, train=False)
        outputs = collect_outputs(self.task, self.model, loader, self.device, self.amp_dtype)
        if self.dist.enabled:
            outputs = self._gather(outputs, len(samples))
        return outputs

    def _gather(self, outputs: dict[str, Any], total: int) -> dict[str, Any]:
        gathered: list[dict[str, Any]] = [None] * self.dist.world_size  # type: ignore[list-item]
        torch.distributed.all_gather_object(gathered, outputs)
        merged: dict[str, Any] = {}
        for key in outputs:
            items: list[Any] = [None] * total
            for rank, part in enumerate(gathered):
                for offset, value in enumerate(split_rows(part[key])):
                    items[rank + offset * self.dist.world_size] = value
            first = outputs[key]
            merged[key] = torch.stack(items) if isinstance(first, torch.Tensor) else items
        return merged

    def evaluate(self, samples: Sequence[Any]) -> dict[str, Any]:
        """The task's metrics on a whole split (plus the registered ones ``eval.metrics`` adds)."""
        return split_metrics(self.task, self.predict(samples), samples)

    # -- checkpoints -----------------------------------------------------------------------
    def _save_weights(self, name: str) -> None:
        if self.run is None or not self.dist.is_main:
            return
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        metadata = {"step": str(self.state.step), "epoch": str(self.state.epoch)}
        atomic_write(self.run.checkpoint_dir / name, lambda tmp: save_file(_untie(state), tmp, metadata=metadata))

    def save_checkpoint(self) -> None:
        """Write last.safetensors and the training state needed for an exact resume."""
        if self.run is None or not self.dist.is_main:
            return
        self._save_weights("last.safetensors")
        state = {"trainer": {**self.state.__dict__, "batch_in_epoch": self._boundary_batch},
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "rng": self._boundary_rng, "seed": self.seed}
        atomic_write(self.run.checkpoint_dir / STATE_FILE, lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (weights-only unpickling)."""
        assert self.run is not None
        state = torch.load(self.run.checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=True)
        weights = load_file(str(self.run.checkpoint_dir / "last.safetensors"))
        self.model.load_state_dict(weights, strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(**state["trainer"])
        set_rng_state(state["rng"])
        self._boundary_rng, self._boundary_batch = state["rng"], self.state.batch_in_epoch
        self.run.truncate_log(self.state.step)
        if self.state.epoch >= self.config.epochs or self._out_of_steps():
            self._log_console(f"training had already finished (step {self.state.step}); evaluating again")
        else:
            self._log_console(f"resumed at step {self.state.step}, epoch {self.state.epoch + 1}/{self.config.epochs}")

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (the run directory a time stamp named, say)."""
        if not self.dist.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank (no-op without DDP)."""
        if self.dist.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        """Leave the process group this trainer started."""
        if self.dist.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    # -- output ----------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.run is not None and self.dist.is_main:
            self.run.log({**record, "time": round(time.time(), 3)})

    def _log_console(self, message: str) -> None:
        if message and self.dist.is_main:
            print(message, file=sys.stderr, flush=True)

    def _progress(self, **kwargs: Any) -> Any:
        from tqdm.auto import tqdm

        return tqdm(file=sys.stderr, leave=False, dynamic_ncols=True,
                    disable=not (self.config.progress and self.dist.is_main), **kwargs)


# -- helpers -----------------------------------------------------------------------------------


@torch.no_grad()
def collect_outputs(task: Task, model: nn.Module, batches: Any, device: torch.device,
                    amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Run ``task.predict_step`` over ``batches`` in eval mode; return the outputs joined, on the CPU."""
    model.eval()
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    parts = []
    for batch in batches:
        with autocast:
            parts.append(to_cpu(task.predict_step(model, move_to(batch, device))))
    return concat_outputs(parts)


class Preprocessed(torch.utils.data.Dataset):
    """``samples[indices[i]]`` through ``task.preprocess(sample, train)``: what a DataLoader reads."""

    def __init__(self, samples: Sequence[Any], indices: list[int], task: Task, train: bool):
        self.samples, self.indices, self.task, self.train = samples, indices, task, train

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.task.preprocess(self.samples[self.indices[index]], train=self.train)


def _scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The numbers of a metrics dict, for metrics.jsonl; undefined ones (NaN) are written as null."""
    return {k: float(v) if is_defined(v) else None for k, v in metrics.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): store copies."""
    seen: dict[int, str] = {}
    out = {}
    for key, tensor in state.items():
        pointer = tensor.data_ptr()
        out[key] = tensor.clone() if pointer in seen and tensor.numel() else tensor
        seen.setdefault(pointer, key)
    return out
