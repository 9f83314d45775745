"""
Tests for L{xmppcert.im.blocking}: the Blocking Command (XEP-0191).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    makeServer,
    parseOutput,
    resultOf,
    stanzaErrorCondition,
)
from tests.test_im_presence import connect as presenceConnect
from tests.test_im_presence import mutual as presenceMutual
from tests.test_im_presence import online as presenceOnline
from tests.test_im_presence import presences as presenceTuples
from tests.test_im_presence import send as presenceSend
from tests.test_im_roster import World, makeWorld, put, stored
from xmppcert.config import IMConfig
from xmppcert.im import blocking
from xmppcert.im.blocking import (
    BLOCKING_PRIORITY,
    NS_BLOCKING,
    NS_BLOCKING_ERRORS,
    REQUESTED_KEY,
    BlockingService,
    IBlockList,
    addressForms,
    isBlockedBy,
    parseItems,
)
from xmppcert.im.carbons import CARBONS_PRIORITY, NS_CARBONS, CarbonsService
from xmppcert.im.offline import IOfflineFilter, OfflineService
from xmppcert.routing import INBOUND_BARE, INBOUND_FULL, OUTBOUND
from xmppcert.store.interfaces import RosterItem, StoreError

CAROL = "carol@example.com"
OTHER = "other.example"


class Blocking:
    """
    A server harness (alice, bob, carol) with an installed
    L{BlockingService}; optionally carbons and offline storage too, wired
    as the lead would.
    """

    def __init__(self, maxBlocked: int = 1000, carbons: bool = False, offline: bool = False) -> None:
        self.h = makeServer(accounts=(ALICE, BOB, CAROL))
        self.config = IMConfig(max_blocked=maxBlocked)
        self.service = BlockingService(self.h.sessions, self.h.store, lambda: self.config, self.h.clock)
        self.service.install()
        self.h.server.handlerFactories.append(self.service.handlersFor)
        if carbons:
            self.carbons = CarbonsService(self.h.sessions)
            self.carbons.install()
            self.h.server.handlerFactories.append(self.carbons.handlersFor)
        if offline:
            self.offline = OfflineService(
                self.h.sessions, self.h.store, self.h.clock, lambda: self.config, filter=self.service
            )
            self.offline.install()

    def login(
        self, user: str, resource: str = "phone", presence: str | None = "<presence/>", requestList: bool = False
    ) -> ClientConnection:
        client = self.h.connect()
        client.bound(resource, user=user)
        if presence is not None:
            client.send(presence)
        if requestList:
            client.send(f"<iq type='get' id='list'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
        client.output()
        return client

    def block(self, client: ClientConnection, *jids: str) -> domish.Element:
        items = "".join(f"<item jid='{j}'/>" for j in jids)
        client.send(f"<iq type='set' id='b'><block xmlns='{NS_BLOCKING}'>{items}</block></iq>")
        [answer] = [i for i in iqs(client.received()) if i.getAttribute("id") == "b"]
        return answer

    def blockedBy(self, account: str) -> set[str]:
        return set(resultOf(self.h.store.getBlockList(account)))

    def subscribe(self, account: str, contact: str, subscription: str) -> None:
        resultOf(self.h.store.putRosterItem(account, RosterItem(contact, subscription=subscription)))


def iqs(received: Any) -> list[domish.Element]:
    return [e for e in received.elements if e.name == "iq"]


def itemJIDs(element: domish.Element) -> list[str]:
    return [item["jid"] for item in element.elements(NS_BLOCKING, "item")]


def child(element: domish.Element, name: str) -> domish.Element:
    [found] = [c for c in element.elements() if c.name == name]
    return found


def isBlockedError(stanza: domish.Element) -> bool:
    condition = stanzaErrorCondition(stanza)
    errorElement = child(stanza, "error")
    blocked = [c for c in errorElement.elements() if (c.uri, c.name) == (NS_BLOCKING_ERRORS, "blocked")]
    return condition == "not-acceptable" and len(blocked) == 1 and errorElement["type"] == "cancel"


# --- matching --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "address", "blocked"),
    [
        ("bob@example.com/desk", "bob@example.com/desk", True),
        ("bob@example.com/desk", "bob@example.com/phone", False),
        ("bob@example.com/desk", "bob@example.com", False),
        ("bob@example.com", "bob@example.com/desk", True),
        ("bob@example.com", "bob@example.com", True),
        ("bob@example.com", "carol@example.com", False),
        ("example.com/service", "example.com/service", True),
        ("example.com/service", "example.com/other", False),
        ("example.com/service", "bob@example.com/service", False),
        ("example.com", "bob@example.com/desk", True),
        ("example.com", "example.com/service", True),
        ("example.com", "example.com", True),
        ("example.com", "muc.example.com", True),
        ("example.com", "room@muc.example.com/nick", True),
        ("example.com", "notexample.com", False),
        ("muc.example.com", "example.com", False),
    ],
)
def test_matching(entry: str, address: str, blocked: bool) -> None:
    """
    XEP-0191 §4: user@domain/resource matches only that resource;
    user@domain any resource; domain/resource only that resource; a domain
    itself, any JID at it, and any JID at a subdomain.
    """
    assert isBlockedBy(frozenset([entry]), jid.JID(address)) is blocked


def test_addressForms() -> None:
    """
    XEP-0191 §4: the entries that match an address, most specific first.
    """
    assert addressForms(jid.JID("a@muc.example.com/r")) == [
        "a@muc.example.com/r",
        "a@muc.example.com",
        "muc.example.com",
        "example.com",
        "com",
    ]


@pytest.mark.parametrize(
    ("xml", "required", "condition"),
    [
        ("<block xmlns='urn:xmpp:blocking'/>", True, "bad-request"),
        ("<block xmlns='urn:xmpp:blocking'><item/></block>", True, "bad-request"),
        ("<block xmlns='urn:xmpp:blocking'><item jid='a@@b'/></block>", True, "jid-malformed"),
        ("<block xmlns='urn:xmpp:blocking'><item jid=''/></block>", True, "jid-malformed"),
        ("<unblock xmlns='urn:xmpp:blocking'><item jid='a@b/'/></unblock>", False, "jid-malformed"),
        ("<block xmlns='urn:xmpp:blocking'><item jid='a@b'/><item jid='c@d'/><item jid='e@f'/></block>", True, "bad-request"),
    ],
)
def test_parseItemsRefuses(xml: str, required: bool, condition: str) -> None:
    """
    XEP-0191 §3.3: a <block/> without an <item/> is bad-request; an item
    without a JID too; an invalid JID is jid-malformed (RFC 6120 §8.3.3.8);
    more items than the limit at once, bad-request.
    """
    with pytest.raises(Exception) as info:
        parseItems(parseOutput(xml).only(), required, limit=2)
    assert getattr(info.value, "condition", None) == condition


def test_parseItemsPrepares() -> None:
    """
    RFC 7622: JIDs are prepared, and each is kept once, in order.
    """
    element = parseOutput(
        "<unblock xmlns='urn:xmpp:blocking'><item jid='Bob@Example.COM'/><item jid='other.example'/>"
        "<item jid='bob@example.com'/></unblock>"
    ).only()
    assert parseItems(element, required=False) == [BOB, OTHER]
    assert parseItems(parseOutput("<unblock xmlns='urn:xmpp:blocking'/>").only(), required=False) == []


def test_interfaces() -> None:
    """
    The service answers other features: IBlockList, and IOfflineFilter for
    offline storage.
    """
    b = Blocking()
    assert verifyObject(IBlockList, b.service)
    assert verifyObject(IOfflineFilter, b.service)


def test_hookPriorities() -> None:
    """
    Blocking runs before every other feature (carbons included) on all
    three hook points.
    """
    b = Blocking(carbons=True)
    hooks = b.h.sessions.hooks
    assert BLOCKING_PRIORITY > CARBONS_PRIORITY
    for point in (INBOUND_FULL, INBOUND_BARE, OUTBOUND):
        assert hooks.handlers(point)[0] in (b.service.filterInbound, b.service.filterOutbound)
    b.service.uninstall()
    for point in (INBOUND_FULL, INBOUND_BARE, OUTBOUND):
        assert b.service.filterInbound not in hooks.handlers(point)
        assert b.service.filterOutbound not in hooks.handlers(point)


def countBlockListReads(monkeypatch: pytest.MonkeyPatch, store: Any) -> list[str]:
    """
    The accounts whose block list C{store} is asked for, from now on.
    """
    reads: list[str] = []
    original = store.getBlockList

    def counting(account: str) -> Any:
        reads.append(account)
        return original(account)

    monkeypatch.setattr(store, "getBlockList", counting)
    return reads


# --- requests --------------------------------------------------------------------


def test_blockListEmptyThenItems() -> None:
    """
    XEP-0191 §3.2: the block list is an empty <blocklist/> when nothing is
    blocked, else one <item/> per JID.
    """
    b = Blocking()
    alice = b.login("alice")
    alice.send(f"<iq type='get' id='l1'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
    result = alice.received().only("iq")
    assert result["type"] == "result"
    listElement = child(result, "blocklist")
    assert listElement.uri == NS_BLOCKING and itemJIDs(listElement) == []
    [session] = b.h.sessions.sessionsOf(jid.JID(ALICE))
    assert session.info[REQUESTED_KEY] is True
    other = Blocking()
    resultOf(other.h.store.blockJIDs(ALICE, [OTHER, BOB]))
    fresh = other.login("alice", "laptop")
    fresh.send(f"<iq type='get' id='l2' to='{ALICE}'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
    assert itemJIDs(child(fresh.received().only("iq"), "blocklist")) == [BOB, OTHER]


def test_block() -> None:
    """
    XEP-0191 §3.3: a block is answered with a result, stored (prepared),
    and pushed to every resource of the account that asked for the block
    list (the requester included), and only to those.
    """
    b = Blocking()
    phone = b.login("alice", "phone", requestList=True)
    laptop = b.login("alice", "laptop", requestList=True)
    tablet = b.login("alice", "tablet")
    phone.send(f"<iq type='set' id='b1'><block xmlns='{NS_BLOCKING}'><item jid='Bob@Example.com'/></block></iq>")
    received = phone.received()
    assert [(i["type"], i.getAttribute("id")) for i in iqs(received)][-1] == ("result", "b1")
    assert b.blockedBy(ALICE) == {BOB}
    for client, resource in ((phone, "phone"), (laptop, "laptop")):
        pushes = [i for i in iqs(received if client is phone else client.received()) if i["type"] == "set"]
        [push] = pushes
        assert push["to"] == f"{ALICE}/{resource}"
        assert push.getAttribute("from") is None
        assert itemJIDs(child(push, "block")) == [BOB]
    assert tablet.received().elements == []


def test_blockRefusals() -> None:
    """
    XEP-0191 §3.3: an empty <block/> is bad-request; an invalid JID is
    jid-malformed; nothing is stored or pushed.
    """
    b = Blocking()
    alice = b.login("alice", requestList=True)
    alice.send(f"<iq type='set' id='e1'><block xmlns='{NS_BLOCKING}'/></iq>")
    alice.send(f"<iq type='set' id='e2'><block xmlns='{NS_BLOCKING}'><item jid='bob@@x'/></block></iq>")
    answers = iqs(alice.received())
    assert [(a["id"], stanzaErrorCondition(a)) for a in answers] == [("e1", "bad-request"), ("e2", "jid-malformed")]
    assert b.blockedBy(ALICE) == set()


def test_blockListFull() -> None:
    """
    IMConfig.max_blocked: a block that would exceed it is refused with
    resource-constraint and blocks nothing.
    """
    b = Blocking(maxBlocked=2)
    alice = b.login("alice")
    assert b.block(alice, BOB)["type"] == "result"
    answer = b.block(alice, CAROL, OTHER)
    assert stanzaErrorCondition(answer) == "resource-constraint"
    assert b.blockedBy(ALICE) == {BOB}
    assert stanzaErrorCondition(b.block(alice, "a@x", "b@x", "c@x")) == "bad-request"


def test_answersInOrder(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    RFC 6120 §10.1: one stream's requests are answered in the order they
    came, a refused one after the one before it that waits for the store.
    """
    b = Blocking()
    alice = b.login("alice")
    pending: defer.Deferred[Any] = defer.Deferred()
    blockJIDs = b.h.store.blockJIDs
    monkeypatch.setattr(b.h.store, "blockJIDs", lambda *a, **k: pending)
    alice.send(f"<iq type='set' id='first'><block xmlns='{NS_BLOCKING}'><item jid='{BOB}'/></block></iq>")
    alice.send(f"<iq type='set' id='second'><block xmlns='{NS_BLOCKING}'/></iq>")
    assert alice.received().elements == []
    pending.callback(resultOf(blockJIDs(ALICE, [BOB])))
    assert [(i["id"], i["type"]) for i in iqs(alice.received())] == [("first", "result"), ("second", "error")]


def test_bugDoesNotJamTheStream(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    RFC 6120 §8.3.3.5: a request that meets a bug is answered
    internal-server-error, and the requests after it are still answered.
    """
    b = Blocking()
    alice = b.login("alice")

    async def broken(session: Any) -> domish.Element:
        raise RuntimeError("bug")

    monkeypatch.setattr(b.service, "requestList", broken)
    with capturedLogs() as events:
        alice.send(f"<iq type='get' id='l1'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
    alice.send(f"<iq type='set' id='b1'><block xmlns='{NS_BLOCKING}'><item jid='{BOB}'/></block></iq>")
    answers = iqs(alice.received())
    assert [(a["id"], a["type"]) for a in answers] == [("l1", "error"), ("b1", "result")]
    assert stanzaErrorCondition(answers[0]) == "internal-server-error"
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.handlers"] == [LogLevel.critical]


def test_unblock() -> None:
    """
    XEP-0191 §3.4 and §3.5: an unblock of items removes them, an empty
    <unblock/> removes every JID; each is answered with a result and
    pushed to the resources that asked for the list.
    """
    b = Blocking()
    alice = b.login("alice", requestList=True)
    b.block(alice, BOB, CAROL, OTHER)
    alice.output()
    alice.send(f"<iq type='set' id='u1'><unblock xmlns='{NS_BLOCKING}'><item jid='{BOB}'/></unblock></iq>")
    received = iqs(alice.received())
    assert b.blockedBy(ALICE) == {CAROL, OTHER}
    [push] = [i for i in received if i["type"] == "set"]
    assert itemJIDs(child(push, "unblock")) == [BOB]
    assert [i["id"] for i in received if i["type"] == "result"] == ["u1"]
    alice.send(f"<iq type='set' id='u2'><unblock xmlns='{NS_BLOCKING}'/></iq>")
    received = iqs(alice.received())
    assert b.blockedBy(ALICE) == set()
    [push] = [i for i in received if i["type"] == "set"]
    assert itemJIDs(child(push, "unblock")) == []


@pytest.mark.parametrize("to", [DOMAIN, BOB])
def test_requestElsewhereRefused(to: str) -> None:
    """
    XEP-0191 §3.2, §3.3: the requests have no 'to' (the user's server
    handles them); to the server domain or another user they block nothing.
    """
    b = Blocking()
    b.login("bob")
    alice = b.login("alice")
    alice.send(f"<iq type='set' id='x' to='{to}'><block xmlns='{NS_BLOCKING}'><item jid='{CAROL}'/></block></iq>")
    answer = alice.received().only("iq")
    assert stanzaErrorCondition(answer) == "service-unavailable"
    assert b.blockedBy(ALICE) == set()


def test_storeFailure(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A failing store: the request gets internal-server-error (type wait),
    and the operator one error line a minute at most.
    """
    b = Blocking()
    alice = b.login("alice")
    monkeypatch.setattr(b.h.store, "blockJIDs", lambda *a, **k: defer.fail(StoreError("read-only")))
    with capturedLogs() as events:
        first = b.block(alice, BOB)
        second = b.block(alice, CAROL)
    for answer in (first, second):
        assert stanzaErrorCondition(answer) == "internal-server-error"
        assert child(answer, "error")["type"] == "wait"
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.im.blocking"].count(
        LogLevel.error
    ) == 1


def test_discoFeature() -> None:
    """
    XEP-0191 §3.1: the server advertises urn:xmpp:blocking.
    """
    b = Blocking()
    alice = b.login("alice")
    alice.send(f"<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    result = alice.received().only("iq")
    assert NS_BLOCKING in [f["var"] for f in result.query.elements() if f.name == "feature"]


# --- inbound -------------------------------------------------------------------------


def test_inboundMessage() -> None:
    """
    XEP-0191 §3.3: a chat or normal message from a blocked JID is not
    delivered, and its sender gets service-unavailable (as if the user were
    offline); a headline is dropped without a word.
    """
    b = Blocking()
    alice = b.login("alice")
    b.block(alice, BOB)
    bob = b.login("bob", "desk")
    for to in (ALICE, f"{ALICE}/phone"):
        bob.send(f"<message to='{to}' type='chat' id='m1'><body>hi</body></message>")
        bob.send(f"<message to='{to}' id='m2'><body>hi</body></message>")
        bob.send(f"<message to='{to}' type='headline' id='m3'><body>hi</body></message>")
        answers = bob.received().elements
        assert [(a["id"], stanzaErrorCondition(a)) for a in answers] == [
            ("m1", "service-unavailable"),
            ("m2", "service-unavailable"),
        ]
    assert alice.received().elements == []


def test_blockTakesEffectAtOnce() -> None:
    """
    XEP-0191 §3.3: once the block is answered, stanzas from the JID stop,
    also when the block list was already in memory.
    """
    b = Blocking()
    alice = b.login("alice", requestList=True)
    bob = b.login("bob", "desk")
    bob.send(f"<message to='{ALICE}' type='chat'><body>before</body></message>")
    assert [str(m.body) for m in alice.received().named("message")] == ["before"]
    b.block(alice, BOB)
    bob.send(f"<message to='{ALICE}' type='chat' id='m'><body>after</body></message>")
    assert alice.received().named("message") == []
    assert stanzaErrorCondition(bob.received().only()) == "service-unavailable"


def test_inboundPresence() -> None:
    """
    XEP-0191 §3.3: presence from a blocked JID (directed, subscription
    requests, probes) is dropped, with no error.
    """
    b = Blocking()
    alice = b.login("alice")
    b.block(alice, BOB)
    bob = b.login("bob", "desk")
    for xml in (f"<presence to='{ALICE}/phone'/>", f"<presence to='{ALICE}' type='subscribe'/>", f"<presence to='{ALICE}'/>"):
        bob.send(xml)
    assert alice.received().elements == []
    assert bob.received().elements == []


def test_inboundIQ() -> None:
    """
    XEP-0191 §3.3: an iq get or set from a blocked JID is answered
    service-unavailable; an iq result or error is dropped.
    """
    b = Blocking()
    alice = b.login("alice")
    b.block(alice, BOB)
    bob = b.login("bob", "desk")
    bob.send(f"<iq to='{ALICE}/phone' type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>")
    bob.send(f"<iq to='{ALICE}/phone' type='result' id='q2'/>")
    answers = bob.received().elements
    assert [(a["id"], stanzaErrorCondition(a)) for a in answers] == [("q1", "service-unavailable")]
    assert alice.received().elements == []


def test_fullJIDBlocksOneResource() -> None:
    """
    XEP-0191 §4: a blocked full JID stops that resource only.
    """
    b = Blocking()
    alice = b.login("alice")
    b.block(alice, f"{BOB}/desk")
    desk = b.login("bob", "desk")
    laptop = b.login("bob", "laptop")
    desk.send(f"<message to='{ALICE}' type='chat'><body>desk</body></message>")
    laptop.send(f"<message to='{ALICE}' type='chat'><body>laptop</body></message>")
    assert [str(m.body) for m in alice.received().named("message")] == ["laptop"]


def test_domainBlocksEveryone() -> None:
    """
    XEP-0191 §4: a blocked domain stops every JID at it.
    """
    b = Blocking()
    alice = b.login("alice")
    b.block(alice, DOMAIN)
    for user in ("bob", "carol"):
        client = b.login(user, "desk")
        client.send(f"<message to='{ALICE}' type='chat' id='m'><body>x</body></message>")
        assert stanzaErrorCondition(client.received().only()) == "service-unavailable"
    assert alice.received().elements == []


def test_ownResourcesNeverBlocked() -> None:
    """
    The user's own resources are not filtered, even under a blocked domain.
    """
    b = Blocking()
    phone = b.login("alice")
    laptop = b.login("alice", "laptop")
    b.block(phone, DOMAIN)
    laptop.send(f"<message to='{ALICE}/phone' type='chat'><body>note</body></message>")
    assert [str(m.body) for m in phone.received().named("message")] == ["note"]


def test_unblockedDeliveredAgain() -> None:
    """
    XEP-0191 §3.4: after unblocking, stanzas from the JID are delivered.
    """
    b = Blocking()
    alice = b.login("alice")
    b.block(alice, BOB)
    alice.send(f"<iq type='set' id='u'><unblock xmlns='{NS_BLOCKING}'><item jid='{BOB}'/></unblock></iq>")
    alice.output()
    bob = b.login("bob", "desk")
    bob.send(f"<message to='{ALICE}' type='chat'><body>again</body></message>")
    assert [str(m.body) for m in alice.received().named("message")] == ["again"]


# --- outbound ------------------------------------------------------------------------


def test_outbound() -> None:
    """
    XEP-0191 §3.3: a message or iq request the user sends to a blocked JID
    is not routed: it gets not-acceptable with <blocked/>; presence is
    dropped silently.
    """
    b = Blocking()
    alice = b.login("alice")
    bob = b.login("bob", "desk")
    b.block(alice, BOB)
    alice.send(f"<message to='{BOB}' type='chat' id='m1'><body>hi</body></message>")
    alice.send(f"<iq to='{BOB}/desk' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.send(f"<presence to='{BOB}/desk'/>")
    alice.send(f"<iq to='{BOB}/desk' type='result' id='q2'/>")
    answers = alice.received().elements
    assert [a["id"] for a in answers] == ["m1", "q1"]
    assert all(isBlockedError(a) for a in answers)
    assert answers[0]["from"] == BOB
    assert bob.received().elements == []


def test_onBehalfFiltered() -> None:
    """
    Stanzas the server sends on a user's behalf (no sender session) are
    filtered on their 'from' and 'to': to a JID the user blocked, and from
    a JID the recipient blocked.
    """
    b = Blocking()
    alice = b.login("alice")
    bob = b.login("bob", "desk")
    b.block(alice, BOB)

    def presence(sender: str, to: str) -> domish.Element:
        return parseOutput(f"<presence from='{sender}' to='{to}'/>").only()

    resultOf(b.h.sessions.deliver(presence(f"{ALICE}/phone", BOB), jid.JID(BOB)))
    resultOf(b.h.sessions.deliver(presence(f"{BOB}/desk", ALICE), jid.JID(ALICE)))
    assert bob.received().elements == []
    assert alice.received().elements == []
    carol = b.login("carol", "desk")
    resultOf(b.h.sessions.deliver(presence(f"{ALICE}/phone", CAROL), jid.JID(CAROL)))
    assert [p["from"] for p in carol.received().named("presence")] == [f"{ALICE}/phone"]


def test_onBehalfOfOfflineUser() -> None:
    """
    The block list of a user with no session is read from the store to
    filter what the server sends on its behalf.
    """
    b = Blocking()
    resultOf(b.h.store.blockJIDs(ALICE, [BOB]))
    bob = b.login("bob", "desk")
    resultOf(b.h.sessions.deliver(parseOutput(f"<presence from='{ALICE}' to='{BOB}' type='unavailable'/>").only(), jid.JID(BOB)))
    assert bob.received().elements == []


# --- presence on block and unblock ---------------------------------------------------


@pytest.mark.parametrize(("subscription", "told"), [("from", True), ("both", True), ("to", False), ("none", False)])
def test_unavailableOnBlock(subscription: str, told: bool) -> None:
    """
    XEP-0191 §3.3: on a block, each available resource of the user sends
    unavailable presence to the contact, if the contact may receive the
    user's presence (subscription from or both, RFC 6121 §2.1.2.5).
    """
    b = Blocking()
    b.subscribe(ALICE, BOB, subscription)
    phone = b.login("alice", "phone")
    b.login("alice", "laptop", presence=None)
    bob = b.login("bob", "desk")
    b.block(phone, BOB)
    received = bob.received().named("presence")
    if told:
        assert [(p["from"], p["type"]) for p in received] == [(f"{ALICE}/phone", "unavailable")]
    else:
        assert received == []


def test_unavailableOnDomainBlock() -> None:
    """
    XEP-0191 §3.3, §4: blocking a domain tells every subscribed contact
    at it.
    """
    b = Blocking()
    b.subscribe(ALICE, BOB, "both")
    b.subscribe(ALICE, CAROL, "from")
    phone = b.login("alice")
    bob = b.login("bob", "desk")
    carol = b.login("carol", "desk")
    b.block(phone, DOMAIN)
    assert [p["type"] for p in bob.received().named("presence")] == ["unavailable"]
    assert [p["type"] for p in carol.received().named("presence")] == ["unavailable"]


def test_presenceOnUnblock() -> None:
    """
    XEP-0191 §3.4: on an unblock, the contact gets the user's current
    presence (if it may receive it); not while another entry still blocks
    it.
    """
    b = Blocking()
    b.subscribe(ALICE, BOB, "both")
    b.subscribe(ALICE, CAROL, "both")
    phone = b.login("alice", presence="<presence><show>away</show></presence>")
    bob = b.login("bob", "desk")
    carol = b.login("carol", "desk")
    b.block(phone, BOB, CAROL, DOMAIN)
    bob.output()
    carol.output()
    delivered: list[str] = []
    deliver = b.h.sessions.deliver

    def recording(stanza: domish.Element, target: jid.JID, sender: Any = None) -> Any:
        delivered.append(target.full())
        return deliver(stanza, target, sender)

    b.h.sessions.deliver = recording  # type: ignore[method-assign]
    phone.send(f"<iq type='set' id='u'><unblock xmlns='{NS_BLOCKING}'><item jid='{BOB}'/></unblock></iq>")
    assert bob.received().elements == []
    assert delivered == []
    phone.send(f"<iq type='set' id='u'><unblock xmlns='{NS_BLOCKING}'/></iq>")
    for client in (bob, carol):
        [presence] = client.received().named("presence")
        assert presence["from"] == f"{ALICE}/phone" and str(presence.show) == "away"


# --- with subscriptions (the presence service) -------------------------------------------


def presenceWorld() -> tuple[World, BlockingService]:
    """
    The roster and presence services of tests.test_im_presence, with
    blocking installed as installIM does.
    """
    world = makeWorld()
    blocking = BlockingService(world.manager, world.store, world.im, world.clock)
    blocking.install()
    return world, blocking


def test_unsubscriptionsPassBlocking() -> None:
    """
    RFC 6121 Appendix A (XEP-0191 §3.3 stops communication, not the taking
    away of rights): "unsubscribe" and "unsubscribed" pass blocking both
    ways, so both rosters change; "subscribe" and "subscribed" stay
    blocked.
    """
    world, blocking = presenceWorld()
    presenceMutual(world, ALICE, BOB)
    presenceMutual(world, ALICE, CAROL)
    alice, _ = presenceOnline(world, f"{ALICE}/phone")
    bob, bobClient = presenceOnline(world, f"{BOB}/desk")
    resultOf(blocking.block(alice, [BOB, CAROL]))
    # From the user to the JID she blocked.
    presenceSend(world, alice, f"<presence type='unsubscribed' to='{BOB}'/>")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="to")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="from")
    # From the blocked JID to the user.
    presenceSend(world, bob, f"<presence type='unsubscribed' to='{ALICE}'/>")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="none")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="none")
    # Nothing else passes: bob's request stays his own (Pending Out).
    presenceSend(world, bob, f"<presence type='subscribe' to='{ALICE}'/>")
    presenceSend(world, alice, f"<presence type='subscribed' to='{BOB}'/>")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="none")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="none", askOut=True)
    # Unsubscribe, by the user, and on her behalf by a roster removal.
    carol, _ = presenceOnline(world, f"{CAROL}/pad")
    presenceSend(world, alice, f"<presence type='unsubscribe' to='{CAROL}'/>")
    assert stored(world.store, CAROL, ALICE) == RosterItem(ALICE, subscription="to")
    resultOf(world.roster.removeItem(jid.JID(ALICE), CAROL))
    assert stored(world.store, CAROL, ALICE) == RosterItem(ALICE, subscription="none")


def test_rosterRemovalOfBlockedContact() -> None:
    """
    RFC 6121 §2.5.2 and Appendix A with XEP-0191: removing a blocked
    contact from the roster ends the subscriptions on both sides, so an
    unblock later does not give the contact presence it no longer may have.
    """
    world, blocking = presenceWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="to"))
    put(world.store, BOB, RosterItem(ALICE, subscription="from"))
    bob, _ = presenceOnline(world, f"{BOB}/pc")
    resultOf(blocking.block(bob, [ALICE]))
    resultOf(world.roster.removeItem(jid.JID(BOB), ALICE))
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="none")
    resultOf(blocking.unblock(bob, [ALICE]))
    _, aliceClient = presenceOnline(world, f"{ALICE}/phone")
    assert [p for p in presenceTuples(aliceClient) if p[1] and p[1].startswith("bob@")] == []


def test_presenceToOfflineAccountNotChecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Blocking cost: presence that the default delivery drops anyway
    (RFC 6121 §8.5.2.2.3, §8.5.3.2.3: for an account without an available
    resource) reads no block list; subscription requests still do, and
    stay blocked (XEP-0191 §3.3).
    """
    world, blocking = presenceWorld()
    resultOf(world.store.blockJIDs(ALICE, [BOB]))
    reads = countBlockListReads(monkeypatch, world.store)
    bob, _ = presenceOnline(world, f"{BOB}/desk")
    for _ in range(3):
        presenceSend(world, bob, f"<presence to='{ALICE}'/>")
        presenceSend(world, bob, f"<presence to='{ALICE}/phone' type='unavailable'/>")
    assert ALICE not in reads
    presenceSend(world, bob, f"<presence type='subscribe' to='{ALICE}'/>")
    assert ALICE in reads
    assert stored(world.store, ALICE, BOB) is None
    # A bound session that is not available gets directed presence: checked.
    _, aliceClient = presenceConnect(world, f"{ALICE}/phone")
    presenceSend(world, bob, f"<presence to='{ALICE}/phone'/>")
    assert presenceTuples(aliceClient) == []


# --- cache -----------------------------------------------------------------------------


def test_cacheWhileSessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The block list is read once while the account has sessions, and read
    again after its last session ended.
    """
    b = Blocking()
    reads = countBlockListReads(monkeypatch, b.h.store)
    alice = b.login("alice")
    bob = b.login("bob", "desk")
    for _ in range(3):
        bob.send(f"<message to='{ALICE}' type='chat'><body>x</body></message>")
    assert reads.count(ALICE) == 1
    resultOf(b.h.store.blockJIDs(ALICE, [BOB]))
    for session in b.h.sessions.sessionsOf(jid.JID(ALICE)):
        b.h.sessions.unbind(session)
    alice = b.login("alice")
    bob.send(f"<message to='{ALICE}' type='chat' id='m'><body>x</body></message>")
    assert reads.count(ALICE) == 2
    assert alice.received().elements == []


def test_offlineListsKeptUntilSessionCheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    XEP-0191 §3.3 for stanzas sent on behalf of accounts without sessions
    (answers to probes, a session's unavailable presence): their block
    lists are read once and kept, the least recently used dropped beyond
    L{OFFLINE_LISTS_KEPT}, until the next session check forgets them (a
    change made beside the service, in the store, shows from then on).
    """
    b = Blocking()
    reads = countBlockListReads(monkeypatch, b.h.store)
    monkeypatch.setattr(blocking, "OFFLINE_LISTS_KEPT", 2)

    def blockList(account: str) -> frozenset[str]:
        found: frozenset[str] = resultOf(defer.ensureDeferred(b.service.blockList(account)))
        return found

    b.login("alice")
    [session] = b.h.sessions.sessionsOf(jid.JID(ALICE))
    b.h.sessions.unbind(session)
    for _ in range(2):
        blockList(ALICE)
        blockList(BOB)
    assert reads == [ALICE, BOB]
    blockList(CAROL)
    blockList(ALICE)
    assert reads == [ALICE, BOB, CAROL, ALICE]
    resultOf(b.h.store.blockJIDs(ALICE, [BOB]))
    assert blockList(ALICE) == frozenset()
    b.service.forgetOfflineLists()
    assert blockList(ALICE) == frozenset({BOB})
    assert reads == [ALICE, BOB, CAROL, ALICE, ALICE]


def test_inboundStoreFailure(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    When the block list cannot be read, nothing is delivered that might be
    blocked: a message gets internal-server-error (try again), presence is
    dropped; the operator gets one error line a minute at most.
    """
    b = Blocking()
    bob = b.login("bob", "desk")
    original = b.h.store.getBlockList

    def failing(account: str) -> Any:
        return defer.fail(StoreError("locked")) if account == ALICE else original(account)

    monkeypatch.setattr(b.h.store, "getBlockList", failing)
    with capturedLogs() as events:
        bob.send(f"<message to='{ALICE}' type='chat' id='m1'><body>x</body></message>")
        bob.send(f"<presence to='{ALICE}'/>")
        bob.send(f"<message to='{ALICE}' type='chat' id='m2'><body>x</body></message>")
    answers = bob.received().elements
    assert [(a["id"], stanzaErrorCondition(a)) for a in answers] == [
        ("m1", "internal-server-error"),
        ("m2", "internal-server-error"),
    ]
    assert [e["log_level"] for e in events if e.get("log_namespace") == "xmppcert.im.blocking"] == [LogLevel.error]


# --- with the other features -----------------------------------------------------------


def test_blockedNotCopied() -> None:
    """
    XEP-0191 §3.3 with XEP-0280: a blocked message is not carbon-copied
    either way.
    """
    b = Blocking(carbons=True)
    phone = b.login("alice")
    laptop = b.login("alice", "laptop")
    laptop.send(f"<iq type='set' id='c'><enable xmlns='{NS_CARBONS}'/></iq>")
    laptop.output()
    bob = b.login("bob", "desk")
    b.block(phone, BOB)
    bob.send(f"<message to='{ALICE}/phone' type='chat'><body>in</body></message>")
    phone.send(f"<message to='{BOB}' type='chat'><body>out</body></message>")
    assert laptop.received().elements == []


def test_blockedNotStoredOffline() -> None:
    """
    XEP-0191 §3.3 with XEP-0160: a message from a blocked JID to an
    offline user is not stored; the sender gets service-unavailable, as
    for any offline user without storage.
    """
    b = Blocking(offline=True)
    resultOf(b.h.store.blockJIDs(ALICE, [BOB]))
    bob = b.login("bob", "desk")
    bob.send(f"<message to='{ALICE}' type='chat' id='m'><body>x</body></message>")
    assert stanzaErrorCondition(bob.received().only()) == "service-unavailable"
    assert b.h.store.offline.get(ALICE, []) == []


def test_storedBeforeBlockNotDelivered() -> None:
    """
    XEP-0191 §3.3 ("MUST NOT deliver any stanzas from the contact") with
    XEP-0160: a message stored before the block is not delivered after it.
    """
    b = Blocking(offline=True)
    bob = b.login("bob", "desk")
    bob.send(f"<message to='{ALICE}' type='chat'><body>before</body></message>")
    carol = b.login("carol", "desk")
    carol.send(f"<message to='{ALICE}' type='chat'><body>fine</body></message>")
    resultOf(b.h.store.blockJIDs(ALICE, [BOB]))
    alice = b.login("alice", presence=None)
    alice.send("<presence/>")
    assert [str(m.body) for m in alice.received().named("message")] == ["fine"]
