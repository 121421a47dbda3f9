"""The toy task's Trainer in one of several processes, for the distributed tests.

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_toy.py OUT_DIR '{"batch_size": 8, ...}'

Options besides the trainer's: ``dropout`` (false zeroes every dropout), ``nan_at`` ([rank, call]:
that rank's loss is NaN on that training_step call), ``draws`` (record a draw from the global RNG
on the first step of each rank). Rank 0 writes OUT_DIR/result.json.
"""

from __future__ import annotations

import json
import sys

import torch
from torch import nn

from crossfuse.distributed import gather_objects
from crossfuse.trainer import NonFiniteLoss

from toy_task import make_trainer


def main() -> None:
    out, options = sys.argv[1], json.loads(sys.argv[2])
    dropout, nan_at = options.pop("dropout", True), options.pop("nan_at", None)
    trainer = make_trainer(f"{out}/run", **options)
    if not dropout:
        for module in trainer.model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    calls, draws = [], []
    original = trainer.task.training_step

    def training_step(model, batch):
        calls.append(1)
        if not draws:
            draws.append(torch.rand(4).tolist())  # what dropout and augmentation would draw on this rank
        loss = original(model, batch)
        return loss * float("nan") if nan_at == [trainer.dist.rank, len(calls)] else loss

    trainer.task.training_step = training_step
    result = {"world_size": trainer.dist.world_size}
    try:
        state = trainer.fit()
        result.update(step=state.step, skipped=state.skipped_steps, history=state.history)
    except NonFiniteLoss as error:
        result["error"] = str(error)
    weights = {k: v.tolist() for k, v in trainer.model_state().items()}  # whole on rank 0 under FSDP
    result["draws"] = gather_objects(trainer.dist, draws[0] if draws else None)
    result["weights_per_rank"] = gather_objects(trainer.dist, weights)
    if trainer.dist.is_main:
        with open(f"{out}/result.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle)
    trainer.close()


if __name__ == "__main__":
    main()
