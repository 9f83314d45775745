# -*- test-case-name: tests.test_store -*-
"""
Accounts and their client certificates in an SQLite database file.

L{SQLiteDatabase} is the synchronous layer, used directly by the command
line tool. L{SQLiteStore} provides L{IAccountStore}, L{ICertificateStore}
and the other store interfaces for the server by running every
L{SQLiteDatabase} call in a worker thread: writes in one dedicated thread,
reads in another with a connection of its own, so that a write waiting for
a lock never holds up a login.

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
fingerprint across the whole table. Version 3: revocations that outlive the
certificate's record; version 4: account locks and the audit trail; version
5: rosters with their versions (RFC 6121), offline messages (XEP-0160) and
block lists (XEP-0191), all deleted with their account; version 6: vCards
(XEP-0054) and private XML storage (XEP-0049), deleted with their account
too; version 7: personal eventing (XEP-0163), the PEP nodes of accounts
with their configuration and items, deleted with their node and account.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python import failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from xmppcert.store.interfaces import (
    CERTIFICATE_STATES,
    MAX_PEP_ITEM_ID,
    MAX_PEP_NODE_NAME,
    SUBSCRIPTIONS,
    AccountExists,
    AuditEntry,
    BlockListFull,
    CertificateExists,
    CertificateLimitReached,
    IAccountStore,
    IAuditLog,
    IBlockingStore,
    ICertificateStore,
    IOfflineStore,
    IPEPStore,
    IPrivateStore,
    IRosterStore,
    IVCardStore,
    NoSuchAccount,
    NoSuchCertificate,
    NoSuchPEPNode,
    OfflineMessage,
    PEPItem,
    PEPNode,
    PEPNodeExists,
    PEPNodeLimitReached,
    PEPStorageFull,
    PrivateStorageFull,
    RosterFull,
    RosterItem,
    ScramCredential,
    StoredCertificate,
    StoreError,
    checkCertificateName,
    checkCertificateState,
    checkCertificateStates,
    checkFingerprint,
    checkTransition,
    pepItemBytes,
)

_T = TypeVar("_T")

#: Seconds a connection waits for another process's write lock before an
#: operation fails with "database is locked".
BUSY_TIMEOUT = 10.0

#: Seconds between the batched writes of certificates' last-used times
#: (L{SQLiteStore.touchCertificate}).
TOUCH_INTERVAL = 2.0


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


def _migrateTo5(conn: sqlite3.Connection) -> None:
    # Instant messaging: every row belongs to an account and goes with it
    # (ON DELETE CASCADE); removeAccount also deletes the rows in other
    # accounts' rosters whose contact it was (RFC 6121 section 2.5.2).
    subscriptions = ", ".join(f"'{subscription}'" for subscription in SUBSCRIPTIONS)
    # RFC 6121 sections 2 and 3 and Appendix A: one row per contact, also
    # for a contact that is only a pending inbound request (in_roster = 0).
    # The groups are a JSON array of strings, in the order the client gave.
    conn.execute(
        f"""
        CREATE TABLE roster_items (
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            contact TEXT NOT NULL,
            name TEXT,
            groups_json TEXT NOT NULL,
            subscription TEXT NOT NULL CHECK (subscription IN ({subscriptions})),
            ask_out INTEGER NOT NULL,
            pending_in INTEGER NOT NULL,
            approved INTEGER NOT NULL,
            in_roster INTEGER NOT NULL,
            PRIMARY KEY (account, contact)
        )
        """
    )
    # For rosterItemsWith (whose rosters hold this contact: presence
    # broadcast and probes) and for the removal of a deleted account from
    # the rosters of others.
    conn.execute("CREATE INDEX roster_items_contact ON roster_items (contact)")
    # Section 2.6: a version per roster, increased with every change; no row
    # means version 0.
    conn.execute(
        """
        CREATE TABLE roster_versions (
            account TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
            version INTEGER NOT NULL
        )
        """
    )
    # AUTOINCREMENT: ids are never reused, so they increase in the order
    # messages were stored even after the newest ones were taken.
    conn.execute(
        """
        CREATE TABLE offline_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            stanza TEXT NOT NULL,
            stamp REAL NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX offline_messages_account ON offline_messages (account, id)")
    conn.execute(
        """
        CREATE TABLE blocked_jids (
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            jid TEXT NOT NULL,
            PRIMARY KEY (account, jid)
        )
        """
    )


def _migrateTo6(conn: sqlite3.Connection) -> None:
    # XEP-0054: one vCard per account, serialized XML.
    conn.execute(
        """
        CREATE TABLE vcards (
            account TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
            xml TEXT NOT NULL
        )
        """
    )
    # XEP-0049: one fragment per account and namespace; 'size' is its
    # length in UTF-8 bytes, summed for the per-account limit.
    conn.execute(
        """
        CREATE TABLE private_xml (
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            namespace TEXT NOT NULL,
            xml TEXT NOT NULL,
            size INTEGER NOT NULL,
            PRIMARY KEY (account, namespace)
        )
        """
    )


def _migrateTo7(conn: sqlite3.Connection) -> None:
    # XEP-0163: an account's PEP nodes, each with its configuration (a JSON
    # object of XEP-0060 field variables to strings, kept as given).
    conn.execute(
        """
        CREATE TABLE pep_nodes (
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            node TEXT NOT NULL,
            config_json TEXT NOT NULL,
            PRIMARY KEY (account, node)
        )
        """
    )
    # A node's items go with the node, and so with the account (the
    # cascade carries on through pep_nodes). 'seq' orders the items of one
    # node: a publish gives its item the node's highest seq plus one, so
    # the newest item has the highest, also when it replaces an older item
    # with its id. 'published' is in microseconds since the epoch (UTC), so
    # the time is given back exactly. Not WITHOUT ROWID: a payload may be
    # far larger than a page.
    conn.execute(
        """
        CREATE TABLE pep_items (
            account TEXT NOT NULL,
            node TEXT NOT NULL,
            item_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payload TEXT NOT NULL,
            publisher TEXT NOT NULL,
            published INTEGER NOT NULL,
            PRIMARY KEY (account, node, item_id),
            FOREIGN KEY (account, node) REFERENCES pep_nodes (account, node) ON DELETE CASCADE
        )
        """
    )
    # The newest N items of a node, the next seq and the trimming to
    # pubsub#max_items walk this index from its end; one item by id is
    # found through the primary key. Neither depends on the size of the
    # table or of the node.
    conn.execute("CREATE UNIQUE INDEX pep_items_seq ON pep_items (account, node, seq)")


#: C{MIGRATIONS[n]} turns a database at schema version C{n} into version
#: C{n + 1}; version 0 is an empty file. Append to it, never edit an entry.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migrateTo1,
    _migrateTo2,
    _migrateTo3,
    _migrateTo4,
    _migrateTo5,
    _migrateTo6,
    _migrateTo7,
]

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


#: The columns of C{roster_items} that L{_rosterItemFromRow} reads, in order.
_ROSTER_COLUMNS = "contact, name, groups_json, subscription, ask_out, pending_in, approved, in_roster"


def _rosterItemFromRow(row: Sequence[Any]) -> RosterItem:
    contact, name, groupsJSON, subscription, askOut, pendingIn, approved, inRoster = row
    return RosterItem(
        contact=contact,
        name=name,
        # Most items have no group: no JSON to decode for them.
        groups=() if groupsJSON == "[]" else tuple(json.loads(groupsJSON)),
        subscription=subscription,
        askOut=bool(askOut),
        pendingIn=bool(pendingIn),
        approved=bool(approved),
        inRoster=bool(inRoster),
    )


def _rosterVersion(conn: sqlite3.Connection, account: str) -> int:
    row = conn.execute("SELECT version FROM roster_versions WHERE account = ?", (account,)).fetchone()
    return 0 if row is None else int(row[0])


def _bumpRosterVersion(conn: sqlite3.Connection, account: str) -> int:
    """
    Increase the roster version of C{account}, inside the caller's write
    transaction, and return its new value.
    """
    conn.execute(
        "INSERT INTO roster_versions (account, version) VALUES (?, 1)"
        " ON CONFLICT (account) DO UPDATE SET version = version + 1",
        (account,),
    )
    return _rosterVersion(conn, account)


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


# --- instant messaging: checks shared with the in-memory store -----------------
#
# Callers (the roster, offline and blocking handlers) enforce the server's
# configured limits; these bounds only refuse input no configuration could
# allow, so that a bug upstream cannot fill the database with it.

#: The longest JID the instant messaging tables accept, in UTF-8 bytes: RFC
#: 7622 section 3 allows 1023 bytes for each of the localpart, domainpart
#: and resourcepart, plus the two separators.
MAX_JID_BYTES = 3 * 1023 + 2

#: The longest roster item name or group name, in UTF-8 bytes (RFC 6121
#: section 2.1.2.4 leaves the limit to the server; this is a sanity bound).
MAX_ROSTER_TEXT_BYTES = 3071

#: The most groups one roster item may be in (a sanity bound).
MAX_ROSTER_GROUPS = 1000

#: The largest stored offline message, in UTF-8 bytes (a sanity bound; the
#: server's stanza size limit is far below it).
MAX_OFFLINE_STANZA_BYTES = 16 * 1024 * 1024


def _utf8Length(value: object, what: str, limit: int) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    try:
        # Lone surrogates cannot be stored as SQLite text: refuse them here,
        # in both stores alike, rather than fail inside a transaction.
        length = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text") from None
    if length > limit:
        raise ValueError(f"{what} must have at most {limit} bytes in UTF-8, not {length}")
    return length


def checkStoredJID(jid: str, what: str = "a JID") -> str:
    """
    Check a JID stored in a roster or a block list: a non-empty string of
    at most L{MAX_JID_BYTES} bytes in UTF-8. It is not prepared here;
    callers prepare JIDs.

    @return: C{jid}.
    @raise ValueError: it is not.
    """
    if _utf8Length(jid, what, MAX_JID_BYTES) == 0:
        raise ValueError(f"{what} must not be empty")
    return jid


def checkRosterItem(item: RosterItem) -> RosterItem:
    """
    Check a roster item before it is stored.

    @return: C{item} with its groups as a tuple and its flags as C{bool}s,
        as the stores give it back.
    @raise ValueError: the contact is not a valid stored JID (see
        L{checkStoredJID}), the name or a group is not a string of at most
        L{MAX_ROSTER_TEXT_BYTES} bytes, there are more than
        L{MAX_ROSTER_GROUPS} groups (or C{groups} is a single string), or
        the subscription is not one of L{SUBSCRIPTIONS}.
    """
    if not isinstance(item, RosterItem):
        raise ValueError(f"not a RosterItem: {item!r}")
    checkStoredJID(item.contact, "a roster contact")
    if item.name is not None:
        _utf8Length(item.name, "a roster item name", MAX_ROSTER_TEXT_BYTES)
    if isinstance(item.groups, str):
        raise ValueError(f"groups must be a sequence of names, not the string {item.groups!r}")
    groups = tuple(item.groups)
    if len(groups) > MAX_ROSTER_GROUPS:
        raise ValueError(f"a roster item may be in at most {MAX_ROSTER_GROUPS} groups, not {len(groups)}")
    for group in groups:
        _utf8Length(group, "a roster group name", MAX_ROSTER_TEXT_BYTES)
    if item.subscription not in SUBSCRIPTIONS:
        raise ValueError(
            f"unknown subscription {item.subscription!r} (one of {', '.join(SUBSCRIPTIONS)})"
        )
    return replace(
        item,
        groups=groups,
        askOut=bool(item.askOut),
        pendingIn=bool(item.pendingIn),
        approved=bool(item.approved),
        inRoster=bool(item.inRoster),
    )


def checkBlockedJIDs(jids: Sequence[str]) -> list[str]:
    """
    Check the JIDs given to block or unblock (XEP-0191).

    @return: the JIDs, each once, in the order given.
    @raise ValueError: one is not a valid stored JID (see
        L{checkStoredJID}), or C{jids} is a single string (which would be
        read as its letters).
    """
    if isinstance(jids, str):
        raise ValueError(f"jids must be a sequence of JIDs, not the string {jids!r}")
    return list(dict.fromkeys(checkStoredJID(jid, "a blocked JID") for jid in jids))


def checkOfflineStanza(stanza: str) -> str:
    """
    @return: C{stanza}, if it is a string of at most
        L{MAX_OFFLINE_STANZA_BYTES} bytes in UTF-8.
    @raise ValueError: it is not.
    """
    _utf8Length(stanza, "an offline message", MAX_OFFLINE_STANZA_BYTES)
    return stanza


#: The most bytes (UTF-8) of one stored vCard or private XML fragment the
#: stores accept at all; the features set their own, lower, limits.
MAX_STORED_XML_BYTES = 16 * 1024 * 1024

#: The most bytes (UTF-8) of a private XML namespace.
MAX_PRIVATE_NAMESPACE_BYTES = 1023


def checkStoredXML(xml: str, what: str = "stored XML") -> int:
    """
    Check a vCard or private XML fragment before it is stored: a string of
    at most L{MAX_STORED_XML_BYTES} bytes in UTF-8. Whether it is
    well-formed is the caller's matter.

    @return: its length in UTF-8 bytes.
    @raise ValueError: it is not.
    """
    return _utf8Length(xml, what, MAX_STORED_XML_BYTES)


def checkPrivateNamespace(namespace: str) -> str:
    """
    @return: C{namespace}, if it is a non-empty string of at most
        L{MAX_PRIVATE_NAMESPACE_BYTES} bytes in UTF-8.
    @raise ValueError: it is not.
    """
    if _utf8Length(namespace, "a private XML namespace", MAX_PRIVATE_NAMESPACE_BYTES) == 0:
        raise ValueError("a private XML namespace must not be empty")
    return namespace


# --- personal eventing (XEP-0163): checks shared with the in-memory store ---------

#: The most bytes (UTF-8) of the field variables and values of one PEP
#: node's configuration together (a sanity bound).
MAX_PEP_CONFIG_BYTES = 1024 * 1024

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def _checkPEPName(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} must have at most {limit} characters, not {len(value)}")
    # Refuses lone surrogates, which SQLite cannot store as text.
    _utf8Length(value, what, 4 * limit)
    return value


def checkPEPNodeName(node: str) -> str:
    """
    @return: C{node}, if it is a non-empty string of at most
        L{MAX_PEP_NODE_NAME} characters.
    @raise ValueError: it is not.
    """
    return _checkPEPName(node, "a PEP node identifier", MAX_PEP_NODE_NAME)


def checkPEPItemId(itemId: str) -> str:
    """
    @return: C{itemId}, if it is a non-empty string of at most
        L{MAX_PEP_ITEM_ID} characters.
    @raise ValueError: it is not.
    """
    return _checkPEPName(itemId, "a PEP item id", MAX_PEP_ITEM_ID)


def checkPEPItemIds(itemIds: Sequence[str]) -> list[str]:
    """
    Check the item ids asked for by L{IPEPStore.getPEPItems}.

    @return: the ids, each once, in the order given.
    @raise ValueError: one is not a valid item id (see L{checkPEPItemId}),
        or C{itemIds} is a single string (which would be read as its
        letters).
    """
    if isinstance(itemIds, str):
        raise ValueError(f"itemIds must be a sequence of item ids, not the string {itemIds!r}")
    return list(dict.fromkeys(checkPEPItemId(itemId) for itemId in itemIds))


def checkPEPConfig(config: Mapping[str, str]) -> dict[str, str]:
    """
    Check the configuration of a PEP node before it is stored (see
    L{PEPNode.config}): field variables are non-empty strings, values are
    strings; together at most L{MAX_PEP_CONFIG_BYTES} bytes in UTF-8.
    What the fields mean is the caller's matter.

    @return: a copy of C{config} as a C{dict}.
    @raise ValueError: it is not such a mapping.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"a PEP node configuration must be a mapping, not {type(config).__name__}")
    copy = dict(config)
    total = 0
    for field, value in copy.items():
        if _utf8Length(field, "a PEP node configuration field", MAX_PEP_CONFIG_BYTES) == 0:
            raise ValueError("a PEP node configuration field must not be empty")
        total += len(field.encode("utf-8"))
        total += _utf8Length(value, f"the value of {field!r}", MAX_PEP_CONFIG_BYTES)
    if total > MAX_PEP_CONFIG_BYTES:
        raise ValueError(
            f"a PEP node configuration must have at most {MAX_PEP_CONFIG_BYTES} bytes in UTF-8,"
            f" not {total}"
        )
    return copy


def checkPEPItem(item: PEPItem) -> PEPItem:
    """
    Check an item before it is published: a valid id (see
    L{checkPEPItemId}), a payload of at most L{MAX_STORED_XML_BYTES}
    bytes (whether it is well-formed is the caller's matter), a valid
    stored JID as publisher (see L{checkStoredJID}) and an aware
    C{published} time.

    @return: C{item} with C{published} in UTC, as the stores give it back
        (the same instant, so equal to the original).
    @raise ValueError: it is not such an item.
    """
    if not isinstance(item, PEPItem):
        raise ValueError(f"not a PEPItem: {item!r}")
    checkPEPItemId(item.id)
    checkStoredXML(item.payload, "a PEP item payload")
    checkStoredJID(item.publisher, "a PEP item publisher")
    published = item.published
    if not isinstance(published, datetime.datetime):
        raise ValueError(f"published must be a datetime, not {type(published).__name__}")
    if published.tzinfo is None or published.utcoffset() is None:
        raise ValueError(f"published must be an aware datetime, not {published!r}")
    try:
        published = published.astimezone(datetime.UTC)
    except OverflowError:
        raise ValueError(f"published is out of range in UTC: {published!r}") from None
    return replace(item, published=published)


def _publishedToMicroseconds(published: datetime.datetime) -> int:
    # Exact: timedelta arithmetic, no float in between.
    return (published - _EPOCH) // _MICROSECOND


def _publishedFromMicroseconds(microseconds: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(microseconds=microseconds)


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
        Delete an account; its credentials, certificates, roster, offline
        messages, block list, vCard, private XML and PEP nodes with their
        items go with it (C{ON DELETE CASCADE}). In the same transaction it leaves every other account's
        roster, whose version increases (RFC 6121 section 2.5.2).

        @raise NoSuchAccount: C{jid} is not registered.
        """
        with self._transaction() as conn:
            if conn.execute("DELETE FROM accounts WHERE jid = ?", (jid,)).rowcount == 0:
                raise NoSuchAccount(jid)
            # Its own roster is gone already, so these are the others'.
            holders = [
                account
                for (account,) in conn.execute(
                    "SELECT account FROM roster_items WHERE contact = ? ORDER BY account", (jid,)
                ).fetchall()
            ]
            conn.execute("DELETE FROM roster_items WHERE contact = ?", (jid,))
            for account in holders:
                _bumpRosterVersion(conn, account)

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
        self.touchCertificates([(fingerprint, when)])

    def touchCertificates(self, touches: Iterable[tuple[str, float]]) -> None:
        """
        L{touchCertificate} for many logins, in one transaction.
        """
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE certificates SET last_used_at = ? WHERE fingerprint = ?",
                [(when, fingerprint) for fingerprint, when in touches],
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

    # --- rosters (RFC 6121) -------------------------------------------------------

    def getRoster(self, account: str) -> tuple[int, list[RosterItem]]:
        """
        See L{IRosterStore.getRoster}; the version and the items come from
        one snapshot.

        @return: C{(version, items)}, items sorted by contact; C{(0, [])}
            for an unknown account.
        """
        with self._readTransaction() as conn:
            version = _rosterVersion(conn, account)
            rows = conn.execute(
                f"SELECT {_ROSTER_COLUMNS} FROM roster_items WHERE account = ? ORDER BY contact",
                (account,),
            ).fetchall()
        return version, [_rosterItemFromRow(row) for row in rows]

    def getRosterItem(self, account: str, contact: str) -> RosterItem | None:
        """
        See L{IRosterStore.getRosterItem}.
        """
        row = self._conn.execute(
            f"SELECT {_ROSTER_COLUMNS} FROM roster_items WHERE account = ? AND contact = ?",
            (account, contact),
        ).fetchone()
        return None if row is None else _rosterItemFromRow(row)

    def putRosterItem(self, account: str, item: RosterItem, maxItems: int = 0) -> int:
        """
        Add or replace C{item}, in one transaction with the version bump;
        see L{IRosterStore.putRosterItem}. Putting an item equal to the
        stored one changes nothing and keeps the version.

        @return: the roster's version afterwards.
        @raise NoSuchAccount: C{account} is not registered.
        @raise RosterFull: the item is new and C{maxItems > 0} items are
            there already.
        @raise ValueError: a bad item (see L{checkRosterItem}).
        """
        item = checkRosterItem(item)
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
                raise NoSuchAccount(account)
            row = conn.execute(
                f"SELECT {_ROSTER_COLUMNS} FROM roster_items WHERE account = ? AND contact = ?",
                (account, item.contact),
            ).fetchone()
            current = None if row is None else _rosterItemFromRow(row)
            if current == item:
                return _rosterVersion(conn, account)
            if current is None and maxItems > 0:
                (count,) = conn.execute(
                    "SELECT count(*) FROM roster_items WHERE account = ?", (account,)
                ).fetchone()
                if count >= maxItems:
                    raise RosterFull(f"the roster of {account} holds {count} items, the most it may")
            conn.execute(
                "INSERT OR REPLACE INTO roster_items (account, contact, name, groups_json,"
                " subscription, ask_out, pending_in, approved, in_roster)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    item.contact,
                    item.name,
                    json.dumps(list(item.groups), ensure_ascii=False),
                    item.subscription,
                    int(item.askOut),
                    int(item.pendingIn),
                    int(item.approved),
                    int(item.inRoster),
                ),
            )
            return _bumpRosterVersion(conn, account)

    def removeRosterItem(self, account: str, contact: str) -> int:
        """
        See L{IRosterStore.removeRosterItem}.

        @return: the roster's version afterwards: unchanged (0 for an
            unknown account) when there was no such item.
        """
        with self._transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM roster_items WHERE account = ? AND contact = ?", (account, contact)
            ).rowcount
            if deleted == 0:
                return _rosterVersion(conn, account)
            return _bumpRosterVersion(conn, account)

    def rosterItemsWith(self, contact: str) -> list[tuple[str, RosterItem]]:
        """
        See L{IRosterStore.rosterItemsWith}.

        @return: C{(account, item)} for every roster holding C{contact},
            sorted by account.
        """
        rows = self._conn.execute(
            f"SELECT account, {_ROSTER_COLUMNS} FROM roster_items WHERE contact = ? ORDER BY account",
            (contact,),
        ).fetchall()
        return [(row[0], _rosterItemFromRow(row[1:])) for row in rows]

    # --- offline messages (XEP-0160) --------------------------------------------

    def storeOfflineMessage(
        self, account: str, stanza: str, stamp: float, maxMessages: int = 0
    ) -> bool:
        """
        See L{IOfflineStore.storeOfflineMessage}; the count and the insert
        are one transaction.

        @return: C{True} when stored; C{False} for an unknown account or
            one with C{maxMessages > 0} messages stored already.
        @raise ValueError: a bad stanza (see L{checkOfflineStanza}).
        """
        checkOfflineStanza(stanza)
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
                return False
            if maxMessages > 0:
                (count,) = conn.execute(
                    "SELECT count(*) FROM offline_messages WHERE account = ?", (account,)
                ).fetchone()
                if count >= maxMessages:
                    return False
            conn.execute(
                "INSERT INTO offline_messages (account, stanza, stamp) VALUES (?, ?, ?)",
                (account, stanza, float(stamp)),
            )
        return True

    def takeOfflineMessages(self, account: str) -> list[OfflineMessage]:
        """
        Remove and return the stored messages of C{account}, oldest first,
        in one transaction: a message stored meanwhile is either taken or
        stays, never lost.
        """
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT id, stanza, stamp FROM offline_messages WHERE account = ? ORDER BY id",
                (account,),
            ).fetchall()
            conn.execute("DELETE FROM offline_messages WHERE account = ?", (account,))
        return [OfflineMessage(int(id_), stanza, float(stamp)) for id_, stanza, stamp in rows]

    def countOfflineMessages(self, account: str) -> int:
        """
        See L{IOfflineStore.countOfflineMessages}.
        """
        (count,) = self._conn.execute(
            "SELECT count(*) FROM offline_messages WHERE account = ?", (account,)
        ).fetchone()
        return int(count)

    # --- block lists (XEP-0191) ------------------------------------------------------

    def getBlockList(self, account: str) -> list[str]:
        """
        See L{IBlockingStore.getBlockList}.

        @return: the JIDs C{account} blocks, sorted.
        """
        rows = self._conn.execute(
            "SELECT jid FROM blocked_jids WHERE account = ? ORDER BY jid", (account,)
        )
        return [jid for (jid,) in rows]

    def blockJIDs(self, account: str, jids: Sequence[str], maxItems: int = 0) -> list[str]:
        """
        Add C{jids} to the block list, all or none, in one transaction; see
        L{IBlockingStore.blockJIDs}.

        @return: the JIDs newly added, sorted.
        @raise NoSuchAccount: C{account} is not registered.
        @raise BlockListFull: C{maxItems > 0} and they would not fit.
        @raise ValueError: a bad JID (see L{checkBlockedJIDs}).
        """
        wanted = checkBlockedJIDs(jids)
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
                raise NoSuchAccount(account)
            blocked = {
                jid
                for (jid,) in conn.execute(
                    "SELECT jid FROM blocked_jids WHERE account = ?", (account,)
                )
            }
            new = sorted(set(wanted) - blocked)
            if maxItems > 0 and len(blocked) + len(new) > maxItems:
                raise BlockListFull(
                    f"the block list of {account} holds {len(blocked)} JIDs;"
                    f" {len(new)} more would exceed {maxItems}"
                )
            conn.executemany(
                "INSERT INTO blocked_jids (account, jid) VALUES (?, ?)",
                [(account, jid) for jid in new],
            )
        return new

    def unblockJIDs(self, account: str, jids: Sequence[str] | None = None) -> list[str]:
        """
        Remove C{jids}, or every JID when C{None}, from the block list; see
        L{IBlockingStore.unblockJIDs}.

        @return: the JIDs removed, sorted (those that were blocked).
        @raise ValueError: a bad JID (see L{checkBlockedJIDs}).
        """
        wanted = None if jids is None else checkBlockedJIDs(jids)
        with self._transaction() as conn:
            if wanted is None:
                removed = [
                    jid
                    for (jid,) in conn.execute(
                        "SELECT jid FROM blocked_jids WHERE account = ? ORDER BY jid", (account,)
                    ).fetchall()
                ]
                conn.execute("DELETE FROM blocked_jids WHERE account = ?", (account,))
                return removed
            # One statement per JID: a list of any length, with no limit on
            # the number of SQL parameters to worry about.
            return sorted(
                jid
                for jid in wanted
                if conn.execute(
                    "DELETE FROM blocked_jids WHERE account = ? AND jid = ?", (account, jid)
                ).rowcount
            )

    # --- vCards (XEP-0054) ----------------------------------------------------------

    def getVCard(self, account: str) -> str | None:
        """
        See L{IVCardStore.getVCard}.
        """
        row = self._conn.execute("SELECT xml FROM vcards WHERE account = ?", (account,)).fetchone()
        return None if row is None else str(row[0])

    def setVCard(self, account: str, xml: str | None) -> None:
        """
        See L{IVCardStore.setVCard}.

        @raise NoSuchAccount: C{account} is not registered (and C{xml} is
            not C{None}).
        @raise ValueError: C{xml} is not a string of at most
            L{MAX_STORED_XML_BYTES} bytes.
        """
        if xml is not None:
            checkStoredXML(xml, "a vCard")
        with self._transaction() as conn:
            if xml is None:
                conn.execute("DELETE FROM vcards WHERE account = ?", (account,))
                return
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
                raise NoSuchAccount(account)
            conn.execute(
                "INSERT INTO vcards (account, xml) VALUES (?, ?)"
                " ON CONFLICT (account) DO UPDATE SET xml = excluded.xml",
                (account, xml),
            )

    # --- private XML storage (XEP-0049) -----------------------------------------------

    def getPrivate(self, account: str, namespace: str) -> str | None:
        """
        See L{IPrivateStore.getPrivate}.
        """
        row = self._conn.execute(
            "SELECT xml FROM private_xml WHERE account = ? AND namespace = ?", (account, namespace)
        ).fetchone()
        return None if row is None else str(row[0])

    def setPrivate(self, account: str, namespace: str, xml: str | None, maxBytes: int = 0) -> None:
        """
        See L{IPrivateStore.setPrivate}; the total and the change are one
        transaction.

        @raise NoSuchAccount: C{account} is not registered (and C{xml} is
            not C{None}).
        @raise PrivateStorageFull: C{maxBytes > 0} and the total would
            exceed it.
        @raise ValueError: a bad namespace or fragment (see
            L{checkPrivateNamespace}, L{checkStoredXML}).
        """
        checkPrivateNamespace(namespace)
        size = 0 if xml is None else checkStoredXML(xml, "a private XML fragment")
        with self._transaction() as conn:
            if xml is None:
                conn.execute(
                    "DELETE FROM private_xml WHERE account = ? AND namespace = ?", (account, namespace)
                )
                return
            if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
                raise NoSuchAccount(account)
            if maxBytes > 0:
                (others,) = conn.execute(
                    "SELECT coalesce(sum(size), 0) FROM private_xml WHERE account = ? AND namespace != ?",
                    (account, namespace),
                ).fetchone()
                if int(others) + size > maxBytes:
                    raise PrivateStorageFull(
                        f"the private XML storage of {account} holds {int(others)} bytes besides"
                        f" {namespace!r}; {size} more would exceed {maxBytes}"
                    )
            conn.execute(
                "INSERT INTO private_xml (account, namespace, xml, size) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account, namespace) DO UPDATE SET xml = excluded.xml, size = excluded.size",
                (account, namespace, xml, size),
            )

    # --- personal eventing (XEP-0163) -------------------------------------------------

    def listPEPNodes(self, account: str) -> list[PEPNode]:
        """
        See L{IPEPStore.listPEPNodes}.

        @return: the nodes of C{account}, sorted by identifier (code
            point order); empty for an unknown account.
        """
        rows = self._conn.execute(
            "SELECT node, config_json FROM pep_nodes WHERE account = ? ORDER BY node", (account,)
        ).fetchall()
        return [_pepNodeFromRow(row) for row in rows]

    def getPEPNode(self, account: str, node: str) -> PEPNode | None:
        """
        See L{IPEPStore.getPEPNode}.
        """
        row = self._conn.execute(
            "SELECT node, config_json FROM pep_nodes WHERE account = ? AND node = ?", (account, node)
        ).fetchone()
        return None if row is None else _pepNodeFromRow(row)

    def _createPEPNode(
        self, conn: sqlite3.Connection, account: str, node: str, config: dict[str, str], maxNodes: int
    ) -> None:
        """
        Create a node, inside the caller's write transaction, which has
        found it missing.
        """
        if not conn.execute("SELECT 1 FROM accounts WHERE jid = ?", (account,)).fetchone():
            raise NoSuchAccount(account)
        if maxNodes > 0:
            (count,) = conn.execute(
                "SELECT count(*) FROM pep_nodes WHERE account = ?", (account,)
            ).fetchone()
            if count >= maxNodes:
                raise PEPNodeLimitReached(f"{account} has {count} PEP nodes, the most it may have")
        conn.execute(
            "INSERT INTO pep_nodes (account, node, config_json) VALUES (?, ?, ?)",
            (account, node, _configJSON(config)),
        )

    def createPEPNode(
        self, account: str, node: str, config: Mapping[str, str], maxNodes: int = 0
    ) -> None:
        """
        See L{IPEPStore.createPEPNode}; the checks and the insert are one
        transaction.

        @raise NoSuchAccount: C{account} is not registered.
        @raise PEPNodeExists: it has a node C{node} (whatever C{maxNodes}).
        @raise PEPNodeLimitReached: C{maxNodes > 0} and it has that many.
        @raise ValueError: a bad node identifier or configuration (see
            L{checkPEPNodeName}, L{checkPEPConfig}).
        """
        checkPEPNodeName(node)
        checked = checkPEPConfig(config)
        with self._transaction() as conn:
            if _pepNodeExists(conn, account, node):
                raise PEPNodeExists(f"{account} has a PEP node {node!r} already")
            self._createPEPNode(conn, account, node, checked, maxNodes)

    def configurePEPNode(
        self, account: str, node: str, config: Mapping[str, str], maxItems: int = 0
    ) -> None:
        """
        See L{IPEPStore.configurePEPNode}: the new configuration and the
        trimming are one transaction.

        @raise NoSuchPEPNode: C{account} has no node C{node}.
        @raise ValueError: a bad configuration (see L{checkPEPConfig}).
        """
        checked = checkPEPConfig(config)
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE pep_nodes SET config_json = ? WHERE account = ? AND node = ?",
                (_configJSON(checked), account, node),
            ).rowcount
            if updated == 0:
                raise _noSuchNode(account, node)
            _trimPEPItems(conn, account, node, maxItems)

    def deletePEPNode(self, account: str, node: str) -> bool:
        """
        See L{IPEPStore.deletePEPNode}: its items go with it (C{ON DELETE
        CASCADE}).

        @return: whether there was such a node.
        """
        with self._transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM pep_nodes WHERE account = ? AND node = ?", (account, node)
            ).rowcount
        return deleted > 0

    def publishPEPItem(
        self,
        account: str,
        node: str,
        item: PEPItem,
        maxItems: int = 0,
        createConfig: Mapping[str, str] | None = None,
        maxNodes: int = 0,
        maxBytes: int = 0,
    ) -> bool:
        """
        See L{IPEPStore.publishPEPItem}. Creating the node, replacing an
        item of the same id, inserting, trimming to C{maxItems} and the
        check against C{maxBytes} are one transaction: a failure in any of
        them leaves the node as it was (and not created).

        The item gets the node's highest C{seq} plus one, so it is the
        newest, also when it replaces an item with its id.

        The account's total is read once, before the change (every item of
        the account, through C{pep_items_seq}); the total after is that
        minus the item replaced and the items trimmed, plus the new one.

        @return: whether the node was created by this call.
        @raise NoSuchPEPNode: no node C{node} and C{createConfig} is
            C{None} (also for an unknown account).
        @raise NoSuchAccount: no node C{node}, C{createConfig} is given and
            C{account} is not registered.
        @raise PEPNodeLimitReached: the node would be created and
            C{maxNodes > 0} nodes exist already.
        @raise PEPStorageFull: C{maxBytes > 0} and the account's items
            would take more (see L{IPEPStore.publishPEPItem}).
        @raise ValueError: a bad node identifier, item or configuration
            (see L{checkPEPNodeName}, L{checkPEPItem}, L{checkPEPConfig}).
        """
        checkPEPNodeName(node)
        item = checkPEPItem(item)
        checkedConfig = None if createConfig is None else checkPEPConfig(createConfig)
        with self._transaction() as conn:
            created = False
            if not _pepNodeExists(conn, account, node):
                if checkedConfig is None:
                    raise _noSuchNode(account, node)
                self._createPEPNode(conn, account, node, checkedConfig, maxNodes)
                created = True
            before = replaced = 0
            if maxBytes > 0:
                (before,) = conn.execute(
                    f"SELECT coalesce(sum({_PEP_ITEM_BYTES}), 0) FROM pep_items WHERE account = ?",
                    (account,),
                ).fetchone()
                row = conn.execute(
                    f"SELECT {_PEP_ITEM_BYTES} FROM pep_items"
                    " WHERE account = ? AND node = ? AND item_id = ?",
                    (account, node, item.id),
                ).fetchone()
                replaced = 0 if row is None else int(row[0])
            (last,) = conn.execute(
                "SELECT max(seq) FROM pep_items WHERE account = ? AND node = ?", (account, node)
            ).fetchone()
            conn.execute(
                "INSERT INTO pep_items (account, node, item_id, seq, payload, publisher, published)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (account, node, item_id) DO UPDATE SET seq = excluded.seq,"
                " payload = excluded.payload, publisher = excluded.publisher,"
                " published = excluded.published",
                (
                    account,
                    node,
                    item.id,
                    (last or 0) + 1,
                    item.payload,
                    item.publisher,
                    _publishedToMicroseconds(item.published),
                ),
            )
            trimmed = _trimPEPItems(conn, account, node, maxItems, measure=maxBytes > 0)
            if maxBytes > 0:
                after = int(before) - replaced - trimmed + pepItemBytes(item)
                if after > maxBytes and after > int(before):
                    # Raised inside the transaction: it is rolled back.
                    raise PEPStorageFull(
                        f"the PEP items of {account} would take {after} bytes, more than {maxBytes}"
                    )
        return created

    def getPEPItems(
        self,
        account: str,
        node: str,
        itemIds: Sequence[str] | None = None,
        maxItems: int = 0,
    ) -> list[PEPItem]:
        """
        See L{IPEPStore.getPEPItems}; the node and its items come from one
        snapshot. The newest C{maxItems} are read from the end of the index
        C{pep_items_seq}, items by id through the primary key: neither
        reads the other items of the node.

        @return: the items, newest first.
        @raise NoSuchPEPNode: C{account} has no node C{node}.
        @raise ValueError: a bad item id in C{itemIds} (see
            L{checkPEPItemIds}).
        """
        wanted = None if itemIds is None else checkPEPItemIds(itemIds)
        with self._readTransaction() as conn:
            if not _pepNodeExists(conn, account, node):
                raise _noSuchNode(account, node)
            if wanted is None:
                rows = conn.execute(
                    f"SELECT {_PEP_ITEM_COLUMNS} FROM pep_items WHERE account = ? AND node = ?"
                    " ORDER BY seq DESC LIMIT ?",
                    (account, node, maxItems if maxItems > 0 else -1),
                ).fetchall()
            else:
                # One statement per id: a list of any length, with no limit
                # on the number of SQL parameters to worry about.
                found = []
                for itemId in wanted:
                    row = conn.execute(
                        f"SELECT {_PEP_ITEM_COLUMNS} FROM pep_items"
                        " WHERE account = ? AND node = ? AND item_id = ?",
                        (account, node, itemId),
                    ).fetchone()
                    if row is not None:
                        found.append(row)
                found.sort(key=lambda row: row[0], reverse=True)
                rows = found[:maxItems] if maxItems > 0 else found
        return [_pepItemFromRow(row) for row in rows]

    def retractPEPItem(self, account: str, node: str, itemId: str) -> bool:
        """
        See L{IPEPStore.retractPEPItem}.

        @return: whether the node had such an item.
        @raise NoSuchPEPNode: C{account} has no node C{node}.
        """
        with self._transaction() as conn:
            if not _pepNodeExists(conn, account, node):
                raise _noSuchNode(account, node)
            deleted = conn.execute(
                "DELETE FROM pep_items WHERE account = ? AND node = ? AND item_id = ?",
                (account, node, itemId),
            ).rowcount
        return deleted > 0

    def purgePEPNode(self, account: str, node: str) -> None:
        """
        See L{IPEPStore.purgePEPNode}.

        @raise NoSuchPEPNode: C{account} has no node C{node}.
        """
        with self._transaction() as conn:
            if not _pepNodeExists(conn, account, node):
                raise _noSuchNode(account, node)
            conn.execute("DELETE FROM pep_items WHERE account = ? AND node = ?", (account, node))

    def close(self) -> None:
        """
        Close the connection. Idempotent.
        """
        self._conn.close()


#: The columns of C{pep_items} that L{_pepItemFromRow} reads, in order
#: (C{seq} first, for sorting; it is not part of the item).
_PEP_ITEM_COLUMNS = "seq, item_id, payload, publisher, published"


def _pepItemFromRow(row: Sequence[Any]) -> PEPItem:
    _seq, itemId, payload, publisher, published = row
    return PEPItem(
        id=itemId,
        payload=payload,
        publisher=publisher,
        published=_publishedFromMicroseconds(int(published)),
    )


def _pepNodeFromRow(row: Sequence[Any]) -> PEPNode:
    node, configJSON = row
    return PEPNode(node=node, config=json.loads(configJSON))


def _configJSON(config: Mapping[str, str]) -> str:
    return json.dumps(dict(config), ensure_ascii=False, sort_keys=True)


def _pepNodeExists(conn: sqlite3.Connection, account: str, node: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pep_nodes WHERE account = ? AND node = ?", (account, node)
    ).fetchone()
    return row is not None


def _noSuchNode(account: str, node: str) -> NoSuchPEPNode:
    return NoSuchPEPNode(f"{account} has no PEP node {node!r}")


#: The bytes of an item in C{pep_items}, as L{pepItemBytes} counts them.
_PEP_ITEM_BYTES = (
    "length(CAST(item_id AS BLOB)) + length(CAST(payload AS BLOB)) + length(CAST(publisher AS BLOB))"
)


def _trimPEPItems(
    conn: sqlite3.Connection, account: str, node: str, maxItems: int, measure: bool = False
) -> int:
    """
    Keep only the C{maxItems} newest items of a node (all for 0 or less),
    inside the caller's write transaction. The oldest item kept is found
    by walking C{pep_items_seq} back from the newest; the older ones are
    deleted through the same index.

    @param measure: whether to count the bytes of the items deleted.
    @return: those bytes (L{pepItemBytes}), 0 when not C{measure}.
    """
    if maxItems <= 0:
        return 0
    oldestKept = (
        "SELECT seq FROM pep_items WHERE account = ? AND node = ? ORDER BY seq DESC LIMIT 1 OFFSET ?"
    )
    parameters = (account, node, account, node, maxItems - 1)
    trimmed = 0
    if measure:
        (trimmed,) = conn.execute(
            f"SELECT coalesce(sum({_PEP_ITEM_BYTES}), 0) FROM pep_items"
            f" WHERE account = ? AND node = ? AND seq < ({oldestKept})",
            parameters,
        ).fetchone()
    conn.execute(
        f"DELETE FROM pep_items WHERE account = ? AND node = ? AND seq < ({oldestKept})", parameters
    )
    return int(trimmed)


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


@implementer(
    IAccountStore,
    ICertificateStore,
    IAuditLog,
    IRosterStore,
    IOfflineStore,
    IBlockingStore,
    IVCardStore,
    IPrivateStore,
    IPEPStore,
)
class SQLiteStore:
    """
    L{IAccountStore}, L{ICertificateStore}, L{IAuditLog}, L{IRosterStore},
    L{IOfflineStore}, L{IBlockingStore}, L{IVCardStore}, L{IPrivateStore}
    and L{IPEPStore} on an SQLite file, for code running on the reactor.

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
        #: Seconds between writes of last-used times (L{touchCertificate}).
        self.touchInterval = TOUCH_INTERVAL
        self._touches: dict[str, float] = {}
        self._touchWaiters: list[defer.Deferred[None]] = []
        self._touchCall: Any = None

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
        if not self._closed:
            # Queued ahead of the database's closing.
            self._flushTouches()
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
        # A login waiting for its batch was made with an earlier record of
        # this fingerprint (removed since): not a use of the new one.
        self._touches.pop(fingerprint, None)
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
        See L{ICertificateStore.touchCertificate}. Logins are written
        together, at most every L{touchInterval} seconds, in one transaction:
        one fsync'd write per login was the largest store cost of a login.
        A crash loses at most that much of last-used times, which change no
        state; L{close} writes what is pending.

        @return: Deferred firing once the batch with this login is written.
        """
        if self._closed:
            return defer.fail(StoreError(f"the store {self.path} is closed"))
        if when > self._touches.get(fingerprint, when - 1):
            self._touches[fingerprint] = when
        waiter: defer.Deferred[None] = defer.Deferred()
        self._touchWaiters.append(waiter)
        if self._touchCall is None:
            self._touchCall = self._reactor.callLater(self.touchInterval, self._flushTouches)
        return waiter

    def _flushTouches(self) -> defer.Deferred[None]:
        if self._touchCall is not None and self._touchCall.active():
            self._touchCall.cancel()
        self._touchCall = None
        touches, waiters = self._touches, self._touchWaiters
        self._touches, self._touchWaiters = {}, []
        if not waiters:
            return defer.succeed(None)
        written = self._run(lambda db: db.touchCertificates(touches.items()))

        def tell(result: object) -> None:
            for waiter in waiters:
                if isinstance(result, failure.Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)

        written.addBoth(tell)
        return written

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

    def getRoster(self, account: str) -> defer.Deferred[tuple[int, list[RosterItem]]]:
        """
        See L{IRosterStore.getRoster}.
        """
        return self._read(lambda db: db.getRoster(account))

    def getRosterItem(self, account: str, contact: str) -> defer.Deferred[RosterItem | None]:
        """
        See L{IRosterStore.getRosterItem}.
        """
        return self._read(lambda db: db.getRosterItem(account, contact))

    def putRosterItem(
        self, account: str, item: RosterItem, maxItems: int = 0
    ) -> defer.Deferred[int]:
        """
        See L{IRosterStore.putRosterItem} and L{SQLiteDatabase.putRosterItem}.
        """
        try:
            # Checked here, and its groups copied into a tuple: the caller
            # may change its list while the thread works.
            checked = checkRosterItem(item)
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.putRosterItem(account, checked, maxItems))

    def removeRosterItem(self, account: str, contact: str) -> defer.Deferred[int]:
        """
        See L{IRosterStore.removeRosterItem}.
        """
        return self._run(lambda db: db.removeRosterItem(account, contact))

    def rosterItemsWith(self, contact: str) -> defer.Deferred[list[tuple[str, RosterItem]]]:
        """
        See L{IRosterStore.rosterItemsWith}.
        """
        return self._read(lambda db: db.rosterItemsWith(contact))

    def storeOfflineMessage(
        self, account: str, stanza: str, stamp: float, maxMessages: int = 0
    ) -> defer.Deferred[bool]:
        """
        See L{IOfflineStore.storeOfflineMessage}.
        """
        return self._run(lambda db: db.storeOfflineMessage(account, stanza, stamp, maxMessages))

    def takeOfflineMessages(self, account: str) -> defer.Deferred[list[OfflineMessage]]:
        """
        See L{IOfflineStore.takeOfflineMessages}.
        """
        return self._run(lambda db: db.takeOfflineMessages(account))

    def countOfflineMessages(self, account: str) -> defer.Deferred[int]:
        """
        See L{IOfflineStore.countOfflineMessages}.
        """
        return self._read(lambda db: db.countOfflineMessages(account))

    def getBlockList(self, account: str) -> defer.Deferred[list[str]]:
        """
        See L{IBlockingStore.getBlockList}.
        """
        return self._read(lambda db: db.getBlockList(account))

    def blockJIDs(
        self, account: str, jids: Sequence[str], maxItems: int = 0
    ) -> defer.Deferred[list[str]]:
        """
        See L{IBlockingStore.blockJIDs} and L{SQLiteDatabase.blockJIDs}.
        """
        try:
            # Checked and copied here: the caller may change its list while
            # the thread works.
            wanted = checkBlockedJIDs(jids)
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.blockJIDs(account, wanted, maxItems))

    def unblockJIDs(
        self, account: str, jids: Sequence[str] | None = None
    ) -> defer.Deferred[list[str]]:
        """
        See L{IBlockingStore.unblockJIDs} and L{SQLiteDatabase.unblockJIDs}.
        """
        try:
            wanted = None if jids is None else checkBlockedJIDs(jids)
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.unblockJIDs(account, wanted))

    def getVCard(self, account: str) -> defer.Deferred[str | None]:
        """
        See L{IVCardStore.getVCard}.
        """
        return self._read(lambda db: db.getVCard(account))

    def setVCard(self, account: str, xml: str | None) -> defer.Deferred[None]:
        """
        See L{IVCardStore.setVCard} and L{SQLiteDatabase.setVCard}.
        """
        try:
            if xml is not None:
                checkStoredXML(xml, "a vCard")
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.setVCard(account, xml))

    def getPrivate(self, account: str, namespace: str) -> defer.Deferred[str | None]:
        """
        See L{IPrivateStore.getPrivate}.
        """
        return self._read(lambda db: db.getPrivate(account, namespace))

    def setPrivate(
        self, account: str, namespace: str, xml: str | None, maxBytes: int = 0
    ) -> defer.Deferred[None]:
        """
        See L{IPrivateStore.setPrivate} and L{SQLiteDatabase.setPrivate}.
        """
        try:
            checkPrivateNamespace(namespace)
            if xml is not None:
                checkStoredXML(xml, "a private XML fragment")
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.setPrivate(account, namespace, xml, maxBytes))

    def listPEPNodes(self, account: str) -> defer.Deferred[list[PEPNode]]:
        """
        See L{IPEPStore.listPEPNodes}.
        """
        return self._read(lambda db: db.listPEPNodes(account))

    def getPEPNode(self, account: str, node: str) -> defer.Deferred[PEPNode | None]:
        """
        See L{IPEPStore.getPEPNode}.
        """
        return self._read(lambda db: db.getPEPNode(account, node))

    def createPEPNode(
        self, account: str, node: str, config: Mapping[str, str], maxNodes: int = 0
    ) -> defer.Deferred[None]:
        """
        See L{IPEPStore.createPEPNode} and L{SQLiteDatabase.createPEPNode}.
        """
        try:
            # Checked and copied here: the caller may change its mapping
            # while the thread works.
            checkPEPNodeName(node)
            checked = checkPEPConfig(config)
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.createPEPNode(account, node, checked, maxNodes))

    def configurePEPNode(
        self, account: str, node: str, config: Mapping[str, str], maxItems: int = 0
    ) -> defer.Deferred[None]:
        """
        See L{IPEPStore.configurePEPNode} and
        L{SQLiteDatabase.configurePEPNode}.
        """
        try:
            checked = checkPEPConfig(config)
        except ValueError as e:
            return defer.fail(e)
        return self._run(lambda db: db.configurePEPNode(account, node, checked, maxItems))

    def deletePEPNode(self, account: str, node: str) -> defer.Deferred[bool]:
        """
        See L{IPEPStore.deletePEPNode}.
        """
        return self._run(lambda db: db.deletePEPNode(account, node))

    def publishPEPItem(
        self,
        account: str,
        node: str,
        item: PEPItem,
        maxItems: int = 0,
        createConfig: Mapping[str, str] | None = None,
        maxNodes: int = 0,
        maxBytes: int = 0,
    ) -> defer.Deferred[bool]:
        """
        See L{IPEPStore.publishPEPItem} and L{SQLiteDatabase.publishPEPItem}.
        """
        try:
            checkPEPNodeName(node)
            checked = checkPEPItem(item)
            config = None if createConfig is None else checkPEPConfig(createConfig)
        except ValueError as e:
            return defer.fail(e)
        return self._run(
            lambda db: db.publishPEPItem(account, node, checked, maxItems, config, maxNodes, maxBytes)
        )

    def getPEPItems(
        self,
        account: str,
        node: str,
        itemIds: Sequence[str] | None = None,
        maxItems: int = 0,
    ) -> defer.Deferred[list[PEPItem]]:
        """
        See L{IPEPStore.getPEPItems} and L{SQLiteDatabase.getPEPItems}.
        """
        try:
            wanted = None if itemIds is None else checkPEPItemIds(itemIds)
        except ValueError as e:
            return defer.fail(e)
        return self._read(lambda db: db.getPEPItems(account, node, wanted, maxItems))

    def retractPEPItem(self, account: str, node: str, itemId: str) -> defer.Deferred[bool]:
        """
        See L{IPEPStore.retractPEPItem}.
        """
        return self._run(lambda db: db.retractPEPItem(account, node, itemId))

    def purgePEPNode(self, account: str, node: str) -> defer.Deferred[None]:
        """
        See L{IPEPStore.purgePEPNode}.
        """
        return self._run(lambda db: db.purgePEPNode(account, node))

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
        self._flushTouches()
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
    "TOUCH_INTERVAL",
    "MAX_JID_BYTES",
    "MAX_OFFLINE_STANZA_BYTES",
    "MAX_PEP_CONFIG_BYTES",
    "MAX_PRIVATE_NAMESPACE_BYTES",
    "MAX_ROSTER_GROUPS",
    "MAX_ROSTER_TEXT_BYTES",
    "MAX_STORED_XML_BYTES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteDatabase",
    "SQLiteStore",
    "SchemaVersionError",
    "checkBlockedJIDs",
    "checkOfflineStanza",
    "checkPEPConfig",
    "checkPEPItem",
    "checkPEPItemId",
    "checkPEPItemIds",
    "checkPEPNodeName",
    "checkPrivateNamespace",
    "checkRosterItem",
    "checkStoredJID",
    "checkStoredXML",
]
