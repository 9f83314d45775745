# -*- test-case-name: tests.test_im_offline -*-
"""
Offline messages (XEP-0160, v1.0.1), delivered with a XEP-0203 delay stamp.

A message of type C{chat} or C{normal} for an account with no available
resource of non-negative priority is stored (RFC 6121 section 8.5.2.2.1
lets the server store it instead of answering C{service-unavailable}); when
a resource of the account next sends available presence of non-negative
priority, the stored messages are taken from the store and sent to it
(XEP-0160 section 2), each with
C{<delay xmlns='urn:xmpp:delay' from='domain' stamp='...'/>} saying when it
was stored.

The store keeps them, so they survive a restart. What is not stored falls
through to the session registry, which answers C{service-unavailable} (the
same error as for an account that does not exist, so a sender learns
nothing more): a full queue, a limit of 0, C{<no-store/>} (XEP-0334).

L{OfflineService} joins local delivery through the hooks of
L{xmppcert.routing}: see L{OfflineService.install}.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import Interface, implementer

from xmppcert import _log
from xmppcert.config import IMConfig
from xmppcert.jids import parseJID
from xmppcert.routing import INBOUND_BARE, MESSAGES, PRESENCE_BROADCAST, Broadcast, Inbound
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import STORE_FAILURES, OfflineMessage

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.im.offline")

NS_CLIENT = "jabber:client"
NS_DELAY = "urn:xmpp:delay"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_STANZA_ID = "urn:xmpp:sid:0"

#: XEP-0160 section 4: the service discovery feature.
FEATURE_OFFLINE = "msgoffline"

#: Below the session registry's default delivery (0): only what no
#: resource took is stored.
OFFLINE_PRIORITY = -10

#: The XEP-0203 natural-language reason given with the delay (XEP-0160
#: section 2, example 3).
DELAY_REASON = "Offline Storage"

#: The text of the error a sender gets when the store failed.
STORE_UNAVAILABLE = "The message could not be stored for the offline recipient; try again later"

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0

#: Where a session's L{Session.info} records whether it was, after its last
#: presence, available with non-negative priority (so stored messages went
#: to it, or would have).
ELIGIBLE_KEY = "offline.eligible"

#: The types of message that are stored (XEP-0160 section 3); no type is
#: C{normal} (RFC 6121 section 5.2.2).
STORED_TYPES = (None, "normal", "chat")


class IOfflineFilter(Interface):
    """
    Decides whether a stored message may still be delivered to the account
    it was stored for (e.g. its sender was blocked since, XEP-0191 section
    3.3: no stanza from a blocked JID reaches the user).
    """

    def mayDeliver(account, sender):  # type: ignore[no-untyped-def]
        """
        @param account: the bare JID the message was stored for.
        @param sender: the message's C{from}, or C{None} if it has none.
        @return: a Deferred (or coroutine) firing with C{True} to deliver
            the message, C{False} to drop it.
        """


def formatStamp(when: float) -> str:
    """
    @return: C{when} (POSIX seconds) as a XEP-0082 DateTime in UTC with
        second precision, as XEP-0203 section 4 wants it.
    """
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parseStoredStanza(text: str) -> domish.Element:
    """
    Parse a message stored by L{OfflineService} (its C{toXml()}).

    @raise ValueError: the text is not one well-formed stanza.
    """
    elements: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    try:
        stream.parse(f"<stored xmlns='{NS_CLIENT}'>".encode() + text.encode("utf-8") + b"</stored>")
    except (domish.ParserError, UnicodeError) as e:
        raise ValueError(f"not a stored stanza: {e}") from None
    if len(elements) != 1 or elements[0].name != "message":
        raise ValueError("not one stored message")
    return elements[0]


def isStandaloneChatState(message: domish.Element) -> bool:
    """
    Whether C{message} carries nothing but a chat state notification
    (XEP-0085), which XEP-0160 section 3 says not to store: besides
    one, only a C{<thread/>}, processing hints (XEP-0334) and stanza ids
    (XEP-0359).
    """
    states = 0
    for child in message.elements():
        if child.uri == NS_CHATSTATES:
            states += 1
        elif (child.uri, child.name) == (NS_CLIENT, "thread") or child.uri in (NS_HINTS, NS_STANZA_ID):
            continue
        else:
            return False
    return states > 0


def hasNoStoreHint(message: domish.Element) -> bool:
    """
    XEP-0334 section 4.3: C{<no-store/>} asks that the message not be
    stored, not even for later delivery to an offline client.
    """
    return any(True for _ in message.elements(NS_HINTS, "no-store"))


def addDelay(message: domish.Element, domain: str, stamp: float) -> domish.Element:
    """
    Add the XEP-0203 delay of offline storage by C{domain}. A delay that
    claims to come from C{domain} but is already in the message was put
    there by the sender (the stored text never holds ours): it is removed,
    so the recipient can trust the server's stamp. Delays from other
    entities are kept (XEP-0203 section 3: several may be present).

    @return: C{message}.
    """
    message.children = [
        child
        for child in message.children
        if not (
            isinstance(child, domish.Element)
            and (child.uri, child.name) == (NS_DELAY, "delay")
            and child.getAttribute("from") == domain
        )
    ]
    delay = message.addElement((NS_DELAY, "delay"), content=DELAY_REASON)
    delay["from"] = domain
    delay["stamp"] = formatStamp(stamp)
    return message


def _usable(session: Session) -> bool:
    return not session.closed and session.available and session.priority >= 0


@implementer(IDisco)
class OfflineDiscoHandler(XMPPHandler):
    """
    Advertises C{msgoffline} (XEP-0160 section 4) on the server.
    """

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        if nodeIdentifier or target is None or target.user is not None:
            return []
        return [disco.DiscoFeature(FEATURE_OFFLINE)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


class OfflineService:
    """
    Stores messages for accounts that are offline and delivers them when a
    resource comes online.

    @ivar sessions: the session registry whose hooks it joins.
    @ivar store: provides L{xmppcert.store.interfaces.IOfflineStore}.
    @ivar clock: the time a message is stored.
    @ivar config: returns the live L{IMConfig} (its C{max_offline_messages}
        is read for every message, so a reload applies at once).
    @ivar filter: an L{IOfflineFilter} asked about each stored message
        before it is delivered, or C{None}.
    """

    def __init__(
        self,
        sessions: SessionManager,
        store: Any,
        clock: IReactorTime,
        config: Callable[[], IMConfig],
        filter: IOfflineFilter | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.clock = clock
        self.config = config
        self.filter = filter
        # A broken store is the operator's matter (error), but every message
        # meeting it would be a line: at most one a minute.
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)

    # --- wiring -----------------------------------------------------------

    def install(self) -> None:
        """
        Join local delivery: L{INBOUND_BARE} at L{OFFLINE_PRIORITY} (after
        the default delivery, so only messages no resource took are
        stored) and L{PRESENCE_BROADCAST} (to deliver them).
        """
        self.sessions.hooks.add(INBOUND_BARE, self.storeIfOffline, OFFLINE_PRIORITY, names=MESSAGES)
        self.sessions.hooks.add(PRESENCE_BROADCAST, self.presenceChanged)

    def uninstall(self) -> None:
        """
        Leave local delivery.
        """
        self.sessions.hooks.remove(INBOUND_BARE, self.storeIfOffline)
        self.sessions.hooks.remove(PRESENCE_BROADCAST, self.presenceChanged)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the per-stream
        handler that advertises C{msgoffline}.
        """
        return [OfflineDiscoHandler()]

    # --- storing ----------------------------------------------------------

    async def storeIfOffline(self, event: Inbound) -> bool:
        """
        The L{INBOUND_BARE} handler: store a message of type C{chat} or
        C{normal} that no resource took.

        @return: whether the message was handled (stored, dropped as a lone
            chat state, or answered with an error because the store failed);
            C{False} lets the registry answer C{service-unavailable}.
        """
        message = event.stanza
        if message.name != "message" or message.getAttribute("type") not in STORED_TYPES:
            return False
        if hasNoStoreHint(message):
            return False
        if isStandaloneChatState(message):
            # XEP-0160 section 3: not stored; and not worth an error either
            # (a typing notification for someone who is away).
            return True
        limit = self.config().max_offline_messages
        if limit <= 0:
            return False
        account = event.target.userhost()
        try:
            stored = await self.store.storeOfflineMessage(account, message.toXml(), self.clock.seconds(), limit)
        except ValueError:
            # Larger than a store keeps (the stanza size limit is far
            # below that): not stored, like a full queue.
            return False
        except STORE_FAILURES as e:
            self._storeFailureLog.emit(
                "The store failed; could not keep an offline message for {account}: {error}",
                account=account,
                error=f"{type(e).__name__}: {e}",
            )
            # Not silently lost: the sender learns to try again.
            if event.sender is not None:
                reply = error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE).toResponse(
                    message
                )
                event.sender.send(reply)
            return True
        return bool(stored)

    # --- delivering -------------------------------------------------------

    async def presenceChanged(self, event: Broadcast) -> None:
        """
        The L{PRESENCE_BROADCAST} handler: when a session becomes available
        with non-negative priority (its initial presence, or a presence
        that raises a negative priority), deliver the stored messages to it
        (XEP-0160 section 2, "when the recipient next sends non-negative
        available presence"); later presence of the same session does not.
        """
        session = event.session
        eligible = not event.unavailable and session.available and session.priority >= 0
        was = bool(session.info.get(ELIGIBLE_KEY, False))
        session.info[ELIGIBLE_KEY] = eligible
        if eligible and not was:
            await self.deliverStored(session)

    async def deliverStored(self, session: Session) -> int:
        """
        Take the messages stored for the account of C{session} and send them
        to it, oldest first, each with its delay. If the session went away
        meanwhile, they go to the account's other usable resources, or back
        to the store.

        @return: how many messages were delivered.
        """
        account = session.jid.userhostJID()
        try:
            stored: list[OfflineMessage] = await self.store.takeOfflineMessages(account.userhost())
        except STORE_FAILURES as e:
            # They stay in the store, for the next presence.
            self._storeFailureLog.emit(
                "The store failed; could not deliver the offline messages of {account}: {error}",
                account=account.userhost(),
                error=f"{type(e).__name__}: {e}",
            )
            return 0
        if not stored:
            return 0
        messages: list[tuple[OfflineMessage, domish.Element]] = []
        for entry in stored:
            try:
                message = parseStoredStanza(entry.stanza)
            except ValueError as e:
                # Only the store could have changed it: an operator's matter.
                log.error(
                    "Dropped offline message {id} of {account}, which the store gave back damaged: {error}",
                    id=entry.id,
                    account=account.userhost(),
                    error=str(e),
                )
                continue
            if not await self._mayDeliver(account, message):
                continue
            messages.append((entry, addDelay(message, account.host, entry.stamp)))
        targets = [session] if _usable(session) else [s for s in self.sessions.sessionsOf(account) if _usable(s)]
        if not targets:
            await self._restore(account.userhost(), [entry for entry, _ in messages])
            return 0
        for _, message in messages:
            for target in targets:
                target.send(message)
        log.debug(
            "Delivered {count} offline messages to {jid}", count=len(messages), jid=targets[0].jid.full()
        )
        return len(messages)

    async def _mayDeliver(self, account: jid.JID, message: domish.Element) -> bool:
        """
        Ask the L{IOfflineFilter}; a filter that fails does not cost the
        message (it was taken from the store already): it is delivered.
        """
        if self.filter is None:
            return True
        try:
            return bool(await self.filter.mayDeliver(account, _sender(message)))
        except Exception:
            log.failure("The offline message filter failed; delivering the message")
            return True

    async def _restore(self, account: str, entries: list[OfflineMessage]) -> None:
        """
        Put back messages that were taken for a session that went away
        before they could be sent; without a limit, since they were counted
        when first stored.
        """
        for index, entry in enumerate(entries):
            try:
                await self.store.storeOfflineMessage(account, entry.stanza, entry.stamp, 0)
            except STORE_FAILURES as e:
                log.error(
                    "The store failed; lost {count} offline messages of {account}: {error}",
                    count=len(entries) - index,
                    account=account,
                    error=f"{type(e).__name__}: {e}",
                )
                return


def _sender(message: domish.Element) -> jid.JID | None:
    sender = message.getAttribute("from")
    if sender is None:
        return None
    try:
        return parseJID(sender)
    except jid.InvalidFormat:
        return None


__all__ = [
    "DELAY_REASON",
    "ELIGIBLE_KEY",
    "FEATURE_OFFLINE",
    "NS_DELAY",
    "OFFLINE_PRIORITY",
    "STORED_TYPES",
    "IOfflineFilter",
    "OfflineDiscoHandler",
    "OfflineService",
    "addDelay",
    "formatStamp",
    "hasNoStoreHint",
    "isStandaloneChatState",
    "parseStoredStanza",
]
