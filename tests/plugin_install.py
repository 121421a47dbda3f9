"""Install a plugin package the way a third party does (a wheel, into a throwaway folder) and run
crossfuse or pytest against it in a fresh interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def build_wheel(source: Path, work: Path) -> Path:
    """Build a wheel of the package folder ``source`` from a copy (pip writes build/ and *.egg-info
    into the folder it builds; the repository stays clean) and return the wheel's path."""
    copy = work / "source"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    result = subprocess.run([*PIP, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
                             str(work / "dist"), str(copy)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [wheel] = (work / "dist").glob("*.whl")
    return wheel


def install(target: Path, site: Path) -> Path:
    """``pip install --no-deps --target site`` of a wheel or a package folder; returns ``site``."""
    result = subprocess.run([*PIP, "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
                             str(target)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def environment(site: Path) -> dict[str, str]:
    """This environment plus ``site``, every plugin allowed to load, offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("CROSSFUSE_LOAD_PLUGINS", "CROSSFUSE_DISABLE_PLUGINS")}
    return dict(env, PYTHONPATH=str(site), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def crossfuse(args: list[str], site: Path, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``crossfuse ARGS`` in a fresh interpreter that sees the plugins in ``site``; stderr ends with
    ``TORCH_LOADED`` or ``TORCH_ABSENT``."""
    code = ("import sys\nfrom crossfuse.cli import main\ntry:\n    main()\nexcept SystemExit:\n"
            "    print('TORCH_LOADED' if 'torch' in sys.modules else 'TORCH_ABSENT', file=sys.stderr)\n    raise\n")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=environment(site), cwd=cwd, timeout=timeout)


def pytest_in(tests: Path, site: Path, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the tests in folder ``tests`` against the packages in ``site`` (``cwd`` holds no source copy)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, env=environment(site), cwd=cwd, timeout=timeout)
