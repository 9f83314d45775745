# -*- test-case-name: tests.test_store -*-
"""
Accounts and their client certificates in an SQLite database file.

L{SQLiteDatabase} is the synchronous layer, used directly by the command
line tool. L{SQLiteStore} provides L{IAccountStore} and L{ICertificateStore}
for the server by running every L{SQLiteDatabase} call in a worker thread:
writes in one dedicated thread, reads in another with a connection of its
own, so that a write waiting for a lock never holds up a login.

The server and C{xmppcert user ...} may use the same file at the same time,
so the database runs in WAL mode (readers do not block the writer) with a
busy timeout (a writer waits for another instead of failing at once), and
every write is one C{BEGIN IMMEDIATE} transaction.

The schema is versioned from the start: the C{meta} table holds
C{schema_version}, and L{MIGRATIONS} brings an older file up to date, one
transaction per version step. Version 1: accounts and SCRAM credentials;
version 2: certificates, with the change counter C{meta.change_seq} that
L{SQLiteDatabase.changesSince} reads. A certificate name is unique among the
enabled certificates of an account only (a partial unique index), a
fingerprint across the whole table.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from xmppcert.store.interfaces import (
    CERTIFICATE_STATES,
    AccountExists,
    AuditEntry,
    CertificateExists,
    CertificateLimitReached,
    IAccountStore,
    IAuditLog,
    ICertificateStore,
    NoSuchAccount,
    NoSuchCertificate,
    ScramCredential,
    StoredCertificate,
    StoreError,
    checkCertificateName,
    checkCertificateState,
    checkCertificateStates,
    checkFingerprint,
    checkTransition,
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


def _migrateTo2(conn: sqlite3.Connection) -> None:
    # XEP-0257: names are unique among the enabled certificates of an
    # account (section 2.1; a disabled or revoked one can no longer log in,
    # section 2.3, and its name may be used again); a fingerprint is unique
    # across the server and every state, so a certificate logs in to one
    # account and a revoked one can never be registered again. These
    # constraints, not the checks before an insert or update, are the real
    # guard.
    states = ", ".join(f"'{state}'" for state in CERTIFICATE_STATES)
    conn.execute(
        f"""
        CREATE TABLE certificates (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            name TEXT NOT NULL,
            fingerprint TEXT NOT NULL UNIQUE,
            der BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({states})),
            can_manage INTEGER NOT NULL,
            not_after REAL NOT NULL,
            created_at REAL NOT NULL,
            changed_at REAL NOT NULL,
            last_used_at REAL,
            change_seq INTEGER NOT NULL
        )
        """
    )
    conn.execute(
        "CREATE UNIQUE INDEX certificates_enabled_name ON certificates (account, name)"
        " WHERE state = 'enabled'"
    )
    # For lookups by account and name in any state, and for ON DELETE
    # CASCADE from accounts (the partial index serves neither).
    conn.execute("CREATE INDEX certificates_account_name ON certificates (account, name)")
    conn.execute("CREATE INDEX certificates_change_seq ON certificates (change_seq)")
    conn.execute("CREATE INDEX certificates_not_after ON certificates (not_after)")
    # Starts at 1, so that cursor 0 always means "from now on".
    conn.execute("INSERT INTO meta (key, value) VALUES ('change_seq', 1)")


def _migrateTo3(conn: sqlite3.Connection) -> None:
    # A revocation outlives the certificate's record: removing the record
    # (the command line, a deleted account, pruning) must never let the
    # certificate log in or be registered again, through any checker.
    conn.execute(
        """
        CREATE TABLE revoked_certificates (
            fingerprint TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            not_after REAL NOT NULL,
            revoked_at REAL NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX revoked_certificates_not_after ON revoked_certificates (not_after)")
    conn.execute(
        "INSERT INTO revoked_certificates (fingerprint, account, not_after, revoked_at)"
        " SELECT fingerprint, account, not_after, changed_at FROM certificates WHERE state = 'revoked'"
    )


def _migrateTo4(conn: sqlite3.Connection) -> None:
    # An operator's lock stops every login of an account (XEP-0257 logins
    # included) without deleting anything; the audit trail records who
    # changed what, readable with `xmppcert audit`.
    conn.execute("ALTER TABLE accounts ADD COLUMN locked INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX audit_target ON audit (target, id)")


#: C{MIGRATIONS[n]} turns a database at schema version C{n} into version
#: C{n + 1}; version 0 is an empty file. Append to it, never edit an entry.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrateTo1, _migrateTo2, _migrateTo3, _migrateTo4]

#: The C{ORDER BY} that puts first the certificate a name refers to: the
#: enabled one, else the most recently changed, else the most recently added.
_BY_NAME_ORDER = "ORDER BY state = 'enabled' DESC, changed_at DESC, id DESC"

#: The columns of C{certificates} that L{_certificateFromRow} reads, in order.
_CERTIFICATE_COLUMNS = (
    "account, name, fingerprint, der, state, can_manage, not_after,"
    " created_at, changed_at, last_used_at"
)

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


def _certificateFromRow(row: Sequence[Any]) -> StoredCertificate:
    account, name, fingerprint, der, state, canManage, notAfter, createdAt, changedAt, lastUsed = row
    return StoredCertificate(
        account=account,
        name=name,
        fingerprint=fingerprint,
        der=bytes(der),
        state=state,
        canManage=bool(canManage),
        notAfter=float(notAfter),
        createdAt=float(createdAt),
        changedAt=float(changedAt),
        lastUsedAt=None if lastUsed is None else float(lastUsed),
    )


def _nextChangeSeq(conn: sqlite3.Connection) -> int:
    """
    Increase the change counter, inside the caller's write transaction (so a
    rollback takes the increase back), and return its new value.
    """
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'change_seq'")
    return int(conn.execute("SELECT value FROM meta WHERE key = 'change_seq'").fetchone()[0])


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
            # It holds password verifiers and who may log in: readable by the
            # server's user only. SQLite gives its -wal and -shm files the
            # same mode.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as e:
            raise StoreError(f"cannot create database {path}: {e.strerror}") from None
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
    def _readTransaction(self) -> Iterator[sqlite3.Connection]:
        """
        Several reads from one snapshot of the database (WAL mode: writers
        of other connections go on meanwhile).
        """
        with self._conn:
            self._conn.execute("BEGIN DEFERRED")
            yield self._conn

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
        # An up-to-date file (the usual case) needs no write lock: opening
        # it succeeds at once while another process holds that lock.
        version = _schemaVersion(self._conn)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database schema version {version} is newer than this "
                f"xmppcert supports ({SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
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

    def setQueryOnly(self) -> None:
        """
        Refuse every write on this connection from now on
        (C{PRAGMA query_only}): for the read path of L{SQLiteStore}.
        """
        self._conn.execute("PRAGMA query_only = ON")

    def schemaVersion(self) -> int:
        """
        @return: the schema version recorded in the file.
        """
        return _schemaVersion(self._conn)

    def fakeCredentialSecret(self) -> bytes:
        """
        See L{IAccountStore.fakeCredentialSecret}; kept in the C{meta}
        table (older versions ignore the extra row).
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'fake_credential_secret'").fetchone()
            if row is not None:
                return bytes.fromhex(row[0])
            secret = os.urandom(32)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('fake_credential_secret', ?)", (secret.hex(),)
            )
            return secret

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
        Delete an account; its credentials and certificates go with it
        (C{ON DELETE CASCADE}).

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

    def setAccountLocked(self, jid: str, locked: bool) -> None:
        """
        See L{IAccountStore.setAccountLocked}.

        @raise NoSuchAccount: C{jid} is not registered.
        """
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE accounts SET locked = ? WHERE jid = ?", (int(bool(locked)), jid)
            ).rowcount
            if changed == 0:
                raise NoSuchAccount(jid)

    def isAccountLocked(self, jid: str) -> bool:
        """
        See L{IAccountStore.isAccountLocked}.
        """
        row = self._conn.execute("SELECT locked FROM accounts WHERE jid = ?", (jid,)).fetchone()
        return bool(row and row[0])

    def recordAudit(self, actor: str, action: str, target: str, detail: str = "") -> AuditEntry:
        """
        See L{IAuditLog.recordAudit}.
        """
        entry = AuditEntry(self._clock(), actor, action, target, detail)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (entry.at, entry.actor, entry.action, entry.target, entry.detail),
            )
        return entry

    def auditTrail(self, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """
        See L{IAuditLog.auditTrail}.
        """
        if target is None:
            rows = self._conn.execute(
                "SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        else:
            # The account itself, and its certificates ("jid/name").
            rows = self._conn.execute(
                "SELECT at, actor, action, target, detail FROM audit"
                " WHERE target = ? OR substr(target, 1, ?) = ? ORDER BY id DESC LIMIT ?",
                (target, len(target) + 1, target + "/", limit),
            ).fetchall()
        return [AuditEntry(*row) for row in reversed(rows)]

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

    def _selectCertificate(
        self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...], order: str = ""
    ) -> StoredCertificate | None:
        row = conn.execute(
            f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates WHERE {where} {order} LIMIT 1",
            params,
        ).fetchone()
        return None if row is None else _certificateFromRow(row)

    def _selectNamed(
        self, conn: sqlite3.Connection, account: str, name: str
    ) -> StoredCertificate | None:
        """
        The certificate C{name} (stripped already) refers to in C{account};
        see L{ICertificateStore.getCertificate}.
        """
        return self._selectCertificate(
            conn, "account = ? AND name = ?", (account, name), _BY_NAME_ORDER
        )

    def _selectByFingerprint(
        self, conn: sqlite3.Connection, fingerprint: str
    ) -> StoredCertificate | None:
        return self._selectCertificate(conn, "fingerprint = ?", (fingerprint,))

    def addCertificate(
        self,
        account: str,
        name: str,
        der: bytes,
        fingerprint: str,
        notAfter: float,
        canManage: bool = True,
        maxPerAccount: int = 0,
        replaceDisabled: bool = False,
    ) -> StoredCertificate:
        """
        Register a certificate, enabled; see L{ICertificateStore.addCertificate}.

        The checks and the insert are one C{BEGIN IMMEDIATE} transaction,
        and the unique constraints are the real guard: an C{IntegrityError}
        from the partial index C{certificates_enabled_name} (XEP-0257
        section 2.1: a name already used MUST be rejected) or from the
        C{UNIQUE} fingerprint becomes L{CertificateExists} for the right
        field.

        With C{replaceDisabled}, a disabled row of C{account} with that
        fingerprint is deleted inside that transaction, before the checks:
        a failing check or insert rolls the deletion back with everything
        else. A row in another state or of another account is not touched
        and still gives L{CertificateExists} for the fingerprint.

        @raise NoSuchAccount: C{account} is not registered.
        @raise CertificateExists: an enabled certificate of C{account} has
            the name (C{field="name"}; disabled and revoked ones do not
            count), or the fingerprint is registered by any account in any
            state (C{field="fingerprint"}).
        @raise CertificateLimitReached: C{maxPerAccount > 0} and the account
            has that many enabled certificates already (disabled and
            revoked ones do not count).
        @raise ValueError: a bad name or fingerprint.
        """
        name = checkCertificateName(name)
        checkFingerprint(fingerprint)
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
                raise NoSuchAccount(account)
            if replaceDisabled:
                # Decided under the write lock: a row revoked (or enabled)
                # in the meantime stays and is a fingerprint conflict below.
                conn.execute(
                    "DELETE FROM certificates"
                    " WHERE fingerprint = ? AND account = ? AND state = 'disabled'",
                    (fingerprint, account),
                )
            if conn.execute(
                "SELECT 1 FROM certificates WHERE account = ? AND name = ?"
                " AND state = 'enabled'",
                (account, name),
            ).fetchone():
                raise _nameExists(account, name)
            if conn.execute(
                "SELECT 1 FROM certificates WHERE fingerprint = ?", (fingerprint,)
            ).fetchone():
                raise _fingerprintExists()
            if conn.execute(
                "SELECT 1 FROM revoked_certificates WHERE fingerprint = ?", (fingerprint,)
            ).fetchone():
                raise CertificateExists("fingerprint", "the certificate was revoked; revocation is final")
            if maxPerAccount > 0:
                (count,) = conn.execute(
                    "SELECT count(*) FROM certificates WHERE account = ? AND state = 'enabled'",
                    (account,),
                ).fetchone()
                if count >= maxPerAccount:
                    raise CertificateLimitReached(
                        f"{account} has {count} enabled certificates, the most it may have"
                    )
            now = self._clock()
            seq = _nextChangeSeq(conn)
            try:
                conn.execute(
                    "INSERT INTO certificates (account, name, fingerprint, der, state,"
                    " can_manage, not_after, created_at, changed_at, last_used_at, change_seq)"
                    " VALUES (?, ?, ?, ?, 'enabled', ?, ?, ?, ?, NULL, ?)",
                    (account, name, fingerprint, der, int(bool(canManage)), notAfter, now, now, seq),
                )
            except sqlite3.IntegrityError as e:
                mapped = _integrityError(e, account, name)
                if mapped is None:
                    raise
                raise mapped from e
        return StoredCertificate(
            account=account,
            name=name,
            fingerprint=fingerprint,
            der=bytes(der),
            state="enabled",
            canManage=bool(canManage),
            notAfter=float(notAfter),
            createdAt=now,
            changedAt=now,
            lastUsedAt=None,
        )

    def listCertificates(
        self, account: str, states: Sequence[str] | None = None
    ) -> list[StoredCertificate]:
        """
        @param states: only certificates in one of these states; all when
            C{None}.
        @return: the certificates of C{account}, oldest first, then by name,
            then in the order they were added; empty for an unknown account.
        @raise ValueError: an unknown state, or a string for C{states}.
        """
        wanted = checkCertificateStates(states)
        where, params = "account = ?", [account]
        if wanted is not None:
            if not wanted:
                return []
            where += f" AND state IN ({', '.join('?' for _ in wanted)})"
            params.extend(wanted)
        rows = self._conn.execute(
            f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates WHERE {where}"
            " ORDER BY created_at, name, id",
            params,
        )
        return [_certificateFromRow(row) for row in rows]

    def getCertificate(self, account: str, name: str) -> StoredCertificate | None:
        """
        @return: the certificate C{name} (stripped) refers to in C{account}:
            the enabled one with that name, else the most recently changed
            disabled or revoked one; or C{None}.
        """
        return self._selectNamed(self._conn, account, _lookupName(name))

    def certificateByFingerprint(self, fingerprint: str) -> StoredCertificate | None:
        """
        @return: the certificate with that fingerprint, or C{None}.
        """
        return self._selectByFingerprint(self._conn, fingerprint)

    def isCertificateRevoked(self, fingerprint: str) -> bool:
        """
        @return: whether the certificate with that fingerprint was ever
            revoked, whether or not its record still exists.
        """
        row = self._conn.execute(
            "SELECT 1 FROM revoked_certificates WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return row is not None

    def _changeState(
        self, conn: sqlite3.Connection, current: StoredCertificate, state: str
    ) -> StoredCertificate:
        """
        Put C{current} into C{state}, inside the caller's write transaction;
        a real change also bumps the change counter.

        When enabling, the check for an enabled namesake comes first and the
        partial unique index is the real guard.
        """
        checkTransition(current.state, state, current.name)
        if current.state == state:
            return current
        if state == "enabled" and conn.execute(
            "SELECT 1 FROM certificates WHERE account = ? AND name = ? AND state = 'enabled'"
            " AND fingerprint != ?",
            (current.account, current.name, current.fingerprint),
        ).fetchone():
            raise _nameExists(current.account, current.name)
        now = self._clock()
        seq = _nextChangeSeq(conn)
        try:
            conn.execute(
                "UPDATE certificates SET state = ?, changed_at = ?, change_seq = ?"
                " WHERE fingerprint = ?",
                (state, now, seq, current.fingerprint),
            )
        except sqlite3.IntegrityError as e:
            mapped = _integrityError(e, current.account, current.name)
            if mapped is None:  # pragma: no cover - no other constraint applies
                raise
            raise mapped from e
        if state == "revoked":
            conn.execute(
                "INSERT OR IGNORE INTO revoked_certificates (fingerprint, account, not_after, revoked_at)"
                " VALUES (?, ?, ?, ?)",
                (current.fingerprint, current.account, current.notAfter, now),
            )
        return replace(current, state=state, changedAt=now)

    def setCertificateState(self, account: str, name: str, state: str) -> StoredCertificate:
        """
        Change the state of the certificate L{getCertificate} returns; see
        L{ICertificateStore.setCertificateState}. A real change also bumps
        the change counter, in the same transaction.

        @raise ValueError: C{state} is not one of L{CERTIFICATE_STATES}.
        @raise NoSuchCertificate: C{account} has no certificate C{name}.
        @raise CertificateRevoked: it is revoked (XEP-0257 section 2.5:
            revocation is final).
        @raise CertificateExists: enabling it, while another certificate of
            the account with that name is enabled (C{field="name"}).
        """
        checkCertificateState(state)
        name = _lookupName(name)
        with self._transaction() as conn:
            current = self._selectNamed(conn, account, name)
            if current is None:
                raise NoSuchCertificate(f"no certificate named {name!r} for {account}")
            return self._changeState(conn, current, state)

    def setCertificateStateByFingerprint(self, fingerprint: str, state: str) -> StoredCertificate:
        """
        Change the state of exactly the certificate with that fingerprint;
        see L{ICertificateStore.setCertificateStateByFingerprint}.

        @raise ValueError: C{state} is not one of L{CERTIFICATE_STATES}.
        @raise NoSuchCertificate: no certificate has that fingerprint.
        @raise CertificateRevoked: it is revoked.
        @raise CertificateExists: enabling it, while another certificate of
            its account with its name is enabled (C{field="name"}).
        """
        checkCertificateState(state)
        with self._transaction() as conn:
            current = self._selectByFingerprint(conn, fingerprint)
            if current is None:
                raise NoSuchCertificate("no certificate with that fingerprint")
            return self._changeState(conn, current, state)

    def touchCertificate(self, fingerprint: str, when: float) -> None:
        """
        Record a login with the certificate at C{when}; nothing for an
        unknown fingerprint. Not a state change: the change counter stays.
        """
        with self._transaction() as conn:
            conn.execute(
                "UPDATE certificates SET last_used_at = ? WHERE fingerprint = ?",
                (when, fingerprint),
            )

    def removeCertificate(self, account: str, name: str) -> None:
        """
        Delete the certificate L{getCertificate} returns; other certificates
        with that name stay.

        @raise NoSuchCertificate: C{account} has no certificate C{name}.
        """
        name = _lookupName(name)
        with self._transaction() as conn:
            current = self._selectNamed(conn, account, name)
            if current is None:
                raise NoSuchCertificate(f"no certificate named {name!r} for {account}")
            conn.execute("DELETE FROM certificates WHERE fingerprint = ?", (current.fingerprint,))

    def removeCertificateByFingerprint(self, fingerprint: str) -> None:
        """
        Delete exactly the certificate with that fingerprint.

        @raise NoSuchCertificate: no certificate has that fingerprint.
        """
        with self._transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM certificates WHERE fingerprint = ?", (fingerprint,)
            ).rowcount
            if deleted == 0:
                raise NoSuchCertificate("no certificate with that fingerprint")

    def removeExpiredCertificates(self, before: float) -> list[StoredCertificate]:
        """
        Delete every certificate with C{notAfter} earlier than C{before}.

        @return: the deleted certificates, as they were.
        """
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates WHERE not_after < ?"
                " ORDER BY not_after, account, name, id",
                (before,),
            ).fetchall()
            conn.execute("DELETE FROM certificates WHERE not_after < ?", (before,))
            # An expired certificate cannot log in whatever its state, so
            # its revocation need not be kept any longer either.
            conn.execute("DELETE FROM revoked_certificates WHERE not_after < ?", (before,))
        return [_certificateFromRow(row) for row in rows]

    def changesSince(self, cursor: int) -> tuple[int, list[StoredCertificate]]:
        """
        Certificates added or changed in state after C{cursor}; see
        L{ICertificateStore.changesSince}. The counter and the rows are read
        from one snapshot, so nothing falls between two polls.

        @param cursor: C{0} to start, or a cursor returned before.
        @return: C{(newCursor, certificates)}.
        """
        with self._readTransaction() as conn:
            (counter,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'change_seq'"
            ).fetchone()
            if cursor <= 0:
                return int(counter), []
            rows = conn.execute(
                f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates WHERE change_seq > ?"
                " ORDER BY change_seq",
                (cursor,),
            ).fetchall()
        # The counter itself, even if the cursor is larger (a database
        # restored from a backup): the next poll then misses nothing.
        return int(counter), [_certificateFromRow(row) for row in rows]

    def close(self) -> None:
        """
        Close the connection. Idempotent.
        """
        self._conn.close()


def _lookupName(name: str) -> str:
    # Names are stored stripped; look them up the same way.
    return name.strip() if isinstance(name, str) else name


def _nameExists(account: str, name: str) -> CertificateExists:
    return CertificateExists(
        "name", f"a certificate named {name!r} is already registered for {account}"
    )


def _fingerprintExists() -> CertificateExists:
    # Does not say by whom: that could be another account.
    return CertificateExists("fingerprint", "this certificate is already registered")


def _integrityError(
    e: sqlite3.IntegrityError, account: str, name: str
) -> StoreError | None:
    """
    The store's error for a constraint the checks before an insert or an
    enabling update missed (they cannot, inside the write lock, but the
    constraints decide).
    """
    message = str(e)
    if "certificates.fingerprint" in message:
        return _fingerprintExists()
    # The partial index certificates_enabled_name: SQLite names its columns.
    if "certificates.account, certificates.name" in message:
        return _nameExists(account, name)
    if "FOREIGN KEY" in message:
        return NoSuchAccount(account)
    return None


class _Worker:
    """
    One thread of its own with one connection of its own, opened in that
    thread on first use (a connection must not be used by two threads at
    once).
    """

    def __init__(self, name: str, opener: Callable[[], SQLiteDatabase]) -> None:
        self.name = name
        self._opener = opener
        self.pool: ThreadPool | None = None
        self._database: SQLiteDatabase | None = None

    def start(self) -> ThreadPool:
        if self.pool is None:
            self.pool = ThreadPool(1, 1, name=self.name)
            self.pool.start()
        return self.pool

    def database(self) -> SQLiteDatabase:
        # Only ever called in the worker thread, so no lock is needed.
        if self._database is None:
            self._database = self._opener()
        return self._database

    def closeDatabase(self) -> None:
        # Runs in the worker thread, after every call queued before it.
        database, self._database = self._database, None
        if database is not None:
            database.close()

    def stop(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()


@implementer(IAccountStore, ICertificateStore, IAuditLog)
class SQLiteStore:
    """
    L{IAccountStore} and L{ICertificateStore} on an SQLite file, for code
    running on the reactor.

    Every call runs the matching L{SQLiteDatabase} method in a worker
    thread, so the reactor never waits for the disk; there are two, each
    with its own connection:

     - B{the writer}: every method that changes something runs in one
       dedicated thread. One, not several: SQLite allows one writer at a
       time anyway, and one thread serialises the writes in the order they
       were made (a password change cannot overtake the account creation
       it follows).
     - B{the reader}: the methods that only read (the login path among
       them: L{getScramCredential}, L{certificateByFingerprint},
       L{isCertificateRevoked}, ...) run in another thread, on a
       connection that refuses writes. In WAL mode readers never wait for a
       writer, so while a write waits for another process's write lock (up
       to L{BUSY_TIMEOUT}), logins are still answered at once.

    A read sees every write whose Deferred has fired; a read made while a
    write is still pending may answer from before that write.

    The connections are opened in their threads on first use; call
    L{connect} to open them (and see schema errors) at startup.
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
        self._writer = _Worker(f"xmppcert-sqlite {self.path}", self._openDatabase)
        self._reader = _Worker(f"xmppcert-sqlite-read {self.path}", self._openReadDatabase)
        self._shutdownTrigger: Any = None
        self._closed = False

    def _openDatabase(self) -> SQLiteDatabase:
        """
        Open the database; runs in a worker thread. Tests override it.
        """
        return SQLiteDatabase.open(self.path, self._clock)

    def _openReadDatabase(self) -> SQLiteDatabase:
        """
        Open the reader's connection, which refuses writes; runs in the
        reader's thread.
        """
        database = self._openDatabase()
        database.setQueryOnly()
        return database

    def _startPool(self, worker: _Worker) -> ThreadPool:
        if self._shutdownTrigger is None:
            # Stop the (non-daemon) threads with the reactor even if nobody
            # calls close(), or the process would not exit.
            self._shutdownTrigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self._reactorShutdown
            )
        return worker.start()

    def _reactorShutdown(self) -> None:
        self._shutdownTrigger = None
        self._closed = True
        for worker in (self._writer, self._reader):
            if worker.pool is not None:
                # Queued behind pending calls; stop() waits for all of them.
                worker.pool.callInThread(worker.closeDatabase)
            worker.stop()

    def _runIn(self, worker: _Worker, f: Callable[[SQLiteDatabase], _T]) -> defer.Deferred[_T]:
        if self._closed:
            return defer.fail(StoreError(f"the store {self.path} is closed"))

        def inThread() -> _T:
            return f(worker.database())

        return deferToThreadPool(self._reactor, self._startPool(worker), inThread)

    def _run(self, f: Callable[[SQLiteDatabase], _T]) -> defer.Deferred[_T]:
        """
        Call C{f} with the database in the writer's thread.
        """
        return self._runIn(self._writer, f)

    def _read(self, f: Callable[[SQLiteDatabase], _T]) -> defer.Deferred[_T]:
        """
        Call C{f}, which only reads, with the database in the reader's
        thread.
        """
        return self._runIn(self._reader, f)

    def connect(self) -> defer.Deferred[None]:
        """
        Open the database now rather than on first use: the writer's
        connection (which brings the schema up to date), then the reader's.

        @return: Deferred firing with C{None}, or failing with
            L{SchemaVersionError} or L{StoreError}.
        """
        d = self._run(lambda database: None)
        d.addCallback(lambda _: self._read(lambda database: None))
        return d

    def addAccount(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.addAccount}.
        """
        # A copy: the caller may change its list while the thread works.
        credentials = list(credentials)
        return self._run(lambda db: db.addAccount(jid, credentials))

    def setAccountLocked(self, jid: str, locked: bool) -> defer.Deferred[None]:
        """
        See L{IAccountStore.setAccountLocked}.
        """
        return self._run(lambda db: db.setAccountLocked(jid, locked))

    def isAccountLocked(self, jid: str) -> defer.Deferred[bool]:
        """
        See L{IAccountStore.isAccountLocked}.
        """
        return self._read(lambda db: db.isAccountLocked(jid))

    def recordAudit(self, actor: str, action: str, target: str, detail: str = "") -> defer.Deferred[AuditEntry]:
        """
        See L{IAuditLog.recordAudit}.
        """
        return self._run(lambda db: db.recordAudit(actor, action, target, detail))

    def auditTrail(self, target: str | None = None, limit: int = 100) -> defer.Deferred[list[AuditEntry]]:
        """
        See L{IAuditLog.auditTrail}.
        """
        return self._read(lambda db: db.auditTrail(target, limit))

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
        return self._read(lambda db: db.accountExists(jid))

    def listAccounts(self, domain: str | None = None) -> defer.Deferred[list[str]]:
        """
        See L{IAccountStore.listAccounts}.
        """
        return self._read(lambda db: db.listAccounts(domain))

    def getScramCredential(
        self, jid: str, mechanism: str
    ) -> defer.Deferred[ScramCredential | None]:
        """
        See L{IAccountStore.getScramCredential}.
        """
        return self._read(lambda db: db.getScramCredential(jid, mechanism))

    def addCertificate(
        self,
        account: str,
        name: str,
        der: bytes,
        fingerprint: str,
        notAfter: float,
        canManage: bool = True,
        maxPerAccount: int = 0,
        replaceDisabled: bool = False,
    ) -> defer.Deferred[StoredCertificate]:
        """
        See L{ICertificateStore.addCertificate}.
        """
        der = bytes(der)
        return self._run(
            lambda db: db.addCertificate(
                account,
                name,
                der,
                fingerprint,
                notAfter,
                canManage,
                maxPerAccount,
                replaceDisabled=replaceDisabled,
            )
        )

    def listCertificates(
        self, account: str, states: Sequence[str] | None = None
    ) -> defer.Deferred[list[StoredCertificate]]:
        """
        See L{ICertificateStore.listCertificates}.
        """
        try:
            # Checked and copied here: the caller may change its list while
            # the thread works.
            wanted = checkCertificateStates(states)
        except ValueError as e:
            return defer.fail(e)
        return self._read(lambda db: db.listCertificates(account, wanted))

    def getCertificate(
        self, account: str, name: str
    ) -> defer.Deferred[StoredCertificate | None]:
        """
        See L{ICertificateStore.getCertificate}.
        """
        return self._read(lambda db: db.getCertificate(account, name))

    def certificateByFingerprint(
        self, fingerprint: str
    ) -> defer.Deferred[StoredCertificate | None]:
        """
        See L{ICertificateStore.certificateByFingerprint}.
        """
        return self._read(lambda db: db.certificateByFingerprint(fingerprint))

    def isCertificateRevoked(self, fingerprint: str) -> defer.Deferred[bool]:
        """
        See L{ICertificateStore.isCertificateRevoked}.
        """
        return self._read(lambda db: db.isCertificateRevoked(fingerprint))

    def setCertificateState(
        self, account: str, name: str, state: str
    ) -> defer.Deferred[StoredCertificate]:
        """
        See L{ICertificateStore.setCertificateState}.
        """
        return self._run(lambda db: db.setCertificateState(account, name, state))

    def setCertificateStateByFingerprint(
        self, fingerprint: str, state: str
    ) -> defer.Deferred[StoredCertificate]:
        """
        See L{ICertificateStore.setCertificateStateByFingerprint}.
        """
        return self._run(lambda db: db.setCertificateStateByFingerprint(fingerprint, state))

    def touchCertificate(self, fingerprint: str, when: float) -> defer.Deferred[None]:
        """
        See L{ICertificateStore.touchCertificate}.
        """
        return self._run(lambda db: db.touchCertificate(fingerprint, when))

    def removeCertificate(self, account: str, name: str) -> defer.Deferred[None]:
        """
        See L{ICertificateStore.removeCertificate}.
        """
        return self._run(lambda db: db.removeCertificate(account, name))

    def removeCertificateByFingerprint(self, fingerprint: str) -> defer.Deferred[None]:
        """
        See L{ICertificateStore.removeCertificateByFingerprint}.
        """
        return self._run(lambda db: db.removeCertificateByFingerprint(fingerprint))

    def removeExpiredCertificates(
        self, before: float
    ) -> defer.Deferred[list[StoredCertificate]]:
        """
        See L{ICertificateStore.removeExpiredCertificates}.
        """
        return self._run(lambda db: db.removeExpiredCertificates(before))

    def changesSince(
        self, cursor: int
    ) -> defer.Deferred[tuple[int, list[StoredCertificate]]]:
        """
        See L{ICertificateStore.changesSince}.
        """
        return self._read(lambda db: db.changesSince(cursor))

    def fakeCredentialSecret(self) -> bytes:
        """
        See L{IAccountStore.fakeCredentialSecret}: read (or made) with a
        connection of its own, blocking; for start-up only.
        """
        database = SQLiteDatabase.open(self.path, self._clock)
        try:
            return database.fakeCredentialSecret()
        finally:
            database.close()

    def close(self) -> defer.Deferred[None]:
        """
        Close the connections (each in its thread, after every call made
        before) and stop the threads. Idempotent.

        @return: Deferred firing with C{None} when done.
        """
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        workers = [worker for worker in (self._writer, self._reader) if worker.pool is not None]
        if not workers:
            return defer.succeed(None)

        def stopPools(results: list[tuple[bool, Any]]) -> Any:
            if self._shutdownTrigger is not None:
                self._reactor.removeSystemEventTrigger(self._shutdownTrigger)
                self._shutdownTrigger = None
            for worker in workers:
                worker.stop()
            for succeeded, result in results:
                if not succeeded:
                    return result
            return None

        closed = [
            deferToThreadPool(self._reactor, worker.pool, worker.closeDatabase)
            for worker in workers
            if worker.pool is not None
        ]
        d: defer.Deferred[Any] = defer.DeferredList(closed, consumeErrors=True)
        d.addCallback(stopPools)
        return d


__all__ = [
    "BUSY_TIMEOUT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteDatabase",
    "SQLiteStore",
    "SchemaVersionError",
]
