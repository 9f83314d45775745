"""
Tests for the line between L{xmppcert.transports.tcp} and L{xmppcert.c2s}:
the TCP channel and the negotiation meet only through
L{xmppcert.c2s.channel}, STARTTLS is offered only by a channel that can
start TLS, and handler factories get a L{StreamContext}.
"""

from __future__ import annotations

from typing import Any

from zope.interface.verify import verifyObject

from tests.helpers import DOMAIN, NS_TLS, makeServer
from xmppcert.c2s import C2SAuthenticator, IStreamChannel, IStreamReceiver, StreamContext
from xmppcert.handlers import defaultHandlers
from xmppcert.transports.tcp import TCPChannel


def test_channelAndReceiverProvideTheirInterfaces() -> None:
    """
    The TCP channel provides L{IStreamChannel}; the negotiation provides
    L{IStreamReceiver}.
    """
    conn = makeServer().connect()
    channel = conn.xs.channel
    assert isinstance(channel, TCPChannel)
    assert verifyObject(IStreamChannel, channel)
    assert verifyObject(IStreamReceiver, conn.authenticator)
    assert conn.authenticator.channel is channel


def test_channelSecureAfterStartTLS() -> None:
    """
    The channel can start TLS until it is secure; direct TLS is secure from
    the start and offers no STARTTLS.
    """
    h = makeServer()
    conn = h.connect()
    assert conn.xs.channel.canStartTLS and not conn.xs.channel.secure
    conn.startTLS()
    assert conn.xs.channel.secure and not conn.xs.channel.canStartTLS
    direct = h.connect(directTLS=True)
    assert direct.xs.channel.secure and not direct.xs.channel.canStartTLS
    assert direct.xs.channel.listener == "direct_tls"


def test_noSTARTTLSWithoutTLSFactory() -> None:
    """
    A channel that cannot start TLS is offered no STARTTLS, and a
    <starttls/> on it is not answered with <proceed/>.
    """
    conn = makeServer().connect()
    conn.xs.channel.tlsFactory = None
    features = conn.header().only("features")
    assert [(c.uri, c.name) for c in features.elements()] == []
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    assert conn.received().streamError() == "not-authorized"


def test_handlerFactoriesGetStreamContext() -> None:
    """
    A handler factory is called with a L{StreamContext} naming the account,
    the session and the domain (the attributes the authenticator had).
    """
    seen: list[Any] = []

    def factory(context: StreamContext) -> list[Any]:
        seen.append(context)
        return defaultHandlers(context)

    h = makeServer(handlerFactories=[factory])
    conn = h.connect()
    conn.bound("phone", "alice")
    [context] = seen
    assert isinstance(context, StreamContext)
    assert isinstance(conn.authenticator, C2SAuthenticator)
    assert context.account is conn.authenticator.account
    assert context.session is conn.authenticator.session
    assert context.domain == DOMAIN
    assert context.mechanism == "PLAIN"
    assert context.sessions is h.sessions
    assert context.session.jid.full() == f"alice@{DOMAIN}/phone"


def test_headerBeforeStreamErrorHasID() -> None:
    """
    The header that precedes a header error carries a stream id, as every
    header of ours does.
    """
    conn = makeServer().connect()
    answer = conn.header(to="unknown.example")
    assert answer.streamError() == "host-unknown"
    assert answer.headers[0].getAttribute("id")
    ok = makeServer().connect().header()
    assert ok.headers[0].getAttribute("id")


def test_tlsHandshakeOnSTARTTLSListener() -> None:
    """
    XEP-0368 clients try TLS first: a ClientHello on the STARTTLS listener
    is recognised and the connection closed, logged at info (not as a
    refused XML stream at warn), with nothing sent back.
    """
    from twisted.logger import LogLevel, capturedLogs

    conn = makeServer().connect()
    with capturedLogs() as events:
        conn.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert conn.transport.value() == b""
    assert conn.transport.aborted
    levels = {e["log_level"] for e in events if "TLS handshake" in e.get("log_format", "")}
    assert levels == {LogLevel.info}
    assert not [e for e in events if e["log_level"] in (LogLevel.warn, LogLevel.error)]


def test_tlsHandshakeByteLaterIsXML() -> None:
    """
    Only the first bytes of a connection are looked at: the same byte later
    in a stream is bad XML, answered with a stream error.
    """
    conn = makeServer().connect()
    conn.header()
    conn.send(b"\x16\x03\x01")
    assert conn.received().streamError() == "not-well-formed"
