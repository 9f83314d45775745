"""
Tests for L{xmppcert.im.pep.service}: the personal eventing service
(XEP-0163) through its programmatic API, on a session registry with real
rosters (L{RosterService}) over the in-memory store, and a fake of the
capabilities service.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.helpers import ALICE, BOB, FakeClient, addAccount, failureOf, parseOutput, resultOf
from tests.test_im_presence import broadcast, online, send
from tests.test_im_roster import CAROL, World, makeWorld, put
from xmppcert.im.blocking import BlockingService
from xmppcert.im.caps import CapsService
from xmppcert.im.offline import NS_DELAY
from xmppcert.im.pep.nodeconfig import NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT
from xmppcert.im.pep.service import (
    MAX_TRANSIENT_ACCOUNT_BYTES,
    MAX_TRANSIENT_ITEMS,
    PEP_PRIORITY,
    ICapabilities,
    PEPService,
    TransientItems,
)
from xmppcert.im.roster import IRosterChangeListener
from xmppcert.routing import INBOUND_BARE, PRESENCE_BROADCAST, SESSION_ENDED
from xmppcert.sessions import Session
from xmppcert.store.interfaces import PEPItem, RosterItem, StoreError, pepItemBytes

TUNE = "http://jabber.org/protocol/tune"
TRANSIENT = {"pubsub#persist_items": "false"}
MOOD = "http://jabber.org/protocol/mood"
DAVE = "dave@example.com"


@implementer(ICapabilities)
class FakeCaps:
    """
    The capabilities of sessions as a test sets them (L{announce}).
    """

    def __init__(self) -> None:
        self.features: dict[str, frozenset[str]] = {}
        self.callbacks: list[Callable[[Session, frozenset[str]], Any]] = []

    def featuresOf(self, fullJID: jid.JID) -> frozenset[str] | None:
        return self.features.get(fullJID.full())

    def notifyNodes(self, fullJID: jid.JID) -> frozenset[str]:
        return frozenset(f[: -len("+notify")] for f in self.features.get(fullJID.full(), ()) if f.endswith("+notify"))

    def onFeatures(self, callback: Callable[[Session, frozenset[str]], Any]) -> None:
        self.callbacks.append(callback)

    def removeOnFeatures(self, callback: Callable[[Session, frozenset[str]], Any]) -> None:
        self.callbacks.remove(callback)

    def announce(self, session: Session, *nodes: str) -> None:
        """
        The session's features become C{node+notify} for each of C{nodes}.
        """
        features = frozenset(f"{node}+notify" for node in nodes)
        self.features[session.jid.full()] = features
        for callback in list(self.callbacks):
            resultOf(callback(session, features))


@dataclass
class PEPWorld:
    """
    alice, bob, carol (and dave, a stranger) with rosters and presence,
    and the PEP service installed.
    """

    world: World
    caps: FakeCaps
    pep: PEPService
    limits: dict[str, int] = field(default_factory=dict)

    def online(self, fullJID: str, *nodes: str) -> tuple[Session, FakeClient]:
        """
        Bind C{fullJID}, make it available, announce C{node+notify} for
        C{nodes}; what it got so far (last items included) is cleared.
        """
        session, client = online(self.world, fullJID)
        if nodes:
            self.caps.announce(session, *nodes)
        client.sent.clear()
        return session, client


def makePEPWorld(**im: Any) -> PEPWorld:
    world = makeWorld(**im)
    addAccount(world.store, DAVE)
    caps = FakeCaps()
    pep = PEPService(world.manager, world.store, world.roster, caps, world.clock, world.im)
    pep.install()
    return PEPWorld(world, caps, pep)


def friends(t: PEPWorld, a: str, b: str, aToB: str = "both", bToA: str = "both", groups: tuple[str, ...] = ()) -> None:
    """
    Roster items both ways: C{a}'s item for C{b} has C{aToB}.
    """
    put(t.world.store, a, RosterItem(b, subscription=aToB, groups=groups))
    put(t.world.store, b, RosterItem(a, subscription=bToA))


def element(xml: str) -> domish.Element:
    return parseOutput(xml).only()


def tune(title: str) -> domish.Element:
    return element(f"<tune xmlns='{TUNE}'><title>{title}</title></tune>")


def publish(
    t: PEPWorld,
    node: str = TUNE,
    itemId: str | None = "current",
    title: str = "one",
    owner: str = ALICE,
    options: dict[str, Any] | None = None,
) -> str:
    itemID: str = resultOf(t.pep.publish(jid.JID(owner), node, itemId, tune(title), jid.JID(owner + "/phone"), options))
    return itemID


def refused(d: defer.Deferred[Any]) -> error.StanzaError:
    e = failureOf(d, error.StanzaError).value
    assert isinstance(e, error.StanzaError)
    return e


def condition(e: error.StanzaError) -> tuple[str, str | None]:
    app = e.appCondition
    if app is not None:
        assert app.uri == NS_PUBSUB_ERRORS
    return e.condition, None if app is None else str(app.name)


def events(client: FakeClient, owner: str = ALICE) -> list[tuple[str, str, list[str]]]:
    """
    (kind, node, [item or retract ids / titles]) of each pubsub event
    message C{client} got from C{owner}, checking they are headlines.
    """
    found = []
    for message in client.sent:
        if message.name != "message" or message.getAttribute("from") != owner:
            continue
        assert message["type"] == "headline", message.toXml()
        assert message.getAttribute("id")
        [event] = list(message.elements(NS_PUBSUB_EVENT, "event"))
        [child] = list(event.elements())
        details = []
        for entry in child.elements():
            titles = ["".join(str(t) for t in e.children) for p in entry.elements() for e in p.elements()]
            details.append(entry["id"] + (":" + titles[0] if titles else ""))
        found.append((child.name, child["node"], details))
    return found


def titles(items: list[PEPItem]) -> list[str]:
    return [item.payload.split("<title>")[1].split("</title>")[0] for item in items]


def items(t: PEPWorld, requester: str = ALICE, node: str = TUNE, owner: str = ALICE, **kwargs: Any) -> list[PEPItem]:
    found: list[PEPItem] = resultOf(t.pep.items(jid.JID(owner), node, jid.JID(requester), **kwargs))
    return found


# --- wiring ---------------------------------------------------------------------------


def test_installAndUninstall() -> None:
    """
    install() joins INBOUND_BARE above the default delivery (which would
    answer service-unavailable) and below blocking, PRESENCE_BROADCAST,
    SESSION_ENDED and the capabilities callbacks; uninstall() leaves them.
    """
    t = makePEPWorld()
    hooks = t.world.manager.hooks
    assert 0 < PEP_PRIORITY < 100
    assert t.pep.answerForeignRequest in hooks.handlers(INBOUND_BARE)
    assert t.pep.presenceBroadcast in hooks.handlers(PRESENCE_BROADCAST)
    assert t.pep.sessionEnded in hooks.handlers(SESSION_ENDED)
    assert t.caps.callbacks == [t.pep.featuresChanged]
    t.pep.uninstall()
    assert t.pep.answerForeignRequest not in hooks.handlers(INBOUND_BARE)
    assert t.pep.presenceBroadcast not in hooks.handlers(PRESENCE_BROADCAST)
    assert t.pep.sessionEnded not in hooks.handlers(SESSION_ENDED)
    assert t.caps.callbacks == []


def test_capsServiceFitsInterface() -> None:
    """
    The service's capabilities source: the real CapsService has the
    methods ICapabilities names, and so has the fake used here.
    """
    world = makeWorld()
    verifyObject(ICapabilities, CapsService(world.manager, world.clock), tentative=True)
    verifyObject(ICapabilities, FakeCaps())


# --- publishing -------------------------------------------------------------------------


def test_publishAutoCreates() -> None:
    """
    XEP-0163 §3 (auto-create, XEP-0060 §7.1.4): publishing to a node that
    does not exist creates it with the default configuration; the item is
    stored with its publisher.
    """
    t = makePEPWorld()
    assert publish(t) == "current"
    node = resultOf(t.world.store.getPEPNode(ALICE, TUNE))
    assert node is not None
    assert node.config["pubsub#access_model"] == "presence"
    [item] = resultOf(t.world.store.getPEPItems(ALICE, TUNE))
    assert item.id == "current" and item.publisher == ALICE + "/phone"
    assert titles(items(t)) == ["one"]


def test_generatedItemIds() -> None:
    """
    XEP-0060 §7.1.1: without an item id the service makes one up, unique
    in the node.
    """
    t = makePEPWorld()
    resultOf(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "10"}))
    ids = {publish(t, itemId=None, title=str(n)) for n in range(5)}
    assert len(ids) == 5 and all(ids)
    assert len(items(t)) == 5


def test_replaceAndEvict() -> None:
    """
    XEP-0060 §7.1.3: publishing an existing id replaces the item (it
    becomes the newest); beyond pubsub#max_items the oldest are dropped
    (the default keeps one, the current state).
    """
    t = makePEPWorld()
    publish(t, itemId="a", title="1")
    publish(t, itemId="b", title="2")
    assert [i.id for i in items(t)] == ["b"]
    resultOf(t.pep.configure(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "3"}))
    publish(t, itemId="c", title="3")
    publish(t, itemId="d", title="4")
    publish(t, itemId="b", title="5")
    assert [i.id for i in items(t)] == ["c", "d", "b"]
    assert titles(items(t)) == ["3", "4", "5"]


def test_maxItemsMaxIsServerLimit() -> None:
    """
    XEP-0060 (pubsub:integer-or-max): max_items 'max' keeps as many items as the server
    allows ([im] max_pep_items), no more.
    """
    t = makePEPWorld(max_pep_items=3)
    publish(t, itemId="0", options={"pubsub#max_items": "max"})
    for n in range(1, 6):
        publish(t, itemId=str(n))
    assert [i.id for i in items(t)] == ["3", "4", "5"]


def test_publishByOtherForbidden() -> None:
    """
    XEP-0163 §2.2 (one publisher per node), XEP-0060 §7.1.3.1: someone
    else publishing to the account's node is forbidden, even a contact.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    e = refused(t.pep.publish(jid.JID(ALICE), TUNE, "x", tune("evil"), jid.JID(BOB + "/desk")))
    assert e.condition == "forbidden"
    assert resultOf(t.world.store.getPEPNode(ALICE, TUNE)) is None


def test_payloadRequired() -> None:
    """
    XEP-0060 §7.1.3.7: an item without payload on a node that persists or
    delivers payloads is bad-request with <payload-required/>.
    """
    t = makePEPWorld()
    e = refused(t.pep.publish(jid.JID(ALICE), TUNE, "x", None, jid.JID(ALICE)))
    assert condition(e) == ("bad-request", "payload-required")


# --- publish-options ----------------------------------------------------------------------


def test_publishOptionsNewNode() -> None:
    """
    XEP-0060 §7.1.5: on a node that does not exist, the options become its
    configuration (the rest default).
    """
    t = makePEPWorld()
    publish(t, options={"pubsub#access_model": "open", "pubsub#persist_items": "1"})
    config = resultOf(t.pep.nodeConfig(jid.JID(ALICE), TUNE))
    assert config.accessModel == "open" and config.persistItems
    assert config.sendLastPublishedItem == "on_sub_and_presence"


def test_publishOptionsMatch() -> None:
    """
    XEP-0060 §7.1.5: options that the existing node meets let the publish
    succeed.
    """
    t = makePEPWorld()
    publish(t, itemId="1", options={"pubsub#access_model": "open"})
    publish(t, itemId="2", options={"pubsub#access_model": ["open"], "pubsub#deliver_payloads": "true"})
    assert [i.id for i in items(t)] == ["2"]


def test_publishOptionsMismatch() -> None:
    """
    XEP-0060 §7.1.5: options the existing node does not meet:
    conflict with <precondition-not-met/>; the node keeps its item.
    """
    t = makePEPWorld()
    publish(t, itemId="1", options={"pubsub#access_model": "open"})
    e = refused(
        t.pep.publish(jid.JID(ALICE), TUNE, "2", tune("x"), jid.JID(ALICE), {"pubsub#access_model": "presence"})
    )
    assert condition(e) == ("conflict", "precondition-not-met")
    assert e.type == "cancel"
    assert [i.id for i in items(t)] == ["1"]


def test_publishOptionsUnknownOrBad() -> None:
    """
    XEP-0060 §7.1.5: an unknown option or a malformed value rejects the
    publication (bad-request with <invalid-options/>); nothing is created.
    """
    t = makePEPWorld()
    for options in ({"pubsub#no_such_option": "1"}, {"pubsub#max_items": "lots"}):
        e = refused(t.pep.publish(jid.JID(ALICE), TUNE, "1", tune("x"), jid.JID(ALICE), options))
        assert condition(e) == ("bad-request", "invalid-options")
    assert resultOf(t.world.store.getPEPNode(ALICE, TUNE)) is None


def test_publishOptionsUnsupportedOnNewNode() -> None:
    """
    XEP-0060 §8.1.2: a node auto-created with an access model the service
    does not support (authorize) is not-acceptable with
    <unsupported-access-model/>.
    """
    t = makePEPWorld()
    e = refused(t.pep.publish(jid.JID(ALICE), TUNE, "1", tune("x"), jid.JID(ALICE), {"pubsub#access_model": "authorize"}))
    assert condition(e) == ("not-acceptable", "unsupported-access-model")


# --- access models -------------------------------------------------------------------------


def test_presenceAccess() -> None:
    """
    XEP-0060 §6.5.1, XEP-0163 §5 (default access model presence): a
    contact whose subscription is from or both may read; one with to or
    none, and a stranger, are not subscribed to the owner's presence and
    get item-not-found (XEP-0060 §6.5.9.11), exactly as for a node that
    does not exist, rather than the <presence-subscription-required/> of
    §6.5.9.6, which would tell them that the account and the node exist.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB, aToB="from", bToA="to")
    friends(t, ALICE, CAROL, aToB="to", bToA="from")
    publish(t)
    assert titles(items(t, requester=BOB + "/desk")) == ["one"]
    missing = refused(t.pep.items(jid.JID(ALICE), MOOD, jid.JID(DAVE)))
    for stranger in (CAROL, DAVE):
        e = refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(stranger)))
        assert (e.condition, e.type, e.appCondition, e.text) == (
            missing.condition, missing.type, missing.appCondition, missing.text
        ) == ("item-not-found", "cancel", None, "No such node")


def test_rosterAccess() -> None:
    """
    XEP-0060 §6.5.1 and §6.5.9.7: with the access model roster, a
    contact in one of pubsub#roster_groups_allowed may read; one in
    another group gets not-authorized with <not-in-roster-group/>.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB, groups=("Friends",))
    friends(t, ALICE, CAROL, groups=("Work",))
    publish(t, options={"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": ["Friends", "Family"]})
    assert len(items(t, requester=BOB)) == 1
    e = refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(CAROL)))
    assert condition(e) == ("not-authorized", "not-in-roster-group")
    # In an allowed group but not subscribed to the owner's presence: as
    # for any stranger, nothing is told.
    put(t.world.store, ALICE, RosterItem(DAVE, subscription="to", groups=("Friends",)))
    assert condition(refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(DAVE)))) == ("item-not-found", None)


def test_openAccess() -> None:
    """
    XEP-0060 §6.5.1: with the access model open, anyone may read,
    strangers included.
    """
    t = makePEPWorld()
    publish(t, options={"pubsub#access_model": "open"})
    assert len(items(t, requester=DAVE + "/x")) == 1


def test_whitelistAccess() -> None:
    """
    XEP-0060 §6.5.9.8: with the access model whitelist (which holds the
    owner only here), a contact gets not-allowed with <closed-node/>; the
    owner reads it.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t, options={"pubsub#access_model": "whitelist"})
    e = refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(BOB)))
    assert condition(e) == ("not-allowed", "closed-node")
    assert len(items(t)) == 1
    # A stranger is not told that the node exists.
    assert condition(refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(DAVE)))) == ("item-not-found", None)


def test_accessFollowsRoster() -> None:
    """
    XEP-0163 §7.1: access is recalculated when the subscription changes:
    once the contact's subscription is gone, it may no longer read.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t)
    assert len(items(t, requester=BOB)) == 1
    put(t.world.store, ALICE, RosterItem(BOB, subscription="to"))
    e = refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(BOB)))
    assert condition(e) == ("item-not-found", None)


# --- retrieving items -----------------------------------------------------------------------


def test_itemsLatestByIdAndMax() -> None:
    """
    XEP-0060 §6.5.2, §6.5.7, §6.5.8: all items (oldest first), the N most
    recent with max_items, particular ones by id (unknown ids give
    nothing); no such node is item-not-found.
    """
    t = makePEPWorld()
    resultOf(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "10"}))
    for n in range(1, 5):
        publish(t, itemId=str(n), title=str(n))
    assert [i.id for i in items(t)] == ["1", "2", "3", "4"]
    assert [i.id for i in items(t, maxItems=2)] == ["3", "4"]
    assert [i.id for i in items(t, itemIds=["2", "nope", "4", "x" * 5000])] == ["2", "4"]
    assert items(t, itemIds=["nope"]) == []
    e = refused(t.pep.items(jid.JID(ALICE), MOOD, jid.JID(ALICE)))
    assert e.condition == "item-not-found"


# --- retract, delete, purge, configure --------------------------------------------------------


def test_retractNotifies() -> None:
    """
    XEP-0060 §7.2.2.1: a retraction with notify is told to those notified
    of the node, as <retract id/> in <items/>; the item is gone.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t, options={"pubsub#notify_retract": "false"})
    _, bobClient = t.online(BOB + "/desk", TUNE)
    resultOf(t.pep.retract(jid.JID(ALICE), TUNE, "current", jid.JID(ALICE), notify=True))
    assert events(bobClient) == [("items", TUNE, ["current"])]
    [message] = bobClient.sent
    assert [c.name for e in message.elements() for i in e.elements() for c in i.elements()] == ["retract"]
    assert items(t) == []


def test_retractWithoutNotify() -> None:
    """
    XEP-0060 §7.2: without notify, a node whose pubsub#notify_retract is
    false tells nobody; one whose notify_retract is true (the default)
    notifies anyway.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    _, bobClient = t.online(BOB + "/desk", TUNE, MOOD)
    publish(t, itemId="1", options={"pubsub#notify_retract": "false"})
    publish(t, node=MOOD, itemId="1")
    bobClient.sent.clear()
    resultOf(t.pep.retract(jid.JID(ALICE), TUNE, "1", jid.JID(ALICE), notify=False))
    resultOf(t.pep.retract(jid.JID(ALICE), MOOD, "1", jid.JID(ALICE), notify=False))
    assert events(bobClient) == [("items", MOOD, ["1"])]


def test_retractErrors() -> None:
    """
    XEP-0060 §7.2.3: someone else retracting is forbidden; no such node or
    item is item-not-found.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t)
    assert refused(t.pep.retract(jid.JID(ALICE), TUNE, "current", jid.JID(BOB))).condition == "forbidden"
    assert refused(t.pep.retract(jid.JID(ALICE), TUNE, "other", jid.JID(ALICE))).condition == "item-not-found"
    assert refused(t.pep.retract(jid.JID(ALICE), MOOD, "current", jid.JID(ALICE))).condition == "item-not-found"
    assert len(items(t)) == 1


def test_deleteNotifies() -> None:
    """
    XEP-0060 §8.4.2: deleting a node removes it and its items and tells
    those notified of it (<delete node/>); afterwards it is item-not-found.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t)
    _, aliceClient = t.online(ALICE + "/phone", TUNE)
    _, bobClient = t.online(BOB + "/desk", TUNE)
    resultOf(t.pep.deleteNode(jid.JID(ALICE), TUNE, jid.JID(ALICE + "/phone")))
    assert events(bobClient) == [("delete", TUNE, [])]
    assert events(aliceClient) == [("delete", TUNE, [])]
    assert resultOf(t.world.store.getPEPNode(ALICE, TUNE)) is None
    assert refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(ALICE))).condition == "item-not-found"


def test_deleteErrors() -> None:
    """
    XEP-0060 §8.4.3: someone else deleting is forbidden, a node that does
    not exist item-not-found; with pubsub#notify_delete false nobody is
    told.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t, options={"pubsub#notify_delete": "0"})
    _, bobClient = t.online(BOB + "/desk", TUNE)
    assert refused(t.pep.deleteNode(jid.JID(ALICE), TUNE, jid.JID(BOB))).condition == "forbidden"
    assert refused(t.pep.deleteNode(jid.JID(ALICE), MOOD, jid.JID(ALICE))).condition == "item-not-found"
    resultOf(t.pep.deleteNode(jid.JID(ALICE), TUNE, jid.JID(ALICE)))
    assert events(bobClient) == []


def test_purge() -> None:
    """
    XEP-0060 §8.5: purging removes every item and tells those notified
    (<purge node/>); someone else purging is forbidden; a node without
    persistent items is feature-not-implemented with
    <unsupported feature='persistent-items'/>.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    resultOf(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "5"}))
    publish(t, itemId="1")
    publish(t, itemId="2")
    _, bobClient = t.online(BOB + "/desk", TUNE)
    assert refused(t.pep.purge(jid.JID(ALICE), TUNE, jid.JID(BOB))).condition == "forbidden"
    resultOf(t.pep.purge(jid.JID(ALICE), TUNE, jid.JID(ALICE)))
    assert items(t) == []
    assert events(bobClient) == [("purge", TUNE, [])]
    publish(t, node=MOOD, options={"pubsub#persist_items": "false"})
    e = refused(t.pep.purge(jid.JID(ALICE), MOOD, jid.JID(ALICE)))
    assert condition(e) == ("feature-not-implemented", "unsupported")
    assert e.appCondition is not None and e.appCondition["feature"] == "persistent-items"


def test_configureByOwnerOnly() -> None:
    """
    XEP-0060 §8.2: the owner reads and changes the configuration; anyone
    else is forbidden (§8.2.3.2), a node that does not exist is
    item-not-found (§8.2.3.5), bad values not-acceptable (§8.2.5.2) and
    change nothing.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t)
    config = resultOf(t.pep.configure(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#title": "My tunes"}))
    assert config.title == "My tunes"
    assert resultOf(t.pep.configuration(jid.JID(ALICE), TUNE, jid.JID(ALICE + "/x"))).title == "My tunes"
    assert refused(t.pep.configuration(jid.JID(ALICE), TUNE, jid.JID(BOB))).condition == "forbidden"
    assert refused(t.pep.configure(jid.JID(ALICE), TUNE, jid.JID(BOB), {"pubsub#title": "x"})).condition == "forbidden"
    assert refused(t.pep.configure(jid.JID(ALICE), MOOD, jid.JID(ALICE), {})).condition == "item-not-found"
    e = refused(t.pep.configure(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#access_model": "everyone"}))
    assert e.condition == "not-acceptable"
    assert resultOf(t.pep.nodeConfig(jid.JID(ALICE), TUNE)).accessModel == "presence"


def test_configureLowersMaxItems() -> None:
    """
    XEP-0060 §8.2.4: lowering pubsub#max_items drops the oldest items.
    """
    t = makePEPWorld()
    resultOf(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "5"}))
    for n in range(5):
        publish(t, itemId=str(n))
    resultOf(t.pep.configure(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "2"}))
    assert [i.id for i in items(t)] == ["3", "4"]


def test_createErrors() -> None:
    """
    XEP-0060 §8.1: an existing node is conflict; someone else creating is
    forbidden; a bad configuration not-acceptable.
    """
    t = makePEPWorld()
    resultOf(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE)))
    assert refused(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE))).condition == "conflict"
    assert refused(t.pep.create(jid.JID(ALICE), MOOD, jid.JID(BOB))).condition == "forbidden"
    e = refused(t.pep.create(jid.JID(ALICE), MOOD, jid.JID(ALICE), {"pubsub#whatever": "1"}))
    assert e.condition == "not-acceptable"


def test_nodesVisible() -> None:
    """
    XEP-0163 §6.2: the nodes listed for someone are those whose items it
    may retrieve; the owner sees all.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    publish(t, node=TUNE)
    publish(t, node=MOOD, options={"pubsub#access_model": "whitelist"})
    publish(t, node="urn:example:open", options={"pubsub#access_model": "open"})

    def names(requester: str) -> list[str]:
        return [node.node for node, _ in resultOf(t.pep.nodes(jid.JID(ALICE), jid.JID(requester)))]

    assert names(ALICE) == sorted([TUNE, MOOD, "urn:example:open"])
    assert names(BOB) == sorted([TUNE, "urn:example:open"])
    assert names(DAVE) == ["urn:example:open"]


# --- notifications -----------------------------------------------------------------------------


def test_notifyOwnAndContactsWithNotify() -> None:
    """
    XEP-0163 §4.3.1, §4.3.2: a publication is sent, from the owner's bare
    JID as a headline, to each available resource with node+notify: the
    owner's own and those of contacts subscribed to the owner's presence;
    not to a resource without +notify, nor to a stranger that has it.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    friends(t, ALICE, CAROL)
    _, alicePhone = t.online(ALICE + "/phone", TUNE)
    _, aliceDesk = t.online(ALICE + "/desk", MOOD)
    _, bobDesk = t.online(BOB + "/desk", TUNE)
    _, bobPhone = t.online(BOB + "/phone")
    _, carolClient = t.online(CAROL + "/pc", MOOD)
    _, daveClient = t.online(DAVE + "/pc", TUNE)
    publish(t, title="Air")
    assert events(alicePhone) == [("items", TUNE, ["current:Air"])]
    assert events(bobDesk) == [("items", TUNE, ["current:Air"])]
    for client in (aliceDesk, bobPhone, carolClient, daveClient):
        assert events(client) == []
    [message] = [m for m in bobDesk.sent if m.name == "message"]
    assert message["to"] == BOB + "/desk" and message["from"] == ALICE


def test_noNotificationToUnavailable() -> None:
    """
    XEP-0163 §4.3.1 (presence-based delivery): a contact's resource that
    is not available gets nothing; nor one whose subscription to the owner
    is gone.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    friends(t, ALICE, CAROL, aToB="to")
    bob, bobClient = t.online(BOB + "/desk", TUNE)
    _, carolClient = t.online(CAROL + "/pc", TUNE)
    broadcast(t.world, bob, unavailable=True)
    bobClient.sent.clear()
    publish(t)
    assert events(bobClient) == []
    assert events(carolClient) == []


def test_notificationsFollowAccessModel() -> None:
    """
    XEP-0060 §9.1.2: a contact is auto-subscribed only to the nodes its
    access model lets it see: not to a whitelist node, not to a roster
    node outside its groups; an open node's notifications go to contacts
    (not to strangers).
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB, groups=("Friends",))
    friends(t, ALICE, CAROL, groups=("Work",))
    _, bobClient = t.online(BOB + "/desk", TUNE, MOOD, "urn:example:open")
    _, carolClient = t.online(CAROL + "/pc", TUNE, MOOD, "urn:example:open")
    _, daveClient = t.online(DAVE + "/pc", "urn:example:open")
    publish(t, node=TUNE, options={"pubsub#access_model": "whitelist"})
    publish(t, node=MOOD, options={"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": "Friends"})
    publish(t, node="urn:example:open", options={"pubsub#access_model": "open"})
    assert [e[1] for e in events(bobClient)] == [MOOD, "urn:example:open"]
    assert [e[1] for e in events(carolClient)] == ["urn:example:open"]
    assert events(daveClient) == []


def test_noPayloadWhenNotDelivered() -> None:
    """
    XEP-0060 §7.1.2.2: a node with pubsub#deliver_payloads false notifies
    with the item id only; with pubsub#deliver_notifications false, not
    at all.
    """
    t = makePEPWorld()
    _, aliceClient = t.online(ALICE + "/phone", TUNE, MOOD)
    publish(t, node=TUNE, options={"pubsub#deliver_payloads": "false"})
    publish(t, node=MOOD, options={"pubsub#deliver_notifications": "false"})
    assert events(aliceClient) == [("items", TUNE, ["current"])]


def test_blockedContactNotNotified() -> None:
    """
    XEP-0163 §4.3.3 point 3: no notification to a contact the owner
    blocked (XEP-0191), nor to one that blocked the owner.
    """
    t = makePEPWorld()
    blocking = BlockingService(t.world.manager, t.world.store, t.world.im, t.world.clock)
    blocking.install()
    friends(t, ALICE, BOB)
    friends(t, ALICE, CAROL)
    alice, _ = t.online(ALICE + "/phone")
    _, bobClient = t.online(BOB + "/desk", TUNE)
    carol, carolClient = t.online(CAROL + "/pc", TUNE)
    resultOf(blocking.block(alice, [BOB]))
    resultOf(blocking.block(carol, [ALICE]))
    bobClient.sent.clear()
    carolClient.sent.clear()
    publish(t)
    assert events(bobClient) == []
    assert events(carolClient) == []


def test_notifyStoreFailureOnRoster() -> None:
    """
    A store failure reading the owner's roster while notifying still
    publishes and notifies the owner's own resources, and logs once at
    error level.
    """
    t = makePEPWorld()
    friends(t, ALICE, BOB)
    _, aliceClient = t.online(ALICE + "/phone", TUNE)
    _, bobClient = t.online(BOB + "/desk", TUNE)
    # The roster of an account online is read from memory: the failure is
    # that of the roster service's read.
    async def failingItems(account: Any) -> list[RosterItem]:
        raise StoreError("disk on fire")

    t.world.roster.items = failingItems  # type: ignore[method-assign]
    with capturedLogs() as logged:
        publish(t)
        publish(t, itemId="again")
    assert [e[0] for e in events(aliceClient)] == ["items", "items"]
    assert events(bobClient) == []
    errors = [e for e in logged if e["log_level"] is LogLevel.error]
    assert len(errors) == 1


# --- the last published item -----------------------------------------------------------------


def test_lastItemOnFeatures() -> None:
    """
    XEP-0163 §4.3.4: when a session's interests become known it gets the
    last item of each node it +notifies, of its own account and of the
    contacts its user is subscribed to (and may see); not of a node whose
    send_last_published_item is never, nor of a stranger's node.
    """
    t = makePEPWorld()
    friends(t, BOB, ALICE)
    publish(t, owner=ALICE, title="alice's")
    publish(t, owner=BOB, title="bob's own")
    publish(t, owner=BOB, node=MOOD, options={"pubsub#send_last_published_item": "never"})
    publish(t, owner=DAVE, title="dave's", options={"pubsub#access_model": "open"})
    bob, bobClient = t.online(BOB + "/desk")
    t.caps.announce(bob, TUNE, MOOD)
    assert sorted(events(bobClient, BOB) + events(bobClient, ALICE)) == [
        ("items", TUNE, ["current:alice's"]),
        ("items", TUNE, ["current:bob's own"]),
    ]
    assert events(bobClient, DAVE) == []


def test_lastItemOnlyForNewInterests() -> None:
    """
    XEP-0163 §4.3.3 point 2: the same interests announced again bring
    nothing new; a new +notify brings the last item of that node only.
    """
    t = makePEPWorld()
    friends(t, BOB, ALICE)
    publish(t, node=TUNE)
    publish(t, node=MOOD)
    bob, bobClient = t.online(BOB + "/desk", TUNE)
    t.caps.announce(bob, TUNE)
    assert events(bobClient) == []
    t.caps.announce(bob, TUNE, MOOD)
    assert [e[1] for e in events(bobClient)] == [MOOD]


def test_lastItemAgainAfterUnavailable() -> None:
    """
    XEP-0163 §4.3.3 point 2: initial presence after being unavailable
    brings the last items again (the capabilities being known already).
    """
    t = makePEPWorld()
    friends(t, BOB, ALICE)
    publish(t)
    bob, bobClient = t.online(BOB + "/desk", TUNE)
    broadcast(t.world, bob, unavailable=True)
    bobClient.sent.clear()
    broadcast(t.world, bob)
    assert [e[1] for e in events(bobClient)] == [TUNE]
    broadcast(t.world, bob, show="away")
    assert len(events(bobClient)) == 1


def test_lastItemRespectsAccess() -> None:
    """
    XEP-0060 §9.1.2: no last item from a contact the user follows but who
    does not share presence back (no from on the owner's side), nor from
    a roster node outside the user's groups.
    """
    t = makePEPWorld()
    friends(t, BOB, ALICE, aToB="to", bToA="none")
    friends(t, BOB, CAROL, aToB="to", bToA="both")
    put(t.world.store, CAROL, RosterItem(BOB, subscription="both", groups=("Work",)))
    publish(t, owner=ALICE)
    publish(t, owner=CAROL, options={"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": "Friends"})
    _, bobClient = t.online(BOB + "/desk", TUNE)
    assert events(bobClient, ALICE) == [] and events(bobClient, CAROL) == []


def test_lastItemStateForgotten() -> None:
    """
    SESSION_ENDED: what a session was sent is forgotten with it.
    """
    t = makePEPWorld()
    bob, _ = t.online(BOB + "/desk", TUNE)
    assert bob in t.pep._interest
    t.world.manager.unbind(bob)
    assert bob not in t.pep._interest


# --- nodes without persistent items ---------------------------------------------------------


def test_transientNode() -> None:
    """
    XEP-0060 §6.5.5: a node with persist_items false keeps no item in the
    store, but its last item is returned and sent as the last item; a
    newer one replaces it.
    """
    t = makePEPWorld()
    friends(t, BOB, ALICE)
    publish(t, itemId="1", title="first", options={"pubsub#persist_items": "false"})
    publish(t, itemId="2", title="second")
    assert resultOf(t.world.store.getPEPItems(ALICE, TUNE)) == []
    assert titles(items(t)) == ["second"]
    assert items(t, itemIds=["1"]) == []
    bob, bobClient = t.online(BOB + "/desk")
    t.caps.announce(bob, TUNE)
    assert events(bobClient) == [("items", TUNE, ["2:second"])]
    resultOf(t.pep.retract(jid.JID(ALICE), TUNE, "2", jid.JID(ALICE)))
    assert items(t) == []


def test_transientMemoryBounded() -> None:
    """
    The last items of nodes without persistent items are held for at most
    MAX_TRANSIENT_ITEMS nodes, the least recently published forgotten.
    """
    t = makePEPWorld()
    item = PEPItem("x", "", ALICE, datetime.datetime.now(datetime.UTC))
    for n in range(MAX_TRANSIENT_ITEMS + 5):
        t.pep._transient.keep(f"user{n}@example.com", "node", replace(item, id=str(n)))
    assert len(t.pep._transient) == MAX_TRANSIENT_ITEMS
    assert ("user0@example.com", "node") not in t.pep._transient
    assert ("user5@example.com", "node") in t.pep._transient


def transientItem(account: str, size: int, itemId: str = "i") -> PEPItem:
    """
    An item of exactly C{size} bytes as pepItemBytes counts them.
    """
    item = PEPItem(itemId, "", account, datetime.datetime.now(datetime.UTC))
    return replace(item, payload="x" * (size - pepItemBytes(item)))


def test_transientBytesBounded() -> None:
    """
    The last items of nodes without persistent items take at most
    maxBytes in all (pepItemBytes), the least recently published
    forgotten first, whatever their number; an item larger than that is
    not kept.
    """
    transient = TransientItems(maxItems=100, maxBytes=1000, accountBytes=1000)
    for n in range(5):
        assert transient.keep(f"user{n}@example.com", "node", transientItem(f"user{n}@example.com", 300))
    assert len(transient) == 3 and transient.totalBytes == 900
    assert [f"user{n}@example.com" for n in range(5) if (f"user{n}@example.com", "node") in transient] == [
        "user2@example.com", "user3@example.com", "user4@example.com"
    ]
    assert not transient.keep(ALICE, "big", transientItem(ALICE, 1001))
    assert transient.get(ALICE, "big") is None and transient.totalBytes == 900


def test_transientAccountShare() -> None:
    """
    One account's last items take at most accountBytes: more forgets its
    own least recently published ones, not other accounts'; the node of a
    replaced item counts only once.
    """
    transient = TransientItems(maxItems=100, maxBytes=10_000, accountBytes=1000)
    assert transient.keep(BOB, "node", transientItem(BOB, 400))
    for n in range(10):
        assert transient.keep(ALICE, f"node{n}", transientItem(ALICE, 300))
    assert transient.bytesOf(ALICE) == 900
    assert [n for n in range(10) if (ALICE, f"node{n}") in transient] == [7, 8, 9]
    assert transient.get(BOB, "node") is not None and transient.totalBytes == 1300
    assert transient.keep(ALICE, "node9", transientItem(ALICE, 500, "j"))
    assert transient.bytesOf(ALICE) == 800
    assert [n for n in range(10) if (ALICE, f"node{n}") in transient] == [8, 9]
    assert transient.pop(ALICE, "node9") is not None and transient.bytesOf(ALICE) == 300
    assert transient.pop(ALICE, "node9") is None


def test_transientBoundsThroughPublish() -> None:
    """
    Publishing to nodes without persistent items keeps one account's last
    items within MAX_TRANSIENT_ACCOUNT_BYTES, with those of another
    account untouched.
    """
    t = makePEPWorld(max_pep_item_bytes=1024 * 1024)
    friends(t, ALICE, BOB)
    resultOf(t.pep.publish(jid.JID(BOB), "bobs", "1", tune("bob"), jid.JID(BOB + "/desk"), TRANSIENT))
    big = element("<x xmlns='urn:x'>" + "a" * (MAX_TRANSIENT_ACCOUNT_BYTES // 3) + "</x>")
    for n in range(10):
        resultOf(t.pep.publish(jid.JID(ALICE), f"n{n}", "1", big, jid.JID(ALICE + "/phone"), TRANSIENT))
    assert t.pep._transient.bytesOf(ALICE) <= MAX_TRANSIENT_ACCOUNT_BYTES
    assert [i.id for i in items(t, node="n9")] == ["1"]
    assert items(t, node="n0") == []
    assert titles(items(t, requester=ALICE, owner=BOB, node="bobs")) == ["bob"]


def test_persistenceTurnedOff() -> None:
    """
    XEP-0060 §8.2.4: turning persist_items off drops the stored items but
    the newest stays the node's last item.
    """
    t = makePEPWorld()
    resultOf(t.pep.create(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#max_items": "3"}))
    publish(t, itemId="1")
    publish(t, itemId="2")
    resultOf(t.pep.configure(jid.JID(ALICE), TUNE, jid.JID(ALICE), {"pubsub#persist_items": "false"}))
    assert resultOf(t.world.store.getPEPItems(ALICE, TUNE)) == []
    assert [i.id for i in items(t)] == ["2"]


# --- limits ---------------------------------------------------------------------------------


def test_nodeLimit() -> None:
    """
    [im] max_pep_nodes: one node more is not-allowed with
    <max-nodes-exceeded/>, whether created or auto-created.
    """
    t = makePEPWorld(max_pep_nodes=2)
    publish(t, node="a")
    publish(t, node="b")
    e = refused(t.pep.publish(jid.JID(ALICE), "c", "1", tune("x"), jid.JID(ALICE)))
    assert condition(e) == ("not-allowed", "max-nodes-exceeded")
    assert condition(refused(t.pep.create(jid.JID(ALICE), "c", jid.JID(ALICE)))) == ("not-allowed", "max-nodes-exceeded")
    publish(t, node="a", itemId="again")


def test_itemTooBig() -> None:
    """
    XEP-0060 §7.1.3.5, [im] max_pep_item_bytes: a larger payload is
    not-acceptable with <payload-too-big/>, and nothing is created.
    """
    t = makePEPWorld(max_pep_item_bytes=1024)
    big = element(f"<data xmlns='urn:example:big'>{'x' * 1024}</data>")
    e = refused(t.pep.publish(jid.JID(ALICE), "urn:example:big", "1", big, jid.JID(ALICE)))
    assert condition(e) == ("not-acceptable", "payload-too-big")
    assert resultOf(t.world.store.getPEPNode(ALICE, "urn:example:big")) is None


def test_unreadablePayloadRefused() -> None:
    """
    Only a payload that reads back is stored (XEP-0060 §7.1.3.6,
    bad-request with <invalid-payload/>): otherwise every later read would
    log the item as store damage. Nothing is created.
    """
    t = makePEPWorld()
    payload = domish.Element(("urn:example:bad", "data"))
    payload.addContent("control \x01 character")
    e = refused(t.pep.publish(jid.JID(ALICE), "urn:example:bad", "1", payload, jid.JID(ALICE)))
    assert condition(e) == ("bad-request", "invalid-payload")
    assert resultOf(t.world.store.getPEPNode(ALICE, "urn:example:bad")) is None


def test_idLimits() -> None:
    """
    A node identifier or item id longer than the store keeps (1023
    characters) is not-acceptable; an empty node is bad-request with
    <nodeid-required/>.
    """
    t = makePEPWorld()
    assert refused(t.pep.publish(jid.JID(ALICE), "n" * 1024, "1", tune("x"), jid.JID(ALICE))).condition == "not-acceptable"
    assert refused(t.pep.publish(jid.JID(ALICE), TUNE, "i" * 1024, tune("x"), jid.JID(ALICE))).condition == "not-acceptable"
    assert condition(refused(t.pep.publish(jid.JID(ALICE), "", "1", tune("x"), jid.JID(ALICE)))) == (
        "bad-request",
        "nodeid-required",
    )
    assert refused(t.pep.items(jid.JID(ALICE), "n" * 1024, jid.JID(ALICE))).condition == "item-not-found"


# --- store failures ---------------------------------------------------------------------------


def test_storeFailure() -> None:
    """
    A failing store is internal-server-error of type wait, logged at error
    level at most once a minute, not a traceback.
    """
    t = makePEPWorld()
    t.world.store.getPEPNode = lambda account, node: defer.fail(StoreError("disk on fire"))  # type: ignore[method-assign]
    with capturedLogs() as logged:
        for _ in range(3):
            e = refused(t.pep.publish(jid.JID(ALICE), TUNE, "1", tune("x"), jid.JID(ALICE)))
            assert e.condition == "internal-server-error" and e.type == "wait"
        e = refused(t.pep.items(jid.JID(ALICE), TUNE, jid.JID(ALICE)))
        assert e.condition == "internal-server-error"
    errors = [e for e in logged if e["log_level"] is LogLevel.error]
    assert len(errors) == 1
    assert "log_failure" not in errors[0]


def test_storeRefusesValue() -> None:
    """
    What the store's own checks refuse (a ValueError) is not-acceptable,
    without a log line at error level.
    """
    t = makePEPWorld()
    t.world.store.publishPEPItem = lambda *args, **kwargs: defer.fail(ValueError("too odd"))  # type: ignore[method-assign]
    with capturedLogs() as logged:
        e = refused(t.pep.publish(jid.JID(ALICE), TUNE, "1", tune("x"), jid.JID(ALICE)))
    assert e.condition == "not-acceptable"
    assert [e for e in logged if e["log_level"] in (LogLevel.error, LogLevel.critical)] == []


# --- review regressions: new subscribers, delay, account removal, quota ----------------------


def test_newSubscriberGetsLastItems() -> None:
    """
    XEP-0163 §4.3.4: a PEP service MUST send the last published item to
    all new subscribers: when alice approves bob's subscription (her item
    for him becomes from), each available session of bob that +notifies
    gets the last item of each of her nodes it wants and may see (on_sub
    and on_sub_and_presence alike; not never, not a whitelist node);
    sessions without +notify get nothing.
    """
    t = makePEPWorld()
    publish(t, node=TUNE, title="alice's")
    publish(t, node=MOOD, options={"pubsub#send_last_published_item": "on_sub"})
    publish(t, node="urn:never", options={"pubsub#send_last_published_item": "never"})
    publish(t, node="urn:private", options={"pubsub#access_model": "whitelist"})
    alice, _ = t.online(ALICE + "/phone")
    bob, bobClient = t.online(BOB + "/desk", TUNE, MOOD, "urn:never", "urn:private")
    _, quietClient = t.online(BOB + "/quiet")
    send(t.world, bob, f"<presence type='subscribe' to='{ALICE}'/>")
    assert events(bobClient) == []
    send(t.world, alice, f"<presence type='subscribed' to='{BOB}'/>")
    assert sorted(events(bobClient)) == [
        ("items", MOOD, ["current:one"]),
        ("items", TUNE, ["current:alice's"]),
    ]
    assert events(quietClient) == []
    # Already subscribed: approving again sends nothing more.
    bobClient.sent.clear()
    send(t.world, alice, f"<presence type='subscribed' to='{BOB}'/>")
    assert events(bobClient) == []


def test_newSubscriberStoreFailureLogged() -> None:
    """
    A store failure while sending a new subscriber the last items is
    logged at most once a minute, and the subscription goes through.
    """
    t = makePEPWorld()
    publish(t)
    alice, _ = t.online(ALICE + "/phone")
    bob, bobClient = t.online(BOB + "/desk", TUNE)
    t.world.store.listPEPNodes = lambda account: defer.fail(StoreError("gone"))  # type: ignore[method-assign]
    send(t.world, bob, f"<presence type='subscribe' to='{ALICE}'/>")
    with capturedLogs() as logged:
        send(t.world, alice, f"<presence type='subscribed' to='{BOB}'/>")
    assert events(bobClient) == []
    assert [e for e in logged if e["log_level"] == LogLevel.error and "new subscriber" in e.get("verb", "")]
    assert resultOf(t.world.store.getRosterItem(ALICE, BOB)).subscription == "from"


def test_uninstallLeavesRoster() -> None:
    """
    The service listens to roster changes (IRosterChangeListener) while
    installed only.
    """
    t = makePEPWorld()
    assert IRosterChangeListener.providedBy(t.pep)
    assert t.pep in t.world.roster.listeners
    t.pep.uninstall()
    assert t.pep not in t.world.roster.listeners


def test_lastItemHasDelay() -> None:
    """
    XEP-0163 §4.3.4 (example) and XEP-0203: the last published item comes
    with <delay xmlns='urn:xmpp:delay' stamp/> saying when it was
    published (UTC, XEP-0082); a notification of a new publication has
    none.
    """
    t = makePEPWorld()
    friends(t, BOB, ALICE)
    t.world.clock.advance(1_000_000_000 - t.world.clock.seconds())
    publish(t)
    _, aliceClient = t.online(ALICE + "/phone", TUNE)
    publish(t, title="two")
    [live] = [m for m in aliceClient.sent if m.name == "message"]
    assert list(live.elements(NS_DELAY, "delay")) == []
    t.world.clock.advance(60)
    bob, bobClient = t.online(BOB + "/desk")
    t.caps.announce(bob, TUNE)
    [message] = [m for m in bobClient.sent if m.name == "message"]
    [delay] = list(message.elements(NS_DELAY, "delay"))
    assert delay["stamp"] == "2001-09-09T01:46:40Z"


def test_transientItemNotInheritedByNewAccount() -> None:
    """
    Account removal: the last item of a node without persistent items,
    held in memory, is not read by the next account of that JID: a node
    created anew (explicitly or on publish) starts without a last item.
    """
    t = makePEPWorld()
    publish(t, node="secret", title="old owner", options=TRANSIENT)
    publish(t, node="other", title="old owner", options=TRANSIENT)
    resultOf(t.world.store.removeAccount(ALICE))
    addAccount(t.world.store, ALICE)
    resultOf(t.pep.create(jid.JID(ALICE), "secret", jid.JID(ALICE), TRANSIENT))
    assert items(t, node="secret") == []
    publish(t, node="other", itemId="new", title="new owner", options=TRANSIENT)
    assert titles(items(t, node="other")) == ["new owner"]
    # A persistent node created anew does not show it either.
    publish(t, node="third", title="old owner", options=TRANSIENT)
    resultOf(t.world.store.removeAccount(ALICE))
    addAccount(t.world.store, ALICE)
    resultOf(t.pep.create(jid.JID(ALICE), "third", jid.JID(ALICE)))
    resultOf(t.pep.configure(jid.JID(ALICE), "third", jid.JID(ALICE), TRANSIENT))
    assert items(t, node="third") == []


def test_accountByteLimit() -> None:
    """
    [im] max_pep_bytes bounds an account's stored items together: a
    publish that would go over is refused with resource-constraint of
    type wait (RFC 6120 §8.3.3.18; XEP-0060 has no quota condition), with
    nothing logged at error, and nobody is notified; replacing an item
    with one of the same size still works.
    """
    t = makePEPWorld(max_pep_bytes=2048)
    _, aliceClient = t.online(ALICE + "/phone", TUNE, MOOD)
    payload = element("<x xmlns='urn:x'>" + "a" * 900 + "</x>")
    twoItems = {"pubsub#max_items": "2"}
    resultOf(t.pep.publish(jid.JID(ALICE), TUNE, "1", payload, jid.JID(ALICE + "/phone")))
    resultOf(t.pep.publish(jid.JID(ALICE), MOOD, "1", payload, jid.JID(ALICE + "/phone"), twoItems))
    aliceClient.sent.clear()
    with capturedLogs() as logged:
        e = refused(t.pep.publish(jid.JID(ALICE), MOOD, "2", payload, jid.JID(ALICE + "/phone"), twoItems))
    assert (e.condition, e.type) == ("resource-constraint", "wait")
    assert "2048" in (e.text or "")
    assert [x for x in logged if x["log_level"] >= LogLevel.warn] == []
    assert events(aliceClient) == []
    resultOf(t.pep.publish(jid.JID(ALICE), MOOD, "1", payload, jid.JID(ALICE + "/phone")))


def test_persistenceTurnedOnOverLimit() -> None:
    """
    Turning persist_items on stores the last item held in memory, unless
    the account's items would then take more than max_pep_bytes: the
    configuration changes, and the item is dropped.
    """
    t = makePEPWorld(max_pep_bytes=1500)
    payload = element("<x xmlns='urn:x'>" + "a" * 900 + "</x>")
    resultOf(t.pep.publish(jid.JID(ALICE), TUNE, "1", payload, jid.JID(ALICE + "/phone")))
    resultOf(t.pep.publish(jid.JID(ALICE), MOOD, "1", payload, jid.JID(ALICE + "/phone"), TRANSIENT))
    resultOf(t.pep.configure(jid.JID(ALICE), MOOD, jid.JID(ALICE), {"pubsub#persist_items": "true"}))
    assert resultOf(t.pep.nodeConfig(jid.JID(ALICE), MOOD)).persistItems
    assert items(t, node=MOOD) == []
