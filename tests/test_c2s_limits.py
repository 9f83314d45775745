"""
Tests for the limits L{xmppcert.c2s} puts on hostile clients, driven in
memory on a L{task.Clock}: the handshake and authentication timeouts, the
per-address limit on unauthenticated connections, and failed-login
throttling as a client sees it.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import LogLevel, capturedLogs

from tests.helpers import (
    BOB,
    DOMAIN,
    NS_TLS,
    PASSWORD,
    ClientConnection,
    Received,
    ServerHarness,
    makeConfig,
    makeServer,
)
from xmppcert import _log
from xmppcert.sasl import NS_SASL
from xmppcert.throttle import BASE_DELAY, FREE_FAILURES

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    f" to='{DOMAIN}' version='1.0'>"
)


def harness(**config: Any) -> ServerHarness:
    config.setdefault("sasl", {"mechanisms": MECHANISMS, "max_failures": 10})
    return makeServer(makeConfig(**config))


def plain(user: str = "alice", password: str = PASSWORD) -> bytes:
    return f"\0{user}\0{password}".encode()


def saslFailure(received: Received) -> str:
    failure = received.only("failure")
    assert failure.uri == NS_SASL
    return [c.name for c in failure.elements() if c.name != "text"][0]


def assertDropped(conn: ClientConnection) -> None:
    """
    The connection was aborted without a word: nothing can be said in the
    middle of a handshake or a header.
    """
    assert conn.transport.aborted
    assert conn.closed
    assert conn.output() == ""


# --- limits.handshake_timeout --------------------------------------------


def test_handshakeTimeoutIdle() -> None:
    """
    limits.handshake_timeout: a connection that sends no stream header is
    dropped when it runs out, and the drop is logged at info with the peer.
    """
    h = harness(limits={"handshake_timeout": 5})
    with capturedLogs() as events:
        conn = h.connect()
        h.clock.advance(4.9)
        assert not conn.closed
        h.clock.advance(0.2)
    assertDropped(conn)
    assert h.server.streams == set()
    lines = [e for e in events if "no TLS handshake and stream header" in e.get("log_format", "")]
    assert [(e["log_level"], e["peer"]) for e in lines] == [(LogLevel.info, "192.0.2.7:40000")]


def test_handshakeTimeoutSlowHeader() -> None:
    """
    limits.handshake_timeout: a stream header sent a byte a second (slow
    loris) is dropped when the timeout runs out, before the header is whole.
    """
    h = harness(limits={"handshake_timeout": 10})
    conn = h.connect()
    for byte in HEADER.encode()[:20]:
        conn.send(bytes([byte]))
        h.clock.advance(1)
    assertDropped(conn)


def test_handshakeTimeoutDisarmedByHeader() -> None:
    """
    limits.handshake_timeout: a header in time ends it; the stream then
    has until limits.auth_timeout to log in.
    """
    h = harness(limits={"handshake_timeout": 10, "auth_timeout": 60})
    conn = h.connect()
    h.clock.advance(9)
    conn.header()
    h.clock.advance(50)
    assert not conn.closed
    assert not conn.transport.aborted


def test_handshakeTimeoutRearmedAtProceed() -> None:
    """
    limits.handshake_timeout: after STARTTLS's <proceed/> the TLS handshake
    and the restarted header must again come within it.
    """
    h = harness(limits={"handshake_timeout": 10, "auth_timeout": 60})
    conn = h.connect()
    h.clock.advance(9)
    conn.header()
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    assert conn.received().only().name == "proceed"
    h.clock.advance(9.9)
    assert not conn.closed
    h.clock.advance(0.2)
    assertDropped(conn)


def test_handshakeTimeoutRestartedHeaderInTime() -> None:
    """
    limits.handshake_timeout: a restarted header in time after <proceed/>
    ends it again.
    """
    h = harness(limits={"handshake_timeout": 10, "auth_timeout": 60})
    conn = h.connect()
    conn.header()
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    conn.received()
    h.clock.advance(9)
    conn.header()
    h.clock.advance(40)
    assert not conn.closed


def test_handshakeTimeoutDirectTLS() -> None:
    """
    limits.handshake_timeout: on direct TLS the handshake precedes the
    header, and a connection that finishes neither in time is dropped.
    """
    h = harness(limits={"handshake_timeout": 3})
    conn = h.connect(directTLS=True)
    h.clock.advance(3)
    assertDropped(conn)


def test_authTimeoutDefault() -> None:
    """
    limits.auth_timeout: by default a stream not bound within 30 seconds
    gets connection-timeout.
    """
    h = harness()
    conn = h.connect()
    conn.startTLS()
    h.clock.advance(29.9)
    assert not conn.closed
    h.clock.advance(0.2)
    assert conn.received().streamError() == "connection-timeout"


def test_timersGoneWithConnection() -> None:
    """
    limits.handshake_timeout: a connection that closes leaves no timer
    behind.
    """
    h = harness()
    conn = h.connect()
    conn.transport.loseConnection()
    assert h.clock.getDelayedCalls() == []


# --- limits.max_unauthenticated_per_address ------------------------------


def test_unauthenticatedPerAddress() -> None:
    """
    limits.max_unauthenticated_per_address: the connection over the limit
    from one address is closed at once, without a word, while the others
    stay open.
    """
    h = harness(limits={"max_unauthenticated_per_address": 3})
    first = [h.connect() for _ in range(3)]
    with capturedLogs() as events:
        extra = h.connect()
    assertDropped(extra)
    assert not any(c.closed for c in first)
    assert h.server.streams == {c.authenticator for c in first}
    lines = [e for e in events if "Refusing connections" in e.get("log_format", "")]
    assert [(e["log_level"], e["address"]) for e in lines] == [(LogLevel.info, "192.0.2.7")]


def test_unauthenticatedPerAddressBeforeTLS() -> None:
    """
    limits.max_unauthenticated_per_address: on direct TLS the refusal comes
    before any stream work, and sets no timer.
    """
    h = harness(limits={"max_unauthenticated_per_address": 1})
    h.connect(directTLS=True)
    calls = len(h.clock.getDelayedCalls())
    extra = h.connect(directTLS=True)
    assertDropped(extra)
    assert len(h.clock.getDelayedCalls()) == calls


def test_unauthenticatedCountDropsOnAuthentication() -> None:
    """
    limits.max_unauthenticated_per_address: a connection stops counting
    once it authenticates, and closing it later does not count it twice.
    """
    h = harness(limits={"max_unauthenticated_per_address": 2})
    one = h.connect()
    two = h.connect()
    one.loginPlain()
    third = h.connect()
    assert not third.closed
    assert h.server.addressLimiter.counts == {"192.0.2.7": 2}
    one.transport.loseConnection()
    assert h.server.addressLimiter.counts == {"192.0.2.7": 2}
    assert h.connect().closed
    two.transport.loseConnection()
    assert h.server.addressLimiter.counts == {"192.0.2.7": 1}
    assert not h.connect().closed


def test_unauthenticatedCountDropsOnClose() -> None:
    """
    limits.max_unauthenticated_per_address: a connection that closes before
    authenticating frees its place.
    """
    h = harness(limits={"max_unauthenticated_per_address": 1})
    one = h.connect()
    assert h.connect().closed
    one.transport.loseConnection()
    assert h.server.addressLimiter.counts == {}
    assert not h.connect().closed


# --- failed-login throttling ----------------------------------------------


def test_failedLoginDelaysTheNextAttempt() -> None:
    """
    limits.login_failure_max_delay: past the free failures, the next
    password attempt is checked only after a delay; an <abort/> while it
    waits, or a new connection, does not skip it (the wait comes before the
    check, and is the address's, not the stream's).
    """
    h = harness(
        sasl={"max_failures": 10},
        limits={"max_failures_per_account_address": 0, "max_failures_per_account": 0},
    )
    conn = h.connect()
    conn.startTLS()
    for _ in range(FREE_FAILURES + 1):
        assert saslFailure(conn.auth("PLAIN", plain(password="wrong"))) == "not-authorized"
    assert conn.auth("PLAIN", plain(password="wrong")).raw == ""
    conn.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    assert saslFailure(conn.received()) == "aborted"
    assert conn.auth("PLAIN", plain()).raw == ""
    other = h.connect()
    other.startTLS()
    assert other.auth("PLAIN", plain()).raw == ""
    h.clock.advance(BASE_DELAY)
    assert conn.received().only().name == "success"
    assert other.received().only().name == "success"


def test_lockoutAnswersTemporaryAuthFailure() -> None:
    """
    limits.max_failures_per_account_address: past it, even the right
    password of that account from that address gets temporary-auth-failure
    at once; the lockout start is logged at info, each refused attempt only
    at debug.
    """
    h = harness(limits={"max_failures_per_account_address": 5, "login_failure_max_delay": 0})
    conn = h.connect()
    conn.startTLS()
    _log.setLevel("debug")
    try:
        with capturedLogs() as events:
            for _ in range(5):
                assert saslFailure(conn.auth("PLAIN", plain(password="wrong"))) == "not-authorized"
            for _ in range(3):
                assert saslFailure(conn.auth("PLAIN", plain())) == "temporary-auth-failure"
    finally:
        _log.setLevel("info")
    assert conn.authenticator.account is None
    lockouts = [e for e in events if "Locking out" in e.get("log_format", "")]
    assert [(e["log_level"], e["account"], e["address"]) for e in lockouts] == [
        (LogLevel.info, "alice@example.com", "192.0.2.7")
    ]
    refused = [e for e in events if e.get("condition") == "temporary-auth-failure"]
    assert [e["log_level"] for e in refused] == [LogLevel.debug] * 3


def test_otherAccountFromSprayingAddress() -> None:
    """
    Failed-login throttling keeps offices working: while one address fails
    on many accounts (password spraying), another user behind it logs in
    with the right password at once.
    """
    h = harness(limits={"max_unauthenticated_per_address": 100})
    for i in range(20):
        conn = h.connect()
        conn.startTLS()
        conn.auth("PLAIN", plain(user=f"user{i}", password="wrong"))
        h.clock.advance(3)
        conn.transport.loseConnection()
    conn = h.connect()
    conn.startTLS()
    assert conn.auth("PLAIN", plain(user="bob")).only().name == "success"
    assert conn.authenticator.account is not None
    assert conn.authenticator.account.jid.userhost() == BOB
