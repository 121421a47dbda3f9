"""The ``security-face-match`` task: face embeddings trained with a margin loss, matched by cosine.

Training is identity classification through an ArcFace / CosFace / softmax head
(:mod:`crossfuse_face.heads`, :mod:`crossfuse_face.model`) on top of a registry image backbone.
Evaluation is the field's: pairs of images of people never seen in training, scored by the
cosine of their L2-normalised embeddings (:mod:`crossfuse_face.metrics`): LFW 10-fold accuracy,
ROC AUC, EER, TAR at fixed FAR, and rank-1 identification. The decision threshold is calibrated
on the validation pairs at ``data.calibration_far`` (:meth:`SecurityFaceMatchTask.calibrate`) and
saved with the run as task state; ``predict`` and ``crossfuse eval`` use it.

Data (:mod:`crossfuse_face.data`) comes through the dataset registry: identity sets with
``data.format``, pairs with ``data.pairs_format``. Galleries for 1:N search live in
:mod:`crossfuse_face.gallery`, explanations in :mod:`crossfuse_face.explain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from crossfuse.augment import image_augmentation
from crossfuse.datasets import Splits
from crossfuse.distill import blend, similarity_matching
from crossfuse.errors import ConfigError, CrossfuseError, DataError
from crossfuse.media import IMAGE_EXTENSIONS, load_image
from crossfuse.runs import RunDir, cached_folder
from crossfuse.task import DataBundle, Task, batched, expand_inputs

from .config import FaceDataConfig, FaceHeadConfig, FacePredictOptions
from .data import (
    PairSet,
    check_images,
    check_pairs_format,
    held_out_fraction,
    hold_out,
    pairs_options,
    pairs_source,
    read_kind,
)
from .gallery import Gallery, describe_matches, enrol, load_gallery, search
from .heads import LOSSES
from .lfw import FaceImage, Pair
from .metrics import calibrate_threshold, rank1, verification, verification_metrics
from .model import FaceModel, normalised_embeddings


class SecurityFaceMatchTask(Task):
    """1:1 verification and 1:N identification of faces."""

    name = "security-face-match"
    modality = "image"
    default_backbone = "resnet18"
    main_metric = "accuracy"
    DataConfig = FaceDataConfig
    HeadConfig = FaceHeadConfig
    PredictOptions = FacePredictOptions
    input_extensions = IMAGE_EXTENSIONS

    def __init__(self, config: Any):
        super().__init__(config)
        self.identities: list[str] = []  # training people, in the margin head's class order
        self.labels: dict[str, int] = {}
        self.operating_point: dict[str, float] | None = None  # calibrated on validation pairs
        self.transform: Any = None
        self.augment: Any = None

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        """Training faces (``data.train`` or the demo), validation and test pairs (given, or drawn
        from held-out training identities)."""
        if self.config.head.loss not in LOSSES:
            raise ConfigError(f"head.loss: unknown loss {self.config.head.loss!r}; choose one of {', '.join(LOSSES)}")
        check_pairs_format(self.name, self.config.data.pairs_format)
        images, test = self._training_faces_and_test()
        people = len({image.identity for image in images})
        if test is None and self.config.data.test_fraction > 0:  # carved first: validation keeps its draw otherwise
            images, test = hold_out(images, self.config.data.test_fraction, self.config.data.validation_pair_count,
                                    self.config.seed + 1, people, "data.test_fraction", "test")
        images, validation = self._validation(images, people)
        return self.prepare(DataBundle(images, PairSet(validation), PairSet(test) if test else None))

    def _training_faces_and_test(self) -> tuple[list[FaceImage], list[Pair] | None]:
        data = self.config.data
        if data.train is None:
            demo = self.demo_data()
            images, test = list(demo.train), demo.test
        else:
            images, test = self._faces(data.train, "data.train"), None
        path, root, key = pairs_source(data, "test")
        return images, (self._pairs(path, root, key, "test") if path else test)

    def _validation(self, images: list[FaceImage], people: int) -> tuple[list[FaceImage], list[Pair]]:
        """Validation pairs as given, or drawn from training identities that then leave training."""
        data = self.config.data
        path, root, key = pairs_source(data, "validation")
        if path:
            return images, self._pairs(path, root, key, "validation")
        key = "data.validation_fraction" if data.validation_identities is None else "data.validation_identities"
        return hold_out(images, held_out_fraction(data), data.validation_pair_count, self.config.seed, people, key)

    def demo_data(self) -> Splits:
        """The synthetic LFW-layout demo, read by the registered readers like any other data."""
        paths = self.demo_paths()
        return Splits(train=read_kind(self.name, paths["train"], "identity-folders", self.config.data,
                                      "the demo data", FaceImage),
                      test=read_kind(self.name, paths["test"], "lfw-pairs", pairs_options(self.config.data, None),
                                     "the demo data", Pair, "test"))

    def demo_paths(self) -> dict[str, str]:
        """The demo's training identity folders and its test folder (LFW layout, with ``pairs.txt``)."""
        from .synth import write_demo_dataset

        demo = self.config.data.demo
        key = "v2-" + "-".join(f"{k}{v}" for k, v in vars(demo).items())  # v2: test people first
        root = cached_folder("face-demo", key, fill=lambda folder: write_demo_dataset(folder, **vars(demo)))
        return {"train": str(root / "train"), "test": str(root / "test")}

    def prepare(self, data: DataBundle) -> DataBundle:
        """Open every image once, and number the training identities (the margin head's classes)."""
        check_images([image.path for image in data.train], "the training faces")
        for name, split in data.splits().items():
            check_images(split.images, f"the {name} pairs")
        self.identities = sorted({image.identity for image in data.train})
        self.labels = {name: i for i, name in enumerate(self.identities)}
        if len(self.identities) < 2:
            raise DataError(f"{self.config.data.train or 'the demo data'}: {len(self.identities)} identity folder(s) "
                            f"left for training; a face model needs at least 2 people")
        data.info = {"identities": len(self.identities), "images": len(data.train)}
        return data

    def load_eval_data(self, path: str, split: str | None = None) -> PairSet:
        """Pairs for ``crossfuse eval --data PATH``: a pairs file or a folder holding one (LFW)."""
        data = self.config.data
        check_pairs_format(self.name, data.pairs_format)
        pairs = read_kind(self.name, path, data.pairs_format, pairs_options(data, None), "--data", Pair,
                          split or "test", chosen_split=True)
        return self.prepare_eval(pairs)

    def prepare_eval(self, samples: Sequence[Pair]) -> PairSet:
        return PairSet(samples)

    def _faces(self, path: str, key: str) -> list[FaceImage]:
        fmt = "auto" if self.config.data.format == "demo" else self.config.data.format
        return read_kind(self.name, path, fmt, self.config.data, key, FaceImage)

    def _pairs(self, path: str, images: str | None, key: str, split: str) -> list[Pair]:
        data = self.config.data
        return read_kind(self.name, path, data.pairs_format, pairs_options(data, images), key, Pair, split)

    def sample_labels(self, samples: Sequence[FaceImage]) -> list[str]:
        return [image.identity for image in samples]

    # -- batches -------------------------------------------------------------------------------
    def preprocess(self, sample: Any, train: bool) -> tuple[torch.Tensor, int | None]:
        """``(input tensor, identity index)`` of a training :class:`FaceImage` (augmented), or
        ``(input tensor, None)`` of an evaluation image path, or of a training image prepared for
        evaluation (a distillation teacher's view of it)."""
        image = load_image(sample.path if isinstance(sample, FaceImage) else sample)
        if train and self.augment is not None:
            image = self.augment(image)
        return self.transform(image), (self.labels[sample.identity] if train else None)

    def collate(self, items: list[tuple[torch.Tensor, int | None]]) -> dict[str, Any]:
        images, labels = zip(*items)
        batch = {"images": torch.stack(images)}
        if labels[0] is not None:
            batch["labels"] = torch.tensor(labels)
        return batch

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"identities": self.identities, "operating_point": self.operating_point}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.identities = list(state.get("identities") or [])
        self.operating_point = state.get("operating_point")

    def calibrate(self, outputs: dict[str, Any], samples: PairSet) -> None:
        """The operating point: the threshold keeping FAR <= ``data.calibration_far`` on validation."""
        scores = samples.scores(np.asarray(outputs["embedding"]))
        self.operating_point = calibrate_threshold(scores, samples.same, self.config.data.calibration_far)

    def saved_point(self) -> dict[str, Any] | None:
        """The run's calibrated operating point: from its task state, or for a run saved before task
        state existed, from the validation split of its ``report.json``."""
        if self.operating_point is not None or self.run_dir is None:
            return self.operating_point
        report = RunDir(self.run_dir).read_report()
        return ((report or {}).get("splits", {}).get("validation") or {}).get("operating_point")

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> FaceModel:
        self.transform = backbone.transform
        self.augment = image_augmentation(self.config.data.augment)
        # A served run (run_dir set) needs no classifier over the training people.
        return FaceModel(backbone, self.config.head, len(self.identities) if self.run_dir is None else None)

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(model(batch["images"], batch["labels"]), batch["labels"])

    def distillation_step(self, model: Any, batch: dict[str, Any], teacher: dict[str, Any], distill: Any) -> torch.Tensor:
        """The margin loss blended with similarity matching: the student learns which faces of the batch
        the teacher places close together, whatever the two embeddings' widths."""
        embeddings, logits = model(batch["images"], batch["labels"], with_embeddings=True)
        hard = F.cross_entropy(logits, batch["labels"])
        soft = self.config.head.similarity_weight * similarity_matching(embeddings, teacher["embedding"])
        return blend(hard, soft, distill.alpha)

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return {"embedding": normalised_embeddings(model, batch["images"], self.config.data.flip_test)}

    def export_spec(self, model: Any, batch: dict[str, Any]) -> Any:
        """The embedding network (the default export of the served model); the margin head is left out."""
        spec = super().export_spec(model, batch)
        spec.part = "the embedding network (backbone + embedding head)"
        spec.outputs = {"output": "[batch, embedding_dim] face embeddings, not yet L2-normalised"}
        spec.left_out = ("the margin head, which only training uses. To match faces, L2-normalise each embedding "
                         "(with data.flip_test, first add the embedding of the mirrored image), score a pair by "
                         "cosine similarity and accept at the task state's operating_point threshold")
        return spec

    def compute_metrics(self, outputs: dict[str, Any], samples: PairSet) -> dict[str, Any]:
        data = self.config.data
        embedding = np.asarray(outputs["embedding"])
        scores, same = samples.scores(embedding), samples.same
        metrics = verification(embedding, samples, self)
        metrics["operating_point"] = calibrate_threshold(scores, same, data.calibration_far)
        saved = self.saved_point()
        if saved:  # how the run's saved threshold holds on these pairs
            accepted = scores >= saved["threshold"]
            metrics["at_saved_threshold"] = {"threshold": saved["threshold"], "far": float(accepted[~same].mean()),
                                             "tar": float(accepted[same].mean())}
        metrics["n_images"] = len(samples.images)
        metrics.update(rank1(embedding, samples))
        impostors = np.flatnonzero(~same)
        hardest = impostors[np.argsort(-scores[impostors])][: data.hardest]
        metrics["hardest_false_matches"] = [{"a": samples.pairs[i].a, "b": samples.pairs[i].b,
                                             "score": round(float(scores[i]), 4)} for i in hardest]
        return metrics

    def baseline(self, data: DataBundle) -> dict[str, Any]:
        """Raw-pixel cosine on the same pairs: what the model has to beat."""
        vectors: dict[str, np.ndarray] = {}

        def pixels(path: str) -> np.ndarray:
            if path not in vectors:
                image = np.asarray(load_image(path).resize((32, 32)), dtype=np.float64).ravel()
                centred = image - image.mean()
                vectors[path] = centred / max(np.linalg.norm(centred), 1e-12)
            return vectors[path]

        splits = {}
        for name, split in data.splits().items():
            scores = [float(pixels(pair.a) @ pixels(pair.b)) for pair in split.pairs]
            metrics = verification_metrics(scores, split.same, split.folds(), tuple(self.config.data.fars))
            splits[name] = {k: v for k, v in metrics.items() if k != "roc"}
        return {"name": "raw-pixel cosine", "splits": splits}

    # -- use -----------------------------------------------------------------------------------
    def load_input(self, item: Any) -> str:
        return str(item)

    def embed(self, model: Any, paths: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised embeddings of image files, ``[N, D]``."""
        parts = [self.run_batch(model, [self.load_input(p) for p in chunk])["embedding"].numpy()
                 for chunk in batched(list(paths), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.head.embedding_dim), np.float32)

    def inputs_per_prediction(self, options: FacePredictOptions) -> int:
        """1:1 matching takes images in pairs (2 inputs, 1 prediction); a gallery search, one probe each."""
        return 1 if options.gallery else 2

    def predict(self, model: Any, inputs: list[Any], options: FacePredictOptions) -> list[dict[str, Any]]:
        """1:1: images in pairs -> similarity and same/different. 1:N (``gallery``): probe images or
        folders -> the ``top_k`` gallery people, ``unknown`` below the threshold."""
        point = self._operating_point(options)
        if options.gallery:
            return self._identify(model, inputs, options, point)
        return self._match(model, inputs, options, point)[0]

    def _match(self, model: Any, inputs: list[Any], options: FacePredictOptions,
               point: dict[str, Any]) -> tuple[list[dict[str, Any]], np.ndarray]:
        if len(inputs) % 2:
            raise DataError(f"1:1 matching takes images in pairs (got {len(inputs)}); to search people, "
                            f"give --gallery DIR")
        paths = [self.load_input(item) for item in inputs]
        embeddings = self.embed(model, paths, options.batch_size)
        results = []
        for i in range(0, len(paths), 2):
            similarity = float(embeddings[i] @ embeddings[i + 1])
            results.append({"input": [paths[i], paths[i + 1]], "similarity": round(similarity, 4),
                            "same": similarity >= point["threshold"], **point})
        return results, embeddings

    def _operating_point(self, options: FacePredictOptions) -> dict[str, Any]:
        if options.threshold is not None:
            return {"threshold": options.threshold, "calibrated_far": None, "source": "--threshold"}
        point = self.saved_point()
        if point is None:
            raise CrossfuseError(f"{self.run_dir}: no calibrated threshold (neither task_state.json nor report.json "
                                 f"holds one: the run has not finished?); give --threshold VALUE")
        return {"threshold": point["threshold"], "calibrated_far": point["target_far"],
                "source": "validation pairs of the run"}

    def _identify(self, model: Any, inputs: list[Any], options: FacePredictOptions,
                  point: dict[str, Any]) -> list[dict[str, Any]]:
        probes = [str(p) for p in expand_inputs(inputs, self.input_extensions)]
        gallery = self._gallery(model, options)
        results = []
        for probe, ranked in zip(probes, search(gallery, self.embed(model, probes, options.batch_size), options.top_k)):
            top, similarity = ranked[0]
            results.append({"input": probe, "label": top if similarity >= point["threshold"] else "unknown",
                            "matches": describe_matches(ranked), **point})
        return results

    def _gallery(self, model: Any, options: FacePredictOptions) -> Gallery:
        """A saved gallery file, or identity folders enrolled now (embeddings and names saved, never pixels)."""
        source = options.gallery
        if Path(source).is_file():
            return load_gallery(source)
        faces = read_kind(self.name, source, "identity-folders", self.config.data, "--gallery", FaceImage)
        return enrol(faces, lambda paths: self.embed(model, paths, options.batch_size), source, options.output,
                     self.run_dir)

    def explain(self, model: Any, inputs: list[Any], options: FacePredictOptions, output_dir: Path) -> list[dict]:
        """1:1 predictions with a Grad-CAM heat map per image (:mod:`crossfuse_face.explain`)."""
        from .explain import explain_pairs

        if options.gallery:
            raise CrossfuseError("--explain draws heat maps for 1:1 pairs; run it without --gallery")
        with torch.no_grad():
            results, embeddings = self._match(model, inputs, options, self._operating_point(options))
        explained = []
        per_chunk = max(1, options.batch_size // 2)  # two images per pair
        for start in range(0, len(results), per_chunk):
            chunk = results[start:start + per_chunk]
            rows = torch.from_numpy(embeddings[2 * start: 2 * (start + len(chunk))])
            explained += explain_pairs(chunk, self._tensors, rows, model, output_dir, first=start)
        return explained

    def _tensors(self, paths: list[str]) -> torch.Tensor:
        return torch.stack([self.preprocess(self.load_input(p), train=False)[0] for p in paths])

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        point = f"threshold {prediction['threshold']:.4f}" + (
            f" (calibrated at FAR {prediction['calibrated_far']:g})" if prediction.get("calibrated_far") else "")
        if "matches" in prediction:
            ranked = ", ".join(f"{m['identity']} {m['similarity']:.4f}" for m in prediction["matches"])
            return f"{prediction['input']}\t{prediction['label']}\t{ranked}\t{point}"
        verdict = "same" if prediction["same"] else "different"
        a, b = prediction["input"]
        line = f"{a}\t{b}\t{verdict}\tsimilarity {prediction['similarity']:.4f}\t{point}"
        return line + ("\theat maps: " + " ".join(prediction["heatmaps"]) if "heatmaps" in prediction else "")

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        from .report import draw_hardest_false_matches, draw_roc

        written = []
        saved = report.get("splits", {}).get("validation", {}).get("operating_point", {})  # what predict uses
        for split, metrics in report.get("splits", {}).items():
            if metrics.get("roc"):
                draw_roc(metrics["roc"], run_dir / f"roc_{split}.png", f"{split} pairs")
                written.append(f"roc_{split}.png")
            pairs = [(m["a"], m["b"], m["score"]) for m in metrics.get("hardest_false_matches", [])
                     if Path(m["a"]).is_file() and Path(m["b"]).is_file()]
            if pairs:
                threshold = saved.get("threshold", metrics.get("operating_point", {}).get("threshold", float("nan")))
                draw_hardest_false_matches(pairs, run_dir / f"hardest_false_matches_{split}.png", threshold)
                written.append(f"hardest_false_matches_{split}.png")
        return written
