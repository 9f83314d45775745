# -*- test-case-name: tests.test_im_roster -*-
"""
The roster (RFC 6121 section 2): the client gets it, adds, updates and
removes items, and every "interested resource" (one that asked for the
roster) is told of each change by a roster push (section 2.1.6); with
roster versioning (section 2.6), a client whose copy is current gets an
empty answer.

The shape is that of L{xmppcert.saslcert}: L{RosterHandler} parses the
client's requests on its stream (L{RosterSet}) and renders items; the
server-wide backend, L{RosterService} (provides L{IRosterService}), decides
and raises C{StanzaError}s.

The subscription states of RFC 6121 Appendix A live here too, as pure
functions (L{outboundTransition}, L{inboundTransition}) over
L{RosterItem<xmppcert.store.interfaces.RosterItem>}s, applied through
L{RosterService.update}, which serializes the changes of one roster;
L{xmppcert.im.presence} routes the presence stanzas around them.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
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
from xmppcert.config import IMConfig
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.jids import parseJID
from xmppcert.routing import INBOUND_BARE, IQS, SESSION_ENDED, Ended, Inbound
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import (
    STORE_FAILURES,
    NoSuchAccount,
    RosterFull,
    RosterItem,
)

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext
    from xmppcert.c2s.server import InformationalFeature

log = Logger(observer=_log.observer, namespace="xmppcert.im.roster")

_T = TypeVar("_T")

NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
#: RFC 6121 section 2.6.1: the stream feature announcing roster versioning.
NS_ROSTERVER = "urn:xmpp:features:rosterver"
#: RFC 6121 section 3.4.1: the stream feature announcing pre-approval.
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"

ROSTER_GET = f"/iq[@type='get']/query[@xmlns='{NS_ROSTER}']"
ROSTER_SET = f"/iq[@type='set']/query[@xmlns='{NS_ROSTER}']"

#: RFC 6121 section 2.3.3 lets the server limit the 'name' attribute and
#: group names ("a server-configured limit"); one JID part's limit (RFC
#: 7622), in UTF-8 bytes, well inside what the store keeps.
MAX_NAME_BYTES = 1023
MAX_GROUP_BYTES = 1023
#: Groups of one item; more is refused like a name too long.
MAX_GROUPS = 100

#: Where a session's L{Session.info} records that it asked for the roster
#: (an "interested resource", RFC 6121 section 2.1.6).
INTERESTED_KEY = "interested"

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The roster store is not available; try again later"

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0

#: Above the session registry's default (0) and carbons (10): a roster
#: request addressed to another account is answered here, never delivered.
ROSTER_PRIORITY = 20

# Subscription stanza types (RFC 6121 section 3).
SUBSCRIBE = "subscribe"
SUBSCRIBED = "subscribed"
UNSUBSCRIBE = "unsubscribe"
UNSUBSCRIBED = "unsubscribed"
SUBSCRIPTION_TYPES = frozenset({SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED})


# --- items -------------------------------------------------------------------


def isVisible(item: RosterItem | None) -> bool:
    """
    Whether the user sees C{item} in the roster: a contact that only asked
    to subscribe is kept, but is not an item (RFC 6121 section 3.1.3).
    """
    return item is not None and item.inRoster


def hasFrom(item: RosterItem | None) -> bool:
    """
    Whether the contact of C{item} is subscribed to the user's presence.
    """
    return item is not None and item.subscription in ("from", "both")


def hasTo(item: RosterItem | None) -> bool:
    """
    Whether the user is subscribed to the contact's presence.
    """
    return item is not None and item.subscription in ("to", "both")


def itemElement(item: RosterItem) -> domish.Element:
    """
    The C{<item/>} of a roster result or push (RFC 6121 section 2.1.2):
    C{ask='subscribe'} for Pending Out (2.1.2.2), C{approved='true'} for a
    pre-approval (2.1.2.1).
    """
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = item.contact
    if item.name is not None:
        element["name"] = item.name
    element["subscription"] = item.subscription
    if item.askOut:
        element["ask"] = "subscribe"
    if item.approved:
        element["approved"] = "true"
    for group in item.groups:
        element.addElement("group", content=group)
    return element


def removedElement(contact: str) -> domish.Element:
    """
    The C{<item/>} of a push for a removed item (RFC 6121 section 2.5.2).
    """
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = contact
    element["subscription"] = "remove"
    return element


def _shown(item: RosterItem | None) -> tuple[Any, ...] | None:
    """
    What a client sees of C{item}: a change of anything else (a pending
    inbound request) needs no push.
    """
    if not isVisible(item):
        return None
    assert item is not None
    return (item.name, item.groups, item.subscription, item.askOut, item.approved)


def _text(element: domish.Element) -> str:
    # str(element) is only the first text node; the parser may split text
    # (around entities) into several.
    return "".join(child for child in element.children if isinstance(child, str))


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class RosterSet:
    """
    The one C{<item/>} of a roster set (RFC 6121 sections 2.3 to 2.5).

    @ivar contact: the item's JID, a prepared bare JID.
    @ivar name: C{None} for none (an empty 'name' too).
    @ivar remove: C{subscription='remove'} (section 2.5); the name and
        groups are then not looked at.
    """

    contact: str
    name: str | None = None
    groups: tuple[str, ...] = ()
    remove: bool = False

    @classmethod
    def fromElement(cls, query: domish.Element, account: jid.JID) -> RosterSet:
        """
        @param query: the C{<query/>} of the roster set.
        @param account: the bare JID of the roster's owner.
        @raise error.StanzaError: C{bad-request}, C{not-acceptable},
            C{jid-malformed} or C{not-allowed}, as RFC 6121 section 2.3.3
            (and 2.1.2) says.
        """
        items = list(query.elements(NS_ROSTER, "item"))
        if len(items) != 1:
            # Section 2.3.3: exactly one item.
            raise error.StanzaError("bad-request", type="modify", text="A roster set holds exactly one <item/>")
        item = items[0]
        text = item.getAttribute("jid")
        if not text:
            raise error.StanzaError("bad-request", type="modify", text="The <item/> needs a 'jid'")
        try:
            contact = parseJID(text)
        except jid.InvalidFormat:
            raise error.StanzaError("jid-malformed", type="modify", text="The item's 'jid' is not a valid JID") from None
        if contact.resource is not None:
            # Subscriptions are between bare JIDs (section 3), and so are
            # the items that hold them.
            raise error.StanzaError("jid-malformed", type="modify", text="A roster item is a bare JID")
        if contact.userhost() == account.userhost():
            # The user's own presence needs no subscription (section 4.2.2
            # sends it to every resource); an item for it would only confuse.
            raise error.StanzaError("not-allowed", type="cancel", text="The roster cannot hold its own account")
        # Section 2.1.2.5: in a roster set, any 'subscription' other than
        # "remove" is ignored, as is 'ask' (2.1.2.2) and 'approved' (2.1.2.1).
        if item.getAttribute("subscription") == "remove":
            return cls(contact.userhost(), remove=True)
        name = item.getAttribute("name") or None
        if name is not None and _bytes(name) > MAX_NAME_BYTES:
            raise error.StanzaError(
                "not-acceptable", type="modify", text=f"The name is longer than {MAX_NAME_BYTES} bytes"
            )
        groups = tuple(_text(group) for group in item.elements(NS_ROSTER, "group"))
        if len(set(groups)) != len(groups):
            raise error.StanzaError("bad-request", type="modify", text="The item names a group twice")
        for group in groups:
            if not group:
                # To be in no group, an item has no <group/> (section 2.3.3).
                raise error.StanzaError("not-acceptable", type="modify", text="A group name is empty")
            if _bytes(group) > MAX_GROUP_BYTES:
                raise error.StanzaError(
                    "not-acceptable", type="modify", text=f"A group name is longer than {MAX_GROUP_BYTES} bytes"
                )
        if len(groups) > MAX_GROUPS:
            raise error.StanzaError(
                "not-acceptable", type="modify", text=f"An item may be in at most {MAX_GROUPS} groups"
            )
        return cls(contact.userhost(), name, groups)


# --- subscription states (RFC 6121 Appendix A) ----------------------------------


def _addFrom(subscription: str) -> str:
    return {"none": "from", "to": "both"}.get(subscription, subscription)


def _dropFrom(subscription: str) -> str:
    return {"from": "none", "both": "to"}.get(subscription, subscription)


def _addTo(subscription: str) -> str:
    return {"none": "to", "from": "both"}.get(subscription, subscription)


def _dropTo(subscription: str) -> str:
    return {"to": "none", "both": "from"}.get(subscription, subscription)


@dataclass(frozen=True)
class Transition:
    """
    What a subscription stanza does to a roster item.

    @ivar after: the item afterwards (the same one for "no state change").
    @ivar forward: for a stanza the user sends, whether it is routed to the
        contact; for one the user receives, whether it is delivered to the
        user's resources (Appendix A's "Deliver?" column).
    @ivar autoReply: for an inbound C{subscribe}, answer C{subscribed} on
        the user's behalf (already subscribed, or pre-approved: sections
        3.1.3 and 3.4).
    """

    after: RosterItem
    forward: bool
    autoReply: bool = False


def absentItem(contact: str) -> RosterItem:
    """
    The state "None" of a contact that has no item (not even a pending
    request) in the roster.
    """
    return RosterItem(contact, inRoster=False)


def outboundTransition(before: RosterItem, kind: str) -> Transition:
    """
    RFC 6121 Appendix A.2: the user sends C{kind} to the contact of
    C{before}.

    @param before: the item, or L{absentItem}.
    @param kind: one of L{SUBSCRIPTION_TYPES}.
    """
    subscription = before.subscription
    if kind == SUBSCRIBE:
        # A.2.1; the request is routed even when nothing changes (the
        # contact's server answers a repeated one, section 3.1.3), and the
        # contact becomes an item (section 3.1.2).
        if subscription in ("none", "from"):
            return Transition(replace(before, askOut=True, inRoster=True), True)
        return Transition(before, True)
    if kind == UNSUBSCRIBE:
        # A.2.2.
        return Transition(replace(before, askOut=False, subscription=_dropTo(subscription)), True)
    if kind == SUBSCRIBED:
        # A.2.3.
        if before.pendingIn:
            after = replace(before, pendingIn=False, approved=False, subscription=_addFrom(subscription), inRoster=True)
            return Transition(after, True)
        if hasFrom(before):
            return Transition(before, True)
        # Section 3.4: an approval nobody asked for yet is a pre-approval,
        # kept in the roster and not routed.
        return Transition(replace(before, approved=True, inRoster=True), False)
    if kind == UNSUBSCRIBED:
        # A.2.4; it also cancels a pre-approval (section 3.4).
        forward = before.pendingIn or hasFrom(before)
        after = replace(before, pendingIn=False, approved=False, subscription=_dropFrom(subscription))
        return Transition(after, forward)
    raise ValueError(f"not a subscription type: {kind!r}")


def inboundTransition(before: RosterItem, kind: str) -> Transition:
    """
    RFC 6121 Appendix A.3: the contact of C{before} sends C{kind} to the
    user.

    @param before: the item, or L{absentItem}.
    @param kind: one of L{SUBSCRIPTION_TYPES}.
    """
    subscription = before.subscription
    if kind == SUBSCRIBE:
        # A.3.1 and section 3.1.3.
        if hasFrom(before):
            return Transition(before, False, autoReply=True)
        if before.approved:
            after = replace(before, approved=False, pendingIn=False, subscription=_addFrom(subscription))
            return Transition(after, False, autoReply=True)
        if before.pendingIn:
            return Transition(before, False)
        return Transition(replace(before, pendingIn=True), True)
    if kind == UNSUBSCRIBE:
        # A.3.2.
        if before.pendingIn or hasFrom(before):
            return Transition(replace(before, pendingIn=False, subscription=_dropFrom(subscription)), True)
        return Transition(before, False)
    if kind == SUBSCRIBED:
        # A.3.3: only an answer to a request of the user's counts.
        if before.askOut:
            return Transition(replace(before, askOut=False, subscription=_addTo(subscription)), True)
        return Transition(before, False)
    if kind == UNSUBSCRIBED:
        # A.3.4.
        if before.askOut or hasTo(before):
            return Transition(replace(before, askOut=False, subscription=_dropTo(subscription)), True)
        return Transition(before, False)
    raise ValueError(f"not a subscription type: {kind!r}")


# --- the backend ----------------------------------------------------------------


@dataclass(frozen=True)
class RosterUpdate:
    """
    The result of L{RosterService.update}.

    @ivar before: the stored item before, C{None} for none.
    @ivar after: the stored item afterwards, C{None} for none.
    @ivar version: the roster's version afterwards; C{None} when nothing
        changed.
    """

    before: RosterItem | None
    after: RosterItem | None
    version: int | None

    @property
    def changed(self) -> bool:
        return self.version is not None


class IRosterListener(Interface):
    """
    Told of roster changes that other features act on (the presence
    service sends the unsubscriptions that removing an item implies).
    """

    def rosterItemRemoved(account, item):  # type: ignore[no-untyped-def]
        """
        The user removed C{item} from the roster (RFC 6121 section 2.5.2).

        @param account: the user's bare JID (a C{jid.JID}).
        @param item: the L{RosterItem} as it was.
        @return: C{None} or a Deferred.
        """


class IRosterChangeListener(Interface):
    """
    Told of every stored change to an item of a roster (personal eventing
    sends the last published items to a new subscriber, XEP-0163 section
    4.3.4). A listener given to L{RosterService.addListener} that provides
    this is told of changes; one that provides L{IRosterListener} of
    removals; one may provide both.
    """

    def rosterItemChanged(account, before, after):  # type: ignore[no-untyped-def]
        """
        An item of C{account}'s roster changed, and the change is stored
        and pushed: a subscription state, a pending request, the name or
        the groups; added (C{before} C{None}) or removed (C{after} C{None}).

        @param account: the roster's owner, a bare C{jid.JID}.
        @param before: the L{RosterItem} as it was, or C{None}.
        @param after: the L{RosterItem} as it is, or C{None}.
        @return: C{None}: what the listener does takes place in the
            background (the roster change does not wait for it); an
            exception is logged.
        """


class IRosterService(Interface):
    """
    The backend of L{RosterHandler}. Every method returns a Deferred and
    fails with C{error.StanzaError} to refuse.
    """

    def getRoster(session, version=None):  # type: ignore[no-untyped-def]
        """
        The roster for C{session}, which becomes an interested resource.

        @param version: the client's C{ver}, or C{None}.
        @return: Deferred firing with C{(ver, items)}: C{items} C{None}
            when the client's version is current (RFC 6121 section 2.6.3).
        """

    def setItem(account, request):  # type: ignore[no-untyped-def]
        """
        Add or update an item (sections 2.3, 2.4) of C{account} (bare JID)
        from a L{RosterSet}.
        """

    def removeItem(account, contact):  # type: ignore[no-untyped-def]
        """
        Remove C{contact} (section 2.5); C{item-not-found} if absent.
        """


@implementer(IRosterService)
class RosterService:
    """
    The rosters of every account: reads, serialized changes, pushes.

    @ivar store: provides L{xmppcert.store.interfaces.IRosterStore}.
    @ivar sessions: the L{SessionManager}, for pushes.
    @ivar listeners: L{IRosterListener}s.
    """

    def __init__(
        self,
        store: Any,
        sessions: SessionManager,
        clock: IReactorTime,
        config: Callable[[], IMConfig],
    ) -> None:
        """
        @param store: provides L{xmppcert.store.interfaces.IRosterStore}.
        @param config: returns the live L{IMConfig} (it may be reloaded).
        """
        self.store = store
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.listeners: list[Any] = []
        self._locks: dict[str, defer.DeferredLock] = {}
        self._pushIDs = itertools.count(1)
        # The rosters of accounts with sessions, by bare JID, for presence:
        # every probe and broadcast reads one, and most are of accounts
        # online. Kept up to date by update(); a change made while one was
        # being read (counted by _changes) keeps that one from the cache.
        self._cache: dict[str, dict[str, RosterItem]] = {}
        self._changes = 0
        # A broken store is an operator's matter (error), but each request
        # meeting it would be a line: at most one a minute.
        self.storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)

    def install(self) -> None:
        """
        Join local delivery: a roster request addressed to another account
        is refused with C{forbidden} (RFC 6121 section 2.3.3: only the
        account's own resources may read or change its roster), at
        L{ROSTER_PRIORITY} on L{INBOUND_BARE}.
        """
        self.sessions.hooks.add(INBOUND_BARE, self.refuseForeignRequest, ROSTER_PRIORITY, names=IQS)
        self.sessions.hooks.add(SESSION_ENDED, self.sessionEnded)

    def uninstall(self) -> None:
        self.sessions.hooks.remove(INBOUND_BARE, self.refuseForeignRequest)
        self.sessions.hooks.remove(SESSION_ENDED, self.sessionEnded)
        self.forgetRosters()

    def forgetRosters(self) -> None:
        """
        Read every roster from the store again when next needed. Changes
        made through this service are in memory at once; an account
        removed (which takes it out of every roster in the store) or
        rosters changed by another process are not: the server calls this
        at each session check (C{certificates.session_check_interval}),
        which also ends the sessions of removed accounts.
        """
        self._changes += 1
        self._cache.clear()

    def sessionEnded(self, event: Ended) -> None:
        """
        The L{SESSION_ENDED} handler: once an account has no session, its
        roster is read from the store again when needed.
        """
        if not self.sessions.sessionsOf(event.session.jid):
            self._cache.pop(event.session.jid.userhost(), None)

    def addListener(self, listener: Any) -> None:
        """
        @param listener: provides L{IRosterListener}, or
            L{IRosterChangeListener}, or both.
        """
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        """
        Stop telling C{listener}; nothing when it was not added.
        """
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _changed(self, account: jid.JID, before: RosterItem | None, after: RosterItem | None) -> None:
        for listener in list(self.listeners):
            if not IRosterChangeListener.providedBy(listener):
                continue
            try:
                listener.rosterItemChanged(account, before, after)
            except Exception:
                log.failure(
                    "A roster listener failed on a change of {account}'s roster", account=account.userhost()
                )

    # --- serialized changes ---------------------------------------------------

    async def _serialized(self, account: str, work: Callable[[], Awaitable[_T]]) -> _T:
        """
        Run C{work} with C{account}'s roster to itself: a change reads the
        item and writes it back, and two changes meeting in between (a roster
        set and a subscription answer) would lose one.
        """
        lock = self._locks.get(account)
        if lock is None:
            lock = self._locks[account] = defer.DeferredLock()
        await lock.acquire()
        try:
            return await work()
        finally:
            lock.release()
            if not lock.locked and self._locks.get(account) is lock:
                del self._locks[account]

    async def update(
        self, account: jid.JID, contact: str, change: Callable[[RosterItem], RosterItem | None]
    ) -> RosterUpdate:
        """
        Change one item and push the change to the interested resources.

        @param contact: the contact's prepared bare JID.
        @param change: given the item (L{absentItem} when there is none),
            returns it changed (or the same); C{None} removes it. An item
            neither in the roster nor a pending request is not kept.
        @raise RosterFull: a new item would exceed C{max_roster_items}.
        @raise NoSuchAccount: the account does not exist.
        """
        owner = account.userhost()

        async def work() -> RosterUpdate:
            before = await self.store.getRosterItem(owner, contact)
            after = change(before if before is not None else absentItem(contact))
            if after is not None and not after.inRoster and not after.pendingIn:
                after = None
            if after == before:
                return RosterUpdate(before, after, None)
            self._changes += 1
            if after is None:
                version = await self.store.removeRosterItem(owner, contact)
            else:
                version = await self.store.putRosterItem(owner, after, self.config().max_roster_items)
            self._changes += 1
            cached = self._cache.get(owner)
            if cached is not None:
                if after is None:
                    cached.pop(contact, None)
                else:
                    cached[contact] = after
            return RosterUpdate(before, after, version)

        result = await self._serialized(owner, work)
        if result.changed and _shown(result.before) != _shown(result.after):
            assert result.version is not None
            self.push(account, contact, result.after if isVisible(result.after) else None, result.version)
        if result.changed:
            self._changed(account.userhostJID(), result.before, result.after)
        return result

    # --- reads ----------------------------------------------------------------

    async def items(self, account: jid.JID) -> list[RosterItem]:
        """
        @return: every item of C{account}, pending requests included (from
            memory while the account has sessions).
        """
        owner = account.userhost()
        cached = self._cache.get(owner)
        if cached is not None:
            return list(cached.values())
        changes = self._changes
        _, items = await self.store.getRoster(owner)
        self._remember(owner, items, changes)
        return list(items)

    async def item(self, account: jid.JID, contact: str) -> RosterItem | None:
        """
        @return: C{account}'s item for C{contact}, or C{None}.
        """
        cached = self._cache.get(account.userhost())
        if cached is not None:
            return cached.get(contact)
        found: RosterItem | None = await self.store.getRosterItem(account.userhost(), contact)
        return found

    async def itemsFor(self, contact: str, accounts: Iterable[str]) -> dict[str, RosterItem | None]:
        """
        The item for C{contact} in the roster of each of C{accounts} (the
        answers to the probes a session's initial presence stands for,
        RFC 6121 section 4.3.2): from memory for the accounts with
        sessions, the others in one read of the store.

        @return: C{{account: item or None}} for every one of C{accounts}.
        """
        found: dict[str, RosterItem | None] = {}
        missing: list[str] = []
        for account in accounts:
            cached = self._cache.get(account)
            if cached is not None:
                found[account] = cached.get(contact)
            else:
                missing.append(account)
        if len(missing) == 1:
            found[missing[0]] = await self.store.getRosterItem(missing[0], contact)
        elif missing:
            wanted = dict.fromkeys(missing)
            for account, item in await self.store.rosterItemsWith(contact):
                if account in wanted:
                    wanted[account] = item
            found.update(wanted)
        return found

    def _remember(self, owner: str, items: Iterable[RosterItem], changes: int, fresh: bool = False) -> None:
        """
        Keep a roster read since C{changes} in memory, if the account has
        sessions and no roster changed meanwhile.

        @param fresh: replace the copy in memory (the client asked for its
            roster: a change made elsewhere shows from then on).
        """
        if changes != self._changes or (owner in self._cache and not fresh):
            return
        if self.sessions.sessionsOf(parseJID(owner)):
            self._cache[owner] = {item.contact: item for item in items}

    # --- pushes ---------------------------------------------------------------

    def push(self, account: jid.JID, contact: str, item: RosterItem | None, version: int) -> None:
        """
        A roster push (RFC 6121 section 2.1.6) to every interested resource
        of C{account}.

        @param item: the item now, C{None} if removed.
        """
        for session in self.sessions.sessionsOf(account):
            if session.info.get(INTERESTED_KEY) and not session.closed:
                iq = domish.Element((NS_CLIENT, "iq"))
                iq["type"] = "set"
                iq["id"] = f"push{next(self._pushIDs)}"
                iq["to"] = session.jid.full()
                query = iq.addElement((NS_ROSTER, "query"))
                query["ver"] = str(version)
                query.addChild(itemElement(item) if item is not None else removedElement(contact))
                session.send(iq)

    # --- IRosterService -------------------------------------------------------

    async def _guarded(self, verb: str, account: jid.JID, work: Awaitable[_T]) -> _T:
        """
        Run a request; the store's answers become their stanza errors
        (L{RosterFull}: L{rosterFullError}), and a store failure becomes
        C{internal-server-error} of type C{wait}, with one line at error
        level (at most one every L{STORE_FAILURE_LOG_INTERVAL} seconds)
        instead of a traceback.
        """
        try:
            return await work
        except RosterFull:
            raise rosterFullError(self.config().max_roster_items) from None
        except NoSuchAccount:
            # Deleted while logged in; its sessions are being closed.
            raise error.StanzaError("forbidden", type="auth") from None
        except STORE_FAILURES as e:
            self.storeFailureLog.emit(
                "The roster store failed; refused the roster {verb} of {account}: {error}",
                verb=verb,
                account=account.userhost(),
                error=f"{type(e).__name__}: {e}",
            )
            raise error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE) from None

    def getRoster(self, session: Session, version: str | None = None) -> defer.Deferred[tuple[str, list[RosterItem] | None]]:
        account = session.jid.userhostJID()
        return defer.ensureDeferred(self._guarded("get", account, self._getRoster(session, version)))

    async def _getRoster(self, session: Session, clientVersion: str | None) -> tuple[str, list[RosterItem] | None]:
        # The client's roster is always read from the store (whatever
        # changed it); it also fills the cache that presence reads.
        changes = self._changes
        version, items = await self.store.getRoster(session.jid.userhost())
        self._remember(session.jid.userhost(), items, changes, fresh=True)
        # Section 2.1.6: from now on it gets pushes (also when its copy was
        # current: then pushes are how it learns of later changes).
        session.info[INTERESTED_KEY] = True
        current = str(version)
        if clientVersion == current:
            # Section 2.6.3: an empty result; the client's copy is current.
            return current, None
        return current, [item for item in items if isVisible(item)]

    def setItem(self, account: jid.JID, request: RosterSet) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._guarded("set", account, self._setItem(account, request)))

    async def _setItem(self, account: jid.JID, request: RosterSet) -> None:
        def change(item: RosterItem) -> RosterItem:
            # Sections 2.3.2 and 2.4.2: the client sets the name and groups;
            # the subscription state stays the server's.
            return replace(item, name=request.name, groups=request.groups, inRoster=True)

        await self.update(account, request.contact, change)

    def removeItem(self, account: jid.JID, contact: str) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._guarded("remove", account, self._removeItem(account, contact)))

    async def _removeItem(self, account: jid.JID, contact: str) -> None:
        removed: list[RosterItem] = []

        def change(item: RosterItem) -> RosterItem | None:
            if isVisible(item):
                removed.append(item)
                return None
            return item

        await self.update(account, contact, change)
        if not removed:
            # Section 2.5.3.
            raise error.StanzaError("item-not-found", type="cancel", text="No such item in the roster")
        for listener in list(self.listeners):
            try:
                await listener.rosterItemRemoved(account, removed[0])
            except STORE_FAILURES as e:
                # The item is gone either way; the contact's side may lag.
                self.storeFailureLog.emit(
                    "The roster store failed while {account} removed {contact}: {error}",
                    account=account.userhost(),
                    contact=contact,
                    error=f"{type(e).__name__}: {e}",
                )

    # --- hooks ----------------------------------------------------------------

    def refuseForeignRequest(self, event: Inbound) -> bool:
        """
        An iq get or set in C{jabber:iq:roster} for another account's bare
        JID: C{forbidden} (RFC 6121 section 2.3.3), whether or not that
        account exists.
        """
        stanza = event.stanza
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            return False
        if not any(child.uri == NS_ROSTER and child.name == "query" for child in stanza.elements()):
            return False
        if event.sender is not None and event.sender.jid.userhost() == event.target.userhost():
            return False
        if event.sender is not None:
            reply = error.StanzaError(
                "forbidden", type="auth", text="Only the account itself may read or change its roster"
            ).toResponse(stanza)
            event.sender.send(reply)
        return True


def rosterFullError(limit: int) -> error.StanzaError:
    """
    The error for an item the roster has no room for: C{resource-constraint}
    (RFC 6120 section 8.3.3.18), as for the certificate limit of
    L{xmppcert.saslcert}, rather than RFC 6120's C{policy-violation}, which
    clients with the RFC 3920 condition list cannot parse.
    """
    return error.StanzaError(
        "resource-constraint",
        type="wait",
        text=f"A roster may hold at most {limit} contacts; remove one first",
    )


# --- the protocol on one stream ----------------------------------------------


@implementer(IDisco)
class RosterHandler(OrderedIQHandler):
    """
    C{jabber:iq:roster} on one bound client stream: roster gets and sets
    without C{to} or to the user's own bare JID (RFC 6121 section 2.1.3).
    """

    iqHandlers = {ROSTER_GET: "_onGet", ROSTER_SET: "_onSet"}

    def __init__(self, service: IRosterService, session: Session) -> None:
        OrderedIQHandler.__init__(self)
        self.service = service
        self.session = session

    def _query(self, iq: domish.Element) -> domish.Element:
        to = iq.getAttribute("to")
        if to is not None and to != self.session.jid.userhost():
            # The stream hands over requests to the server's domain too;
            # the roster is the account's, not the server's.
            raise error.StanzaError("service-unavailable", type="cancel")
        return next(child for child in iq.elements(NS_ROSTER, "query"))

    def _onGet(self, iq: domish.Element) -> defer.Deferred[domish.Element | None]:
        version = self._query(iq).getAttribute("ver")

        def answer(result: tuple[str, list[RosterItem] | None]) -> domish.Element | None:
            current, items = result
            if items is None:
                return None
            query = domish.Element((NS_ROSTER, "query"))
            query["ver"] = current
            for item in items:
                query.addChild(itemElement(item))
            return query

        return defer.maybeDeferred(self.service.getRoster, self.session, version).addCallback(answer)

    def _onSet(self, iq: domish.Element) -> defer.Deferred[None]:
        account = self.session.jid.userhostJID()
        request = RosterSet.fromElement(self._query(iq), account)
        if request.remove:
            return defer.maybeDeferred(self.service.removeItem, account, request.contact)
        return defer.maybeDeferred(self.service.setItem, account, request)

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        if nodeIdentifier:
            return []
        return [disco.DiscoFeature(NS_ROSTER)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


def rosterHandlers(service: IRosterService) -> Callable[[StreamContext], list[XMPPHandler]]:
    """
    A handler factory (C{handlerFactories}) giving each bound stream its
    L{RosterHandler}.
    """

    def makeHandlers(context: StreamContext) -> list[XMPPHandler]:
        return [RosterHandler(service, context.session)]

    return makeHandlers


def streamFeatures(preApproval: bool = True) -> list[InformationalFeature]:
    """
    The stream features to announce with bind: roster versioning (RFC 6121
    section 2.6.1), and pre-approval (section 3.4.1) when
    L{xmppcert.im.presence} is installed.
    """
    from xmppcert.c2s.server import InformationalFeature

    features = [InformationalFeature(NS_ROSTERVER, "ver")]
    if preApproval:
        features.append(InformationalFeature(NS_PREAPPROVAL, "sub"))
    return features


__all__ = [
    "INTERESTED_KEY",
    "MAX_GROUPS",
    "MAX_GROUP_BYTES",
    "MAX_NAME_BYTES",
    "NS_PREAPPROVAL",
    "NS_ROSTER",
    "NS_ROSTERVER",
    "ROSTER_GET",
    "ROSTER_PRIORITY",
    "ROSTER_SET",
    "SUBSCRIBE",
    "SUBSCRIBED",
    "SUBSCRIPTION_TYPES",
    "UNSUBSCRIBE",
    "UNSUBSCRIBED",
    "IRosterChangeListener",
    "IRosterListener",
    "IRosterService",
    "RosterHandler",
    "RosterService",
    "RosterSet",
    "RosterUpdate",
    "Transition",
    "absentItem",
    "hasFrom",
    "hasTo",
    "inboundTransition",
    "isVisible",
    "itemElement",
    "outboundTransition",
    "removedElement",
    "rosterFullError",
    "rosterHandlers",
    "streamFeatures",
]
