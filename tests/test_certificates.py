# -*- test-case-name: tests.test_certificates -*-
"""
Tests for L{xmppcert.certificates}: the one acceptance check for client
certificates, and the L{CertificateManager} every front end (XEP-0257, the
command line, the control channel, ad-hoc commands) goes through.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509 as cx509
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import error, jid
from zope.interface.verify import verifyObject

from tests.helpers import ALICE, BOB, DOMAIN, bindSession, failureOf, resultOf
from tests.test_saslcert import (
    NOW,
    FakeSessions,
    clockAndStore,
    handMade,
    issue,
    keyUsage,
    utf8String,
)
from xmppcert import certificates, cli, cred, x509
from xmppcert.certificates import (
    Actor,
    ActorKind,
    CertificateAlreadyRegistered,
    CertificateChange,
    CertificateInfo,
    CertificateLimitReached,
    CertificateManagementError,
    CertificateManager,
    CertificateNameTaken,
    CertificateNotAcceptable,
    CertificateNotRevoked,
    ICertificateManager,
    InvalidCertificateName,
    NoSuchAccount,
    NoSuchCertificate,
    NotAllowed,
    Problem,
    RevocationIsFinal,
    StoreUnavailable,
)
from xmppcert.metrics import NullMetrics
from xmppcert.saslcert import AppendRequest, Requester, SASLCertBackend
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import StoredCertificate
from xmppcert.testing import InMemoryAccountStore

CAROL = "carol@example.com"
SESSION = Actor.ofAccount(jid.JID(ALICE), jid.JID(ALICE + "/desk"))
LIMITED = Actor.ofAccount(ALICE, mayManage=False)
ADMIN = Actor.administrator(jid.JID("admin@example.com"))
OPERATOR = Actor.operator("cli:root")


class CountingMetrics(NullMetrics):
    """
    Records the one metrics hook the manager calls.
    """

    def __init__(self) -> None:
        self.closed: list[int] = []

    def sessionsClosedByRevocation(self, count: int) -> None:
        self.closed.append(count)


@dataclass
class Env:
    clock: task.Clock
    store: InMemoryAccountStore
    sessions: FakeSessions
    metrics: CountingMetrics
    manager: CertificateManager


def makeEnv(requireXmppAddr: bool = True, maxPerAccount: int = 0, sessions: bool = True) -> Env:
    """
    A manager over a store with ALICE and BOB, its clock at C{NOW}, with
    recorded sessions (or none, as on the command line).
    """
    clock, store = clockAndStore()
    fakeSessions = FakeSessions()
    metrics = CountingMetrics()
    manager = CertificateManager(
        store, clock, fakeSessions if sessions else None,
        requireXmppAddr=requireXmppAddr, maxPerAccount=maxPerAccount, metrics=metrics,
    )
    return Env(clock, store, fakeSessions, metrics, manager)


def fingerprintOf(data: bytes) -> str:
    return x509.fingerprint(x509.loadCertificate(data))


def refused(d: defer.Deferred[Any], errorType: type[CertificateManagementError]) -> Any:
    """
    The domain error C{d} failed with, which must be an C{errorType}.
    """
    value = failureOf(d, errorType).value
    assert isinstance(value, errorType)
    return value


def states(env: Env, account: str = ALICE) -> list[tuple[str, str]]:
    return [(c.name, c.state) for c in resultOf(env.store.listCertificates(account))]


def trail(env: Env) -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.action, e.target, e.detail) for e in resultOf(env.store.auditTrail())]


# --- the interface and the value objects ------------------------------------


def test_managerInterface() -> None:
    """
    CertificateManager provides ICertificateManager, the interface the
    front ends are written against.
    """
    assert verifyObject(ICertificateManager, makeEnv().manager)


def test_actors() -> None:
    """
    An account acting for itself is named in the audit trail by its
    session's full JID (its bare JID without one); an administrator by its
    JID; the operator by the name it is given.
    """
    assert (SESSION.kind, SESSION.name, SESSION.account, SESSION.mayManage) == (
        ActorKind.ACCOUNT, ALICE + "/desk", ALICE, True
    )
    assert (LIMITED.name, LIMITED.mayManage) == (ALICE, False)
    assert (ADMIN.kind, ADMIN.name, ADMIN.account) == (ActorKind.ADMINISTRATOR, "admin@example.com", None)
    assert (OPERATOR.kind, OPERATOR.name) == (ActorKind.OPERATOR, "cli:root")


def test_add() -> None:
    """
    XEP-0257 §2.1: an acceptable certificate is registered, enabled, and
    described by the CertificateInfo the add returns.
    """
    env = makeEnv()
    data = issue()
    info = resultOf(env.manager.add(SESSION, ALICE, " Phone ", data, mayManage=False))
    assert info == CertificateInfo(
        ALICE, "Phone", fingerprintOf(data), data, "enabled", False,
        (NOW + datetime.timedelta(days=30)).timestamp(), NOW.timestamp(), NOW.timestamp(), None,
    )
    assert states(env) == [("Phone", "enabled")]


def test_addPEM() -> None:
    """
    A certificate may be given as PEM (the command line's and a data
    form's form); it is stored as DER. XEP-0257 asks for exactly one DER
    certificate (strictDER), and gets not-canonical for anything else.
    """
    env = makeEnv()
    data = issue()
    pem = x509.certificatePEM(x509.loadCertificate(data))
    failure = refused(env.manager.add(SESSION, ALICE, "Phone", pem, strictDER=True), CertificateNotAcceptable)
    assert failure.problem is Problem.NOT_CANONICAL
    assert states(env) == []
    assert resultOf(env.manager.add(SESSION, ALICE, "Phone", pem)).der == data


def test_addInvalidName() -> None:
    """
    A name of 1 to 255 characters without control characters, or
    InvalidCertificateName.
    """
    env = makeEnv()
    for name in ("  ", "a\tb", "x" * 256):
        refused(env.manager.add(OPERATOR, ALICE, name, issue()), InvalidCertificateName)
    assert states(env) == []


# --- the acceptance check -----------------------------------------------------

#: Certificates no account can register (nor log in with), by the problem
#: the acceptance check names; each has one thing wrong.
UNACCEPTABLE: dict[Problem, Callable[[], bytes]] = {
    Problem.EXPIRED: lambda: issue(now=NOW - datetime.timedelta(days=31), days=30),
    Problem.NOT_YET_VALID: lambda: issue(now=NOW + datetime.timedelta(days=1)),
    Problem.NOT_CLIENT: lambda: handMade([utf8String(ALICE)], [ExtendedKeyUsageOID.SERVER_AUTH]),
    Problem.BAD_XMPPADDR: lambda: handMade([b"\x16\x11" + ALICE.encode()]),
    Problem.NAMES_OTHERS: lambda: issue([BOB]),
    Problem.NAMES_NO_JID: lambda: issue([]),
}

#: More certificates that are not client certificates.
NOT_CLIENT = {
    "CA certificate": lambda: handMade(
        [utf8String(ALICE)], extra=[cx509.BasicConstraints(ca=True, path_length=None)]
    ),
    "keyUsage without digitalSignature": lambda: handMade(
        [utf8String(ALICE)], extra=[keyUsage(digitalSignature=False)]
    ),
}


@pytest.mark.parametrize("problem", UNACCEPTABLE.keys(), ids=lambda p: p.value)
@pytest.mark.parametrize("actor", [SESSION, ADMIN, OPERATOR], ids=lambda a: a.kind.value)
def test_checkNewCertificate(problem: Problem, actor: Actor) -> None:
    """
    XEP-0257 §2.1 with XEP-0178 and RFC 5280: whoever adds it, a
    certificate outside its validity period, not for TLS client
    authentication, with an unreadable id-on-xmppAddr, naming only other
    accounts, or naming none (require_xmppaddr) is refused with
    CertificateNotAcceptable saying which, and nothing is stored.
    """
    env = makeEnv()
    value = refused(env.manager.add(actor, ALICE, "Phone", UNACCEPTABLE[problem]()), CertificateNotAcceptable)
    assert value.problem is problem
    assert states(env) == []


@pytest.mark.parametrize("make", NOT_CLIENT.values(), ids=NOT_CLIENT.keys())
def test_notClientCertificate(make: Callable[[], bytes]) -> None:
    """
    RFC 5280 §4.2.1.9 and §4.2.1.3: a CA certificate, or one whose keyUsage
    does not allow digitalSignature, is not a client certificate, and the
    reason says why.
    """
    env = makeEnv()
    value = refused(env.manager.add(OPERATOR, ALICE, "Phone", make()), CertificateNotAcceptable)
    assert value.problem is Problem.NOT_CLIENT
    assert value.reason == x509.clientCertificateProblem(x509.loadCertificate(make()))


@pytest.mark.parametrize("data", [b"", b"not a certificate", b"\x30\x82\x42\x68" + b"\x00" * 0x4268])
def test_unreadable(data: bytes) -> None:
    """
    Data that is not one X.509 certificate (or is larger than 16 KiB) is
    CertificateNotAcceptable, UNREADABLE.
    """
    value = refused(makeEnv().manager.add(OPERATOR, ALICE, "Phone", data), CertificateNotAcceptable)
    assert value.problem is Problem.UNREADABLE


def test_namingRule() -> None:
    """
    Certificates are public: one naming JIDs must name the account, with
    require_xmppaddr on or off; one naming none is refused only with it on
    (or, for administrators and operators, without allowNoXmppAddr).
    """
    now = NOW
    bobs = x509.loadCertificate(issue([BOB]))
    nobody = x509.loadCertificate(issue([]))
    several = x509.loadCertificate(issue([BOB, ALICE + "/phone"]))
    for requireXmppAddr in (True, False):
        with pytest.raises(CertificateNotAcceptable) as caught:
            certificates.checkNewCertificate(bobs, ALICE, now, requireXmppAddr)
        assert caught.value.reason == f"the certificate names {BOB}, not {ALICE}"
        assert certificates.checkNewCertificate(several, ALICE, now, requireXmppAddr)[1].resource == "phone"
    with pytest.raises(CertificateNotAcceptable):
        certificates.checkNewCertificate(nobody, ALICE, now, True)
    assert certificates.checkNewCertificate(nobody, ALICE, now, False) == ()


def test_allowNoXmppAddr() -> None:
    """
    An operator or administrator may register a certificate naming no JID
    whatever require_xmppaddr says (allowNoXmppAddr), or refuse one even
    with it off; the account itself cannot overrule the configuration
    (NotAllowed).
    """
    env = makeEnv(requireXmppAddr=True)
    resultOf(env.manager.add(OPERATOR, ALICE, "A", issue([]), allowNoXmppAddr=True))
    resultOf(env.manager.add(ADMIN, ALICE, "B", issue([]), allowNoXmppAddr=True))
    refused(env.manager.add(SESSION, ALICE, "C", issue([]), allowNoXmppAddr=True), NotAllowed)
    env.manager.requireXmppAddr = False
    resultOf(env.manager.add(SESSION, ALICE, "C", issue([])))
    value = refused(env.manager.add(OPERATOR, ALICE, "D", issue([]), allowNoXmppAddr=False), CertificateNotAcceptable)
    assert value.problem is Problem.NAMES_NO_JID
    assert sorted(states(env)) == [("A", "enabled"), ("B", "enabled"), ("C", "enabled")]


@dataclass
class CommandLine:
    """
    A data directory for example.com with a certificate-only ALICE, and
    C{xmppcert cert add} in it at L{NOW}.
    """

    dataDir: Path
    capsys: pytest.CaptureFixture[str]

    def add(self, certificate: Path) -> tuple[int, str]:
        self.capsys.readouterr()
        code = cli.main(["--config", str(self.dataDir / "xmppcert.toml"), "cert", "add", ALICE, "Phone", str(certificate)])
        return code, self.capsys.readouterr().err


@pytest.fixture
def commandLine(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CommandLine:
    monkeypatch.setattr(cli.common, "now", lambda: NOW)
    dataDir = tmp_path / "var"
    assert cli.main(["init", "--data-dir", str(dataDir), "--domain", DOMAIN]) == 0
    assert cli.main(["--config", str(dataDir / "xmppcert.toml"), "user", "add", ALICE, "--no-password"]) == 0
    return CommandLine(dataDir, capsys)


@pytest.mark.parametrize("problem", UNACCEPTABLE.keys(), ids=lambda p: p.value)
def test_sameRuleEveryFrontEnd(problem: Problem, commandLine: CommandLine, tmp_path: Path) -> None:
    """
    One acceptance rule: a certificate the manager refuses is refused by
    XEP-0257 append (not-acceptable, type modify), by `xmppcert cert add`
    (one error line, exit 1), and, registered anyway behind the manager's
    back, by the login checker (not-authorized, the stream closed).
    """
    data = UNACCEPTABLE[problem]()
    env = makeEnv()
    backend = SASLCertBackend(env.manager)
    d = backend.append(Requester(jid.JID(ALICE)), AppendRequest("Phone", data))
    value = failureOf(d, error.StanzaError).value
    assert isinstance(value, error.StanzaError)
    assert (value.condition, value.type) == ("not-acceptable", "modify")

    path = tmp_path / "phone.der"
    path.write_bytes(data)
    code, err = commandLine.add(path)
    assert code == 1 and err.startswith("xmppcert: error: ") and err.count("\n") == 1

    stored = StoredCertificate(
        ALICE, "Phone", fingerprintOf(data), data, "enabled", True, 0.0, 0.0, 0.0, None
    )
    with pytest.raises(cred.SASLAuthFailure) as caught:
        cred.checkStoredCertificate(x509.loadCertificate(data), stored, None, frozenset({DOMAIN}), True, NOW)
    assert (caught.value.condition, caught.value.closeStream) == ("not-authorized", True)


def test_sameRuleAccepts(commandLine: CommandLine, tmp_path: Path) -> None:
    """
    And a certificate the manager accepts is accepted by every front end,
    and logs in.
    """
    data = issue([ALICE + "/phone"])
    env = makeEnv()
    resultOf(SASLCertBackend(env.manager).append(Requester(jid.JID(ALICE)), AppendRequest("Phone", data)))
    path = tmp_path / "phone.der"
    path.write_bytes(data)
    assert commandLine.add(path) == (0, "")
    [stored] = resultOf(env.store.listCertificates(ALICE))
    identity = cred.checkStoredCertificate(
        x509.loadCertificate(data), stored, None, frozenset({DOMAIN}), True, NOW
    )
    assert identity.jid.full() == ALICE + "/phone"


# --- who may do what ------------------------------------------------------------


@pytest.mark.parametrize("verb", ["add", "disable", "revoke"])
def test_noCertManagement(verb: str) -> None:
    """
    XEP-0257 §2.1: a session that logged in with a certificate registered
    with <no-cert-management/> may not add, disable or revoke: NotAllowed,
    nothing changes, no session is closed, nothing is recorded.
    """
    env = makeEnv()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", issue()))
    if verb == "add":
        d = env.manager.add(LIMITED, ALICE, "Other", issue())
    else:
        d = getattr(env.manager, verb)(LIMITED, ALICE, "Phone")
    refused(d, NotAllowed)
    env.clock.advance(0)
    assert states(env) == [("Phone", "enabled")]
    assert env.sessions.closed == []
    assert [action for _, action, _, _ in trail(env)] == ["cert.append"]


def test_noCertManagementMayList() -> None:
    """
    XEP-0257 §2.1: <no-cert-management/> forbids managing, not listing.
    """
    env = makeEnv()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", issue()))
    assert [c.name for c in resultOf(env.manager.list(LIMITED, ALICE))] == ["Phone"]


@pytest.mark.parametrize("verb", ["list", "add", "disable", "revoke"])
def test_accountActsOnItselfOnly(verb: str) -> None:
    """
    An account acting for itself reaches no other account, not even to
    list: NotAllowed.
    """
    env = makeEnv()
    resultOf(env.manager.add(OPERATOR, BOB, "Phone", issue([BOB])))
    d: defer.Deferred[Any]
    if verb == "list":
        d = env.manager.list(SESSION, BOB)
    elif verb == "add":
        d = env.manager.add(SESSION, BOB, "Other", issue([BOB]))
    else:
        d = getattr(env.manager, verb)(SESSION, BOB, "Phone")
    refused(d, NotAllowed)
    assert states(env, BOB) == [("Phone", "enabled")]


@pytest.mark.parametrize("verb", ["enable", "remove"])
def test_enableRemoveByAdministrators(verb: str) -> None:
    """
    Enabling and removing are for administrators and operators (XEP-0257
    has neither; appending a disabled certificate again enables it): the
    account itself gets NotAllowed.
    """
    env = makeEnv()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", issue()))
    resultOf(env.manager.disable(SESSION, ALICE, "Phone"))
    refused(getattr(env.manager, verb)(SESSION, ALICE, "Phone"), NotAllowed)
    assert states(env) == [("Phone", "disabled")]
    [change] = resultOf(getattr(env.manager, verb)(ADMIN, ALICE, "Phone"))
    assert change.changed and change.previousState == "disabled"
    assert states(env) == ([("Phone", "enabled")] if verb == "enable" else [])


@pytest.mark.parametrize("actor", [ADMIN, OPERATOR], ids=lambda a: a.kind.value)
def test_noSuchAccount(actor: Actor) -> None:
    """
    An administrator or operator naming an account that does not exist
    gets NoSuchAccount, for a list as for an add; so does a session whose
    account was deleted, when it adds.
    """
    env = makeEnv()
    refused(env.manager.list(actor, CAROL), NoSuchAccount)
    refused(env.manager.add(actor, CAROL, "Phone", issue([CAROL])), NoSuchAccount)
    refused(env.manager.add(Actor.ofAccount(CAROL), CAROL, "Phone", issue([CAROL])), NoSuchAccount)
    assert env.store.certificates == {}


# --- adding ---------------------------------------------------------------------


def test_nameTaken() -> None:
    """
    XEP-0257 §2.1: a name already used by an enabled certificate of the
    account MUST be rejected: CertificateNameTaken, whoever adds.
    """
    env = makeEnv()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", issue()))
    for actor in (SESSION, ADMIN, OPERATOR):
        value = refused(env.manager.add(actor, ALICE, "Phone", issue()), CertificateNameTaken)
        assert (value.account, value.name) == (ALICE, "Phone")
    assert states(env) == [("Phone", "enabled")]


def test_alreadyRegistered() -> None:
    """
    One certificate logs in to one account: registered by another account
    (not named), by this one under another name (named), or ever revoked
    (final, even once its record is removed): CertificateAlreadyRegistered.
    """
    env = makeEnv()
    shared, revoked = issue([ALICE, BOB]), issue()
    resultOf(env.manager.add(OPERATOR, ALICE, "Shared", shared))
    value = refused(env.manager.add(OPERATOR, BOB, "Mine", shared), CertificateAlreadyRegistered)
    assert (value.name, value.revoked) == (None, False)
    value = refused(env.manager.add(OPERATOR, ALICE, "Other", shared), CertificateAlreadyRegistered)
    assert (value.name, value.revoked) == ("Shared", False)
    resultOf(env.manager.add(OPERATOR, ALICE, "Old", revoked))
    resultOf(env.manager.revoke(OPERATOR, ALICE, "Old"))
    assert refused(env.manager.add(SESSION, ALICE, "Old", revoked), CertificateAlreadyRegistered).revoked
    resultOf(env.manager.remove(OPERATOR, ALICE, "Old"))
    value = refused(env.manager.add(OPERATOR, ALICE, "Old", revoked), CertificateAlreadyRegistered)
    assert (value.name, value.revoked) == (None, True)


def test_retry() -> None:
    """
    An account's add is safe to retry: the same certificate, name and flag
    again while it is enabled succeeds, recorded as repeated. For an
    administrator or operator it is a conflict, as any other add of a name
    in use.
    """
    env = makeEnv()
    data = issue()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", data))
    assert resultOf(env.manager.add(SESSION, ALICE, "Phone", data)).name == "Phone"
    for actor in (ADMIN, OPERATOR):
        refused(env.manager.add(actor, ALICE, "Phone", data), CertificateNameTaken)
    assert [detail for _, _, _, detail in trail(env)] == [fingerprintOf(data), fingerprintOf(data) + " (repeated)"]


def test_reenable() -> None:
    """
    XEP-0257 §2.3: the account adding a certificate it disabled enables it
    again, under the new name; an operator gets CertificateAlreadyRegistered
    (it enables it instead).
    """
    env = makeEnv()
    data = issue()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", data))
    resultOf(env.manager.disable(SESSION, ALICE, "Phone"))
    assert refused(env.manager.add(OPERATOR, ALICE, "Phone 2", data), CertificateAlreadyRegistered).name == "Phone"
    assert resultOf(env.manager.add(SESSION, ALICE, "Phone 2", data)).state == "enabled"
    assert states(env) == [("Phone 2", "enabled")]


def test_limit() -> None:
    """
    max_per_account limits the enabled certificates an account adds
    itself: CertificateLimitReached, with the limit; disabled ones do not
    count, and administrators and operators are not limited.
    """
    env = makeEnv(maxPerAccount=2)
    resultOf(env.manager.add(SESSION, ALICE, "A", issue()))
    resultOf(env.manager.add(SESSION, ALICE, "B", issue()))
    value = refused(env.manager.add(SESSION, ALICE, "C", issue()), CertificateLimitReached)
    assert (value.account, value.limit) == (ALICE, 2)
    resultOf(env.manager.add(ADMIN, ALICE, "C", issue()))
    resultOf(env.manager.add(OPERATOR, ALICE, "D", issue()))
    resultOf(env.manager.disable(OPERATOR, ALICE, ["A", "B", "C"]))
    resultOf(env.manager.add(SESSION, ALICE, "E", issue()))
    assert len([s for _, s in states(env) if s == "enabled"]) == 2


# --- changing -----------------------------------------------------------------


def test_disableRevokeEnable() -> None:
    """
    XEP-0257 §2.3 to §2.5: each change returns what it did; setting the
    state a certificate has changes nothing and records nothing; a revoked
    one cannot be enabled or disabled (RevocationIsFinal).
    """
    env = makeEnv()
    data = issue()
    resultOf(env.manager.add(OPERATOR, ALICE, "Phone", data))
    [change] = resultOf(env.manager.disable(OPERATOR, ALICE, " Phone "))
    assert isinstance(change, CertificateChange)
    assert (change.action, change.previousState, change.certificate.state, change.changed) == (
        "disabled", "enabled", "disabled", True
    )
    [again] = resultOf(env.manager.disable(OPERATOR, ALICE, "Phone"))
    assert not again.changed
    resultOf(env.manager.enable(OPERATOR, ALICE, "Phone"))
    resultOf(env.manager.revoke(OPERATOR, ALICE, "Phone"))
    for verb in ("enable", "disable"):
        value = refused(getattr(env.manager, verb)(OPERATOR, ALICE, "Phone"), RevocationIsFinal)
        assert (value.account, value.name) == (ALICE, "Phone")
    assert [action for _, action, _, _ in trail(env)] == ["cert.add", "cert.disable", "cert.enable", "cert.revoke"]


def test_noSuchCertificate() -> None:
    """
    XEP-0257 §2.3: an unknown name, or one of another account, is
    NoSuchCertificate (never success).
    """
    env = makeEnv()
    resultOf(env.manager.add(OPERATOR, BOB, "Phone", issue([BOB])))
    for verb in ("disable", "revoke", "enable", "remove"):
        value = refused(getattr(env.manager, verb)(OPERATOR, ALICE, "Phone"), NoSuchCertificate)
        assert (value.account, value.name) == (ALICE, "Phone")


def test_enableNameTaken() -> None:
    """
    Enabling a certificate whose name another enabled certificate of the
    account has taken meanwhile (the look-up saw the old one) is
    CertificateNameTaken, and nothing changes.
    """
    env = makeEnv()
    old, new = issue(), issue()
    resultOf(env.manager.add(OPERATOR, ALICE, "Phone", old))
    resultOf(env.manager.disable(OPERATOR, ALICE, "Phone"))
    resultOf(env.manager.add(OPERATOR, ALICE, "Phone", new))
    stale = resultOf(env.store.certificateByFingerprint(fingerprintOf(old)))
    env.store.getCertificate = lambda account, name: defer.succeed(stale)  # type: ignore[method-assign]
    refused(env.manager.enable(OPERATOR, ALICE, "Phone"), CertificateNameTaken)
    assert sorted(states(env)) == [("Phone", "disabled"), ("Phone", "enabled")]


def test_namesRefer() -> None:
    """
    An account's name refers to a certificate the request can change (it
    sees those that can log in): revoking reaches a disabled certificate
    behind a revoked one of the same name. For an operator, who sees every
    record, the name refers to the enabled one, else the most recently
    changed: the revoked one, already revoked.
    """
    env = makeEnv()
    older, newer = issue(), issue()
    resultOf(env.manager.add(SESSION, ALICE, "Tablet", older))
    resultOf(env.manager.disable(SESSION, ALICE, "Tablet"))
    env.clock.advance(1)
    resultOf(env.manager.add(SESSION, ALICE, "Tablet", newer))
    resultOf(env.manager.revoke(SESSION, ALICE, "Tablet"))
    [change] = resultOf(env.manager.revoke(OPERATOR, ALICE, "Tablet"))
    assert (change.certificate.fingerprint, change.changed) == (fingerprintOf(newer), False)
    [change] = resultOf(env.manager.revoke(SESSION, ALICE, "Tablet"))
    assert (change.certificate.fingerprint, change.changed) == (fingerprintOf(older), True)
    refused(env.manager.disable(SESSION, ALICE, "Tablet"), NoSuchCertificate)


def test_severalNames() -> None:
    """
    Names are changed in turn; the first that fails stops the others, and
    its error carries the changes made before it.
    """
    env = makeEnv()
    for name in ("A", "B", "C"):
        resultOf(env.manager.add(SESSION, ALICE, name, issue()))
    value = refused(env.manager.disable(SESSION, ALICE, ["A", "B", "nope", "C"]), NoSuchCertificate)
    assert [c.certificate.name for c in value.completed] == ["A", "B"]
    assert states(env) == [("A", "disabled"), ("B", "disabled"), ("C", "enabled")]
    assert [c.certificate.name for c in resultOf(env.manager.revoke(SESSION, ALICE, ("A", "C")))] == ["A", "C"]


def test_list() -> None:
    """
    XEP-0257 §2.2: the list holds the account's certificates, oldest
    first, in the states asked for, each with the resources logged in with
    it (when the manager knows the sessions).
    """
    env = makeEnv()
    phone, laptop = issue(), issue()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", phone))
    env.clock.advance(1)
    resultOf(env.manager.add(SESSION, ALICE, "Laptop", laptop))
    resultOf(env.manager.disable(SESSION, ALICE, "Laptop"))
    env.sessions.resources[(ALICE, fingerprintOf(phone))] = ["phone"]
    listed = resultOf(env.manager.list(SESSION, ALICE))
    assert [(c.name, c.state, c.resources) for c in listed] == [
        ("Phone", "enabled", ("phone",)), ("Laptop", "disabled", ())
    ]
    assert [c.name for c in resultOf(env.manager.list(ADMIN, ALICE, states=["enabled"]))] == ["Phone"]
    assert resultOf(makeEnv(sessions=False).manager.list(OPERATOR, ALICE)) == []


# --- the audit trail --------------------------------------------------------------


@pytest.mark.parametrize(
    "actor, name, addAction",
    [(SESSION, ALICE + "/desk", "cert.append"), (ADMIN, "admin@example.com", "cert.add"),
     (OPERATOR, "cli:root", "cert.add")],
    ids=["account", "administrator", "operator"],
)
def test_auditActor(actor: Actor, name: str, addAction: str) -> None:
    """
    Every change is in the audit trail with who made it: the session's full
    JID for the account itself, the administrator's JID when it acts on
    another account, the operator's name; the certificate as the target,
    its fingerprint as the detail. Refusals and listing record nothing.
    """
    env = makeEnv()
    data = issue()
    resultOf(env.manager.add(actor, ALICE, "Phone", data))
    failureOf(env.manager.add(actor, ALICE, "Phone", issue()), CertificateNameTaken)
    resultOf(env.manager.list(actor, ALICE))
    resultOf(env.manager.disable(actor, ALICE, "Phone"))
    resultOf(env.manager.revoke(actor, ALICE, "Phone"))
    fp = fingerprintOf(data)
    target = ALICE + "/Phone"
    assert trail(env) == [
        (name, addAction, target, fp), (name, "cert.disable", target, fp), (name, "cert.revoke", target, fp)
    ]


def test_auditFailed() -> None:
    """
    An audit record that cannot be written does not undo or fail the
    change: the callback hears of it (by default, one warning line, never
    an error).
    """
    heard: list[tuple[str, str, str, str]] = []
    env = makeEnv()
    env.store.recordAudit = lambda *args: defer.fail(sqlite3.OperationalError("database is locked"))  # type: ignore[method-assign]
    with capturedLogs() as events:
        resultOf(env.manager.add(OPERATOR, ALICE, "Phone", issue()))
    [line] = [e for e in events if e.get("log_level") == LogLevel.warn]
    assert line["action"] == "cert.add"
    manager = CertificateManager(
        env.store, env.clock, auditFailed=lambda *args: heard.append((*args[:3], str(args[3])))
    )
    resultOf(manager.disable(OPERATOR, ALICE, "Phone"))
    assert heard == [("cert.disable", ALICE + "/Phone", "cli:root", "database is locked")]
    assert states(env) == [("Phone", "disabled")]


# --- live sessions ------------------------------------------------------------------


def test_revokeEndsSessions() -> None:
    """
    XEP-0257 §2.4: revoking (an enabled or a disabled certificate) ends
    every session that logged in with it, right after the answer, with
    reset; the count goes to the metrics. Disabling ends none.
    """
    env = makeEnv()
    registry = SessionManager((DOMAIN,), env.store)
    env.manager.sessions = registry
    data = issue()
    resultOf(env.manager.add(SESSION, ALICE, "Phone", data))
    session, client = bindSession(registry, ALICE + "/phone")
    session.info.update(mechanism="EXTERNAL", certificate=fingerprintOf(data))
    resultOf(env.manager.disable(SESSION, ALICE, "Phone"))
    env.clock.advance(0)
    assert client.closes == []
    resultOf(env.manager.revoke(ADMIN, ALICE, "Phone"))
    assert client.closes == []
    env.clock.advance(0)
    assert [(e.condition, e.text) for e in client.closes] == [
        ("reset", "The certificate of this session was revoked")
    ]
    assert env.metrics.closed == [1]


def test_revokeWithNotifier() -> None:
    """
    With a notifier (several nodes), revocations go through it rather than
    the session registry.
    """
    env = makeEnv()
    notifier = FakeSessions()
    manager = CertificateManager(env.store, env.clock, env.sessions, notifier=notifier)
    data = issue()
    resultOf(manager.add(OPERATOR, ALICE, "Phone", data))
    resultOf(manager.revoke(OPERATOR, ALICE, "Phone"))
    env.clock.advance(0)
    assert (notifier.closed, env.sessions.closed) == ([fingerprintOf(data)], [])


def test_revokeWithoutSessions() -> None:
    """
    Without sessions (the command line), a revocation changes the store
    and schedules nothing: the caller tells a running server.
    """
    env = makeEnv(sessions=False)
    resultOf(env.manager.add(OPERATOR, ALICE, "Phone", issue()))
    resultOf(env.manager.revoke(OPERATOR, ALICE, "Phone"))
    assert env.clock.getDelayedCalls() == []
    assert states(env) == [("Phone", "revoked")]


def test_endRevokedSessions() -> None:
    """
    The control channel's revocation: the sessions of a certificate the
    store says is revoked (also after its record was removed) end at once;
    for any other, CertificateNotRevoked and nothing ends.
    """
    env = makeEnv()
    data = issue()
    fp = fingerprintOf(data)
    resultOf(env.manager.add(OPERATOR, ALICE, "Phone", data))
    refused(env.manager.endRevokedSessions(fp), CertificateNotRevoked)
    assert env.sessions.closed == []
    resultOf(env.store.setCertificateStateByFingerprint(fp, "revoked"))
    resultOf(env.store.removeCertificateByFingerprint(fp))
    assert resultOf(env.manager.endRevokedSessions(" " + fp.upper())) == 0
    assert env.sessions.closed == [fp]


# --- the store failing ------------------------------------------------------------


@pytest.mark.parametrize(
    "exception",
    [sqlite3.OperationalError("database is locked"), OSError(28, "No space left on device")],
    ids=["locked", "disk full"],
)
def test_storeUnavailable(exception: Exception) -> None:
    """
    A store that fails is StoreUnavailable carrying what it raised, never
    mistaken for an answer; the manager logs nothing at error (the front
    end knows who asked).
    """
    env = makeEnv()
    resultOf(env.manager.add(OPERATOR, ALICE, "Phone", issue()))
    for method in ("listCertificates", "getCertificate", "addCertificate"):
        setattr(env.store, method, lambda *args, **kwargs: defer.fail(exception))
    calls: list[defer.Deferred[Any]] = []
    with capturedLogs() as events:
        calls = [
            env.manager.list(SESSION, ALICE),
            env.manager.disable(OPERATOR, ALICE, "Phone"),
            env.manager.add(SESSION, ALICE, "Tablet", issue()),
        ]
    for d in calls:
        assert refused(d, StoreUnavailable).cause is exception
    assert [e for e in events if e.get("log_level") in (LogLevel.error, LogLevel.critical)] == []
