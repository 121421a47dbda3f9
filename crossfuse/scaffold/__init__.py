"""``crossfuse new-plugin``: write a complete plugin package for one modality.

The package installs, passes its own tests and runs as generated: a task with every contract
method filled in, a dataset reader registered for it, a default config shipped as package data,
deterministic demo data and tests on :mod:`crossfuse.testing`. Nothing here imports torch.

>>> from crossfuse.scaffold import generate
>>> generate("leafspot", "image", output=tmp_path / "leafspot")      # doctest: +SKIP
PosixPath('.../leafspot')
"""

from .generate import MODALITIES, TRAIN_NOTES, PluginNames, generate, plugin_names, render

__all__ = ["MODALITIES", "TRAIN_NOTES", "PluginNames", "generate", "plugin_names", "render"]
