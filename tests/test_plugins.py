"""Plugin loading: built-ins through entry points, broken plugins recorded and never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crossfuse.errors import UnknownNameError
from crossfuse.hookspecs import hookimpl
from crossfuse.plugins import get_plugin_manager

from plugin_dists import install_fake_plugin

GOOD = '''
from crossfuse import hookimpl

@hookimpl
def register_tasks(register):
    register("headline-topic", "headline_topic_task:Task", modality="text", description="topics")

@hookimpl
def register_commands(cli):
    import click

    @cli.command("hello-plugin")
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from a plugin")
'''
BROKEN_IMPORT = "import a_module_that_does_not_exist\n"
DUPLICATE = '''
from crossfuse import hookimpl

@hookimpl
def register_backbones(register):
    register("my-extra-encoder", "x:y", modality="text")
    register("resnet18", "x:y", modality="image")   # taken by the core plugin
'''
UNKNOWN_HOOK = '''
from crossfuse import hookimpl

@hookimpl
def register_widgets(register):
    pass
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_builtin_plugins_load_through_the_entry_point_group():
    manager = get_plugin_manager()
    assert manager.plugins["core"].source == "built-in"
    assert manager.plugins["finance"].registered["tasks"] == ["finance-sentiment"]
    assert "resnet18" in manager.backbones and "phrasebank" in manager.datasets
    assert not [p.name for p in manager.failures if p.source == "built-in"]  # whatever else is installed


def test_a_plugin_that_fails_to_import_is_recorded_and_others_still_load(site):
    install_fake_plugin(site, "broken_plugin", BROKEN_IMPORT)
    manager = get_plugin_manager()
    assert manager.plugins["broken_plugin"].error.startswith("import failed: ModuleNotFoundError")
    assert "finance-sentiment" in manager.tasks
    with pytest.raises(UnknownNameError, match="'broken_plugin' \\(import failed"):
        manager.tasks.get("fraud-detection")


def test_a_duplicate_name_drops_the_plugin_with_an_error_naming_both(site):
    install_fake_plugin(site, "dup_plugin", DUPLICATE)
    manager = get_plugin_manager()
    error = manager.plugins["dup_plugin"].error
    assert "'resnet18'" in error and "'dup_plugin'" in error and "'core'" in error
    # Nothing half-registered: its first backbone was withdrawn, the core's resnet18 stays.
    assert "my-extra-encoder" not in manager.backbones
    assert manager.backbones.get("resnet18").owner == "core"


def test_a_plugin_with_an_unknown_hook_is_rejected_not_fatal(site):
    install_fake_plugin(site, "odd_plugin", UNKNOWN_HOOK)
    manager = get_plugin_manager()
    assert manager.plugins["odd_plugin"].error.startswith("rejected:")
    assert "register_widgets" in manager.plugins["odd_plugin"].error


def test_third_party_plugin_registers_tasks_with_version_and_source(site):
    install_fake_plugin(site, "topic_plugin", GOOD, version="2.3.0")
    info = get_plugin_manager().plugins["topic_plugin"]
    assert (info.version, info.source, info.error) == ("2.3.0", "entry point", None)
    assert info.hooks == ["register_commands", "register_tasks"]
    assert get_plugin_manager().tasks.get("headline-topic").owner == "topic_plugin"


def test_load_and_disable_switches_select_plugins(site, monkeypatch):
    from crossfuse.plugins import reset_plugin_manager

    install_fake_plugin(site, "topic_plugin", GOOD)
    monkeypatch.setenv("CROSSFUSE_LOAD_PLUGINS", "core,topic_plugin")
    assert sorted(get_plugin_manager().plugins) == ["core", "topic_plugin"]
    reset_plugin_manager()
    monkeypatch.delenv("CROSSFUSE_LOAD_PLUGINS")
    monkeypatch.setenv("CROSSFUSE_DISABLE_PLUGINS", "topic_plugin")
    assert "topic_plugin" not in get_plugin_manager().plugins


def test_inline_plugin_objects_register_like_entry_points():
    class Inline:
        @hookimpl
        def register_metrics(self, register):
            register("matthews", "sklearn.metrics:matthews_corrcoef", description="Matthews correlation")

    manager = get_plugin_manager()
    info = manager.register_plugin(Inline(), "inline-metrics")
    assert info.registered == {"metrics": ["matthews"]}
    assert manager.metrics.get("matthews").load().__name__ == "matthews_corrcoef"


def _crossfuse(args, site=None):
    env = dict(os.environ, PYTHONPATH=str(site) if site else "")
    return subprocess.run([sys.executable, "-c", "from crossfuse.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_keeps_working_with_a_broken_plugin_and_reports_it(site):
    install_fake_plugin(site, "broken_plugin", BROKEN_IMPORT)
    listing = _crossfuse(["list", "tasks"], site)
    assert listing.returncode == 0 and "finance-sentiment" in listing.stdout
    assert "broken_plugin" in listing.stderr
    report = _crossfuse(["plugins", "--json"], site)
    plugins = {p["name"]: p for p in json.loads(report.stdout)}
    assert plugins["broken_plugin"]["error"].startswith("import failed")
    assert plugins["finance"]["registered"]["datasets"] == ["phrasebank", "csv", "tsv", "jsonl"]


def test_plugins_can_add_cli_commands(site):
    install_fake_plugin(site, "topic_plugin", GOOD)
    result = _crossfuse(["hello-plugin"], site)
    assert result.returncode == 0 and result.stdout.strip() == "hello from a plugin"
