"""The face task's splits: identity sets for training, pairs for evaluation, and the checks between.

Files are read by the dataset registry (``crossfuse.datasets``): identity sets with
``data.format``, pairs with ``data.pairs_format``, so a third-party plugin can add either kind.
What a reader returned is checked here: identity readers give :class:`FaceImage` items, pairs
readers :class:`Pair` items. Validation (and, with ``data.test_fraction``, test) pairs can be drawn
from training identities held out of training, seeded.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from crossfuse.datasets import Splits, read, resolve_format
from crossfuse.errors import ConfigError, DataError
from crossfuse.media import load_image

from .lfw import FaceImage, Pair

KINDS = {FaceImage: "face images by identity (identity-folders ...)", Pair: "pairs of images (lfw-pairs ...)"}


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

    @property
    def same(self) -> np.ndarray:
        """Ground truth per pair (True: one person)."""
        return np.array([pair.same for pair in self.pairs], dtype=bool)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine of each pair from the L2-normalised embeddings of :attr:`images` (in order)."""
        embeddings = np.asarray(embeddings)
        return (embeddings[self.first] * embeddings[self.second]).sum(1)

    def folds(self) -> list[int] | None:
        """The pairs' LFW folds, or None for a single-fold (Dev) file: the metrics then split it ten ways."""
        folds = [pair.fold for pair in self.pairs]
        return folds if len(set(folds)) > 1 else None


# -- reading through the registry --------------------------------------------------------------


def read_kind(task: str, path: str | Path, format: str, options: Any, key: str, kind: type,
              split: str = "train", chosen_split: bool = False) -> list[Any]:
    """Read ``path`` with the registered reader for ``format`` and check that it gave ``kind`` items.

    A reader that returns :class:`~crossfuse.datasets.Splits` gives its ``split``; any other source
    is one split, which ``chosen_split`` (``crossfuse eval --split``) only accepts as ``test``.
    ``key`` names the config key or flag that gave the path, for the error messages.
    """
    result = read(task, path, format, options, key)
    if chosen_split and split != "test" and not isinstance(result, Splits):
        raise ConfigError(f"--split {split}: {path} holds a single split")
    items = list((result.get(split) if isinstance(result, Splits) else result) or [])
    wrong = next((item for item in items if not isinstance(item, kind)), None)
    if wrong is not None:
        name = resolve_format(task, path, format).name
        got = KINDS.get(type(wrong), f"{type(wrong).__name__} items")
        wanted, setting = (("identity folders (ROOT/NAME/*.jpg)", "data.format") if kind is FaceImage
                           else ("a pairs file", "data.pairs_format"))
        raise DataError(f"{key} {path}: read as {name!r}, which gives {got}; here the task needs {KINDS[kind]}. "
                        f"Give {wanted}, or set {setting} to a format that reads them (`crossfuse list datasets`)")
    if not items:
        raise DataError(f"{key} {path}: no {'faces' if kind is FaceImage else 'pairs'} found "
                        f"{'in its ' + split + ' split ' if isinstance(result, Splits) else ''}(an empty dataset)")
    return items


def pairs_options(data: Any, images_root: str | None) -> Any:
    """The ``data`` section as a pairs reader sees it: ``images_root`` is the image folder the config
    names for these pairs (``data.test_images`` ...), or None for the pairs file's own folder."""
    options = copy.copy(data)
    options.images_root = images_root
    return options


def check_pairs_format(task: str, name: str) -> None:
    """A :class:`ConfigError` naming ``data.pairs_format`` unless ``name`` is auto or a format of ``task``."""
    from crossfuse.datasets import check_format

    if name == "demo":
        raise ConfigError("data.pairs_format: demo is not a pairs format; leave data.test unset for the demo pairs")
    check_format(task, name, key="data.pairs_format")


def pairs_source(data: Any, split: str) -> tuple[str | None, str | None, str]:
    """``(pairs path, image root, key)`` of the ``validation`` or ``test`` split (path None: not given).

    ``data.test`` and ``data.test_pairs`` (its older name) are one key; naming two files is an error.
    """
    new, old = getattr(data, split), getattr(data, f"{split}_pairs")
    if new and old and new != old:
        raise ConfigError(f"data.{split}={new!r} and data.{split}_pairs={old!r}: they are one key "
                          f"(data.{split}_pairs is its older name); keep data.{split}")
    key = f"data.{split}" if new else f"data.{split}_pairs"
    return new or old, getattr(data, f"{split}_images"), key


# -- held-out identities -------------------------------------------------------------------------


def held_out_fraction(data: Any) -> float:
    """``data.validation_fraction``, or ``data.validation_identities`` (its older name) when set."""
    return data.validation_fraction if data.validation_identities is None else data.validation_identities


def hold_out(images: list[FaceImage], fraction: float, pair_count: int, seed: int, people: int | None = None,
             key: str = "data.validation_fraction", split: str = "validation") -> tuple[list[FaceImage], list[Pair]]:
    """Move ``fraction`` of the identities (of ``people``, default those in ``images``) out of
    ``images`` and draw ``pair_count`` distinct ``split`` pairs from their images, half matched
    (fewer where those people hold fewer distinct pairs); seeded.

    ``key`` names the setting that gave ``fraction``, for the error message.
    """
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[str]] = {}
    for image in images:
        by_person.setdefault(image.identity, []).append(image.path)
    eligible = sorted(name for name, paths in by_person.items() if len(paths) >= 2)
    people = people or len(by_person)
    count = int(round(fraction * people))
    if count < 2 or len(eligible) < 2:
        raise DataError(f"{key}={fraction} of {people} people ({len(eligible)} with two or more images) cannot form "
                        f"{split} pairs: give data.{split} (a pairs file), or more people with at least two images "
                        f"each")
    held = set(rng.choice(eligible, size=min(count, len(eligible)), replace=False).tolist())
    kept = [image for image in images if image.identity not in held]
    return kept, _draw_pairs(by_person, sorted(held), pair_count // 2, rng)


def _draw_pairs(by_person: dict[str, list[str]], names: list[str], half: int, rng: np.random.Generator) -> list[Pair]:
    """``half`` matched pairs (two images of one person) and ``half`` mismatched ones (two people),
    each pair distinct: a repeated pair would count one comparison twice in TAR and FAR. Where the
    people hold fewer distinct matched pairs than ``half``, all of them are drawn."""
    def matched() -> tuple[str, str]:
        paths = by_person[names[rng.integers(len(names))]]
        a, b = rng.choice(len(paths), size=2, replace=False)
        return paths[a], paths[b]

    def mismatched() -> tuple[str, str]:
        first, second = rng.choice(len(names), size=2, replace=False)
        pa, pb = by_person[names[first]], by_person[names[second]]
        return pa[rng.integers(len(pa))], pb[rng.integers(len(pb))]

    pairs = []
    for same, draw in ((True, matched), (False, mismatched)):
        for i, (a, b) in enumerate(_distinct(draw, half)):
            pairs.append(Pair(a, b, same, i % 10, "held-out identities"))
    return pairs


def _distinct(draw: Callable[[], tuple[str, str]], count: int, tries_per_pair: int = 20) -> list[tuple[str, str]]:
    """Up to ``count`` pairs from ``draw()``, no pair twice in either order; gives up after
    ``tries_per_pair * count`` draws (a small pool of people runs out of new pairs)."""
    seen: set[frozenset[str]] = set()
    pairs: list[tuple[str, str]] = []
    for _ in range(tries_per_pair * count):
        if len(pairs) == count:
            break
        a, b = draw()
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            pairs.append((a, b))
    return pairs


def check_images(paths: Sequence[str], where: str) -> None:
    """Open every image once before training, so an unreadable file stops the run before it starts."""
    for path in paths:
        load_image(path, where)
