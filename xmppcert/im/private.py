# -*- test-case-name: tests.test_im_private -*-
"""
Private XML Storage (XEP-0049, v1.2, C{jabber:iq:private}): a client keeps
XML fragments on the server (preferences, XEP-0048 bookmarks), each under
the namespace of its root element, readable and writable only by the
account itself.

L{PrivateHandler} answers, on each bound stream, gets and sets without
C{to} or to the user's own bare JID:

  - a set holds one or more elements, each qualified by its own namespace
    (section 2.3); the elements of one namespace replace what was stored
    under it. No element is C{not-acceptable} (section 2.3).
  - a get names one namespace with one (empty) element (section 2.3: "MUST
    NOT query for more than one namespace"); the answer holds what is
    stored under it, or the element as asked when nothing is. No element
    is C{not-acceptable} (the error the XEP's example shows), more than one
    C{bad-request}.
  - reserved namespaces (those beginning with C{jabber:} or
    C{http://jabber.org/}, and C{vcard-temp}) are refused with
    C{not-acceptable} (section 2.3, the optional error, which keeps the
    vCard out of private storage).
  - a fragment is at most L{MAX_PRIVATE_FRAGMENT_BYTES}, and an account's
    fragments together at most L{MAX_PRIVATE_BYTES}: more is
    C{not-acceptable} or C{resource-constraint}.

L{PrivateService} keeps the fragments (in the store) and joins local
delivery: a request addressed to another account is C{forbidden} (section
2.3 prefers it to C{service-unavailable}; section 4: only the user's own
resources may read or change its private XML), at L{PRIVATE_PRIORITY} on
L{INBOUND_BARE}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import Interface, implementer

from xmppcert import _log
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.routing import INBOUND_BARE, IQS, Inbound
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import STORE_FAILURES, NoSuchAccount, PrivateStorageFull

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.im.private")

_T = TypeVar("_T")

NS_PRIVATE = "jabber:iq:private"

PRIVATE_GET = f"/iq[@type='get']/query[@xmlns='{NS_PRIVATE}']"
PRIVATE_SET = f"/iq[@type='set']/query[@xmlns='{NS_PRIVATE}']"

#: The most bytes (UTF-8 of the serialized XML) stored under one
#: namespace. A setting C{max_private_fragment_bytes} of the configuration
#: given to L{PrivateService}, when there is one, replaces it.
MAX_PRIVATE_FRAGMENT_BYTES = 64 * 1024

#: The most bytes an account's fragments may have together. A setting
#: C{max_private_bytes} of the configuration, when there is one, replaces
#: it.
MAX_PRIVATE_BYTES = 1024 * 1024

#: Above the session registry's default (0), which would answer
#: C{service-unavailable}: a request to another account is C{forbidden}.
PRIVATE_PRIORITY = 20

#: XEP-0049 section 2.3: reserved namespaces.
RESERVED_PREFIXES = ("jabber:", "http://jabber.org/")
RESERVED_NAMESPACES = frozenset({"vcard-temp"})

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The private XML store is not available; try again later"

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0


class IPrivateView(Interface):
    """
    A namespace of private XML storage whose content is kept elsewhere (as
    XEP-0402 section 5 keeps XEP-0048 bookmarks in personal eventing):
    installed with L{PrivateService.addView}, it turns what is stored into
    what a client reads, and what a client writes into what is stored.
    """

    def read(account, stored):  # type: ignore[no-untyped-def]
        """
        @param account: the account's bare JID (a C{jid.JID}).
        @param stored: the elements stored under the namespace in private
            XML storage, C{None} for none.
        @return: Deferred firing with the elements a client reads, C{None}
            for none.
        """

    def write(account, elements, publisher):  # type: ignore[no-untyped-def]
        """
        @param elements: the elements a client sets under the namespace.
        @param publisher: the full JID of the session that sets them.
        @return: Deferred firing with the elements still to store in
            private XML storage (an empty list: none).
        @raise error.StanzaError: (in the Deferred) they are refused.
        """


def isReserved(namespace: str | None) -> bool:
    """
    Whether C{namespace} is reserved (XEP-0049 section 2.3), or none.
    """
    if not namespace:
        return True
    return namespace in RESERVED_NAMESPACES or namespace.startswith(RESERVED_PREFIXES)


def parseFragments(text: str) -> list[domish.Element]:
    """
    Parse what L{PrivateService} stored under one namespace: one or more
    elements.

    @raise ValueError: the text is not well-formed elements.
    """
    elements: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    try:
        stream.parse(f"<stored xmlns='{NS_PRIVATE}'>".encode() + text.encode("utf-8") + b"</stored>")
    except (domish.ParserError, UnicodeError) as e:
        raise ValueError(f"not stored private XML: {e}") from None
    return elements


def _notAcceptable(text: str) -> error.StanzaError:
    return error.StanzaError("not-acceptable", type="modify", text=text)


class PrivateService:
    """
    The private XML of every account.

    @ivar sessions: the session registry whose hooks it joins.
    @ivar store: provides L{xmppcert.store.interfaces.IPrivateStore}.
    @ivar config: returns the live configuration object whose
        C{max_private_bytes} and C{max_private_fragment_bytes}, if it has
        them, replace L{MAX_PRIVATE_BYTES} and
        L{MAX_PRIVATE_FRAGMENT_BYTES}; C{None}: the constants.
    """

    def __init__(
        self,
        sessions: SessionManager,
        store: Any,
        config: Callable[[], Any] | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.sessions = sessions
        self.store = store
        self.config = config
        self._views: dict[str, IPrivateView] = {}
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)

    def addView(self, namespace: str, view: IPrivateView) -> None:
        """
        Let C{view} translate what is read and written under C{namespace}.
        """
        self._views[namespace] = view

    def removeView(self, namespace: str) -> None:
        self._views.pop(namespace, None)

    def install(self) -> None:
        """
        Refuse requests addressed to another account with C{forbidden}
        (L{INBOUND_BARE}, L{PRIVATE_PRIORITY}).
        """
        self.sessions.hooks.add(INBOUND_BARE, self.refuseForeignRequest, PRIVATE_PRIORITY, names=IQS)

    def uninstall(self) -> None:
        self.sessions.hooks.remove(INBOUND_BARE, self.refuseForeignRequest)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the stream's
        L{PrivateHandler}.
        """
        return [PrivateHandler(self, context.session)]

    def _limit(self, name: str, default: int) -> int:
        if self.config is None:
            return default
        return int(getattr(self.config(), name, default))

    def maxBytes(self) -> int:
        return self._limit("max_private_bytes", MAX_PRIVATE_BYTES)

    def maxFragmentBytes(self) -> int:
        return self._limit("max_private_fragment_bytes", MAX_PRIVATE_FRAGMENT_BYTES)

    async def _guarded(self, verb: str, account: str, work: Awaitable[_T]) -> _T:
        try:
            return await work
        except PrivateStorageFull:
            raise error.StanzaError(
                "resource-constraint",
                type="wait",
                text=f"Private XML storage holds at most {self.maxBytes()} bytes; remove some first",
            ) from None
        except NoSuchAccount:
            raise error.StanzaError("forbidden", type="auth") from None
        except STORE_FAILURES as e:
            self._storeFailureLog.emit(
                "The private XML store failed; could not {verb} for {account}: {error}",
                verb=verb,
                account=account,
                error=f"{type(e).__name__}: {e}",
            )
            raise error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE) from None

    async def get(self, account: str, namespace: str) -> list[domish.Element] | None:
        """
        @return: the elements stored under C{namespace} (as its view, if
            it has one, shows them), C{None} for none.
        """
        stored = await self._stored(account, namespace)
        view = self._views.get(namespace)
        if view is None:
            return stored
        shown: list[domish.Element] | None = await view.read(jid.internJID(account), stored)
        return shown

    async def _stored(self, account: str, namespace: str) -> list[domish.Element] | None:
        text = await self._guarded("read", account, self.store.getPrivate(account, namespace))
        if text is None:
            return None
        try:
            return parseFragments(text)
        except ValueError as e:
            log.error(
                "The private XML of {account} in {namespace} is unreadable: {error}",
                account=account,
                namespace=namespace,
                error=str(e),
            )
            return None

    async def set(self, account: str, elements: list[domish.Element], publisher: jid.JID | None = None) -> None:
        """
        Store C{elements}, grouped by namespace, each group replacing what
        was stored under its namespace (a namespace with a view: what its
        view leaves to store).

        @param publisher: the full JID of the session that sets them (the
            account's bare JID when not given), for views.

        @raise error.StanzaError: C{not-acceptable} for no element, a
            reserved namespace or a fragment too large;
            C{resource-constraint} when the account's total would exceed
            L{maxBytes}.
        """
        if not elements:
            raise _notAcceptable("A private XML set needs at least one element")
        groups: dict[str, list[domish.Element]] = {}
        for element in elements:
            if isReserved(element.uri):
                raise _notAcceptable(f"The namespace {element.uri!r} is reserved")
            groups.setdefault(element.uri, []).append(element)
        fragments: dict[str, str] = {}
        limit = self.maxFragmentBytes()
        for namespace, group in groups.items():
            xml = "".join(element.toXml() for element in group)
            if len(xml.encode("utf-8")) > limit:
                raise _notAcceptable(f"At most {limit} bytes may be stored in one namespace")
            fragments[namespace] = xml
        total = self.maxBytes()
        # Sections are stored one after the other; with several, one that
        # does not fit leaves those before it stored.
        for namespace, xml in fragments.items():
            view = self._views.get(namespace)
            stored: str | None = xml
            if view is not None:
                remaining = await view.write(jid.internJID(account), groups[namespace], publisher or jid.internJID(account))
                stored = "".join(element.toXml() for element in remaining) or None
            await self._guarded("store", account, self.store.setPrivate(account, namespace, stored, total))

    def refuseForeignRequest(self, event: Inbound) -> bool:
        """
        L{INBOUND_BARE}: a C{jabber:iq:private} get or set for another
        account is C{forbidden} (XEP-0049 sections 2.3 and 4).
        """
        stanza = event.stanza
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            return False
        if not any(child.uri == NS_PRIVATE and child.name == "query" for child in stanza.elements()):
            return False
        if event.sender is not None and event.sender.jid.userhost() == event.target.userhost():
            return False
        if event.sender is not None:
            event.sender.send(
                error.StanzaError(
                    "forbidden", type="auth", text="Only the account itself may use its private XML storage"
                ).toResponse(stanza)
            )
        return True


@implementer(IDisco)
class PrivateHandler(OrderedIQHandler):
    """
    C{jabber:iq:private} on one bound client stream.
    """

    iqHandlers = {PRIVATE_GET: "_onGet", PRIVATE_SET: "_onSet"}

    def __init__(self, service: PrivateService, session: Session) -> None:
        OrderedIQHandler.__init__(self)
        self.service = service
        self.session = session

    def _query(self, iq: domish.Element) -> domish.Element:
        to = iq.getAttribute("to")
        if to is not None and to != self.session.jid.userhost():
            # Addressed to the server's domain: private XML is an account's.
            raise error.StanzaError("forbidden", type="auth")
        return next(iter(iq.elements(NS_PRIVATE, "query")))

    def _onGet(self, iq: domish.Element) -> defer.Deferred[domish.Element]:
        children = list(self._query(iq).elements())
        if not children:
            raise _notAcceptable("Name the namespace to read with an element in it")
        if len(children) > 1:
            raise error.StanzaError("bad-request", type="modify", text="Read one namespace at a time")
        asked = children[0]
        if isReserved(asked.uri):
            raise _notAcceptable(f"The namespace {asked.uri!r} is reserved")
        account = self.session.jid.userhost()

        async def get() -> domish.Element:
            stored = await self.service.get(account, asked.uri)
            query = domish.Element((NS_PRIVATE, "query"))
            if stored is None:
                # Nothing stored: the element as asked.
                query.addChild(domish.Element((asked.uri, asked.name)))
            else:
                for element in stored:
                    query.addChild(element)
            return query

        return defer.ensureDeferred(get())

    def _onSet(self, iq: domish.Element) -> defer.Deferred[None]:
        elements = list(self._query(iq).elements())
        account = self.session.jid.userhost()
        return defer.ensureDeferred(self.service.set(account, elements, self.session.jid))

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        if nodeIdentifier:
            return []
        return [disco.DiscoFeature(NS_PRIVATE)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


__all__ = [
    "MAX_PRIVATE_BYTES",
    "MAX_PRIVATE_FRAGMENT_BYTES",
    "NS_PRIVATE",
    "PRIVATE_GET",
    "PRIVATE_PRIORITY",
    "PRIVATE_SET",
    "IPrivateView",
    "RESERVED_NAMESPACES",
    "RESERVED_PREFIXES",
    "PrivateHandler",
    "PrivateService",
    "isReserved",
    "parseFragments",
]
