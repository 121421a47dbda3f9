"""``missed-disease``: the share of diseased leaves a classifier calls healthy.

For a grower the two errors are not alike: a healthy leaf flagged as diseased costs a second
look, a diseased leaf passed as healthy lets the infection spread. Any task whose labels include
``healthy`` can report it with ``eval.metrics: [missed-disease]`` (lower is better).
"""

from __future__ import annotations

from typing import Any

HEALTHY = "healthy"


def missed_disease(probabilities: Any, labels: Any, task: Any) -> float:
    """Fraction of the split's diseased samples predicted ``healthy`` (NaN when none is diseased).

    The parameter names are what crossfuse passes: the task's ``predict_step`` outputs
    ``probabilities`` ``[N, C]`` and ``labels`` ``[N]`` as NumPy arrays, and the task itself
    (for its ``label_names``).
    """
    import numpy as np

    from crossfuse.errors import CrossfuseError

    names = [str(name).rsplit("/", 1)[-1] for name in getattr(task, "label_names", [])]
    if HEALTHY not in names:
        raise CrossfuseError(f"eval.metrics: missed-disease needs a label called {HEALTHY!r} (or crop/{HEALTHY}); "
                             f"task {task.name!r} has {', '.join(names) or 'none'}")
    healthy = np.array([name == HEALTHY for name in names])
    diseased = ~healthy[np.asarray(labels)]
    if not diseased.any():
        return float("nan")
    called_healthy = healthy[np.asarray(probabilities).argmax(axis=1)]
    return float((called_healthy & diseased).sum() / diseased.sum())
