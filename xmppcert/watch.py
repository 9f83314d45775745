# -*- test-case-name: tests.test_watch -*-
"""
Services that keep the running server in step with the certificate store.

The store is shared: the C{xmppcert cert ...} commands write to it from
another process, and several server nodes can share one database. A revoke
made anywhere must end the sessions that logged in with that certificate
(XEP-0257 section 2.4), so each node polls the store's change counter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import error

from xmppcert import _log
from xmppcert.metrics import IMetrics, NullMetrics
from xmppcert.sessions import accountLockedError

log = Logger(observer=_log.observer)

#: Seconds between runs of the expired-certificate pruner.
PRUNE_INTERVAL = 3600.0


class _Loop:
    """
    A C{LoopingCall} whose stop waits for the run in progress, so the store
    is not closed under it at shutdown.
    """

    def __init__(self, call: Any, clock: IReactorTime, interval: float, now: bool, name: str) -> None:
        self._call = call
        self._running: defer.Deferred[None] | None = None
        self._waiters: list[defer.Deferred[None]] = []
        self._loop = task.LoopingCall(self._run)
        self._loop.clock = clock
        # Each call handles its own failures; this only reports a loop that died.
        self._loop.start(interval, now=now).addErrback(lambda f: log.failure("{name} stopped", f, name=name))

    def _run(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = self._call()
        self._running = d

        def done(result: None) -> None:
            self._running = None
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return result

        return d.addBoth(done)

    def stop(self) -> defer.Deferred[None]:
        if self._loop.running:
            self._loop.stop()
        if self._running is None:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(waiter)
        return waiter


def _stopLoops(*loops: _Loop | None) -> defer.Deferred[Any]:
    return defer.DeferredList([loop.stop() for loop in loops if loop is not None])


class RevocationWatcher(service.Service):
    """
    Polls C{ICertificateStore.changesSince} and closes the sessions of every
    certificate revoked since the last look.

    Removals (C{cert remove}, C{user delete}, pruning) leave no change to
    poll for, so every C{checkInterval} seconds it also checks that each
    live session's account, and the registered certificate it logged in
    with, are still there, and that the account is not locked.
    """

    def __init__(
        self,
        store: Any,
        sessions: Any,
        clock: IReactorTime,
        interval: float,
        checkInterval: float = 30.0,
        metrics: IMetrics | None = None,
        onCheck: Callable[[], object] | None = None,
    ) -> None:
        """
        @param metrics: told about the revocations seen and the sessions
            they closed.
        @param onCheck: called at each session check, before it looks: for
            what is kept in memory about accounts online and must catch up
            with removals made outside this process (the rosters presence
            reads) within the same interval.
        """
        self.onCheck = onCheck
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()
        self.store = store
        self.sessions = sessions
        self.clock = clock
        self.interval = interval
        self.checkInterval = checkInterval
        self.cursor = 0
        self._loop: _Loop | None = None
        self._checkLoop: _Loop | None = None
        self._failing = False
        self._checkFailing = False

    def startService(self) -> None:
        service.Service.startService(self)
        self._loop = _Loop(self.poll, self.clock, self.interval, True, "Revocation watcher")
        self._checkLoop = _Loop(self.checkSessions, self.clock, self.checkInterval, False, "Session checker")

    def stopService(self) -> defer.Deferred[Any]:
        service.Service.stopService(self)
        return _stopLoops(self._loop, self._checkLoop)

    def checkSessions(self) -> defer.Deferred[None]:
        d = defer.ensureDeferred(self._checkSessions())
        d.addErrback(self._checkFailed)
        return d

    async def _checkSessions(self) -> None:
        if self.onCheck is not None:
            self.onCheck()
        live = [s for s in self.sessions.allSessions() if not s.closed]
        accounts = {s.jid.userhostJID() for s in live}
        fingerprints = {s.info["certificate"] for s in live if s.info.get("certificate")}
        registered = {
            s.info["certificate"] for s in live if s.info.get("certificate") and s.info.get("certificateRegistered")
        }
        for account in sorted(accounts, key=lambda a: a.userhost()):
            if not await self.store.accountExists(account.userhost()):
                # The stream is no longer authorized by anything; the
                # text tells the user why.
                self.sessions.closeSessionsOf(
                    account, error.StreamError("not-authorized", text="This account was deleted")
                )
            elif await self.store.isAccountLocked(account.userhost()):
                # Locked where the control channel could not say so at
                # once (the server was not reached, or another node).
                self.sessions.closeSessionsOf(account, accountLockedError(), barLogins=True)
        for fingerprint in sorted(fingerprints):
            stored = await self.store.certificateByFingerprint(fingerprint)
            if stored is not None and stored.state == "revoked":
                self.metrics.sessionsClosedByRevocation(self.sessions.closeSessionsWithCertificate(fingerprint))
            elif stored is None and await self.store.isCertificateRevoked(fingerprint):
                # Revoked and removed between two polls: the poll saw
                # nothing, whichever checker let the session in.
                self.metrics.sessionsClosedByRevocation(self.sessions.closeSessionsWithCertificate(fingerprint))
            elif stored is None and fingerprint in registered:
                self.sessions.closeSessionsWithCertificate(fingerprint, "removed")
        if self._checkFailing:
            log.info("The session check reads the store again")
            self._checkFailing = False

    def poll(self) -> defer.Deferred[None]:
        d = defer.ensureDeferred(self._poll())
        d.addErrback(self._pollFailed)
        return d

    async def _poll(self) -> None:
        cursor, changed = await self.store.changesSince(self.cursor)
        first = self.cursor == 0
        self.cursor = cursor
        if self._failing:
            log.info("The certificate store answers again")
            self._failing = False
        if first:
            return
        for certificate in changed:
            if certificate.state == "revoked":
                self.metrics.certificatesRevoked(1)
                closed = self.sessions.closeSessionsWithCertificate(certificate.fingerprint)
                self.metrics.sessionsClosedByRevocation(closed)

    def _checkFailed(self, f: Any) -> None:
        # As for polls: say so once, keep checking.
        if not self._checkFailing:
            log.failure("Could not check live sessions against the store", f)
            self._checkFailing = True

    def _pollFailed(self, f: Any) -> None:
        # Keep polling: a locked or briefly unavailable database must not
        # stop revocations from taking effect later. Say so once.
        if not self._failing:
            log.failure("Could not read certificate changes from the store", f)
            self._failing = True


class ExpiredCertificatePruner(service.Service):
    """
    Removes certificates that expired more than C{after} seconds ago
    (XEP-0257 section 2.3: a server MAY remove expired certificates).
    """

    def __init__(self, store: Any, clock: IReactorTime, after: float, interval: float = PRUNE_INTERVAL) -> None:
        self.store = store
        self.clock = clock
        self.after = after
        self.interval = interval
        self._loop: _Loop | None = None

    def startService(self) -> None:
        service.Service.startService(self)
        self._loop = _Loop(self.prune, self.clock, self.interval, True, "Certificate pruner")

    def stopService(self) -> defer.Deferred[Any]:
        service.Service.stopService(self)
        return _stopLoops(self._loop)

    def prune(self) -> defer.Deferred[None]:
        d = defer.ensureDeferred(self._prune())
        d.addErrback(lambda f: log.failure("Could not prune expired certificates", f))
        return d

    async def _prune(self) -> None:
        removed = await self.store.removeExpiredCertificates(self.clock.seconds() - self.after)
        for certificate in removed:
            log.info(
                "Removed certificate {name!r} of {account}: expired more than {days:g} days ago",
                name=certificate.name,
                account=certificate.account,
                days=self.after / 86400,
            )


__all__ = ["PRUNE_INTERVAL", "ExpiredCertificatePruner", "RevocationWatcher"]
