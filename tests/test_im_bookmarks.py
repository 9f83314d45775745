"""
Tests for L{xmppcert.im.bookmarks}: XEP-0402 section 5, bookmarks kept in
the PEP node urn:xmpp:bookmarks:1 and seen through private XML storage
(XEP-0049, storage:bookmarks, as XEP-0048 clients use it), on the real
PEP and private storage services over the in-memory store.
"""

from __future__ import annotations

from typing import Any

from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from tests.helpers import ALICE, failureOf, parseOutput, resultOf
from tests.test_im_pep_service import PEPWorld, makePEPWorld
from xmppcert.im.bookmarks import (
    NS_BOOKMARKS,
    NS_BOOKMARKS_COMPAT,
    NS_LEGACY_BOOKMARKS,
    BookmarksCompatDisco,
    BookmarksView,
)
from xmppcert.im.pep.nodeconfig import NS_PUBSUB_EVENT
from xmppcert.im.private import IPrivateView, PrivateService

OWNER = jid.JID(ALICE)
PHONE = jid.JID(f"{ALICE}/phone")


def element(xml: str) -> domish.Element:
    return parseOutput(xml).only()


def legacy(*children: str) -> domish.Element:
    return element(f"<storage xmlns='{NS_LEGACY_BOOKMARKS}'>{''.join(children)}</storage>")


def conference(room: str, name: str, autojoin: str = "true", nick: str | None = None) -> str:
    nickXML = f"<nick>{nick}</nick>" if nick is not None else ""
    return f"<conference jid='{room}' name='{name}' autojoin='{autojoin}'>{nickXML}</conference>"


def setUp() -> tuple[PEPWorld, PrivateService, BookmarksView]:
    t = makePEPWorld()
    private = PrivateService(t.world.manager, t.world.store, t.world.im, t.world.clock)
    private.install()
    view = BookmarksView(t.pep, private)
    view.install()
    return t, private, view


def read(private: PrivateService) -> domish.Element | None:
    found = resultOf(private.get(ALICE, NS_LEGACY_BOOKMARKS))
    if found is None:
        return None
    (storage,) = found
    return storage


def pepItems(t: PEPWorld) -> dict[str, domish.Element]:
    items = resultOf(t.pep.items(OWNER, NS_BOOKMARKS, OWNER))
    return {item.id: element(item.payload) for item in items}


def notifications(sent: list[Any]) -> list[tuple[str, str]]:
    """
    (kind, item id) of each PEP notification of the bookmarks node in
    C{sent}: kind "item" or "retract".
    """
    found = []
    for stanza in sent:
        for event in stanza.elements(NS_PUBSUB_EVENT, "event"):
            for items in event.elements(NS_PUBSUB_EVENT, "items"):
                if items.getAttribute("node") != NS_BOOKMARKS:
                    continue
                for child in items.elements():
                    found.append((child.name, child["id"]))
    return found


def test_viewIsAPrivateView() -> None:
    """
    The view provides IPrivateView.
    """
    _, _, view = setUp()
    assert verifyObject(IPrivateView, view)


def test_nothingStored() -> None:
    """
    XEP-0049 §2.3: with no bookmarks anywhere, private storage has nothing
    to give (the client gets its empty element back).
    """
    _, private, _ = setUp()
    assert read(private) is None


def test_legacyWriteBecomesPEPItems() -> None:
    """
    XEP-0402 §5.2: rooms written through private XML storage become items
    of urn:xmpp:bookmarks:1 (item id = room JID, the conference in the
    new namespace), in a node configured as §3 asks (whitelist).
    """
    t, private, _ = setUp()
    resultOf(private.set(ALICE, [legacy(conference("a@rooms.example", "A", nick="al"))], PHONE))
    items = pepItems(t)
    assert list(items) == ["a@rooms.example"]
    payload = items["a@rooms.example"]
    assert (payload.uri, payload.name, payload["name"], payload["autojoin"]) == (NS_BOOKMARKS, "conference", "A", "true")
    assert str(next(payload.elements(NS_BOOKMARKS, "nick"))) == "al"
    config = resultOf(t.pep.nodeConfig(OWNER, NS_BOOKMARKS))
    assert config is not None and config.accessModel == "whitelist"


def test_pepItemsReadAsLegacy() -> None:
    """
    XEP-0402 §5.1: items published with XEP-0402 are read through private
    XML storage as one <storage xmlns='storage:bookmarks'> with a
    <conference jid=...> each.
    """
    t, private, _ = setUp()
    payload = element(f"<conference xmlns='{NS_BOOKMARKS}' name='B' autojoin='1'><password>s3</password></conference>")
    resultOf(t.pep.publish(OWNER, NS_BOOKMARKS, "b@rooms.example", payload, PHONE, {"pubsub#access_model": "whitelist"}))
    storage = read(private)
    assert storage is not None and (storage.uri, storage.name) == (NS_LEGACY_BOOKMARKS, "storage")
    (room,) = list(storage.elements(NS_LEGACY_BOOKMARKS, "conference"))
    assert (room["jid"], room["name"], room["autojoin"]) == ("b@rooms.example", "B", "true")
    assert str(next(room.elements(NS_LEGACY_BOOKMARKS, "password"))) == "s3"


def test_onlyChangesNotified() -> None:
    """
    XEP-0402 §5.2: a replacement list updates the items as needed — a new
    or changed room is published, a removed one retracted — and an
    unchanged room is not notified.
    """
    t, private, _ = setUp()
    resultOf(private.set(ALICE, [legacy(conference("a@r.example", "A"), conference("b@r.example", "B"))], PHONE))
    _, client = t.online(f"{ALICE}/laptop", NS_BOOKMARKS)
    resultOf(
        private.set(
            ALICE,
            [legacy(conference("a@r.example", "A"), conference("b@r.example", "B2"), conference("c@r.example", "C"))],
            PHONE,
        )
    )
    assert sorted(notifications(client.sent)) == [("item", "b@r.example"), ("item", "c@r.example")]
    client.sent.clear()
    resultOf(private.set(ALICE, [legacy(conference("c@r.example", "C"))], PHONE))
    assert sorted(notifications(client.sent)) == [("retract", "a@r.example"), ("retract", "b@r.example")]
    assert list(pepItems(t)) == ["c@r.example"]


def test_extensionsKept() -> None:
    """
    XEP-0402 §3: <extensions/> are the client's data; a XEP-0048 client
    that rewrites the room (it cannot carry them) does not lose them.
    """
    t, private, _ = setUp()
    payload = element(
        f"<conference xmlns='{NS_BOOKMARKS}' name='A' autojoin='false'>"
        "<extensions><state xmlns='urn:example:client' pinned='yes'/></extensions></conference>"
    )
    resultOf(t.pep.publish(OWNER, NS_BOOKMARKS, "a@r.example", payload, PHONE, {"pubsub#access_model": "whitelist"}))
    resultOf(private.set(ALICE, [legacy(conference("a@r.example", "Renamed", autojoin="false"))], PHONE))
    stored = pepItems(t)["a@r.example"]
    assert stored["name"] == "Renamed"
    (extensions,) = list(stored.elements(NS_BOOKMARKS, "extensions"))
    assert next(extensions.elements("urn:example:client", "state"))["pinned"] == "yes"


def test_whatIsNotARoomStaysInPrivateStorage() -> None:
    """
    Nothing a client writes is lost: URL bookmarks (not part of XEP-0402)
    and a conference whose jid is not a room's bare JID stay in private
    XML storage and are read back after the rooms.
    """
    t, private, _ = setUp()
    resultOf(
        private.set(
            ALICE,
            [legacy(
                conference("a@r.example", "A"),
                "<url name='Home' url='https://example.org/'/>",
                conference("not a jid@@", "Broken"),
            )],
            PHONE,
        )
    )
    assert list(pepItems(t)) == ["a@r.example"]
    storage = read(private)
    assert storage is not None
    assert [(c.name, c.getAttribute("jid") or c.getAttribute("url")) for c in storage.elements()] == [
        ("conference", "a@r.example"),
        ("url", "https://example.org/"),
        ("conference", "not a jid@@"),
    ]


def test_tooManyRooms() -> None:
    """
    Bookmarks are not silently evicted: more rooms than a node keeps
    ([im] max_pep_items) is refused with not-acceptable, and nothing
    changes.
    """
    limited = makePEPWorld(max_pep_items=2)
    privateLimited = PrivateService(limited.world.manager, limited.world.store, limited.world.im, limited.world.clock)
    BookmarksView(limited.pep, privateLimited).install()
    rooms = [conference(f"r{i}@r.example", f"R{i}") for i in range(3)]
    failure = failureOf(privateLimited.set(ALICE, [legacy(*rooms)], PHONE), error.StanzaError)
    assert failure.value.condition == "not-acceptable"  # type: ignore[union-attr]
    assert resultOf(privateLimited.get(ALICE, NS_LEGACY_BOOKMARKS)) is None


def test_notAStorageElement() -> None:
    """
    XEP-0048 §3: storage:bookmarks holds a <storage/> element; anything
    else is refused with not-acceptable.
    """
    _, private, _ = setUp()
    failure = failureOf(private.set(ALICE, [element(f"<other xmlns='{NS_LEGACY_BOOKMARKS}'/>")], PHONE), error.StanzaError)
    assert failure.value.condition == "not-acceptable"  # type: ignore[union-attr]


def test_compatAdvertisedOnOwnBareJID() -> None:
    """
    XEP-0402 §5: the account advertises urn:xmpp:bookmarks:1#compat on its
    bare JID (a request without 'to' is to the account), not on the
    domain or on another account.
    """
    handler = BookmarksCompatDisco(PHONE)
    for target in (None, jid.JID(ALICE)):
        assert list(handler.getDiscoInfo(PHONE, target)) == [NS_BOOKMARKS_COMPAT]
    for target in (jid.JID("example.com"), jid.JID("bob@example.com")):
        assert handler.getDiscoInfo(PHONE, target) == []
    assert handler.getDiscoInfo(PHONE, None, "some-node") == []


def test_roomJIDsComparedPrepared() -> None:
    """
    XEP-0402 §5.2 ("SHOULD NOT send notifications for unchanged items"): a
    XEP-0048 client writing back a room whose item id is not in prepared
    form changes nothing — same item id, extensions kept, no notification.
    """
    t, private, _ = setUp()
    payload = element(
        f"<conference xmlns='{NS_BOOKMARKS}' name='L' autojoin='true'>"
        "<extensions><pin xmlns='urn:example:client'/></extensions></conference>"
    )
    resultOf(t.pep.publish(OWNER, NS_BOOKMARKS, "Lounge@Rooms.Example", payload, PHONE, {"pubsub#access_model": "whitelist"}))
    _, client = t.online(f"{ALICE}/laptop", NS_BOOKMARKS)
    storage = read(private)
    assert storage is not None
    resultOf(private.set(ALICE, [storage], PHONE))
    assert notifications(client.sent) == []
    items = pepItems(t)
    assert list(items) == ["Lounge@Rooms.Example"]
    assert list(next(items["Lounge@Rooms.Example"].elements(NS_BOOKMARKS, "extensions")).elements())


def test_itemsXEP0048CannotShowAreLeftAlone() -> None:
    """
    An item whose id is not a room's bare JID is not shown to XEP-0048
    clients, and a XEP-0048 write does not retract it.
    """
    t, private, _ = setUp()
    payload = element(f"<conference xmlns='{NS_BOOKMARKS}' name='odd'/>")
    resultOf(t.pep.publish(OWNER, NS_BOOKMARKS, "not-a-room", payload, PHONE, {"pubsub#access_model": "whitelist"}))
    assert read(private) is None or not list(read(private).elements())  # type: ignore[union-attr]
    resultOf(private.set(ALICE, [legacy(conference("a@r.example", "A"))], PHONE))
    assert sorted(pepItems(t)) == ["a@r.example", "not-a-room"]


def test_foreignChildrenBecomeExtensions() -> None:
    """
    XEP-0402 §3 <extensions/>: children of a XEP-0048 conference in other
    namespaces (Gajim's <minimize/>) are kept in the item's extensions and
    given back to XEP-0048 clients; nothing the client wrote is lost.
    """
    t, private, _ = setUp()
    room = "<conference jid='a@r.example' name='A' autojoin='true'><nick>al</nick><minimize xmlns='xmpp:gajim.org/bookmarks'>true</minimize></conference>"
    resultOf(private.set(ALICE, [legacy(room)], PHONE))
    stored = pepItems(t)["a@r.example"]
    (extensions,) = list(stored.elements(NS_BOOKMARKS, "extensions"))
    assert [(e.uri, e.name) for e in extensions.elements()] == [("xmpp:gajim.org/bookmarks", "minimize")]
    storage = read(private)
    assert storage is not None
    (conf,) = list(storage.elements(NS_LEGACY_BOOKMARKS, "conference"))
    assert [(e.uri, e.name) for e in conf.elements()] == [
        (NS_LEGACY_BOOKMARKS, "nick"), ("xmpp:gajim.org/bookmarks", "minimize")
    ]


def test_existingNodeMadePrivateAndLargeEnough() -> None:
    """
    XEP-0402 §3: a bookmarks node made earlier with other settings (the
    PEP defaults: presence access, one item) is reconfigured before rooms
    are written through XEP-0048, so passwords do not reach contacts and
    no room is dropped; an empty node with other settings does not make
    the write fail.
    """
    t, private, _ = setUp()
    resultOf(t.pep.create(OWNER, NS_BOOKMARKS, OWNER))
    rooms = [conference(f"r{i}@r.example", f"R{i}") for i in range(4)]
    resultOf(private.set(ALICE, [legacy(*rooms)], PHONE))
    assert len(pepItems(t)) == 4
    config = resultOf(t.pep.nodeConfig(OWNER, NS_BOOKMARKS))
    assert config is not None and config.accessModel == "whitelist" and config.get("pubsub#max_items") == "max"


def test_refusedListChangesNothing() -> None:
    """
    A XEP-0048 list with a room that cannot be stored (a JID longer than an
    item id may be) is refused before anything is published or retracted.
    """
    t, private, _ = setUp()
    resultOf(private.set(ALICE, [legacy(conference("a@r.example", "A"))], PHONE))
    tooLong = "r" * 1000 + "@" + "d" * 60 + ".example"
    failure = failureOf(
        private.set(ALICE, [legacy(conference("b@r.example", "B"), conference(tooLong, "Long"))], PHONE),
        error.StanzaError,
    )
    assert failure.value.condition in ("not-acceptable", "jid-malformed")  # type: ignore[union-attr]
    assert list(pepItems(t)) == ["a@r.example"]
