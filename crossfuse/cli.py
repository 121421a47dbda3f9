"""The ``crossfuse`` command. Torch is imported only inside the commands that train or predict.

Exit codes: 0 ok, 1 failure, 2 usage or input error (a message, no traceback unless --debug),
130 interrupted (a resumable checkpoint is saved first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from typing import Any

import click

from . import __version__
from .errors import CrossfuseError

LIST_KINDS = ("tasks", "backbones", "datasets", "metrics")


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[", ".join(map(str, r.get(c) or [])) if isinstance(r.get(c), list) else str(r.get(c, "") or "")
              for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crossfuse")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Foundation-model backbones for domain problems, through plugins.

    \b
    Quick start:
      crossfuse list tasks
      crossfuse run finance-sentiment --output runs/fin
      crossfuse predict runs/fin "Profit doubled"
    """


@cli.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS), default="tasks")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(kind: str, as_json: bool) -> None:
    """List registered tasks, backbones, dataset formats or metrics."""
    from .plugins import get_plugin_manager

    if kind == "datasets":
        from .datasets import listing

        rows = listing()
    else:
        registry = get_plugin_manager().registries()[kind]
        rows = [registry.info(name) for name in registry.names()]
    if as_json:
        _emit_json(rows)
        return
    columns = {"tasks": ["name", "modality", "plugin", "description"],
               "backbones": ["name", "modality", "feature_dim", "plugin", "description"],
               "datasets": ["name", "tasks", "plugin", "description"],
               "metrics": ["name", "plugin", "description"]}[kind]
    _table(rows, columns)
    failures = get_plugin_manager().failures
    if failures:
        click.echo(f"\n{len(failures)} plugin(s) failed to load: {', '.join(p.name for p in failures)} "
                   f"(see `crossfuse plugins`)", err=True)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--check", is_flag=True,
              help="Also load every task class (imports torch): name, modality, contract and default config.")
def plugins_command(as_json: bool, check: bool) -> None:
    """Show installed plugins: version, source, hooks, what each registered, failures and problems.

    A problem is a registration check that failed (a default config missing from the installed
    package, a task whose class and registration disagree): the plugin loads, that task does not run.
    """
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    manager.check_tasks(load_classes=check)
    infos = [p.as_dict() for p in manager.plugins.values()]
    if as_json:
        _emit_json(infos)
        return
    click.echo(f"interpreter: {sys.executable} (crossfuse install / uninstall run pip here)")
    for info in infos:
        status = f"FAILED: {info['error']}" if info["error"] else \
            f"{len(info['problems'])} problem(s)" if info["problems"] else "ok"
        click.echo(f"{info['name']} {info['version'] or ''} ({info['source']}, {info['module']}): {status}")
        if info["hooks"]:
            click.echo(f"  hooks: {', '.join(info['hooks'])}")
        for kind, names in info["registered"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
        for problem in info["problems"]:
            click.echo(f"  problem: {problem}")


@cli.command("run")
@click.argument("task")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.lr=1e-4.")
@click.option("--data", type=click.Path(), help="Dataset file or folder in a format the task reads (detected).")
@click.option("--backbone", help="Registry name, hf:ORG/NAME, timm:NAME or a local directory.")
@click.option("--init-from", type=click.Path(file_okay=False), help="Start the backbone from this run's fine-tuned one.")
@click.option("--distill-from", type=click.Path(file_okay=False),
              help="Distil: train against this finished run's outputs too (a teacher of the same task).")
@click.option("--epochs", type=int)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--output", type=click.Path(file_okay=False), help="Run directory (default runs/TASK/TIMESTAMP).")
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --output (default: the latest run of TASK).")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --output.")
@click.option("--nproc", type=click.IntRange(min=1), help="Train in N local processes (torchrun; one per GPU).")
def run_command(task: str, config_file: str | None, overrides: tuple[str, ...], resume: bool, overwrite: bool,
                nproc: int | None, **options: Any) -> None:
    """Train and evaluate TASK, writing a run directory."""
    from . import api
    from .runs import summarize

    api.task_class(task)  # unknown task: fail before anything heavy
    if nproc and nproc > 1:
        from .distributed import launch

        raise click.exceptions.Exit(launch(nproc, _without_option(_invocation, "--nproc")))
    result = api.run(task, config=config_file, overrides=overrides, resume=resume, overwrite=overwrite, **options)
    report = result.report
    if not report:  # non-main rank under torchrun
        return
    click.echo(f"run directory: {result.run_dir}")
    for split, metrics in report["splits"].items():
        click.echo(f"{split}: " + summarize(metrics, report["main_metric"]))
    for name, split_metrics in (report.get("baseline") or {}).get("splits", {}).items():
        click.echo(f"baseline {report['baseline']['name']} {name}: " + summarize(split_metrics, report["main_metric"]))
    if report.get("distillation"):
        _distillation_table(report["distillation"])
    click.echo(f"wall time: {report['wall_time_s']} s")


def _distillation_table(side: dict[str, Any]) -> None:
    """Teacher and student of a distilled run, one line each: size, speed and the main metric per split."""
    splits = list(side["student"]["splits"])
    rows = [{"model": who, "backbone": str(side[who]["backbone"]), "parameters": f"{side[who]['parameters'] / 1e6:.2f} M",
             "size": f"{side[who]['size_mb']} MB", f"samples/s ({side['speed_split']})": str(side[who]["samples_per_s"]),
             **{f"{side['main_metric']} {split}": _metric_line("", side[who]["splits"][split])[2:] for split in splits}}
            for who in ("student", "teacher")]
    click.echo(f"distillation (alpha {side['alpha']}, temperature {side['temperature']}; on {side['device']}): "
               f"student {side['speedup']}x the teacher's speed at {side['size_ratio']}x its parameters")
    _table(rows, list(rows[0]))


@cli.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", required=True, type=click.Path(), help="Dataset file or folder in a format the task reads.")
@click.option("--split", help="Which split of a source that holds several (default: test).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="e.g. data.text_column=sentence")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per forward pass (default 64).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def eval_command(run_dir: str, data: str, split: str | None, overrides: tuple[str, ...], device: str,
                 batch_size: int | None, as_json: bool) -> None:
    """Score the trained run RUN_DIR on another dataset."""
    from . import api

    metrics = api.evaluate(run_dir, data, overrides, device=device, batch_size=batch_size, split=split)
    if as_json:
        _emit_json(metrics)
        return
    for key, value in metrics.items():
        click.echo(_metric_line(key, value))


def _metric_line(key: str, value: Any) -> str:
    """One metric for the terminal: numbers to four places, tables by row, long lists summarised."""
    if isinstance(value, float):
        return f"{key}: {value:.4f}"
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return f"{key}:\n" + "\n".join(f"  {name}: " + ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()) for name, row in value.items())
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > 160:  # curves, example lists: a terminal line is not the place
        size = f"{len(value)} entries" if isinstance(value, (list, dict)) else f"{len(text)} characters"
        text = f"({size}; --json prints them)"
    return f"{key}: {text}"


class _PredictCommand(click.Command):
    """``crossfuse predict RUN_DIR --help`` also lists the options of the task that trained RUN_DIR."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(a in ("-h", "--help") for a in args):
            ctx.meta["crossfuse_run_dir"] = next((a for a in args if not a.startswith("-")), None)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        run_dir = ctx.meta.get("crossfuse_run_dir")
        if not run_dir:
            formatter.write_paragraph()
            formatter.write_text("`crossfuse predict RUN_DIR --help` also lists the options of RUN_DIR's task.")
            return
        try:
            from . import api

            options_class, task = api.predict_options(run_dir), api.run_task(run_dir)
        except CrossfuseError as exc:
            formatter.write_paragraph()
            formatter.write_text(f"(cannot list the task's options: {exc})")
            return
        with formatter.section(f"Options of this run's task ({task})"):
            formatter.write_dl(_option_rows(options_class) or [("(none)", "")])


# Task options that the command's own options of the same name set (--batch-size feeds options.batch_size).
COMMAND_OWNED = {"batch_size"}


def _option_rows(options_class: type) -> list[tuple[str, str]]:
    """``(--name TYPE, help [default])`` for each field of a task's PredictOptions dataclass."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(options_class)
    rows = []
    for field in dataclasses.fields(options_class):
        if field.name in COMMAND_OWNED:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]  # Optional[X] -> X
        kind = inner[0] if len(inner) == 1 else kind
        if kind is not bool:
            flag += " " + getattr(kind, "__name__", str(kind)).replace("typing.", "").upper()
        text = field.metadata.get("help", "")
        if field.default not in (dataclasses.MISSING, None):
            text += f" [default: {field.default}]"
        rows.append((flag, text.strip()))
    return rows


@cli.command("predict", cls=_PredictCommand, context_settings={"ignore_unknown_options": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1)
@click.option("--from-file", type=click.File("r", encoding="utf-8"), help="Read inputs, one per line ('-' for stdin).")
@click.option("--explain", is_flag=True, help="Also explain each prediction (heat maps, token attributions).")
@click.option("--explain-dir", type=click.Path(file_okay=False),
              help="Folder for the explanation pictures (default RUN_DIR/explanations/TIMESTAMP).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), help="Inputs per forward pass (default: the task's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def predict_command(run_dir: str, inputs: tuple[str, ...], from_file: Any, explain: bool, explain_dir: str | None,
                    device: str, batch_size: int | None, as_json: bool) -> None:
    """Predict with the trained run RUN_DIR on INPUTS (texts, image or audio files, folders).

    The run's task may take options of its own (a score threshold, a gallery folder ...), given
    anywhere on the line as --name VALUE; `crossfuse predict RUN_DIR --help` lists them.
    """
    from . import api

    items, options = _task_options(list(inputs), api.predict_options(run_dir))
    items += [line.rstrip("\n") for line in from_file if line.strip()] if from_file else []
    if not items:
        raise click.UsageError("give at least one input, or --from-file FILE")
    predictor = api.load(run_dir, device=device, batch_size=batch_size)
    if explain:
        predictions = predictor.explain(items, output=explain_dir, **options)
    else:
        predictions = predictor.predict(items, **options)
    if as_json:
        _emit_json(predictions)
        return
    for prediction in predictions:
        click.echo(predictor.describe(prediction))


def _task_options(tokens: list[str], options_class: type) -> tuple[list[str], dict[str, Any]]:
    """Split ``--name value`` / ``--name=value`` / ``--flag`` task options from the inputs.

    Values stay strings here; the task's dataclass types convert them (with a message naming the
    option when they do not fit).
    """
    import dataclasses
    import typing

    hints = typing.get_type_hints(options_class)
    names = [f.name for f in dataclasses.fields(options_class)]
    items: list[str] = []
    options: dict[str, Any] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position]
        position += 1
        if not token.startswith("--") or token == "--":
            items.append(token)
            continue
        flag, has_value, value = token[2:].partition("=")
        key = flag.replace("-", "_")
        if key not in names:
            valid = ", ".join("--" + n.replace("_", "-") for n in names) or "none"
            raise click.UsageError(f"no such option --{flag} for this run's task; its options: {valid}")
        if hints[key] is bool:
            if value.lower() not in ("", "true", "false"):
                raise click.UsageError(f"option --{flag} is a flag: give --{flag} or --{flag}=false")
            value = value.lower() != "false"
        elif not has_value:
            if position >= len(tokens):
                raise click.UsageError(f"option --{flag} needs a value")
            value, position = tokens[position], position + 1
        options[key] = value
    return items, options


@cli.command("demo")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def demo_command(task: str, as_json: bool) -> None:
    """Show where TASK's demo data lies (writing it into the cache first if needed).

    The folders hold real files in the task's formats: use them with `crossfuse predict` and `eval`.
    """
    from . import api

    paths = api.demo_paths(task)
    if as_json:
        _emit_json(paths)
        return
    for split, path in paths.items():
        click.echo(f"{split}: {path}")


@cli.command("new-plugin")
@click.argument("name")
@click.option("--modality", required=True, type=click.Choice(["text", "image", "audio"]),
              help="What the task reads; picks the backbone, the preprocessing and the demo data.")
@click.option("--task", help="The task's name (default: NAME without a crossfuse- prefix).")
@click.option("--output", type=click.Path(file_okay=False), help="The folder to create (default ./NAME); must not exist.")
def new_plugin_command(name: str, modality: str, task: str | None, output: str | None) -> None:
    """Write a complete plugin package NAME: a task, its reader, defaults, demo data and tests.

    \b
    It installs, passes its own tests and runs as generated:
      crossfuse new-plugin leafspot --modality image
      crossfuse install -e ./leafspot
      crossfuse run leafspot
    """
    from .scaffold import generate, plugin_names

    names = plugin_names(name, task)
    folder = generate(name, modality, task=task, output=output)
    click.echo(f"wrote {folder}/: package {names.package} (distribution {names.dist}), task {names.task!r} "
               f"({modality}), dataset format {names.format!r}")
    click.echo(f"next:\n  crossfuse install -e {_shell_path(folder)}\n  crossfuse plugins --check\n"
               f"  crossfuse run {names.task}\n  cd {_shell_path(folder)} && python -m pytest")


def _shell_path(path: Any) -> str:
    """``path`` as one would type it: ``./NAME`` for a relative folder, quoted when it needs it."""
    import shlex
    from pathlib import Path

    text = str(path)
    if not Path(text).is_absolute() and not text.startswith("."):
        text = "./" + text
    return shlex.quote(text)


@cli.command("serve")
@click.argument("runs", nargs=-1, required=True, metavar="[NAME=]RUN_DIR...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="uvicorn worker processes; each loads the runs and batches its own requests.")
@click.option("--token", envvar="CROSSFUSE_SERVE_TOKEN", show_envvar=True,
              help="Require 'Authorization: Bearer TOKEN' on every route but /health.")
@click.option("--max-batch-size", type=click.IntRange(min=1), help="Inputs per model call (default: serve.max_batch_size).")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), help="How long a request waits for others (serve.max_wait_ms).")
@click.option("--max-inputs", type=click.IntRange(min=1), help="Inputs in one request (serve.max_inputs).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True),
              help="Files of one request (serve.max_upload_mb).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
def serve_command(runs: tuple[str, ...], host: str, port: int, workers: int, token: str | None,
                  device: str, **limits: Any) -> None:
    """Serve trained runs over HTTP: POST /predict, GET /info, /health, /docs.

    \b
    One run:      crossfuse serve runs/fin            -> /predict, /info
    Several runs: crossfuse serve fin=runs/a face=runs/b -> /runs/fin/predict, /runs/face/info
    A text task takes JSON {"inputs": ["..."], "options": {...}}; a file task multipart files (+ option
    fields). Concurrent requests are batched per run (and per worker). Binds 127.0.0.1 unless --host says.
    """
    from .serve import ServeSettings, run_names, serve

    settings = ServeSettings(run_names(runs), device=device, token=token or None, limits=limits)
    serve(settings, host=host, port=port, workers=workers)


@cli.command("runs")
@click.argument("task", required=False)
@click.option("--root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder to search for run directories.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def runs_command(task: str | None, root: str, as_json: bool) -> None:
    """List the runs under --root (of TASK only, when given), newest first.

    Status: finished (report.json), resumable (a resume state, no report: `crossfuse run TASK
    --output RUN_DIR --resume`) or incomplete.
    """
    from .history import list_runs, runs_table

    summaries = list_runs(root, task=task)
    if as_json:
        _emit_json([s.as_dict() for s in summaries])
        return
    if not summaries:
        click.echo(f"no runs{' of ' + task if task else ''} under {root}")
        return
    for line in runs_table(summaries):
        click.echo(line)


@cli.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_A RUN_B [RUN ...]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def compare_command(run_dirs: tuple[str, ...], as_json: bool) -> None:
    """Compare runs: the config keys whose values differ, and the metrics side by side."""
    from .history import compare_runs, comparison_text

    if len(run_dirs) < 2:
        raise click.UsageError("give at least two run directories")
    comparison = compare_runs(run_dirs)
    if as_json:
        _emit_json(comparison)
        return
    for line in comparison_text(comparison):
        click.echo(line)


@cli.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of RUN_DIR/report.html.")
@click.option("--overwrite", is_flag=True, help="Replace --output if the file exists.")
def report_command(run_dir: str, output: str | None, overwrite: bool) -> None:
    """(Re)write the self-contained HTML report of RUN_DIR (RUN_DIR/report.html by default)."""
    from pathlib import Path

    from .html_report import write_html_report

    if output and Path(output).exists() and not overwrite:
        raise CrossfuseError(f"--output {output} already exists; pass --overwrite to replace it, or choose another file")
    click.echo(f"wrote {write_html_report(run_dir, output)}")


@cli.command("export")
@click.argument("run_dir", type=click.Path())
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "torchscript"]), help="File format.")
@click.option("--quantize", type=click.Choice(["int8"]), help="Dynamic int8 weights (compared with fp32 side by side).")
@click.option("--output", type=click.Path(file_okay=False), help="Folder (default RUN_DIR/export/FORMAT[-int8]).")
@click.option("--overwrite", is_flag=True, help="Replace an export already in the folder.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Samples per batch of the parity check and the timing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def export_command(run_dir: str, fmt: str, quantize: str | None, output: str | None, overwrite: bool,
                   batch_size: int, as_json: bool) -> None:
    """Export the trained run RUN_DIR to ONNX or TorchScript and check it against PyTorch.

    Writes the model file, preprocessing.json (inputs, tokenizer / image / audio settings, labels,
    what the file leaves out) and parity.json (the task's main metric both ways, max |difference|).
    """
    from . import api
    from .export import summary_lines

    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = api.export(run_dir, fmt, quantize=quantize, output=output, overwrite=overwrite, batch_size=batch_size,
                        log=log)
    if as_json:
        _emit_json({"folder": str(result.folder), "model": str(result.model_file), "descriptor": result.descriptor,
                    "parity": result.parity})
        return
    for line in summary_lines(result):
        click.echo(line)


PIP_PASS_THROUGH = {"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


@cli.command("install", context_settings=PIP_PASS_THROUGH)
@click.argument("pip_args", nargs=-1, required=True, type=click.UNPROCESSED)
def install_command(pip_args: tuple[str, ...]) -> None:
    """pip install plugin packages into the environment crossfuse runs in.

    Everything after `install` goes to pip as it is: `crossfuse install -e ./my-plugin`,
    `crossfuse install -U crossfuse-leafspot`, `crossfuse install --no-deps -r plugins.txt`.
    """
    sys.exit(_pip("install", *pip_args))


@cli.command("uninstall", context_settings=PIP_PASS_THROUGH)
@click.argument("pip_args", nargs=-1, required=True, type=click.UNPROCESSED)
def uninstall_command(pip_args: tuple[str, ...]) -> None:
    """pip uninstall packages (without asking) from the environment crossfuse runs in."""
    sys.exit(_pip("uninstall", "-y", *pip_args))


def _pip(*args: str) -> int:
    """Run pip in crossfuse's own interpreter (so a plugin lands where crossfuse will find it)."""
    command = [sys.executable, "-m", "pip", *args]
    click.echo(f"running: {' '.join(command)}", err=True)
    return subprocess.call(command)


def _show_data_warnings_plainly() -> None:
    """Print :class:`DataWarning` as ``warning: message`` (no source line): it is about the data, not code."""
    import warnings

    from .errors import DataWarning

    default = warnings.showwarning
    if getattr(default, "crossfuse", False):  # installed by an earlier main() in this process
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    show.crossfuse = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _interrupted(interrupt: BaseException) -> int:
    """Ctrl-C: say how to continue (the trainer saved a checkpoint first); exit code 130."""
    from .errors import RunInterrupted

    if os.environ.get("RANK", "0") != "0":
        return 130  # under torchrun, rank 0 says it once
    if isinstance(interrupt, RunInterrupted):
        click.echo(f"\nInterrupted. The training state is saved in {interrupt.run_dir}/checkpoints; continue with "
                   f"`{interrupt.hint}`.", err=True)
    else:
        click.echo("\nInterrupted.", err=True)
    return 130


_invocation: list[str] = []  # the arguments main() was given (--nproc passes them on to torchrun)


def _without_option(args: list[str], name: str) -> list[str]:
    """``args`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Console entry point: plugin commands, then error handling with the documented exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    _invocation[:] = args
    debug = "--debug" in args
    from .plugins import get_plugin_manager

    get_plugin_manager().register_commands(cli)
    _show_data_warnings_plainly()
    try:
        code = cli.main(args=args, prog_name="crossfuse", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Abort as exc:
        interrupt = exc.__cause__ or exc.__context__
        if isinstance(interrupt, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            code = _interrupted(interrupt)
        else:
            click.echo("Aborted.", err=True)
            code = 1
    except CrossfuseError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt as interrupt:
        code = _interrupted(interrupt)
    except Exception as exc:  # noqa: BLE001 - last resort: a message, a hint, exit 1
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
