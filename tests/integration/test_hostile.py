"""
Hostile clients against the real server over loopback sockets: idle and
slow connections, stalled TLS handshakes, many unauthenticated connections
from one address, and password guessing. Each case is dropped, refused or
throttled while everyone else is still served, and nothing is logged at
error level (checked by the fixtures).

The timeouts are configured short so the tests are quick; the assertions
are about behaviour, with generous time bounds only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import RunningServer, serveAliceAndBob
from tests.integration.raw import HEADER, RawStream

pytestmark = pytest.mark.integration

LIMITS = """
[limits]
handshake_timeout = 2
auth_timeout = 30
max_unauthenticated_per_address = 20
login_failure_max_delay = 1
max_failures_per_account_address = 5
max_failures_per_account = 20
lockout_time = 300
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """
    One server for the timeout and connection-limit tests.
    """
    yield from serveAliceAndBob(tmp_path_factory.mktemp("hostile"), LIMITS)


def assertDroppedSilently(raw: RawStream, within: float = 10) -> None:
    started = time.monotonic()
    data = raw.waitClosed(timeout=within)
    assert data == b"", data
    assert time.monotonic() - started < within


def test_idleConnectionDropped(server: RunningServer) -> None:
    """
    limits.handshake_timeout: a TCP connection that sends nothing is
    dropped, and the drop is logged at info with the peer address.
    """
    raw = RawStream(server.starttlsPort)
    assertDroppedSilently(raw)
    assert "no TLS handshake and stream header within 2 s" in server.logText()
    assert "Dropping the connection from 127.0.0.1:" in server.logText()


def test_slowLorisHeaderDropped(server: RunningServer) -> None:
    """
    limits.handshake_timeout: a stream header sent a byte at a time is
    dropped before it is complete; no features are ever sent.
    """
    raw = RawStream(server.starttlsPort)
    header = HEADER.format(to="localhost").encode()
    sent = 0
    raw.sock.settimeout(0.25)
    while sent < len(header):
        try:
            raw.sock.sendall(header[sent : sent + 1])
        except OSError:
            break
        sent += 1
        try:
            chunk = raw.sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            chunk = b""
        raw.received += chunk
        if not chunk:
            raw.closed = True
            break
    if not raw.closed:
        raw.waitClosed(timeout=10)
    assert sent < len(header)
    assert b"features" not in raw.received


def test_stalledDirectTLSHandshakeDropped(server: RunningServer) -> None:
    """
    limits.handshake_timeout: on the direct TLS port, a handshake that stalls
    (a TLS record header announcing a ClientHello that never comes) is
    dropped.
    """
    raw = RawStream(server.directTLSPort)
    raw.send(b"\x16\x03\x01\x02\x00")
    assertDroppedSilently(raw)


def test_stalledSTARTTLSHandshakeDropped(server: RunningServer) -> None:
    """
    limits.handshake_timeout: after STARTTLS's <proceed/>, a client that
    never starts the TLS handshake is dropped.
    """
    raw = RawStream(server.starttlsPort)
    raw.header()
    raw.readUntil(b"</stream:features>")
    raw.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    raw.readUntil(b"<proceed")
    raw.received = b""
    assertDroppedSilently(raw)


def test_unauthenticatedPerAddress(server: RunningServer) -> None:
    """
    limits.max_unauthenticated_per_address: with 20 unauthenticated
    connections open from 127.0.0.1, the 21st is closed at once, before
    any TLS or XML, while the first 20 stay open and served.
    """
    first: list[RawStream] = []
    try:
        for _ in range(20):
            raw = RawStream(server.starttlsPort)
            first.append(raw)
            raw.header()
            raw.readUntil(b"</stream:features>")
        extra = RawStream(server.starttlsPort)
        assertDroppedSilently(extra, within=5)
        for raw in first:
            raw.received = b""
            raw.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            raw.readUntil(b"<proceed")
    finally:
        for raw in first:
            raw.close()
    assert "Refusing connections from 127.0.0.1" in server.logText()
    # Closed connections free their places.
    deadline = time.monotonic() + 10
    while True:
        raw = RawStream(server.starttlsPort)
        raw.header()
        try:
            raw.readUntil(b"</stream:features>", timeout=2)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the places of closed connections were never freed"
        finally:
            raw.close()


@pytest.fixture
def ownServer(tmp_path: Path) -> Iterator[RunningServer]:
    """
    A server of its own, for a test that locks accounts out.
    """
    yield from serveAliceAndBob(tmp_path, LIMITS)


def test_passwordGuessingThrottled(ownServer: RunningServer) -> None:
    """
    Failed-login throttling: many wrong PLAIN passwords for alice from
    127.0.0.1 lock her password logins from there (temporary-auth-failure,
    even for her right password, logged once at info); password spraying
    over other accounts from the same address is slowed, never locked; and
    bob, behind the same address, still logs in with his right password
    within a few seconds.
    """
    server = ownServer
    answers: list[bytes] = []
    for _ in range(3):
        raw = RawStream(server.starttlsPort)
        raw.starttls(server.caFile)
        for _ in range(2):
            answers.append(raw.authPlain("alice", "wrong"))
        raw.close()
    assert b"<temporary-auth-failure/>" in answers[-1], answers
    assert sum(b"<not-authorized/>" in a for a in answers) == 5

    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile)
    assert b"<temporary-auth-failure/>" in raw.authPlain("alice", "alice-pw")
    raw.close()

    for i in range(6):
        raw = RawStream(server.starttlsPort)
        raw.starttls(server.caFile)
        assert b"<not-authorized/>" in raw.authPlain(f"user{i}", "Winter2026!")
        raw.close()

    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile)
    started = time.monotonic()
    assert b"<success" in raw.authPlain("bob", "bob-pw")
    assert time.monotonic() - started < 6
    raw.bind("office")
    raw.close()

    log = server.logText()
    assert log.count("Locking out password logins to alice@localhost from 127.0.0.1") == 1
    assert "Locking out password logins to bob@localhost" not in log
    assert "Password logins from 127.0.0.1 now wait 1 s each" in log


def test_serverStillServes(server: RunningServer) -> None:
    """
    After all of the above, a normal login on a fresh connection works.
    """
    raw = RawStream(server.starttlsPort)
    raw.login(server.caFile, "alice", "alice-pw", resource="after")
    raw.close()
    with socket.create_connection(("127.0.0.1", server.directTLSPort), timeout=5):
        pass
