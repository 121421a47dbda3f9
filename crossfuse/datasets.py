"""The dataset registry at work: ``data.format`` resolved to a registered reader, ``auto`` detected.

A plugin registers a reader for one or more tasks (``register_datasets``)::

    register("kitti", "my_pkg.formats:read_kitti", tasks=["driving-detection"],
             detect="my_pkg.formats:is_kitti_folder", description="KITTI training/ folders")
    register("csv", "my_pkg.data:read_csv", tasks=["finance-sentiment"], extensions=[".csv"])

The core, not the task, turns ``data.format`` into a reader: a registered name, ``auto`` (the
reader whose ``detect`` accepts the path, else the one whose ``extensions`` match it) or
``demo`` (the task's built-in data). A reader is called as ``reader(path, options)`` with the
task's ``data`` config section as ``options`` (``path`` is a :class:`pathlib.Path`) and returns the task's samples: a list (one
split), or :class:`Splits` when the file or folder holds its own train / validation / test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError, DataError

# Formats every task understands; the core handles them, so they are not registry entries.
SPECIAL_FORMATS = {
    "auto": "the registered format whose layout or file extension matches data.train (the default)",
    "demo": "the task's built-in demo data (data.train unset)",
}


@dataclass
class Splits:
    """What a reader returns for a source that holds its own splits (a MedMNIST ``.npz``, an image
    folder with ``train/ val/ test/``). A missing split is ``None``."""

    train: Sequence[Any] | None = None
    validation: Sequence[Any] | None = None
    test: Sequence[Any] | None = None

    def get(self, name: str) -> Sequence[Any] | None:
        """The split called ``name`` (``val`` is accepted for ``validation``)."""
        name = {"val": "validation", "valid": "validation"}.get(name, name)
        if name not in ("train", "validation", "test"):
            raise ConfigError(f"unknown split {name!r}; expected train, validation or test")
        return getattr(self, name)


def formats_for(task: str) -> list[Any]:
    """The registry entries of the dataset formats that feed ``task`` (sorted by name)."""
    from .plugins import get_plugin_manager

    return [entry for entry in get_plugin_manager().datasets if task in entry.meta.get("tasks", ())]


def check_format(task: str, name: str, key: str = "data.format") -> None:
    """Raise a :class:`ConfigError` (naming config ``key``) unless ``name`` is ``auto``, ``demo`` or a
    format registered for ``task``."""
    if name in SPECIAL_FORMATS:
        return
    from .plugins import get_plugin_manager

    registry = get_plugin_manager().datasets
    known = [entry.name for entry in formats_for(task)]
    if name in registry:
        entry = registry.get(name)
        if task in entry.meta.get("tasks", ()):
            return
        raise ConfigError(f"{key}: {name!r} (plugin {entry.owner!r}) reads data for "
                          f"{', '.join(entry.meta.get('tasks', ())) or 'no task'}, not {task!r}; formats for {task}: "
                          f"{', '.join(['auto', *known])}")
    hint = registry.failure_hint()
    raise ConfigError(f"{key}: unknown format {name!r} for {task}; choose one of "
                      f"{', '.join(['auto', 'demo', *known])} (`crossfuse list datasets`).{' ' + hint if hint else ''}")


def resolve_format(task: str, path: str | Path, name: str = "auto") -> Any:
    """The registry entry that reads ``path`` for ``task``: ``name`` itself, or the detected one for ``auto``."""
    from .plugins import get_plugin_manager

    check_format(task, name)
    if name == "demo":
        raise ConfigError("data.format=demo reads no file: leave data.train unset for the demo data, "
                          "or set data.format to auto or a registered format")
    if name != "auto":
        return get_plugin_manager().datasets.get(name)
    return _detect(task, Path(path))


def _detect(task: str, path: Path) -> Any:
    candidates = formats_for(task)
    by_layout = [entry for entry in candidates if entry.meta.get("detect") and _layout_matches(entry, path)]
    suffix = path.suffix.lower()
    by_extension = [entry for entry in candidates if path.is_file()
                    and suffix in {e.lower() for e in entry.meta.get("extensions", ())}]
    found = by_layout or by_extension
    if len(found) == 1:
        return found[0]
    described = "; ".join(f"{entry.name} ({_recognises(entry)})" for entry in candidates) or "none is registered"
    if found:
        names = ", ".join(entry.name for entry in found)
        raise DataError(f"{path}: several formats for {task} match ({names}); set data.format to one of them")
    state = "does not exist" if not path.exists() else "is a folder" if path.is_dir() else "is a file"
    raise DataError(f"{path}: cannot tell its dataset format ({path.name or path} {state}). Formats for {task}: "
                    f"{described}. Set data.format, or see `crossfuse list datasets`")


def _layout_matches(entry: Any, path: Path) -> bool:
    from .registry import Entry

    detector = Entry(entry.name, entry.meta["detect"], entry.owner).load()
    return bool(detector(path))


def _recognises(entry: Any) -> str:
    parts = [entry.meta.get("layout") or ("a recognised layout" if entry.meta.get("detect") else "")]
    if entry.meta.get("extensions"):
        parts.append("files " + " ".join(entry.meta["extensions"]))
    return ", ".join(p for p in parts if p) or "only by name"


def read(task: str, path: str | Path, name: str, options: Any, key: str = "data") -> Sequence[Any] | Splits:
    """Read ``path`` for ``task`` with the reader for format ``name`` (``auto`` detects it).

    A path that does not exist is a :class:`DataError` naming the config ``key`` that gave it,
    before any reader runs.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{key}: no such file or folder: {path}")
    entry = resolve_format(task, path, name)
    result = entry.load()(path, options)
    if not isinstance(result, (Splits, list, tuple)) and not hasattr(result, "__len__"):
        raise TypeError(f"dataset reader {entry.name!r} (plugin {entry.owner!r}) returned {type(result).__name__}; "
                        f"a reader returns a list of samples or crossfuse.datasets.Splits")
    return result


def listing() -> list[dict[str, Any]]:
    """``crossfuse list datasets`` rows: ``auto`` and ``demo``, then every registered format."""
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    everyone = ["(every task)"]
    rows = [{"name": name, "tasks": everyone, "plugin": "core", "description": text}
            for name, text in SPECIAL_FORMATS.items()]
    for name in manager.datasets.names():
        info = manager.datasets.info(name)
        info.pop("detect", None)  # an import path, not something a reader of the listing needs
        rows.append(info)
    return rows
