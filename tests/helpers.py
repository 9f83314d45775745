"""
Shared test helpers: a L{C2SServer} over L{InMemoryAccountStore} with a
L{task.Clock}, an in-memory client connection that records what the server
sends, and a parser for that output.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface import directlyProvides

from xmppcert.c2s import C2SAuthenticator, C2SServer, C2SStream, HandlerFactory
from xmppcert.config import Config, configFromDict
from xmppcert.cred import AccountRealm, ScramChecker, StoredPasswordChecker
from xmppcert.handlers import defaultHandlers
from xmppcert.passwords import makeScramCredentials
from xmppcert.sasl import NS_SASL, MechanismRegistry, defaultRegistry
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import ScramCredential
from xmppcert.testing import InMemoryAccountStore

DOMAIN = "example.com"
OTHER_DOMAIN = "other.example"
ALICE = "alice@example.com"
BOB = "bob@example.com"
PASSWORD = "correct horse battery staple"

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " to='{to}' version='1.0'>"
)
# Declares what the server's stanzas rely on when parsed without its header.
_SYNTHETIC_HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)

_credentialCache: dict[str, list[ScramCredential]] = {}


def credentials(password: str = PASSWORD) -> list[ScramCredential]:
    """
    SCRAM credentials for C{password} with 4096 iterations, computed once per
    password for the whole test run.
    """
    if password not in _credentialCache:
        _credentialCache[password] = makeScramCredentials(password, 4096)
    return _credentialCache[password]


def syncDeferToThread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
    """
    A C{deferToThread} that runs C{f} at once, for tests without a reactor.
    """
    return defer.maybeDeferred(f, *args, **kwargs)


def resultOf(d: Any) -> Any:
    """
    The result of a Deferred (or coroutine) that has already fired.
    """
    results: list[Any] = []
    defer.maybeDeferred(lambda: d).addBoth(results.append)
    assert results, f"{d!r} has not fired"
    if isinstance(results[0], failure.Failure):
        results[0].raiseException()
    return results[0]


def failureOf(d: Any, *errorTypes: type[BaseException]) -> failure.Failure:
    """
    The failure of a Deferred (or coroutine) that has already failed with
    one of C{errorTypes}.
    """
    results: list[Any] = []
    defer.maybeDeferred(lambda: d).addBoth(results.append)
    assert results, f"{d!r} has not fired"
    assert isinstance(results[0], failure.Failure), f"succeeded with {results[0]!r}"
    assert results[0].check(*errorTypes), results[0].getTraceback()
    return results[0]


def makePortal(store: InMemoryAccountStore) -> Portal:
    """
    The portal of L{xmppcert.cred.makePortal}, with PBKDF2 run synchronously.
    """
    return Portal(
        AccountRealm(),
        [ScramChecker(), StoredPasswordChecker(store, deferToThread=syncDeferToThread)],
    )


def makeConfig(baseDir: Path = Path("/nonexistent"), **data: Any) -> Config:
    """
    A validated configuration serving L{DOMAIN}; C{data} overrides keys of
    the TOML document (tables as dicts).
    """
    document: dict[str, Any] = {"domains": [DOMAIN]}
    document.update(data)
    return configFromDict(document, baseDir)


def addAccount(store: InMemoryAccountStore, bareJID: str, password: str = PASSWORD) -> None:
    store.accounts[bareJID] = {c.mechanism: c for c in credentials(password)}


class FakeTLSTransport(StringTransportWithDisconnection):
    """
    A transport that records C{startTLS} calls instead of starting TLS, and
    closes the protocol's connection on C{loseConnection}.

    @ivar tlsStarts: the context factories C{startTLS} was called with.
    @ivar aborted: whether C{abortConnection} was called.
    @ivar lingering: set to model a peer that never closes its side:
        C{loseConnection} then only marks the transport as disconnecting,
        and only C{abortConnection} ends the connection.
    """

    def __init__(self) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000))
        self.tlsStarts: list[Any] = []
        self.aborted = False
        self.lingering = False
        self.noDelay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        self.tlsStarts.append(contextFactory)

    def loseConnection(self) -> None:
        if self.lingering:
            self.disconnecting = True
            return
        super().loseConnection()

    def abortConnection(self) -> None:
        self.aborted = True
        self.lingering = False
        self.loseConnection()


@dataclass
class Received:
    """
    What the server sent since the last look, parsed.

    @ivar headers: the stream headers (root elements) in it.
    @ivar elements: the top-level elements (stanzas, features, errors).
    @ivar footer: whether C{</stream:stream>} was among it.
    @ivar raw: the text.
    """

    raw: str
    headers: list[domish.Element] = field(default_factory=list)
    elements: list[domish.Element] = field(default_factory=list)
    footer: bool = False

    def only(self, name: str | None = None) -> domish.Element:
        """
        @return: the single top-level element (with that name, if given).
        """
        found = [e for e in self.elements if name is None or e.name == name]
        assert len(found) == 1, f"expected one {name or 'element'} in {self.raw!r}"
        return found[0]

    def named(self, name: str) -> list[domish.Element]:
        return [e for e in self.elements if e.name == name]

    def streamError(self) -> str:
        """
        @return: the condition of the stream error sent, after checking that
            the stream was closed properly after it.
        """
        errors = [e for e in self.elements if (e.uri, e.name) == (NS_STREAMS, "error")]
        assert len(errors) == 1, f"expected one stream error in {self.raw!r}"
        assert self.footer, f"no closing tag after the stream error in {self.raw!r}"
        conditions = [c.name for c in errors[0].elements() if c.uri == NS_STREAM_ERRORS and c.name != "text"]
        assert len(conditions) == 1, self.raw
        return conditions[0]


def parseOutput(raw: str) -> Received:
    """
    Parse a piece of server output, which may start mid-stream and may hold
    new stream headers.
    """
    received = Received(raw=raw)
    segments: list[str] = []
    rest = raw
    while True:
        index = rest.find("<stream:stream", 1)
        if index == -1:
            segments.append(rest)
            break
        segments.append(rest[:index])
        rest = rest[index:]
    for segment in segments:
        if not segment.strip():
            continue
        hasHeader = segment.lstrip().startswith("<stream:stream")
        stream = domish.ExpatElementStream()
        stream.DocumentStartEvent = received.headers.append if hasHeader else (lambda root: None)
        stream.ElementEvent = received.elements.append

        def ended() -> None:
            received.footer = True

        stream.DocumentEndEvent = ended
        stream.parse((segment if hasHeader else _SYNTHETIC_HEADER + segment).encode("utf-8"))
    return received


def stanzaErrorCondition(stanza: domish.Element) -> str:
    """
    @return: the defined condition of an error stanza.
    """
    assert stanza.getAttribute("type") == "error", stanza.toXml()
    errors = [c for c in stanza.elements() if c.name == "error"]
    assert len(errors) == 1, stanza.toXml()
    conditions = [c.name for c in errors[0].elements() if c.uri == NS_STANZA_ERRORS and c.name != "text"]
    assert len(conditions) == 1, stanza.toXml()
    return conditions[0]


class ClientConnection:
    """
    One client stream to an in-memory server: bytes in with L{send}, the
    server's output out with L{received}.
    """

    def __init__(self, server: C2SServer, directTLS: bool = False) -> None:
        self.server = server
        self.transport = FakeTLSTransport()
        if directTLS:
            directlyProvides(self.transport, ISSLTransport)
        protocol = server.streamFactory().buildProtocol(self.transport.getPeer())
        assert isinstance(protocol, C2SStream)
        self.xs: C2SStream = protocol
        self.transport.protocol = self.xs
        self.xs.makeConnection(self.transport)
        authenticator = self.xs.authenticator
        assert isinstance(authenticator, C2SAuthenticator)
        self.authenticator: C2SAuthenticator = authenticator
        self._seen = 0

    # --- input ------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.xs.dataReceived(data)

    def header(self, to: str | None = DOMAIN) -> Received:
        """
        Send a stream header and return the answer.
        """
        attribute = f" to='{to}'" if to is not None else ""
        self.send(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
            f"{attribute} version='1.0'>"
        )
        return self.received()

    def auth(self, mechanism: str, data: bytes | None = None, raw: str | None = None) -> Received:
        """
        Send C{<auth/>} with C{data} base64-encoded (or C{raw} text).
        """
        text = raw if raw is not None else ("" if data is None else base64.b64encode(data).decode("ascii"))
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{text}</auth>")
        return self.received()

    def response(self, data: bytes | None = None, raw: str | None = None) -> Received:
        text = raw if raw is not None else ("" if data is None else base64.b64encode(data).decode("ascii"))
        self.send(f"<response xmlns='{NS_SASL}'>{text}</response>")
        return self.received()

    # --- output -----------------------------------------------------------

    def output(self) -> str:
        """
        Everything the server sent since the last L{received} or L{output}.
        """
        value = self.transport.value()
        new = value[self._seen :]
        self._seen = len(value)
        return new.decode("utf-8")

    def received(self) -> Received:
        return parseOutput(self.output())

    @property
    def closed(self) -> bool:
        return not self.transport.connected

    # --- negotiation steps ------------------------------------------------

    def startTLS(self) -> Received:
        """
        Header, STARTTLS and the new header; returns the answer to that.
        """
        self.header()
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = self.received()
        assert proceed.only().name == "proceed", proceed.raw
        return self.header()

    def loginPlain(self, user: str = "alice", password: str = PASSWORD) -> Received:
        """
        STARTTLS, then SASL PLAIN; returns the answer to the header after
        C{<success/>}.
        """
        self.startTLS()
        answer = self.auth("PLAIN", b"\0" + user.encode() + b"\0" + password.encode())
        assert answer.only().name == "success", answer.raw
        return self.header()

    def bind(self, resource: str | None = None, iqID: str = "bind1") -> Received:
        content = f"<resource>{resource}</resource>" if resource is not None else ""
        self.send(f"<iq type='set' id='{iqID}'><bind xmlns='{NS_BIND}'>{content}</bind></iq>")
        return self.received()

    def bound(self, resource: str = "phone", user: str = "alice") -> jid.JID:
        """
        Log in with PLAIN and bind C{resource}; return the full JID.
        """
        self.loginPlain(user)
        result = self.bind(resource).only("iq")
        assert result["type"] == "result", result.toXml()
        return jid.JID(str(result.bind.jid))


@dataclass
class ServerHarness:
    """
    A C2SServer with everything in memory.
    """

    server: C2SServer
    store: InMemoryAccountStore
    clock: task.Clock
    tlsFactory: object

    @property
    def sessions(self) -> SessionManager:
        return self.server.sessions

    def connect(self, directTLS: bool = False) -> ClientConnection:
        return ClientConnection(self.server, directTLS=directTLS)


def makeServer(
    config: Config | None = None,
    store: InMemoryAccountStore | None = None,
    handlerFactories: Sequence[HandlerFactory] = (defaultHandlers,),
    registry: MechanismRegistry | None = None,
    accounts: Sequence[str] = (ALICE, BOB),
) -> ServerHarness:
    """
    A C2SServer over an InMemoryAccountStore holding C{accounts} (password
    L{PASSWORD}), a task.Clock and a stand-in TLS context factory.
    """
    config = config or makeConfig()
    if store is None:
        store = InMemoryAccountStore()
        for account in accounts:
            addAccount(store, account)
    clock = task.Clock()
    tlsFactory = object()
    server = C2SServer(
        config=config,
        portal=makePortal(store),
        store=store,
        sessions=SessionManager(config.domains, store),
        tlsFactory=tlsFactory,
        registry=registry or defaultRegistry(),
        clock=clock,
        handlerFactories=handlerFactories,
    )
    return ServerHarness(server=server, store=store, clock=clock, tlsFactory=tlsFactory)


def certificateHarness(
    days: int = 30, mechanisms: Sequence[str] = ("EXTERNAL", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"),
    name: str = "Phone",
) -> tuple[ServerHarness, Any]:
    """
    A harness whose portal checks stored certificates, with one certificate
    C{name} registered to alice, valid from one day ago for C{days} days;
    the clock is at the present.
    """
    import datetime

    from cryptography.hazmat.primitives.serialization import Encoding

    from xmppcert import x509 as certs
    from xmppcert.cred import StoredCertificateChecker

    h = makeServer(makeConfig(sasl={"mechanisms": list(mechanisms)}))
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    h.clock.advance(now.timestamp())
    certificate = certs.issueClientCertificate(
        [ALICE], certs.generateClientKey("ec"), now=now - datetime.timedelta(days=1), days=days
    )
    facts = certs.certificateFacts(certificate)
    resultOf(
        h.store.addCertificate(
            ALICE, name, certificate.public_bytes(Encoding.DER), facts.fingerprint, facts.notAfter.timestamp()
        )
    )
    h.server.portal = Portal(
        AccountRealm(),
        [
            ScramChecker(),
            StoredPasswordChecker(h.store, deferToThread=syncDeferToThread),
            StoredCertificateChecker(h.store, h.clock, [DOMAIN]),
        ],
    )
    return h, certificate


@dataclass
class FakeClient:
    """
    The two ends a Session needs, recording what they get.
    """

    sent: list[domish.Element] = field(default_factory=list)
    closes: list[error.StreamError] = field(default_factory=list)

    def send(self, element: domish.Element) -> None:
        self.sent.append(element)

    def close(self, streamError: error.StreamError) -> None:
        self.closes.append(streamError)


def bindSession(manager: SessionManager, fullJID: str) -> tuple[Session, FakeClient]:
    """
    Bind a session for C{fullJID} whose sends and closes are recorded.
    """
    client = FakeClient()
    session = manager.bind(jid.JID(fullJID), client.send, client.close)
    return session, client


__all__ = [
    "ALICE",
    "BOB",
    "DOMAIN",
    "HEADER",
    "OTHER_DOMAIN",
    "PASSWORD",
    "ClientConnection",
    "FakeClient",
    "FakeTLSTransport",
    "Received",
    "ServerHarness",
    "addAccount",
    "bindSession",
    "credentials",
    "failureOf",
    "makeConfig",
    "makePortal",
    "makeServer",
    "parseOutput",
    "resultOf",
    "stanzaErrorCondition",
    "syncDeferToThread",
]
