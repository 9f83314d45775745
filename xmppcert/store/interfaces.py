# -*- test-case-name: tests.test_store -*-
"""
The storage interfaces: accounts with their SASL credentials
(L{IAccountStore}), and the client certificates accounts registered for
SASL EXTERNAL (L{ICertificateStore}, XEP-0257 and XEP-0178).

Passwords are never stored: an account holds, per SCRAM hash, the salt, the
iteration count, StoredKey and ServerKey (RFC 5802 section 3). PLAIN is
checked against the same values.
"""

from __future__ import annotations

import datetime
import sqlite3
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zope.interface import Interface

#: SCRAM mechanisms for which credentials are derived and stored.
SCRAM_MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256")

#: States of a registered certificate (XEP-0257 sections 2.3 to 2.5): only
#: an C{enabled} one may log in; C{revoked} is final.
CERTIFICATE_STATES = ("enabled", "disabled", "revoked")

#: Longest certificate name, in characters after stripping.
MAX_CERTIFICATE_NAME = 255

#: State changes L{ICertificateStore.setCertificateState} allows (setting the
#: current state again is a no-op and always allowed).
CERTIFICATE_TRANSITIONS = frozenset(
    {
        ("enabled", "disabled"),
        ("enabled", "revoked"),
        ("disabled", "revoked"),
        ("disabled", "enabled"),
    }
)


class StoreError(Exception):
    """
    Base class of the store's own failures.
    """


#: What a store call fails with when the store itself fails (a locked,
#: read-only or full database, a closed store): an operator matter, never
#: the peer's doing. The domain errors below (L{AccountExists},
#: L{CertificateExists}, ...) are not failures of the store; callers catch
#: them first.
STORE_FAILURES: tuple[type[BaseException], ...] = (sqlite3.Error, StoreError, OSError)


class AccountExists(StoreError):
    """
    An account with that JID is already registered.
    """


class NoSuchAccount(StoreError):
    """
    No account with that JID is registered.
    """


class CertificateExists(StoreError):
    """
    The certificate cannot be added or enabled: an enabled certificate of
    that account has its name (XEP-0257 section 2.1: names are unique among
    the certificates an account can log in with), or its fingerprint is
    registered already (by any account, in any state: one certificate logs
    in to one account, and a revoked one can never be registered again).

    The message never names another account.

    @ivar field: C{"name"} or C{"fingerprint"}, whichever is taken.
    """

    def __init__(self, field: str, message: str = "") -> None:
        """
        @param field: C{"name"} or C{"fingerprint"}.
        @param message: the text of the error; a generic one if empty.
        """
        if field not in ("name", "fingerprint"):
            raise ValueError(f"field must be 'name' or 'fingerprint', not {field!r}")
        super().__init__(message or f"a certificate with that {field} is already registered")
        self.field = field


class NoSuchCertificate(StoreError):
    """
    The account has no certificate of that name, or no certificate has
    that fingerprint.
    """


class CertificateLimitReached(StoreError):
    """
    The account has as many enabled certificates as it may have.
    """


class CertificateRevoked(StoreError):
    """
    The certificate is revoked, which is final (XEP-0257 section 2.5): it
    cannot be enabled or disabled again.
    """


def checkCertificateName(name: str) -> str:
    """
    Validate and normalise the name of a certificate (XEP-0257 section 2.1
    names certificates for people to tell them apart).

    @return: C{name} without leading and trailing whitespace.
    @raise ValueError: the stripped name is empty or longer than
        L{MAX_CERTIFICATE_NAME} characters, or has a control character.
    """
    if not isinstance(name, str):
        raise ValueError(f"a certificate name must be a string, not {type(name).__name__}")
    stripped = name.strip()
    if not stripped:
        raise ValueError("a certificate name must not be empty")
    if len(stripped) > MAX_CERTIFICATE_NAME:
        raise ValueError(
            f"a certificate name must have at most {MAX_CERTIFICATE_NAME} characters,"
            f" not {len(stripped)}"
        )
    for c in stripped:
        if unicodedata.category(c) in ("Cc", "Cs"):
            raise ValueError(f"a certificate name must not contain control characters ({c!r})")
    return stripped


def checkFingerprint(fingerprint: str) -> str:
    """
    @return: C{fingerprint}, if it is a SHA-256 fingerprint as
        L{xmppcert.x509.fingerprint} gives it: 64 lowercase hex digits.
    @raise ValueError: it is not.
    """
    if not (
        isinstance(fingerprint, str)
        and len(fingerprint) == 64
        and all(c in "0123456789abcdef" for c in fingerprint)
    ):
        raise ValueError(
            f"not a SHA-256 fingerprint (64 lowercase hex digits): {fingerprint!r}"
        )
    return fingerprint


def checkCertificateState(state: str) -> str:
    """
    @return: C{state}, if it is one of L{CERTIFICATE_STATES}.
    @raise ValueError: it is not.
    """
    if state not in CERTIFICATE_STATES:
        raise ValueError(
            f"unknown certificate state {state!r} (one of {', '.join(CERTIFICATE_STATES)})"
        )
    return state


def checkCertificateStates(states: Sequence[str] | None) -> tuple[str, ...] | None:
    """
    Check the state filter of L{ICertificateStore.listCertificates}.

    @return: C{None} for C{None} (no filter), else the states as a tuple.
    @raise ValueError: a state is not one of L{CERTIFICATE_STATES}, or
        C{states} is a single string (which would be read as its letters).
    """
    if states is None:
        return None
    if isinstance(states, str):
        raise ValueError(f"states must be a sequence of states, not the string {states!r}")
    return tuple(checkCertificateState(state) for state in states)


def checkTransition(current: str, new: str, name: str = "") -> None:
    """
    Check a state change of a certificate (XEP-0257: a disabled certificate
    may be enabled again, a revoked one never).

    @raise CertificateRevoked: C{current} is C{"revoked"} and C{new} is not.
    @raise StoreError: any other change not in L{CERTIFICATE_TRANSITIONS}.
    """
    if current == new:
        return
    if current == "revoked":
        raise CertificateRevoked(
            f"certificate {name!r} is revoked; revocation is final" if name
            else "the certificate is revoked; revocation is final"
        )
    if (current, new) not in CERTIFICATE_TRANSITIONS:  # pragma: no cover - all covered today
        raise StoreError(f"a certificate cannot change from {current} to {new}")


@dataclass(frozen=True)
class ScramCredential:
    """
    The server-side SCRAM values of one account for one hash function.

    @ivar mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
    """

    mechanism: str
    salt: bytes
    iterations: int
    storedKey: bytes
    serverKey: bytes


class IAccountStore(Interface):
    """
    Where accounts and their credentials live.

    Every method returns a L{twisted.internet.defer.Deferred}. JIDs are bare
    JIDs as normalised strings (C{user@domain}); callers prepare them.
    """

    def addAccount(jid, credentials):  # type: ignore[no-untyped-def]
        """
        Register a new account.

        @type jid: C{str}
        @type credentials: sequence of L{ScramCredential}, one per mechanism
        @return: Deferred firing with C{None}, or failing with L{AccountExists}.
        """

    def setCredentials(jid, credentials):  # type: ignore[no-untyped-def]
        """
        Replace all credentials of an account (a password change).

        @return: Deferred firing with C{None}, or failing with L{NoSuchAccount}.
        """

    def removeAccount(jid):  # type: ignore[no-untyped-def]
        """
        Delete an account and everything stored for it: credentials,
        certificates, roster, offline messages, block list, vCard, private
        XML, personal eventing nodes and items; and remove it
        from every other account's roster (RFC 6121 section 2.5.2).

        @return: Deferred firing with C{None}, or failing with L{NoSuchAccount}.
        """

    def accountExists(jid):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with C{True} or C{False}.
        """

    def listAccounts(domain=None):  # type: ignore[no-untyped-def]
        """
        @param domain: only accounts of this domain, or all when C{None}.
        @return: Deferred firing with a sorted C{list} of bare JID strings.
        """

    def getScramCredential(jid, mechanism):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the L{ScramCredential} of C{jid} for
            C{mechanism}, or C{None} when the account or credential is missing.
        """

    def close():  # type: ignore[no-untyped-def]
        """
        Release connections and threads.

        @return: Deferred firing when done.
        """

    def setAccountLocked(jid, locked):  # type: ignore[no-untyped-def]
        """
        Lock or unlock an account: a locked account cannot log in by any
        mechanism (an operator's decision; nothing is deleted).

        @return: Deferred firing with C{None}, or failing with L{NoSuchAccount}.
        """

    def isAccountLocked(jid):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with C{True} if C{jid} is locked; C{False}
            for an unlocked or unknown account.
        """

    def fakeCredentialSecret():  # type: ignore[no-untyped-def]
        """
        The secret behind the made-up SCRAM credentials of accounts that do
        not exist (L{xmppcert.passwords.fakeScramCredential}): random, at
        least 16 bytes, created on first use and the same afterwards, across
        restarts and for every server sharing the store; otherwise the salt
        offered for an unknown account would change and give it away.

        Called once at start-up, before the reactor runs; may block.

        @return: C{bytes}.
        """


@dataclass(frozen=True)
class AuditEntry:
    """
    One change to accounts or certificates, as the audit trail records it.

    @ivar at: when (POSIX timestamp).
    @ivar actor: who made it: C{"cli:<user>"} for the command line run by
        that operating-system user, the JID of a client session, or
        C{"control:<user>"} for the control channel.
    @ivar action: what was done, e.g. C{"user.add"}, C{"cert.revoke"}.
    @ivar target: the account (bare JID), or C{"<jid>/<certificate name>"}
        for one of its certificates.
    @ivar detail: anything else worth knowing (a fingerprint, a reason).
    """

    at: float
    actor: str
    action: str
    target: str
    detail: str = ""


class IAuditLog(Interface):
    """
    Where changes to accounts and certificates are recorded. Every method
    returns a Deferred.
    """

    def recordAudit(actor, action, target, detail=""):  # type: ignore[no-untyped-def]
        """
        Append one entry, stamped with the store's clock.

        @return: Deferred firing with the L{AuditEntry}.
        """

    def auditTrail(target=None, limit=100):  # type: ignore[no-untyped-def]
        """
        @param target: only entries about this account (and its
            certificates); all when C{None}.
        @param limit: the newest this many.
        @return: Deferred firing with a list of L{AuditEntry}, oldest first.
        """


@dataclass(frozen=True)
class StoredCertificate:
    """
    A client certificate registered for an account (XEP-0257).

    @ivar account: the bare JID of the account.
    @ivar name: unique among the enabled certificates of the account
        (XEP-0257 section 2.1); disabled and revoked ones are history and
        may share it with each other and with an enabled one.
    @ivar fingerprint: SHA-256 of the DER encoding, lowercase hex; unique
        across the server, in every state: it identifies one certificate.
    @ivar der: the certificate, DER-encoded.
    @ivar state: one of L{CERTIFICATE_STATES}.
    @ivar canManage: C{False} when uploaded with C{<no-cert-management/>}
        (XEP-0257 section 2.1): a session that logged in with it must not
        manage certificates.
    @ivar notAfter: end of validity, POSIX timestamp (for pruning).
    @ivar createdAt: when it was added, POSIX timestamp.
    @ivar changedAt: when its state last changed (C{createdAt} until then).
    @ivar lastUsedAt: when it was last used to log in, or C{None}.
    """

    account: str
    name: str
    fingerprint: str
    der: bytes
    state: str
    canManage: bool
    notAfter: float
    createdAt: float
    changedAt: float
    lastUsedAt: float | None


class ICertificateStore(Interface):
    """
    Where the client certificates of accounts live (XEP-0257), looked up by
    fingerprint for SASL EXTERNAL (XEP-0178).

    Every method returns a L{twisted.internet.defer.Deferred}. Accounts are
    normalised bare JID strings; fingerprints are lowercase SHA-256 hex.
    Certificate names are stripped of surrounding whitespace by every method.

    A name is unique only among the B{enabled} certificates of an account
    (XEP-0257 section 2.1 against 2.3: a disabled or revoked certificate can
    no longer log in, and the usual client flow uploads a new certificate,
    disables the old one and later reuses its name). Disabled and revoked
    certificates are kept as history, so one name may belong to several
    certificates; a fingerprint is unique across all accounts and states,
    so it names exactly one. The methods taking C{(account, name)} act on
    the certificate L{getCertificate} returns; those taking a fingerprint
    act on exactly that certificate.

    When the store itself cannot do the work (unreachable, locked for too
    long, disk full), a method fails with a L{StoreError} that is none of
    the subclasses documented here (SQLite's C{sqlite3.Error} and
    C{OSError} are understood too): XEP-0257 answers that with
    C{internal-server-error} of type C{wait}, logged once, not with a
    traceback.
    """

    def addCertificate(  # type: ignore[no-untyped-def]
        account,
        name,
        der,
        fingerprint,
        notAfter,
        canManage=True,
        maxPerAccount=0,
        replaceDisabled=False,
    ):
        """
        Register a certificate, enabled, for an existing account.

        The checks and the insert are one transaction, and the database's
        own uniqueness constraints back them: of two concurrent adds of the
        same name or fingerprint exactly one succeeds.

        The name conflicts only with an B{enabled} certificate of the
        account; disabled and revoked ones may have it. The fingerprint
        conflicts with any certificate, in any state and account, except
        as C{replaceDisabled} allows.

        With C{replaceDisabled}, a certificate with that fingerprint that
        belongs to C{account} and is B{disabled} is deleted first, in the
        same transaction, and the new record takes its place (XEP-0257
        section 2.3: appending a certificate the user disabled brings it
        back). Its name, flag, times and last use are not kept: the new
        record is a fresh add, reported by L{changesSince}. The deletion is
        part of the add: when a check fails (name, limit) the disabled
        record stays as it was, and a certificate revoked (or enabled, or
        of another account) by the time the transaction runs still gives
        L{CertificateExists} with C{field="fingerprint"}, so a concurrent
        revocation can never be undone by a re-add.

        @param name: 1 to 255 characters after stripping, no control
            characters.
        @param der: the DER encoding.
        @param fingerprint: its SHA-256 fingerprint.
        @param notAfter: its end of validity, POSIX timestamp.
        @param canManage: C{False} for C{<no-cert-management/>}.
        @param maxPerAccount: when above 0, the most B{enabled}
            certificates the account may have (the ones its user sees in the
            XEP-0257 list); disabled and revoked ones do not count.
        @param replaceDisabled: replace a disabled certificate of
            C{account} with this fingerprint instead of refusing it.
        @return: Deferred firing with the new L{StoredCertificate}, or
            failing with L{NoSuchAccount}, L{CertificateExists} (XEP-0257
            section 2.1: a name already used by an enabled certificate MUST
            be rejected; C{field} says which is taken; a fingerprint that
            was ever revoked is taken for good, see
            L{isCertificateRevoked}),
            L{CertificateLimitReached}, or C{ValueError} for a bad name or
            fingerprint.
        """

    def listCertificates(account, states=None):  # type: ignore[no-untyped-def]
        """
        @param states: a sequence of states from L{CERTIFICATE_STATES}: only
            certificates in one of them; all when C{None}. XEP-0257 section
            2.2 lists those that can log in: C{["enabled"]}.
        @return: Deferred firing with the L{StoredCertificate}s of
            C{account} (a C{list}, empty for an unknown account), oldest
            first, then by name, then in the order they were added; or
            failing with C{ValueError} for an unknown state (or a string
            instead of a sequence).
        """

    def getCertificate(account, name):  # type: ignore[no-untyped-def]
        """
        The certificate of C{account} that C{name} refers to: the enabled
        one with that name if there is one, else the most recently changed
        (by C{changedAt}, then the most recently added) disabled or revoked
        one.

        @return: Deferred firing with that L{StoredCertificate}, or C{None}.
        """

    def certificateByFingerprint(fingerprint):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the L{StoredCertificate} with that
            fingerprint, of whichever account, or C{None}.
        """

    def isCertificateRevoked(fingerprint):  # type: ignore[no-untyped-def]
        """
        Whether the certificate with that fingerprint was ever revoked. A
        revocation is permanent: it outlives the certificate's record
        (removed by an operator, with its account, or by pruning), and a
        revoked fingerprint can never be added again. It is forgotten only
        once the certificate has expired (L{removeExpiredCertificates}),
        when it can no longer log in anyway.

        @return: Deferred firing with C{True} or C{False}.
        """

    def setCertificateState(account, name, state):  # type: ignore[no-untyped-def]
        """
        Enable, disable or revoke the certificate L{getCertificate} would
        return (XEP-0257 sections 2.3 to 2.5). Allowed: enabled to disabled
        or revoked, disabled to enabled or revoked; revoked is final.
        Setting the current state again (revoked included) changes nothing.

        Enabling a disabled certificate fails with L{CertificateExists}
        (C{field="name"}) when another certificate of the account with that
        name is enabled (only possible after a concurrent change here, as
        L{getCertificate} prefers the enabled one; see
        L{setCertificateStateByFingerprint}).

        @return: Deferred firing with the updated L{StoredCertificate}, or
            failing with L{NoSuchCertificate}, L{CertificateRevoked},
            L{CertificateExists}, or C{ValueError} for a state not in
            L{CERTIFICATE_STATES}.
        """

    def setCertificateStateByFingerprint(fingerprint, state):  # type: ignore[no-untyped-def]
        """
        Like L{setCertificateState}, for exactly the certificate with that
        fingerprint: for a caller that already looked it up. The same
        transitions are allowed; enabling a disabled certificate fails with
        L{CertificateExists} (C{field="name"}) when another certificate of
        its account with its name is enabled now.

        @return: Deferred firing with the updated L{StoredCertificate}, or
            failing with L{NoSuchCertificate}, L{CertificateRevoked},
            L{CertificateExists}, or C{ValueError} for a state not in
            L{CERTIFICATE_STATES}.
        """

    def touchCertificate(fingerprint, when):  # type: ignore[no-untyped-def]
        """
        Record that the certificate was used to log in at C{when} (POSIX
        timestamp). An unknown fingerprint is ignored. A store may write
        several logins together a little later (a last-used time changes no
        state: a crash may lose one, never a revocation).

        @return: Deferred firing with C{None} once written.
        """

    def removeCertificate(account, name):  # type: ignore[no-untyped-def]
        """
        Delete the certificate L{getCertificate} would return (XEP-0257
        section 2.6 as an operator action). Other certificates with that
        name stay.

        @return: Deferred firing with C{None}, or failing with
            L{NoSuchCertificate}.
        """

    def removeCertificateByFingerprint(fingerprint):  # type: ignore[no-untyped-def]
        """
        Delete exactly the certificate with that fingerprint, of whichever
        account and in whichever state.

        @return: Deferred firing with C{None}, or failing with
            L{NoSuchCertificate}.
        """

    def removeExpiredCertificates(before):  # type: ignore[no-untyped-def]
        """
        Delete every certificate whose C{notAfter} is earlier than
        C{before} (POSIX timestamp), and the revocations of such
        certificates.

        @return: Deferred firing with the removed L{StoredCertificate}s.
        """

    def changesSince(cursor):  # type: ignore[no-untyped-def]
        """
        Certificates added or changed in state since C{cursor}, also by
        another process on the same database: a running server polls this to
        end the sessions of certificates revoked with the command line tool.

        A change counter increases with every add and every state change;
        it is never 0, so C{0} can mean "from now on".

        @param cursor: C{0} to start, else a cursor this method returned.
        @return: Deferred firing with C{(newCursor, certificates)}: for
            C{0}, the current counter and an empty list (history is not
            replayed); otherwise the certificates changed after C{cursor},
            each once with its current state, in the order of their latest
            change. Removed certificates are not reported.
        """



# --- instant messaging (RFC 6121, XEP-0160, XEP-0191) ---------------------------

#: RFC 6121 section 2.1.2.5: the subscription states of a roster item.
SUBSCRIPTIONS = ("none", "to", "from", "both")


class RosterFull(StoreError):
    """
    The roster already holds as many items as it may (the server's limit;
    RFC 6121 section 2.3.3 names the stanza error the client gets).
    """


class BlockListFull(StoreError):
    """
    The block list already holds as many JIDs as it may.
    """


@dataclass(frozen=True, slots=True)
class RosterItem:
    """
    One contact of an account (RFC 6121 section 2.1.2), with the
    subscription state of RFC 6121 Appendix A.

    @ivar contact: the contact's bare JID, prepared.
    @ivar name: the user's name for the contact, C{None} for none.
    @ivar groups: the groups it is in, in the order the client gave.
    @ivar subscription: one of L{SUBSCRIPTIONS}.
    @ivar askOut: a subscription request to the contact is pending ("Pending
        Out", shown to clients as C{ask='subscribe'}).
    @ivar pendingIn: the contact asked to subscribe to the user's presence
        and the user has not answered ("Pending In"); the request is
        redelivered on the user's next initial presence (section 3.1.3).
    @ivar approved: the user pre-approved the contact's subscription
        (section 3.4).
    @ivar inRoster: C{False} for a contact that is only a pending inbound
        request and not (yet) an item the user sees (section 3.1.3: the
        server keeps the request without adding the contact to the roster).
    """

    contact: str
    name: str | None = None
    groups: tuple[str, ...] = ()
    subscription: str = "none"
    askOut: bool = False
    pendingIn: bool = False
    approved: bool = False
    inRoster: bool = True


class IRosterStore(Interface):
    """
    Rosters and subscription states (RFC 6121 sections 2 and 3).

    Every change of an account's roster (an item put or removed, whether or
    not it is C{inRoster}) increases that account's roster version, an
    integer that never decreases (section 2.6: a client that has version
    C{n} needs only the items changed after it).
    """

    def getRoster(account):  # type: ignore[no-untyped-def]
        """
        @param account: bare JID string.
        @return: Deferred firing with C{(version, items)}: the roster
            version and every L{RosterItem} of the account (also those not
            C{inRoster}), sorted by contact.
        """

    def getRosterItem(account, contact):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the L{RosterItem} of C{contact} in
            C{account}'s roster (C{inRoster} or not), or C{None}.
        """

    def putRosterItem(account, item, maxItems=0):  # type: ignore[no-untyped-def]
        """
        Add or replace C{item} (by its C{contact}) in one transaction.

        @param maxItems: the most items (C{inRoster} or not) a roster may
            hold; 0 for no limit.
        @return: Deferred firing with the roster's new version.
        @raise RosterFull: (in the Deferred) the item is new and the roster
            holds C{maxItems} already.
        @raise NoSuchAccount: C{account} does not exist.
        """

    def removeRosterItem(account, contact):  # type: ignore[no-untyped-def]
        """
        Remove C{contact} from C{account}'s roster.

        @return: Deferred firing with the roster's version afterwards
            (unchanged when there was no such item).
        """

    def rosterItemsWith(contact):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with C{[(account, item), ...]}: every
            account whose roster holds C{contact}.
        """


@dataclass(frozen=True)
class OfflineMessage:
    """
    A message stored for an account with no available resource (XEP-0160).

    @ivar id: increasing in the order messages were stored.
    @ivar stanza: the message, serialized XML.
    @ivar stamp: when it was stored (POSIX seconds), for the XEP-0203 delay.
    """

    id: int
    stanza: str
    stamp: float


class IOfflineStore(Interface):
    """
    Messages stored for accounts that were offline (XEP-0160).
    """

    def storeOfflineMessage(account, stanza, stamp, maxMessages=0):  # type: ignore[no-untyped-def]
        """
        @param stanza: the message, serialized XML.
        @param maxMessages: the most messages an account may have stored; 0
            for no limit.
        @return: Deferred firing with C{True} when stored, C{False} when the
            account has C{maxMessages} already (or does not exist).
        """

    def takeOfflineMessages(account):  # type: ignore[no-untyped-def]
        """
        Remove and return the account's stored messages, oldest first.

        @return: Deferred firing with a list of L{OfflineMessage}.
        """

    def countOfflineMessages(account):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the number of stored messages.
        """


class IBlockingStore(Interface):
    """
    Block lists (XEP-0191).
    """

    def getBlockList(account):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the blocked JIDs (strings, prepared;
            bare, full or domain JIDs), sorted.
        """

    def blockJIDs(account, jids, maxItems=0):  # type: ignore[no-untyped-def]
        """
        Add C{jids} to the block list (those already there are kept once).

        @param maxItems: the most JIDs a block list may hold; 0 for no limit.
        @return: Deferred firing with the JIDs newly added.
        @raise BlockListFull: (in the Deferred) they would not fit; none is
            added.
        """

    def unblockJIDs(account, jids=None):  # type: ignore[no-untyped-def]
        """
        Remove C{jids} from the block list, or every JID when C{None}.

        @return: Deferred firing with the JIDs removed.
        """


class PrivateStorageFull(StoreError):
    """
    Private XML storage (XEP-0049) of an account would exceed its limit.
    """


class IVCardStore(Interface):
    """
    vCards (XEP-0054): one per account, kept as serialized XML.
    """

    def getVCard(account):  # type: ignore[no-untyped-def]
        """
        @param account: bare JID string.
        @return: Deferred firing with the account's C{<vCard/>} as
            serialized XML, or C{None} when it has none (or does not
            exist).
        """

    def setVCard(account, xml):  # type: ignore[no-untyped-def]
        """
        Replace the account's vCard.

        @param xml: the C{<vCard/>}, serialized XML; C{None} removes it.
        @return: Deferred firing with C{None}.
        @raise NoSuchAccount: (in the Deferred) C{account} does not exist
            (not raised when removing).
        """


class IPrivateStore(Interface):
    """
    Private XML storage (XEP-0049): per account, one XML fragment per
    namespace.
    """

    def getPrivate(account, namespace):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the fragment stored under
            C{namespace} (serialized XML), or C{None}.
        """

    def setPrivate(account, namespace, xml, maxBytes=0):  # type: ignore[no-untyped-def]
        """
        Store (replace) the fragment of C{namespace}; C{None} removes it.

        @param maxBytes: the most bytes (UTF-8 of the fragments) an account
            may store in all; 0 for no limit.
        @return: Deferred firing with C{None}.
        @raise PrivateStorageFull: (in the Deferred) the account's total,
            with this fragment instead of the one it replaces, would exceed
            C{maxBytes}; nothing is changed.
        @raise NoSuchAccount: C{account} does not exist (not raised when
            removing).
        """


class PEPNodeLimitReached(StoreError):
    """
    Creating a PEP node would exceed the account's limit of nodes.
    """


class NoSuchPEPNode(StoreError):
    """
    The account has no PEP node of that name.
    """


class PEPNodeExists(StoreError):
    """
    The account already has a PEP node of that name.
    """


class PEPStorageFull(StoreError):
    """
    Publishing a PEP item would take the account's items over their limit
    of bytes.
    """


@dataclass(frozen=True)
class PEPNode:
    """
    A node of an account's personal eventing service (XEP-0163).

    @ivar node: the node identifier (at most L{MAX_PEP_NODE_NAME} characters).
    @ivar config: the node configuration, XEP-0060 field variables
        (C{pubsub#access_model}, C{pubsub#max_items}, ...) to their values
        as strings; a multi-valued field's values are joined by newlines.
        The store keeps it as given, it does not interpret it.
    """

    node: str
    config: Mapping[str, str]


@dataclass(frozen=True)
class PEPItem:
    """
    A published item.

    @ivar id: the item id (at most L{MAX_PEP_ITEM_ID} characters).
    @ivar payload: the item's payload, serialized XML (the child of
        C{<item/>}), or C{""} for an item without payload.
    @ivar publisher: the full JID that published it.
    @ivar published: when it was published (UTC, aware).
    """

    id: str
    payload: str
    publisher: str
    published: datetime.datetime


def pepItemBytes(item: PEPItem) -> int:
    """
    What a PEP item counts towards its account's limit of bytes
    (C{maxBytes} of L{IPEPStore.publishPEPItem}): its id, payload and
    publisher in UTF-8.
    """
    return sum(len(text.encode("utf-8")) for text in (item.id, item.payload, item.publisher))


#: The longest PEP node identifier and item id the store keeps.
MAX_PEP_NODE_NAME = 1023
MAX_PEP_ITEM_ID = 1023


class IPEPStore(Interface):
    """
    Personal eventing (XEP-0163): per account, nodes with their
    configuration, and each node's items, newest first. Deleted with the
    account.
    """

    def listPEPNodes(account):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the account's L{PEPNode}s, by node
            identifier (none for an account that does not exist).
        """

    def getPEPNode(account, node):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the L{PEPNode}, or C{None}.
        """

    def createPEPNode(account, node, config, maxNodes=0):  # type: ignore[no-untyped-def]
        """
        Create a node without items.

        @param config: see L{PEPNode.config}.
        @param maxNodes: the most nodes the account may have; 0 for no limit.
        @return: Deferred firing with C{None}.
        @raise PEPNodeExists: (in the Deferred) it exists.
        @raise PEPNodeLimitReached: the account has C{maxNodes} nodes.
        @raise NoSuchAccount: C{account} does not exist.
        """

    def configurePEPNode(account, node, config, maxItems=0):  # type: ignore[no-untyped-def]
        """
        Replace a node's configuration, and keep only its C{maxItems} newest
        items (0: keep them all), in one transaction.

        @return: Deferred firing with C{None}.
        @raise NoSuchPEPNode: (in the Deferred) there is no such node.
        """

    def deletePEPNode(account, node):  # type: ignore[no-untyped-def]
        """
        Delete a node and its items.

        @return: Deferred firing with C{True}, or C{False} when there was
            no such node.
        """

    def publishPEPItem(account, node, item, maxItems=0, createConfig=None, maxNodes=0, maxBytes=0):  # type: ignore[no-untyped-def]
        """
        Publish an item to a node, in one transaction: an item with the same
        id is replaced (and becomes the newest); then only the C{maxItems}
        newest items are kept (0: all).

        @param item: a L{PEPItem}.
        @param createConfig: when not C{None} and the node does not exist,
            it is created with this configuration first (XEP-0163 section
            4.3: auto-create), subject to C{maxNodes}.
        @param maxBytes: the most bytes the items of all the account's
            nodes may take together (L{pepItemBytes} of each: id, payload and publisher in UTF-8); 0 for no limit. The total is the one after
            the replacement and the trimming. A publish that would leave it
            above C{maxBytes} and above the total before is refused, so an
            account over its limit (a limit lowered since) may still
            replace an item with a smaller one.
        @return: Deferred firing with C{True} when the node was created by
            this call, else C{False}.
        @raise NoSuchPEPNode: (in the Deferred) no such node and
            C{createConfig} is C{None}.
        @raise PEPNodeLimitReached: creating it would exceed C{maxNodes}.
        @raise PEPStorageFull: the total would exceed C{maxBytes}; nothing
            is changed (and the node is not created).
        @raise NoSuchAccount: C{account} does not exist.
        """

    def getPEPItems(account, node, itemIds=None, maxItems=0):  # type: ignore[no-untyped-def]
        """
        @param itemIds: only these items (those that exist), or C{None} for
            all.
        @param maxItems: at most this many, the newest; 0 for no limit.
        @return: Deferred firing with a list of L{PEPItem}, newest first.
        @raise NoSuchPEPNode: (in the Deferred) there is no such node.
        """

    def retractPEPItem(account, node, itemId):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with C{True}, or C{False} when the node
            had no such item.
        @raise NoSuchPEPNode: (in the Deferred) there is no such node.
        """

    def purgePEPNode(account, node):  # type: ignore[no-untyped-def]
        """
        Remove every item of a node, keeping the node.

        @return: Deferred firing with C{None}.
        @raise NoSuchPEPNode: (in the Deferred) there is no such node.
        """


__all__ = [
    "IPEPStore",
    "MAX_PEP_ITEM_ID",
    "MAX_PEP_NODE_NAME",
    "NoSuchPEPNode",
    "PEPItem",
    "PEPNode",
    "PEPNodeExists",
    "PEPNodeLimitReached",
    "PEPStorageFull",
    "STORE_FAILURES",
    "pepItemBytes",
    "IPrivateStore",
    "IVCardStore",
    "PrivateStorageFull",
    "SUBSCRIPTIONS",
    "BlockListFull",
    "IBlockingStore",
    "IOfflineStore",
    "IRosterStore",
    "OfflineMessage",
    "RosterFull",
    "RosterItem",
    "AuditEntry",
    "IAuditLog",
    "CERTIFICATE_STATES",
    "CERTIFICATE_TRANSITIONS",
    "MAX_CERTIFICATE_NAME",
    "SCRAM_MECHANISMS",
    "AccountExists",
    "CertificateExists",
    "CertificateLimitReached",
    "CertificateRevoked",
    "IAccountStore",
    "ICertificateStore",
    "NoSuchAccount",
    "NoSuchCertificate",
    "ScramCredential",
    "StoreError",
    "StoredCertificate",
    "checkCertificateName",
    "checkCertificateState",
    "checkCertificateStates",
    "checkFingerprint",
    "checkTransition",
]
