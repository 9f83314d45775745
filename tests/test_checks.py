"""
Tests for L{xmppcert.checks} and the checks L{ServerService.startService}
runs: what stops the server at start (one line, never a traceback), and
what C{xmppcert check} reports.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs

from tests.helpers import DOMAIN, OTHER_DOMAIN
from xmppcert import checks
from xmppcert.config import Config, configFromDict
from xmppcert.crl import crlPEM, issueCRL
from xmppcert.service import StartupError, makeService
from xmppcert.store.sqlite import SCHEMA_VERSION, SQLiteDatabase
from xmppcert.testing import InMemoryAccountStore
from xmppcert.x509 import (
    certificatePEM,
    generateServerCertificate,
    issueCACertificate,
    writeServerCertificate,
)

LOOPBACK = "tcp:0:interface=127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)


def writeCertificate(directory: Path, domains: list[str], days: int = 90, now: datetime.datetime | None = None) -> None:
    """
    Write C{server.crt} and C{server.key} for C{domains} into C{directory}.
    """
    keyPEM, certPEM = generateServerCertificate(domains, days, now)
    (directory / "server.key").write_bytes(keyPEM)
    (directory / "server.crt").write_bytes(certPEM)


def writeCA(directory: Path, name: str = "ca") -> tuple[Path, Path]:
    """
    Write a client CA bundle C{name.pem} and its empty CRL C{name.crl}.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    ca = issueCACertificate("Test CA", key)
    bundle, crl = directory / f"{name}.pem", directory / f"{name}.crl"
    bundle.write_bytes(certificatePEM(ca))
    crl.write_bytes(crlPEM(issueCRL(ca, key, [], NOW)))
    return bundle, crl


def makeConfig(directory: Path, **data: Any) -> Config:
    document: dict[str, Any] = {
        "domains": [DOMAIN],
        "data_dir": str(directory),
        "listen": {"starttls": [LOOPBACK], "direct_tls": [], "https": []},
    }
    document.update(data)
    return configFromDict(document, directory)


def levels(findings: list[checks.Finding]) -> list[str]:
    return [f.level for f in findings]


def test_serverCertificateGood(tmp_path: Path) -> None:
    """
    Start-up check: a certificate that matches its key, names the served
    domain and is in date is one ok line.
    """
    writeServerCertificate(tmp_path / "server.crt", tmp_path / "server.key", [DOMAIN])
    findings = checks.checkServerCertificate(makeConfig(tmp_path))
    assert levels(findings) == [checks.OK]
    assert DOMAIN in findings[0].message


def test_serverCertificateKeyMismatch(tmp_path: Path) -> None:
    """
    Start-up check: every TLS file loads and matches; a key of another
    certificate is an error naming both files.
    """
    writeCertificate(tmp_path, [DOMAIN])
    otherKey, _ = generateServerCertificate([DOMAIN])
    (tmp_path / "server.key").write_bytes(otherKey)
    [finding] = checks.checkServerCertificate(makeConfig(tmp_path))
    assert finding.level == checks.ERROR
    assert "is not the key of the certificate" in finding.message


def test_serverCertificateUnreadable(tmp_path: Path) -> None:
    """
    Start-up check: a missing certificate file is an error naming it.
    """
    writeCertificate(tmp_path, [DOMAIN])
    [finding] = checks.checkServerCertificate(makeConfig(tmp_path, tls={"certificate": "gone.crt"}))
    assert finding.level == checks.ERROR
    assert "gone.crt" in finding.message


@pytest.mark.parametrize(
    "days, start, level, fragment",
    [
        (30, -40, checks.ERROR, "expired on"),
        (30, 5, checks.ERROR, "is not valid before"),
        (20, -10, checks.WARN, "expires in 9 days"),
        (20, 0, None, ""),
    ],
    ids=["expired", "not-yet-valid", "expires-soon", "fine"],
)
def test_serverCertificateDates(tmp_path: Path, days: int, start: int, level: str | None, fragment: str) -> None:
    """
    Start-up check: the server certificate is in date (an error outside its
    validity period) and a warning within 14 days of its end.
    """
    writeCertificate(tmp_path, [DOMAIN], days=days, now=NOW + datetime.timedelta(days=start, hours=1))
    findings = checks.checkServerCertificate(makeConfig(tmp_path), now=NOW + datetime.timedelta(hours=2))
    problems = [f for f in findings if f.level in (checks.ERROR, checks.WARN)]
    if level is None:
        assert problems == []
    else:
        assert levels(problems) == [level]
        assert fragment in problems[0].message


def test_serverCertificateMustNameEveryDomain(tmp_path: Path) -> None:
    """
    Start-up check: the server certificate covers each served domain; one
    it does not name is an error naming the domain and what the
    certificate names.
    """
    writeCertificate(tmp_path, [DOMAIN])
    findings = checks.checkServerCertificate(makeConfig(tmp_path, domains=[DOMAIN, OTHER_DOMAIN]))
    [problem] = checks.errors(findings)
    assert f"does not name {OTHER_DOMAIN}" in problem.message
    assert f"it names {DOMAIN}" in problem.message


def test_coversDomain() -> None:
    """
    RFC 6125 as clients apply it: a DNS name or a wildcard covers a domain;
    a wildcard covers one label only.
    """
    from cryptography import x509

    wildcard = x509.load_pem_x509_certificate(generateServerCertificate(["*.example.com"])[1])
    assert checks.coversDomain(wildcard, "chat.example.com")
    assert not checks.coversDomain(wildcard, "example.com")
    assert not checks.coversDomain(wildcard, "a.b.example.com")
    assert checks.certificateNames(wildcard) == ["*.example.com"]


def test_clientCAsAndCRLs(tmp_path: Path) -> None:
    """
    Start-up check: every client CA bundle and CRL file can be read; an
    unreadable one is an error naming it.
    """
    writeCertificate(tmp_path, [DOMAIN])
    bundle, crl = writeCA(tmp_path)
    good = {"checkers": ["ca"], "ca": [{"bundle": str(bundle), "domains": [DOMAIN], "crls": [str(crl)]}]}
    assert checks.errors(checks.checkClientCAs(makeConfig(tmp_path, certificates=good))) == []
    badBundle = {"checkers": ["ca"], "ca": [{"bundle": "missing.pem", "domains": [DOMAIN]}]}
    [problem] = checks.errors(checks.checkClientCAs(makeConfig(tmp_path, certificates=badBundle)))
    assert "missing.pem" in problem.message
    (tmp_path / "bad.crl").write_text("not a CRL")
    badCRL = {"checkers": ["ca"], "ca": [{"bundle": str(bundle), "domains": [DOMAIN], "crls": ["bad.crl"]}]}
    [problem] = checks.errors(checks.checkClientCAs(makeConfig(tmp_path, certificates=badCRL)))
    assert "bad.crl" in problem.message


def test_storeWritable(tmp_path: Path) -> None:
    """
    Start-up check: the store is readable and writable; the check leaves
    the database as it was.
    """
    SQLiteDatabase.open(tmp_path / "xmppcert.sqlite").close()
    before = (tmp_path / "xmppcert.sqlite").read_bytes()
    [finding] = checks.checkStore(makeConfig(tmp_path))
    assert finding.level == checks.OK
    assert f"schema version {SCHEMA_VERSION}" in finding.message
    assert (tmp_path / "xmppcert.sqlite").read_bytes() == before


def test_storeMissingIsNotCreated(tmp_path: Path) -> None:
    """
    Start-up check: a database that does not exist yet is fine when its
    directory is writable, and checking does not create it (C{xmppcert
    check} may run as another user than the server).
    """
    [finding] = checks.checkStore(makeConfig(tmp_path, store={"sqlite": "sub/db.sqlite"}))
    assert finding.level == checks.OK
    assert "will be created" in finding.message
    assert not (tmp_path / "sub").exists()


def test_storeNewerSchema(tmp_path: Path) -> None:
    """
    Start-up check: a database written by a newer xmppcert is an error.
    """
    SQLiteDatabase.open(tmp_path / "xmppcert.sqlite").close()
    connection = sqlite3.connect(tmp_path / "xmppcert.sqlite")
    connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    connection.commit()
    connection.close()
    [finding] = checks.checkStore(makeConfig(tmp_path))
    assert finding.level == checks.ERROR
    assert "newer than this xmppcert's" in finding.message


def _checkStoreAs(config: Config, uid: int) -> list[checks.Finding]:
    """
    Run L{checks.checkStore} in a child process that switched to C{uid}
    (as twistd's -u does before startService), when this one is root.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            findings = checks.checkStore(config)
            os.write(write, "\n".join(f"{f.level}\t{f.message}" for f in findings).encode())
        except BaseException as e:
            os.write(write, f"crash\t{e!r}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read().decode()
    os.waitpid(pid, 0)
    return [checks.Finding(*line.split("\t", 1)) for line in data.splitlines()]


def test_storeNotWritable(tmp_path: Path) -> None:
    """
    Start-up check: a database the server's user cannot write (made by
    root before twistd's -u dropped privileges) is an error saying so,
    rather than a server that refuses every login later.
    """
    if os.geteuid() == 0:
        # pytest's own directories are root's alone: use one nobody may enter.
        tmp_path = Path(tempfile.mkdtemp(dir="/tmp"))
        os.chmod(tmp_path, 0o755)
    SQLiteDatabase.open(tmp_path / "xmppcert.sqlite").close()
    config = makeConfig(tmp_path)
    if os.geteuid() == 0:
        try:
            findings = _checkStoreAs(config, 65534)
        finally:
            shutil.rmtree(tmp_path)
    else:
        os.chmod(tmp_path / "xmppcert.sqlite", 0o400)
        findings = checks.checkStore(config)
    [finding] = findings
    assert finding.level == checks.ERROR
    assert "cannot" in finding.message and "xmppcert.sqlite" in finding.message


def test_checkersImportErrorShown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Start-up check: every checker imports, and a module that fails to
    import shows its own error (a missing dependency), with where it was
    raised, not only the checker's name.
    """
    (tmp_path / "brokenchecker.py").write_text("import no_such_dependency\n\ndef factory(**kw): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("brokenchecker", None)
    writeCertificate(tmp_path, [DOMAIN])
    config = makeConfig(tmp_path, certificates={"checkers": ["stored", "brokenchecker.factory"]})
    [finding] = checks.checkCheckers(config)
    assert finding.level == checks.ERROR
    assert "No module named 'no_such_dependency'" in finding.message
    assert "brokenchecker.py:1" in finding.message


def test_listenerInUse(tmp_path: Path) -> None:
    """
    C{xmppcert check}: a listener whose port is in use is named with the
    error (a warning: it may be the running server); a free one is ok.
    """
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = makeConfig(
            tmp_path,
            listen={
                "starttls": [f"tcp:{port}:interface=127.0.0.1"], "direct_tls": [LOOPBACK], "https": [LOOPBACK]
            },
        )
        inUse, free, freeHTTPS = checks.checkListeners(config)
    assert inUse.level == checks.WARN
    assert inUse.message.startswith(f"listen.starttls: tcp:{port}:interface=127.0.0.1: ")
    assert "in use" in inUse.message
    assert free.level == checks.OK
    assert freeHTTPS.level == checks.OK and freeHTTPS.message.startswith("listen.https: ")


def test_clientViewMechanisms(tmp_path: Path) -> None:
    """
    C{xmppcert check} shows the mechanisms in the order offered: the
    configured order without a certificate, EXTERNAL first (RFC 6120
    section 6.3.4) with one a checker accepts, and not with one none does.
    """
    writeCertificate(tmp_path, [DOMAIN])
    config = makeConfig(tmp_path, sasl={"mechanisms": ["PLAIN", "EXTERNAL", "SCRAM-SHA-1"]})
    lines = [f.message for f in checks.clientView(config)]
    assert "sasl: without a client certificate: PLAIN, SCRAM-SHA-1" in lines
    assert "sasl: with a client certificate a checker accepts: EXTERNAL, PLAIN, SCRAM-SHA-1" in lines
    assert "sasl: with a client certificate no checker accepts: PLAIN, SCRAM-SHA-1" in lines
    assert "tls: TLS 1.2 and 1.3 (tls.min_version = '1.2')" in lines


def test_clientViewPolicies(tmp_path: Path) -> None:
    """
    C{xmppcert check} says whether a client certificate is requested and
    which CA names go with the request: none with policy disabled,
    required with needed.
    """
    writeCertificate(tmp_path, [DOMAIN])
    bundle, _ = writeCA(tmp_path)
    needed = makeConfig(
        tmp_path, tls={"min_version": "1.3"},
        certificates={"policy": "needed", "checkers": ["ca"], "ca": [{"bundle": str(bundle), "domains": [DOMAIN]}]},
    )
    text = "\n".join(f.message for f in checks.clientView(needed))
    assert "TLS 1.3 (tls.min_version = '1.3')" in text
    assert "requested, required" in text and "CN=Test CA" in text
    assert "without a client certificate: no stream" in text
    disabled = makeConfig(
        tmp_path, certificates={"policy": "disabled"}, sasl={"mechanisms": ["SCRAM-SHA-256"]}
    )
    text = "\n".join(f.message for f in checks.clientView(disabled))
    assert "no client certificate is requested" in text
    assert "EXTERNAL" not in text


def test_startServiceRefusesExpiredCertificate(tmp_path: Path) -> None:
    """
    At start (after twistd drops privileges) the checks run again, as the
    user that serves: a certificate that expired stops the start with
    L{StartupError}, one line; nothing is started.
    """
    writeCertificate(tmp_path, [DOMAIN])
    root = makeService(makeConfig(tmp_path), store=InMemoryAccountStore(), reactor=MemoryReactorClock())
    writeCertificate(tmp_path, [DOMAIN], days=1, now=NOW - datetime.timedelta(days=3))
    with pytest.raises(StartupError) as info:
        root.startService()
    assert "expired on" in str(info.value) and "\n" not in str(info.value)
    assert not any(child.running for child in root)


def test_startServiceExitsWithOneLine(tmp_path: Path) -> None:
    """
    Under twistd (exitOnStartupError) a failed start is one error line in
    the log and exit status 1, never a traceback.
    """
    writeCertificate(tmp_path, [DOMAIN])
    root = makeService(makeConfig(tmp_path), store=InMemoryAccountStore(), reactor=MemoryReactorClock())
    root.exitOnStartupError = True
    writeCertificate(tmp_path, [OTHER_DOMAIN])
    with capturedLogs() as events, pytest.raises(SystemExit) as info:
        root.startService()
    assert info.value.code == 1
    [event] = [e for e in events if e["log_level"] >= LogLevel.error]
    assert event["log_format"] == "Cannot start: {reason}"
    assert f"does not name {DOMAIN}" in event["reason"]


def test_startServiceWarnsOfExpiry(tmp_path: Path) -> None:
    """
    At start a certificate that expires within 14 days is a warning in
    the log; the server starts.
    """
    writeCertificate(tmp_path, [DOMAIN], days=5)
    root = makeService(makeConfig(tmp_path), store=InMemoryAccountStore(), reactor=MemoryReactorClock())
    with capturedLogs() as events:
        root.startService()
    try:
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        assert any("expires in 4 days" in e["message"] for e in warnings)
        assert root.running
    finally:
        root.stopService()


def test_portInUseIsOneLine(tmp_path: Path) -> None:
    """
    A listener whose port is in use stops the start with one line naming
    the configuration key, the endpoint and the error.
    """
    from twisted.internet import reactor

    writeCertificate(tmp_path, [DOMAIN])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        description = f"tcp:{port}:interface=127.0.0.1"
        config = makeConfig(tmp_path, listen={"starttls": [], "direct_tls": [description]})
        root = makeService(config, store=InMemoryAccountStore(), reactor=reactor)
        with pytest.raises(StartupError) as info:
            root.privilegedStartService()
    assert str(info.value) == f"listen.direct_tls: {description}: cannot listen: Address already in use"
