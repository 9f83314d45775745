# -*- test-case-name: tests.test_store_vcard -*-
"""
Tests for the vCard (XEP-0054) and private XML storage (XEP-0049) part of
L{xmppcert.store}: the same behaviour for
L{xmppcert.testing.InMemoryAccountStore} and
L{xmppcert.store.sqlite.SQLiteStore}; and what only SQLite does (schema
version 6 and the migration to it).
"""

from __future__ import annotations

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
    IPrivateStore,
    IVCardStore,
    NoSuchAccount,
    PrivateStorageFull,
    RosterItem,
    SQLiteDatabase,
    SQLiteStore,
    StoreError,
)
from xmppcert.store.sqlite import MIGRATIONS
from xmppcert.testing import InMemoryAccountStore

ALICE = "alice@example.com"
BOB = "bob@example.com"

VCARD = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"
OTHER_VCARD = "<vCard xmlns='vcard-temp'><FN>Älice</FN></vCard>"
PREFS = "<prefs xmlns='exodus:prefs'><nick>Hamlet</nick></prefs>"
BOOKMARKS = "<storage xmlns='storage:bookmarks'/>"


class VCardStoreTestsMixin:
    """
    Behaviour every L{IVCardStore} and L{IPrivateStore} shares; subclasses
    provide C{makeStore}.
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
        The store provides IVCardStore and IPrivateStore.
        """
        assert verifyObject(IVCardStore, self.store)
        assert verifyObject(IPrivateStore, self.store)

    # --- vCards ----------------------------------------------------------------

    async def test_noVCard(self) -> None:
        """
        An account without a vCard, or an unknown account, has none.
        """
        await self.addAccounts(ALICE)
        assert await self.store.getVCard(ALICE) is None
        assert await self.store.getVCard(BOB) is None

    async def test_setAndReplaceVCard(self) -> None:
        """
        A vCard set is given back as it was given; a second one replaces it
        (XEP-0054 section 3.2: the whole vCard is sent each time); each
        account has its own.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.setVCard(ALICE, VCARD)
        assert await self.store.getVCard(ALICE) == VCARD
        await self.store.setVCard(ALICE, OTHER_VCARD)
        assert await self.store.getVCard(ALICE) == OTHER_VCARD
        assert await self.store.getVCard(BOB) is None

    async def test_removeVCard(self) -> None:
        """
        Setting C{None} removes the vCard; removing none is no error, also
        for an unknown account.
        """
        await self.addAccounts(ALICE)
        await self.store.setVCard(ALICE, VCARD)
        await self.store.setVCard(ALICE, None)
        assert await self.store.getVCard(ALICE) is None
        await self.store.setVCard(ALICE, None)
        await self.store.setVCard(BOB, None)

    async def test_vCardOfUnknownAccount(self) -> None:
        """
        Storing a vCard for an account that does not exist fails with
        NoSuchAccount.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.setVCard(BOB, VCARD)
        assert await self.store.getVCard(BOB) is None

    async def test_badVCard(self) -> None:
        """
        A vCard that is not a string, or is larger than MAX_STORED_XML_BYTES,
        is refused with ValueError.
        """
        await self.addAccounts(ALICE)
        with pytest.raises(ValueError):
            await self.store.setVCard(ALICE, b"<vCard/>")
        with pytest.raises(ValueError):
            await self.store.setVCard(ALICE, "x" * (MAX_STORED_XML_BYTES + 1))
        assert await self.store.getVCard(ALICE) is None

    # --- private XML -------------------------------------------------------------

    async def test_noPrivate(self) -> None:
        """
        Nothing is stored under a namespace nobody set.
        """
        await self.addAccounts(ALICE)
        assert await self.store.getPrivate(ALICE, "exodus:prefs") is None
        assert await self.store.getPrivate(BOB, "exodus:prefs") is None

    async def test_setPrivateByNamespace(self) -> None:
        """
        XEP-0049 section 2.1: the namespace of the fragment is its key;
        fragments of other namespaces and of other accounts are separate,
        and a new fragment replaces the old one of its namespace.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.setPrivate(ALICE, "exodus:prefs", PREFS)
        await self.store.setPrivate(ALICE, "storage:bookmarks", BOOKMARKS)
        assert await self.store.getPrivate(ALICE, "exodus:prefs") == PREFS
        assert await self.store.getPrivate(ALICE, "storage:bookmarks") == BOOKMARKS
        assert await self.store.getPrivate(BOB, "exodus:prefs") is None
        replaced = "<prefs xmlns='exodus:prefs'/>"
        await self.store.setPrivate(ALICE, "exodus:prefs", replaced)
        assert await self.store.getPrivate(ALICE, "exodus:prefs") == replaced

    async def test_removePrivate(self) -> None:
        """
        Setting C{None} removes one namespace's fragment only.
        """
        await self.addAccounts(ALICE)
        await self.store.setPrivate(ALICE, "exodus:prefs", PREFS)
        await self.store.setPrivate(ALICE, "storage:bookmarks", BOOKMARKS)
        await self.store.setPrivate(ALICE, "exodus:prefs", None)
        assert await self.store.getPrivate(ALICE, "exodus:prefs") is None
        assert await self.store.getPrivate(ALICE, "storage:bookmarks") == BOOKMARKS
        await self.store.setPrivate(BOB, "exodus:prefs", None)

    async def test_privateLimit(self) -> None:
        """
        The per-account total (UTF-8 bytes of every fragment) may reach
        maxBytes, not exceed it: a fragment that would is refused with
        PrivateStorageFull and nothing changes. A replaced fragment's old
        size does not count.
        """
        await self.addAccounts(ALICE, BOB)
        size = len(PREFS.encode())
        await self.store.setPrivate(ALICE, "exodus:prefs", PREFS, size + 5)
        await self.store.setPrivate(ALICE, "a:b", "<x xmlns='a:b'/>"[:5], size + 5)
        with pytest.raises(PrivateStorageFull):
            await self.store.setPrivate(ALICE, "c:d", "<c/>", size + 5)
        assert await self.store.getPrivate(ALICE, "c:d") is None
        # Replacing within the limit works; growing past it does not.
        await self.store.setPrivate(ALICE, "exodus:prefs", PREFS, size + 5)
        with pytest.raises(PrivateStorageFull):
            await self.store.setPrivate(ALICE, "exodus:prefs", PREFS + " ", size + 5)
        assert await self.store.getPrivate(ALICE, "exodus:prefs") == PREFS
        # Other accounts have their own total; 0 is no limit.
        await self.store.setPrivate(BOB, "c:d", PREFS, size)
        await self.store.setPrivate(ALICE, "c:d", PREFS * 10)
        # PrivateStorageFull is a StoreError (one of STORE_FAILURES: callers
        # catch it first).
        assert issubclass(PrivateStorageFull, StoreError)

    async def test_privateLimitCountsBytes(self) -> None:
        """
        The limit counts UTF-8 bytes, not characters.
        """
        await self.addAccounts(ALICE)
        fragment = "<n xmlns='a:b'>ÄÄ</n>"
        with pytest.raises(PrivateStorageFull):
            await self.store.setPrivate(ALICE, "a:b", fragment, len(fragment))
        await self.store.setPrivate(ALICE, "a:b", fragment, len(fragment.encode()))

    async def test_privateOfUnknownAccount(self) -> None:
        """
        Storing private XML for an account that does not exist fails with
        NoSuchAccount.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.setPrivate(BOB, "exodus:prefs", PREFS)

    async def test_badPrivate(self) -> None:
        """
        An empty or non-string namespace, or a fragment that is not a string,
        is refused with ValueError.
        """
        await self.addAccounts(ALICE)
        for namespace, xml in (("", PREFS), (None, PREFS), ("a:b", b"<x/>")):
            with pytest.raises(ValueError):
                await self.store.setPrivate(ALICE, namespace, xml)

    # --- removal -------------------------------------------------------------------

    async def test_removeAccount(self) -> None:
        """
        An account's vCard and private XML go with it, and a new account of
        the same JID starts without them; other accounts keep theirs.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.setVCard(ALICE, VCARD)
        await self.store.setPrivate(ALICE, "exodus:prefs", PREFS)
        await self.store.setVCard(BOB, OTHER_VCARD)
        await self.store.setPrivate(BOB, "exodus:prefs", PREFS)
        await self.store.removeAccount(ALICE)
        await self.addAccounts(ALICE)
        assert await self.store.getVCard(ALICE) is None
        assert await self.store.getPrivate(ALICE, "exodus:prefs") is None
        assert await self.store.getVCard(BOB) == OTHER_VCARD
        assert await self.store.getPrivate(BOB, "exodus:prefs") == PREFS


class InMemoryVCardStoreTests(VCardStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the in-memory fake.
    """

    def makeStore(self) -> InMemoryAccountStore:
        return InMemoryAccountStore()


class SQLiteVCardStoreTests(VCardStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the SQLite store on a real file.
    """

    def makeStore(self) -> SQLiteStore:
        return SQLiteStore(temporaryDatabase(self))


# --- SQLite only: schema, migration --------------------------------------------------


@pytest.fixture
def dbPath(tmp_path: Path) -> Path:
    return tmp_path / "data" / "accounts.sqlite"


def test_schemaVersion6(dbPath: Path) -> None:
    """
    A new database has the vcards and private_xml tables of schema version
    6 (it is at version 7 now, with the PEP tables).
    """
    database = SQLiteDatabase.open(dbPath)
    try:
        assert SCHEMA_VERSION == len(MIGRATIONS) == 7
        assert database.schemaVersion() == 7
        tables = {
            name
            for (name,) in database._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert {"vcards", "private_xml"} <= tables
    finally:
        database.close()


def _makeVersion5(path: Path) -> None:
    """
    A database as schema version 5 left it, built by the first five
    migrations, with two accounts and an IM row (a roster item).
    """
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for migrate in MIGRATIONS[:5]:
        migrate(conn)
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', 5)")
        conn.execute("INSERT INTO accounts (jid, created_at, locked) VALUES (?, 17.0, 0)", (ALICE,))
        conn.execute("INSERT INTO accounts (jid, created_at, locked) VALUES (?, 18.0, 0)", (BOB,))
        conn.execute(
            "INSERT INTO roster_items VALUES (?, ?, NULL, '[]', 'both', 0, 0, 0, 1)", (ALICE, BOB)
        )
        conn.execute("INSERT INTO roster_versions VALUES (?, 1)", (ALICE,))
    conn.close()


def test_migrateFromVersion5(dbPath: Path) -> None:
    """
    Opening a version 5 database migrates it in place to version 6 (and on
    to the current version, 7): the accounts and the IM rows are kept, and
    the new tables work, cascade included.
    """
    _makeVersion5(dbPath)
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION == 7
        assert database.listAccounts() == [ALICE, BOB]
        assert database.getRoster(ALICE) == (1, [RosterItem(BOB, subscription="both")])
        database.setVCard(ALICE, VCARD)
        database.setPrivate(ALICE, "exodus:prefs", PREFS, 1000)
        assert database.getVCard(ALICE) == VCARD
        assert database.getPrivate(ALICE, "exodus:prefs") == PREFS
        database.removeAccount(ALICE)
        rows = database._conn.execute(
            "SELECT (SELECT count(*) FROM vcards), (SELECT count(*) FROM private_xml)"
        ).fetchone()
        assert rows == (0, 0)
    finally:
        database.close()
    # Opening it again migrates nothing more.
    SQLiteDatabase.open(dbPath).close()
    conn = sqlite3.connect(dbPath)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(7,)]
    finally:
        conn.close()


def test_cascadeOnDelete(dbPath: Path) -> None:
    """
    The rows of vcards and private_xml reference their account with ON
    DELETE CASCADE: a row deleted from accounts by any connection (with
    foreign keys on) takes them along.
    """
    database = SQLiteDatabase.open(dbPath)
    try:
        database.addAccount(ALICE, [])
        database.setVCard(ALICE, VCARD)
        database.setPrivate(ALICE, "exodus:prefs", PREFS)
    finally:
        database.close()
    conn = sqlite3.connect(dbPath)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            conn.execute("DELETE FROM accounts WHERE jid = ?", (ALICE,))
        assert conn.execute("SELECT count(*) FROM vcards").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM private_xml").fetchone() == (0,)
    finally:
        conn.close()
