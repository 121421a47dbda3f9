"""examples/third_party_plugin installs with pip and extends an existing task through the public API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "third_party_plugin"


def crossfuse(args, site, cwd):
    env = dict(os.environ, PYTHONPATH=str(site), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", "from crossfuse.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_example_plugin_installs_registers_and_reads_its_format(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--target", str(site), str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr

    plugins = {p["name"]: p for p in json.loads(crossfuse(["plugins", "--json"], site, tmp_path).stdout)}
    assert plugins["semicolon"]["source"] == "entry point" and plugins["semicolon"]["version"] == "0.1.0"
    assert plugins["semicolon"]["registered"] == {"datasets": ["semicolon-csv"], "metrics": ["balanced-accuracy"]}

    rows = ["text;label"] + [f"{w} rose sharply;positive" for w in ("Sales", "Profit", "Orders", "Margins")] * 5 \
        + [f"{w} fell sharply;negative" for w in ("Sales", "Profit", "Orders", "Margins")] * 5 \
        + [f"The {w} meeting is on Monday;neutral" for w in ("board", "annual", "general", "budget")] * 5
    (tmp_path / "export.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = crossfuse(["run", "finance-sentiment", "--backbone", "tiny-bert", "--epochs", "1", "--output", "run",
                        "--set", "data.format=semicolon-csv", "--set", "data.train=export.csv",
                        "--set", "train.progress=false"], site, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["sizes"] == {"train": 48, "validation": 6, "test": 6}

    bad = crossfuse(["run", "finance-sentiment", "--backbone", "tiny-bert", "--set", "data.format=semicolon-csv",
                     "--set", "data.train=run/config.yaml"], site, tmp_path)
    assert bad.returncode == 2 and "expected columns 'text' and 'label'" in bad.stderr
