"""
Reloading the real server (C{twistd xmppcert}) with C{kill -HUP}: a
logged-in session survives while the certificate is replaced and a domain
added; a broken configuration keeps the server serving and the log says why.
Start-up failures are one line and exit status 1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509
from slixmpp import JID

from tests.integration.clients import login, logout
from tests.integration.conftest import TWISTD, RunningServer, makeServer, runAsync
from tests.integration.raw import RawStream
from xmppcert.x509 import fingerprint, generateServerCertificate, writeServerCertificate

pytestmark = pytest.mark.integration

OTHER = "other.localhost"


def presentedFingerprint(port: int) -> str:
    """
    @return: the SHA-256 of the certificate a new direct TLS connection
        is served with.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["xmpp-client"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def onDisk(server: RunningServer) -> str:
    return fingerprint(x509.load_pem_x509_certificate(server.caFile.read_bytes()))


def waitForLog(server: RunningServer, text: str, count: int = 1, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while server.logText().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"never logged {text!r}:\n{server.logText()}")
        time.sleep(0.05)


def hangUp(server: RunningServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGHUP)


def test_sessionSurvivesHUP(tmp_path: Path) -> None:
    """
    kill -HUP while alice is logged in, after replacing the certificate and
    adding a domain: her session goes on (a message to herself comes
    back), new connections get the new certificate over direct TLS and
    STARTTLS, and a stream to the new domain is served.
    """
    server = makeServer(tmp_path)
    server.addUser("alice@localhost", "alice-pw")
    server.start()
    try:

        async def run() -> None:
            client = await login(server, "alice@localhost/desk", "alice-pw")
            old = presentedFingerprint(server.directTLSPort)
            assert old == onDisk(server)
            writeServerCertificate(server.caFile, server.dataDir / "server.key", ["localhost", OTHER])
            text = server.configPath.read_text()
            server.configPath.write_text(text.replace('domains = ["localhost"]', f'domains = ["localhost", "{OTHER}"]'))
            hangUp(server)
            waitForLog(server, "Reloaded the configuration")
            assert f"added {OTHER}" in server.logText()
            new = presentedFingerprint(server.directTLSPort)
            assert new == onDisk(server) != old
            raw = RawStream(server.starttlsPort)
            raw.starttls(server.caFile)  # verifies against the new certificate
            assert isinstance(raw.sock, ssl.SSLSocket)
            assert hashlib.sha256(raw.sock.getpeercert(binary_form=True) or b"").hexdigest() == new
            raw.close()
            raw = RawStream(server.starttlsPort)
            raw.header(to=OTHER)
            assert b"<starttls" in raw.readUntil(b"</stream:features>")
            raw.close()
            client.send_message(mto=JID("alice@localhost/desk"), mbody="still here")
            message = await asyncio.wait_for(client.messages.get(), 10)
            assert message["body"] == "still here"
            assert client.streamErrors == []
            await logout(client)

        runAsync(run())
    finally:
        server.stop()
    assert server.errorLines() == [], server.logText()


def test_brokenConfigKeepsServing(tmp_path: Path) -> None:
    """
    kill -HUP with a configuration that is not TOML, then with a key that
    is not the certificate's: each time one error line says why, the old
    certificate is still served and logins work.
    """
    server = makeServer(tmp_path)
    server.addUser("alice@localhost", "alice-pw")
    server.start()
    try:
        served = presentedFingerprint(server.directTLSPort)
        good = server.configPath.read_text()
        server.configPath.write_text(good + "\n[limits\n")
        hangUp(server)
        waitForLog(server, "Reload failed")
        server.configPath.write_text(good)
        (server.dataDir / "server.key").write_bytes(generateServerCertificate(["localhost"])[0])
        hangUp(server)
        waitForLog(server, "Reload failed", count=2)
        assert presentedFingerprint(server.directTLSPort) == served

        async def run() -> None:
            client = await login(server, "alice@localhost", "alice-pw", directTLS=True)
            await logout(client)

        runAsync(run())
    finally:
        server.stop()
    errors = server.errorLines()
    assert len(errors) == 2, server.logText()
    assert "is not valid TOML" in errors[0]
    assert "is not the key of the certificate" in errors[1]


def runTwistd(server: RunningServer, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TWISTD), "--nodaemon", "--pidfile=", *options, "xmppcert", "--config", str(server.configPath)],
        capture_output=True, text=True, timeout=60, cwd=str(server.dataDir),
    )


def test_portInUseIsOneLine(tmp_path: Path) -> None:
    """
    twistd with a listener whose port is in use: exit status 1 and one log
    line naming the endpoint and the error, no traceback.
    """
    server = makeServer(tmp_path)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", server.starttlsPort))
        busy.listen()
        result = runTwistd(server)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "#error]" in line or "Traceback" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert f"Cannot start: listen.starttls: tcp:{server.starttlsPort}:interface=127.0.0.1: cannot listen:" in lines[0]
    assert "Address already in use" in lines[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges with twistd -u")
def test_unwritableAfterPrivilegeDrop(tmp_path: Path) -> None:
    """
    twistd -u/-g with a data directory made by root: the checks after the
    privilege drop stop the start with one line (the key and the database
    cannot be read or written by that user), instead of a server that
    answers every login with temporary-auth-failure.
    """
    # pytest's own directories are root's alone: use one nobody may enter.
    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(directory, 0o755)
        server = makeServer(directory)
        os.chmod(server.dataDir, 0o755)
        server.addUser("alice@localhost", "alice-pw")
        result = runTwistd(server, "-u", "65534", "-g", "65534")
    finally:
        shutil.rmtree(directory)
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if "#error]" in line or "Traceback" in line]
    assert "Cannot start: " in line
    assert "server.key: Permission denied" in line
    assert "store.sqlite: cannot" in line and "user nobody" in line
