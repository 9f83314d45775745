# -*- test-case-name: tests.test_control -*-
"""
The admin control channel: Twisted AMP over a UNIX socket, through which
the C{xmppcert} command reaches a running server (docs/operations.md, "Live
sessions and the control channel").

The commands (L{Status}, L{Sessions}, L{Kick}, L{Lock}, L{PasswordChanged},
L{CertificateRevoked}) are the one schema both sides use. On the server,
L{ControlChannel} answers them over the session registry (every look-up of
where a JID is online goes through it), the session notifier
(L{xmppcert.sessions.ISessionNotifier}: kicks and locks reach sessions the
way revocations do), the certificate manager
(L{xmppcert.certificates.CertificateManager}, which ends the sessions of a
revoked certificate as for any revocation) and the store, which also keeps
the audit trail;
L{ControlProtocol} is the AMP protocol and L{ControlService} the listener.

Who may connect: the socket file has mode 0600 (in the data directory by
default, which C{xmppcert init} makes 0700), and where the system tells a
UNIX socket's peer (C{SO_PEERCRED}), only the server's own user and root
are served. That also covers the moment between C{bind()} and C{chmod()}
in which the file has the umask's mode. The peer's user name is the actor
the audit trail records (C{control:<user>}).

The client, L{ControlClient}, is blocking: the command line has no
reactor, and one cannot be restarted within a process (the CLI's tests run
it many times in one). It speaks AMP's wire format over a plain socket: a
box is key/value pairs, each a 16-bit length and bytes, ended by an empty
key, which L{amp.AmpBox.serialize} writes and a loop of exact reads
parses; the arguments and answers are typed by the same
C{Command.makeArguments}/C{parseResponse} the server uses, so there is no
second schema to keep in step, and declared errors come back as the same
exception types.
"""

from __future__ import annotations

import heapq
import os
import pwd
import socket
import stat
import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints, protocol
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.protocols import amp
from twisted.python import failure
from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert import _log, version
from xmppcert.certificates import (
    AuditTrail,
    CertificateManager,
    CertificateNotRevoked,
    ICertificateManager,
    StoreUnavailable,
)
from xmppcert.jids import parseJID
from xmppcert.sessions import (
    ISessionNotifier,
    Session,
    SessionManager,
    accountLockedError,
    kickedError,
    passwordChangedError,
)
from xmppcert.store.interfaces import NoSuchAccount, StoreError

log = Logger(observer=_log.observer)

#: Seconds the client waits for the server to answer.
DEFAULT_TIMEOUT = 30.0

#: Bytes of session descriptions in one answer to L{Sessions}: an AMP value
#: holds at most 65535, the rest is left for the encoding.
PAGE_BUDGET = 60000

#: Sessions in one answer to L{Sessions} at most.
PAGE_MAX_ITEMS = 500

#: Keys in one box the client accepts.
MAX_BOX_KEYS = 64

#: Seconds between two log lines about failed audit records, and about
#: refused connections.
FAILURE_LOG_INTERVAL = 60.0


class ControlError(Exception):
    """
    The control channel could not do what was asked; the message says why.
    """


class ServerNotRunning(ControlError):
    """
    Nothing listens on the control socket: the server is not running (or
    its control channel is turned off).
    """


class InvalidJID(ControlError):
    """
    A JID given to a command is not valid for it.
    """


class NotRevoked(ControlError):
    """
    The store does not say that the certificate is revoked.
    """


_ERRORS: dict[type[Exception], bytes] = {
    InvalidJID: b"INVALID_JID",
    NoSuchAccount: b"NO_SUCH_ACCOUNT",
    StoreError: b"STORE_ERROR",
}


class Status(amp.Command):
    """
    The server's version, uptime (seconds), listeners, and its live
    sessions counted by transport and SASL mechanism.
    """

    commandName = b"status"
    response = [
        (b"version", amp.Unicode()),
        (b"startedAt", amp.Float()),
        (b"uptime", amp.Float()),
        (b"listeners", amp.AmpList([(b"kind", amp.Unicode()), (b"description", amp.Unicode())])),
        (
            b"sessions",
            amp.AmpList([(b"transport", amp.Unicode()), (b"mechanism", amp.Unicode()), (b"count", amp.Integer())]),
        ),
    ]
    errors = _ERRORS


class Sessions(amp.Command):
    """
    Live sessions, sorted by full JID: all, or those of C{jid} (a bare JID
    for all its resources); those after the full JID C{after}, as many as
    fit in one answer (C{more} tells whether there are others).
    """

    commandName = b"sessions"
    arguments = [(b"jid", amp.Unicode(optional=True)), (b"after", amp.Unicode(optional=True))]
    response = [
        (
            b"sessions",
            amp.AmpList(
                [
                    (b"jid", amp.Unicode()),
                    (b"transport", amp.Unicode()),
                    (b"address", amp.Unicode()),
                    (b"mechanism", amp.Unicode()),
                    (b"fingerprint", amp.Unicode(optional=True)),
                    (b"certificate", amp.Unicode(optional=True)),
                    (b"boundAt", amp.Float(optional=True)),
                ]
            ),
        ),
        (b"more", amp.Boolean()),
    ]
    errors = _ERRORS


class Kick(amp.Command):
    """
    End the sessions of C{jid} (a bare JID: all of them; a full JID: that
    one) at once; answers how many.
    """

    commandName = b"kick"
    arguments = [(b"jid", amp.Unicode())]
    response = [(b"sessions", amp.Integer())]
    errors = _ERRORS


class Lock(amp.Command):
    """
    Lock (or unlock) the account C{jid} in the store; locking also ends its
    sessions at once. Answers how many sessions ended.
    """

    commandName = b"lock"
    arguments = [(b"jid", amp.Unicode()), (b"locked", amp.Boolean())]
    response = [(b"sessions", amp.Integer())]
    errors = _ERRORS


class PasswordChanged(amp.Command):
    """
    The password of C{jid} was changed in the store: end its sessions that
    logged in with a password (any mechanism but EXTERNAL). Answers how
    many.
    """

    commandName = b"password-changed"
    arguments = [(b"jid", amp.Unicode())]
    response = [(b"sessions", amp.Integer())]
    errors = _ERRORS


class CertificateRevoked(amp.Command):
    """
    A certificate was revoked in the store: end its sessions now rather
    than at the next poll. The server checks the store first. Answers how
    many sessions ended.
    """

    commandName = b"certificate-revoked"
    arguments = [(b"fingerprint", amp.Unicode())]
    response = [(b"sessions", amp.Integer())]
    errors = {**_ERRORS, NotRevoked: b"NOT_REVOKED"}


def userName(uid: int) -> str:
    """
    @return: the login name of C{uid}, or the number when it has none.
    """
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def peerUID(transport: Any) -> int | None:
    """
    @return: the user id of the process at the other end of a UNIX socket
        connection, or C{None} where the system does not tell
        (C{SO_PEERCRED} is Linux's).
    """
    getHandle = getattr(transport, "getHandle", None)
    option = getattr(socket, "SO_PEERCRED", None)
    if getHandle is None or option is None:
        return None
    size = struct.calcsize("3i")
    try:
        credentials = getHandle().getsockopt(socket.SOL_SOCKET, option, size)
        _, uid, _ = struct.unpack("3i", credentials)
    except (OSError, AttributeError, struct.error):
        return None
    return int(uid)


def _target(text: str, bare: bool = False) -> jabberJID.JID:
    """
    @return: the prepared JID C{text}, which names an account (and with
        C{bare} has no resource).
    @raise InvalidJID: it does not.
    """
    try:
        parsed = parseJID(text)
    except jabberJID.InvalidFormat as e:
        raise InvalidJID(str(e)) from None
    if not parsed.user:
        raise InvalidJID(f"{text!r} names no account: it has no localpart (user@domain)")
    if bare and parsed.resource is not None:
        raise InvalidJID(f"{text!r} is a full JID; give the bare JID {parsed.userhost()!r}")
    return parsed


def _isPasswordSession(session: Session) -> bool:
    return session.info.get("mechanism") != "EXTERNAL"


def _encodedSize(item: dict[str, Any]) -> int:
    # As amp.AmpBox.serialize writes it: a 16-bit length before each key
    # and value, an empty key at the end.
    size = 2
    for key, value in item.items():
        if value is not None:
            size += 4 + len(key) + len(str(value).encode("utf-8"))
    return size


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class ControlChannel:
    """
    What the control commands do, over this node's sessions and the store.

    @ivar sessions: the session registry.
    @ivar notifier: what closes sessions (L{ISessionNotifier}); the registry
        itself in one process.
    @ivar store: the account store (L{xmppcert.store.interfaces.IAccountStore},
        C{ICertificateStore}, and C{IAuditLog} where it has one).
    @ivar certificates: the certificate manager
        (L{xmppcert.certificates.ICertificateManager}), through which
        revocations end sessions.
    @ivar listeners: C{(kind, description)} of each listener, for L{status}.
    @ivar startedAt: when the server started (POSIX timestamp).
    @ivar version: the server's version, for L{status}.
    @ivar uid: the server's user id, since it started (after twistd switched
        to the server's user).
    @ivar actors: the audit trail's actor for the connections of each user
        that may connect (the server's user and root), by user id: looked
        up (a passwd look-up) once, when the server starts, not per
        connection.
    """

    def __init__(
        self,
        sessions: SessionManager,
        store: Any,
        clock: IReactorTime,
        listeners: Sequence[tuple[str, str]] = (),
        notifier: ISessionNotifier | None = None,
        certificates: ICertificateManager | None = None,
    ) -> None:
        """
        @param certificates: the server's certificate manager; one of the
            channel's own, over C{store} and C{notifier}, when C{None}.
        """
        self.sessions = sessions
        self.notifier: Any = notifier if notifier is not None else sessions
        self.store = store
        self.certificates: ICertificateManager = (
            certificates if certificates is not None
            else CertificateManager(store, clock, sessions, notifier=self.notifier)
        )
        self.clock = clock
        self.listeners = list(listeners)
        self.auditTrail = AuditTrail(store, clock, interval=FAILURE_LOG_INTERVAL)
        self._refusalLog = _log.RateLimitedLog(log, LogLevel.warn, clock, FAILURE_LOG_INTERVAL)
        self.started()

    def started(self) -> None:
        """
        The server started now (uptime counts from here), as the user it
        runs as.
        """
        self.startedAt = self.clock.seconds()
        self.version = version()
        self.uid = os.geteuid()
        self.actors = {uid: "control:" + userName(uid) for uid in {self.uid, 0}}

    def refused(self, uid: int) -> None:
        """
        A connection from user C{uid}, who may not connect, was dropped: a
        warning, at most one every L{FAILURE_LOG_INTERVAL} seconds (any
        local user can connect at will).
        """
        self._refusalLog.emit(
            "Refused a control connection from uid {uid}: only the server's user and root may connect", uid=uid
        )

    def status(self) -> dict[str, Any]:
        """
        The answer to L{Status}.
        """
        counts = Counter(
            (str(s.info.get("transport") or "tcp"), str(s.info.get("mechanism") or ""))
            for s in self.sessions.allSessions()
            if not s.closed
        )
        return {
            "version": self.version,
            "startedAt": self.startedAt,
            "uptime": max(0.0, self.clock.seconds() - self.startedAt),
            "listeners": [{"kind": kind, "description": text} for kind, text in self.listeners],
            "sessions": [
                {"transport": transport, "mechanism": mechanism, "count": count}
                for (transport, mechanism), count in sorted(counts.items())
            ],
        }

    async def listSessions(self, jid: str | None = None, after: str | None = None) -> dict[str, Any]:
        """
        The answer to L{Sessions}: a page of at most L{PAGE_MAX_ITEMS}
        sessions and L{PAGE_BUDGET} bytes.
        """
        if jid:
            target = _target(jid)
            if target.resource is not None:
                one = self.sessions.sessionFor(target)
                candidates = [] if one is None else [one]
            else:
                candidates = self.sessions.sessionsOf(target)
        else:
            candidates = list(self.sessions.allSessions())
        live = [s for s in candidates if not s.closed and (after is None or s.jid.full() > after)]
        page = heapq.nsmallest(PAGE_MAX_ITEMS, live, key=lambda s: s.jid.full())
        records: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        size = 0
        for session in page:
            item = await self._describe(session, records)
            itemSize = _encodedSize(item)
            if items and size + itemSize > PAGE_BUDGET:
                break
            items.append(item)
            size += itemSize
        return {"sessions": items, "more": len(items) < len(live)}

    async def _describe(self, session: Session, records: dict[str, Any]) -> dict[str, Any]:
        """
        @param records: the stored certificates looked up so far, by
            fingerprint.
        """
        info = session.info
        fingerprint = info.get("certificate") or None
        name = None
        if fingerprint is not None:
            if fingerprint not in records:
                records[fingerprint] = await self.store.certificateByFingerprint(fingerprint)
            stored = records[fingerprint]
            # Only the name the session's own account gave it.
            if stored is not None and stored.account == session.jid.userhost():
                name = stored.name
        boundAt = info.get("boundAt")
        return {
            "jid": session.jid.full(),
            "transport": str(info.get("transport") or "tcp"),
            "address": str(info.get("address") or ""),
            "mechanism": str(info.get("mechanism") or ""),
            "fingerprint": fingerprint,
            "certificate": name,
            "boundAt": float(boundAt) if boundAt is not None else None,
        }

    async def kick(self, jid: str, actor: str, byUser: bool = False) -> int:
        """
        End the sessions of C{jid} with L{kickedError}; recorded as
        C{session.kick}.

        @param byUser: the account's user ends them (from another of its
            sessions), not an administrator: the client is told so.
        @return: how many ended.
        """
        target = _target(jid)
        why = kickedError("Ended from another session of this account") if byUser else kickedError()
        closed = self.notifier.closeSessionsOf(target, why)
        log.info("{actor} ended {count} of {jid}", actor=actor, count=_plural(closed, "session"), jid=target.full())
        await self._audit(actor, "session.kick", target.userhost(), f"{target.full()}: {_plural(closed, 'session')} ended")
        return int(closed)

    async def lock(self, jid: str, locked: bool, actor: str) -> int:
        """
        Lock or unlock an account in the store; a lock ends its sessions
        with L{accountLockedError} and keeps its logins in progress from
        binding. Recorded as C{user.lock} or C{user.unlock}.

        @return: how many sessions ended.
        @raise NoSuchAccount: there is no such account.
        """
        account = _target(jid, bare=True)
        await self.store.setAccountLocked(account.userhost(), locked)
        closed = 0
        if locked:
            closed = int(self.notifier.closeSessionsOf(account, accountLockedError(), barLogins=True))
        what = "locked" if locked else "unlocked"
        log.info("{actor} {what} {jid}", actor=actor, what=what, jid=account.userhost())
        detail = f"{_plural(closed, 'live session')} ended" if locked else ""
        await self._audit(actor, "user.lock" if locked else "user.unlock", account.userhost(), detail)
        return closed

    async def passwordChanged(self, jid: str, actor: str) -> int:
        """
        End the password sessions of C{jid} with L{passwordChangedError},
        and keep its password logins in progress (checked against the old
        password) from binding; recorded as C{session.kick} when any ended.

        @return: how many ended.
        """
        account = _target(jid, bare=True)
        closed = int(
            self.notifier.closeSessionsOf(account, passwordChangedError(), where=_isPasswordSession, barLogins=True)
        )
        if closed:
            log.info(
                "{actor} changed the password of {jid}: {count} ended",
                actor=actor, jid=account.userhost(), count=_plural(closed, "password session"),
            )
            await self._audit(
                actor, "session.kick", account.userhost(),
                f"password changed: {_plural(closed, 'password session')} ended",
            )
        return closed

    async def certificateRevoked(self, fingerprint: str, actor: str) -> int:
        """
        End the sessions of a certificate the store says is revoked.

        @return: how many ended.
        @raise NotRevoked: the store does not say so.
        """
        try:
            closed = int(await self.certificates.endRevokedSessions(fingerprint))
        except CertificateNotRevoked as e:
            raise NotRevoked(str(e)) from None
        except StoreUnavailable as e:
            # Answered as any store failure of the channel.
            raise e.cause from None
        log.info(
            "{actor} revoked certificate {fingerprint}: {count} ended",
            actor=actor, fingerprint=fingerprint.strip().lower(), count=_plural(closed, "session"),
        )
        return closed

    async def _audit(self, actor: str, action: str, target: str, detail: str) -> None:
        """
        Record a change in the audit trail (if the store keeps one). A
        failure here does not fail the command, which took effect: it is
        logged at warn (at most once every L{FAILURE_LOG_INTERVAL} seconds).
        """
        await self.auditTrail.record(actor, action, target, detail)


class ControlProtocol(amp.AMP):
    """
    One connection to the control channel.

    @ivar actor: who is connected, for the audit trail: C{control:<user>}.
    """

    factory: ControlFactory | None = None

    def __init__(self, channel: ControlChannel) -> None:
        super().__init__()
        self.channel = channel
        self.actor = channel.actors[channel.uid]

    def connectionMade(self) -> None:
        super().connectionMade()
        uid = peerUID(self.transport)
        if uid is not None and uid not in self.channel.actors:
            self.channel.refused(uid)
            transport: Any = self.transport
            transport.abortConnection()
            return
        if uid is not None:
            self.actor = self.channel.actors[uid]
        if self.factory is not None:
            self.factory.connections.add(self)

    def connectionLost(self, reason: failure.Failure) -> None:  # type: ignore[override]
        if self.factory is not None:
            self.factory.connections.discard(self)
        super().connectionLost(reason)

    @Status.responder
    def _status(self) -> dict[str, Any]:
        return self.channel.status()

    @Sessions.responder
    def _sessions(self, jid: str | None = None, after: str | None = None) -> defer.Deferred[dict[str, Any]]:
        return defer.ensureDeferred(self.channel.listSessions(jid, after))

    @Kick.responder
    def _kick(self, jid: str) -> defer.Deferred[dict[str, Any]]:
        return self._count(self.channel.kick(jid, self.actor))

    @Lock.responder
    def _lock(self, jid: str, locked: bool) -> defer.Deferred[dict[str, Any]]:
        return self._count(self.channel.lock(jid, locked, self.actor))

    @PasswordChanged.responder
    def _passwordChanged(self, jid: str) -> defer.Deferred[dict[str, Any]]:
        return self._count(self.channel.passwordChanged(jid, self.actor))

    @CertificateRevoked.responder
    def _certificateRevoked(self, fingerprint: str) -> defer.Deferred[dict[str, Any]]:
        return self._count(self.channel.certificateRevoked(fingerprint, self.actor))

    def _count(self, coroutine: Any) -> defer.Deferred[dict[str, Any]]:
        d = defer.ensureDeferred(coroutine)
        d.addCallback(lambda count: {"sessions": count})
        return d


class ControlFactory(protocol.ServerFactory):
    """
    Builds L{ControlProtocol}s and keeps the open ones, to close them when
    the channel stops.
    """

    def __init__(self, channel: ControlChannel) -> None:
        self.channel = channel
        self.connections: set[ControlProtocol] = set()

    def buildProtocol(self, addr: Any) -> Any:
        p = ControlProtocol(self.channel)
        p.factory = self
        return p


def clearStaleSocket(path: Path) -> str | None:
    """
    Remove a socket file that nothing listens on any more (a server that
    did not stop cleanly left it).

    @return: why the channel must not listen at C{path} (something listens
        there, or it is not a socket), or C{None}.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(mode):
        return f"{path} exists and is not a socket"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        os.unlink(path)
        log.info("Removed the stale control socket {path}", path=str(path))
        return None
    except OSError as e:
        return f"cannot check {path}: {e.strerror or e}"
    finally:
        probe.close()
    return f"another process listens on {path} (is another server running on this data directory?)"


class ControlService(StreamServerEndpointService):
    """
    Listens on the control socket, mode 0600, while the server runs; the
    socket file goes when it stops.

    It listens in L{startService}, not L{privilegedStartService}: after
    twistd switched to the server's user (C{-u}), so that user owns the
    socket. A control socket that cannot be had is logged (the server runs
    on without the channel; the command line then works through the store).
    """

    factory: ControlFactory

    def __init__(self, path: Path, channel: ControlChannel, reactor: Any) -> None:
        self.path = path
        self.channel = channel
        endpoint = endpoints.UNIXServerEndpoint(reactor, str(path), mode=0o600, wantPID=False)
        super().__init__(endpoint, ControlFactory(channel))

    def privilegedStartService(self) -> None:
        service.Service.privilegedStartService(self)

    def startService(self) -> None:
        service.Service.startService(self)
        self.channel.started()
        problem = clearStaleSocket(self.path)
        if problem is not None:
            log.error("The control channel is off: {problem}", problem=problem)
            self._waitingForPort = defer.succeed(None)
            return
        d = self.endpoint.listen(self.factory)
        d.addCallbacks(self._listening, self._cannotListen)
        self._waitingForPort = d

    def _listening(self, port: Any) -> Any:
        log.info("Control channel on {path}", path=str(self.path))
        return port

    def _cannotListen(self, f: failure.Failure) -> None:
        log.error(
            "The control channel is off: cannot listen on {path}: {why}", path=str(self.path), why=f.getErrorMessage()
        )

    def stopService(self) -> defer.Deferred[None]:
        for connection in list(self.factory.connections):
            transport: Any = connection.transport
            transport.loseConnection()
        d: defer.Deferred[None] = super().stopService()
        return d


class ControlClient:
    """
    A blocking client of the control channel, for the command line; see the
    module docstring for the wire.
    """

    def __init__(self, sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._socket = sock
        self._socket.settimeout(timeout)
        self._timeout = timeout
        self._reader = sock.makefile("rb")
        self._tag = 0

    @classmethod
    def connect(cls, path: Path, timeout: float = DEFAULT_TIMEOUT) -> ControlClient:
        """
        @raise ServerNotRunning: nothing listens at C{path}.
        @raise ControlError: it cannot be reached (e.g. no permission).
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise ServerNotRunning(f"the server is not running (nothing listens on {path})") from None
        except PermissionError:
            sock.close()
            raise ControlError(
                f"cannot reach the server through {path}: permission denied (run this as the server's user)"
            ) from None
        except OSError as e:
            sock.close()
            raise ControlError(f"cannot reach the server through {path}: {e.strerror or e}") from None
        return cls(sock, timeout)

    def close(self) -> None:
        self._reader.close()
        self._socket.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, command: type[amp.Command], **arguments: Any) -> dict[str, Any]:
        """
        Send C{command} and wait for its answer.

        @return: the answer's values by name.
        @raise ControlError: the server refused (a declared error comes as
            its own type, e.g. L{InvalidJID} or L{NoSuchAccount}), failed,
            or did not answer in time.
        """
        self._tag += 1
        tag = str(self._tag).encode("ascii")
        box = command.makeArguments(arguments, None)
        box[amp.COMMAND] = command.commandName
        box[amp.ASK] = tag
        try:
            self._socket.sendall(box.serialize())
            answer = self._readBox()
        except TimeoutError:
            raise ControlError(f"the server did not answer within {self._timeout:g} seconds") from None
        except (ConnectionError, OSError) as e:
            raise ControlError(f"the control connection failed: {e.strerror or e}") from None
        if answer.get(amp.ANSWER) == tag:
            result: dict[str, Any] = command.parseResponse(answer, None)
            return result
        if answer.get(amp.ERROR) == tag:
            code = answer.get(amp.ERROR_CODE, b"")
            description = answer.get(amp.ERROR_DESCRIPTION, b"").decode("utf-8", "replace")
            for exceptionType, errorCode in command.errors.items():
                if errorCode == code:
                    raise exceptionType(description)
            raise ControlError(f"the server could not do it ({description}); its log says why")
        raise ControlError("the server's answer is not one to this question")

    def _readExactly(self, count: int) -> bytes:
        data = self._reader.read(count)
        if data is None or len(data) < count:
            raise ControlError("the server closed the control connection")
        return bytes(data)

    def _readBox(self) -> dict[bytes, bytes]:
        box: dict[bytes, bytes] = amp.AmpBox()
        while True:
            (keyLength,) = struct.unpack("!H", self._readExactly(2))
            if keyLength == 0:
                return box
            if keyLength > amp.MAX_KEY_LENGTH or len(box) >= MAX_BOX_KEYS:
                raise ControlError("the server's answer is not an AMP box")
            key = self._readExactly(keyLength)
            (valueLength,) = struct.unpack("!H", self._readExactly(2))
            box[key] = self._readExactly(valueLength)


__all__ = [
    "CertificateRevoked",
    "ControlChannel",
    "ControlClient",
    "ControlError",
    "ControlFactory",
    "ControlProtocol",
    "ControlService",
    "InvalidJID",
    "Kick",
    "Lock",
    "NotRevoked",
    "PasswordChanged",
    "ServerNotRunning",
    "Sessions",
    "Status",
    "clearStaleSocket",
    "peerUID",
    "userName",
]
