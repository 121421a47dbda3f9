"""Trainer overhead: crossfuse's Trainer against a plain PyTorch loop doing the same work.

    python benchmarks/trainer_overhead.py [--task finance-sentiment] [--backbone tiny-bert] [--steps 30]
    python benchmarks/trainer_overhead.py --task driving-detection --backbone mobilenet_v3_small --batch-size 8
    python benchmarks/trainer_overhead.py --task security-face-match --backbone resnet18 --batch-size 64

Both loops train the same model of the task (same backbone, head, data, collate, loss, batch
size, AdamW, clipping) for the same number of optimizer steps on the CPU, with no checkpoints
or evaluation inside the timed part. Prints seconds per step and the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch


def build(task_name: str, backbone: str, steps: int, batch_size: int):
    from crossfuse.api import resolve_config, task_class
    from crossfuse.backbones import build_backbone
    from crossfuse.trainer import seed_everything

    config = resolve_config(task_name, overrides=[f"train.max_steps={steps}", "train.progress=false",
                                                            f"train.batch_size={batch_size}", "train.epochs=100",
                                                            "train.early_stopping_patience=null"],
                            backbone=backbone, device="cpu")
    task = task_class(task_name)(config)
    data = task.load_data()
    seed_everything(0)
    backbone = build_backbone(config.backbone)
    task.backbones = {"backbone": backbone}
    model = task.build_model(backbone)
    return config, task, data, model


def crossfuse_loop(task_name: str, backbone: str, steps: int, batch_size: int) -> float:
    from crossfuse.task import DataBundle
    from crossfuse.trainer import Trainer

    config, task, data, model = build(task_name, backbone, steps, batch_size)
    # No validation split: the timed part is training only, as in the plain loop.
    trainer = Trainer(task, model, DataBundle(data.train, []), config.train, seed=0, run=None)
    started = time.perf_counter()
    trainer.fit()
    return (time.perf_counter() - started) / steps


def plain_loop(task_name: str, backbone: str, steps: int, batch_size: int) -> float:
    config, task, data, model = build(task_name, backbone, steps, batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=steps)
    from crossfuse.trainer import Preprocessed

    # The same per-sample preprocessing (augmentation included) the trainer applies.
    training = Preprocessed(data.train, list(range(len(data.train))), task, train=True)
    loader = torch.utils.data.DataLoader(training, batch_size=batch_size, shuffle=True, collate_fn=task.collate)
    model.train()
    done = 0
    started = time.perf_counter()
    while done < steps:
        for batch in loader:
            loss = task.training_step(model, batch)  # the task's own loss: the model forward and nothing else
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            done += 1
            if done == steps:
                break
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="finance-sentiment")
    parser.add_argument("--backbone", default="tiny-bert")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    plain_loop(args.task, args.backbone, 3, args.batch_size)  # warm-up: imports, allocator, thread pools
    plain = plain_loop(args.task, args.backbone, args.steps, args.batch_size)
    ours = crossfuse_loop(args.task, args.backbone, args.steps, args.batch_size)
    print(f"{args.task}, backbone {args.backbone}, batch {args.batch_size}, {args.steps} steps, "
          f"{torch.get_num_threads()} threads")
    print(f"plain PyTorch   {plain * 1000:8.1f} ms/step")
    print(f"crossfuse       {ours * 1000:8.1f} ms/step")
    print(f"ratio crossfuse / plain = {ours / plain:.3f}")


if __name__ == "__main__":
    main()
