# -*- test-case-name: tests.test_im_presence -*-
"""
Presence subscriptions (RFC 6121 section 3) and presence (section 4)
between the accounts of this server, joined to local delivery through the
hook points of L{xmppcert.routing} (L{PresenceService.install}):

  - a subscription stanza a user sends (L{OUTBOUND}) changes the user's
    roster item by RFC 6121 Appendix A.2, is stamped with both bare JIDs
    (section 3.1.2) and delivered to the contact, whose roster item
    changes by Appendix A.3 (L{INBOUND_BARE}): a request is delivered to
    the contact's available resources and kept until answered (Pending
    In, delivered again on the contact's next initial presence), answered
    at once when the user is subscribed already or pre-approved (section
    3.4);
  - available presence without C{to} goes to the contacts subscribed to
    the user (section 4.2.2, 4.4.2); initial presence also gives the new
    resource the presence of the contacts the user is subscribed to, each
    answered as the probe of section 4.3 would be (by the contact's
    roster, section 4.3.2, not the user's), without sending any, as every
    contact is local; requests still pending go to it through the hooks,
    so that blocking (XEP-0191) sees them;
  - presence probes are answered on the account's behalf (section 4.3.2);
  - the contacts told a session is available (L{PresenceState.told}) and
    its directed presence (section 4.6) are remembered per session, and
    told with unavailable presence when the session goes unavailable or
    ends (section 4.6.3, 4.5.2), however it ends: a revoked certificate, a
    kick, a lost connection, its account deleted (L{SESSION_ENDED});
  - each session may send presence at C{presence_rate} per second (with a
    burst of C{presence_burst}); what it sends beyond is dropped, and only
    its own contacts ever notice.

There is no server-to-server: subscription stanzas for other domains are
left to the session registry, which answers C{remote-server-not-found}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from weakref import WeakSet

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcert import _log
from xmppcert.config import IMConfig
from xmppcert.im.roster import (
    INTERESTED_KEY,
    SUBSCRIBE,
    SUBSCRIBED,
    SUBSCRIPTION_TYPES,
    UNSUBSCRIBE,
    UNSUBSCRIBED,
    IRosterListener,
    RosterService,
    Transition,
    hasFrom,
    hasTo,
    inboundTransition,
    outboundTransition,
    rosterFullError,
)
from xmppcert.jids import parseJID
from xmppcert.routing import (
    INBOUND_BARE,
    INBOUND_FULL,
    OUTBOUND,
    PRESENCE_BROADCAST,
    PRESENCES,
    SESSION_ENDED,
    Broadcast,
    Ended,
    Inbound,
    Outbound,
)
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import STORE_FAILURES, NoSuchAccount, RosterFull, RosterItem

log = Logger(observer=_log.observer, namespace="xmppcert.im.presence")

_T = TypeVar("_T")

NS_CLIENT = "jabber:client"

#: Above every other handler of L{OUTBOUND}: a flood is dropped before
#: anything (blocking, subscriptions, carbons) works on it.
FLOOD_PRIORITY = 1000

#: Above the session registry's default delivery (0) and carbons (10),
#: below blocking (which refuses what must not reach this far).
SUBSCRIPTION_PRIORITY = 20

#: Where a session's L{Session.info} keeps its L{PresenceState}.
STATE_KEY = "presence"

#: Entities a session's directed presence is remembered for (section 4.6);
#: beyond, the oldest is told the session is unavailable and forgotten.
MAX_DIRECTED = 1000

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0

#: RFC 6120 section 8.2.3 and RFC 6121 section 4.7.1: the types presence
#: may have.
PRESENCE_TYPES = frozenset({"error", "probe", "unavailable", *SUBSCRIPTION_TYPES})


@dataclass
class PresenceState:
    """
    What the presence service knows of one session.

    @ivar tokens: presence stanzas it may still send now (a token bucket
        refilled at C{presence_rate} per second up to C{presence_burst}).
    @ivar stamp: when L{tokens} was last brought up to date.
    @ivar announced: its contacts were told it is available (and must be
        told when it no longer is).
    @ivar initialDone: its initial presence was answered with the presence
        of its contacts and the pending subscription requests.
    @ivar told: bare JIDs of the contacts told it is available by the
        server on its behalf (its broadcasts to its subscribers, answers to
        their probes, section 3.1.5), oldest first: they, and only they,
        are told when it no longer is (section 4.5.2), without reading the
        roster again (the account may be gone by then).
    @ivar directed: full or bare JIDs it sent directed available presence
        to, oldest first (RFC 6121 section 4.6).
    @ivar trailing: a call that tells the contacts of its latest presence
        once the bucket has a token again (a presence dropped for flooding
        must not leave them with a stale one).
    @ivar floodLogged: its flooding was logged (once per session).
    @ivar lock: serializes its presence work (a broadcast reads the roster;
        an unavailable sent meanwhile must not overtake it).
    """

    tokens: float
    stamp: float
    announced: bool = False
    initialDone: bool = False
    # Plain dicts (insertion order), not OrderedDicts: a third of the
    # memory, and every available session of a user with contacts has one.
    told: dict[str, None] = field(default_factory=dict)
    directed: dict[str, None] = field(default_factory=dict)
    trailing: IDelayedCall | None = None
    floodLogged: bool = False
    lock: defer.DeferredLock = field(default_factory=defer.DeferredLock)


def presenceStanza(kind: str | None, sender: str, to: str | None = None) -> domish.Element:
    """
    A presence stanza the server sends on an account's behalf.
    """
    presence = domish.Element((NS_CLIENT, "presence"))
    if kind is not None:
        presence["type"] = kind
    presence["from"] = sender
    if to is not None:
        presence["to"] = to
    return presence


def _toEnd(keys: dict[str, None], key: str) -> None:
    # Newest last.
    keys.pop(key, None)
    keys[key] = None


def _popOldest(keys: dict[str, None]) -> str:
    oldest = next(iter(keys))
    del keys[oldest]
    return oldest


def _addressed(stanza: domish.Element, to: jid.JID) -> domish.Element:
    # A shallow copy: the children are shared, only 'to' differs.
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri, dict(stanza.attributes))
    copy.children = stanza.children
    copy["to"] = to.full()
    return copy


@implementer(IRosterListener)
class PresenceService:
    """
    Subscriptions and presence for the accounts of one server.
    """

    def __init__(
        self,
        sessions: SessionManager,
        roster: RosterService,
        clock: IReactorTime,
        config: Callable[[], IMConfig],
        limitBroadcasts: bool = True,
    ) -> None:
        """
        @param roster: the rosters (and the store behind them).
        @param config: returns the live L{IMConfig} (it may be reloaded).
        @param limitBroadcasts: apply the presence limit to presence
            without C{to} here (only its broadcast to contacts can be held
            back); C{False} when the stream checks L{allowPresence} itself
            before the presence is handled at all.
        """
        self.sessions = sessions
        self.roster = roster
        self.clock = clock
        self.config = config
        self.limitBroadcasts = limitBroadcasts
        self.storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)
        # Pending subscription requests sent again to a session that became
        # available (section 3.1.3): delivered through the hooks (so that
        # blocking sees them), not handled again as new requests.
        self._redelivered: WeakSet[domish.Element] = WeakSet()

    def install(self) -> None:
        """
        Join local delivery: the presence limit on L{OUTBOUND} at
        L{FLOOD_PRIORITY}; subscriptions, directed presence and probes on
        L{OUTBOUND}, L{INBOUND_BARE} and L{INBOUND_FULL} at
        L{SUBSCRIPTION_PRIORITY}; L{PRESENCE_BROADCAST}, L{SESSION_ENDED};
        and the roster's removals (L{IRosterListener}).
        """
        hooks = self.sessions.hooks
        hooks.add(OUTBOUND, self.limitPresence, FLOOD_PRIORITY, names=PRESENCES)
        hooks.add(OUTBOUND, self.outbound, SUBSCRIPTION_PRIORITY, names=PRESENCES)
        hooks.add(INBOUND_BARE, self.inbound, SUBSCRIPTION_PRIORITY, names=PRESENCES)
        hooks.add(INBOUND_FULL, self.inbound, SUBSCRIPTION_PRIORITY, names=PRESENCES)
        hooks.add(PRESENCE_BROADCAST, self.presenceBroadcast)
        hooks.add(SESSION_ENDED, self.sessionEnded)
        self.roster.addListener(self)

    def uninstall(self) -> None:
        hooks = self.sessions.hooks
        hooks.remove(OUTBOUND, self.limitPresence)
        hooks.remove(OUTBOUND, self.outbound)
        hooks.remove(INBOUND_BARE, self.inbound)
        hooks.remove(INBOUND_FULL, self.inbound)
        hooks.remove(PRESENCE_BROADCAST, self.presenceBroadcast)
        hooks.remove(SESSION_ENDED, self.sessionEnded)
        if self in self.roster.listeners:
            self.roster.listeners.remove(self)

    # --- per-session state and the presence limit ------------------------------

    def state(self, session: Session) -> PresenceState:
        """
        The L{PresenceState} of C{session}, made on first use.
        """
        state = session.info.get(STATE_KEY)
        if not isinstance(state, PresenceState):
            state = PresenceState(tokens=float(self.config().presence_burst), stamp=self.clock.seconds())
            session.info[STATE_KEY] = state
        return state

    def allowPresence(self, session: Session) -> bool:
        """
        Take one token from C{session}'s bucket.

        @return: whether it may send one more presence stanza now; when it
            may not, its flooding is logged (once per session).
        """
        state = self.state(session)
        config = self.config()
        now = self.clock.seconds()
        state.tokens = min(float(config.presence_burst), state.tokens + (now - state.stamp) * config.presence_rate)
        state.stamp = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return True
        if not state.floodLogged:
            state.floodLogged = True
            # Info, once: a client's doing, which costs it only its own
            # presence updates.
            log.info(
                "{jid} sends presence faster than {rate:g} a second; what it sends beyond is dropped",
                jid=session.jid.full(),
                rate=config.presence_rate,
            )
        return False

    def limitPresence(self, event: Outbound) -> bool:
        """
        L{OUTBOUND}: drop presence beyond the session's limit.
        """
        if event.stanza.name != "presence":
            return False
        return not self.allowPresence(event.sender)

    # --- helpers ------------------------------------------------------------------

    async def _locked(self, state: PresenceState, work: Callable[[], Awaitable[_T]]) -> _T:
        await state.lock.acquire()
        try:
            return await work()
        finally:
            state.lock.release()

    def _storeFailed(self, what: str, account: str, failure: BaseException) -> None:
        self.storeFailureLog.emit(
            "The roster store failed; {what} of {account} skipped: {error}",
            what=what,
            account=account,
            error=f"{type(failure).__name__}: {failure}",
        )

    def _isAccountJID(self, target: jid.JID) -> bool:
        return target.user is not None and self.sessions.isLocal(target)

    def _announcedSessions(self, account: jid.JID) -> list[Session]:
        return [
            s
            for s in self.sessions.sessionsOf(account)
            if s.available and s.presence is not None and not s.closed and self.state(s).announced
        ]

    async def _sendPresenceOf(self, account: jid.JID, to: jid.JID, unavailableIfNone: bool = False) -> None:
        """
        Send C{to} the presence of each of C{account}'s available
        resources (RFC 6121 sections 3.1.5, 4.3.2); with
        C{unavailableIfNone}, unavailable presence when there is none.
        """
        sent = 0
        for session in self._announcedSessions(account):
            assert session.presence is not None
            self._noteTold(session, to)
            await self.sessions.deliver(_addressed(session.presence, to), to, session)
            sent += 1
        if not sent and unavailableIfNone:
            await self.sessions.deliver(presenceStanza("unavailable", account.userhost(), to.full()), to)

    async def _sendUnavailableOf(self, account: jid.JID, to: jid.JID) -> None:
        """
        Tell C{to} that each of C{account}'s available resources is gone
        for it (RFC 6121 sections 3.2.2, 3.3.3: its subscription ended).
        """
        for session in self._announcedSessions(account):
            self._forgetTold(session, to)
            await self.sessions.deliver(presenceStanza("unavailable", session.jid.full(), to.full()), to, session)

    def _noteTold(self, session: Session, contact: jid.JID) -> None:
        """
        Remember that C{contact} was told C{session} is available; beyond
        the roster limit (which bounds the subscribers), the oldest is told
        it is unavailable and forgotten.
        """
        state = self.state(session)
        key = contact.userhost()
        _toEnd(state.told, key)
        while len(state.told) > max(1, self.config().max_roster_items):
            oldest = _popOldest(state.told)
            unavailable = presenceStanza("unavailable", session.jid.full(), oldest)
            defer.ensureDeferred(self._deliverQuietly(unavailable, parseJID(oldest), session))

    def _forgetTold(self, session: Session, contact: jid.JID) -> None:
        self.state(session).told.pop(contact.userhost(), None)

    async def _sendSubscription(self, kind: str, account: jid.JID, contact: jid.JID) -> None:
        """
        Send a subscription stanza on C{account}'s behalf to a local
        C{contact}, to be handled as if the user had sent it.
        """
        await self.sessions.deliver(presenceStanza(kind, account.userhost(), contact.userhost()), contact)

    # --- stanzas a session sends (OUTBOUND) ----------------------------------

    async def outbound(self, event: Outbound) -> bool:
        """
        L{OUTBOUND}: subscription stanzas (Appendix A.2) and directed
        presence (section 4.6) of a local user.
        """
        stanza = event.stanza
        if stanza.name != "presence":
            return False
        kind = stanza.getAttribute("type")
        if kind in SUBSCRIPTION_TYPES:
            return await self._outboundSubscription(event.sender, stanza, kind, event.target)
        if kind is None or kind == "unavailable":
            self._noteDirected(event.sender, event.target, kind is None)
            return False
        if kind not in PRESENCE_TYPES:
            # RFC 6120 section 8.3.3.1: a type presence does not have.
            reply = error.StanzaError("bad-request", type="modify", text="Unknown presence type").toResponse(stanza)
            event.sender.send(reply)
            return True
        return False

    def _noteDirected(self, session: Session, target: jid.JID, available: bool) -> None:
        """
        Remember (or forget, for unavailable) directed presence to an
        entity of this server other than the user (section 4.6.2); other
        domains are unreachable, and the user's own resources learn of
        its unavailability anyway.
        """
        if not self.sessions.isLocal(target) or target.userhost() == session.jid.userhost():
            return
        state = self.state(session)
        key = target.full()
        if not available:
            state.directed.pop(key, None)
            return
        _toEnd(state.directed, key)
        while len(state.directed) > MAX_DIRECTED:
            oldest = _popOldest(state.directed)
            unavailable = presenceStanza("unavailable", session.jid.full(), oldest)
            defer.ensureDeferred(self._deliverQuietly(unavailable, parseJID(oldest), session))

    async def _deliverQuietly(self, stanza: domish.Element, target: jid.JID, sender: Session | None) -> None:
        try:
            await self.sessions.deliver(stanza, target, sender)
        except STORE_FAILURES as e:
            self._storeFailed("a presence delivery", target.userhost(), e)

    async def _outboundSubscription(self, session: Session, stanza: domish.Element, kind: str, target: jid.JID) -> bool:
        if not self._isAccountJID(target):
            # Another domain (no server-to-server) or a domain itself: the
            # session registry answers as for any stanza.
            return False
        user = session.jid.userhostJID()
        contact = target.userhostJID()
        if contact == user:
            # No subscription to oneself: its resources share its presence
            # (section 4.2.2).
            return True
        transitions: list[Transition] = []

        def change(item: RosterItem) -> RosterItem:
            transitions.append(outboundTransition(item, kind))
            return transitions[-1].after

        try:
            update = await self.roster.update(user, contact.userhost(), change)
        except RosterFull:
            session.send(rosterFullError(self.config().max_roster_items).toResponse(stanza))
            return True
        except NoSuchAccount:
            # Deleted while logged in; its sessions are being closed.
            return True
        except STORE_FAILURES as e:
            self._storeFailed(f"a {kind}", user.userhost(), e)
            session.send(error.StanzaError("internal-server-error", type="wait").toResponse(stanza))
            return True
        transition = transitions[-1]
        # Section 3.1.2 (and 3.2.2, 3.3.2): both addresses are bare JIDs.
        stanza["from"] = user.userhost()
        stanza["to"] = contact.userhost()
        if transition.forward:
            await self.sessions.deliver(stanza, contact, session)
        if kind == SUBSCRIBED and transition.forward:
            # Section 3.1.5: the new subscriber gets the user's presence.
            await self._sendPresenceOf(user, contact)
        elif kind == UNSUBSCRIBED and hasFrom(update.before) and not hasFrom(update.after):
            # Section 3.2.2: the former subscriber sees the user go.
            await self._sendUnavailableOf(user, contact)
        return True

    # --- stanzas for a local account (INBOUND_BARE, INBOUND_FULL) -------------

    def inbound(self, event: Inbound) -> bool | defer.Deferred[bool]:
        """
        L{INBOUND_BARE} and L{INBOUND_FULL}: subscription stanzas (Appendix
        A.3) and probes (section 4.3.2) for a local account; to a full JID
        they are handled as to the bare JID. Other presence is delivered by
        the session registry, from contacts or not (section 8.5.2.1.2).
        """
        stanza = event.stanza
        if stanza.name != "presence" or stanza in self._redelivered:
            return False
        kind = stanza.getAttribute("type")
        if kind not in SUBSCRIPTION_TYPES and kind != "probe":
            return False
        try:
            sender = parseJID(stanza.getAttribute("from") or "")
        except jid.InvalidFormat:
            return True
        account = event.target.userhostJID()
        if sender.userhost() == account.userhost():
            return True
        return defer.ensureDeferred(self._inbound(account, sender, stanza, kind))

    async def _inbound(self, account: jid.JID, sender: jid.JID, stanza: domish.Element, kind: str) -> bool:
        try:
            if kind == "probe":
                await self._answerProbe(account, sender)
            else:
                await self._inboundSubscription(account, sender.userhostJID(), stanza, kind)
        except STORE_FAILURES as e:
            self._storeFailed(f"an inbound {kind}", account.userhost(), e)
        return True

    async def _inboundSubscription(self, account: jid.JID, contact: jid.JID, stanza: domish.Element, kind: str) -> None:
        transitions: list[Transition] = []

        def change(item: RosterItem) -> RosterItem:
            transitions.append(inboundTransition(item, kind))
            return transitions[-1].after

        try:
            update = await self.roster.update(account, contact.userhost(), change)
        except (RosterFull, NoSuchAccount):
            # No room for another request, or no such account: the request
            # is dropped (RFC 6121 section 8.5.1 lets the server ignore a
            # subscription request for an account that does not exist, and
            # the sender learns nothing either way).
            log.debug("Dropped a {kind} from {contact} to {account}", kind=kind, contact=contact, account=account)
            return
        transition = transitions[-1]
        if transition.forward:
            stanza["from"] = contact.userhost()
            stanza["to"] = account.userhost()
            for session in self.sessions.sessionsOf(account):
                if session.closed:
                    continue
                # Section 3.1.3: a request to the available resources (and
                # kept for the others); answers to the interested ones.
                if session.available if kind == SUBSCRIBE else session.info.get(INTERESTED_KEY):
                    session.send(stanza)
        if transition.autoReply:
            # Sections 3.1.3 and 3.4: subscribed already, or pre-approved.
            await self._sendSubscription(SUBSCRIBED, account, contact)
            await self._sendPresenceOf(account, contact)
        if kind == UNSUBSCRIBE and hasFrom(update.before) and not hasFrom(update.after):
            # Section 3.3.3: the former subscriber sees the account go.
            await self._sendUnavailableOf(account, contact)

    async def _answerProbe(self, account: jid.JID, prober: jid.JID) -> None:
        """
        Section 4.3.2: a subscriber gets the presence of each available
        resource (unavailable presence if none); anyone else is told
        C{unsubscribed}, which also mends a roster that believes otherwise.
        """
        await self._answerProbeWith(account, prober, await self.roster.item(account, prober.userhost()))

    async def _answerProbeWith(self, account: jid.JID, prober: jid.JID, item: RosterItem | None) -> None:
        """
        L{_answerProbe}, given C{account}'s item for the prober.
        """
        if hasFrom(item):
            await self._sendPresenceOf(account, prober, unavailableIfNone=True)
        else:
            await self._sendSubscription(UNSUBSCRIBED, account, prober.userhostJID())

    # --- presence without 'to' (PRESENCE_BROADCAST) and the end of a session -----

    async def presenceBroadcast(self, event: Broadcast) -> None:
        """
        L{PRESENCE_BROADCAST}: tell the contacts subscribed to the user
        (section 4.2.2, 4.4.2, 4.5.2); on initial presence, also give the
        session the presence of its contacts and the pending requests.
        """
        session = event.session
        state = self.state(session)
        if event.unavailable:
            self._cancelTrailing(state)
            await self._locked(state, lambda: self._goneUnavailable(session, state, event.presence))
            return
        if self.limitBroadcasts and not self.allowPresence(session):
            self._scheduleTrailing(session, state)
            return
        await self._locked(state, lambda: self._announce(session, state))

    async def sessionEnded(self, event: Ended) -> None:
        """
        L{SESSION_ENDED}: unavailable presence on the session's behalf to
        the contacts told it was available and to the entities it sent
        directed presence to
        (sections 4.5.2, 4.6.3), whatever ended it.
        """
        session = event.session
        state = session.info.get(STATE_KEY)
        if not isinstance(state, PresenceState):
            return
        self._cancelTrailing(state)
        unavailable = presenceStanza("unavailable", session.jid.full())
        await self._locked(state, lambda: self._goneUnavailable(session, state, unavailable))

    async def _subscribers(self, account: jid.JID, items: list[RosterItem] | None = None) -> list[jid.JID]:
        if items is None:
            items = await self.roster.items(account)
        subscribers = [parseJID(item.contact) for item in items if hasFrom(item)]
        return [contact for contact in subscribers if self._isAccountJID(contact)]

    async def _announce(self, session: Session, state: PresenceState) -> None:
        """
        Send the session's current presence to the user's subscribers; the
        first time in its availability, also answer for its contacts.
        """
        presence = session.presence
        if presence is None or not session.available or session.closed:
            return
        account = session.jid.userhostJID()
        # Marked first: an unavailable that comes while the roster is read
        # must be sent to the subscribers too.
        state.announced = True
        try:
            items = await self.roster.items(account)
        except STORE_FAILURES as e:
            self._storeFailed("a presence broadcast", account.userhost(), e)
            return
        for contact in await self._subscribers(account, items):
            self._noteTold(session, contact)
            await self.sessions.deliver(_addressed(presence, contact), contact, session)
        if state.initialDone:
            return
        state.initialDone = True
        # Section 4.3.2, for the probes section 4.3.1 would send: the
        # contacts' rosters decide, not the user's (a subscription a contact
        # cancelled is not a licence to see it). Read together: most
        # contacts are offline, and their rosters are in the store.
        contacts = (parseJID(item.contact) for item in items if hasTo(item))
        probed = [contact for contact in contacts if self._isAccountJID(contact)]
        try:
            theirs = await self.roster.itemsFor(account.userhost(), [contact.userhost() for contact in probed])
        except STORE_FAILURES as e:
            self._storeFailed("the probe answers", account.userhost(), e)
            probed = []
        for contact in probed:
            await self._answerProbeWith(contact, session.jid, theirs.get(contact.userhost()))
        for item in items:
            if item.pendingIn and not session.closed:
                # Section 3.1.3: requests the user has not answered, through
                # the hooks (XEP-0191: not from a JID the user blocked).
                request = presenceStanza(SUBSCRIBE, item.contact, account.userhost())
                self._redelivered.add(request)
                await self._deliverQuietly(request, session.jid, None)

    async def _goneUnavailable(self, session: Session, state: PresenceState, presence: domish.Element) -> None:
        """
        Tell the contacts that were told it was available (L{PresenceState.told})
        and the directed presence targets that the session is unavailable:
        those it told, not those the roster names now (the account may be
        deleted, its roster gone, section 4.5.2).
        """
        state.announced = False
        state.initialDone = False
        told = list(state.told)
        state.told.clear()
        directed = list(state.directed)
        state.directed.clear()
        covered = set(told)
        for contact in told:
            contactJID = parseJID(contact)
            await self.sessions.deliver(_addressed(presence, contactJID), contactJID, session)
        for target in directed:
            targetJID = parseJID(target)
            if targetJID.userhost() not in covered:
                await self.sessions.deliver(_addressed(presence, targetJID), targetJID, session)

    def _cancelTrailing(self, state: PresenceState) -> None:
        if state.trailing is not None and state.trailing.active():
            state.trailing.cancel()
        state.trailing = None

    def _scheduleTrailing(self, session: Session, state: PresenceState) -> None:
        """
        Tell the subscribers the session's latest presence once its bucket
        holds a token again.
        """
        if state.trailing is not None and state.trailing.active():
            return
        delay = max(0.0, 1.0 - state.tokens) / self.config().presence_rate
        state.trailing = self.clock.callLater(delay, self._trailingDue, session)

    def _trailingDue(self, session: Session) -> None:
        state = self.state(session)
        state.trailing = None
        if session.closed or not session.available:
            return
        if not self.allowPresence(session):
            self._scheduleTrailing(session, state)
            return
        defer.ensureDeferred(self._locked(state, lambda: self._announce(session, state)))

    # --- IRosterListener --------------------------------------------------------

    async def rosterItemRemoved(self, account: jid.JID, item: RosterItem) -> None:
        """
        RFC 6121 section 2.5.2: removing an item ends both subscriptions
        (and cancels the pending requests) with the contact.
        """
        contact = parseJID(item.contact)
        if not self._isAccountJID(contact):
            return
        if hasTo(item) or item.askOut:
            await self._sendSubscription(UNSUBSCRIBE, account, contact)
        if hasFrom(item) or item.pendingIn:
            await self._sendSubscription(UNSUBSCRIBED, account, contact)
        if hasFrom(item):
            await self._sendUnavailableOf(account, contact)


__all__ = [
    "FLOOD_PRIORITY",
    "MAX_DIRECTED",
    "PRESENCE_TYPES",
    "STATE_KEY",
    "SUBSCRIPTION_PRIORITY",
    "PresenceService",
    "PresenceState",
    "presenceStanza",
]
