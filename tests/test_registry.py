"""Registry: lookups, aliases, owners, lazy targets and helpful errors."""

from __future__ import annotations

import pytest

from crossfuse.errors import CrossfuseError, UnknownNameError
from crossfuse.registry import Registry


@pytest.fixture
def registry():
    registry = Registry("backbone")
    registry.register("resnet18", "math:sqrt", owner="core", aliases=("rn18",), modality="image")
    registry.register("tiny-bert", len, owner="core", modality="text")
    return registry


def test_get_by_name_and_alias_returns_the_same_entry(registry):
    assert registry.get("rn18") is registry.get("resnet18")
    assert registry.info("rn18") == {"name": "resnet18", "plugin": "core", "aliases": ["rn18"], "modality": "image"}


def test_string_targets_are_imported_only_on_load(registry):
    import math

    assert registry.get("resnet18").target == "math:sqrt"
    assert registry.get("resnet18").load() is math.sqrt
    assert registry.get("tiny-bert").load() is len


def test_duplicate_name_from_another_plugin_names_both_plugins(registry):
    with pytest.raises(CrossfuseError) as error:
        registry.register("resnet18", len, owner="vision-extra")
    assert "'vision-extra'" in str(error.value) and "'core'" in str(error.value)


def test_alias_clashing_with_a_name_is_rejected(registry):
    with pytest.raises(CrossfuseError, match="already registered by plugin 'core'"):
        registry.register("other", len, owner="x", aliases=("tiny-bert",))


def test_unknown_name_suggests_close_matches_and_lists_names(registry):
    with pytest.raises(UnknownNameError) as error:
        registry.get("resnet19")
    message = str(error.value)
    assert "Did you mean 'resnet18'" in message
    assert "Available: resnet18, tiny-bert." in message
    assert isinstance(error.value, KeyError)


def test_unknown_name_mentions_failed_plugins(registry):
    registry.failure_hint = lambda: "Some plugins failed to load: 'broken'."
    with pytest.raises(UnknownNameError, match="'broken'"):
        registry.get("nothing-like-it")


def test_names_filter_with_wildcards_and_owner(registry):
    assert registry.names("res*") == ["resnet18"]
    assert registry.names() == ["resnet18", "tiny-bert"]
    assert registry.owned_by("core") == ["resnet18", "tiny-bert"]
    assert "rn18" in registry and "nope" not in registry and len(registry) == 2
