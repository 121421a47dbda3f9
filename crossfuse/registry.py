"""Named registries for backbones, tasks, dataset formats and metrics.

Entries are cheap descriptions (names, metadata, and a *lazy* loader such as
``"crossfuse_finance.task:FinanceSentimentTask"``) so that listing them never imports torch.
Each entry remembers the plugin that registered it; registering a taken name from another
plugin is an error that names both.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import CrossfuseError, UnknownNameError


@dataclass(frozen=True)
class Entry:
    """One registered item.

    ``target`` is either the object itself or a ``"module:attribute"`` string resolved on
    first use by :meth:`load`. ``meta`` holds what listings show (modality, description, ...).
    """

    name: str
    target: Any
    owner: str
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """Return the target, importing it if it was registered as ``"module:attr"``."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        obj = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj


class Registry:
    """A name -> :class:`Entry` mapping with aliases, owners and helpful lookup errors.

    >>> tasks = Registry("task")
    >>> tasks.register("demo", "builtins:len", owner="me", description="a demo")
    >>> tasks.get("demo").meta["description"]
    'a demo'
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        # Set by the plugin manager so "unknown name" errors can mention broken plugins.
        self.failure_hint: Callable[[], str] = lambda: ""

    def register(self, name: str, target: Any, *, owner: str, aliases: tuple[str, ...] | list[str] = (),
                 **meta: Any) -> Entry:
        """Add an entry; a name or alias already taken by another entry is an error naming both owners."""
        if not name or not isinstance(name, str):
            raise CrossfuseError(f"plugin {owner!r} tried to register a {self.kind} with an invalid name {name!r}")
        for key in (name, *aliases):
            existing = self._resolve(key)
            if existing is not None:
                raise CrossfuseError(
                    f"{self.kind} name {key!r} registered by plugin {owner!r} is already registered by "
                    f"plugin {existing.owner!r}; uninstall one of them or rename the {self.kind}")
        entry = Entry(name=name, target=target, owner=owner, aliases=tuple(aliases), meta=dict(meta))
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def _resolve(self, name: str) -> Entry | None:
        return self._entries.get(self._aliases.get(name, name))

    def get(self, name: str) -> Entry:
        """Return the entry for ``name`` or an alias; unknown names raise with a "did you mean"."""
        entry = self._resolve(name)
        if entry is None:
            raise UnknownNameError(self.unknown_message(name))
        return entry

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown ``name``: close matches, the available names, broken plugins."""
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        message = f"unknown {self.kind} {name!r}."
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        message += f" Available: {', '.join(sorted(self._entries)) or '(none)'}."
        hint = self.failure_hint()
        if hint:
            message += " " + hint
        return message

    def __contains__(self, name: str) -> bool:
        return self._resolve(name) is not None

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching an fnmatch ``pattern``."""
        return [e.name for e in self if fnmatch.fnmatch(e.name, pattern)]

    def owned_by(self, owner: str) -> list[str]:
        """Names registered by plugin ``owner``."""
        return [e.name for e in self if e.owner == owner]

    def info(self, name: str) -> dict[str, Any]:
        """A JSON-friendly description of one entry."""
        entry = self.get(name)
        return {"name": entry.name, "plugin": entry.owner, "aliases": list(entry.aliases), **entry.meta}
