"""Every hook is documented, in its docstring and in docs/plugins.md (a test fails if one is not)."""

from __future__ import annotations

import inspect
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
