"""The ``crossfuse`` command. Torch is imported only inside the commands that train or predict.

Exit codes: 0 ok, 1 failure, 2 usage or input error (a message, no traceback unless --debug),
130 interrupted (a resumable checkpoint is saved first).
"""

from __future__ import annotations

import json
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
def plugins_command(as_json: bool) -> None:
    """Show installed plugins: version, source, hooks, what each registered, failures."""
    from .plugins import get_plugin_manager

    infos = [p.as_dict() for p in get_plugin_manager().plugins.values()]
    if as_json:
        _emit_json(infos)
        return
    for info in infos:
        status = f"FAILED: {info['error']}" if info["error"] else "ok"
        click.echo(f"{info['name']} {info['version'] or ''} ({info['source']}, {info['module']}): {status}")
        if info["hooks"]:
            click.echo(f"  hooks: {', '.join(info['hooks'])}")
        for kind, names in info["registered"].items():
            click.echo(f"  {kind}: {', '.join(names)}")


@cli.command("run")
@click.argument("task")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.lr=1e-4.")
@click.option("--backbone", help="Registry name, hf:ORG/NAME or a local directory.")
@click.option("--epochs", type=int)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--output", type=click.Path(file_okay=False), help="Run directory (default runs/TASK/TIMESTAMP).")
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --output (default: the latest run of TASK).")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --output.")
def run_command(task: str, config_file: str | None, overrides: tuple[str, ...], resume: bool, overwrite: bool,
                **options: Any) -> None:
    """Train and evaluate TASK, writing a run directory."""
    from . import api
    from .runs import summarize

    api.task_class(task)  # unknown task: fail before anything heavy
    result = api.run(task, config=config_file, overrides=overrides, resume=resume, overwrite=overwrite, **options)
    report = result.report
    if not report:  # non-main rank under torchrun
        return
    click.echo(f"run directory: {result.run_dir}")
    for split, metrics in report["splits"].items():
        click.echo(f"{split}: " + summarize(metrics, report["main_metric"]))
    for name, split_metrics in (report.get("baseline") or {}).get("splits", {}).items():
        click.echo(f"baseline {report['baseline']['name']} {name}: " + summarize(split_metrics, report["main_metric"]))
    click.echo(f"wall time: {report['wall_time_s']} s")


@cli.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", required=True, type=click.Path(), help="Dataset file or folder in a format the task reads.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="e.g. data.text_column=sentence")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def eval_command(run_dir: str, data: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Score the trained run RUN_DIR on another dataset."""
    from . import api

    metrics = api.evaluate(run_dir, data, overrides)
    if as_json:
        _emit_json(metrics)
        return
    for key, value in metrics.items():
        if isinstance(value, float):
            click.echo(f"{key}: {value:.4f}")
        elif isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            click.echo(f"{key}:")  # per-class tables and the like
            for name, row in value.items():
                click.echo(f"  {name}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in row.items()))
        else:
            text = json.dumps(value, default=str, ensure_ascii=False)
            if len(text) > 160:  # curves, example lists: a terminal line is not the place
                size = f"{len(value)} entries" if isinstance(value, (list, dict)) else f"{len(text)} characters"
                text = f"({size}; --json prints them)"
            click.echo(f"{key}: {text}")


@cli.command("predict", context_settings={"ignore_unknown_options": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1)
@click.option("--from-file", type=click.File("r", encoding="utf-8"), help="Read inputs, one per line ('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def predict_command(run_dir: str, inputs: tuple[str, ...], from_file: Any, as_json: bool) -> None:
    """Predict with the trained run RUN_DIR on INPUTS (texts, image or audio files, folders).

    The run's task may take options of its own (a score threshold, a gallery folder ...), given
    anywhere on the line as --name VALUE; an unknown option lists the ones the task has.
    """
    from . import api

    items, options = _task_options(list(inputs), api.predict_options(run_dir))
    items += [line.rstrip("\n") for line in from_file if line.strip()] if from_file else []
    if not items:
        raise click.UsageError("give at least one input, or --from-file FILE")
    predictor = api.load(run_dir)
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


@cli.command("install")
@click.argument("packages", nargs=-1, required=True)
@click.option("-U", "--upgrade", is_flag=True)
def install_command(packages: tuple[str, ...], upgrade: bool) -> None:
    """pip install plugin PACKAGES into the environment crossfuse runs in."""
    command = [sys.executable, "-m", "pip", "install", *(["--upgrade"] if upgrade else []), *packages]
    sys.exit(subprocess.call(command))


@cli.command("uninstall")
@click.argument("packages", nargs=-1, required=True)
def uninstall_command(packages: tuple[str, ...]) -> None:
    """pip uninstall PACKAGES from the environment crossfuse runs in."""
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "uninstall", "-y", *packages]))


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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: plugin commands, then error handling with the documented exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
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
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 1
    except CrossfuseError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("\nInterrupted. If training had started, its state is saved in RUN_DIR/checkpoints; continue "
                   "with `crossfuse run TASK --output RUN_DIR --resume`.", err=True)
        code = 130
    except Exception as exc:  # noqa: BLE001 - last resort: a message, a hint, exit 1
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
