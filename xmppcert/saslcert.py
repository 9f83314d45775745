# -*- test-case-name: tests.test_saslcert -*-
"""
XEP-0257 (Client Certificate Management for SASL EXTERNAL, v0.3,
C{urn:xmpp:saslcert:1}): users list, add, disable and revoke the
certificates their devices log in with.

The shape is wokkel's C{PubSubService} over C{IPubSubResource}:
L{SASLCertHandler} parses requests into small value objects
(L{AppendRequest}, L{NameRequest}) and renders L{CertificateItem}s; a backend
providing L{ICertificateManager} (L{CertificateManager}) decides, and raises
C{StanzaError}s with the conditions documented in docs/xep-0257.md.

The handler is attached only to bound streams, which are always protected
by TLS and SASL (XEP-0257 section 5.1).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from zope.interface import Attribute, Interface, implementer

from xmppcert import _log, x509
from xmppcert.cred import accountNamingProblem
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.metrics import IMetrics, NullMetrics, countedRequest
from xmppcert.store.interfaces import STORE_FAILURES as _STORE_FAILURES
from xmppcert.store.interfaces import (
    AccountExists,
    CertificateExists,
    CertificateLimitReached,
    CertificateRevoked,
    NoSuchAccount,
    NoSuchCertificate,
    StoredCertificate,
    checkCertificateName,
)

log = Logger(observer=_log.observer)

#: What L{ICertificateStore.setCertificateStateByFingerprint} raises when the
#: certificate is no longer one whose state a request may change: removed,
#: or revoked (final, XEP-0257 §2.5). Both are races with another change,
#: not server failures.
_GONE = (NoSuchCertificate, CertificateRevoked)

#: The store's answers about accounts and certificates: each is mapped to
#: its stanza error where it can occur, never taken for a broken store.
_ANSWERS = (AccountExists, NoSuchAccount, CertificateExists, NoSuchCertificate, CertificateLimitReached, CertificateRevoked)

#: What a store raises when it cannot do its work (a lock held too long, a
#: full disk, a read-only file, a closed store): not the peer's doing.
STORE_FAILURES = _STORE_FAILURES

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The certificate store is not available; try again later"

#: Seconds between two log lines about store failures (or audit failures).
STORE_FAILURE_LOG_INTERVAL = 60.0

_T = TypeVar("_T")

NS_SASLCERT = "urn:xmpp:saslcert:1"

ITEMS = f"/iq[@type='get']/items[@xmlns='{NS_SASLCERT}']"
APPEND = f"/iq[@type='set']/append[@xmlns='{NS_SASLCERT}']"
DISABLE = f"/iq[@type='set']/disable[@xmlns='{NS_SASLCERT}']"
REVOKE = f"/iq[@type='set']/revoke[@xmlns='{NS_SASLCERT}']"

#: Base64 text of the largest certificate accepted, with room for the
#: presentation whitespace the XEP's examples use.
MAX_X509CERT_TEXT = (x509.MAX_CERTIFICATE_SIZE * 4 // 3 + 4) * 2


def _badRequest(text: str) -> error.StanzaError:
    return error.StanzaError("bad-request", type="modify", text=text)


def _childText(element: domish.Element, name: str) -> str | None:
    found = [c for c in element.elements(NS_SASLCERT, name)]
    if len(found) > 1:
        raise _badRequest(f"more than one <{name}/>")
    return str(found[0]) if found else None


def _parseName(element: domish.Element) -> str:
    name = _childText(element, "name")
    if name is None or not name.strip():
        raise _badRequest("a non-empty <name/> is required")
    try:
        return checkCertificateName(name)
    except ValueError as e:
        raise _badRequest(str(e)) from None


def _parseX509Cert(element: domish.Element) -> bytes:
    text = _childText(element, "x509cert")
    if text is None or not text.strip():
        raise _badRequest("a non-empty <x509cert/> is required")
    if len(text) > MAX_X509CERT_TEXT:
        raise _badRequest("the certificate is too large")
    # The XEP's examples wrap the base64 in whitespace "for presentation".
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _badRequest("<x509cert/> is not base64") from None


@dataclass(frozen=True)
class AppendRequest:
    """
    C{<append><name/><x509cert/><no-cert-management/>?</append>} (XEP-0257 §2.1).

    @ivar der: the certificate, DER; not yet parsed as X.509.
    @ivar canManage: C{False} when C{<no-cert-management/>} was given.
    """

    name: str
    der: bytes
    canManage: bool = True

    @classmethod
    def fromElement(cls, element: domish.Element) -> AppendRequest:
        """
        @param element: the C{<append/>} element.
        @raise error.StanzaError: C{bad-request} for anything malformed.
        """
        name = _parseName(element)
        der = _parseX509Cert(element)
        canManage = not any(True for _ in element.elements(NS_SASLCERT, "no-cert-management"))
        return cls(name, der, canManage)

    def toElement(self) -> domish.Element:
        append = domish.Element((NS_SASLCERT, "append"))
        append.addElement("name", content=self.name)
        if not self.canManage:
            append.addElement("no-cert-management")
        append.addElement("x509cert", content=base64.b64encode(self.der).decode("ascii"))
        return append


@dataclass(frozen=True)
class NameRequest:
    """
    C{<disable><name/></disable>} or C{<revoke><name/></revoke>}
    (XEP-0257 §2.3, §2.4).
    """

    verb: str
    name: str

    @classmethod
    def fromElement(cls, element: domish.Element) -> NameRequest:
        return cls(element.name, _parseName(element))

    def toElement(self) -> domish.Element:
        request = domish.Element((NS_SASLCERT, self.verb))
        request.addElement("name", content=self.name)
        return request


@dataclass(frozen=True)
class CertificateItem:
    """
    One C{<item/>} of an C{<items/>} result (XEP-0257 §2.2).

    @ivar resources: resources currently logged in with this certificate by
        SASL EXTERNAL; rendered as C{<users/>} when there are any.
    """

    name: str
    der: bytes
    resources: tuple[str, ...] = ()

    def toElement(self) -> domish.Element:
        item = domish.Element((NS_SASLCERT, "item"))
        item.addElement("name", content=self.name)
        item.addElement("x509cert", content=base64.b64encode(self.der).decode("ascii"))
        if self.resources:
            users = item.addElement("users")
            for resource in self.resources:
                users.addElement("resource", content=resource)
        return item

    @classmethod
    def fromElement(cls, element: domish.Element) -> CertificateItem:
        name = _parseName(element)
        der = _parseX509Cert(element)
        resources: list[str] = []
        for users in element.elements(NS_SASLCERT, "users"):
            resources.extend(str(r) for r in users.elements(NS_SASLCERT, "resource"))
        return cls(name, der, tuple(resources))


def itemsElement(items: list[CertificateItem]) -> domish.Element:
    result = domish.Element((NS_SASLCERT, "items"))
    for item in items:
        result.addChild(item.toElement())
    return result


@dataclass(frozen=True)
class Requester:
    """
    Who sends a request: the account, and how the session logged in.

    @ivar canManage: C{False} when the session logged in with a certificate
        registered with C{<no-cert-management/>}.
    @ivar session: the full JID of the session, the actor in the audit
        trail; C{account} is named instead when C{None}.
    """

    account: jid.JID
    canManage: bool = True
    session: jid.JID | None = None

    @property
    def actor(self) -> str:
        """
        Who made a change, for the audit trail: the session's full JID.
        """
        return (self.session or self.account).full()


class ICertificateManager(Interface):
    """
    The backend of L{SASLCertHandler}. Every method returns a Deferred and
    fails with C{error.StanzaError} to refuse.
    """

    maxPerAccount = Attribute("How many enabled certificates an account may have (0: no limit).")

    def items(requester):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the L{CertificateItem}s of the
            requester's account that can log in.
        """

    def append(requester, request):  # type: ignore[no-untyped-def]
        """
        Register the certificate of an L{AppendRequest}.
        """

    def disable(requester, name):  # type: ignore[no-untyped-def]
        """
        Stop a certificate from logging in; its sessions stay.
        """

    def revoke(requester, name):  # type: ignore[no-untyped-def]
        """
        Stop a certificate from logging in and close its sessions.
        """


@implementer(ICertificateManager)
class CertificateManager:
    """
    The certificate store and the live sessions behind XEP-0257.
    """

    def __init__(
        self,
        store: Any,
        sessions: Any,
        clock: IReactorTime,
        requireXmppAddr: bool = True,
        maxPerAccount: int = 0,
        metrics: IMetrics | None = None,
    ) -> None:
        """
        @param store: provides L{xmppcert.store.interfaces.ICertificateStore}.
        @param sessions: the L{xmppcert.sessions.SessionManager}.
        @param metrics: told how many sessions a revocation closed.
        """
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()
        self.store = store
        self.sessions = sessions
        self.clock = clock
        self.requireXmppAddr = requireXmppAddr
        self.maxPerAccount = maxPerAccount
        # A broken store is an operator's matter (error), but each request
        # meeting it would be a line: at most one a minute.
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)
        self._auditFailureLog = _log.RateLimitedLog(log, LogLevel.warn, clock, STORE_FAILURE_LOG_INTERVAL)

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    @staticmethod
    def _mayManage(requester: Requester) -> None:
        if not requester.canManage:
            raise error.StanzaError(
                "forbidden", type="auth", text="This session's certificate may not manage certificates"
            )

    async def _guarded(self, verb: str, requester: Requester, work: Coroutine[Any, Any, _T]) -> _T:
        """
        Run a request; a store failure (L{STORE_FAILURES}, other than the
        store's answers) becomes C{internal-server-error} of type C{wait}
        with L{STORE_UNAVAILABLE}, and one line at error level (at most one
        every L{STORE_FAILURE_LOG_INTERVAL} seconds: a peer can repeat its
        request at will) instead of a traceback.
        """
        try:
            return await work
        except _ANSWERS:
            raise
        except STORE_FAILURES as e:
            self._storeFailureLog.emit(
                "The certificate store failed; refused XEP-0257 {verb} of {account}: {error}",
                verb=verb,
                account=requester.account.userhost(),
                error=f"{type(e).__name__}: {e}",
            )
            raise error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE) from None

    def _audit(self, requester: Requester, action: str, name: str, detail: str) -> None:
        """
        Record a change in the audit trail (if the store keeps one), without
        waiting for it: the change is made, and neither its answer nor the
        end of a revoked certificate's sessions may wait for a write that
        another process holds up. A failure is logged at warn (at most once
        every L{STORE_FAILURE_LOG_INTERVAL} seconds).
        """
        defer.ensureDeferred(self._recordAudit(requester, action, name, detail))

    async def _recordAudit(self, requester: Requester, action: str, name: str, detail: str) -> None:
        recordAudit = getattr(self.store, "recordAudit", None)
        if recordAudit is None:
            return
        target = f"{requester.account.userhost()}/{name.strip()}"
        try:
            await recordAudit(requester.actor, action, target, detail)
        except Exception as e:
            self._auditFailureLog.emit(
                "Could not record {action} of {target} by {actor} in the audit trail: {error}",
                action=action,
                target=target,
                actor=requester.actor,
                error=f"{type(e).__name__}: {e}",
            )

    def items(self, requester: Requester) -> defer.Deferred[list[CertificateItem]]:
        return defer.ensureDeferred(self._guarded("items", requester, self._items(requester)))

    async def _items(self, requester: Requester) -> list[CertificateItem]:
        stored = await self.store.listCertificates(requester.account.userhost(), states=["enabled"])
        return [
            CertificateItem(
                c.name, c.der, tuple(self.sessions.resourcesWithCertificate(requester.account, c.fingerprint))
            )
            for c in stored
        ]

    def append(self, requester: Requester, request: AppendRequest) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._guarded("append", requester, self._append(requester, request)))

    def _checkCertificate(self, requester: Requester, request: AppendRequest) -> tuple[str, float]:
        try:
            certificate = x509.loadCertificate(request.der)
        except x509.CertificateError as e:
            raise _badRequest(f"not an X.509 certificate: {e}") from None
        facts = x509.certificateFacts(certificate)
        state = x509.validity(certificate, self._now())
        if state is not x509.Validity.VALID:
            raise error.StanzaError("not-acceptable", type="modify", text=f"The certificate is {state.value}")
        if facts.clientProblem is not None:
            raise error.StanzaError(
                "not-acceptable", type="modify",
                text=f"The certificate is not a client certificate: {facts.clientProblem}",
            )
        if facts.xmppAddrError is not None:
            raise error.StanzaError("not-acceptable", type="modify", text=facts.xmppAddrError)
        account = requester.account.userhost()
        problem = accountNamingProblem(facts.xmppAddrs, account, self.requireXmppAddr)
        if problem is not None:
            # Certificates are public: nobody may claim one naming another
            # user (their key would then log in to this account).
            raise error.StanzaError(
                "not-acceptable", type="modify", text=f"The certificate cannot be registered here: {problem}"
            )
        canonical = certificate.public_bytes(serialization.Encoding.DER)
        if canonical != request.der:
            raise _badRequest("trailing or non-canonical data around the certificate")
        return facts.fingerprint, facts.notAfter.timestamp()

    @staticmethod
    def _nameTaken(name: str) -> error.StanzaError:
        # XEP-0257 §2.1: a name already used MUST be an error.
        return error.StanzaError("conflict", type="cancel", text=f"A certificate named {name!r} exists")

    def _limitReached(self) -> error.StanzaError:
        # resource-constraint rather than RFC 6120's policy-violation:
        # clients with the RFC 3920 condition list (slixmpp among them)
        # cannot parse the latter and never see the answer.
        return error.StanzaError(
            "resource-constraint", type="wait",
            text=f"An account may have at most {self.maxPerAccount} enabled certificates;"
            " disable or revoke one first",
        )

    async def _append(self, requester: Requester, request: AppendRequest) -> None:
        self._mayManage(requester)
        fingerprint, notAfter = self._checkCertificate(requester, request)
        account = requester.account.userhost()
        try:
            # Appending a certificate the user disabled earlier brings it
            # back (XEP-0257 §2.3): the old record is history, not a
            # conflict. The store decides that in the add's own transaction,
            # so a revocation that lands meanwhile (command line, another
            # node or stream) is never undone, and a refused add keeps the
            # disabled record.
            await self.store.addCertificate(
                account, request.name, request.der, fingerprint, notAfter,
                canManage=request.canManage, maxPerAccount=self.maxPerAccount,
                replaceDisabled=True,
            )
        except CertificateExists as e:
            if await self._appendedBefore(account, request, fingerprint):
                # A retry of an append that was stored but whose answer
                # was lost (the server stopped in between): it succeeded.
                log.info(
                    "{account} appended certificate {name!r} ({fingerprint}) again; it is registered already",
                    account=account, name=request.name, fingerprint=fingerprint,
                )
                self._audit(requester, "cert.append", request.name, f"{fingerprint} (repeated)")
                return
            if e.field == "name":
                raise self._nameTaken(request.name) from None
            raise error.StanzaError(
                "conflict", type="cancel", text="This certificate is already registered"
            ) from None
        except CertificateLimitReached:
            raise self._limitReached() from None
        except NoSuchAccount:
            raise error.StanzaError("forbidden", type="auth") from None
        log.info(
            "{account} added certificate {name!r} ({fingerprint})",
            account=account, name=request.name, fingerprint=fingerprint,
        )
        self._audit(requester, "cert.append", request.name, fingerprint)

    async def _appendedBefore(self, account: str, request: AppendRequest, fingerprint: str) -> bool:
        """
        Whether this very append was stored already: the certificate is
        enabled in the account under the requested name, with the requested
        C{<no-cert-management/>}. Repeating an append is then harmless and
        answered with success (an append is safe to retry).
        """
        stored = await self.store.certificateByFingerprint(fingerprint)
        return (
            stored is not None
            and stored.account == account
            and stored.name == request.name.strip()
            and stored.state == "enabled"
            and stored.canManage == request.canManage
        )

    async def _named(self, requester: Requester, name: str, states: tuple[str, ...]) -> StoredCertificate:
        """
        The certificate of the requester's account that C{name} refers to
        among those in C{states}: the enabled one first, else the most
        recently changed.
        """
        name = name.strip()
        candidates = [
            c for c in await self.store.listCertificates(requester.account.userhost(), states=list(states))
            if c.name == name
        ]
        if not candidates:
            # Prosody answers success here; the client must learn the name is wrong.
            raise error.StanzaError(
                "item-not-found", type="cancel", text=f"No certificate named {name!r}"
            )
        return max(candidates, key=lambda c: (c.state == "enabled", c.changedAt))

    def disable(self, requester: Requester, name: str) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._guarded("disable", requester, self._setState(requester, name, "disabled")))

    def revoke(self, requester: Requester, name: str) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._guarded("revoke", requester, self._setState(requester, name, "revoked")))

    async def _setState(self, requester: Requester, name: str, state: str) -> None:
        self._mayManage(requester)
        # A disabled certificate can still be revoked: disabling leaves its
        # sessions up (a thief's among them), revoking ends them.
        reachable = ("enabled",) if state == "disabled" else ("enabled", "disabled")
        stored = await self._named(requester, name, reachable)
        try:
            await self.store.setCertificateStateByFingerprint(stored.fingerprint, state)
        except _GONE:
            # Removed or revoked since _named looked (another stream, node
            # or the command line): from here, no enabled certificate has
            # that name any more, just as if the lookup had found none.
            raise error.StanzaError(
                "item-not-found", type="cancel", text=f"No certificate named {name!r}"
            ) from None
        log.info(
            "{account} {verb} certificate {name!r} ({fingerprint})",
            account=requester.account.userhost(), verb=state, name=name, fingerprint=stored.fingerprint,
        )
        self._audit(
            requester, "cert.disable" if state == "disabled" else "cert.revoke", stored.name, stored.fingerprint
        )
        if state == "revoked":
            # XEP-0257 §2.4: close the streams that logged in with it, once
            # the answer has gone out (the requester may be one of them).
            self.clock.callLater(0, self._closeRevoked, stored.fingerprint)

    def _closeRevoked(self, fingerprint: str) -> None:
        self.metrics.sessionsClosedByRevocation(self.sessions.closeSessionsWithCertificate(fingerprint))


@implementer(IDisco)
class SASLCertHandler(OrderedIQHandler):
    """
    The XEP-0257 protocol on one bound client stream.
    """

    iqHandlers = {ITEMS: "_onItems", APPEND: "_onAppend", DISABLE: "_onDisable", REVOKE: "_onRevoke"}

    def __init__(
        self, manager: ICertificateManager, requester: Requester, metrics: IMetrics | None = None
    ) -> None:
        """
        @param metrics: told about each request answered.
        """
        OrderedIQHandler.__init__(self)
        self.manager = manager
        self.requester = requester
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()

    def _payload(self, iq: domish.Element, name: str) -> domish.Element:
        return next(c for c in iq.elements(NS_SASLCERT, name))

    @countedRequest("items")
    def _onItems(self, iq: domish.Element) -> defer.Deferred[domish.Element]:
        def items() -> defer.Deferred[domish.Element]:
            return self.manager.items(self.requester).addCallback(itemsElement)

        return defer.maybeDeferred(items)

    @countedRequest("append")
    def _onAppend(self, iq: domish.Element) -> defer.Deferred[None]:
        request = AppendRequest.fromElement(self._payload(iq, "append"))
        return defer.maybeDeferred(self.manager.append, self.requester, request)

    @countedRequest("disable")
    def _onDisable(self, iq: domish.Element) -> defer.Deferred[None]:
        request = NameRequest.fromElement(self._payload(iq, "disable"))
        return defer.maybeDeferred(self.manager.disable, self.requester, request.name)

    @countedRequest("revoke")
    def _onRevoke(self, iq: domish.Element) -> defer.Deferred[None]:
        request = NameRequest.fromElement(self._payload(iq, "revoke"))
        return defer.maybeDeferred(self.manager.revoke, self.requester, request.name)

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0257 §4: advertise C{urn:xmpp:saslcert:1}, on the server and on
        the account.
        """
        if nodeIdentifier:
            return []
        return [disco.DiscoFeature(NS_SASLCERT)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


__all__ = [
    "APPEND",
    "DISABLE",
    "ITEMS",
    "NS_SASLCERT",
    "REVOKE",
    "AppendRequest",
    "CertificateItem",
    "CertificateManager",
    "ICertificateManager",
    "NameRequest",
    "Requester",
    "SASLCertHandler",
    "itemsElement",
]
