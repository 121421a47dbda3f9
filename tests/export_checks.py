"""Helpers of the `crossfuse export` tests: export a fixture's run, and check the file against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest


def export_fit(run: Any, folder: Path, **options: Any) -> Any:
    """ONNX export of a :func:`crossfuse.testing.smoke_fit` run into ``folder``, reading the demo data from
    the cache that fit left beside the run."""
    from crossfuse import api
    from crossfuse.testing import demo_cache

    with demo_cache(run.run_dir.parent / "cache"):
        return api.export(run.run_dir, "onnx", output=folder, **options)


def assert_matches_pytorch(exported: Any, output: str, tolerance: float, metrics: Sequence[str]) -> None:
    """The fp32 export's ``output`` within ``tolerance`` of PyTorch's, and the same ``metrics`` on the split."""
    fp32, pytorch = exported.parity["results"]["fp32"], exported.parity["results"]["pytorch"]
    assert fp32["max_abs_diff_by_output"][output] < tolerance
    for metric in metrics:
        assert fp32["metrics"][metric] == pytest.approx(pytorch["metrics"][metric], abs=1e-9), metric
