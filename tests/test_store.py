# -*- test-case-name: tests.test_store -*-
"""
Tests for L{xmppcert.store}: the same behaviour for
L{xmppcert.testing.InMemoryAccountStore} and
L{xmppcert.store.sqlite.SQLiteStore} (accounts and, per XEP-0257, their
client certificates), and what only SQLite does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from xmppcert.store import (
    CERTIFICATE_STATES,
    SCHEMA_VERSION,
    AccountExists,
    CertificateExists,
    CertificateLimitReached,
    CertificateRevoked,
    IAccountStore,
    IAuditLog,
    ICertificateStore,
    NoSuchAccount,
    NoSuchCertificate,
    SchemaVersionError,
    ScramCredential,
    SQLiteDatabase,
    SQLiteStore,
    StoredCertificate,
    StoreError,
)
from xmppcert.store.sqlite import MIGRATIONS
from xmppcert.testing import InMemoryAccountStore

SHA1 = ScramCredential("SCRAM-SHA-1", b"s" * 16, 4096, b"k" * 20, b"v" * 20)
SHA256 = ScramCredential("SCRAM-SHA-256", b"t" * 16, 4096, b"K" * 32, b"V" * 32)
NEW_SHA256 = ScramCredential("SCRAM-SHA-256", b"u" * 16, 5000, b"L" * 32, b"W" * 32)


def temporaryDatabase(case: unittest.TestCase) -> Path:
    """
    A database path in a new temporary directory, removed after the test
    (trial's C{mktemp} would leave directories in the working directory).
    """
    directory = tempfile.mkdtemp(prefix="xmppcert-test-")
    case.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    return Path(directory) / "accounts.sqlite"


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


def fakeCertificate(n: int) -> tuple[bytes, str]:
    """
    Stand-in DER bytes and their SHA-256 fingerprint: the store keeps
    certificates as opaque bytes, it never parses them.
    """
    der = b"certificate %d" % n
    return der, hashlib.sha256(der).hexdigest()


DER1, FP1 = fakeCertificate(1)
DER2, FP2 = fakeCertificate(2)
DER3, FP3 = fakeCertificate(3)
DER4, FP4 = fakeCertificate(4)
ALICE = "alice@example.com"
BOB = "bob@example.com"


class CertificateStoreTestsMixin:
    """
    Behaviour every L{ICertificateStore} shares. Subclasses provide
    C{makeStore}, which must use C{self.clock} as the store's clock.
    """

    store: Any
    now: float

    def clock(self) -> float:
        return self.now

    def makeStore(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.now = 1000.0
        self.store = self.makeStore()
        self.addCleanup(self.store.close)  # type: ignore[attr-defined]

    async def addAccounts(self, *jids: str) -> None:
        for jid in jids:
            await self.store.addAccount(jid, [])

    def test_certificateInterface(self) -> None:
        """
        The store provides ICertificateStore (and IAccountStore).
        """
        assert verifyObject(ICertificateStore, self.store)
        assert verifyObject(IAccountStore, self.store)

    async def test_addCertificate(self) -> None:
        """
        XEP-0257 section 2.1: an added certificate is enabled, and is found
        by listing, by name and by fingerprint, with what it was added with.
        """
        await self.addAccounts(ALICE)
        added = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        expected = StoredCertificate(
            account=ALICE, name="laptop", fingerprint=FP1, der=DER1, state="enabled",
            canManage=True, notAfter=5000.0, createdAt=1000.0, changedAt=1000.0,
            lastUsedAt=None,
        )
        assert added == expected
        assert await self.store.listCertificates(ALICE) == [expected]
        assert await self.store.getCertificate(ALICE, "laptop") == expected
        assert await self.store.certificateByFingerprint(FP1) == expected

    async def test_noCertManagement(self) -> None:
        """
        XEP-0257 section 2.1: a certificate uploaded with
        <no-cert-management/> is stored with canManage False.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "phone", DER1, FP1, 5000.0, canManage=False)
        assert (await self.store.getCertificate(ALICE, "phone")).canManage is False

    async def test_missingLookups(self) -> None:
        """
        Unknown names, fingerprints and accounts give None or an empty list.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert await self.store.getCertificate(ALICE, "phone") is None
        assert await self.store.getCertificate(BOB, "laptop") is None
        assert await self.store.certificateByFingerprint(FP2) is None
        assert await self.store.listCertificates(BOB) == []

    async def test_addNoAccount(self) -> None:
        """
        A certificate needs an existing account: NoSuchAccount otherwise,
        and nothing is stored.
        """
        with pytest.raises(NoSuchAccount):
            await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert await self.store.certificateByFingerprint(FP1) is None

    async def test_names(self) -> None:
        """
        Names are stripped of surrounding whitespace, in lookups too; 1 to
        255 characters after stripping, no control characters, else
        ValueError.
        """
        await self.addAccounts(ALICE)
        added = await self.store.addCertificate(ALICE, "  my laptop ", DER1, FP1, 5000.0)
        assert added.name == "my laptop"
        assert (await self.store.getCertificate(ALICE, " my laptop")) == added
        longest = "\u00e9" * 255
        assert (await self.store.addCertificate(ALICE, longest, DER2, FP2, 5000.0)).name == longest
        for bad in ["", "   ", "x" * 256, "a\x00b", "tab\tname", "line\nbreak", "del\x7f"]:
            with pytest.raises(ValueError):
                await self.store.addCertificate(ALICE, bad, DER3, FP3, 5000.0)
        assert len(await self.store.listCertificates(ALICE)) == 2

    async def test_badFingerprint(self) -> None:
        """
        A fingerprint that is not 64 lowercase hex digits is refused with
        ValueError.
        """
        await self.addAccounts(ALICE)
        for bad in ["", FP1.upper(), FP1[:-1], FP1 + "0", "g" * 64]:
            with pytest.raises(ValueError):
                await self.store.addCertificate(ALICE, "laptop", DER1, bad, 5000.0)
        assert await self.store.listCertificates(ALICE) == []

    async def test_duplicateName(self) -> None:
        """
        XEP-0257 section 2.1: a name an enabled certificate of the account
        has MUST be rejected: CertificateExists with field "name"; the first
        stays. Another account may use the same name.
        """
        await self.addAccounts(ALICE, BOB)
        first = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(ALICE, " laptop", DER2, FP2, 5000.0)
        assert e.value.field == "name"
        assert await self.store.listCertificates(ALICE) == [first]
        assert await self.store.certificateByFingerprint(FP2) is None
        await self.store.addCertificate(BOB, "laptop", DER2, FP2, 5000.0)

    async def test_duplicateFingerprint(self) -> None:
        """
        A fingerprint is registered once on the whole server: in another
        account (or the same one under another name) it gives
        CertificateExists with field "fingerprint", whose message does not
        name the other account.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(BOB, "laptop", DER1, FP1, 5000.0)
        assert e.value.field == "fingerprint"
        assert ALICE not in str(e.value)
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(ALICE, "other", DER1, FP1, 5000.0)
        assert e.value.field == "fingerprint"
        assert await self.store.listCertificates(BOB) == []
        assert (await self.store.certificateByFingerprint(FP1)).account == ALICE

    async def test_limit(self) -> None:
        """
        With maxPerAccount above 0, an account with that many enabled
        certificates gets CertificateLimitReached; other accounts are not
        affected, and 0 means no limit.

        (Changed: disabled and revoked certificates used to count too. They
        are history now, not in the list the user sees (XEP-0257 section
        2.2), and the usual flow, upload a new certificate and disable the
        old one, must not run into the limit.)
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "one", DER1, FP1, 5000.0, maxPerAccount=2)
        await self.store.addCertificate(ALICE, "two", DER2, FP2, 5000.0, maxPerAccount=2)
        with pytest.raises(CertificateLimitReached):
            await self.store.addCertificate(ALICE, "three", DER3, FP3, 5000.0, maxPerAccount=2)
        assert len(await self.store.listCertificates(ALICE)) == 2
        await self.store.addCertificate(BOB, "three", DER3, FP3, 5000.0, maxPerAccount=2)
        await self.store.removeCertificate(BOB, "three")
        await self.store.addCertificate(ALICE, "three", DER3, FP3, 5000.0, maxPerAccount=3)
        assert len(await self.store.listCertificates(ALICE)) == 3
        await self.store.addCertificate(ALICE, "four", DER4, FP4, 5000.0)
        assert len(await self.store.listCertificates(ALICE)) == 4

    async def test_limitCountsEnabledOnly(self) -> None:
        """
        maxPerAccount counts only enabled certificates: disabling or
        revoking one makes room for a new one, also under the same name.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "one", DER1, FP1, 5000.0, maxPerAccount=2)
        await self.store.addCertificate(ALICE, "two", DER2, FP2, 5000.0, maxPerAccount=2)
        await self.store.setCertificateState(ALICE, "one", "revoked")
        await self.store.addCertificate(ALICE, "one", DER3, FP3, 5000.0, maxPerAccount=2)
        with pytest.raises(CertificateLimitReached) as e:
            await self.store.addCertificate(ALICE, "four", DER4, FP4, 5000.0, maxPerAccount=2)
        assert "2 enabled certificates" in str(e.value)
        await self.store.setCertificateStateByFingerprint(FP2, "disabled")
        await self.store.addCertificate(ALICE, "four", DER4, FP4, 5000.0, maxPerAccount=2)
        # All added at 1000: by name, then in the order they were added.
        assert [(c.name, c.state) for c in await self.store.listCertificates(ALICE)] == [
            ("four", "enabled"), ("one", "revoked"), ("one", "enabled"), ("two", "disabled"),
        ]

    async def test_failedAddChangesNothing(self) -> None:
        """
        Nothing half-written: a failing add leaves no record and no change
        for changesSince to report.
        """
        await self.addAccounts(ALICE, BOB)
        first = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        for account, name, der, fp in [
            (ALICE, "laptop", DER2, FP2),
            (BOB, "laptop", DER1, FP1),
            ("carol@example.com", "x", DER3, FP3),
            (ALICE, "", DER3, FP3),
        ]:
            with pytest.raises((StoreError, ValueError)):
                await self.store.addCertificate(account, name, der, fp, 5000.0)
        with pytest.raises(CertificateLimitReached):
            await self.store.addCertificate(ALICE, "two", DER2, FP2, 5000.0, maxPerAccount=1)
        assert await self.store.listCertificates(ALICE) == [first]
        assert await self.store.listCertificates(BOB) == []
        assert await self.store.certificateByFingerprint(FP2) is None
        assert await self.store.changesSince(cursor) == (cursor, [])

    async def test_listOrder(self) -> None:
        """
        listCertificates orders by creation time, then by name.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "b", DER1, FP1, 5000.0)
        await self.store.addCertificate(ALICE, "a", DER2, FP2, 5000.0)
        self.now = 999.0
        await self.store.addCertificate(ALICE, "z", DER3, FP3, 5000.0)
        assert [c.name for c in await self.store.listCertificates(ALICE)] == ["z", "a", "b"]

    async def test_stateTransitions(self) -> None:
        """
        XEP-0257 sections 2.3 to 2.5: enabled to disabled and back, then to
        revoked; each change records its time and leaves the rest alone.
        """
        await self.addAccounts(ALICE)
        added = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        self.now = 1100.0
        disabled = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        assert disabled.state == "disabled" and disabled.changedAt == 1100.0
        assert disabled.createdAt == added.createdAt
        assert await self.store.getCertificate(ALICE, "laptop") == disabled
        self.now = 1200.0
        enabled = await self.store.setCertificateState(ALICE, "laptop", "enabled")
        assert (enabled.state, enabled.changedAt) == ("enabled", 1200.0)
        self.now = 1300.0
        revoked = await self.store.setCertificateState(ALICE, " laptop ", "revoked")
        assert (revoked.state, revoked.changedAt) == ("revoked", 1300.0)
        assert await self.store.certificateByFingerprint(FP1) == revoked

    async def test_accountLock(self) -> None:
        """
        An operator's lock: set and cleared per account; an unknown account
        is not locked, and locking it fails with NoSuchAccount; the lock goes
        with the account.
        """
        await self.addAccounts(ALICE, BOB)
        assert not await self.store.isAccountLocked(ALICE)
        await self.store.setAccountLocked(ALICE, True)
        assert await self.store.isAccountLocked(ALICE)
        assert not await self.store.isAccountLocked(BOB)
        await self.store.setAccountLocked(ALICE, False)
        assert not await self.store.isAccountLocked(ALICE)
        assert not await self.store.isAccountLocked("nobody@example.com")
        with pytest.raises(NoSuchAccount):
            await self.store.setAccountLocked("nobody@example.com", True)
        await self.store.setAccountLocked(BOB, True)
        await self.store.removeAccount(BOB)
        await self.addAccounts(BOB)
        assert not await self.store.isAccountLocked(BOB)

    async def test_auditTrail(self) -> None:
        """
        The audit trail: entries stamped with the store's clock, read back
        oldest first, all or those about one account and its certificates
        (not another account whose JID merely starts alike), the newest
        C{limit}.
        """
        assert verifyObject(IAuditLog, self.store)
        await self.store.recordAudit("cli:root", "user.add", ALICE)
        self.now = 1001.0
        await self.store.recordAudit("alice@example.com/desk", "cert.append", f"{ALICE}/Phone", "fp")
        await self.store.recordAudit("cli:root", "user.add", ALICE + "x")
        trail = await self.store.auditTrail()
        assert [(e.at, e.actor, e.action, e.target) for e in trail] == [
            (1000.0, "cli:root", "user.add", ALICE),
            (1001.0, "alice@example.com/desk", "cert.append", f"{ALICE}/Phone"),
            (1001.0, "cli:root", "user.add", ALICE + "x"),
        ]
        assert [e.action for e in await self.store.auditTrail(ALICE)] == ["user.add", "cert.append"]
        assert [e.target for e in await self.store.auditTrail(limit=1)] == [ALICE + "x"]
        assert (await self.store.auditTrail(ALICE))[1].detail == "fp"

    async def test_revocationOutlivesTheRecord(self) -> None:
        """
        A revocation is permanent: once the record of a revoked certificate
        is removed (by name, by fingerprint, or with its account), the
        fingerprint is still revoked and cannot be added again, to any
        account.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert not await self.store.isCertificateRevoked(FP1)
        await self.store.setCertificateState(ALICE, "laptop", "revoked")
        assert await self.store.isCertificateRevoked(FP1)
        await self.store.removeCertificate(ALICE, "laptop")
        assert await self.store.certificateByFingerprint(FP1) is None
        assert await self.store.isCertificateRevoked(FP1)
        for account in (ALICE, BOB):
            with pytest.raises(CertificateExists) as raised:
                await self.store.addCertificate(account, "again", DER1, FP1, 5000.0)
            assert raised.value.field == "fingerprint"
        await self.store.addCertificate(BOB, "phone", DER2, FP2, 5000.0)
        await self.store.setCertificateState(BOB, "phone", "revoked")
        await self.store.removeAccount(BOB)
        assert await self.store.isCertificateRevoked(FP2)

    async def test_revocationForgottenAfterExpiry(self) -> None:
        """
        The revocation of an expired certificate is pruned with it: an
        expired certificate cannot log in anyway. A disabled certificate
        was never revoked.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.addCertificate(ALICE, "phone", DER2, FP2, 9000.0)
        await self.store.setCertificateState(ALICE, "laptop", "revoked")
        await self.store.setCertificateState(ALICE, "phone", "disabled")
        assert not await self.store.isCertificateRevoked(FP2)
        await self.store.removeCertificate(ALICE, "laptop")
        await self.store.removeExpiredCertificates(6000.0)
        assert not await self.store.isCertificateRevoked(FP1)

    async def test_disabledToRevoked(self) -> None:
        """
        A disabled certificate may be revoked.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateState(ALICE, "laptop", "disabled")
        revoked = await self.store.setCertificateState(ALICE, "laptop", "revoked")
        assert revoked.state == "revoked"

    async def test_revokedIsFinal(self) -> None:
        """
        XEP-0257 section 2.5: revocation is final: enabling or disabling a
        revoked certificate fails with CertificateRevoked (a StoreError) and
        changes nothing; revoking it again is a no-op.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        revoked = await self.store.setCertificateState(ALICE, "laptop", "revoked")
        assert issubclass(CertificateRevoked, StoreError)
        self.now = 2000.0
        for state in ["enabled", "disabled"]:
            with pytest.raises(CertificateRevoked):
                await self.store.setCertificateState(ALICE, "laptop", state)
        assert await self.store.setCertificateState(ALICE, "laptop", "revoked") == revoked
        assert await self.store.getCertificate(ALICE, "laptop") == revoked

    async def test_sameStateNoop(self) -> None:
        """
        Setting the current state again returns the record unchanged, and
        is no change for changesSince.
        """
        await self.addAccounts(ALICE)
        added = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        self.now = 2000.0
        assert await self.store.setCertificateState(ALICE, "laptop", "enabled") == added
        assert await self.store.changesSince(cursor) == (cursor, [])

    async def test_setStateErrors(self) -> None:
        """
        An unknown state is a ValueError, an unknown certificate
        NoSuchCertificate.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert "bogus" not in CERTIFICATE_STATES
        with pytest.raises(ValueError):
            await self.store.setCertificateState(ALICE, "laptop", "bogus")
        with pytest.raises(NoSuchCertificate):
            await self.store.setCertificateState(ALICE, "phone", "disabled")
        with pytest.raises(NoSuchCertificate):
            await self.store.setCertificateState(BOB, "laptop", "disabled")
        assert (await self.store.getCertificate(ALICE, "laptop")).state == "enabled"

    async def test_touch(self) -> None:
        """
        touchCertificate records the login time; an unknown fingerprint is
        not an error; a touch is not a state change.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        await self.store.touchCertificate(FP1, 1234.5)
        touched = await self.store.getCertificate(ALICE, "laptop")
        assert touched.lastUsedAt == 1234.5
        assert touched.changedAt == 1000.0
        await self.store.touchCertificate(FP2, 1234.5)
        assert await self.store.changesSince(cursor) == (cursor, [])

    async def test_remove(self) -> None:
        """
        A removed certificate is gone; removing it again fails with
        NoSuchCertificate; its name and fingerprint may be registered again.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.addCertificate(ALICE, "phone", DER2, FP2, 5000.0)
        await self.store.removeCertificate(ALICE, "laptop ")
        assert await self.store.getCertificate(ALICE, "laptop") is None
        assert await self.store.certificateByFingerprint(FP1) is None
        assert [c.name for c in await self.store.listCertificates(ALICE)] == ["phone"]
        with pytest.raises(NoSuchCertificate):
            await self.store.removeCertificate(ALICE, "laptop")
        with pytest.raises(NoSuchCertificate):
            await self.store.removeCertificate(BOB, "phone")
        await self.store.addCertificate(BOB, "laptop", DER1, FP1, 5000.0)
        await self.store.addCertificate(ALICE, "laptop", DER3, FP3, 5000.0)

    async def test_removeExpired(self) -> None:
        """
        removeExpiredCertificates removes and returns the certificates whose
        notAfter is before the given time, in any state and account; one
        expiring exactly then stays.
        """
        await self.addAccounts(ALICE, BOB)
        old = await self.store.addCertificate(ALICE, "old", DER1, FP1, 1500.0)
        older = await self.store.addCertificate(BOB, "older", DER2, FP2, 1400.0)
        older = await self.store.setCertificateState(BOB, "older", "revoked")
        edge = await self.store.addCertificate(ALICE, "edge", DER3, FP3, 2000.0)
        removed = await self.store.removeExpiredCertificates(2000.0)
        assert sorted(removed, key=lambda c: c.name) == [old, older]
        assert await self.store.listCertificates(ALICE) == [edge]
        assert await self.store.listCertificates(BOB) == []
        assert await self.store.removeExpiredCertificates(2000.0) == []

    async def test_changesSinceStart(self) -> None:
        """
        Cursor 0 gives the current counter and no records: history is not
        replayed. The counter is never 0, even on an empty store, so a
        poller that started there misses nothing.
        """
        cursor, changes = await self.store.changesSince(0)
        assert cursor > 0 and changes == []
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateState(ALICE, "laptop", "revoked")
        assert (await self.store.changesSince(0))[1] == []
        newCursor, changes = await self.store.changesSince(cursor)
        assert newCursor > cursor
        assert [(c.name, c.state) for c in changes] == [("laptop", "revoked")]

    async def test_changesSince(self) -> None:
        """
        changesSince reports adds and state changes after the cursor, each
        record once with its current state, in the order of the latest
        change; the new cursor moves on only when something changed.
        """
        await self.addAccounts(ALICE, BOB)
        start, _ = await self.store.changesSince(0)
        await self.store.addCertificate(ALICE, "a", DER1, FP1, 5000.0)
        await self.store.addCertificate(BOB, "b", DER2, FP2, 5000.0)
        afterAdds, changes = await self.store.changesSince(start)
        assert afterAdds > start
        assert [(c.account, c.name, c.state) for c in changes] == [
            (ALICE, "a", "enabled"), (BOB, "b", "enabled"),
        ]
        assert await self.store.changesSince(afterAdds) == (afterAdds, [])

        await self.store.setCertificateState(ALICE, "a", "disabled")
        afterDisable, changes = await self.store.changesSince(afterAdds)
        assert afterDisable > afterAdds
        assert [(c.name, c.state) for c in changes] == [("a", "disabled")]

        await self.store.setCertificateState(ALICE, "a", "revoked")
        latest, changes = await self.store.changesSince(start)
        assert [(c.name, c.state) for c in changes] == [("b", "enabled"), ("a", "revoked")]
        assert changes[1] == await self.store.getCertificate(ALICE, "a")
        _, changes = await self.store.changesSince(afterDisable)
        assert [(c.name, c.state) for c in changes] == [("a", "revoked")]
        await self.store.removeCertificate(BOB, "b")
        assert await self.store.changesSince(start) == (latest, [changes[0]])

    async def test_removeAccountCascades(self) -> None:
        """
        Removing an account removes its certificates; a new account of the
        same JID starts without them, and the fingerprint is free again.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.addCertificate(BOB, "laptop", DER2, FP2, 5000.0)
        await self.store.removeAccount(ALICE)
        assert await self.store.certificateByFingerprint(FP1) is None
        assert await self.store.getCertificate(ALICE, "laptop") is None
        assert await self.store.certificateByFingerprint(FP2) is not None
        await self.addAccounts(ALICE)
        assert await self.store.listCertificates(ALICE) == []
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)

    async def test_nameReusedAfterDisable(self) -> None:
        """
        XEP-0257 sections 2.1 and 2.3: a disabled certificate can no longer
        log in, so its name may be used again (the usual flow: upload a new
        "laptop", disable the old one, later reuse the name). The old one
        stays as history; lookups by name give the enabled one, and a name
        an enabled certificate has is still refused.
        """
        await self.addAccounts(ALICE)
        old = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        self.now = 1100.0
        old = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        self.now = 1200.0
        new = await self.store.addCertificate(ALICE, " laptop", DER2, FP2, 5000.0)
        assert (new.name, new.state) == ("laptop", "enabled")
        assert await self.store.getCertificate(ALICE, "laptop") == new
        assert await self.store.certificateByFingerprint(FP1) == old
        assert await self.store.listCertificates(ALICE) == [old, new]
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(ALICE, "laptop", DER3, FP3, 5000.0)
        assert e.value.field == "name"
        assert await self.store.certificateByFingerprint(FP3) is None

    async def test_nameReusedAfterRevoke(self) -> None:
        """
        A revoked certificate's name may be used again too; its fingerprint
        may not (in no account, under no name): a revoked certificate can
        never be registered again.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        revoked = await self.store.setCertificateState(ALICE, "laptop", "revoked")
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert e.value.field == "fingerprint"
        new = await self.store.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        assert await self.store.getCertificate(ALICE, "laptop") == new
        for account, name in [(ALICE, "other"), (BOB, "laptop")]:
            with pytest.raises(CertificateExists) as e:
                await self.store.addCertificate(account, name, DER1, FP1, 5000.0)
            assert e.value.field == "fingerprint"
        assert await self.store.certificateByFingerprint(FP1) == revoked
        # Revoking the new one frees the name once more.
        await self.store.setCertificateState(ALICE, "laptop", "revoked")
        await self.store.addCertificate(ALICE, "laptop", DER3, FP3, 5000.0)
        assert [c.state for c in await self.store.listCertificates(ALICE)] == [
            "revoked", "revoked", "enabled",
        ]

    async def test_lookupMostRecentlyChanged(self) -> None:
        """
        Without an enabled certificate of that name, getCertificate gives
        the most recently changed one (not the most recently added), and
        setCertificateState and removeCertificate by name act on that one.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        self.now = 1100.0
        await self.store.setCertificateState(ALICE, "laptop", "disabled")
        self.now = 1200.0
        await self.store.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        self.now = 1300.0
        second = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        assert second.fingerprint == FP2
        assert await self.store.getCertificate(ALICE, "laptop") == second

        self.now = 1400.0
        first = await self.store.setCertificateStateByFingerprint(FP1, "revoked")
        assert await self.store.getCertificate(ALICE, "laptop") == first
        # By name: revoking again is a no-op on the first; the second stays.
        assert await self.store.setCertificateState(ALICE, "laptop", "revoked") == first
        assert (await self.store.certificateByFingerprint(FP2)).state == "disabled"

        await self.store.removeCertificate(ALICE, "laptop")
        assert await self.store.certificateByFingerprint(FP1) is None
        assert await self.store.getCertificate(ALICE, "laptop") == second
        self.now = 1500.0
        enabled = await self.store.setCertificateState(ALICE, "laptop", "enabled")
        assert (enabled.fingerprint, enabled.state) == (FP2, "enabled")

    async def test_lookupTieMostRecentlyAdded(self) -> None:
        """
        Two disabled certificates of one name changed at the same time: the
        one added last is the one the name refers to.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateStateByFingerprint(FP1, "disabled")
        await self.store.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        await self.store.setCertificateStateByFingerprint(FP2, "disabled")
        assert (await self.store.getCertificate(ALICE, "laptop")).fingerprint == FP2
        await self.store.removeCertificate(ALICE, "laptop")
        assert (await self.store.getCertificate(ALICE, "laptop")).fingerprint == FP1

    async def test_enabledWinsLookup(self) -> None:
        """
        An enabled certificate is the one its name refers to, even when a
        disabled one of that name changed later; changing state by name then
        acts on the enabled one.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateState(ALICE, "laptop", "disabled")
        self.now = 1100.0
        new = await self.store.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        self.now = 1200.0
        await self.store.setCertificateStateByFingerprint(FP1, "revoked")
        assert await self.store.getCertificate(ALICE, "laptop") == new
        self.now = 1300.0
        disabled = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        assert (disabled.fingerprint, disabled.state) == (FP2, "disabled")
        assert await self.store.getCertificate(ALICE, "laptop") == disabled

    async def test_reenableConflict(self) -> None:
        """
        Enabling a disabled certificate whose name an enabled certificate
        of the account has now fails with CertificateExists (field "name")
        and changes nothing; once the other is disabled, it works. By name,
        "enable" refers to the enabled one, so it is a no-op.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        old = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        new = await self.store.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        await self.store.addCertificate(BOB, "laptop", DER3, FP3, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        self.now = 2000.0
        with pytest.raises(CertificateExists) as e:
            await self.store.setCertificateStateByFingerprint(FP1, "enabled")
        assert e.value.field == "name"
        assert await self.store.certificateByFingerprint(FP1) == old
        assert await self.store.setCertificateState(ALICE, "laptop", "enabled") == new
        assert await self.store.changesSince(cursor) == (cursor, [])

        await self.store.setCertificateStateByFingerprint(FP2, "disabled")
        enabled = await self.store.setCertificateStateByFingerprint(FP1, "enabled")
        assert (enabled.state, enabled.changedAt) == ("enabled", 2000.0)
        assert await self.store.getCertificate(ALICE, "laptop") == enabled
        with pytest.raises(CertificateExists) as e:
            await self.store.setCertificateStateByFingerprint(FP2, "enabled")
        assert e.value.field == "name"

    async def test_listStates(self) -> None:
        """
        listCertificates filters by state when given states (XEP-0257
        section 2.2 lists the enabled ones), in the same order as without a
        filter; an empty filter gives nothing, an unknown state or a bare
        string is a ValueError.
        """
        await self.addAccounts(ALICE, BOB)
        a = await self.store.addCertificate(ALICE, "a", DER1, FP1, 5000.0)
        self.now = 1100.0
        b = await self.store.addCertificate(ALICE, "b", DER2, FP2, 5000.0)
        self.now = 1200.0
        c = await self.store.addCertificate(ALICE, "c", DER3, FP3, 5000.0)
        await self.store.addCertificate(BOB, "d", DER4, FP4, 5000.0)
        b = await self.store.setCertificateState(ALICE, "b", "disabled")
        c = await self.store.setCertificateState(ALICE, "c", "revoked")
        assert await self.store.listCertificates(ALICE) == [a, b, c]
        assert await self.store.listCertificates(ALICE, None) == [a, b, c]
        assert await self.store.listCertificates(ALICE, states=["enabled"]) == [a]
        assert await self.store.listCertificates(ALICE, states=("revoked", "disabled")) == [b, c]
        assert await self.store.listCertificates(ALICE, states=list(CERTIFICATE_STATES)) == [
            a, b, c,
        ]
        assert await self.store.listCertificates(ALICE, states=[]) == []
        assert await self.store.listCertificates(BOB, states=["disabled"]) == []
        for bad in [["bogus"], ["enabled", "Enabled"], "enabled"]:
            with pytest.raises(ValueError):
                await self.store.listCertificates(ALICE, states=bad)

    async def test_setStateByFingerprint(self) -> None:
        """
        setCertificateStateByFingerprint follows the same transitions as
        setCertificateState, for exactly that certificate, and is reported
        by changesSince; unknown fingerprints give NoSuchCertificate,
        unknown states ValueError, revoked certificates CertificateRevoked.
        """
        await self.addAccounts(ALICE)
        added = await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        assert await self.store.setCertificateStateByFingerprint(FP1, "enabled") == added
        assert await self.store.changesSince(cursor) == (cursor, [])
        self.now = 1100.0
        disabled = await self.store.setCertificateStateByFingerprint(FP1, "disabled")
        assert disabled == StoredCertificate(
            account=ALICE, name="laptop", fingerprint=FP1, der=DER1, state="disabled",
            canManage=True, notAfter=5000.0, createdAt=1000.0, changedAt=1100.0,
            lastUsedAt=None,
        )
        assert await self.store.getCertificate(ALICE, "laptop") == disabled
        newCursor, changes = await self.store.changesSince(cursor)
        assert newCursor > cursor and changes == [disabled]
        self.now = 1200.0
        assert (await self.store.setCertificateStateByFingerprint(FP1, "enabled")).state == "enabled"
        revoked = await self.store.setCertificateStateByFingerprint(FP1, "revoked")
        for state in ["enabled", "disabled"]:
            with pytest.raises(CertificateRevoked):
                await self.store.setCertificateStateByFingerprint(FP1, state)
        assert await self.store.setCertificateStateByFingerprint(FP1, "revoked") == revoked
        with pytest.raises(ValueError):
            await self.store.setCertificateStateByFingerprint(FP1, "bogus")
        with pytest.raises(NoSuchCertificate):
            await self.store.setCertificateStateByFingerprint(FP2, "disabled")
        assert await self.store.certificateByFingerprint(FP1) == revoked

    async def test_removeByFingerprint(self) -> None:
        """
        removeCertificateByFingerprint deletes exactly that certificate,
        leaving others of the same name; an unknown fingerprint, or one
        removed already, gives NoSuchCertificate. The fingerprint is free
        again afterwards.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateState(ALICE, "laptop", "disabled")
        new = await self.store.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        await self.store.removeCertificateByFingerprint(FP1)
        assert await self.store.certificateByFingerprint(FP1) is None
        assert await self.store.listCertificates(ALICE) == [new]
        with pytest.raises(NoSuchCertificate):
            await self.store.removeCertificateByFingerprint(FP1)
        with pytest.raises(NoSuchCertificate):
            await self.store.removeCertificateByFingerprint(FP3)
        await self.store.removeCertificateByFingerprint(FP2)
        assert await self.store.getCertificate(ALICE, "laptop") is None
        await self.store.addCertificate(BOB, "laptop", DER1, FP1, 5000.0)

    async def test_replaceDisabled(self) -> None:
        """
        XEP-0257 section 2.3: addCertificate with replaceDisabled replaces a
        disabled certificate of the same account with that fingerprint by a
        fresh enabled record (new name, flag, validity and times; no last
        use), in the order of addition of a new one; without it, the
        disabled record is a fingerprint conflict.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.touchCertificate(FP1, 1050.0)
        self.now = 1100.0
        disabled = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        other = await self.store.addCertificate(ALICE, "phone", DER2, FP2, 5000.0)
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert e.value.field == "fingerprint"
        assert await self.store.certificateByFingerprint(FP1) == disabled
        self.now = 1200.0
        added = await self.store.addCertificate(
            ALICE, " tablet ", DER1, FP1, 6000.0, canManage=False, replaceDisabled=True
        )
        assert added == StoredCertificate(
            account=ALICE, name="tablet", fingerprint=FP1, der=DER1, state="enabled",
            canManage=False, notAfter=6000.0, createdAt=1200.0, changedAt=1200.0,
            lastUsedAt=None,
        )
        assert await self.store.certificateByFingerprint(FP1) == added
        assert await self.store.getCertificate(ALICE, "laptop") is None
        assert await self.store.getCertificate(ALICE, "tablet") == added
        assert await self.store.listCertificates(ALICE) == [other, added]

    async def test_replaceDisabledSameName(self) -> None:
        """
        Replacing a disabled certificate under its own name works: its
        record does not count as a name conflict (it is disabled), and no
        second record of that fingerprint remains.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateState(ALICE, "laptop", "disabled")
        added = await self.store.addCertificate(
            ALICE, "laptop", DER1, FP1, 5000.0, maxPerAccount=1, replaceDisabled=True
        )
        assert added.state == "enabled"
        assert await self.store.listCertificates(ALICE) == [added]

    async def test_replaceDisabledRefusesOthers(self) -> None:
        """
        replaceDisabled replaces only a disabled record of the same account:
        a revoked one (revocation is final, XEP-0257 section 2.5), an
        enabled one, or another account's disabled one is still a
        fingerprint conflict whose message does not name the other
        account, and nothing changes.
        """
        await self.addAccounts(ALICE, BOB)
        await self.store.addCertificate(ALICE, "revoked", DER1, FP1, 5000.0)
        await self.store.addCertificate(ALICE, "enabled", DER2, FP2, 5000.0)
        await self.store.addCertificate(BOB, "bobs", DER3, FP3, 5000.0)
        await self.store.setCertificateStateByFingerprint(FP1, "revoked")
        await self.store.setCertificateStateByFingerprint(FP3, "disabled")
        before = {
            fp: await self.store.certificateByFingerprint(fp) for fp in (FP1, FP2, FP3)
        }
        cursor, _ = await self.store.changesSince(0)
        self.now = 2000.0
        for der, fp in [(DER1, FP1), (DER2, FP2), (DER3, FP3)]:
            with pytest.raises(CertificateExists) as e:
                await self.store.addCertificate(
                    ALICE, "again", der, fp, 5000.0, replaceDisabled=True
                )
            assert e.value.field == "fingerprint"
            assert BOB not in str(e.value)
        assert {
            fp: await self.store.certificateByFingerprint(fp) for fp in (FP1, FP2, FP3)
        } == before
        assert await self.store.getCertificate(ALICE, "again") is None
        assert await self.store.changesSince(cursor) == (cursor, [])

    async def test_replaceDisabledFailureKeepsRecord(self) -> None:
        """
        The replacement is part of the add: when the add fails (a name an
        enabled certificate has, the limit, a bad name), the disabled
        record stays exactly as it was and changesSince reports nothing.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        self.now = 1100.0
        disabled = await self.store.setCertificateState(ALICE, "laptop", "disabled")
        phone = await self.store.addCertificate(ALICE, "phone", DER2, FP2, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        self.now = 2000.0
        with pytest.raises(CertificateExists) as e:
            await self.store.addCertificate(
                ALICE, "phone", DER1, FP1, 5000.0, replaceDisabled=True
            )
        assert e.value.field == "name"
        with pytest.raises(CertificateLimitReached):
            await self.store.addCertificate(
                ALICE, "laptop", DER1, FP1, 5000.0, maxPerAccount=1, replaceDisabled=True
            )
        with pytest.raises(ValueError):
            await self.store.addCertificate(ALICE, " ", DER1, FP1, 5000.0, replaceDisabled=True)
        assert await self.store.certificateByFingerprint(FP1) == disabled
        assert await self.store.listCertificates(ALICE) == [disabled, phone]
        assert await self.store.changesSince(cursor) == (cursor, [])

    async def test_replaceDisabledReported(self) -> None:
        """
        changesSince reports the re-added certificate, enabled, as a change
        after the cursor (a watcher must see that it can log in again).
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.setCertificateState(ALICE, "laptop", "disabled")
        cursor, _ = await self.store.changesSince(0)
        self.now = 1100.0
        added = await self.store.addCertificate(
            ALICE, "laptop", DER1, FP1, 5000.0, replaceDisabled=True
        )
        newCursor, changes = await self.store.changesSince(cursor)
        assert newCursor > cursor
        assert changes == [added]
        assert await self.store.changesSince(newCursor) == (newCursor, [])

    async def test_closedStore(self) -> None:
        """
        After close(), certificate calls fail with StoreError.
        """
        await self.store.close()
        with pytest.raises(StoreError):
            await self.store.certificateByFingerprint(FP1)
        with pytest.raises(StoreError):
            await self.store.setCertificateStateByFingerprint(FP1, "disabled")
        with pytest.raises(StoreError):
            await self.store.removeCertificateByFingerprint(FP1)


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


class InMemoryCertificateStoreTests(CertificateStoreTestsMixin, unittest.TestCase):
    """
    The shared certificate behaviour, for the in-memory fake.
    """

    def makeStore(self) -> InMemoryAccountStore:
        return InMemoryAccountStore(clock=self.clock)


class SQLiteCertificateStoreTests(CertificateStoreTestsMixin, unittest.TestCase):
    """
    The shared certificate behaviour, for the SQLite store on a real file.
    """

    def makeStore(self) -> SQLiteStore:
        return SQLiteStore(temporaryDatabase(self), clock=self.clock)

    async def test_changesFromAnotherConnection(self) -> None:
        """
        A running server sees, through changesSince, what the command line
        tool (another connection, normally another process) changed.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        cursor, _ = await self.store.changesSince(0)
        cli = SQLiteDatabase.open(self.store.path)
        try:
            cli.setCertificateState(ALICE, "laptop", "revoked")
        finally:
            cli.close()
        _, changes = await self.store.changesSince(cursor)
        assert [(c.fingerprint, c.state) for c in changes] == [(FP1, "revoked")]

    def _lastUsed(self, fingerprint: str) -> float | None:
        cli = SQLiteDatabase.open(self.store.path)
        try:
            stored = cli.certificateByFingerprint(fingerprint)
        finally:
            cli.close()
        assert stored is not None
        return stored.lastUsedAt

    async def test_touchesBatched(self) -> None:
        """
        Last-used times are written together, once per touchInterval, the
        latest login of each certificate; each login's Deferred fires when
        its batch is on disk.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await self.store.addCertificate(ALICE, "phone", DER2, FP2, 5000.0)
        self.store.touchInterval = 0.2
        fired: list[object] = []
        for fingerprint, when in [(FP1, 1100.0), (FP2, 1200.0), (FP1, 1300.0), (FP1, 1250.0)]:
            self.store.touchCertificate(fingerprint, when).addCallback(fired.append)
        assert self._lastUsed(FP1) is None and fired == []
        await deferLater(reactor, 0.5, lambda: None)
        assert fired == [None] * 4
        assert (self._lastUsed(FP1), self._lastUsed(FP2)) == (1300.0, 1200.0)

    async def test_closeWritesPendingTouches(self) -> None:
        """
        A store closed (server stopping) writes the last-used times still
        waiting for their batch.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        self.store.touchInterval = 3600
        pending = self.store.touchCertificate(FP1, 1100.0)
        await self.store.close()
        await pending
        assert self._lastUsed(FP1) == 1100.0
        with pytest.raises(StoreError):
            await self.store.touchCertificate(FP1, 1200.0)

    async def test_touchBeforeReAddLeavesNewRecord(self) -> None:
        """
        A login waiting for its batch, with the certificate removed and
        added again meanwhile, is not taken for a use of the new record.
        """
        await self.addAccounts(ALICE)
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        self.store.touchInterval = 0.2
        pending = self.store.touchCertificate(FP1, self.now)
        await self.store.removeCertificate(ALICE, "laptop")
        self.now += 10
        await self.store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        await pending
        assert self._lastUsed(FP1) is None


class SQLiteStoreTests(AccountStoreTestsMixin, unittest.TestCase):
    """
    The shared behaviour, for the SQLite store on a real file.
    """

    def makeStore(self) -> SQLiteStore:
        return SQLiteStore(temporaryDatabase(self))

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
        Opening the database and every call run in worker threads, never in
        the reactor's thread: every write in one thread, every read in
        another, each on the connection it opened.
        """
        threads: list[tuple[str, threading.Thread]] = []

        class RecordingDatabase(SQLiteDatabase):
            def accountExists(self, jid: str) -> bool:
                threads.append(("read", threading.current_thread()))
                return super().accountExists(jid)

            def addAccount(self, jid: str, credentials: Any) -> None:
                threads.append(("write", threading.current_thread()))
                super().addAccount(jid, credentials)

        class RecordingStore(SQLiteStore):
            def _openDatabase(self) -> SQLiteDatabase:
                threads.append(("open", threading.current_thread()))
                database = SQLiteDatabase.open(self.path)
                database.__class__ = RecordingDatabase
                return database

        store = RecordingStore(temporaryDatabase(self))
        self.addCleanup(store.close)
        for n in range(3):
            await store.accountExists("alice@example.com")
            await store.addAccount(f"user{n}@example.com", [])
        assert [kind for kind, _ in threads] == ["open", "read", "open", "write"] + ["read", "write"] * 2
        reads = {thread for kind, thread in threads if kind == "read"}
        writes = {thread for kind, thread in threads if kind == "write"}
        assert len(reads) == len(writes) == 1
        assert reads != writes
        assert threading.current_thread() not in reads | writes
        assert threading.main_thread() not in reads | writes

    async def test_readerRefusesWrites(self) -> None:
        """
        The reader's connection refuses writes (query_only), so a write
        sent down the read path by mistake fails instead of racing the
        writer.
        """
        await self.store.connect()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await self.store._read(lambda db: db.addAccount("alice@example.com", []))
        assert await self.store.accountExists("alice@example.com") is False

    async def test_closeStopsThread(self) -> None:
        """
        close() closes both connections and stops both worker threads.
        """
        await self.store.accountExists("alice@example.com")
        await self.store.addAccount("alice@example.com", [])
        pools = [self.store._writer.pool, self.store._reader.pool]
        assert all(pool is not None and pool.started for pool in pools)
        await self.store.close()
        assert (self.store._writer.pool, self.store._reader.pool) == (None, None)
        for pool in pools:
            assert pool is not None and not pool.started
            assert not any(thread.is_alive() for thread in pool.threads)
        with pytest.raises(StoreError):
            await self.store.accountExists("alice@example.com")

    async def test_newerSchemaViaConnect(self) -> None:
        """
        connect() opens the database at once and reports a newer schema.
        """
        path = temporaryDatabase(self)
        SQLiteDatabase.open(path).close()
        setSchemaVersion(path, SCHEMA_VERSION + 1)
        store = SQLiteStore(path)
        self.addCleanup(store.close)
        with pytest.raises(SchemaVersionError):
            await store.connect()


class OutsideWriteLock:
    """
    Another process in the middle of a write: a connection of its own that
    holds C{BEGIN IMMEDIATE} (the write lock; C{EXCLUSIVE} is the same in
    WAL mode) with an uncommitted change, in a thread of its own, until
    L{release} or C{limit} seconds have passed.

    @ivar released: set once the lock is given up.
    """

    def __init__(self, path: Path, limit: float = 5.0) -> None:
        self._path = path
        self._limit = limit
        self._taken = threading.Event()
        self._release = threading.Event()
        self.released = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (0, 'outside', 'x', 'y', '')"
            )
            self._taken.set()
            self._release.wait(self._limit)
            conn.execute("ROLLBACK")
        finally:
            self.released.set()
            conn.close()

    def take(self) -> None:
        self._thread.start()
        assert self._taken.wait(10), "the outside write lock was not taken"

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)


class SQLiteReadPathTests(unittest.TestCase):
    """
    The read path of L{SQLiteStore} is independent of its writes.
    """

    async def test_readsWhileWriteWaits(self) -> None:
        """
        While another process holds the write lock and a write of the store
        waits for it, the reads of the login path (certificate by
        fingerprint, revocation, account lock, SCRAM credential) are
        answered before the lock is released, not queued behind the write.
        """
        path = temporaryDatabase(self)
        store = SQLiteStore(path)
        self.addCleanup(store.close)
        await store.addAccount(ALICE, [SHA256])
        await store.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        lock = OutsideWriteLock(path)
        lock.take()
        self.addCleanup(lock.release)
        write = store.setCertificateState(ALICE, "laptop", "disabled")

        stored = await store.certificateByFingerprint(FP1)
        revoked = await store.isCertificateRevoked(FP1)
        locked = await store.isAccountLocked(ALICE)
        credential = await store.getScramCredential(ALICE, "SCRAM-SHA-256")

        assert not lock.released.is_set(), "the reads waited for the outside write lock"
        assert not write.called, "the write did not wait for the outside write lock"
        assert stored is not None and stored.state == "enabled"
        assert (revoked, locked, credential) == (False, False, SHA256)
        lock.release()
        assert (await write).state == "disabled"
        after = await store.certificateByFingerprint(FP1)
        assert after is not None and after.state == "disabled"


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
    A new database records schema_version 7 in the meta table, and opening
    it again keeps it.
    """
    assert SCHEMA_VERSION == 7
    assert database.schemaVersion() == 7
    conn = sqlite3.connect(dbPath)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(7,)]
    conn.close()
    SQLiteDatabase.open(dbPath).close()
    assert database.schemaVersion() == 7


def test_fakeCredentialSecretStable(dbPath: Path) -> None:
    """
    RFC 5802 §5.1 with xmppcert.passwords: the secret behind the made-up
    credentials of unknown accounts is created once, then the same for
    every later opening of the file (a restart, another node), so the salt
    offered for an unknown account never changes; another database has
    another secret.
    """
    first = SQLiteStore(dbPath).fakeCredentialSecret()
    assert len(first) == 32
    assert SQLiteStore(dbPath).fakeCredentialSecret() == first
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.fakeCredentialSecret() == first
    finally:
        database.close()
    assert SQLiteStore(dbPath.with_name("other.sqlite")).fakeCredentialSecret() != first


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


def test_fileModes(dbPath: Path) -> None:
    """
    The database (and its WAL files) holds password verifiers: a new one is
    readable and writable by its owner only, whatever the umask; an
    existing file keeps the mode its operator gave it.
    """
    old = os.umask(0o022)
    try:
        database = SQLiteDatabase.open(dbPath)
        database.addAccount("alice@example.com", [])
        for suffix in ("", "-wal", "-shm"):
            path = dbPath.with_name(dbPath.name + suffix)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        database.close()
        dbPath.chmod(0o640)
        SQLiteDatabase.open(dbPath).close()
        assert stat.S_IMODE(dbPath.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_newerSchemaRefused(dbPath: Path) -> None:
    """
    Opening a database with a newer schema version fails with a clear
    SchemaVersionError and leaves the file alone.
    """
    SQLiteDatabase.open(dbPath).close()
    setSchemaVersion(dbPath, 8)
    with pytest.raises(SchemaVersionError) as e:
        SQLiteDatabase.open(dbPath)
    assert str(e.value) == "database schema version 8 is newer than this xmppcert supports (7)"
    conn = sqlite3.connect(dbPath)
    assert conn.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchall() == [(8,)]
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


def test_openWhileAnotherWrites(dbPath: Path) -> None:
    """
    Opening a database whose schema is current takes no write lock: it
    succeeds, and reads, while another process holds that lock (before,
    every open waited for it up to the busy timeout).
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [SHA256])
    setup.close()
    lock = OutsideWriteLock(dbPath)
    lock.take()
    try:
        database = SQLiteDatabase.open(dbPath)
        try:
            assert database.getScramCredential(ALICE, "SCRAM-SHA-256") == SHA256
        finally:
            database.close()
        assert not lock.released.is_set(), "opening waited for the outside write lock"
    finally:
        lock.release()


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


#: The version 1 schema as xmppcert 0.1 wrote it, by hand: the migration
#: test must not depend on the code it tests.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE accounts (jid TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE scram_credentials (
    jid TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    mechanism TEXT NOT NULL,
    salt BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (jid, mechanism)
);
INSERT INTO meta (key, value) VALUES ('schema_version', 1);
"""


def test_migrateFromVersion1(dbPath: Path) -> None:
    """
    Opening a version 1 database migrates it to the current version:
    accounts and credentials are kept, and certificates can be added.
    """
    dbPath.parent.mkdir(parents=True)
    conn = sqlite3.connect(dbPath)
    conn.executescript(V1_SCHEMA)
    with conn:
        conn.execute("INSERT INTO accounts VALUES (?, 17.0)", (ALICE,))
        conn.execute(
            "INSERT INTO scram_credentials VALUES (?, ?, ?, ?, ?, ?)",
            (ALICE, SHA256.mechanism, SHA256.salt, SHA256.iterations, SHA256.storedKey,
             SHA256.serverKey),
        )
    conn.close()

    database = SQLiteDatabase.open(dbPath, clock=lambda: 50.0)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION
        assert database.listAccounts() == [ALICE]
        assert database.accountCreatedAt(ALICE) == 17.0
        assert database.getScramCredential(ALICE, "SCRAM-SHA-256") == SHA256
        assert database.listCertificates(ALICE) == []
        cursor, _ = database.changesSince(0)
        assert cursor == 1
        database.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
        assert database.changesSince(cursor)[1] == [database.getCertificate(ALICE, "laptop")]
    finally:
        database.close()
    # Opening it again changes nothing more.
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION
        assert [c.name for c in database.listCertificates(ALICE)] == ["laptop"]
    finally:
        database.close()


def test_migrateFromVersion2KeepsRevocations(dbPath: Path) -> None:
    """
    Opening a version 2 database (the first release) migrates it in place:
    certificates already revoked there stay revoked after their records
    are removed.
    """
    dbPath.parent.mkdir(parents=True)
    conn = sqlite3.connect(dbPath)
    for migrate in MIGRATIONS[:2]:
        migrate(conn)
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', 2)")
        conn.execute("INSERT INTO accounts VALUES (?, 17.0)", (ALICE,))
        for name, der, fp, state in (("laptop", DER1, FP1, "revoked"), ("phone", DER2, FP2, "enabled")):
            conn.execute(
                "INSERT INTO certificates (account, name, fingerprint, der, state, can_manage,"
                " not_after, created_at, changed_at, last_used_at, change_seq)"
                " VALUES (?, ?, ?, ?, ?, 1, 5000.0, 20.0, 30.0, NULL, 2)",
                (ALICE, name, fp, der, state),
            )
    conn.close()
    database = SQLiteDatabase.open(dbPath)
    try:
        assert database.schemaVersion() == SCHEMA_VERSION
        assert database.isCertificateRevoked(FP1)
        assert not database.isCertificateRevoked(FP2)
        database.removeCertificate(ALICE, "laptop")
        assert database.isCertificateRevoked(FP1)
        assert [c.name for c in database.listCertificates(ALICE)] == ["phone"]
    finally:
        database.close()


def test_certificateSchema(database: SQLiteDatabase) -> None:
    """
    The schema itself guards certificates: the state must be a known one,
    names are unique among the enabled certificates of an account (not
    among disabled or revoked ones) and fingerprints across the server in
    every state, certificates need an account and go with it (ON DELETE
    CASCADE); the change counter and expiry have indexes.
    """
    database.addAccount(ALICE, [])
    database.addAccount(BOB, [])
    database.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
    conn = database._conn
    insert = (
        "INSERT INTO certificates (account, name, fingerprint, der, state, can_manage,"
        " not_after, created_at, changed_at, change_seq) VALUES (?, ?, ?, x'00', ?, 1, 0, 0, 0, 9)"
    )
    for values in [
        (ALICE, "other", FP2, "bogus"),
        (ALICE, "laptop", FP2, "enabled"),
        (BOB, "laptop", FP1, "enabled"),
        (BOB, "laptop", FP1, "revoked"),
        ("carol@example.com", "laptop", FP2, "enabled"),
    ]:
        with pytest.raises(sqlite3.IntegrityError):
            with conn:
                conn.execute(insert, values)
    # History: any number of disabled and revoked namesakes.
    with conn:
        conn.execute(insert, (ALICE, "laptop", FP2, "disabled"))
        conn.execute(insert, (ALICE, "laptop", FP3, "revoked"))
        conn.execute(insert, (ALICE, "laptop", FP4, "disabled"))
    with pytest.raises(sqlite3.IntegrityError):
        with conn:
            conn.execute("UPDATE certificates SET state = 'enabled' WHERE fingerprint = ?", (FP2,))
    with conn:
        conn.execute("UPDATE certificates SET state = 'disabled' WHERE fingerprint = ?", (FP1,))
        conn.execute("UPDATE certificates SET state = 'enabled' WHERE fingerprint = ?", (FP2,))
    indexes = {
        row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'certificates'"
            " AND sql IS NOT NULL"
        )
    }
    assert any("(change_seq)" in sql for sql in indexes)
    assert any("(not_after)" in sql for sql in indexes)
    assert any("(account, name)" in sql and "WHERE" not in sql for sql in indexes)
    with conn:
        conn.execute("DELETE FROM accounts WHERE jid = ?", (ALICE,))
    assert conn.execute("SELECT count(*) FROM certificates").fetchone() == (0,)


def test_partialNameIndex(database: SQLiteDatabase) -> None:
    """
    Names are unique through the partial unique index
    certificates_enabled_name on (account, name) WHERE state = 'enabled',
    not through a UNIQUE (account, name) constraint of the table; the
    fingerprint stays UNIQUE for the whole table.
    """
    conn = database._conn
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'certificates_enabled_name'"
    ).fetchone()
    assert " ".join(sql.split()) == (
        "CREATE UNIQUE INDEX certificates_enabled_name ON certificates (account, name)"
        " WHERE state = 'enabled'"
    )
    unique = {}
    for _, name, isUnique, origin, partial in conn.execute("PRAGMA index_list(certificates)"):
        if isUnique:
            columns = [row[2] for row in conn.execute(f"PRAGMA index_info('{name}')")]
            unique[tuple(columns)] = (origin, partial)
    assert unique == {
        ("account", "name"): ("c", 1),  # CREATE INDEX, partial
        ("fingerprint",): ("u", 0),  # the column's UNIQUE constraint, whole table
    }
    (table,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'certificates'"
    ).fetchone()
    assert "UNIQUE (account, name)" not in table


def test_addCertificateAtomic(database: SQLiteDatabase) -> None:
    """
    Nothing half-written: when the insert fails after the change counter
    was increased, neither the row nor the increase is stored.
    """
    database.addAccount(ALICE, [])
    cursor, _ = database.changesSince(0)
    with pytest.raises(sqlite3.IntegrityError):
        database.addCertificate(ALICE, "laptop", None, FP1, 5000.0)  # type: ignore[arg-type]
    assert database.listCertificates(ALICE) == []
    assert database.changesSince(0) == (cursor, [])


class _BlindConnection:
    """
    A connection whose checks before an insert never see a certificate, as
    if another writer had slipped in between: only the UNIQUE constraints
    can catch a duplicate then.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("SELECT 1 FROM certificates"):
            return self._conn.execute("SELECT 1 WHERE 0")
        return self._conn.execute(sql, *args)

    def __enter__(self) -> Any:
        return self._conn.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._conn.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_constraintsAreTheGuard(database: SQLiteDatabase) -> None:
    """
    XEP-0257 section 2.1: a duplicate name MUST be rejected even when the
    check before the insert misses it: the UNIQUE constraint's
    IntegrityError becomes CertificateExists for the right field, and
    nothing is stored.
    """
    database.addAccount(ALICE, [])
    database.addAccount(BOB, [])
    database.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
    cursor, _ = database.changesSince(0)
    realConnection = database._conn
    database._conn = _BlindConnection(realConnection)  # type: ignore[assignment]
    try:
        with pytest.raises(CertificateExists) as e:
            database.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        assert e.value.field == "name"
        with pytest.raises(CertificateExists) as e:
            database.addCertificate(BOB, "laptop", DER1, FP1, 5000.0)
        assert e.value.field == "fingerprint"
        assert ALICE not in str(e.value)
    finally:
        database._conn = realConnection
    assert [c.fingerprint for c in database.listCertificates(ALICE)] == [FP1]
    assert database.listCertificates(BOB) == []
    assert database.changesSince(cursor) == (cursor, [])


def test_indexGuardsEnable(database: SQLiteDatabase) -> None:
    """
    Enabling a disabled certificate while another of its name is enabled
    gives CertificateExists for the name even when the check before the
    update misses it: the partial index decides, and nothing changes. A
    blind add next to a disabled namesake still succeeds: the index counts
    enabled certificates only.
    """
    database.addAccount(ALICE, [])
    database.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
    old = database.setCertificateState(ALICE, "laptop", "disabled")
    realConnection = database._conn
    database._conn = _BlindConnection(realConnection)  # type: ignore[assignment]
    try:
        new = database.addCertificate(ALICE, "laptop", DER2, FP2, 5000.0)
        cursor, _ = database.changesSince(0)
        with pytest.raises(CertificateExists) as e:
            database.setCertificateStateByFingerprint(FP1, "enabled")
        assert e.value.field == "name"
        assert ALICE in str(e.value) and "laptop" in str(e.value)
    finally:
        database._conn = realConnection
    assert database.certificateByFingerprint(FP1) == old
    assert database.getCertificate(ALICE, "laptop") == new
    assert database.changesSince(cursor) == (cursor, [])


def test_replaceDisabledAtomic(database: SQLiteDatabase) -> None:
    """
    The deletion of the disabled record is rolled back with the add: when
    the checks before the insert miss a name conflict and the partial
    unique index refuses the insert, the disabled record is still there,
    unchanged, and no change is recorded.
    """
    database.addAccount(ALICE, [])
    database.addCertificate(ALICE, "laptop", DER1, FP1, 5000.0)
    disabled = database.setCertificateState(ALICE, "laptop", "disabled")
    database.addCertificate(ALICE, "phone", DER2, FP2, 5000.0)
    cursor, _ = database.changesSince(0)
    realConnection = database._conn
    database._conn = _BlindConnection(realConnection)  # type: ignore[assignment]
    try:
        with pytest.raises(CertificateExists) as e:
            database.addCertificate(ALICE, "phone", DER1, FP1, 5000.0, replaceDisabled=True)
        assert e.value.field == "name"
    finally:
        database._conn = realConnection
    assert database.certificateByFingerprint(FP1) == disabled
    assert database.changesSince(cursor) == (cursor, [])


def _race(dbPath: Path, calls: list[Callable[[SQLiteDatabase], object]]) -> list[object]:
    """
    Run each call on its own connection to C{dbPath}, in its own thread, all
    released at once by a barrier.

    @return: per call, its result or the exception raised.
    """
    connections = [SQLiteDatabase.open(dbPath) for _ in calls]
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i](connections[i])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for connection in connections:
            connection.close()
    return results


def _add(account: str, name: str, der: bytes, fp: str) -> Callable[[SQLiteDatabase], object]:
    return lambda db: db.addCertificate(account, name, der, fp, 5000.0)


def _raceAdds(dbPath: Path, adds: list[tuple[str, str, bytes, str]]) -> list[object]:
    """
    Run each add on its own connection to C{dbPath}, in its own thread, all
    released at once by a barrier.

    @return: per add, the new record or the exception raised.
    """
    return _race(dbPath, [_add(*add) for add in adds])


def test_concurrentAddsSameName(dbPath: Path) -> None:
    """
    XEP-0257 section 2.1: a duplicate name MUST be rejected, also when two
    connections add the same name at the same moment: exactly one add
    succeeds, the other gets CertificateExists for the name, never a
    database error.
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [])
    setup.close()
    for round in range(10):
        name = f"laptop {round}"
        winner = _raceOneName(dbPath, name, 100 + 2 * round)
        check = SQLiteDatabase.open(dbPath)
        try:
            assert check.getCertificate(ALICE, name) == winner
        finally:
            check.close()


def _raceOneName(dbPath: Path, name: str, seed: int) -> StoredCertificate:
    """
    Add two certificates under C{name} for ALICE at once; check that one
    won and the other lost on the name, and return the winner.
    """
    derA, fpA = fakeCertificate(seed)
    derB, fpB = fakeCertificate(seed + 1)
    results = _raceAdds(dbPath, [(ALICE, name, derA, fpA), (ALICE, name, derB, fpB)])
    stored = [r for r in results if isinstance(r, StoredCertificate)]
    failed = [r for r in results if isinstance(r, CertificateExists)]
    assert len(stored) == 1 and len(failed) == 1, results
    assert failed[0].field == "name"
    return stored[0]


def test_concurrentAddsSameNameWithHistory(dbPath: Path) -> None:
    """
    The same race with disabled and revoked certificates of that name
    already there: they do not block either add, and still exactly one of
    the two concurrent adds wins.
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [])
    for round in range(10):
        name = f"laptop {round}"
        for i, state in enumerate(["disabled", "revoked"]):
            der, fp = fakeCertificate(300 + 2 * round + i)
            setup.addCertificate(ALICE, name, der, fp, 5000.0)
            setup.setCertificateState(ALICE, name, state)
    setup.close()
    for round in range(10):
        _raceOneName(dbPath, f"laptop {round}", 400 + 2 * round)
    check = SQLiteDatabase.open(dbPath)
    try:
        states = [c.state for c in check.listCertificates(ALICE)]
        assert states.count("enabled") == 10 and len(states) == 30
    finally:
        check.close()


def _enable(fp: str) -> Callable[[SQLiteDatabase], object]:
    return lambda db: db.setCertificateStateByFingerprint(fp, "enabled")


def test_concurrentEnableAndAdd(dbPath: Path) -> None:
    """
    Enabling a disabled certificate and adding a new one of its name at the
    same moment, on two connections: exactly one succeeds, the other gets
    CertificateExists for the name; never two enabled certificates of one
    name.
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [])
    setup.close()
    for round in range(10):
        name = f"laptop {round}"
        derOld, fpOld = fakeCertificate(500 + 2 * round)
        derNew, fpNew = fakeCertificate(501 + 2 * round)
        setup = SQLiteDatabase.open(dbPath)
        setup.addCertificate(ALICE, name, derOld, fpOld, 5000.0)
        setup.setCertificateState(ALICE, name, "disabled")
        setup.close()
        results = _race(dbPath, [_enable(fpOld), _add(ALICE, name, derNew, fpNew)])
        failed = [r for r in results if isinstance(r, CertificateExists)]
        assert len(failed) == 1 and failed[0].field == "name", results
        assert sum(isinstance(r, StoredCertificate) for r in results) == 1, results
        check = SQLiteDatabase.open(dbPath)
        try:
            assert len(check.listCertificates(ALICE, states=["enabled"])) == round + 1
        finally:
            check.close()


def test_concurrentAddsSameFingerprint(dbPath: Path) -> None:
    """
    Two accounts adding the same certificate at the same moment: exactly
    one succeeds, the other gets CertificateExists for the fingerprint.
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [])
    setup.addAccount(BOB, [])
    setup.close()
    for round in range(10):
        der, fp = fakeCertificate(200 + round)
        results = _raceAdds(dbPath, [(ALICE, f"a{round}", der, fp), (BOB, f"b{round}", der, fp)])
        stored = [r for r in results if isinstance(r, StoredCertificate)]
        failed = [r for r in results if isinstance(r, CertificateExists)]
        assert len(stored) == 1 and len(failed) == 1, results
        assert failed[0].field == "fingerprint"


def _replace(account: str, name: str, der: bytes, fp: str) -> Callable[[SQLiteDatabase], object]:
    return lambda db: db.addCertificate(account, name, der, fp, 5000.0, replaceDisabled=True)


def _revoke(fp: str) -> Callable[[SQLiteDatabase], object]:
    return lambda db: db.setCertificateStateByFingerprint(fp, "revoked")


def _disabledCertificate(dbPath: Path, n: int) -> tuple[bytes, str]:
    """
    Add certificate C{n} to ALICE (registered already) and disable it.
    """
    der, fp = fakeCertificate(n)
    setup = SQLiteDatabase.open(dbPath)
    try:
        setup.addCertificate(ALICE, f"cert {n}", der, fp, 5000.0)
        setup.setCertificateStateByFingerprint(fp, "disabled")
    finally:
        setup.close()
    return der, fp


def test_concurrentReplaceAndRevoke(dbPath: Path) -> None:
    """
    XEP-0257 section 2.5: revocation is final, also when a replaceDisabled
    add of the disabled certificate and its revocation run at the same
    moment on two connections: either the add comes first and the
    revocation then revokes the new record, or the revocation comes first
    and the add gets CertificateExists for the fingerprint. The
    certificate always ends up revoked, in exactly one record.
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [])
    setup.close()
    for round in range(10):
        der, fp = _disabledCertificate(dbPath, 600 + round)
        added, revoked = _race(dbPath, [_replace(ALICE, f"again {round}", der, fp), _revoke(fp)])
        assert isinstance(revoked, StoredCertificate) and revoked.state == "revoked", revoked
        if not isinstance(added, StoredCertificate):
            assert isinstance(added, CertificateExists) and added.field == "fingerprint", added
        check = SQLiteDatabase.open(dbPath)
        try:
            assert [c.state for c in check.listCertificates(ALICE) if c.fingerprint == fp] == [
                "revoked"
            ]
        finally:
            check.close()


def test_concurrentReplaces(dbPath: Path) -> None:
    """
    Two replaceDisabled adds of one disabled certificate at the same
    moment: exactly one succeeds, the other gets CertificateExists for the
    fingerprint (the record is enabled by then), never a database error;
    one enabled record remains.
    """
    setup = SQLiteDatabase.open(dbPath)
    setup.addAccount(ALICE, [])
    setup.close()
    for round in range(10):
        der, fp = _disabledCertificate(dbPath, 700 + round)
        results = _race(
            dbPath, [_replace(ALICE, f"a{round}", der, fp), _replace(ALICE, f"b{round}", der, fp)]
        )
        stored = [r for r in results if isinstance(r, StoredCertificate)]
        failed = [r for r in results if isinstance(r, CertificateExists)]
        assert len(stored) == 1 and len(failed) == 1, results
        assert failed[0].field == "fingerprint"
        check = SQLiteDatabase.open(dbPath)
        try:
            assert check.certificateByFingerprint(fp) == stored[0]
        finally:
            check.close()
