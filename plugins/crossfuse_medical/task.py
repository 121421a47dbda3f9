"""The ``medical-imaging`` task: an image backbone and a classifier for findings on medical images.

Data reach the task through the dataset registry (:mod:`.formats`) or the synthetic demo
(:mod:`.synth`). :meth:`MedicalImagingTask.prepare` infers the problem from the training labels
(binary, multi-class or multi-label, :mod:`.labels`), encodes every split against it (a bad label
stops the run before anything is written), and picks grey or colour input. The loss follows the
problem: cross-entropy for multi-class, BCE with logits (``pos_weight`` = negatives / positives of
each output in training) otherwise. After training, :meth:`~MedicalImagingTask.calibrate` fits a
post-hoc scaling of the probabilities on validation (:mod:`.scaling`: Platt per sigmoid output, a
temperature for multi-class; ``head.calibration``), then chooses each sigmoid output's operating
threshold on the calibrated validation probabilities (Youden's J or a target sensitivity); the
label space, the scaling, the thresholds and the image mode are the task state saved with the run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.nn import functional as F

from crossfuse.datasets import Splits
from crossfuse.distill import blend, soft_binary_cross_entropy, soft_cross_entropy
from crossfuse.errors import ConfigError, CrossfuseError, DataError, DataWarning
from crossfuse.heads import BackboneWithHead, build_head
from crossfuse.task import DataBundle, Task, batched, expand_inputs, rows

from . import predictions
from .config import ImageHeadConfig, ImagingPredictOptions, MedicalDataConfig, check_data_config
from .images import FILE_EXTENSIONS, image_mode, input_image, to_pil, to_square, window_from_config
from .labels import LabelSpace, infer_label_space
from .metrics import choose_thresholds, medical_metrics
from .samples import Example, encode, sampling_key, stratified_split
from .scaling import Scaling, calibration_metrics, load_scaling, new_scaling, scaling_state, with_calibration
from .synth import demo_path


class MedicalImagingTask(Task):
    """Findings on medical images: binary, multi-class or multi-label, chosen from the data."""

    name = "medical-imaging"
    modality = "image"
    default_backbone = "resnet18"
    main_metric = "auroc"
    DataConfig = MedicalDataConfig
    HeadConfig = ImageHeadConfig
    PredictOptions = ImagingPredictOptions
    input_extensions = FILE_EXTENSIONS

    def __init__(self, config: Any):
        super().__init__(config)
        self.space: LabelSpace | None = None
        self.thresholds: list[float | None] | None = None  # chosen on validation by calibrate()
        self.scaling: Scaling | None = None  # of the probabilities, fitted on validation by calibrate()
        self.mode = "L"  # what the model sees: "L" (grey) or "RGB"
        self.positive_weights: list[float] | None = None
        self.train_counts: dict[str, int] = {}
        self._augment: Any = False  # built on first use (False: not yet)

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        """The core's reading (registry, demo, carved splits), after the config checks the types cannot make."""
        self.check_config()
        return super().load_data()

    def check_config(self) -> None:
        """Refuse unusable ``data`` (and ``head``) values before any file is read."""
        check_data_config(self.config.data)

    def demo_data(self) -> Splits:
        """The cached synthetic radiographs (``data.demo``), read by the MedMNIST reader like any ``.npz``."""
        return self.read(self.demo_paths()["train"], format="medmnist", key="the demo data")

    def demo_paths(self) -> dict[str, str]:
        path = str(demo_path(self.config.data.demo))
        return {"train": path, "validation": path, "test": path}

    def split_off(self, samples: list[Any], fraction: float, name: str) -> tuple[list[Any], list[Any]]:
        """Stratified by class (multi-label: by combination of findings, rare ones pooled)."""
        return stratified_split(samples, fraction, name, self.config.seed)

    def prepare(self, data: DataBundle) -> DataBundle:
        """Infer the label space from training, encode every split, choose grey or colour input."""
        options = self.config.data
        space = infer_label_space(data.train, options.problem, options.positive_class)
        train, validation = encode(space, data.train, "train"), encode(space, data.validation, "validation")
        test = encode(space, data.test, "test") if data.test else None
        if not validation:
            raise DataError("the validation split is empty: give data.validation, or a source with its own "
                            "validation split, or raise data.validation_fraction")
        self.space, self.thresholds = space, None
        self.scaling = new_scaling(space, self.config.head.calibration)
        self.mode = image_mode(data.train, options.channels)
        self._fit_backbone_channels()
        self.positive_weights = space.positive_weights(data.train)
        self.train_counts = space.counts(data.train, "train")
        info = {"problem": space.kind, "classes": list(space.classes), "train_counts": self.train_counts}
        return DataBundle(train, validation, test, info=info)

    def prepare_eval(self, samples: Sequence[Any]) -> list[Example]:
        self.check_config()
        return encode(self._space(), list(samples), "evaluation")

    def _fit_backbone_channels(self) -> None:
        """Colour data, or a transformers image model, on the default 1-channel backbone: take 3 channels.

        Runs before the core builds the backbone, and the saved config keeps the choice.
        """
        from crossfuse.backbones import resolve_source

        section, key = self.image_backbone_config(), f"{self.image_backbone_key}.in_channels=3"
        if section.in_channels != 1:
            return
        if self.mode == "RGB":
            warnings.warn(DataWarning(f"the images are in colour, so the image backbone takes 3 channels ({key}); "
                                      f"set data.channels=grey to read them as grey"), stacklevel=2)
            section.in_channels = 3
        elif section.name and resolve_source(section.name)[0] in ("hf", "local"):
            warnings.warn(DataWarning(f"{section.name} is a transformers image model, which takes RGB: the grey "
                                      f"images are copied to 3 channels ({key})"), stacklevel=2)
            section.in_channels = 3

    image_backbone_key = "backbone"  # where the image backbone is configured

    def image_backbone_config(self) -> Any:
        """The config section of the image backbone (``backbone``; ``backbones.image`` for fusion)."""
        return self.config.backbone

    def sample_labels(self, samples: Sequence[Example]) -> list[Any]:
        space = self._space()
        return [sampling_key(example, space) for example in samples]

    def _space(self) -> LabelSpace:
        if self.space is None:
            raise CrossfuseError(f"task {self.name!r} has no label space: the run's task_state.json is missing "
                                 f"(a run from before the medical plugin saved one); train it again")
        return self.space

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        options = self.config.data
        return {"label_space": self._space().to_dict(), "image_mode": self.mode, "thresholds": self.thresholds,
                "threshold_rule": options.threshold,
                **({"target_sensitivity": options.target_sensitivity} if options.threshold == "sensitivity" else {}),
                "positive_weights": self.positive_weights, "train_counts": self.train_counts,
                "calibration": scaling_state(self._scaling())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "label_space" not in state:
            raise CrossfuseError(f"{self.run_dir}: task_state.json has no label_space; the run folder is "
                                 f"incomplete or from another task")
        self.space = LabelSpace.from_dict(state["label_space"])
        self.mode = state.get("image_mode", "L")
        self.thresholds = state.get("thresholds")
        self.positive_weights = state.get("positive_weights")
        self.train_counts = state.get("train_counts") or {}
        self.scaling = self._saved_scaling(state.get("calibration"), "calibration")

    def _saved_scaling(self, state: dict[str, Any] | None, key: str) -> Scaling:
        """A scaling from ``task_state.json``'s ``key`` (absent in runs from before calibration: the identity)."""
        return load_scaling(self._space(), self.config.head.calibration, state, f"{self.run_dir}/task_state.json: {key}")

    def _scaling(self) -> Scaling:
        if self.scaling is None:
            self.scaling = new_scaling(self._space(), self.config.head.calibration)
        return self.scaling

    def calibrate(self, outputs: dict[str, Any], samples: Sequence[Any]) -> None:
        """Fit the probability scaling on the validation outputs, then choose each sigmoid output's
        operating threshold on the calibrated probabilities (the scaling is monotone per output, so
        the operating point keeps its sensitivity and specificity)."""
        self._calibrate_output(self._scaling(), outputs, "")
        if not self._space().uses_sigmoid:
            return
        options = self.config.data
        self.thresholds = choose_thresholds(outputs["probabilities"].numpy(), outputs["labels"].numpy(),
                                            options.threshold, options.target_sensitivity)
        undefined = [name for name, t in zip(self.output_names, self.thresholds) if t is None]
        if undefined:
            warnings.warn(DataWarning(f"the validation split has no positive or no negative of {', '.join(undefined)}: "
                                      f"no threshold could be chosen there, 0.5 is used"), stacklevel=2)

    @staticmethod
    def _calibrate_output(scaling: Scaling, outputs: dict[str, Any], suffix: str) -> None:
        """Fit ``scaling`` on ``outputs["logits" + suffix]`` and replace ``outputs["probabilities" + suffix]``
        by the calibrated ones: the validation outputs were collected before the fit, and what is
        scored after calibrate (thresholds, registered ``eval.metrics``) must see what predict prints."""
        split = {"logits": outputs[f"logits{suffix}"], "labels": outputs["labels"]}
        scaling.fit(split)
        outputs[f"probabilities{suffix}"] = torch.from_numpy(scaling.probabilities(split))

    @property
    def output_names(self) -> list[str]:
        """One name per model output (binary: the positive class)."""
        return list(self._space().outputs)

    @property
    def label_names(self) -> list[str]:
        """The class or finding names (what registered metrics such as ``classification`` name)."""
        return list(self._space().classes)

    # -- samples to batches --------------------------------------------------------------------
    def picture(self, image: Any) -> Any:
        """A sample's pixels as the model sees them before its transform: a square PIL image in the run's mode."""
        return to_square(to_pil(image, self.mode, window_from_config(self.config.data)), self.config.data.resize)

    def augmentation(self) -> Any:
        """The training augmentation (``data.augment``), or None when every step is off."""
        if self._augment is False:
            from crossfuse.augment import image_augmentation

            self._augment = image_augmentation(self.config.data.augment)
        return self._augment

    def preprocess(self, sample: Example, train: bool) -> tuple[torch.Tensor, Any]:
        picture = self.picture(sample.image)
        if train and self.augmentation() is not None:
            picture = self.augmentation()(picture)
        return self.transform(picture), sample.target

    def collate(self, items: list[tuple[Any, ...]]) -> dict[str, Any]:
        batch = {"images": torch.stack([item[0] for item in items])}
        targets = [item[1] for item in items]
        if all(target is not None for target in targets):
            batch["labels"] = self.label_tensor(targets)
        return batch

    def label_tensor(self, targets: Sequence[tuple[int, ...]]) -> torch.Tensor:
        """Class ids ``[B]`` (multi-class) or 0/1 floats ``[B, C]`` (sigmoid outputs)."""
        if self._space().uses_sigmoid:
            return torch.tensor(targets, dtype=torch.float32)
        return torch.tensor([target[0] for target in targets], dtype=torch.long)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> BackboneWithHead:
        self.transform = backbone.transform
        head = self.config.head
        return BackboneWithHead(backbone, build_head(head.type, backbone.feature_dim, len(self.output_names),
                                                     hidden=head.hidden, dropout=head.dropout))

    def fresh_parameters(self, model: Any) -> list[Any]:
        """The head, and every backbone that starts from random weights (``pretrained: false`` without
        ``weights`` or ``init_from``): with ``train.head_lr`` they learn at the head's rate while a
        pretrained backbone (the fusion task's text encoder) keeps the gentler ``train.lr``."""
        fresh = list(super().fresh_parameters(model))
        sections = self.config.backbones or {"backbone": self.config.backbone}
        for name, section in sections.items():
            if name in self.backbones and not (section.pretrained or section.weights or section.init_from):
                fresh += list(self.backbones[name].parameters())
        return fresh

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (multi-class) or BCE with logits, ``pos_weight`` from the training labels."""
        logits = logits.float()
        if not self._space().uses_sigmoid:
            return F.cross_entropy(logits, labels)
        weight = None
        if self.config.head.pos_weight and self.positive_weights:
            weight = torch.tensor(self.positive_weights, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Raw (unscaled) probabilities: sigmoid per output, or softmax over the classes."""
        logits = logits.float()
        return logits.sigmoid() if self._space().uses_sigmoid else logits.softmax(-1)

    def training_logits(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        """The model's raw outputs for a training batch (what :meth:`loss` scores)."""
        return model(images=batch["images"])

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        return self.loss(self.training_logits(model, batch), batch["labels"])

    def distillation_step(self, model: Any, batch: dict[str, Any], teacher: dict[str, Any], distill: Any) -> torch.Tensor:
        """The task's loss blended with the teacher's softened probabilities: per finding for sigmoid
        outputs, over the classes for softmax ones.

        The teacher's *raw* outputs teach (its logits, not its calibrated probabilities): the student
        learns the teacher's model, with the same ``pos_weight`` loss beside it, and is calibrated on
        its own validation split afterwards."""
        logits = self.training_logits(model, batch)
        if self._space().uses_sigmoid:
            soft = soft_binary_cross_entropy(logits, self.probabilities(teacher["logits"]), distill.temperature)
        else:
            soft = soft_cross_entropy(logits, teacher["logits"], distill.temperature)
        return blend(self.loss(logits, batch["labels"]), soft, distill.alpha)

    def check_teacher(self, teacher: Task) -> None:
        mine, theirs = self._space(), teacher._space()
        if (theirs.outputs, theirs.uses_sigmoid) != (mine.outputs, mine.uses_sigmoid):
            kind = {True: "sigmoid", False: "softmax"}
            raise ConfigError(f"distill.teacher {teacher.run_dir}: it predicts {list(theirs.outputs)} "
                              f"({kind[theirs.uses_sigmoid]}), this run {list(mine.outputs)} ({kind[mine.uses_sigmoid]})")

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``logits`` (raw: what distillation reads) and calibrated ``probabilities`` (what predict prints)."""
        outputs = self._scaling().outputs(model(images=batch["images"]))
        if "labels" in batch:
            outputs["labels"] = batch["labels"]
        return outputs

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        """:func:`~.metrics.medical_metrics` of the calibrated probabilities, with the ECE before and after
        scaling (:func:`~.scaling.calibration_metrics`)."""
        thresholds = self.thresholds if self._space().uses_sigmoid else None
        bins = self.config.data.calibration_bins
        metrics = medical_metrics(self._scaling().probabilities(outputs), outputs["labels"].numpy(), self.output_names,
                                  thresholds, bins=bins)
        return with_calibration(metrics, calibration_metrics(self._scaling(), outputs, self.output_names, bins))

    def export_spec(self, model: Any, batch: dict[str, Any]) -> Any:
        """The whole model (the core's default export), its logits described with the scaling that turns
        them into the run's probabilities."""
        from crossfuse.export import spec_from_call

        from .scaling import LOGITS_MEANING, SCALING_NOTE

        spec = spec_from_call(self, model, batch)
        spec.outputs = {name: LOGITS_MEANING for name in spec.output_names}
        spec.left_out = f"nothing of the model. {SCALING_NOTE}"
        return spec

    # -- use -----------------------------------------------------------------------------------
    def load_input(self, item: str) -> Example:
        return Example(input_image(item))

    def predict_cases(self, inputs: Sequence[str], options: Any) -> list[tuple[str, Example]]:
        """``(name, example)`` per image to predict: files named, and those in the folders named."""
        return [(str(path), Example(input_image(path))) for path in expand_inputs(list(inputs), FILE_EXTENSIONS)]

    def predict(self, model: Any, inputs: list[Any], options: Any) -> list[dict[str, Any]]:
        cases = self.predict_cases(inputs, options)
        results = []
        for chunk in batched(cases, options.batch_size):
            outputs = self.run_batch(model, [example for _, example in chunk])
            results += [self.format_case(case, row) for case, row in zip(chunk, rows(outputs, len(chunk)))]
        return results

    def format_case(self, case: tuple[str, Example], outputs: dict[str, Any]) -> dict[str, Any]:
        """The prediction of one case (its row of the outputs)."""
        return self.format_prediction(case[0], outputs)

    def format_prediction(self, item: str, outputs: dict[str, Any]) -> dict[str, Any]:
        return predictions.prediction(self._space(), item, self.row_probabilities(self._scaling(), outputs["logits"]),
                                      self.thresholds)

    @staticmethod
    def row_probabilities(scaling: Scaling, logits: torch.Tensor) -> list[float]:
        """One case's calibrated probabilities from its logits, computed as :meth:`compute_metrics` does (the
        core hands predict float32 outputs; Platt probabilities are float64 there), so a case on a
        threshold is judged as in the report."""
        return scaling.probabilities({"logits": logits[None]})[0].tolist()

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        return predictions.describe(prediction)

    def explain(self, model: Any, inputs: list[Any], options: Any, output_dir: Path) -> list[dict[str, Any]]:
        """Predictions with a Grad-CAM heat map per explained finding (``--heatmaps``), written into
        ``output_dir``; each prediction's ``heatmaps`` maps the finding to its picture."""
        from crossfuse.explain import save_heatmap
        from crossfuse.outputs import move_to

        from .explain import cam_layer, explained_outputs, for_display, heatmap_name, heatmaps

        cases = self.predict_cases(inputs, options)
        device = next(model.parameters()).device
        layer, results = None, []
        for start in range(0, len(cases), options.batch_size):
            chunk = cases[start:start + options.batch_size]
            with torch.no_grad():
                outputs = self.run_batch(model, [example for _, example in chunk])
            found = [self.format_case(case, row) for case, row in zip(chunk, rows(outputs, len(chunk)))]
            batch = move_to(self.collate([self.preprocess(example, train=False) for _, example in chunk]), device)
            layer = layer or cam_layer(self.image_backbone(model), batch["images"][:1])
            pairs = [(row, index) for row, p in enumerate(found) for index in explained_outputs(p, options.heatmaps)]
            maps = heatmaps(self.cam_forward(model, batch, [row for row, _ in pairs]), layer, batch["images"], pairs)
            for (row, index), heat in zip(pairs, maps):
                finding = found[row]["findings"][index]["name"]
                name = heatmap_name(start + row + 1, found[row]["input"], finding)
                save_heatmap(for_display(self.picture(chunk[row][1].image)), heat, output_dir / name)
                found[row].setdefault("heatmaps", {})[finding] = str(output_dir / name)
            results += self.explain_more(model, batch, found)
        return results

    def image_backbone(self, model: Any) -> Any:
        """The image backbone inside ``model`` (Grad-CAM reads its feature maps)."""
        return model.backbone

    def cam_forward(self, model: Any, batch: dict[str, Any], rows: list[int]) -> Any:
        """``forward(images)``: the logits Grad-CAM explains, for the images of ``rows`` of ``batch``."""
        return lambda images: model(images=images)

    def explain_more(self, model: Any, batch: dict[str, Any], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hook for subclasses to add explanations of other inputs. Default: as is."""
        return found

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        from .report import draw_report

        return draw_report(report, run_dir)
