"""Trainer overhead: crossfuse's Trainer against a plain PyTorch loop doing the same work.

    python benchmarks/trainer_overhead.py [--task finance-sentiment] [--backbone tiny-bert] [--steps 30]
    python benchmarks/trainer_overhead.py --task driving-detection --backbone mobilenet_v3_small --batch-size 8
    python benchmarks/trainer_overhead.py --task security-face-match --backbone resnet18 --batch-size 64

Both loops train the same model of the task (same backbone, head, data, collate, loss, batch
size, AdamW, clipping, device, precision, compilation) for the same number of optimizer steps,
with no checkpoints or evaluation inside the timed part. The first ``--warmup`` steps of each
loop are not timed (imports, allocator, thread pools, torch.compile). Prints seconds per step
and the ratio.

The functions here are the building blocks of ``throughput.py`` and ``gpu.py`` too: a
:class:`Bench` says what to train and how, :func:`plain_loop` and :func:`crossfuse_loop` time it.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import torch
from torch import nn

from crossfuse.trainer import Callback


@dataclass(frozen=True)
class Bench:
    """What both loops train, and how. ``device`` and ``precision`` are resolved (no ``auto``)."""

    task: str = "finance-sentiment"
    backbone: str = "tiny-bert"  # "": the task's configured default
    batch_size: int = 16
    device: str = "cpu"
    precision: str = "fp32"  # fp32, bf16 or fp16 (autocast in both loops)
    compile: bool = False  # torch.compile of the model, in both loops
    channels_last: bool = False  # vision: NHWC weights and batches, in both loops
    num_workers: int = 0  # DataLoader workers of the training loader, in both loops
    overrides: tuple[str, ...] = ()  # more --set pairs, e.g. ("backbone.image_size=224",)
    # Builds the backbone instead of the registry (BERT-base from a config, say); takes the BackboneConfig.
    make_backbone: Optional[Callable[[Any], nn.Module]] = None
    label: str = ""  # the backbone's name in reports when make_backbone builds it

    def resolved(self) -> "Bench":
        """``device=auto`` and ``precision=auto`` made concrete, as the trainer would choose them."""
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if device == "cuda" else "fp32"
        return replace(self, device=device, precision=precision)


AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build(bench: Bench, steps: int):
    """The task, its data and a freshly seeded model, configured for ``steps`` optimizer steps.

    The training samples are repeated so that one epoch holds every step: an epoch boundary (a new
    DataLoader, new worker processes) would otherwise fall inside the timed steps of both loops.
    """
    from crossfuse.api import resolve_config, task_class
    from crossfuse.backbones import build_backbone
    from crossfuse.trainer import seed_everything

    overrides = [f"train.max_steps={steps}", "train.progress=false", f"train.batch_size={bench.batch_size}",
                 "train.epochs=1", "train.early_stopping_patience=null", f"train.precision={bench.precision}",
                 f"train.compile={str(bench.compile).lower()}", f"train.channels_last={str(bench.channels_last).lower()}",
                 f"train.num_workers={bench.num_workers}", *bench.overrides]
    config = resolve_config(bench.task, overrides=overrides, backbone=bench.backbone or None, device=bench.device)
    task = task_class(bench.task)(config)
    data = task.load_data()
    repeats = math.ceil((steps + 1) * bench.batch_size / len(data.train))
    data = replace(data, train=list(data.train) * repeats, validation=[])
    seed_everything(0)
    backbone = bench.make_backbone(config.backbone) if bench.make_backbone else build_backbone(config.backbone)
    task.backbones = {"backbone": backbone}
    model = task.build_model(backbone)
    return config, task, data, model


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock reading means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(Callback):
    """Times optimizer steps ``warmup + 1 .. warmup + steps``: the device is synchronised at both ends,
    so queued GPU work is counted where it ran, not where it was launched."""

    def __init__(self, device: torch.device, warmup: int, steps: int):
        self.device, self.warmup, self.steps = torch.device(device), warmup, steps
        self.started: float | None = None
        self.seconds_per_step: float | None = None

    def tick(self, done: int) -> None:
        """Call with the number of optimizer steps done (0 before the first one)."""
        if done == self.warmup:
            synchronize(self.device)
            self.started = time.perf_counter()
        elif done == self.warmup + self.steps and self.started is not None:
            synchronize(self.device)
            self.seconds_per_step = (time.perf_counter() - self.started) / self.steps

    def on_step_end(self, trainer: Any, state: Any) -> None:
        self.tick(state.step)


def crossfuse_loop(bench: Bench, steps: int, warmup: int = 3) -> float:
    """Seconds per optimizer step of crossfuse's Trainer (steps after ``warmup``)."""
    from crossfuse.task import DataBundle
    from crossfuse.trainer import Trainer

    config, task, data, model = build(bench, warmup + steps)
    clock = StepClock(bench.device, warmup, steps)
    # No validation split and no run directory: the timed part is training only, as in the plain loop.
    trainer = Trainer(task, model, DataBundle(data.train, []), config.train, seed=0, run=None, callbacks=[clock])
    clock.device = trainer.device
    clock.tick(0)
    trainer.fit()
    assert clock.seconds_per_step is not None, f"the trainer stopped after {trainer.state.step} steps"
    return clock.seconds_per_step


def plain_loop(bench: Bench, steps: int, warmup: int = 3) -> float:
    """Seconds per optimizer step of a plain PyTorch loop over the same model and data."""
    from crossfuse.trainer import Preprocessed

    config, task, data, model = build(bench, warmup + steps)
    device = torch.device(bench.device)
    if device.type == "cuda":  # what the trainer's train.tf32 default does
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model.to(device)
    if bench.channels_last:
        model.to(memory_format=torch.channels_last)
    forward_model = torch.compile(model) if bench.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=warmup + steps)
    amp_dtype = AMP_DTYPES[bench.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    # The same per-sample preprocessing (augmentation included) the trainer applies.
    training = Preprocessed(data.train, list(range(len(data.train))), task, train=True)
    loader = torch.utils.data.DataLoader(training, batch_size=bench.batch_size, shuffle=True, collate_fn=task.collate,
                                         num_workers=bench.num_workers, pin_memory=device.type == "cuda")
    clock = StepClock(device, warmup, steps)
    forward_model.train()
    clock.tick(0)
    for done, batch in enumerate(loader, start=1):
        batch = to_device(batch, device, bench.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = task.training_step(forward_model, batch)  # the task's own loss: the model forward and nothing else
        scaler.scale(loss).backward()
        if config.train.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        clock.tick(done)
        if done == warmup + steps:
            break
    assert clock.seconds_per_step is not None, "the data ran out before the last timed step"
    return clock.seconds_per_step


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Every tensor of ``batch`` on ``device``; 4-D float ones (images) channels-last if asked."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {key: to_device(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device, channels_last) for value in batch)
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="finance-sentiment")
    parser.add_argument("--backbone", default="tiny-bert")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each loop")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    bench = Bench(task=args.task, backbone=args.backbone, batch_size=args.batch_size)
    plain = plain_loop(bench, args.steps, args.warmup)
    ours = crossfuse_loop(bench, args.steps, args.warmup)
    print(f"{args.task}, backbone {args.backbone}, batch {args.batch_size}, {args.steps} steps "
          f"after {args.warmup} warm-up, {torch.get_num_threads()} threads")
    print(f"plain PyTorch   {plain * 1000:8.1f} ms/step")
    print(f"crossfuse       {ours * 1000:8.1f} ms/step")
    print(f"ratio crossfuse / plain = {ours / plain:.3f}")


if __name__ == "__main__":
    main()
