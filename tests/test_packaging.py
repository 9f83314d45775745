"""
The source distribution carries what it needs to run its own tests, and the
license it declares; checked from MANIFEST.in, LICENSE and setup.cfg without
building anything.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def manifestDirectives() -> list[list[str]]:
    """
    The directives of MANIFEST.in, each split into words, comments left out.
    """
    directives = []
    for line in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            directives.append(words)
    return directives


def setupConfig() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


@pytest.mark.parametrize("directory", ["docs", "tests", "bench", "scripts"])
def test_manifestGraftsDirectory(directory: str) -> None:
    """
    MANIFEST.in takes each of these directories whole (tests/helpers.py and
    tests/integration/ included), and the directory exists.
    """
    assert ["graft", directory] in manifestDirectives()
    assert (ROOT / directory).is_dir()


def test_manifestGraftsEveryTrackedDirectory() -> None:
    """
    Every top-level directory under version control, other than the
    packages and hidden ones, is grafted whole, so the tests find in the
    sdist whatever they read from the tree. Skipped outside a git checkout
    (in an unpacked sdist, say).
    """
    result = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    directories = {line.split("/", 1)[0] for line in result.stdout.splitlines() if "/" in line}
    expected = {d for d in directories if not d.startswith(".")} - {"xmppcert", "twisted"}
    grafted = {words[1] for words in manifestDirectives() if words[0] == "graft"}
    assert expected <= grafted


@pytest.mark.parametrize("path", ["LICENSE", "README.md", "dev", "twisted/plugins/xmppcert_plugin.py"])
def test_manifestIncludesFile(path: str) -> None:
    """
    MANIFEST.in includes each of these files, and the file exists.
    """
    included = [word for words in manifestDirectives() if words[0] == "include" for word in words[1:]]
    assert path in included
    assert (ROOT / path).is_file()


def test_manifestExcludesCaches() -> None:
    """
    Compiled files and Twisted's plugin cache stay out of the sdist.
    """
    excluded = [word for words in manifestDirectives() if words[0] == "global-exclude" for word in words[1:]]
    assert "*.py[cod]" in excluded
    assert "dropin.cache" in excluded


def test_licenseIsMIT() -> None:
    """
    setup.cfg declares the MIT license, names LICENSE as its license file,
    and LICENSE holds the MIT text.
    """
    metadata = setupConfig()["metadata"]
    assert metadata["license"] == "MIT"
    assert metadata["license_files"].split() == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) xmppcert contributors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_everyRequirementHasLowerBound() -> None:
    """
    Each install_requires line has the C{>=} lower bound that
    scripts/check-minimum-versions installs exactly, and the script is
    executable.
    """
    lines = [line.strip() for line in setupConfig()["options"]["install_requires"].splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*\s*>=\s*[0-9]", line), line
    script = ROOT / "scripts" / "check-minimum-versions"
    assert os.access(script, os.X_OK)


def test_everyPackageIsListed() -> None:
    """
    setup.cfg lists packages one by one: every directory of xmppcert with an
    __init__.py must be there, or an installed server lacks it.
    """
    listed = set(setupConfig()["options"]["packages"].split())
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "xmppcert").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= listed, sorted(found - listed)
