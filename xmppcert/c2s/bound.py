# -*- test-case-name: tests.test_c2s -*-
"""
The bound stream: once a resource is bound, stanzas are checked and stamped
(RFC 6120 section 8), routed through the L{SessionManager}, or handed to the
stream's wokkel handlers, which are made by handler factories from a typed
L{StreamContext}.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish, utility, xpath

from xmppcert import _log
from xmppcert.c2s.channel import IStreamChannel
from xmppcert.c2s.features import ReceivingBindFeature
from xmppcert.cred import Account
from xmppcert.jids import parseJID
from xmppcert.sessions import Session, SessionManager

NS_CLIENT = "jabber:client"

log = Logger(observer=_log.observer, namespace="xmppcert.c2s")


@dataclass(frozen=True)
class StreamContext:
    """
    What a handler factory (C{handlerFactories}) is given for a newly bound
    stream.

    @ivar account: the avatar of the login (bare JID, pinned resource,
        certificate fingerprint, whether it may manage certificates).
    @ivar session: the bound session (C{session.jid} is the full JID).
    @ivar domain: the served domain the client addressed.
    @ivar mechanism: the SASL mechanism of the login.
    @ivar sessions: the session registry.
    @ivar clock: the server clock.
    @ivar server: the shared L{xmppcert.c2s.C2SServer}, for factories
        written when they were given the stream's authenticator (which had
        the attributes above, and this one); new code should not need it.
    """

    account: Account
    session: Session
    domain: str
    mechanism: str
    sessions: SessionManager
    clock: IReactorTime
    server: Any = None


class LocalStream(utility.EventDispatcher):
    """
    What the per-stream wokkel handlers see as their C{xmlstream}: stanzas
    the server handles itself are dispatched here, so a handler never sees a
    stanza that was routed to someone else. Everything else is the
    channel's.

    XPath observers are kept in one flat list, in order of priority (higher
    first) and then of registration, instead of Twisted's per-query
    callback lists: a stream's fifteen-odd handlers register some forty
    observers, and on every idle session that structure was a fifth of its
    memory. Dispatching tries every observer either way. As in Twisted,
    observers added or removed while a stanza is dispatched take effect
    for the next one, a method registered twice for one query is one
    observer, and named events (C{//event/...}) are Twisted's.
    """

    def __init__(self, channel: Any) -> None:
        utility.EventDispatcher.__init__(self)
        self._channel = channel
        # (priority, rank, query, observer, args, kwargs, onetime), sorted
        # by priority (higher first), then rank, stable.
        self._observers: list[tuple[int, float, Any, Any, tuple[Any, ...], dict[str, Any], bool]] = []
        #: The rank of observers added now: the position of the handler
        #: factory whose handlers are being started (they may be started
        #: later than those of factories after it, see OnFirstRequest);
        #: observers added at any other time come after those of equal
        #: priority.
        self.rank: float = math.inf

    def send(self, obj: Any) -> None:
        self._channel.send(obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def _isNamedEvent(self, event: Any) -> bool:
        return isinstance(event, str) and event[: len(self.prefix)] == self.prefix

    def _addObserver(self, onetime: bool, event: Any, observerfn: Any, priority: int, *args: Any, **kwargs: Any) -> None:
        if self._isNamedEvent(event):
            utility.EventDispatcher._addObserver(self, onetime, event, observerfn, priority, *args, **kwargs)
            return
        if self._dispatchDepth > 0:
            self._updateQueue.append(
                lambda: self._addObserver(onetime, event, observerfn, priority, *args, **kwargs)
            )
            return
        query = event if isinstance(event, xpath.XPathQuery) else xpath.internQuery(event)
        for entry in self._observers:
            # Queries are interned: identity first, the cheap test.
            if entry[2] is query and entry[3] == observerfn:
                return
        rank = self.rank
        index = len(self._observers)
        while index > 0 and (
            self._observers[index - 1][0] < priority
            or (self._observers[index - 1][0] == priority and self._observers[index - 1][1] > rank)
        ):
            index -= 1
        self._observers.insert(index, (priority, rank, query, observerfn, args, kwargs, onetime))

    def removeObserver(self, event: Any, observerfn: Any) -> None:
        if self._isNamedEvent(event):
            utility.EventDispatcher.removeObserver(self, event, observerfn)
            return
        if self._dispatchDepth > 0:
            self._updateQueue.append(lambda: self.removeObserver(event, observerfn))
            return
        query = event if isinstance(event, xpath.XPathQuery) else xpath.internQuery(event)
        self._observers = [e for e in self._observers if not (e[2] == query and e[3] == observerfn)]

    def dispatch(self, obj: Any, event: Any = None) -> bool:
        if event is not None:
            return bool(utility.EventDispatcher.dispatch(self, obj, event))
        found = False
        self._dispatchDepth += 1
        try:
            for entry in tuple(self._observers):
                priority, rank, query, observerfn, args, kwargs, onetime = entry
                if not query.matches(obj):
                    continue
                found = True
                if onetime:
                    self._observers = [e for e in self._observers if e is not entry]
                observerfn(obj, *args, **kwargs)
        finally:
            self._dispatchDepth -= 1
        if self._dispatchDepth == 0:
            updates, self._updateQueue = self._updateQueue, []
            for update in updates:
                update()
        return found


class StreamHandlers(xmlstream.XMPPHandlerCollection):
    """
    The wokkel handlers of one bound stream (ping, disco, XEP-0257, ...).
    """

    def __init__(self, local: LocalStream) -> None:
        xmlstream.XMPPHandlerCollection.__init__(self)
        self.local = local

    def send(self, obj: Any) -> None:
        self.local.send(obj)

    def lost(self, reason: failure.Failure) -> None:
        for handler in list(self):
            handler.connectionLost(reason)


class OnFirstRequest:
    """
    A handler factory whose handlers a stream makes when the client first
    sends it a stanza for the server itself (an iq to the server or to its
    own account), not when the resource is bound: most of a session's time
    is spent idle, and a session that only exchanges messages and presence
    never needs them. The built-in handlers are made this way; they only
    answer requests and keep their state in services, so they cannot tell
    the difference. A factory not wrapped in this is called at bind, as
    before (a handler that must act from the start of the session).
    """

    def __init__(self, factory: Callable[[StreamContext], Any]) -> None:
        self.factory = factory

    def __call__(self, context: StreamContext) -> Any:
        return self.factory(context)

    def __eq__(self, other: object) -> bool:
        # Equal to the factory it wraps: handlerFactories.remove(factory)
        # takes a built-in feature out (docs/extending.md).
        if isinstance(other, OnFirstRequest):
            other = other.factory
        return bool(self.factory == other)

    def __hash__(self) -> int:
        return hash(self.factory)

    def __repr__(self) -> str:
        return f"OnFirstRequest({self.factory!r})"


class BoundStream:
    """
    The stanzas of one bound stream: checks, stamping, routing, replies.
    """

    def __init__(
        self,
        channel: IStreamChannel,
        session: Session,
        sessions: SessionManager,
        streamError: Callable[[str, str | None], None],
    ) -> None:
        self.channel = channel
        self.session = session
        self.sessions = sessions
        self.streamError = streamError
        self._local: LocalStream | None = None
        self._handlers: StreamHandlers | None = None
        # Factories (OnFirstRequest) whose handlers are not made yet, with
        # their positions among all factories.
        self._later: list[tuple[int, OnFirstRequest]] = []
        self._context: StreamContext | None = None
        # Stanzas waiting for the one before them to be processed; made on
        # first use (an empty deque is half a KiB on every idle session).
        self._queue: deque[domish.Element] | None = None
        self._busy = False

    @property
    def local(self) -> LocalStream:
        """
        What the stream's handlers see as their C{xmlstream}.
        """
        if self._local is None:
            self._local = LocalStream(self.channel)
        return self._local

    @property
    def handlers(self) -> StreamHandlers:
        """
        The stream's handlers made so far.
        """
        if self._handlers is None:
            self._handlers = StreamHandlers(self.local)
        return self._handlers

    def attach(self, factories: Any, context: StreamContext) -> None:
        """
        Make the stream's handlers and start them; those of
        L{OnFirstRequest} factories at the first stanza for the server.
        """
        self._context = context
        now = []
        for rank, makeHandlers in enumerate(factories):
            if isinstance(makeHandlers, OnFirstRequest):
                self._later.append((rank, makeHandlers))
            else:
                now.append((rank, makeHandlers))
        self._make(now)

    def _make(self, factories: list[tuple[int, Any]]) -> None:
        """
        Make and start the handlers of C{factories}; their observers keep
        the factories' order among those of equal priority, whenever they
        are made.
        """
        if not factories:
            return
        assert self._context is not None
        made = []
        for rank, makeHandlers in factories:
            for handler in makeHandlers(self._context):
                handler.setHandlerParent(self.handlers)
                made.append((rank, handler))
        local = self.local
        try:
            for rank, handler in made:
                local.rank = rank
                handler.makeConnection(local)
                handler.connectionInitialized()
        finally:
            local.rank = math.inf

    def lost(self) -> None:
        self._queue = None
        self._later = []
        if self._handlers is not None:
            self._handlers.lost(failure.Failure(Exception("connection lost")))

    def stanzaReceived(self, stanza: domish.Element) -> None:
        """
        Take a stanza from the client. Stanzas are processed one after the
        other (RFC 6120 section 10.1): one that waits for the store (a
        subscription updating the roster) holds back those sent after it.
        """
        if self._busy:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(stanza)
            return
        self._drain(stanza)

    def _drain(self, stanza: domish.Element | None = None) -> None:
        while not self.session.closed:
            if stanza is None:
                if not self._queue:
                    break
                stanza = self._queue.popleft()
            pending = self._process(stanza)
            stanza = None
            if pending is not None and not pending.called:
                self._busy = True
                pending.addBoth(self._resume)
                return
            if pending is not None:
                pending.addErrback(self._failed)
        self._busy = False

    def _resume(self, result: object) -> None:
        if isinstance(result, failure.Failure):
            self._failed(result)
        self._busy = False
        self._drain()

    def _failed(self, f: failure.Failure) -> None:
        log.failure("Processing a stanza from {jid} failed", f, jid=self.session.jid.full())

    def _process(self, stanza: domish.Element) -> defer.Deferred[Any] | None:
        if stanza.uri != NS_CLIENT or stanza.name not in ("message", "presence", "iq"):
            self.streamError("unsupported-stanza-type", None)
            return None
        full = self.session.jid
        sender = stanza.getAttribute("from")
        if sender is not None and sender not in (full.full(), full.userhost()):
            # RFC 6120 section 8.1.2.1: the server stamps 'from'; compared
            # prepared, so Alice@Example.com is the session's own JID.
            try:
                ownJID = parseJID(sender) in (full, full.userhostJID())
            except jid.InvalidFormat:
                ownJID = False
            if not ownJID:
                self.streamError("invalid-from", None)
                return None
        stanza["from"] = full.full()
        if stanza.name == "iq" and not self._checkIQ(stanza):
            return None
        to = stanza.getAttribute("to")
        target: jid.JID | None = None
        if to is not None:
            try:
                target = parseJID(to)
            except jid.InvalidFormat:
                self._reply(stanza, "jid-malformed")
                return None
            # Routing and the recipient see the prepared address.
            stanza["to"] = target.full()
        if stanza.name == "iq" and ReceivingBindFeature.isBindRequest(stanza):
            self._reply(stanza, "not-allowed", "A resource is already bound")
            return None
        if target is None:
            return self._handleLocalFromNoTo(stanza)
        elif target.user is None and target.host in self.sessions.domains and target.resource is None:
            self._handleLocal(stanza)
        elif stanza.name == "iq" and target.resource is None and target.userhost() == full.userhost():
            self._handleLocal(stanza)
        else:
            return self.sessions.route(stanza, self.session)
        return None

    def _checkIQ(self, iq: domish.Element) -> bool:
        kind = iq.getAttribute("type")
        if kind not in ("get", "set", "result", "error") or not iq.getAttribute("id"):
            # RFC 6120 section 8.2.3: id and type are required.
            self._reply(iq, "bad-request", "An iq needs an 'id' and a valid 'type'")
            return False
        if kind in ("get", "set") and len(list(iq.elements())) != 1:
            self._reply(iq, "bad-request", "An iq get or set has exactly one child")
            return False
        return True

    def _handleLocalFromNoTo(self, stanza: domish.Element) -> defer.Deferred[Any] | None:
        if stanza.name == "presence":
            gate = self.sessions.presenceGate
            if (
                gate is not None
                and stanza.getAttribute("type") != "unavailable"
                and not gate(self.session)
            ):
                # Over its presence rate: dropped, so that a flood reaches
                # neither contacts nor the account's other resources. Going
                # unavailable always passes: contacts must not be left
                # believing the session is there.
                return None
            return self.sessions.broadcastPresence(self.session, stanza)
        if stanza.name == "message":
            # RFC 6120 section 10.3.1: as if sent to the sender's bare JID.
            stanza["to"] = self.session.jid.userhost()
            return self.sessions.route(stanza, self.session)
        self._handleLocal(stanza)
        return None

    def _handleLocal(self, stanza: domish.Element) -> None:
        if self._later:
            later, self._later = self._later, []
            self._make(later)
        stanza.handled = False  # type: ignore[attr-defined]
        if self._local is not None:
            self._local.dispatch(stanza)
        if stanza.handled:
            return
        kind = stanza.getAttribute("type")
        if stanza.name == "iq" and kind in ("get", "set"):
            self._reply(stanza, "service-unavailable")
        elif stanza.name == "message" and kind not in ("error", "groupchat", "headline"):
            self._reply(stanza, "service-unavailable")

    def _reply(self, stanza: domish.Element, condition: str, text: str | None = None) -> None:
        if stanza.getAttribute("type") == "error":
            return
        response = error.StanzaError(condition, text=text).toResponse(stanza)
        response["to"] = stanza.getAttribute("from") or self.session.jid.full()
        self.channel.send(response)


__all__ = ["BoundStream", "LocalStream", "OnFirstRequest", "StreamContext", "StreamHandlers"]
