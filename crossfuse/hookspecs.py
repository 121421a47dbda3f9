"""The hooks a crossfuse plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` and named after
the specs below, exposed through the ``crossfuse`` entry-point group::

    [project.entry-points.crossfuse]
    my_domain = "my_domain_plugin"

Registration hooks receive a ``register`` callable bound to the plugin, so crossfuse knows who
registered what and can reject a name that another plugin already took. Registering must be
cheap: pass names, metadata and a lazy ``"module:attribute"`` target; do not import torch at
module import time.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("crossfuse")
hookimpl = pluggy.HookimplMarker("crossfuse")


@hookspec
def register_backbones(register):
    """Add backbones to the registry. Called once, when plugins load.

    ``register(name, target, *, modality, feature_dim=None, description="", aliases=(), **meta)``:
    ``target(config)`` takes the run's :class:`crossfuse.config.BackboneConfig` and returns a
    ``torch.nn.Module`` with ``modality``, ``feature_dim`` and its modality's preprocessing
    (``tokenize`` / ``transform`` / ``featurize``); give it as the callable or its ``"module:attr"``
    path, resolved only when the backbone is built. ``modality`` is ``"text"``, ``"image"`` or
    ``"audio"``. The return value is ignored.
    """


@hookspec
def register_tasks(register):
    """Add tasks (``crossfuse run NAME``). Called once, when plugins load.

    ``register(name, target, *, modality, description="", config=None, aliases=(), **meta)``:
    ``target`` is a :class:`crossfuse.task.Task` subclass or its ``"module:Class"`` path;
    ``config`` is the default YAML as ``"package:file.yaml"`` (package data) or a path.
    The return value is ignored.
    """


@hookspec
def register_datasets(register):
    """Add dataset formats a task can read (``data.format`` in a config). Called once.

    ``register(name, target, *, tasks, extensions=(), detect=None, layout="", description="", aliases=())``:
    ``target`` is a reader ``reader(path, options) -> list | crossfuse.datasets.Splits`` (or its
    ``"module:attr"`` path), ``tasks`` lists the task names whose samples it returns (a third
    party can add a file format to an existing task this way), ``extensions`` and ``detect`` (a
    cheap ``"module:attr"`` ``detect(path) -> bool``) let ``data.format=auto`` find it. The
    return value is ignored.
    """


@hookspec
def register_metrics(register):
    """Add named metric functions that tasks and other plugins can look up. Called once.

    ``register(name, target, *, description="", aliases=(), **meta)``: ``target`` is a
    function computing the metric on a whole split, or its ``"module:attr"`` path.
    The return value is ignored.
    """


@hookspec
def register_commands(cli):
    """Add sub-commands to the ``crossfuse`` click group ``cli``. Called when the CLI starts.

    Import heavy modules inside the command functions, not at plugin import time, so that
    ``crossfuse --help`` stays fast. The return value is ignored.
    """
