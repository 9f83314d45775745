# -*- test-case-name: tests.test_store_pep -*-
"""
Tests for the personal eventing (XEP-0163) part of L{xmppcert.store}
(L{IPEPStore}): the same behaviour for
L{xmppcert.testing.InMemoryAccountStore} and
L{xmppcert.store.sqlite.SQLiteStore}; and what only SQLite does (schema
version 7, its indexes, its transactions and the migration to it).
"""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.test_store import temporaryDatabase
from xmppcert.store import (
    MAX_STORED_XML_BYTES,
    SCHEMA_VERSION,
    NoSuchAccount,
    RosterItem,
    SQLiteDatabase,
    SQLiteStore,
    StoreError,
)
from xmppcert.store.interfaces import (
    MAX_PEP_ITEM_ID,
    MAX_PEP_NODE_NAME,
    IPEPStore,
    NoSuchPEPNode,
    PEPItem,
    PEPNode,
    PEPNodeExists,
    PEPNodeLimitReached,
    PEPStorageFull,
    pepItemBytes,
)
from xmppcert.store.sqlite import MAX_PEP_CONFIG_BYTES, MIGRATIONS
from xmppcert.testing import InMemoryAccountStore

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"

AVATAR = "urn:xmpp:avatar:metadata"
NICK = "http://jabber.org/protocol/nick"
BOOKMARKS = "urn:xmpp:bookmarks:1"

PRESENCE = {"pubsub#access_model": "presence", "pubsub#max_items": "1"}
WHITELIST = {
    "pubsub#access_model": "whitelist",
    "pubsub#max_items": "max",
    "pubsub#roster_groups_allowed": "Friends\nFamily",
}

T0 = datetime.datetime(2026, 11, 23, 12, 31, 3, 123456, tzinfo=datetime.UTC)


def item(itemId: str, payload: str = "", seconds: int = 0, publisher: str = ALICE + "/phone") -> PEPItem:
    """
    A L{PEPItem} published C{seconds} after L{T0}; by default its payload
    names it.
    """
    return PEPItem(
        id=itemId,
        payload=payload or f"<nick xmlns='{NICK}'>{itemId}</nick>",
        publisher=publisher,
        published=T0 + datetime.timedelta(seconds=seconds),
    )


class PEPStoreTestsMixin:
    """
    Behaviour every L{IPEPStore} shares; subclasses provide C{makeStore}.
    """

    store: Any

    def makeStore(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.makeStore()
        self.addCleanup(self.store.close)  # type: ignore[attr-defined]

    async def addAccounts(self, *jids: str) -> None:
        for jid in jids:
            await self.store.addAccount(jid, [])

    async def ids(self, account: str, node: str, **kwargs: Any) -> list[str]:
        return [i.id for i in await self.store.getPEPItems(account, node, **kwargs)]

    async def publishAll(self, account: str, node: str, *itemIds: str, **kwargs: Any) -> None:
        for seconds, itemId in enumerate(itemIds):
            await self.store.publishPEPItem(account, node, item(itemId, seconds=seconds), **kwargs)

    def test_interfaces(self) -> None:
        """
        The store provides IPEPStore.
        """
        assert verifyObject(IPEPStore, self.store)

    # --- nodes -------------------------------------------------------------------

    async def test_noNodes(self) -> None:
        """
        XEP-0163 section 4.3: an account starts without PEP nodes; an
        unknown account has none either.
        """
        await self.addAccounts(ALICE)
        assert await self.store.listPEPNodes(ALICE) == []
        assert await self.store.listPEPNodes(BOB) == []
        assert await self.store.getPEPNode(ALICE, AVATAR) is None
        assert await self.store.getPEPNode(BOB, AVATAR) is None

    async def test_createListGet(self) -> None:
        """
        XEP-0060 section 8.1: a created node is there with its configuration
        as given (multi-valued fields joined by newlines), without items;
        nodes are listed by identifier in code point order.
        """
        await self.addAccounts(ALICE)
        for node, config in ((NICK, PRESENCE), (BOOKMARKS, WHITELIST), ("Ωmega", {}), (AVATAR, PRESENCE)):
            assert await self.store.createPEPNode(ALICE, node, config) is None
        assert await self.store.listPEPNodes(ALICE) == [
            PEPNode(NICK, PRESENCE),
            PEPNode(AVATAR, PRESENCE),
            PEPNode(BOOKMARKS, WHITELIST),
            PEPNode("Ωmega", {}),
        ]
        assert await self.store.getPEPNode(ALICE, BOOKMARKS) == PEPNode(BOOKMARKS, WHITELIST)
        assert await self.store.getPEPItems(ALICE, BOOKMARKS) == []

    async def test_configIsCopied(self) -> None:
        """
        The store keeps the configuration it was given: changing the
        caller's mapping afterwards (even before the Deferred fires), or the
        one a node came back with, changes nothing stored.
        """
        await self.addAccounts(ALICE)
        config = dict(PRESENCE)
        d = self.store.createPEPNode(ALICE, NICK, config)
        config["pubsub#access_model"] = "open"
        await d
        node = await self.store.getPEPNode(ALICE, NICK)
        assert node.config == PRESENCE
        node.config["pubsub#access_model"] = "open"
        (listed,) = await self.store.listPEPNodes(ALICE)
        listed.config["pubsub#max_items"] = "7"
        assert await self.store.getPEPNode(ALICE, NICK) == PEPNode(NICK, PRESENCE)

    async def test_createExisting(self) -> None:
        """
        XEP-0060 section 8.1.3: a node that exists cannot be created again
        (PEPNodeExists); its configuration and items stay.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a")
        with pytest.raises(PEPNodeExists):
            await self.store.createPEPNode(ALICE, NICK, WHITELIST)
        assert await self.store.getPEPNode(ALICE, NICK) == PEPNode(NICK, PRESENCE)
        assert await self.ids(ALICE, NICK) == ["a"]
        assert issubclass(PEPNodeExists, StoreError)

    async def test_createUnknownAccount(self) -> None:
        """
        A node cannot be created for an account that does not exist
        (NoSuchAccount).
        """
        with pytest.raises(NoSuchAccount):
            await self.store.createPEPNode(BOB, NICK, PRESENCE)
        assert await self.store.listPEPNodes(BOB) == []

    async def test_createLimit(self) -> None:
        """
        An account may have maxNodes nodes, not more (PEPNodeLimitReached,
        nothing created); creating one that exists is PEPNodeExists even at
        the limit; other accounts count their own; 0 is no limit.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE, 2)
        await self.store.createPEPNode(ALICE, AVATAR, PRESENCE, 2)
        with pytest.raises(PEPNodeLimitReached):
            await self.store.createPEPNode(ALICE, BOOKMARKS, WHITELIST, 2)
        with pytest.raises(PEPNodeExists):
            await self.store.createPEPNode(ALICE, NICK, PRESENCE, 2)
        assert [n.node for n in await self.store.listPEPNodes(ALICE)] == [NICK, AVATAR]
        await self.store.createPEPNode(BOB, BOOKMARKS, WHITELIST, 1)
        await self.store.createPEPNode(ALICE, BOOKMARKS, WHITELIST, 0)
        await self.store.createPEPNode(ALICE, "x", {})
        assert len(await self.store.listPEPNodes(ALICE)) == 4
        assert issubclass(PEPNodeLimitReached, StoreError)

    async def test_configure(self) -> None:
        """
        XEP-0060 section 8.2: a new configuration replaces the old one whole
        (fields it lacks are gone); with maxItems only that many newest
        items are kept, with 0 all of them.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, BOOKMARKS, WHITELIST)
        await self.publishAll(ALICE, BOOKMARKS, "a", "b", "c", "d")
        await self.store.configurePEPNode(ALICE, BOOKMARKS, {"pubsub#max_items": "10"})
        assert await self.store.getPEPNode(ALICE, BOOKMARKS) == PEPNode(
            BOOKMARKS, {"pubsub#max_items": "10"}
        )
        assert await self.ids(ALICE, BOOKMARKS) == ["d", "c", "b", "a"]
        await self.store.configurePEPNode(ALICE, BOOKMARKS, PRESENCE, 2)
        assert await self.store.getPEPNode(ALICE, BOOKMARKS) == PEPNode(BOOKMARKS, PRESENCE)
        assert await self.ids(ALICE, BOOKMARKS) == ["d", "c"]
        await self.store.configurePEPNode(ALICE, BOOKMARKS, PRESENCE, 5)
        assert await self.ids(ALICE, BOOKMARKS) == ["d", "c"]

    async def test_configureMissingNode(self) -> None:
        """
        XEP-0060 section 8.2.3.4: configuring a node that does not exist
        fails with NoSuchPEPNode, also for an unknown account, and creates
        nothing.
        """
        await self.addAccounts(ALICE)
        with pytest.raises(NoSuchPEPNode):
            await self.store.configurePEPNode(ALICE, NICK, PRESENCE)
        with pytest.raises(NoSuchPEPNode):
            await self.store.configurePEPNode(BOB, NICK, PRESENCE, 1)
        assert await self.store.getPEPNode(ALICE, NICK) is None
        assert issubclass(NoSuchPEPNode, StoreError)

    async def test_delete(self) -> None:
        """
        XEP-0060 section 8.4: deleting a node removes it with its items (a
        node created again under that name starts empty); deleting a node
        that does not exist answers False.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.store.createPEPNode(ALICE, AVATAR, PRESENCE)
        await self.publishAll(ALICE, NICK, "a", "b")
        assert await self.store.deletePEPNode(ALICE, NICK) is True
        assert await self.store.getPEPNode(ALICE, NICK) is None
        assert [n.node for n in await self.store.listPEPNodes(ALICE)] == [AVATAR]
        with pytest.raises(NoSuchPEPNode):
            await self.store.getPEPItems(ALICE, NICK)
        await self.store.createPEPNode(ALICE, NICK, WHITELIST)
        assert await self.store.getPEPItems(ALICE, NICK) == []
        assert await self.store.deletePEPNode(ALICE, "gone") is False
        assert await self.store.deletePEPNode(BOB, NICK) is False

    # --- publishing -----------------------------------------------------------------

    async def test_publishNewestFirst(self) -> None:
        """
        XEP-0060 sections 6.5 and 7.1: items come back newest first; an
        item published with the id of an existing one replaces it and is
        then the newest.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        assert await self.store.publishPEPItem(ALICE, NICK, item("a")) is False
        await self.publishAll(ALICE, NICK, "b", "c")
        assert await self.ids(ALICE, NICK) == ["c", "b", "a"]
        replacement = item("a", "<nick xmlns='http://jabber.org/protocol/nick'>new</nick>", 60, ALICE + "/desk")
        await self.store.publishPEPItem(ALICE, NICK, replacement)
        assert await self.store.getPEPItems(ALICE, NICK) == [
            replacement,
            item("c", seconds=1),
            item("b", seconds=0),
        ]
        # The replaced item is the newest also when its time is older.
        await self.store.publishPEPItem(ALICE, NICK, item("b", seconds=-3600))
        assert await self.ids(ALICE, NICK) == ["b", "a", "c"]

    async def test_publishEviction(self) -> None:
        """
        XEP-0060 section 7.1 with pubsub#max_items: publishing beyond
        maxItems removes the oldest items; replacing an item does not count
        as one more; 0 keeps every item.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a", "b", "c", maxItems=2)
        assert await self.ids(ALICE, NICK) == ["c", "b"]
        await self.store.publishPEPItem(ALICE, NICK, item("b", seconds=9), 2)
        assert await self.ids(ALICE, NICK) == ["b", "c"]
        await self.store.publishPEPItem(ALICE, NICK, item("d"), 1)
        assert await self.ids(ALICE, NICK) == ["d"]
        await self.publishAll(ALICE, NICK, "e", "f", "g", maxItems=0)
        assert await self.ids(ALICE, NICK) == ["g", "f", "e", "d"]

    async def test_publishMissingNode(self) -> None:
        """
        XEP-0060 section 7.1.3.3: without createConfig, publishing to a node
        that does not exist fails with NoSuchPEPNode (also for an unknown
        account) and creates nothing.
        """
        await self.addAccounts(ALICE)
        with pytest.raises(NoSuchPEPNode):
            await self.store.publishPEPItem(ALICE, NICK, item("a"))
        with pytest.raises(NoSuchPEPNode):
            await self.store.publishPEPItem(BOB, NICK, item("a"))
        assert await self.store.listPEPNodes(ALICE) == []

    async def test_autoCreate(self) -> None:
        """
        XEP-0163 section 4.3 (auto-create): publishing with createConfig to
        a missing node creates it with that configuration (and answers
        True); to an existing node, createConfig is ignored (False).
        """
        await self.addAccounts(ALICE)
        assert await self.store.publishPEPItem(ALICE, AVATAR, item("a"), 1, PRESENCE) is True
        assert await self.store.getPEPNode(ALICE, AVATAR) == PEPNode(AVATAR, PRESENCE)
        assert await self.store.getPEPItems(ALICE, AVATAR) == [item("a")]
        assert await self.store.publishPEPItem(ALICE, AVATAR, item("b"), 1, WHITELIST) is False
        assert await self.store.getPEPNode(ALICE, AVATAR) == PEPNode(AVATAR, PRESENCE)
        assert await self.ids(ALICE, AVATAR) == ["b"]

    async def test_autoCreateLimit(self) -> None:
        """
        Auto-create counts against maxNodes: at the limit, publishing to a
        missing node fails with PEPNodeLimitReached and stores neither node
        nor item, while publishing to an existing node still works.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        with pytest.raises(PEPNodeLimitReached):
            await self.store.publishPEPItem(ALICE, AVATAR, item("a"), 0, PRESENCE, 1)
        assert await self.store.getPEPNode(ALICE, AVATAR) is None
        assert await self.store.publishPEPItem(ALICE, NICK, item("a"), 0, PRESENCE, 1) is False
        assert await self.store.publishPEPItem(ALICE, AVATAR, item("a"), 0, PRESENCE, 2) is True
        assert [n.node for n in await self.store.listPEPNodes(ALICE)] == [NICK, AVATAR]

    async def test_autoCreateUnknownAccount(self) -> None:
        """
        Auto-creating a node for an account that does not exist fails with
        NoSuchAccount and stores nothing.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.publishPEPItem(BOB, NICK, item("a"), 0, PRESENCE)
        assert await self.store.listPEPNodes(BOB) == []
        await self.addAccounts(BOB)
        assert await self.store.listPEPNodes(BOB) == []

    # --- the byte limit of an account --------------------------------------------------

    async def test_byteLimit(self) -> None:
        """
        maxBytes bounds the bytes (id, payload and publisher in UTF-8) of
        all an account's items together, across its nodes: a publish that
        would go over is refused with PEPStorageFull and changes nothing,
        not even the node it was to auto-create; other accounts have their
        own total.
        """
        await self.addAccounts(ALICE, BOB)
        a, b = item("a", "<x xmlns='urn:x'>" + "é" * 100 + "</x>"), item("b", seconds=1)
        assert pepItemBytes(a) == 1 + len("<x xmlns='urn:x'></x>") + 200 + len(ALICE + "/phone")
        limit = pepItemBytes(a) + pepItemBytes(b)
        await self.store.publishPEPItem(ALICE, NICK, a, 0, PRESENCE, 0, limit)
        await self.store.publishPEPItem(ALICE, AVATAR, b, 0, PRESENCE, 0, limit)
        with pytest.raises(PEPStorageFull):
            await self.store.publishPEPItem(ALICE, NICK, item("c", seconds=2), 0, None, 0, limit)
        with pytest.raises(PEPStorageFull):
            await self.store.publishPEPItem(ALICE, BOOKMARKS, item("c", seconds=2), 0, WHITELIST, 0, limit)
        assert await self.store.getPEPNode(ALICE, BOOKMARKS) is None
        assert await self.store.getPEPItems(ALICE, NICK) == [a]
        assert await self.store.getPEPItems(ALICE, AVATAR) == [b]
        await self.store.publishPEPItem(BOB, NICK, a, 0, PRESENCE, 0, limit)
        await self.store.publishPEPItem(BOB, NICK, b, 0, None, 0, limit)
        # Without a limit (0), anything goes.
        await self.store.publishPEPItem(ALICE, NICK, item("c", seconds=2))
        assert await self.ids(ALICE, NICK) == ["c", "a"]

    async def test_byteLimitCountsWhatGoes(self) -> None:
        """
        The total checked against maxBytes is the one after the publish:
        the item replaced (same id) and the items trimmed to maxItems no
        longer count, so a full account may still replace its items.
        """
        await self.addAccounts(ALICE)
        limit = 2 * pepItemBytes(item("a"))
        await self.publishAll(ALICE, NICK, "a", "b", maxItems=0, createConfig=PRESENCE, maxBytes=limit)
        # Replacing "a" by an item of the same size.
        await self.store.publishPEPItem(ALICE, NICK, item("a", seconds=5), 0, None, 0, limit)
        # "c" pushes out the oldest with maxItems 2.
        await self.store.publishPEPItem(ALICE, NICK, item("c", seconds=6), 2, None, 0, limit)
        assert await self.ids(ALICE, NICK) == ["c", "a"]
        with pytest.raises(PEPStorageFull):
            await self.store.publishPEPItem(ALICE, NICK, item("d", seconds=7), 3, None, 0, limit)
        assert await self.ids(ALICE, NICK) == ["c", "a"]

    async def test_byteLimitLowered(self) -> None:
        """
        An account over a limit lowered since may still publish what does
        not make its total grow (a smaller replacement), but nothing that
        does.
        """
        await self.addAccounts(ALICE)
        big = item("a", "<x xmlns='urn:x'>" + "x" * 500 + "</x>")
        await self.store.publishPEPItem(ALICE, NICK, big, 0, PRESENCE)
        await self.store.publishPEPItem(ALICE, AVATAR, big, 0, PRESENCE)
        limit = pepItemBytes(big)
        smaller = item("a", "<x xmlns='urn:x'>smaller</x>")
        # Still over the limit afterwards, but less than before: allowed.
        await self.store.publishPEPItem(ALICE, NICK, smaller, 0, None, 0, limit)
        assert await self.store.getPEPItems(ALICE, NICK) == [smaller]
        with pytest.raises(PEPStorageFull):
            await self.store.publishPEPItem(ALICE, NICK, item("b"), 0, None, 0, limit)
        with pytest.raises(PEPStorageFull):
            await self.store.publishPEPItem(ALICE, NICK, big, 0, None, 0, limit)
        assert await self.store.getPEPItems(ALICE, NICK) == [smaller]

    # --- retrieving, retracting, purging ---------------------------------------------

    async def test_getItemsMax(self) -> None:
        """
        XEP-0060 section 6.5.7: max_items asks for the newest that many
        items, newest first; 0 for all.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a", "b", "c")
        assert await self.ids(ALICE, NICK, maxItems=1) == ["c"]
        assert await self.ids(ALICE, NICK, maxItems=2) == ["c", "b"]
        assert await self.ids(ALICE, NICK, maxItems=5) == ["c", "b", "a"]
        assert await self.ids(ALICE, NICK, maxItems=0) == ["c", "b", "a"]

    async def test_getItemsByIds(self) -> None:
        """
        XEP-0060 section 6.5.8: items asked for by id come back (those that
        exist, each once) newest first whatever the order asked; maxItems
        applies to them; no ids asked is no items.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a", "b", "c", "d")
        assert await self.ids(ALICE, NICK, itemIds=["a", "c", "missing", "a"]) == ["c", "a"]
        assert await self.store.getPEPItems(ALICE, NICK, ["b"]) == [item("b", seconds=1)]
        assert await self.ids(ALICE, NICK, itemIds=("a", "b", "d"), maxItems=2) == ["d", "b"]
        assert await self.ids(ALICE, NICK, itemIds=[]) == []
        assert await self.ids(ALICE, NICK, itemIds=["missing"]) == []

    async def test_getItemsMissingNode(self) -> None:
        """
        XEP-0060 section 6.5.9.11: items of a node that does not exist:
        NoSuchPEPNode, also for an unknown account.
        """
        await self.addAccounts(ALICE)
        with pytest.raises(NoSuchPEPNode):
            await self.store.getPEPItems(ALICE, NICK)
        with pytest.raises(NoSuchPEPNode):
            await self.store.getPEPItems(BOB, NICK, ["a"], 1)

    async def test_retract(self) -> None:
        """
        XEP-0060 section 7.2: retracting removes one item (True); an item
        the node does not have answers False; after the newest is
        retracted, the next publish is still the newest.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a", "b", "c")
        assert await self.store.retractPEPItem(ALICE, NICK, "c") is True
        assert await self.ids(ALICE, NICK) == ["b", "a"]
        assert await self.store.retractPEPItem(ALICE, NICK, "c") is False
        assert await self.store.retractPEPItem(ALICE, NICK, "missing") is False
        await self.publishAll(ALICE, NICK, "d")
        assert await self.ids(ALICE, NICK) == ["d", "b", "a"]

    async def test_retractMissingNode(self) -> None:
        """
        XEP-0060 section 7.2.3.3: retracting from a node that does not exist
        fails with NoSuchPEPNode.
        """
        await self.addAccounts(ALICE)
        with pytest.raises(NoSuchPEPNode):
            await self.store.retractPEPItem(ALICE, NICK, "a")
        with pytest.raises(NoSuchPEPNode):
            await self.store.retractPEPItem(BOB, NICK, "a")

    async def test_purge(self) -> None:
        """
        XEP-0060 section 8.5: purging removes every item and keeps the node
        with its configuration; a node that does not exist: NoSuchPEPNode.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a", "b")
        assert await self.store.purgePEPNode(ALICE, NICK) is None
        assert await self.store.getPEPItems(ALICE, NICK) == []
        assert await self.store.getPEPNode(ALICE, NICK) == PEPNode(NICK, PRESENCE)
        await self.store.purgePEPNode(ALICE, NICK)
        await self.publishAll(ALICE, NICK, "c")
        assert await self.ids(ALICE, NICK) == ["c"]
        with pytest.raises(NoSuchPEPNode):
            await self.store.purgePEPNode(ALICE, AVATAR)
        with pytest.raises(NoSuchPEPNode):
            await self.store.purgePEPNode(BOB, NICK)

    # --- what is stored -----------------------------------------------------------------

    async def test_roundTrip(self) -> None:
        """
        Items come back exactly as published: Unicode in ids, payloads and
        publishers (astral characters included), a payload of several
        megabytes, an empty payload, and the publication time to the
        microsecond, also far from now.
        """
        await self.addAccounts(ALICE)
        node = "urn:example:ünïcode:😀"
        await self.store.createPEPNode(ALICE, node, {"pubsub#title": "Ξ 😀 \u202eabc"})
        unicodePayload = "<p xmlns='urn:example'>Ελληνικά 中文 😀 e\u0301 \u202eRTL &amp; &lt;x&gt;</p>"
        large = "<data xmlns='urn:xmpp:avatar:data'>" + "ÄöüΩ😀x" * 300_000 + "</data>"
        assert len(large.encode("utf-8")) > 3 * 1024 * 1024
        items = [
            PEPItem("ïd-😀", unicodePayload, "ålice@example.com/ph😀ne", T0),
            PEPItem("large", large, ALICE + "/desk", T0 + datetime.timedelta(microseconds=1)),
            PEPItem("empty", "", ALICE + "/desk", datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC)),
            PEPItem("old", "<x/>", ALICE, datetime.datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=datetime.UTC)),
        ]
        for published in items:
            await self.store.publishPEPItem(ALICE, node, published)
        assert await self.store.getPEPItems(ALICE, node) == items[::-1]
        assert await self.store.getPEPItems(ALICE, node, ["large"]) == [items[1]]
        assert await self.store.getPEPNode(ALICE, node) == PEPNode(node, {"pubsub#title": "Ξ 😀 \u202eabc"})

    async def test_publishedInUTC(self) -> None:
        """
        PEPItem.published: a time given in another zone comes back as the
        same instant, in UTC.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        plusTwo = datetime.timezone(datetime.timedelta(hours=2))
        published = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=plusTwo)
        await self.store.publishPEPItem(ALICE, NICK, PEPItem("a", "", ALICE, published))
        (stored,) = await self.store.getPEPItems(ALICE, NICK)
        assert stored.published == published
        assert stored.published.utcoffset() == datetime.timedelta(0)
        assert stored.published == datetime.datetime(2026, 1, 2, 1, 4, 5, 678901, tzinfo=datetime.UTC)

    async def test_limitsOfNames(self) -> None:
        """
        MAX_PEP_NODE_NAME and MAX_PEP_ITEM_ID: a node identifier and an item
        id of exactly that many characters (multi-byte ones too) are kept.
        """
        await self.addAccounts(ALICE)
        node = "ñ" * MAX_PEP_NODE_NAME
        itemId = "😀" * MAX_PEP_ITEM_ID
        await self.store.createPEPNode(ALICE, node, {})
        await self.store.publishPEPItem(ALICE, node, item(itemId))
        assert await self.ids(ALICE, node, itemIds=[itemId]) == [itemId]

    async def test_badInput(self) -> None:
        """
        What no configuration could allow is refused with ValueError and
        changes nothing: empty, too long or non-string node identifiers and
        item ids, naive publication times, payloads that are not text (or
        not valid Unicode) or larger than MAX_STORED_XML_BYTES, publishers
        that are not JIDs, configurations that are not string to string or
        larger than MAX_PEP_CONFIG_BYTES, and a single string for itemIds.
        """
        await self.addAccounts(ALICE)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.publishAll(ALICE, NICK, "a")
        for node in ("", "x" * (MAX_PEP_NODE_NAME + 1), None, b"node", "bad\ud800"):
            with pytest.raises(ValueError):
                await self.store.createPEPNode(ALICE, node, {})
            with pytest.raises(ValueError):
                await self.store.publishPEPItem(ALICE, node, item("b"), 0, {})
        naive = datetime.datetime(2026, 1, 1)
        for bad in (
            item(""),
            item("x" * (MAX_PEP_ITEM_ID + 1)),
            PEPItem("b", "<x/>", ALICE, naive),
            PEPItem("b", "<x/>", ALICE, 1700000000.0),  # type: ignore[arg-type]
            PEPItem("b", b"<x/>", ALICE, T0),  # type: ignore[arg-type]
            PEPItem("b", "<x>\udc80</x>", ALICE, T0),
            PEPItem("b", "x" * (MAX_STORED_XML_BYTES + 1), ALICE, T0),
            PEPItem("b", "<x/>", "", T0),
            ("b", "<x/>", ALICE, T0),
        ):
            with pytest.raises(ValueError):
                await self.store.publishPEPItem(ALICE, NICK, bad)
            with pytest.raises(ValueError):
                await self.store.publishPEPItem(ALICE, AVATAR, bad, 0, PRESENCE)
        for config in (
            {"pubsub#max_items": 1},
            {"": "x"},
            {1: "x"},
            {"pubsub#title": None},
            [("pubsub#max_items", "1")],
            {"pubsub#title": "x" * MAX_PEP_CONFIG_BYTES},
        ):
            with pytest.raises(ValueError):
                await self.store.createPEPNode(ALICE, AVATAR, config)
            with pytest.raises(ValueError):
                await self.store.configurePEPNode(ALICE, NICK, config)
            with pytest.raises(ValueError):
                await self.store.publishPEPItem(ALICE, AVATAR, item("b"), 0, config)
        for itemIds in ("a", ["a", ""], ["a", None]):
            with pytest.raises(ValueError):
                await self.store.getPEPItems(ALICE, NICK, itemIds)
        assert await self.store.listPEPNodes(ALICE) == [PEPNode(NICK, PRESENCE)]
        assert await self.store.getPEPItems(ALICE, NICK) == [item("a")]

    # --- accounts ------------------------------------------------------------------------

    async def test_accountsSeparate(self) -> None:
        """
        XEP-0163: every account has its own PEP service: a node of the same
        name in another account has its own configuration and items, and
        publishing, purging and deleting in one leaves the other alone.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.createPEPNode(ALICE, NICK, PRESENCE)
        await self.store.createPEPNode(BOB, NICK, WHITELIST)
        await self.publishAll(ALICE, NICK, "a", "b")
        await self.publishAll(BOB, NICK, "a", "x")
        await self.store.publishPEPItem(ALICE, NICK, item("x", "<changed/>"), 1)
        assert await self.ids(BOB, NICK) == ["x", "a"]
        await self.store.purgePEPNode(ALICE, NICK)
        assert await self.ids(BOB, NICK) == ["x", "a"]
        await self.store.deletePEPNode(ALICE, NICK)
        assert await self.store.getPEPNode(BOB, NICK) == PEPNode(NICK, WHITELIST)
        assert await self.store.getPEPItems(BOB, NICK, ["x"]) == [item("x", seconds=1)]

    async def test_removeAccount(self) -> None:
        """
        An account's PEP nodes and items go with it (a new account of the
        same JID starts without them); another account's nodes of the same
        names keep their configuration and items.
        """
        await self.addAccounts(ALICE, BOB)
        for account in (ALICE, BOB):
            await self.store.createPEPNode(account, NICK, PRESENCE)
            await self.store.publishPEPItem(account, AVATAR, item("a"), 0, WHITELIST)
            await self.publishAll(account, NICK, "n1", "n2")
        await self.store.removeAccount(ALICE)
        assert await self.store.listPEPNodes(ALICE) == []
        with pytest.raises(NoSuchPEPNode):
            await self.store.getPEPItems(ALICE, NICK)
        await self.addAccounts(ALICE)
        assert await self.store.listPEPNodes(ALICE) == []
        await self.store.createPEPNode(ALICE, NICK, {})
        assert await self.store.getPEPItems(ALICE, NICK) == []
        assert await self.store.listPEPNodes(BOB) == [PEPNode(NICK, PRESENCE), PEPNode(AVATAR, WHITELIST)]
        assert await self.ids(BOB, NICK) == ["n2", "n1"]
        assert await self.store.getPEPItems(BOB, AVATAR) == [item("a")]


class InMemoryPEPStoreTests(PEPStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the in-memory fake.
    """

    def makeStore(self) -> InMemoryAccountStore:
        return InMemoryAccountStore()


class SQLitePEPStoreTests(PEPStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the SQLite store on a real file.
    """

    def makeStore(self) -> SQLiteStore:
        return SQLiteStore(temporaryDatabase(self))


# --- SQLite only: schema, indexes, transactions, migration ------------------------------


@pytest.fixture
def dbPath(tmp_path: Path) -> Path:
    return tmp_path / "data" / "accounts.sqlite"


@pytest.fixture
def database(dbPath: Path) -> Any:
    db = SQLiteDatabase.open(dbPath)
    yield db
    db.close()


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> str:
    return " | ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_schemaVersion7(database: SQLiteDatabase) -> None:
    """
    A new database is at schema version 7, with the pep_nodes and
    pep_items tables.
    """
    assert SCHEMA_VERSION == len(MIGRATIONS) == 7
    assert database.schemaVersion() == 7
    tables = {
        name for (name,) in database._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert {"pep_nodes", "pep_items"} <= tables


def test_queriesUseIndexes(database: SQLiteDatabase) -> None:
    """
    The newest N items of a node, the next sequence number and the
    trimming walk the index on (account, node, seq), and one item is found
    by its primary key: none scans the table or sorts, so their cost does
    not grow with the store.
    """
    conn = database._conn
    key = (ALICE, NICK)
    newest = _plan(
        conn,
        "SELECT seq, item_id, payload, publisher, published FROM pep_items"
        " WHERE account = ? AND node = ? ORDER BY seq DESC LIMIT ?",
        key + (5,),
    )
    assert "pep_items_seq" in newest and "TEMP B-TREE" not in newest, newest
    nextSeq = _plan(conn, "SELECT max(seq) FROM pep_items WHERE account = ? AND node = ?", key)
    assert "pep_items_seq" in nextSeq and "SCAN" not in nextSeq, nextSeq
    byId = _plan(
        conn,
        "SELECT seq, payload FROM pep_items WHERE account = ? AND node = ? AND item_id = ?",
        key + ("a",),
    )
    assert "sqlite_autoindex_pep_items_1" in byId and "SCAN" not in byId, byId
    trim = _plan(
        conn,
        "DELETE FROM pep_items WHERE account = ? AND node = ? AND seq < ("
        "SELECT seq FROM pep_items WHERE account = ? AND node = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        key + key + (1,),
    )
    assert "SCAN" not in trim and "TEMP B-TREE" not in trim, trim
    nodes = _plan(conn, "SELECT node, config_json FROM pep_nodes WHERE account = ? ORDER BY node", (ALICE,))
    assert "SCAN" not in nodes and "TEMP B-TREE" not in nodes, nodes
    total = _plan(conn, "SELECT sum(length(payload)) FROM pep_items WHERE account = ?", (ALICE,))
    assert "pep_items_seq" in total and "SCAN" not in total, total


def test_byteLimitAtomic(database: SQLiteDatabase) -> None:
    """
    The byte limit is checked in the publish's transaction: a refused
    publish leaves the item it was to replace and the items it was to trim.
    """
    database.addAccount(ALICE, [])
    database.publishPEPItem(ALICE, NICK, item("a"), 0, PRESENCE)
    database.publishPEPItem(ALICE, NICK, item("b", seconds=1), 0, PRESENCE)
    limit = 2 * pepItemBytes(item("a"))
    with pytest.raises(PEPStorageFull):
        database.publishPEPItem(ALICE, NICK, item("a", "<x xmlns='urn:x'>" + "y" * 200 + "</x>", 3), 1, None, 0, limit)
    assert database.getPEPItems(ALICE, NICK) == [item("b", seconds=1), item("a")]


def test_pepSchema(database: SQLiteDatabase) -> None:
    """
    The schema itself guards the PEP tables: a node needs an existing
    account and is unique per account, an item needs an existing node and
    its id is unique per node, and two items of a node cannot share a
    sequence number.
    """
    database.addAccount(ALICE, [])
    database.createPEPNode(ALICE, NICK, PRESENCE)
    database.publishPEPItem(ALICE, NICK, item("a"))
    conn = database._conn
    insertItem = (
        "INSERT INTO pep_items (account, node, item_id, seq, payload, publisher, published)"
        " VALUES (?, ?, ?, ?, '', ?, 0)"
    )
    for statement, values in [
        ("INSERT INTO pep_nodes VALUES (?, ?, '{}')", (BOB, NICK)),
        ("INSERT INTO pep_nodes VALUES (?, ?, '{}')", (ALICE, NICK)),
        (insertItem, (ALICE, AVATAR, "b", 1, ALICE)),
        (insertItem, (ALICE, NICK, "a", 7, ALICE)),
        (insertItem, (ALICE, NICK, "b", 1, ALICE)),
    ]:
        with pytest.raises(sqlite3.IntegrityError):
            with conn:
                conn.execute(statement, values)


def test_cascadeOnDelete(dbPath: Path) -> None:
    """
    Items reference their node and nodes their account with ON DELETE
    CASCADE: a node or account row deleted by any connection (with foreign
    keys on) takes its items along.
    """
    database = SQLiteDatabase.open(dbPath)
    try:
        database.addAccount(ALICE, [])
        database.addAccount(BOB, [])
        for account in (ALICE, BOB):
            database.publishPEPItem(account, NICK, item("a"), 0, PRESENCE)
            database.publishPEPItem(account, AVATAR, item("b"), 0, PRESENCE)
    finally:
        database.close()
    conn = sqlite3.connect(dbPath)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            conn.execute("DELETE FROM pep_nodes WHERE account = ? AND node = ?", (BOB, NICK))
        assert conn.execute("SELECT account, node FROM pep_items WHERE account = ?", (BOB,)).fetchall() == [
            (BOB, AVATAR)
        ]
        with conn:
            conn.execute("DELETE FROM accounts WHERE jid = ?", (ALICE,))
        assert conn.execute("SELECT count(*) FROM pep_nodes WHERE account = ?", (ALICE,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pep_items WHERE account = ?", (ALICE,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pep_items").fetchone() == (1,)
    finally:
        conn.close()


def test_publishAtomic(database: SQLiteDatabase) -> None:
    """
    A publish is one transaction: when storing the item fails, a node it
    was to auto-create is not created, and an item it was to replace and
    items it was to evict are all still there.
    """
    database.addAccount(ALICE, [])
    database.createPEPNode(ALICE, NICK, PRESENCE)
    database.publishPEPItem(ALICE, NICK, item("a"))
    database.publishPEPItem(ALICE, NICK, item("b", seconds=1))
    with database._conn:
        database._conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON pep_items BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        database.publishPEPItem(ALICE, AVATAR, item("x"), 1, WHITELIST)
    assert database.getPEPNode(ALICE, AVATAR) is None
    with database._conn:
        database._conn.execute("DROP TRIGGER refuse")
        database._conn.execute(
            "CREATE TRIGGER refuse AFTER DELETE ON pep_items BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        database.publishPEPItem(ALICE, NICK, item("a", "<new/>", 5), 1)
    assert database.getPEPItems(ALICE, NICK) == [item("b", seconds=1), item("a")]


def test_configureAtomic(database: SQLiteDatabase) -> None:
    """
    Configuring is one transaction: when trimming the items fails, the old
    configuration stays too.
    """
    database.addAccount(ALICE, [])
    database.createPEPNode(ALICE, NICK, PRESENCE)
    database.publishPEPItem(ALICE, NICK, item("a"))
    database.publishPEPItem(ALICE, NICK, item("b", seconds=1))
    with database._conn:
        database._conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON pep_items BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        database.configurePEPNode(ALICE, NICK, WHITELIST, 1)
    assert database.getPEPNode(ALICE, NICK) == PEPNode(NICK, PRESENCE)
    assert [i.id for i in database.getPEPItems(ALICE, NICK)] == ["b", "a"]


def test_keptAcrossReopening(dbPath: Path) -> None:
    """
    Nodes, configurations and the order of items are in the file: a
    database opened again gives them back the same.
    """
    database = SQLiteDatabase.open(dbPath)
    try:
        database.addAccount(ALICE, [])
        database.createPEPNode(ALICE, BOOKMARKS, WHITELIST)
        for seconds, itemId in enumerate(["a", "b", "c"]):
            database.publishPEPItem(ALICE, BOOKMARKS, item(itemId, seconds=seconds))
        database.publishPEPItem(ALICE, BOOKMARKS, item("a", seconds=9))
        before = database.getPEPItems(ALICE, BOOKMARKS)
    finally:
        database.close()
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.listPEPNodes(ALICE) == [PEPNode(BOOKMARKS, WHITELIST)]
        assert database.getPEPItems(ALICE, BOOKMARKS) == before
        assert [i.id for i in before] == ["a", "c", "b"]
    finally:
        database.close()


def _makeVersion6(path: Path) -> None:
    """
    A database as schema version 6 left it, built by the first six
    migrations, with two accounts, a roster item, a vCard and a private XML
    fragment.
    """
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for migrate in MIGRATIONS[:6]:
        migrate(conn)
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', 6)")
        conn.execute("INSERT INTO accounts (jid, created_at, locked) VALUES (?, 17.0, 0)", (ALICE,))
        conn.execute("INSERT INTO accounts (jid, created_at, locked) VALUES (?, 18.0, 0)", (BOB,))
        conn.execute(
            "INSERT INTO roster_items VALUES (?, ?, NULL, '[]', 'both', 0, 0, 0, 1)", (ALICE, BOB)
        )
        conn.execute("INSERT INTO roster_versions VALUES (?, 1)", (ALICE,))
        conn.execute("INSERT INTO vcards VALUES (?, ?)", (ALICE, "<vCard xmlns='vcard-temp'/>"))
        conn.execute("INSERT INTO private_xml VALUES (?, 'a:b', '<x xmlns=''a:b''/>', 16)", (BOB,))
    conn.close()


def test_migrateFromVersion6(dbPath: Path) -> None:
    """
    Opening a version 6 database migrates it in place to version 7: the
    accounts, rosters, vCards and private XML are kept, and the PEP tables
    work, deletion with the account included; opening it again migrates
    nothing more.
    """
    _makeVersion6(dbPath)
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION == 7
        assert database.listAccounts() == [ALICE, BOB]
        assert database.accountCreatedAt(BOB) == 18.0
        assert database.getRoster(ALICE) == (1, [RosterItem(BOB, subscription="both")])
        assert database.getVCard(ALICE) == "<vCard xmlns='vcard-temp'/>"
        assert database.getPrivate(BOB, "a:b") == "<x xmlns='a:b'/>"
        assert database.listPEPNodes(ALICE) == []
        assert database.publishPEPItem(ALICE, NICK, item("a"), 1, PRESENCE) is True
        database.publishPEPItem(BOB, NICK, item("b"), 1, PRESENCE)
        assert database.getPEPItems(ALICE, NICK) == [item("a")]
        database.removeAccount(ALICE)
        assert database._conn.execute(
            "SELECT (SELECT count(*) FROM pep_nodes), (SELECT count(*) FROM pep_items)"
        ).fetchone() == (1, 1)
        assert database.getVCard(ALICE) is None
    finally:
        database.close()
    SQLiteDatabase.open(dbPath).close()
    conn = sqlite3.connect(dbPath)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(7,)]
        assert conn.execute("SELECT account, node, item_id FROM pep_items").fetchall() == [(BOB, NICK, "b")]
    finally:
        conn.close()
