# -*- test-case-name: tests.test_cli -*-
"""
Tests for L{xmppcert.cli}, the C{xmppcert} command.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from xmppcert import cli
from xmppcert.config import loadConfig
from xmppcert.passwords import verifyPassword
from xmppcert.store.sqlite import SQLiteDatabase


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """
    Run C{xmppcert ARGS} in-process, with C{stdin} as standard input.
    """

    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def dataDir(tmp_path: Path, run) -> Path:  # type: ignore[no-untyped-def]
    """
    A data directory set up by C{xmppcert init} for example.com and
    example.org.
    """
    directory = tmp_path / "var"
    result = run("init", "--data-dir", str(directory), "--domain", "example.com",
                 "--domain", "example.org")
    assert result.code == 0, result.err
    return directory


def configArg(dataDir: Path) -> list[str]:
    return ["--config", str(dataDir / "xmppcert.toml")]


def credentials(dataDir: Path, jid: str) -> list[object]:
    config = loadConfig(dataDir / "xmppcert.toml")
    database = SQLiteDatabase.open(config.store.sqlite)
    try:
        return [database.getScramCredential(jid, m) for m in ("SCRAM-SHA-1", "SCRAM-SHA-256")]
    finally:
        database.close()


def assertOneLineError(result: Result, *fragments: str, out: str | None = "") -> None:
    """
    The command failed with status 1 and one error line holding
    C{fragments}; C{out} is the expected stdout, or C{None} for any.
    """
    assert result.code == 1
    if out is not None:
        assert result.out == out
    assert result.err.count("\n") == 1 and result.err.startswith("xmppcert: error: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err


def test_initCreates(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    init creates the data directory (private), the configuration for the
    given domains, a certificate with a 0600 key, and the database.
    """
    directory = tmp_path / "var"
    result = run("init", "--data-dir", str(directory), "--domain", "example.com",
                 "--domain", "example.org")
    assert result.code == 0, result.err
    config = loadConfig(directory / "xmppcert.toml")
    assert config.domains == ("example.com", "example.org")
    assert config.tls.certificate.is_file()
    assert stat.S_IMODE(config.tls.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert config.store.sqlite.is_file()
    for word in ["created directory", "wrote configuration", "generated", "created database"]:
        assert word in result.out


def test_initDefaults(tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    Without options, init sets up ./var for localhost, and the user
    commands find var/xmppcert.toml without --config.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XMPPCERT_CONFIG", raising=False)
    assert run("init").code == 0
    assert loadConfig(tmp_path / "var" / "xmppcert.toml").domains == ("localhost",)
    assert run("user", "add", "alice@localhost", stdin="pw\n").code == 0
    assert run("user", "list").out == "alice@localhost\n"


def test_configFromEnvironment(dataDir: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    $XMPPCERT_CONFIG names the configuration when --config is not given.
    """
    monkeypatch.setenv("XMPPCERT_CONFIG", str(dataDir / "xmppcert.toml"))
    assert run("user", "add", "alice@example.com", stdin="pw\n").code == 0
    assert run("user", "list").out == "alice@example.com\n"


def test_initIdempotent(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    Running init again keeps the edited configuration, the certificate and
    the accounts, and says so.
    """
    configPath = dataDir / "xmppcert.toml"
    edited = configPath.read_text().replace('log_level = "info"', 'log_level = "debug"')
    configPath.write_text(edited)
    certificate = (dataDir / "server.crt").read_bytes()
    assert run(*configArg(dataDir), "user", "add", "a@example.com", stdin="pw\n").code == 0

    result = run("init", "--data-dir", str(dataDir), "--domain", "other.net")
    assert result.code == 0, result.err
    assert configPath.read_text() == edited
    assert (dataDir / "server.crt").read_bytes() == certificate
    assert "kept existing configuration" in result.out
    assert "--domain ignored" in result.out
    assert "kept certificate" in result.out
    assert "kept database" in result.out
    assert run(*configArg(dataDir), "user", "list").out == "a@example.com\n"


def test_initHalfCertificate(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    init refuses to replace a key whose certificate is missing.
    """
    (dataDir / "server.crt").unlink()
    key = (dataDir / "server.key").read_bytes()
    result = run("init", "--data-dir", str(dataDir))
    assertOneLineError(result, "server.key exists but", "server.crt does not", out=None)
    assert (dataDir / "server.key").read_bytes() == key


def test_initBadDomain(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    init with an invalid domain fails clearly and writes no configuration.
    """
    result = run("init", "--data-dir", str(tmp_path / "var"), "--domain", 'a"b c')
    assertOneLineError(result, "domains")
    assert not (tmp_path / "var" / "xmppcert.toml").exists()


def test_addAndList(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    user add reads the password from stdin (without the newline only) and
    stores verifying credentials; user list shows accounts, per domain too.
    """
    result = run(*configArg(dataDir), "user", "add", "Alice@Example.COM", stdin=" s3cret \n")
    assert result.code == 0, result.err
    assert result.out == "added alice@example.com\n"
    for credential in credentials(dataDir, "alice@example.com"):
        assert verifyPassword(credential, " s3cret ")  # type: ignore[arg-type]
    assert run(*configArg(dataDir), "user", "add", "bob@example.org", stdin="pw").code == 0
    assert run(*configArg(dataDir), "user", "list").out == "alice@example.com\nbob@example.org\n"
    assert run(*configArg(dataDir), "user", "list", "example.org").out == "bob@example.org\n"
    assert run("user", "list", "EXAMPLE.org", *configArg(dataDir)).out == "bob@example.org\n"


def test_addDuplicate(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    Adding an existing account fails with exit status 1 and a clear message,
    and keeps the old password.
    """
    assert run(*configArg(dataDir), "user", "add", "alice@example.com", stdin="one\n").code == 0
    result = run(*configArg(dataDir), "user", "add", "alice@example.com", stdin="two\n")
    assertOneLineError(result, "account alice@example.com already exists")
    for credential in credentials(dataDir, "alice@example.com"):
        assert verifyPassword(credential, "one")  # type: ignore[arg-type]


def test_emptyPassword(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    An empty password (empty line or no input) is refused; no account is made.
    """
    for stdin in ["\n", ""]:
        result = run(*configArg(dataDir), "user", "add", "alice@example.com", stdin=stdin)
        assertOneLineError(result, "password must not be empty")
    assert run(*configArg(dataDir), "user", "list").out == ""


def test_terminalPassword(dataDir: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    On a terminal the password is asked twice with getpass; two different
    entries are refused.
    """
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))

    answers[:] = ["one", "two"]
    monkeypatch.setattr("sys.stdin", Terminal())
    code = cli.main([*configArg(dataDir), "user", "add", "alice@example.com"])
    assert code == 1
    answers[:] = ["same", "same"]
    code = cli.main([*configArg(dataDir), "user", "add", "alice@example.com"])
    assert code == 0
    for credential in credentials(dataDir, "alice@example.com"):
        assert verifyPassword(credential, "same")  # type: ignore[arg-type]


def test_terminalMismatchMessage(dataDir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Mismatching passwords give one clear error line.
    """
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = ["one", "two"]
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))
    monkeypatch.setattr("sys.stdin", Terminal())
    assert cli.main([*configArg(dataDir), "user", "add", "alice@example.com"]) == 1
    assert capsys.readouterr().err == "xmppcert: error: the passwords do not match\n"


def test_passwd(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    user passwd replaces the credentials: the new password verifies, the
    old one does not.
    """
    assert run(*configArg(dataDir), "user", "add", "alice@example.com", stdin="old\n").code == 0
    before = credentials(dataDir, "alice@example.com")
    result = run(*configArg(dataDir), "user", "passwd", "alice@example.com", stdin="new\n")
    assert result.code == 0, result.err
    after = credentials(dataDir, "alice@example.com")
    assert before != after
    for credential in after:
        assert verifyPassword(credential, "new")  # type: ignore[arg-type]
        assert not verifyPassword(credential, "old")  # type: ignore[arg-type]


def test_passwdMissing(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    user passwd of an unknown account fails clearly, without creating it.
    """
    result = run(*configArg(dataDir), "user", "passwd", "alice@example.com", stdin="pw\n")
    assertOneLineError(result, "no account alice@example.com")
    assert run(*configArg(dataDir), "user", "list").out == ""


def test_delete(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    user delete removes the account and its credentials; deleting it again
    fails clearly.
    """
    assert run(*configArg(dataDir), "user", "add", "alice@example.com", stdin="pw\n").code == 0
    result = run(*configArg(dataDir), "user", "delete", "alice@example.com")
    assert result.code == 0, result.err
    assert result.out == "deleted alice@example.com\n"
    assert run(*configArg(dataDir), "user", "list").out == ""
    assert credentials(dataDir, "alice@example.com") == [None, None]
    assertOneLineError(
        run(*configArg(dataDir), "user", "delete", "alice@example.com"),
        "no account alice@example.com",
    )


def test_unservedDomain(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    A JID of a domain the server does not serve is refused, naming the
    served domains.
    """
    result = run(*configArg(dataDir), "user", "add", "alice@example.net", stdin="pw\n")
    assertOneLineError(result, "example.net", "not served", "example.com, example.org")


def test_fullJID(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    A full JID (with a resource) is refused, suggesting the bare JID.
    """
    result = run(*configArg(dataDir), "user", "add", "alice@example.com/phone", stdin="pw\n")
    assertOneLineError(result, "full JID", "'alice@example.com'")


@pytest.mark.parametrize("text", ["example.com", "@example.com", "a b@example.com", "a@"])
def test_notAccountJID(dataDir: Path, run, text: str) -> None:  # type: ignore[no-untyped-def]
    """
    Text that is not a JID, or a JID without localpart, is refused clearly.
    """
    result = run(*configArg(dataDir), "user", "add", text, stdin="pw\n")
    assertOneLineError(result, repr(text))


def test_missingConfig(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    A missing configuration file gives one clear error naming it.
    """
    missing = tmp_path / "nowhere.toml"
    result = run("--config", str(missing), "user", "list")
    assertOneLineError(result, f"cannot read {missing}")


def test_newerDatabase(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    A database of a newer xmppcert is reported clearly, not with a traceback.
    """
    config = loadConfig(dataDir / "xmppcert.toml")
    database = SQLiteDatabase.open(config.store.sqlite)
    with database._conn:
        database._conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    database.close()
    result = run(*configArg(dataDir), "user", "list")
    assertOneLineError(result, "schema version 99 is newer")


def test_usageError(run) -> None:  # type: ignore[no-untyped-def]
    """
    Usage errors exit with status 2, as argparse does.
    """
    assert run().code == 2
    assert run("user").code == 2
    assert run("user", "frobnicate").code == 2
    assert run("user", "add").code == 2


def test_consoleScript(tmp_path: Path) -> None:
    """
    The installed xmppcert console script works end to end: init, user add
    with the password on stdin, user list, and a failure with exit status 1
    and one error line.
    """
    script = shutil.which("xmppcert") or str(Path(sys.executable).parent / "xmppcert")
    assert os.access(script, os.X_OK), script
    directory = tmp_path / "var"
    config = str(directory / "xmppcert.toml")

    def xmppcert(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args], input=stdin, capture_output=True, text=True, timeout=60
        )

    result = xmppcert("init", "--data-dir", str(directory), "--domain", "example.com")
    assert result.returncode == 0, result.stderr
    result = xmppcert("--config", config, "user", "add", "alice@example.com", stdin="pw\n")
    assert result.returncode == 0, result.stderr
    result = xmppcert("--config", config, "user", "list")
    assert (result.returncode, result.stdout) == (0, "alice@example.com\n")
    result = xmppcert("--config", config, "user", "add", "alice@example.com", stdin="pw\n")
    assert result.returncode == 1
    assert result.stderr == "xmppcert: error: account alice@example.com already exists\n"
