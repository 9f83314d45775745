# -*- test-case-name: tests.test_certificates -*-
"""
The client certificates accounts log in with (XEP-0257, XEP-0178): the one
set of rules for accepting a certificate, and the one place that changes
the registered ones.

Every way of managing certificates goes through L{CertificateManager}:
XEP-0257 on a client stream (L{xmppcert.saslcert}), ad-hoc commands, the
C{xmppcert cert} commands and the control channel. Each operation names
who acts (an L{Actor}) and the account acted on, and fails with the domain
errors below (plain exceptions, nothing of XMPP); each front end says them
in its own words: stanza errors, command-line messages, AMP errors.

Who acts decides what is allowed and which rules apply:

  - L{Actor.ofAccount}, the account itself from one of its sessions (a
    password or a certificate login): it acts on its own account only,
    not at all (but to list) when it logged in with a certificate
    registered with C{<no-cert-management/>}; its additions count against
    C{maxPerAccount}; appending a certificate it disabled enables it again
    (XEP-0257 section 2.3); repeating an add exactly is a retry that
    succeeds; a name refers to a certificate the request can still change
    (it sees the certificates that can log in); it cannot enable or remove.
  - L{Actor.administrator}, an administrator's JID, on any account, and
    L{Actor.operator}, the command line or the control channel: no limit,
    no re-enabling by adding, no retries; a name refers to the enabled
    certificate of that name, else to the most recently changed one (they
    see every record, in every state), and they may enable and remove.

Whoever acts, a certificate is registered only if it passes
L{checkNewCertificate}, the rules a login applies too
(L{checkClientCertificate} and L{certificateIdentities} are shared with
L{xmppcert.cred}); every change is recorded in the audit trail with the
actor's name; a revocation ends the certificate's live sessions at once.
"""

from __future__ import annotations

import builtins
import datetime
import enum
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, TypeVar

from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import jid
from zope.interface import Attribute, Interface, implementer

from xmppcert import _log, x509
from xmppcert.metrics import IMetrics, NullMetrics
from xmppcert.store import interfaces as storage

log = Logger(observer=_log.observer)

_T = TypeVar("_T")

#: Seconds between two log lines about failed audit records.
AUDIT_FAILURE_LOG_INTERVAL = 60.0

#: The store's answers about accounts and certificates. Each is turned into
#: a domain error where it can occur; one that is not is a bug, never taken
#: for a broken store.
_STORE_ANSWERS = (
    storage.AccountExists,
    storage.NoSuchAccount,
    storage.CertificateExists,
    storage.NoSuchCertificate,
    storage.CertificateLimitReached,
    storage.CertificateRevoked,
)


# --- who acts ---------------------------------------------------------------


class ActorKind(enum.Enum):
    """
    The kinds of L{Actor}; see the module docstring for what each may do.
    """

    ACCOUNT = "account"
    ADMINISTRATOR = "administrator"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Actor:
    """
    Who makes a request.

    @ivar kind: see L{ActorKind}.
    @ivar name: the actor in the audit trail: a session's full JID, an
        administrator's JID, C{cli:<user>} or C{control:<user>}.
    @ivar account: for L{ActorKind.ACCOUNT}, the bare JID of the account
        it is (and the only one it may act on).
    @ivar mayManage: C{False} for a session that logged in with a
        certificate registered with C{<no-cert-management/>}: it may list,
        nothing else.
    """

    kind: ActorKind
    name: str
    account: str | None = None
    mayManage: bool = True

    @classmethod
    def ofAccount(
        cls, account: jid.JID | str, session: jid.JID | str | None = None, mayManage: bool = True
    ) -> Actor:
        """
        The account itself, from one of its sessions.

        @param account: the account (a prepared bare JID when a string).
        @param session: the session's full JID, the actor in the audit
            trail; the account is named when C{None}.
        @param mayManage: C{False} for a C{<no-cert-management/>} login.
        """
        bare = account.userhost() if isinstance(account, jid.JID) else account
        name = session.full() if isinstance(session, jid.JID) else (session or bare)
        return cls(ActorKind.ACCOUNT, name, bare, mayManage)

    @classmethod
    def administrator(cls, admin: jid.JID | str) -> Actor:
        """
        An administrator of the server, acting on any account. Who is one
        is the caller's decision.
        """
        return cls(ActorKind.ADMINISTRATOR, admin.full() if isinstance(admin, jid.JID) else admin)

    @classmethod
    def operator(cls, name: str) -> Actor:
        """
        The operator, through the command line (C{cli:<user>}) or the
        control channel (C{control:<user>}).
        """
        return cls(ActorKind.OPERATOR, name)

    @property
    def isAccount(self) -> bool:
        """
        Whether this is the account acting for itself.
        """
        return self.kind is ActorKind.ACCOUNT


# --- domain errors ----------------------------------------------------------


class CertificateManagementError(Exception):
    """
    Base of the errors L{CertificateManager} refuses with.

    @ivar completed: for an operation on several names, the
        L{CertificateChange}s made before this error stopped it.
    """

    completed: tuple[CertificateChange, ...] = ()


class NotAllowed(CertificateManagementError):
    """
    The actor may not do this: a C{<no-cert-management/>} login changing
    certificates, an account acting on another, or an account enabling or
    removing.
    """


class NoSuchAccount(CertificateManagementError):
    """
    The account acted on does not exist.
    """

    def __init__(self, account: str) -> None:
        super().__init__(f"there is no account {account}")
        self.account = account


class NoSuchCertificate(CertificateManagementError):
    """
    The account has no certificate of that name that the request can reach
    (also when another request revoked or removed it meanwhile).

    This is not the store's L{storage.NoSuchCertificate}: that one is a
    L{storage.StoreError}, which callers must not mistake for a store
    failure.
    """

    def __init__(self, account: str, name: str) -> None:
        super().__init__(f"{account} has no certificate named {name!r}")
        self.account = account
        self.name = name


class InvalidCertificateName(CertificateManagementError):
    """
    A name that no certificate may have (see
    L{storage.checkCertificateName}).
    """


class CertificateNameTaken(CertificateManagementError):
    """
    An enabled certificate of the account has that name (XEP-0257 section
    2.1: names are unique among the certificates that can log in).
    """

    def __init__(self, account: str, name: str) -> None:
        super().__init__(f"an enabled certificate of {account} is named {name!r}")
        self.account = account
        self.name = name


class CertificateAlreadyRegistered(CertificateManagementError):
    """
    The certificate is registered already: one certificate logs in to one
    account, and a revoked one can never be registered again.

    @ivar name: the name under which the account acted on has it, or
        C{None} when another account has it (which is not to be told) or
        its record is gone.
    @ivar revoked: it was revoked: that is final.
    """

    def __init__(self, account: str, name: str | None, revoked: bool) -> None:
        super().__init__("this certificate is already registered")
        self.account = account
        self.name = name
        self.revoked = revoked


class CertificateLimitReached(CertificateManagementError):
    """
    The account has as many enabled certificates as it may have.

    @ivar limit: that many.
    """

    def __init__(self, account: str, limit: int) -> None:
        super().__init__(f"{account} may have at most {limit} enabled certificates")
        self.account = account
        self.limit = limit


class RevocationIsFinal(CertificateManagementError):
    """
    The certificate is revoked, which is final (XEP-0257 section 2.5): it
    cannot be enabled or disabled again.
    """

    def __init__(self, account: str, name: str) -> None:
        super().__init__(f"certificate {name!r} of {account} is revoked, which is final")
        self.account = account
        self.name = name


class CertificateNotRevoked(CertificateManagementError):
    """
    The store does not say that the certificate is revoked.
    """

    def __init__(self, fingerprint: str) -> None:
        super().__init__(f"the store does not say that certificate {fingerprint} is revoked")
        self.fingerprint = fingerprint


class StoreUnavailable(CertificateManagementError):
    """
    The store failed (locked too long, disk full, read-only, closed): not
    the requester's doing, and nothing was changed.

    @ivar cause: what the store raised, one of L{storage.STORE_FAILURES}.
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class Problem(enum.Enum):
    """
    Why a certificate is not acceptable (L{CertificateNotAcceptable}). The
    two validity values are those of L{x509.Validity}.
    """

    UNREADABLE = "unreadable"
    NOT_CANONICAL = "not-canonical"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    NOT_CLIENT = "not-client"
    BAD_XMPPADDR = "bad-xmppaddr"
    NAMES_OTHERS = "names-others"
    NAMES_NO_JID = "names-no-jid"


class CertificateNotAcceptable(CertificateManagementError):
    """
    The certificate cannot be registered (nor log in), whoever asks.

    @ivar problem: which rule it breaks.
    @ivar reason: why, for people (e.g. the extension at fault, or the JIDs
        it names instead of the account).
    """

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


# --- the acceptance rules ---------------------------------------------------


def checkClientCertificate(certificate: cx509.Certificate, now: datetime.datetime) -> None:
    """
    What every certificate login and every registration requires of a
    certificate, whichever checker looks at it next: it is in its validity
    period (both bounds included) and it is a TLS client certificate
    (L{x509.clientCertificateProblem}).

    @param now: timezone-aware.
    @raise CertificateNotAcceptable: L{Problem.EXPIRED},
        L{Problem.NOT_YET_VALID} or L{Problem.NOT_CLIENT}.
    """
    state = x509.validity(certificate, now)
    if state is x509.Validity.EXPIRED:
        raise CertificateNotAcceptable(Problem.EXPIRED, "the certificate has expired")
    if state is x509.Validity.NOT_YET_VALID:
        raise CertificateNotAcceptable(Problem.NOT_YET_VALID, "the certificate is not valid yet")
    problem = x509.clientCertificateProblem(certificate)
    if problem is not None:
        raise CertificateNotAcceptable(Problem.NOT_CLIENT, problem)


def certificateIdentities(certificate: cx509.Certificate, now: datetime.datetime) -> tuple[jid.JID, ...]:
    """
    L{checkClientCertificate}, and the JIDs the certificate names, which
    must be readable (XEP-0178): what a login with a certificate that
    names its user relies on.

    @return: its id-on-xmppAddr JIDs, maybe none.
    @raise CertificateNotAcceptable: as L{checkClientCertificate}, or
        L{Problem.BAD_XMPPADDR}.
    """
    checkClientCertificate(certificate, now)
    try:
        return tuple(x509.xmppAddrs(certificate))
    except x509.CertificateError as e:
        raise CertificateNotAcceptable(Problem.BAD_XMPPADDR, str(e)) from None


def accountNamingProblem(addrs: Sequence[jid.JID], account: str, requireXmppAddr: bool) -> str | None:
    """
    Whether a certificate naming C{addrs} may belong to C{account}: when it
    names JIDs, one of them must be the account (certificates are public,
    so nobody may claim one that names someone else); one that names no JID
    belongs to whichever account registers it, unless C{requireXmppAddr}.
    The one rule for registering and for logging in with a stored
    certificate.

    @return: why not, or C{None}.
    """
    if any(a.userhost() == account for a in addrs):
        return None
    if addrs:
        named = ", ".join(sorted({a.userhost() for a in addrs}))
        return f"the certificate names {named}, not {account}"
    if requireXmppAddr:
        return f"no id-on-xmppAddr names {account} (certificates.require_xmppaddr is on)"
    return None


def checkNewCertificate(
    certificate: cx509.Certificate, account: str, now: datetime.datetime, requireXmppAddr: bool = True
) -> tuple[jid.JID, ...]:
    """
    The acceptance check of every registration (XEP-0257 append, ad-hoc
    commands, C{xmppcert cert add}): L{certificateIdentities}, and
    L{accountNamingProblem}. A certificate that could never log in to
    C{account} is refused here, with the reason. It need not be issued by
    any CA (XEP-0257 section 3).

    @param account: the prepared bare JID it is for.
    @param requireXmppAddr: refuse a certificate that names no JID.
    @return: its id-on-xmppAddr JIDs.
    @raise CertificateNotAcceptable: as L{certificateIdentities}, or
        L{Problem.NAMES_OTHERS}, L{Problem.NAMES_NO_JID}.
    """
    addrs = certificateIdentities(certificate, now)
    problem = accountNamingProblem(addrs, account, requireXmppAddr)
    if problem is not None:
        raise CertificateNotAcceptable(Problem.NAMES_OTHERS if addrs else Problem.NAMES_NO_JID, problem)
    return addrs


# --- what the manager returns -----------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    """
    A registered certificate, as the front ends show it.

    @ivar fingerprint: SHA-256 of the DER, lowercase hex.
    @ivar der: the certificate, DER.
    @ivar state: C{"enabled"}, C{"disabled"} or C{"revoked"}.
    @ivar mayManage: C{False} when registered with C{<no-cert-management/>}.
    @ivar notAfter: its end of validity (POSIX timestamp).
    @ivar createdAt: when it was registered (POSIX timestamp).
    @ivar changedAt: when its state last changed (POSIX timestamp).
    @ivar lastUsedAt: its last successful login (POSIX timestamp), or
        C{None}.
    @ivar resources: the account's resources logged in with it by SASL
        EXTERNAL on this node, sorted (XEP-0257 C{<users/>}); only in
        L{ICertificateManager.list} of a manager that knows the sessions.
    """

    account: str
    name: str
    fingerprint: str
    der: bytes
    state: str
    mayManage: bool
    notAfter: float
    createdAt: float
    changedAt: float
    lastUsedAt: float | None
    resources: tuple[str, ...] = ()

    @classmethod
    def fromStored(cls, stored: storage.StoredCertificate, resources: Sequence[str] = ()) -> CertificateInfo:
        return cls(
            stored.account, stored.name, stored.fingerprint, stored.der, stored.state, stored.canManage,
            stored.notAfter, stored.createdAt, stored.changedAt, stored.lastUsedAt, tuple(resources),
        )


@dataclass(frozen=True)
class CertificateChange:
    """
    What a disable, revoke, enable or remove did to one certificate.

    @ivar action: C{"disabled"}, C{"revoked"}, C{"enabled"} or
        C{"removed"}.
    @ivar certificate: the certificate afterwards (for C{"removed"}, as it
        was).
    @ivar previousState: its state before.
    """

    action: str
    certificate: CertificateInfo
    previousState: str

    @property
    def changed(self) -> bool:
        """
        C{False} when the certificate was in that state already, and
        nothing was done or recorded.
        """
        return self.action == "removed" or self.previousState != self.action


# --- the audit trail --------------------------------------------------------


class AuditTrail:
    """
    Records changes to accounts and certificates in the store's audit
    trail (L{storage.IAuditLog}), if it keeps one. The change is made
    whatever happens here: a record that cannot be written goes to
    C{failed}, by default a warning, at most one every C{interval} seconds
    (saying how many were left out).
    """

    def __init__(
        self,
        store: Any,
        clock: IReactorTime,
        failed: Callable[[str, str, str, Exception], None] | None = None,
        interval: float = AUDIT_FAILURE_LOG_INTERVAL,
    ) -> None:
        """
        @param failed: called with the action, target, actor and exception
            of a record that could not be written.
        """
        self.store = store
        self._failureLog = _log.RateLimitedLog(log, LogLevel.warn, clock, interval)
        self._failed = failed or self._logFailure

    async def record(self, actor: str, action: str, target: str, detail: str = "") -> None:
        """
        Append one entry; never fails.
        """
        recordAudit = getattr(self.store, "recordAudit", None)
        if recordAudit is None:
            return
        try:
            await recordAudit(actor, action, target, detail)
        except Exception as e:
            self._failed(action, target, actor, e)

    def _logFailure(self, action: str, target: str, actor: str, e: Exception) -> None:
        self._failureLog.emit(
            "Could not record {action} of {target} by {actor} in the audit trail: {error}",
            action=action, target=target, actor=actor, error=f"{type(e).__name__}: {e}",
        )


# --- the manager ------------------------------------------------------------


class ICertificateManager(Interface):
    """
    Lists and changes the certificates of accounts. Every operation returns
    a Deferred, and fails with a L{CertificateManagementError}: among them
    L{StoreUnavailable} when the store failed, and L{NotAllowed} when the
    actor may not do it. Names are stripped of surrounding whitespace.
    """

    requireXmppAddr = Attribute("Whether an account may register a certificate naming no JID (a bool).")
    maxPerAccount = Attribute("How many enabled certificates an account may add itself (0: no limit).")
    clock = Attribute("The IReactorTime validity is judged by.")

    def list(actor, account, states=None):  # type: ignore[no-untyped-def]
        """
        @param states: only certificates in these states; all when C{None}.
        @return: Deferred firing with the L{CertificateInfo}s of C{account},
            oldest first.
        @raise NoSuchAccount: (in the Deferred) for an actor other than the
            account, when it does not exist.
        """

    def add(actor, account, name, certificate, mayManage=True, allowNoXmppAddr=None, strictDER=False):  # type: ignore[no-untyped-def]
        """
        Register a certificate, enabled, after L{checkNewCertificate}.

        @param certificate: DER or PEM bytes.
        @param mayManage: C{False} for C{<no-cert-management/>}.
        @param allowNoXmppAddr: for administrators and operators, whether a
            certificate naming no JID may be registered; the configuration
            (L{requireXmppAddr}) decides when C{None}.
        @param strictDER: C{certificate} must be exactly one DER
            certificate (L{Problem.NOT_CANONICAL} otherwise).
        @return: Deferred firing with the new L{CertificateInfo}.
        @raise CertificateManagementError: (in the Deferred)
            L{InvalidCertificateName}, L{NoSuchAccount},
            L{CertificateNotAcceptable}, L{CertificateNameTaken},
            L{CertificateAlreadyRegistered}, L{CertificateLimitReached}.
        """

    def disable(actor, account, names):  # type: ignore[no-untyped-def]
        """
        Stop certificates from logging in; their sessions stay (XEP-0257
        section 2.3).

        @param names: a name, or a sequence of them, changed in turn; the
            first that fails stops the others, and its error's
            C{completed} holds the changes made before.
        @return: Deferred firing with a L{CertificateChange} per name.
        @raise CertificateManagementError: (in the Deferred)
            L{NoSuchCertificate}, L{RevocationIsFinal}.
        """

    def revoke(actor, account, names):  # type: ignore[no-untyped-def]
        """
        Stop certificates from logging in for good, and end their live
        sessions at once, whatever checker let them in (XEP-0257 section
        2.4). Reaches enabled and disabled certificates. As L{disable}.
        """

    def enable(actor, account, names):  # type: ignore[no-untyped-def]
        """
        Let disabled certificates log in again (administrators and
        operators only). As L{disable}, and L{CertificateNameTaken} when
        another certificate of that name is enabled.
        """

    def remove(actor, account, names):  # type: ignore[no-untyped-def]
        """
        Delete certificate records, whatever their state (administrators
        and operators only); a revocation stays in force. As L{disable}.
        """

    def endRevokedSessions(fingerprint):  # type: ignore[no-untyped-def]
        """
        End the live sessions of a certificate the store says is revoked
        (revoked by another process, which told us).

        @return: Deferred firing with how many ended.
        @raise CertificateNotRevoked: (in the Deferred) the store does not
            say so.
        """


@dataclass(frozen=True)
class _Policy:
    """
    The rules that depend on who acts (see the module docstring).

    @ivar limited: additions count against C{maxPerAccount}.
    @ivar retries: an add repeating exactly what is registered succeeds.
    @ivar reenables: adding a certificate the account disabled enables it.
    @ivar seesEnabled: names refer to certificates the request can change;
        otherwise to the store's choice (L{storage.ICertificateStore.getCertificate}).
    @ivar checksAccount: the account must exist (an account acting for
        itself exists, as its login found it).
    @ivar mayEnableRemove: may enable and remove certificates.
    @ivar addAction: the audit trail's action for an add.
    """

    limited: bool
    retries: bool
    reenables: bool
    seesEnabled: bool
    checksAccount: bool
    mayEnableRemove: bool
    addAction: str


_ACCOUNT_POLICY = _Policy(
    limited=True, retries=True, reenables=True, seesEnabled=True,
    checksAccount=False, mayEnableRemove=False, addAction="cert.append",
)
_OPERATOR_POLICY = _Policy(
    limited=False, retries=False, reenables=False, seesEnabled=False,
    checksAccount=True, mayEnableRemove=True, addAction="cert.add",
)

#: The states from which an account's own request can reach a certificate,
#: by the state it sets: revoking also reaches a disabled one, whose
#: sessions (a thief's, say) disabling left up.
_REACHABLE = {"disabled": ("enabled",), "revoked": ("enabled", "disabled")}

#: The audit trail's action for each change.
_ACTIONS = {"enabled": "cert.enable", "disabled": "cert.disable", "revoked": "cert.revoke", "removed": "cert.remove"}


#: One certificate name, or several.
Names: TypeAlias = str | Sequence[str]

#: What a change of certificates returns.
_Changes: TypeAlias = "defer.Deferred[list[CertificateChange]]"


def _names(names: Names) -> list[str]:
    return [names] if isinstance(names, str) else builtins.list(names)


def _loadCertificate(data: bytes) -> cx509.Certificate:
    try:
        return x509.loadCertificate(data)
    except x509.CertificateError as e:
        raise CertificateNotAcceptable(Problem.UNREADABLE, str(e)) from None


@implementer(ICertificateManager)
class CertificateManager:
    """
    The certificate store, the audit trail and the live sessions behind
    every front end.

    @ivar sessions: the session registry (L{xmppcert.sessions.SessionManager})
        that tells which resources use a certificate, or C{None} (the
        command line: no sessions here).
    @ivar metrics: told how many sessions revocations ended.
    @ivar auditTrail: where changes are recorded (L{AuditTrail}).
    """

    def __init__(
        self,
        store: Any,
        clock: IReactorTime,
        sessions: Any = None,
        *,
        notifier: Any = None,
        requireXmppAddr: bool = True,
        maxPerAccount: int = 0,
        metrics: IMetrics | None = None,
        auditFailed: Callable[[str, str, str, Exception], None] | None = None,
    ) -> None:
        """
        @param store: provides L{storage.ICertificateStore} and
            L{storage.IAccountStore}, and L{storage.IAuditLog} if changes
            are to be recorded.
        @param clock: tells the time (validity) and schedules the end of
            revoked sessions.
        @param notifier: ends sessions (L{xmppcert.sessions.ISessionNotifier});
            C{sessions} when C{None}. Without either, revocations end no
            sessions here: the caller tells a running server.
        @param requireXmppAddr: see L{ICertificateManager}; the
            configuration's C{certificates.require_xmppaddr}. May be changed
            later (a reload).
        @param maxPerAccount: likewise, C{certificates.max_per_account}.
        @param auditFailed: see L{AuditTrail}.
        """
        self.store = store
        self.clock = clock
        self.sessions = sessions
        self._notifier = notifier
        self.requireXmppAddr = requireXmppAddr
        self.maxPerAccount = maxPerAccount
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()
        self.auditTrail = AuditTrail(store, clock, auditFailed)

    @property
    def notifier(self) -> Any:
        """
        What ends sessions: the notifier given, else the session registry.
        """
        return self._notifier if self._notifier is not None else self.sessions

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    # -- rules of the actor --

    @staticmethod
    def _policy(actor: Actor) -> _Policy:
        return _ACCOUNT_POLICY if actor.isAccount else _OPERATOR_POLICY

    def _mayAct(self, actor: Actor, account: str, change: bool = True) -> _Policy:
        """
        @param change: the request changes something (else it only lists).
        @raise NotAllowed: the actor may not.
        """
        if actor.isAccount and actor.account != account:
            raise NotAllowed(f"{actor.name} may act on its own account only, not on {account}")
        if change and not actor.mayManage:
            raise NotAllowed(f"{actor.name} logged in with a certificate that may not manage certificates")
        return self._policy(actor)

    async def _guarded(self, work: Coroutine[Any, Any, _T]) -> _T:
        """
        Run an operation; a store failure becomes L{StoreUnavailable}.
        """
        try:
            return await work
        except (CertificateManagementError, *_STORE_ANSWERS):
            raise
        except storage.STORE_FAILURES as e:
            raise StoreUnavailable(e) from e

    # -- the audit trail and the log --

    def _audit(self, actor: Actor, action: str, account: str, name: str, detail: str) -> None:
        """
        Record a change in the audit trail, without waiting for it: the
        change is made, and neither its answer nor the end of a revoked
        certificate's sessions may wait for a write that another process
        holds up.
        """
        defer.ensureDeferred(self.auditTrail.record(actor.name, action, f"{account}/{name.strip()}", detail))

    @staticmethod
    def _logChange(actor: Actor, account: str, verb: str, name: str, fingerprint: str) -> None:
        by = "" if actor.isAccount else " by {actor}"
        log.info(
            "{account} {verb} certificate {name!r} ({fingerprint})" + by,
            account=account, verb=verb, name=name, fingerprint=fingerprint, actor=actor.name,
        )

    # -- listing --

    def list(
        self, actor: Actor, account: str, states: Sequence[str] | None = None
    ) -> defer.Deferred[builtins.list[CertificateInfo]]:
        return defer.ensureDeferred(self._guarded(self._list(actor, account, states)))

    async def _list(
        self, actor: Actor, account: str, states: Sequence[str] | None
    ) -> builtins.list[CertificateInfo]:
        policy = self._mayAct(actor, account, change=False)
        if policy.checksAccount and not await self.store.accountExists(account):
            raise NoSuchAccount(account)
        stored = await self.store.listCertificates(account, states=None if states is None else builtins.list(states))
        resourcesWith = getattr(self.sessions, "resourcesWithCertificate", None)
        owner = jid.JID(account)
        return [
            CertificateInfo.fromStored(c, resourcesWith(owner, c.fingerprint) if resourcesWith else ())
            for c in stored
        ]

    # -- adding --

    def add(
        self,
        actor: Actor,
        account: str,
        name: str,
        certificate: bytes,
        mayManage: bool = True,
        allowNoXmppAddr: bool | None = None,
        strictDER: bool = False,
    ) -> defer.Deferred[CertificateInfo]:
        return defer.ensureDeferred(
            self._guarded(self._add(actor, account, name, certificate, mayManage, allowNoXmppAddr, strictDER))
        )

    async def _add(
        self,
        actor: Actor,
        account: str,
        name: str,
        data: bytes,
        mayManage: bool,
        allowNoXmppAddr: bool | None,
        strictDER: bool,
    ) -> CertificateInfo:
        policy = self._mayAct(actor, account)
        if actor.isAccount and allowNoXmppAddr is not None:
            raise NotAllowed("only administrators and operators may overrule certificates.require_xmppaddr")
        try:
            name = storage.checkCertificateName(name)
        except ValueError as e:
            raise InvalidCertificateName(str(e)) from None
        if policy.checksAccount and not await self.store.accountExists(account):
            raise NoSuchAccount(account)
        certificate = _loadCertificate(data)
        requireXmppAddr = self.requireXmppAddr if allowNoXmppAddr is None else not allowNoXmppAddr
        checkNewCertificate(certificate, account, self._now(), requireXmppAddr)
        der = certificate.public_bytes(serialization.Encoding.DER)
        if strictDER and der != data:
            raise CertificateNotAcceptable(
                Problem.NOT_CANONICAL, "trailing or non-canonical data around the certificate"
            )
        fingerprint = x509.fingerprint(certificate)
        limit = self.maxPerAccount if policy.limited else 0
        try:
            # Adding a certificate the account disabled earlier brings it
            # back (XEP-0257 section 2.3): the old record is history, not a
            # conflict. The store decides that in the add's own
            # transaction, so a revocation that lands meanwhile (command
            # line, another node or stream) is never undone, and a refused
            # add keeps the disabled record.
            stored = await self.store.addCertificate(
                account, name, der, fingerprint, certificate.not_valid_after_utc.timestamp(),
                canManage=mayManage, maxPerAccount=limit, replaceDisabled=policy.reenables,
            )
        except storage.CertificateExists as e:
            return await self._registeredAlready(actor, policy, account, name, fingerprint, mayManage, e.field)
        except storage.CertificateLimitReached:
            raise CertificateLimitReached(account, limit) from None
        except storage.NoSuchAccount:
            raise NoSuchAccount(account) from None
        self._logChange(actor, account, "added", name, fingerprint)
        self._audit(actor, policy.addAction, account, name, fingerprint)
        return CertificateInfo.fromStored(stored)

    async def _registeredAlready(
        self, actor: Actor, policy: _Policy, account: str, name: str, fingerprint: str, mayManage: bool,
        taken: str,
    ) -> CertificateInfo:
        """
        An add the store refused because its name or its certificate is
        taken: a retry of this very add (its answer lost when the server
        stopped, say), which succeeded, when the policy allows retries and
        the certificate is enabled in the account under that name and
        C{mayManage}.

        @param taken: C{"name"} or C{"fingerprint"}, what the store said.
        @raise CertificateNameTaken: not a retry, and the name is taken.
        @raise CertificateAlreadyRegistered: not a retry, and the
            certificate is registered.
        """
        stored = await self.store.certificateByFingerprint(fingerprint)
        if (
            policy.retries and stored is not None and stored.account == account and stored.name == name
            and stored.state == "enabled" and stored.canManage == mayManage
        ):
            log.info(
                "{account} appended certificate {name!r} ({fingerprint}) again; it is registered already",
                account=account, name=name, fingerprint=fingerprint,
            )
            self._audit(actor, policy.addAction, account, name, f"{fingerprint} (repeated)")
            return CertificateInfo.fromStored(stored)
        if taken == "name":
            raise CertificateNameTaken(account, name)
        revoked = (stored is not None and stored.state == "revoked") or bool(
            await self.store.isCertificateRevoked(fingerprint)
        )
        # Another account's registration is not this one's business.
        ownName = stored.name if stored is not None and stored.account == account else None
        raise CertificateAlreadyRegistered(account, ownName, revoked)

    # -- changing --

    def disable(self, actor: Actor, account: str, names: Names) -> _Changes:
        return self._changeEach(actor, account, names, "disabled")

    def revoke(self, actor: Actor, account: str, names: Names) -> _Changes:
        return self._changeEach(actor, account, names, "revoked")

    def enable(self, actor: Actor, account: str, names: Names) -> _Changes:
        return self._changeEach(actor, account, names, "enabled")

    def remove(self, actor: Actor, account: str, names: Names) -> _Changes:
        return self._changeEach(actor, account, names, "removed")

    def _changeEach(self, actor: Actor, account: str, names: Names, action: str) -> _Changes:
        async def each() -> builtins.list[CertificateChange]:
            policy = self._mayAct(actor, account)
            if action in ("enabled", "removed") and not policy.mayEnableRemove:
                raise NotAllowed("only administrators and operators may enable or remove certificates")
            done: builtins.list[CertificateChange] = []
            for name in _names(names):
                try:
                    done.append(await self._guarded(self._change(actor, policy, account, name.strip(), action)))
                except CertificateManagementError as e:
                    e.completed = tuple(done)
                    raise
            return done

        return defer.ensureDeferred(each())

    async def _named(self, policy: _Policy, account: str, name: str, action: str) -> storage.StoredCertificate:
        """
        The certificate of C{account} that C{name} refers to for C{action}.
        """
        if policy.seesEnabled:
            candidates = [
                c for c in await self.store.listCertificates(account, states=builtins.list(_REACHABLE[action]))
                if c.name == name
            ]
            if candidates:
                return max(candidates, key=lambda c: (c.state == "enabled", c.changedAt))
        else:
            stored = await self.store.getCertificate(account, name)
            if stored is not None:
                return stored
        raise NoSuchCertificate(account, name)

    async def _change(self, actor: Actor, policy: _Policy, account: str, name: str, action: str) -> CertificateChange:
        stored = await self._named(policy, account, name, action)
        if action == "removed":
            try:
                await self.store.removeCertificateByFingerprint(stored.fingerprint)
            except storage.NoSuchCertificate:
                raise NoSuchCertificate(account, name) from None
            updated = stored
        elif stored.state == action:
            return CertificateChange(action, CertificateInfo.fromStored(stored), stored.state)
        else:
            try:
                # Exactly the certificate looked up: disabled and revoked
                # ones may share its name, and another process may change
                # them meanwhile.
                updated = await self.store.setCertificateStateByFingerprint(stored.fingerprint, action)
            except storage.NoSuchCertificate:
                # Removed since the look-up: from here, no certificate has
                # that name any more, just as if the look-up had found none.
                raise NoSuchCertificate(account, name) from None
            except storage.CertificateRevoked:
                raise RevocationIsFinal(account, name) from None
            except storage.CertificateExists:
                raise CertificateNameTaken(account, stored.name) from None
            if updated is None:
                updated = replace(stored, state=action)
        self._logChange(actor, account, action, name, stored.fingerprint)
        self._audit(actor, _ACTIONS[action], account, stored.name, stored.fingerprint)
        if action == "revoked" and self.notifier is not None:
            # XEP-0257 section 2.4: close the streams that logged in with
            # it, once the answer has gone out (the requester may be one).
            self.clock.callLater(0, self._endSessions, stored.fingerprint)
        return CertificateChange(action, CertificateInfo.fromStored(updated), stored.state)

    # -- live sessions --

    def _endSessions(self, fingerprint: str) -> int:
        closed = int(self.notifier.closeSessionsWithCertificate(fingerprint))
        self.metrics.sessionsClosedByRevocation(closed)
        return closed

    def endRevokedSessions(self, fingerprint: str) -> defer.Deferred[int]:
        return defer.ensureDeferred(self._guarded(self._endRevokedSessions(fingerprint)))

    async def _endRevokedSessions(self, fingerprint: str) -> int:
        fingerprint = fingerprint.strip().lower()
        stored = await self.store.certificateByFingerprint(fingerprint)
        revoked = stored is not None and stored.state == "revoked"
        if not revoked and not await self.store.isCertificateRevoked(fingerprint):
            raise CertificateNotRevoked(fingerprint)
        if self.notifier is None:
            return 0
        return self._endSessions(fingerprint)


__all__ = [
    "AUDIT_FAILURE_LOG_INTERVAL",
    "Actor",
    "ActorKind",
    "AuditTrail",
    "CertificateAlreadyRegistered",
    "CertificateChange",
    "CertificateInfo",
    "CertificateLimitReached",
    "CertificateManagementError",
    "CertificateManager",
    "CertificateNameTaken",
    "CertificateNotAcceptable",
    "CertificateNotRevoked",
    "ICertificateManager",
    "InvalidCertificateName",
    "Names",
    "NoSuchAccount",
    "NoSuchCertificate",
    "NotAllowed",
    "Problem",
    "RevocationIsFinal",
    "StoreUnavailable",
    "accountNamingProblem",
    "certificateIdentities",
    "checkClientCertificate",
    "checkNewCertificate",
]
