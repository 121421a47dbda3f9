"""The ``finance-sentiment`` task: a text backbone + classification head over financial news."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from crossfuse.errors import ConfigError, DataError
from crossfuse.heads import BackboneWithHead, build_head
from crossfuse.plugins import get_plugin_manager
from crossfuse.task import DataBundle, Task

from .data import EXTENSION_FORMATS, TextExample, guess_format
from .metrics import classification_metrics, confident_errors, tfidf_baseline
from .report import draw_confusion_matrices

DEMO_PACKAGE = "crossfuse_finance"


@dataclass
class FinanceData:
    """``data`` section. With only ``train`` given, ``split`` carves validation and test out of it."""

    format: str = "demo"  # demo, auto (by extension), or a registered dataset format: phrasebank, csv, ...
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: Optional[str] = None
    labels: list[str] = field(default_factory=lambda: ["negative", "neutral", "positive"])
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])


@dataclass
class FinanceHead:
    """``head`` section: classifier on the pooled text features."""

    type: Literal["linear", "mlp"] = "linear"
    hidden: int = 256
    dropout: float = 0.1
    label_smoothing: float = 0.0


class FinanceSentimentTask(Task):
    """Classify financial sentences as negative, neutral or positive (labels configurable)."""

    name = "finance-sentiment"
    modality = "text"
    default_backbone = "all-minilm-l6-v2"
    main_metric = "macro_f1"
    DataConfig = FinanceData
    HeadConfig = FinanceHead

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        options: FinanceData = self.config.data
        if options.format == "demo":
            root = importlib.resources.files(DEMO_PACKAGE) / "demo_data"
            train, validation, test = (self._read(root / f"{n}.csv", "csv") for n in ("train", "validation", "test"))
        else:
            if not options.train:
                raise ConfigError(f"data.format={options.format!r} needs data.train (a file path)")
            train = self._read(options.train, options.format)
            validation = self._read(options.validation, options.format) if options.validation else None
            test = self._read(options.test, options.format) if options.test else None
            train, validation, test = self._carve(train, validation, test)
        for name, split in (("train", train), ("validation", validation)):
            if not split:
                raise DataError(f"the {name} split is empty: check data.{name} and data.split")
        if len({label for _, label in train}) < 2:
            raise DataError("the train split holds a single label; a classifier needs at least two "
                            f"(labels: {', '.join(options.labels)})")
        return DataBundle(train, validation, test, info={"labels": list(options.labels)})

    def load_eval_data(self, path: str) -> list[tuple[str, int]]:
        # A known extension says what the file is, whatever format the run trained on.
        known = Path(path).suffix.lower() in EXTENSION_FORMATS
        data_format = "auto" if known or self.config.data.format == "demo" else self.config.data.format
        samples = self._read(path, data_format)
        if not samples:
            raise DataError(f"{path}: no examples found")
        return samples

    def _read(self, path: Any, data_format: str) -> list[tuple[str, int]]:
        """Read a file with the registered reader for ``data_format``; map labels to ids."""
        if data_format == "auto":
            data_format = guess_format(path)
        reader = get_plugin_manager().datasets.get(data_format).load()
        examples: list[TextExample] = reader(path, self.config.data)
        if not examples:
            raise DataError(f"{path}: no examples found (empty dataset)")
        index = {label.lower(): i for i, label in enumerate(self.config.data.labels)}
        samples = []
        for example in examples:
            label_id = index.get(example.label.lower())
            if label_id is None:
                raise DataError(f"{example.where}: unknown label {example.label!r}; expected one of "
                                f"{', '.join(self.config.data.labels)} (set data.labels to change them)")
            samples.append((example.text, label_id))
        return samples

    def _carve(self, train: list, validation: list | None, test: list | None) -> tuple[list, list, list | None]:
        """Stratified, seeded validation/test splits out of ``train`` where files were not given."""
        from sklearn.model_selection import train_test_split

        fractions = self.config.data.split
        if len(fractions) != 3 or any(f < 0 for f in fractions) or fractions[0] <= 0:
            raise ConfigError(f"data.split must be three non-negative fractions [train, validation, test] with "
                              f"train > 0, got {fractions}")
        total = sum(fractions)
        for name, fraction, given in (("test", fractions[2], test), ("validation", fractions[1], validation)):
            if given is not None or fraction == 0:
                continue
            labels = [label for _, label in train]
            size = fraction / total
            carved, classes = round(size * len(train)), len(set(labels))
            # Stratify when every label can appear on both sides; tiny datasets fall back to a plain split.
            enough = min(np.bincount(labels)[np.unique(labels)]) >= 2 and min(carved, len(train) - carved) >= classes
            stratify = labels if enough else None
            if carved < 1 or carved >= len(train):
                raise DataError(f"data.split {fractions} leaves no {name} rows out of {len(train)}; give "
                                f"data.{name} or more data")
            train, carved = train_test_split(train, test_size=size, random_state=self.config.seed, stratify=stratify)
            total -= fraction
            if name == "test":
                test = carved
            else:
                validation = carved
        return train, validation or [], test

    def collate(self, samples: Sequence[tuple[str, int]]) -> dict[str, Any]:
        texts, labels = zip(*samples)
        return {"inputs": self.tokenize(list(texts)), "labels": torch.tensor(labels, dtype=torch.long)}

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> BackboneWithHead:
        if getattr(backbone, "modality", None) != "text":
            raise ConfigError(f"finance-sentiment needs a text backbone; {self.config.backbone.name!r} is "
                              f"{getattr(backbone, 'modality', 'unknown')} (see `crossfuse list backbones`)")
        self.tokenize = backbone.tokenize
        head = self.config.head
        return BackboneWithHead(backbone, build_head(head.type, backbone.feature_dim, len(self.config.data.labels),
                                                     hidden=head.hidden, dropout=head.dropout))

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        logits = model(**batch["inputs"])
        return F.cross_entropy(logits.float(), batch["labels"], label_smoothing=self.config.head.label_smoothing)

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"probabilities": model(**batch["inputs"]).float().softmax(-1), "labels": batch["labels"]}

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        probabilities = outputs["probabilities"].numpy()
        metrics = classification_metrics(outputs["labels"].numpy(), probabilities, self.config.data.labels)
        metrics["confident_errors"] = confident_errors(samples, probabilities, self.config.data.labels)
        return metrics

    # -- use -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: Any, inputs: list[str], options: Any = None, batch_size: int = 64) -> list[dict[str, Any]]:
        model.eval()
        device = next(model.parameters()).device
        labels = self.config.data.labels
        results = []
        for start in range(0, len(inputs), batch_size):
            encoded = {k: v.to(device) for k, v in self.tokenize(inputs[start:start + batch_size]).items()}
            for text, row in zip(inputs[start:start + batch_size], model(**encoded).float().softmax(-1).cpu().tolist()):
                best = int(np.argmax(row))
                results.append({"input": text, "label": labels[best],
                                "probabilities": {label: round(p, 4) for label, p in zip(labels, row)}})
        return results

    def baseline(self, data: DataBundle) -> dict[str, Any]:
        return tfidf_baseline(data.train, data.splits(), self.config.data.labels, seed=self.config.seed)

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        return draw_confusion_matrices(report, run_dir)
