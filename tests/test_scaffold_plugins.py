"""The package `crossfuse new-plugin` writes installs, passes its own tests and trains, for every modality.

Slow: each test installs the generated package into a throwaway folder (pip builds a wheel), then
runs its tests in a fresh interpreter; those tests run the task for one short epoch on its demo data
(the modality's tiny backbone), predict on new files and check its registration.
"""

from __future__ import annotations

import pytest

from crossfuse.scaffold import MODALITIES, generate

from plugin_install import crossfuse, install, pytest_in

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("modality", MODALITIES)
def test_the_generated_plugin_installs_and_passes_its_own_tests(modality, tmp_path):
    package = generate(f"demo-{modality}", modality, output=tmp_path / "package")
    site = install(package, tmp_path / "site")
    (tmp_path / "work").mkdir()

    listed = crossfuse(["list", "tasks"], site, tmp_path / "work")
    assert f"demo-{modality}" in listed.stdout and "TORCH_ABSENT" in listed.stderr, listed.stderr

    tests = pytest_in(package / "tests", site, tmp_path / "work")
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "7 passed" in tests.stdout
