"""A test fusion task: a colour patch and a caption, each with its own tiny backbone, one head over both.

The label is whether the patch is red XOR the caption speaks of warmth, so neither input alone
decides it. Registered inline by the tests (``plugin()``), as a third party would through an
entry point; it uses only the public task contract.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from crossfuse import hookimpl
from crossfuse.heads import MLPHead
from crossfuse.task import DataBundle, DataSource, Task

WARM = ["warm", "hot", "sunny"]
COLD = ["cold", "icy", "chilly"]
NAME = "toy-fusion"


@dataclass
class FusionData(DataSource):
    size: int = 64


def make_sample(rng: random.Random) -> tuple[torch.Tensor, str, int]:
    red, warm = rng.random() < 0.5, rng.random() < 0.5
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    image = (torch.rand(3, 16, 16, generator=generator) * 80).to(torch.uint8)
    image[0 if red else 2] += 150
    caption = f"a {rng.choice(WARM if warm else COLD)} day"
    return image, caption, int(red != warm)


class FusionModel(nn.Module):
    def __init__(self, image: nn.Module, text: nn.Module):
        super().__init__()
        self.image, self.text = image, text
        self.head = MLPHead(image.feature_dim + text.feature_dim, 2, hidden=32, dropout=0.0)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.image(images), self.text(input_ids=input_ids, attention_mask=attention_mask)], dim=1)
        return self.head(fused)


class FusionTask(Task):
    name = NAME
    modality = "image+text"
    inputs = {"image": "image", "text": "text"}
    default_backbones = {"image": "tiny-cnn", "text": "tiny-bert"}
    main_metric = "accuracy"
    DataConfig = FusionData

    def __init__(self, config: Any):
        super().__init__(config)
        self.calibrated_on: int | None = None

    def demo_data(self) -> DataBundle:
        rng = random.Random(0)
        samples = [make_sample(rng) for _ in range(self.config.data.size + 48)]
        n = self.config.data.size
        return DataBundle(samples[:n], samples[n:n + 24], samples[n + 24:])

    def load_input(self, item: str) -> tuple[torch.Tensor, str, None]:
        from torchvision.transforms.v2.functional import pil_to_tensor

        from crossfuse.media import load_image

        path, _, caption = item.partition("|")
        return pil_to_tensor(load_image(path)), caption, None

    def build_model(self, backbones: dict[str, Any]) -> FusionModel:
        self.transform, self.tokenize = backbones["image"].transform, backbones["text"].tokenize
        return FusionModel(backbones["image"], backbones["text"])

    def preprocess(self, sample: Any, train: bool) -> Any:
        image, caption, label = sample
        return self.transform(image), caption, label

    def collate(self, items: list[Any]) -> dict[str, Any]:
        images, captions, labels = zip(*items)
        batch = {"images": torch.stack(images), **self.tokenize(list(captions))}
        if labels[0] is not None:
            batch["labels"] = torch.tensor(labels)
        return batch

    def sample_labels(self, samples: list[Any]) -> list[int]:
        return [label for _, _, label in samples]

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(model(batch["images"], batch["input_ids"], batch["attention_mask"]), batch["labels"])

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        logits = model(batch["images"], batch["input_ids"], batch["attention_mask"])
        outputs = {"probabilities": logits.softmax(-1)}
        if "labels" in batch:
            outputs["labels"] = batch["labels"]
        return outputs

    def compute_metrics(self, outputs: dict[str, Any], samples: Any) -> dict[str, Any]:
        predicted = outputs["probabilities"].argmax(-1)
        return {"accuracy": float((predicted == outputs["labels"]).float().mean())}

    def calibrate(self, outputs: dict[str, Any], samples: Any) -> None:
        self.calibrated_on = len(outputs["probabilities"])

    def state_dict(self) -> dict[str, Any]:
        return {"calibrated_on": self.calibrated_on}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calibrated_on = state["calibrated_on"]

    def format_prediction(self, item: str, outputs: dict[str, Any]) -> dict[str, Any]:
        probabilities = outputs["probabilities"].tolist()
        return {"input": item, "label": int(probabilities[1] > probabilities[0]), "probabilities": probabilities}


class _Plugin:
    @hookimpl
    def register_tasks(self, register):
        register(NAME, FusionTask, modality="image+text", description="test fusion task")


def plugin() -> Any:
    """The plugin object tests register with ``get_plugin_manager().register_plugin(plugin(), "toy")``."""
    return _Plugin()


def write_patch(path: Path, red: bool) -> Path:
    """A 16x16 PNG patch, red or blue."""
    from PIL import Image

    Image.new("RGB", (16, 16), (230, 20, 20) if red else (20, 20, 230)).save(path)
    return path
