# -*- test-case-name: tests.test_routing -*-
"""
Hook points in local delivery, so that each IM feature (presence and
subscriptions, offline storage, carbons, blocking, ...) is a module that
registers handlers rather than more lines in the session registry.

A hook point is a name; its handlers run in order of descending priority
(ties in the order they were added) until one says it handled the event.
A handler returns C{True} (handled: stop), C{False}, or a Deferred or
coroutine of either; one that can decide at once should answer with a
plain value, so that delivery does not wait. A handler added with
C{names} (L{MESSAGES}, L{PRESENCES}, L{IQS}) only runs for events whose
stanza has one of those names. The session registry registers its own default
behaviour at priority 0 (L{DEFAULT_PRIORITY}), so a feature runs before it
with a higher priority (blocking, subscriptions) or after it with a lower
one (offline storage, when no resource took a message).

Hook points and their events:

  - L{OUTBOUND} (L{Outbound}): a stanza a local session sends to another
    entity, before it is routed. Handled means: do not route it.
  - L{INBOUND_FULL} and L{INBOUND_BARE} (L{Inbound}): a stanza for a local
    account's full or bare JID, from a local session or from the server
    itself (C{sender} C{None}). The default delivers it (RFC 6121 section
    8.5); a message nobody handled is bounced with C{service-unavailable}
    (chat and normal types), an iq nobody handled too.
  - L{PRESENCE_BROADCAST} (L{Broadcast}): a session sent presence without
    C{to} (RFC 6121 section 4.2, 4.4, 4.5), after its own resources were
    told. Every handler runs (the return value is ignored).
  - L{SESSION_ENDED} (L{Ended}): a session was unbound, for any reason.
    Every handler runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppcert import _log

if TYPE_CHECKING:
    from xmppcert.sessions import Session

log = Logger(observer=_log.observer, namespace="xmppcert.routing")

OUTBOUND = "outbound"
INBOUND_FULL = "inbound/full"
INBOUND_BARE = "inbound/bare"
PRESENCE_BROADCAST = "presence/broadcast"
SESSION_ENDED = "session/ended"

#: The priority of the session registry's own handlers.
DEFAULT_PRIORITY = 0

#: The C{names} of a handler that only acts on one kind of stanza.
MESSAGES = frozenset({"message"})
PRESENCES = frozenset({"presence"})
IQS = frozenset({"iq"})

Handler = Callable[[Any], Any]


@dataclass
class Outbound:
    """
    A stanza a local session sends to C{target} (its C{from} is stamped).
    """

    stanza: domish.Element
    sender: Session
    target: jid.JID


@dataclass
class Inbound:
    """
    A stanza for a local account: C{target} is the full or bare JID it is
    addressed to. C{sender} is the local session it comes from, or C{None}
    when the server sends it (a presence broadcast, an answer to a probe).
    """

    stanza: domish.Element
    sender: Session | None
    target: jid.JID


@dataclass
class Broadcast:
    """
    C{session} sent C{presence} without C{to}. C{initial}: it was not
    available before (RFC 6121 section 4.2); C{unavailable}: this ends its
    availability (section 4.5).
    """

    session: Session
    presence: domish.Element
    initial: bool
    unavailable: bool


@dataclass
class Ended:
    """
    C{session} was unbound. C{wasAvailable}: it had sent available presence
    and not yet unavailable (its contacts must be told, RFC 6121 section
    4.5.2).
    """

    session: Session
    wasAvailable: bool


class HookFailed(Exception):
    """
    A handler of a hook point raised; it was logged.
    """


class StanzaHooks:
    """
    The hook points of one server's local delivery.

    Handlers that answer at once (with a plain value) run one after the
    other without a Deferred or a coroutine in between: most stanzas pass
    every handler that way, and local delivery is the hottest path of a
    server with presence.
    """

    def __init__(self) -> None:
        # (-priority, order added, handler, stanza names or None), sorted.
        self._handlers: dict[str, list[tuple[int, int, Handler, frozenset[str] | None]]] = {}
        self._added = 0
        # (point, stanza name) -> the handlers to run, in order.
        self._chains: dict[tuple[str, str | None], tuple[Handler, ...]] = {}

    def add(
        self,
        point: str,
        handler: Handler,
        priority: int = DEFAULT_PRIORITY,
        names: Iterable[str] | None = None,
    ) -> None:
        """
        Run C{handler} at C{point}; higher priorities first.

        @param names: the stanza names (C{message}, C{presence}, C{iq})
            whose events the handler is for; C{None} for all events.
        """
        self._added += 1
        entry = (-priority, self._added, handler, None if names is None else frozenset(names))
        # A new list: a run in progress keeps the chain it started with.
        self._handlers[point] = sorted([*self._handlers.get(point, []), entry], key=lambda e: (e[0], e[1]))
        self._chains.clear()

    def remove(self, point: str, handler: Handler) -> None:
        """
        Stop running C{handler} at C{point}.
        """
        self._handlers[point] = [e for e in self._handlers.get(point, []) if e[2] != handler]
        self._chains.clear()

    def handlers(self, point: str) -> list[Handler]:
        return [entry[2] for entry in self._handlers.get(point, [])]

    def _chain(self, point: str, event: Any) -> tuple[Handler, ...]:
        stanza = getattr(event, "stanza", None)
        name = stanza.name if isinstance(stanza, domish.Element) else None
        key = (point, name if name in _STANZA_NAMES else None)
        chain = self._chains.get(key)
        if chain is None:
            chain = tuple(
                handler
                for _, _, handler, names in self._handlers.get(point, [])
                if names is None or (name is not None and name in names)
            )
            if key[1] == name:
                self._chains[key] = chain
        return chain

    def run(self, point: str, event: Any) -> defer.Deferred[bool]:
        """
        Run the handlers of C{point} until one handled C{event}.

        @return: Deferred firing with whether one did; it has fired
            already when every handler answered at once.
        @raise HookFailed: (in the Deferred) a handler raised (logged here,
            with the point); the caller answers the sender.
        """
        return self._runFrom(point, self._chain(point, event), 0, event)

    def _runFrom(self, point: str, chain: tuple[Handler, ...], start: int, event: Any) -> defer.Deferred[bool]:
        for index in range(start, len(chain)):
            try:
                result = chain[index](event)
            except Exception as e:
                # A bug (or a failing store behind a handler that did not
                # say so): the operator must see it; the stanza stops here.
                log.failure("A {point} handler failed", point=point)
                failed = HookFailed(point)
                failed.__cause__ = e
                return defer.fail(failed)
            waiting = _waiting(result)
            if waiting is not None:
                return waiting.addCallbacks(
                    self._continueRun,
                    self._handlerFailed,
                    callbackArgs=(point, chain, index + 1, event),
                    errbackArgs=(point,),
                )
            if result:
                return defer.succeed(True)
        return defer.succeed(False)

    def _continueRun(
        self, handled: object, point: str, chain: tuple[Handler, ...], start: int, event: Any
    ) -> bool | defer.Deferred[bool]:
        if handled:
            return True
        return self._runFrom(point, chain, start, event)

    def _handlerFailed(self, failure: Failure, point: str) -> Failure:
        log.failure("A {point} handler failed", failure, point=point)
        failed = HookFailed(point)
        failed.__cause__ = failure.value
        return Failure(failed)

    def notify(self, point: str, event: Any) -> defer.Deferred[None]:
        """
        Run every handler of C{point}, one after the other; one that fails
        is logged, and the others still run.

        @return: Deferred firing when the last has run.
        """
        return self._notifyFrom(point, self._chain(point, event), 0, event)

    def _notifyFrom(self, point: str, chain: tuple[Handler, ...], start: int, event: Any) -> defer.Deferred[None]:
        for index in range(start, len(chain)):
            try:
                result = chain[index](event)
            except Exception:
                log.failure("A {point} handler failed", point=point)
                continue
            waiting = _waiting(result)
            if waiting is not None:
                waiting.addErrback(self._notifyFailed, point)
                return waiting.addCallback(self._continueNotify, point, chain, index + 1, event)
        return defer.succeed(None)

    def _notifyFailed(self, failure: Failure, point: str) -> None:
        log.failure("A {point} handler failed", failure, point=point)

    def _continueNotify(
        self, ignored: object, point: str, chain: tuple[Handler, ...], start: int, event: Any
    ) -> defer.Deferred[None]:
        return self._notifyFrom(point, chain, start, event)


def _waiting(result: object) -> defer.Deferred[Any] | None:
    """
    The Deferred to wait for when a handler answered with a Deferred or a
    coroutine; C{None} when it answered at once.
    """
    if result is None or result.__class__ is bool:
        return None
    if isinstance(result, defer.Deferred):
        return result
    if inspect.iscoroutine(result):
        return defer.Deferred.fromCoroutine(result)
    return None


_STANZA_NAMES = frozenset(("message", "presence", "iq"))


__all__ = [
    "DEFAULT_PRIORITY",
    "INBOUND_BARE",
    "INBOUND_FULL",
    "OUTBOUND",
    "PRESENCE_BROADCAST",
    "SESSION_ENDED",
    "Broadcast",
    "Ended",
    "IQS",
    "MESSAGES",
    "PRESENCES",
    "HookFailed",
    "Inbound",
    "Outbound",
    "StanzaHooks",
]
