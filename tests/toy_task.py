"""A toy task for core tests: classify noisy 2-D points with an MLP. No domain code, no downloads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from crossfuse.task import DataBundle, Task


@dataclass
class ToyData:
    size: int = 96


class ToyBackbone(nn.Module):
    """An MLP with dropout, so resume tests also check the RNG state is restored."""

    modality = "toy"
    feature_dim = 16

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 16), nn.ReLU())

    def forward(self, points):
        return self.net(points)


class ToyTask(Task):
    name = "toy"
    modality = "toy"
    main_metric = "accuracy"
    DataConfig = ToyData

    def load_data(self):
        generator = torch.Generator().manual_seed(0)
        points = torch.randn(self.config.data.size + 64, 2, generator=generator)
        labels = ((points[:, 0] * points[:, 1]) > 0).long()  # XOR-like: needs the hidden layer
        samples = list(zip(points, labels))
        n = self.config.data.size
        return DataBundle(samples[:n], samples[n:n + 32], samples[n + 32:])

    def sample_labels(self, samples):
        return [int(label) for _, label in samples]

    def collate(self, samples):
        points, labels = zip(*samples)
        return {"points": torch.stack(points), "labels": torch.stack(labels)}

    def build_model(self, backbone):
        from crossfuse.heads import BackboneWithHead, LinearHead

        return BackboneWithHead(backbone, LinearHead(backbone.feature_dim, 2, dropout=0.0))

    def training_step(self, model, batch):
        return F.cross_entropy(model(points=batch["points"]), batch["labels"])

    def predict_step(self, model, batch):
        return {"logits": model(points=batch["points"]), "labels": batch["labels"]}

    def compute_metrics(self, outputs, samples):
        predictions = outputs["logits"].argmax(-1)
        return {"accuracy": (predictions == outputs["labels"]).float().mean().item(),
                "loss": F.cross_entropy(outputs["logits"], outputs["labels"]).item()}


def make_trainer(run_dir=None, *, seed=0, callbacks=(), **train_options):
    """A Trainer for the toy task with a fresh, seeded model."""
    from crossfuse.config import RunConfig, TrainConfig
    from crossfuse.runs import RunDir
    from crossfuse.trainer import Trainer, seed_everything

    options = {"epochs": 3, "batch_size": 16, "lr": 0.01, "progress": False, "early_stopping_patience": None,
               **train_options}
    config = RunConfig(task="toy", seed=seed, data=ToyData(), train=TrainConfig(**options))
    task = ToyTask(config)
    data = task.load_data()
    seed_everything(seed)
    model = task.build_model(ToyBackbone())
    run = RunDir(run_dir) if run_dir is not None else None
    if run is not None:
        run.path.mkdir(parents=True, exist_ok=True)
    return Trainer(task, model, data, config.train, seed=seed, run=run, callbacks=callbacks)
