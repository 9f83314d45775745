"""
Tests for L{xmppcert.tap}: the C{twistd xmppcert} options and service maker
turn every configuration mistake into one line for the operator, never a
traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from tests.test_service import makeTestConfig
from xmppcert import tap


def test_badConfigFile(tmp_path: Path) -> None:
    """
    A configuration file with an unknown key is a usage error naming it.
    """
    path = tmp_path / "xmppcert.toml"
    path.write_text('domains = ["example.com"]\nmystery = 1\n')
    options = tap.Options()
    with pytest.raises(usage.UsageError, match="mystery"):
        options.parseOptions(["--config", str(path)])


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"tls": {"certificate": "missing.pem"}}, "missing.pem"),
        ({"certificates": {"checkers": ["stored", "no.such.module.factory"]}}, "no.such.module.factory"),
        ({"certificates": {"checkers": ["xmppcert.cred"]}}, "is not a checker factory"),
    ],
    ids=["certificate", "checker-import", "checker-not-factory"],
)
def test_startErrorsAreOneLine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, object], fragment: str
) -> None:
    """
    An unusable server certificate or certificate checker stops the start
    with exit status 1 and one line on stderr saying what is wrong.
    """
    config = makeTestConfig(tmp_path, store={"sqlite": str(tmp_path / "db.sqlite")}, **data)
    with pytest.raises(SystemExit) as info:
        tap.makeService({"parsedConfig": config})
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("xmppcert: ") and fragment in err
    assert err.count("\n") == 1


def test_serviceExitsOnStartupErrorAndReloadsItsFile(tmp_path: Path) -> None:
    """
    twistd xmppcert: the service exits with one line when the checks after
    the privilege drop fail (rather than raise into twistd, which prints a
    traceback), and SIGHUP reloads the --config file, as an absolute path.
    """
    from xmppcert.service import ServerService

    config = makeTestConfig(tmp_path, store={"sqlite": str(tmp_path / "db.sqlite")})
    root = tap.makeService({"parsedConfig": config, "config": str(tmp_path / "x.toml")})
    assert isinstance(root, ServerService)
    assert root.exitOnStartupError is True
    assert root.configPath == (tmp_path / "x.toml").resolve()
