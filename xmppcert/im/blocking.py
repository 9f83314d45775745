# -*- test-case-name: tests.test_im_blocking -*-
"""
Blocking Command (XEP-0191, v1.3, C{urn:xmpp:blocking}): a user blocks
communication with JIDs, across sessions, until it unblocks them.

L{BlockingHandler} answers, on each bound stream, the block list request
(section 3.2), C{<block/>} (3.3) and C{<unblock/>} (3.4, 3.5), and
advertises the feature (3.1); after a change, every resource of the account
that asked for the block list gets a push of it. L{BlockingService} keeps
the lists (in the store; in memory while the account has sessions) and
joins local delivery through the hooks of L{xmppcert.routing}, before any
other feature:

  - a stanza from a JID the recipient blocked (L{INBOUND_FULL},
    L{INBOUND_BARE}) is not delivered: presence is dropped without a word;
    a message of type C{chat} or C{normal} and an iq get or set are
    answered C{service-unavailable}, as if the user were offline; the rest
    is dropped (section 3.3);
  - a stanza the user sends to a JID it blocked (L{OUTBOUND}) is not
    routed: the sender gets C{not-acceptable} with
    C{<blocked xmlns='urn:xmpp:blocking:errors'/>}; presence, errors and
    iq results are dropped;
  - a stanza the server sends on the user's behalf (a presence broadcast:
    no sender session) to a JID it blocked is dropped too: the inbound
    hooks look at the stanza's C{from} and C{to}, not only at who sends it.

Two exceptions: C{unsubscribe} and C{unsubscribed} pass both ways (they
only take rights away; RFC 6121 Appendix A), so that both rosters change,
also when a roster removal sends them; and presence that no feature acts
on, for an account with no resource to receive it, is not checked (the
default delivery drops it; its block list is not read from the store).

JIDs match as section 4 (and XEP-0016) says: a full JID only itself; a
bare JID every resource of it; a domain itself, every JID at it, and
every JID at a subdomain of it (L{isBlockedBy}).

When the user blocks a JID, each of its available resources sends
unavailable presence to the contacts it matches that may receive the
user's presence (a subscription C{from} or C{both}); when it unblocks one,
they send their current presence (section 3.3, 3.4).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

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
from xmppcert.config import IMConfig
from xmppcert.im.offline import IOfflineFilter
from xmppcert.im.roster import SUBSCRIPTION_TYPES, UNSUBSCRIBE, UNSUBSCRIBED
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.jids import parseJID
from xmppcert.routing import (
    INBOUND_BARE,
    INBOUND_FULL,
    OUTBOUND,
    SESSION_ENDED,
    Ended,
    Inbound,
    Outbound,
)
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import STORE_FAILURES, BlockListFull, IRosterStore, NoSuchAccount

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.im.blocking")

NS_CLIENT = "jabber:client"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

BLOCKLIST = f"/iq[@type='get']/blocklist[@xmlns='{NS_BLOCKING}']"
BLOCK = f"/iq[@type='set']/block[@xmlns='{NS_BLOCKING}']"
UNBLOCK = f"/iq[@type='set']/unblock[@xmlns='{NS_BLOCKING}']"

#: Above every other feature's handlers (carbons, presence, the default
#: delivery, offline storage): a blocked stanza is neither copied, nor
#: stored, nor answered on the user's behalf.
BLOCKING_PRIORITY = 100

#: Block lists of accounts without sessions kept in memory (the least
#: recently used go first), until the next session check: a login's
#: presence reaches every contact of the user through the filters, and
#: each offline contact's answer to its probe is sent on that contact's
#: behalf.
OFFLINE_LISTS_KEPT = 10_000

#: Where a session's L{Session.info} records that it asked for the block
#: list, and so gets pushes (section 3.3).
REQUESTED_KEY = "blocking.requested"

#: The subscription states in which a contact receives the user's presence
#: (RFC 6121 section 2.1.2.5).
PRESENCE_TO_CONTACT = ("from", "both")

#: Presence types that only take rights away (RFC 6121 Appendix A: the
#: user cancels its subscription, or one to it): they pass blocking both
#: ways, so that both rosters change (the presence service handles them),
#: and a roster removal does not leave the contact believing otherwise.
UNBLOCKED_PRESENCE_TYPES = frozenset({UNSUBSCRIBE, UNSUBSCRIBED})

#: Presence types another feature acts on for an account without an
#: available resource (subscriptions are stored, probes answered); the
#: other presence to such an account is dropped by the default delivery.
HANDLED_PRESENCE_TYPES = frozenset({*SUBSCRIPTION_TYPES, "probe"})

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The block list is not available; try again later"

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0


def addressForms(address: jid.JID) -> list[str]:
    """
    The block list entries that match C{address} (XEP-0191 section 4):
    itself, its bare JID, its domain and every parent domain.
    """
    forms = [address.full()]
    if address.user is not None:
        forms.append(address.userhost())
    labels = address.host.split(".")
    forms.extend(".".join(labels[i:]) for i in range(len(labels)))
    return forms


def isBlockedBy(blocked: AbstractSet[str], address: jid.JID) -> bool:
    """
    Whether a block list (prepared JIDs) matches C{address}: a full JID
    only itself, a bare JID any of its resources, a domain itself, any JID
    at it or at one of its subdomains (XEP-0191 section 4).
    """
    if not blocked:
        return False
    return any(form in blocked for form in addressForms(address))


def blockedError(stanza: domish.Element) -> domish.Element:
    """
    The answer to a stanza a user sent to a JID it blocked (XEP-0191
    section 3.3): C{not-acceptable} with C{<blocked/>}.
    """
    return error.StanzaError(
        "not-acceptable",
        type="cancel",
        text="You have blocked this JID",
        appCondition=domish.Element((NS_BLOCKING_ERRORS, "blocked")),
    ).toResponse(stanza)


def _address(text: str | None) -> jid.JID | None:
    if not text:
        return None
    try:
        return parseJID(text)
    except jid.InvalidFormat:
        return None


def _answersRequest(stanza: domish.Element) -> bool:
    """
    Whether an error may be sent back for C{stanza} (never for an error,
    an iq result, or presence).
    """
    kind = stanza.getAttribute("type")
    if stanza.name == "iq":
        return kind in ("get", "set")
    return stanza.name == "message" and kind != "error"


def _passesBlocking(stanza: domish.Element) -> bool:
    """
    Whether C{stanza} is never blocked: C{unsubscribe} and C{unsubscribed}
    (L{UNBLOCKED_PRESENCE_TYPES}).
    """
    return stanza.name == "presence" and stanza.getAttribute("type") in UNBLOCKED_PRESENCE_TYPES


def _copyPresence(presence: domish.Element, sender: jid.JID, to: jid.JID) -> domish.Element:
    copy = domish.Element((NS_CLIENT, "presence"), NS_CLIENT, dict(presence.attributes))
    copy.children = list(presence.children)
    copy["from"] = sender.full()
    copy["to"] = to.full()
    return copy


def _badRequest(text: str) -> error.StanzaError:
    return error.StanzaError("bad-request", type="modify", text=text)


def parseItems(element: domish.Element, required: bool, limit: int = 0) -> list[str]:
    """
    The JIDs of the C{<item/>}s of a C{<block/>} or C{<unblock/>},
    prepared, each once, in the order given.

    @param required: at least one item is needed (C{<block/>}, section
        3.3).
    @param limit: the most items accepted (0: no limit).
    @raise error.StanzaError: C{bad-request} for no item where one is
        required, an item without C{jid}, or too many items;
        C{jid-malformed} for an invalid JID.
    """
    items = list(element.elements(NS_BLOCKING, "item"))
    if required and not items:
        raise _badRequest("<block/> needs at least one <item/>")
    if limit and len(items) > limit:
        raise _badRequest(f"at most {limit} items at once")
    jids: list[str] = []
    for item in items:
        text = item.getAttribute("jid")
        if text is None:
            raise _badRequest("an <item/> needs a 'jid'")
        try:
            jids.append(parseJID(text).full())
        except jid.InvalidFormat:
            raise error.StanzaError("jid-malformed", type="modify", text=f"{text!r} is not a valid JID") from None
    return list(dict.fromkeys(jids))


def itemsElement(name: str, jids: Iterable[str]) -> domish.Element:
    """
    C{<blocklist/>}, C{<block/>} or C{<unblock/>} with an item per JID.
    """
    element = domish.Element((NS_BLOCKING, name))
    for blocked in jids:
        element.addElement("item")["jid"] = blocked
    return element


class IBlockList(Interface):
    """
    Who blocked whom (XEP-0191), for other features to ask.
    """

    def isBlocked(account, address):  # type: ignore[no-untyped-def]
        """
        @param account: the bare JID of a local account.
        @param address: any JID.
        @return: a Deferred firing with whether C{account} blocked
            C{address}; failing with one of L{STORE_FAILURES} when the
            block list cannot be read.
        """


@implementer(IDisco)
class BlockingHandler(OrderedIQHandler):
    """
    XEP-0191 on one bound client stream, its requests answered in order
    (L{OrderedIQHandler}).
    """

    iqHandlers = {BLOCKLIST: "_blockList", BLOCK: "_block", UNBLOCK: "_unblock"}

    def __init__(self, service: BlockingService, session: Session) -> None:
        OrderedIQHandler.__init__(self)
        self.service = service
        self.session = session

    def handleRequest(self, iq: domish.Element) -> None:
        # Sections 3.2 to 3.5: the requests have no 'to' ("handled by the
        # user's server"); the user's own bare JID is the same (RFC 6120
        # section 10.3.3). Others are left for the stream to refuse.
        to = iq.getAttribute("to")
        if to is not None and to != self.session.jid.userhost():
            return
        super().handleRequest(iq)

    def _payload(self, iq: domish.Element, name: str) -> domish.Element:
        return next(iter(iq.elements(NS_BLOCKING, name)))

    async def _blockList(self, iq: domish.Element) -> domish.Element:
        return await self.service.requestList(self.session)

    async def _block(self, iq: domish.Element) -> None:
        limit = self.service.config().max_blocked
        await self.service.block(self.session, parseItems(self._payload(iq, "block"), True, limit))

    async def _unblock(self, iq: domish.Element) -> None:
        jids = parseItems(self._payload(iq, "unblock"), required=False)
        await self.service.unblock(self.session, jids or None)

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        Section 3.1: the server advertises C{urn:xmpp:blocking}.
        """
        if nodeIdentifier or target is None or target.user is not None:
            return []
        return [disco.DiscoFeature(NS_BLOCKING)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


@implementer(IBlockList, IOfflineFilter)
class BlockingService:
    """
    Block lists, their cache, and the filters in local delivery.

    @ivar sessions: the session registry whose hooks it joins.
    @ivar store: provides L{xmppcert.store.interfaces.IBlockingStore}; if it
        provides L{IRosterStore} too, blocked and unblocked contacts are
        told of the user's presence (section 3.3, 3.4).
    @ivar config: returns the live L{IMConfig} (its C{max_blocked}).
    @ivar clock: paces the log lines about store failures.
    """

    def __init__(
        self,
        sessions: SessionManager,
        store: Any,
        config: Callable[[], IMConfig],
        clock: IReactorTime,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.config = config
        self.clock = clock
        # Bare JID to block list, for accounts with sessions.
        self._cache: dict[str, frozenset[str]] = {}
        # Bare JID to block list, for accounts without sessions (a few).
        self._offline: OrderedDict[str, frozenset[str]] = OrderedDict()
        # Counts changes; a load that saw one happen is not cached.
        self._changes = 0
        # Stanzas this service sends on a user's behalf to JIDs it just
        # blocked: the filters let them through.
        self._exempt: WeakSet[domish.Element] = WeakSet()
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)

    # --- wiring -----------------------------------------------------------

    def install(self) -> None:
        """
        Join local delivery at L{BLOCKING_PRIORITY} (L{INBOUND_FULL},
        L{INBOUND_BARE}, L{OUTBOUND}), and forget an account's cached list
        when its last session ends (L{SESSION_ENDED}).
        """
        hooks = self.sessions.hooks
        hooks.add(INBOUND_FULL, self.filterInbound, BLOCKING_PRIORITY)
        hooks.add(INBOUND_BARE, self.filterInbound, BLOCKING_PRIORITY)
        hooks.add(OUTBOUND, self.filterOutbound, BLOCKING_PRIORITY)
        hooks.add(SESSION_ENDED, self.sessionEnded)

    def uninstall(self) -> None:
        """
        Leave local delivery.
        """
        hooks = self.sessions.hooks
        hooks.remove(INBOUND_FULL, self.filterInbound)
        hooks.remove(INBOUND_BARE, self.filterInbound)
        hooks.remove(OUTBOUND, self.filterOutbound)
        hooks.remove(SESSION_ENDED, self.sessionEnded)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the stream's
        L{BlockingHandler}.
        """
        return [BlockingHandler(self, context.session)]

    # --- block lists --------------------------------------------------------

    async def blockList(self, account: str) -> frozenset[str]:
        """
        The block list of C{account} (a bare JID): from memory while the
        account has sessions, or when it was read since the last session
        check (L{OFFLINE_LISTS_KEPT}), else from the store.

        @raise Exception: one of L{STORE_FAILURES} when the store fails.
        """
        cached = self._inMemory(account)
        if cached is not None:
            return cached
        changes = self._changes
        loaded = frozenset(await self.store.getBlockList(account))
        cached = self._inMemory(account)
        if cached is not None:
            return cached
        if changes != self._changes:
            return loaded
        if self.sessions.sessionsOf(parseJID(account)):
            self._cache[account] = loaded
        else:
            self._keepOffline(account, loaded)
        return loaded

    def _inMemory(self, account: str) -> frozenset[str] | None:
        cached = self._cache.get(account)
        if cached is not None:
            return cached
        cached = self._offline.get(account)
        if cached is None:
            return None
        if self.sessions.sessionsOf(parseJID(account)):
            # The account has sessions again: its list is read afresh once
            # (it may have changed through another server process).
            del self._offline[account]
            return None
        self._offline.move_to_end(account)
        return cached

    def _keepOffline(self, account: str, blocked: frozenset[str]) -> None:
        self._offline[account] = blocked
        self._offline.move_to_end(account)
        while len(self._offline) > OFFLINE_LISTS_KEPT:
            self._offline.popitem(last=False)

    def forgetOfflineLists(self) -> None:
        """
        Read the block lists of accounts without sessions from the store
        again when next needed. Changes made through this service are in
        memory at once; others (another server process on the same store,
        an account removed) are not: the server calls this at each session
        check (C{certificates.session_check_interval}) and when an
        administrator removes an account.
        """
        self._changes += 1
        self._offline.clear()

    def isBlocked(self, account: jid.JID, address: jid.JID) -> defer.Deferred[bool]:
        """
        See L{IBlockList.isBlocked}.
        """
        return defer.ensureDeferred(self._isBlocked(account, address))

    async def _isBlocked(self, account: jid.JID, address: jid.JID) -> bool:
        return isBlockedBy(await self.blockList(account.userhost()), address)

    async def mayDeliver(self, account: jid.JID, sender: jid.JID | None) -> bool:
        """
        L{IOfflineFilter}: a stored message from a JID blocked since is
        dropped (section 3.3: no stanza from it reaches the user). If the
        block list cannot be read, it is delivered rather than lost.
        """
        if sender is None or sender.userhost() == account.userhost():
            return True
        try:
            return not await self._isBlocked(account, sender)
        except STORE_FAILURES as e:
            self._storeFailed("check an offline message for", account.userhost(), e)
            return True

    def _changed(self, account: str, update: Callable[[frozenset[str]], frozenset[str]]) -> None:
        self._changes += 1
        cached = self._cache.get(account)
        if cached is not None:
            self._cache[account] = update(cached)
        cached = self._offline.get(account)
        if cached is not None:
            self._offline[account] = update(cached)

    def sessionEnded(self, event: Ended) -> None:
        """
        The L{SESSION_ENDED} handler: once an account has no session, its
        list joins those of the accounts without sessions.
        """
        account = event.session.jid.userhost()
        if not self.sessions.sessionsOf(event.session.jid):
            blocked = self._cache.pop(account, None)
            if blocked is not None:
                self._keepOffline(account, blocked)

    def _storeFailed(self, what: str, account: str, e: BaseException) -> None:
        self._storeFailureLog.emit(
            "The store failed; could not {what} the block list of {account}: {error}",
            what=what,
            account=account,
            error=f"{type(e).__name__}: {e}",
        )

    def _unavailableError(self) -> error.StanzaError:
        return error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE)

    # --- requests -----------------------------------------------------------

    async def requestList(self, session: Session) -> domish.Element:
        """
        Section 3.2: the block list, sorted; the session gets pushes from
        now on.

        @raise error.StanzaError: C{internal-server-error} if the store
            failed.
        """
        account = session.jid.userhost()
        try:
            blocked = await self.blockList(account)
        except STORE_FAILURES as e:
            self._storeFailed("read", account, e)
            raise self._unavailableError() from None
        session.info[REQUESTED_KEY] = True
        return itemsElement("blocklist", sorted(blocked))

    async def block(self, session: Session, jids: list[str]) -> None:
        """
        Section 3.3: add C{jids} (prepared) to the block list of the
        session's account, tell the contacts it matches that the user went
        offline, and push the change.

        @raise error.StanzaError: C{resource-constraint} if the list would
            exceed C{max_blocked}; C{internal-server-error} if the store
            failed.
        """
        account = session.jid.userhostJID()
        key = account.userhost()
        limit = self.config().max_blocked
        try:
            added = await self.store.blockJIDs(key, jids, limit)
        except BlockListFull:
            raise error.StanzaError(
                "resource-constraint",
                type="wait",
                text=f"A block list may hold at most {limit} JIDs; unblock some first",
            ) from None
        except NoSuchAccount:
            raise error.StanzaError("forbidden", type="auth") from None
        except ValueError:
            raise error.StanzaError("jid-malformed", type="modify") from None
        except STORE_FAILURES as e:
            self._storeFailed("change", key, e)
            raise self._unavailableError() from None
        self._changed(key, lambda cached: cached | frozenset(added))
        log.info("{account} blocked {count} JIDs", account=key, count=len(added))
        self._push(account, itemsElement("block", jids))
        if added:
            await self._tellContacts(account, added, blocked=True)

    async def unblock(self, session: Session, jids: list[str] | None) -> None:
        """
        Sections 3.4 and 3.5: remove C{jids} (prepared), or every JID when
        C{None}, from the block list of the session's account, push the
        change, and send the user's presence to the contacts no longer
        blocked.

        @raise error.StanzaError: C{internal-server-error} if the store
            failed.
        """
        account = session.jid.userhostJID()
        key = account.userhost()
        try:
            removed = await self.store.unblockJIDs(key, jids)
        except ValueError:
            raise error.StanzaError("jid-malformed", type="modify") from None
        except STORE_FAILURES as e:
            self._storeFailed("change", key, e)
            raise self._unavailableError() from None
        self._changed(key, lambda cached: cached - frozenset(removed))
        log.info("{account} unblocked {count} JIDs", account=key, count=len(removed))
        self._push(account, itemsElement("unblock", jids or ()))
        if removed:
            await self._tellContacts(account, removed, blocked=False)

    def _push(self, account: jid.JID, change: domish.Element) -> None:
        """
        Sections 3.3 to 3.5: the change to every resource that asked for
        the block list.
        """
        for session in self.sessions.sessionsOf(account):
            if not session.info.get(REQUESTED_KEY):
                continue
            push = domish.Element((NS_CLIENT, "iq"))
            push["type"] = "set"
            push["id"] = "blocking-" + secrets.token_hex(6)
            push["to"] = session.jid.full()
            push.addChild(change)
            session.send(push)

    async def _tellContacts(self, account: jid.JID, changed: list[str], blocked: bool) -> None:
        """
        Send unavailable presence (C{blocked}) or the current presence
        (unblocked) of each available resource of C{account} to the local
        contacts of C{changed} that may receive the user's presence.
        """
        senders = [s for s in self.sessions.sessionsOf(account) if s.available and s.presence is not None]
        if not senders:
            return
        targets = await self._presenceContacts(account, changed)
        if not blocked:
            try:
                remaining = await self.blockList(account.userhost())
            except STORE_FAILURES as e:
                self._storeFailed("read", account.userhost(), e)
                return
            targets = [t for t in targets if not isBlockedBy(remaining, t)]
        for target in targets:
            # Without server-to-server connections, only local contacts.
            if target.user is None or not self.sessions.isLocal(target):
                continue
            for sender in senders:
                if blocked:
                    presence = domish.Element((NS_CLIENT, "presence"))
                    presence["type"] = "unavailable"
                    presence["from"] = sender.jid.full()
                    presence["to"] = target.full()
                    self._exempt.add(presence)
                else:
                    assert sender.presence is not None
                    presence = _copyPresence(sender.presence, sender.jid, target)
                await self.sessions.deliver(presence, target)

    async def _presenceContacts(self, account: jid.JID, changed: list[str]) -> list[jid.JID]:
        """
        The addresses among or matched by C{changed} that may receive the
        user's presence: roster contacts with a subscription C{from} or
        C{both} (RFC 6121 section 2.1.2.5); for a blocked full JID, that
        resource of such a contact.
        """
        if not IRosterStore.providedBy(self.store):
            return []
        try:
            _, items = await self.store.getRoster(account.userhost())
        except STORE_FAILURES as e:
            self._storeFailureLog.emit(
                "The store failed; could not tell the contacts of {account} about a block list change: {error}",
                account=account.userhost(),
                error=f"{type(e).__name__}: {e}",
            )
            return []
        subscribed = {item.contact for item in items if item.inRoster and item.subscription in PRESENCE_TO_CONTACT}
        targets: dict[str, jid.JID] = {}
        for text in changed:
            pattern = _address(text)
            if pattern is None:
                continue
            if pattern.user is not None:
                if pattern.userhost() in subscribed:
                    targets[pattern.full()] = pattern
                continue
            if pattern.resource is not None:
                continue
            for contact in subscribed:
                address = _address(contact)
                if address is not None and isBlockedBy(frozenset([pattern.host]), address):
                    targets[contact] = address
        return list(targets.values())

    # --- filters ------------------------------------------------------------

    def filterInbound(self, event: Inbound) -> bool | defer.Deferred[bool]:
        """
        The L{INBOUND_FULL} and L{INBOUND_BARE} handler: keep from the
        recipient what comes from a JID it blocked; keep from anyone what
        the server sends on behalf of a local user to a JID that user
        blocked. Decided at once when the block lists it needs are in
        memory (see L{blockList}).

        @return: whether the stanza was stopped.
        """
        stanza = event.stanza
        account = event.target.userhostJID()
        sender = _address(stanza.getAttribute("from"))
        if sender is None or sender.userhost() == account.userhost():
            # The server's own stanzas; those between one's own resources.
            return False
        if _passesBlocking(stanza):
            return False
        if self._unreceived(event):
            # Nobody would get it: no need to read a block list (from the
            # store, for an account without sessions).
            return False
        own = self._inMemory(account.userhost())
        if own is not None:
            if isBlockedBy(own, sender):
                self._refuseInbound(event)
                return True
            if not self._checksSender(stanza, sender):
                return False
            theirs = self._inMemory(sender.userhost())
            if theirs is not None:
                if isBlockedBy(theirs, self._senderTarget(event)):
                    self._refuseOutbound(stanza, event.sender)
                    return True
                return False
        return defer.ensureDeferred(self._filterInboundFromStore(event, account, sender))

    def _checksSender(self, stanza: domish.Element, sender: jid.JID) -> bool:
        # What a local user sends (or the server sends for it) is kept
        # from the JIDs it blocked, unless this service sent it.
        return stanza not in self._exempt and sender.user is not None and self.sessions.isLocal(sender)

    def _senderTarget(self, event: Inbound) -> jid.JID:
        return _address(event.stanza.getAttribute("to")) or event.target

    async def _filterInboundFromStore(self, event: Inbound, account: jid.JID, sender: jid.JID) -> bool:
        stanza = event.stanza
        try:
            if await self._isBlocked(account, sender):
                self._refuseInbound(event)
                return True
            if self._checksSender(stanza, sender) and await self._isBlocked(
                sender.userhostJID(), self._senderTarget(event)
            ):
                self._refuseOutbound(stanza, event.sender)
                return True
        except STORE_FAILURES as e:
            self._storeFailed("read", account.userhost(), e)
            self._refuseUnchecked(stanza, event.sender)
            return True
        return False

    async def filterOutbound(self, event: Outbound) -> bool:
        """
        The L{OUTBOUND} handler: a stanza the user sends to a JID it
        blocked is not routed (section 3.3).

        @return: whether the stanza was stopped.
        """
        account = event.sender.jid.userhostJID()
        if event.target.userhost() == account.userhost() or _passesBlocking(event.stanza):
            return False
        try:
            if not await self._isBlocked(account, event.target):
                return False
        except STORE_FAILURES as e:
            self._storeFailed("read", account.userhost(), e)
            self._refuseUnchecked(event.stanza, event.sender)
            return True
        self._refuseOutbound(event.stanza, event.sender)
        return True

    def _unreceived(self, event: Inbound) -> bool:
        """
        Whether C{event} is presence that no feature acts on (not a
        subscription stanza nor a probe) for an account with no resource
        to deliver it to: the default delivery drops it (RFC 6121 sections
        8.5.2.2.3, 8.5.3.2.3), blocked or not.
        """
        stanza = event.stanza
        if stanza.name != "presence" or stanza.getAttribute("type") in HANDLED_PRESENCE_TYPES:
            return False
        if event.target.resource is not None:
            # To a full JID, the default delivers to that session, available
            # or not.
            return self.sessions.sessionFor(event.target) is None
        return not any(s.available for s in self.sessions.sessionsOf(event.target))

    def _refuseInbound(self, event: Inbound) -> None:
        # Section 3.3: presence without a word; messages of type chat and
        # normal, and iq requests, service-unavailable (as when offline);
        # the rest dropped.
        stanza = event.stanza
        if event.sender is None or not _answersRequest(stanza):
            return
        if stanza.name == "message" and stanza.getAttribute("type") not in (None, "normal", "chat"):
            return
        event.sender.send(error.StanzaError("service-unavailable").toResponse(stanza))

    def _refuseOutbound(self, stanza: domish.Element, sender: Session | None) -> None:
        if sender is not None and _answersRequest(stanza):
            sender.send(blockedError(stanza))

    def _refuseUnchecked(self, stanza: domish.Element, sender: Session | None) -> None:
        # Whether it is blocked cannot be told: not delivered, and the
        # sender (if any) may try again later.
        if sender is not None and _answersRequest(stanza):
            sender.send(self._unavailableError().toResponse(stanza))


__all__ = [
    "BLOCK",
    "BLOCKING_PRIORITY",
    "BLOCKLIST",
    "NS_BLOCKING",
    "NS_BLOCKING_ERRORS",
    "REQUESTED_KEY",
    "UNBLOCK",
    "BlockingHandler",
    "BlockingService",
    "IBlockList",
    "addressForms",
    "blockedError",
    "isBlockedBy",
    "itemsElement",
    "parseItems",
]
