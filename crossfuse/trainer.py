"""The one shared trainer. It knows the :class:`~crossfuse.task.Task` contract and nothing of domains.

Features: device auto-selection, mixed precision, gradient accumulation and clipping, warm-up
schedules, early stopping on the task's main metric, best/last checkpoints (safetensors,
atomic, weights and state replaced as one unit), exact resume (weights, optimizer, scheduler,
every rank's RNG, step, data order), a NaN/inf guard, a clean stop on SIGINT/SIGTERM, JSONL logs,
progress bars, and DDP or FSDP2 when launched by ``torchrun`` (:mod:`crossfuse.distributed`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import TrainConfig
from .distributed import (
    Distributed,
    any_rank,
    autocast,
    autocast_dtype,
    configure_backends,
    gather_objects,
    init_process_group,
    load_model_state,
    load_optimizer_state,
    model_state,
    no_sync,
    optimizer_state,
    reshard,
    select_device,
    strategy_of,
    wrap_model,
)
from .errors import CrossfuseError
from .metrics import is_defined, split_metrics
from .outputs import concat_outputs, move_to, split_rows, to_cpu
from .runs import LAST_WEIGHTS, STATE_FILE, RunDir, atomic_write, summarize
from .task import DataBundle, Task

# -- seeding ---------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every RNG state the training loop on ``device`` consumes, in a form ``torch.load(weights_only=True)``
    reads. Only this process's own GPU: touching the others would open a CUDA context on each."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": _to_lists(random.getstate()),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned (the GPU part onto ``device``)."""
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if device is not None and device.type == "cuda" and isinstance(state.get("cuda"), torch.Tensor):
        torch.cuda.set_rng_state(state["cuda"], device)


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
    (what the task declares as trained from scratch, :meth:`Task.fresh_parameters`) when it is set;
    with ``layer_decay``, each pretrained parameter's rate scaled by its depth (:func:`layer_depths`)."""
    fresh_ids = {id(p) for p in fresh}
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    depths, top = layer_depths([name for name, p in named if id(p) not in fresh_ids])
    groups: dict[tuple[bool, float, bool], list[nn.Parameter]] = {}
    for name, parameter in named:
        no_decay = parameter.ndim < 2 or "norm" in name.lower()
        is_fresh = id(parameter) in fresh_ids
        if is_fresh:
            lr = config.head_lr or config.lr
        else:
            lr = config.lr * (config.layer_decay or 1.0) ** (top - depths[name])
        groups.setdefault((is_fresh and config.head_lr is not None, -lr, no_decay), []).append(parameter)
    # Sorted as before layer decay existed (pretrained first), so older checkpoints resume group for group.
    return [{"params": params, "lr": -negative_lr, "weight_decay": 0.0 if no_decay else config.weight_decay}
            for (_, negative_lr, no_decay), params in sorted(groups.items())]


# A numbered block in a parameter name: BERT's encoder.layer.3., GPT-2's h.3., ViT / timm blocks.3., layers.3.
_BLOCK = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


def layer_depths(names: Iterable[str]) -> tuple[dict[str, int], int]:
    """Depth of each parameter for layer-wise learning-rate decay (Clark et al., ELECTRA, 2020).

    Embeddings are depth 0, the parameters of numbered block ``i`` depth ``i + 1``, everything
    else (a pooler, a final norm) the top depth ``L + 1`` for ``L`` blocks. Parameter ``p`` then
    learns at ``lr * layer_decay ** (top - depth(p))``: the top at ``lr``, lower layers, which hold
    the more general features, ever more slowly. Returns the depths and the top depth.
    """
    names = list(names)
    blocks = {name: int(match.group(1)) for name in names if (match := _BLOCK.search(name))}
    top = max(blocks.values(), default=-1) + 2
    return {name: blocks[name] + 1 if name in blocks else 0 if "embed" in name.lower() else top
            for name in names}, top


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
    skipped_steps: int = 0  # optimizer steps skipped for a NaN / inf loss (train.nonfinite=skip)
    history: list[dict[str, Any]] = field(default_factory=list)


class Callback:
    """Hooks into the loop. ``on_step_end`` runs after each optimizer step."""

    def on_step_end(self, trainer: "Trainer", state: TrainState) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", state: TrainState, metrics: dict[str, Any]) -> None:
        """After each epoch; ``metrics`` is empty when the epoch had no validation pass (no
        validation split, or ``train.eval_every`` skipped it)."""


class StopRequested(KeyboardInterrupt):
    """Training stopped on request (SIGINT, SIGTERM, :meth:`Trainer.request_stop`) after a checkpoint."""


class NonFiniteLoss(CrossfuseError):
    """The loss became NaN or infinite (``train.nonfinite=stop``); the last checkpoint is untouched."""

    exit_code = 1


class Trainer:
    """Train ``model`` on ``task`` with ``data``; write to ``run`` (only on the main rank)."""

    def __init__(self, task: Task, model: nn.Module, data: DataBundle, config: TrainConfig, *, seed: int,
                 run: RunDir | None = None, callbacks: Sequence[Callback] = (), teacher: Any = None):
        self.task, self.data, self.config, self.seed, self.run = task, data, config, seed, run
        self.callbacks = list(callbacks)
        self.teacher = teacher  # a crossfuse.distill.Teacher: training batches also go through it
        self.dist = Distributed()
        init_process_group(self.dist, config.device)
        self.device = select_device(config.device, self.dist)
        configure_backends(self.device, config.tf32)
        self._set_threads()
        self.strategy = strategy_of(config.strategy, self.dist)
        self.model = model.to(self.device)
        if teacher is not None:
            teacher.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ddp_model = wrap_model(self.model, self.strategy, self.device, config.find_unused_parameters)
        if config.compile:  # after DDP, so its bucketing sees the compiled graph's gradients
            self.ddp_model = torch.compile(self.ddp_model)
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
        self._stop_signal: int | None = None
        self._updating = False  # inside the optimizer step: the weights are not a consistent state
        self.state = TrainState()
        self._mark_boundary()

    # -- setup -----------------------------------------------------------------------------
    def _set_threads(self) -> None:
        # Oversubscribed threads slow small CPUs down several-fold: share the cores between ranks.
        cores = os.cpu_count() or 1
        per_rank = max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", self.dist.world_size)))
        torch.set_num_threads(self.config.threads or min(torch.get_num_threads(), per_rank))

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
        return self._rank_share(order)

    def _rank_share(self, order: list[int]) -> list[int]:
        """This rank's part of ``order``, padded by wrapping around so every rank runs as many batches
        (DDP and FSDP need every rank in every collective)."""
        if not self.dist.enabled:
            return order
        per_rank = math.ceil(len(order) / self.dist.world_size)
        padded = (order * (self.dist.world_size + 1))[: per_rank * self.dist.world_size]
        return padded[self.dist.rank:: self.dist.world_size]

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

    def _loader(self, samples: Sequence[Any], indices: list[int], batch_size: int, train: bool,
                offset: int = 0) -> torch.utils.data.DataLoader:
        seed = (self.dist.rank_seed(self.seed), self.state.epoch) if train else None
        dataset = Preprocessed(samples, indices, self.task, train, seed=seed, offset=offset)
        # A private generator: creating a loader iterator draws a worker seed, and drawing it from the
        # global RNG would shift every dropout mask after a resume. Each rank augments its own way.
        generator = torch.Generator().manual_seed(self.dist.rank_seed(self.seed) + self.state.epoch)
        workers = self.config.num_workers
        pin = self.config.pin_memory if self.config.pin_memory is not None else self.device.type == "cuda"
        extra = {"prefetch_factor": self.config.prefetch_factor} if workers and self.config.prefetch_factor else {}
        collate = self.task.collate
        if train and self.teacher is not None:
            dataset, collate = self.teacher.wrap(dataset, collate)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=generator,
                                           collate_fn=collate, num_workers=workers, pin_memory=pin, **extra)

    def _to_device(self, batch: Any) -> Any:
        batch = move_to(batch, self.device)
        return to_channels_last(batch) if self.config.channels_last else batch

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision as ``train.precision`` asks (a no-op in fp32)."""
        return autocast(self.device, self.amp_dtype)

    # -- training --------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainState:
        """Train for ``config.epochs`` (or until early stopping / ``max_steps``).

        SIGINT and SIGTERM stop the run at the next optimizer step (or the end of the epoch's
        evaluation) with a checkpoint saved on every rank, and raise :class:`StopRequested`. A second
        Ctrl-C stops at once: one process still saves the last step's state unless the weights were
        being updated; several processes keep their previous checkpoint.
        """
        if resume:
            self.load_checkpoint()
        else:  # dropout and augmentation draw from here: same seed, same run, whatever ran before
            seed_everything(self.dist.rank_seed(self.seed))
            self._mark_boundary()
        try:
            with self._stop_on_signals():
                while self.state.epoch < self.config.epochs and not self._out_of_steps():
                    self._train_epoch()
                    if self._end_epoch():  # also when max_steps ended the epoch early: evaluate, checkpoint
                        break
        except StopRequested:
            raise  # the checkpoint is saved
        except KeyboardInterrupt:
            # Raised outside the signal handler's reach (a callback, a second Ctrl-C): one process can
            # still save the last boundary, unless the weights were half-way through an update.
            if not self.dist.enabled and not self._updating:
                self.save_checkpoint()
            raise
        if self.run is not None and not self.data.validation:
            self._save_weights("best.safetensors")
        return self.state

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """Turn the first SIGINT / SIGTERM into a request the loop honours at a consistent point."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self._stop_signal = signum
            self._log_console("\nstopping at the next optimizer step after saving a checkpoint "
                              "(Ctrl-C again to stop at once)")

        previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _out_of_steps(self) -> bool:
        return bool(self.config.max_steps) and self.state.step >= self.config.max_steps

    def _train_epoch(self) -> None:
        indices = self._epoch_indices(self.state.epoch)
        skip = self.state.batch_in_epoch * self.config.batch_size
        loader = self._loader(self.data.train, indices[skip:], self.config.batch_size, train=True, offset=skip)
        self.ddp_model.train()
        progress = self._progress(total=self._batches_per_epoch(), initial=self.state.batch_in_epoch,
                                  desc=f"epoch {self.state.epoch + 1}/{self.config.epochs}")
        accum, per_epoch = self.config.grad_accum, self._batches_per_epoch()
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        for batch in loader:
            boundary = (self.state.batch_in_epoch + 1) % accum == 0 or self.state.batch_in_epoch + 1 == per_epoch
            # The epoch's last group may hold fewer micro-batches: average over the ones it has.
            group = min(accum, per_epoch - self.state.batch_in_epoch // accum * accum)
            # Micro-batches that only accumulate skip the gradient reduction across ranks.
            with no_sync(self.ddp_model, self.strategy, sync=boundary):
                with self.autocast():
                    loss = self._loss(batch)
                nonfinite |= ~torch.isfinite(loss.detach())  # read once per optimizer step (one device sync)
                self.scaler.scale(loss / group).backward()
            self.state.batch_in_epoch += 1
            progress.update(1)
            if not boundary:
                continue
            if any_rank(self.dist, self.device, nonfinite)[0]:
                self._nonfinite_step(bool(nonfinite))
            else:
                self._optimizer_step()
                self._after_step(loss, progress)
            nonfinite.zero_()
            self._stop_if_requested()
            if self._out_of_steps():
                break
        progress.close()

    def _loss(self, batch: Any) -> torch.Tensor:
        """The task's loss of one training batch; against the teacher's outputs when distilling."""
        if self.teacher is None:
            return self.task.training_step(self.ddp_model, self._to_device(batch))
        student, teacher = batch
        return self.teacher.loss(self.task, self.ddp_model, self._to_device(student), teacher, self.device)

    def _after_step(self, loss: torch.Tensor, progress: Any) -> None:
        # loss.item() waits for the device: only when someone reads the value.
        logged = self.state.step % self.config.log_every == 0
        if logged or not progress.disable:
            value = loss.item()
            progress.set_postfix(loss=f"{value:.4f}")
            if logged:
                self._log({"step": self.state.step, "epoch": self.state.epoch, "split": "train",
                           "loss": value, "lr": self.scheduler.get_last_lr()[0]})
        if self.config.checkpoint_every and self.state.step % self.config.checkpoint_every == 0:
            self.save_checkpoint()
        for callback in self.callbacks:
            callback.on_step_end(self, self.state)

    def _nonfinite_step(self, here: bool) -> None:
        """A NaN / inf loss in this accumulation group, ``here`` or on another rank: stop, or drop its
        gradients on every rank."""
        ranks = [rank for rank, bad in enumerate(gather_objects(self.dist, here)) if bad]
        on = f" on rank {', '.join(map(str, ranks))}" if self.dist.enabled else ""
        where = f"optimizer step {self.state.step + 1} (epoch {self.state.epoch + 1}, batch {self.state.batch_in_epoch})"
        self.optimizer.zero_grad(set_to_none=True)
        if self.config.nonfinite == "stop":
            last = "no checkpoint yet" if self.run is None or not self.run.has_checkpoint() else \
                f"the last checkpoint in {self.run.checkpoint_dir} is untouched"
            raise NonFiniteLoss(f"the training loss became NaN or infinite{on} at {where}; {last}. Lower train.lr, "
                                f"set train.grad_clip or train.precision=fp32, check the data of that batch, or set "
                                f"train.nonfinite=skip to drop such steps")
        self.state.skipped_steps += 1
        self._mark_boundary()  # a resume continues after the dropped micro-batches
        self._log({"step": self.state.step, "epoch": self.state.epoch, "split": "train", "skipped": where})
        self._log_console(f"warning: NaN or infinite loss{on} at {where}: step skipped (train.nonfinite=skip)")

    def _optimizer_step(self) -> None:
        self._updating = True
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        self._mark_boundary()
        self._updating = False

    def _mark_boundary(self) -> None:
        """Remember where the last optimizer step left data and RNG: a checkpoint resumes from there,
        so micro-batches accumulated after it are replayed, not lost."""
        self._boundary_rng = rng_state(self.device)
        self._boundary_batch = self.state.batch_in_epoch

    def _end_epoch(self) -> bool:
        """Evaluate (when due), checkpoint, decide on early stopping. Returns True to stop."""
        metrics = self.evaluate(self.data.validation) if self.data.validation and self._evaluation_due() else {}
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
        self._stop_if_requested(saved=True)
        return stop

    def _evaluation_due(self) -> bool:
        """Whether this epoch ends with a validation pass: every ``eval_every`` epochs, and always at
        the last one (the epoch count's or ``max_steps``'), so the best checkpoint never misses it."""
        finished = self.state.epoch + 1
        return finished % self.config.eval_every == 0 or finished >= self.config.epochs or self._out_of_steps()

    def request_stop(self) -> None:
        """Stop at the next optimizer step with a checkpoint saved (what SIGINT and SIGTERM do); ``fit``
        then raises :class:`StopRequested`, a :class:`KeyboardInterrupt`."""
        self._stop_signal = self._stop_signal or signal.SIGINT

    def _stop_if_requested(self, saved: bool = False) -> None:
        """Honour a stop request made on any rank: every rank checkpoints, then all of them stop."""
        if any_rank(self.dist, self.device, self._stop_signal is not None)[0]:
            if not saved:
                self.save_checkpoint()
            raise StopRequested(f"stopped by signal {self._stop_signal or 'on another rank'} at step {self.state.step}")

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
        indices = self._rank_share(list(range(len(samples))))
        loader = self._loader(samples, indices, self.config.eval_batch_size or self.config.batch_size, train=False)
        outputs = collect_outputs(self.task, self.model, loader, self.device, self.amp_dtype)
        reshard(self.model, self.strategy)
        if self.dist.enabled:
            outputs = self._gather(outputs, len(samples))
        return outputs

    def _gather(self, outputs: dict[str, Any], total: int) -> dict[str, Any]:
        """Every rank's outputs in sample order; rows a rank ran only as padding are dropped."""
        gathered = gather_objects(self.dist, outputs)
        merged: dict[str, Any] = {}
        for key in outputs:
            items: list[Any] = [None] * total
            for rank, part in enumerate(gathered):
                for offset, value in enumerate(split_rows(part[key])):
                    position = rank + offset * self.dist.world_size
                    if position < total:
                        items[position] = value
            first = outputs[key]
            merged[key] = torch.stack(items) if isinstance(first, torch.Tensor) else items
        return merged

    def evaluate(self, samples: Sequence[Any]) -> dict[str, Any]:
        """The task's metrics on a whole split (plus the registered ones ``eval.metrics`` adds)."""
        return split_metrics(self.task, self.predict(samples), samples)

    # -- checkpoints -----------------------------------------------------------------------
    def model_state(self) -> dict[str, torch.Tensor]:
        """The whole model's tensors on the CPU (collective under FSDP: call it on every rank)."""
        return model_state(self.model, self.strategy)

    def load_weights(self, path: str | Path) -> None:
        """Load a safetensors checkpoint of this model strictly (on every rank)."""
        load_model_state(self.model, load_file(str(path)), self.strategy, where=str(path))

    def _weights_writer(self) -> Callable[[str], None] | None:
        """A function writing the model's weights to a path (None on ranks other than the main one).
        Collective under FSDP: every rank calls it."""
        state = self.model_state()
        if not self.dist.is_main:
            return None
        metadata = {"step": str(self.state.step), "epoch": str(self.state.epoch)}
        return lambda path: save_file(_untie(state), path, metadata=metadata)

    def _save_weights(self, name: str) -> None:
        if self.run is None:
            return
        writer = self._weights_writer()  # every rank takes part; only the main one writes
        if writer is not None:
            atomic_write(self.run.checkpoint_dir / name, writer)

    def save_checkpoint(self) -> None:
        """Write last.safetensors and the training state needed for an exact resume (the optimizer,
        the scheduler, the data position and every rank's RNG) as one unit. Collective: every rank
        calls it."""
        if self.run is None:
            return
        rngs = gather_objects(self.dist, self._boundary_rng)
        optimizer = optimizer_state(self.model, self.optimizer, self.strategy)
        write_weights = self._weights_writer()
        if write_weights is None:
            return
        state = {"trainer": {**self.state.__dict__, "batch_in_epoch": self._boundary_batch},
                 "optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(), "rng": rngs, "world_size": self.dist.world_size,
                 "seed": self.seed}
        self.run.write_checkpoint(write_weights, lambda path: torch.save(state, path))

    def load_checkpoint(self) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (weights-only unpickling), after checking
        that the weights and the state belong together and to this number of processes."""
        assert self.run is not None
        if self.dist.is_main:
            self.run.recover_checkpoint()
        self.barrier()  # every rank reads what the main rank recovered
        state_path, weights_path = self.run.checkpoint_dir / STATE_FILE, self.run.checkpoint_dir / LAST_WEIGHTS
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        check_checkpoint_pair(state, weights_path, state_path, self.dist.world_size)
        self.load_weights(weights_path)
        load_optimizer_state(self.model, self.optimizer, state["optimizer"], self.strategy)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(**state["trainer"])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        set_rng_state(rngs[self.dist.rank], self.device)
        self._boundary_rng, self._boundary_batch = rngs[self.dist.rank], self.state.batch_in_epoch
        if self.dist.is_main:
            self.run.truncate_log(self.state.step)
        if self.state.epoch >= self.config.epochs or self._out_of_steps():
            self._log_console(f"training had already finished (step {self.state.step}); evaluating again")
        else:
            self._log_console(f"resumed at step {self.state.step}, epoch {self.state.epoch + 1}/{self.config.epochs}")

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (the run directory a time stamp named, say)."""
        return gather_objects(self.dist, value)[0]

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


def check_checkpoint_pair(state: dict[str, Any], weights_path: Path, state_path: Path, world_size: int) -> None:
    """Refuse a resume whose weights and training state were not written at the same step (a process
    killed between the two writes), or by another number of processes (data order and RNG differ)."""
    from safetensors import safe_open

    with safe_open(str(weights_path), framework="pt") as handle:
        weights_step = (handle.metadata() or {}).get("step")
    state_step = state["trainer"]["step"]
    if weights_step is not None and int(weights_step) != int(state_step):
        raise CrossfuseError(f"{weights_path} holds step {weights_step} but {state_path} step {state_step}: the "
                             f"process stopped while writing the checkpoint. The run cannot continue exactly; its "
                             f"best weights are in {weights_path.parent / 'best.safetensors'}")
    saved = int(state.get("world_size", 1))
    if saved != world_size:
        raise CrossfuseError(f"{state_path} was written by {saved} process(es) and this resume runs {world_size}: "
                             f"the data order and every process's random state depend on it. Resume with "
                             f"--nproc {saved}")


# -- helpers -----------------------------------------------------------------------------------


@torch.no_grad()
def collect_outputs(task: Task, model: nn.Module, batches: Any, device: torch.device,
                    amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Run ``task.predict_step`` over ``batches`` in eval mode; return the outputs joined, on the CPU."""
    model.eval()
    parts = []
    for batch in batches:
        with autocast(device, amp_dtype):
            parts.append(to_cpu(task.predict_step(model, move_to(batch, device))))
    return concat_outputs(parts)


class Preprocessed(torch.utils.data.Dataset):
    """``samples[indices[i]]`` through ``task.preprocess(sample, train)``: what a DataLoader reads.

    With ``seed`` (a tuple of ints), a DataLoader worker seeds its random generators from (seed,
    ``offset + i``) before preparing item ``i``: the augmentation of each position in the epoch is
    then the same whichever worker prepares it, with any number of workers, and after a resume
    that starts in the middle of the epoch. Without workers the trainer's own RNG state (saved in
    checkpoints) draws it.
    """

    def __init__(self, samples: Sequence[Any], indices: list[int], task: Task, train: bool,
                 seed: tuple[int, ...] | None = None, offset: int = 0):
        self.samples, self.indices, self.task, self.train = samples, indices, task, train
        self.seed, self.offset = seed, offset

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        if self.seed is not None and torch.utils.data.get_worker_info() is not None:
            entropy = np.random.SeedSequence([*self.seed, self.offset + index]).generate_state(1)[0]
            seed_everything(int(entropy))
        return self.task.preprocess(self.samples[self.indices[index]], train=self.train)


def to_channels_last(batch: Any) -> Any:
    """Batched images (4-D floating tensors) in channels-last memory format, the rest unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.ndim == 4 and batch.is_floating_point() \
            else batch
    if isinstance(batch, dict):
        return {k: to_channels_last(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_channels_last(v) for v in batch)
    return batch


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
