# -*- test-case-name: tests.test_store -*-
"""
Test doubles for code that uses xmppcert, importable without pytest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from twisted.internet import defer
from zope.interface import implementer

from xmppcert.store.interfaces import (
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
from xmppcert.store.sqlite import (
    checkBlockedJIDs,
    checkOfflineStanza,
    checkPEPConfig,
    checkPEPItem,
    checkPEPItemIds,
    checkPEPNodeName,
    checkPrivateNamespace,
    checkRosterItem,
    checkStoredXML,
)

_T = TypeVar("_T")


def _nameExists(account: str, name: str) -> CertificateExists:
    return CertificateExists(
        "name", f"a certificate named {name!r} is already registered for {account}"
    )


def _checkMechanisms(credentials: Sequence[ScramCredential]) -> None:
    mechanisms = [c.mechanism for c in credentials]
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"more than one credential for a mechanism: {mechanisms}")


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
class InMemoryAccountStore:
    """
    An L{IAccountStore}, L{ICertificateStore}, L{IRosterStore},
    L{IOfflineStore}, L{IBlockingStore}, L{IVCardStore}, L{IPrivateStore}
    and L{IPEPStore} in dicts, behaving like
    L{xmppcert.store.sqlite.SQLiteStore} (the same results, the same
    errors) but answering at once: every method returns an already-fired
    Deferred.

    @ivar accounts: bare JID to (mechanism to L{ScramCredential}); tests may
        read and change it directly.
    @ivar certificates: fingerprint to L{StoredCertificate}, in the order
        they were added (which stands in for SQLite's row id); tests may
        read it, and change it (what they put in directly is not reported by
        L{changesSince}).
    @ivar clock: returns the current time as a POSIX timestamp, for the
        creation and change times of certificates.
    @ivar closed: whether L{close} was called.
    @ivar rosters: account to (contact to L{RosterItem}); tests may read it.
    @ivar rosterVersions: account to its roster version (missing means 0).
    @ivar offline: account to its stored L{OfflineMessage}s, oldest first.
    @ivar blocked: account to the set of JIDs it blocks.
    @ivar vcards: account to its vCard (serialized XML).
    @ivar private: account to (namespace to its private XML fragment).
    @ivar pepNodes: account to (PEP node identifier to its configuration).
    @ivar pepItems: C{(account, node)} to (item id to L{PEPItem}), oldest
        first; a node without items may have no entry.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """
        @param clock: returns the current time as a POSIX timestamp.
        """
        self.accounts: dict[str, dict[str, ScramCredential]] = {}
        self.certificates: dict[str, StoredCertificate] = {}
        self.clock = clock
        self._fakeCredentialSecret = os.urandom(32)
        self.closed = False
        # Like meta.change_seq in SQLite: never 0, so cursor 0 means "now".
        self._changeCounter = 1
        self._changeSeqs: dict[str, int] = {}
        #: Fingerprint to notAfter of every certificate ever revoked: the
        #: revocation outlives the record (L{isCertificateRevoked}).
        self.revoked: dict[str, float] = {}
        #: Locked accounts (bare JIDs).
        self.locked: set[str] = set()
        #: The audit trail, oldest first.
        self.audit: list[AuditEntry] = []
        self.rosters: dict[str, dict[str, RosterItem]] = {}
        self.rosterVersions: dict[str, int] = {}
        self.offline: dict[str, list[OfflineMessage]] = {}
        # Like SQLite's AUTOINCREMENT: ids start at 1 and are never reused.
        self._lastOfflineId = 0
        self.blocked: dict[str, set[str]] = {}
        self.vcards: dict[str, str] = {}
        self.private: dict[str, dict[str, str]] = {}
        self.pepNodes: dict[str, dict[str, dict[str, str]]] = {}
        self.pepItems: dict[tuple[str, str], dict[str, PEPItem]] = {}

    def _check(self) -> None:
        if self.closed:
            raise StoreError("the store is closed")

    def _answer(self, f: Callable[[], _T]) -> defer.Deferred[_T]:
        """
        Call C{f} on an open store and return its result or exception as a
        fired Deferred.
        """
        try:
            self._check()
            result = f()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(result)

    def _find(self, account: str, name: str) -> StoredCertificate | None:
        """
        The certificate C{name} refers to in C{account}: the enabled one,
        else the most recently changed, else the most recently added.
        """
        named = [
            (c.state == "enabled", c.changedAt, position, c)
            for position, c in enumerate(self.certificates.values())
            if c.account == account and c.name == name
        ]
        if not named:
            return None
        return max(named, key=lambda entry: entry[:3])[3]

    def _enabledNamesake(self, certificate: StoredCertificate) -> bool:
        return any(
            c.account == certificate.account
            and c.name == certificate.name
            and c.state == "enabled"
            and c.fingerprint != certificate.fingerprint
            for c in self.certificates.values()
        )

    def _changeState(self, current: StoredCertificate, state: str) -> StoredCertificate:
        checkTransition(current.state, state, current.name)
        if current.state == state:
            return current
        if state == "enabled" and self._enabledNamesake(current):
            raise _nameExists(current.account, current.name)
        if state == "revoked":
            self.revoked[current.fingerprint] = current.notAfter
        return self._changed(replace(current, state=state, changedAt=self.clock()))

    def _changed(self, certificate: StoredCertificate) -> StoredCertificate:
        self._changeCounter += 1
        self.certificates[certificate.fingerprint] = certificate
        self._changeSeqs[certificate.fingerprint] = self._changeCounter
        return certificate

    def _forget(self, fingerprint: str) -> None:
        del self.certificates[fingerprint]
        self._changeSeqs.pop(fingerprint, None)

    def addAccount(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.addAccount}.
        """
        try:
            self._check()
            _checkMechanisms(credentials)
            if jid in self.accounts:
                raise AccountExists(jid)
        except Exception as e:
            return defer.fail(e)
        self.accounts[jid] = {c.mechanism: c for c in credentials}
        return defer.succeed(None)

    def setCredentials(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.setCredentials}.
        """
        try:
            self._check()
            _checkMechanisms(credentials)
            if jid not in self.accounts:
                raise NoSuchAccount(jid)
        except Exception as e:
            return defer.fail(e)
        self.accounts[jid] = {c.mechanism: c for c in credentials}
        return defer.succeed(None)

    def removeAccount(self, jid: str) -> defer.Deferred[None]:
        """
        See L{IAccountStore.removeAccount}.
        """
        try:
            self._check()
            del self.accounts[jid]
        except KeyError:
            return defer.fail(NoSuchAccount(jid))
        except Exception as e:
            return defer.fail(e)
        self.locked.discard(jid)
        # Like ON DELETE CASCADE: the certificates go with the account.
        for certificate in list(self.certificates.values()):
            if certificate.account == jid:
                self._forget(certificate.fingerprint)
        self.rosters.pop(jid, None)
        self.rosterVersions.pop(jid, None)
        self.offline.pop(jid, None)
        self.blocked.pop(jid, None)
        self.vcards.pop(jid, None)
        self.private.pop(jid, None)
        for node in self.pepNodes.pop(jid, {}):
            self.pepItems.pop((jid, node), None)
        # RFC 6121 section 2.5.2: the deleted account leaves every other
        # roster, and those rosters change version.
        for account, roster in self.rosters.items():
            if roster.pop(jid, None) is not None:
                self._bumpRosterVersion(account)
        return defer.succeed(None)

    def accountExists(self, jid: str) -> defer.Deferred[bool]:
        """
        See L{IAccountStore.accountExists}.
        """
        try:
            self._check()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(jid in self.accounts)

    def listAccounts(self, domain: str | None = None) -> defer.Deferred[list[str]]:
        """
        See L{IAccountStore.listAccounts}.
        """
        try:
            self._check()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(
            sorted(
                jid
                for jid in self.accounts
                if domain is None or jid.partition("@")[2] == domain
            )
        )

    def getScramCredential(
        self, jid: str, mechanism: str
    ) -> defer.Deferred[ScramCredential | None]:
        """
        See L{IAccountStore.getScramCredential}.
        """
        try:
            self._check()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(self.accounts.get(jid, {}).get(mechanism))

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
        See L{ICertificateStore.addCertificate}: every check comes before
        the change, so a failing add changes nothing (with
        C{replaceDisabled}, the disabled record it would replace stays, as
        SQLite's rollback keeps it).
        """

        def add() -> StoredCertificate:
            stripped = checkCertificateName(name)
            checkFingerprint(fingerprint)
            if account not in self.accounts:
                raise NoSuchAccount(account)
            current = self.certificates.get(fingerprint)
            # The disabled record of this account that SQLite deletes first.
            # It never affects the name check or the limit below (neither
            # counts disabled certificates), so deciding here and deleting
            # after the checks is the same as SQLite's delete-then-rollback.
            replaced = (
                replaceDisabled
                and current is not None
                and current.account == account
                and current.state == "disabled"
            )
            found = self._find(account, stripped)
            if found is not None and found.state == "enabled":
                # XEP-0257 section 2.1: a name already used MUST be
                # rejected; disabled and revoked certificates do not count.
                raise _nameExists(account, stripped)
            if current is not None and not replaced:
                raise CertificateExists("fingerprint", "this certificate is already registered")
            if fingerprint in self.revoked:
                raise CertificateExists("fingerprint", "the certificate was revoked; revocation is final")
            if maxPerAccount > 0:
                count = sum(
                    1
                    for c in self.certificates.values()
                    if c.account == account and c.state == "enabled"
                )
                if count >= maxPerAccount:
                    raise CertificateLimitReached(
                        f"{account} has {count} enabled certificates, the most it may have"
                    )
            now = self.clock()
            if replaced:
                # Forgotten, not overwritten: the new record goes last in
                # the order of addition, like SQLite's new row id.
                self._forget(fingerprint)
            return self._changed(
                StoredCertificate(
                    account=account,
                    name=stripped,
                    fingerprint=fingerprint,
                    der=bytes(der),
                    state="enabled",
                    canManage=bool(canManage),
                    notAfter=float(notAfter),
                    createdAt=now,
                    changedAt=now,
                    lastUsedAt=None,
                )
            )

        return self._answer(add)

    def listCertificates(
        self, account: str, states: Sequence[str] | None = None
    ) -> defer.Deferred[list[StoredCertificate]]:
        """
        See L{ICertificateStore.listCertificates}.
        """

        def list_() -> list[StoredCertificate]:
            wanted = checkCertificateStates(states)
            # sorted() is stable: ties stay in the order they were added.
            return sorted(
                (
                    c
                    for c in self.certificates.values()
                    if c.account == account and (wanted is None or c.state in wanted)
                ),
                key=lambda c: (c.createdAt, c.name),
            )

        return self._answer(list_)

    def getCertificate(
        self, account: str, name: str
    ) -> defer.Deferred[StoredCertificate | None]:
        """
        See L{ICertificateStore.getCertificate}.
        """
        return self._answer(lambda: self._find(account, name.strip()))

    def certificateByFingerprint(
        self, fingerprint: str
    ) -> defer.Deferred[StoredCertificate | None]:
        """
        See L{ICertificateStore.certificateByFingerprint}.
        """
        return self._answer(lambda: self.certificates.get(fingerprint))

    def setCertificateState(
        self, account: str, name: str, state: str
    ) -> defer.Deferred[StoredCertificate]:
        """
        See L{ICertificateStore.setCertificateState}.
        """

        def setState() -> StoredCertificate:
            checkCertificateState(state)
            stripped = name.strip()
            current = self._find(account, stripped)
            if current is None:
                raise NoSuchCertificate(f"no certificate named {stripped!r} for {account}")
            return self._changeState(current, state)

        return self._answer(setState)

    def setCertificateStateByFingerprint(
        self, fingerprint: str, state: str
    ) -> defer.Deferred[StoredCertificate]:
        """
        See L{ICertificateStore.setCertificateStateByFingerprint}.
        """

        def setState() -> StoredCertificate:
            checkCertificateState(state)
            current = self.certificates.get(fingerprint)
            if current is None:
                raise NoSuchCertificate("no certificate with that fingerprint")
            return self._changeState(current, state)

        return self._answer(setState)

    def touchCertificate(self, fingerprint: str, when: float) -> defer.Deferred[None]:
        """
        See L{ICertificateStore.touchCertificate}.
        """

        def touch() -> None:
            current = self.certificates.get(fingerprint)
            if current is not None:
                self.certificates[fingerprint] = replace(current, lastUsedAt=when)

        return self._answer(touch)

    def setAccountLocked(self, jid: str, locked: bool) -> defer.Deferred[None]:
        """
        See L{IAccountStore.setAccountLocked}.
        """

        def lock() -> None:
            if jid not in self.accounts:
                raise NoSuchAccount(jid)
            if locked:
                self.locked.add(jid)
            else:
                self.locked.discard(jid)

        return self._answer(lock)

    def isAccountLocked(self, jid: str) -> defer.Deferred[bool]:
        """
        See L{IAccountStore.isAccountLocked}.
        """
        return self._answer(lambda: jid in self.locked and jid in self.accounts)

    def recordAudit(self, actor: str, action: str, target: str, detail: str = "") -> defer.Deferred[AuditEntry]:
        """
        See L{IAuditLog.recordAudit}.
        """

        def record() -> AuditEntry:
            entry = AuditEntry(self.clock(), actor, action, target, detail)
            self.audit.append(entry)
            return entry

        return self._answer(record)

    def auditTrail(self, target: str | None = None, limit: int = 100) -> defer.Deferred[list[AuditEntry]]:
        """
        See L{IAuditLog.auditTrail}.
        """

        def trail() -> list[AuditEntry]:
            entries = [
                e for e in self.audit
                if target is None or e.target == target or e.target.startswith(target + "/")
            ]
            return entries[-limit:] if limit > 0 else []

        return self._answer(trail)

    def isCertificateRevoked(self, fingerprint: str) -> defer.Deferred[bool]:
        """
        See L{ICertificateStore.isCertificateRevoked}.
        """
        return self._answer(lambda: fingerprint in self.revoked)

    def removeCertificate(self, account: str, name: str) -> defer.Deferred[None]:
        """
        See L{ICertificateStore.removeCertificate}.
        """

        def remove() -> None:
            stripped = name.strip()
            current = self._find(account, stripped)
            if current is None:
                raise NoSuchCertificate(f"no certificate named {stripped!r} for {account}")
            self._forget(current.fingerprint)

        return self._answer(remove)

    def removeCertificateByFingerprint(self, fingerprint: str) -> defer.Deferred[None]:
        """
        See L{ICertificateStore.removeCertificateByFingerprint}.
        """

        def remove() -> None:
            if fingerprint not in self.certificates:
                raise NoSuchCertificate("no certificate with that fingerprint")
            self._forget(fingerprint)

        return self._answer(remove)

    def removeExpiredCertificates(
        self, before: float
    ) -> defer.Deferred[list[StoredCertificate]]:
        """
        See L{ICertificateStore.removeExpiredCertificates}.
        """

        def removeExpired() -> list[StoredCertificate]:
            expired = sorted(
                (c for c in self.certificates.values() if c.notAfter < before),
                key=lambda c: (c.notAfter, c.account, c.name),
            )
            for certificate in expired:
                self._forget(certificate.fingerprint)
            for fingerprint, notAfter in list(self.revoked.items()):
                if notAfter < before:
                    del self.revoked[fingerprint]
            return expired

        return self._answer(removeExpired)

    def changesSince(
        self, cursor: int
    ) -> defer.Deferred[tuple[int, list[StoredCertificate]]]:
        """
        See L{ICertificateStore.changesSince}.
        """

        def changes() -> tuple[int, list[StoredCertificate]]:
            if cursor <= 0:
                return self._changeCounter, []
            changed = sorted(
                (seq, fp) for fp, seq in self._changeSeqs.items() if seq > cursor
            )
            return (
                self._changeCounter,
                [self.certificates[fp] for _, fp in changed],
            )

        return self._answer(changes)

    # --- IRosterStore ------------------------------------------------------------

    def _bumpRosterVersion(self, account: str) -> int:
        version = self.rosterVersions.get(account, 0) + 1
        self.rosterVersions[account] = version
        return version

    def getRoster(self, account: str) -> defer.Deferred[tuple[int, list[RosterItem]]]:
        """
        See L{IRosterStore.getRoster}: C{(0, [])} for an unknown account.
        """

        def get() -> tuple[int, list[RosterItem]]:
            roster = self.rosters.get(account, {})
            return (
                self.rosterVersions.get(account, 0),
                [roster[contact] for contact in sorted(roster)],
            )

        return self._answer(get)

    def getRosterItem(self, account: str, contact: str) -> defer.Deferred[RosterItem | None]:
        """
        See L{IRosterStore.getRosterItem}.
        """
        return self._answer(lambda: self.rosters.get(account, {}).get(contact))

    def putRosterItem(
        self, account: str, item: RosterItem, maxItems: int = 0
    ) -> defer.Deferred[int]:
        """
        See L{IRosterStore.putRosterItem}. Putting an item equal to the
        stored one changes nothing and keeps the version.

        @raise ValueError: (in the Deferred) a bad item; see
            L{xmppcert.store.sqlite.checkRosterItem}.
        """

        def put() -> int:
            checked = checkRosterItem(item)
            if account not in self.accounts:
                raise NoSuchAccount(account)
            roster = self.rosters.setdefault(account, {})
            current = roster.get(checked.contact)
            if current == checked:
                return self.rosterVersions.get(account, 0)
            if current is None and maxItems > 0 and len(roster) >= maxItems:
                raise RosterFull(f"the roster of {account} holds {len(roster)} items, the most it may")
            roster[checked.contact] = checked
            return self._bumpRosterVersion(account)

        return self._answer(put)

    def removeRosterItem(self, account: str, contact: str) -> defer.Deferred[int]:
        """
        See L{IRosterStore.removeRosterItem}: version 0 for an unknown
        account.
        """

        def remove() -> int:
            roster = self.rosters.get(account, {})
            if roster.pop(contact, None) is None:
                return self.rosterVersions.get(account, 0)
            return self._bumpRosterVersion(account)

        return self._answer(remove)

    def rosterItemsWith(self, contact: str) -> defer.Deferred[list[tuple[str, RosterItem]]]:
        """
        See L{IRosterStore.rosterItemsWith}: sorted by account.
        """

        def find() -> list[tuple[str, RosterItem]]:
            return [
                (account, self.rosters[account][contact])
                for account in sorted(self.rosters)
                if contact in self.rosters[account]
            ]

        return self._answer(find)

    # --- IOfflineStore -----------------------------------------------------------

    def storeOfflineMessage(
        self, account: str, stanza: str, stamp: float, maxMessages: int = 0
    ) -> defer.Deferred[bool]:
        """
        See L{IOfflineStore.storeOfflineMessage}.

        @raise ValueError: (in the Deferred) C{stanza} is not a string or
            is absurdly large; see L{xmppcert.store.sqlite.checkOfflineStanza}.
        """

        def store() -> bool:
            checkOfflineStanza(stanza)
            if account not in self.accounts:
                return False
            messages = self.offline.setdefault(account, [])
            if maxMessages > 0 and len(messages) >= maxMessages:
                return False
            self._lastOfflineId += 1
            messages.append(OfflineMessage(self._lastOfflineId, stanza, float(stamp)))
            return True

        return self._answer(store)

    def takeOfflineMessages(self, account: str) -> defer.Deferred[list[OfflineMessage]]:
        """
        See L{IOfflineStore.takeOfflineMessages}.
        """
        return self._answer(lambda: self.offline.pop(account, []))

    def countOfflineMessages(self, account: str) -> defer.Deferred[int]:
        """
        See L{IOfflineStore.countOfflineMessages}.
        """
        return self._answer(lambda: len(self.offline.get(account, [])))

    # --- IBlockingStore ----------------------------------------------------------

    def getBlockList(self, account: str) -> defer.Deferred[list[str]]:
        """
        See L{IBlockingStore.getBlockList}.
        """
        return self._answer(lambda: sorted(self.blocked.get(account, set())))

    def blockJIDs(
        self, account: str, jids: Sequence[str], maxItems: int = 0
    ) -> defer.Deferred[list[str]]:
        """
        See L{IBlockingStore.blockJIDs}.

        @return: Deferred firing with the JIDs newly added, sorted; or
            failing with L{BlockListFull}, L{NoSuchAccount}, or
            C{ValueError} for a bad JID (see
            L{xmppcert.store.sqlite.checkBlockedJIDs}).
        """

        def block() -> list[str]:
            wanted = checkBlockedJIDs(jids)
            if account not in self.accounts:
                raise NoSuchAccount(account)
            blocked = self.blocked.setdefault(account, set())
            new = sorted(set(wanted) - blocked)
            if maxItems > 0 and len(blocked) + len(new) > maxItems:
                raise BlockListFull(
                    f"the block list of {account} holds {len(blocked)} JIDs;"
                    f" {len(new)} more would exceed {maxItems}"
                )
            blocked.update(new)
            return new

        return self._answer(block)

    def unblockJIDs(
        self, account: str, jids: Sequence[str] | None = None
    ) -> defer.Deferred[list[str]]:
        """
        See L{IBlockingStore.unblockJIDs}.

        @return: Deferred firing with the JIDs removed, sorted (empty for
            an unknown account); or failing with C{ValueError} for a bad
            JID.
        """

        def unblock() -> list[str]:
            wanted = None if jids is None else checkBlockedJIDs(jids)
            blocked = self.blocked.get(account, set())
            removed = sorted(blocked if wanted is None else blocked.intersection(wanted))
            blocked.difference_update(removed)
            return removed

        return self._answer(unblock)

    # --- IVCardStore -------------------------------------------------------------

    def getVCard(self, account: str) -> defer.Deferred[str | None]:
        """
        See L{IVCardStore.getVCard}.
        """
        return self._answer(lambda: self.vcards.get(account))

    def setVCard(self, account: str, xml: str | None) -> defer.Deferred[None]:
        """
        See L{IVCardStore.setVCard}.

        @raise ValueError: (in the Deferred) C{xml} is not a string or is
            absurdly large; see L{xmppcert.store.sqlite.checkStoredXML}.
        """

        def store() -> None:
            if xml is None:
                self.vcards.pop(account, None)
                return
            checkStoredXML(xml, "a vCard")
            if account not in self.accounts:
                raise NoSuchAccount(account)
            self.vcards[account] = xml

        return self._answer(store)

    # --- IPrivateStore -----------------------------------------------------------

    def getPrivate(self, account: str, namespace: str) -> defer.Deferred[str | None]:
        """
        See L{IPrivateStore.getPrivate}.
        """
        return self._answer(lambda: self.private.get(account, {}).get(namespace))

    def setPrivate(
        self, account: str, namespace: str, xml: str | None, maxBytes: int = 0
    ) -> defer.Deferred[None]:
        """
        See L{IPrivateStore.setPrivate}.

        @raise ValueError: (in the Deferred) a bad namespace or fragment;
            see L{xmppcert.store.sqlite.checkPrivateNamespace} and
            L{xmppcert.store.sqlite.checkStoredXML}.
        """

        def store() -> None:
            checkPrivateNamespace(namespace)
            if xml is None:
                fragments = self.private.get(account)
                if fragments is not None:
                    fragments.pop(namespace, None)
                    if not fragments:
                        del self.private[account]
                return
            size = checkStoredXML(xml, "a private XML fragment")
            if account not in self.accounts:
                raise NoSuchAccount(account)
            fragments = self.private.get(account, {})
            others = sum(len(v.encode("utf-8")) for k, v in fragments.items() if k != namespace)
            if maxBytes > 0 and others + size > maxBytes:
                raise PrivateStorageFull(
                    f"the private XML storage of {account} holds {others} bytes besides"
                    f" {namespace!r}; {size} more would exceed {maxBytes}"
                )
            self.private.setdefault(account, {})[namespace] = xml

        return self._answer(store)

    # --- IPEPStore --------------------------------------------------------------

    def _pepNodeConfig(self, account: str, node: str) -> dict[str, str]:
        config = self.pepNodes.get(account, {}).get(node)
        if config is None:
            raise NoSuchPEPNode(f"{account} has no PEP node {node!r}")
        return config

    def _checkNewPEPNode(self, account: str, maxNodes: int) -> None:
        """
        Check that C{account} exists and may have one more node; the caller
        creates it once every other check passed too.
        """
        if account not in self.accounts:
            raise NoSuchAccount(account)
        count = len(self.pepNodes.get(account, {}))
        if maxNodes > 0 and count >= maxNodes:
            raise PEPNodeLimitReached(f"{account} has {count} PEP nodes, the most it may have")

    def _trimPEPItems(self, account: str, node: str, maxItems: int) -> None:
        items = self.pepItems.get((account, node), {})
        if maxItems > 0:
            for itemId in list(items)[: max(len(items) - maxItems, 0)]:
                del items[itemId]

    def _pepBytes(self, account: str) -> int:
        return sum(
            pepItemBytes(stored)
            for (owner, _), items in self.pepItems.items()
            if owner == account
            for stored in items.values()
        )

    def _checkPEPBytes(self, account: str, node: str, item: PEPItem, maxItems: int, maxBytes: int) -> None:
        """
        Raise L{PEPStorageFull} when publishing C{item} (replacing the item
        with its id, then trimming to C{maxItems}) would take C{account}'s
        items over C{maxBytes} and over their total now.
        """
        before = self._pepBytes(account)
        items = dict(self.pepItems.get((account, node), {}))
        replaced = items.pop(item.id, None)
        items[item.id] = item
        kept = list(items.values())
        dropped = kept[: max(len(kept) - maxItems, 0)] if maxItems > 0 else []
        after = (
            before
            - (pepItemBytes(replaced) if replaced is not None else 0)
            - sum(pepItemBytes(old) for old in dropped)
            + pepItemBytes(item)
        )
        if after > maxBytes and after > before:
            raise PEPStorageFull(f"the PEP items of {account} would take {after} bytes, more than {maxBytes}")

    def listPEPNodes(self, account: str) -> defer.Deferred[list[PEPNode]]:
        """
        See L{IPEPStore.listPEPNodes}: sorted by identifier, empty for an
        unknown account.
        """

        def list_() -> list[PEPNode]:
            nodes = self.pepNodes.get(account, {})
            return [PEPNode(node, dict(nodes[node])) for node in sorted(nodes)]

        return self._answer(list_)

    def getPEPNode(self, account: str, node: str) -> defer.Deferred[PEPNode | None]:
        """
        See L{IPEPStore.getPEPNode}.
        """

        def get() -> PEPNode | None:
            config = self.pepNodes.get(account, {}).get(node)
            return None if config is None else PEPNode(node, dict(config))

        return self._answer(get)

    def createPEPNode(
        self, account: str, node: str, config: Mapping[str, str], maxNodes: int = 0
    ) -> defer.Deferred[None]:
        """
        See L{IPEPStore.createPEPNode}.

        @raise ValueError: (in the Deferred) a bad node identifier or
            configuration; see L{xmppcert.store.sqlite.checkPEPNodeName} and
            L{xmppcert.store.sqlite.checkPEPConfig}.
        """

        def create() -> None:
            checkPEPNodeName(node)
            checked = checkPEPConfig(config)
            if node in self.pepNodes.get(account, {}):
                raise PEPNodeExists(f"{account} has a PEP node {node!r} already")
            self._checkNewPEPNode(account, maxNodes)
            self.pepNodes.setdefault(account, {})[node] = checked

        return self._answer(create)

    def configurePEPNode(
        self, account: str, node: str, config: Mapping[str, str], maxItems: int = 0
    ) -> defer.Deferred[None]:
        """
        See L{IPEPStore.configurePEPNode}.

        @raise ValueError: (in the Deferred) a bad configuration; see
            L{xmppcert.store.sqlite.checkPEPConfig}.
        """

        def configure() -> None:
            checked = checkPEPConfig(config)
            self._pepNodeConfig(account, node)
            self.pepNodes[account][node] = checked
            self._trimPEPItems(account, node, maxItems)

        return self._answer(configure)

    def deletePEPNode(self, account: str, node: str) -> defer.Deferred[bool]:
        """
        See L{IPEPStore.deletePEPNode}.
        """

        def delete() -> bool:
            nodes = self.pepNodes.get(account, {})
            if node not in nodes:
                return False
            del nodes[node]
            if not nodes:
                del self.pepNodes[account]
            self.pepItems.pop((account, node), None)
            return True

        return self._answer(delete)

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
        See L{IPEPStore.publishPEPItem} and
        L{xmppcert.store.sqlite.SQLiteDatabase.publishPEPItem}: every check
        comes before the change, so a failing publish changes nothing.

        @raise ValueError: (in the Deferred) a bad node identifier, item or
            configuration; see L{xmppcert.store.sqlite.checkPEPItem}.
        """

        def publish() -> bool:
            checkPEPNodeName(node)
            checked = checkPEPItem(item)
            config = None if createConfig is None else checkPEPConfig(createConfig)
            created = node not in self.pepNodes.get(account, {})
            if created:
                if config is None:
                    raise NoSuchPEPNode(f"{account} has no PEP node {node!r}")
                self._checkNewPEPNode(account, maxNodes)
            if maxBytes > 0:
                self._checkPEPBytes(account, node, checked, maxItems, maxBytes)
            if created:
                assert config is not None
                self.pepNodes.setdefault(account, {})[node] = config
            items = self.pepItems.setdefault((account, node), {})
            # Removed first, so that the new item goes last: the newest.
            items.pop(checked.id, None)
            items[checked.id] = checked
            self._trimPEPItems(account, node, maxItems)
            return created

        return self._answer(publish)

    def getPEPItems(
        self,
        account: str,
        node: str,
        itemIds: Sequence[str] | None = None,
        maxItems: int = 0,
    ) -> defer.Deferred[list[PEPItem]]:
        """
        See L{IPEPStore.getPEPItems}.

        @raise ValueError: (in the Deferred) a bad item id; see
            L{xmppcert.store.sqlite.checkPEPItemIds}.
        """

        def get() -> list[PEPItem]:
            wanted = None if itemIds is None else set(checkPEPItemIds(itemIds))
            self._pepNodeConfig(account, node)
            newestFirst = [
                item
                for item in reversed(self.pepItems.get((account, node), {}).values())
                if wanted is None or item.id in wanted
            ]
            return newestFirst[:maxItems] if maxItems > 0 else newestFirst

        return self._answer(get)

    def retractPEPItem(self, account: str, node: str, itemId: str) -> defer.Deferred[bool]:
        """
        See L{IPEPStore.retractPEPItem}.
        """

        def retract() -> bool:
            self._pepNodeConfig(account, node)
            return self.pepItems.get((account, node), {}).pop(itemId, None) is not None

        return self._answer(retract)

    def purgePEPNode(self, account: str, node: str) -> defer.Deferred[None]:
        """
        See L{IPEPStore.purgePEPNode}.
        """

        def purge() -> None:
            self._pepNodeConfig(account, node)
            self.pepItems.pop((account, node), None)

        return self._answer(purge)

    def fakeCredentialSecret(self) -> bytes:
        """
        See L{IAccountStore.fakeCredentialSecret}: one per store object.
        """
        return self._fakeCredentialSecret

    def close(self) -> defer.Deferred[None]:
        """
        See L{IAccountStore.close}. Idempotent.
        """
        self.closed = True
        return defer.succeed(None)


__all__ = ["InMemoryAccountStore"]
