"""The Google Speech Commands layout: one folder per word, split lists, background noise.

::

    ROOT/<word>/<speaker>_nohash_<n>.wav     one-second clips (any rate or channel count is converted later)
    ROOT/validation_list.txt                 "<word>/<file>" per line: the validation split
    ROOT/testing_list.txt                    the test split; every other clip trains
    ROOT/_background_noise_/*.wav            long noise recordings: mixed into training clips and cut into
                                             _silence_ examples, never a word

A folder whose word is not in the command list becomes ``_unknown_``; the ``unknown_fraction``
and ``silence_fraction`` of each split follow TensorFlow's ``speech_commands/input_data.py``
(both are shares of the split's command clips; unknown clips are chosen by a hash of their path,
silence crops from a generator seeded by the split's name, so every run reads the same splits).
Each clip's speaker is the part of its file name before ``_nohash_``. No torch here.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from crossfuse.datasets import Splits
from crossfuse.errors import ConfigError, DataError
from crossfuse.media import AUDIO_EXTENSIONS, lines, read_text

from .actions import SILENCE, UNKNOWN
from .config import V2_12_WORDS

BACKGROUND = "_background_noise_"
LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}
NOHASH = "_nohash_"


@dataclass(frozen=True)
class VoiceClip:
    """One example: a clip of a word, or (``_silence_``) a crop of a background-noise file.

    ``label`` is None for a clip to classify (``crossfuse predict``). ``word`` is the folder the clip
    came from (``bed`` for an unknown word); ``speaker`` is the Speech Commands speaker id (the
    demo's voice name), ``None`` for silence; ``start`` and ``gain`` place and scale a silence crop
    (seconds into the noise file, amplitude factor).
    """

    path: str
    label: str | None
    word: str
    speaker: str | None = None
    start: float = 0.0
    gain: float = 1.0


def class_names(words: Sequence[str]) -> list[str]:
    """The classes a model over ``words`` predicts, in TensorFlow's order: silence, unknown, words."""
    return [SILENCE, UNKNOWN, *words]


def command_words(options: Any = None) -> list[str]:
    """``options.words``, or the v2-12 words when unset; checked for what cannot be a command."""
    words = getattr(options, "words", None)
    words = list(V2_12_WORDS if words is None else words)
    if not words:
        raise ConfigError("data.words is empty; list the command words (folder names)")
    for word in words:
        if isinstance(word, bool):
            raise ConfigError(f"data.words: {word} is not a word. YAML reads a bare yes, no, on or off as a "
                              f"boolean: quote them ('yes', 'on')")
        if not isinstance(word, str) or not word or word in (SILENCE, UNKNOWN, BACKGROUND) or "/" in word:
            raise ConfigError(f"data.words: {word!r} cannot be a command word; give folder names such as "
                              f"yes, lights_on")
    duplicates = sorted({w for w in words if words.count(w) > 1})
    if duplicates:
        raise ConfigError(f"data.words lists {', '.join(duplicates)} more than once")
    return words


def speaker_of(file_name: str) -> str | None:
    """The Speech Commands speaker of ``c50f55b8_nohash_0.wav`` (``c50f55b8``); None without ``_nohash_``."""
    name = Path(file_name).name
    return name.split(NOHASH, 1)[0] if NOHASH in name else None


# -- detection ------------------------------------------------------------------------------------


def is_speech_commands(path: str | Path) -> bool:
    """Whether ``path`` looks like a Speech Commands folder: split lists or a noise folder, or else
    sub-folders holding audio files. Looks at a few entries only."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / BACKGROUND).is_dir() or any((path / name).is_file() for name in LISTS.values()):
        return True
    for count, entry in enumerate(os.scandir(path)):
        if count >= 20:
            break
        if entry.is_dir() and not entry.name.startswith(".") and _holds_audio(entry.path):
            return True
    return False


def _holds_audio(folder: str) -> bool:
    for count, entry in enumerate(os.scandir(folder)):
        if count >= 20:
            return False
        if entry.name.lower().endswith(AUDIO_EXTENSIONS):
            return True
    return False


# -- reading --------------------------------------------------------------------------------------


def read_speech_commands(path: str | Path, options: Any = None) -> Splits | list[VoiceClip]:
    """A Speech Commands folder as :class:`~crossfuse.datasets.Splits` when it holds a validation or
    testing list (unlisted clips train), else as one list of every clip (as :func:`read_every_clip`).

    ``options`` (the task's data config) gives ``words``, ``silence_fraction``, ``unknown_fraction``
    and ``use_lists`` (false: ignore the lists).
    """
    root = _root(path)
    words = command_words(options)
    clips = _word_clips(root, words)
    lists = {split: root / name for split, name in LISTS.items() if (root / name).is_file()}
    if not lists or not getattr(options, "use_lists", True):
        return _finish(clips, root, "all", options)
    listed = _read_lists(root, lists, {f"{clip.word}/{Path(clip.path).name}": clip for clip in clips})
    held = {clip.path for split in listed.values() for clip in split}
    train = [clip for clip in clips if clip.path not in held]
    parts = {name: _finish(split, root, name, options) if split else None for name, split in
             (("train", train), ("validation", listed.get("validation")), ("test", listed.get("test")))}
    return Splits(**parts)


def read_every_clip(path: str | Path, options: Any = None) -> list[VoiceClip]:
    """Every clip of a Speech Commands folder as one split, whatever its lists say (for evaluation)."""
    root = _root(path)
    return _finish(_word_clips(root, command_words(options)), root, "all", options)


def _root(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file"
        raise DataError(f"{root} {what}; expected a Speech Commands folder (one sub-folder of clips per word, "
                        f"validation_list.txt, testing_list.txt, {BACKGROUND}/)")
    return root


def _word_clips(root: Path, words: Sequence[str]) -> list[VoiceClip]:
    """Every clip of every word folder, labelled, in a fixed order; a command without a folder is an error."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != BACKGROUND)
    present = {folder.name for folder in folders}
    for word in words:
        if word not in present:
            raise DataError(f"{root / word}: no such folder, but data.words names {word!r}. Word folders here: "
                            f"{', '.join(sorted(present)) or 'none'}; fix data.words or the folder")
    clips = []
    for folder in folders:
        label = folder.name if folder.name in words else UNKNOWN
        clips += [VoiceClip(str(file), label, folder.name, speaker_of(file.name)) for file in _audio_files(folder)]
    return clips


def _audio_files(folder: Path, others_allowed: bool = False) -> list[Path]:
    """The sound files of ``folder``, each checked to open and hold samples (header only: cheap).

    Another kind of file is an error unless ``others_allowed`` (Speech Commands keeps a README.md
    among its background-noise clips).
    """
    import soundfile

    files = []
    for file in sorted(folder.iterdir()):
        if file.name.startswith(".") or file.is_dir() or (others_allowed and file.suffix.lower() not in
                                                          AUDIO_EXTENSIONS):
            continue
        if file.suffix.lower() not in AUDIO_EXTENSIONS:
            raise DataError(f"{file}: not an audio file (expected {', '.join(AUDIO_EXTENSIONS)}); move it out of "
                            f"the word folder")
        try:
            frames = soundfile.info(str(file)).frames
        except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
            raise DataError(f"{file}: cannot read the audio ({exc}); replace or remove the file") from None
        if frames == 0:
            raise DataError(f"{file}: the clip holds no samples; replace or remove the file")
        files.append(file)
    return files


def _read_lists(root: Path, lists: dict[str, Path], clips: dict[str, VoiceClip]) -> dict[str, list[VoiceClip]]:
    """The clips each list names (``clips`` by ``word/file``); a missing file, a noise clip or a clip
    listed twice is an error."""
    seen: dict[str, str] = {}
    listed: dict[str, list[VoiceClip]] = {}
    for split, list_file in lists.items():
        listed[split] = []
        for number, line in enumerate(lines(read_text(list_file)), start=1):
            entry = line.strip().replace("\\", "/")
            if not entry:
                continue
            where = f"{list_file}, line {number}"
            if entry.split("/", 1)[0] == BACKGROUND:
                raise DataError(f"{where}: {entry} is a background-noise clip; noise is never an example")
            if entry not in clips:
                state = "does not exist" if not (root / entry).is_file() else "is not in a word folder"
                raise DataError(f"{where}: {root / entry} {state}; expected <word>/<file> relative to {root}")
            if entry in seen:
                raise DataError(f"{where}: {entry} is also listed at {seen[entry]}; a clip belongs to one split")
            seen[entry] = where
            listed[split].append(clips[entry])
    return listed


# -- unknown and silence ---------------------------------------------------------------------------


def _finish(clips: Sequence[VoiceClip], root: Path, split: str, options: Any) -> list[VoiceClip]:
    """Commands, a share of the unknown clips and silence crops, as the v2-12 recipe builds a split."""
    commands = [clip for clip in clips if clip.label != UNKNOWN]
    unknown = [clip for clip in clips if clip.label == UNKNOWN]
    fraction = getattr(options, "unknown_fraction", 0.1)
    if fraction is not None:
        unknown = sorted(unknown, key=lambda clip: _digest(clip.path))[: math.ceil(len(commands) * fraction)]
    count = math.ceil(len(commands) * getattr(options, "silence_fraction", 0.1))
    silence = silence_clips(background_folder(root, options), count, split)
    return commands + sorted(unknown, key=lambda clip: clip.path) + silence


def background_folder(root: str | Path, options: Any = None) -> Path:
    """Where the background recordings are: ``options.noise`` (a folder of recordings, or a Speech
    Commands folder holding ``_background_noise_``) when set, else ``root/_background_noise_``."""
    chosen = getattr(options, "noise", None)
    if chosen is None:
        return Path(root) / BACKGROUND
    folder = Path(chosen)
    if not folder.is_dir():
        raise DataError(f"data.noise: {folder} is not a folder; give a folder of background recordings")
    return folder / BACKGROUND if (folder / BACKGROUND).is_dir() else folder


def noise_files(folder: str | Path) -> list[Path]:
    """The recordings of a background folder (none when it is absent), each checked to open."""
    return recordings(folder) if Path(folder).is_dir() else []


def recordings(folder: str | Path) -> list[Path]:
    """The sound files of ``folder`` (other files are skipped), each checked to open and hold samples."""
    return _audio_files(Path(folder), others_allowed=True)


def silence_clips(folder: str | Path, count: int, split: str) -> list[VoiceClip]:
    """``count`` one-second ``_silence_`` examples cut from the recordings in the background
    ``folder`` at random places and levels (0 to 1 times the file's own), the same ones for the same
    ``split`` name."""
    import soundfile

    files = noise_files(folder) if count > 0 else []
    if not files:
        return []
    durations = {file: soundfile.info(str(file)).duration for file in files}
    rng = random.Random(f"silence/{split}")
    crops = []
    for _ in range(count):
        file = files[rng.randrange(len(files))]
        start = rng.uniform(0.0, max(0.0, durations[file] - 1.0))
        crops.append(VoiceClip(str(file), SILENCE, SILENCE, None, round(start, 4), round(rng.uniform(0.0, 1.0), 4)))
    return crops


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# -- splitting by speaker --------------------------------------------------------------------------


def hold_out_speakers(clips: Sequence[VoiceClip], fraction: float, salt: str) -> tuple[list[VoiceClip],
                                                                                         list[VoiceClip]]:
    """Split ``clips`` into (rest, held out) so that every speaker lands on one side.

    A speaker is held out when the hash of ``salt`` and its id falls below ``fraction`` (as
    TensorFlow's ``which_set`` does), so a speaker keeps its side when clips are added. Clips
    without a speaker (silence crops, files without ``_nohash_``) are each their own group.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"the held-out fraction must be in (0, 1), got {fraction}")
    rest, held = [], []
    for clip in clips:
        group = clip.speaker or f"{clip.path}@{clip.start}"
        share = int(_digest(f"{salt}/{group}")[:8], 16) / 0x1_0000_0000
        (held if share < fraction else rest).append(clip)
    return rest, held
