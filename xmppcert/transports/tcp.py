# -*- test-case-name: tests.test_c2s -*-
"""
The TCP transport of client streams: STARTTLS (RFC 6120 section 5) on one
listener, direct TLS (XEP-0368) on another.

L{C2SStream} is Twisted's XML stream with the hardened parser, as the
receiving entity; L{TCPChannel} is what the stream negotiation sees of it
(L{xmppcert.c2s.channel.IStreamChannel}): TCP_NODELAY, the
L{ISSLTransport} check, C{startTLS} on the transport and the peer's
certificate chain stay here. This module knows nothing of SASL, sessions or
the server's configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish
from twisted.words.xish import xmlstream as xishxmlstream
from zope.interface import implementer

from xmppcert import _log
from xmppcert.c2s.channel import IStreamChannel, IStreamReceiver
from xmppcert.limits import peerHost
from xmppcert.tls import peerCertificateChain
from xmppcert.xmlstream import HardenedXmlStream, IdleParsers

log = Logger(observer=_log.observer, namespace="xmppcert.c2s")

NS_CLIENT = "jabber:client"
NS_STREAMS = xmlstream.NS_STREAMS

#: Seconds a peer has to close its side after our stream error or closing
#: tag, before the connection is cut (a TLS close waits for the peer's
#: close_notify, which a hostile peer never sends).
CLOSE_GRACE = 5.0

#: The first byte of a TLS handshake record (a ClientHello); no XML stream
#: starts with it.
TLS_HANDSHAKE_RECORD = b"\x16"


class C2SStream(HardenedXmlStream):
    """
    A client stream with the hardened parser, as the receiving entity.

    @ivar authenticator: the stream's L{IStreamReceiver} (the negotiation;
        Twisted's historical name).
    @ivar channel: the L{TCPChannel} the receiver talks to.
    """

    initiating = False
    #: Set by the factory: the server clock, for the close deadline.
    clock: IReactorTime | None = None
    _abortCall: IDelayedCall | None = None
    #: Set once our closing tag is out: the stream is over for us, even
    #: though TLS keeps delivering what the peer sends until it closes.
    closing = False
    #: Whether anything arrived yet (the first bytes tell a TLS handshake).
    _sawData = False

    def __init__(self, receiver: Any) -> None:
        # What XmlStream.__init__ does, without associating an authenticator:
        # the receiver is told of the connection through the channel.
        xishxmlstream.XmlStream.__init__(self)
        self.prefixes = {NS_STREAMS: "stream"}
        self.authenticator = receiver
        self.initializers = []
        self.features = {}
        self.channel = TCPChannel(self)

    def connectionMade(self) -> None:
        # Sets up the parser; the receiver hears of it from the channel.
        xishxmlstream.XmlStream.connectionMade(self)
        self.channel.connectionMade()

    def dataReceived(self, data: bytes) -> None:
        if (
            not self._sawData
            and not self.channel.secure
            and data[:1] == TLS_HANDSHAKE_RECORD
        ):
            # A TLS ClientHello where a stream header belongs: a client
            # trying direct TLS on the STARTTLS port (slixmpp does, on any
            # port). No XML can reach it; say what happened, quietly.
            self._sawData = True
            log.info(
                "A TLS handshake from {peer} on the STARTTLS listener; closing (direct TLS has its own port)",
                peer=self.channel.peerLabel(),
            )
            self.closing = True
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self._sawData = True
        super().dataReceived(data)

    def sendFooter(self) -> None:
        if self.closing:
            return
        super().sendFooter()
        self.closing = True
        closing = getattr(self.authenticator, "streamClosing", None)
        if closing is not None:
            closing()

    def send(self, obj: Any) -> None:
        # Nothing may follow our closing tag (RFC 6120 section 4.4), e.g. a
        # late answer from a handler.
        if not self.closing:
            super().send(obj)

    def onElement(self, element: domish.Element) -> None:
        # After a stream error or our closing tag nothing the peer sends is
        # acted on (a revoked session, a client past the SASL retry limit).
        if not self.closing:
            super().onElement(element)

    def loseConnection(self) -> None:
        """
        Close, and cut the connection if the peer does not finish closing
        within L{CLOSE_GRACE} seconds.
        """
        transport: Any = self.transport
        if self.clock is not None and self._abortCall is None:
            # Scheduled first: connectionLost (maybe called from inside
            # loseConnection) cancels it.
            self._abortCall = self.clock.callLater(CLOSE_GRACE, transport.abortConnection)
        transport.loseConnection()

    def sendStreamError(self, streamError: error.StreamError) -> None:
        if not self._headerSent and self.thisEntity is None:
            return self.loseConnection()
        if not self._headerSent:
            self.sendHeader()
        self.send(streamError.getElement())
        self.sendFooter()
        self.loseConnection()

    def connectionLost(self, reason: failure.Failure) -> None:  # type: ignore[override]
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        super().connectionLost(reason)

    def reset(self) -> None:
        # Bytes that arrived in the same read as <starttls/> or after
        # <success/> must not be parsed as part of the new stream (that is
        # the STARTTLS command injection attack): silence the old parser.
        old = self.stream
        super().reset()
        if old is not None:
            old.DocumentStartEvent = self._dataBeforeRestart
            old.ElementEvent = self._dataBeforeRestart
            old.DocumentEndEvent = self._dataBeforeRestart

    def _dataBeforeRestart(self, *args: object) -> None:
        log.warn("Data pipelined across a stream restart; closing", peer=self.channel.peerLabel())
        self.transport.abortConnection()  # type: ignore[union-attr]

    def onDocumentEnd(self) -> None:
        # RFC 6120 section 4.4: answer the closing tag with ours.
        if self._headerSent:
            self.sendFooter()
        self.closing = True
        self.loseConnection()


@implementer(IStreamChannel)
class TCPChannel:
    """
    L{IStreamChannel} over a L{C2SStream} on a TCP connection, plain (with
    STARTTLS) or direct TLS.

    @ivar tlsFactory: returns what L{startTLS} gives the transport (read
        when TLS starts); set by the factory (C{None}: this listener cannot
        start TLS).
    """

    transportName = "tcp"

    def __init__(self, xs: C2SStream) -> None:
        self.xs = xs
        self.secure = False
        self.listener = "starttls"
        self.tlsFactory: Any = None

    # --- what the transport tells the receiver ------------------------------

    def connectionMade(self) -> None:
        xs = self.xs
        transport: Any = xs.transport
        setNoDelay = getattr(transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            # Features that wait for the store (EXTERNAL) leave after the
            # stream header in a second small write; with Nagle's algorithm
            # it would wait for the client's delayed ACK (tens of ms).
            setNoDelay(True)
        # Anything sent before the client's header (an error) must still
        # carry our namespace.
        xs.namespace = NS_CLIENT
        if ISSLTransport.providedBy(transport):
            # Direct TLS (XEP-0368): the handshake precedes the stream header.
            self.secure = True
            self.listener = "direct_tls"
        receiver: IStreamReceiver = xs.authenticator
        receiver.channelOpened(self)
        xs.addObserver("/*", receiver.elementReceived)
        xs.addObserver(xmlstream.STREAM_END_EVENT, lambda reason: receiver.channelClosed())

    # --- IStreamChannel -------------------------------------------------------

    @property
    def canStartTLS(self) -> bool:
        return not self.secure and self.tlsFactory is not None

    @property
    def closing(self) -> bool:
        return self.xs.closing

    @property
    def thisEntity(self) -> jid.JID | None:
        return self.xs.thisEntity

    @thisEntity.setter
    def thisEntity(self, value: jid.JID | None) -> None:
        xs: Any = self.xs
        xs.thisEntity = value

    @property
    def sid(self) -> str | None:
        return self.xs.sid

    @sid.setter
    def sid(self, value: str | None) -> None:
        xs: Any = self.xs
        xs.sid = value

    def peerLabel(self) -> str:
        try:
            address: Any = self.xs.transport.getPeer()  # type: ignore[union-attr]
            return f"{address.host}:{address.port}"
        except Exception:
            return "?"

    def peerAddress(self) -> str:
        try:
            address: Any = self.xs.transport.getPeer()  # type: ignore[union-attr]
            host, port = address.host, address.port
        except Exception:
            return ""
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def peerHost(self) -> str | None:
        transport: Any = self.xs.transport
        if transport is None:
            return None
        return peerHost(transport.getPeer())

    def peerChain(self) -> tuple[Any, ...]:
        if not self.secure:
            return ()
        return tuple(peerCertificateChain(self.xs.transport))

    def openStream(self, thisEntity: jid.JID, otherEntity: jid.JID | None) -> None:
        xs: Any = self.xs
        xs.thisEntity = thisEntity
        xs.otherEntity = otherEntity
        xs.sendHeader()

    def send(self, obj: Any) -> None:
        self.xs.send(obj)

    def sendFooter(self) -> None:
        self.xs.sendFooter()

    def sendStreamError(self, streamError: error.StreamError) -> None:
        self.xs.sendStreamError(streamError)

    def loseConnection(self) -> None:
        self.xs.loseConnection()

    def abortConnection(self) -> None:
        self.xs.transport.abortConnection()  # type: ignore[union-attr]

    def reset(self) -> None:
        self.xs.reset()

    def startTLS(self) -> None:
        assert self.canStartTLS
        # Twisted writes what was sent before (<proceed/>) in the clear,
        # then starts TLS.
        self.xs.transport.startTLS(self.tlsFactory())  # type: ignore[union-attr]
        self.secure = True

    def streamBound(self) -> None:
        self.xs.dispatch(self.xs, xmlstream.STREAM_AUTHD_EVENT)


def streamFactory(
    newReceiver: Callable[[], Any],
    clock: IReactorTime,
    tlsFactory: Callable[[], Any],
    stanzaLimits: Callable[[], tuple[int, int]],
    idleParsers: IdleParsers | None = None,
) -> xmlstream.XmlStreamServerFactory:
    """
    A protocol factory for client streams over TCP. Wrap it with
    C{tlsFactory.wrapFactory} for direct TLS.

    @param newReceiver: makes the L{IStreamReceiver} of a new stream.
    @param clock: for the close deadline.
    @param tlsFactory: returns the TLS context factory STARTTLS uses.
    @param stanzaLimits: the current C{(max_stanza_size,
        max_stanza_elements)}, read for each connection.
    @param idleParsers: where the streams' parsers are parked when idle.
    """

    def build() -> Any:
        return newReceiver()

    factory = _StreamFactory(build)
    factory.protocol = C2SStream
    factory.clock = clock
    factory.tlsFactory = tlsFactory
    factory.stanzaLimits = stanzaLimits
    factory.idleParsers = idleParsers
    return factory


class _StreamFactory(xmlstream.XmlStreamServerFactory):
    clock: IReactorTime
    tlsFactory: Callable[[], Any]
    stanzaLimits: Callable[[], tuple[int, int]]
    idleParsers: IdleParsers | None

    def buildProtocol(self, addr: Any) -> Any:
        xs = super().buildProtocol(addr)
        xs.maxStanzaSize, xs.maxStanzaElements = self.stanzaLimits()
        xs.clock = self.clock
        xs.idleParsers = self.idleParsers
        xs.channel.tlsFactory = self.tlsFactory
        return xs


__all__ = ["CLOSE_GRACE", "C2SStream", "TCPChannel", "streamFactory"]
