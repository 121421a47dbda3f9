"""docs/plugins.md's examples are real: quotes match the example plugin's files, the format example
runs, and the config layout lists every trainer key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from crossfuse.config import TrainConfig
from crossfuse.errors import DataError

from plugin_dists import install_fake_plugin

ROOT = Path(__file__).parent.parent
DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
QUOTES = re.findall(r"<!-- quoted from (\S+) -->\n```python\n(.*?)```\n", DOCS, flags=re.S)
[RUN_SNIPPET] = re.findall(r"<!-- run by tests/test_scaffold_docs.py -->\n```python\n(.*?)```\n", DOCS, flags=re.S)


def test_the_guide_explains_each_kind_of_addition_and_the_config_layout():
    for heading in ("### A backbone", "### A task", "### A dataset format for a task you do not own", "### A metric",
                    "### A CLI command", "## The default config (YAML)", "## Packaging: the YAML is package data",
                    "## Start from the scaffold"):
        assert f"\n{heading}\n" in DOCS, heading


def test_every_hook_the_example_implements_is_quoted():
    hooks = {match for _, block in QUOTES for match in re.findall(r"def (register_\w+)\(", block)}
    assert hooks == {"register_backbones", "register_tasks", "register_metrics", "register_commands"}


@pytest.mark.parametrize("path, block", QUOTES, ids=[f"{p}:{b.splitlines()[0][:40]}" for p, b in QUOTES])
def test_each_quote_is_the_files_text(path, block):
    assert block in (ROOT / path).read_text(encoding="utf-8"), f"docs/plugins.md quotes {path} as it no longer is"


def test_every_trainer_key_is_in_the_config_layout():
    missing = [f.name for f in dataclasses.fields(TrainConfig) if f"`train.{f.name}`" not in DOCS]
    assert not missing, missing


def test_the_scaffold_api_is_named_in_the_guide():
    from crossfuse import scaffold

    spans = " ".join(re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", DOCS, flags=re.S)))
    for name in ("generate", "plugin_names", "render"):
        assert callable(getattr(scaffold, name)) and re.search(rf"\b{name}\b", spans), name


@pytest.fixture
def semicolon_plugin(tmp_path, monkeypatch):
    """The guide's format example, installed as an entry point like any third-party plugin."""
    site = install_fake_plugin(tmp_path / "site", "semicolon_plugin", RUN_SNIPPET)
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


def finance_data(path, data_format):
    from crossfuse.api import resolve_config, task_class

    config = resolve_config("finance-sentiment", overrides=[f"data.train={path}", f"data.format={data_format}"])
    return task_class("finance-sentiment")(config).load_data()


def test_the_format_example_feeds_a_task_it_does_not_own(semicolon_plugin):
    rows = ["text;label"] + [f"{what} {how};{label}" for label, how in
                             (("positive", "rose sharply"), ("negative", "fell sharply"), ("neutral", "is on Monday"))
                             for what in ("Sales", "Profit", "Orders", "The board meeting", "Margins", "Revenue",
                                          "Output", "Guidance", "Demand", "The dividend")]
    export = semicolon_plugin / "export.csv"
    export.write_text("\n".join(rows) + "\n", encoding="utf-8")
    bundle = finance_data(export, "semicolon-csv")
    assert len(bundle.train) + len(bundle.validation) + len(bundle.test) == 30
    assert sorted({label for _, label in bundle.train}) == [0, 1, 2]


def test_the_format_example_reports_a_bad_header_by_file_and_line(semicolon_plugin):
    export = semicolon_plugin / "export.csv"
    export.write_text("sentence,sentiment\nProfit rose,positive\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"export\.csv, line 1: expected the header text;label"):
        finance_data(export, "semicolon-csv")
