"""The floors of CONTRIBUTING.md hold: `lint-imports` checks the contracts of pyproject.toml.

core <- theory <- papers <- book (a floor imports only the floors below it, with no circle
inside the core), and no paper's module imports another paper's. The linter reads the
sources of this checkout (the repository root first on its path), not an installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if linter is None:
        pytest.fail("lint-imports is not installed: install the dev extra (pip install -e '.[dev]')")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    completed = subprocess.run([linter, "--no-cache"], cwd=REPO, env=environment, capture_output=True,
                               text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert "0 broken" in completed.stdout
