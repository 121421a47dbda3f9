"""`crossfuse new-plugin`: names checked, a complete package written for each modality, nothing overwritten.

These tests render and inspect the package (fast). tests/test_scaffold_plugins.py installs each
modality's package and runs its own tests (slow).
"""

from __future__ import annotations

import ast
import dataclasses

import pytest
import yaml

from crossfuse.config import TrainConfig
from crossfuse.errors import ConfigError
from crossfuse.scaffold import MODALITIES, TRAIN_NOTES, generate, plugin_names, render
from crossfuse.testing import run_cli

from cli_runner import assert_usage_error

EXPECTED_FILES = {"pyproject.toml", "README.md", ".gitignore", "tests/conftest.py", "tests/test_crossfuse_leafspot.py",
                  *(f"crossfuse_leafspot/{name}" for name in ("__init__.py", "task.py", "data.py", "demo.py",
                                                              "defaults.yaml"))}


@pytest.fixture(params=MODALITIES)
def package(request, tmp_path):
    return request.param, generate("leafspot", request.param, output=tmp_path / "leafspot")


def files_of(folder):
    return {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name, short, package_name", [("leafspot", "leafspot", "crossfuse_leafspot"),
                                                       ("crossfuse-leaf-spot", "leaf-spot", "crossfuse_leaf_spot"),
                                                       ("x2", "x2", "crossfuse_x2")])
def test_names_are_derived_from_the_plugin_name(name, short, package_name):
    names = plugin_names(name)
    assert (names.short, names.package, names.dist, names.task, names.plugin) == \
        (short, package_name, f"crossfuse-{short}", short, short)
    assert plugin_names(name, task="leaf-disease").task == "leaf-disease"


@pytest.mark.parametrize("name, suggestion", [("Leaf_Spot", "leaf-spot"), ("2leaf", "leaf"), ("leaf-", "leaf"),
                                              ("leaf--spot", "leaf-spot"), ("a" * 41, "a" * 40)])
def test_a_bad_name_is_refused_with_what_would_do(name, suggestion):
    with pytest.raises(ConfigError, match=f"lower-case letters.*e.g. {suggestion}\\)"):
        plugin_names(name)


def test_a_bad_task_name_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match="--task 'Leaf Disease'"):
        plugin_names("leafspot", task="Leaf Disease")


def test_every_modality_gets_a_complete_package(package):
    modality, folder = package
    assert set(files_of(folder)) == EXPECTED_FILES
    for relative, path in files_of(folder).items():
        text = path.read_text(encoding="utf-8")
        assert "{{" not in text, relative
        if relative.endswith(".py"):
            ast.parse(text, relative)
    assert f'modality="{modality}"' in (folder / "crossfuse_leafspot" / "__init__.py").read_text()


def test_the_pyproject_has_the_entry_point_the_package_data_and_a_test_extra(package):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    _, folder = package
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == "crossfuse-leafspot"
    assert project["project"]["entry-points"]["crossfuse"] == {"leafspot": "crossfuse_leafspot"}
    assert project["tool"]["setuptools"]["package-data"] == {"crossfuse_leafspot": ["*.yaml"]}
    assert "pytest>=7.4" in project["project"]["optional-dependencies"]["test"]


def test_the_defaults_are_offline_safe_and_list_every_trainer_key(package):
    modality, folder = package
    defaults = yaml.safe_load((folder / "crossfuse_leafspot" / "defaults.yaml").read_text())
    assert set(defaults) == {"task", "seed", "backbone", "data", "head", "train", "eval"}
    assert defaults["task"] == "leafspot"
    assert defaults["backbone"] | {"pretrained": False} == defaults["backbone"]
    assert defaults["backbone"]["name"] in {"tiny-bert", "tiny-cnn", "mel-cnn"}
    assert set(defaults["train"]) == {field.name for field in dataclasses.fields(TrainConfig)}


def test_the_readme_has_a_row_for_every_data_key(package):
    _, folder = package
    readme = (folder / "README.md").read_text()
    data = yaml.safe_load((folder / "crossfuse_leafspot" / "defaults.yaml").read_text())["data"]
    missing = [key for key in data if f"data.{key}" not in readme]
    assert not missing, missing
    assert "| key | default | meaning |" in readme


def test_every_trainer_key_has_a_note_for_the_generated_yaml():
    assert set(TRAIN_NOTES) == {field.name for field in dataclasses.fields(TrainConfig)}


def test_an_existing_folder_is_never_written_over(tmp_path):
    folder = tmp_path / "leafspot"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists; new-plugin never writes over files"):
        generate("leafspot", "text", output=folder)
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leafspot"]  # no staging folder left behind


def test_names_taken_by_installed_plugins_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="package named 'crossfuse_finance' is already installed"):
        generate("finance", "text", output=tmp_path / "a")
    with pytest.raises(ConfigError, match="task 'finance-sentiment' is already registered by plugin 'finance'"):
        generate("news", "text", task="finance-sentiment", output=tmp_path / "b")
    assert not list(tmp_path.iterdir())


def test_render_refuses_an_unknown_placeholder():
    assert render("{{a}}-{{b}}", {"a": "1", "b": "2"}) == "1-2"
    with pytest.raises(KeyError, match="no value for placeholder"):
        render("{{missing}}", {})


def test_the_command_writes_the_package_and_says_what_to_do_next(tmp_path):
    result = run_cli("new-plugin", "leafspot", "--modality", "audio", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "crossfuse install -e ./leafspot" in result.stdout and "crossfuse run leafspot" in result.stdout
    assert (tmp_path / "leafspot" / "crossfuse_leafspot" / "task.py").is_file()
    assert_usage_error(run_cli("new-plugin", "leafspot", "--modality", "audio", cwd=tmp_path), "already exists")


def test_the_command_refuses_a_bad_name_and_an_unknown_modality(tmp_path):
    assert_usage_error(run_cli("new-plugin", "Leaf_Spot", "--modality", "image", cwd=tmp_path), "e.g. leaf-spot")
    result = run_cli("new-plugin", "leafspot", "--modality", "video", cwd=tmp_path)
    assert result.returncode == 2 and "'video' is not one of 'text', 'image', 'audio'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_writing_a_plugin_imports_no_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom crossfuse.cli import main\ntry:\n    main(['new-plugin', 'leafspot', '--modality', 'image'])\n"
            "except SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.stdout.strip().endswith("0 False"), result.stdout + result.stderr
