"""``crossfuse leafspot-severity``: a command of the plugin's own, added through ``register_commands``."""

from __future__ import annotations

import json

import click


def add_commands(cli: click.Group) -> None:
    """Add the plugin's commands to the ``crossfuse`` group (called by the ``register_commands`` hook)."""

    @cli.command("leafspot-severity")
    @click.argument("images", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    def severity_command(images: tuple[str, ...], as_json: bool) -> None:
        """Disease severity of leaf photos (files or folders): % of leaf area with lesions, Horsfall-Barratt grade."""
        # Imported here, not at the top: `crossfuse --help` loads this module and must stay fast.
        from crossfuse.media import IMAGE_EXTENSIONS
        from crossfuse.task import expand_inputs

        from .severity import severity

        results = [severity(path) for path in expand_inputs(list(images), IMAGE_EXTENSIONS)]
        if as_json:
            click.echo(json.dumps(results, indent=2))
            return
        for result in results:
            click.echo(f"{result['severity_percent']:6.2f} %  grade {result['horsfall_barratt']:2d}  {result['input']}")
