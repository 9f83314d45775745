# -*- test-case-name: tests.test_store -*-
"""
Tests for L{xmppcert.store}: the same behaviour for
L{xmppcert.testing.InMemoryAccountStore} and
L{xmppcert.store.sqlite.SQLiteStore}, and what only SQLite does.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from xmppcert.store import (
    SCHEMA_VERSION,
    AccountExists,
    IAccountStore,
    NoSuchAccount,
    SchemaVersionError,
    ScramCredential,
    SQLiteDatabase,
    SQLiteStore,
    StoreError,
)
from xmppcert.testing import InMemoryAccountStore

SHA1 = ScramCredential("SCRAM-SHA-1", b"s" * 16, 4096, b"k" * 20, b"v" * 20)
SHA256 = ScramCredential("SCRAM-SHA-256", b"t" * 16, 4096, b"K" * 32, b"V" * 32)
NEW_SHA256 = ScramCredential("SCRAM-SHA-256", b"u" * 16, 5000, b"L" * 32, b"W" * 32)


class AccountStoreTestsMixin:
    """
    Behaviour every L{IAccountStore} shares; subclasses provide C{makeStore}.
    """

    store: Any

    def makeStore(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.makeStore()
        self.addCleanup(self.store.close)  # type: ignore[attr-defined]

    def test_interface(self) -> None:
        """
        The store provides IAccountStore.
        """
        assert verifyObject(IAccountStore, self.store)

    async def test_addAccount(self) -> None:
        """
        An added account exists and has the credentials it was added with.
        """
        assert await self.store.accountExists("alice@example.com") is False
        await self.store.addAccount("alice@example.com", [SHA1, SHA256])
        assert await self.store.accountExists("alice@example.com") is True
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-1") == SHA1
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-256") == SHA256

    async def test_addDuplicate(self) -> None:
        """
        Adding an account that exists fails with AccountExists and keeps the
        first account's credentials.
        """
        await self.store.addAccount("alice@example.com", [SHA256])
        with pytest.raises(AccountExists):
            await self.store.addAccount("alice@example.com", [NEW_SHA256])
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-256") == SHA256

    async def test_accountWithoutCredentials(self) -> None:
        """
        An account may have no credentials (certificate-only login).
        """
        await self.store.addAccount("alice@example.com", [])
        assert await self.store.accountExists("alice@example.com") is True
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-1") is None

    async def test_duplicateMechanism(self) -> None:
        """
        Two credentials for one mechanism are refused with ValueError and
        nothing is stored.
        """
        with pytest.raises(ValueError):
            await self.store.addAccount("alice@example.com", [SHA256, NEW_SHA256])
        assert await self.store.accountExists("alice@example.com") is False

    async def test_missingCredential(self) -> None:
        """
        getScramCredential gives None for an unknown account or mechanism.
        """
        await self.store.addAccount("alice@example.com", [SHA256])
        assert await self.store.getScramCredential("bob@example.com", "SCRAM-SHA-256") is None
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-1") is None

    async def test_setCredentials(self) -> None:
        """
        setCredentials replaces all credentials: mechanisms not given are gone.
        """
        await self.store.addAccount("alice@example.com", [SHA1, SHA256])
        await self.store.setCredentials("alice@example.com", [NEW_SHA256])
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-256") == NEW_SHA256
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-1") is None

    async def test_setCredentialsMissing(self) -> None:
        """
        setCredentials on an unknown account fails with NoSuchAccount and
        does not create it.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.setCredentials("alice@example.com", [SHA256])
        assert await self.store.accountExists("alice@example.com") is False

    async def test_removeAccount(self) -> None:
        """
        Removing an account removes its credentials too, and a new account
        of the same JID starts without them.
        """
        await self.store.addAccount("alice@example.com", [SHA1, SHA256])
        await self.store.removeAccount("alice@example.com")
        assert await self.store.accountExists("alice@example.com") is False
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-1") is None
        await self.store.addAccount("alice@example.com", [])
        assert await self.store.getScramCredential("alice@example.com", "SCRAM-SHA-256") is None

    async def test_removeMissing(self) -> None:
        """
        Removing an unknown account fails with NoSuchAccount.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.removeAccount("alice@example.com")

    async def test_listAccounts(self) -> None:
        """
        listAccounts gives all bare JIDs sorted, or those of one domain,
        matched exactly (no subdomains, no case folding, no wildcards).
        """
        for jid in ["zoe@example.com", "alice@example.com", "bob@sub.example.com",
                    "carl@example_com", "dave@xexample.com", "erin@other.org"]:
            await self.store.addAccount(jid, [])
        assert await self.store.listAccounts() == [
            "alice@example.com", "bob@sub.example.com", "carl@example_com",
            "dave@xexample.com", "erin@other.org", "zoe@example.com",
        ]
        assert await self.store.listAccounts("example.com") == [
            "alice@example.com", "zoe@example.com",
        ]
        assert await self.store.listAccounts("EXAMPLE.COM") == []
        assert await self.store.listAccounts("nowhere.net") == []

    async def test_closedStore(self) -> None:
        """
        After close(), calls fail with StoreError; close() is idempotent.
        """
        await self.store.close()
        await self.store.close()
        with pytest.raises(StoreError):
            await self.store.accountExists("alice@example.com")


class InMemoryAccountStoreTests(AccountStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the in-memory fake.
    """

    def makeStore(self) -> InMemoryAccountStore:
        return InMemoryAccountStore()

    def test_alreadyFired(self) -> None:
        """
        The fake answers synchronously: its Deferreds have already fired.
        """
        d = self.store.addAccount("alice@example.com", [SHA256])
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(self.successResultOf(self.store.accountExists("alice@example.com")))
        self.failureResultOf(self.store.removeAccount("bob@example.com"), NoSuchAccount)


class SQLiteStoreTests(AccountStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the SQLite store on a real file.
    """

    def makeStore(self) -> SQLiteStore:
        return SQLiteStore(Path(self.mktemp()) / "accounts.sqlite")

    async def test_persists(self) -> None:
        """
        What one store wrote is there for a new store on the same file.
        """
        await self.store.addAccount("alice@example.com", [SHA256])
        await self.store.close()
        other = SQLiteStore(self.store.path)
        self.addCleanup(other.close)
        assert await other.getScramCredential("alice@example.com", "SCRAM-SHA-256") == SHA256

    async def test_offReactorThread(self) -> None:
        """
        Opening the database and every call run in one worker thread, never
        in the reactor's thread.
        """
        threads: list[threading.Thread] = []

        class RecordingDatabase(SQLiteDatabase):
            def accountExists(self, jid: str) -> bool:
                threads.append(threading.current_thread())
                return super().accountExists(jid)

        class RecordingStore(SQLiteStore):
            def _openDatabase(self) -> SQLiteDatabase:
                threads.append(threading.current_thread())
                database = SQLiteDatabase.open(self.path)
                database.__class__ = RecordingDatabase
                return database

        store = RecordingStore(Path(self.mktemp()) / "accounts.sqlite")
        self.addCleanup(store.close)
        for _ in range(3):
            await store.accountExists("alice@example.com")
        assert len(threads) == 4
        assert len(set(threads)) == 1
        assert threads[0] is not threading.current_thread()
        assert threads[0] is not threading.main_thread()

    async def test_closeStopsThread(self) -> None:
        """
        close() closes the connection and stops the worker thread.
        """
        await self.store.accountExists("alice@example.com")
        pool = self.store._pool
        assert pool is not None and pool.started
        await self.store.close()
        assert self.store._pool is None
        assert not pool.started
        assert not any(thread.is_alive() for thread in pool.threads)

    async def test_newerSchemaViaConnect(self) -> None:
        """
        connect() opens the database at once and reports a newer schema.
        """
        path = Path(self.mktemp()) / "accounts.sqlite"
        SQLiteDatabase.open(path).close()
        setSchemaVersion(path, SCHEMA_VERSION + 1)
        store = SQLiteStore(path)
        self.addCleanup(store.close)
        with pytest.raises(SchemaVersionError):
            await store.connect()


def setSchemaVersion(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.close()


@pytest.fixture
def dbPath(tmp_path: Path) -> Path:
    return tmp_path / "data" / "accounts.sqlite"


@pytest.fixture
def database(dbPath: Path) -> Any:
    db = SQLiteDatabase.open(dbPath)
    yield db
    db.close()


def test_schemaVersionRecorded(database: SQLiteDatabase, dbPath: Path) -> None:
    """
    A new database records schema_version 1 in the meta table, and opening
    it again keeps it.
    """
    assert SCHEMA_VERSION == 1
    assert database.schemaVersion() == 1
    conn = sqlite3.connect(dbPath)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(1,)]
    conn.close()
    SQLiteDatabase.open(dbPath).close()
    assert database.schemaVersion() == 1


def test_pragmas(database: SQLiteDatabase) -> None:
    """
    Connections enforce foreign keys, use WAL, and wait for locks.
    """
    conn = database._conn
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_createsParentDirectory(dbPath: Path) -> None:
    """
    open() creates the missing parent directory of the file.
    """
    assert not dbPath.parent.exists()
    SQLiteDatabase.open(dbPath).close()
    assert dbPath.is_file()


def test_newerSchemaRefused(dbPath: Path) -> None:
    """
    Opening a database with a newer schema version fails with a clear
    SchemaVersionError and leaves the file alone.
    """
    SQLiteDatabase.open(dbPath).close()
    setSchemaVersion(dbPath, 7)
    with pytest.raises(SchemaVersionError) as e:
        SQLiteDatabase.open(dbPath)
    assert str(e.value) == "database schema version 7 is newer than this xmppcert supports (1)"
    conn = sqlite3.connect(dbPath)
    assert conn.execute("SELECT value FROM meta").fetchall() == [(7,)]
    conn.close()


def test_notADatabase(dbPath: Path) -> None:
    """
    A file that is not SQLite gives a StoreError naming it.
    """
    dbPath.parent.mkdir(parents=True)
    dbPath.write_bytes(b"this is not a database, but long enough to look like one" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        SQLiteDatabase.open(dbPath)


def test_clock(dbPath: Path) -> None:
    """
    The creation time of an account comes from the injected clock.
    """
    db = SQLiteDatabase.open(dbPath, clock=lambda: 1234.5)
    db.addAccount("alice@example.com", [])
    assert db.accountCreatedAt("alice@example.com") == 1234.5
    assert db.accountCreatedAt("bob@example.com") is None
    db.close()


def test_twoConnections(dbPath: Path) -> None:
    """
    Two connections to one file (the server and the command line tool) see
    each other's committed writes at once.
    """
    server = SQLiteDatabase.open(dbPath)
    cli = SQLiteDatabase.open(dbPath)
    try:
        cli.addAccount("alice@example.com", [SHA256])
        assert server.getScramCredential("alice@example.com", "SCRAM-SHA-256") == SHA256
        server.setCredentials("alice@example.com", [NEW_SHA256])
        assert cli.getScramCredential("alice@example.com", "SCRAM-SHA-256") == NEW_SHA256
        cli.removeAccount("alice@example.com")
        assert server.listAccounts() == []
    finally:
        server.close()
        cli.close()


def test_addAccountAtomic(database: SQLiteDatabase) -> None:
    """
    Nothing half-written: when the second credential insert violates a
    constraint, the account and the first credential are not stored either.
    """
    broken = ScramCredential("SCRAM-SHA-256", None, 4096, b"K" * 32, b"V" * 32)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        database.addAccount("alice@example.com", [SHA1, broken])
    assert database.accountExists("alice@example.com") is False
    assert database.getScramCredential("alice@example.com", "SCRAM-SHA-1") is None
    assert database.listAccounts() == []


def test_setCredentialsAtomic(database: SQLiteDatabase) -> None:
    """
    Nothing half-written: a failing password change keeps the old
    credentials, although the delete ran before the failing insert.
    """
    database.addAccount("alice@example.com", [SHA1, SHA256])
    broken = ScramCredential("SCRAM-SHA-1", b"s" * 16, None, b"k" * 20, b"v" * 20)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        database.setCredentials("alice@example.com", [NEW_SHA256, broken])
    assert database.getScramCredential("alice@example.com", "SCRAM-SHA-1") == SHA1
    assert database.getScramCredential("alice@example.com", "SCRAM-SHA-256") == SHA256


def test_cascadeInSchema(database: SQLiteDatabase) -> None:
    """
    The schema itself deletes credentials with their account (ON DELETE
    CASCADE with foreign keys on), and refuses credentials of no account.
    """
    database.addAccount("alice@example.com", [SHA1, SHA256])
    conn = database._conn
    with conn:
        conn.execute("DELETE FROM accounts WHERE jid = 'alice@example.com'")
    assert conn.execute("SELECT count(*) FROM scram_credentials").fetchone() == (0,)
    with pytest.raises(sqlite3.IntegrityError):
        with conn:
            conn.execute(
                "INSERT INTO scram_credentials VALUES ('bob@example.com', 'SCRAM-SHA-1',"
                " x'00', 4096, x'00', x'00')"
            )
