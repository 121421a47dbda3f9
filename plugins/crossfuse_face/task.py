"""The ``security-face-match`` task: face embeddings trained with a margin loss, matched by cosine.

Training is identity classification through an ArcFace / CosFace / softmax head
(:mod:`crossfuse_face.heads`) on top of a registry image backbone and an embedding layer.
Evaluation is the field's: pairs of images of people never seen in training, scored by the
cosine of their L2-normalised embeddings (:mod:`crossfuse_face.metrics`): LFW 10-fold accuracy,
ROC AUC, EER, TAR at fixed FAR, and rank-1 identification. The decision threshold is calibrated
on the validation pairs at ``data.calibration_far`` and saved with the run; ``predict`` uses it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossfuse.errors import ConfigError, CrossfuseError, DataError
from crossfuse.runs import RunDir, atomic_write, cached_folder
from crossfuse.task import DataBundle, Task, expand_inputs

from .heads import LOSSES, EmbeddingHead, MarginHead
from .lfw import IMAGE_EXTENSIONS, FaceImage, Pair, load_image, read_identity_folders, read_pairs
from .metrics import calibrate_threshold, gallery_probe_split, rank1_identification, verification_metrics

GALLERY_SUFFIX = ".gallery.safetensors"


@dataclass
class FaceDemoConfig:
    """Sizes of the synthetic LFW-layout demo (generated once into the cache folder)."""

    train_identities: int = 60
    train_images: int = 12
    test_identities: int = 40
    test_images: int = 6
    size: int = 64
    seed: int = 0
    folds: int = 10
    pairs_per_fold: int = 30


@dataclass
class FaceAugmentConfig:
    """Training augmentation (torchvision transforms v2), applied before the backbone's preprocessing."""

    hflip: float = 0.5
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])  # random crop area, then resize back
    color_jitter: float = 0.2


@dataclass
class FaceDataConfig:
    """Where the faces come from and how the evaluation is run."""

    train: Optional[str] = None  # identity folders (root/<name>/*.jpg); none: the synthetic demo
    test_pairs: Optional[str] = None  # LFW pairs.txt or pairsDevTest.txt
    test_images: Optional[str] = None  # the LFW image root of test_pairs (default: the pairs file's folder)
    validation_pairs: Optional[str] = None  # none: pairs drawn from held-out training identities
    validation_images: Optional[str] = None
    validation_identities: float = 0.25  # fraction of training identities held out for validation pairs
    validation_pair_count: int = 600  # matched + mismatched validation pairs drawn from them
    image_ext: str = "jpg"  # the image extension pairs files refer to
    calibration_far: float = 1e-2  # the saved decision threshold keeps FAR at or below this on validation
    fars: list[float] = field(default_factory=lambda: [1e-2, 1e-3])  # TAR is reported at these FARs
    hardest: int = 8  # impostor pairs shown in the hardest-false-matches picture
    flip_test: bool = True  # embed each face and its mirror image, and add the two (common practice)
    demo: FaceDemoConfig = field(default_factory=FaceDemoConfig)
    augment: FaceAugmentConfig = field(default_factory=FaceAugmentConfig)


@dataclass
class FaceHeadConfig:
    """Embedding layer and training loss."""

    loss: str = "arcface"  # arcface, cosface or softmax (the baseline)
    margin: Optional[float] = None  # default 0.5 (arcface) / 0.35 (cosface)
    scale: float = 64.0
    embedding_dim: int = 128
    dropout: float = 0.0


@dataclass
class FacePredictOptions:
    """Options of ``crossfuse predict`` for a face run.

    Without ``gallery``: inputs are image pairs (1:1). With it: inputs are probes (1:N).
    """

    gallery: Optional[str] = None  # identity folders to enrol, or a saved *.gallery.safetensors
    top_k: int = 5
    threshold: Optional[float] = None  # default: the run's calibrated threshold
    output: Optional[str] = None  # where an enrolled gallery is saved (default RUN_DIR/galleries/NAME)
    batch_size: int = 32


class FaceModel(nn.Module):
    """Backbone -> embedding; ``margin`` (training only) turns embeddings into identity logits."""

    def __init__(self, backbone: nn.Module, config: FaceHeadConfig, identities: int | None):
        super().__init__()
        self.backbone = backbone
        self.embed = EmbeddingHead(backbone.feature_dim, config.embedding_dim, config.dropout)
        # A saved run is served without the classifier: embeddings are all matching needs.
        self.margin = (MarginHead(config.embedding_dim, identities, config.loss, config.margin, config.scale)
                       if identities else None)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings ``[B, D]`` (not normalised); with ``labels``, the margin head's identity logits.

        The margin head runs inside ``forward`` so DDP sees every parameter it must synchronise.
        """
        embeddings = self.embed(self.backbone(images))
        return embeddings if labels is None else self.margin(embeddings, labels)


class SecurityFaceMatchTask(Task):
    """1:1 verification and 1:N identification of faces."""

    name = "security-face-match"
    modality = "image"
    default_backbone = "resnet18"
    main_metric = "accuracy"
    DataConfig = FaceDataConfig
    HeadConfig = FaceHeadConfig
    PredictOptions = FacePredictOptions

    def __init__(self, config: Any):
        super().__init__(config)
        self.identities: list[str] = []
        self.transform: Any = None
        self.train_transform: Any = None

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        data = self.config.data
        if self.config.head.loss not in LOSSES:
            raise ConfigError(f"head.loss: unknown loss {self.config.head.loss!r}; choose one of {', '.join(LOSSES)}")
        if data.train is None:
            demo = self._demo()
            train_root, test = demo["train"], read_pairs(demo["pairs"], demo["test"])
        else:
            train_root = data.train
            test = self._pairs(data.test_pairs, data.test_images) if data.test_pairs else None
        images = read_identity_folders(train_root)
        if data.validation_pairs:
            validation = self._pairs(data.validation_pairs, data.validation_images)
        else:
            images, validation = self._hold_out(images)
        validation, test = PairSet(validation), PairSet(test) if test else None
        _check_images([image.path for image in images])
        for split in (validation, test):
            _check_images(split.images if split else [])
        self.identities = sorted({image.identity for image in images})
        if len(self.identities) < 2:
            raise DataError(f"{train_root}: {len(self.identities)} identity folder(s) left for training; "
                            f"a face model needs at least 2 people")
        info = {"identities": len(self.identities), "images": len(images)}
        return DataBundle(TrainingFaces(images, self), validation, test, info=info)

    def load_eval_data(self, path: str) -> PairSet:
        return PairSet(self._pairs(path, None))

    def _pairs(self, pairs_file: str, images: str | None) -> list[Pair]:
        root = images or str(Path(pairs_file).parent)
        return read_pairs(pairs_file, root, ext=self.config.data.image_ext)

    def _demo(self) -> dict[str, Any]:
        from .synth import write_demo_dataset

        demo = self.config.data.demo
        key = "v1-" + "-".join(f"{k}{v}" for k, v in vars(demo).items())
        root = cached_folder("face-demo", key, fill=lambda folder: write_demo_dataset(folder, **vars(demo)))
        return {"train": root / "train", "test": root / "test", "pairs": root / "test" / "pairs.txt"}

    def _hold_out(self, images: list[FaceImage]) -> tuple[list[FaceImage], list[Pair]]:
        """Move a fraction of the training identities out, and draw validation pairs from their images."""
        data = self.config.data
        rng = np.random.default_rng(self.config.seed)
        by_person: dict[str, list[str]] = {}
        for image in images:
            by_person.setdefault(image.identity, []).append(image.path)
        eligible = sorted(name for name, paths in by_person.items() if len(paths) >= 2)
        count = int(round(data.validation_identities * len(by_person)))
        if count < 2 or len(eligible) < 2:
            raise DataError(f"data.validation_identities={data.validation_identities} of {len(by_person)} people "
                            f"({len(eligible)} with two or more images) cannot form validation pairs: give "
                            f"data.validation_pairs, or more people with at least two images each")
        held = set(rng.choice(eligible, size=min(count, len(eligible)), replace=False).tolist())
        names = sorted(held)
        half = data.validation_pair_count // 2
        pairs = []
        for i in range(half):  # matched: two images of one person; mismatched: two people
            person = names[rng.integers(len(names))]
            a, b = rng.choice(len(by_person[person]), size=2, replace=False)
            pairs.append(Pair(by_person[person][a], by_person[person][b], True, i % 10, "held-out identities"))
        for i in range(half):
            first, second = rng.choice(len(names), size=2, replace=False)
            pa, pb = by_person[names[first]], by_person[names[second]]
            pairs.append(Pair(pa[rng.integers(len(pa))], pb[rng.integers(len(pb))], False, i % 10,
                              "held-out identities"))
        return [image for image in images if image.identity not in held], pairs

    # -- batches -------------------------------------------------------------------------------
    def collate(self, samples: list[Any]) -> dict[str, Any]:
        if isinstance(samples[0], dict):  # training faces, already loaded and augmented
            return {"images": torch.stack([s["image"] for s in samples]),
                    "labels": torch.tensor([s["label"] for s in samples])}
        return {"images": torch.stack([self.preprocess(path) for path in samples])}  # evaluation: image paths

    def preprocess(self, path: str, augment: bool = False) -> torch.Tensor:
        """An image file as the backbone's input tensor (augmented for training)."""
        image = load_image(path)
        if augment and self.train_transform is not None:
            image = self.train_transform(image)
        return self.transform(image)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> FaceModel:
        if getattr(backbone, "modality", None) != "image":
            raise CrossfuseError(f"security-face-match needs an image backbone, got {self.config.backbone.name!r}")
        self.transform = backbone.transform
        self.train_transform = _augmentation(self.config.data.augment)
        return FaceModel(backbone, self.config.head, len(self.identities) or None)

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(model(batch["images"], batch["labels"]), batch["labels"])

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return {"embedding": self.embed_batch(model, batch["images"])}

    def embed_batch(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of a batch of input tensors (with the mirror image if ``data.flip_test``)."""
        embeddings = model(images).float()
        if self.config.data.flip_test:
            embeddings = embeddings + model(images.flip(-1)).float()
        return F.normalize(embeddings, dim=1)

    def compute_metrics(self, outputs: dict[str, Any], samples: PairSet) -> dict[str, Any]:
        data = self.config.data
        embeddings = outputs["embedding"].numpy()
        scores = (embeddings[samples.first] * embeddings[samples.second]).sum(1)
        same = np.array([pair.same for pair in samples.pairs])
        metrics = verification_metrics(scores, same, _folds(samples.pairs), tuple(data.fars))
        metrics["operating_point"] = calibrate_threshold(scores, same, data.calibration_far)
        saved_point = self._saved_point()
        if saved_point:  # `crossfuse eval`: how the run's saved threshold holds on these pairs
            saved = saved_point["threshold"]
            accepted = scores >= saved
            metrics["at_saved_threshold"] = {"threshold": saved, "far": float(accepted[~same].mean()),
                                             "tar": float(accepted[same].mean())}
        metrics["n_images"] = len(samples.images)
        metrics.update(_identification(samples.images, embeddings))
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
            pairs = split.pairs
            scores = [float(pixels(pair.a) @ pixels(pair.b)) for pair in pairs]
            metrics = verification_metrics(scores, [pair.same for pair in pairs], _folds(pairs),
                                           tuple(self.config.data.fars))
            splits[name] = {k: v for k, v in metrics.items() if k != "roc"}
        return {"name": "raw-pixel cosine", "splits": splits}

    # -- use -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: Any, inputs: list[str], options: FacePredictOptions) -> list[dict[str, Any]]:
        point = self._operating_point(options)
        if options.gallery:
            probes = [str(p) for p in expand_inputs(inputs, IMAGE_EXTENSIONS, recursive=True)]
            return self._identify(model, probes, options, point)
        if len(inputs) % 2:
            raise DataError(f"1:1 matching takes images in pairs (got {len(inputs)}); to search people, "
                            f"give --gallery DIR")
        embeddings = self.embed(model, inputs, options.batch_size)
        results = []
        for i in range(0, len(inputs), 2):
            similarity = float(embeddings[i] @ embeddings[i + 1])
            results.append({"input": [inputs[i], inputs[i + 1]], "similarity": round(similarity, 4),
                            "same": similarity >= point["threshold"], **point})
        return results

    def embed(self, model: Any, paths: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised embeddings of image files, ``[N, D]``."""
        device = next(model.parameters()).device
        model.eval()
        parts = []
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([self.preprocess(p) for p in paths[start:start + batch_size]]).to(device)
            parts.append(self.embed_batch(model, batch).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.config.head.embedding_dim), np.float32)

    def _operating_point(self, options: FacePredictOptions) -> dict[str, Any]:
        if options.threshold is not None:
            return {"threshold": options.threshold, "calibrated_far": None, "source": "--threshold"}
        point = self._saved_point()
        if point is None:
            raise CrossfuseError(f"{self.run_dir}: no calibrated threshold in report.json (the run has not "
                                 f"finished?); give --threshold VALUE")
        return {"threshold": point["threshold"], "calibrated_far": point["target_far"],
                "source": "validation pairs of the run"}

    def _saved_point(self) -> dict[str, Any] | None:
        """The operating point calibrated on validation and saved in the run's report, if there is one."""
        report = RunDir(self.run_dir).read_report() if self.run_dir is not None else None
        return ((report or {}).get("splits", {}).get("validation") or {}).get("operating_point")

    def _identify(self, model: Any, probes: list[str], options: FacePredictOptions, point: dict) -> list[dict]:
        names, gallery = self._gallery(model, options)
        scores = self.embed(model, probes, options.batch_size) @ gallery.T
        results = []
        for probe, row in zip(probes, scores):
            best: dict[str, float] = {}
            for name, score in zip(names, row):  # an identity scores its best enrolled image
                best[name] = max(best.get(name, -1.0), float(score))
            ranked = sorted(best.items(), key=lambda item: -item[1])[: options.top_k]
            top, similarity = ranked[0]
            results.append({"input": probe, "label": top if similarity >= point["threshold"] else "unknown",
                            "matches": [{"identity": n, "similarity": round(s, 4)} for n, s in ranked], **point})
        return results

    def _gallery(self, model: Any, options: FacePredictOptions) -> tuple[list[str], np.ndarray]:
        """Enrol identity folders (saving embeddings and names, never pixels) or load a saved gallery."""
        from safetensors.numpy import load_file, save_file

        source = Path(options.gallery)
        if source.is_file():
            if not source.name.endswith(GALLERY_SUFFIX):
                raise DataError(f"{source}: a gallery is a folder of identity folders or a *{GALLERY_SUFFIX} file")
            tensors = load_file(str(source))
            names = json.loads(bytes(tensors["names"]).decode("utf-8"))
            return names, tensors["embeddings"]
        faces = read_identity_folders(source)
        embeddings = self.embed(model, [face.path for face in faces], options.batch_size)
        names = [face.identity for face in faces]
        target = Path(options.output) if options.output else (
            Path(self.run_dir or ".") / "galleries" / f"{source.resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}")
        path = target / f"{source.resolve().name}{GALLERY_SUFFIX}"
        if path.exists():
            raise CrossfuseError(f"{path} exists: choose another --output folder (galleries are never written over)")
        target.mkdir(parents=True, exist_ok=True)
        encoded = np.frombuffer(json.dumps(names).encode("utf-8"), dtype=np.uint8)
        atomic_write(path, lambda tmp: save_file({"embeddings": embeddings.astype(np.float32), "names": encoded},
                                                 tmp, metadata={"run": str(self.run_dir), "source": str(source)}))
        return names, embeddings

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        point = f"threshold {prediction['threshold']:.4f}" + (
            f" (calibrated at FAR {prediction['calibrated_far']:g})" if prediction.get("calibrated_far") else "")
        if "matches" in prediction:
            ranked = ", ".join(f"{m['identity']} {m['similarity']:.4f}" for m in prediction["matches"])
            return f"{prediction['input']}\t{prediction['label']}\t{ranked}\t{point}"
        verdict = "same" if prediction["same"] else "different"
        a, b = prediction["input"]
        return f"{a}\t{b}\t{verdict}\tsimilarity {prediction['similarity']:.4f}\t{point}"

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


class PairSet:
    """An evaluation split: the distinct images of its pairs (what the loader feeds the model, each
    embedded once however many pairs use it) and the pairs as indices into them."""

    def __init__(self, pairs: Sequence[Pair]):
        self.pairs = list(pairs)
        self.images = sorted({path for pair in self.pairs for path in (pair.a, pair.b)})
        position = {path: i for i, path in enumerate(self.images)}
        self.first = np.array([position[pair.a] for pair in self.pairs], dtype=int)
        self.second = np.array([position[pair.b] for pair in self.pairs], dtype=int)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> str:
        return self.images[index]


class TrainingFaces:
    """The training images as (augmented input tensor, identity index) items."""

    def __init__(self, images: list[FaceImage], task: SecurityFaceMatchTask):
        self.images = images
        self.task = task
        self.labels = {name: i for i, name in enumerate(task.identities)}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.images[index]
        return {"image": self.task.preprocess(image.path, augment=True),
                "label": self.labels[image.identity]}


def _augmentation(config: FaceAugmentConfig):
    from torchvision.transforms import v2

    steps: list[Any] = []
    if config.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(config.hflip))
    if config.crop_scale and tuple(config.crop_scale) != (1.0, 1.0):
        low, high = config.crop_scale
        if not 0 < low <= high <= 1:
            raise ConfigError(f"data.augment.crop_scale must be [low, high] with 0 < low <= high <= 1, "
                              f"got {config.crop_scale}")
        steps.append(_SameSizeCrop(v2.RandomResizedCrop, (low, high)))
    if config.color_jitter > 0:
        steps.append(v2.ColorJitter(config.color_jitter, config.color_jitter, config.color_jitter))
    return v2.Compose(steps) if steps else None


class _SameSizeCrop:
    """RandomResizedCrop back to the image's own size (the backbone's transform resizes after)."""

    def __init__(self, crop: Any, scale: tuple[float, float]):
        self.crop, self.scale = crop, scale

    def __call__(self, image: Any) -> Any:
        return self.crop((image.height, image.width), scale=self.scale, ratio=(0.9, 1.1), antialias=True)(image)


def _folds(pairs: Sequence[Pair]) -> list[int] | None:
    """The pairs' LFW folds, or None for a single-fold (Dev) file: the metrics then split it ten ways."""
    folds = [pair.fold for pair in pairs]
    return folds if len(set(folds)) > 1 else None


def _identification(paths: Sequence[str], embeddings: np.ndarray) -> dict[str, Any]:
    """Rank-1 on a gallery/probe split of the distinct images in the pairs (identity = the image's folder)."""
    ids = [Path(p).parent.name for p in paths]
    gallery, probes = gallery_probe_split(ids)
    if not len(probes) or len(gallery) < 2:
        return {}
    result = rank1_identification(embeddings[gallery], [ids[i] for i in gallery], embeddings[probes],
                                  [ids[i] for i in probes])
    return {f"identification_{k}": v for k, v in result.items()}


def _check_images(paths: Sequence[str]) -> None:
    """Open every image once before training, so an unreadable file stops the run before it starts."""
    for path in paths:
        load_image(path)
