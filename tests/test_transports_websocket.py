"""
Tests for L{xmppcert.transports.websocket}: XMPP over WebSocket (RFC 7395)
through a real L{XMPPSite}, with real bytes: the upgrade request and the
client's frames are made by a client-side wsproto connection (which masks
its frames, as browsers must), and what the server writes is read back
with it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python import failure
from twisted.web import resource
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from zope.interface import directlyProvides, provider
from zope.interface.verify import verifyObject

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    NS_BIND,
    NS_CLIENT,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    PASSWORD,
    ServerHarness,
    makeConfig,
    makeServer,
)
from tests.helpers import certificateHarness as storedCertificateHarness
from xmppcert.c2s import C2SAuthenticator, IStreamChannel
from xmppcert.config import HTTPConfig
from xmppcert.sasl import NS_SASL
from xmppcert.transports.http import WEBSOCKET_PATH, PeerConnection, XMPPSite
from xmppcert.transports.tcp import CLOSE_GRACE
from xmppcert.transports.websocket import (
    NS_FRAMING,
    FramingError,
    WebSocketChannel,
    WebSocketResource,
    parseMessage,
    serializeElement,
)

NS_XML = "http://www.w3.org/XML/1998/namespace"
ORIGIN = "https://chat.example.com"
OPEN = f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0' xml:lang='en'/>"
CLOSE = f"<close xmlns='{NS_FRAMING}'/>"


class ClientTransport(StringTransport):
    """
    The server's side of the client's connection: records an abort.
    """

    aborted = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


@dataclass
class Output:
    """
    What the server sent since the last look, as the client sees it.

    @ivar texts: the text messages, whole.
    @ivar binary: the binary messages.
    @ivar pings: the payloads of the pings.
    @ivar pongs: the payloads of the pongs.
    @ivar close: the server's close frame, if one came.
    """

    texts: list[str] = field(default_factory=list)
    binary: list[bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    close: CloseConnection | None = None

    def elements(self) -> list[domish.Element]:
        """
        Each text message parsed as a document of its own, in a root that
        declares no namespace: what a message does not declare itself is
        missing (an undeclared prefix is an error).
        """
        return [standalone(text) for text in self.texts]

    def only(self) -> domish.Element:
        elements = self.elements()
        assert len(elements) == 1, self.texts
        return elements[0]

    def streamError(self) -> str:
        """
        @return: the condition of the stream error, after checking the
            framing of RFC 7395 sections 3.5 and 3.6: the error in a message
            of its own, then C{<close/>}, then the WebSocket close.
        """
        elements = self.elements()
        names = [(e.uri, e.name) for e in elements]
        assert names[-2:] == [(NS_STREAMS, "error"), (NS_FRAMING, "close")], self.texts
        assert self.close is not None, "no WebSocket close after the stream error"
        conditions = [c.name for c in elements[-2].elements() if c.uri == NS_STREAM_ERRORS and c.name != "text"]
        assert len(conditions) == 1, self.texts
        return conditions[0]


def standalone(text: str) -> domish.Element:
    assert text.startswith("<"), text
    found: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = found.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(b"<root>" + text.encode("utf-8") + b"</root>")
    assert len(found) == 1, text
    return found[0]


class WebClient:
    """
    A browser's connection to the HTTPS listener, with the WebSocket
    resource at C{/xmpp-websocket}.
    """

    def __init__(
        self,
        h: ServerHarness,
        settings: HTTPConfig | None = None,
        peer: PeerConnection | None = None,
        secure: bool = True,
    ) -> None:
        self.h = h
        self.settings = settings or HTTPConfig()
        self.resource = WebSocketResource(
            h.server.newStream, h.clock, lambda: self.settings, h.server.stanzaLimits
        )
        root = resource.Resource()
        root.putChild(WEBSOCKET_PATH, self.resource)
        # The HTTP channel's timeouts on a clock of their own.
        self.site = XMPPSite(root, lambda: self.settings, reactor=task.Clock())
        self.http = self.site.buildProtocol(None)
        self.transport = ClientTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000))
        if secure:
            directlyProvides(self.transport, ISSLTransport)
        # What connectionOf reads: the facts of this TLS connection.
        self.http.peerConnection = peer or PeerConnection("192.0.2.7", 40000, ())
        self.http.makeConnection(self.transport)
        # The handshake, and reading what the server sends.
        self.ws = WSConnection(ConnectionType.CLIENT)
        # The client's frames, masked: made apart from self.ws, so that the
        # tests can go on sending after the server closed, as a hostile
        # client would.
        self.frames = Connection(ConnectionType.CLIENT)
        self._seen = 0
        self._text: list[str] = []
        self._pending: list[Event] = []

    # --- the handshake ------------------------------------------------------

    def upgrade(
        self,
        subprotocols: tuple[str, ...] = ("xmpp",),
        origin: str | None = None,
    ) -> Event:
        """
        Send the upgrade request; return wsproto's verdict on the answer
        (L{AcceptConnection} or L{RejectConnection}).
        """
        headers = [(b"origin", origin.encode())] if origin is not None else []
        request = Request(
            host=DOMAIN, target="/xmpp-websocket", subprotocols=list(subprotocols), extra_headers=headers
        )
        self.http.dataReceived(self.ws.send(request))
        events = self.events()
        assert events, "no answer to the upgrade"
        self._pending = events[1:]
        return events[0]

    def opened(self) -> WebClient:
        assert isinstance(self.upgrade(), AcceptConnection)
        return self

    @property
    def authenticator(self) -> C2SAuthenticator:
        found = [s for s in self.h.server.streams if getattr(s.channel, "transport", None) is self.transport]
        assert len(found) == 1
        return found[0]

    @property
    def channel(self) -> WebSocketChannel:
        channel = self.authenticator.channel
        assert isinstance(channel, WebSocketChannel)
        return channel

    # --- input ----------------------------------------------------------------

    def sendBytes(self, data: bytes) -> None:
        self.http.dataReceived(data)

    def sendEvent(self, event: Event) -> None:
        self.sendBytes(self.frames.send(event))

    def send(self, text: str, finished: bool = True) -> None:
        self.sendEvent(TextMessage(data=text, message_finished=finished))

    def exchange(self, text: str) -> Output:
        self.send(text)
        return self.output()

    def closeWebSocket(self, code: int = 1000) -> None:
        self.sendEvent(CloseConnection(code=code))

    def lose(self) -> None:
        """
        The connection is gone (what the reactor does after a close).
        """
        self.http.connectionLost(failure.Failure(ConnectionError("gone")))

    # --- output ---------------------------------------------------------------

    def events(self) -> list[Event]:
        value = self.transport.value()
        new, self._seen = value[self._seen :], len(value)
        self.ws.receive_data(new)
        pending, self._pending = self._pending, []
        return pending + list(self.ws.events())

    def output(self) -> Output:
        out = Output()
        for event in self.events():
            if isinstance(event, TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    out.texts.append("".join(self._text))
                    self._text = []
            elif isinstance(event, BytesMessage):
                out.binary.append(bytes(event.data))
            elif isinstance(event, Ping):
                out.pings.append(bytes(event.payload))
            elif isinstance(event, Pong):
                out.pongs.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                out.close = event
        return out

    # --- negotiation steps ----------------------------------------------------

    def open(self) -> Output:
        return self.exchange(OPEN)

    def auth(self, mechanism: str, raw: str = "") -> Output:
        return self.exchange(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{raw}</auth>")

    def bind(self, resourceName: str) -> domish.Element:
        answer = self.exchange(
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{resourceName}</resource></bind></iq>"
        ).only()
        assert answer.getAttribute("type") == "result", answer.toXml()
        return answer

    def loginPlain(self, user: str = "alice") -> None:
        self.open()
        plain = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        success = self.auth("PLAIN", plain).only()
        assert (success.uri, success.name) == (NS_SASL, "success")

    def bound(self, resourceName: str = "web", user: str = "alice") -> jid.JID:
        self.loginPlain(user)
        self.open()
        result = self.bind(resourceName)
        return jid.JID(str(result.bind.jid))


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """
    Every log event emitted during the test.
    """
    events: list[dict[str, Any]] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observe)


def websocketLog(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("log_namespace") == "xmppcert.websocket"]


def assertNothingAboveWarn(events: list[dict[str, Any]]) -> None:
    loud = [e for e in events if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
    assert not loud, loud


def mechanisms(features: domish.Element) -> list[str]:
    found = [c for c in features.elements() if (c.uri, c.name) == (NS_SASL, "mechanisms")]
    return [str(m) for m in found[0].elements()] if found else []


# --- the handshake ------------------------------------------------------------


def test_handshakeWithSubprotocol() -> None:
    """
    RFC 7395 section 3.1: a handshake that offers 'xmpp' is accepted with
    'xmpp' in the answer's Sec-WebSocket-Protocol; the stream negotiation
    hears of the connection at once.
    """
    h = makeServer()
    client = WebClient(h)
    answer = client.upgrade(subprotocols=("foo", "xmpp"))
    assert isinstance(answer, AcceptConnection)
    assert answer.subprotocol == "xmpp"
    assert b"Sec-WebSocket-Protocol: xmpp\r\n" in client.transport.value()
    assert verifyObject(IStreamChannel, client.channel)
    assert client.authenticator.channel is client.channel
    assert client.channel.listener == "websocket"
    assert client.channel.transportName == "websocket"
    assert not client.channel.canStartTLS


def test_handshakeWithoutSubprotocol(logged: list[dict[str, Any]]) -> None:
    """
    RFC 7395 section 3.1 and RFC 6455 section 4.2.2: without 'xmpp' offered
    the answer names no subprotocol (none may be named that was not
    offered), so no XMPP stream is established: no stream starts, the
    WebSocket is closed with 1002, and the connection is closed when the
    client answers.
    """
    h = makeServer()
    client = WebClient(h)
    answer = client.upgrade(subprotocols=())
    assert isinstance(answer, AcceptConnection)
    assert answer.subprotocol is None
    assert b"Sec-WebSocket-Protocol" not in client.transport.value()
    out = client.output()
    assert out.close is not None and out.close.code == 1002
    assert not out.texts
    assert not h.server.streams
    assert not client.transport.disconnecting
    client.closeWebSocket(1002)
    assert client.transport.disconnecting and not client.transport.aborted
    assertNothingAboveWarn(logged)
    assert [e["log_level"] for e in websocketLog(logged)] == [LogLevel.info]


def test_handshakeWithoutSubprotocolSilentClient() -> None:
    """
    RFC 7395 section 3.1: the client MUST close; one that does not is cut
    after CLOSE_GRACE.
    """
    h = makeServer()
    client = WebClient(h)
    client.upgrade(subprotocols=("chat",))
    h.clock.advance(CLOSE_GRACE)
    assert client.transport.aborted


@pytest.mark.parametrize(
    "request_, status",
    [
        (b"GET /xmpp-websocket HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
        (
            b"GET /xmpp-websocket HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
            400,
        ),
        (
            b"GET /xmpp-websocket HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n"
            b"Sec-WebSocket-Protocol: xmpp\r\n\r\n",
            400,
        ),
        (
            b"GET /xmpp-websocket HTTP/1.0\r\nHost: example.com\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
            400,
        ),
        (
            b"HEAD /xmpp-websocket HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
            400,
        ),
        (
            b"GET /xmpp-websocket HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 8\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
            426,
        ),
    ],
    ids=["no-upgrade", "no-key", "bad-key", "http-1.0", "head", "version-8"],
)
def test_badHandshake(request_: bytes, status: int, logged: list[dict[str, Any]]) -> None:
    """
    RFC 6455 section 4.2.2: a request that is not a valid upgrade is
    answered with 400 (426 with the version spoken for another
    Sec-WebSocket-Version, section 4.4), as plain text, logged at info:
    anyone can send one, so it must not reach the error log.
    """
    h = makeServer()
    client = WebClient(h)
    client.sendBytes(request_)
    response = client.transport.value()
    assert response.split(b" ", 2)[1] == b"%d" % status, response
    assert b"content-type: text/plain" in response.lower()
    if status == 426:
        assert b"sec-websocket-version: 13" in response.lower()
    assert not h.server.streams
    assertNothingAboveWarn(logged)
    assert [e["log_level"] for e in websocketLog(logged)] == [LogLevel.info]


def test_originNotAllowed(logged: list[dict[str, Any]]) -> None:
    """
    RFC 6455 section 4.2.2 and C{[http] allowed_origins}: a page of another
    origin is refused with 403 before the handshake, at info.
    """
    h = makeServer()
    client = WebClient(h, HTTPConfig(allowed_origins=(ORIGIN,)))
    answer = client.upgrade(origin="https://evil.example")
    assert isinstance(answer, RejectConnection)
    assert answer.status_code == 403
    assert not h.server.streams
    assertNothingAboveWarn(logged)
    assert [e["log_level"] for e in websocketLog(logged)] == [LogLevel.info]


def test_originAllowed() -> None:
    """
    C{[http] allowed_origins}: a page of a listed origin gets its
    WebSocket.
    """
    client = WebClient(makeServer(), HTTPConfig(allowed_origins=(ORIGIN,)))
    answer = client.upgrade(origin=ORIGIN)
    assert isinstance(answer, AcceptConnection)


def test_noOrigin() -> None:
    """
    C{[http] allowed_origins}: a client that is not a page (no Origin) is
    served even when no origin is allowed.
    """
    client = WebClient(makeServer(), HTTPConfig(allowed_origins=()))
    assert isinstance(client.upgrade(origin=None), AcceptConnection)
    assert isinstance(WebClient(makeServer()).upgrade(origin=ORIGIN), RejectConnection)


def test_settingsReadPerConnection() -> None:
    """
    A reload's C{[http]} settings apply to the next connection.
    """
    h = makeServer()
    client = WebClient(h, HTTPConfig(allowed_origins=()))
    assert isinstance(client.upgrade(origin=ORIGIN), RejectConnection)
    client2 = WebClient(h, HTTPConfig(allowed_origins=()))
    client2.settings = HTTPConfig(allowed_origins=(ORIGIN,))
    assert isinstance(client2.upgrade(origin=ORIGIN), AcceptConnection)


# --- the framed stream ---------------------------------------------------------


def test_openAnsweredWithOpenAndFeatures() -> None:
    """
    RFC 7395 section 3.4: <open/> is answered with our <open/> (from, id,
    version, xml:lang), then the features, each a message of its own
    (section 3.3.3) that declares the stream prefix.
    """
    client = WebClient(makeServer()).opened()
    out = client.open()
    assert len(out.texts) == 2, out.texts
    opening, features = out.elements()
    assert (opening.uri, opening.name) == (NS_FRAMING, "open")
    assert opening["from"] == DOMAIN
    assert opening["version"] == "1.0"
    assert opening[(NS_XML, "lang")] == "en"
    assert opening["id"] == client.channel.sid
    assert (features.uri, features.name) == (NS_STREAMS, "features")
    assert out.texts[1].startswith("<stream:features xmlns:stream=")
    assert "PLAIN" in mechanisms(features)


def test_plainLoginBindAndMessage() -> None:
    """
    RFC 7395 section 3.7 and RFC 6120: PLAIN, the restart with a new
    <open/>, bind, and stanzas both ways with a session on TCP.
    """
    h = makeServer()
    bob = h.connect()
    bobJID = bob.bound("laptop", "bob")
    client = WebClient(h).opened()
    aliceJID = client.bound("web")
    assert aliceJID.full() == f"{ALICE}/web"
    session = client.authenticator.session
    assert session is not None and session.info["transport"] == "websocket"

    client.send(f"<message to='{bobJID.full()}' type='chat'><body>hello over a WebSocket</body></message>")
    message = bob.received().only("message")
    assert message["from"] == aliceJID.full()
    assert str(message.body) == "hello over a WebSocket"

    bob.send(f"<message to='{aliceJID.full()}' type='chat'><body>hello back</body></message>")
    back = client.output().only()
    assert (back.uri, back.name) == (NS_CLIENT, "message")
    assert back["from"] == f"{BOB}/laptop"
    assert str(back.body) == "hello back"


def test_stanzaWithoutNamespaceIsJabberClient() -> None:
    """
    RFC 7395 section 3.3.3 with RFC 6120 section 4.8.3: a stanza that omits
    xmlns is taken as jabber:client (it is handled, not refused as an
    unsupported stanza type), and the answer declares jabber:client.
    """
    client = WebClient(makeServer()).opened()
    client.bound()
    out = client.exchange("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    answer = out.only()
    assert (answer.uri, answer.name) == (NS_CLIENT, "iq")
    assert answer["type"] == "result" and answer["id"] == "p1"
    assert out.texts[0].startswith("<iq xmlns='jabber:client'")


@pytest.mark.parametrize(
    "message",
    [
        "<presence/><presence/>",
        "<message><body>half",
        "<message",
        "<presence/>text",
        "text",
        " <presence/>",
        "<presence/></stream:stream>",
        "",
    ],
    ids=["two-elements", "partial", "partial-tag", "trailing-text", "text", "leading-space", "closes-root", "empty"],
)
def test_notOneElement(message: str, logged: list[dict[str, Any]]) -> None:
    """
    RFC 7395 section 3.3.3: a message is one complete element, a standalone
    XML document starting with '<'; anything else is not a well-formed
    document: stream error not-well-formed, logged at warn.
    """
    client = WebClient(makeServer()).opened()
    client.open()
    client.send(message)
    out = client.output()
    assert out.streamError() == "not-well-formed"
    assert out.close is not None and out.close.code == 1000
    assert client.channel.closing
    assertNothingAboveWarn(logged)
    assert LogLevel.warn in [e["log_level"] for e in websocketLog(logged)]


def test_restrictedXML() -> None:
    """
    RFC 6120 section 11.1: a comment in a message is restricted-xml.
    """
    client = WebClient(makeServer()).opened()
    client.open()
    client.send("<presence/><!-- hello -->")
    assert client.output().streamError() == "restricted-xml"


def test_firstElementNotOpen() -> None:
    """
    RFC 7395 sections 3.3.2 and 3.5: a stream header that is not <open/> in
    the framing namespace (here a TCP-style header, complete, or an <open/>
    in jabber:client) is invalid-namespace, after our <open/>.
    """
    for first in (
        f"<stream:stream xmlns:stream='{NS_STREAMS}' to='{DOMAIN}' version='1.0'/>",
        f"<open to='{DOMAIN}' version='1.0'/>",
    ):
        client = WebClient(makeServer()).opened()
        client.send(first)
        out = client.output()
        assert out.streamError() == "invalid-namespace"
        assert (out.elements()[0].uri, out.elements()[0].name) == (NS_FRAMING, "open")


def test_streamErrorFraming() -> None:
    """
    RFC 7395 section 3.5: an error in the opening of a stream comes after
    our <open/>, in a second message, then <close/> and the WebSocket
    close; the negotiation ends the stream.
    """
    client = WebClient(makeServer()).opened()
    out = client.exchange(f"<open xmlns='{NS_FRAMING}' to='unknown.example' version='1.0'/>")
    assert len(out.texts) == 3
    opening = out.elements()[0]
    assert (opening.uri, opening.name) == (NS_FRAMING, "open")
    assert opening["from"] == DOMAIN
    assert out.streamError() == "host-unknown"
    assert out.texts[1].startswith("<stream:error xmlns:stream=")
    assert client.channel.closing
    # Nothing more goes out, and what the client still sends is not acted on.
    client.send(OPEN)
    after = client.output()
    assert not after.texts and after.close is None


def test_oversizedMessageRefusedBeforeWhole() -> None:
    """
    C{[http] max_websocket_message}: the limit is checked as the fragments
    of a message arrive: a message over it is refused (policy-violation,
    WebSocket close 1009) before its last fragment, and what follows is
    not read.
    """
    client = WebClient(makeServer(), HTTPConfig(max_websocket_message=1024)).opened()
    client.open()
    client.send("<message><body>" + "x" * 600, finished=False)
    assert not client.output().texts
    client.send("y" * 600, finished=False)
    out = client.output()
    assert out.streamError() == "policy-violation"
    assert out.close is not None and out.close.code == 1009
    client.send("z" * 600 + "</body></message>")
    assert not client.output().texts


def test_oversizedFrameRefusedAsItArrives() -> None:
    """
    C{[http] max_websocket_message}: within one frame too, the limit is
    checked as its bytes arrive, not once the frame is whole.
    """
    client = WebClient(makeServer(), HTTPConfig(max_websocket_message=1024)).opened()
    client.open()
    frame = bytes(client.frames.send(TextMessage(data="<message><body>" + "x" * 2000 + "</body></message>")))
    client.sendBytes(frame[:600])
    assert not client.output().texts
    client.sendBytes(frame[600:1200])
    out = client.output()
    assert out.streamError() == "policy-violation"
    assert out.close is not None and out.close.code == 1009


def test_messageWithinLimit() -> None:
    """
    C{[http] max_websocket_message}: a message in fragments within the
    limit is one element.
    """
    h = makeServer()
    client = WebClient(h, HTTPConfig(max_websocket_message=1024)).opened()
    client.bound()
    client.send("<iq type='get' id='p2'>", finished=False)
    client.send("<ping xmlns='urn:xmpp:ping'/>", finished=False)
    client.send("</iq>")
    assert client.output().only()["type"] == "result"


def test_stanzaLimit() -> None:
    """
    C{[limits] max_stanza_size} holds over WebSocket too: policy-violation.
    """
    h = makeServer(makeConfig(limits={"max_stanza_size": 10_000}))
    client = WebClient(h).opened()
    client.open()
    client.send("<message><body>" + "x" * 20_000 + "</body></message>")
    assert client.output().streamError() == "policy-violation"


def test_binaryMessage() -> None:
    """
    RFC 7395 section 3.2: messages are text; a binary one is bad-format and
    the WebSocket is closed with 1003 (RFC 6455 section 7.4.1).
    """
    client = WebClient(makeServer()).opened()
    client.open()
    client.sendEvent(BytesMessage(data=OPEN.encode()))
    out = client.output()
    assert out.streamError() == "bad-format"
    assert out.close is not None and out.close.code == 1003


def test_clientClose() -> None:
    """
    RFC 7395 section 3.6: the client's <close/> is answered with ours and
    the WebSocket close; the session ends then, and the connection once
    the client answers; the negotiation hears of it once.
    """
    h = makeServer()
    client = WebClient(h).opened()
    client.bound()
    authenticator = client.authenticator
    session = authenticator.session
    assert session is not None
    out = client.exchange(CLOSE)
    assert [(e.uri, e.name) for e in out.elements()] == [(NS_FRAMING, "close")]
    assert out.close is not None and out.close.code == 1000
    assert session.closed
    assert h.sessions.sessionFor(session.jid) is None
    assert not client.transport.disconnecting
    client.closeWebSocket()
    assert client.transport.disconnecting and not client.transport.aborted
    client.lose()
    client.lose()
    assert authenticator.closed.called
    assert authenticator not in h.server.streams


def test_closeBeforeOpen() -> None:
    """
    RFC 7395 section 3.4: the answer to the first message is <open/> or
    <close/>; a <close/> first is answered with <close/> alone.
    """
    client = WebClient(makeServer()).opened()
    out = client.exchange(CLOSE)
    assert [(e.uri, e.name) for e in out.elements()] == [(NS_FRAMING, "close")]
    assert out.close is not None


def test_clientClosesWebSocket() -> None:
    """
    RFC 7395 section 3.6: a WebSocket closed without <close/> closes the
    stream implicitly: the session ends, the close is answered and the
    connection closed.
    """
    h = makeServer()
    client = WebClient(h).opened()
    client.bound()
    session = client.authenticator.session
    assert session is not None
    client.closeWebSocket(1001)
    out = client.output()
    assert not out.texts
    assert out.close is not None and out.close.code == 1001
    assert session.closed and client.channel.closing
    assert client.transport.disconnecting


def test_closeDeadline() -> None:
    """
    A client that never answers our close is cut after CLOSE_GRACE (as on
    TCP), so that a shutdown is not held up.
    """
    h = makeServer()
    client = WebClient(h).opened()
    client.open()
    client.channel.sendStreamError(error.StreamError("system-shutdown"))
    assert client.output().streamError() == "system-shutdown"
    h.clock.advance(CLOSE_GRACE - 1)
    assert not client.transport.aborted
    h.clock.advance(1)
    assert client.transport.aborted


def test_footerOnce() -> None:
    """
    RFC 7395 section 3.6: our <close/> goes out once, and nothing after it.
    """
    client = WebClient(makeServer()).opened()
    client.open()
    channel = client.channel
    channel.sendFooter()
    channel.sendFooter()
    channel.send(domish.Element((NS_CLIENT, "presence")))
    out = client.output()
    assert [(e.uri, e.name) for e in out.elements()] == [(NS_FRAMING, "close")]


def test_dataAcrossRestartRefused(logged: list[dict[str, Any]]) -> None:
    """
    RFC 7395 section 3.7, as STARTTLS command injection is refused on TCP:
    after <success/> the next message must be a new <open/>; anything else
    was sent before the restart and the connection is cut.
    """
    client = WebClient(makeServer()).opened()
    client.loginPlain()
    client.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
    assert client.transport.aborted
    assert not client.output().texts
    assertNothingAboveWarn(logged)


def test_restartAccepted() -> None:
    """
    RFC 7395 section 3.7: the new <open/> after <success/> is answered with
    a new <open/> and the bind feature.
    """
    client = WebClient(makeServer()).opened()
    client.loginPlain()
    out = client.open()
    opening, features = out.elements()
    assert (opening.uri, opening.name) == (NS_FRAMING, "open")
    assert [c.uri for c in features.elements()] == [NS_BIND]


# --- ping and keepalive -----------------------------------------------------------


def test_pingAnswered() -> None:
    """
    RFC 6455 section 5.5.2: a ping is answered with a pong of the same
    payload.
    """
    client = WebClient(makeServer()).opened()
    client.sendEvent(Ping(payload=b"are you there"))
    assert client.output().pongs == [b"are you there"]


def test_whitespaceKeepaliveIsPing() -> None:
    """
    RFC 7395 section 3.8: no whitespace keepalives over WebSocket; the
    negotiation's keepalive becomes a ping.
    """
    client = WebClient(makeServer()).opened()
    client.bound()
    client.channel.send(" ")
    out = client.output()
    assert out.pings == [b""] and not out.texts


def test_pingOnSilence() -> None:
    """
    C{[http] websocket_ping_interval}: a quiet connection is pinged; one
    that answers lives on.
    """
    h = makeServer()
    client = WebClient(h, HTTPConfig(websocket_ping_interval=30)).opened()
    client.bound()
    h.clock.advance(29)
    assert not client.output().pings
    h.clock.advance(1)
    ping = [e for e in client.events() if isinstance(e, Ping)]
    assert len(ping) == 1
    h.clock.advance(10)
    client.sendEvent(ping[0].response())
    h.clock.advance(29)
    assert not client.output().pings and not client.transport.aborted
    h.clock.advance(1)
    assert len(client.output().pings) == 1
    assert not client.transport.aborted


def test_silentConnectionAborted(logged: list[dict[str, Any]]) -> None:
    """
    C{[http] websocket_ping_interval}: a connection that answers nothing,
    no data and no pong, for two intervals is cut, logged at info.
    """
    h = makeServer()
    client = WebClient(h, HTTPConfig(websocket_ping_interval=30)).opened()
    client.bound()
    session = client.authenticator.session
    assert session is not None
    h.clock.advance(30)
    assert len(client.output().pings) == 1
    h.clock.advance(29)
    assert not client.transport.aborted
    h.clock.advance(1)
    assert client.transport.aborted
    assert session.closed
    assertNothingAboveWarn(logged)


def test_noPingsWhenOff() -> None:
    """
    C{websocket_ping_interval = 0}: no pings, and no silence deadline.
    """
    h = makeServer()
    client = WebClient(h, HTTPConfig(websocket_ping_interval=0)).opened()
    client.bound()
    h.clock.advance(3600)
    assert not client.output().pings and not client.transport.aborted


# --- the connection's facts -----------------------------------------------------------


def certificateHarness() -> tuple[ServerHarness, x509.Certificate]:
    """
    A harness whose portal checks stored certificates, with one registered
    to alice; the clock at the present.
    """
    return storedCertificateHarness(mechanisms=("EXTERNAL", "PLAIN"), name="Browser")


def test_externalWithUpgradeConnectionsCertificate() -> None:
    """
    docs/web.md: the stream's peer certificate is the one of the HTTPS
    connection that carried the upgrade, for the stream's whole life (a
    later change of the channel's facts does not reach it); EXTERNAL logs
    in with it.
    """
    h, certificate = certificateHarness()
    client = WebClient(h, peer=PeerConnection("192.0.2.7", 40000, (certificate,))).opened()
    client.http.peerConnection = PeerConnection("192.0.2.7", 40000, ())
    assert client.channel.peerChain() == (certificate,)
    features = client.open().elements()[1]
    assert mechanisms(features)[0] == "EXTERNAL"
    success = client.auth("EXTERNAL", "=").only()
    assert success.name == "success", success.toXml()
    client.open()
    client.bind("browser")
    assert client.authenticator.mechanism == "EXTERNAL"
    assert client.authenticator.account is not None
    assert client.authenticator.account.jid.userhost() == ALICE


def test_noChainWithoutTLS() -> None:
    """
    A WebSocket not over TLS is not secure and has no peer chain, so it is
    offered no way to log in (no STARTTLS over WebSocket).
    """
    h, certificate = certificateHarness()
    client = WebClient(h, peer=PeerConnection("192.0.2.7", 40000, (certificate,)), secure=False).opened()
    assert not client.channel.secure and client.channel.peerChain() == ()
    features = client.open().elements()[1]
    assert list(features.elements()) == []


def test_peerFacts() -> None:
    """
    The peer's address is the HTTPS connection's.
    """
    client = WebClient(makeServer(), peer=PeerConnection("2001:db8::7", 443, ())).opened()
    assert client.channel.secure
    assert client.channel.peerHost() == "2001:db8::7"
    assert client.channel.peerLabel() == "2001:db8::7:443"
    assert client.channel.peerAddress() == "[2001:db8::7]:443"


# --- parsing and serializing ------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "<?xml version='1.0'?><presence/>",
        "<presence/>\n",
        f"<stream:features xmlns:stream='{NS_STREAMS}'/>",
    ],
)
def test_parseAccepts(message: str) -> None:
    """
    RFC 7395 section 3.3.3: an XML declaration (not recommended, allowed)
    and whitespace after the element are part of a standalone document.
    """
    assert parseMessage(message.encode(), 10_000, 100).name in ("presence", "features")


@pytest.mark.parametrize(
    "message, condition",
    [
        ("<presence/><![CDATA[ ]]>", "not-well-formed"),
        ("<presence/>\u00a0", "not-well-formed"),
        ("<?xml-stylesheet href='x'?><presence/>", "restricted-xml"),
        ("<presence><a/><a/><a/></presence>", "policy-violation"),
    ],
)
def test_parseRefuses(message: str, condition: str) -> None:
    """
    RFC 7395 section 3.3.3 and RFC 6120 section 11.1: CDATA or a non-XML
    space beside the element, a processing instruction, too many elements.
    """
    with pytest.raises(FramingError) as caught:
        parseMessage(message.encode(), 10_000, 3)
    assert caught.value.condition == condition


def test_serializeStandalone() -> None:
    """
    RFC 7395 section 3.3.3: a stanza made without a namespace goes out in
    jabber:client (its children with it), without changing the element,
    which other streams may send too.
    """
    iq = domish.Element((None, "iq"))
    iq["type"] = "result"
    iq.addElement("query", "urn:x").addElement("item")
    text = serializeElement(iq)
    parsed = standalone(text)
    assert (parsed.uri, parsed.name) == (NS_CLIENT, "iq")
    assert parsed.query.uri == "urn:x" and parsed.query.item.uri == "urn:x"
    assert iq.uri is None


def test_channelClosedOnce() -> None:
    """
    IStreamReceiver: channelClosed is said exactly once, and the stream is
    gone from the server.
    """
    h = makeServer()
    client = WebClient(h).opened()
    authenticator = client.authenticator
    client.lose()
    client.lose()
    assert authenticator.closed.called
    assert not h.server.streams
