# -*- test-case-name: tests.test_c2s -*-
"""
The negotiable features of a client stream, as the receiving entity:
STARTTLS (only where the transport can start TLS), SASL and resource
binding. Each talks to the peer through the stream's channel
(L{xmppcert.c2s.channel.IStreamChannel}), never a socket.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.protocols.jabber.sasl import SASLIncorrectEncodingError, fromBase64
from twisted.words.xish import domish

from xmppcert import _log
from xmppcert.jids import makeJID
from xmppcert.sasl import (
    NS_SASL,
    Challenge,
    MechanismContext,
    SASLFailure,
    SASLResult,
    Success,
    describeCertificate,
)
from xmppcert.sasl.external import certificateStanding
from xmppcert.store.interfaces import STORE_FAILURES

if TYPE_CHECKING:
    from cryptography import x509
    from twisted.cred.portal import Portal
    from twisted.internet.interfaces import IReactorTime
    from twisted.words.protocols.jabber.jid import JID

    from xmppcert._log import RateLimitedLog
    from xmppcert.c2s.channel import IStreamChannel
    from xmppcert.config import Config
    from xmppcert.cred import Account
    from xmppcert.metrics import IMetrics
    from xmppcert.sasl import MechanismRegistry
    from xmppcert.store.interfaces import IAccountStore
    from xmppcert.throttle import LoginThrottle

log = Logger(observer=_log.observer, namespace="xmppcert.c2s")

NS_CLIENT = "jabber:client"
NS_TLS = xmlstream.NS_XMPP_TLS
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


class FeatureSessions(Protocol):
    """
    What the features use of the session registry.
    """

    def revocationMark(self) -> int: ...

    def newResource(self, bareJID: JID) -> str: ...


class FeatureServices(Protocol):
    """
    What the features see of the shared server: the services of a login,
    not its listeners, streams or handler factories.
    """

    @property
    def config(self) -> Config: ...

    @property
    def portal(self) -> Portal: ...

    @property
    def store(self) -> IAccountStore: ...

    @property
    def registry(self) -> MechanismRegistry: ...

    @property
    def clock(self) -> IReactorTime: ...

    @property
    def throttle(self) -> LoginThrottle: ...

    @property
    def metrics(self) -> IMetrics: ...

    @property
    def fakeCredentialSecret(self) -> bytes | None: ...

    @property
    def storeFailureLog(self) -> RateLimitedLog: ...

    @property
    def sessions(self) -> FeatureSessions: ...


class FeatureHost(Protocol):
    """
    What a feature sees of the stream being negotiated
    (L{xmppcert.c2s.negotiation.C2SAuthenticator}): its channel, what is
    known so far, and the steps it reports.
    """

    revocationMark: int

    @property
    def server(self) -> FeatureServices: ...

    @property
    def channel(self) -> IStreamChannel: ...

    @property
    def domain(self) -> str: ...

    @property
    def secure(self) -> bool: ...

    @property
    def peerChain(self) -> tuple[x509.Certificate, ...]: ...

    @property
    def account(self) -> Account | None: ...

    @property
    def active(self) -> bool: ...

    def streamError(self, condition: str, text: str | None = None) -> None: ...

    def releaseAddressSlot(self) -> None: ...

    def tlsStarted(self) -> None: ...

    def armHandshakeTimeout(self) -> None: ...

    def authenticated(self, account: Account, mechanism: str) -> None: ...

    def bound(self, fullJID: JID, request: domish.Element) -> None: ...


class ReceivingTLSFeature:
    """
    STARTTLS as the receiving entity (RFC 6120 section 5.4): offered, and
    required, until TLS is up.
    """

    def __init__(self, authenticator: FeatureHost) -> None:
        self.authenticator = authenticator

    def featureElement(self) -> domish.Element:
        starttls = domish.Element((NS_TLS, "starttls"))
        starttls.addElement("required")
        return starttls

    def onElement(self, element: domish.Element) -> bool:
        if (element.uri, element.name) != (NS_TLS, "starttls"):
            return False
        channel = self.authenticator.channel
        if not channel.canStartTLS:
            return False
        channel.send(domish.Element((NS_TLS, "proceed")))
        # The <proceed/> goes out in the clear, then TLS starts.
        channel.startTLS()
        channel.reset()
        self.authenticator.tlsStarted()
        # The handshake and the restarted header must come in time again.
        self.authenticator.armHandshakeTimeout()
        return True


class ReceivingSASLFeature:
    """
    SASL as the receiving entity (RFC 6120 section 6.4).
    """

    def __init__(self, authenticator: FeatureHost) -> None:
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
            peerAddress=a.channel.peerLabel(),
            peerChain=a.peerChain,
            scramIterations=a.server.config.sasl.scram_iterations,
            fakeCredentialSecret=a.server.fakeCredentialSecret,
            peerHost=a.channel.peerHost() or "",
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
                peer=self.authenticator.channel.peerLabel(),
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
                self.authenticator.channel.send(challenge)
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
            peer=self.authenticator.channel.peerLabel(),
        )
        self._countLogin("success", "")
        channel = self.authenticator.channel
        channel.send(success)
        channel.reset()
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
            peer=a.channel.peerLabel(),
            count=self.failures,
            limit=a.server.config.sasl.max_failures,
        )
        f = domish.Element((NS_SASL, "failure"))
        f.addElement(reason.condition)
        if reason.text:
            f.addElement("text", content=reason.text)
        a.channel.send(f)
        if reason.closeStream:
            a.channel.sendFooter()
            a.channel.loseConnection()
        elif self.failures >= a.server.config.sasl.max_failures:
            # RFC 6120 section 6.4.5: past the retry limit, policy-violation.
            a.streamError("policy-violation", "Too many failed authentication attempts")


class ReceivingBindFeature:
    """
    Resource binding as the receiving entity (RFC 6120 section 7).
    """

    def __init__(self, authenticator: FeatureHost) -> None:
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
                a.channel.send(
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
            a.channel.send(error.StanzaError("bad-request", text="Invalid resource").toResponse(element))
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


__all__ = [
    "FeatureHost",
    "FeatureServices",
    "FeatureSessions",
    "ReceivingBindFeature", "ReceivingSASLFeature", "ReceivingTLSFeature"]
