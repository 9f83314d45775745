# -*- test-case-name: tests.test_c2s -*-
"""
The receiving side of a client stream (RFC 6120): stream headers, features,
STARTTLS, SASL, resource binding, and the bound stream's stanza handling.

Twisted and wokkel only ship the initiating side of these. The shape follows
Twisted's C{TLSInitiatingInitializer} and wokkel's
C{ListenComponentAuthenticator}: an authenticator checks headers and sends
features; each negotiable feature is a small object of its own
(L{ReceivingTLSFeature}, L{ReceivingSASLFeature}, L{ReceivingBindFeature}).
Once a resource is bound, stanzas are stamped, routed through the
L{SessionManager}, or handed to the stream's wokkel handlers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cryptography import x509
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.protocols.jabber.sasl import SASLIncorrectEncodingError, fromBase64
from twisted.words.xish import domish, utility

from xmppcert import _log
from xmppcert.config import Config
from xmppcert.cred import Account
from xmppcert.jids import makeJID, parseJID
from xmppcert.limits import AddressLimiter, AddressSlot, peerHost
from xmppcert.metrics import IMetrics, NullMetrics
from xmppcert.sasl import (
    NS_SASL,
    Challenge,
    MechanismContext,
    MechanismRegistry,
    SASLFailure,
    SASLResult,
    Success,
    describeCertificate,
)
from xmppcert.sasl.external import certificateStanding
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import STORE_FAILURES, IAccountStore
from xmppcert.throttle import LoginThrottle
from xmppcert.tls import peerCertificateChain
from xmppcert.xmlstream import HardenedXmlStream

log = Logger(observer=_log.observer)

NS_CLIENT = "jabber:client"
NS_STREAMS = xmlstream.NS_STREAMS
NS_TLS = xmlstream.NS_XMPP_TLS
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


#: Called once a resource is bound; returns the wokkel handlers for that stream.
HandlerFactory = Callable[["C2SAuthenticator"], "Iterable[Any]"]


class C2SServer:
    """
    Everything the client streams of one server share: configuration,
    portal, store, session registry, TLS context, SASL mechanisms, the
    clock, the factories of per-stream handlers, and the limits on hostile
    clients.

    @ivar throttle: counts failed logins (L{xmppcert.throttle}).
    @ivar addressLimiter: counts unauthenticated connections per address.
    @ivar metrics: told about connections, logins and sessions.
    """

    def __init__(
        self,
        config: Config,
        portal: Portal,
        store: IAccountStore,
        sessions: SessionManager,
        tlsFactory: Any,
        registry: MechanismRegistry,
        clock: IReactorTime,
        handlerFactories: Sequence[HandlerFactory] = (),
        fakeCredentialSecret: bytes | None = None,
        throttle: LoginThrottle | None = None,
        metrics: IMetrics | None = None,
    ) -> None:
        """
        @param throttle: the failed-login throttle; by default one from
            C{config.limits}, for this server alone.
        @param metrics: L{xmppcert.metrics}; none recorded by default.
        """
        self.config = config
        self.fakeCredentialSecret = fakeCredentialSecret
        self.portal = portal
        self.store = store
        self.sessions = sessions
        self.tlsFactory = tlsFactory
        self.registry = registry
        self.clock = clock
        self.handlerFactories = list(handlerFactories)
        #: One error line a minute at most while the store fails logins.
        self.storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, 60.0)
        #: Every connected stream, bound or not.
        self.streams: set[C2SAuthenticator] = set()
        self.throttle = throttle if throttle is not None else LoginThrottle.fromConfig(config.limits, clock)
        self.addressLimiter = AddressLimiter(config.limits.max_unauthenticated_per_address, clock)
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()

    def streamFactory(self) -> xmlstream.XmlStreamServerFactory:
        """
        A protocol factory for client streams. Wrap it with
        C{tlsFactory.wrapFactory} for direct TLS.
        """
        factory = xmlstream.XmlStreamServerFactory(lambda: C2SAuthenticator(self))
        factory.protocol = C2SStream
        return factory


#: Seconds a peer has to close its side after our stream error or closing
#: tag, before the connection is cut (a TLS close waits for the peer's
#: close_notify, which a hostile peer never sends).
CLOSE_GRACE = 5.0


class C2SStream(HardenedXmlStream):
    """
    A client stream with the hardened parser, as the receiving entity.
    """

    initiating = False
    #: Set by the authenticator: the server clock, for the close deadline.
    clock: IReactorTime | None = None
    _abortCall: IDelayedCall | None = None
    #: Set once our closing tag is out: the stream is over for us, even
    #: though TLS keeps delivering what the peer sends until it closes.
    closing = False

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
        log.warn("Data pipelined across a stream restart; closing", peer=_peer(self))
        self.transport.abortConnection()  # type: ignore[union-attr]

    def onDocumentEnd(self) -> None:
        # RFC 6120 section 4.4: answer the closing tag with ours.
        if self._headerSent:
            self.sendFooter()
        self.closing = True
        self.loseConnection()


def _peer(xs: Any) -> str:
    try:
        address = xs.transport.getPeer()
        return f"{address.host}:{address.port}"
    except Exception:
        return "?"


def _address(xs: Any) -> str:
    """
    The peer's C{host:port}, an IPv6 host in brackets; C{""} when unknown.
    """
    try:
        address = xs.transport.getPeer()
        host, port = address.host, address.port
    except Exception:
        return ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peerHost(xs: Any) -> str | None:
    """
    @return: the IP address of the peer, or C{None} when it has none (a
        UNIX socket) or is gone.
    """
    transport = xs.transport
    if transport is None:
        return None
    return peerHost(transport.getPeer())


def _element(uri: str, name: str, content: str | None = None) -> domish.Element:
    element = domish.Element((uri, name))
    if content is not None:
        element.addContent(content)
    return element


class ReceivingTLSFeature:
    """
    STARTTLS as the receiving entity (RFC 6120 section 5.4): offered, and
    required, until TLS is up.
    """

    def __init__(self, authenticator: C2SAuthenticator) -> None:
        self.authenticator = authenticator

    def featureElement(self) -> domish.Element:
        starttls = domish.Element((NS_TLS, "starttls"))
        starttls.addElement("required")
        return starttls

    def onElement(self, element: domish.Element) -> bool:
        if (element.uri, element.name) != (NS_TLS, "starttls"):
            return False
        xs = self.authenticator.xmlstream
        xs.send(domish.Element((NS_TLS, "proceed")))
        # Twisted writes the <proceed/> in the clear, then starts TLS.
        xs.transport.startTLS(self.authenticator.server.tlsFactory)
        xs.reset()
        self.authenticator.tlsStarted()
        # The handshake and the restarted header must come in time again.
        self.authenticator.armHandshakeTimeout()
        return True


class ReceivingSASLFeature:
    """
    SASL as the receiving entity (RFC 6120 section 6.4).
    """

    def __init__(self, authenticator: C2SAuthenticator) -> None:
        self.authenticator = authenticator
        self.failures = 0
        self._mechanism: Any = None
        self._mechanismName = ""
        self._busy = False
        #: Counts SASL steps; a step's outcome only counts if it is the latest.
        self._attempt = 0
        #: Names offered on this stream, once L{prepare} has run.
        self.offered: list[str] | None = None
        self._pending: list[domish.Element] = []
        #: When the current attempt's <auth/> came (metrics).
        self._authStarted: float | None = None

    def _context(self) -> MechanismContext:
        a = self.authenticator
        server = a.server
        return MechanismContext(
            portal=a.server.portal,
            store=a.server.store,
            domain=a.domain,
            secure=a.secure,
            peerAddress=_peer(a.xmlstream),
            peerChain=a.peerChain,
            scramIterations=a.server.config.sasl.scram_iterations,
            fakeCredentialSecret=a.server.fakeCredentialSecret,
            peerHost=_peerHost(a.xmlstream) or "",
            throttle=a.server.throttle,
            metrics=a.server.metrics,
            # The live configuration's, which a reload replaces.
            servedDomains=lambda: server.config.domains,
        )

    async def prepare(self) -> None:
        """
        Decide which mechanisms this stream is offered; some (EXTERNAL) need
        to ask the store first.
        """
        server = self.authenticator.server
        offered = await server.registry.offered(server.config.sasl.mechanisms, self._context())
        names = [f.name for f in offered]
        chain = self.authenticator.peerChain
        if chain and "EXTERNAL" in server.config.sasl.mechanisms and "EXTERNAL" not in names:
            # Who was turned away, once per stream: no <failure/> will say.
            # (Before self.offered is set: what the client sends meanwhile waits.)
            log.info(
                "Not offering EXTERNAL to {peer}: no checker accepts {account} ({standing})",
                peer=_peer(self.authenticator.xmlstream),
                account=describeCertificate(chain[0]),
                standing=await certificateStanding(server.store, chain[0]),
            )
        self.offered = names
        pending, self._pending = self._pending, []
        for element in pending:
            if self.authenticator.active:
                self.onElement(element)

    def featureElement(self) -> domish.Element:
        mechanisms = domish.Element((NS_SASL, "mechanisms"))
        for name in self.offered or []:
            mechanisms.addElement("mechanism", content=name)
        return mechanisms

    def onElement(self, element: domish.Element) -> bool:
        if element.uri != NS_SASL or element.name not in ("auth", "response", "abort"):
            return False
        if self.offered is None:
            # Sent before our features: handle it once they are known. One
            # is all a client may send before an answer.
            if self._pending:
                self.authenticator.streamError("policy-violation", "Wait for the stream features")
                return True
            self._pending.append(element)
            return True
        if self._busy:
            # A step is still being checked; RFC 6120 has no pipelining
            # here. The step's outcome is dropped when it comes: a client
            # must never see <failure/> and then <success/>.
            self._attempt += 1
            self._busy = False
            self._mechanism = None
            if element.name == "abort":
                self._fail(SASLFailure("aborted"))
            else:
                self._fail(SASLFailure("malformed-request", "wait for the server's answer"))
            return True
        if element.name == "abort":
            self._mechanism = None
            self._fail(SASLFailure("aborted"))
        elif element.name == "auth":
            self._onAuth(element)
        else:
            self._onResponse(element)
        return True

    def _decode(self, element: domish.Element, initial: bool) -> bytes | None:
        text = str(element)
        if initial and text == "":
            return None
        if text == "=":
            return b""
        try:
            return bytes(fromBase64(text))
        except SASLIncorrectEncodingError:
            raise SASLFailure("incorrect-encoding") from None

    def _onAuth(self, element: domish.Element) -> None:
        self.authenticator.revocationMark = self.authenticator.server.sessions.revocationMark()
        self._authStarted = self.authenticator.server.clock.seconds()
        name = element.getAttribute("mechanism", "")
        self._mechanism = None
        self._mechanismName = name[:40]
        enabled = self.authenticator.server.config.sasl.mechanisms
        if name not in (self.offered or []):
            if name == "EXTERNAL" and name in enabled and self.authenticator.peerChain:
                # XEP-0178 section 2: a certificate that cannot be mapped is
                # refused by the mechanism itself (the specific condition,
                # then the stream is closed), offered or not.
                pass
            elif name == "EXTERNAL" and name in enabled:
                # No certificate at all: a plain refusal, answered at once;
                # the client may still use another mechanism.
                self._fail(SASLFailure("not-authorized", "no client certificate was presented"))
                return
            else:
                self._fail(SASLFailure("invalid-mechanism"))
                return
        factory = self.authenticator.server.registry.get(name)
        if factory is None:
            self._fail(SASLFailure("invalid-mechanism"))
            return
        try:
            data = self._decode(element, initial=True)
        except SASLFailure as e:
            self._fail(e)
            return
        self._mechanism = factory(self._context())
        self._mechanismName = name
        self._run(self._mechanism.start(data))

    def _onResponse(self, element: domish.Element) -> None:
        if self._mechanism is None:
            self._fail(SASLFailure("malformed-request", "no authentication in progress"))
            return
        try:
            data = self._decode(element, initial=False)
        except SASLFailure as e:
            self._mechanism = None
            self._fail(e)
            return
        assert data is not None
        self._run(self._mechanism.step(data))

    def _run(self, d: defer.Deferred[SASLResult]) -> None:
        self._busy = True
        self._attempt += 1
        attempt = self._attempt

        def done(result: SASLResult) -> None:
            if attempt != self._attempt:
                return  # cancelled by what the client sent meanwhile
            self._busy = False
            if not self.authenticator.active:
                return
            if isinstance(result, Challenge):
                challenge = domish.Element((NS_SASL, "challenge"))
                if result.data:
                    challenge.addContent(base64.b64encode(result.data).decode("ascii"))
                self.authenticator.xmlstream.send(challenge)
            else:
                self._succeed(result)

        def failed(f: failure.Failure) -> None:
            if attempt != self._attempt:
                return
            self._busy = False
            self._mechanism = None
            if not self.authenticator.active:
                return
            if isinstance(f.value, SASLFailure):
                self._fail(f.value)
            elif isinstance(f.value, STORE_FAILURES):
                # Not the peer's doing, and repeatable at will by the peer:
                # one line now and then, not a traceback per attempt.
                self.authenticator.server.storeFailureLog.emit(
                    "Logins fail: the store is not available ({error})", error=f.getErrorMessage()
                )
                self._fail(SASLFailure("temporary-auth-failure", detail="the store is not available"))
            else:
                log.failure("SASL mechanism {mechanism} failed unexpectedly", f, mechanism=self._mechanismName)
                self._fail(SASLFailure("temporary-auth-failure"))

        d.addCallbacks(done, failed)

    def _succeed(self, result: Success) -> None:
        self._mechanism = None
        success = domish.Element((NS_SASL, "success"))
        if result.additionalData:
            success.addContent(base64.b64encode(result.additionalData).decode("ascii"))
        log.info(
            "Authenticated {jid} with {mechanism} from {peer}",
            jid=result.account.jid.userhost(),
            mechanism=self._mechanismName,
            peer=_peer(self.authenticator.xmlstream),
        )
        self._countLogin("success", "")
        xs = self.authenticator.xmlstream
        xs.send(success)
        xs.reset()
        # Authenticated: no longer counted against its address's limit.
        self.authenticator.releaseAddressSlot()
        self.authenticator.authenticated(result.account, self._mechanismName)

    def _countLogin(self, outcome: str, condition: str) -> None:
        server = self.authenticator.server
        started, self._authStarted = self._authStarted, None
        seconds = None if started is None else server.clock.seconds() - started
        # The name is the client's: only a registered one becomes a label.
        name = self._mechanismName
        mechanism = name if server.registry.get(name) is not None else ("other" if name else "")
        server.metrics.loginFinished(mechanism, outcome, condition, seconds)

    def _fail(self, reason: SASLFailure) -> None:
        a = self.authenticator
        self.failures += 1
        self._countLogin("failure", reason.condition)
        # A lockout's refusals were announced once, when it started.
        emit = log.debug if reason.quiet else log.info
        emit(
            "SASL failure {condition} for {mechanism} as {account} from {peer} ({count} of {limit}): {detail}",
            detail=reason.detail or "-",
            account=reason.account or "-",
            condition=reason.condition,
            mechanism=self._mechanismName or "-",
            peer=_peer(a.xmlstream),
            count=self.failures,
            limit=a.server.config.sasl.max_failures,
        )
        f = domish.Element((NS_SASL, "failure"))
        f.addElement(reason.condition)
        if reason.text:
            f.addElement("text", content=reason.text)
        a.xmlstream.send(f)
        if reason.closeStream:
            a.xmlstream.sendFooter()
            a.xmlstream.loseConnection()
        elif self.failures >= a.server.config.sasl.max_failures:
            # RFC 6120 section 6.4.5: past the retry limit, policy-violation.
            a.streamError("policy-violation", "Too many failed authentication attempts")


class ReceivingBindFeature:
    """
    Resource binding as the receiving entity (RFC 6120 section 7).
    """

    def __init__(self, authenticator: C2SAuthenticator) -> None:
        self.authenticator = authenticator

    def featureElement(self) -> domish.Element:
        return domish.Element((NS_BIND, "bind"))

    @staticmethod
    def isBindRequest(element: domish.Element) -> bool:
        return (
            element.name == "iq"
            and element.uri == NS_CLIENT
            and element.getAttribute("type") == "set"
            and any(c.uri == NS_BIND and c.name == "bind" for c in element.elements())
        )

    def onElement(self, element: domish.Element) -> bool:
        if not self.isBindRequest(element):
            return False
        a = self.authenticator
        assert a.account is not None
        bind = next(c for c in element.elements() if c.uri == NS_BIND and c.name == "bind")
        resource = None
        for child in bind.elements(NS_BIND, "resource"):
            resource = str(child)
        pinned = a.account.resource
        if pinned is not None:
            # XEP-0257 section 3 (MUST in its version 0.2): a certificate for a
            # full JID may bind only that resource.
            if resource and _preparedResource(resource) != pinned:
                a.xmlstream.send(
                    error.StanzaError(
                        "not-allowed", text=f"This certificate may only bind the resource {pinned}"
                    ).toResponse(element)
                )
                return True
            resource = pinned
        if not resource:
            resource = a.server.sessions.newResource(a.account.jid)
        try:
            full = makeJID(a.account.jid.user, a.account.jid.host, resource)
        except jid.InvalidFormat:
            a.xmlstream.send(error.StanzaError("bad-request", text="Invalid resource").toResponse(element))
            return True
        a.bound(full, element)
        return True


def _preparedResource(resource: str) -> str | None:
    """
    The resource as it would be bound (RFC 7622 resourceprep), or C{None}
    when it is invalid, so it compares with a pinned (prepared) resource.
    """
    try:
        return jid.JID(tuple=(None, "example.invalid", resource)).resource
    except (jid.InvalidFormat, UnicodeError, ValueError, IndexError, RuntimeError):
        return None


class LocalStream(utility.EventDispatcher):
    """
    What the per-stream wokkel handlers see as their C{xmlstream}: stanzas
    the server handles itself are dispatched here, so a handler never sees a
    stanza that was routed to someone else. Everything else is the real
    stream's.
    """

    def __init__(self, xs: xmlstream.XmlStream) -> None:
        utility.EventDispatcher.__init__(self)
        self._xs = xs

    def send(self, obj: Any) -> None:
        self._xs.send(obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xs, name)


class StreamHandlers(xmlstream.XMPPHandlerCollection):
    """
    The wokkel handlers of one bound stream (ping, disco, XEP-0257, ...).
    """

    def __init__(self, local: LocalStream) -> None:
        xmlstream.XMPPHandlerCollection.__init__(self)
        self.local = local

    def send(self, obj: Any) -> None:
        self.local.send(obj)

    def initialize(self) -> None:
        for handler in list(self):
            handler.makeConnection(self.local)
            handler.connectionInitialized()

    def lost(self, reason: failure.Failure) -> None:
        for handler in list(self):
            handler.connectionLost(reason)


class C2SAuthenticator(xmlstream.ListenAuthenticator):
    """
    Drives one client stream from connection to bound session.

    @ivar state: C{"tls"}, C{"sasl"}, C{"bind"} or C{"bound"}.
    @ivar domain: the served domain the client addressed.
    @ivar account: set by SASL.
    @ivar session: set by resource binding.
    """

    namespace = NS_CLIENT
    xmlstream: Any

    def __init__(self, server: C2SServer) -> None:
        self.server = server
        self.state = "tls"
        self.secure = False
        self.peerChain: tuple[x509.Certificate, ...] = ()
        self.domain = ""
        self.account: Account | None = None
        self.mechanism = ""
        self.session: Session | None = None
        self.connected = False
        self.handlers: StreamHandlers | None = None
        self.local: LocalStream | None = None
        self.tlsFeature = ReceivingTLSFeature(self)
        self.saslFeature = ReceivingSASLFeature(self)
        self.bindFeature = ReceivingBindFeature(self)
        self._timeout: IDelayedCall | None = None
        self._handshakeTimeout: IDelayedCall | None = None
        self._addressSlot: AddressSlot | None = None
        self._expiry: IDelayedCall | None = None
        #: From the session registry when SASL started; see L{bound}.
        self.revocationMark = 0
        self._keepalive: task.LoopingCall | None = None
        #: The listener kind, for metrics: C{"starttls"} or C{"direct_tls"}.
        self.listener = "starttls"
        #: The labels the bound session was counted under (metrics).
        self._sessionLabels: tuple[str, str] | None = None
        #: Fires when the connection is gone.
        self.closed: defer.Deferred[None] = defer.Deferred()

    # --- connection lifecycle ------------------------------------------------

    def associateWithStream(self, xs: Any) -> None:
        super().associateWithStream(xs)
        limits = self.server.config.limits
        xs.maxStanzaSize = limits.max_stanza_size
        xs.maxStanzaElements = limits.max_stanza_elements

    def connectionMade(self) -> None:
        xs = self.xmlstream
        host = _peerHost(xs)
        if host is not None:
            # Before any other work (for direct TLS, before the handshake):
            # one address may not hold every socket with idle connections.
            self._addressSlot = self.server.addressLimiter.acquire(host)
            if self._addressSlot is None:
                xs.transport.abortConnection()
                return
        xs.clock = self.server.clock
        setNoDelay = getattr(xs.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            # Features that wait for the store (EXTERNAL) leave after the
            # stream header in a second small write; with Nagle's algorithm
            # it would wait for the client's delayed ACK (tens of ms).
            setNoDelay(True)
        # Anything sent before the client's header (an error) must still
        # carry our namespace and a domain we serve.
        xs.namespace = NS_CLIENT
        xs.thisEntity = jid.internJID(self.server.config.domains[0])
        self.connected = True
        self.server.streams.add(self)
        xs.addObserver("/*", self._onElement)
        xs.addObserver(xmlstream.STREAM_END_EVENT, self._onStreamEnd)
        if ISSLTransport.providedBy(xs.transport):
            # Direct TLS (XEP-0368): the handshake precedes the stream header.
            self.secure = True
            self.state = "sasl"
            self.listener = "direct_tls"
        self.server.metrics.connectionOpened(self.listener)
        self.armHandshakeTimeout()
        self._timeout = self.server.clock.callLater(
            self.server.config.limits.auth_timeout, self._authTimedOut
        )

    def armHandshakeTimeout(self) -> None:
        """
        Give the peer C{limits.handshake_timeout} seconds to finish any TLS
        handshake and send its stream header (idle connections, a header
        sent a byte at a time, a stalled handshake).
        """
        self._cancelHandshakeTimeout()
        self._handshakeTimeout = self.server.clock.callLater(
            self.server.config.limits.handshake_timeout, self._handshakeTimedOut
        )

    def _cancelHandshakeTimeout(self) -> None:
        if self._handshakeTimeout is not None and self._handshakeTimeout.active():
            self._handshakeTimeout.cancel()
        self._handshakeTimeout = None

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimeout = None
        log.info(
            "Dropping the connection from {peer}: no TLS handshake and stream header within {timeout:g} s",
            peer=_peer(self.xmlstream),
            timeout=self.server.config.limits.handshake_timeout,
        )
        # Mid-handshake or mid-header nothing can be said to the peer.
        self.xmlstream.transport.abortConnection()

    def releaseAddressSlot(self) -> None:
        """
        Stop counting this connection against its address's limit of
        unauthenticated connections (idempotent).
        """
        slot, self._addressSlot = self._addressSlot, None
        if slot is not None:
            slot.release()

    def _authTimedOut(self) -> None:
        self._timeout = None
        if self.state != "bound":
            log.info("Closing stream from {peer}: not authenticated in time", peer=_peer(self.xmlstream))
            self.streamError("connection-timeout")

    @property
    def active(self) -> bool:
        """
        Connected and not closing: what the peer sends is still acted on.
        """
        return self.connected and not getattr(self.xmlstream, "closing", False)

    def streamClosing(self) -> None:
        """
        Our closing tag is out: the session ends now, not when the peer
        gets round to closing the connection (so nothing is routed to it).
        """
        self._release()

    def _release(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        self._cancelHandshakeTimeout()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        labels, self._sessionLabels = self._sessionLabels, None
        if labels is not None:
            self.server.metrics.sessionEnded(*labels)
        if self.session is not None:
            # Idempotent: unbind ignores a session it no longer holds.
            self.server.sessions.unbind(self.session)
            self.session.closed = True

    def _onStreamEnd(self, reason: object) -> None:
        self.server.metrics.connectionClosed(self.listener)
        self.connected = False
        self.server.streams.discard(self)
        self.releaseAddressSlot()
        self._release()
        if self.handlers is not None:
            self.handlers.lost(failure.Failure(Exception("connection lost")))
        self.closed.callback(None)

    def streamError(self, condition: str, text: str | None = None) -> None:
        """
        Send a stream error and close (RFC 6120 section 4.9).
        """
        if not self.active:
            return
        if condition not in ("system-shutdown", "conflict", "connection-timeout", "reset"):
            log.warn(
                "Stream error {condition} to {peer}: {text}",
                condition=condition,
                peer=_peer(self.xmlstream),
                text=text or "",
            )
        self.xmlstream.sendStreamError(error.StreamError(condition, text=text))

    # --- stream header ------------------------------------------------------

    def streamStarted(self, rootElement: domish.Element) -> None:
        self._cancelHandshakeTimeout()
        xs = self.xmlstream
        xs.namespace = NS_CLIENT
        xs.prefixes = {NS_STREAMS: "stream"}
        xs.sid = base64.b32encode(os.urandom(10)).decode("ascii").lower()
        domain = self._checkHeader(rootElement)
        if domain is None:
            return
        xs.thisEntity = jid.internJID(domain)
        xs.otherEntity = None
        sender = rootElement.getAttribute("from")
        if sender:
            # RFC 6120 section 4.7.2: answer to the 'from' the client gave.
            try:
                xs.otherEntity = parseJID(sender)
            except jid.InvalidFormat:
                pass
        xs.sendHeader()
        d = defer.ensureDeferred(self._sendFeatures())
        d.addErrback(self._featuresFailed)

    async def _sendFeatures(self) -> None:
        if self.state == "sasl":
            if self.secure and not self.peerChain:
                self.peerChain = tuple(peerCertificateChain(self.xmlstream.transport))
            await self.saslFeature.prepare()
        if not self.active:
            return
        features = domish.Element((NS_STREAMS, "features"))
        for feature in self._currentFeatures():
            features.addChild(feature.featureElement())
        self.xmlstream.send(features)

    def _featuresFailed(self, f: failure.Failure) -> None:
        # The store failed while deciding on mechanisms: an operator matter,
        # which the client sees as a temporary condition.
        if isinstance(f.value, STORE_FAILURES):
            self.server.storeFailureLog.emit(
                "Stream features fail: the store is not available ({error})", error=f.getErrorMessage()
            )
        else:
            log.failure("Could not prepare stream features", f)
        self.streamError("internal-server-error")

    def _checkHeader(self, root: domish.Element) -> str | None:
        served = self.server.config.domains
        if (root.uri, root.name) != (NS_STREAMS, "stream"):
            self._headerError("invalid-namespace", "the root element must be stream:stream")
            return None
        if root.defaultUri != NS_CLIENT:
            self._headerError("invalid-namespace", "the content namespace must be jabber:client")
            return None
        version = root.getAttribute("version", "0.0")
        try:
            major = int(version.split(".")[0])
        except ValueError:
            major = 0
        if major < 1:
            self._headerError("unsupported-version", "XMPP 1.0 is required")
            return None
        to = root.getAttribute("to")
        if to is None:
            # RFC 6120 section 4.7.2: without 'to', use a default domain: the
            # one of this stream so far, or the only one served.
            if self.domain:
                to = self.domain
            elif len(served) == 1:
                to = served[0]
            else:
                self._headerError("host-unknown", "the stream header needs a 'to'")
                return None
        try:
            domain = parseJID(to).host
        except jid.InvalidFormat:
            self._headerError("host-unknown", "not a domain")
            return None
        if domain not in served or "@" in to or "/" in to:
            self._headerError("host-unknown", f"{to} is not served here")
            return None
        if self.domain and domain != self.domain:
            self._headerError("host-unknown", "the domain changed across a stream restart")
            return None
        self.domain = domain
        return domain

    def _headerError(self, condition: str, text: str) -> None:
        # Our header must precede the error (RFC 6120 section 4.9.1.2), and
        # it must name a domain we serve, never one the peer made up.
        self.xmlstream.thisEntity = jid.internJID(self.domain or self.server.config.domains[0])
        self.streamError(condition, text)

    def _currentFeatures(self) -> list[Any]:
        if self.state == "tls":
            return [self.tlsFeature]
        if self.state == "sasl":
            return [self.saslFeature]
        if self.state == "bind":
            return [self.bindFeature]
        return []

    # --- negotiation steps --------------------------------------------------

    def tlsStarted(self) -> None:
        self.secure = True
        self.state = "sasl"

    def authenticated(self, account: Account, mechanism: str) -> None:
        self.account = account
        self.mechanism = mechanism
        self.state = "bind"
        if mechanism == "EXTERNAL" and self.peerChain:
            # RFC 6120 section 13.7.2.3: a stream authenticated by a
            # certificate lives no longer than the certificates that
            # vouched for it: the checker says which (the validated chain
            # in CA mode); else only the leaf, as the rest of the presented
            # chain is unverified and may hold anything.
            notAfter = account.certificateNotAfter
            if notAfter is None:
                notAfter = self.peerChain[0].not_valid_after_utc.timestamp()
            delay = max(0.0, notAfter - self.server.clock.seconds())
            self._expiry = self.server.clock.callLater(delay, self._certificateExpired)
        # Needed no more (the account holds the fingerprint): an idle
        # session keeps less memory.
        self.peerChain = ()

    def _certificateExpired(self) -> None:
        self._expiry = None
        where = self.session.jid.full() if self.session is not None else _peer(self.xmlstream)
        log.info("Closing {jid}: its certificate has expired", jid=where)
        # RFC 6120 section 4.9.3.16: reset is the condition for a
        # certificate that expired during the life of the stream.
        self.streamError("reset", "The certificate of this session has expired")

    def bound(self, fullJID: jid.JID, request: domish.Element) -> None:
        xs = self.xmlstream
        assert self.account is not None
        if self.domain not in self.server.config.domains:
            # A reload removed the domain after this stream's header (or its
            # login): no new session in it (RFC 6120 section 4.9.3.5).
            self.streamError("host-gone", f"{self.domain} is no longer served here")
            return
        info = {
            "mechanism": self.mechanism,
            "certificate": self.account.certificateFingerprint,
            "canManageCertificates": self.account.canManageCertificates,
            "certificateRegistered": self.account.certificateRegistered,
            # For the control channel's session list. The only transport
            # so far; BOSH and WebSocket will bring others.
            "transport": "tcp",
            "address": _address(xs),
            "boundAt": self.server.clock.seconds(),
        }
        fingerprint = self.account.certificateFingerprint
        if fingerprint is not None and self.server.sessions.revokedSince(fingerprint, self.revocationMark):
            # Revoked after the store said yes, before this bind: the
            # revocation's own close could not see this stream.
            log.info("Closing {jid}: its certificate was revoked during the login", jid=fullJID.full())
            self.streamError("reset", "The certificate of this session was revoked")
            return
        barred = self.server.sessions.barredSince(fullJID, self.revocationMark, info)
        if barred is not None:
            # Locked (or, for a password login, its password changed) after
            # the store said yes, before this bind.
            log.info(
                "Closing {jid}: {why} during the login",
                jid=fullJID.full(), why=barred.text or barred.condition,
            )
            self.streamError(barred.condition, barred.text)
            return
        self.session = self.server.sessions.bind(fullJID, xs.send, self._closeSession)
        self.session.info.update(info)
        self._sessionLabels = ("tcp", self.mechanism)
        self.server.metrics.sessionStarted(*self._sessionLabels)
        self.state = "bound"
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        response = xmlstream.toResponse(request, "result")
        response.addElement((NS_BIND, "bind")).addElement("jid", content=fullJID.full())
        xs.send(response)
        self.local = LocalStream(xs)
        self.handlers = StreamHandlers(self.local)
        for makeHandlers in self.server.handlerFactories:
            for handler in makeHandlers(self):
                handler.setHandlerParent(self.handlers)
        self.handlers.initialize()
        interval = self.server.config.keepalive_interval
        if interval:
            self._keepalive = task.LoopingCall(self._sendKeepalive)
            self._keepalive.clock = self.server.clock
            self._keepalive.start(interval, now=False)
        xs.dispatch(xs, xmlstream.STREAM_AUTHD_EVENT)

    def _sendKeepalive(self) -> None:
        # RFC 6120 section 4.6.1: whitespace between stanzas keeps NATs open.
        if self.active:
            self.xmlstream.send(" ")

    def _closeSession(self, streamError: error.StreamError) -> None:
        self.streamError(streamError.condition, streamError.text)

    # --- element dispatch ---------------------------------------------------

    def _onElement(self, element: domish.Element) -> None:
        if element.uri == NS_STREAMS and element.name == "error":
            return  # XmlStream.onStreamError closes the connection.
        if self.state == "bound":
            self._onStanza(element)
            return
        if self.state == "tls":
            if self.tlsFeature.onElement(element):
                return
            if element.uri == NS_SASL and element.name == "auth":
                # RFC 6120 section 6.4.1 / 5.3.1: no SASL before TLS.
                self.saslFeature._fail(SASLFailure("encryption-required"))
                return
        elif self.state == "sasl":
            if self.saslFeature.onElement(element):
                return
        elif self.state == "bind":
            if self.bindFeature.onElement(element):
                return
        self.streamError("not-authorized", "Authenticate and bind a resource first")

    def _onStanza(self, stanza: domish.Element) -> None:
        assert self.session is not None
        if stanza.uri != NS_CLIENT or stanza.name not in ("message", "presence", "iq"):
            self.streamError("unsupported-stanza-type")
            return
        full = self.session.jid
        sender = stanza.getAttribute("from")
        if sender is not None and sender not in (full.full(), full.userhost()):
            # RFC 6120 section 8.1.2.1: the server stamps 'from'; compared
            # prepared, so Alice@Example.com is the session's own JID.
            try:
                ownJID = parseJID(sender) in (full, full.userhostJID())
            except jid.InvalidFormat:
                ownJID = False
            if not ownJID:
                self.streamError("invalid-from")
                return
        stanza["from"] = full.full()
        if stanza.name == "iq" and not self._checkIQ(stanza):
            return
        to = stanza.getAttribute("to")
        target: jid.JID | None = None
        if to is not None:
            try:
                target = parseJID(to)
            except jid.InvalidFormat:
                self._reply(stanza, "jid-malformed")
                return
            # Routing and the recipient see the prepared address.
            stanza["to"] = target.full()
        if stanza.name == "iq" and ReceivingBindFeature.isBindRequest(stanza):
            self._reply(stanza, "not-allowed", "A resource is already bound")
            return
        if target is None:
            self._handleLocalFromNoTo(stanza)
        elif target.user is None and target.host in self.server.sessions.domains and target.resource is None:
            self._handleLocal(stanza)
        elif stanza.name == "iq" and target.resource is None and target.userhost() == full.userhost():
            self._handleLocal(stanza)
        else:
            self.server.sessions.route(stanza, self.session)

    def _checkIQ(self, iq: domish.Element) -> bool:
        kind = iq.getAttribute("type")
        if kind not in ("get", "set", "result", "error") or not iq.getAttribute("id"):
            # RFC 6120 section 8.2.3: id and type are required.
            self._reply(iq, "bad-request", "An iq needs an 'id' and a valid 'type'")
            return False
        if kind in ("get", "set") and len(list(iq.elements())) != 1:
            self._reply(iq, "bad-request", "An iq get or set has exactly one child")
            return False
        return True

    def _handleLocalFromNoTo(self, stanza: domish.Element) -> None:
        assert self.session is not None
        if stanza.name == "presence":
            self.server.sessions.broadcastPresence(self.session, stanza)
        elif stanza.name == "message":
            # RFC 6120 section 10.3.1: as if sent to the sender's bare JID.
            stanza["to"] = self.session.jid.userhost()
            self.server.sessions.route(stanza, self.session)
        else:
            self._handleLocal(stanza)

    def _handleLocal(self, stanza: domish.Element) -> None:
        assert self.local is not None
        stanza.handled = False  # type: ignore[attr-defined]
        self.local.dispatch(stanza)
        if stanza.handled:
            return
        kind = stanza.getAttribute("type")
        if stanza.name == "iq" and kind in ("get", "set"):
            self._reply(stanza, "service-unavailable")
        elif stanza.name == "message" and kind not in ("error", "groupchat", "headline"):
            self._reply(stanza, "service-unavailable")

    def _reply(self, stanza: domish.Element, condition: str, text: str | None = None) -> None:
        if stanza.getAttribute("type") == "error":
            return
        response = error.StanzaError(condition, text=text).toResponse(stanza)
        response["to"] = stanza.getAttribute("from") or (self.session.jid.full() if self.session else "")
        self.xmlstream.send(response)


__all__ = [
    "C2SAuthenticator",
    "C2SServer",
    "C2SStream",
    "LocalStream",
    "ReceivingBindFeature",
    "ReceivingSASLFeature",
    "ReceivingTLSFeature",
    "StreamHandlers",
]
