"""
Tests for L{xmppcert.im.roster}: roster get, set, remove, pushes and
versioning (RFC 6121 section 2), through a real client stream, and the
subscription states of RFC 6121 Appendix A as pure transitions.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    FakeClient,
    Received,
    ServerHarness,
    addAccount,
    bindSession,
    makeServer,
    parseOutput,
    resultOf,
    stanzaErrorCondition,
)
from xmppcert.config import IMConfig
from xmppcert.im.presence import PresenceService
from xmppcert.im.roster import (
    INTERESTED_KEY,
    MAX_GROUP_BYTES,
    MAX_GROUPS,
    MAX_NAME_BYTES,
    NS_PREAPPROVAL,
    NS_ROSTER,
    NS_ROSTERVER,
    SUBSCRIBE,
    SUBSCRIBED,
    UNSUBSCRIBE,
    UNSUBSCRIBED,
    IRosterService,
    RosterHandler,
    RosterService,
    absentItem,
    inboundTransition,
    outboundTransition,
    rosterHandlers,
    streamFeatures,
)
from xmppcert.routing import Inbound
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import RosterItem
from xmppcert.testing import InMemoryAccountStore

CAROL = "carol@example.com"

# --- fixtures shared with tests.test_im_presence ---------------------------------


@dataclass
class World:
    """
    A session registry over an in-memory store holding alice, bob and
    carol, with the roster and presence services installed.

    @ivar config: the live L{IMConfig}; tests replace it.
    """

    manager: SessionManager
    store: InMemoryAccountStore
    clock: task.Clock
    roster: RosterService
    presence: PresenceService
    config: IMConfig

    def im(self) -> IMConfig:
        return self.config


def makeWorld(**im: Any) -> World:
    store = InMemoryAccountStore()
    for account in (ALICE, BOB, CAROL):
        addAccount(store, account)
    manager = SessionManager((DOMAIN,), store)
    clock = task.Clock()
    clock.advance(1000)
    world = World(manager, store, clock, None, None, IMConfig(**im))  # type: ignore[arg-type]
    world.roster = RosterService(store, manager, clock, world.im)
    world.roster.install()
    world.presence = PresenceService(manager, world.roster, clock, world.im)
    world.presence.install()
    return world


def put(store: InMemoryAccountStore, account: str, item: RosterItem) -> None:
    resultOf(store.putRosterItem(account, item))


def stored(store: InMemoryAccountStore, account: str, contact: str) -> RosterItem | None:
    item: RosterItem | None = resultOf(store.getRosterItem(account, contact))
    return item


def version(store: InMemoryAccountStore, account: str) -> int:
    current: int = resultOf(store.getRoster(account))[0]
    return current


def pushes(sent: list[domish.Element]) -> list[domish.Element]:
    """
    The C{<item/>}s of the roster pushes among C{sent}.
    """
    return [
        item
        for iq in sent
        if iq.name == "iq" and iq.getAttribute("type") == "set"
        for query in iq.elements(NS_ROSTER, "query")
        for item in query.elements(NS_ROSTER, "item")
    ]


def itemFacts(item: domish.Element) -> dict[str, Any]:
    """
    What a roster C{<item/>} says, as a dict.
    """
    return {
        "jid": item.getAttribute("jid"),
        "name": item.getAttribute("name"),
        "subscription": item.getAttribute("subscription"),
        "ask": item.getAttribute("ask"),
        "approved": item.getAttribute("approved"),
        "groups": ["".join(str(t) for t in g.children) for g in item.elements(NS_ROSTER, "group")],
    }


# --- the harness: a real stream ------------------------------------------------


def rosterServer(**im: Any) -> tuple[ServerHarness, RosterService]:
    h = makeServer()
    config = IMConfig(**im)
    roster = RosterService(h.store, h.sessions, h.clock, lambda: config)
    roster.install()
    PresenceService(h.sessions, roster, h.clock, lambda: config).install()
    h.server.handlerFactories.append(rosterHandlers(roster))
    return h, roster


def login(h: ServerHarness, resource: str = "phone", user: str = "alice") -> ClientConnection:
    client = h.connect()
    client.bound(resource, user)
    client.output()
    return client


def ask(client: ClientConnection, xml: str) -> Received:
    client.send(xml)
    return client.received()


def answer(received: Received, iqID: str) -> domish.Element:
    [found] = [e for e in received.elements if e.name == "iq" and e.getAttribute("id") == iqID]
    return found


def rosterGet(client: ClientConnection, ver: str | None = None, iqID: str = "get1") -> domish.Element:
    attribute = f" ver='{ver}'" if ver is not None else ""
    return answer(ask(client, f"<iq type='get' id='{iqID}'><query xmlns='{NS_ROSTER}'{attribute}/></iq>"), iqID)


def rosterSet(client: ClientConnection, item: str, iqID: str = "set1") -> Received:
    return ask(client, f"<iq type='set' id='{iqID}'><query xmlns='{NS_ROSTER}'>{item}</query></iq>")


def resultItems(iq: domish.Element) -> list[dict[str, Any]]:
    [query] = list(iq.elements(NS_ROSTER, "query"))
    return [itemFacts(item) for item in query.elements(NS_ROSTER, "item")]


# --- roster get and versioning ------------------------------------------------------


def test_getEmptyRoster() -> None:
    """
    RFC 6121 §2.1.3, §2.6.3: a roster get is answered with the roster and
    its version; the resource becomes an interested one (§2.1.6).
    """
    h, _ = rosterServer()
    client = login(h)
    result = rosterGet(client)
    assert result["type"] == "result"
    [query] = list(result.elements(NS_ROSTER, "query"))
    assert query.getAttribute("ver") == "0"
    assert resultItems(result) == []
    [session] = h.sessions.sessionsOf(jid.JID(ALICE))
    assert session.info.get(INTERESTED_KEY) is True


def test_getListsItems() -> None:
    """
    RFC 6121 §2.1.2: each item with its name, subscription, groups, ask
    (Pending Out) and approved (pre-approval); a contact that only asked to
    subscribe is not an item (§3.1.3).
    """
    h, _ = rosterServer()
    put(h.store, ALICE, RosterItem(BOB, name="Bob", groups=("Friends", "Work"), subscription="both"))
    put(h.store, ALICE, RosterItem(CAROL, subscription="from", askOut=True))
    put(h.store, ALICE, RosterItem("dave@example.com", approved=True))
    put(h.store, ALICE, RosterItem("eve@example.com", pendingIn=True, inRoster=False))
    client = login(h)
    assert resultItems(rosterGet(client)) == [
        {"jid": BOB, "name": "Bob", "subscription": "both", "ask": None, "approved": None, "groups": ["Friends", "Work"]},
        {"jid": CAROL, "name": None, "subscription": "from", "ask": "subscribe", "approved": None, "groups": []},
        {"jid": "dave@example.com", "name": None, "subscription": "none", "ask": None, "approved": "true", "groups": []},
    ]


def test_getCurrentVersionIsEmpty() -> None:
    """
    RFC 6121 §2.6.3: a client whose 'ver' is the current version gets an
    empty result; one with another version gets the whole roster and the
    current version.
    """
    h, _ = rosterServer()
    put(h.store, ALICE, RosterItem(BOB))
    current = str(version(h.store, ALICE))
    client = login(h)
    empty = rosterGet(client, current, "v1")
    assert empty["type"] == "result" and list(empty.elements()) == []
    stale = rosterGet(client, "0", "v2")
    [query] = list(stale.elements(NS_ROSTER, "query"))
    assert query["ver"] == current
    assert [i["jid"] for i in resultItems(stale)] == [BOB]
    assert [i["jid"] for i in resultItems(rosterGet(client, "", "v3"))] == [BOB]
    [session] = h.sessions.sessionsOf(jid.JID(ALICE))
    assert session.info.get(INTERESTED_KEY) is True


def test_getToOwnBareJID() -> None:
    """
    RFC 6121 §2.1.3: a roster get may be addressed to the user's own bare
    JID.
    """
    h, _ = rosterServer()
    client = login(h)
    result = answer(ask(client, f"<iq type='get' id='g' to='{ALICE}'><query xmlns='{NS_ROSTER}'/></iq>"), "g")
    assert result["type"] == "result" and resultItems(result) == []


def test_getToServerRefused() -> None:
    """
    RFC 6121 §2.1.3: the roster is the account's; a roster get addressed
    to the server's domain gets service-unavailable.
    """
    h, _ = rosterServer()
    client = login(h)
    result = answer(ask(client, f"<iq type='get' id='g' to='{DOMAIN}'><query xmlns='{NS_ROSTER}'/></iq>"), "g")
    assert stanzaErrorCondition(result) == "service-unavailable"


@pytest.mark.parametrize("kind", ["get", "set"])
def test_foreignRosterForbidden(kind: str) -> None:
    """
    RFC 6121 §2.3.3: the server MUST return forbidden when the sender of a
    roster request is not authorized (only the account's own resources
    are), for an existing account and one that does not exist alike.
    """
    h, _ = rosterServer()
    client = login(h)
    for target in (BOB, "nobody@example.com"):
        body = f"<item jid='{CAROL}'/>" if kind == "set" else ""
        result = answer(
            ask(client, f"<iq type='{kind}' id='f' to='{target}'><query xmlns='{NS_ROSTER}'>{body}</query></iq>"), "f"
        )
        assert stanzaErrorCondition(result) == "forbidden"
    assert stored(h.store, BOB, CAROL) is None


def test_ownRequestNotRefused() -> None:
    """
    RFC 6121 §2.1.3: a roster request of the account's own, should one be
    delivered to its bare JID, is not refused as foreign.
    """
    world = makeWorld()
    session, _ = sessionFor(world, f"{ALICE}/phone")
    own = parseOutput(f"<iq type='get' id='1' to='{ALICE}'><query xmlns='{NS_ROSTER}'/></iq>").only()
    assert world.roster.refuseForeignRequest(Inbound(own, session, jid.JID(ALICE))) is False
    other = parseOutput(f"<iq type='get' id='2' to='{BOB}'><query xmlns='{NS_ROSTER}'/></iq>").only()
    assert world.roster.refuseForeignRequest(Inbound(other, session, jid.JID(BOB))) is True
    message = parseOutput(f"<message to='{BOB}'><body>hi</body></message>").only()
    assert world.roster.refuseForeignRequest(Inbound(message, session, jid.JID(BOB))) is False


# --- roster set -------------------------------------------------------------------------


def test_setAddsItemAndPushes() -> None:
    """
    RFC 6121 §2.3.2: a roster set adds the item (subscription none), is
    answered with a result, and is pushed with the new version to every
    interested resource, the one that sent it included, and to no other.
    """
    h, _ = rosterServer()
    phone = login(h, "phone")
    laptop = login(h, "laptop")
    quiet = login(h, "quiet")
    rosterGet(phone, iqID="p")
    rosterGet(laptop, iqID="l")
    received = rosterSet(phone, f"<item jid='{BOB}' name='Bob'><group>Friends</group></item>")
    assert answer(received, "set1")["type"] == "result"
    expected = {"jid": BOB, "name": "Bob", "subscription": "none", "ask": None, "approved": None, "groups": ["Friends"]}
    for output in (received, laptop.received()):
        [push] = [e for e in output.elements if e.name == "iq" and e["type"] == "set"]
        [query] = list(push.elements(NS_ROSTER, "query"))
        assert query["ver"] == str(version(h.store, ALICE))
        assert [itemFacts(i) for i in query.elements(NS_ROSTER, "item")] == [expected]
    assert quiet.received().elements == []
    assert stored(h.store, ALICE, BOB) == RosterItem(BOB, name="Bob", groups=("Friends",))


def test_pushedVersionIsCurrent() -> None:
    """
    RFC 6121 §2.6: the version a push carries is the one a later get with
    it finds current.
    """
    h, _ = rosterServer()
    client = login(h)
    rosterGet(client)
    received = rosterSet(client, f"<item jid='{BOB}'/>")
    [push] = [e for e in received.elements if e.name == "iq" and e["type"] == "set"]
    pushed = next(push.elements(NS_ROSTER, "query"))["ver"]
    assert list(rosterGet(client, pushed, "again").elements()) == []


def test_setUpdateKeepsSubscription() -> None:
    """
    RFC 6121 §2.4.2: an update changes the name and groups; the
    subscription state stays the server's.
    """
    h, _ = rosterServer()
    put(h.store, ALICE, RosterItem(BOB, name="Old", groups=("A",), subscription="to", pendingIn=True))
    client = login(h)
    received = rosterSet(client, f"<item jid='{BOB}' name='New'><group>B</group><group>C</group></item>")
    assert answer(received, "set1")["type"] == "result"
    assert stored(h.store, ALICE, BOB) == RosterItem(
        BOB, name="New", groups=("B", "C"), subscription="to", pendingIn=True
    )


def test_setIgnoresSubscriptionAndAsk() -> None:
    """
    RFC 6121 §2.1.2.5: in a roster set the server MUST ignore any
    'subscription' other than "remove" (and 'ask', §2.1.2.2).
    """
    h, _ = rosterServer()
    client = login(h)
    received = rosterSet(client, f"<item jid='{BOB}' subscription='both' ask='subscribe' approved='true'/>")
    assert answer(received, "set1")["type"] == "result"
    assert stored(h.store, ALICE, BOB) == RosterItem(BOB)


def test_setPendingContactBecomesItem() -> None:
    """
    RFC 6121 §3.1.3: a contact that asked to subscribe is not an item
    until the user adds it; then it is, with its request still pending.
    """
    h, _ = rosterServer()
    put(h.store, ALICE, RosterItem(BOB, pendingIn=True, inRoster=False))
    client = login(h)
    rosterSet(client, f"<item jid='{BOB}'/>")
    assert stored(h.store, ALICE, BOB) == RosterItem(BOB, pendingIn=True)
    assert [i["jid"] for i in resultItems(rosterGet(client))] == [BOB]


def test_setEscapedGroupText() -> None:
    """
    RFC 6121 §2.1.2.4: a group name is the whole character data of
    <group/>, also when the parser hands it over in pieces (entities).
    """
    h, _ = rosterServer()
    client = login(h)
    rosterSet(client, f"<item jid='{BOB}'><group>Friends &amp; Family</group></item>")
    item = stored(h.store, ALICE, BOB)
    assert item is not None and item.groups == ("Friends & Family",)


def test_emptyNameIsNone() -> None:
    """
    RFC 6121 §2.1.2.3: an empty 'name' is no name.
    """
    h, _ = rosterServer()
    client = login(h)
    rosterSet(client, f"<item jid='{BOB}' name=''/>")
    assert stored(h.store, ALICE, BOB) == RosterItem(BOB)


@pytest.mark.parametrize(
    ("rule", "query", "condition"),
    [
        ("RFC 6121 §2.3.3: more than one item MUST be refused with bad-request",
         f"<item jid='{BOB}'/><item jid='{CAROL}'/>", "bad-request"),
        ("RFC 6121 §2.3.3: a roster set holds one item", "", "bad-request"),
        ("RFC 6121 §2.1.2.1: an item needs a 'jid'", "<item name='x'/>", "bad-request"),
        ("RFC 6121 §2.3.3: duplicate groups MUST be refused with bad-request",
         f"<item jid='{BOB}'><group>A</group><group>A</group></item>", "bad-request"),
        ("RFC 6121 §2.3.3: an empty group MUST be refused with not-acceptable",
         f"<item jid='{BOB}'><group/></item>", "not-acceptable"),
        ("RFC 6121 §2.3.3: a name longer than the server's limit is not-acceptable",
         f"<item jid='{BOB}' name='{'n' * (MAX_NAME_BYTES + 1)}'/>", "not-acceptable"),
        ("RFC 6121 §2.3.3: a group longer than the server's limit is not-acceptable",
         f"<item jid='{BOB}'><group>{'é' * (MAX_GROUP_BYTES // 2 + 1)}</group></item>", "not-acceptable"),
        ("RFC 6121 §2.3.3: more groups than the server allows is not-acceptable",
         f"<item jid='{BOB}'>{''.join(f'<group>{i}</group>' for i in range(MAX_GROUPS + 1))}</item>",
         "not-acceptable"),
        ("RFC 6120 §8.3.3.8: an item whose JID is not a JID is jid-malformed",
         "<item jid='@example.com'/>", "jid-malformed"),
        ("RFC 6121 §3: roster items are bare JIDs; a full JID is jid-malformed",
         f"<item jid='{BOB}/desk'/>", "jid-malformed"),
        ("The roster cannot hold the user's own account (not-allowed)",
         f"<item jid='{ALICE}'/>", "not-allowed"),
    ],
)
def test_setErrors(rule: str, query: str, condition: str) -> None:
    """
    RFC 6121 §2.3.3: a roster set that breaks a rule is refused with the
    condition the RFC names, and changes nothing.
    """
    h, _ = rosterServer()
    client = login(h)
    rosterGet(client)
    received = rosterSet(client, query)
    assert stanzaErrorCondition(answer(received, "set1")) == condition, rule
    assert pushes(received.elements) == []
    assert resultOf(h.store.getRoster(ALICE)) == (0, [])


def test_setLimitsAtTheEdge() -> None:
    """
    RFC 6121 §2.3.3: a name, group names and a number of groups exactly at
    the server's limits are accepted.
    """
    h, _ = rosterServer()
    client = login(h)
    groups = "".join(f"<group>{i:0{MAX_GROUP_BYTES}d}</group>" for i in range(MAX_GROUPS))
    received = rosterSet(client, f"<item jid='{BOB}' name='{'n' * MAX_NAME_BYTES}'>{groups}</item>")
    assert answer(received, "set1")["type"] == "result"
    item = stored(h.store, ALICE, BOB)
    assert item is not None and len(item.groups) == MAX_GROUPS


def test_rosterFull() -> None:
    """
    RFC 6121 §2.3.3 (a server-configured limit): a new item beyond
    max_roster_items is refused with resource-constraint; items already
    there can still be updated.
    """
    h, _ = rosterServer(max_roster_items=1)
    client = login(h)
    assert answer(rosterSet(client, f"<item jid='{BOB}'/>", "a"), "a")["type"] == "result"
    full = answer(rosterSet(client, f"<item jid='{CAROL}'/>", "b"), "b")
    assert stanzaErrorCondition(full) == "resource-constraint"
    assert stored(h.store, ALICE, CAROL) is None
    assert answer(rosterSet(client, f"<item jid='{BOB}' name='B'/>", "c"), "c")["type"] == "result"


# --- roster remove ---------------------------------------------------------------------


def test_removeItem() -> None:
    """
    RFC 6121 §2.5.2: subscription='remove' removes the item, is answered
    with a result and pushed to the interested resources as
    subscription='remove' with the new version.
    """
    h, _ = rosterServer()
    put(h.store, ALICE, RosterItem(BOB, name="Bob"))
    client = login(h)
    rosterGet(client)
    received = rosterSet(client, f"<item jid='{BOB}' subscription='remove'/>")
    assert answer(received, "set1")["type"] == "result"
    [push] = pushes(received.elements)
    assert (push["jid"], push["subscription"]) == (BOB, "remove")
    assert stored(h.store, ALICE, BOB) is None
    assert resultItems(rosterGet(client, iqID="after")) == []


def test_removeMissingItem() -> None:
    """
    RFC 6121 §2.5.3: removing an item that is not in the roster MUST be
    refused with item-not-found; a contact that only asked to subscribe is
    not an item, and its request stays.
    """
    h, _ = rosterServer()
    put(h.store, ALICE, RosterItem(CAROL, pendingIn=True, inRoster=False))
    client = login(h)
    for contact, iqID in ((BOB, "a"), (CAROL, "b")):
        result = answer(rosterSet(client, f"<item jid='{contact}' subscription='remove'/>", iqID), iqID)
        assert stanzaErrorCondition(result) == "item-not-found"
    assert stored(h.store, ALICE, CAROL) == RosterItem(CAROL, pendingIn=True, inRoster=False)


# --- the service directly ------------------------------------------------------------


def sessionFor(world: World, fullJID: str, interested: bool = True) -> tuple[Session, FakeClient]:
    session, client = bindSession(world.manager, fullJID)
    if interested:
        session.info[INTERESTED_KEY] = True
    return session, client


def test_serviceProvidesInterface() -> None:
    """
    Style: the backend provides IRosterService.
    """
    world = makeWorld()
    assert verifyObject(IRosterService, world.roster)


def test_pendingChangeNotPushed() -> None:
    """
    RFC 6121 §2.1.6: a push is for what clients see; keeping a request
    from a contact that is not an item changes no item, so nothing is
    pushed.
    """
    world = makeWorld()
    _, client = sessionFor(world, f"{ALICE}/phone")
    resultOf(world.roster.update(jid.JID(ALICE), BOB, lambda item: replace(item, pendingIn=True)))
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, pendingIn=True, inRoster=False)
    assert client.sent == []


def test_nothingKeptForNothing() -> None:
    """
    RFC 6121 §3.1.3: the server keeps a contact that is an item or a
    pending request; one that is neither is not stored.
    """
    world = makeWorld()
    update = resultOf(world.roster.update(jid.JID(ALICE), BOB, lambda item: item))
    assert not update.changed
    assert stored(world.store, ALICE, BOB) is None


def test_updatesSerialized() -> None:
    """
    RFC 6121 Appendix A (each stanza moves the state from the one before):
    changes of one roster are made one after the other, so two changes that
    meet while the store is slow both land.
    """
    world = makeWorld()
    original = world.store.getRosterItem
    waiting: list[tuple[defer.Deferred[RosterItem | None], RosterItem | None]] = []

    def slowGet(account: str, contact: str) -> defer.Deferred[RosterItem | None]:
        # Read now, answer later: what a slow store thread does.
        d: defer.Deferred[RosterItem | None] = defer.Deferred()
        waiting.append((d, resultOf(original(account, contact))))
        return d

    world.store.getRosterItem = slowGet  # type: ignore[method-assign]
    account = jid.JID(ALICE)
    first = defer.ensureDeferred(world.roster.update(account, BOB, lambda i: replace(i, name="Bob", inRoster=True)))
    second = defer.ensureDeferred(world.roster.update(account, BOB, lambda i: replace(i, askOut=True, inRoster=True)))
    while waiting:
        d, item = waiting.pop(0)
        d.callback(item)
    resultOf(first)
    resultOf(second)
    world.store.getRosterItem = original  # type: ignore[method-assign]
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, name="Bob", askOut=True)
    assert world.roster._locks == {}


class BrokenStore:
    """
    A roster store that fails like a locked SQLite database.
    """

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
            return defer.fail(sqlite3.OperationalError("database is locked"))

        return fail


def test_storeFailure() -> None:
    """
    RFC 6120 §8.3.3.6: a failing store answers internal-server-error
    (wait); it logs one line at error a minute, never a traceback.
    """
    world = makeWorld()
    world.roster.store = BrokenStore()
    session, _ = sessionFor(world, f"{ALICE}/phone")
    with capturedLogs() as events:
        for _ in range(3):
            failure = defer.ensureDeferred(world.roster.getRoster(session))
            results: list[Any] = []
            failure.addErrback(results.append)
            assert results[0].value.condition == "internal-server-error"
            assert results[0].value.type == "wait"
    errors = [e for e in events if e["log_level"] >= LogLevel.error]
    assert len(errors) == 1 and "log_failure" not in errors[0]


def test_handlerDisco() -> None:
    """
    XEP-0030: the roster handler advertises jabber:iq:roster.
    """
    world = makeWorld()
    session, _ = sessionFor(world, f"{ALICE}/phone")
    handler = RosterHandler(world.roster, session)
    assert [f for f in handler.getDiscoInfo(jid.JID(ALICE), None)] == [NS_ROSTER]
    assert handler.getDiscoInfo(jid.JID(ALICE), None, "node") == []
    assert handler.getDiscoItems(jid.JID(ALICE), None) == []


def test_streamFeatures() -> None:
    """
    RFC 6121 §2.6.1 and §3.4.1: roster versioning and pre-approval are
    announced as stream features.
    """
    elements = [f.featureElement() for f in streamFeatures()]
    assert [(e.uri, e.name) for e in elements] == [(NS_ROSTERVER, "ver"), (NS_PREAPPROVAL, "sub")]
    assert [(f.namespace, f.name) for f in streamFeatures(preApproval=False)] == [(NS_ROSTERVER, "ver")]


def test_featuresAfterLogin() -> None:
    """
    RFC 6121 §2.6.1: the features are offered with bind once given to the
    server.
    """
    h, _ = rosterServer()
    h.server.informationalFeatures.extend(streamFeatures())
    features = h.connect().loginPlain().only("features")
    assert {(c.uri, c.name) for c in features.elements()} >= {(NS_ROSTERVER, "ver"), (NS_PREAPPROVAL, "sub")}


# --- RFC 6121 Appendix A ----------------------------------------------------------------

#: The nine states of Appendix A.1, as roster items.
STATES: dict[str, RosterItem] = {
    "None": absentItem(BOB),
    "None + Pending Out": RosterItem(BOB, askOut=True),
    "None + Pending In": RosterItem(BOB, pendingIn=True, inRoster=False),
    "None + Pending Out+In": RosterItem(BOB, askOut=True, pendingIn=True),
    "To": RosterItem(BOB, subscription="to"),
    "To + Pending In": RosterItem(BOB, subscription="to", pendingIn=True),
    "From": RosterItem(BOB, subscription="from"),
    "From + Pending Out": RosterItem(BOB, subscription="from", askOut=True),
    "Both": RosterItem(BOB, subscription="both"),
}


def stateName(item: RosterItem) -> str:
    parts = []
    if item.askOut:
        parts.append("Out")
    if item.pendingIn:
        parts.append("In")
    name = item.subscription.capitalize()
    if parts:
        name += " + Pending " + "+".join(parts)
    return name


NO = "no state change"

#: Appendix A.2: (state, stanza) -> (new state, routed).
OUTBOUND_TABLE: dict[tuple[str, str], tuple[str, bool]] = {
    ("None", SUBSCRIBE): ("None + Pending Out", True),
    ("None + Pending Out", SUBSCRIBE): (NO, True),
    ("None + Pending In", SUBSCRIBE): ("None + Pending Out+In", True),
    ("None + Pending Out+In", SUBSCRIBE): (NO, True),
    ("To", SUBSCRIBE): (NO, True),
    ("To + Pending In", SUBSCRIBE): (NO, True),
    ("From", SUBSCRIBE): ("From + Pending Out", True),
    ("From + Pending Out", SUBSCRIBE): (NO, True),
    ("Both", SUBSCRIBE): (NO, True),
    ("None", UNSUBSCRIBE): (NO, True),
    ("None + Pending Out", UNSUBSCRIBE): ("None", True),
    ("None + Pending In", UNSUBSCRIBE): (NO, True),
    ("None + Pending Out+In", UNSUBSCRIBE): ("None + Pending In", True),
    ("To", UNSUBSCRIBE): ("None", True),
    ("To + Pending In", UNSUBSCRIBE): ("None + Pending In", True),
    ("From", UNSUBSCRIBE): (NO, True),
    ("From + Pending Out", UNSUBSCRIBE): ("From", True),
    ("Both", UNSUBSCRIBE): ("From", True),
    # A "subscribed" nobody asked for is a pre-approval (§3.4): kept, not
    # routed (see test_preApprovalMarked).
    ("None", SUBSCRIBED): (NO, False),
    ("None + Pending Out", SUBSCRIBED): (NO, False),
    ("None + Pending In", SUBSCRIBED): ("From", True),
    ("None + Pending Out+In", SUBSCRIBED): ("From + Pending Out", True),
    ("To", SUBSCRIBED): (NO, False),
    ("To + Pending In", SUBSCRIBED): ("Both", True),
    ("From", SUBSCRIBED): (NO, True),
    ("From + Pending Out", SUBSCRIBED): (NO, True),
    ("Both", SUBSCRIBED): (NO, True),
    ("None", UNSUBSCRIBED): (NO, False),
    ("None + Pending Out", UNSUBSCRIBED): (NO, False),
    ("None + Pending In", UNSUBSCRIBED): ("None", True),
    ("None + Pending Out+In", UNSUBSCRIBED): ("None + Pending Out", True),
    ("To", UNSUBSCRIBED): (NO, False),
    ("To + Pending In", UNSUBSCRIBED): ("To", True),
    ("From", UNSUBSCRIBED): ("None", True),
    ("From + Pending Out", UNSUBSCRIBED): ("None + Pending Out", True),
    ("Both", UNSUBSCRIBED): ("To", True),
}

#: Appendix A.3: (state, stanza) -> (new state, delivered).
INBOUND_TABLE: dict[tuple[str, str], tuple[str, bool]] = {
    ("None", SUBSCRIBE): ("None + Pending In", True),
    ("None + Pending Out", SUBSCRIBE): ("None + Pending Out+In", True),
    ("None + Pending In", SUBSCRIBE): (NO, False),
    ("None + Pending Out+In", SUBSCRIBE): (NO, False),
    ("To", SUBSCRIBE): ("To + Pending In", True),
    ("To + Pending In", SUBSCRIBE): (NO, False),
    ("From", SUBSCRIBE): (NO, False),
    ("From + Pending Out", SUBSCRIBE): (NO, False),
    ("Both", SUBSCRIBE): (NO, False),
    ("None", UNSUBSCRIBE): (NO, False),
    ("None + Pending Out", UNSUBSCRIBE): (NO, False),
    ("None + Pending In", UNSUBSCRIBE): ("None", True),
    ("None + Pending Out+In", UNSUBSCRIBE): ("None + Pending Out", True),
    ("To", UNSUBSCRIBE): (NO, False),
    ("To + Pending In", UNSUBSCRIBE): ("To", True),
    ("From", UNSUBSCRIBE): ("None", True),
    ("From + Pending Out", UNSUBSCRIBE): ("None + Pending Out", True),
    ("Both", UNSUBSCRIBE): ("To", True),
    ("None", SUBSCRIBED): (NO, False),
    ("None + Pending Out", SUBSCRIBED): ("To", True),
    ("None + Pending In", SUBSCRIBED): (NO, False),
    ("None + Pending Out+In", SUBSCRIBED): ("To + Pending In", True),
    ("To", SUBSCRIBED): (NO, False),
    ("To + Pending In", SUBSCRIBED): (NO, False),
    ("From", SUBSCRIBED): (NO, False),
    ("From + Pending Out", SUBSCRIBED): ("Both", True),
    ("Both", SUBSCRIBED): (NO, False),
    ("None", UNSUBSCRIBED): (NO, False),
    ("None + Pending Out", UNSUBSCRIBED): ("None", True),
    ("None + Pending In", UNSUBSCRIBED): (NO, False),
    ("None + Pending Out+In", UNSUBSCRIBED): ("None + Pending In", True),
    ("To", UNSUBSCRIBED): ("None", True),
    ("To + Pending In", UNSUBSCRIBED): ("None + Pending In", True),
    ("From", UNSUBSCRIBED): (NO, False),
    ("From + Pending Out", UNSUBSCRIBED): ("From", True),
    ("Both", UNSUBSCRIBED): ("From", True),
}


def test_tablesComplete() -> None:
    """
    RFC 6121 Appendix A: every state meets every subscription stanza.
    """
    every = {(s, k) for s in STATES for k in (SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBED, UNSUBSCRIBED)}
    assert set(OUTBOUND_TABLE) == every == set(INBOUND_TABLE)
    assert all(stateName(item) == name for name, item in STATES.items())


@pytest.mark.parametrize(("state", "kind"), sorted(OUTBOUND_TABLE))
def test_outboundTransition(state: str, kind: str) -> None:
    """
    RFC 6121 Appendix A.2: what a subscription stanza the user sends does
    to the user's roster item, and whether it is routed to the contact.
    """
    expected, routed = OUTBOUND_TABLE[(state, kind)]
    before = STATES[state]
    transition = outboundTransition(before, kind)
    after = stateName(transition.after)
    assert after == (state if expected == NO else expected)
    assert transition.forward is routed
    assert not transition.autoReply


@pytest.mark.parametrize(("state", "kind"), sorted(INBOUND_TABLE))
def test_inboundTransition(state: str, kind: str) -> None:
    """
    RFC 6121 Appendix A.3: what a subscription stanza from the contact does
    to the user's roster item, and whether it is delivered to the user; a
    request from a contact already subscribed is answered on the user's
    behalf (§3.1.3).
    """
    expected, delivered = INBOUND_TABLE[(state, kind)]
    transition = inboundTransition(STATES[state], kind)
    assert stateName(transition.after) == (state if expected == NO else expected)
    assert transition.forward is delivered
    assert transition.autoReply is (kind == SUBSCRIBE and state in ("From", "From + Pending Out", "Both"))


def test_outboundSubscribeMakesItem() -> None:
    """
    RFC 6121 §3.1.2: the contact a user asks to subscribe to becomes an
    item (also when it was only a pending request of the contact's).
    """
    for state in ("None", "None + Pending In"):
        assert outboundTransition(STATES[state], SUBSCRIBE).after.inRoster


@pytest.mark.parametrize("state", ["None", "None + Pending Out", "To"])
def test_preApprovalMarked(state: str) -> None:
    """
    RFC 6121 §3.4.2: "subscribed" without a pending request pre-approves
    the contact (approved='true'), and makes it an item; "unsubscribed"
    cancels the pre-approval.
    """
    after = outboundTransition(STATES[state], SUBSCRIBED).after
    assert after.approved and after.inRoster
    assert not outboundTransition(after, UNSUBSCRIBED).after.approved


@pytest.mark.parametrize(("state", "expected"), [("None", "From"), ("None + Pending Out", "From + Pending Out"), ("To", "Both")])
def test_inboundSubscribePreApproved(state: str, expected: str) -> None:
    """
    RFC 6121 §3.4: a request from a pre-approved contact is approved at
    once (auto-reply, not delivered), and the pre-approval is used up.
    """
    before = replace(STATES[state], approved=True, inRoster=True)
    transition = inboundTransition(before, SUBSCRIBE)
    assert stateName(transition.after) == expected
    assert transition.autoReply and not transition.forward
    assert not transition.after.approved


def test_approvedClearedOnApproval() -> None:
    """
    RFC 6121 §3.4: once the contact is subscribed, the pre-approval is
    spent.
    """
    before = RosterItem(BOB, pendingIn=True, approved=True)
    assert not outboundTransition(before, SUBSCRIBED).after.approved


def test_unknownKind() -> None:
    """
    RFC 6121 Appendix A: only the four subscription types are transitions.
    """
    with pytest.raises(ValueError):
        outboundTransition(STATES["None"], "probe")
    with pytest.raises(ValueError):
        inboundTransition(STATES["None"], "available")


def parse(xml: str) -> domish.Element:
    return parseOutput(xml).only()


# --- the rosters of accounts online, in memory -----------------------------------


class CountingReads:
    """
    Counts the roster reads that reach the store.
    """

    def __init__(self, store: InMemoryAccountStore) -> None:
        self.reads = 0
        for name in ("getRoster", "getRosterItem"):
            original = getattr(store, name)

            def counted(*args: Any, original: Any = original) -> Any:
                self.reads += 1
                return original(*args)

            setattr(store, name, counted)


def test_rosterOfAccountOnlineKeptInMemory() -> None:
    """
    Presence reads the roster of an account with sessions from memory once
    read (every probe and broadcast reads one); a change through the
    service is seen at once; after the last session ends, the store is
    read again.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="both"))
    session, _ = bindSession(world.manager, ALICE + "/phone")
    reads = CountingReads(world.store)
    alice = jid.JID(ALICE)
    assert [i.contact for i in resultOf(world.roster.items(alice))] == [BOB]
    assert reads.reads == 1
    assert resultOf(world.roster.item(alice, BOB)).subscription == "both"
    resultOf(world.roster.items(alice))
    assert reads.reads == 1
    resultOf(world.roster.update(alice, CAROL, lambda item: replace(item, inRoster=True, name="Carol")))
    assert resultOf(world.roster.item(alice, CAROL)).name == "Carol"
    assert {i.contact for i in resultOf(world.roster.items(alice))} == {BOB, CAROL}
    resultOf(world.roster.update(alice, BOB, lambda item: None))
    assert resultOf(world.roster.item(alice, BOB)) is None
    assert stored(world.store, ALICE, BOB) is None
    before = reads.reads
    world.manager.unbind(session)
    assert resultOf(world.roster.item(alice, CAROL)).name == "Carol"
    assert reads.reads == before + 1


def test_rosterOfAccountOfflineNotKept() -> None:
    """
    The roster of an account without sessions (a probe to a user offline)
    is read from the store each time.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="both"))
    reads = CountingReads(world.store)
    for _ in range(2):
        resultOf(world.roster.items(jid.JID(ALICE)))
    assert reads.reads == 2


def test_rosterChangedDuringReadNotKept() -> None:
    """
    A roster read that a change overtook is not kept: the memory never
    holds a roster older than the store's.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="both"))
    bindSession(world.manager, ALICE + "/phone")
    pending: defer.Deferred[Any] = defer.Deferred()
    original = world.store.getRoster
    world.store.getRoster = lambda account: pending  # type: ignore[method-assign]
    alice = jid.JID(ALICE)
    reading = defer.ensureDeferred(world.roster.items(alice))
    world.store.getRoster = original  # type: ignore[method-assign]
    resultOf(world.roster.update(alice, BOB, lambda item: None))
    pending.callback((1, [RosterItem(BOB, subscription="both")]))
    assert [i.contact for i in resultOf(reading)] == [BOB]
    assert resultOf(world.roster.item(alice, BOB)) is None


def test_clientRosterAlwaysFromStore() -> None:
    """
    RFC 6121 section 2.1.3: the roster a client asks for is read from the
    store every time (a change made elsewhere, such as another node, shows),
    and presence's copy in memory is refreshed with it.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="both"))
    session, _ = bindSession(world.manager, ALICE + "/phone")
    resultOf(world.roster.getRoster(session))
    put(world.store, ALICE, RosterItem(CAROL, subscription="none", inRoster=True))
    _, items = resultOf(world.roster.getRoster(session))
    assert {i.contact for i in items} == {BOB, CAROL}
    assert resultOf(world.roster.item(jid.JID(ALICE), CAROL)) is not None
