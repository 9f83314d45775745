"""
Tests for L{xmppcert.transports.bosh}: BOSH (XEP-0124) carrying client
streams (XEP-0206), driven through a real L{twisted.web.server.Site} over
in-memory connections, with the real stream negotiation where it matters.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python import failure
from twisted.web import resource
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.helpers import (
    NS_BIND,
    NS_CLIENT,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    PASSWORD,
    ServerHarness,
    makeServer,
)
from xmppcert.c2s import C2SAuthenticator, IStreamChannel, IStreamReceiver
from xmppcert.config import HTTPConfig
from xmppcert.sasl import NS_SASL
from xmppcert.transports.bosh import (
    MAX_QUEUED,
    NS_HTTPBIND,
    NS_XBOSH,
    TERMINATE_GRACE,
    BOSHChannel,
    BOSHResource,
    BOSHSession,
    inClientNamespace,
    parseBody,
    serializePayload,
)
from xmppcert.transports.http import BOSH_PATH, PeerConnection, XMPPHTTPChannel, XMPPSite
from xmppcert.x509 import generateClientKey, issueClientCertificate

CERT_ALICE = issueClientCertificate(["alice@example.com"], generateClientKey())
CERT_MALLORY = issueClientCertificate(["mallory@example.com"], generateClientKey())
CLIENT_HOST = "192.0.2.20"


# --- an HTTP client in memory ----------------------------------------------------


@implementer(ISSLTransport)
class TLSStringTransport(StringTransport):
    """
    A transport that says it is TLS (so requests over it are secure).
    """

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def loseWriteConnection(self) -> None:
        self.loseConnection()

    def getPeerCertificate(self) -> None:
        return None


@dataclass
class HTTPResponse:
    status: int
    headers: dict[bytes, bytes]
    content: bytes


@dataclass
class Reply:
    """
    A response's C{<body/>}: the wrapper (without children) and its
    children.
    """

    body: domish.Element
    children: list[domish.Element]

    def __getitem__(self, name: str) -> str:
        return str(self.body[name])

    def get(self, name: Any) -> str | None:
        value = self.body.getAttribute(name)
        return None if value is None else str(value)

    def only(self, name: str) -> domish.Element:
        found = [c for c in self.children if c.name == name]
        assert len(found) == 1, f"expected one {name} in {[c.toXml() for c in self.children]}"
        return found[0]

    @property
    def terminated(self) -> bool:
        return self.get("type") == "terminate"


def parseReply(content: bytes) -> Reply:
    found: dict[str, Any] = {"children": []}
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: found.update(body=root)
    stream.ElementEvent = found["children"].append
    stream.DocumentEndEvent = lambda: found.update(ended=True)
    stream.parse(content)
    assert found.get("ended"), content
    body = found["body"]
    assert (body.uri, body.name) == (NS_HTTPBIND, "body"), content
    return Reply(body, found["children"])


class Exchange:
    """
    One request on its own HTTPS connection, and its response once there.
    """

    def __init__(self, channel: XMPPHTTPChannel, transport: StringTransport) -> None:
        self.channel = channel
        self.transport = transport

    @property
    def answered(self) -> bool:
        return b"\r\n\r\n" in self.transport.value()

    def response(self) -> HTTPResponse:
        raw = self.transport.value()
        head, separator, rest = raw.partition(b"\r\n\r\n")
        assert separator, "not answered"
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        assert len(rest) == length, raw
        return HTTPResponse(int(lines[0].split()[1]), headers, rest)

    @property
    def bytes(self) -> bytes:
        return self.response().content

    def reply(self) -> Reply:
        response = self.response()
        assert response.status == 200, response
        assert response.headers[b"content-type"] == b"text/xml; charset=utf-8"
        return parseReply(response.content)

    def lose(self) -> None:
        """
        The client gives up on the request.
        """
        self.channel.connectionLost(failure.Failure(ConnectionDone()))


@implementer(IStreamReceiver)
class FakeReceiver:
    """
    A stream negotiation that records what the transport tells it; on a
    header it answers with empty features, unless told to stay silent.
    """

    def __init__(self) -> None:
        self.channel: Any = None
        self.events: list[str] = []
        self.headers: list[domish.Element] = []
        self.elements: list[domish.Element] = []
        self.silent = False

    def channelOpened(self, channel: IStreamChannel) -> None:
        self.channel = channel
        self.events.append("opened")

    def streamStarted(self, rootElement: domish.Element) -> None:
        self.events.append("started")
        self.headers.append(rootElement)
        self.channel.sid = f"stream{len(self.headers)}"
        self.channel.openStream(jid.JID("example.com"), None)
        if not self.silent:
            self.channel.send(domish.Element((NS_STREAMS, "features")))

    def elementReceived(self, element: domish.Element) -> None:
        self.events.append("element")
        self.elements.append(element)

    def streamClosing(self) -> None:
        self.events.append("closing")

    def channelClosed(self) -> None:
        self.events.append("closed")


class Web:
    """
    A BOSH resource in an HTTPS site, in memory: over the real negotiation
    of a L{ServerHarness}, or over L{FakeReceiver}s.
    """

    def __init__(self, settings: HTTPConfig | None = None, fake: bool = False) -> None:
        self.h: ServerHarness = makeServer()
        self.clock = self.h.clock
        self.settings = settings or HTTPConfig()
        self.receivers: list[FakeReceiver] = []
        newReceiver: Any = self._fakeReceiver if fake else self.h.server.newStream
        self.resource = BOSHResource(newReceiver, self.clock, lambda: self.settings, self.h.server.stanzaLimits)
        root = resource.Resource()
        root.putChild(BOSH_PATH, self.resource)
        self.site = XMPPSite(root, lambda: self.settings, reactor=self.clock)
        self._port = 40000

    def _fakeReceiver(self) -> FakeReceiver:
        receiver = FakeReceiver()
        self.receivers.append(receiver)
        return receiver

    def post(
        self,
        data: bytes | str,
        chain: tuple[x509.Certificate, ...] = (),
        secure: bool = True,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        method: bytes = b"POST",
    ) -> Exchange:
        """
        Send a request on a new connection with the given TLS facts.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._port += 1
        channel = self.site.buildProtocol(None)
        assert isinstance(channel, XMPPHTTPChannel)
        address = IPv4Address("TCP", CLIENT_HOST, self._port)
        transport = TLSStringTransport(peerAddress=address) if secure else StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        channel.peerConnection = PeerConnection(CLIENT_HOST, self._port, chain)
        head = b"%s /http-bind HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/xml; charset=utf-8\r\n" % method
        for name, value in headers:
            head += name + b": " + value + b"\r\n"
        channel.dataReceived(head + b"Content-Length: %d\r\n\r\n" % len(data) + data)
        return Exchange(channel, transport)


class Client:
    """
    A BOSH client of a L{Web}: every request on a connection of its own
    with the same TLS facts.
    """

    def __init__(self, web: Web, chain: tuple[x509.Certificate, ...] = (), secure: bool = True) -> None:
        self.web = web
        self.chain = chain
        self.secure = secure
        self.rid = 5000
        self.sid = ""

    def create(self, attributes: str | None = None, version: str | None = "1.0") -> Exchange:
        if attributes is None:
            attributes = "to='example.com' wait='60' hold='1' ver='1.11' xml:lang='en'"
        xmpp = f" xmpp:version='{version}'" if version is not None else ""
        exchange = self.web.post(
            f"<body rid='{self.rid}' {attributes}{xmpp} xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'/>",
            self.chain,
            self.secure,
        )
        if exchange.answered and exchange.response().status == 200:
            self.sid = parseReply(exchange.bytes).get("sid") or ""
        return exchange

    def send(
        self,
        payload: str = "",
        attributes: str = "",
        rid: int | None = None,
        chain: tuple[x509.Certificate, ...] | None = None,
        secure: bool | None = None,
    ) -> Exchange:
        if rid is None:
            self.rid += 1
            rid = self.rid
        return self.web.post(
            f"<body rid='{rid}' sid='{self.sid}' {attributes} xmlns='{NS_HTTPBIND}'"
            f" xmlns:xmpp='{NS_XBOSH}'>{payload}</body>",
            self.chain if chain is None else chain,
            self.secure if secure is None else secure,
        )

    @property
    def session(self) -> BOSHSession:
        return self.web.resource.sessions[self.sid]

    def login(self, user: str = "alice", resource: str = "web") -> jid.JID:
        """
        Create a session, log in with PLAIN, restart, bind.
        """
        features = self.create().reply().only("features")
        assert [c.name for c in features.elements()] == ["mechanisms"]
        credentials = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        success = self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{credentials}</auth>").reply()
        success.only("success")
        restarted = self.send(attributes="xmpp:restart='true' to='example.com'").reply()
        assert [c.name for c in restarted.only("features").elements()] == ["bind"]
        bound = self.send(
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"
        ).reply()
        iq = bound.only("iq")
        assert iq["type"] == "result", iq.toXml()
        return jid.JID(str(iq.bind.jid))


def condition(reply: Reply) -> str | None:
    assert reply.terminated, reply.body.toXml()
    return reply.get("condition")


def streamErrorCondition(reply: Reply) -> str:
    [streamError] = [c for c in reply.children if (c.uri, c.name) == (NS_STREAMS, "error")]
    [name] = [c.name for c in streamError.elements() if c.uri == NS_STREAM_ERRORS and c.name != "text"]
    return str(name)


def sessionTimers(web: Web) -> list[Any]:
    """
    The clock's delayed calls that belong to BOSH sessions.
    """
    calls: list[Any] = list(web.clock.getDelayedCalls())
    return [call for call in calls if isinstance(getattr(call.func, "__self__", None), BOSHSession)]


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    events: list[LogEvent] = []

    @implementer(ILogObserver)
    def observe(event: LogEvent) -> None:
        if str(event.get("log_namespace", "")).startswith("xmppcert"):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def noErrorsLogged(events: list[LogEvent]) -> None:
    levels = [e["log_level"] for e in events]
    assert LogLevel.error not in levels and LogLevel.critical not in levels, events


# --- the channel -----------------------------------------------------------------


def test_channelProvidesIStreamChannel() -> None:
    """
    The BOSH channel provides L{IStreamChannel}: listener and transport
    C{bosh}, no STARTTLS, secure when the creating request came over
    HTTPS, the peer is the creating connection.
    """
    web = Web(fake=True)
    client = Client(web, chain=(CERT_ALICE,))
    client.create()
    channel = client.session.channel
    assert isinstance(channel, BOSHChannel)
    assert verifyObject(IStreamChannel, channel)
    assert channel.listener == "bosh" and channel.transportName == "bosh"
    assert channel.secure and not channel.canStartTLS
    assert channel.peerHost() == CLIENT_HOST
    assert channel.peerLabel() == f"{CLIENT_HOST}:{web._port}"
    assert channel.peerAddress() == f"{CLIENT_HOST}:{web._port}"
    assert channel.peerChain() == (CERT_ALICE,)
    assert web.receivers[0].channel is channel


def test_channelNotSecureOverPlainHTTP() -> None:
    """
    XEP-0124 section 19.1: a session created over plain HTTP is not
    secure, so the negotiation treats it as such.
    """
    web = Web(fake=True)
    client = Client(web, secure=False)
    client.create()
    assert not client.session.channel.secure


def test_peerChainPinnedToCreatingConnection() -> None:
    """
    EXTERNAL reads the chain of the connection that created the session,
    whatever connection the later requests come over.
    """
    web = Web()
    client = Client(web, chain=(CERT_ALICE,))
    client.create().reply()
    authenticator = client.session.receiver
    assert isinstance(authenticator, C2SAuthenticator)
    assert authenticator.peerChain == (CERT_ALICE,)
    assert client.session.channel.peerChain() == (CERT_ALICE,)


# --- session creation ------------------------------------------------------------


def test_creationResponseAttributes() -> None:
    """
    XEP-0124 section 7.2, XEP-0206 section 4: the creation response has
    sid, wait and hold (capped), requests (hold + 1), polling, inactivity,
    ver, from, authid (the stream id), xmpp:version, xmpp:restartlogic,
    and the stream features with the stream prefix declared.
    """
    web = Web(HTTPConfig(bosh_max_wait=30, bosh_max_hold=2, bosh_max_inactivity=45, bosh_polling=3))
    client = Client(web)
    exchange = client.create("to='example.com' wait='600' hold='5' ver='1.6'")
    assert exchange.response().headers[b"content-type"] == b"text/xml; charset=utf-8"
    reply = exchange.reply()
    assert reply["wait"] == "30"
    assert reply["hold"] == "2"
    assert reply["requests"] == "3"
    assert reply["polling"] == "3"
    assert reply["inactivity"] == "45"
    assert reply["ver"] == "1.6"
    assert reply["from"] == "example.com"
    assert reply["authid"] == client.session.channel.sid
    assert reply.get((NS_XBOSH, "version")) == "1.0"
    assert reply.get((NS_XBOSH, "restartlogic")) == "true"
    assert b"xmlns:stream='http://etherx.jabber.org/streams'" in exchange.bytes
    features = reply.only("features")
    assert features.uri == NS_STREAMS
    assert [(c.uri, c.name) for c in features.elements()] == [(NS_SASL, "mechanisms")]


def test_creationKeepsWhatTheClientAsked() -> None:
    """
    XEP-0124 section 7.2: wait and hold never exceed what the client asked
    for; ver is ours when the client's is higher.
    """
    web = Web(fake=True)
    reply = Client(web).create("to='example.com' wait='20' hold='0' ver='2.3'").reply()
    assert (reply["wait"], reply["hold"], reply["requests"], reply["ver"]) == ("20", "0", "1", "1.11")


def test_sidIsRandomAndLong() -> None:
    """
    XEP-0124 section 7.2: the sid is unpredictable (at least 128 random
    bits, URL-safe) and unique.
    """
    web = Web(fake=True)
    sids = set()
    for _ in range(5):
        client = Client(web)
        client.create()
        assert len(client.sid) * 6 >= 128
        assert all(c.isalnum() or c in "-_" for c in client.sid)
        sids.add(client.sid)
    assert len(sids) == 5


def test_syntheticStreamHeader() -> None:
    """
    XEP-0206 section 3: the session is a stream whose header carries to,
    from, xmpp:version as version and xml:lang, in jabber:client; the
    receiver hears of the channel first.
    """
    web = Web(fake=True)
    Client(web).create("to='example.com' from='alice@example.com' wait='60' hold='1' xml:lang='de'")
    receiver = web.receivers[0]
    assert receiver.events[:2] == ["opened", "started"]
    [header] = receiver.headers
    assert (header.uri, header.name, header.defaultUri) == (NS_STREAMS, "stream", NS_CLIENT)
    assert header.getAttribute("to") == "example.com"
    assert header.getAttribute("from") == "alice@example.com"
    assert header.getAttribute("version") == "1.0"
    assert header.getAttribute(("http://www.w3.org/XML/1998/namespace", "lang")) == "de"


def test_noXMPPVersionIsUnsupportedVersion() -> None:
    """
    XEP-0206 section 3 and RFC 6120 section 4.7.5: without xmpp:version
    the stream has no version 1.0, which the negotiation refuses; the
    stream error comes as remote-stream-error with the stream:error in it.
    """
    web = Web()
    client = Client(web)
    reply = client.create(version=None).reply()
    assert condition(reply) == "remote-stream-error"
    assert streamErrorCondition(reply) == "unsupported-version"
    assert web.resource.sessions == {}


def test_hostUnknownIsTheBindingCondition() -> None:
    """
    XEP-0124 section 17.2: a 'to' not served is the binding condition
    host-unknown, which constrained clients read.
    """
    web = Web()
    reply = Client(web).create("to='elsewhere.example' wait='60' hold='1'").reply()
    assert condition(reply) == "host-unknown"
    assert reply.children == []
    assert web.resource.sessions == {}


def test_creationHeldUntilFeatures() -> None:
    """
    XEP-0206 section 4: the creation request waits for the stream
    features, and carries the session attributes with them.
    """
    web = Web(fake=True)
    client = Client(web)

    def silent() -> FakeReceiver:
        receiver = FakeReceiver()
        receiver.silent = True
        web.receivers.append(receiver)
        return receiver

    web.resource.newReceiver = silent
    exchange = client.create()
    assert not exchange.answered
    web.receivers[0].channel.send(domish.Element((NS_STREAMS, "features")))
    assert not exchange.answered
    web.clock.advance(0)
    reply = exchange.reply()
    assert reply.get("sid") and reply.get("authid") == "stream1"
    reply.only("features")


def test_creationAnsweredAfterWait() -> None:
    """
    XEP-0124 section 8: with nothing to say within 'wait', the creation
    request is answered anyway, with the session attributes.
    """
    web = Web(fake=True)

    def silent() -> FakeReceiver:
        receiver = FakeReceiver()
        receiver.silent = True
        web.receivers.append(receiver)
        return receiver

    web.resource.newReceiver = silent
    exchange = Client(web).create("to='example.com' wait='10' hold='1'")
    web.clock.advance(9.9)
    assert not exchange.answered
    web.clock.advance(0.1)
    reply = exchange.reply()
    assert reply.get("sid") and reply.children == []


def test_sessionCap() -> None:
    """
    [http] bosh_max_sessions: past it, creation is refused with
    remote-connection-failed; 0 turns BOSH off.
    """
    web = Web(HTTPConfig(bosh_max_sessions=1), fake=True)
    Client(web).create().reply()
    assert condition(Client(web).create().reply()) == "remote-connection-failed"
    assert len(web.resource.sessions) == 1
    off = Web(HTTPConfig(bosh_max_sessions=0), fake=True)
    assert condition(Client(off).create().reply()) == "remote-connection-failed"
    assert off.receivers == []


def test_settingsReadLive() -> None:
    """
    A reload's new [http] settings apply to the next session.
    """
    web = Web(fake=True)
    assert Client(web).create("wait='600' hold='1'").reply()["wait"] == "60"
    web.settings = HTTPConfig(bosh_max_wait=5)
    assert Client(web).create("wait='600' hold='1'").reply()["wait"] == "5"


# --- the whole login ---------------------------------------------------------------


def test_loginBindAndChat() -> None:
    """
    XEP-0206 section 5: SASL PLAIN, the restart, binding, then messages to
    and from a TCP session; the bound session is listed as bosh.
    """
    web = Web()
    alice = Client(web)
    fullJID = alice.login()
    assert fullJID.full() == "alice@example.com/web"
    session = web.h.sessions.sessionFor(fullJID)
    assert session is not None and session.info["transport"] == "bosh"
    bob = web.h.connect()
    bob.bound("pc", "bob")
    poll = alice.send()
    assert not poll.answered
    sending = alice.send("<message to='bob@example.com/pc' type='chat'><body>hi</body></message>")
    # hold 1: the poll makes way for the new request.
    assert poll.reply().children == []
    message = bob.received().only("message")
    assert message.uri == NS_CLIENT
    assert message["from"] == "alice@example.com/web"
    assert str(message.body) == "hi"
    bob.send("<message to='alice@example.com/web' type='chat'><body>hello</body></message>")
    assert not sending.answered
    web.clock.advance(0)
    answer = sending.reply().only("message")
    assert (answer.uri, answer["from"], str(answer.body)) == (NS_CLIENT, "bob@example.com/pc", "hello")


def test_stanzaNamespaceRewritten() -> None:
    """
    XEP-0206 section 2: a stanza without xmlns (in the body's namespace)
    is taken as jabber:client, with its inheriting descendants; elements
    in other namespaces keep theirs.
    """
    parsed = parseBody(
        f"<body xmlns='{NS_HTTPBIND}'><message to='a@b'><body>x</body>"
        "<x xmlns='urn:example'><y/></x></message></body>".encode(),
        10000,
        100,
    )
    [message] = parsed.children
    assert message.uri == NS_HTTPBIND
    inClientNamespace(message)
    body, x = list(message.elements())
    assert (message.uri, message.defaultUri, body.uri, body.defaultUri) == (NS_CLIENT,) * 4
    assert (x.uri, x.firstChildElement().uri) == ("urn:example", "urn:example")
    assert message.toXml(defaultUri=NS_CLIENT) == (
        "<message to='a@b'><body>x</body><x xmlns='urn:example'><y/></x></message>"
    )


def test_stanzaWithoutNamespaceReachesReceiverAsClient() -> None:
    """
    XEP-0206 section 2: what the receiver gets of a stanza that omitted
    xmlns is in jabber:client.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    client.send("<presence/><iq xmlns='jabber:client' type='get' id='1'/>")
    assert [(e.uri, e.name) for e in web.receivers[0].elements] == [
        (NS_CLIENT, "presence"),
        (NS_CLIENT, "iq"),
    ]


def test_serializedPayloadCarriesClientNamespace() -> None:
    """
    XEP-0206 section 2: stanzas in a response body carry
    xmlns='jabber:client', also those made without a namespace; stream
    elements use the body's stream prefix.
    """
    made = domish.Element((None, "iq"), attribs={"type": "result"})
    made.addElement((NS_BIND, "bind")).addElement("jid", content="a@b/c")
    assert serializePayload(made) == (
        "<iq xmlns='jabber:client' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<jid>a@b/c</jid></bind></iq>"
    )
    assert made.defaultUri is None
    assert serializePayload(domish.Element((NS_CLIENT, "message"))) == "<message xmlns='jabber:client'/>"
    assert serializePayload(domish.Element((NS_STREAMS, "features"))) == "<stream:features/>"


# --- request ids ---------------------------------------------------------------------


def test_repeatedRidGetsTheSameBytes() -> None:
    """
    XEP-0124 section 14.3: a repeated rid already answered gets the exact
    same response again, and is not processed twice.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    first = client.send("<message to='x@example.com'/>")
    web.clock.advance(60)
    original = first.bytes
    again = client.send("<message to='x@example.com'/>", rid=client.rid)
    assert again.bytes == original
    assert len(web.receivers[0].elements) == 1
    created = client.send(rid=5000)
    assert b"sid=" in created.bytes


def test_ridTooOldIsItemNotFound() -> None:
    """
    XEP-0124 section 14.3: a rid whose response is no longer kept (more
    than 'requests' ago) gets item-not-found, and the session ends.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    for _ in range(3):
        client.send()
        web.clock.advance(60)
    reply = client.send(rid=client.rid - 2).reply()
    assert condition(reply) == "item-not-found"
    assert web.resource.sessions == {}
    assert web.receivers[0].events[-1] == "closed"


def test_ridBeyondWindowIsItemNotFound() -> None:
    """
    XEP-0124 section 14.2: a rid above the window of 'requests' ends the
    session with item-not-found.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    reply = client.send(rid=client.rid + 3).reply()
    assert condition(reply) == "item-not-found"
    assert condition(held.reply()) == "item-not-found"
    assert web.resource.sessions == {}
    assert web.receivers[0].events.count("closed") == 1
    assert sessionTimers(web) == []


def test_outOfOrderProcessedInOrder() -> None:
    """
    XEP-0124 section 14.2: a request that arrives before a lower rid waits
    for it; both are then processed, and answered, in rid order.
    """
    web = Web(HTTPConfig(bosh_max_hold=2), fake=True)
    client = Client(web)
    client.create("to='example.com' wait='60' hold='2'")
    later = client.send("<message id='second'/>", rid=client.rid + 2)
    assert web.receivers[0].elements == [] and not later.answered
    earlier = client.send("<message id='first'/>", rid=client.rid + 1)
    client.rid += 2
    assert [e["id"] for e in web.receivers[0].elements] == ["first", "second"]
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message")))
    web.clock.advance(0)
    assert earlier.reply().children and not later.answered


def test_missingRidRecoverableError() -> None:
    """
    XEP-0124 section 17.3: a request whose lower rid never comes within
    'wait' gets a recoverable error, unprocessed; the session goes on.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create("to='example.com' wait='10' hold='1'")
    waiting = client.send("<message/>", rid=client.rid + 2)
    web.clock.advance(10)
    assert waiting.reply().get("type") == "error"
    assert web.receivers[0].elements == []
    assert client.sid in web.resource.sessions


def test_repeatedHeldRidAnswersTheEarlierCopy() -> None:
    """
    XEP-0124 section 14.3: a held request sent again: the earlier copy
    gets a recoverable error, the answer goes to the latest.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    first = client.send()
    second = client.send(rid=client.rid)
    assert first.reply().get("type") == "error"
    assert not second.answered
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message")))
    web.clock.advance(0)
    assert second.reply().only("message")


def test_tooManySimultaneousRequests() -> None:
    """
    XEP-0124 section 11: more unanswered requests than 'requests' is a
    policy-violation.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    client.send(rid=client.rid + 2)
    reply = client.send(rid=client.rid + 1).reply()
    assert condition(reply) == "policy-violation"
    assert condition(held.reply()) == "policy-violation"
    assert web.resource.sessions == {}


# --- holding and timers ----------------------------------------------------------------


def test_holdAnswersTheOldest() -> None:
    """
    XEP-0124 section 8: with 'hold' requests held, a new one makes the
    oldest be answered at once.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    first = client.send()
    assert not first.answered
    second = client.send()
    assert first.reply().children == [] and not second.answered


def test_waitExpiryAnswersEmpty() -> None:
    """
    XEP-0124 section 8: a request held for 'wait' seconds is answered with
    an empty body.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create("to='example.com' wait='20' hold='1'")
    held = client.send()
    web.clock.advance(19)
    assert not held.answered
    web.clock.advance(1)
    reply = held.reply()
    assert reply.children == [] and reply.get("type") is None
    assert dict(reply.body.attributes) == {}


def test_outputCoalesced() -> None:
    """
    XEP-0124 section 8: what the server sends in one turn goes out in one
    response; whitespace keepalives are not sent at all.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    channel = web.receivers[0].channel
    channel.send(" ")
    web.clock.advance(0)
    assert not held.answered
    channel.send(domish.Element((NS_CLIENT, "message")))
    channel.send(domish.Element((NS_CLIENT, "presence")))
    web.clock.advance(0)
    assert [c.name for c in held.reply().children] == ["message", "presence"]


def test_outputWaitsForTheNextRequest() -> None:
    """
    XEP-0124 section 8: what is sent while no request is held goes with
    the next one, at once.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message")))
    web.clock.advance(0)
    assert client.send().reply().only("message")


def test_droppedHeldRequestForgotten() -> None:
    """
    A held request whose client went away is not answered; what comes
    next waits for the next request.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    held.lose()
    assert client.session.held == []
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message")))
    web.clock.advance(0)
    assert not held.answered
    assert client.send().reply().only("message")


def test_retransmissionOfALostHeldRequest() -> None:
    """
    XEP-0124 section 14.3: a held request whose connection broke before
    any answer may be sent again with the same rid; it is held in its
    place and gets what comes next, and the session goes on.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    held.lose()
    again = client.send(rid=client.rid)
    assert client.sid in web.resource.sessions
    assert not again.answered
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message")))
    web.clock.advance(0)
    assert again.reply().only("message")
    # Once answered, the rid is an ordinary repeat: the same response.
    assert client.send(rid=client.rid).reply().only("message")


def test_unreadOutputIsBounded() -> None:
    """
    A session whose client stops asking while stanzas keep coming ends
    (policy-violation) once MAX_QUEUED characters wait, instead of holding
    everything until its inactivity runs out.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    # Held; what is sent in this reactor turn is only queued.
    client.send()
    channel = web.receivers[0].channel
    big = "x" * 65536
    for _ in range(MAX_QUEUED // len(big)):
        message = domish.Element((NS_CLIENT, "message"))
        message.addElement("body", content=big)
        channel.send(message)
    assert client.sid in web.resource.sessions
    message = domish.Element((NS_CLIENT, "message"))
    message.addElement("body", content=big)
    channel.send(message)
    body = client.send().reply()
    assert body.terminated and body.get("condition") == "policy-violation"
    assert client.sid not in web.resource.sessions


def test_inactivityEndsTheSession() -> None:
    """
    XEP-0124 section 10: with no request held for 'inactivity' seconds the
    session ends without a word, and its bound session is unbound.
    """
    web = Web(HTTPConfig(bosh_max_inactivity=30))
    client = Client(web)
    fullJID = client.login()
    assert web.h.sessions.sessionFor(fullJID) is not None
    web.clock.advance(29)
    assert client.sid in web.resource.sessions
    web.clock.advance(1)
    assert web.resource.sessions == {}
    assert web.h.sessions.sessionFor(fullJID) is None
    assert web.h.server.streams == set()
    assert sessionTimers(web) == []
    assert condition(client.send().reply()) == "item-not-found"


def test_heldRequestKeepsTheSessionAlive() -> None:
    """
    XEP-0124 section 10: inactivity counts only while no request is held.
    """
    web = Web(HTTPConfig(bosh_max_inactivity=30, bosh_max_wait=60), fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    web.clock.advance(59)
    assert client.sid in web.resource.sessions and not held.answered
    web.clock.advance(1)
    assert held.answered
    web.clock.advance(29)
    assert client.sid in web.resource.sessions
    web.clock.advance(1)
    assert web.resource.sessions == {}
    assert web.receivers[0].events.count("closed") == 1


def test_pollingTooOften() -> None:
    """
    XEP-0124 section 12: two empty requests of a polling session (hold 0)
    closer than 'polling' seconds, the first answered with nothing, are a
    policy-violation; at the interval they are fine.
    """
    web = Web(HTTPConfig(bosh_polling=5), fake=True)
    client = Client(web)
    assert client.create("to='example.com' wait='60' hold='0'").reply()["requests"] == "1"
    assert client.send().reply().children == []
    web.clock.advance(5)
    assert client.send().reply().children == []
    web.clock.advance(1)
    assert condition(client.send().reply()) == "policy-violation"
    assert web.resource.sessions == {}


def test_pollingAfterPayloadIsFine() -> None:
    """
    XEP-0124 section 12: an empty poll right after one that brought
    payloads, or after one that carried stanzas, is no violation.
    """
    web = Web(HTTPConfig(bosh_polling=5), fake=True)
    client = Client(web)
    client.create("to='example.com' wait='60' hold='0'").reply()
    client.send().reply()
    web.clock.advance(5)
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message")))
    web.clock.advance(0)
    assert client.send().reply().only("message")
    assert client.send().reply().children == []
    assert client.send("<presence/>").reply().children == []
    assert client.send().reply().children == []
    assert client.sid in web.resource.sessions


# --- ending ---------------------------------------------------------------------------


def test_clientTerminate() -> None:
    """
    XEP-0124 section 13: a terminate request's stanzas are processed, it
    is answered with a terminate, the session ends and is unbound.
    """
    web = Web()
    client = Client(web)
    fullJID = client.login()
    bob = web.h.connect()
    bob.bound("pc", "bob")
    held = client.send()
    reply = client.send(
        "<message to='bob@example.com/pc'><body>bye</body></message>", attributes="type='terminate'"
    ).reply()
    assert condition(reply) is None
    assert held.reply().terminated
    assert str(bob.received().only("message").body) == "bye"
    assert web.resource.sessions == {}
    assert web.h.sessions.sessionFor(fullJID) is None


def test_clientTerminateTellsReceiverOnce() -> None:
    """
    Like a closing tag on TCP: the receiver hears streamClosing, then
    channelClosed, once each.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    client.send("<presence type='unavailable'/>", attributes="type='terminate'").reply()
    assert web.receivers[0].events == ["opened", "started", "element", "closing", "closed"]


def test_streamErrorOnHeldRequest() -> None:
    """
    XEP-0206 section 6: a stream error goes out as a remote-stream-error
    terminate with the stream:error inside, after what was queued; then
    the session ends.
    """
    web = Web()
    client = Client(web)
    client.login()
    held = client.send()
    authenticator = client.session.receiver
    assert isinstance(authenticator, C2SAuthenticator)
    client.session.channel.send(domish.Element((NS_CLIENT, "message")))
    authenticator.streamError("policy-violation", "go away")
    web.clock.advance(0)
    reply = held.reply()
    assert condition(reply) == "remote-stream-error"
    assert [c.name for c in reply.children] == ["message", "error"]
    assert streamErrorCondition(reply) == "policy-violation"
    assert b"xmlns:stream='http://etherx.jabber.org/streams'" in held.bytes
    assert web.resource.sessions == {}
    assert web.h.server.streams == set()


def test_streamErrorOnNextRequest() -> None:
    """
    With no request held, the terminate waits for the next one.
    """
    web = Web()
    client = Client(web)
    client.login()
    client.session.channel.sendStreamError(error.StreamError("conflict"))
    web.clock.advance(0)
    assert client.sid in web.resource.sessions
    reply = client.send().reply()
    assert streamErrorCondition(reply) == "conflict"
    assert web.resource.sessions == {}


def test_streamErrorGraceWhenNoRequestComes() -> None:
    """
    A terminate nobody comes for ends the session after a short grace.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    client.session.channel.sendFooter()
    web.clock.advance(0)
    web.clock.advance(TERMINATE_GRACE - 0.5)
    assert client.sid in web.resource.sessions
    web.clock.advance(0.5)
    assert web.resource.sessions == {}
    assert web.receivers[0].events == ["opened", "started", "closing", "closed"]


def test_sendsAfterCloseDropped() -> None:
    """
    RFC 6120 section 4.4: nothing follows our closing tag.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    channel = client.session.channel
    channel.sendFooter()
    assert channel.closing
    channel.send(domish.Element((NS_CLIENT, "message")))
    reply = client.send().reply()
    assert condition(reply) is None and reply.children == []


def test_shutdownStreamErrorIsSystemShutdown() -> None:
    """
    XEP-0124 section 17.2: the server's system-shutdown is the binding
    condition of that name.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    client.session.channel.sendStreamError(error.StreamError("system-shutdown"))
    web.clock.advance(0)
    reply = held.reply()
    assert condition(reply) == "system-shutdown" and reply.children == []


def test_terminateAll() -> None:
    """
    At shutdown every session ends now: held requests get a terminate
    (system-shutdown), every receiver hears channelClosed once.
    """
    web = Web(fake=True)
    one, two = Client(web), Client(web)
    one.create()
    two.create()
    held = one.send()
    assert sessionTimers(web)
    assert web.resource.terminateAll() == 2
    assert condition(held.reply()) == "system-shutdown"
    assert web.resource.sessions == {}
    assert [r.events.count("closed") for r in web.receivers] == [1, 1]
    assert sessionTimers(web) == []


def test_abortConnection() -> None:
    """
    abortConnection ends the session at once, saying nothing: the
    connections of held requests are cut.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    client.session.channel.abortConnection()
    assert not held.answered and held.transport.disconnecting
    assert web.resource.sessions == {}
    assert web.receivers[0].events.count("closed") == 1


def test_refusedByNegotiation() -> None:
    """
    A negotiation that refuses the peer at once (too many unauthenticated
    streams from its address) aborts; nothing is left behind.
    """
    web = Web()
    web.h.server.addressLimiter.maxPerAddress = 1
    Client(web).create().reply()
    second = Client(web).create()
    assert not second.answered and second.transport.disconnecting
    assert len(web.resource.sessions) == 1
    assert len(web.h.server.streams) == 1


# --- restarts ---------------------------------------------------------------------------


def test_restartWhenNoneIsDue() -> None:
    """
    XEP-0206 section 5: a restart request when no restart is due is a
    bad-request.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    reply = client.send(attributes="xmpp:restart='true'").reply()
    assert condition(reply) == "bad-request"
    assert web.resource.sessions == {}


def test_restartStartsTheStreamAgain() -> None:
    """
    XEP-0206 section 5: after reset(), the restart request gives the
    receiver a new header (with the restart's 'to'); stanzas in it are
    ignored.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    receiver = web.receivers[0]
    receiver.channel.reset()
    reply = client.send("<message/>", attributes="xmpp:restart='true' to='example.com'").reply()
    reply.only("features")
    assert len(receiver.headers) == 2 and receiver.elements == []
    assert receiver.headers[1].getAttribute("version") == "1.0"
    # xs:boolean: "1" is true too.
    receiver.channel.reset()
    client.send(attributes="xmpp:restart='1'").reply().only("features")
    assert len(receiver.headers) == 3


def test_stanzasBeforeRestart() -> None:
    """
    XEP-0206 section 5: after SASL success only the restart may come;
    stanzas sent before it end the session with bad-request.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    web.receivers[0].channel.reset()
    reply = client.send("<message/>").reply()
    assert condition(reply) == "bad-request"
    assert web.receivers[0].elements == []


def test_pipelinedAcrossSuccess() -> None:
    """
    As on TCP: stanzas in the same body as the <auth/> that succeeds are
    not processed on the new stream.
    """
    web = Web()
    client = Client(web)
    client.create().reply()
    credentials = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    reply = client.send(
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{credentials}</auth>"
        f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>"
    ).reply()
    assert condition(reply) == "bad-request"
    assert web.h.sessions.sessionFor(jid.JID("alice@example.com/b")) is None


# --- the client certificate ------------------------------------------------------------


def test_otherCertificateRefusedAndSessionEnded(logged: list[LogEvent]) -> None:
    """
    A request over a connection with another client certificate than the
    creating one is refused with policy-violation, gets nothing of the
    session, and the session ends (held requests answered with terminate,
    the bound session unbound); logged at info with both peers.
    """
    web = Web()
    alice = Client(web, chain=(CERT_ALICE,))
    fullJID = alice.login()
    held = alice.send()
    alice.session.channel.send(domish.Element((NS_CLIENT, "message"), attribs={"id": "secret"}))
    intruder = alice.send("<message to='bob@example.com'/>", chain=(CERT_MALLORY,))
    reply = intruder.reply()
    assert condition(reply) == "policy-violation" and reply.children == []
    assert b"secret" not in intruder.bytes
    assert condition(held.reply()) == "policy-violation"
    assert web.resource.sessions == {}
    assert web.h.sessions.sessionFor(fullJID) is None
    [line] = [e for e in logged if "another client certificate" in e["log_format"]]
    assert line["log_level"] == LogLevel.info
    assert line["peerCertificate"] != line["creatorCertificate"]
    assert line["peer"] != line["creator"]
    noErrorsLogged(logged)


def test_replayOverOtherCertificateGetsNoCachedResponse() -> None:
    """
    The certificate check comes before everything: a repeated rid from
    another certificate never gets the kept response (the session's data).
    """
    web = Web(fake=True)
    client = Client(web, chain=(CERT_ALICE,))
    client.create()
    held = client.send()
    web.receivers[0].channel.send(domish.Element((NS_CLIENT, "message"), attribs={"id": "secret"}))
    web.clock.advance(0)
    assert b"secret" in held.bytes
    replay = client.send(rid=client.rid, chain=(CERT_MALLORY,))
    assert b"secret" not in replay.bytes
    assert condition(replay.reply()) == "policy-violation"
    assert web.resource.sessions == {}


def test_noCertificateVersusCertificate() -> None:
    """
    No certificate is only the same as no certificate: a request without
    one for a session made with one is refused, and the other way round.
    """
    web = Web(fake=True)
    withCert = Client(web, chain=(CERT_ALICE,))
    withCert.create()
    assert condition(withCert.send(chain=()).reply()) == "policy-violation"
    without = Client(web)
    without.create()
    assert condition(without.send(chain=(CERT_ALICE,)).reply()) == "policy-violation"
    assert web.resource.sessions == {}


def test_sameCertificateOtherConnectionServed() -> None:
    """
    The same leaf certificate over another connection (another port, a
    chain with other intermediates) is the same client.
    """
    web = Web(fake=True)
    client = Client(web, chain=(CERT_ALICE,))
    client.create()
    assert not client.send(chain=(CERT_ALICE, CERT_MALLORY)).answered
    assert client.sid in web.resource.sessions


def test_plainHTTPForSecureSessionRefused() -> None:
    """
    XEP-0124 section 19.1: a session made over HTTPS takes no request over
    plain HTTP.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    assert condition(client.send(secure=False).reply()) == "policy-violation"
    assert web.resource.sessions == {}


# --- bad input ---------------------------------------------------------------------------


def test_unknownSid() -> None:
    """
    XEP-0124 section 17.2: an unknown sid gets item-not-found, with HTTP
    200.
    """
    web = Web(fake=True)
    exchange = web.post(f"<body rid='7' sid='nosuchsession' xmlns='{NS_HTTPBIND}'/>")
    assert condition(exchange.reply()) == "item-not-found"


@pytest.mark.parametrize(
    "data",
    [
        b"<body xmlns='http://jabber.org/protocol/httpbind'",
        b"not xml at all",
        b"<?xml version='1.0'?><!DOCTYPE body [<!ENTITY a 'aaaa'>]>"
        b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>&a;</body>",
        b"<body xmlns='urn:wrong' rid='1'/>",
        b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'><!-- c --></body>",
        b"",
    ],
)
def test_unreadableBodyIs400(data: bytes, logged: list[LogEvent]) -> None:
    """
    A body that is not a readable BOSH body (bad XML, a DOCTYPE, a
    comment, another root) is refused with HTTP 400 and bad-request, and
    makes no session; logged at warn, never error.
    """
    web = Web(fake=True)
    response = web.post(data).response()
    assert response.status == 400
    assert condition(parseReply(response.content)) == "bad-request"
    assert web.receivers == []
    assert [e["log_level"] for e in logged] == [LogLevel.warn]


def test_badCreationAttributes() -> None:
    """
    XEP-0124 section 17.2: a session request whose rid, wait or hold is
    not a number is a bad-request.
    """
    web = Web(fake=True)
    for attributes in ("rid='x' wait='60' hold='1'", "rid='-5'", "rid='1' wait='soon'", "rid='0'"):
        exchange = web.post(f"<body {attributes} xmlns='{NS_HTTPBIND}'/>")
        assert exchange.response().status == 400
    assert web.receivers == []


def test_unreadableBodyOfKnownSession() -> None:
    """
    A broken body for a known session terminates it with bad-request.
    """
    web = Web(fake=True)
    client = Client(web)
    client.create()
    held = client.send()
    exchange = web.post(f"<body rid='{client.rid + 1}' sid='{client.sid}' xmlns='{NS_HTTPBIND}'><message>")
    assert condition(exchange.reply()) == "bad-request"
    assert condition(held.reply()) == "bad-request"
    assert web.receivers[0].elements == []
    assert web.resource.sessions == {}


def test_stanzaOverLimitIsBadRequest() -> None:
    """
    The stanza limits ([limits] max_stanza_size) apply to what a body
    carries.
    """
    size, _ = makeServer().server.stanzaLimits()
    web = Web(HTTPConfig(max_body_size=2 * size), fake=True)
    client = Client(web)
    client.create()
    reply = client.send("<message><body>" + "x" * size + "</body></message>").reply()
    assert condition(reply) == "bad-request"
    assert web.receivers[0].elements == []


def test_noErrorLogsFromHostileRequests(logged: list[LogEvent]) -> None:
    """
    A remote peer never makes the server log at error or above, and a
    flood of refusals is one line of each kind.
    """
    web = Web(HTTPConfig(allowed_origins=("https://chat.example.com",)), fake=True)
    for _ in range(5):
        web.post(f"<body rid='1' sid='nope' xmlns='{NS_HTTPBIND}'/>").reply()
        web.post(b"<body/>")
        web.post(b"", headers=((b"Origin", b"https://evil.example"),))
        client = Client(web)
        client.create()
        client.send(rid=client.rid + 10)
    noErrorsLogged(logged)
    assert [e["log_level"] for e in logged] == [LogLevel.info, LogLevel.warn, LogLevel.info, LogLevel.warn]


# --- HTTP ---------------------------------------------------------------------------------


def test_originRefused(logged: list[LogEvent]) -> None:
    """
    A POST from a page whose origin is not in [http] allowed_origins is
    refused with 403 (logged at info), and makes no session.
    """
    web = Web(HTTPConfig(allowed_origins=("https://chat.example.com",)), fake=True)
    body = f"<body rid='1' to='example.com' xmlns='{NS_HTTPBIND}'/>"
    response = web.post(body, headers=((b"Origin", b"https://evil.example"),)).response()
    assert response.status == 403
    assert web.receivers == []
    assert [e["log_level"] for e in logged] == [LogLevel.info]


def test_originAllowedGetsCORS() -> None:
    """
    A POST from an allowed origin is served with the CORS headers.
    """
    web = Web(HTTPConfig(allowed_origins=("https://chat.example.com",)), fake=True)
    body = f"<body rid='1' to='example.com' xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' xmpp:version='1.0'/>"
    response = web.post(body, headers=((b"Origin", b"https://chat.example.com"),)).response()
    assert response.status == 200
    assert response.headers[b"access-control-allow-origin"] == b"https://chat.example.com"
    assert len(web.receivers) == 1


def test_corsPreflight() -> None:
    """
    The CORS preflight (OPTIONS) of an allowed origin is answered with the
    CORS headers; of another origin with 403.
    """
    web = Web(HTTPConfig(allowed_origins=("https://chat.example.com",)), fake=True)
    allowed = web.post(b"", method=b"OPTIONS", headers=((b"Origin", b"https://chat.example.com"),))
    response = allowed.response()
    assert response.status == 204
    assert response.headers[b"access-control-allow-origin"] == b"https://chat.example.com"
    assert b"POST" in response.headers[b"access-control-allow-methods"]
    refused = web.post(b"", method=b"OPTIONS", headers=((b"Origin", b"https://evil.example"),))
    assert refused.response().status == 403


def test_getIsAShortPage(logged: list[LogEvent]) -> None:
    """
    GET is a short text/plain page, and no error.
    """
    web = Web(fake=True)
    response = web.post(b"", method=b"GET").response()
    assert response.status == 200
    assert response.headers[b"content-type"].startswith(b"text/plain")
    assert web.post(b"", method=b"PUT").response().status in (405, 501)
    noErrorsLogged(logged)


def test_responsesNotCached() -> None:
    """
    BOSH responses are never cached or sniffed as something else.
    """
    web = Web(fake=True)
    response = Client(web).create().response()
    assert response.headers[b"cache-control"] == b"no-store"
    assert response.headers[b"x-content-type-options"] == b"nosniff"
