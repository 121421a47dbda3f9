"""Run the ``crossfuse`` command inside the test process and check its error contract."""

from __future__ import annotations

import subprocess


def crossfuse(*args, cwd=None):
    """Run the CLI in this process (start-up is the slow part of a subprocess); capture its output."""
    import contextlib
    import io

    from crossfuse.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit:
            code = exit.code
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def assert_usage_error(result, *phrases):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr
