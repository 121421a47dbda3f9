"""Helpers for plugin authors' tests: tiny backbones on disk and a short end-to-end fit.

>>> from crossfuse.testing import smoke_fit
>>> result = smoke_fit("finance-sentiment", tmp_path / "run")      # doctest: +SKIP
>>> result.report["splits"]["validation"]["macro_f1"]              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence


def write_tiny_text_backbone(directory: str | Path, texts: Iterable[str] = (), hidden: int = 32) -> Path:
    """Save a random-init 2-layer BERT and a WordPiece tokenizer in Hugging Face layout.

    The vocabulary holds the special tokens, ASCII characters and every character of
    ``texts`` (so Chinese or any other script tokenizes without ``[UNK]``). The folder loads
    with ``--backbone DIR`` exactly like a downloaded model.
    """
    from transformers import BertConfig, BertModel

    from .backbones.text import tiny_vocab, wordpiece_tokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    extra = sorted({ch for text in texts for ch in text.lower() if not ch.isspace()} - set(vocab))
    vocab += extra + ["##" + ch for ch in extra]
    wordpiece_tokenizer(vocab).save_pretrained(str(directory))
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=hidden * 2, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(directory))
    return directory


# The random-init backbone of each modality that tests use: small and quick, needing no download.
TINY_BACKBONES = {"text": "tiny-bert", "image": "tiny-cnn", "audio": "mel-cnn"}


def smoke_fit(task: str, output: str | Path, *, backbone: str | None = None, epochs: int = 1,
              overrides: Sequence[str] = (), cache: str | Path | None = None, **options: Any):
    """Run ``task`` briefly on tiny backbones without progress bars; return the RunResult.

    Without ``backbone``, each input gets the tiny backbone of its modality (:data:`TINY_BACKBONES`).
    Demo data the task generates goes to ``cache`` (default: a ``cache`` folder beside ``output``),
    never the user's ``~/.cache``; :func:`demo_cache` of the run finds it again afterwards.
    """
    from .api import run, task_class

    cls = task_class(task)
    overrides = list(overrides)
    if backbone is None and cls.inputs:
        overrides = [f"backbones.{name}.name={TINY_BACKBONES[modality]}" for name, modality in cls.inputs.items()
                     if modality in TINY_BACKBONES] + overrides
    elif backbone is None:
        backbone = TINY_BACKBONES.get(cls.modality)
    with demo_cache(cache or os.environ.get("CROSSFUSE_CACHE") or Path(output).parent / "cache"):
        return run(task, output=str(output), backbone=backbone, epochs=epochs, overrides=overrides,
                   progress=False, **options)


@contextlib.contextmanager
def demo_cache(folder: str | Path) -> Iterator[Path]:
    """``$CROSSFUSE_CACHE`` set to ``folder`` inside the block, restored after it. Code that reads a
    :func:`smoke_fit` run's demo data again (``crossfuse.api.export`` of it, say) wraps itself in
    ``demo_cache(run_dir.parent / "cache")``, where that fit left the data."""
    previous = os.environ.get("CROSSFUSE_CACHE")
    os.environ["CROSSFUSE_CACHE"] = str(folder)
    try:
        yield Path(folder)
    finally:
        if previous is None:
            os.environ.pop("CROSSFUSE_CACHE", None)
        else:
            os.environ["CROSSFUSE_CACHE"] = previous


def write_tiny_image_backbone(directory: str | Path, image_size: int = 32, hidden: int = 32) -> Path:
    """Save a random-init 2-layer ViT (patches of 8 px) and its image processor in Hugging Face layout.

    The folder loads with ``--backbone DIR`` exactly like a downloaded model: an image backbone of
    ``hidden`` features whose transform resizes any picture to ``image_size`` pixels square.
    """
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(str(directory))
    config = ViTConfig(image_size=image_size, patch_size=8, hidden_size=hidden, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=hidden * 2)
    ViTModel(config).save_pretrained(str(directory))
    return directory


def write_tiny_audio_backbone(directory: str | Path, hidden: int = 32) -> Path:
    """Save a random-init 2-layer wav2vec2 (16 kHz, 20 ms frames) and its feature extractor in Hugging Face layout.

    Its front end uses layer norm and its feature extractor returns attention masks, so padded
    batches run masked in one pass. The folder loads with ``--backbone DIR`` like a downloaded model.
    """
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    Wav2Vec2FeatureExtractor(sampling_rate=16_000, do_normalize=True, return_attention_mask=True) \
        .save_pretrained(str(directory))
    # Two convolutions with strides 5 and 64 make 20 ms frames, as wav2vec2's seven do.
    config = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=hidden * 2, conv_dim=(16, 16), conv_stride=(5, 64),
                            conv_kernel=(10, 64), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            feat_extract_norm="layer", do_stable_layer_norm=True)
    Wav2Vec2Model(config).save_pretrained(str(directory))
    return directory


# -- tiny data, the CLI in-process, and what registering imports (for plugin authors' tests) ------

# What a plugin must not import while it registers: `crossfuse --help` would then pay for it.
HEAVY_MODULES = ("torch", "torchvision", "torchaudio", "transformers", "timm", "sklearn", "scipy", "numpy",
                 "pandas", "matplotlib", "cv2", "tensorflow", "jax")
# The column a manifest written by the makers below names each sample's input in.
INPUT_COLUMNS = {"text": "text", "image": "image", "audio": "audio"}


def make_text_rows(folder: str | Path, labels: Sequence[str] = ("good", "bad"), per_label: int = 8, *, seed: int = 0,
                   filename: str = "data.csv") -> Path:
    """Write ``folder/filename``: a CSV with columns ``text,label``, ``per_label`` rows per label.

    Each label's sentences carry cue words of their own among shared filler words, so a tiny model
    can learn them. Deterministic for a ``seed``. Returns the CSV's path.
    """
    import random

    rng = random.Random(seed)
    filler = ["the", "report", "says", "today", "about", "our", "team", "and", "new", "order", "was", "very"]
    rows = []
    for label in labels:
        cues = [label, f"{label}ly", f"so {label}"]
        for _ in range(per_label):
            words = rng.sample(filler, 4) + [rng.choice(cues)]
            rng.shuffle(words)
            rows.append({"text": " ".join(words), "label": label})
    return _write_manifest(Path(folder), filename, ["text", "label"], rows)


def make_images(folder: str | Path, labels: Sequence[str] = ("red", "blue"), per_label: int = 4, *, size: int = 32,
                seed: int = 0, filename: str = "data.csv") -> Path:
    """Write PNG images ``folder/LABEL/LABEL_000.png`` and the manifest ``folder/filename`` (columns
    ``image,label``, paths relative to ``folder``). Each label is a shape of its own colour on noise.
    Deterministic for a ``seed``. Returns the manifest's path.
    """
    import random

    import numpy as np
    from PIL import Image, ImageDraw

    folder, rng = Path(folder), random.Random(seed)
    rows = []
    for index, label in enumerate(labels):
        (folder / label).mkdir(parents=True, exist_ok=True)
        hue = (index * 97) % 256
        for number in range(per_label):
            noise = np.random.default_rng(rng.randrange(2**31)).integers(0, 90, (size, size, 3), dtype=np.uint8)
            image = Image.fromarray(noise, "RGB")
            corner = rng.randrange(size // 4)
            colour = (hue, 255 - hue, (hue * 3) % 256)
            ImageDraw.Draw(image).ellipse([corner, corner, corner + size // 2, corner + size // 2], fill=colour)
            relative = f"{label}/{label}_{number:03d}.png"
            image.save(folder / relative)
            rows.append({"image": relative, "label": label})
    return _write_manifest(folder, filename, ["image", "label"], rows)


def make_audio_clips(folder: str | Path, labels: Sequence[str] = ("low", "high"), per_label: int = 4, *,
                     sample_rate: int = 16_000, seconds: float = 0.5, seed: int = 0, filename: str = "data.csv") -> Path:
    """Write mono 16-bit WAV clips ``folder/LABEL/LABEL_000.wav`` and the manifest ``folder/filename``
    (columns ``audio,label``, paths relative to ``folder``). Each label is a tone of its own pitch in
    noise. Deterministic for a ``seed``. Returns the manifest's path.
    """
    import math
    import random

    import numpy as np
    import soundfile

    folder, rng = Path(folder), random.Random(seed)
    rows = []
    for index, label in enumerate(labels):
        (folder / label).mkdir(parents=True, exist_ok=True)
        frequency = 220.0 * 2 ** index
        for number in range(per_label):
            count = int(sample_rate * seconds * rng.uniform(0.8, 1.0))
            time = np.arange(count) / sample_rate
            noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 0.05, count)
            clip = 0.4 * np.sin(2 * math.pi * frequency * time + rng.random() * math.pi) + noise
            relative = f"{label}/{label}_{number:03d}.wav"
            soundfile.write(str(folder / relative), clip.astype("float32"), sample_rate, subtype="PCM_16")
            rows.append({"audio": relative, "label": label})
    return _write_manifest(folder, filename, ["audio", "label"], rows)


def make_dataset(modality: str, folder: str | Path, labels: Sequence[str] = ("a", "b"), per_label: int = 4,
                 **options: Any) -> Path:
    """:func:`make_text_rows`, :func:`make_images` or :func:`make_audio_clips` by ``modality``; the
    manifest's input column is :data:`INPUT_COLUMNS` ``[modality]``. Returns the manifest's path."""
    makers = {"text": make_text_rows, "image": make_images, "audio": make_audio_clips}
    if modality not in makers:
        raise ValueError(f"no data maker for modality {modality!r}; expected one of {', '.join(makers)}")
    return makers[modality](folder, labels, per_label, **options)


def _write_manifest(folder: Path, filename: str, columns: list[str], rows: list[dict[str, str]]) -> Path:
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_cli(*args: Any, cwd: str | Path | None = None) -> Any:
    """Run ``crossfuse ARGS...`` inside this process (no interpreter start-up) and capture it.

    Returns a :class:`subprocess.CompletedProcess` with ``returncode`` (0 ok, 1 failure, 2 usage
    or input error), ``stdout`` and ``stderr``; ``cwd`` is the working folder for the command.

    >>> result = run_cli("list", "tasks", "--json")                  # doctest: +SKIP
    >>> assert result.returncode == 0 and "my-task" in result.stdout  # doctest: +SKIP
    """
    import contextlib
    import io
    import os
    import subprocess

    from .cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(list(args), code, stdout.getvalue(), stderr.getvalue())


def heavy_imports(module: str) -> list[str]:
    """The :data:`HEAVY_MODULES` that importing plugin ``module`` and running its registration hooks
    (and ``register_commands``) pulls in, measured in a fresh interpreter. Must be empty: registration
    runs on every ``crossfuse`` command, ``--help`` included.

    >>> assert heavy_imports("my_plugin") == []                      # doctest: +SKIP
    """
    import json
    import subprocess
    import sys

    code = (f"import importlib, json, sys\nimport click\nfrom crossfuse.plugins import PluginInfo, PluginManager\n"
            f"manager = PluginManager()\nplugin = importlib.import_module({module!r})\n"
            f"manager.add(plugin, PluginInfo({module!r}, None, 'inline', {module!r}))\n"
            f"manager.register_commands(click.Group())\n"
            f"error = manager.plugins[{module!r}].error\n"
            f"print(json.dumps({{'error': error, 'heavy': sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)}}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"importing {module!r} failed: {result.stderr.strip()[-2000:]}")
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    if outcome["error"]:
        raise RuntimeError(f"plugin {module!r} did not register: {outcome['error']}")
    return outcome["heavy"]
