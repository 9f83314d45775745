"""
The store under faults, against the real server: what XEP-0257 acknowledged
survives the server being killed (SIGKILL) in the middle of a stream of
changes.
"""

from __future__ import annotations

import base64
import re
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import RunningServer, makeServer
from tests.integration.raw import RawStream
from xmppcert import x509
from xmppcert.config import loadConfig
from xmppcert.store.sqlite import SQLiteDatabase

pytestmark = pytest.mark.integration

NS = "urn:xmpp:saslcert:1"
ALICE = "alice@localhost"

#: Certificates appended; every third acknowledged one is revoked.
COUNT = 30
#: Requests sent without waiting for their answers.
WINDOW = 6
#: The server is killed once this many requests were acknowledged.
KILL_AFTER = 20

_IQ = re.compile(rb"<iq\b[^>]*>")
_ATTRIBUTE = re.compile(rb"""\b(id|type)=(?:'([^']*)'|"([^"]*)")""")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """
    A server of its own with alice, stopped afterwards; no log line at
    error level, before or after the kill.
    """
    s = makeServer(tmp_path, "[certificates]\nmax_per_account = 100\n")
    s.addUser(ALICE, "alice-pw")
    s.start()
    try:
        yield s
    finally:
        s.stop()
    assert s.errorLines() == [], s.logText()


def certificateText() -> str:
    key = x509.generateClientKey("ec")
    certificate = x509.issueClientCertificate([ALICE], key)
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def answers(stream: RawStream, seen: int) -> tuple[list[tuple[str, str]], int]:
    """
    The (id, type) of the iq stanzas received after the first C{seen}
    bytes, waiting a little for more if there are none yet.
    """
    if len(stream.received) == seen and not stream.closed:
        stream.sock.settimeout(5)
        try:
            chunk = stream.sock.recv(65536)
        except (TimeoutError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            stream.closed = True
        stream.received += chunk
    # Only whole start tags; a tag cut by the read waits for the next one.
    end = stream.received.rfind(b">", seen) + 1
    found = []
    for tag in _IQ.findall(stream.received, seen, end if end > seen else seen):
        attributes = {m.group(1): m.group(2) or m.group(3) for m in _ATTRIBUTE.finditer(tag)}
        found.append((attributes[b"id"].decode(), attributes[b"type"].decode()))
    return found, max(end, seen)


def test_acknowledgedChangesSurviveKill(server: RunningServer) -> None:
    """
    Nothing acknowledged is lost across kill -9: a client appends
    certificates and revokes some, several requests in flight at a time;
    the server is killed with SIGKILL mid-stream; after a restart on the
    same data, every append and revocation it answered with a result is
    in the store.
    """
    texts = [certificateText() for _ in range(COUNT)]
    stream = RawStream(server.starttlsPort)
    stream.login(server.caFile, ALICE, "alice-pw")
    stream.received = b""
    requests = [
        (
            f"a{i}",
            f"<iq type='set' id='a{i}'><append xmlns='{NS}'><name>cert-{i}</name>"
            f"<x509cert>{texts[i]}</x509cert></append></iq>",
        )
        for i in range(COUNT)
    ]
    queue = list(requests)
    inFlight: set[str] = set()
    appended: set[int] = set()
    revoked: set[int] = set()
    seen = 0
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the server stopped answering"
        assert not stream.closed, stream.received
        while queue and len(inFlight) < WINDOW:
            iqID, xml = queue.pop(0)
            stream.send(xml)
            inFlight.add(iqID)
        if len(appended) + len(revoked) >= KILL_AFTER:
            # Requests just sent are in flight: kill the server now.
            break
        found, seen = answers(stream, seen)
        for iqID, kind in found:
            inFlight.discard(iqID)
            assert kind == "result", stream.received
            n = int(iqID[1:])
            if iqID.startswith("a"):
                appended.add(n)
                if n % 3 == 0:
                    queue.insert(
                        0,
                        (f"r{n}", f"<iq type='set' id='r{n}'><revoke xmlns='{NS}'><name>cert-{n}</name></revoke></iq>"),
                    )
            else:
                revoked.add(n)
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    stream.close()
    assert revoked, "no revocation was acknowledged before the kill"

    server.start()
    database = SQLiteDatabase.open(loadConfig(server.configPath).store.sqlite)
    try:
        stored = {c.name: c for c in database.listCertificates(ALICE)}
        revokedForGood = {
            n for n in range(COUNT)
            if f"cert-{n}" in stored and database.isCertificateRevoked(stored[f"cert-{n}"].fingerprint)
        }
    finally:
        database.close()
    assert {f"cert-{n}" for n in appended} <= set(stored), "an acknowledged append was lost"
    assert revoked <= revokedForGood, "an acknowledged revocation was lost"
    for n in appended - revoked:
        # Its revocation may have been stored but not acknowledged.
        assert stored[f"cert-{n}"].state in (("enabled", "revoked") if n % 3 == 0 else ("enabled",))
    for n in revoked:
        assert stored[f"cert-{n}"].state == "revoked"
    # The restarted server serves the same data.
    again = RawStream(server.starttlsPort)
    try:
        again.login(server.caFile, ALICE, "alice-pw")
        again.received = b""
        again.send(f"<iq type='get' id='items'><items xmlns='{NS}'/></iq>")
        listed = again.readUntil(rb"<iq[^>]*id=.items.[^>]*>.*?</iq>")
    finally:
        again.close()
    names = set(re.findall(rb"<name>(cert-\d+)</name>", listed))
    assert {f"cert-{n}".encode() for n in appended - revoked if n % 3} <= names
    assert not {f"cert-{n}".encode() for n in revoked} & names
