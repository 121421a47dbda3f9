"""The ``smarthome-voice-commands`` task: keyword spotting on an audio backbone, streaming, actions.

Data are Speech Commands folders (or the shipped synthetic demo in that layout) read through the
dataset registry; a split carved out of training keeps each speaker on one side. A clip is loaded
at the backbone's sample rate, padded or cropped to ``data.clip_seconds``, and augmented in
training (gain, time shift, background noise, then SpecAugment inside the model). After training
the streaming detector's threshold is calibrated on the validation split's noise-only audio, and
every split reports false accepts per hour and the recall of a command stream besides the
classification metrics.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.nn import functional as F

from crossfuse.calibration import TemperatureScaling
from crossfuse.datasets import Splits
from crossfuse.distill import softmax_distillation
from crossfuse.errors import ConfigError, DataError, DataWarning
from crossfuse.media import AUDIO_EXTENSIONS, load_audio
from crossfuse.task import DataBundle, Task, batched, expand_inputs

from . import TASK
from .actions import SILENCE, check_actions
from .audio import NoiseBank, SpecAugment, WaveAugment, load_clip
from .config import V2_12_WORDS, VoiceDataConfig, VoiceHeadConfig, VoicePredictOptions, check_data_config
from .demo import DEMO_COMMANDS, demo_root
from .metrics import voice_metrics
from .model import KeywordSpotter, probabilities
from .operating_point import calibrated, noise_only_audio, split_commands, streaming_metrics
from .predictions import clip_prediction, describe, stream_prediction
from .speech_commands import (
    BACKGROUND,
    VoiceClip,
    background_folder,
    class_names,
    command_words,
    hold_out_speakers,
    noise_files,
)
from .streaming import ScoredStream, StreamSettings, detect_commands, score_streams

BASELINE_MAX_TRAIN = 20_000  # training clips the log-mel baseline fits on at most (a seeded sample)


class VoiceCommandTask(Task):
    """Recognise spoken smart-home commands (``data.words``, plus ``_unknown_`` and ``_silence_``)."""

    name = TASK
    modality = "audio"
    default_backbone = "bc-resnet-3"
    main_metric = "accuracy"
    DataConfig = VoiceDataConfig
    HeadConfig = VoiceHeadConfig
    PredictOptions = VoicePredictOptions
    input_extensions = AUDIO_EXTENSIONS

    def __init__(self, config: Any):
        super().__init__(config)
        data = config.data
        check_data_config(data)
        # Unset words: the demo's smart-home commands on the demo, the v2-12 benchmark on a user's folder.
        self.words = command_words(data) if data.words is not None else \
            list(DEMO_COMMANDS if data.train is None else V2_12_WORDS)
        self.labels = class_names(self.words)
        self.actions = {word: dict(action) for word, action in data.actions.items()}
        self.stream = StreamSettings.from_config(data.stream, data.clip_seconds)
        self.calibration: dict[str, Any] | None = None
        # Clip classification's softmax temperature (head.temperature_scaling); the streaming detector
        # keeps raw probabilities, its threshold being calibrated on its own false-accept scale.
        self.temperature = TemperatureScaling(config.head.temperature_scaling)
        self.noise_paths: list[str] = []  # background recordings of the data being trained or evaluated
        self.sample_rate: int | None = None  # set by build_model: the backbone's rate
        self.noise_bank: NoiseBank | None = None
        self.augment: WaveAugment | None = None
        self.featurize: Any = None
        self._model: Any = None
        self._scored: tuple[Any, list[ScoredStream]] | None = None

    @property
    def label_names(self) -> list[str]:
        """The classes in the order of the model's outputs (the registered ``classification`` metric reads it)."""
        return self.labels

    # -- data ----------------------------------------------------------------------------------
    def read(self, path: str | Path, format: str | None = None, key: str = "data",
             options: Any = None) -> Sequence[Any] | Splits:
        """Read with this run's word list (the demo's, the v2-12 one, or ``data.words``)."""
        return super().read(path, format, key, replace(self.config.data, words=list(self.words))
                            if options is None else options)

    def load_data(self) -> DataBundle:
        background_folder(".", self.config.data)  # a wrong data.noise fails before thousands of clips are opened
        return super().load_data()

    def demo_data(self) -> Splits:
        """The shipped synthetic voices, expanded into the cache, read as any Speech Commands folder."""
        return self.read(demo_root(), format="speech-commands", key="the demo data")

    def demo_paths(self) -> dict[str, str]:
        root = demo_root()
        return {"folder": str(root), "validation": str(root / "validation_list.txt"),
                "test": str(root / "testing_list.txt"), "noise": str(root / BACKGROUND)}

    def split_off(self, samples: list[Any], fraction: float, name: str) -> tuple[list[Any], list[Any]]:
        """Hold out about ``fraction`` of the speakers (every clip of a speaker on one side, chosen by a
        hash of the speaker id as TensorFlow's recipe does, so a speaker keeps its side as data grows)."""
        if not 0 < fraction < 1:
            raise ConfigError(f"data.{name}_fraction must be in (0, 1) to carve a {name} split out of the training "
                              f"clips, got {fraction}; or give data.{name}")
        rest, held = hold_out_speakers(samples, fraction, name)
        if not rest or not held:
            speakers = len({clip.speaker for clip in samples if clip.speaker})
            raise DataError(f"{speakers} speakers leave no {name} split at data.{name}_fraction={fraction} (each "
                            f"speaker stays on one side); give data.{name}, a {name} list file, or more speakers")
        return rest, held

    def prepare(self, data: DataBundle) -> DataBundle:
        """Check the splits' labels, find the background noise, warn about missing classes and actions."""
        splits = {"train": list(data.train), "validation": list(data.validation or []),
                  "test": list(data.test) if data.test else None}
        for name in ("train", "validation"):
            if not splits[name]:
                raise DataError(f"the {name} split is empty: check data.{name}, the list files and "
                                f"data.validation_fraction")
        for name, clips in splits.items():
            self._check_labels(clips or [], f"the {name} split")
        self.noise_paths = self._noise_paths(self.config.data.train or demo_root())
        self._warn_about(splits["train"])
        info = {"words": self.words, "noise": [Path(p).name for p in self.noise_paths],
                "clips": {name: dict(Counter(c.label for c in clips)) for name, clips in splits.items() if clips},
                "voices": {name: len({c.speaker for c in clips if c.speaker}) for name, clips in splits.items() if clips}}
        return DataBundle(splits["train"], splits["validation"], splits["test"], info=info)

    def load_eval_data(self, path: str, split: str | None = None) -> Sequence[Any]:
        """A Speech Commands folder for ``crossfuse eval``: its testing_list.txt (or ``split``), or every
        clip when it has no lists; its background noise counts the false accepts."""
        self.noise_paths = self._noise_paths(path)
        return super().load_eval_data(path, split)

    def prepare_eval(self, samples: Sequence[Any]) -> list[VoiceClip]:
        self._check_labels(samples, "the evaluation data")
        return list(samples)

    def _check_labels(self, clips: Sequence[Any], where: str) -> None:
        known = set(self.labels)
        for clip in clips:
            if getattr(clip, "label", None) not in known:
                raise DataError(f"{getattr(clip, 'path', clip)}: label {getattr(clip, 'label', None)!r} in {where} is "
                                f"not one of this run's classes ({', '.join(self.labels)})")

    def _noise_paths(self, source: str | Path) -> list[str]:
        """The background recordings: ``data.noise``, else the ``_background_noise_`` folder of ``source``."""
        return [str(p) for p in noise_files(background_folder(source, self.config.data))]

    def _warn_about(self, train: Sequence[VoiceClip]) -> None:
        present = {clip.label for clip in train}
        absent = [label for label in self.labels if label not in present]
        if absent:
            hint = f" (no {BACKGROUND} folder to cut silence from)" if SILENCE in absent and not self.noise_paths else ""
            warnings.warn(f"the training split has no {', '.join(absent)} clips{hint}: the model cannot learn "
                          f"to recognise them", DataWarning, stacklevel=2)
        if not self.noise_paths and self.config.data.augment.noise:
            warnings.warn(f"no background recordings ({BACKGROUND}/ or data.noise): training mixes in no noise and "
                          f"false accepts are counted on unknown-word babble only", DataWarning, stacklevel=2)
        unmapped = check_actions(self.actions, self.words)
        if unmapped:
            warnings.warn(f"data.actions gives no action for {', '.join(unmapped)}: predict names these commands "
                          f"without an action", DataWarning, stacklevel=2)

    def sample_labels(self, samples: Sequence[VoiceClip]) -> list[str]:
        return [clip.label for clip in samples]

    # -- batches -------------------------------------------------------------------------------
    def preprocess(self, sample: VoiceClip, train: bool) -> tuple[torch.Tensor, int | None]:
        """``(waveform, class id)``: the clip at the backbone's rate, ``clip_seconds`` long, augmented
        when ``train``; the class id is None for an unlabelled clip (predict)."""
        waveform = self._load(sample)
        if train and self.augment is not None:
            waveform = self.augment(waveform)
        return waveform, (self.labels.index(sample.label) if sample.label is not None else None)

    def _load(self, clip: VoiceClip) -> torch.Tensor:
        return load_clip(clip, self.sample_rate, self._clip_samples(), self.noise_bank)

    def _clip_samples(self) -> int:
        return int(round(self.config.data.clip_seconds * self.sample_rate))

    def collate(self, items: list[tuple[torch.Tensor, int | None]]) -> dict[str, Any]:
        waveforms, labels = zip(*items)
        batch = dict(self.featurize(list(waveforms)))
        if all(label is not None for label in labels):
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"words": self.words, "labels": self.labels, "actions": self.actions, "stream": asdict(self.stream),
                "sample_rate": self.sample_rate, "calibration": self.calibration, "temperature": self.temperature.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.words = list(state.get("words") or self.words)
        self.labels = list(state.get("labels") or class_names(self.words))
        self.actions = state.get("actions") or self.actions
        if state.get("stream"):
            self.stream = StreamSettings(**state["stream"])
        self.calibration = state.get("calibration")
        self.temperature.value = float(state.get("temperature", 1.0))

    def calibrate(self, outputs: dict[str, Any], samples: Sequence[VoiceClip]) -> None:
        """The streaming threshold: the lowest that keeps false accepts per hour on the validation
        split's noise-only audio at ``data.stream.target_false_accepts_per_hour``.

        The contract hands calibration the validation outputs only, and the detector must run the
        model over long recordings: it uses the model :meth:`build_model` returned, into which the
        core has just loaded the best weights.
        """
        self.temperature.fit(outputs)  # clip probabilities: temperature scaling on the validation logits
        target = self.config.data.stream.target_false_accepts_per_hour
        if target is None or self._model is None:
            return
        noise = self._scored_noise(self._model, samples)
        if not noise:
            warnings.warn(f"no noise-only audio in the validation split ({BACKGROUND}/ or unknown words): the "
                          f"stream threshold stays at {self.stream.threshold}", DataWarning, stacklevel=2)
            return
        self.stream, self.calibration = calibrated(noise, self.labels, self.stream, target)
        if not self.calibration["reached"]:
            warnings.warn(f"no stream threshold up to {self.stream.threshold} keeps false accepts at "
                          f"{target}/hour on the validation noise ({self.calibration['per_hour']:.1f}/hour at it)",
                          DataWarning, stacklevel=2)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> KeywordSpotter:
        data, head = self.config.data, self.config.head
        rate = getattr(backbone, "sample_rate", None) or data.sample_rate or 16000
        if data.sample_rate is not None and data.sample_rate != rate:
            raise ConfigError(f"data.sample_rate is {data.sample_rate} Hz but backbone {self.config.backbone.name!r} "
                              f"takes {rate} Hz: set backbone.sample_rate={data.sample_rate} too, or leave "
                              f"data.sample_rate unset (clips are resampled to the backbone's rate)")
        self.sample_rate = rate
        self.featurize = backbone.featurize
        self.noise_bank = NoiseBank(self.noise_paths, rate)
        augment = data.augment
        if augment.gain or augment.time_shift or augment.noise:
            self.augment = WaveAugment(augment, rate, self.noise_bank)
        self._model = KeywordSpotter(backbone, len(self.labels), SpecAugment(augment) if augment.spec_augment else None,
                                     head.type, head.hidden, head.dropout, data.feature_norm)
        return self._model

    def training_step(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        logits = model(batch["waveforms"], batch["lengths"])
        return F.cross_entropy(logits.float(), batch["labels"], label_smoothing=self.config.head.label_smoothing)

    def distillation_step(self, model: Any, batch: dict[str, Any], teacher: dict[str, Any], distill: Any) -> torch.Tensor:
        """Clip cross-entropy blended with the teacher's softened class distribution (its raw logits)."""
        return softmax_distillation(model(batch["waveforms"], batch["lengths"]), batch["labels"], teacher["logits"],
                                    distill, self.config.head.label_smoothing)

    def check_teacher(self, teacher: Task) -> None:
        if teacher.labels != self.labels:
            raise ConfigError(f"distill.teacher {teacher.run_dir}: its classes {teacher.labels} differ from this "
                              f"run's {self.labels} (data.words)")

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        outputs = self.temperature.outputs(model(batch["waveforms"], batch["lengths"]))
        if "labels" in batch:
            outputs["labels"] = batch["labels"]
        return outputs

    def export_spec(self, model: Any, batch: dict[str, Any]) -> Any:
        """The encoder and classifier from front-end features; the log-mel front end stays out (:mod:`.export`)."""
        from .export import spotter_spec

        return spotter_spec(self, model, batch)

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[VoiceClip]) -> dict[str, Any]:
        metrics = voice_metrics(outputs["labels"].numpy(), self.temperature.probabilities(outputs), self.labels,
                                [clip.speaker for clip in samples])
        return {**metrics, **self.temperature.metrics(outputs)}

    def model_metrics(self, model: Any, split: str, samples: Sequence[VoiceClip]) -> dict[str, Any]:
        """False accepts per hour of the streaming detector on the split's noise-only audio, and the
        recall of a stream of its commands (see :mod:`crossfuse_smarthome.operating_point`)."""
        stream = self.config.data.stream
        commands = split_commands(samples, self._load, stream.recall_commands, self.config.seed)
        return streaming_metrics(self._classifier(model), self.labels, self.stream, self.sample_rate,
                                 self._scored_noise(model, samples), commands, stream.command_gap_s)

    def _scored_noise(self, model: Any, samples: Sequence[VoiceClip]) -> list[ScoredStream]:
        """The split's noise-only audio through the detector (before any threshold). Kept for the split
        last scored: calibration and the validation metrics that follow it share one pass."""
        key = (id(model), id(samples), len(samples), self.stream.window_s, self.stream.hop_s, self.stream.smoothing_s)
        if self._scored is None or self._scored[0] != key:
            audio = noise_only_audio(self.noise_paths, samples, self._load, self.sample_rate,
                                     self.config.data.stream.babble_seconds)
            model.eval()
            with torch.no_grad():
                self._scored = key, score_streams(audio, self.sample_rate, self._classifier(model), self.stream)
        return self._scored[1]

    @staticmethod
    def _classifier(model: Any) -> Any:
        return lambda windows: probabilities(model, windows)

    # -- use -----------------------------------------------------------------------------------
    def load_input(self, item: str) -> VoiceClip:
        return VoiceClip(str(item), None, "")

    def format_prediction(self, item: str, outputs: dict[str, Any]) -> dict[str, Any]:
        return clip_prediction(item, outputs["probabilities"].tolist(), self.labels, self.actions)

    def predict(self, model: Any, inputs: list[Any], options: VoicePredictOptions) -> list[dict[str, Any]]:
        """Each clip's command, probability and action; with ``--stream``, every command heard in each
        recording with its start time."""
        if not options.stream:
            return super().predict(model, inputs, options)
        settings = self._stream_settings(options)
        results = []
        for path in expand_inputs(inputs, self.input_extensions):
            waveform, _ = load_audio(path, self.sample_rate)
            heard = detect_commands(waveform, self.sample_rate, self._classifier(model), self.labels, settings,
                                    where=path, batch_size=options.batch_size)
            results.append(stream_prediction(str(path), waveform.numel() / self.sample_rate, heard,
                                             settings.threshold, self.actions))
        return results

    def _stream_settings(self, options: VoicePredictOptions) -> StreamSettings:
        if options.threshold is None:
            return self.stream
        if not 0 < options.threshold <= 1:
            raise ConfigError(f"--threshold must be in (0, 1], got {options.threshold}")
        return replace(self.stream, threshold=options.threshold)

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        return describe(prediction)

    def explain(self, model: Any, inputs: list[Any], options: VoicePredictOptions,
                output_dir: Path) -> list[dict[str, Any]]:
        """Predictions with a saliency picture over each clip's log-mel spectrogram (in ``output_dir``)."""
        from .explain import explain_batch

        if options.stream:
            raise ConfigError("--explain draws one clip's spectrogram; it does not combine with --stream")
        items = [str(p) for p in expand_inputs(inputs, self.input_extensions)]
        device = next(model.parameters()).device
        results = []
        for start, chunk in enumerate(batched(items, options.batch_size)):
            clips = [self.load_input(item) for item in chunk]
            with torch.no_grad():
                predictions = super().predict(model, list(chunk), options)
            waveforms = torch.stack([self._load(clip) for clip in clips]).to(device)
            pictures = explain_batch(model, waveforms, chunk, self.labels, output_dir, start * options.batch_size,
                                     self.config.data.clip_seconds)
            results += [{**prediction, **picture} for prediction, picture in zip(predictions, pictures)]
        return results

    # -- report --------------------------------------------------------------------------------
    def baseline(self, data: DataBundle) -> dict[str, Any]:
        """Logistic regression on pooled log-mel energies, on the same splits (see :mod:`.baseline`)."""
        import random

        from .baseline import clip_baseline

        train = list(data.train)
        if len(train) > BASELINE_MAX_TRAIN:
            train = random.Random(self.config.seed).sample(train, BASELINE_MAX_TRAIN)
        ids = {label: i for i, label in enumerate(self.labels)}
        return clip_baseline({"train": train, **data.splits()}, self._load, ids, self.labels, self.sample_rate,
                             self.config.seed)

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        from .report import draw_report

        return draw_report(report, run_dir)
