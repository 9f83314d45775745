"""
Tests for L{xmppcert._compat}, the shim that lets wokkel 18.0.0 import on
today's Twisted.

Which Twisted names wokkel imports, and which of them Twisted lacks, is read
from wokkel's installed source in a fresh interpreter that has not imported
xmppcert (so the shim is not installed there).
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any, cast

import pytest

import xmppcert
from xmppcert import _compat

ROOT = Path(__file__).resolve().parents[1]


def runPython(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wokkelDirectory() -> Path:
    """
    The directory of the installed wokkel package (found without importing
    it).
    """
    spec = find_spec("wokkel")
    assert spec is not None and spec.origin is not None, "wokkel is not installed"
    return Path(spec.origin).parent


def wokkelModules() -> list[str]:
    """
    Every module of the installed wokkel package but its tests
    (C{wokkel.test}).
    """
    package = wokkelDirectory()
    modules = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[0] == "test":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(("wokkel", *parts)))
    return modules


WOKKEL_MODULES = wokkelModules()

#: Run in a fresh interpreter: every Twisted name wokkel imports (outside
#: wokkel.test), and those of them this Twisted lacks, each with the wokkel
#: modules importing it, as JSON. A name is a module (C{import M}, and the M
#: of C{from M import n}) or C{M.n}.
_SCAN = """
import ast, importlib, json, sys, warnings
from importlib.util import find_spec
from pathlib import Path

warnings.simplefilter("ignore")  # wokkel's names that are only deprecated
package = Path(find_spec("wokkel").origin).parent
imports, missing = {}, {}

def importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True

def found(module, attribute):
    if not importable(module):
        return False
    return hasattr(sys.modules[module], attribute) or importable(module + "." + attribute)

for path in sorted(package.rglob("*.py")):
    parts = path.relative_to(package).with_suffix("").parts
    if parts[0] == "test":
        continue
    importer = ".".join(("wokkel",) + tuple(p for p in parts if p != "__init__"))
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        checks = []
        if isinstance(node, ast.Import):
            checks = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            checks = [(node.module, None)] + [(node.module, a.name) for a in node.names]
        for module, attribute in checks:
            if module.split(".")[0] != "twisted":
                continue
            name = module if attribute is None else module + "." + attribute
            imports.setdefault(name, set()).add(importer)
            ok = importable(module) if attribute is None else found(module, attribute)
            if not ok and (attribute is None or importable(module)):
                missing.setdefault(name, set()).add(importer)

assert "xmppcert" not in sys.modules, "the scan must run without the shim"
print(json.dumps({k: {n: sorted(m) for n, m in v.items()} for k, v in
                  (("imports", imports), ("missing", missing))}))
"""


@pytest.fixture(scope="module")
def wokkelScan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    """
    The result of L{_SCAN}: C{{"imports": {name: importers}, "missing":
    {name: importers}}}.
    """
    result = runPython(_SCAN, tmp_path_factory.mktemp("scan"))
    assert result.returncode == 0, result.stdout + result.stderr
    return cast(dict[str, dict[str, list[str]]], json.loads(result.stdout))


def test_scanFindsWokkelImports(wokkelScan: dict[str, dict[str, list[str]]]) -> None:
    """
    The scan reads wokkel's imports: it finds one that is still in Twisted
    (so a scan that finds nothing cannot pass the tests below).
    """
    assert "wokkel.subprotocols" in wokkelScan["imports"]["twisted.words.protocols.jabber.xmlstream.XMPPHandlerCollection"]
    assert "twisted.words.protocols.jabber.xmlstream.XMPPHandlerCollection" not in wokkelScan["missing"]


@pytest.mark.parametrize("name", sorted(_compat.SHIMS))
def test_shimStillNeeded(wokkelScan: dict[str, dict[str, list[str]]], name: str) -> None:
    """
    Each shim is needed: wokkel still imports the name, and Twisted (without
    xmppcert) lacks it. When this test FAILS for a name, delete that shim
    from xmppcert/_compat.py (and its entry in SHIMS); when no shim is left,
    delete the module, its import in xmppcert/__init__.py and this file.
    """
    importers = wokkelScan["imports"].get(name)
    assert importers, f"wokkel no longer imports {name}: its shim in xmppcert/_compat.py can go."
    assert name in wokkelScan["missing"], f"Twisted has {name} again: its shim in xmppcert/_compat.py can go."
    assert sorted(_compat.SHIMS[name]) == importers, "update the importers listed in SHIMS"


def test_everyMissingNameShimmed(wokkelScan: dict[str, dict[str, list[str]]]) -> None:
    """
    Every Twisted name wokkel imports and Twisted lacks has a shim. When this
    test FAILS, Twisted has dropped another name wokkel imports: add it to
    xmppcert/_compat.py.
    """
    unshimmed = {name: importers for name, importers in wokkelScan["missing"].items() if name not in _compat.SHIMS}
    assert not unshimmed, f"wokkel imports names this Twisted lacks, without a shim: {unshimmed}"


def test_wokkelBrokenWithoutShim(tmp_path: Path) -> None:
    """
    Without xmppcert imported, wokkel.disco (which xmppcert uses) does not
    import on this Twisted. When this test FAILS, a wokkel release works
    with today's Twisted: see L{test_shimStillNeeded}.
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
    With xmppcert imported first, every wokkel module (but its tests)
    imports cleanly, in a fresh interpreter.
    """
    result = runPython(f"import xmppcert\nimport {module}\nprint('ok')\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def wokkelModulesUsedBy(sourceDirectory: Path) -> set[str]:
    """
    The wokkel modules that the Python files under C{sourceDirectory} import.
    """
    package = wokkelDirectory()
    used: set[str] = set()
    for path in sourceDirectory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                used.update(a.name for a in node.names if a.name.split(".")[0] == "wokkel")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] != "wokkel":
                    continue
                used.add(node.module)
                directory = package.joinpath(*node.module.split(".")[1:])
                for alias in node.names:
                    if (directory / f"{alias.name}.py").exists() or (directory / alias.name).is_dir():
                        used.add(f"{node.module}.{alias.name}")
    return used


def test_usedWokkelModulesCovered() -> None:
    """
    Every wokkel module xmppcert imports is one that
    L{test_wokkelImportsWithShim} imports.
    """
    used = wokkelModulesUsedBy(ROOT / "xmppcert") | wokkelModulesUsedBy(ROOT / "twisted")
    assert used, "xmppcert imports no wokkel module: is the scan broken?"
    assert {"wokkel.disco", "wokkel.ping"} <= used
    assert used <= set(WOKKEL_MODULES)


def resolve(name: str) -> Any:
    """
    The module or module attribute a dotted C{name} means.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        module, _, attribute = name.rpartition(".")
        return getattr(importlib.import_module(module), attribute)


def test_shimInstalledOnImport() -> None:
    """
    Importing xmppcert installs the shim: every name of SHIMS exists, and
    install() is idempotent.
    """
    from twisted.python import compat

    assert xmppcert._compat is _compat
    for name in _compat.SHIMS:
        resolve(name)
    assert compat._PY3 is True  # type: ignore[attr-defined]
    assert "twisted.python.constants" in sys.modules
    constants = resolve("twisted.python.constants")
    assert constants.ValueConstant("x").value == "x"  # what wokkel.muc uses
    before = list(_compat.patched)
    _compat.install()
    assert _compat.patched == before
