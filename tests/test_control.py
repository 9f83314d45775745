# -*- test-case-name: tests.test_control -*-
"""
Tests for L{xmppcert.control}, the admin control channel, and the commands
that use it (L{xmppcert.cli.server}, C{user lock|unlock|passwd}, C{cert
revoke}): the channel over a L{SessionManager} with recorded sessions, the
AMP protocol in memory, the blocking client against the real listener on a
UNIX socket, and the command line against a channel over the same SQLite
file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import socket
import stat
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import defer, reactor, task, threads
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial import unittest
from twisted.words.protocols.jabber import jid

import xmppcert
from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    FakeClient,
    addAccount,
    bindSession,
    failureOf,
    resultOf,
)
from xmppcert import cli, x509
from xmppcert.cli.server import formatDuration
from xmppcert.config import loadConfig
from xmppcert.control import (
    FAILURE_LOG_INTERVAL,
    PAGE_BUDGET,
    CertificateRevoked,
    ControlChannel,
    ControlClient,
    ControlProtocol,
    ControlService,
    InvalidJID,
    Kick,
    Lock,
    NotRevoked,
    ServerNotRunning,
    Sessions,
    Status,
    peerUID,
    userName,
)
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import AuditEntry, NoSuchAccount, StoreError
from xmppcert.store.sqlite import SQLiteDatabase, SQLiteStore
from xmppcert.testing import InMemoryAccountStore

#: The clock's start, a POSIX timestamp.
START = 1_740_830_400.0

#: The audit trail's actor for connections from this test's own user.
ME = "control:" + userName(os.geteuid())


def fp(label: str) -> str:
    """
    A well-formed SHA-256 fingerprint for a made-up certificate.
    """
    return hashlib.sha256(label.encode()).hexdigest()


@dataclass
class Env:
    clock: task.Clock
    store: InMemoryAccountStore
    sessions: SessionManager
    channel: ControlChannel


def makeEnv() -> Env:
    """
    A channel over a SessionManager and a store with ALICE and BOB, at START.
    """
    clock = task.Clock()
    clock.advance(START)
    store = InMemoryAccountStore(clock=clock.seconds)
    for account in (ALICE, BOB):
        addAccount(store, account)
    sessions = SessionManager((DOMAIN,), store)
    listeners = [("starttls", "tcp:5222"), ("direct_tls", "tcp:5223"), ("control", "/srv/xmpp/control.sock")]
    return Env(clock, store, sessions, ControlChannel(sessions, store, clock, listeners))


def bind(
    sessions: SessionManager,
    fullJID: str,
    mechanism: str = "PLAIN",
    fingerprint: str | None = None,
    boundAt: float = START,
    address: str = "192.0.2.7:40000",
) -> FakeClient:
    """
    Bind a session with the facts C{C2SAuthenticator.bound} records.
    """
    session, client = bindSession(sessions, fullJID)
    session.info.update(
        mechanism=mechanism,
        certificate=fingerprint,
        certificateRegistered=fingerprint is not None,
        transport="tcp",
        address=address,
        boundAt=boundAt,
    )
    return client


def register(store: InMemoryAccountStore, account: str, name: str) -> str:
    fingerprint = fp(f"{account}/{name}")
    resultOf(store.addCertificate(account, name, b"der", fingerprint, START + 86400))
    return fingerprint


def closes(client: FakeClient) -> list[tuple[str, str | None]]:
    return [(e.condition, e.text) for e in client.closes]


# --- the channel ------------------------------------------------------------


def test_status() -> None:
    """
    `xmppcert status`: the version, the uptime by the injected clock, the
    listeners, and the live sessions counted by transport and mechanism.
    """
    env = makeEnv()
    env.channel.started()
    env.clock.advance(90)
    bind(env.sessions, f"{ALICE}/phone", "EXTERNAL", fp("a"))
    bind(env.sessions, f"{BOB}/phone", "EXTERNAL", fp("b"))
    bind(env.sessions, f"{ALICE}/desk", "SCRAM-SHA-256")
    status = env.channel.status()
    assert status["version"] == xmppcert.__version__
    assert (status["startedAt"], status["uptime"]) == (START, 90)
    assert status["listeners"][0] == {"kind": "starttls", "description": "tcp:5222"}
    assert status["listeners"][-1]["kind"] == "control"
    assert status["sessions"] == [
        {"transport": "tcp", "mechanism": "EXTERNAL", "count": 2},
        {"transport": "tcp", "mechanism": "SCRAM-SHA-256", "count": 1},
    ]


def test_sessionsDescribed() -> None:
    """
    `xmppcert sessions`: full JID, transport, address, mechanism, the
    certificate's fingerprint and its name registered to that account (none
    for another account's or an unregistered one), since when; sorted by
    JID, all of them, those of an account, or one.
    """
    env = makeEnv()
    phone = register(env.store, ALICE, "Phone")
    bind(env.sessions, f"{ALICE}/phone", "EXTERNAL", phone, boundAt=START + 5)
    bind(env.sessions, f"{ALICE}/desk", "PLAIN", address="[2001:db8::7]:40000")
    bind(env.sessions, f"{BOB}/laptop", "EXTERNAL", phone)
    bind(env.sessions, f"{BOB}/tablet", "EXTERNAL", fp("issued by a CA"))
    answer = resultOf(env.channel.listSessions())
    assert answer["more"] is False
    found = answer["sessions"]
    assert [s["jid"] for s in found] == [f"{ALICE}/desk", f"{ALICE}/phone", f"{BOB}/laptop", f"{BOB}/tablet"]
    assert found[1] == {
        "jid": f"{ALICE}/phone",
        "transport": "tcp",
        "address": "192.0.2.7:40000",
        "mechanism": "EXTERNAL",
        "fingerprint": phone,
        "certificate": "Phone",
        "boundAt": START + 5,
    }
    assert (found[0]["address"], found[0]["fingerprint"], found[0]["certificate"]) == (
        "[2001:db8::7]:40000", None, None,
    )
    assert found[2]["certificate"] is None and found[3]["certificate"] is None
    assert [s["jid"] for s in resultOf(env.channel.listSessions(ALICE))["sessions"]] == [
        f"{ALICE}/desk", f"{ALICE}/phone",
    ]
    assert [s["jid"] for s in resultOf(env.channel.listSessions(f"{BOB}/tablet"))["sessions"]] == [f"{BOB}/tablet"]
    assert resultOf(env.channel.listSessions(f"{BOB}/nowhere"))["sessions"] == []
    assert failureOf(env.channel.listSessions("example.com"), InvalidJID)


def test_sessionsPaged() -> None:
    """
    AMP values hold at most 65535 bytes: a long session list comes in
    pages, each within the limit once encoded, which the C{after} cursor
    walks through without gaps or repeats.
    """
    env = makeEnv()
    resources = [f"{i:03d}" + "r" * 1000 for i in range(120)]
    for resource in resources:
        bind(env.sessions, f"{ALICE}/{resource}")
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        answer = resultOf(env.channel.listSessions(None, after))
        pages += 1
        box = Sessions.makeResponse(answer, None)
        assert len(box[b"sessions"]) <= PAGE_BUDGET
        box.serialize()  # raises TooLong beyond 65535 bytes a value
        seen += [s["jid"] for s in answer["sessions"]]
        if not answer["more"]:
            break
        after = seen[-1]
    assert pages >= 2
    assert seen == [f"{ALICE}/{r}" for r in resources]


def test_kick() -> None:
    """
    `xmppcert kick`: a full JID ends that session, a bare JID every session
    of the account, at once, with policy-violation (RFC 6120 §4.9.3.14);
    each kick is in the audit trail as session.kick by the actor.
    """
    env = makeEnv()
    phone = bind(env.sessions, f"{ALICE}/phone")
    desk = bind(env.sessions, f"{ALICE}/desk")
    bob = bind(env.sessions, f"{BOB}/desk")
    assert resultOf(env.channel.kick(f"{ALICE}/phone", "control:operator")) == 1
    assert closes(phone) == [("policy-violation", "Ended by an administrator")]
    assert desk.closes == []
    assert resultOf(env.channel.kick(ALICE, "control:operator")) == 1
    assert len(desk.closes) == 1 and bob.closes == []
    assert resultOf(env.channel.kick(ALICE, "control:operator")) == 0
    assert env.store.audit == [
        AuditEntry(START, "control:operator", "session.kick", ALICE, f"{ALICE}/phone: 1 session ended"),
        AuditEntry(START, "control:operator", "session.kick", ALICE, f"{ALICE}: 1 session ended"),
        AuditEntry(START, "control:operator", "session.kick", ALICE, f"{ALICE}: 0 sessions ended"),
    ]


@pytest.mark.parametrize("text", ["example.com", "", "alice@", "alice@example.com/"])
def test_kickInvalidJID(text: str) -> None:
    """
    A kick must name an account (user@domain, with a resource or not);
    anything else is InvalidJID, and nothing is recorded.
    """
    env = makeEnv()
    failureOf(env.channel.kick(text, ME), InvalidJID)
    assert env.store.audit == []


def test_lockAndUnlock() -> None:
    """
    `xmppcert user lock`: the store's flag is set, the account's sessions
    end at once with not-authorized, and its logins in progress cannot bind;
    unlock clears the flag and ends nothing. Both are in the audit trail.
    """
    env = makeEnv()
    mark = env.sessions.revocationMark()
    phone = bind(env.sessions, f"{ALICE}/phone", "EXTERNAL", fp("phone"))
    desk = bind(env.sessions, f"{ALICE}/desk")
    bob = bind(env.sessions, f"{BOB}/desk")
    assert resultOf(env.channel.lock(ALICE, True, ME)) == 2
    assert resultOf(env.store.isAccountLocked(ALICE))
    assert closes(phone) == closes(desk) == [("not-authorized", "This account was locked by an administrator")]
    assert bob.closes == []
    assert env.sessions.barredSince(jid.JID(f"{ALICE}/later"), mark) is not None
    assert resultOf(env.channel.lock(ALICE, False, ME)) == 0
    assert not resultOf(env.store.isAccountLocked(ALICE))
    assert [(e.actor, e.action, e.target, e.detail) for e in env.store.audit] == [
        (ME, "user.lock", ALICE, "2 live sessions ended"),
        (ME, "user.unlock", ALICE, ""),
    ]


def test_lockRefusals() -> None:
    """
    A lock names an existing account by its bare JID: an unknown account is
    NoSuchAccount, a full JID InvalidJID; neither is recorded.
    """
    env = makeEnv()
    failureOf(env.channel.lock("carol@example.com", True, ME), NoSuchAccount)
    failureOf(env.channel.lock(f"{ALICE}/phone", True, ME), InvalidJID)
    assert env.store.audit == [] and env.store.locked == set()


def test_passwordChanged() -> None:
    """
    `xmppcert user passwd`: the account's password sessions (every
    mechanism but EXTERNAL) end with reset (RFC 6120 §4.9.3.16: the
    credentials changed); certificate sessions stay. Recorded when it ended
    any.
    """
    env = makeEnv()
    phone = bind(env.sessions, f"{ALICE}/phone", "EXTERNAL", fp("phone"))
    desk = bind(env.sessions, f"{ALICE}/desk", "SCRAM-SHA-256")
    laptop = bind(env.sessions, f"{ALICE}/laptop", "PLAIN")
    assert resultOf(env.channel.passwordChanged(ALICE, ME)) == 2
    assert closes(desk) == closes(laptop) == [("reset", "The password of this account was changed")]
    assert phone.closes == []
    assert resultOf(env.channel.passwordChanged(ALICE, ME)) == 0
    assert [(e.action, e.detail) for e in env.store.audit] == [
        ("session.kick", "password changed: 2 password sessions ended"),
    ]


def test_passwordChangedBarsLoginsInProgress() -> None:
    """
    `xmppcert user passwd`: a password login checked against the old
    password before the change must not bind after it (barredSince gives
    reset for it); a certificate login in progress may, and a login checked
    after the change too.
    """
    env = makeEnv()
    mark = env.sessions.revocationMark()
    resultOf(env.channel.passwordChanged(ALICE, ME))
    later = jid.JID(f"{ALICE}/later")
    barred = env.sessions.barredSince(later, mark, {"mechanism": "SCRAM-SHA-256"})
    assert barred is not None and (barred.condition, barred.text) == (
        "reset", "The password of this account was changed",
    )
    assert env.sessions.barredSince(later, mark, {"mechanism": "EXTERNAL"}) is None
    assert env.sessions.barredSince(later, env.sessions.revocationMark(), {"mechanism": "PLAIN"}) is None
    assert env.sessions.barredSince(jid.JID(f"{BOB}/later"), mark, {"mechanism": "PLAIN"}) is None


def test_auditFailureDoesNotFailCommands() -> None:
    """
    A command that took effect succeeds even when its audit record cannot
    be written (the store is locked): kick, lock and passwd answer their
    counts, not STORE_ERROR; the failure is a warning, at most one a minute
    (FAILURE_LOG_INTERVAL), saying how many were left out.
    """
    env = makeEnv()

    def recordAudit(*args: object) -> defer.Deferred[None]:
        return defer.fail(StoreError("database is locked"))

    env.store.recordAudit = recordAudit  # type: ignore[method-assign,assignment]
    bind(env.sessions, f"{ALICE}/phone")
    bind(env.sessions, f"{BOB}/desk")
    bind(env.sessions, f"{BOB}/phone", "SCRAM-SHA-256")
    with capturedLogs() as events:
        assert resultOf(env.channel.kick(f"{ALICE}/phone", ME)) == 1
        assert resultOf(env.channel.passwordChanged(BOB, ME)) == 2
        assert resultOf(env.channel.lock(ALICE, True, ME)) == 0
    assert resultOf(env.store.isAccountLocked(ALICE))
    warnings = [e for e in events if e["log_level"] == LogLevel.warn]
    assert len(warnings) == 1
    assert (warnings[0]["action"], warnings[0]["target"]) == ("session.kick", ALICE)
    assert "database is locked" in warnings[0]["error"]
    env.clock.advance(FAILURE_LOG_INTERVAL)
    with capturedLogs() as events:
        assert resultOf(env.channel.lock(ALICE, False, ME)) == 0
    [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
    assert (warning["action"], warning["suppressed"]) == ("user.unlock", 2)


def test_versionOnce(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """
    One version everywhere: `xmppcert --version` and `xmppcert status` say
    xmppcert.version() (__version__), whatever stale package metadata an
    editable install has; the server looks it up once, at start, not per
    status.
    """
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.0.stale")
    env = makeEnv()
    assert xmppcert.version() == xmppcert.__version__
    assert env.channel.status()["version"] == xmppcert.__version__
    with pytest.raises(SystemExit):
        cli.buildParser().parse_args(["--version"])
    assert capsys.readouterr().out == f"xmppcert {xmppcert.__version__}\n"

    def lookedUp() -> str:
        raise AssertionError("the version was looked up again")

    monkeypatch.setattr("xmppcert.control.version", lookedUp)
    assert env.channel.status()["version"] == xmppcert.__version__


def test_certificateRevoked() -> None:
    """
    `xmppcert cert revoke` through the channel: the sessions of a
    certificate the store says is revoked end at once with reset; the
    channel acts on nothing the store does not say.
    """
    env = makeEnv()
    phone = register(env.store, ALICE, "Phone")
    client = bind(env.sessions, f"{ALICE}/phone", "EXTERNAL", phone)
    failureOf(env.channel.certificateRevoked(phone, ME), NotRevoked)
    assert client.closes == []
    resultOf(env.store.setCertificateStateByFingerprint(phone, "revoked"))
    assert resultOf(env.channel.certificateRevoked(phone.upper(), ME)) == 1
    assert closes(client) == [("reset", "The certificate of this session was revoked")]


# --- the AMP protocol ---------------------------------------------------------


def connectAMP(env: Env) -> tuple[amp.AMP, ControlProtocol, iosim.IOPump]:
    return iosim.connectedServerAndClient(lambda: ControlProtocol(env.channel), amp.AMP)


def outcomeOf(d: defer.Deferred[Any], pump: iosim.IOPump) -> Any:
    """
    The answer to a remote call once the pump delivered it: the result, or
    the failure (caught before AMP would drop the connection over it).
    """
    outcomes: list[Any] = []
    d.addBoth(outcomes.append)
    pump.flush()
    assert len(outcomes) == 1
    return outcomes[0]


def test_ampCommands() -> None:
    """
    AMP: each command's arguments and answer cross the wire with the
    declared types, and its declared errors come back as their own types.
    """
    env = makeEnv()
    bind(env.sessions, f"{ALICE}/phone")
    client, server, pump = connectAMP(env)
    assert outcomeOf(client.callRemote(Status), pump)["sessions"] == [
        {"transport": "tcp", "mechanism": "PLAIN", "count": 1}
    ]
    page = outcomeOf(client.callRemote(Sessions, jid=ALICE), pump)
    assert [s["jid"] for s in page["sessions"]] == [f"{ALICE}/phone"] and page["more"] is False
    assert outcomeOf(client.callRemote(Kick, jid=ALICE), pump) == {"sessions": 1}
    assert outcomeOf(client.callRemote(Kick, jid="example.com"), pump).check(InvalidJID)
    assert outcomeOf(client.callRemote(Lock, jid="carol@example.com", locked=True), pump).check(NoSuchAccount)
    assert outcomeOf(client.callRemote(CertificateRevoked, fingerprint=fp("x")), pump).check(NotRevoked)
    # Without peer credentials (no real socket), the server's own user acts.
    assert server.actor == ME
    assert env.store.audit[0].actor == ME


class PeerSocket:
    """
    What C{getHandle()} returns: a socket that tells its peer's uid.
    """

    def __init__(self, uid: int) -> None:
        self.uid = uid

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_PEERCRED)
        return struct.pack("3i", 4242, self.uid, 0)


class PeerTransport(StringTransport):
    def __init__(self, uid: int) -> None:
        super().__init__()
        self.handle = PeerSocket(uid)

    def getHandle(self) -> PeerSocket:
        return self.handle


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="the system does not tell a UNIX socket's peer")
def test_peerCredentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Only the server's own user (and root) may use the channel, whatever
    the socket file's mode was for a moment; the peer's user is the actor
    of the audit trail, whose name was looked up once, at start, not per
    connection. Another user is dropped, with a warning.
    """
    assert peerUID(PeerTransport(1234)) == 1234
    env = makeEnv()
    monkeypatch.setattr("xmppcert.control.userName", lambda uid: pytest.fail("a user name was looked up"))
    own = ControlProtocol(env.channel)
    own.makeConnection(PeerTransport(os.geteuid()))
    assert own.actor == ME and not own.transport.disconnecting  # type: ignore[union-attr]
    root = ControlProtocol(env.channel)
    root.makeConnection(PeerTransport(0))
    assert root.actor == "control:" + userName(0)
    other = os.geteuid() + 1 if os.geteuid() + 1 != 0 else 2
    stranger = ControlProtocol(env.channel)
    with capturedLogs() as events:
        stranger.makeConnection(PeerTransport(other))
    assert stranger.transport.disconnecting  # type: ignore[union-attr]
    warnings = [e for e in events if e.get("log_level") == LogLevel.warn]
    assert len(warnings) == 1 and "Refused a control connection" in warnings[0]["log_format"]
    assert warnings[0]["uid"] == other


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="the system does not tell a UNIX socket's peer")
def test_refusalsRateLimited() -> None:
    """
    A refused control connection is a warning at most once a minute
    (FAILURE_LOG_INTERVAL): any local user can connect at will and must not
    flood the log; the next warning says how many were left out.
    """
    env = makeEnv()
    other = os.geteuid() + 1 if os.geteuid() + 1 != 0 else 2
    strangers = [ControlProtocol(env.channel) for _ in range(4)]
    with capturedLogs() as events:
        for stranger in strangers[:3]:
            stranger.makeConnection(PeerTransport(other))
        env.clock.advance(FAILURE_LOG_INTERVAL)
        strangers[3].makeConnection(PeerTransport(other))
    assert all(s.transport.disconnecting for s in strangers)  # type: ignore[union-attr]
    warnings = [e for e in events if e.get("log_level") == LogLevel.warn]
    assert [w["suppressed"] for w in warnings] == [0, 2]


# --- the listener and the blocking client on a real UNIX socket -------------


def bindStale(path: Path) -> None:
    """
    Leave a socket file at C{path} that nothing listens on, as a server
    that did not stop cleanly does.
    """
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()


class ListenerTests(unittest.TestCase):
    """
    L{ControlService} on the real reactor, L{ControlClient} in a thread.
    """

    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.path = directory / "control.sock"
        self.env = makeEnv()
        self.service = ControlService(self.path, self.env.channel, reactor)

    async def start(self) -> Any:
        self.service.startService()
        self.addCleanup(self.service.stopService)
        return await cast(Any, self.service)._waitingForPort

    def call(self, command: type[amp.Command], **arguments: Any) -> defer.Deferred[dict[str, Any]]:
        def run() -> dict[str, Any]:
            with ControlClient.connect(self.path, timeout=10) as client:
                return client.call(command, **arguments)

        return threads.deferToThread(run)

    async def test_socketPrivateAndRemovedAtStop(self) -> None:
        """
        The control socket is a socket file of mode 0600 while the server
        runs; it is gone once the channel stopped.
        """
        assert await self.start() is not None
        mode = os.stat(self.path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        await self.service.stopService()
        assert not self.path.exists()

    async def test_clientRoundTrip(self) -> None:
        """
        The blocking client speaks AMP's wire format: answers come typed,
        declared errors as their own exception types.
        """
        await self.start()
        client = bind(self.env.sessions, f"{ALICE}/phone")
        status = await self.call(Status)
        assert status["version"] == xmppcert.__version__
        assert [s["jid"] for s in (await self.call(Sessions))["sessions"]] == [f"{ALICE}/phone"]
        assert await self.call(Kick, jid=f"{ALICE}/phone") == {"sessions": 1}
        assert closes(client) == [("policy-violation", "Ended by an administrator")]
        with pytest.raises(NoSuchAccount):
            await self.call(Lock, jid="carol@example.com", locked=True)
        with pytest.raises(InvalidJID):
            await self.call(Kick, jid="example.com")

    async def test_staleSocketRemoved(self) -> None:
        """
        A socket file nothing listens on (left by a server that did not
        stop cleanly) is removed at start and the channel listens; until
        then a client is told that the server is not running.
        """
        bindStale(self.path)
        with pytest.raises(ServerNotRunning):
            ControlClient.connect(self.path)
        with capturedLogs() as events:
            assert await self.start() is not None
        assert any("Removed the stale control socket" in e.get("log_format", "") for e in events)
        assert (await self.call(Status))["version"] == xmppcert.__version__

    async def test_otherListenerKept(self) -> None:
        """
        When something else listens on the socket (another server on the
        same data directory), the channel stays off, says so at error
        level, and leaves the other's socket alone.
        """
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(self.path))
        other.listen(1)
        self.addCleanup(other.close)
        with capturedLogs() as events:
            assert await self.start() is None
        errors = [e for e in events if e.get("log_level") == LogLevel.error]
        assert len(errors) == 1 and "another process listens" in errors[0]["problem"]
        await self.service.stopService()
        assert stat.S_ISSOCK(os.stat(self.path).st_mode)

    def test_notRunning(self) -> None:
        """
        Without a socket file the client says the server is not running.
        """
        with pytest.raises(ServerNotRunning):
            ControlClient.connect(self.path)


# --- the command line with a running server -----------------------------------


class CommandLineTests(unittest.TestCase):
    """
    The C{xmppcert} commands (in a thread) against a channel over the same
    SQLite file, as with a running server.
    """

    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.dataDir = directory / "var"
        self.configPath = self.dataDir / "xmppcert.toml"
        assert self.cli("init", "--data-dir", str(self.dataDir), "--domain", DOMAIN)[0] == 0
        for account in (ALICE, BOB):
            assert self.cli("user", "add", account, stdin="secret\n")[0] == 0
        self.config = loadConfig(self.configPath)
        self.store = SQLiteStore(self.config.store.sqlite, reactor=reactor)
        self.addCleanup(self.store.close)
        self.sessions = SessionManager(self.config.domains, self.store)
        assert self.config.control.socket is not None
        channel = ControlChannel(self.sessions, self.store, reactor)
        self.service = ControlService(self.config.control.socket, channel, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def cli(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        """
        Run C{xmppcert --config ... ARGS}; return the status, stdout and
        stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(["--config", str(self.configPath), *args])
        finally:
            sys.stdin = saved
        return code, out.getvalue(), err.getvalue()

    def cliInThread(self, *args: str, stdin: str = "") -> defer.Deferred[tuple[int, str, str]]:
        # The channel answers on the reactor thread meanwhile.
        return threads.deferToThread(self.cli, *args, stdin=stdin)

    def auditTrail(self, account: str) -> list[AuditEntry]:
        database = SQLiteDatabase.open(self.config.store.sqlite)
        try:
            return database.auditTrail(account)
        finally:
            database.close()

    async def test_statusAndSessions(self) -> None:
        """
        `xmppcert status` and `xmppcert sessions` show a logged-in session:
        its counts, JID, transport, address, mechanism and since when.
        """
        await cast(Any, self.service)._waitingForPort
        bind(self.sessions, f"{ALICE}/desk", "SCRAM-SHA-256", boundAt=START)
        code, out, err = await self.cliInThread("status")
        assert code == 0, err
        assert f"version: {xmppcert.__version__}" in out
        assert "sessions: 1" in out and "SCRAM-SHA-256" in out
        code, out, err = await self.cliInThread("sessions")
        assert code == 0, err
        header, row = out.splitlines()
        assert header.split() == ["JID", "TRANSPORT", "ADDRESS", "MECHANISM", "CERTIFICATE", "SINCE"]
        assert row.split()[:5] == [f"{ALICE}/desk", "tcp", "192.0.2.7:40000", "SCRAM-SHA-256", "-"]
        assert row.endswith("2025-03-01 12:00 UTC")
        code, out, _ = await self.cliInThread("sessions", BOB)
        assert (code, out) == (0, f"no sessions of {BOB}\n")

    async def test_kick(self) -> None:
        """
        `xmppcert kick JID/resource` ends that session at once and says how
        many ended; the audit trail names the operator's user.
        """
        await cast(Any, self.service)._waitingForPort
        desk = bind(self.sessions, f"{ALICE}/desk")
        phone = bind(self.sessions, f"{ALICE}/phone")
        code, out, err = await self.cliInThread("kick", f"{ALICE}/desk")
        assert (code, out) == (0, f"ended 1 session of {ALICE}/desk\n"), err
        assert [e.condition for e in desk.closes] == ["policy-violation"] and phone.closes == []
        entry = self.auditTrail(ALICE)[-1]
        assert (entry.actor, entry.action) == (ME, "session.kick")

    async def test_lockAndUnlock(self) -> None:
        """
        `xmppcert user lock` through the channel sets the flag and ends the
        live sessions at once; `user unlock` clears it. The audit trail has
        both, by the control channel's actor.
        """
        await cast(Any, self.service)._waitingForPort
        desk = bind(self.sessions, f"{ALICE}/desk")
        code, out, err = await self.cliInThread("user", "lock", ALICE)
        assert (code, out) == (0, f"locked {ALICE}; ended 1 live session\n"), err
        assert [e.condition for e in desk.closes] == ["not-authorized"]
        assert await self.store.isAccountLocked(ALICE)
        code, out, err = await self.cliInThread("user", "unlock", ALICE)
        assert (code, out) == (0, f"unlocked {ALICE}\n"), err
        assert not await self.store.isAccountLocked(ALICE)
        assert [(e.actor, e.action) for e in self.auditTrail(ALICE)[-2:]] == [
            (ME, "user.lock"), (ME, "user.unlock"),
        ]
        code, _, err = await self.cliInThread("user", "lock", "carol@example.com")
        assert code == 1 and "no account carol@example.com" in err

    async def test_passwdEndsPasswordSessions(self) -> None:
        """
        `xmppcert user passwd` ends the account's password sessions through
        the channel; its certificate sessions stay.
        """
        await cast(Any, self.service)._waitingForPort
        desk = bind(self.sessions, f"{ALICE}/desk", "PLAIN")
        phone = bind(self.sessions, f"{ALICE}/phone", "EXTERNAL", fp("phone"))
        code, out, err = await self.cliInThread("user", "passwd", ALICE, stdin="new secret\n")
        assert code == 0, err
        assert out == f"changed the password of {ALICE}\nended 1 password session\n"
        assert [e.condition for e in desk.closes] == ["reset"] and phone.closes == []

    async def test_certRevokeAtOnce(self) -> None:
        """
        `xmppcert cert revoke` ends the certificate's sessions at once
        through the channel, not at the server's next poll.
        """
        await cast(Any, self.service)._waitingForPort
        key = x509.generateClientKey()
        certificate = x509.issueClientCertificate([ALICE], key)
        path = self.dataDir / "phone.crt"
        path.write_bytes(certificate.public_bytes(Encoding.PEM))
        code, _, err = await self.cliInThread("cert", "add", ALICE, "Phone", str(path))
        assert code == 0, err
        phone = bind(self.sessions, f"{ALICE}/phone", "EXTERNAL", x509.fingerprint(certificate))
        code, out, err = await self.cliInThread("cert", "revoke", ALICE, "Phone")
        assert code == 0, err
        assert out.splitlines()[-1] == "ended 1 session that logged in with it"
        assert [e.condition for e in phone.closes] == ["reset"]


# --- the command line without a running server ----------------------------------


@pytest.fixture
def offline(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """
    C{xmppcert ARGS} in-process over a data directory with ALICE, and no
    server: a function returning the status, stdout and stderr.
    """
    dataDir = tmp_path / "var"

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(["--config", str(dataDir / "xmppcert.toml"), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert cli.main(["init", "--data-dir", str(dataDir), "--domain", DOMAIN]) == 0
    assert run("user", "add", ALICE, stdin="secret\n")[0] == 0
    run.dataDir = dataDir  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize("args", [["status"], ["sessions"], ["kick", ALICE]])
def test_liveCommandsNeedTheServer(offline: Any, args: list[str]) -> None:
    """
    `status`, `sessions` and `kick` need the running server: without one
    they say so in one line and exit 1.
    """
    code, out, err = offline(*args)
    assert (code, out) == (1, "")
    assert err.startswith("xmppcert: error: the server is not running") and err.count("\n") == 1


def test_lockWithoutServer(offline: Any) -> None:
    """
    `user lock` with no server running: the store's flag alone (a server
    started later refuses the logins; one sharing the database ends the
    sessions at its session check), recorded as made by the command line.
    """
    code, out, err = offline("user", "lock", ALICE)
    assert code == 0, err
    assert out.startswith(f"locked {ALICE} (no running server answered")
    database = SQLiteDatabase.open(offline.dataDir / "xmppcert.sqlite")
    try:
        assert database.isAccountLocked(ALICE)
        assert offline("user", "unlock", ALICE)[:2] == (0, f"unlocked {ALICE}\n")
        assert not database.isAccountLocked(ALICE)
        assert [e.action for e in database.auditTrail(ALICE)][-2:] == ["user.lock", "user.unlock"]
        assert all(e.actor.startswith("cli:") for e in database.auditTrail(ALICE))
    finally:
        database.close()
    code, _, err = offline("user", "lock", "carol@example.com")
    assert code == 1 and "no account carol@example.com" in err


def test_staleSocketIsNoServer(offline: Any) -> None:
    """
    A control socket left by a server that did not stop cleanly is no
    running server: kick says the server is not running, passwd just
    changes the password.
    """
    bindStale(offline.dataDir / "control.sock")
    assert offline("kick", ALICE)[0] == 1
    assert offline("user", "passwd", ALICE, stdin="new\n")[:2] == (0, f"changed the password of {ALICE}\n")


def test_channelTurnedOff(offline: Any) -> None:
    """
    [control] socket = "": the live commands say the channel is off.
    """
    configPath = offline.dataDir / "xmppcert.toml"
    configPath.write_text(configPath.read_text().replace('socket = "control.sock"', 'socket = ""'))
    code, _, err = offline("status")
    assert code == 1 and "the control channel is turned off" in err


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0 s"), (42.9, "42 s"), (303, "5 min 3 s"), (7500, "2 h 5 min"), (4 * 86400 + 3 * 3600, "4 d 3 h")],
)
def test_formatDuration(seconds: float, text: str) -> None:
    """
    `xmppcert status`: the uptime to the second below an hour, coarser above.
    """
    assert formatDuration(seconds) == text
