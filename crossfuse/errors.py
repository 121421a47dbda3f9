"""Errors a user can act on. The CLI prints their message and exits with code 2."""

from __future__ import annotations


class CrossfuseError(Exception):
    """A usage or input error: bad config, missing file, unknown name, malformed data.

    The message must say what was wrong, where (file, line, key) and what to do.
    """

    exit_code = 2


class ConfigError(CrossfuseError):
    """A configuration key, value or file is invalid."""


class DataError(CrossfuseError):
    """A dataset file is missing or malformed."""


class UnknownNameError(CrossfuseError, KeyError):
    """A registry lookup failed. Subclasses KeyError so ``registry[name]`` code stays natural."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataWarning(UserWarning):
    """Data was usable but changed on the way in (e.g. degenerate boxes dropped); says what and how much.

    The CLI prints these as ``warning: ...`` lines; Python users filter them with :mod:`warnings`.
    """


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the trainer saved a resumable checkpoint; knows how to continue."""

    def __init__(self, task: str, run_dir: object):
        super().__init__(f"{task} interrupted")
        self.task, self.run_dir = task, run_dir

    @property
    def hint(self) -> str:
        """The command that continues the run."""
        return f"crossfuse run {self.task} --output {self.run_dir} --resume"
