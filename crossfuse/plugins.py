"""The plugin manager: loads the ``crossfuse`` entry points one at a time and fills the registries.

Built-in plugins (the core backbones, the first-party domains) come through the same
entry-point group as third-party ones. A plugin that fails to import or to register is
recorded, shown by ``crossfuse plugins`` and in "unknown name" errors, and never stops the
other plugins or commands.

Environment switches (mainly for tests and for isolating a misbehaving plugin):

- ``CROSSFUSE_LOAD_PLUGINS=a,b``: load only these entry points (empty: load none).
- ``CROSSFUSE_DISABLE_PLUGINS=a,b``: skip these entry points.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .registry import Registry

ENTRY_POINT_GROUP = "crossfuse"
REGISTRATION_HOOKS = {
    "register_backbones": "backbones",
    "register_tasks": "tasks",
    "register_datasets": "datasets",
    "register_metrics": "metrics",
}


@dataclass
class PluginInfo:
    """What ``crossfuse plugins`` shows about one plugin."""

    name: str
    version: str | None
    source: str  # "built-in", "entry point" or "inline"
    module: str
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    problems: list[str] = field(default_factory=list)  # registration checks that failed (the plugin still loads)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"name": self.name, "version": self.version, "source": self.source, "module": self.module,
                "hooks": self.hooks, "registered": self.registered, "error": self.error, "problems": self.problems}


class PluginManager:
    """Owns the pluggy manager, the four registries and the record of every plugin's outcome."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.backbones = Registry("backbone")
        self.tasks = Registry("task")
        self.datasets = Registry("dataset format")
        self.metrics = Registry("metric")
        self.plugins: dict[str, PluginInfo] = {}
        for registry in self.registries().values():
            registry.failure_hint = self.failure_hint

    def registries(self) -> dict[str, Registry]:
        """The registries by plural name (``"backbones"``, ``"tasks"``, ...)."""
        return {"backbones": self.backbones, "tasks": self.tasks, "datasets": self.datasets,
                "metrics": self.metrics}

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that failed to import or register."""
        return [p for p in self.plugins.values() if p.error]

    def failure_hint(self) -> str:
        """A sentence naming broken plugins, appended to "unknown name" errors."""
        if not self.failures:
            return ""
        names = ", ".join(f"{p.name!r} ({p.error.splitlines()[0]})" for p in self.failures)
        return f"Some plugins failed to load and may have provided it: {names}; see `crossfuse plugins`."

    # -- loading -----------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every selected entry point of the ``crossfuse`` group, one at a time."""
        only = _env_names("CROSSFUSE_LOAD_PLUGINS")
        skip = _env_names("CROSSFUSE_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        # Built-ins first, so a third-party plugin can never take a name the core relies on.
        ordered = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (_source(ep) != "built-in",))
        for ep in ordered:
            # An editable and a regular install of one distribution can list an entry point twice.
            if ep.name in seen or ep.name in skip or (only is not None and ep.name not in only):
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            info = PluginInfo(name=ep.name, version=dist.version if dist else None, source=_source(ep),
                              module=ep.value)
            try:
                plugin = ep.load()
            except Exception:  # noqa: BLE001 - a broken plugin must never break the others
                info.error = "import failed: " + _last_line(traceback.format_exc())
                self.plugins[ep.name] = info
                continue
            self.add(plugin, info)

    def register_plugin(self, plugin: Any, name: str, version: str | None = None) -> PluginInfo:
        """Add a plugin object at run time (Python API users, tests): same rules as entry points."""
        info = PluginInfo(name=name, version=version, source="inline", module=getattr(plugin, "__name__", repr(plugin)))
        self.add(plugin, info)
        return info

    def add(self, plugin: Any, info: PluginInfo) -> None:
        """Register ``plugin`` with pluggy and run its registration hooks, recording the outcome."""
        self.plugins[info.name] = info
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except Exception as exc:  # unknown hook names, bad signatures
            self._drop(info, f"rejected: {exc}")
            return
        info.hooks = sorted(impl_name for impl_name in _hook_names(self.pm, info.name))
        for hook_name in REGISTRATION_HOOKS:
            if hook_name in info.hooks:
                try:
                    self._call_register_hook(hook_name, info)
                except Exception:  # noqa: BLE001
                    self._drop(info, f"{hook_name} failed: " + _last_line(traceback.format_exc()))
                    return

    def _call_register_hook(self, hook_name: str, info: PluginInfo) -> None:
        registry = self.registries()[REGISTRATION_HOOKS[hook_name]]
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            if impl.plugin_name != info.name:
                continue

            def register(name: str, target: Any, **meta: Any) -> None:
                registry.register(name, target, owner=info.name, **meta)
                info.registered.setdefault(REGISTRATION_HOOKS[hook_name], []).append(name)

            impl.function(register=register)

    def _drop(self, info: PluginInfo, error: str) -> None:
        """Undo a plugin's partial registrations so that a failed plugin leaves no half state."""
        info.error = error
        for kind, names in info.registered.items():
            registry = self.registries()[kind]
            for name in names:
                entry = registry._entries.pop(name, None)
                for alias in entry.aliases if entry else ():
                    registry._aliases.pop(alias, None)
        info.registered = {}
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)

    def register_commands(self, cli: Any) -> None:
        """Let every plugin add its CLI commands; a failing one is recorded and skipped."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception:  # noqa: BLE001
                info = self.plugins.get(impl.plugin_name)
                if info is not None:
                    info.error = "register_commands failed: " + _last_line(traceback.format_exc())

    def check_tasks(self, load_classes: bool = False) -> None:
        """Run the registration checks of every task and record what fails on its plugin's ``problems``.

        Cheap by default (no torch): each default config exists (package data shipped), parses and
        names its task. With ``load_classes`` each task class is imported too (torch), checked against
        its registration and the contract, and its defaults are resolved against its config classes.
        """
        for entry in self.tasks:
            info = self.plugins.get(entry.owner)
            if info is None:
                continue
            for problem in task_problems(entry, load_classes):
                if problem not in info.problems:
                    info.problems.append(problem)


# -- registration checks ---------------------------------------------------------------------
# Run by `crossfuse plugins` (cheap ones) and `crossfuse plugins --check` (all), and, for the class,
# by crossfuse.api.task_class whenever a task is used. A failing check never drops the plugin: its
# other registrations keep working, and the task itself fails at use with the same message.


def task_problems(entry: Any, load_classes: bool = False) -> list[str]:
    """What is wrong with a registered task, each problem saying what to fix (empty: nothing)."""
    from .errors import CrossfuseError

    problems = []
    try:
        _check_default_config(entry)
    except CrossfuseError as exc:
        problems.append(str(exc))
    if not load_classes or problems:
        return problems
    try:
        from .api import resolve_config

        # task_class inside checks the class against its registration and the contract; then the
        # defaults are typed against the task's own config classes, as `crossfuse run` would.
        resolve_config(entry.name)
    except CrossfuseError as exc:
        problems.append(str(exc))
    except Exception as exc:  # noqa: BLE001 - an import error in the task module, say
        problems.append(f"task {entry.name!r}: loading {entry.target!r} failed: {type(exc).__name__}: {exc}")
    return problems


def _check_default_config(entry: Any) -> None:
    """The task's default YAML is installed, is a mapping of known sections, and names this task."""
    from .api import RUN_SECTIONS, default_config
    from .errors import ConfigError

    location = entry.meta.get("config")
    if not location:
        return
    raw = default_config(entry.name)  # a ConfigError says what is missing (package data, the file)
    named = raw.get("task", entry.name)
    if named not in (entry.name, *entry.aliases):
        raise ConfigError(f"task {entry.name!r} (plugin {entry.owner!r}): its default config {location!r} says "
                          f"task: {named!r}; write task: {entry.name} there (or register the task under that name)")
    unknown = sorted(set(raw) - set(RUN_SECTIONS))
    if unknown:
        raise ConfigError(f"task {entry.name!r} (plugin {entry.owner!r}): its default config {location!r} has unknown "
                          f"top-level key(s) {', '.join(unknown)}; valid: {', '.join(RUN_SECTIONS)}")


def check_task_registration(entry: Any, cls: Any) -> None:
    """The class registered as a task is a Task whose ``name`` and ``modality`` are those it was
    registered with; else a :class:`~crossfuse.errors.CrossfuseError` naming both values."""
    from .errors import CrossfuseError
    from .task import Task

    where = f"task {entry.name!r} (plugin {entry.owner!r})"
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise CrossfuseError(f"{where}: its target {entry.target!r} is {cls!r}, not a crossfuse.task.Task subclass")
    qualified = f"{cls.__module__}.{cls.__qualname__}"
    if cls.name != entry.name:
        raise CrossfuseError(f"{where}: registered as {entry.name!r} but {qualified}.name is {cls.name!r}; "
                             f"make the class attribute and the first argument of register() the same name")
    registered = entry.meta.get("modality")
    if registered and cls.modality != registered:
        raise CrossfuseError(f"{where}: registered with modality={registered!r} but {qualified}.modality is "
                             f"{cls.modality!r}; make them agree")


def _source(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return "built-in" if dist is not None and dist.metadata["Name"] == "crossfuse" else "entry point"


def _hook_names(pm: pluggy.PluginManager, plugin_name: str) -> list[str]:
    plugin = pm.get_plugin(plugin_name)
    return [caller.name for caller in pm.get_hookcallers(plugin) or []]


def _env_names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
        _manager.load_entry_points()
    return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests, or after installing a plugin into a running process)."""
    global _manager
    _manager = None
