# -*- test-case-name: tests.test_saslcert -*-
"""
XEP-0257 (Client Certificate Management for SASL EXTERNAL, v0.3,
C{urn:xmpp:saslcert:1}): users list, add, disable and revoke the
certificates their devices log in with.

The shape is wokkel's C{PubSubService} over C{IPubSubResource}:
L{SASLCertHandler} parses requests into small value objects
(L{AppendRequest}, L{NameRequest}) and renders L{CertificateItem}s; a backend
providing L{ISASLCertBackend} (L{SASLCertBackend}) has the
L{xmppcert.certificates.CertificateManager} decide, with the requester
acting on its own account, and says its refusals as the stanza errors
documented in docs/xep-0257.md (L{stanzaErrorFor}).

The handler is attached only to bound streams, which are always protected
by TLS and SASL (XEP-0257 section 5.1).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from zope.interface import Interface, implementer

from xmppcert import _log, certificates, x509
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.metrics import IMetrics, NullMetrics, countedRequest
from xmppcert.store.interfaces import checkCertificateName

log = Logger(observer=_log.observer)

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The certificate store is not available; try again later"

#: Seconds between two log lines about store failures.
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
    def actor(self) -> certificates.Actor:
        """
        The account acting for itself, as the certificate manager knows it.
        """
        return certificates.Actor.ofAccount(self.account, self.session, self.canManage)


class ISASLCertBackend(Interface):
    """
    The backend of L{SASLCertHandler}. Every method returns a Deferred and
    fails with C{error.StanzaError} to refuse.
    """

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


def _notAcceptable(e: certificates.CertificateNotAcceptable) -> error.StanzaError:
    problem = e.problem
    if problem is certificates.Problem.UNREADABLE:
        return _badRequest(f"not an X.509 certificate: {e.reason}")
    if problem is certificates.Problem.NOT_CANONICAL:
        return _badRequest(e.reason)
    if problem in (certificates.Problem.EXPIRED, certificates.Problem.NOT_YET_VALID):
        text = f"The certificate is {problem.value}"
    elif problem is certificates.Problem.NOT_CLIENT:
        text = f"The certificate is not a client certificate: {e.reason}"
    elif problem is certificates.Problem.BAD_XMPPADDR:
        text = e.reason
    else:
        # Certificates are public: nobody may claim one naming another user
        # (their key would then log in to this account).
        text = f"The certificate cannot be registered here: {e.reason}"
    return error.StanzaError("not-acceptable", type="modify", text=text)


def stanzaErrorFor(e: certificates.CertificateManagementError) -> error.StanzaError:
    """
    The stanza error (condition, type and text) that XEP-0257 answers a
    refusal of the certificate manager with; see docs/xep-0257.md.
    """
    if isinstance(e, certificates.NotAllowed):
        return error.StanzaError(
            "forbidden", type="auth", text="This session's certificate may not manage certificates"
        )
    if isinstance(e, certificates.NoSuchAccount):
        return error.StanzaError("forbidden", type="auth")
    if isinstance(e, certificates.CertificateNotAcceptable):
        return _notAcceptable(e)
    if isinstance(e, certificates.InvalidCertificateName):
        return _badRequest(str(e))
    if isinstance(e, certificates.CertificateNameTaken):
        # XEP-0257 section 2.1: a name already used MUST be an error.
        return error.StanzaError("conflict", type="cancel", text=f"A certificate named {e.name!r} exists")
    if isinstance(e, certificates.CertificateAlreadyRegistered):
        # Whose, or whether revoked, is not the requester's business.
        return error.StanzaError("conflict", type="cancel", text="This certificate is already registered")
    if isinstance(e, certificates.CertificateLimitReached):
        # resource-constraint rather than RFC 6120's policy-violation:
        # clients with the RFC 3920 condition list (slixmpp among them)
        # cannot parse the latter and never see the answer.
        return error.StanzaError(
            "resource-constraint", type="wait",
            text=f"An account may have at most {e.limit} enabled certificates; disable or revoke one first",
        )
    if isinstance(e, certificates.NoSuchCertificate | certificates.RevocationIsFinal):
        # Prosody answers success here; the client must learn the name is
        # wrong. A certificate revoked meanwhile is no longer one it can
        # change.
        return error.StanzaError("item-not-found", type="cancel", text=f"No certificate named {e.name!r}")
    if isinstance(e, certificates.StoreUnavailable):
        return error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE)
    return error.StanzaError("internal-server-error")


@implementer(ISASLCertBackend)
class SASLCertBackend:
    """
    XEP-0257 over a L{certificates.ICertificateManager}: the requester acts
    on its own account, and the manager's refusals become the stanza errors
    of L{stanzaErrorFor}.

    A store failure is answered C{internal-server-error} (type C{wait})
    with L{STORE_UNAVAILABLE}, and logged as one line at error level, at
    most one every L{STORE_FAILURE_LOG_INTERVAL} seconds (a peer can repeat
    its request at will), never with a traceback. Share one backend among
    the streams, so that the limit holds for them all.
    """

    def __init__(self, manager: certificates.ICertificateManager, clock: IReactorTime | None = None) -> None:
        """
        @param clock: for the rate limit of the log; the manager's when
            C{None}.
        """
        self.manager = manager
        # A broken store is an operator's matter (error), but each request
        # meeting it would be a line: at most one a minute.
        self._storeFailureLog = _log.RateLimitedLog(
            log, LogLevel.error, clock if clock is not None else manager.clock, STORE_FAILURE_LOG_INTERVAL
        )

    def _answer(self, verb: str, requester: Requester, d: defer.Deferred[_T]) -> defer.Deferred[_T]:
        def refused(f: failure.Failure) -> failure.Failure:
            e = f.value
            if not isinstance(e, certificates.CertificateManagementError):
                return f
            if isinstance(e, certificates.StoreUnavailable):
                self._storeFailureLog.emit(
                    "The certificate store failed; refused XEP-0257 {verb} of {account}: {error}",
                    verb=verb, account=requester.account.userhost(), error=str(e),
                )
            return failure.Failure(stanzaErrorFor(e))

        return d.addErrback(refused)

    def items(self, requester: Requester) -> defer.Deferred[list[CertificateItem]]:
        # XEP-0257 section 2.2: those that can log in.
        d = self.manager.list(requester.actor, requester.account.userhost(), states=["enabled"])
        d.addCallback(lambda listed: [CertificateItem(c.name, c.der, c.resources) for c in listed])
        return self._answer("items", requester, d)

    def append(self, requester: Requester, request: AppendRequest) -> defer.Deferred[None]:
        d = self.manager.add(
            requester.actor, requester.account.userhost(), request.name, request.der,
            mayManage=request.canManage, strictDER=True,
        )
        return self._answer("append", requester, d.addCallback(lambda _: None))

    def disable(self, requester: Requester, name: str) -> defer.Deferred[None]:
        d = self.manager.disable(requester.actor, requester.account.userhost(), [name])
        return self._answer("disable", requester, d.addCallback(lambda _: None))

    def revoke(self, requester: Requester, name: str) -> defer.Deferred[None]:
        d = self.manager.revoke(requester.actor, requester.account.userhost(), [name])
        return self._answer("revoke", requester, d.addCallback(lambda _: None))


@implementer(IDisco)
class SASLCertHandler(OrderedIQHandler):
    """
    The XEP-0257 protocol on one bound client stream.
    """

    iqHandlers = {ITEMS: "_onItems", APPEND: "_onAppend", DISABLE: "_onDisable", REVOKE: "_onRevoke"}

    def __init__(
        self, backend: ISASLCertBackend, requester: Requester, metrics: IMetrics | None = None
    ) -> None:
        """
        @param backend: decides; one L{SASLCertBackend} for all streams.
        @param metrics: told about each request answered.
        """
        OrderedIQHandler.__init__(self)
        self.backend = backend
        self.requester = requester
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()

    def _payload(self, iq: domish.Element, name: str) -> domish.Element:
        return next(c for c in iq.elements(NS_SASLCERT, name))

    @countedRequest("items")
    def _onItems(self, iq: domish.Element) -> defer.Deferred[domish.Element]:
        def items() -> defer.Deferred[domish.Element]:
            return self.backend.items(self.requester).addCallback(itemsElement)

        return defer.maybeDeferred(items)

    @countedRequest("append")
    def _onAppend(self, iq: domish.Element) -> defer.Deferred[None]:
        request = AppendRequest.fromElement(self._payload(iq, "append"))
        return defer.maybeDeferred(self.backend.append, self.requester, request)

    @countedRequest("disable")
    def _onDisable(self, iq: domish.Element) -> defer.Deferred[None]:
        request = NameRequest.fromElement(self._payload(iq, "disable"))
        return defer.maybeDeferred(self.backend.disable, self.requester, request.name)

    @countedRequest("revoke")
    def _onRevoke(self, iq: domish.Element) -> defer.Deferred[None]:
        request = NameRequest.fromElement(self._payload(iq, "revoke"))
        return defer.maybeDeferred(self.backend.revoke, self.requester, request.name)

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
    "ISASLCertBackend",
    "NameRequest",
    "Requester",
    "STORE_FAILURE_LOG_INTERVAL",
    "STORE_UNAVAILABLE",
    "SASLCertBackend",
    "SASLCertHandler",
    "itemsElement",
    "stanzaErrorFor",
]
