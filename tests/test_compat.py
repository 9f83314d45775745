"""
Tests for L{xmppcert._compat}, the shim that lets wokkel 18.0.0 import on
today's Twisted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import xmppcert
from xmppcert import _compat

WOKKEL_MODULES = ["wokkel.disco", "wokkel.ping", "wokkel.pubsub", "wokkel.data_form", "wokkel.muc"]


def runPython(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_shimStillNeeded(tmp_path: Path) -> None:
    """
    The shim is needed: without xmppcert imported, wokkel.disco does not
    import on this Twisted. When this test FAILS, a wokkel release works
    with today's Twisted: delete xmppcert/_compat.py (and its import in
    xmppcert/__init__.py) and this test.
    """
    code = (
        "import sys\n"
        "try:\n"
        "    import wokkel.disco\n"
        "except (ImportError, AttributeError) as e:\n"
        "    print('broken:', type(e).__name__, e)\n"
        "    assert 'xmppcert' not in sys.modules\n"
        "    sys.exit(3)\n"
        "sys.exit(0)\n"
    )
    result = runPython(code, tmp_path)
    assert result.returncode == 3, (
        "wokkel.disco imports without xmppcert._compat: the shim can go.\n" + result.stdout + result.stderr
    )
    assert "broken:" in result.stdout


@pytest.mark.parametrize("module", WOKKEL_MODULES)
def test_wokkelImportsWithShim(tmp_path: Path, module: str) -> None:
    """
    With xmppcert imported first, the wokkel modules xmppcert uses (and
    those it is meant to use) import cleanly, in a fresh interpreter.
    """
    result = runPython(f"import xmppcert\nimport {module}\nprint('ok')\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_shimInstalledOnImport() -> None:
    """
    Importing xmppcert installs the shim: the names wokkel needs exist, and
    install() is idempotent.
    """
    from twisted.python import compat

    assert xmppcert._compat is _compat
    assert compat._PY3 is True  # type: ignore[attr-defined]
    assert "twisted.python.constants" in sys.modules
    before = list(_compat.patched)
    _compat.install()
    assert _compat.patched == before
