"""
Tests for L{xmppcert.im.offline}: messages stored for offline accounts
(XEP-0160) and delivered with a XEP-0203 delay.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    ServerHarness,
    makeServer,
    parseOutput,
    resultOf,
    stanzaErrorCondition,
)
from xmppcert.config import IMConfig
from xmppcert.handlers import defaultHandlers
from xmppcert.im.offline import (
    DELAY_REASON,
    FEATURE_OFFLINE,
    NS_DELAY,
    OFFLINE_PRIORITY,
    OfflineService,
    addDelay,
    formatStamp,
    isStandaloneChatState,
    parseStoredStanza,
)
from xmppcert.routing import DEFAULT_PRIORITY, INBOUND_BARE, PRESENCE_BROADCAST, Inbound
from xmppcert.store.interfaces import StoreError

#: 2023-11-14T22:13:20Z
NOW = 1_700_000_000.0
NOW_STAMP = "2023-11-14T22:13:20Z"


class Offline:
    """
    A server harness with an installed L{OfflineService} whose limit tests
    may change.
    """

    def __init__(self, maxMessages: int = 200, harness: ServerHarness | None = None, **kwargs: Any) -> None:
        self.h = harness or makeServer()
        self.h.clock.advance(NOW - self.h.clock.seconds())
        self.config = IMConfig(max_offline_messages=maxMessages)
        self.service = OfflineService(self.h.sessions, self.h.store, self.h.clock, lambda: self.config, **kwargs)
        self.service.install()
        self.h.server.handlerFactories.append(self.service.handlersFor)

    def login(self, user: str, resource: str = "phone", presence: str | None = "<presence/>") -> ClientConnection:
        client = self.h.connect()
        client.bound(resource, user=user)
        if presence is not None:
            client.send(presence)
        client.output()
        return client

    def stored(self, account: str = BOB) -> list[domish.Element]:
        return [parseStoredStanza(m.stanza) for m in self.h.store.offline.get(account, [])]


def messages(client: ClientConnection) -> list[domish.Element]:
    return client.received().named("message")


def features(discoResult: domish.Element) -> list[str]:
    return [c["var"] for c in discoResult.query.elements() if c.name == "feature"]


# --- helpers -----------------------------------------------------------------


def test_formatStamp() -> None:
    """
    XEP-0203 §4 / XEP-0082: the stamp is a UTC DateTime with a 'Z'.
    """
    assert formatStamp(NOW) == NOW_STAMP
    assert formatStamp(0.75) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("xml", "standalone"),
    [
        ("<message><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", True),
        (
            "<message><thread>t</thread><paused xmlns='http://jabber.org/protocol/chatstates'/>"
            "<no-store xmlns='urn:xmpp:hints'/></message>",
            True,
        ),
        ("<message><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>", False),
        ("<message><thread>t</thread></message>", False),
        ("<message/>", False),
    ],
)
def test_standaloneChatState(xml: str, standalone: bool) -> None:
    """
    XEP-0160 §3: a message that holds only a chat state notification
    (XEP-0085), with at most a thread, hints and ids, is recognised; one
    with a body, or with no chat state, is not.
    """
    assert isStandaloneChatState(parseOutput(xml).only()) is standalone


def test_addDelayKeepsOthers() -> None:
    """
    XEP-0203 §3: a delay another entity added is kept and ours is added;
    a delay claiming to be ours is replaced by ours (the stored text never
    holds ours, so the sender put it there), never doubled.
    """
    message = parseOutput(
        "<message><body>x</body><delay xmlns='urn:xmpp:delay' from='elsewhere.example'"
        " stamp='2001-01-01T00:00:00Z'/></message>"
    ).only()
    addDelay(message, DOMAIN, NOW)
    delays = list(message.elements(NS_DELAY, "delay"))
    assert [(d["from"], d["stamp"]) for d in delays] == [
        ("elsewhere.example", "2001-01-01T00:00:00Z"),
        (DOMAIN, NOW_STAMP),
    ]
    addDelay(message, DOMAIN, NOW + 100)
    delays = list(message.elements(NS_DELAY, "delay"))
    assert len(delays) == 2 and delays[1]["stamp"] != NOW_STAMP


def test_forgedDelayReplaced() -> None:
    """
    XEP-0203 with XEP-0160: a sender cannot forge the server's offline
    stamp: a delay from the server's domain in the message is replaced by
    the real one.
    """
    message = parseOutput(
        f"<message><body>x</body><delay xmlns='urn:xmpp:delay' from='{DOMAIN}' stamp='1999-01-01T00:00:00Z'/>"
        "</message>"
    ).only()
    addDelay(message, DOMAIN, NOW)
    assert [(d["from"], d["stamp"]) for d in message.elements(NS_DELAY, "delay")] == [(DOMAIN, NOW_STAMP)]


def test_parseStoredStanzaRefusesDamage() -> None:
    """
    A stored text that is not one message is refused with ValueError
    (never anything else), so one damaged entry cannot stop delivery.
    """
    for text in ("<message", "<iq type='get'/>", "<message/><message/>", "plain"):
        with pytest.raises(ValueError):
            parseStoredStanza(text)


def test_hookPriorities() -> None:
    """
    RFC 6121 §8.5.2.2.1: storage comes after the default delivery (only
    what no resource took is stored); delivery follows presence broadcasts.
    """
    o = Offline()
    bare = o.h.sessions.hooks.handlers(INBOUND_BARE)
    assert OFFLINE_PRIORITY < DEFAULT_PRIORITY
    assert bare.index(o.service.storeIfOffline) > bare.index(o.h.sessions._deliverToBare)
    assert o.service.presenceChanged in o.h.sessions.hooks.handlers(PRESENCE_BROADCAST)
    o.service.uninstall()
    assert o.service.storeIfOffline not in o.h.sessions.hooks.handlers(INBOUND_BARE)
    assert o.service.presenceChanged not in o.h.sessions.hooks.handlers(PRESENCE_BROADCAST)


# --- storing -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["chat", "normal", None])
def test_stored(kind: str | None) -> None:
    """
    XEP-0160 §2, §3: a message of type chat or normal (or none) to an
    account with no available resource is stored, with the time, and the
    sender gets no error.
    """
    o = Offline()
    alice = o.login("alice")
    typeAttribute = f" type='{kind}'" if kind else ""
    alice.send(f"<message to='{BOB}' id='m1'{typeAttribute}><body>later</body></message>")
    assert alice.received().elements == []
    [entry] = o.h.store.offline[BOB]
    assert entry.stamp == NOW
    stored = parseStoredStanza(entry.stanza)
    assert (stored["from"], stored["to"], str(stored.body)) == (f"{ALICE}/phone", BOB, "later")


def test_storedForMissingFullJID() -> None:
    """
    RFC 6121 §8.5.3.2.1 and XEP-0160 §2: a message to a full JID with no
    session is treated as sent to the bare JID, and so stored.
    """
    o = Offline()
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}/gone' type='chat'><body>x</body></message>")
    assert alice.received().elements == []
    assert [m["to"] for m in o.stored()] == [f"{BOB}/gone"]


@pytest.mark.parametrize("kind", ["headline", "error", "groupchat"])
def test_notStoredTypes(kind: str) -> None:
    """
    XEP-0160 §3: headline, error and groupchat messages are not stored;
    RFC 6121 §8.5.2.2.1: a groupchat one is answered service-unavailable,
    the others are dropped.
    """
    o = Offline()
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}' type='{kind}' id='m1'><body>x</body></message>")
    answer = alice.received().elements
    assert o.h.store.offline.get(BOB, []) == []
    if kind == "groupchat":
        assert [stanzaErrorCondition(e) for e in answer] == ["service-unavailable"]
    else:
        assert answer == []


def test_storedWhenOnlyNegativePriority() -> None:
    """
    XEP-0160 §2 (note 4) and RFC 6121 §8.5.2.1.1: resources of negative
    priority never get messages to the bare JID: the account counts as
    offline and the message is stored, not sent to them.
    """
    o = Offline()
    bot = o.login("bob", "bot", "<presence><priority>-1</priority></presence>")
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}' type='chat'><body>x</body></message>")
    assert messages(bot) == []
    assert len(o.stored()) == 1
    assert alice.received().elements == []


def test_notStoredWhenAvailable() -> None:
    """
    XEP-0160 §2: a message for an account with an available resource of
    non-negative priority is delivered, not stored.
    """
    o = Offline()
    bob = o.login("bob")
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}' type='chat'><body>now</body></message>")
    assert [str(m.body) for m in messages(bob)] == ["now"]
    assert o.h.store.offline.get(BOB, []) == []


def test_queueFull() -> None:
    """
    XEP-0160 §2 step 3: when the account's queue is full, the sender gets
    service-unavailable (the same as without storage); nothing is logged
    at error for it.
    """
    o = Offline(maxMessages=2)
    alice = o.login("alice")
    with capturedLogs() as events:
        for n in range(3):
            alice.send(f"<message to='{BOB}' type='chat' id='m{n}'><body>{n}</body></message>")
    [bounce] = alice.received().elements
    assert (bounce["id"], stanzaErrorCondition(bounce)) == ("m2", "service-unavailable")
    assert [str(m.body) for m in o.stored()] == ["0", "1"]
    assert not [e for e in events if e["log_level"] >= LogLevel.warn]


def test_limitZeroStoresNothing() -> None:
    """
    IMConfig.max_offline_messages = 0 stores nothing: the sender gets
    service-unavailable (RFC 6121 §8.5.2.2.1), and a reload applies at once.
    """
    o = Offline(maxMessages=0)
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}' type='chat' id='m1'><body>x</body></message>")
    assert [stanzaErrorCondition(e) for e in alice.received().elements] == ["service-unavailable"]
    assert o.h.store.offline.get(BOB, []) == []
    o.config = IMConfig(max_offline_messages=5)
    alice.send(f"<message to='{BOB}' type='chat' id='m2'><body>x</body></message>")
    assert alice.received().elements == []
    assert len(o.stored()) == 1


def test_noStoreHint() -> None:
    """
    XEP-0334 §4.3: a message with <no-store/> is not stored, so the sender
    gets service-unavailable as without storage.
    """
    o = Offline()
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>")
    assert [stanzaErrorCondition(e) for e in alice.received().elements] == ["service-unavailable"]
    assert o.h.store.offline.get(BOB, []) == []


def test_standaloneChatStateDropped() -> None:
    """
    XEP-0160 §3: a chat message with only chat state content is not
    stored; it is dropped without an error to the sender.
    """
    o = Offline()
    alice = o.login("alice")
    alice.send(f"<message to='{BOB}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    assert alice.received().elements == []
    assert o.h.store.offline.get(BOB, []) == []


def test_unknownAccountNotRevealed() -> None:
    """
    RFC 6121 §8.5.1: a message to an account that does not exist gets the
    same service-unavailable as a full queue; nothing is stored.
    """
    o = Offline()
    alice = o.login("alice")
    alice.send("<message to='nobody@example.com' type='chat' id='m1'><body>x</body></message>")
    assert [stanzaErrorCondition(e) for e in alice.received().elements] == ["service-unavailable"]
    assert "nobody@example.com" not in o.h.store.offline


def test_storeFailureAnswersSender(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A store that fails must not lose a message silently: the sender gets
    internal-server-error (type wait, to try again), and the operator one
    error line a minute at most.
    """
    o = Offline()
    alice = o.login("alice")
    monkeypatch.setattr(o.h.store, "storeOfflineMessage", lambda *a, **k: defer.fail(StoreError("disk full")))
    with capturedLogs() as events:
        alice.send(f"<message to='{BOB}' type='chat' id='m1'><body>x</body></message>")
        alice.send(f"<message to='{BOB}' type='chat' id='m2'><body>x</body></message>")
    replies = alice.received().elements
    assert [(r["id"], stanzaErrorCondition(r)) for r in replies] == [
        ("m1", "internal-server-error"),
        ("m2", "internal-server-error"),
    ]
    assert replies[0].error["type"] == "wait"
    errors = [e for e in events if e["log_level"] == LogLevel.error]
    assert len(errors) == 1
    assert "disk full" in errors[0]["error"]


@pytest.mark.parametrize("kind", ["headline", "error", "groupchat"])
def test_hookLeavesOtherTypes(kind: str) -> None:
    """
    XEP-0160 §3: the hook itself never stores headline, error or groupchat
    messages (whatever runs before it), nor anything but messages.
    """
    o = Offline()
    for xml in (
        f"<message from='{ALICE}/phone' to='{BOB}' type='{kind}'><body>x</body></message>",
        f"<presence from='{ALICE}/phone' to='{BOB}'/>",
        f"<iq from='{ALICE}/phone' to='{BOB}' type='get' id='q'><query xmlns='jabber:iq:version'/></iq>",
    ):
        event = Inbound(parseOutput(xml).only(), None, jid.JID(BOB))
        assert resultOf(defer.ensureDeferred(o.service.storeIfOffline(event))) is False
    assert o.h.store.offline.get(BOB, []) == []


# --- delivering --------------------------------------------------------------


def storeFromAlice(o: Offline, *bodies: str) -> None:
    alice = o.login("alice")
    for body in bodies:
        alice.send(f"<message to='{BOB}' type='chat'><body>{body}</body></message>")
        o.h.clock.advance(60)
    assert alice.received().elements == []


def test_deliveredOnInitialPresence() -> None:
    """
    XEP-0160 §2: when the recipient sends initial presence with
    non-negative priority, the stored messages go to that resource, oldest
    first, each with a XEP-0203 delay from the server's domain stamped with
    when it was stored; the store is then empty.
    """
    o = Offline()
    storeFromAlice(o, "one", "two")
    bob = o.login("bob", presence=None)
    assert messages(bob) == []
    bob.send("<presence/>")
    delivered = messages(bob)
    assert [str(m.body) for m in delivered] == ["one", "two"]
    assert all(m["from"] == f"{ALICE}/phone" and m["to"] == BOB for m in delivered)
    delays = [next(m.elements(NS_DELAY, "delay")) for m in delivered]
    assert [(d["from"], d["stamp"], str(d)) for d in delays] == [
        (DOMAIN, NOW_STAMP, DELAY_REASON),
        (DOMAIN, "2023-11-14T22:14:20Z", DELAY_REASON),
    ]
    assert o.h.store.offline.get(BOB, []) == []


def test_deliveredOnlyToThatResource() -> None:
    """
    XEP-0160 §2 step 5: the messages go to the resource that sent the
    presence, not to the account's other resources.
    """
    o = Offline()
    desk = o.login("bob", "desk", "<presence><priority>-1</priority></presence>")
    storeFromAlice(o, "one")
    phone = o.login("bob", "phone", presence=None)
    phone.send("<presence/>")
    assert [str(m.body) for m in messages(phone)] == ["one"]
    assert messages(desk) == []


def test_notDeliveredOnNegativePriority() -> None:
    """
    XEP-0160 §2 step 5: initial presence of negative priority gets nothing;
    a later presence that makes the priority non-negative does.
    """
    o = Offline()
    storeFromAlice(o, "one")
    bob = o.login("bob", presence=None)
    bob.send("<presence><priority>-5</priority></presence>")
    assert messages(bob) == []
    assert len(o.stored()) == 1
    bob.send("<presence><priority>0</priority></presence>")
    assert [str(m.body) for m in messages(bob)] == ["one"]


def test_notOnLaterPresence() -> None:
    """
    XEP-0160 §2: delivery happens when the resource becomes available; a
    later presence update of an available resource takes nothing.
    """
    o = Offline()
    bob = o.login("bob")
    resultOf(o.h.store.storeOfflineMessage(BOB, f"<message xmlns='jabber:client' to='{BOB}'><body>x</body></message>", NOW))
    bob.send("<presence><show>away</show></presence>")
    assert messages(bob) == []
    assert len(o.stored()) == 1


def test_deliveredAgainAfterUnavailable() -> None:
    """
    XEP-0160 §2: a resource that went unavailable and comes back gets what
    was stored meanwhile.
    """
    o = Offline()
    bob = o.login("bob")
    bob.send("<presence type='unavailable'/>")
    bob.output()
    storeFromAlice(o, "meanwhile")
    bob.send("<presence/>")
    assert [str(m.body) for m in messages(bob)] == ["meanwhile"]


def test_survivesRestart() -> None:
    """
    Messages are in the store: a new server over the same store delivers
    what the old one stored.
    """
    o = Offline()
    storeFromAlice(o, "before restart")
    restarted = Offline(harness=makeServer(store=o.h.store))
    bob = restarted.login("bob", presence=None)
    bob.send("<presence/>")
    assert [str(m.body) for m in messages(bob)] == ["before restart"]


def test_damagedEntrySkipped() -> None:
    """
    An entry the store gives back damaged is dropped with an error line
    (the operator's matter); the others are delivered.
    """
    o = Offline()
    storeFromAlice(o, "good")
    resultOf(o.h.store.storeOfflineMessage(BOB, "<message", NOW))
    storeFromAlice(o, "also good")
    bob = o.login("bob", presence=None)
    with capturedLogs() as events:
        bob.send("<presence/>")
    assert [str(m.body) for m in messages(bob)] == ["good", "also good"]
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.im.offline"] == [LogLevel.error]


def test_takeFailureKeepsMessages(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    When the store fails to give the messages, they stay stored (for the
    next availability) and the operator gets an error line.
    """
    o = Offline()
    storeFromAlice(o, "kept")
    bob = o.login("bob", presence=None)
    monkeypatch.setattr(o.h.store, "takeOfflineMessages", lambda account: defer.fail(StoreError("locked")))
    with capturedLogs() as events:
        bob.send("<presence/>")
    assert messages(bob) == []
    assert len(o.stored()) == 1
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.im.offline"] == [LogLevel.error]


def test_sessionGoneWhileTaking(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Messages taken for a session that ends before they arrive are put back
    in the store (with their first stamps), not lost.
    """
    o = Offline()
    storeFromAlice(o, "one")
    pending: defer.Deferred[Any] = defer.Deferred()
    taken = o.h.store.takeOfflineMessages
    bob = o.login("bob", presence=None)
    monkeypatch.setattr(o.h.store, "takeOfflineMessages", lambda account: pending)
    bob.send("<presence/>")
    [session] = o.h.sessions.sessionsOf(jid.JID(BOB))
    o.h.sessions.unbind(session)
    session.close(error.StreamError("reset"))
    pending.callback(resultOf(taken(BOB)))
    [entry] = o.h.store.offline[BOB]
    assert entry.stamp == NOW
    assert str(parseStoredStanza(entry.stanza).body) == "one"


class RefuseFrom:
    """
    An offline filter that refuses messages from one bare JID.
    """

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.asked: list[tuple[str, str | None]] = []

    def mayDeliver(self, account: jid.JID, sender: jid.JID | None) -> defer.Deferred[bool]:
        self.asked.append((account.full(), sender.full() if sender else None))
        return defer.succeed(sender is None or sender.userhost() != self.refused)


def test_filterDropsMessages() -> None:
    """
    XEP-0191 §3.3 through IOfflineFilter: a stored message whose sender
    the filter refuses (blocked since) is not delivered.
    """
    refuse = RefuseFrom(ALICE)
    o = Offline(filter=refuse)
    storeFromAlice(o, "blocked since")
    resultOf(o.h.store.storeOfflineMessage(BOB, f"<message xmlns='jabber:client' from='carol@{DOMAIN}/x'><body>ok</body></message>", NOW))
    bob = o.login("bob", presence=None)
    bob.send("<presence/>")
    assert [str(m.body) for m in messages(bob)] == ["ok"]
    assert refuse.asked == [(BOB, f"{ALICE}/phone"), (BOB, f"carol@{DOMAIN}/x")]
    assert o.h.store.offline.get(BOB, []) == []


class BrokenFilter:
    """
    An offline filter with a bug.
    """

    def mayDeliver(self, account: jid.JID, sender: jid.JID | None) -> defer.Deferred[bool]:
        return defer.fail(RuntimeError("bug"))


def test_brokenFilterDoesNotLoseMessages() -> None:
    """
    A filter that fails does not cost the message, which was taken from
    the store already: it is delivered, and the failure logged.
    """
    o = Offline(filter=BrokenFilter())
    storeFromAlice(o, "still here")
    bob = o.login("bob", presence=None)
    with capturedLogs() as events:
        bob.send("<presence/>")
    assert [str(m.body) for m in messages(bob)] == ["still here"]
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.im.offline"] == [LogLevel.critical]


def test_discoFeature() -> None:
    """
    XEP-0160 §4: the server advertises 'msgoffline' in disco#info; the
    account does not.
    """
    o = Offline()
    assert defaultHandlers in o.h.server.handlerFactories
    alice = o.login("alice")
    alice.send(f"<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    result = alice.received().only("iq")
    assert result["type"] == "result"
    assert FEATURE_OFFLINE in features(result)
    alice.send("<iq type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    result = alice.received().only("iq")
    assert FEATURE_OFFLINE not in features(result)
