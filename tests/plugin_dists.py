"""Write throw-away installed distributions (a module + .dist-info with entry points) for plugin tests."""

from __future__ import annotations

import textwrap
from pathlib import Path


def install_fake_plugin(site: Path, name: str, source: str, version: str = "0.1.0") -> Path:
    """Create ``site/NAME.py`` and ``site/NAME-VERSION.dist-info`` declaring a ``crossfuse`` entry point.

    Put ``site`` on ``sys.path`` (or PYTHONPATH) and importlib.metadata finds it like a pip install.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[crossfuse]\n{name} = {name}\n", encoding="utf-8")
    return site
