"""The ``finance-sentiment`` task: a text backbone + classification head over financial news."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from crossfuse.calibration import TemperatureScaling
from crossfuse.datasets import Splits
from crossfuse.distill import softmax_distillation
from crossfuse.errors import ConfigError, DataError
from crossfuse.heads import BackboneWithHead, build_head
from crossfuse.metrics import classification_metrics
from crossfuse.pictures import draw_confusion_matrices, draw_reliability_diagrams
from crossfuse.task import ClassifierHead, DataBundle, DataSource, Task

from .data import TextExample, read_csv
from .metrics import confident_errors, tfidf_baseline

DEMO_PACKAGE = "crossfuse_finance"


@dataclass
class FinanceData(DataSource):
    """``data`` section. With only ``train`` given, validation and test are carved out of it, stratified."""

    test_fraction: float = 0.1
    text_column: str = "text"
    label_column: str = "label"
    encoding: str | None = None
    labels: list[str] = field(default_factory=lambda: ["negative", "neutral", "positive"])


@dataclass
class FinanceHead(ClassifierHead):
    """``head`` section: classifier on the pooled text features (type, hidden, dropout, label_smoothing)."""

    temperature_scaling: bool = True  # fit a temperature on validation: predict prints calibrated probabilities


@dataclass
class FinancePredictOptions:
    """Options of ``crossfuse predict`` for a finance run."""

    batch_size: int = field(default=64, metadata={"help": "texts per forward pass"})


class FinanceSentimentTask(Task):
    """Classify financial sentences as negative, neutral or positive (labels configurable)."""

    name = "finance-sentiment"
    modality = "text"
    default_backbone = "all-minilm-l6-v2"
    main_metric = "macro_f1"
    DataConfig = FinanceData
    HeadConfig = FinanceHead
    PredictOptions = FinancePredictOptions

    def __init__(self, config: Any):
        super().__init__(config)
        # The softmax temperature, fitted on validation after training (head.temperature_scaling).
        self.temperature = TemperatureScaling(config.head.temperature_scaling)

    @property
    def label_names(self) -> list[str]:
        """The class names, in the order of the model's outputs."""
        return list(self.config.data.labels)

    # -- data ----------------------------------------------------------------------------------
    def demo_data(self) -> Splits:
        paths = self.demo_paths()
        return Splits(*(read_csv(paths[name]) for name in ("train", "validation", "test")))

    def demo_paths(self) -> dict[str, str]:
        root = importlib.resources.files(DEMO_PACKAGE) / "demo_data"
        return {name: str(root / f"{name}.csv") for name in ("train", "validation", "test")}

    def prepare(self, data: DataBundle) -> DataBundle:
        train, validation = self._ids(data.train), self._ids(data.validation)
        test = self._ids(data.test) if data.test else None
        for name, split in (("train", train), ("validation", validation)):
            if not split:
                raise DataError(f"the {name} split is empty: check data.{name} and data.validation_fraction")
        if len({label for _, label in train}) < 2:
            raise DataError("the train split holds a single label; a classifier needs at least two "
                            f"(labels: {', '.join(self.label_names)})")
        return DataBundle(train, validation, test, info={"labels": self.label_names})

    def prepare_eval(self, samples: Sequence[Any]) -> list[tuple[str, int]]:
        return self._ids(samples)

    def _ids(self, examples: Sequence[Any]) -> list[tuple[str, int]]:
        """``TextExample`` items as ``(text, label id)``; an unknown label names where it was found."""
        index = {label.lower(): i for i, label in enumerate(self.label_names)}
        samples = []
        for example in examples:
            if not isinstance(example, TextExample):  # already (text, id), e.g. a carved split
                samples.append(example)
                continue
            label_id = index.get(example.label.lower())
            if label_id is None:
                raise DataError(f"{example.where}: unknown label {example.label!r}; expected one of "
                                f"{', '.join(self.label_names)} (set data.labels to change them)")
            samples.append((example.text, label_id))
        return samples

    def split_off(self, samples: list[Any], fraction: float, name: str) -> tuple[list[Any], list[Any]]:
        """Stratified by label when every label can appear on both sides; tiny data splits plainly."""
        from sklearn.model_selection import train_test_split

        if not 0 < fraction < 1:
            raise ConfigError(f"data.{name}_fraction must be in (0, 1) to carve a {name} split out of data.train, "
                              f"got {fraction}; or give data.{name}")
        labels = [self._ids([example])[0][1] for example in samples]
        carved, classes = round(fraction * len(samples)), len(set(labels))
        if carved < 1 or carved >= len(samples):
            raise DataError(f"data.{name}_fraction={fraction} leaves no {name} rows out of {len(samples)}; give "
                            f"data.{name} or more data")
        enough = min(np.bincount(labels)[np.unique(labels)]) >= 2 and min(carved, len(samples) - carved) >= classes
        rest, held = train_test_split(samples, test_size=fraction, random_state=self.config.seed,
                                      stratify=labels if enough else None)
        return rest, held

    def load_input(self, item: str) -> tuple[str, None]:
        return (item, None)

    def sample_labels(self, samples: Sequence[tuple[str, int]]) -> list[int]:
        return [label for _, label in samples]

    def collate(self, samples: Sequence[tuple[str, int | None]]) -> dict[str, Any]:
        texts, labels = zip(*samples)
        batch = {"inputs": self.tokenize(list(texts))}
        if all(label is not None for label in labels):  # predict inputs carry no label
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.label_names, "temperature": self.temperature.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("labels") and state["labels"] != self.label_names:
            raise DataError(f"{self.run_dir}: task_state.json lists labels {state['labels']} but config.yaml "
                            f"{self.label_names}; the run folder was edited by hand")
        self.temperature.value = float(state.get("temperature", 1.0))

    def calibrate(self, outputs: dict[str, Any], samples: Sequence[Any]) -> None:
        """Temperature scaling on the validation logits (``head.temperature_scaling``)."""
        self.temperature.fit(outputs)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> BackboneWithHead:
        self.tokenize = backbone.tokenize
        head = self.config.head
        return BackboneWithHead(backbone, build_head(head.type, backbone.feature_dim, len(self.label_names),
                                                     hidden=head.hidden, dropout=head.dropout))

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        logits = model(**batch["inputs"])
        return F.cross_entropy(logits.float(), batch["labels"], label_smoothing=self.config.head.label_smoothing)

    def distillation_step(self, model: Any, batch: dict[str, Any], teacher: dict[str, Any], distill: Any) -> torch.Tensor:
        """The labels' cross-entropy blended with the teacher's softened class distribution (raw logits:
        the teacher's fitted temperature is for reporting, not for teaching)."""
        return softmax_distillation(model(**batch["inputs"]), batch["labels"], teacher["logits"], distill,
                                    self.config.head.label_smoothing)

    def check_teacher(self, teacher: Task) -> None:
        if teacher.label_names != self.label_names:
            raise ConfigError(f"distill.teacher {teacher.run_dir}: its labels {teacher.label_names} differ from this "
                              f"run's {self.label_names} (data.labels)")

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        outputs = self.temperature.outputs(model(**batch["inputs"]))
        if "labels" in batch:
            outputs["labels"] = batch["labels"]
        return outputs

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        probabilities = self.temperature.probabilities(outputs)
        metrics = classification_metrics(outputs["labels"].numpy(), probabilities, self.label_names)
        metrics.update(self.temperature.metrics(outputs))
        metrics["confident_errors"] = confident_errors(samples, probabilities, self.label_names)
        return metrics

    # -- use -------------------------------------------------------------------------------
    def format_prediction(self, item: str, outputs: dict[str, Any]) -> dict[str, Any]:
        row = outputs["probabilities"].tolist()
        return {"input": item, "label": self.label_names[int(np.argmax(row))],
                "probabilities": {label: round(p, 4) for label, p in zip(self.label_names, row)}}

    def explain(self, model: Any, inputs: list[str], options: Any, output_dir: Path) -> list[dict[str, Any]]:
        """Predictions with integrated-gradients token attributions toward the predicted label."""
        from crossfuse.explain import token_attributions

        backbone = model.backbone
        results = []
        for chunk in [inputs[i:i + options.batch_size] for i in range(0, len(inputs), options.batch_size)]:
            with torch.no_grad():
                predictions = self.predict(model, chunk, options)
            encoded = {k: v.to(next(model.parameters()).device) for k, v in self.tokenize(chunk).items()}
            target = [self.label_names.index(p["label"]) for p in predictions]
            scores = token_attributions(lambda ids, mask: model(input_ids=ids, attention_mask=mask),
                                        backbone.model.get_input_embeddings(), encoded["input_ids"],
                                        encoded["attention_mask"], target, backbone.tokenizer)
            results += [{**p, "attributions": s} for p, s in zip(predictions, scores)]
        return results

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        line = super().describe_prediction({k: v for k, v in prediction.items() if k != "attributions"})
        if "attributions" not in prediction:
            return line
        top = sorted(prediction["attributions"], key=lambda pair: -abs(pair[1]))[:5]
        return line + "\tdriven by: " + ", ".join(f"{token} {score:+.3f}" for token, score in top)

    def baseline(self, data: DataBundle) -> dict[str, Any]:
        return tfidf_baseline(data.train, data.splits(), self.label_names, seed=self.config.seed)

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        return draw_confusion_matrices(report, run_dir) + draw_reliability_diagrams(report, run_dir)
