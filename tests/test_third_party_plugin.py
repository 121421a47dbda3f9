"""examples/third_party_plugin (crossfuse-leafspot) taken the way a third party takes it: a wheel,
installed into a throwaway folder, then crossfuse's commands and the example's own tests run against
that install. Slow: a wheel build and three fresh interpreters."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from plugin_install import build_wheel, crossfuse, install, pytest_in

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).parent.parent / "examples" / "third_party_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example's wheel (package data inside) installed into a throwaway site folder."""
    work = tmp_path_factory.mktemp("leafspot")
    wheel = build_wheel(EXAMPLE, work)
    assert "crossfuse_leafspot/defaults.yaml" in zipfile.ZipFile(wheel).namelist()
    (work / "cwd").mkdir()
    return install(wheel, work / "site"), work / "cwd"


def test_help_and_list_stay_torch_free_with_the_plugin_installed(installed):
    site, cwd = installed
    help_text = crossfuse(["--help"], site, cwd)
    assert help_text.returncode == 0 and "leafspot-severity" in help_text.stdout
    listed = crossfuse(["list", "tasks"], site, cwd)
    assert listed.returncode == 0 and "leaf-disease" in listed.stdout
    assert "TORCH_ABSENT" in help_text.stderr and "TORCH_ABSENT" in listed.stderr


def test_the_plugin_is_listed_with_everything_it_registered_and_no_problem(installed):
    site, cwd = installed
    result = crossfuse(["plugins", "--json"], site, cwd)
    plugin = {p["name"]: p for p in json.loads(result.stdout)}["leafspot"]
    assert (plugin["version"], plugin["source"], plugin["error"], plugin["problems"]) == \
        ("0.1.0", "entry point", None, [])
    assert plugin["registered"] == {"backbones": ["leaf-cnn"], "tasks": ["leaf-disease"],
                                    "datasets": ["plantvillage", "leaf-csv"], "metrics": ["missed-disease"]}


def test_crossfuse_run_trains_the_task_from_the_wheels_default_config(installed):
    site, cwd = installed
    result = crossfuse(["run", "leaf-disease", "--epochs", "1", "--output", "run", "--set", "data.demo_per_class=6",
                        "--set", "backbone.image_size=48", "--set", "train.progress=false"], site, cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((cwd / "run" / "report.json").read_text())
    assert report["backbone"] == "leaf-cnn" and report["sizes"]["train"] >= 20
    assert {"macro_f1", "missed-disease", "balanced-accuracy"} <= set(report["splits"]["test"])


def test_the_examples_own_tests_pass_against_the_wheel(installed):
    site, cwd = installed
    # A copy of the tests alone: no package source beside them to import instead of the wheel's.
    shutil.copytree(EXAMPLE / "tests", cwd / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    tests = pytest_in(cwd / "tests", site, cwd)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
