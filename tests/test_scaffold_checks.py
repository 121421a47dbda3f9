"""Registration checks: a task's default config is installed and names its task; a task class agrees
with its registration. Failures are reported by `crossfuse plugins` with what to fix, and the
plugin's other registrations keep working."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

import pytest

from crossfuse import hookimpl
from crossfuse.errors import CrossfuseError
from crossfuse.plugins import get_plugin_manager, task_problems
from crossfuse.task import Task
from crossfuse.testing import run_cli

from cli_runner import assert_usage_error

HOOKS = '''
from crossfuse import hookimpl

@hookimpl
def register_tasks(register):
    register("orchard-count", "{name}.task:Task", modality="image", config="{name}:defaults.yaml")

@hookimpl
def register_metrics(register):
    register("orchard-metric", "{name}.task:metric")
'''
TASK_MODULE = '''
from crossfuse.task import Task as Base


class Task(Base):
    name = "orchard-count"
    modality = "image"

    def build_model(self, backbone):
        return backbone

    collate = training_step = predict_step = compute_metrics = build_model


def metric(labels):
    return 0.0
'''


def install_package(site, name, yaml_text=None):
    """An installed distribution whose package ``name`` registers a task with ``name:defaults.yaml``;
    the YAML is written only when ``yaml_text`` is given (a wheel without its package data otherwise)."""
    package = site / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(HOOKS.format(name=name), encoding="utf-8")
    (package / "task.py").write_text(TASK_MODULE, encoding="utf-8")
    if yaml_text is not None:
        (package / "defaults.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[crossfuse]\n{name} = {name}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def plugin_record(name):
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}[name]


def test_a_default_config_missing_from_the_installed_package_is_reported_with_the_fix(site):
    install_package(site, "orchard_nodata")
    record = plugin_record("orchard_nodata")
    assert record["error"] is None  # the plugin still loads: its metric stays usable
    assert record["registered"] == {"tasks": ["orchard-count"], "metrics": ["orchard-metric"]}
    [problem] = record["problems"]
    assert "'orchard_nodata:defaults.yaml' is not in the installed package" in problem
    assert "ship the YAML as package data ([tool.setuptools.package-data]" in problem

    text = run_cli("plugins")
    assert "orchard_nodata 0.1.0 (entry point, orchard_nodata): 1 problem(s)" in text.stdout
    assert "  problem: task 'orchard-count'" in text.stdout
    assert_usage_error(run_cli("run", "orchard-count"), "is not in the installed package")


def test_a_default_config_naming_another_task_is_reported_naming_both(site):
    install_package(site, "orchard_renamed", "task: orchard-counting\nseed: 1\n")
    [problem] = plugin_record("orchard_renamed")["problems"]
    assert "says task: 'orchard-counting'; write task: orchard-count there" in problem


def test_a_default_config_with_an_unknown_section_is_reported(site):
    install_package(site, "orchard_typo", "task: orchard-count\ntrian:\n  epochs: 2\n")
    [problem] = plugin_record("orchard_typo")["problems"]
    assert "unknown top-level key(s) trian" in problem and "valid: task, seed" in problem


def test_a_good_default_config_gives_no_problem(site):
    install_package(site, "orchard_fine", "task: orchard-count\ntrain:\n  epochs: 2\n")
    assert plugin_record("orchard_fine")["problems"] == []


def test_the_builtin_plugins_pass_the_cheap_checks():
    manager = get_plugin_manager()
    manager.check_tasks()
    assert {name: info.problems for name, info in manager.plugins.items()
            if info.problems and info.source == "built-in"} == {}


# -- the class against its registration (checked when the class is first loaded) ------------------


@dataclass
class _Nothing:
    pass


class OrchardTask(Task):
    name = "orchard-yield"
    modality = "image"


def register_inline(name, target, modality="image"):
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(name, target, modality=modality)

    get_plugin_manager().register_plugin(Plugin(), f"inline-{name}")
    return get_plugin_manager().tasks.get(name)


def test_a_class_whose_name_differs_from_its_registration_is_refused_naming_both():
    entry = register_inline("orchard-count", OrchardTask)
    assert_usage_error(run_cli("run", "orchard-count"), "registered as 'orchard-count' but",
                       "OrchardTask.name is 'orchard-yield'", "make the class attribute and the first argument")
    [problem] = task_problems(entry, load_classes=True)
    assert "OrchardTask.name is 'orchard-yield'" in problem


def test_a_class_whose_modality_differs_from_its_registration_is_refused_naming_both():
    entry = register_inline("orchard-yield", OrchardTask, modality="text")
    with pytest.raises(CrossfuseError, match="registered with modality='text' but .*OrchardTask.modality is 'image'"):
        from crossfuse.api import task_class

        task_class(entry.name)


def test_a_target_that_is_not_a_task_is_refused():
    register_inline("orchard-thing", _Nothing)
    assert_usage_error(run_cli("run", "orchard-thing"), "not a crossfuse.task.Task subclass")


def test_plugins_without_check_loads_no_task_class(site):
    """`crossfuse plugins` stays cheap: the class checks need --check (they import torch)."""
    import subprocess
    import sys

    code = ("import sys\nfrom crossfuse.cli import main\ntry:\n    main(['plugins'])\nexcept SystemExit:\n"
            "    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("NO-TORCH"), result.stderr
