# -*- test-case-name: tests.test_transports_websocket -*-
"""
XMPP over WebSocket (RFC 7395) at C{/xmpp-websocket} of the HTTPS listener.

L{WebSocketResource} answers the upgrade request (RFC 6455 section 4.2):
the C{Origin} check of C{[http] allowed_origins}, the handshake and the
C{xmpp} subprotocol; it then hands the connection to a
L{WebSocketChannel}, which is what the stream negotiation sees of it
(L{xmppcert.c2s.channel.IStreamChannel}): WebSocket framing, the
C{<open/>} and C{<close/>} framing of the stream, one element per text
message, ping and pong. The client certificate chain is the one of the
HTTPS connection that carried the upgrade, for the stream's whole life.

WebSocket framing is U{wsproto<https://python-hyper.org/projects/wsproto/>},
used directly (sans I/O): twisted.web's own WebSocket resource cannot
negotiate the subprotocol RFC 7395 requires, buffers a message of any size
before handing it over, logs a malformed handshake at error level and
switches protocols through a private hook of the HTTP channel.

This module knows nothing of SASL, sessions or the server's configuration
beyond the C{[http]} settings and the stanza limits it is given.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

import h11
from twisted.internet import protocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python import failure
from twisted.web import resource, server
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import H11Handshake
from wsproto.utilities import ProtocolError
from zope.interface import implementer

from xmppcert import _log
from xmppcert.c2s.channel import IStreamChannel, IStreamReceiver
from xmppcert.config import HTTPConfig
from xmppcert.transports.http import PeerConnection, XMPPHTTPChannel, connectionOf, originOf
from xmppcert.transports.tcp import CLOSE_GRACE
from xmppcert.xmlstream import HardenedElementStream, RestrictedXMLError, StanzaTooLargeError

log = Logger(observer=_log.observer, namespace="xmppcert.websocket")

#: The WebSocket subprotocol of RFC 7395.
SUBPROTOCOL = "xmpp"

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_CLIENT = "jabber:client"
NS_STREAMS = xmlstream.NS_STREAMS
NS_XML = "http://www.w3.org/XML/1998/namespace"

# Every message is parsed inside this root, so that a stanza that omits its
# xmlns is in jabber:client, as it would be on a TCP stream; the end tag is
# appended, so anything the message leaves open is a parse error.
_WRAPPER_START = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
_WRAPPER_END = b"</stream:stream>"

# An XML declaration (allowed, though not recommended, by RFC 7395 section
# 3.3.3) must precede the wrapper; "<?xml-stylesheet" and the like are
# processing instructions, which the parser refuses.
_XML_DECLARATION = re.compile(rb"<\?xml[ \t\r\n]")
_XML_WHITESPACE = " \t\r\n"


class FramingError(Exception):
    """
    A WebSocket message that is not one complete XML element (RFC 7395
    section 3.3.3).

    @ivar condition: the stream error condition (RFC 6120 section 4.9.3).
    @ivar text: what is wrong, for the C{<text/>} of the stream error.
    @ivar detail: the parser's own words, for the log (its positions count
        the root each message is parsed in).
    """

    def __init__(self, condition: str, text: str, detail: str = "") -> None:
        super().__init__(f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.detail = detail or text


def parseMessage(data: bytes, maxStanzaSize: int, maxStanzaElements: int) -> domish.Element:
    """
    Parse one WebSocket message of an XMPP stream.

    RFC 7395 section 3.3.3: each message is a standalone XML document
    holding exactly one element, and its first character is C{<}. A message
    with a partial element, two elements, text beside its element, or a
    comment, processing instruction or DTD is refused.

    A fresh parser per message makes the rule the parser's own: no
    namespace scope, half tag or unfinished CDATA section carries over from
    one message into the next.

    @param data: the message, UTF-8.
    @param maxStanzaSize: the largest element, in bytes.
    @param maxStanzaElements: the most elements in it.
    @return: the element; one that omits C{xmlns} is in C{jabber:client}.
    @raise FramingError: with C{not-well-formed}, C{restricted-xml} or
        C{policy-violation} (too large) as the condition.
    """
    if not data.startswith(b"<"):
        raise FramingError("not-well-formed", "A message must start with '<' (RFC 7395 section 3.3.3)")
    declaration = b""
    if _XML_DECLARATION.match(data):
        end = data.find(b"?>")
        if end == -1:
            raise FramingError("not-well-formed", "Unfinished XML declaration")
        declaration, data = data[: end + 2], data[end + 2 :]
    prefix = declaration + _WRAPPER_START
    # The wrapper's bytes count towards the first element's size: allow them.
    stream = HardenedElementStream(maxStanzaSize + len(prefix), maxStanzaElements)
    elements: list[domish.Element] = []
    ended: list[bool] = []
    stray: list[bool] = []
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: ended.append(True)

    # The element parser drops text between top-level elements (keepalives
    # on TCP); in a message it means the message is not one element.
    parser: Any = stream.parser
    onText = parser.CharacterDataHandler

    def text(content: str) -> None:
        if stream.currElem is None and content.strip(_XML_WHITESPACE):
            stray.append(True)
        onText(content)

    def cdata() -> None:
        if stream.currElem is None:
            stray.append(True)

    parser.CharacterDataHandler = text
    parser.StartCdataSectionHandler = cdata
    try:
        stream.parse(prefix + data + _WRAPPER_END)
    except RestrictedXMLError as e:
        raise FramingError("restricted-xml", str(e)) from e
    except StanzaTooLargeError as e:
        raise FramingError("policy-violation", "Stanza too large", str(e)) from e
    except domish.ParserError as e:
        raise FramingError("not-well-formed", "Not well-formed XML", str(e)) from e
    if len(elements) != 1 or len(ended) != 1 or stray:
        raise FramingError(
            "not-well-formed", "A message must hold exactly one complete element (RFC 7395 section 3.3.3)"
        )
    return elements[0]


def serializeElement(element: domish.Element) -> str:
    """
    Serialize an element as a message of its own (RFC 7395 section 3.3.3):
    a stanza made without a namespace (C{domish.Element((None, "iq"))},
    which on TCP inherits the stream's) gets C{xmlns='jabber:client'};
    C{<stream:features/>} and C{<stream:error/>} declare the C{stream}
    prefix.
    """
    if not element.uri and not element.defaultUri:
        # A shallow copy: the element may be on its way to other streams too.
        standalone = domish.Element(
            (NS_CLIENT, element.name), NS_CLIENT, dict(element.attributes), dict(element.localPrefixes)
        )
        standalone.children = element.children
        element = standalone
    return element.toXml(prefixes={NS_STREAMS: "stream"})


@implementer(IStreamChannel)
class WebSocketChannel(protocol.Protocol):
    """
    One client stream over a WebSocket connection: the wire protocol the
    HTTP connection is switched to after the upgrade, and the
    L{IStreamChannel} its negotiation talks to.

    Once L{closing} is set (our C{<close/>} went out, or the WebSocket is
    closing), the receiver has been told (C{streamClosing}), nothing more
    is sent, nothing the peer sends is acted on, and the connection is cut
    if it is not closed within L{CLOSE_GRACE} seconds.

    @ivar receiver: the stream's L{IStreamReceiver} (the negotiation).
    @ivar peer: the facts of the HTTPS connection, read at the upgrade.
    @ivar secure: whether the upgrade came over TLS.
    @ivar maxMessageSize: the largest message, in bytes.
    @ivar pingInterval: seconds of silence before a ping; 0 for none.
    @ivar thisEntity: the served domain our C{<open/>} names.
    @ivar otherEntity: the client's C{from}, when it gave one.
    @ivar sid: the id our next C{<open/>} carries.
    """

    transportName = "websocket"
    listener = "websocket"
    canStartTLS = False

    def __init__(
        self,
        receiver: IStreamReceiver,
        websocket: Connection,
        clock: IReactorTime,
        peer: PeerConnection,
        secure: bool,
        maxMessageSize: int,
        pingInterval: float,
        stanzaLimits: tuple[int, int],
    ) -> None:
        self.receiver = receiver
        self.clock = clock
        self.peer = peer
        self.secure = secure
        self.maxMessageSize = maxMessageSize
        self.pingInterval = pingInterval
        self.maxStanzaSize, self.maxStanzaElements = stanzaLimits
        self.closing = False
        self.thisEntity: jid.JID | None = None
        self.otherEntity: jid.JID | None = None
        self.sid: str | None = None
        self._ws = websocket
        # The next element must be <open/>: at the start, and after reset().
        self._awaitingOpen = True
        # Set by reset(): a stream restart is pending.
        self._restarting = False
        self._openSent = False
        self._message: list[bytes] = []
        self._messageSize = 0
        self._lastHeard = 0.0
        self._keepaliveCall: IDelayedCall | None = None
        self._abortCall: IDelayedCall | None = None
        # Set when the WebSocket failed (RFC 6455 section 7.1.7): nothing
        # more the peer sends is read.
        self._failed = False
        self._lost = False

    # --- the connection -----------------------------------------------------

    def connectionMade(self) -> None:
        self._lastHeard = self.clock.seconds()
        self.receiver.channelOpened(self)
        if not self.closing:
            self._scheduleKeepalive(self.pingInterval)

    def dataReceived(self, data: bytes) -> None:
        if self._failed or self._lost or self._ws.state is ConnectionState.CLOSED:
            return
        self._lastHeard = self.clock.seconds()
        self._ws.receive_data(data)
        for event in self._ws.events():
            self._eventReceived(event)
            if self._failed or self._lost:
                break

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        if self._lost:
            return
        self._lost = True
        self.closing = True
        self._message = []
        for call in (self._abortCall, self._keepaliveCall):
            if call is not None and call.active():
                call.cancel()
        self._abortCall = self._keepaliveCall = None
        self.receiver.channelClosed()

    # --- WebSocket events -----------------------------------------------------

    def _eventReceived(self, event: Event) -> None:
        if isinstance(event, TextMessage):
            self._textReceived(event)
        elif isinstance(event, BytesMessage):
            if not self.closing:
                # RFC 7395 section 3.2: text messages only.
                self._refuse(
                    "bad-format",
                    "Binary WebSocket messages are not allowed (RFC 7395 section 3.2)",
                    CloseReason.UNSUPPORTED_DATA,
                )
        elif isinstance(event, Ping):
            if self._ws.state is ConnectionState.OPEN:
                self._write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            self._closeReceived(event)
        # Pongs only show the peer is there, which any data does.

    def _textReceived(self, event: TextMessage) -> None:
        if self.closing:
            return
        chunk = event.data.encode("utf-8")
        # Checked as the chunks arrive: a large message is refused before it
        # is held whole.
        if self._messageSize + len(chunk) > self.maxMessageSize:
            self._message = []
            self._refuse(
                "policy-violation",
                f"WebSocket message over {self.maxMessageSize} bytes",
                CloseReason.MESSAGE_TOO_BIG,
            )
            return
        self._message.append(chunk)
        self._messageSize += len(chunk)
        if not event.message_finished:
            return
        data = b"".join(self._message)
        self._message = []
        self._messageSize = 0
        try:
            element = parseMessage(data, self.maxStanzaSize, self.maxStanzaElements)
        except FramingError as e:
            self._refuse(e.condition, e.text, detail=e.detail)
            return
        self._elementReceived(element)

    def _closeReceived(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer closed the WebSocket: the stream is implicitly closed
            # (RFC 7395 section 3.6). Answer, and close the connection.
            self._setClosing()
            self._write(self._ws.send(event.response()))
            self._closeTransport()
        elif state is ConnectionState.CLOSED:
            # The answer to our close frame: the server closes the TCP
            # connection first (RFC 6455 section 7.1.1).
            self._closeTransport()
        else:
            # wsproto reports a frame it could not parse as a close of its
            # own: fail the WebSocket (RFC 6455 section 7.1.7).
            log.warn(
                "Closing the WebSocket of {peer}: {reason} ({code})",
                peer=self.peer.label(),
                reason=event.reason or "",
                code=int(event.code),
            )
            self._failed = True
            self._setClosing()
            if state is ConnectionState.OPEN:
                self._write(self._ws.send(CloseConnection(code=event.code, reason=event.reason)))
            self._closeTransport()

    # --- the framed stream ------------------------------------------------------

    def _elementReceived(self, element: domish.Element) -> None:
        framing = element.uri == NS_FRAMING
        isOpen = framing and element.name == "open"
        if self._restarting and not isOpen:
            # RFC 7395 section 3.7: after a restart the next message is a new
            # <open/>. Anything else was sent before the client saw
            # <success/> and must not reach the new stream.
            log.warn("Data pipelined across a stream restart; closing", peer=self.peer.label())
            self.abortConnection()
            return
        if framing and element.name == "close":
            # RFC 7395 section 3.6: answer with ours, and close.
            self.sendFooter()
            return
        if self._awaitingOpen:
            if not isOpen:
                # RFC 7395 section 3.3.2: the stream header must be <open/>
                # in the framing namespace.
                self._refuse(
                    "invalid-namespace",
                    f"The first element must be <open xmlns='{NS_FRAMING}'/>",
                )
                return
            self._awaitingOpen = False
            self._restarting = False
            self.receiver.streamStarted(self._header(element))
            return
        self.receiver.elementReceived(element)

    def _header(self, opening: domish.Element) -> domish.Element:
        """
        @return: the C{<stream:stream>} root a TCP stream would have had
            for this C{<open/>}: the negotiation checks it the same way.
        """
        attributes: dict[Any, str] = {}
        for key in ("to", "from", "version", (NS_XML, "lang")):
            value = opening.attributes.get(key)
            if value is not None:
                attributes[key] = value
        return domish.Element((NS_STREAMS, "stream"), defaultUri=NS_CLIENT, attribs=attributes)

    def _refuse(
        self, condition: str, text: str, code: int = CloseReason.NORMAL_CLOSURE, detail: str = ""
    ) -> None:
        # Warn, never error: a remote peer must not raise the log level.
        log.warn(
            "Refusing the WebSocket stream of {peer}: {condition} ({reason})",
            peer=self.peer.label(),
            condition=condition,
            reason=detail or text,
        )
        self._streamError(error.StreamError(condition, text=text), code)

    def _streamError(self, streamError: error.StreamError, code: int) -> None:
        if self.closing:
            self.loseConnection()
            return
        if not self._openSent:
            if self.thisEntity is None:
                self._setClosing()
                self._closeWebSocket(code)
                return
            # RFC 7395 section 3.5: our <open/> precedes the error.
            self._sendOpen()
        self.send(streamError.getElement())
        self._sendClose(code)

    def _sendOpen(self) -> None:
        # The attributes of the TCP header (RFC 7395 section 3.4).
        opening = domish.Element((NS_FRAMING, "open"))
        if self.otherEntity is not None:
            opening["to"] = self.otherEntity.userhost()
        if self.thisEntity is not None:
            opening["from"] = self.thisEntity.userhost()
        if self.sid:
            opening["id"] = self.sid
        opening["version"] = "1.0"
        opening[(NS_XML, "lang")] = "en"
        self._openSent = True
        self._sendText(opening.toXml())

    def _sendClose(self, code: int) -> None:
        if self.closing:
            return
        self._sendText(domish.Element((NS_FRAMING, "close")).toXml())
        self._setClosing()
        self._closeWebSocket(code)

    # --- IStreamChannel -------------------------------------------------------

    def peerLabel(self) -> str:
        return self.peer.label()

    def peerAddress(self) -> str:
        return self.peer.address()

    def peerHost(self) -> str | None:
        return None if self._lost else self.peer.host

    def peerChain(self) -> tuple[Any, ...]:
        # Pinned when the connection was upgraded (the TLS handshake was
        # over before the request).
        return self.peer.chain if self.secure else ()

    def openStream(self, thisEntity: jid.JID, otherEntity: jid.JID | None) -> None:
        self.thisEntity = thisEntity
        self.otherEntity = otherEntity
        self._sendOpen()

    def send(self, obj: Any) -> None:
        if self.closing:
            return
        if isinstance(obj, bytes):
            obj = obj.decode("utf-8")
        if isinstance(obj, str):
            if not obj.strip(_XML_WHITESPACE):
                # RFC 7395 section 3.8: no whitespace keepalives; a ping
                # does their work.
                self._ping()
                return
            self._sendText(obj)
            return
        self._sendText(serializeElement(obj))

    def sendFooter(self) -> None:
        self._sendClose(CloseReason.NORMAL_CLOSURE)

    def sendStreamError(self, streamError: error.StreamError) -> None:
        self._streamError(streamError, CloseReason.NORMAL_CLOSURE)

    def loseConnection(self) -> None:
        self._setClosing()
        self._closeWebSocket(CloseReason.NORMAL_CLOSURE)

    def abortConnection(self) -> None:
        self._setClosing()
        transport: Any = self.transport
        if transport is not None and not self._lost:
            transport.abortConnection()

    def reset(self) -> None:
        # After <success/>: the next message must be a new <open/>, and a
        # stream error before it follows a new <open/> of ours.
        self._awaitingOpen = True
        self._restarting = True
        self._openSent = False

    def startTLS(self) -> None:
        raise RuntimeError("a WebSocket stream cannot start TLS")

    def streamBound(self) -> None:
        pass

    # --- closing ----------------------------------------------------------------

    def _setClosing(self) -> None:
        if self.closing:
            return
        self.closing = True
        self._message = []
        self._messageSize = 0
        if self._keepaliveCall is not None and self._keepaliveCall.active():
            self._keepaliveCall.cancel()
        self._keepaliveCall = None
        self.receiver.streamClosing()

    def _closeWebSocket(self, code: int) -> None:
        """
        Start the WebSocket closing handshake (or answer the peer's), and
        cut the connection if it is not closed within L{CLOSE_GRACE}.
        """
        if self._lost:
            return
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._write(self._ws.send(CloseConnection(code=code)))
        if self._ws.state is ConnectionState.CLOSED:
            self._closeTransport()
        else:
            self._armAbort()

    def _closeTransport(self) -> None:
        self._armAbort()
        transport: Any = self.transport
        if transport is not None and not self._lost:
            transport.loseConnection()

    def _armAbort(self) -> None:
        # Scheduled before closing: connectionLost (maybe called from inside
        # loseConnection) cancels it. A TLS close waits for the peer's
        # close_notify, which a hostile peer never sends.
        if self._abortCall is None and not self._lost:
            self._abortCall = self.clock.callLater(CLOSE_GRACE, self._abortNow)

    def _abortNow(self) -> None:
        self._abortCall = None
        transport: Any = self.transport
        if transport is not None and not self._lost:
            transport.abortConnection()

    # --- output and keepalive ---------------------------------------------------

    def _write(self, data: bytes) -> None:
        transport: Any = self.transport
        if data and transport is not None and not self._lost:
            transport.write(data)

    def _sendText(self, text: str) -> None:
        if self._ws.state is ConnectionState.OPEN:
            self._write(self._ws.send(TextMessage(data=text)))

    def _ping(self) -> None:
        if self._ws.state is ConnectionState.OPEN:
            self._write(self._ws.send(Ping()))

    def _scheduleKeepalive(self, delay: float) -> None:
        if self.pingInterval > 0 and not self.closing and not self._lost:
            self._keepaliveCall = self.clock.callLater(delay, self._checkSilence)

    def _checkSilence(self) -> None:
        """
        Ping after L{pingInterval} seconds in which nothing arrived; cut the
        connection after twice that (no data, no pong: the peer or the path
        to it is gone).
        """
        self._keepaliveCall = None
        if self.closing or self._lost:
            return
        interval = self.pingInterval
        silent = self.clock.seconds() - self._lastHeard
        if silent >= 2 * interval:
            log.info(
                "Dropping the WebSocket of {peer}: no answer for {seconds:g} s",
                peer=self.peer.label(),
                seconds=silent,
            )
            self.abortConnection()
        elif silent >= interval:
            self._ping()
            self._scheduleKeepalive(2 * interval - silent)
        else:
            self._scheduleKeepalive(interval - silent)


class _NoSubprotocol(protocol.Protocol):
    """
    A WebSocket accepted without the C{xmpp} subprotocol: no XMPP stream is
    established on it (RFC 7395 section 3.1), so it is closed at once with
    1002, and cut if the client does not close within L{CLOSE_GRACE}.
    """

    def __init__(self, websocket: Connection, clock: IReactorTime) -> None:
        self._ws = websocket
        self.clock = clock
        self._abortCall: IDelayedCall | None = None
        self._done = False

    def connectionMade(self) -> None:
        transport: Any = self.transport
        self._abortCall = self.clock.callLater(CLOSE_GRACE, transport.abortConnection)
        transport.write(
            self._ws.send(
                CloseConnection(code=CloseReason.PROTOCOL_ERROR, reason="the xmpp subprotocol is required")
            )
        )

    def dataReceived(self, data: bytes) -> None:
        # Read only for the client's close frame; messages are dropped as
        # they are parsed, never buffered.
        if self._done:
            return
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, CloseConnection):
                self._done = True
                transport: Any = self.transport
                transport.loseConnection()
                return

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None


class WebSocketResource(resource.Resource):
    """
    The WebSocket endpoint: the upgrade request (RFC 6455 section 4.2) and
    the C{xmpp} subprotocol (RFC 7395 section 3.1); each accepted
    connection becomes a L{WebSocketChannel}.

    @ivar newReceiver: makes the L{IStreamReceiver} of a new stream.
    @ivar clock: for the keepalive and the close deadline.
    @ivar settings: returns the live C{[http]} settings, read for each
        connection.
    @ivar stanzaLimits: returns the live C{(max_stanza_size,
        max_stanza_elements)}, read for each connection.
    """

    isLeaf = True

    def __init__(
        self,
        newReceiver: Callable[[], IStreamReceiver],
        clock: IReactorTime,
        settings: Callable[[], HTTPConfig],
        stanzaLimits: Callable[[], tuple[int, int]],
    ) -> None:
        super().__init__()
        self.newReceiver = newReceiver
        self.clock = clock
        self.settings = settings
        self.stanzaLimits = stanzaLimits

    def render_GET(self, request: server.Request) -> bytes | int:
        settings = self.settings()
        peer = connectionOf(request)
        origin = originOf(request)
        if not settings.allowsOrigin(origin):
            # RFC 6455 section 4.2.2: a page of another origin gets 403.
            log.info(
                "Refusing a WebSocket from {peer}: origin {origin} is not allowed",
                peer=peer.label(),
                origin=origin,
            )
            return _plain(request, 403, b"origin not allowed\n")
        if request.method != b"GET" or request.clientproto != b"HTTP/1.1":
            # RFC 6455 section 4.1: a GET, HTTP/1.1 at least (this site
            # speaks 1.1 only).
            return self._badRequest(request, peer, "not an HTTP/1.1 GET", 400, [])
        handshake = H11Handshake(ConnectionType.SERVER)
        headers = [
            (name, value) for name, values in request.requestHeaders.getAllRawHeaders() for value in values
        ]
        try:
            handshake.initiate_upgrade_connection(headers, request.uri)
            events = list(handshake.events())
        except ProtocolError as e:
            # wsproto's hint says how to refuse: 426 and the version we
            # speak for another Sec-WebSocket-Version (RFC 6455 section 4.4).
            hint: Any = getattr(e, "event_hint", None)
            status = getattr(hint, "status_code", 400)
            extra = list(getattr(hint, "headers", None) or [])
            return self._badRequest(request, peer, str(e), status, extra)
        except (h11.ProtocolError, UnicodeError, ValueError) as e:
            return self._badRequest(request, peer, str(e), 400, [])
        upgrade = events[0] if events else None
        if not isinstance(upgrade, Request):
            return self._badRequest(request, peer, "not a WebSocket handshake", 400, [])
        key = request.getHeader(b"sec-websocket-key") or b""
        try:
            validKey = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            validKey = False
        if not validKey:
            # RFC 6455 section 4.2.1: 16 random bytes, base64-encoded.
            return self._badRequest(request, peer, "bad Sec-WebSocket-Key", 400, [])

        httpChannel = request.channel
        if not isinstance(httpChannel, XMPPHTTPChannel):
            raise TypeError("the WebSocket resource needs an XMPPSite (XMPPHTTPChannel)")
        wire: protocol.Protocol
        if SUBPROTOCOL in upgrade.subprotocols:
            response = handshake.send(AcceptConnection(subprotocol=SUBPROTOCOL))
            websocket = handshake.connection
            assert websocket is not None
            maxSize, maxElements = self.stanzaLimits()
            wire = WebSocketChannel(
                self.newReceiver(),
                websocket,
                self.clock,
                peer,
                secure=request.isSecure(),
                maxMessageSize=settings.max_websocket_message,
                pingInterval=settings.websocket_ping_interval,
                stanzaLimits=(maxSize, maxElements),
            )
        else:
            # RFC 7395 section 3.1: without 'xmpp' in our answer no XMPP
            # stream is established, and RFC 6455 section 4.2.2 forbids
            # answering with a subprotocol the client did not offer: accept
            # without one, and close.
            log.info(
                "Closing a WebSocket from {peer}: it did not offer the xmpp subprotocol ({offered})",
                peer=peer.label(),
                offered=", ".join(upgrade.subprotocols) or "none",
            )
            response = handshake.send(AcceptConnection())
            websocket = handshake.connection
            assert websocket is not None
            wire = _NoSubprotocol(websocket, self.clock)
        transport: Any = httpChannel.transport
        transport.write(response)
        httpChannel.switchProtocol(wire)
        return server.NOT_DONE_YET

    def _badRequest(
        self,
        request: server.Request,
        peer: PeerConnection,
        why: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
    ) -> bytes:
        # Info, never error: anyone can send a bad handshake.
        log.info("Refusing a WebSocket handshake from {peer}: {why}", peer=peer.label(), why=why)
        for name, value in headers:
            request.setHeader(name, value)
        return _plain(request, status, b"not a valid WebSocket handshake for the xmpp subprotocol\n")


def _plain(request: server.Request, status: int, body: bytes) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return body


__all__ = [
    "NS_FRAMING",
    "SUBPROTOCOL",
    "FramingError",
    "WebSocketChannel",
    "WebSocketResource",
    "parseMessage",
    "serializeElement",
]
