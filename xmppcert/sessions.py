# -*- test-case-name: tests.test_sessions -*-
"""
Who is online, with which resource, and local delivery between them.

wokkel's C{Router} routes by domain and its C{StreamManager} holds one
stream, so a client server needs this registry: bare JID to resources to
sessions, and the RFC 6120/6121 delivery rules for full and bare JIDs.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface import Interface, implementer

from xmppcert import _log
from xmppcert.jids import parseJID
from xmppcert.routing import (
    DEFAULT_PRIORITY,
    INBOUND_BARE,
    INBOUND_FULL,
    OUTBOUND,
    PRESENCE_BROADCAST,
    SESSION_ENDED,
    Broadcast,
    Ended,
    HookFailed,
    Inbound,
    Outbound,
    StanzaHooks,
)
from xmppcert.store.interfaces import IAccountStore

log = Logger(observer=_log.observer)

NS_CLIENT = "jabber:client"

#: Revoked fingerprints remembered for logins in progress (revocations are
#: rare; this bounds the memory all the same).
MAX_REMEMBERED_REVOCATIONS = 10000

#: Bars of logins in progress remembered per account (a bar for all its
#: logins replaces those before it; bars with a C{where} add up only with
#: different predicates).
MAX_BARS_PER_ACCOUNT = 16


class Session:
    """
    One bound resource of an account, backed by one client stream.

    @ivar jid: the full JID.
    @ivar available: whether the client sent initial presence and not yet
        unavailable presence (RFC 6121 section 4.2).
    @ivar priority: from the last available presence.
    @ivar presence: the last available presence, as broadcast.
    @ivar info: facts about how the session logged in (e.g. the mechanism);
        later layers add what they need.
    """

    def __init__(
        self,
        fullJID: jid.JID,
        send: Callable[[domish.Element], None],
        close: Callable[[error.StreamError], None],
    ) -> None:
        self.jid = fullJID
        self._send = send
        self._close = close
        self.available = False
        self.priority = 0
        self.presence: domish.Element | None = None
        self.info: dict[str, Any] = {}
        self.closed = False

    def __repr__(self) -> str:
        return f"<Session {self.jid.full()}>"

    def send(self, element: domish.Element) -> None:
        """
        Deliver a stanza to the client.
        """
        if not self.closed:
            self._send(element)

    def close(self, streamError: error.StreamError) -> None:
        """
        End the stream with C{streamError}.
        """
        if not self.closed:
            self.closed = True
            self._close(streamError)


def accountLockedError() -> error.StreamError:
    """
    The stream error that ends the sessions of a locked account:
    C{not-authorized} (RFC 6120 section 4.9.3.12), as for a deleted account:
    nothing authorizes the stream any more.
    """
    return error.StreamError("not-authorized", text="This account was locked by an administrator")


def kickedError(text: str = "Ended by an administrator") -> error.StreamError:
    """
    The stream error that ends a session an administrator (C{xmppcert
    kick}) or the account's user from another session ended:
    C{policy-violation} (RFC 6120 section 4.9.3.14), the local service's
    policy, and not C{reset} (section 4.9.3.16), which is about the
    stream's security context and invites the client to reconnect at once.
    """
    return error.StreamError("policy-violation", text=text)


def passwordChangedError() -> error.StreamError:
    """
    The stream error that ends the password sessions of an account whose
    password was changed: C{reset} (RFC 6120 section 4.9.3.16), as for a
    revoked certificate: the credentials the stream authenticated with are
    no longer valid, so it must authenticate again.
    """
    return error.StreamError("reset", text="The password of this account was changed")


class ISessionNotifier(Interface):
    """
    How revocations, locks and kicks reach live sessions, whatever made
    them: the store poll (L{xmppcert.watch}), XEP-0257 requests, the control
    channel (L{xmppcert.control}). In one process the L{SessionManager}
    provides it; with several nodes, a provider that tells every node (over
    a message bus) takes its place. Each method returns how many sessions
    it closed here.
    """

    def closeSessionsWithCertificate(fingerprint, why="revoked"):  # type: ignore[no-untyped-def]
        """
        Close every session that logged in with this certificate, and keep
        logins with it checked before now from binding.

        @param why: C{"revoked"} or C{"removed"}, for the stream error's text.
        """

    def closeSessionsOf(account, streamError, where=None, barLogins=False):  # type: ignore[no-untyped-def]
        """
        Close the sessions of C{account} with C{streamError}.

        @param account: a bare JID for all of its sessions, a full JID for
            that one.
        @param where: only the sessions for which this returns true.
        @param barLogins: also keep logins of the account checked before now
            from binding (a lock must not let a login in progress through);
            with C{where}, only those for which it returns true, asked
            about the session they would bind (a password change bars the
            password logins checked against the old password).
        """


def _errorReply(stanza: domish.Element, condition: str, text: str | None = None) -> domish.Element | None:
    """
    The error reply to a stanza, or C{None} where RFC 6120 section 8.3.1 forbids
    one (never answer an error with an error).
    """
    if stanza.getAttribute("type") == "error":
        return None
    return error.StanzaError(condition, text=text).toResponse(stanza)


class _Bar(NamedTuple):
    """
    Logins of an account checked before C{mark} must not bind (those for
    which C{where} returns true, if given); they end with C{streamError}.
    """

    mark: int
    streamError: error.StreamError
    where: Callable[[Session], bool] | None


def _ignore(value: object) -> None:
    pass


@implementer(ISessionNotifier)
class SessionManager:
    """
    The registry of bound sessions, and local routing.

    @ivar domains: the served domains.
    """

    def __init__(self, domains: tuple[str, ...], store: IAccountStore) -> None:
        self.domains = frozenset(domains)
        self.store = store
        self._sessions: dict[str, dict[str, Session]] = {}
        #: Where IM features join local delivery (L{xmppcert.routing}).
        self.hooks = StanzaHooks()
        #: Whether a session may send one more presence without 'to' now
        #: (a rate limit); C{None}: always.
        self.presenceGate: Callable[[Session], bool] | None = None
        self.hooks.add(INBOUND_FULL, self._deliverToFull, DEFAULT_PRIORITY)
        self.hooks.add(INBOUND_BARE, self._deliverToBare, DEFAULT_PRIORITY)
        # Revocations seen by this node, numbered, so that a login that was
        # checked before a revocation and binds after it is caught too.
        self._revocations = 0
        self._revokedAt: OrderedDict[str, int] = OrderedDict()
        # Likewise for accounts whose sessions were closed for good (a
        # lock; a password change, for its password logins), oldest first,
        # with the stream error a login in progress gets.
        self._barredAt: OrderedDict[str, list[_Bar]] = OrderedDict()

    # --- registry ---------------------------------------------------------

    def sessionsOf(self, bareJID: jid.JID) -> list[Session]:
        """
        @return: every session of the account.
        """
        return list(self._sessions.get(bareJID.userhost(), {}).values())

    def sessionFor(self, fullJID: jid.JID) -> Session | None:
        return self._sessions.get(fullJID.userhost(), {}).get(fullJID.resource or "")

    def allSessions(self) -> Iterator[Session]:
        for resources in list(self._sessions.values()):
            yield from list(resources.values())

    def __len__(self) -> int:
        return sum(len(r) for r in self._sessions.values())

    def newResource(self, bareJID: jid.JID) -> str:
        """
        A resource the server picks when the client asks for none
        (RFC 6120 section 7.6).
        """
        taken = self._sessions.get(bareJID.userhost(), {})
        while True:
            resource = "xmppcert-" + secrets.token_hex(6)
            if resource not in taken:
                return resource

    def bind(
        self,
        fullJID: jid.JID,
        send: Callable[[domish.Element], None],
        close: Callable[[error.StreamError], None],
    ) -> Session:
        """
        Register a session. An existing session with the same full JID is
        closed with a C{conflict} stream error (RFC 6120 section 7.7.2.2,
        "terminate the session of the currently connected client").
        """
        resources = self._sessions.setdefault(fullJID.userhost(), {})
        old = resources.pop(fullJID.resource or "", None)
        if old is not None:
            log.info("Replacing session {jid} by a new login", jid=fullJID.full())
            self.unbind(old, replaced=True)
            old.close(error.StreamError("conflict", text="Replaced by a new connection with the same resource"))
        session = Session(fullJID, send, close)
        resources[fullJID.resource or ""] = session
        log.info("Session bound: {jid}", jid=fullJID.full())
        return session

    def unbind(self, session: Session, replaced: bool = False) -> None:
        """
        Forget a session; if it was available, its other resources are told
        it went away (RFC 6121 section 4.5.2, on its behalf).
        """
        resources = self._sessions.get(session.jid.userhost())
        if resources is not None and resources.get(session.jid.resource or "") is session:
            del resources[session.jid.resource or ""]
            if not resources:
                del self._sessions[session.jid.userhost()]
        elif not replaced:
            return
        wasAvailable = session.available
        if session.available:
            session.available = False
            unavailable = domish.Element((NS_CLIENT, "presence"))
            unavailable["type"] = "unavailable"
            unavailable["from"] = session.jid.full()
            self._broadcastToOwn(session, unavailable)
        log.info("Session ended: {jid}", jid=session.jid.full())
        # Contacts, directed presence, ... (RFC 6121 section 4.5.2: on the
        # session's behalf, whatever ended it).
        self._notify(SESSION_ENDED, Ended(session, wasAvailable))

    def resourcesWithCertificate(self, account: jid.JID, fingerprint: str) -> list[str]:
        """
        The resources of C{account} logged in with this certificate by SASL
        EXTERNAL (XEP-0257 section 2.2, C{<users/>}).
        """
        return sorted(
            s.jid.resource or ""
            for s in self.sessionsOf(account)
            if s.info.get("certificate") == fingerprint and s.info.get("mechanism") == "EXTERNAL"
        )

    def revocationMark(self) -> int:
        """
        @return: a mark to pass to L{revokedSince} later.
        """
        return self._revocations

    def revokedSince(self, fingerprint: str, mark: int) -> bool:
        """
        Whether the sessions of this certificate were closed (revoked or
        removed) after L{revocationMark} returned C{mark}: a login checked
        against the store before that must not bind.
        """
        return self._revokedAt.get(fingerprint, 0) > mark

    def barredSince(
        self, account: jid.JID, mark: int, info: Mapping[str, Any] | None = None
    ) -> error.StreamError | None:
        """
        Whether L{closeSessionsOf} barred the logins of C{account} after
        L{revocationMark} returned C{mark}: a login checked before that
        must not bind.

        @param info: what the session would record in L{Session.info} (its
            mechanism, ...), which a bar limited by a C{where} is judged
            on; without it, every bar applies.
        @return: the stream error to end it with, or C{None}.
        """
        for bar in reversed(self._barredAt.get(account.userhost(), ())):
            if bar.mark <= mark:
                break
            if bar.where is None or info is None:
                return bar.streamError
            wouldBe = Session(account, _ignore, _ignore)
            wouldBe.info.update(info)
            if bar.where(wouldBe):
                return bar.streamError
        return None

    def closeSessionsWithCertificate(self, fingerprint: str, why: str = "revoked") -> int:
        """
        Close every session that logged in with this certificate
        (XEP-0257 section 2.4), with a C{reset} stream error: RFC 6120
        section 4.9.3.16 names it for a certificate revoked during the life
        of the stream.

        @param why: how the certificate went ("revoked", "removed"), for
            the stream error's text and the log.

        @return: how many were closed.
        """
        self._revocations += 1
        self._revokedAt[fingerprint] = self._revocations
        self._revokedAt.move_to_end(fingerprint)
        while len(self._revokedAt) > MAX_REMEMBERED_REVOCATIONS:
            self._revokedAt.popitem(last=False)
        doomed = [s for s in self.allSessions() if s.info.get("certificate") == fingerprint and not s.closed]
        for session in doomed:
            log.info("Closing {jid}: its certificate was {why}", jid=session.jid.full(), why=why)
            session.close(error.StreamError("reset", text=f"The certificate of this session was {why}"))
        return len(doomed)

    def closeSessionsOf(
        self,
        account: jid.JID,
        streamError: error.StreamError,
        where: Callable[[Session], bool] | None = None,
        barLogins: bool = False,
    ) -> int:
        """
        Close every session of C{account} (e.g. the account was deleted or
        locked), or the one session of a full JID (a kick).

        @param where: only the sessions for which this returns true (e.g.
            those that logged in with a password).
        @param barLogins: also keep logins of the account that were checked
            before now from binding (L{barredSince}); with C{where}, those
            for which it returns true.
        @return: how many were closed.
        """
        if barLogins:
            self._revocations += 1
            key = account.userhost()
            # A newer bar makes older ones it covers redundant: one for
            # every login all of them, one with a predicate the same one's.
            bars = [b for b in self._barredAt.pop(key, []) if where is not None and b.where is not where]
            bars.append(_Bar(self._revocations, streamError, where))
            self._barredAt[key] = bars[-MAX_BARS_PER_ACCOUNT:]
            while len(self._barredAt) > MAX_REMEMBERED_REVOCATIONS:
                self._barredAt.popitem(last=False)
        if account.resource is not None:
            one = self.sessionFor(account)
            candidates = [] if one is None else [one]
        else:
            candidates = self.sessionsOf(account)
        doomed = [s for s in candidates if not s.closed and (where is None or where(s))]
        for session in doomed:
            log.info("Closing {jid}: {why}", jid=session.jid.full(), why=streamError.text or streamError.condition)
            session.close(streamError)
        return len(doomed)

    # --- routing ----------------------------------------------------------

    def isLocal(self, target: jid.JID) -> bool:
        return target.host in self.domains

    def route(self, stanza: domish.Element, sender: Session) -> defer.Deferred[None]:
        """
        Deliver a stanza from a local session addressed to another entity
        (anything the sender's own stream does not handle itself): the
        L{OUTBOUND} hooks first, then local delivery (L{deliver}).

        The caller has stamped C{from} and checked that C{to} parses.
        """
        target = parseJID(stanza["to"])
        routed = self.hooks.run(OUTBOUND, Outbound(stanza, sender, target)).addCallback(
            self._routeUnhandled, stanza, target, sender
        )
        # Logged where it failed; the sender is told, not left waiting.
        return routed.addErrback(self._hookFailed, stanza, sender)

    def _routeUnhandled(
        self, handled: bool, stanza: domish.Element, target: jid.JID, sender: Session
    ) -> defer.Deferred[None]:
        if handled:
            return defer.succeed(None)
        if not self.isLocal(target):
            # No server-to-server yet.
            self._bounce(stanza, sender, "remote-server-not-found")
            return defer.succeed(None)
        if target.user is None:
            self._bounce(stanza, sender, "service-unavailable")
            return defer.succeed(None)
        return self._deliver(stanza, target, sender)

    def deliver(self, stanza: domish.Element, target: jid.JID, sender: Session | None = None) -> defer.Deferred[None]:
        """
        Deliver a stanza to a local account's full or bare JID (RFC 6121
        section 8.5) through the L{INBOUND_FULL} and L{INBOUND_BARE} hooks;
        C{sender} is the local session it comes from, C{None} when the
        server itself sends it (errors for it are then dropped).

        @return: Deferred firing when it is delivered (at once when no
            hook had to wait).
        """
        return self._deliver(stanza, target, sender).addErrback(self._hookFailed, stanza, sender)

    def _hookFailed(self, failure: Failure, stanza: domish.Element, sender: Session | None) -> None:
        failure.trap(HookFailed)
        self._bounce(stanza, sender, "internal-server-error")

    # The steps of delivery are callbacks rather than a coroutine: most
    # stanzas pass every hook at once, and then delivery makes no
    # coroutine and waits for nothing.

    def _deliver(self, stanza: domish.Element, target: jid.JID, sender: Session | None) -> defer.Deferred[None]:
        if target.resource is not None:
            d = self.hooks.run(INBOUND_FULL, Inbound(stanza, sender, target))
            return d.addCallback(self._fullUnhandled, stanza, target, sender)
        return self._deliverToBareJID(stanza, target, sender)

    def _fullUnhandled(
        self, handled: bool, stanza: domish.Element, target: jid.JID, sender: Session | None
    ) -> defer.Deferred[None] | None:
        if handled:
            return None
        kind = stanza.name
        if kind == "iq":
            # RFC 6121 section 8.5.3.2.1: no such resource.
            self._bounce(stanza, sender, "service-unavailable")
            return None
        if kind == "presence" or stanza.getAttribute("type") == "error":
            # Section 8.5.3.2.3 (presence), 8.5.3.2.1 (an error message for
            # a resource that is gone): silently ignored.
            return None
        # Section 8.5.3.2.1: a message to a full JID with no session is
        # treated as sent to the bare JID.
        return self._deliverToBareJID(stanza, target.userhostJID(), sender)

    def _deliverToBareJID(
        self, stanza: domish.Element, target: jid.JID, sender: Session | None
    ) -> defer.Deferred[None]:
        d = self.hooks.run(INBOUND_BARE, Inbound(stanza, sender, target))
        return d.addCallback(self._bareUnhandled, stanza, sender)

    def _bareUnhandled(self, handled: bool, stanza: domish.Element, sender: Session | None) -> None:
        if handled:
            return
        kind = stanza.name
        stanzaType = stanza.getAttribute("type")
        if kind == "iq" and stanzaType in ("get", "set"):
            # Nothing answered it on the account's behalf (RFC 6120 section
            # 10.3.3); the error does not reveal whether the account exists.
            self._bounce(stanza, sender, "service-unavailable")
        elif kind == "message" and stanzaType not in ("error", "headline", "groupchat"):
            # Section 8.5.2.2.1: nobody took it (no available resource, no
            # offline storage); the same error as for no such account.
            self._bounce(stanza, sender, "service-unavailable")

    def _deliverToFull(self, event: Inbound) -> bool:
        session = self.sessionFor(event.target)
        if session is None:
            return False
        session.send(event.stanza)
        return True

    def _deliverToBare(self, event: Inbound) -> bool:
        stanza = event.stanza
        kind = stanza.name
        stanzaType = stanza.getAttribute("type")
        if kind == "iq":
            return False
        available = [s for s in self.sessionsOf(event.target) if s.available and s.priority >= 0]
        if kind == "presence":
            # Section 8.5.2.1.2 (and the types a presence service does not
            # take first): to every available resource.
            for session in self.sessionsOf(event.target):
                if session.available:
                    session.send(stanza)
            return True
        if stanzaType == "groupchat":
            # RFC 6121 section 8.5.2.1.1 and 8.5.2.2.1: never delivered to a
            # bare JID; the sender gets an error.
            self._bounce(stanza, event.sender, "service-unavailable")
            return True
        if available:
            # Section 8.5.2.1.1: to every available resource of non-negative
            # priority.
            for session in available:
                session.send(stanza)
            return True
        # Errors and headlines nobody takes are dropped (section 8.5.2.2.1);
        # others go on to later handlers (offline storage).
        return stanzaType in ("error", "headline")

    def _bounce(self, stanza: domish.Element, sender: Session | None, condition: str, text: str | None = None) -> None:
        if sender is None:
            return
        reply = _errorReply(stanza, condition, text)
        if reply is not None:
            sender.send(reply)

    # --- presence to one's own resources ------------------------------------

    def broadcastPresence(self, session: Session, presence: domish.Element) -> defer.Deferred[None] | None:
        """
        Handle presence without C{to} (RFC 6121 section 4.2 and 4.5):
        broadcast to the account's other available resources, and give a
        newly available resource the presence of the others.
        """
        stanzaType = presence.getAttribute("type")
        if stanzaType not in (None, "unavailable"):
            # probe/subscribe types without 'to' are meaningless; ignore them.
            return None
        if stanzaType is None:
            first = not session.available
            session.available = True
            session.priority = _priority(presence)
            session.presence = presence
            # RFC 6121 section 4.2.2: to every available resource, the sender
            # included.
            self._broadcastToOwn(session, presence)
            session.send(_copyTo(presence, session.jid))
            if first:
                for other in self.sessionsOf(session.jid):
                    if other is not session and other.available and other.presence is not None:
                        session.send(_copyTo(other.presence, session.jid))
            return self._notify(PRESENCE_BROADCAST, Broadcast(session, presence, initial=first, unavailable=False))
        else:
            if not session.available:
                return None
            session.available = False
            session.presence = None
            self._broadcastToOwn(session, presence)
            # RFC 6121 section 4.5.2: the sender gets its own unavailable too.
            session.send(_copyTo(presence, session.jid))
            return self._notify(PRESENCE_BROADCAST, Broadcast(session, presence, initial=False, unavailable=True))

    def _notify(self, point: str, event: Any) -> defer.Deferred[None] | None:
        if self.hooks.handlers(point):
            return self.hooks.notify(point, event)
        return None

    def _broadcastToOwn(self, session: Session, presence: domish.Element) -> None:
        for other in self.sessionsOf(session.jid):
            if other is not session and other.available:
                other.send(_copyTo(presence, other.jid))


def _priority(presence: domish.Element) -> int:
    for child in presence.elements(NS_CLIENT, "priority"):
        try:
            value = int(str(child))
        except ValueError:
            return 0
        return max(-128, min(127, value))
    return 0


def _copyTo(stanza: domish.Element, to: jid.JID) -> domish.Element:
    # A shallow copy: the children are shared, only 'to' differs.
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri, dict(stanza.attributes))
    copy.children = stanza.children
    copy["to"] = to.full()
    return copy


__all__ = [
    "ISessionNotifier",
    "Session",
    "SessionManager",
    "accountLockedError",
    "kickedError",
    "passwordChangedError",
]
