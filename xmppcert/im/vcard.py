# -*- test-case-name: tests.test_im_vcard -*-
"""
vcard-temp (XEP-0054, v1.3) and vCard-based avatars (XEP-0153, v1.1).

L{VCardHandler} answers, on each bound stream, the user's requests for its
own vCard: a get without C{to} (or to the user's own bare JID) is answered
with the stored vCard, or an empty C{<vCard/>} when there is none (XEP-0054
section 3.1 allows either that or C{item-not-found}); a set replaces the
whole vCard (section 3.2), up to L{MAX_VCARD_BYTES}. It advertises
C{vcard-temp} (section 4).

L{VCardService} keeps the vCards (in the store) and joins local delivery
through the hooks of L{xmppcert.routing}:

  - a vCard get addressed to another account's bare JID is answered by
    the server on that account's behalf, never forwarded to its resources
    (section 3.3); no vCard, or no such account, gives
    C{service-unavailable} (the error section 3.3 names first, and the one
    an iq to an account that does not exist gets anyway, so it reveals
    nothing). A set addressed to another account is C{forbidden} (section
    3.2). At L{VCARD_PRIORITY} on L{INBOUND_BARE}: below blocking, so a
    blocked requester gets blocking's answer.
  - XEP-0153 section 3.1: the available presence a user's resources send
    is given C{<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>},
    the SHA-1 of the image in the vCard's C{<PHOTO><BINVAL/>}, when the
    vCard has one and the client did not include an update element itself
    (a client that does is left alone: it may be advertising "not ready",
    section 4.1). This is done in the L{INBOUND_FULL} and L{INBOUND_BARE}
    hooks, at L{VCARD_UPDATE_PRIORITY}, on each copy of the presence as it
    is delivered to a contact: broadcasts (RFC 6121 section 4.2.2, 4.4.2),
    probe answers (4.3.2) and directed presence all pass there. The copies
    the account's own resources get (L{SessionManager.broadcastPresence})
    do not pass any hook and are not changed; those clients know their own
    vCard.

The hash is computed when the vCard is set and kept in memory while the
account has sessions (read from the store the first time it is needed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppcert import _log
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.jids import parseJID
from xmppcert.routing import (
    INBOUND_BARE,
    INBOUND_FULL,
    IQS,
    PRESENCES,
    SESSION_ENDED,
    Ended,
    Inbound,
)
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import STORE_FAILURES, NoSuchAccount

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.im.vcard")

_T = TypeVar("_T")

NS_VCARD = "vcard-temp"
NS_VCARD_UPDATE = "vcard-temp:x:update"

VCARD_GET = f"/iq[@type='get']/vCard[@xmlns='{NS_VCARD}']"
VCARD_SET = f"/iq[@type='set']/vCard[@xmlns='{NS_VCARD}']"

#: The most bytes (UTF-8 of its serialized XML) a vCard may have: room for
#: a text vCard and an avatar several times XEP-0153's recommended 8 KB
#: (section 3.5), base64-encoded. A setting C{max_vcard_bytes} of the
#: configuration given to L{VCardService}, when there is one, replaces it.
MAX_VCARD_BYTES = 64 * 1024

#: On L{INBOUND_BARE}: above the session registry's default (0), which
#: would refuse an iq to a bare JID, and below blocking (100).
VCARD_PRIORITY = 20

#: On L{INBOUND_FULL} and L{INBOUND_BARE}: below blocking (100: a dropped
#: presence needs no hash), above presence (20), carbons (10) and the
#: default delivery (0), which pass the stanza on.
VCARD_UPDATE_PRIORITY = 50

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The vCard store is not available; try again later"

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0


def _text(element: domish.Element) -> str:
    # str(element) is only the first text node; the parser may split text.
    return "".join(child for child in element.children if isinstance(child, str))


def photoHash(vcard: domish.Element) -> str | None:
    """
    XEP-0153 section 3.1: the SHA-1 (hex) of the image data of the vCard's
    C{<PHOTO><BINVAL/></PHOTO>}, decoded from base64 (whitespace ignored,
    section 3.5); C{None} when there is no photo, an empty one, or one that
    is not valid base64.
    """
    for photo in vcard.elements(NS_VCARD, "PHOTO"):
        for binval in photo.elements(NS_VCARD, "BINVAL"):
            encoded = "".join(_text(binval).split())
            if not encoded:
                return None
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return None
            return hashlib.sha1(data).hexdigest()  # noqa: S324 - XEP-0153 names SHA-1
        return None
    return None


def parseStoredVCard(text: str) -> domish.Element:
    """
    Parse a vCard as stored by L{VCardService} (its C{toXml()}).

    @raise ValueError: the text is not one C{<vCard xmlns='vcard-temp'/>}.
    """
    elements: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    try:
        stream.parse(b"<stored xmlns='jabber:client'>" + text.encode("utf-8") + b"</stored>")
    except (domish.ParserError, UnicodeError) as e:
        raise ValueError(f"not a stored vCard: {e}") from None
    if len(elements) != 1 or (elements[0].uri, elements[0].name) != (NS_VCARD, "vCard"):
        raise ValueError("not one stored vCard")
    return elements[0]


def emptyVCard() -> domish.Element:
    return domish.Element((NS_VCARD, "vCard"))


def _hasUpdate(presence: domish.Element) -> bool:
    return any(child.uri == NS_VCARD_UPDATE and child.name == "x" for child in presence.elements())


def _vcardChild(stanza: domish.Element) -> bool:
    return any(child.uri == NS_VCARD and child.name == "vCard" for child in stanza.elements())


class VCardService:
    """
    The vCards of every account, and the hooks in local delivery.

    @ivar sessions: the session registry whose hooks it joins.
    @ivar store: provides L{xmppcert.store.interfaces.IVCardStore}.
    @ivar config: returns the live configuration object whose
        C{max_vcard_bytes}, if it has one, limits a vCard; else
        L{MAX_VCARD_BYTES}. C{None}: always L{MAX_VCARD_BYTES}.
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
        # Bare JID to the photo hash of its vCard (None: none), for accounts
        # with sessions.
        self._hashes: dict[str, str | None] = {}
        # Counts vCard changes; a load that saw one happen is not cached.
        self._changes = 0
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)

    # --- wiring -----------------------------------------------------------

    def install(self) -> None:
        """
        Join local delivery: answer vCard requests for other accounts
        (L{INBOUND_BARE}, L{VCARD_PRIORITY}), add the photo hash to
        presence (L{INBOUND_FULL}, L{INBOUND_BARE},
        L{VCARD_UPDATE_PRIORITY}), forget an account's hash when its last
        session ends (L{SESSION_ENDED}).
        """
        hooks = self.sessions.hooks
        hooks.add(INBOUND_BARE, self.answerForeignRequest, VCARD_PRIORITY, names=IQS)
        hooks.add(INBOUND_FULL, self.addPhotoHash, VCARD_UPDATE_PRIORITY, names=PRESENCES)
        hooks.add(INBOUND_BARE, self.addPhotoHash, VCARD_UPDATE_PRIORITY, names=PRESENCES)
        hooks.add(SESSION_ENDED, self.sessionEnded)

    def uninstall(self) -> None:
        hooks = self.sessions.hooks
        hooks.remove(INBOUND_BARE, self.answerForeignRequest)
        hooks.remove(INBOUND_FULL, self.addPhotoHash)
        hooks.remove(INBOUND_BARE, self.addPhotoHash)
        hooks.remove(SESSION_ENDED, self.sessionEnded)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the stream's
        L{VCardHandler}.
        """
        return [VCardHandler(self, context.session)]

    def maxBytes(self) -> int:
        if self.config is None:
            return MAX_VCARD_BYTES
        return int(getattr(self.config(), "max_vcard_bytes", MAX_VCARD_BYTES))

    # --- vCards -------------------------------------------------------------

    async def _guarded(self, verb: str, account: str, work: Awaitable[_T]) -> _T:
        """
        Run a request; store failures become C{internal-server-error} of
        type C{wait} (with a rate-limited log line), a deleted account
        C{forbidden}.
        """
        try:
            return await work
        except NoSuchAccount:
            raise error.StanzaError("forbidden", type="auth") from None
        except STORE_FAILURES as e:
            self._storeFailed(verb, account, e)
            raise error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE) from None

    def _storeFailed(self, verb: str, account: str, e: BaseException) -> None:
        self._storeFailureLog.emit(
            "The vCard store failed; could not {verb} the vCard of {account}: {error}",
            verb=verb,
            account=account,
            error=f"{type(e).__name__}: {e}",
        )

    async def _load(self, account: str) -> domish.Element | None:
        text = await self.store.getVCard(account)
        if text is None:
            return None
        try:
            return parseStoredVCard(text)
        except ValueError as e:
            log.error("The stored vCard of {account} is unreadable: {error}", account=account, error=str(e))
            return None

    async def getVCard(self, account: str) -> domish.Element | None:
        """
        @param account: a bare JID.
        @return: the account's vCard, C{None} for none.
        @raise error.StanzaError: the store failed.
        """
        return await self._guarded("read", account, self._load(account))

    async def setVCard(self, account: str, vcard: domish.Element) -> None:
        """
        Replace the account's vCard (XEP-0054 section 3.2); an empty one
        removes it.

        @raise error.StanzaError: C{not-acceptable} for a vCard larger
            than L{maxBytes}; store failures.
        """
        xml: str | None = vcard.toXml() if list(vcard.elements()) else None
        limit = self.maxBytes()
        if xml is not None and len(xml.encode("utf-8")) > limit:
            raise error.StanzaError(
                "not-acceptable", type="modify", text=f"A vCard may have at most {limit} bytes"
            )
        await self._guarded("store", account, self.store.setVCard(account, xml))
        self._changes += 1
        newHash = photoHash(vcard) if xml is not None else None
        if self.sessions.sessionsOf(parseJID(account)):
            self._hashes[account] = newHash
        else:
            self._hashes.pop(account, None)

    async def photoHashOf(self, account: str) -> str | None:
        """
        The XEP-0153 hash of the account's vCard photo: from memory while
        the account has sessions, else from the store.

        @raise Exception: one of L{STORE_FAILURES}.
        """
        if account in self._hashes:
            return self._hashes[account]
        changes = self._changes
        vcard = await self._load(account)
        found = photoHash(vcard) if vcard is not None else None
        if changes == self._changes and self.sessions.sessionsOf(parseJID(account)):
            self._hashes[account] = found
        return found

    # --- hooks ----------------------------------------------------------------

    async def answerForeignRequest(self, event: Inbound) -> bool:
        """
        L{INBOUND_BARE}: a vCard get or set for another account's bare JID.
        A get is answered on its behalf (XEP-0054 section 3.3):
        C{service-unavailable} when it has no vCard (or does not exist); a
        set is C{forbidden} (section 3.2).
        """
        stanza = event.stanza
        kind = stanza.getAttribute("type")
        if stanza.name != "iq" or kind not in ("get", "set") or not _vcardChild(stanza):
            return False
        sender = event.sender
        if sender is None:
            # The server asks nobody for vCards; nothing to answer.
            return True
        account = event.target.userhost()
        if kind == "set":
            if sender.jid.userhost() == account:
                # Not reached from a client (its own bare JID is its
                # stream's), but the same rule holds.
                return False
            reply = error.StanzaError(
                "forbidden", type="auth", text="Only the account itself may change its vCard"
            ).toResponse(stanza)
            sender.send(reply)
            return True
        try:
            vcard = await self.getVCard(account)
        except error.StanzaError as e:
            sender.send(e.toResponse(stanza))
            return True
        if vcard is None:
            sender.send(error.StanzaError("service-unavailable", type="cancel").toResponse(stanza))
            return True
        response = xmlstream.toResponse(stanza, "result")
        response.addChild(vcard)
        sender.send(response)
        return True

    def addPhotoHash(self, event: Inbound) -> bool | defer.Deferred[bool]:
        """
        L{INBOUND_FULL}, L{INBOUND_BARE}: add the XEP-0153 update element
        with the photo hash to available presence from a local account
        whose vCard has a photo, unless it has an update element already.
        Never handles the stanza; waits only when the hash is not in
        memory.
        """
        presence = event.stanza
        if presence.name != "presence" or presence.getAttribute("type") is not None or _hasUpdate(presence):
            return False
        sender = presence.getAttribute("from")
        if not sender:
            return False
        try:
            address = parseJID(sender)
        except jid.InvalidFormat:
            return False
        if address.user is None or not self.sessions.isLocal(address):
            return False
        account = address.userhost()
        if account in self._hashes:
            _addUpdate(presence, self._hashes[account])
            return False
        if not self.sessions.sessionsOf(address.userhostJID()):
            # Available presence comes from an account with a session.
            return False
        return defer.ensureDeferred(self._addPhotoHashFromStore(presence, account))

    async def _addPhotoHashFromStore(self, presence: domish.Element, account: str) -> bool:
        try:
            found = await self.photoHashOf(account)
        except STORE_FAILURES as e:
            # The presence goes out without the hash rather than not at all.
            self._storeFailed("read", account, e)
            return False
        _addUpdate(presence, found)
        return False

    def sessionEnded(self, event: Ended) -> None:
        """
        L{SESSION_ENDED}: once an account has no session, its hash is read
        from the store again when needed.
        """
        if not self.sessions.sessionsOf(event.session.jid):
            self._hashes.pop(event.session.jid.userhost(), None)


def _addUpdate(presence: domish.Element, photoHash: str | None) -> None:
    if photoHash is None:
        return
    update = domish.Element((NS_VCARD_UPDATE, "x"))
    update.addElement("photo", content=photoHash)
    # A new list: the copies of one broadcast share their children.
    presence.children = [*presence.children, update]


@implementer(IDisco)
class VCardHandler(OrderedIQHandler):
    """
    vcard-temp on one bound client stream: the user's own vCard, get and
    set, without C{to} or to the user's own bare JID.
    """

    iqHandlers = {VCARD_GET: "_onGet", VCARD_SET: "_onSet"}

    def __init__(self, service: VCardService, session: Session) -> None:
        OrderedIQHandler.__init__(self)
        self.service = service
        self.session = session

    def _vcard(self, iq: domish.Element) -> domish.Element:
        to = iq.getAttribute("to")
        if to is not None and to != self.session.jid.userhost():
            # Addressed to the server's domain: the server has no vCard.
            raise error.StanzaError("service-unavailable", type="cancel")
        return next(iter(iq.elements(NS_VCARD, "vCard")))

    def _onGet(self, iq: domish.Element) -> defer.Deferred[domish.Element]:
        self._vcard(iq)
        account = self.session.jid.userhost()

        async def get() -> domish.Element:
            vcard = await self.service.getVCard(account)
            # XEP-0054 section 3.1: an empty vCard when there is none.
            return vcard if vcard is not None else emptyVCard()

        return defer.ensureDeferred(get())

    def _onSet(self, iq: domish.Element) -> defer.Deferred[None]:
        vcard = self._vcard(iq)
        account = self.session.jid.userhost()
        return defer.ensureDeferred(self.service.setVCard(account, vcard))

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0054 section 4: C{vcard-temp}.
        """
        if nodeIdentifier:
            return []
        return [disco.DiscoFeature(NS_VCARD)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


__all__ = [
    "MAX_VCARD_BYTES",
    "NS_VCARD",
    "NS_VCARD_UPDATE",
    "VCARD_GET",
    "VCARD_PRIORITY",
    "VCARD_SET",
    "VCARD_UPDATE_PRIORITY",
    "VCardHandler",
    "VCardService",
    "emptyVCard",
    "parseStoredVCard",
    "photoHash",
]
