# -*- test-case-name: tests.test_store -*-
"""
Accounts in an SQLite database file.

L{SQLiteDatabase} is the synchronous layer, used directly by the command
line tool. L{SQLiteStore} provides L{IAccountStore} for the server by running
every L{SQLiteDatabase} call in one dedicated worker thread.

The server and C{xmppcert user ...} may use the same file at the same time,
so the database runs in WAL mode (readers do not block the writer) with a
busy timeout (a writer waits for another instead of failing at once), and
every write is one C{BEGIN IMMEDIATE} transaction.

The schema is versioned from the start: the C{meta} table holds
C{schema_version}, and L{MIGRATIONS} brings an older file up to date, one
transaction per version step.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from xmppcert.store.interfaces import (
    AccountExists,
    IAccountStore,
    NoSuchAccount,
    ScramCredential,
    StoreError,
)

_T = TypeVar("_T")

#: Seconds a connection waits for another process's write lock before an
#: operation fails with "database is locked".
BUSY_TIMEOUT = 10.0


class SchemaVersionError(StoreError):
    """
    The database was written by a newer xmppcert, with a schema this code
    does not know; it is left untouched.
    """


def _migrateTo1(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL)")
    conn.execute("CREATE TABLE accounts (jid TEXT PRIMARY KEY, created_at REAL NOT NULL)")
    conn.execute(
        """
        CREATE TABLE scram_credentials (
            jid TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            mechanism TEXT NOT NULL,
            salt BLOB NOT NULL,
            iterations INTEGER NOT NULL,
            stored_key BLOB NOT NULL,
            server_key BLOB NOT NULL,
            PRIMARY KEY (jid, mechanism)
        )
        """
    )


#: C{MIGRATIONS[n]} turns a database at schema version C{n} into version
#: C{n + 1}; version 0 is an empty file. Append to it, never edit an entry.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrateTo1]

#: The schema version this code writes and understands.
SCHEMA_VERSION = len(MIGRATIONS)


def _schemaVersion(conn: sqlite3.Connection) -> int:
    hasMeta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if hasMeta is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def _checkMechanisms(credentials: Sequence[ScramCredential]) -> None:
    mechanisms = [c.mechanism for c in credentials]
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"more than one credential for a mechanism: {mechanisms}")


class SQLiteDatabase:
    """
    Synchronous access to the account database; one connection.

    Not thread-safe: use it from one thread at a time (L{SQLiteStore} does).

    @ivar path: the database file.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        Use L{SQLiteDatabase.open} instead.

        @param connection: an autocommit connection (C{isolation_level=None})
            to a database with the current schema.
        @param clock: returns the current time as a POSIX timestamp.
        """
        self._conn = connection
        self.path = path
        self._clock = clock

    @classmethod
    def open(
        cls, path: Path | str, clock: Callable[[], float] = time.time
    ) -> SQLiteDatabase:
        """
        Open (and create if needed) the database at C{path}, creating its
        parent directory and bringing its schema up to date.

        @param clock: returns the current time as a POSIX timestamp; used for
            the creation time of accounts.
        @raise SchemaVersionError: the file has a newer schema version.
        @raise StoreError: the file cannot be opened or is not a database.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StoreError(f"cannot create directory {path.parent}: {e.strerror}") from None
        try:
            # isolation_level=None: the sqlite3 module would otherwise start
            # transactions on its own and commit DDL outside them; we begin
            # every transaction explicitly instead.
            conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            database = cls(conn, path, clock)
            database._migrate()
        except sqlite3.Error as e:
            conn.close()
            raise StoreError(f"cannot open database {path}: {e}") from None
        except BaseException:
            conn.close()
            raise
        return database

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """
        One write transaction: committed when the block ends, rolled back
        entirely if it raises, so nothing half-written is ever stored.

        C{BEGIN IMMEDIATE} takes the write lock up front (waiting up to the
        busy timeout): a deferred transaction that reads first and then
        writes could fail at once when another process wrote in between.
        """
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            yield self._conn

    def _migrate(self) -> None:
        while True:
            with self._transaction() as conn:
                # Read the version under the write lock, so two processes
                # opening a new file do not both create the schema.
                version = _schemaVersion(conn)
                if version > SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"database schema version {version} is newer than this "
                        f"xmppcert supports ({SCHEMA_VERSION})"
                    )
                if version == SCHEMA_VERSION:
                    return
                MIGRATIONS[version](conn)
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (version + 1,),
                )

    def schemaVersion(self) -> int:
        """
        @return: the schema version recorded in the file.
        """
        return _schemaVersion(self._conn)

    def _insertCredentials(
        self, conn: sqlite3.Connection, jid: str, credentials: Sequence[ScramCredential]
    ) -> None:
        conn.executemany(
            "INSERT INTO scram_credentials"
            " (jid, mechanism, salt, iterations, stored_key, server_key)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (jid, c.mechanism, c.salt, c.iterations, c.storedKey, c.serverKey)
                for c in credentials
            ],
        )

    def addAccount(self, jid: str, credentials: Sequence[ScramCredential]) -> None:
        """
        Register a new account with its credentials, in one transaction.

        @param jid: a normalised bare JID.
        @param credentials: at most one per mechanism; may be empty.
        @raise AccountExists: C{jid} is already registered.
        @raise ValueError: two credentials have the same mechanism.
        """
        _checkMechanisms(credentials)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (jid,)).fetchone():
                raise AccountExists(jid)
            conn.execute(
                "INSERT INTO accounts (jid, created_at) VALUES (?, ?)", (jid, self._clock())
            )
            self._insertCredentials(conn, jid, credentials)

    def setCredentials(self, jid: str, credentials: Sequence[ScramCredential]) -> None:
        """
        Replace all credentials of an account, in one transaction.

        @raise NoSuchAccount: C{jid} is not registered.
        @raise ValueError: two credentials have the same mechanism.
        """
        _checkMechanisms(credentials)
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (jid,)).fetchone():
                raise NoSuchAccount(jid)
            conn.execute("DELETE FROM scram_credentials WHERE jid = ?", (jid,))
            self._insertCredentials(conn, jid, credentials)

    def removeAccount(self, jid: str) -> None:
        """
        Delete an account; its credentials go with it (C{ON DELETE CASCADE}).

        @raise NoSuchAccount: C{jid} is not registered.
        """
        with self._transaction() as conn:
            if conn.execute("DELETE FROM accounts WHERE jid = ?", (jid,)).rowcount == 0:
                raise NoSuchAccount(jid)

    def accountExists(self, jid: str) -> bool:
        """
        @return: whether C{jid} is registered.
        """
        row = self._conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (jid,)).fetchone()
        return row is not None

    def accountCreatedAt(self, jid: str) -> float | None:
        """
        @return: when C{jid} was registered (POSIX timestamp), or C{None} if
            it is not.
        """
        row = self._conn.execute(
            "SELECT created_at FROM accounts WHERE jid = ?", (jid,)
        ).fetchone()
        return None if row is None else float(row[0])

    def listAccounts(self, domain: str | None = None) -> list[str]:
        """
        @param domain: only accounts of this domain, or all when C{None}.
        @return: bare JIDs, sorted by code point.
        """
        if domain is None:
            rows = self._conn.execute("SELECT jid FROM accounts ORDER BY jid")
        else:
            # Compare the domainpart exactly; LIKE would treat _ and % as
            # wildcards and ignore ASCII case.
            rows = self._conn.execute(
                "SELECT jid FROM accounts WHERE substr(jid, instr(jid, '@') + 1) = ?"
                " ORDER BY jid",
                (domain,),
            )
        return [jid for (jid,) in rows]

    def getScramCredential(self, jid: str, mechanism: str) -> ScramCredential | None:
        """
        @return: the credential of C{jid} for C{mechanism}, or C{None} when
            the account or that credential is missing.
        """
        row = self._conn.execute(
            "SELECT salt, iterations, stored_key, server_key FROM scram_credentials"
            " WHERE jid = ? AND mechanism = ?",
            (jid, mechanism),
        ).fetchone()
        if row is None:
            return None
        salt, iterations, storedKey, serverKey = row
        return ScramCredential(mechanism, bytes(salt), int(iterations), bytes(storedKey), bytes(serverKey))

    def close(self) -> None:
        """
        Close the connection. Idempotent.
        """
        self._conn.close()


@implementer(IAccountStore)
class SQLiteStore:
    """
    L{IAccountStore} on an SQLite file, for code running on the reactor.

    Every call runs the matching L{SQLiteDatabase} method in one dedicated
    worker thread, so the reactor never waits for the disk. One thread, not
    a pool of several: SQLite allows one writer at a time anyway, a single
    connection must not be used by two threads at once, and one thread
    serialises the calls in the order they were made (a password change
    cannot overtake the account creation it follows).

    The database is opened in that thread on first use; call L{connect} to
    open it (and see schema errors) at startup.
    """

    def __init__(
        self,
        path: Path | str,
        reactor: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        @param path: the database file; created with its schema if missing.
        @param reactor: provides C{IReactorFromThreads} and C{IReactorCore};
            the global reactor if C{None}.
        @param clock: passed to L{SQLiteDatabase.open}.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.path = Path(path)
        self._reactor = reactor
        self._clock = clock
        self._pool: ThreadPool | None = None
        self._shutdownTrigger: Any = None
        self._database: SQLiteDatabase | None = None
        self._closed = False

    def _openDatabase(self) -> SQLiteDatabase:
        """
        Open the database; runs in the worker thread. Tests override it.
        """
        return SQLiteDatabase.open(self.path, self._clock)

    def _getDatabase(self) -> SQLiteDatabase:
        # Only ever called in the worker thread, so no lock is needed.
        if self._database is None:
            self._database = self._openDatabase()
        return self._database

    def _startPool(self) -> ThreadPool:
        if self._pool is None:
            self._pool = ThreadPool(1, 1, name=f"xmppcert-sqlite {self.path}")
            self._pool.start()
            # Stop the (non-daemon) thread with the reactor even if nobody
            # calls close(), or the process would not exit.
            self._shutdownTrigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self._reactorShutdown
            )
        return self._pool

    def _closeDatabase(self) -> None:
        # Runs in the worker thread, after every call queued before it.
        database, self._database = self._database, None
        if database is not None:
            database.close()

    def _stopPool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def _reactorShutdown(self) -> None:
        self._shutdownTrigger = None
        self._closed = True
        if self._pool is not None:
            # Queued behind pending calls; stop() waits for all of them.
            self._pool.callInThread(self._closeDatabase)
        self._stopPool()

    def _run(self, f: Callable[[SQLiteDatabase], _T]) -> defer.Deferred[_T]:
        """
        Call C{f} with the database in the worker thread.
        """
        if self._closed:
            return defer.fail(StoreError(f"the store {self.path} is closed"))

        def inThread() -> _T:
            return f(self._getDatabase())

        return deferToThreadPool(self._reactor, self._startPool(), inThread)

    def connect(self) -> defer.Deferred[None]:
        """
        Open the database now rather than on first use.

        @return: Deferred firing with C{None}, or failing with
            L{SchemaVersionError} or L{StoreError}.
        """
        return self._run(lambda database: None)

    def addAccount(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.addAccount}.
        """
        # A copy: the caller may change its list while the thread works.
        credentials = list(credentials)
        return self._run(lambda db: db.addAccount(jid, credentials))

    def setCredentials(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.setCredentials}.
        """
        credentials = list(credentials)
        return self._run(lambda db: db.setCredentials(jid, credentials))

    def removeAccount(self, jid: str) -> defer.Deferred[None]:
        """
        See L{IAccountStore.removeAccount}.
        """
        return self._run(lambda db: db.removeAccount(jid))

    def accountExists(self, jid: str) -> defer.Deferred[bool]:
        """
        See L{IAccountStore.accountExists}.
        """
        return self._run(lambda db: db.accountExists(jid))

    def listAccounts(self, domain: str | None = None) -> defer.Deferred[list[str]]:
        """
        See L{IAccountStore.listAccounts}.
        """
        return self._run(lambda db: db.listAccounts(domain))

    def getScramCredential(
        self, jid: str, mechanism: str
    ) -> defer.Deferred[ScramCredential | None]:
        """
        See L{IAccountStore.getScramCredential}.
        """
        return self._run(lambda db: db.getScramCredential(jid, mechanism))

    def close(self) -> defer.Deferred[None]:
        """
        Close the connection (in the worker thread, after every call made
        before) and stop the thread. Idempotent.

        @return: Deferred firing with C{None} when done.
        """
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        if self._pool is None:
            return defer.succeed(None)

        def stopPool(result: object) -> object:
            if self._shutdownTrigger is not None:
                self._reactor.removeSystemEventTrigger(self._shutdownTrigger)
                self._shutdownTrigger = None
            self._stopPool()
            return result

        d = deferToThreadPool(self._reactor, self._pool, self._closeDatabase)
        d.addBoth(stopPool)
        return d


__all__ = [
    "BUSY_TIMEOUT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteDatabase",
    "SQLiteStore",
    "SchemaVersionError",
]
