# -*- test-case-name: tests.test_routing -*-
"""
Hook points in local delivery, so that each IM feature (presence and
subscriptions, offline storage, carbons, blocking, ...) is a module that
registers handlers rather than more lines in the session registry.

A hook point is a name; its handlers run in order of descending priority
(ties in the order they were added) until one says it handled the event.
A handler returns C{True} (handled: stop), C{False}, or a Deferred or
coroutine of either. The session registry registers its own default
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
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
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[int, int, Handler]]] = {}
        self._added = 0

    def add(self, point: str, handler: Handler, priority: int = DEFAULT_PRIORITY) -> None:
        """
        Run C{handler} at C{point}; higher priorities first.
        """
        self._added += 1
        handlers = self._handlers.setdefault(point, [])
        handlers.append((-priority, self._added, handler))
        handlers.sort(key=lambda entry: (entry[0], entry[1]))

    def remove(self, point: str, handler: Handler) -> None:
        """
        Stop running C{handler} at C{point}.
        """
        self._handlers[point] = [e for e in self._handlers.get(point, []) if e[2] != handler]

    def handlers(self, point: str) -> list[Handler]:
        return [entry[2] for entry in self._handlers.get(point, [])]

    async def run(self, point: str, event: Any) -> bool:
        """
        Run the handlers of C{point} until one handled C{event}.

        @return: whether one did.
        @raise HookFailed: a handler raised (logged here, with the point);
            the caller answers the sender.
        """
        for handler in self.handlers(point):
            try:
                result = handler(event)
                if inspect.isawaitable(result) or isinstance(result, defer.Deferred):
                    result = await result
            except Exception as e:
                # A bug (or a failing store behind a handler that did not
                # say so): the operator must see it; the stanza stops here.
                log.failure("A {point} handler failed", point=point)
                raise HookFailed(point) from e
            if result:
                return True
        return False

    async def notify(self, point: str, event: Any) -> None:
        """
        Run every handler of C{point}; one that fails is logged, and the
        others still run.
        """
        for handler in self.handlers(point):
            try:
                result = handler(event)
                if inspect.isawaitable(result) or isinstance(result, defer.Deferred):
                    await result
            except Exception:
                log.failure("A {point} handler failed", point=point)


__all__ = [
    "DEFAULT_PRIORITY",
    "INBOUND_BARE",
    "INBOUND_FULL",
    "OUTBOUND",
    "PRESENCE_BROADCAST",
    "SESSION_ENDED",
    "Broadcast",
    "Ended",
    "HookFailed",
    "Inbound",
    "Outbound",
    "StanzaHooks",
]
