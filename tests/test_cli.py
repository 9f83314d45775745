# -*- test-case-name: tests.test_cli -*-
"""
Tests for L{xmppcert.cli}, the C{xmppcert} command.
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key, pkcs12

from xmppcert import cli, x509
from xmppcert.config import loadConfig
from xmppcert.passwords import verifyPassword
from xmppcert.store.interfaces import StoredCertificate
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
    # Issue: command 1 prints how to add a user (the first time only).
    assert f"xmppcert --config {directory / 'xmppcert.toml'} user add alice@example.com" in result.out
    again = run("init", "--data-dir", str(directory))
    assert "user add" not in again.out


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



# ---------------------------------------------------------------------------
# Certificate-only accounts, gencert, cert ...
# ---------------------------------------------------------------------------

#: The fixed "now" of the certificate tests.
NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def fixedNow(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    """
    The CLI's clock, fixed at L{NOW}.
    """
    monkeypatch.setattr(cli.common, "now", lambda: NOW)
    return NOW


def storedCertificates(dataDir: Path, jid: str) -> list[StoredCertificate]:
    config = loadConfig(dataDir / "xmppcert.toml")
    database = SQLiteDatabase.open(config.store.sqlite)
    try:
        return database.listCertificates(jid)
    finally:
        database.close()


def writeCertificate(
    path: Path, jids: list[str], *, now: datetime.datetime | None = None, days: int = 365,
    der: bool = False,
) -> str:
    """
    Issue a self-signed client certificate for C{jids} and write it.

    @param now: when it is issued; the CLI's (maybe fixed) clock if C{None}.
    @return: its fingerprint.
    """
    certificate = x509.issueClientCertificate(
        jids, x509.generateClientKey(), days=days, now=now or cli.common.now()
    )
    if der:
        path.write_bytes(certificate.public_bytes(Encoding.DER))
    else:
        path.write_bytes(x509.certificatePEM(certificate))
    return x509.fingerprint(certificate)


@pytest.fixture
def alice(dataDir: Path, run) -> str:  # type: ignore[no-untyped-def]
    """
    A certificate-only account alice@example.com.
    """
    result = run(*configArg(dataDir), "user", "add", "alice@example.com", "--no-password")
    assert result.code == 0, result.err
    return "alice@example.com"


def test_addWithoutPassword(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    user add --no-password makes a certificate-only account: no password is
    read (not even from a terminal) and no credentials are stored.
    """
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            raise AssertionError("the terminal must not be asked")

    result = run(*configArg(dataDir), "user", "add", "alice@example.com", "--no-password",
                 stdin="ignored\n")
    assert result.code == 0, result.err
    assert "added alice@example.com" in result.out
    assert credentials(dataDir, "alice@example.com") == [None, None]
    assert run(*configArg(dataDir), "user", "list").out == "alice@example.com\n"
    assertOneLineError(
        run(*configArg(dataDir), "user", "add", "alice@example.com", "--no-password"),
        "already exists",
    )


def test_gencert(tmp_path: Path, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    gencert needs no configuration; it writes a 0600 key and a certificate
    naming every JID (a full JID as given) in id-on-xmppAddr, for client
    authentication, valid from the injected now for --days; it prints the
    fingerprint and the next command.
    """
    prefix = tmp_path / "alice"
    result = run("--config", str(tmp_path / "missing.toml"), "gencert", "Alice@Example.com",
                 "--jid", "alice@example.com/phone", "--jid", "al@example.org",
                 "--days", "30", "--out", str(prefix))
    assert result.code == 0, result.err
    key = Path(f"{prefix}.key")
    crt = Path(f"{prefix}.crt")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(crt.stat().st_mode) == 0o644
    assert not Path(f"{prefix}.p12").exists()
    certificate = x509.loadCertificateFile(crt)
    assert [j.full() for j in x509.xmppAddrs(certificate)] == [
        "alice@example.com", "alice@example.com/phone", "al@example.org",
    ]
    facts = x509.certificateFacts(certificate)
    assert facts.clientAuth
    assert facts.keyDescription == "EC P-256"
    assert facts.notAfter == NOW + datetime.timedelta(days=30)
    privateKey = load_pem_private_key(key.read_bytes(), None)
    assert privateKey.public_key() == certificate.public_key()
    assert x509.displayFingerprint(x509.fingerprint(certificate)) in result.out
    assert f"xmppcert cert add alice@example.com NAME {crt}" in result.out


def test_gencertRSA(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    --key rsa makes an RSA key.
    """
    result = run("gencert", "alice@example.com", "--key", "rsa", "--out", str(tmp_path / "a"))
    assert result.code == 0, result.err
    certificate = x509.loadCertificateFile(tmp_path / "a.crt")
    assert x509.certificateFacts(certificate).keyDescription.startswith("RSA ")


def test_gencertP12(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    --p12 --passphrase-stdin writes a 0600 PKCS#12 bundle of the key and
    certificate that loads with that passphrase (and not without); with
    --legacy-p12 too.
    """
    for legacy in [[], ["--legacy-p12"]]:
        prefix = tmp_path / f"alice{len(legacy)}"
        result = run("gencert", "alice@example.com", "--out", str(prefix), "--p12",
                     "--passphrase-stdin", *legacy, stdin="correct horse \n")
        assert result.code == 0, result.err
        p12 = Path(f"{prefix}.p12")
        assert stat.S_IMODE(p12.stat().st_mode) == 0o600
        bundle = pkcs12.load_pkcs12(p12.read_bytes(), b"correct horse ")
        assert bundle.cert is not None
        assert bundle.cert.certificate == x509.loadCertificateFile(Path(f"{prefix}.crt"))
        assert bundle.key is not None
        assert bundle.key.public_key() == bundle.cert.certificate.public_key()
        with pytest.raises(ValueError):
            pkcs12.load_pkcs12(p12.read_bytes(), b"wrong")


def test_gencertP12Passphrase(tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    A PKCS#12 file is only written unencrypted with --no-passphrase: an
    empty passphrase, or none available (stdin not a terminal), is refused
    before any file is written; on a terminal it is asked twice.
    """
    prefix = tmp_path / "a"
    out = ["--out", str(prefix), "--p12"]
    assertOneLineError(run("gencert", "a@example.com", *out), "needs a passphrase")
    assertOneLineError(run("gencert", "a@example.com", *out, "--passphrase-stdin", stdin="\n"),
                       "must not be empty")
    assert list(tmp_path.iterdir()) == []

    result = run("gencert", "a@example.com", *out, "--no-passphrase")
    assert result.code == 0, result.err
    assert pkcs12.load_pkcs12(Path(f"{prefix}.p12").read_bytes(), None).key is not None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = ["one", "two", "same", "same"]
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))
    monkeypatch.setattr("sys.stdin", Terminal())
    assert cli.main(["gencert", "b@example.com", "--out", str(tmp_path / "b"), "--p12"]) == 1
    assert not (tmp_path / "b.key").exists()
    assert cli.main(["gencert", "b@example.com", "--out", str(tmp_path / "b"), "--p12"]) == 0
    assert pkcs12.load_pkcs12((tmp_path / "b.p12").read_bytes(), b"same").key is not None


def test_gencertRefusesOverwrite(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    gencert never overwrites an existing file without --force, and says
    which file is in the way; with --force it replaces them.
    """
    prefix = str(tmp_path / "a")
    assert run("gencert", "a@example.com", "--out", prefix).code == 0
    key = Path(prefix + ".key").read_bytes()
    result = run("gencert", "a@example.com", "--out", prefix)
    assertOneLineError(result, f"{prefix}.key", "--force")
    assert Path(prefix + ".key").read_bytes() == key

    # Only the .p12 in the way: nothing is written either.
    other = str(tmp_path / "b")
    Path(other + ".p12").write_bytes(b"keep")
    result = run("gencert", "a@example.com", "--out", other, "--p12", "--no-passphrase")
    assertOneLineError(result, f"{other}.p12")
    assert not Path(other + ".key").exists() and not Path(other + ".crt").exists()
    assert Path(other + ".p12").read_bytes() == b"keep"

    result = run("gencert", "a@example.com", "--out", prefix, "--force")
    assert result.code == 0, result.err
    assert Path(prefix + ".key").read_bytes() != key
    assert stat.S_IMODE(Path(prefix + ".key").stat().st_mode) == 0o600


@pytest.mark.parametrize("args, fragment", [
    (["example.com"], "no localpart"),
    (["not a jid@"], "not a valid JID"),
    (["a@example.com", "--passphrase-stdin"], "only applies with --p12"),
    (["a@example.com", "--p12", "--no-passphrase", "--legacy-p12"], "--no-passphrase"),
])
def test_gencertBadArguments(tmp_path: Path, run, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    """
    Bad JIDs and option combinations are refused with one line, writing
    nothing.
    """
    assertOneLineError(run("gencert", *args, "--out", str(tmp_path / "x")), fragment)
    assert list(tmp_path.iterdir()) == []


def test_gencertThenCertAdd(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    The next step gencert prints works: the certificate registers.
    """
    result = run("gencert", alice, "--out", str(tmp_path / "alice"))
    assert result.code == 0, result.err
    result = run(*configArg(dataDir), "cert", "add", alice, "laptop", str(tmp_path / "alice.crt"))
    assert result.code == 0, result.err


def test_certRoundTrip(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    cert add (PEM and DER), list, disable, enable, revoke and remove, each
    visible in the database and the listing; revocation is final
    (XEP-0257 section 2.5).
    """
    cfg = configArg(dataDir)
    fp = writeCertificate(tmp_path / "laptop.crt", [alice])
    fpPhone = writeCertificate(tmp_path / "phone.der", ["alice@example.com/phone"], der=True)
    result = run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "laptop.crt"))
    assert result.code == 0, result.err
    assert x509.displayFingerprint(fp) in result.out
    result = run(*cfg, "cert", "add", alice, "phone", str(tmp_path / "phone.der"),
                 "--no-cert-management")
    assert result.code == 0, result.err
    stored = storedCertificates(dataDir, alice)
    assert [(c.name, c.fingerprint, c.state, c.canManage) for c in stored] == [
        ("laptop", fp, "enabled", True), ("phone", fpPhone, "enabled", False),
    ]
    assert stored[0].notAfter == (NOW + datetime.timedelta(days=365)).timestamp()
    assert stored[0].der == x509.loadCertificateFile(tmp_path / "laptop.crt").public_bytes(
        Encoding.DER
    )

    listing = run(*cfg, "cert", "list", alice)
    assert listing.code == 0, listing.err
    lines = listing.out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "FINGERPRINT", "NOT", "AFTER", "LAST", "USED",
                                "MANAGE"]
    assert lines[1].split()[:3] == ["laptop", "enabled", x509.displayFingerprint(fp)[:23] + "..."]
    assert "2031-06-01" in lines[1] and "never" in lines[1] and lines[1].endswith("yes")
    assert lines[2].startswith("phone") and lines[2].endswith("no")
    full = run(*cfg, "cert", "list", alice, "--full").out
    assert x509.displayFingerprint(fp) in full

    for command, state in [("disable", "disabled"), ("enable", "enabled"),
                           ("disable", "disabled"), ("revoke", "revoked")]:
        result = run(*cfg, "cert", command, alice, "laptop")
        assert result.code == 0, result.err
        assert storedCertificates(dataDir, alice)[0].state == state
        assert run(*cfg, "cert", "list", alice).out.splitlines()[1].split()[1] == state
    for command in ["enable", "disable"]:
        assertOneLineError(run(*cfg, "cert", command, alice, "laptop"), "revoked", "final")
    assert storedCertificates(dataDir, alice)[0].state == "revoked"
    again = run(*cfg, "cert", "revoke", alice, "laptop")
    assert again.code == 0 and "already revoked" in again.out

    result = run(*cfg, "cert", "remove", alice, "laptop")
    assert result.code == 0, result.err
    assert "revocation stays in force" in result.out
    assert [c.name for c in storedCertificates(dataDir, alice)] == ["phone"]
    # A revocation is permanent: removing the record does not free the
    # fingerprint.
    assertOneLineError(
        run(*cfg, "cert", "add", alice, "laptop2", str(tmp_path / "laptop.crt")), "revoked", "never"
    )


def test_certListEmptyAndUnknown(dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    cert list of an account without certificates says so; of an unknown
    account it fails.
    """
    result = run(*configArg(dataDir), "cert", "list", alice)
    assert (result.code, result.out) == (0, f"no certificates for {alice}\n")
    assertOneLineError(run(*configArg(dataDir), "cert", "list", "bob@example.com"),
                       "no account bob@example.com")
    # A malformed JID is one line too, never a traceback.
    assertOneLineError(run(*configArg(dataDir), "cert", "list", "a@b..c"), "'a@b..c'")


@pytest.mark.parametrize("command", ["disable", "enable", "revoke", "remove"])
def test_certUnknownName(dataDir: Path, alice: str, run, command: str) -> None:  # type: ignore[no-untyped-def]
    """
    Changing a certificate the account does not have fails with one line.
    """
    result = run(*configArg(dataDir), "cert", command, alice, "nope")
    assertOneLineError(result, f"no certificate named 'nope' for {alice}")


def test_certAddExpired(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    An expired certificate, or one not valid yet (by the CLI's clock), is
    refused, saying so; nothing is stored.
    """
    writeCertificate(tmp_path / "old.crt", [alice], now=NOW - datetime.timedelta(days=400),
                     days=1)
    result = run(*configArg(dataDir), "cert", "add", alice, "old", str(tmp_path / "old.crt"))
    assertOneLineError(result, "expired")
    writeCertificate(tmp_path / "new.crt", [alice], now=NOW + datetime.timedelta(days=2))
    result = run(*configArg(dataDir), "cert", "add", alice, "new", str(tmp_path / "new.crt"))
    assertOneLineError(result, "not valid before")
    assert storedCertificates(dataDir, alice) == []


def test_certAddNoXmppAddr(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    XEP-0178: a certificate naming no JID is refused unless
    --allow-no-xmppaddr is given; one naming only other JIDs is refused
    always (certificates are public: its owner's key would log in to this
    account); a full JID of the account counts as naming it.
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "bob.crt", ["bob@example.com"])
    for extra in ([], ["--allow-no-xmppaddr"]):
        result = run(*cfg, "cert", "add", alice, "bob", str(tmp_path / "bob.crt"), *extra)
        assertOneLineError(result, "names bob@example.com", f"not {alice}")
    assert storedCertificates(dataDir, alice) == []
    writeCertificate(tmp_path / "nobody.crt", [])
    result = run(*cfg, "cert", "add", alice, "nobody", str(tmp_path / "nobody.crt"))
    assertOneLineError(result, "names no JID", "--allow-no-xmppaddr")
    result = run(*cfg, "cert", "add", alice, "nobody", str(tmp_path / "nobody.crt"),
                 "--allow-no-xmppaddr")
    assert result.code == 0, result.err
    assert [c.name for c in storedCertificates(dataDir, alice)] == ["nobody"]

    writeCertificate(tmp_path / "phone.crt", ["bob@example.com", f"{alice}/phone"])
    assert run(*cfg, "cert", "add", alice, "phone", str(tmp_path / "phone.crt")).code == 0


def test_certAddDuplicates(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    XEP-0257 section 2.1: a duplicate name MUST be rejected; a certificate
    registered already is refused too, naming its name only when it is the
    same account's.
    """
    cfg = configArg(dataDir)
    assert run(*cfg, "user", "add", "bob@example.com", "--no-password").code == 0
    writeCertificate(tmp_path / "one.crt", [alice, "bob@example.com"])
    writeCertificate(tmp_path / "two.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "one.crt")).code == 0

    result = run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "two.crt"))
    assertOneLineError(result, f"a certificate named 'laptop' is already registered for {alice}")
    result = run(*cfg, "cert", "add", alice, "desk", str(tmp_path / "one.crt"))
    assertOneLineError(result, f"already registered for {alice} as 'laptop'")
    result = run(*cfg, "cert", "add", "bob@example.com", "laptop", str(tmp_path / "one.crt"))
    assertOneLineError(result, "this certificate is already registered")
    assert alice not in result.err and "laptop" not in result.err
    assert [c.name for c in storedCertificates(dataDir, alice)] == ["laptop"]
    assert storedCertificates(dataDir, "bob@example.com") == []


def test_certAddNameOfDisabled(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    XEP-0257 sections 2.1 and 2.3: a disabled certificate's name may be
    used again, so a new certificate can replace it under the same name;
    cert list shows both, and the name now refers to the enabled one. A
    third add of the name is refused while that one is enabled.
    """
    cfg = configArg(dataDir)
    fpOld = writeCertificate(tmp_path / "old.crt", [alice])
    fpNew = writeCertificate(tmp_path / "new.crt", [alice])
    writeCertificate(tmp_path / "third.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "old.crt")).code == 0
    assert run(*cfg, "cert", "disable", alice, "laptop").code == 0

    result = run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "new.crt"))
    assert result.code == 0, result.err
    assert f"added certificate 'laptop' for {alice}" in result.out
    assert [(c.name, c.fingerprint, c.state) for c in storedCertificates(dataDir, alice)] == [
        ("laptop", fpOld, "disabled"), ("laptop", fpNew, "enabled"),
    ]
    listing = run(*cfg, "cert", "list", alice, "--full")
    assert listing.code == 0, listing.err
    rows = [line.split()[:3] for line in listing.out.splitlines()[1:]]
    assert sorted(rows) == sorted([
        ["laptop", "disabled", x509.displayFingerprint(fpOld)],
        ["laptop", "enabled", x509.displayFingerprint(fpNew)],
    ])

    result = run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "third.crt"))
    assertOneLineError(result, f"a certificate named 'laptop' is already registered for {alice}")
    # By name, "laptop" is the enabled one now.
    again = run(*cfg, "cert", "enable", alice, "laptop")
    assert again.code == 0 and "already enabled" in again.out
    assert run(*cfg, "cert", "revoke", alice, "laptop").code == 0
    assert [(c.fingerprint, c.state) for c in storedCertificates(dataDir, alice)] == [
        (fpOld, "disabled"), (fpNew, "revoked"),
    ]


def test_certEnableNameTaken(tmp_path: Path, dataDir: Path, alice: str, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    cert enable changes exactly the certificate it looked up; when another
    certificate of that name was enabled in the meantime (simulated: the
    lookup sees the old one), it fails with one line and changes nothing.
    """
    cfg = configArg(dataDir)
    fpOld = writeCertificate(tmp_path / "old.crt", [alice])
    fpNew = writeCertificate(tmp_path / "new.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "old.crt")).code == 0
    assert run(*cfg, "cert", "disable", alice, "laptop").code == 0
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "new.crt")).code == 0

    def staleLookup(self: SQLiteDatabase, account: str, name: str) -> StoredCertificate | None:
        return self.certificateByFingerprint(fpOld)

    monkeypatch.setattr(SQLiteDatabase, "getCertificate", staleLookup)
    result = run(*cfg, "cert", "enable", alice, "laptop")
    assertOneLineError(result, f"another certificate of {alice} named 'laptop' is enabled")
    assert [(c.fingerprint, c.state) for c in storedCertificates(dataDir, alice)] == [
        (fpOld, "disabled"), (fpNew, "enabled"),
    ]


def test_certAddBadInput(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    A missing account, an unreadable or non-certificate file, and a bad
    name each give one line; nothing is stored.
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "c.crt", [alice])
    (tmp_path / "junk.crt").write_bytes(b"not a certificate")
    assertOneLineError(run(*cfg, "cert", "add", "bob@example.com", "x", str(tmp_path / "c.crt")),
                       "no account bob@example.com")
    assertOneLineError(run(*cfg, "cert", "add", alice, "x", str(tmp_path / "missing.crt")),
                       "missing.crt")
    assertOneLineError(run(*cfg, "cert", "add", alice, "x", str(tmp_path / "junk.crt")),
                       "junk.crt", "not a valid X.509 certificate")
    for name in ["  ", "a\tb", "x" * 256]:
        assertOneLineError(run(*cfg, "cert", "add", alice, name, str(tmp_path / "c.crt")),
                           "certificate name")
    assertOneLineError(run(*cfg, "cert", "add", "alice@example.com/phone", "x",
                           str(tmp_path / "c.crt")), "full JID")
    assert storedCertificates(dataDir, alice) == []


def test_certAddMalformedXmppAddr(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    A certificate whose id-on-xmppAddr is malformed (not a UTF8String) is
    refused even with --allow-no-xmppaddr.
    """
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = x509.generateClientKey()
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        cx509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        # An IA5String (tag 0x16) where a UTF8String belongs.
        .add_extension(cx509.SubjectAlternativeName([
            cx509.OtherName(x509.XMPP_ADDR_OID, b"\x16\x11alice@example.com"),
        ]), critical=False)
        .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "bad.crt").write_bytes(x509.certificatePEM(certificate))
    result = run(*configArg(dataDir), "cert", "add", alice, "bad", str(tmp_path / "bad.crt"),
                 "--allow-no-xmppaddr")
    assertOneLineError(result, "xmppAddr")
    assert storedCertificates(dataDir, alice) == []


# ---------------------------------------------------------------------------
# cert inspect
# ---------------------------------------------------------------------------


def inspectLines(result: Result) -> dict[str, str]:
    """
    The "label: value" lines of cert inspect output, by label; the
    indented verdict lines under "verdicts". The exit status follows the
    verdict: 0 when it would log in, 3 when not.
    """
    assert result.code in (0, 3), result.err
    assert (result.code == 3) == ("EXTERNAL:      would FAIL" in result.out), (result.code, result.out)
    assert result.err == ""
    lines: dict[str, str] = {}
    verdicts = []
    for line in result.out.splitlines():
        if line.startswith("  "):
            verdicts.append(line.strip())
        else:
            label, _, value = line.partition(":")
            lines[label] = value.strip()
    lines["verdicts"] = "\n".join(verdicts)
    return lines


def setCheckers(dataDir: Path, checkers: list[str], caBundle: str | None = None) -> None:
    """
    Edit the configuration init wrote: the certificate checkers and the
    CA bundle.
    """
    configPath = dataDir / "xmppcert.toml"
    text = configPath.read_text()
    names = ", ".join(f'"{name}"' for name in checkers)
    assert 'checkers = ["stored"]' in text
    text = text.replace('checkers = ["stored"]', f"checkers = [{names}]")
    if caBundle is not None:
        text += f'\n[[certificates.ca]]\nbundle = "{caBundle}"\ndomains = ["example.com", "example.org"]\n'
    configPath.write_text(text)


def test_certInspectRegistered(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    cert inspect shows the facts of a registered certificate (subject,
    self-signed issuer, key, fingerprint, validity, client auth, xmppAddrs,
    registration) and that SASL EXTERNAL would log in with it through the
    stored checker; exit status 0.
    """
    cfg = configArg(dataDir)
    fp = writeCertificate(tmp_path / "laptop.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "laptop.crt")).code == 0
    lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / "laptop.crt")))
    assert lines["subject"] == f"CN={alice}"
    assert lines["issuer"] == f"CN={alice} (self-signed)"
    assert lines["key"] == "EC P-256"
    assert lines["fingerprint"] == x509.displayFingerprint(fp)
    assert lines["valid"] == "2030-06-01 11:55 UTC to 2031-06-01 12:00 UTC (valid now)"
    assert lines["client auth"] == "yes"
    assert lines["xmppAddrs"] == alice
    assert lines["registered"] == f"as 'laptop' for {alice} (enabled, last used never)"
    assert lines["EXTERNAL"] == f"would log in as {alice} [stored]"
    assert lines["verdicts"] == f"stored: accepts, as {alice}"


def test_certInspectReadOnly(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    cert inspect only explains: it does not record a use of the
    certificate (XEP-0257 last use) or change anything else.
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "laptop.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "laptop.crt")).code == 0
    before = storedCertificates(dataDir, alice)
    assert run(*cfg, "cert", "inspect", str(tmp_path / "laptop.crt")).code == 0
    # For scripts: a certificate that would not log in exits with 3.
    assert run(*cfg, "cert", "inspect", str(tmp_path / "laptop.crt"), "--account", "bob@example.com").code == 3
    assert storedCertificates(dataDir, alice) == before
    assert before[0].lastUsedAt is None


def test_certInspectUnregistered(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    cert inspect of a certificate nobody registered: "registered: no", and
    EXTERNAL would fail with not-authorized, the reason given; the verdict
    is the output, so the exit status is 0.
    """
    fp = writeCertificate(tmp_path / "stranger.crt", [alice])
    lines = inspectLines(run(*configArg(dataDir), "cert", "inspect", str(tmp_path / "stranger.crt")))
    assert lines["fingerprint"] == x509.displayFingerprint(fp)
    assert lines["xmppAddrs"] == alice
    assert lines["registered"] == "no"
    assert lines["EXTERNAL"] == "would FAIL"
    assert lines["verdicts"] == (
        "stored: refuses with <not-authorized/>: no account has registered this certificate"
    )


@pytest.mark.parametrize(
    "shift, shown, reason",
    [
        (datetime.timedelta(days=366), "(EXPIRED)", "the certificate is expired"),
        (-datetime.timedelta(days=1), "(NOT YET VALID)", "the certificate is not-yet-valid"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_certInspectOutsideValidity(  # type: ignore[no-untyped-def]
    tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime,
    monkeypatch: pytest.MonkeyPatch, shift: datetime.timedelta, shown: str, reason: str,
) -> None:
    """
    XEP-0257 §3: for a registered certificate outside its validity period
    (by the CLI's clock), cert inspect marks the validity and says that
    EXTERNAL would fail, and why.
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "laptop.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "laptop.crt")).code == 0
    monkeypatch.setattr(cli.common, "now", lambda: NOW + shift)
    lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / "laptop.crt")))
    assert lines["valid"].endswith(shown)
    assert lines["registered"].startswith(f"as 'laptop' for {alice} (enabled")
    assert lines["EXTERNAL"] == "would FAIL"
    assert lines["verdicts"] == f"stored: refuses with <not-authorized/>: {reason}"


@pytest.mark.parametrize("command, state", [("disable", "disabled"), ("revoke", "revoked")])
def test_certInspectDisabledOrRevoked(  # type: ignore[no-untyped-def]
    tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime, command: str, state: str,
) -> None:
    """
    XEP-0257 §2.3: cert inspect tells the operator that a disabled or
    revoked certificate would fail, and which it is (the client is not
    told).
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "laptop.crt", [alice])
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "laptop.crt"),
               "--no-cert-management").code == 0
    assert run(*cfg, "cert", command, alice, "laptop").code == 0
    lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / "laptop.crt")))
    assert lines["registered"] == (
        f"as 'laptop' for {alice} ({state}, no certificate management, last used never)"
    )
    assert lines["EXTERNAL"] == "would FAIL"
    assert lines["verdicts"] == f"the certificate is {state} in the store, which no checker overrides"


def test_certInspectAccountOption(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    XEP-0178 §2: cert inspect --account JID answers for a client sending
    JID as authzid: a certificate naming several JIDs fails without it,
    logs in as the named account with it, pins a full JID's resource, and
    cannot act as another account.
    """
    cfg = configArg(dataDir)
    bob = "bob@example.com"
    assert run(*cfg, "user", "add", bob, "--no-password").code == 0
    path = str(tmp_path / "both.crt")
    writeCertificate(tmp_path / "both.crt", [alice, bob])
    assert run(*cfg, "cert", "add", alice, "both", path).code == 0

    lines = inspectLines(run(*cfg, "cert", "inspect", path))
    assert lines["xmppAddrs"] == f"{alice}, {bob}"
    assert lines["EXTERNAL"] == "would FAIL"
    assert lines["verdicts"] == (
        "stored: refuses with <invalid-authzid/>: the certificate names several JIDs: send an authzid"
    )

    lines = inspectLines(run(*cfg, "cert", "inspect", path, "--account", "Alice@Example.com"))
    assert lines["EXTERNAL"] == f"would log in as {alice} [stored]"

    lines = inspectLines(run(*cfg, "cert", "inspect", path, "--account", f"{alice}/phone"))
    assert lines["EXTERNAL"] == f"would log in as {alice} (may bind only the resource 'phone') [stored]"
    assert lines["verdicts"] == f"stored: accepts, as {alice} (may bind only the resource 'phone')"

    lines = inspectLines(run(*cfg, "cert", "inspect", path, "--account", bob))
    assert lines["EXTERNAL"] == "would FAIL"
    assert lines["verdicts"] == (
        f"stored: refuses with <invalid-authzid/>: the certificate is registered to {alice}, not {bob}"
    )


def test_certInspectPinnedCertificate(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    XEP-0257 §3: for a certificate naming a full JID, cert inspect says
    that the login may bind only that resource.
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "phone.der", [f"{alice}/phone"], der=True)
    assert run(*cfg, "cert", "add", alice, "phone", str(tmp_path / "phone.der")).code == 0
    lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / "phone.der")))
    assert lines["xmppAddrs"] == f"{alice}/phone"
    assert lines["EXTERNAL"] == f"would log in as {alice} (may bind only the resource 'phone') [stored]"


def test_certInspectNoXmppAddr(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    certificates.require_xmppaddr: cert inspect of a registered certificate
    naming no JID shows "xmppAddrs: none" and that the setting refuses it.
    """
    cfg = configArg(dataDir)
    writeCertificate(tmp_path / "anon.crt", [])
    assert run(*cfg, "cert", "add", alice, "anon", str(tmp_path / "anon.crt"),
               "--allow-no-xmppaddr").code == 0
    lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / "anon.crt")))
    assert lines["xmppAddrs"] == "none"
    assert lines["EXTERNAL"] == "would FAIL"
    assert "require_xmppaddr is on" in lines["verdicts"]
    assert lines["verdicts"].startswith("stored: refuses with <not-authorized/>: no id-on-xmppAddr names")


def test_certInspectCustomChecker(tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime) -> None:  # type: ignore[no-untyped-def]
    """
    certificates.checkers: cert inspect cannot run a custom checker; it
    says so and goes on to the next checker.
    """
    setCheckers(dataDir, ["company.checkers.makeChecker", "stored"])
    writeCertificate(tmp_path / "laptop.crt", [alice])
    cfg = configArg(dataDir)
    assert run(*cfg, "cert", "add", alice, "laptop", str(tmp_path / "laptop.crt")).code == 0
    lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / "laptop.crt")))
    assert lines["EXTERNAL"] == f"would log in as {alice} [stored]"
    assert lines["verdicts"].splitlines() == [
        "company.checkers.makeChecker: a custom checker; run a login to see what it decides",
        f"stored: accepts, as {alice}",
    ]


#: A CA certificate and its key.
Issuer = tuple[cx509.Certificate, x509.ClientPrivateKey]


@pytest.fixture
def caFiles(tmp_path: Path, dataDir: Path) -> tuple[Issuer, Issuer]:
    """
    A root CA written to the data directory as ca.pem, and an intermediate
    it issued (certificate, key each); the configuration uses the stored
    then the ca checker with that bundle.
    """
    rootKey = x509.generateClientKey()
    root = x509.issueCACertificate("Test Root", rootKey, now=NOW - datetime.timedelta(days=30))
    interKey = x509.generateClientKey()
    inter = x509.issueCACertificate(
        "Test Intermediate", interKey, now=NOW - datetime.timedelta(days=30),
        issuerCertificate=root, issuerKey=rootKey,
    )
    (dataDir / "ca.pem").write_bytes(x509.certificatePEM(root))
    setCheckers(dataDir, ["stored", "ca"], caBundle="ca.pem")
    return (root, rootKey), (inter, interKey)


def writeIssued(path: Path, jids: list[str], issuer: Issuer, chain: list[cx509.Certificate]) -> str:
    """
    Write a client certificate issued by C{issuer}, followed by the PEM of
    the certificates in C{chain}; return its fingerprint.
    """
    certificate = x509.issueClientCertificate(
        jids, x509.generateClientKey(), now=NOW,
        issuerCertificate=issuer[0], issuerKey=issuer[1],
    )
    path.write_bytes(b"".join(x509.certificatePEM(c) for c in [certificate, *chain]))
    return x509.fingerprint(certificate)


def test_certInspectCAMode(  # type: ignore[no-untyped-def]
    tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime,
    caFiles: tuple[Issuer, Issuer],
) -> None:
    """
    XEP-0257 §3 (CA mode): cert inspect of a certificate that is not
    registered but chains (with the intermediate in the file) to the
    configured CA says that the ca checker would log it in, after the
    stored checker's refusal.
    """
    _, inter = caFiles
    path = tmp_path / "issued.pem"
    fp = writeIssued(path, [alice], inter, [inter[0]])
    lines = inspectLines(run(*configArg(dataDir), "cert", "inspect", str(path)))
    assert lines["fingerprint"] == x509.displayFingerprint(fp)
    assert lines["issuer"] == "CN=Test Intermediate"
    assert lines["registered"] == "no"
    assert lines["EXTERNAL"] == f"would log in as {alice} [ca]"
    assert lines["verdicts"].splitlines() == [
        "stored: refuses with <not-authorized/>: no account has registered this certificate",
        f"ca: accepts, as {alice}",
    ]


def test_certInspectCAModeRefusals(  # type: ignore[no-untyped-def]
    tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime,
    caFiles: tuple[Issuer, Issuer],
) -> None:
    """
    XEP-0257 §3 (CA mode): cert inspect shows the ca checker refusing a
    leaf without the intermediate it needs, a self-signed certificate, and
    a trusted certificate of an account that does not exist.
    """
    cfg = configArg(dataDir)
    _, inter = caFiles
    writeIssued(tmp_path / "alone.pem", [alice], inter, [])
    writeCertificate(tmp_path / "self.crt", [alice])
    writeIssued(tmp_path / "ghost.pem", ["ghost@example.com"], inter, [inter[0]])
    for name, reason in [
        ("alone.pem", "not issued by a trusted CA"),
        ("self.crt", "not issued by a trusted CA"),
        ("ghost.pem", "there is no account ghost@example.com"),
    ]:
        lines = inspectLines(run(*cfg, "cert", "inspect", str(tmp_path / name)))
        assert lines["EXTERNAL"] == "would FAIL", name
        ca = lines["verdicts"].splitlines()[1]
        assert ca.startswith(f"ca: refuses with <not-authorized/>: {reason}"), (name, ca)


def test_certInspectCAModeExpired(  # type: ignore[no-untyped-def]
    tmp_path: Path, dataDir: Path, alice: str, run, fixedNow: datetime.datetime,
    caFiles: tuple[Issuer, Issuer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    XEP-0257 §3 (CA mode): the chain is verified at the CLI's clock: once
    the leaf expired, the ca checker refuses it.
    """
    _, inter = caFiles
    path = tmp_path / "issued.pem"
    writeIssued(path, [alice], inter, [inter[0]])
    monkeypatch.setattr(cli.common, "now", lambda: NOW + datetime.timedelta(days=366))
    lines = inspectLines(run(*configArg(dataDir), "cert", "inspect", str(path)))
    assert lines["valid"].endswith("(EXPIRED)")
    assert lines["EXTERNAL"] == "would FAIL"
    assert lines["verdicts"].splitlines()[1].startswith("ca: refuses with <not-authorized/>:")


def test_certInspectErrors(tmp_path: Path, dataDir: Path, alice: str, run) -> None:  # type: ignore[no-untyped-def]
    """
    cert inspect fails with exit status 1 and one error line for a missing
    file, a file that is no certificate, and an --account that is not a
    JID; with status 2 (usage) without FILE.
    """
    cfg = configArg(dataDir)
    (tmp_path / "junk.crt").write_bytes(b"not a certificate")
    writeCertificate(tmp_path / "c.crt", [alice])
    assertOneLineError(run(*cfg, "cert", "inspect", str(tmp_path / "missing.crt")),
                       "cannot read", "missing.crt")
    assertOneLineError(run(*cfg, "cert", "inspect", str(tmp_path / "junk.crt")),
                       "not a valid X.509 certificate")
    assertOneLineError(run(*cfg, "cert", "inspect", str(tmp_path / "c.crt"), "--account", "a@b@c"),
                       "a@b@c")
    result = run(*cfg, "cert", "inspect")
    assert result.code == 2
    assert result.out == ""


# --- the audit trail ---------------------------------------------------------


def auditTrail(dataDir: Path, target: str | None = None) -> list[tuple[str, str, str, str]]:
    """
    The audit trail of the data directory's database, as (actor, action,
    target, detail), oldest first.
    """
    database = SQLiteDatabase.open(loadConfig(dataDir / "xmppcert.toml").store.sqlite)
    try:
        return [(e.actor, e.action, e.target, e.detail) for e in database.auditTrail(target, 1000)]
    finally:
        database.close()


def test_auditRecordsCLIChanges(tmp_path: Path, dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    Every change made with the command line is in the audit trail once it
    succeeded, by cli:<OS user>: user add/passwd/delete and cert
    add/disable/enable/revoke/remove, with the account or
    <jid>/<certificate name> as the target and the fingerprint as the
    detail of certificate changes. Refused commands and commands that
    change nothing record nothing.
    """
    import getpass

    cfg = configArg(dataDir)
    actor = f"cli:{getpass.getuser()}"
    fp = writeCertificate(tmp_path / "phone.crt", ["alice@example.com"])
    commands = [
        ("user", "add", "alice@example.com", "--no-password"),
        ("user", "add", "bob@example.com"),
        ("user", "add", "bob@example.com"),  # exists: refused
        ("user", "passwd", "bob@example.com"),
        ("cert", "add", "alice@example.com", "Phone", str(tmp_path / "phone.crt")),
        ("cert", "disable", "alice@example.com", "Phone"),
        ("cert", "disable", "alice@example.com", "Phone"),  # already disabled: no change
        ("cert", "disable", "alice@example.com", "Nothing"),  # refused
        ("cert", "enable", "alice@example.com", "Phone"),
        ("cert", "revoke", "alice@example.com", "Phone"),
        ("cert", "remove", "alice@example.com", "Phone"),
        ("user", "delete", "bob@example.com"),
    ]
    for command in commands:
        run(*cfg, *command, stdin="pw\n")
    assert auditTrail(dataDir) == [
        (actor, "user.add", "alice@example.com", "without a password"),
        (actor, "user.add", "bob@example.com", ""),
        (actor, "user.passwd", "bob@example.com", ""),
        (actor, "cert.add", "alice@example.com/Phone", fp),
        (actor, "cert.disable", "alice@example.com/Phone", fp),
        (actor, "cert.enable", "alice@example.com/Phone", fp),
        (actor, "cert.revoke", "alice@example.com/Phone", fp),
        (actor, "cert.remove", "alice@example.com/Phone", fp),
        (actor, "user.delete", "bob@example.com", ""),
    ]


def test_auditActorWithoutUserName(dataDir: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    A uid without a user name (a container without /etc/passwd) is still
    named in the audit trail, by its number.
    """

    def noName() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr("getpass.getuser", noName)
    assert run(*configArg(dataDir), "user", "add", "alice@example.com", "--no-password").code == 0
    assert auditTrail(dataDir) == [
        (f"cli:uid {os.getuid()}", "user.add", "alice@example.com", "without a password")
    ]


def test_auditFailureIsAWarning(dataDir: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    When the change was made but cannot be recorded in the audit trail,
    the command says so on stderr as a warning and succeeds: the change
    is not undone, and is not reported as failed.
    """
    import sqlite3

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SQLiteDatabase, "recordAudit", locked)
    result = run(*configArg(dataDir), "user", "add", "alice@example.com", "--no-password")
    assert result.code == 0
    assert result.err.startswith("xmppcert: warning: ") and "audit trail" in result.err
    assert "database is locked" in result.err
    assert run(*configArg(dataDir), "user", "list").out == "alice@example.com\n"


def recordEntries(dataDir: Path, entries: list[tuple[float, str, str, str, str]]) -> None:
    """
    Record (at, actor, action, target, detail) entries directly.
    """
    path = loadConfig(dataDir / "xmppcert.toml").store.sqlite
    for at, actor, action, target, detail in entries:
        database = SQLiteDatabase.open(path, clock=float(at).__float__)
        try:
            database.recordAudit(actor, action, target, detail)
        finally:
            database.close()


AUDIT_AT = datetime.datetime(2030, 6, 1, 12, 34, tzinfo=datetime.UTC).timestamp()


def test_auditCommand(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    audit prints one line per entry, oldest first: the time in UTC (as
    cert list shows times), actor, action, target and detail; JID limits
    it to that account and its certificates; --limit N to the newest N.
    """
    recordEntries(dataDir, [
        (AUDIT_AT, "cli:root", "user.add", "alice@example.com", ""),
        (AUDIT_AT + 60, "alice@example.com/desk", "cert.append", "alice@example.com/Phone", "ab" * 32),
        (AUDIT_AT + 120, "cli:root", "user.add", "bob@example.com", ""),
        (AUDIT_AT + 180, "cli:root", "cert.revoke", "alice@example.com/Phone", "ab" * 32),
    ])
    cfg = configArg(dataDir)
    result = run(*cfg, "audit")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "2030-06-01 12:34 UTC  cli:root  user.add  alice@example.com",
        f"2030-06-01 12:35 UTC  alice@example.com/desk  cert.append  alice@example.com/Phone  {'ab' * 32}",
        "2030-06-01 12:36 UTC  cli:root  user.add  bob@example.com",
        f"2030-06-01 12:37 UTC  cli:root  cert.revoke  alice@example.com/Phone  {'ab' * 32}",
    ]
    alice = run(*cfg, "audit", "Alice@Example.com").out.splitlines()
    assert [line.split("  ")[2] for line in alice] == ["user.add", "cert.append", "cert.revoke"]
    newest = run(*cfg, "audit", "--limit", "2").out.splitlines()
    assert [line.split("  ")[3] for line in newest] == ["bob@example.com", "alice@example.com/Phone"]


def test_auditCommandEmpty(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    Without entries (or none for the JID), audit says so.
    """
    assert run(*configArg(dataDir), "audit").out == "no audit entries\n"
    recordEntries(dataDir, [(AUDIT_AT, "cli:root", "user.add", "alice@example.com", "")])
    result = run(*configArg(dataDir), "audit", "bob@example.com")
    assert (result.code, result.out) == (0, "no audit entries for bob@example.com\n")


def test_auditCommandEscapes(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    Control characters in an entry (parts of it may come from a client)
    are printed escaped, so they cannot drive the operator's terminal.
    """
    recordEntries(dataDir, [(AUDIT_AT, "cli:root", "cert.add", "alice@example.com/a\x1b[2Jb", "x\ny")])
    out = run(*configArg(dataDir), "audit").out
    assert "\x1b" not in out and out.count("\n") == 1
    assert "alice@example.com/a\\x1b[2Jb  x\\ny" in out


def test_auditCommandErrors(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    audit refuses what is not an account JID with one error line, and a
    --limit below 1 as a usage error (status 2).
    """
    cfg = configArg(dataDir)
    assertOneLineError(run(*cfg, "audit", "a@b@c"), "a@b@c")
    assertOneLineError(run(*cfg, "audit", "example.com"), "not an account JID")
    assertOneLineError(run(*cfg, "audit", "alice@example.com/phone"), "not an account JID")
    assert run(*cfg, "audit", "--limit", "0").code == 2


def test_version(run) -> None:  # type: ignore[no-untyped-def]
    """
    xmppcert --version prints xmppcert.version(), __version__, which is
    also the one source of the package metadata (setup.cfg).
    """
    import importlib.metadata

    import xmppcert

    result = run("--version")
    assert (result.code, result.out) == (0, f"xmppcert {xmppcert.__version__}\n")
    assert importlib.metadata.version("xmppcert") == xmppcert.__version__
    assert "attr: xmppcert.__version__" in (Path(__file__).parents[1] / "setup.cfg").read_text()


def test_initHonoursConfig(tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """
    init --config FILE writes the configuration at FILE (before or after
    the subcommand) with data_dir relative to it: its own directory by
    default, or --data-dir; nothing goes to ./var.
    """
    monkeypatch.chdir(tmp_path)
    result = run("init", "--config", "etc/xmppcert/site.toml", "--domain", "example.net")
    assert result.code == 0, result.err
    config = loadConfig(tmp_path / "etc/xmppcert/site.toml")
    assert config.domains == ("example.net",)
    assert config.data_dir == tmp_path / "etc/xmppcert"
    assert config.tls.certificate.exists() and config.store.sqlite.exists()
    assert not (tmp_path / "var").exists()
    assert 'data_dir = "."' in (tmp_path / "etc/xmppcert/site.toml").read_text()

    result = run("--config", "etc/other.toml", "init", "--data-dir", "etc/data")
    assert result.code == 0, result.err
    assert 'data_dir = "data"' in (tmp_path / "etc/other.toml").read_text()
    assert loadConfig(tmp_path / "etc/other.toml").store.sqlite == tmp_path / "etc/data/xmppcert.sqlite"

    result = run("init", "--config", "conf/x.toml", "--data-dir", "state")
    assert result.code == 0, result.err
    assert f'data_dir = "{tmp_path / "state"}"' in (tmp_path / "conf/x.toml").read_text()
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["server.crt", "server.key", "xmppcert.sqlite"]


def checkableDataDir(dataDir: Path) -> list[str]:
    """
    The configuration of C{dataDir}, listening on free ports.
    """
    path = dataDir / "xmppcert.toml"
    text = path.read_text()
    for port in ("5222", "5223", "5281"):
        text = text.replace(f"tcp:{port}:", "tcp:0:")
    path.write_text(text)
    return configArg(dataDir)


def test_checkFine(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    xmppcert check: a fresh data directory has no problem (exit 0) and the
    report shows what a client sees: TLS versions, the certificate request,
    the mechanisms offered in order with and without a certificate.
    """
    result = run(*checkableDataDir(dataDir), "check")
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[-1] == "no problems found", result.out
    assert "ok    store.sqlite: " + str(dataDir.resolve() / "xmppcert.sqlite") + " is readable and writable (schema version 7)" in lines
    assert "info  tls: TLS 1.2 and 1.3 (tls.min_version = '1.2')" in lines
    assert "info  sasl: without a client certificate: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN" in lines
    assert (
        "info  sasl: with a client certificate a checker accepts: EXTERNAL, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN"
        in lines
    )
    assert not any(line.startswith(("error", "warn")) for line in lines)


def test_checkErrorsExitOne(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    xmppcert check: a key that is not the certificate's is an error line and
    exit status 1; a configuration that does not load is one too.
    """
    cfg = checkableDataDir(dataDir)
    key, _ = x509.generateServerCertificate(["example.com"])
    (dataDir / "server.key").write_bytes(key)
    result = run(*cfg, "check")
    assert result.code == 1
    assert [line for line in result.out.splitlines() if line.startswith("error")] == [
        f"error tls: {dataDir.resolve() / 'server.key'} is not the key of the certificate in"
        f" {dataDir.resolve() / 'server.crt'}"
    ]
    assert result.out.splitlines()[-1] == "1 error, 0 warnings"
    (dataDir / "xmppcert.toml").write_text("domains = [\n")
    result = run(*cfg, "check")
    assert result.code == 1
    assert result.out.startswith("error ") and "is not valid TOML" in result.out


def test_checkWarningsExitZero(dataDir: Path, run) -> None:  # type: ignore[no-untyped-def]
    """
    xmppcert check: a server certificate that expires within 14 days is a
    warning, printed, with exit status 0.
    """
    cfg = checkableDataDir(dataDir)
    x509.writeServerCertificate(
        dataDir / "server.crt", dataDir / "server.key", ["example.com", "example.org"], days=5
    )
    result = run(*cfg, "check")
    assert result.code == 0
    [warning] = [line for line in result.out.splitlines() if line.startswith("warn")]
    assert "expires in 4 days" in warning
    assert result.out.splitlines()[-1] == "0 errors, 1 warning"
