"""
Tests for L{xmppcert.metrics}: the metrics move on the server's events
(connections, logins, sessions, XEP-0257 requests, revocations, throttling,
store calls), L{NullMetrics} takes the same calls and records nothing, the
page renders the registry, and makeService wires it all when configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.credentials import UsernamePassword
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.words.protocols.jabber import error
from zope.interface.verify import verifyObject

from tests.helpers import ALICE, PASSWORD, bindSession, failureOf, makeServer, resultOf
from tests.test_saslcert import answer, makeHandler
from tests.test_throttle import Setup
from tests.test_watch import addCertificate, makeStore, setState
from xmppcert.metrics import (
    LISTENERS,
    IMetrics,
    MetricsSite,
    NullMetrics,
    ServerMetrics,
    TimedStore,
    requestOutcome,
)
from xmppcert.sasl import SASLFailure, login
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import IAccountStore, ICertificateStore, StoreError
from xmppcert.testing import InMemoryAccountStore
from xmppcert.watch import RevocationWatcher

#: Every hook of IMetrics with arguments a caller would pass.
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("connectionOpened", ("starttls",)),
    ("connectionClosed", ("starttls",)),
    ("sessionStarted", ("tcp", "PLAIN")),
    ("sessionEnded", ("tcp", "PLAIN")),
    ("loginFinished", ("PLAIN", "failure", "not-authorized", 0.25)),
    ("loginFinished", ("EXTERNAL", "success", "", None)),
    ("certificateOperation", ("revoke", "ok")),
    ("certificatesRevoked", (2,)),
    ("sessionsClosedByRevocation", (3,)),
    ("loginThrottled", ("delayed",)),
    ("storeCallFinished", ("accountExists", 0.002)),
]


def sample(metrics: ServerMetrics, name: str, **labels: str) -> float | None:
    """
    @return: the current value of one sample, or C{None} when it does not exist.
    """
    return metrics.registry.get_sample_value(name, labels)


def newMetrics() -> ServerMetrics:
    return ServerMetrics(processMetrics=False)


# --- NullMetrics and ServerMetrics ------------------------------------------


@pytest.mark.parametrize("factory", [NullMetrics, newMetrics])
def test_providesIMetrics(factory: Any) -> None:
    """
    NullMetrics and ServerMetrics both provide every hook of IMetrics, so a
    part of the server can be given either.
    """
    assert verifyObject(IMetrics, factory())


def test_nullMetricsTakesEveryCall() -> None:
    """
    NullMetrics: every hook takes the arguments the server passes and
    records nothing; its timedStore is the store itself (no proxy, no cost).
    """
    metrics = NullMetrics()
    for name, args in CALLS:
        assert getattr(metrics, name)(*args) is None
    store = InMemoryAccountStore()
    assert metrics.timedStore(store, task.Clock()) is store


def test_hooksMoveTheirMetrics() -> None:
    """
    ServerMetrics: each hook moves its metric, under the labels given
    (docs/operations.md, "Metrics").
    """
    m = newMetrics()
    for name, args in CALLS:
        getattr(m, name)(*args)
    m.connectionOpened("direct_tls")
    m.sessionStarted("tcp", "EXTERNAL")
    assert sample(m, "xmppcert_connections", listener="starttls") == 0
    assert sample(m, "xmppcert_connections", listener="direct_tls") == 1
    assert sample(m, "xmppcert_sessions", transport="tcp", mechanism="PLAIN") == 0
    assert sample(m, "xmppcert_sessions", transport="tcp", mechanism="EXTERNAL") == 1
    assert sample(m, "xmppcert_logins_total", mechanism="PLAIN", outcome="failure", condition="not-authorized") == 1
    assert sample(m, "xmppcert_logins_total", mechanism="EXTERNAL", outcome="success", condition="") == 1
    assert sample(m, "xmppcert_saslcert_requests_total", type="revoke", result="ok") == 1
    assert sample(m, "xmppcert_certificate_revocations_total") == 2
    assert sample(m, "xmppcert_revoked_sessions_closed_total") == 3
    assert sample(m, "xmppcert_login_throttled_total", kind="delayed") == 1
    assert sample(m, "xmppcert_login_throttled_total", kind="locked") == 0
    assert sample(m, "xmppcert_store_call_duration_seconds_count", method="accountExists") == 1
    assert sample(m, "xmppcert_store_call_duration_seconds_sum", method="accountExists") == 0.002


def test_loginDuration() -> None:
    """
    xmppcert_login_duration_seconds: each answered <auth/> is observed
    under its mechanism and outcome; an answer no <auth/> started (seconds
    None) is counted as a login but not observed.
    """
    m = newMetrics()
    m.loginFinished("PLAIN", "failure", "not-authorized", 0.3)
    m.loginFinished("PLAIN", "failure", "malformed-request", None)
    labels = {"mechanism": "PLAIN", "outcome": "failure"}
    assert sample(m, "xmppcert_login_duration_seconds_count", **labels) == 1
    assert sample(m, "xmppcert_login_duration_seconds_sum", **labels) == 0.3
    assert sample(m, "xmppcert_login_duration_seconds_bucket", le="0.25", **labels) == 0
    assert sample(m, "xmppcert_login_duration_seconds_bucket", le="0.5", **labels) == 1


def test_knownLabelsStartAtZero() -> None:
    """
    The series of every listener kind and throttle kind exist, at 0, before
    anything happened, so a rate over them needs no "absent" special case.
    """
    m = newMetrics()
    for listener in LISTENERS:
        assert sample(m, "xmppcert_connections", listener=listener) == 0
    for kind in ("delayed", "locked"):
        assert sample(m, "xmppcert_login_throttled_total", kind=kind) == 0


def test_ownRegistryPerServer() -> None:
    """
    Each ServerMetrics has a registry of its own: two in one process (two
    servers, or tests) neither clash nor share counts, and the global
    registry is left alone.
    """
    from prometheus_client import REGISTRY

    first, second = newMetrics(), newMetrics()
    first.certificatesRevoked(1)
    assert sample(first, "xmppcert_certificate_revocations_total") == 1
    assert sample(second, "xmppcert_certificate_revocations_total") == 0
    assert REGISTRY.get_sample_value("xmppcert_certificate_revocations_total") is None


def test_processMetrics() -> None:
    """
    ServerMetrics exports the process_* metrics of prometheus_client unless
    told not to.
    """
    assert ServerMetrics().registry.get_sample_value("process_resident_memory_bytes")
    assert newMetrics().registry.get_sample_value("process_resident_memory_bytes") is None


@pytest.mark.parametrize(
    "result, expected",
    [
        (None, "ok"),
        (error.StanzaError("item-not-found"), "item-not-found"),
        (NotImplementedError(), "feature-not-implemented"),
        (ValueError("bug"), "internal-server-error"),
    ],
)
def test_requestOutcome(result: Any, expected: str) -> None:
    """
    xmppcert_saslcert_requests_total: the result label is the answer
    wokkel's IQHandlerMixin sends: ok, or the stanza error's condition
    (feature-not-implemented and internal-server-error for the rest).
    """
    from twisted.python import failure

    value = failure.Failure(result) if isinstance(result, BaseException) else result
    assert requestOutcome(value) == expected


# --- TimedStore ---------------------------------------------------------------


class SlowStore(InMemoryAccountStore):
    """
    An in-memory store whose accountExists answers when told to.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[defer.Deferred[bool]] = []

    def accountExists(self, jid: str) -> defer.Deferred[bool]:
        d: defer.Deferred[bool] = defer.Deferred()
        self.pending.append(d)
        return d


def test_timedStoreTimesDeferredCalls() -> None:
    """
    xmppcert_store_call_duration_seconds: the proxy times a store call on
    the injected clock, from the call until its Deferred fires, under the
    method's name; the result passes through unchanged.
    """
    clock = task.Clock()
    m = newMetrics()
    store = SlowStore()
    timed = m.timedStore(store, clock)
    assert isinstance(timed, TimedStore)
    d = timed.accountExists(ALICE)
    clock.advance(0.75)
    assert sample(m, "xmppcert_store_call_duration_seconds_count", method="accountExists") is None
    store.pending[0].callback(True)
    assert resultOf(d) is True
    assert sample(m, "xmppcert_store_call_duration_seconds_count", method="accountExists") == 1
    assert sample(m, "xmppcert_store_call_duration_seconds_sum", method="accountExists") == 0.75


def test_timedStoreFailuresAndPlainValues() -> None:
    """
    TimedStore: a failed call is timed too and its failure passes through;
    a method that returns no Deferred (fakeCredentialSecret) and attributes
    are the store's, untimed; the proxy provides the store's interfaces.
    """
    m = newMetrics()
    store = InMemoryAccountStore()
    timed = m.timedStore(store, task.Clock())
    failureOf(timed.setCertificateStateByFingerprint("0" * 64, "revoked"), StoreError)
    assert sample(m, "xmppcert_store_call_duration_seconds_count", method="setCertificateStateByFingerprint") == 1
    assert timed.fakeCredentialSecret() == store.fakeCredentialSecret()
    assert sample(m, "xmppcert_store_call_duration_seconds_count", method="fakeCredentialSecret") is None
    assert timed.accounts is store.accounts
    assert IAccountStore.providedBy(timed) and ICertificateStore.providedBy(timed)
    with pytest.raises(AttributeError):
        getattr(timed, "noSuchMethod")  # noqa: B009


# --- the page -------------------------------------------------------------------


def get(site: MetricsSite, request: bytes) -> bytes:
    """
    Send one raw HTTP request to the site; return the raw response.
    """
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert protocol is not None
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    return bytes(transport.value())


def test_pageRendersRegistry() -> None:
    """
    GET /metrics answers 200 with the registry in Prometheus' text format
    and prometheus_client's CONTENT_TYPE_LATEST.
    """
    m = newMetrics()
    m.loginFinished("PLAIN", "success", "", 0.01)
    response = get(MetricsSite(m.registry, reactor=task.Clock()), b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: " + CONTENT_TYPE_LATEST.encode() in head.lower()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    logins = [s for s in families["xmppcert_logins"].samples if s.name == "xmppcert_logins_total"]
    assert [(s.labels, s.value) for s in logins] == [
        ({"mechanism": "PLAIN", "outcome": "success", "condition": ""}, 1.0)
    ]


@pytest.mark.parametrize("path", [b"/", b"/metrics/", b"/metrics/x", b"/other"])
def test_pageNotFoundElsewhere(path: bytes) -> None:
    """
    The metrics listener serves /metrics only: 404 everywhere else.
    """
    response = get(MetricsSite(newMetrics().registry, reactor=task.Clock()), b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 404 ")


def test_pageDropsRequestBodies() -> None:
    """
    Bounded input: a request body, which nothing here reads, is dropped as
    it arrives instead of being kept (in memory or a temporary file, as
    twisted.web does by default); the method is refused.
    """
    from twisted.web.test.requesthelper import DummyChannel

    site = MetricsSite(newMetrics().registry, reactor=task.Clock())
    request = site.requestFactory(DummyChannel())
    request.gotLength(10**9)
    for _ in range(100):
        request.handleContentChunk(b"x" * 10_000)
    assert request.content is not None and request.content.getvalue() == b""
    size = 100_000
    response = get(site, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
    assert response.startswith(b"HTTP/1.1 405 ")


# --- the hooks in the server ---------------------------------------------------


def test_c2sConnectionsLoginsSessions() -> None:
    """
    xmppcert_connections, xmppcert_logins_total, xmppcert_sessions: the
    c2s server counts a STARTTLS connection, its PLAIN login, its bound
    session, and takes them back when the connection goes.
    """
    h = makeServer()
    m = h.server.metrics = newMetrics()
    conn = h.connect()
    assert sample(m, "xmppcert_connections", listener="starttls") == 1
    conn.bound("phone")
    assert sample(m, "xmppcert_logins_total", mechanism="PLAIN", outcome="success", condition="") == 1
    assert sample(m, "xmppcert_login_duration_seconds_count", mechanism="PLAIN", outcome="success") == 1
    assert sample(m, "xmppcert_sessions", transport="tcp", mechanism="PLAIN") == 1
    conn.transport.loseConnection()
    assert sample(m, "xmppcert_sessions", transport="tcp", mechanism="PLAIN") == 0
    assert sample(m, "xmppcert_connections", listener="starttls") == 0


def test_c2sSessionCountedOnceWhenClosedByServer() -> None:
    """
    xmppcert_sessions: a session the server ends (stream error, then the
    connection goes) is taken back once, not once per step of the close.
    """
    h = makeServer()
    m = h.server.metrics = newMetrics()
    conn = h.connect()
    conn.bound("phone")
    conn.authenticator.streamError("reset", "test")
    assert sample(m, "xmppcert_sessions", transport="tcp", mechanism="PLAIN") == 0
    conn.transport.loseConnection()
    assert sample(m, "xmppcert_sessions", transport="tcp", mechanism="PLAIN") == 0
    assert sample(m, "xmppcert_connections", listener="starttls") == 0


def test_c2sDirectTLSConnection() -> None:
    """
    xmppcert_connections: a direct TLS (XEP-0368) connection is counted
    under listener="direct_tls".
    """
    h = makeServer()
    m = h.server.metrics = newMetrics()
    h.connect(directTLS=True)
    assert sample(m, "xmppcert_connections", listener="direct_tls") == 1
    assert sample(m, "xmppcert_connections", listener="starttls") == 0


def test_c2sFailedLogins() -> None:
    """
    xmppcert_logins_total: failures carry the RFC 6120 condition; a
    mechanism name the server does not know is counted as "other" (the
    client cannot add label values), and an <auth/> before TLS, whose
    mechanism is never looked at, as "".
    """
    h = makeServer()
    m = h.server.metrics = newMetrics()
    clear = h.connect()
    clear.header()
    clear.auth("PLAIN", b"\0alice\0" + PASSWORD.encode())
    conn = h.connect()
    conn.startTLS()
    conn.auth("PLAIN", b"\0alice\0wrong")
    conn.auth("MADE-UP-MECHANISM-1")
    conn.response(b"stray")
    failures = {
        (s.labels["mechanism"], s.labels["condition"]): s.value
        for f in m.registry.collect() if f.name == "xmppcert_logins"
        for s in f.samples if s.name == "xmppcert_logins_total"
    }
    assert failures == {
        ("", "encryption-required"): 1,
        ("PLAIN", "not-authorized"): 1,
        ("other", "invalid-mechanism"): 1,
        ("other", "malformed-request"): 1,
    }


def test_throttledAttempts() -> None:
    """
    xmppcert_login_throttled_total: a password login that waits past the
    free failures counts as delayed, one refused by a lockout as locked.
    """
    s = Setup(maxDelay=3.0, maxFailuresPerAccountAddress=5, maxFailuresPerAccount=0)
    m = newMetrics()

    def attempt(password: str) -> defer.Deferred[Any]:
        context = s.context()
        context.metrics = m
        return defer.ensureDeferred(login(context, UsernamePassword(ALICE.encode(), password.encode())))

    for _ in range(4):
        failureOf(attempt("wrong"), SASLFailure)
    assert sample(m, "xmppcert_login_throttled_total", kind="delayed") == 0
    d = attempt("wrong")
    assert not d.called
    s.clock.advance(3.0)
    failureOf(d, SASLFailure)
    assert sample(m, "xmppcert_login_throttled_total", kind="delayed") == 1
    assert sample(m, "xmppcert_login_throttled_total", kind="locked") == 0
    refusal = failureOf(attempt(PASSWORD), SASLFailure).value
    assert isinstance(refusal, SASLFailure) and refusal.condition == "temporary-auth-failure"
    assert sample(m, "xmppcert_login_throttled_total", kind="locked") == 1


def test_saslcertRequests() -> None:
    """
    xmppcert_saslcert_requests_total: each XEP-0257 request is counted by
    type and result: ok, or the stanza error's condition, a request that
    does not parse included.
    """
    _, handler, streamManager = makeHandler()
    m = handler.metrics = newMetrics()
    ns = "urn:xmpp:saslcert:1"
    answer(streamManager, f"<iq type='get' id='r1'><items xmlns='{ns}'/></iq>")
    answer(streamManager, f"<iq type='set' id='r1'><revoke xmlns='{ns}'><name>Nope</name></revoke></iq>")
    answer(streamManager, f"<iq type='set' id='r1'><append xmlns='{ns}'><name>x</name></append></iq>")
    assert sample(m, "xmppcert_saslcert_requests_total", type="items", result="ok") == 1
    assert sample(m, "xmppcert_saslcert_requests_total", type="revoke", result="item-not-found") == 1
    assert sample(m, "xmppcert_saslcert_requests_total", type="append", result="bad-request") == 1


def test_revokeClosesSessionsCounted() -> None:
    """
    xmppcert_revoked_sessions_closed_total: the sessions a XEP-0257 revoke
    closes are counted.
    """
    from tests.test_saslcert import append, fingerprintOf, issue, makeEnv, requester

    env = makeEnv()
    manager = cast(Any, env.manager.manager)
    m = manager.metrics = newMetrics()
    sessions = manager.sessions = SessionManager(("example.com",), env.store)
    data = issue()
    resultOf(append(env, data, "Phone"))
    session, client = bindSession(sessions, f"{ALICE}/phone")
    session.info["certificate"] = fingerprintOf(data)
    resultOf(env.manager.revoke(requester(), "Phone"))
    env.clock.advance(0)
    assert [e.condition for e in client.closes] == ["reset"]
    assert sample(m, "xmppcert_revoked_sessions_closed_total") == 1


def test_watcherCountsRevocations() -> None:
    """
    xmppcert_certificate_revocations_total: each revocation the watcher
    sees in the store's changes is counted, with the sessions it closed.
    """
    clock = task.Clock()
    store = makeStore(clock)
    sessions = SessionManager(("example.com",), store)
    fingerprint = addCertificate(store, "Phone")
    for resource in ("phone", "tablet"):
        session, _ = bindSession(sessions, f"{ALICE}/{resource}")
        session.info["certificate"] = fingerprint
    m = newMetrics()
    watcher = RevocationWatcher(store, sessions, clock, 5.0, metrics=m)
    watcher.startService()
    setState(store, fingerprint, "revoked")
    clock.advance(5.0)
    assert sample(m, "xmppcert_certificate_revocations_total") == 1
    assert sample(m, "xmppcert_revoked_sessions_closed_total") == 2
    watcher.stopService()


# --- makeService ----------------------------------------------------------------


def test_makeServiceWithMetrics(tmp_path: Path) -> None:
    """
    [metrics] listen: makeService records into one ServerMetrics (the c2s
    server, the store calls) and serves it on its own listener, which stops
    with the other listeners.
    """
    from tests.test_service import makeTestConfig
    from xmppcert.service import makeService

    config = makeTestConfig(tmp_path, metrics={"listen": "tcp:0:interface=127.0.0.1"})
    store = InMemoryAccountStore()
    reactor = MemoryReactorClock()
    root = makeService(config, store=store, reactor=reactor)
    metrics = cast(Any, root).metrics
    assert isinstance(metrics, ServerMetrics)
    server = cast(Any, root).c2s
    assert server.metrics is metrics
    assert isinstance(server.store, TimedStore)
    sites = [
        c for c in root if isinstance(c, StreamServerEndpointService) and isinstance(c.factory, MetricsSite)
    ]
    assert len(sites) == 1
    root.startService()
    resultOf(server.store.accountExists(ALICE))
    assert sample(metrics, "xmppcert_store_call_duration_seconds_count", method="accountExists") == 1
    assert [port for port, factory, _, _ in reactor.tcpServers if isinstance(factory, MetricsSite)] == [0]
    root.stopService()


def test_makeServiceWithoutMetrics(tmp_path: Path) -> None:
    """
    Without [metrics] listen nothing is recorded or served: NullMetrics
    everywhere, the store unwrapped.
    """
    from tests.test_service import makeTestConfig
    from xmppcert.service import makeService

    store = InMemoryAccountStore()
    root = makeService(makeTestConfig(tmp_path), store=store, reactor=MemoryReactorClock())
    assert isinstance(cast(Any, root).metrics, NullMetrics)
    assert cast(Any, root).c2s.store is store
    assert not any(isinstance(getattr(c, "factory", None), MetricsSite) for c in root)
