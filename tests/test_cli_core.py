"""The CLI shell: start-up imports, version, help, JSON output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# What start-up must not import: the model stack and the serving, export and tracking extras.
HEAVY = ("torch", "transformers", "fastapi", "uvicorn", "starlette", "onnx", "onnxruntime", "onnxscript",
         "tensorboard", "mlflow")


def run_cli(*args):
    """Run the CLI in a fresh interpreter; print afterwards (on stderr) which HEAVY modules got imported."""
    code = ("import sys\nfrom crossfuse.cli import main\ntry:\n    main()\nexcept SystemExit as exit:\n"
            f"    print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
            "    raise\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "backbones"], ["plugins"], ["run", "--help"],
                                  ["--version"], ["serve", "--help"], ["export", "--help"], ["runs", "--help"],
                                  ["compare", "--help"], ["report", "--help"]])
def test_listing_and_help_import_neither_torch_nor_the_extras(args):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("HEAVY="), result.stderr[-300:]


def test_version_is_printed():
    from crossfuse import __version__

    assert run_cli("--version").stdout.strip() == f"crossfuse, version {__version__}"


def test_list_json_is_one_document_on_stdout():
    result = run_cli("list", "datasets", "--json")
    formats = {row["name"]: row for row in json.loads(result.stdout)}
    assert formats["phrasebank"]["tasks"] == ["finance-sentiment"]
    assert formats["phrasebank"]["plugin"] == "finance"


def test_unknown_command_is_a_usage_error_with_exit_2():
    result = run_cli("trian")
    assert result.returncode == 2 and "No such command" in result.stderr


def test_errors_have_no_traceback_unless_debug():
    plain = run_cli("run", "finance-sentiment", "--set", "train.epochs=x")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert "train.epochs must be int" in plain.stderr
    debug = run_cli("--debug", "run", "finance-sentiment", "--set", "train.epochs=x")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_task_predict_options_are_split_from_the_inputs():
    import dataclasses

    import click

    from crossfuse.cli import _task_options

    @dataclasses.dataclass
    class Options:
        score_threshold: float = 0.5
        draw: bool = True
        gallery: str | None = None

    items, options = _task_options(["a.png", "--score-threshold", "0.3", "b/", "--draw=false", "--gallery=g/"],
                                   Options)
    assert items == ["a.png", "b/"] and options == {"score_threshold": "0.3", "draw": False, "gallery": "g/"}
    assert _task_options(["--draw", "x"], Options) == (["x"], {"draw": True})
    with pytest.raises(click.UsageError, match="no such option --gallary for this run's task; its options: "
                                               "--score-threshold, --draw, --gallery"):
        _task_options(["--gallary", "g/"], Options)
    with pytest.raises(click.UsageError, match="option --gallery needs a value"):
        _task_options(["x.png", "--gallery"], Options)
    with pytest.raises(click.UsageError, match="--draw is a flag"):
        _task_options(["--draw=maybe"], Options)


def test_summaries_put_the_main_metric_first_and_leave_counts_to_the_report():
    import numpy as np

    from crossfuse.runs import summarize

    metrics = {"accuracy": 0.75, "n_pairs": 600, "roc_auc": np.float64(0.8), "eer": np.float32(0.25),
               "flags": True, "roc": {"fpr": [0.0]}, "images": np.int64(3)}
    assert summarize(metrics, "roc_auc") == "roc_auc=0.8000, accuracy=0.7500, eer=0.2500"
    assert summarize(metrics, "roc_auc", limit=2) == "roc_auc=0.8000, accuracy=0.7500"


@pytest.mark.parametrize("args", [["install", "-e", "./my-plugin"], ["install", "-U", "--no-deps", "-r", "req.txt"],
                                  ["uninstall", "crossfuse-semicolon"]])
def test_install_and_uninstall_pass_pip_options_through_to_this_interpreter(args, monkeypatch):
    import subprocess as sp

    from cli_runner import crossfuse

    calls = []
    monkeypatch.setattr(sp, "call", lambda command: calls.append(command) or 0)
    assert crossfuse(*args).returncode == 0
    expected = [sys.executable, "-m", "pip", args[0], *(["-y"] if args[0] == "uninstall" else []), *args[1:]]
    assert calls == [expected]
