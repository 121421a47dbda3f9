"""The ``medical-image-report`` task: a radiograph and its referral note, two backbones fused into one head.

Everything about labels, thresholds, metrics and pictures is :class:`~.task.MedicalImagingTask`'s;
this task adds the note. Each sample is an image with the note its source gives (the demo's
``{split}_notes``, a CSV's ``data.note_column``); an image without a note is read with the text
input hidden, as the model learnt with ``head.modality_dropout``.

Evaluation scores the fused model three ways from one pass of the backbones: both inputs, the
image alone (note hidden) and the note alone (image hidden). Each split's metrics hold the fused
ones as usual plus ``auroc_image``, ``auroc_text`` and a ``modalities`` table per finding; the
report draws them side by side (``modalities.png``). A dedicated one-input model is one
``--set head.inputs=[image]`` (or ``[text]``) away.

``predict`` takes image files (with ``--note TEXT`` for all of them, or none), folders, and case
tables: a CSV/TSV with image and note columns, or JSON Lines ``{"image": ..., "note": ...}``. An
image without a note is judged at the thresholds chosen on validation with the note hidden.

Calibration (``head.calibration``) follows the same split: the fused outputs, the image-alone and
the note-alone outputs each get their own scaling fitted on validation (:mod:`.scaling`), so an
image without a note gets probabilities calibrated for the image alone, compared with thresholds
chosen on those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from crossfuse.errors import DataError
from crossfuse.task import DataBundle, expand_inputs

from . import predictions
from .config import FusionHeadConfig, ReportPredictOptions, check_head_config
from .fusion import FusionClassifier, modality_dropout
from .images import FILE_EXTENSIONS, MedicalImage, input_image
from .metrics import auroc, choose_thresholds
from .samples import CASE_TABLES, Example, read_cases
from .scaling import Scaling, new_scaling, scaling_state
from .task import MedicalImagingTask

METHOD = ("one model, one pass of the backbones: fused = both inputs; image = the note hidden; text = the image "
          "hidden (as head.modality_dropout hides them in training)")


class MedicalImageReportTask(MedicalImagingTask):
    """Findings from a medical image and the free-text referral note that came with it."""

    name = "medical-image-report"
    modality = "image+text"
    inputs = {"image": "image", "text": "text"}
    default_backbones = {"image": "resnet18", "text": "all-minilm-l6-v2"}
    HeadConfig = FusionHeadConfig
    PredictOptions = ReportPredictOptions
    input_extensions = FILE_EXTENSIONS + CASE_TABLES

    def __init__(self, config: Any):
        super().__init__(config)
        self.alone_thresholds: dict[str, list[float | None]] = {}  # "image", "text": chosen with the other hidden
        self.alone_scaling: dict[str, Scaling] = {}  # "image", "text": fitted with the other hidden

    # -- data ----------------------------------------------------------------------------------
    def check_config(self) -> None:
        super().check_config()
        check_head_config(self.config.head)

    def prepare(self, data: DataBundle) -> DataBundle:
        prepared = super().prepare(data)
        self.alone_scaling = {}
        if "text" in self.config.head.inputs and not any(example.note for example in prepared.train):
            raise DataError("the training images come without referral notes, which this task reads next to each "
                            "image: a MedMNIST .npz needs {split}_notes arrays, a CSV a note column "
                            f"(data.note_column: {self.config.data.note_column!r}). For images alone, run "
                            "medical-imaging (or set head.inputs=[image])")
        return prepared

    image_backbone_key = "backbones.image"

    def image_backbone_config(self) -> Any:
        return self.config.backbones["image"]

    # -- samples to batches --------------------------------------------------------------------
    def preprocess(self, sample: Example, train: bool) -> tuple[torch.Tensor, Any, str]:
        image, target = super().preprocess(sample, train)
        return image, target, sample.note or ""

    def collate(self, items: list[tuple[Any, ...]]) -> dict[str, Any]:
        batch = super().collate(items)
        notes = [item[2] for item in items]
        batch.update(self.tokenize(notes))
        # Both present, except a missing note: the text input is then hidden.
        batch["keep"] = torch.tensor([[1.0, float(bool(note.strip()))] for note in notes])
        return batch

    # -- state ---------------------------------------------------------------------------------
    def calibrate(self, outputs: dict[str, Any], samples: Sequence[Any]) -> None:
        """Scaling and thresholds for both inputs, and for each input alone (used when a note is missing)."""
        super().calibrate(outputs, samples)
        if "logits_image" not in outputs:
            return
        for name in ("image", "text"):
            self._calibrate_output(self._alone_scaling(name), outputs, f"_{name}")
        if not self._space().uses_sigmoid:
            return
        options, labels = self.config.data, outputs["labels"].numpy()
        self.alone_thresholds = {name: choose_thresholds(outputs[f"probabilities_{name}"].numpy(), labels,
                                                         options.threshold, options.target_sensitivity)
                                 for name in ("image", "text")}

    def _alone_scaling(self, name: str) -> Scaling:
        """The scaling of input ``name`` alone (the identity until calibrate fits it)."""
        if name not in self.alone_scaling:
            self.alone_scaling[name] = new_scaling(self._space(), self.config.head.calibration)
        return self.alone_scaling[name]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "alone_thresholds": self.alone_thresholds,
                "alone_calibration": {name: scaling_state(s) for name, s in self.alone_scaling.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.alone_thresholds = state.get("alone_thresholds") or {}
        saved = state.get("alone_calibration") or {}  # absent in runs from before calibration: the identity
        self.alone_scaling = {name: self._saved_scaling(value, f"alone_calibration.{name}")
                              for name, value in saved.items()}

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbones: dict[str, Any]) -> FusionClassifier:
        from PIL import Image

        image, text = backbones["image"], backbones["text"]
        self.transform, self.tokenize = image.transform, text.tokenize
        example = None
        if self.config.head.fusion == "cross-attention":  # its image tokens come from a probed feature map
            example = self.transform(Image.new(self.mode, (64, 64))).unsqueeze(0)
        return FusionClassifier(image, text, len(self.output_names), self.config.head, example)

    def _model_inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return batch["images"], batch["input_ids"], batch["attention_mask"]

    def training_logits(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        keep = batch["keep"]
        if len(self.config.head.inputs) == 2:
            keep = modality_dropout(keep, self.config.head.modality_dropout)
        return model(*self._model_inputs(batch), keep=keep)

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        network = getattr(model, "module", model)  # under DDP, evaluation runs on the wrapped module
        features = network.encode(*self._model_inputs(batch))
        keep = batch["keep"].to(batch["images"].device)
        outputs = self._scaling().outputs(network.classify(features, keep))
        if len(self.config.head.inputs) == 2:
            alone = {"image": torch.tensor([1.0, 0.0]), "text": torch.tensor([0.0, 1.0])}
            for name, mask in alone.items():
                scaled = self._alone_scaling(name).outputs(network.classify(features, keep * mask.to(keep.device)))
                outputs[f"logits_{name}"], outputs[f"probabilities_{name}"] = scaled["logits"], scaled["probabilities"]
        if "labels" in batch:
            outputs["labels"] = batch["labels"]
        return outputs

    def export_spec(self, model: Any, batch: dict[str, Any]) -> Any:
        """Both backbones and the fusion head, with the presence flags as an input (:mod:`.export`)."""
        from .export import fusion_spec

        return fusion_spec(self, model, batch)

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        metrics = super().compute_metrics(outputs, samples)
        if "logits_image" not in outputs:
            return metrics
        labels, names = outputs["labels"].numpy(), self.output_names
        table = {}
        for kind, suffix in (("image", "_image"), ("text", "_text"), ("fused", "")):
            # From the logits, at the scaling fitted for that input: validation outputs predate the fit.
            scaling = self._alone_scaling(kind) if suffix else self._scaling()
            scores = auroc(scaling.probabilities({"logits": outputs[f"logits{suffix}"]}), labels, names)
            table[kind] = {"macro": scores["auroc"], "per_class": scores["auroc_per_class"]}
        metrics["auroc_image"], metrics["auroc_text"] = table["image"]["macro"], table["text"]["macro"]
        metrics["modalities"] = {"method": METHOD, "auroc": table}
        return metrics

    # -- use -----------------------------------------------------------------------------------
    def load_input(self, item: str) -> Example:
        return Example(input_image(item))

    def predict_cases(self, inputs: Sequence[str], options: Any) -> list[tuple[str, Example]]:
        """Case tables give their rows; image files and folders get ``--note`` (or no note)."""
        cases: list[tuple[str, Example]] = []
        note = (options.note or "").strip() or None
        for item in inputs:
            path = Path(item)
            if path.is_file() and path.suffix.lower() in CASE_TABLES:
                cases += [(str(image.source), Example(image)) for where, image in read_cases(path, self.config.data)]
                continue
            for file in expand_inputs([item], FILE_EXTENSIONS):
                image = input_image(file)
                cases.append((str(file), Example(MedicalImage(image.source, (), (), image.where, note, image.channels))))
        return cases

    def format_case(self, case: tuple[str, Example], outputs: dict[str, Any]) -> dict[str, Any]:
        """The prediction, at the calibration and thresholds fitted for the inputs it had (a film without
        a note is judged by the image-alone ones), with its note and the inputs used."""
        image = case[1].image
        used = [name for name in self.config.head.inputs if name == "image" or image.note]
        thresholds, scaling, logits = self.thresholds, self._scaling(), outputs["logits"]
        if len(used) == 1 and len(self.config.head.inputs) == 2:
            thresholds = self.alone_thresholds.get(used[0]) or thresholds
            # Its fused logits are the image-alone ones (collate hid the missing note), so are this row's.
            scaling, logits = self._alone_scaling(used[0]), outputs[f"logits_{used[0]}"]
        prediction = predictions.prediction(self._space(), case[0], self.row_probabilities(scaling, logits), thresholds)
        if image.where != case[0]:
            prediction["case"] = image.where  # the table row it came from
        prediction["note"] = image.note
        prediction["inputs"] = used
        return prediction

    def image_backbone(self, model: Any) -> Any:
        return model.image

    def cam_forward(self, model: Any, batch: dict[str, Any], rows: list[int]) -> Any:
        ids, mask, keep = batch["input_ids"][rows], batch["attention_mask"][rows], batch["keep"][rows]
        return lambda images: model(images, ids, mask, keep=keep.to(images.device))

    def explain_more(self, model: Any, batch: dict[str, Any], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Integrated-gradients attributions of the note's tokens toward the most likely finding."""
        from crossfuse.explain import token_attributions

        with_note = [row for row, prediction in enumerate(found) if prediction.get("note")]
        if not with_note or "text" not in self.config.head.inputs:
            return found
        images, keep = batch["images"][with_note], batch["keep"][with_note]
        target = [max(range(len(found[row]["findings"])), key=lambda i: found[row]["findings"][i]["probability"])
                  for row in with_note]

        def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            # Captum tiles the texts once per integration step: tile the images alongside.
            times = len(ids) // len(images)
            return model(images.repeat(times, 1, 1, 1), ids, mask, keep=keep.repeat(times, 1))

        scores = token_attributions(forward, model.text.model.get_input_embeddings(), batch["input_ids"][with_note],
                                    batch["attention_mask"][with_note], target, model.text.tokenizer)
        for row, attributions in zip(with_note, scores):
            found[row]["note_attributions"] = attributions
        return found
