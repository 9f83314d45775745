"""
Prometheus metrics of the real server (C{twistd xmppcert} with
C{[metrics] listen}), scraped over HTTP after real logins: a password, a
certificate (SASL EXTERNAL) and a failed one.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import RunningServer, freePort, serveAliceAndBob, waitForPort
from tests.integration.raw import RawStream
from tests.integration.test_external import makeCertificate, rawExternal, register

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def metricsServer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    """
    A server with alice and bob whose metrics are served on a port of their
    own; yields it and that port.
    """
    port = freePort()
    extra = f'[metrics]\nlisten = "tcp:{port}:interface=127.0.0.1"\n'
    for server in serveAliceAndBob(tmp_path_factory.mktemp("metrics"), extra):
        assert server.process is not None
        waitForPort(port, server.process, server.logPath)
        yield server, port


def scrape(port: int) -> tuple[str, Samples]:
    """
    GET /metrics with a plain HTTP client.

    @return: the content type, and every sample by name and labels.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        contentType = response.headers["Content-Type"]
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return contentType, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_scrapeAfterLogins(metricsServer: tuple[RunningServer, int], tmp_path: Path) -> None:
    """
    docs/operations.md "Metrics": after a password login, a certificate
    login with a XEP-0257 request, and a failed login, GET /metrics answers
    in Prometheus' text format (CONTENT_TYPE_LATEST) with each counted:
    logins by mechanism, outcome and condition, their durations, open
    connections and bound sessions, the XEP-0257 request, and store call
    times; once the clients leave, the gauges fall back to 0.
    """
    server, port = metricsServer
    result = server.cli("user", "add", "carol@localhost", "--no-password")
    assert result.returncode == 0, result.stderr
    certPath, keyPath, _ = makeCertificate(tmp_path, "carol", ["carol@localhost"])
    register(server, "carol@localhost", "Laptop", certPath)

    password = RawStream(server.starttlsPort)
    password.login(server.caFile, "alice", "alice-pw", resource="desk")
    certificate, _, answer = rawExternal(server, certPath, keyPath)
    assert b"<success" in answer
    assert b"<jid>carol@localhost/laptop</jid>" in certificate.bind("laptop")
    certificate.received = b""
    certificate.send("<iq type='get' id='c1'><items xmlns='urn:xmpp:saslcert:1'/></iq>")
    certificate.readUntil(b"</iq>")
    failed = RawStream(server.starttlsPort)
    failed.starttls(server.caFile)
    assert b"<not-authorized/>" in failed.authPlain("bob", "wrong")

    contentType, samples = scrape(port)
    assert contentType == CONTENT_TYPE_LATEST
    logins = "xmppcert_logins_total"
    assert value(samples, logins, mechanism="PLAIN", outcome="success", condition="") == 1
    assert value(samples, logins, mechanism="EXTERNAL", outcome="success", condition="") == 1
    assert value(samples, logins, mechanism="PLAIN", outcome="failure", condition="not-authorized") == 1
    duration = "xmppcert_login_duration_seconds_count"
    assert value(samples, duration, mechanism="EXTERNAL", outcome="success") == 1
    assert value(samples, "xmppcert_connections", listener="starttls") == 3
    assert value(samples, "xmppcert_connections", listener="direct_tls") == 0
    assert value(samples, "xmppcert_sessions", transport="tcp", mechanism="PLAIN") == 1
    assert value(samples, "xmppcert_sessions", transport="tcp", mechanism="EXTERNAL") == 1
    assert value(samples, "xmppcert_saslcert_requests_total", type="items", result="ok") == 1
    stored = value(samples, "xmppcert_store_call_duration_seconds_count", method="certificateByFingerprint")
    assert stored is not None and stored >= 1
    assert value(samples, "process_resident_memory_bytes")

    for raw in (password, certificate, failed):
        raw.close()
    deadline = time.monotonic() + 10
    while True:
        _, samples = scrape(port)
        gauges = [
            value(samples, "xmppcert_connections", listener="starttls"),
            value(samples, "xmppcert_sessions", transport="tcp", mechanism="PLAIN"),
            value(samples, "xmppcert_sessions", transport="tcp", mechanism="EXTERNAL"),
        ]
        if gauges == [0, 0, 0] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert gauges == [0, 0, 0]


def test_notFoundElsewhere(metricsServer: tuple[RunningServer, int]) -> None:
    """
    The metrics listener serves /metrics only: other paths are 404.
    """
    _, port = metricsServer
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert info.value.code == 404
