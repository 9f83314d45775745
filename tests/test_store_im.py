# -*- test-case-name: tests.test_store_im -*-
"""
Tests for the instant messaging part of L{xmppcert.store}: rosters (RFC
6121), offline messages (XEP-0160) and block lists (XEP-0191), the same
behaviour for L{xmppcert.testing.InMemoryAccountStore} and
L{xmppcert.store.sqlite.SQLiteStore}; and what only SQLite does (schema
version 5, its migration, its constraints).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.test_store import (
    DER1,
    DER2,
    FP1,
    FP2,
    SHA256,
    OutsideWriteLock,
    temporaryDatabase,
)
from xmppcert.store import (
    MAX_JID_BYTES,
    SCHEMA_VERSION,
    BlockListFull,
    IBlockingStore,
    IOfflineStore,
    IRosterStore,
    NoSuchAccount,
    OfflineMessage,
    RosterFull,
    RosterItem,
    SQLiteDatabase,
    SQLiteStore,
)
from xmppcert.store.sqlite import MIGRATIONS
from xmppcert.testing import InMemoryAccountStore

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
DAVE = "dave@example.com"
REMOTE = "romeo@montague.example"

BOB_ITEM = RosterItem(BOB, name="Bob", groups=("Friends", "Work"), subscription="both")
CAROL_ITEM = RosterItem(CAROL, subscription="to", askOut=True)
#: Section 3.1.3: a pending inbound request, not an item the user sees.
REMOTE_REQUEST = RosterItem(REMOTE, pendingIn=True, inRoster=False)


class IMStoreTestsMixin:
    """
    Behaviour every L{IRosterStore}, L{IOfflineStore} and L{IBlockingStore}
    shares; subclasses provide C{makeStore}.
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

    def test_interfaces(self) -> None:
        """
        The store provides IRosterStore, IOfflineStore and IBlockingStore.
        """
        assert verifyObject(IRosterStore, self.store)
        assert verifyObject(IOfflineStore, self.store)
        assert verifyObject(IBlockingStore, self.store)

    # --- rosters -----------------------------------------------------------------

    async def test_emptyRoster(self) -> None:
        """
        RFC 6121 section 2.6: a roster nobody changed has version 0 and no
        items, also for an unknown account.
        """
        await self.addAccounts(ALICE)
        assert await self.store.getRoster(ALICE) == (0, [])
        assert await self.store.getRoster(BOB) == (0, [])
        assert await self.store.getRosterItem(ALICE, BOB) is None

    async def test_putAndGet(self) -> None:
        """
        RFC 6121 section 2.1.2: an item put is given back with every field
        (name, groups in the client's order, subscription, flags).
        """
        await self.addAccounts(ALICE)
        assert await self.store.putRosterItem(ALICE, BOB_ITEM) == 1
        assert await self.store.getRosterItem(ALICE, BOB) == BOB_ITEM
        assert await self.store.getRoster(ALICE) == (1, [BOB_ITEM])
        flags = RosterItem(
            CAROL, name="Ça", groups=("Zeta", "Ålpha"), subscription="from",
            askOut=True, pendingIn=True, approved=True,
        )
        await self.store.putRosterItem(ALICE, flags)
        assert await self.store.getRosterItem(ALICE, CAROL) == flags

    async def test_groupsCopied(self) -> None:
        """
        Groups given as a list are stored as they were at the call (the
        caller may change its list afterwards) and come back as a tuple.
        """
        await self.addAccounts(ALICE)
        groups = ["Friends"]
        d = self.store.putRosterItem(ALICE, RosterItem(BOB, groups=cast(Any, groups)))
        groups.append("Later")
        await d
        item = await self.store.getRosterItem(ALICE, BOB)
        assert item is not None and item.groups == ("Friends",)

    async def test_sortedByContact(self) -> None:
        """
        getRoster lists the items sorted by contact, whatever the order
        they were put in.
        """
        await self.addAccounts(ALICE)
        for item in (REMOTE_REQUEST, CAROL_ITEM, BOB_ITEM):
            await self.store.putRosterItem(ALICE, item)
        _, items = await self.store.getRoster(ALICE)
        assert [item.contact for item in items] == [BOB, CAROL, REMOTE]

    async def test_versionsIncrease(self) -> None:
        """
        RFC 6121 section 2.6: every put or remove that changes the roster
        increases its version by one; a put of the same item or the removal
        of a missing one changes nothing and keeps the version.
        """
        await self.addAccounts(ALICE)
        assert await self.store.putRosterItem(ALICE, BOB_ITEM) == 1
        assert await self.store.putRosterItem(ALICE, CAROL_ITEM) == 2
        assert await self.store.putRosterItem(ALICE, BOB_ITEM) == 2
        renamed = RosterItem(BOB, name="Robert", subscription="both")
        assert await self.store.putRosterItem(ALICE, renamed) == 3
        assert await self.store.removeRosterItem(ALICE, CAROL) == 4
        assert await self.store.removeRosterItem(ALICE, CAROL) == 4
        assert await self.store.getRoster(ALICE) == (4, [renamed])

    async def test_replace(self) -> None:
        """
        Putting an item for a contact already there replaces it entirely
        (RFC 6121 section 2.4: the client sends the whole item).
        """
        await self.addAccounts(ALICE)
        await self.store.putRosterItem(ALICE, BOB_ITEM)
        replacement = RosterItem(BOB, subscription="none", pendingIn=True)
        await self.store.putRosterItem(ALICE, replacement)
        assert await self.store.getRoster(ALICE) == (2, [replacement])

    async def test_remove(self) -> None:
        """
        A removed item is gone; the others stay.
        """
        await self.addAccounts(ALICE)
        await self.store.putRosterItem(ALICE, BOB_ITEM)
        await self.store.putRosterItem(ALICE, CAROL_ITEM)
        assert await self.store.removeRosterItem(ALICE, BOB) == 3
        assert await self.store.getRosterItem(ALICE, BOB) is None
        assert await self.store.getRoster(ALICE) == (3, [CAROL_ITEM])

    async def test_removeUnknown(self) -> None:
        """
        Removing from the roster of an unknown account changes nothing and
        answers version 0.
        """
        assert await self.store.removeRosterItem(BOB, ALICE) == 0

    async def test_rosterFull(self) -> None:
        """
        RFC 6121 section 2.3.3: a new item beyond C{maxItems} fails with
        RosterFull and changes nothing; items not C{inRoster} count too;
        replacing an item of a full roster is allowed.
        """
        await self.addAccounts(ALICE)
        await self.store.putRosterItem(ALICE, BOB_ITEM, maxItems=2)
        await self.store.putRosterItem(ALICE, REMOTE_REQUEST, maxItems=2)
        with pytest.raises(RosterFull):
            await self.store.putRosterItem(ALICE, CAROL_ITEM, maxItems=2)
        assert await self.store.getRosterItem(ALICE, CAROL) is None
        assert (await self.store.getRoster(ALICE))[0] == 2
        renamed = RosterItem(BOB, name="Robert")
        assert await self.store.putRosterItem(ALICE, renamed, maxItems=2) == 3
        # 0 is no limit.
        assert await self.store.putRosterItem(ALICE, CAROL_ITEM, maxItems=0) == 4

    async def test_putNoSuchAccount(self) -> None:
        """
        Putting an item into the roster of an unknown account fails with
        NoSuchAccount and stores nothing.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.putRosterItem(ALICE, BOB_ITEM)
        assert await self.store.getRoster(ALICE) == (0, [])
        assert await self.store.rosterItemsWith(BOB) == []

    async def test_notInRoster(self) -> None:
        """
        RFC 6121 section 3.1.3: an item not C{inRoster} (a pending inbound
        request) is stored, listed with the others, changes the version and
        can become a real item.
        """
        await self.addAccounts(ALICE)
        assert await self.store.putRosterItem(ALICE, REMOTE_REQUEST) == 1
        assert await self.store.getRosterItem(ALICE, REMOTE) == REMOTE_REQUEST
        assert await self.store.getRoster(ALICE) == (1, [REMOTE_REQUEST])
        accepted = RosterItem(REMOTE, subscription="from")
        assert await self.store.putRosterItem(ALICE, accepted) == 2
        assert await self.store.getRosterItem(ALICE, REMOTE) == accepted

    async def test_rostersSeparate(self) -> None:
        """
        Each account has its own roster and its own version.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.putRosterItem(ALICE, CAROL_ITEM)
        await self.store.putRosterItem(ALICE, REMOTE_REQUEST)
        bobsAlice = RosterItem(ALICE, subscription="both")
        assert await self.store.putRosterItem(BOB, bobsAlice) == 1
        assert await self.store.getRoster(BOB) == (1, [bobsAlice])
        assert await self.store.getRoster(ALICE) == (2, [CAROL_ITEM, REMOTE_REQUEST])
        assert await self.store.removeRosterItem(BOB, CAROL) == 1

    async def test_rosterItemsWith(self) -> None:
        """
        rosterItemsWith gives every account whose roster holds the contact
        (C{inRoster} or not), with its item, sorted by account; nothing for
        a contact in no roster.
        """
        await self.addAccounts(ALICE, BOB, CAROL, DAVE)
        carolsRemote = RosterItem(REMOTE, subscription="to")
        await self.store.putRosterItem(CAROL, carolsRemote)
        await self.store.putRosterItem(ALICE, REMOTE_REQUEST)
        await self.store.putRosterItem(DAVE, BOB_ITEM)
        assert await self.store.rosterItemsWith(REMOTE) == [
            (ALICE, REMOTE_REQUEST),
            (CAROL, carolsRemote),
        ]
        assert await self.store.rosterItemsWith(BOB) == [(DAVE, BOB_ITEM)]
        assert await self.store.rosterItemsWith("nobody@example.com") == []
        await self.store.removeRosterItem(ALICE, REMOTE)
        assert await self.store.rosterItemsWith(REMOTE) == [(CAROL, carolsRemote)]

    async def test_badRosterItem(self) -> None:
        """
        Absurd input is refused with ValueError and nothing is stored: a
        contact that is empty or longer than 3071 bytes (RFC 7622: three
        parts of 1023 bytes and two separators), a subscription not in
        RFC 6121 section 2.1.2.5, groups given as one string, a name that is
        not a string. A contact of exactly 3071 bytes is fine.
        """
        await self.addAccounts(ALICE)
        longest = "a" * 1023 + "@" + "b" * 1023 + "/" + "c" * 1023
        assert len(longest.encode()) == MAX_JID_BYTES == 3071
        for bad in [
            RosterItem(""),
            RosterItem(longest + "c"),
            RosterItem("é" * 1536),
            RosterItem(BOB, subscription="maybe"),
            RosterItem(BOB, groups=cast(Any, "Friends")),
            RosterItem(BOB, name=cast(Any, 17)),
            RosterItem(BOB, groups=cast(Any, ("ok", None))),
            RosterItem("\ud800@example.com"),
        ]:
            with pytest.raises(ValueError):
                await self.store.putRosterItem(ALICE, bad)
        assert await self.store.getRoster(ALICE) == (0, [])
        assert await self.store.putRosterItem(ALICE, RosterItem(longest)) == 1

    # --- offline messages ----------------------------------------------------------

    async def test_offlineStoreAndTake(self) -> None:
        """
        XEP-0160: stored messages are taken oldest first with their stamps
        and increasing ids, and are gone afterwards.
        """
        await self.addAccounts(ALICE)
        for n in range(3):
            assert await self.store.storeOfflineMessage(ALICE, f"<message n='{n}'/>", 100.0 + n) is True
        assert await self.store.countOfflineMessages(ALICE) == 3
        taken = await self.store.takeOfflineMessages(ALICE)
        assert all(isinstance(m, OfflineMessage) for m in taken)
        assert [(m.stanza, m.stamp) for m in taken] == [
            ("<message n='0'/>", 100.0),
            ("<message n='1'/>", 101.0),
            ("<message n='2'/>", 102.0),
        ]
        assert [m.id for m in taken] == sorted({m.id for m in taken})
        assert await self.store.takeOfflineMessages(ALICE) == []
        assert await self.store.countOfflineMessages(ALICE) == 0
        # Ids keep increasing after the stored ones were taken.
        await self.store.storeOfflineMessage(ALICE, "<message>é</message>", 200.5)
        [later] = await self.store.takeOfflineMessages(ALICE)
        assert later.id > taken[-1].id
        assert (later.stanza, later.stamp) == ("<message>é</message>", 200.5)

    async def test_offlineLimit(self) -> None:
        """
        An account with C{maxMessages} stored messages gets no more (False,
        nothing stored); taking them makes room again; 0 is no limit.
        """
        await self.addAccounts(ALICE)
        assert await self.store.storeOfflineMessage(ALICE, "<message n='1'/>", 1.0, maxMessages=2)
        assert await self.store.storeOfflineMessage(ALICE, "<message n='2'/>", 2.0, maxMessages=2)
        assert await self.store.storeOfflineMessage(ALICE, "<message n='3'/>", 3.0, maxMessages=2) is False
        assert await self.store.countOfflineMessages(ALICE) == 2
        await self.store.takeOfflineMessages(ALICE)
        assert await self.store.storeOfflineMessage(ALICE, "<message n='4'/>", 4.0, maxMessages=2)
        for _ in range(5):
            assert await self.store.storeOfflineMessage(ALICE, "<message/>", 5.0, maxMessages=0)
        assert await self.store.countOfflineMessages(ALICE) == 6

    async def test_offlineUnknownAccount(self) -> None:
        """
        A message for an unknown account is not stored (False); nothing is
        there to take.
        """
        assert await self.store.storeOfflineMessage(ALICE, "<message/>", 1.0) is False
        assert await self.store.countOfflineMessages(ALICE) == 0
        assert await self.store.takeOfflineMessages(ALICE) == []

    async def test_offlineSeparate(self) -> None:
        """
        Each account takes only its own messages, and the limit counts only
        its own.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.storeOfflineMessage(ALICE, "<message to='alice'/>", 1.0, maxMessages=1)
        assert await self.store.storeOfflineMessage(BOB, "<message to='bob'/>", 2.0, maxMessages=1)
        assert [m.stanza for m in await self.store.takeOfflineMessages(BOB)] == ["<message to='bob'/>"]
        assert await self.store.countOfflineMessages(ALICE) == 1

    async def test_offlineBadStanza(self) -> None:
        """
        A stanza that is not a string is refused with ValueError.
        """
        await self.addAccounts(ALICE)
        with pytest.raises(ValueError):
            await self.store.storeOfflineMessage(ALICE, cast(Any, b"<message/>"), 1.0)
        assert await self.store.countOfflineMessages(ALICE) == 0

    # --- block lists -------------------------------------------------------------

    async def test_block(self) -> None:
        """
        XEP-0191: blockJIDs answers the JIDs newly added, sorted, each once;
        JIDs already blocked stay once; getBlockList is sorted.
        """
        await self.addAccounts(ALICE)
        assert await self.store.getBlockList(ALICE) == []
        added = await self.store.blockJIDs(ALICE, [REMOTE, "example.net", REMOTE, BOB])
        assert added == sorted([REMOTE, "example.net", BOB])
        assert await self.store.blockJIDs(ALICE, [BOB, "juliet@capulet.example/balcony"]) == [
            "juliet@capulet.example/balcony"
        ]
        assert await self.store.blockJIDs(ALICE, [BOB]) == []
        assert await self.store.getBlockList(ALICE) == sorted(
            [REMOTE, "example.net", BOB, "juliet@capulet.example/balcony"]
        )

    async def test_unblock(self) -> None:
        """
        XEP-0191 section 3.4: unblockJIDs removes the given JIDs and
        answers those that were blocked, sorted; others stay.
        """
        await self.addAccounts(ALICE)
        await self.store.blockJIDs(ALICE, [BOB, CAROL, REMOTE])
        assert await self.store.unblockJIDs(ALICE, [REMOTE, DAVE, BOB]) == [BOB, REMOTE]
        assert await self.store.getBlockList(ALICE) == [CAROL]
        assert await self.store.unblockJIDs(ALICE, []) == []

    async def test_unblockAll(self) -> None:
        """
        XEP-0191 section 3.5: unblockJIDs with C{None} removes every JID and
        answers them; the other accounts' lists stay.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.blockJIDs(ALICE, [REMOTE, CAROL])
        await self.store.blockJIDs(BOB, [REMOTE])
        assert await self.store.unblockJIDs(ALICE) == [CAROL, REMOTE]
        assert await self.store.getBlockList(ALICE) == []
        assert await self.store.unblockJIDs(ALICE, None) == []
        assert await self.store.getBlockList(BOB) == [REMOTE]
        assert await self.store.unblockJIDs(DAVE) == []

    async def test_blockListFull(self) -> None:
        """
        JIDs that would not fit in C{maxItems} fail with BlockListFull and
        none is added; JIDs already blocked do not count as new; 0 is no
        limit.
        """
        await self.addAccounts(ALICE)
        await self.store.blockJIDs(ALICE, [BOB, CAROL], maxItems=3)
        with pytest.raises(BlockListFull):
            await self.store.blockJIDs(ALICE, [DAVE, REMOTE], maxItems=3)
        assert await self.store.getBlockList(ALICE) == [BOB, CAROL]
        assert await self.store.blockJIDs(ALICE, [BOB, DAVE], maxItems=3) == [DAVE]
        assert await self.store.blockJIDs(ALICE, [REMOTE], maxItems=0) == [REMOTE]

    async def test_blockNoSuchAccount(self) -> None:
        """
        Blocking for an unknown account fails with NoSuchAccount.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.blockJIDs(ALICE, [BOB])
        assert await self.store.getBlockList(ALICE) == []

    async def test_badBlockedJIDs(self) -> None:
        """
        A string instead of a list of JIDs, an empty JID or one longer than
        3071 bytes is refused with ValueError, and nothing is blocked.
        """
        await self.addAccounts(ALICE)
        for bad in [cast(Any, BOB), [BOB, ""], [BOB, "x" * 3072], [BOB, cast(Any, None)]]:
            with pytest.raises(ValueError):
                await self.store.blockJIDs(ALICE, bad)
            with pytest.raises(ValueError):
                await self.store.unblockJIDs(ALICE, bad)
        assert await self.store.getBlockList(ALICE) == []

    async def test_blockedJIDsCopied(self) -> None:
        """
        The JIDs are those of the list at the call: the caller may change
        its list afterwards.
        """
        await self.addAccounts(ALICE)
        jids = [BOB]
        d = self.store.blockJIDs(ALICE, jids)
        jids.append(CAROL)
        assert await d == [BOB]
        assert await self.store.getBlockList(ALICE) == [BOB]

    # --- account removal -----------------------------------------------------------

    async def test_removeAccountCascade(self) -> None:
        """
        IAccountStore.removeAccount and RFC 6121 section 2.5.2: deleting an
        account deletes its roster (and version), offline messages and
        block list, removes it from every other account's roster, and
        increases the version of each roster it left; other rosters and
        data stay. An account added again with that JID starts empty.
        """
        await self.addAccounts(ALICE, BOB, CAROL, DAVE)
        await self.store.putRosterItem(ALICE, BOB_ITEM)
        await self.store.putRosterItem(ALICE, CAROL_ITEM)
        await self.store.storeOfflineMessage(ALICE, "<message/>", 1.0)
        await self.store.blockJIDs(ALICE, [REMOTE])
        bobsAlice = RosterItem(ALICE, subscription="both")
        await self.store.putRosterItem(BOB, bobsAlice)
        await self.store.putRosterItem(BOB, CAROL_ITEM)
        await self.store.putRosterItem(CAROL, RosterItem(ALICE, pendingIn=True, inRoster=False))
        await self.store.putRosterItem(DAVE, CAROL_ITEM)
        await self.store.storeOfflineMessage(BOB, "<message to='bob'/>", 2.0)
        await self.store.blockJIDs(BOB, [ALICE])

        await self.store.removeAccount(ALICE)

        assert await self.store.getRoster(ALICE) == (0, [])
        assert await self.store.countOfflineMessages(ALICE) == 0
        assert await self.store.getBlockList(ALICE) == []
        assert await self.store.rosterItemsWith(ALICE) == []
        assert await self.store.rosterItemsWith(BOB) == []
        assert await self.store.getRoster(BOB) == (3, [CAROL_ITEM])
        assert await self.store.getRoster(CAROL) == (2, [])
        assert await self.store.getRoster(DAVE) == (1, [CAROL_ITEM])
        assert await self.store.rosterItemsWith(CAROL) == [(BOB, CAROL_ITEM), (DAVE, CAROL_ITEM)]
        # Not the deleted account's data: a JID it blocks, a message it got.
        assert await self.store.getBlockList(BOB) == [ALICE]
        assert await self.store.countOfflineMessages(BOB) == 1

        await self.addAccounts(ALICE)
        assert await self.store.getRoster(ALICE) == (0, [])
        assert await self.store.takeOfflineMessages(ALICE) == []
        assert await self.store.getBlockList(ALICE) == []

    async def test_removeUnknownAccountKeepsRosters(self) -> None:
        """
        Removing an unknown account fails with NoSuchAccount and leaves the
        rosters that hold that JID (a remote-looking or former contact)
        alone.
        """
        await self.addAccounts(BOB)
        await self.store.putRosterItem(BOB, RosterItem(ALICE))
        with pytest.raises(NoSuchAccount):
            await self.store.removeAccount(ALICE)
        assert await self.store.getRoster(BOB) == (1, [RosterItem(ALICE)])


class InMemoryIMStoreTests(IMStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the in-memory fake.
    """

    def makeStore(self) -> InMemoryAccountStore:
        return InMemoryAccountStore()

    def test_alreadyFired(self) -> None:
        """
        The fake answers synchronously: its Deferreds have already fired,
        failures included.
        """
        self.successResultOf(self.store.addAccount(ALICE, []))
        assert self.successResultOf(self.store.putRosterItem(ALICE, BOB_ITEM)) == 1
        assert self.successResultOf(self.store.getRoster(ALICE)) == (1, [BOB_ITEM])
        assert self.successResultOf(self.store.storeOfflineMessage(ALICE, "<message/>", 1.0))
        assert self.successResultOf(self.store.blockJIDs(ALICE, [BOB])) == [BOB]
        self.failureResultOf(self.store.putRosterItem(BOB, BOB_ITEM), NoSuchAccount)
        self.failureResultOf(self.store.blockJIDs(ALICE, [CAROL, DAVE], maxItems=2), BlockListFull)


class SQLiteIMStoreTests(IMStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the SQLite store on a real file.
    """

    def makeStore(self) -> SQLiteStore:
        return SQLiteStore(temporaryDatabase(self))

    async def test_removeAccountFromAnotherConnection(self) -> None:
        """
        An account deleted by the command line tool (another connection)
        is gone from the rosters the running server reads.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.putRosterItem(BOB, RosterItem(ALICE, subscription="both"))
        cli = SQLiteDatabase.open(self.store.path)
        try:
            cli.removeAccount(ALICE)
        finally:
            cli.close()
        assert await self.store.getRoster(BOB) == (2, [])
        assert await self.store.rosterItemsWith(ALICE) == []

    async def test_readsWhileWriteWaits(self) -> None:
        """
        The IM reads run on the reader's connection: while another process
        holds the write lock and a write of the store waits for it, they are
        answered at once.
        """
        await self.addAccounts(ALICE)
        await self.store.putRosterItem(ALICE, BOB_ITEM)
        await self.store.blockJIDs(ALICE, [REMOTE])
        await self.store.storeOfflineMessage(ALICE, "<message/>", 1.0)
        lock = OutsideWriteLock(self.store.path)
        lock.take()
        self.addCleanup(lock.release)
        write = self.store.putRosterItem(ALICE, CAROL_ITEM)

        roster = await self.store.getRoster(ALICE)
        item = await self.store.getRosterItem(ALICE, BOB)
        holders = await self.store.rosterItemsWith(BOB)
        count = await self.store.countOfflineMessages(ALICE)
        blocked = await self.store.getBlockList(ALICE)

        assert not lock.released.is_set(), "the reads waited for the outside write lock"
        assert not write.called, "the write did not wait for the outside write lock"
        assert (roster, item, holders, count, blocked) == (
            (1, [BOB_ITEM]), BOB_ITEM, [(ALICE, BOB_ITEM)], 1, [REMOTE]
        )
        lock.release()
        assert await write == 2


# --- SQLite only: schema, migration --------------------------------------------------


@pytest.fixture
def dbPath(tmp_path: Path) -> Path:
    return tmp_path / "data" / "accounts.sqlite"


@pytest.fixture
def database(dbPath: Path) -> Any:
    db = SQLiteDatabase.open(dbPath)
    yield db
    db.close()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def test_schemaVersion5(database: SQLiteDatabase) -> None:
    """
    A new database has the IM tables of schema version 5 (it is at version
    7 now, with the vCard, private XML and PEP tables).
    """
    assert SCHEMA_VERSION == 7
    assert database.schemaVersion() == 7
    tables = {
        name
        for (name,) in database._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert {"roster_items", "roster_versions", "offline_messages", "blocked_jids"} <= tables


def test_imSchema(database: SQLiteDatabase) -> None:
    """
    The schema itself guards the IM tables: a subscription must be one of
    RFC 6121's, rows need an account (foreign keys) and go with it (ON
    DELETE CASCADE), one row per (account, contact) and (account, jid);
    rosterItemsWith is served by an index on the contact.
    """
    database.addAccount(ALICE, [])
    database.putRosterItem(ALICE, BOB_ITEM)
    database.storeOfflineMessage(ALICE, "<message/>", 1.0)
    database.blockJIDs(ALICE, [REMOTE])
    conn = database._conn
    roster = (
        "INSERT INTO roster_items (account, contact, name, groups_json, subscription,"
        " ask_out, pending_in, approved, in_roster) VALUES (?, ?, NULL, '[]', ?, 0, 0, 0, 1)"
    )
    for statement, values in [
        (roster, (ALICE, CAROL, "maybe")),
        (roster, (ALICE, BOB, "none")),
        (roster, (DAVE, BOB, "none")),
        ("INSERT INTO roster_versions VALUES (?, 1)", (DAVE,)),
        ("INSERT INTO offline_messages (account, stanza, stamp) VALUES (?, '<m/>', 0)", (DAVE,)),
        ("INSERT INTO blocked_jids VALUES (?, ?)", (ALICE, REMOTE)),
        ("INSERT INTO blocked_jids VALUES (?, ?)", (DAVE, REMOTE)),
    ]:
        with pytest.raises(sqlite3.IntegrityError):
            with conn:
                conn.execute(statement, values)
    plan = " ".join(
        str(row[-1])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT account FROM roster_items WHERE contact = ?", (BOB,)
        )
    )
    assert "roster_items_contact" in plan
    with conn:
        conn.execute("DELETE FROM accounts WHERE jid = ?", (ALICE,))
    for table in ("roster_items", "roster_versions", "offline_messages", "blocked_jids"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


def test_removeAccountAtomic(database: SQLiteDatabase) -> None:
    """
    The removal from other rosters is part of the account's deletion: when
    it fails, the account and every roster are as they were.
    """
    database.addAccount(ALICE, [])
    database.addAccount(BOB, [])
    database.putRosterItem(BOB, RosterItem(ALICE))
    conn = database._conn
    # A roster version that cannot be increased makes the bump fail after
    # the deletes.
    with conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON roster_versions"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        database.removeAccount(ALICE)
    assert database.accountExists(ALICE)
    assert database.getRoster(BOB) == (1, [RosterItem(ALICE)])


def _makeVersion4(path: Path) -> None:
    """
    A database as schema version 4 left it, built by the first four
    migrations, with an account (locked, with a credential), an enabled
    and a revoked certificate, the revocation, and an audit entry.
    """
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for migrate in MIGRATIONS[:4]:
        migrate(conn)
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', 4)")
        conn.execute("INSERT INTO accounts (jid, created_at, locked) VALUES (?, 17.0, 1)", (ALICE,))
        conn.execute("INSERT INTO accounts (jid, created_at, locked) VALUES (?, 18.0, 0)", (BOB,))
        conn.execute(
            "INSERT INTO scram_credentials VALUES (?, ?, ?, ?, ?, ?)",
            (ALICE, SHA256.mechanism, SHA256.salt, SHA256.iterations, SHA256.storedKey,
             SHA256.serverKey),
        )
        for name, der, fp, state, seq in (
            ("laptop", DER1, FP1, "revoked", 2),
            ("phone", DER2, FP2, "enabled", 3),
        ):
            conn.execute(
                "INSERT INTO certificates (account, name, fingerprint, der, state, can_manage,"
                " not_after, created_at, changed_at, last_used_at, change_seq)"
                " VALUES (?, ?, ?, ?, ?, 1, 5000.0, 20.0, 30.0, NULL, ?)",
                (ALICE, name, fp, der, state, seq),
            )
        conn.execute("UPDATE meta SET value = 3 WHERE key = 'change_seq'")
        conn.execute(
            "INSERT INTO revoked_certificates VALUES (?, ?, 5000.0, 30.0)", (FP1, ALICE)
        )
        conn.execute(
            "INSERT INTO audit (at, actor, action, target, detail)"
            " VALUES (30.0, 'cli:root', 'cert.revoke', ?, ?)",
            (ALICE + "/laptop", FP1),
        )
    conn.close()


def test_migrateFromVersion4(dbPath: Path) -> None:
    """
    Opening a version 4 database migrates it in place to version 5 (and on
    to the current version, 7): the
    accounts, credentials, lock, certificates, revocation, change counter
    and audit trail are kept, and the IM tables work, cascade included.
    """
    _makeVersion4(dbPath)
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION == 7
        assert database.listAccounts() == [ALICE, BOB]
        assert database.accountCreatedAt(ALICE) == 17.0
        assert database.getScramCredential(ALICE, "SCRAM-SHA-256") == SHA256
        assert database.isAccountLocked(ALICE) and not database.isAccountLocked(BOB)
        assert [(c.name, c.state) for c in database.listCertificates(ALICE)] == [
            ("laptop", "revoked"),
            ("phone", "enabled"),
        ]
        assert database.isCertificateRevoked(FP1) and not database.isCertificateRevoked(FP2)
        assert database.changesSince(0)[0] == 3
        assert [(e.action, e.target) for e in database.auditTrail(ALICE)] == [
            ("cert.revoke", ALICE + "/laptop")
        ]

        assert database.getRoster(ALICE) == (0, [])
        assert database.putRosterItem(ALICE, BOB_ITEM) == 1
        assert database.putRosterItem(BOB, RosterItem(ALICE, subscription="both")) == 1
        assert database.storeOfflineMessage(ALICE, "<message/>", 1.0)
        assert database.blockJIDs(ALICE, [REMOTE]) == [REMOTE]
        assert database.rosterItemsWith(BOB) == [(ALICE, BOB_ITEM)]
        database.removeAccount(ALICE)
        assert database.getRoster(BOB) == (2, [])
        assert database.countOfflineMessages(ALICE) == 0
        assert database.getBlockList(ALICE) == []
        # The revocation outlives the account, as before.
        assert database.isCertificateRevoked(FP1)
    finally:
        database.close()


def test_reopenVersion5(dbPath: Path) -> None:
    """
    Opening a current (version 7) database again is a no-op: the schema and the data
    are unchanged, and nothing is migrated twice.
    """
    _makeVersion4(dbPath)
    database = SQLiteDatabase.open(dbPath)
    try:
        database.putRosterItem(BOB, RosterItem(ALICE, groups=("Family",)))
        database.storeOfflineMessage(BOB, "<message/>", 1.0)
    finally:
        database.close()
    before = _schema(dbPath)
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION == 7
        assert database.getRoster(BOB) == (1, [RosterItem(ALICE, groups=("Family",))])
        assert database.countOfflineMessages(BOB) == 1
    finally:
        database.close()
    assert _schema(dbPath) == before
