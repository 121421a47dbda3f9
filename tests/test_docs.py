"""Every hook is documented, in its docstring and in docs/plugins.md (a test fails if one is not)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from crossfuse import hookspecs

HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
DOCS = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")


def test_there_are_hooks():
    assert set(HOOKS) >= {"register_backbones", "register_tasks", "register_datasets", "register_metrics",
                          "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_saying_when_it_is_called(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Called" in doc and "return value" in doc.lower()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_section_in_the_plugin_guide(hook):
    assert f"### {hook}\n" in DOCS


PUBLIC_MODULES = ["crossfuse.task", "crossfuse.datasets", "crossfuse.media", "crossfuse.augment", "crossfuse.pictures",
                  "crossfuse.metrics", "crossfuse.explain", "crossfuse.heads", "crossfuse.outputs", "crossfuse.runs",
                  "crossfuse.errors", "crossfuse.testing", "crossfuse.calibration",
                  "crossfuse.distill"]


def _public_names(module_name):
    import importlib

    module = importlib.import_module(module_name)
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module_name]


# Words inside inline code spans (fenced blocks set aside first, so their backticks do not pair up).
CODE_WORDS = {word for span in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", DOCS, flags=re.S))
              for word in re.findall(r"\w+", span)}


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_helper_is_named_in_the_plugin_guide(module_name):
    missing = [name for name in _public_names(module_name) if name not in CODE_WORDS]
    assert not missing, f"{module_name}: undocumented in docs/plugins.md: {missing}"


def test_every_task_contract_method_is_in_the_plugin_guide():
    from crossfuse.task import Task

    methods = [name for name, value in vars(Task).items() if not name.startswith("_") and inspect.isfunction(value)]
    missing = [name for name in methods if f"`{name}(" not in DOCS]
    assert not missing, f"Task methods missing from docs/plugins.md: {missing}"
