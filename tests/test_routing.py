"""
Tests for L{xmppcert.routing}: hook points in local delivery, and how the
session registry runs them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid

from tests.helpers import ALICE, BOB, DOMAIN, failureOf, resultOf, stanzaErrorCondition
from tests.test_sessions import available, clear, makeManager, route, stanza
from xmppcert.routing import (
    INBOUND_BARE,
    INBOUND_FULL,
    MESSAGES,
    OUTBOUND,
    PRESENCE_BROADCAST,
    PRESENCES,
    SESSION_ENDED,
    Broadcast,
    Ended,
    HookFailed,
    Inbound,
    Outbound,
    StanzaHooks,
)


def test_priorityOrderAndStop() -> None:
    """
    Handlers run by descending priority, ties in the order added, until one
    handles the event.
    """
    hooks = StanzaHooks()
    ran: list[str] = []

    def handler(name: str, handled: bool) -> Any:
        def run(event: object) -> bool:
            ran.append(name)
            return handled

        return run

    hooks.add("p", handler("low", True), priority=-5)
    hooks.add("p", handler("first", False), priority=10)
    hooks.add("p", handler("second", False), priority=10)
    hooks.add("p", handler("default", True))
    assert resultOf(defer.ensureDeferred(hooks.run("p", None))) is True
    assert ran == ["first", "second", "default"]


def test_asynchronousHandlers() -> None:
    """
    A handler may answer with a Deferred or a coroutine.
    """
    hooks = StanzaHooks()
    pending: defer.Deferred[bool] = defer.Deferred()

    async def coroutine(event: object) -> bool:
        return False

    hooks.add("p", coroutine, priority=1)
    hooks.add("p", lambda event: pending)
    results: list[bool] = []
    hooks.run("p", None).addCallback(results.append)
    assert results == []
    pending.callback(True)
    assert results == [True]
    assert resultOf(defer.ensureDeferred(StanzaHooks().run("nothing", None))) is False


def test_namesChooseTheHandlers() -> None:
    """
    A handler added with C{names} only runs for events whose stanza has one
    of those names; one without runs for every event.
    """
    hooks = StanzaHooks()
    ran: list[str] = []
    hooks.add("p", lambda event: ran.append(f"presence {event.stanza.name}"), names=PRESENCES)
    hooks.add("p", lambda event: ran.append(f"any {event.stanza.name if event else None}"))
    target = jid.JID(ALICE)
    for name in ("presence", "message", "iq"):
        resultOf(hooks.run("p", Inbound(stanza(f"<{name}/>"), None, target)))
    resultOf(hooks.run("p", None))
    assert ran == ["presence presence", "any presence", "any message", "any iq", "any None"]
    hooks.add("p", lambda event: ran.append("later"), priority=5, names=MESSAGES)
    ran.clear()
    resultOf(hooks.run("p", Inbound(stanza("<message/>"), None, target)))
    assert ran == ["later", "any message"]


def test_answersAtOnceWithoutWaiting() -> None:
    """
    When every handler answers with a plain value, the run's Deferred has
    fired when C{run} returns: delivery waits for nothing.
    """
    hooks = StanzaHooks()
    hooks.add("p", lambda event: False, priority=1)
    hooks.add("p", lambda event: None)
    results: list[bool] = []
    hooks.run("p", None).addCallback(results.append)
    assert results == [False]
    hooks.add("p", lambda event: True, priority=-1)
    hooks.run("p", None).addCallback(results.append)
    assert results == [False, True]


def test_runKeepsItsHandlers() -> None:
    """
    A handler added while a run waits does not join that run; it runs from
    the next event on.
    """
    hooks = StanzaHooks()
    ran: list[str] = []
    pending: defer.Deferred[bool] = defer.Deferred()
    hooks.add("p", lambda event: pending, priority=1)
    hooks.add("p", lambda event: ran.append("default"))
    d = hooks.run("p", None)
    hooks.add("p", lambda event: ran.append("added"))
    pending.callback(False)
    assert resultOf(d) is False
    assert ran == ["default"]


def test_waitingHandlerFails() -> None:
    """
    A handler whose Deferred fails is logged once and stops the stanza
    with L{HookFailed}; in a notification the next handlers still run.
    """
    hooks = StanzaHooks()
    ran: list[str] = []

    async def broken(event: object) -> bool:
        raise RuntimeError("broken")

    hooks.add("p", broken, priority=1)
    hooks.add("p", lambda event: ran.append("after"))
    with capturedLogs() as events:
        failureOf(hooks.run("p", None), HookFailed)
        resultOf(hooks.notify("p", None))
    assert ran == ["after"]
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.routing"] == [
        LogLevel.critical,
        LogLevel.critical,
    ]


def test_notifyRunsEveryHandler() -> None:
    """
    Notifications reach every handler; one that fails is logged and the
    others still run.
    """
    hooks = StanzaHooks()
    ran: list[str] = []

    def broken(event: object) -> None:
        raise RuntimeError("broken")

    hooks.add("p", lambda event: ran.append("a"), priority=1)
    hooks.add("p", broken)
    hooks.add("p", lambda event: ran.append("b"), priority=-1)
    with capturedLogs() as events:
        resultOf(defer.ensureDeferred(hooks.notify("p", None)))
    assert ran == ["a", "b"]
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.routing"] == [LogLevel.critical]


def test_remove() -> None:
    """
    A removed handler no longer runs.
    """
    hooks = StanzaHooks()

    def handler(event: object) -> bool:
        return True

    hooks.add("p", handler)
    hooks.remove("p", handler)
    assert hooks.handlers("p") == []


def test_outboundHookStopsRouting() -> None:
    """
    An OUTBOUND handler that handles a stanza keeps it from being routed;
    it sees the sender and the target.
    """
    manager = makeManager()
    alice, _ = available(manager, f"{ALICE}/phone")
    bob, bobClient = available(manager, f"{BOB}/desk")
    clear(bobClient)
    seen: list[Outbound] = []

    def take(event: Outbound) -> bool:
        seen.append(event)
        return True

    manager.hooks.add(OUTBOUND, take, priority=10)
    route(manager, alice, f"<message to='{BOB}/desk'><body>hi</body></message>")
    assert bobClient.sent == []
    assert seen[0].sender is alice and seen[0].target == jid.JID(f"{BOB}/desk")


def test_laterHandlerGetsWhatNobodyTook() -> None:
    """
    RFC 6121 section 8.5.2.2: a message for an account with no available
    resource goes on to handlers after the default delivery (offline
    storage); if one takes it, the sender gets no error.
    """
    manager = makeManager()
    alice, aliceClient = available(manager, f"{ALICE}/phone")
    stored: list[Inbound] = []

    def store(event: Inbound) -> bool:
        stored.append(event)
        return True

    manager.hooks.add(INBOUND_BARE, store, priority=-10)
    clear(aliceClient)
    route(manager, alice, f"<message to='{BOB}' type='chat'><body>later</body></message>")
    assert [e.target for e in stored] == [jid.JID(BOB)]
    assert aliceClient.sent == []


def test_nobodyTookItBounces() -> None:
    """
    RFC 6121 section 8.5.2.2.1: without a handler that takes it, a chat
    message for an account with no available resource is answered with
    service-unavailable; a headline is dropped.
    """
    manager = makeManager()
    alice, aliceClient = available(manager, f"{ALICE}/phone")
    clear(aliceClient)
    route(manager, alice, f"<message to='{BOB}' type='chat' id='m1'><body>x</body></message>")
    [reply] = aliceClient.sent
    assert stanzaErrorCondition(reply) == "service-unavailable"
    clear(aliceClient)
    route(manager, alice, f"<message to='{BOB}' type='headline'><body>x</body></message>")
    assert aliceClient.sent == []


def test_fullJIDHookFirst() -> None:
    """
    A stanza for a full JID goes through INBOUND_FULL; a message no
    resource takes falls back to the bare JID (RFC 6121 section 8.5.3.2.1).
    """
    manager = makeManager()
    alice, _ = available(manager, f"{ALICE}/phone")
    points: list[str] = []
    manager.hooks.add(INBOUND_FULL, lambda event: points.append("full"), priority=5)
    manager.hooks.add(INBOUND_BARE, lambda event: points.append("bare"), priority=5)
    route(manager, alice, f"<message to='{BOB}/gone' type='chat'><body>x</body></message>")
    assert points == ["full", "bare"]


def test_serverSentStanzaNeverBouncesToNobody() -> None:
    """
    A stanza the server sends on an account's behalf (no sender session)
    that nobody takes is dropped: there is no one to tell.
    """
    manager = makeManager()
    message = stanza(f"<message from='{ALICE}' to='{BOB}' type='chat'><body>x</body></message>")
    resultOf(manager.deliver(message, jid.JID(BOB)))


def test_broadcastAndEndedNotified() -> None:
    """
    Presence without 'to' notifies PRESENCE_BROADCAST (initial, then not,
    then unavailable); unbinding notifies SESSION_ENDED with whether the
    session was available.
    """
    manager = makeManager()
    broadcasts: list[Broadcast] = []
    ended: list[Ended] = []
    manager.hooks.add(PRESENCE_BROADCAST, broadcasts.append)
    manager.hooks.add(SESSION_ENDED, ended.append)
    alice, _ = available(manager, f"{ALICE}/phone")
    manager.broadcastPresence(alice, stanza(f"<presence from='{ALICE}/phone'><show>away</show></presence>"))
    manager.broadcastPresence(alice, stanza(f"<presence from='{ALICE}/phone' type='unavailable'/>"))
    assert [(b.initial, b.unavailable) for b in broadcasts] == [(True, False), (False, False), (False, True)]
    manager.unbind(alice)
    bob, _ = available(manager, f"{BOB}/desk")
    manager.unbind(bob)
    assert [(e.session.jid.full(), e.wasAvailable) for e in ended] == [
        (f"{ALICE}/phone", False),
        (f"{BOB}/desk", True),
    ]
    assert DOMAIN in manager.domains


def test_failingHookAnswersTheSender() -> None:
    """
    RFC 6120 section 8.3: a handler that fails is logged for the operator
    and the sender gets internal-server-error instead of silence; the
    stanza goes no further.
    """
    manager = makeManager()
    alice, aliceClient = available(manager, f"{ALICE}/phone")
    bob, bobClient = available(manager, f"{BOB}/desk")
    clear(aliceClient, bobClient)

    def broken(event: Inbound) -> bool:
        raise RuntimeError("a bug")

    manager.hooks.add(INBOUND_FULL, broken, priority=50)
    with capturedLogs() as events:
        route(manager, alice, f"<message to='{BOB}/desk' type='chat' id='m1'><body>x</body></message>")
    assert bobClient.sent == []
    [reply] = aliceClient.sent
    assert stanzaErrorCondition(reply) == "internal-server-error"
    assert any(e.get("log_namespace") == "xmppcert.routing" and e.get("log_failure") for e in events)


def test_errorMessageForGoneResourceIgnored() -> None:
    """
    RFC 6121 section 8.5.3.2.1: a message of type error for a resource that
    is not connected is silently ignored, not delivered to the bare JID.
    """
    manager = makeManager()
    alice, _ = available(manager, f"{ALICE}/phone")
    bob, bobClient = available(manager, f"{BOB}/desk")
    clear(bobClient)
    route(manager, alice, f"<message to='{BOB}/gone' type='error'><error type='cancel'/></message>")
    assert bobClient.sent == []


def test_unavailablePassesThePresenceGate() -> None:
    """
    A session over its presence rate has its presence dropped, but going
    unavailable always passes: contacts must learn it left.
    """
    from tests.helpers import makeServer

    h = makeServer()
    alice = h.connect()
    alice.bound("phone")
    bob = h.connect()
    bob.bound("desk", user="bob")
    h.sessions.presenceGate = lambda session: False
    alice.send("<presence/>")
    aliceSession = h.sessions.sessionFor(jid.JID(f"{ALICE}/phone"))
    assert aliceSession is not None and not aliceSession.available
    h.sessions.presenceGate = None
    alice.send("<presence/>")
    assert aliceSession.available
    h.sessions.presenceGate = lambda session: False
    alice.send("<presence type='unavailable'/>")
    assert not aliceSession.available


def test_stanzasOfOneStreamInOrder() -> None:
    """
    RFC 6120 section 10.1: the stanzas of one stream are processed in the
    order sent: one that waits (a subscription updating the roster in the
    store) holds back those after it, a presence broadcast included.
    """
    from tests.helpers import makeServer

    h = makeServer()
    alice = h.connect()
    alice.bound("phone")
    bob = h.connect()
    bob.bound("desk", user="bob")
    bob.send("<presence/>")
    bob.received()
    waiting: defer.Deferred[bool] = defer.Deferred()
    seen: list[str] = []

    def slowFirst(event: Outbound) -> Any:
        seen.append(event.stanza.name)
        if len(seen) == 1:
            return waiting
        return False

    h.sessions.hooks.add(OUTBOUND, slowFirst, priority=50)
    alice.send(f"<presence to='{BOB}' type='subscribed'/>")
    alice.send(f"<message to='{BOB}/desk' type='chat'><body>after</body></message>")
    alice.send("<presence/>")
    assert seen == ["presence"]
    assert bob.received().elements == []
    # The broadcast (its echo to the sender) waits too.
    assert alice.received().named("presence") == []
    waiting.callback(True)
    assert seen == ["presence", "message"]
    assert str(bob.received().only("message").body) == "after"
    assert len(alice.received().named("presence")) == 1
