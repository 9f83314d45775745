# -*- test-case-name: tests.test_watch -*-
"""
Tests for L{xmppcert.watch}: the L{RevocationWatcher} that ends the
sessions of certificates revoked in the shared store (by this node, another
node or the command line tool), and the L{ExpiredCertificatePruner}; both
driven by a L{task.Clock} over an L{InMemoryAccountStore}.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs

from tests.helpers import ALICE, BOB, addAccount, resultOf
from xmppcert.store.interfaces import StoredCertificate, StoreError
from xmppcert.testing import InMemoryAccountStore
from xmppcert.watch import PRUNE_INTERVAL, ExpiredCertificatePruner, RevocationWatcher

#: The clock's start, a POSIX timestamp.
START = 1_740_830_400.0
INTERVAL = 5.0
DAY = 86400.0


def fp(label: str) -> str:
    """
    A well-formed SHA-256 fingerprint for a made-up certificate.
    """
    return hashlib.sha256(label.encode()).hexdigest()


class FlakyStore(InMemoryAccountStore):
    """
    An InMemoryAccountStore whose change and pruning queries fail while
    C{failing} is set (as a locked SQLite database does), and which records
    the C{before} of every L{removeExpiredCertificates} call.
    """

    def __init__(self, clock: task.Clock) -> None:
        super().__init__(clock=clock.seconds)
        self.failing = False
        self.changeQueries = 0
        self.pruneCutoffs: list[float] = []

    def changesSince(self, cursor: int) -> defer.Deferred[tuple[int, list[StoredCertificate]]]:
        self.changeQueries += 1
        if self.failing:
            return defer.fail(StoreError("database is locked"))
        return super().changesSince(cursor)

    def removeExpiredCertificates(self, before: float) -> defer.Deferred[list[StoredCertificate]]:
        self.pruneCutoffs.append(before)
        if self.failing:
            return defer.fail(StoreError("database is locked"))
        return super().removeExpiredCertificates(before)


@dataclass
class FakeSessions:
    """
    The session registry's closeSessionsWithCertificate, recording calls.
    """

    closed: list[str] = field(default_factory=list)

    def closeSessionsWithCertificate(self, fingerprint: str, why: str = "revoked") -> int:
        self.closed.append(fingerprint)
        return 1


@dataclass
class Env:
    clock: task.Clock
    store: FlakyStore
    sessions: FakeSessions
    watcher: RevocationWatcher


def makeStore(clock: task.Clock) -> FlakyStore:
    store = FlakyStore(clock)
    for account in (ALICE, BOB):
        addAccount(store, account)
    return store


def addCertificate(
    store: InMemoryAccountStore, name: str, account: str = ALICE, notAfter: float = START + 30 * DAY
) -> str:
    """
    Register a made-up certificate; return its fingerprint.
    """
    fingerprint = fp(f"{account}/{name}")
    resultOf(store.addCertificate(account, name, b"der of " + name.encode(), fingerprint, notAfter))
    return fingerprint


def setState(store: InMemoryAccountStore, fingerprint: str, state: str) -> None:
    resultOf(store.setCertificateStateByFingerprint(fingerprint, state))


def makeEnv(start: bool = True) -> Env:
    """
    A RevocationWatcher polling every L{INTERVAL} seconds, started unless
    told otherwise.
    """
    clock = task.Clock()
    clock.advance(START)
    store = makeStore(clock)
    sessions = FakeSessions()
    watcher = RevocationWatcher(store, sessions, clock, INTERVAL)
    if start:
        watcher.startService()
    return Env(clock, store, sessions, watcher)


def failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "log_failure" in e]


# --- RevocationWatcher ------------------------------------------------------


def test_startDoesNotReplay() -> None:
    """
    ICertificateStore.changesSince: the watcher polls at once on start with
    cursor 0 and takes the current counter; revocations made before it
    started are not replayed (their sessions were closed then).
    """
    env = makeEnv(start=False)
    revoked = addCertificate(env.store, "Old")
    setState(env.store, revoked, "revoked")
    current, _ = resultOf(env.store.changesSince(0))
    env.store.changeQueries = 0
    env.watcher.startService()
    assert env.watcher.running
    assert env.store.changeQueries == 1
    assert env.watcher.cursor == current
    env.clock.advance(INTERVAL)
    assert env.sessions.closed == []


def test_revokeClosesSessions() -> None:
    """
    XEP-0257 §2.4: a certificate revoked in the store (by any node or the
    command line) has its sessions closed at the next poll, at most one
    interval later.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    addCertificate(env.store, "Laptop")
    env.clock.advance(INTERVAL)
    setState(env.store, phone, "revoked")
    assert env.sessions.closed == []
    env.clock.advance(INTERVAL)
    assert env.sessions.closed == [phone]


def test_disableDoesNotClose() -> None:
    """
    XEP-0257 §2.3: disabling a certificate keeps its sessions; adding or
    re-enabling one closes nothing either.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    env.clock.advance(INTERVAL)
    setState(env.store, phone, "disabled")
    env.clock.advance(INTERVAL)
    setState(env.store, phone, "enabled")
    env.clock.advance(INTERVAL)
    assert env.sessions.closed == []
    assert env.store.changeQueries == 4


def test_disabledThenRevoked() -> None:
    """
    XEP-0257 §2.4: a certificate disabled and then revoked between two
    polls is reported in its current state, revoked, and its sessions are
    closed.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    env.clock.advance(INTERVAL)
    setState(env.store, phone, "disabled")
    setState(env.store, phone, "revoked")
    env.clock.advance(INTERVAL)
    assert env.sessions.closed == [phone]


def test_addedRevokedBetweenPolls() -> None:
    """
    XEP-0257 §2.4: a certificate added and revoked between two polls has
    its sessions closed too.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    setState(env.store, phone, "revoked")
    env.clock.advance(INTERVAL)
    assert env.sessions.closed == [phone]


def test_revocationActedOnOnce() -> None:
    """
    ICertificateStore.changesSince: the cursor advances with every poll, so
    a revocation closes sessions once, and later revocations are still
    seen.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    laptop = addCertificate(env.store, "Laptop", account=BOB)
    setState(env.store, phone, "revoked")
    env.clock.advance(INTERVAL)
    current, _ = resultOf(env.store.changesSince(0))
    assert env.watcher.cursor == current
    env.clock.pump([INTERVAL] * 5)
    assert env.sessions.closed == [phone]
    setState(env.store, laptop, "revoked")
    env.clock.pump([INTERVAL] * 5)
    assert env.sessions.closed == [phone, laptop]


def test_storeFailureKeepsPolling() -> None:
    """
    A store that cannot be read (locked, briefly unavailable) does not stop
    the watcher: the failure is logged once with its cause, not once per
    poll; recovery is logged at info level; and a revocation made meanwhile
    is acted on at the first poll that succeeds.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    env.clock.advance(INTERVAL)
    cursor = env.watcher.cursor
    with capturedLogs() as captured:
        env.store.failing = True
        setState(env.store, phone, "revoked")
        env.clock.pump([INTERVAL] * 3)
        events = list(captured)
        assert env.watcher.cursor == cursor
        assert env.sessions.closed == []
        [logged] = failures(events)
        assert logged["log_failure"].check(StoreError)
        assert logged["log_level"] in (LogLevel.warn, LogLevel.error, LogLevel.critical)
        env.store.failing = False
        env.clock.advance(INTERVAL)
        events = list(captured)
    assert env.store.changeQueries == 6
    assert env.sessions.closed == [phone]
    assert len(failures(events)) == 1
    recovered = [e for e in events if "answers again" in e.get("log_format", "")]
    assert [e["log_level"] for e in recovered] == [LogLevel.info]


def test_failureLoggedAgainAfterRecovery() -> None:
    """
    A store that fails, recovers and fails again is reported each time it
    starts failing.
    """
    env = makeEnv()
    with capturedLogs() as captured:
        env.store.failing = True
        env.clock.pump([INTERVAL] * 2)
        env.store.failing = False
        env.clock.advance(INTERVAL)
        env.store.failing = True
        env.clock.pump([INTERVAL] * 2)
        events = list(captured)
    assert len(failures(events)) == 2


def test_stopServiceStopsPolling() -> None:
    """
    twisted.application.service: stopService stops the loop; nothing is
    left scheduled and later revocations are not acted on by this watcher.
    """
    env = makeEnv()
    phone = addCertificate(env.store, "Phone")
    env.clock.advance(INTERVAL)
    env.watcher.stopService()
    assert not env.watcher.running
    assert env.clock.getDelayedCalls() == []
    queries = env.store.changeQueries
    setState(env.store, phone, "revoked")
    env.clock.pump([INTERVAL] * 3)
    assert env.store.changeQueries == queries
    assert env.sessions.closed == []


def test_stopServiceBeforeStart() -> None:
    """
    twisted.application.service: stopping a watcher that never started is
    harmless.
    """
    env = makeEnv(start=False)
    env.watcher.stopService()
    assert env.store.changeQueries == 0
    assert env.clock.getDelayedCalls() == []


# --- ExpiredCertificatePruner -----------------------------------------------


def makePruner(after: float = 5 * DAY, interval: float = PRUNE_INTERVAL) -> tuple[
    task.Clock, FlakyStore, ExpiredCertificatePruner
]:
    clock = task.Clock()
    clock.advance(START)
    store = makeStore(clock)
    return clock, store, ExpiredCertificatePruner(store, clock, after, interval)


def names(store: InMemoryAccountStore, account: str = ALICE) -> list[str]:
    return sorted(c.name for c in resultOf(store.listCertificates(account)))


def test_pruneAtStart() -> None:
    """
    XEP-0257 §2.3 (a server MAY remove expired certificates): on start the
    pruner removes at once, in every account and state, the certificates
    that expired more than C{after} seconds ago, and keeps the others.
    """
    clock, store, pruner = makePruner(after=5 * DAY)
    addCertificate(store, "Long expired", notAfter=START - 10 * DAY)
    revoked = addCertificate(store, "Revoked long ago", account=BOB, notAfter=START - 6 * DAY)
    setState(store, revoked, "revoked")
    addCertificate(store, "Recently expired", notAfter=START - 2 * DAY)
    addCertificate(store, "Valid", notAfter=START + DAY)
    with capturedLogs() as captured:
        pruner.startService()
        events = list(captured)
    assert store.pruneCutoffs == [START - 5 * DAY]
    assert names(store) == ["Recently expired", "Valid"]
    assert names(store, BOB) == []
    removed = sorted((e["account"], e["name"]) for e in events if e.get("days") == 5)
    assert removed == [(ALICE, "Long expired"), (BOB, "Revoked long ago")]


def test_pruneAtInterval() -> None:
    """
    The pruner runs again every C{interval} seconds with the cutoff moved
    on, so a certificate is removed once it has been expired for C{after}
    seconds.
    """
    clock, store, pruner = makePruner(after=DAY, interval=3600)
    addCertificate(store, "Phone", notAfter=START - DAY + 1800)
    pruner.startService()
    assert names(store) == ["Phone"]
    clock.advance(3599)
    assert store.pruneCutoffs == [START - DAY]
    clock.advance(1)
    assert store.pruneCutoffs == [START - DAY, START + 3600 - DAY]
    assert names(store) == []


def test_pruneDefaultInterval() -> None:
    """
    The pruner runs hourly by default.
    """
    assert PRUNE_INTERVAL == 3600.0
    clock = task.Clock()
    pruner = ExpiredCertificatePruner(makeStore(clock), clock, DAY)
    assert pruner.interval == PRUNE_INTERVAL


def test_pruneFailureKeepsRunning() -> None:
    """
    A store failure while pruning is logged with its cause and the pruner
    tries again at the next interval.
    """
    clock, store, pruner = makePruner(after=DAY, interval=60)
    addCertificate(store, "Phone", notAfter=START - 2 * DAY)
    store.failing = True
    with capturedLogs() as captured:
        pruner.startService()
        events = list(captured)
    [logged] = failures(events)
    assert logged["log_failure"].check(StoreError)
    assert names(store) == ["Phone"]
    store.failing = False
    clock.advance(60)
    assert len(store.pruneCutoffs) == 2
    assert names(store) == []


def test_pruneStopService() -> None:
    """
    twisted.application.service: stopService stops the pruner; nothing is
    left scheduled and nothing more is removed.
    """
    clock, store, pruner = makePruner(after=DAY, interval=60)
    pruner.startService()
    pruner.stopService()
    assert not pruner.running
    assert clock.getDelayedCalls() == []
    addCertificate(store, "Phone", notAfter=START - 2 * DAY)
    clock.pump([60] * 3)
    assert store.pruneCutoffs == [START - DAY]
    assert names(store) == ["Phone"]


# --- the session check: removals leave no change to poll for ----------------

CHECK = 30.0


def checkedSessions() -> tuple[task.Clock, InMemoryAccountStore, Any, RevocationWatcher]:
    """
    A real SessionManager over a store with ALICE and BOB, and a started
    watcher checking sessions every L{CHECK} seconds.
    """
    from xmppcert.sessions import SessionManager

    clock = task.Clock()
    clock.advance(START)
    store = makeStore(clock)
    sessions = SessionManager(("example.com",), store)
    watcher = RevocationWatcher(store, sessions, clock, INTERVAL, CHECK)
    watcher.startService()
    return clock, store, sessions, watcher


def certificateSession(sessions: Any, fullJID: str, fingerprint: str | None, registered: bool = True) -> Any:
    from tests.helpers import bindSession

    session, client = bindSession(sessions, fullJID)
    session.info.update(certificate=fingerprint, certificateRegistered=registered, mechanism="EXTERNAL")
    return client


def test_checkRemovedCertificate() -> None:
    """
    XEP-0257 §2.4 in spirit: a certificate removed from the store (cert
    remove, pruning, or another node) ends the sessions that logged in with
    it at the next session check, with reset; none before it.
    """
    clock, store, sessions, watcher = checkedSessions()
    phone = addCertificate(store, "Phone")
    laptop = addCertificate(store, "Laptop")
    phoneClient = certificateSession(sessions, f"{ALICE}/phone", phone)
    laptopClient = certificateSession(sessions, f"{ALICE}/laptop", laptop)
    resultOf(store.removeCertificateByFingerprint(phone))
    clock.advance(CHECK - 1)
    assert phoneClient.closes == []
    clock.advance(1)
    assert [(e.condition, e.text) for e in phoneClient.closes] == [
        ("reset", "The certificate of this session was removed")
    ]
    assert laptopClient.closes == []
    watcher.stopService()


def test_checkKeepsDisabledAndUnregistered() -> None:
    """
    XEP-0257 §2.3: a disabled certificate's sessions stay; a session whose
    certificate was never registered (CA mode, custom checkers) is not
    judged by the store's certificate records.
    """
    clock, store, sessions, watcher = checkedSessions()
    tablet = addCertificate(store, "Tablet")
    setState(store, tablet, "disabled")
    tabletClient = certificateSession(sessions, f"{ALICE}/tablet", tablet)
    caClient = certificateSession(sessions, f"{ALICE}/ca", fp("issued by a CA"), registered=False)
    clock.advance(3 * CHECK)
    assert tabletClient.closes == [] and caClient.closes == []
    watcher.stopService()


def test_checkRevokedThenRemovedBetweenPolls() -> None:
    """
    XEP-0257 §2.4 with a permanent revocation: a certificate revoked and
    removed by another process between two polls (the poll sees no
    change) ends its sessions at the next session check, with the revoked
    text, also for a session a CA let in (not registered when it logged
    in).
    """
    clock, store, sessions, watcher = checkedSessions()
    watcher.stopService()  # no polls: only the session check may see it
    watcher = RevocationWatcher(store, sessions, clock, 10 * CHECK, CHECK)
    watcher.startService()
    phone = addCertificate(store, "Phone")
    registered = certificateSession(sessions, f"{ALICE}/phone", phone)
    viaCA = certificateSession(sessions, f"{ALICE}/ca", phone, registered=False)
    setState(store, phone, "revoked")
    resultOf(store.removeCertificateByFingerprint(phone))
    clock.advance(CHECK)
    for client in (registered, viaCA):
        assert [(e.condition, e.text) for e in client.closes] == [
            ("reset", "The certificate of this session was revoked")
        ]
    watcher.stopService()


def test_checkDeletedAccount() -> None:
    """
    A deleted account (xmppcert user delete, on this node or another) loses
    every session, password or certificate, with not-authorized; other
    accounts keep theirs.
    """
    clock, store, sessions, watcher = checkedSessions()
    from tests.helpers import bindSession

    _, aliceDesk = bindSession(sessions, f"{ALICE}/desk")
    aliceCert = certificateSession(sessions, f"{ALICE}/phone", addCertificate(store, "Phone"))
    _, bobDesk = bindSession(sessions, f"{BOB}/desk")
    resultOf(store.removeAccount(ALICE))
    clock.advance(CHECK)
    assert [e.condition for e in aliceDesk.closes] == ["not-authorized"]
    assert aliceDesk.closes[0].text == "This account was deleted"
    assert len(aliceCert.closes) == 1
    assert bobDesk.closes == []
    watcher.stopService()
    assert clock.getDelayedCalls() == []


def test_stopWaitsForRunningCheck() -> None:
    """
    Shutdown: stopping the watcher waits for a session check in progress,
    so the store is not closed under it (which would log at error level).
    """
    clock, store, sessions, watcher = checkedSessions()
    from tests.helpers import bindSession

    bindSession(sessions, f"{ALICE}/desk")
    pending: defer.Deferred[bool] = defer.Deferred()
    store.accountExists = lambda jid: pending  # type: ignore[method-assign]
    clock.advance(CHECK)
    stopped = watcher.stopService()
    assert isinstance(stopped, defer.Deferred)
    assert not stopped.called
    pending.callback(True)
    assert stopped.called
    assert clock.getDelayedCalls() == []


def test_checkLockedAccount() -> None:
    """
    A locked account (xmppcert user lock while no server answered, or on
    another node) loses every session at the next session check, with
    not-authorized; unlocked accounts keep theirs.
    """
    clock, store, sessions, watcher = checkedSessions()
    from tests.helpers import bindSession

    _, aliceDesk = bindSession(sessions, f"{ALICE}/desk")
    aliceCert = certificateSession(sessions, f"{ALICE}/phone", addCertificate(store, "Phone"))
    _, bobDesk = bindSession(sessions, f"{BOB}/desk")
    resultOf(store.setAccountLocked(ALICE, True))
    clock.advance(CHECK - 1)
    assert aliceDesk.closes == []
    clock.advance(1)
    assert [(e.condition, e.text) for e in aliceDesk.closes + aliceCert.closes] == [
        ("not-authorized", "This account was locked by an administrator")
    ] * 2
    assert bobDesk.closes == []
    watcher.stopService()


def test_checkCallsOnCheck() -> None:
    """
    Each session check first lets what is kept in memory about accounts
    online catch up (the rosters presence reads: an account deleted by
    another process left them in the store).
    """
    clock, store, sessions, watcher = checkedSessions()
    watcher.stopService()
    calls: list[None] = []
    watcher = RevocationWatcher(store, sessions, clock, 10 * CHECK, CHECK, onCheck=lambda: calls.append(None))
    watcher.startService()
    clock.advance(CHECK)
    clock.advance(CHECK)
    assert calls == [None, None]
    watcher.stopService()
