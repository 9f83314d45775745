"""
The code base stays type-checked and lint-clean: mypy and ruff run as part
of the suite, so CI enforces them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_mypy() -> None:
    """
    Style: type hints everywhere (package, tests, plugin, bench), checked by mypy (configured in pyproject.toml).
    """
    result = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    """
    Style: ruff finds nothing (configured in pyproject.toml).
    """
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "xmppcert", "tests", "twisted", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
