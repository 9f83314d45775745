"""
Tests for L{xmppcert.service}: building the server as one Twisted service,
starting and stopping it, and closing client streams at shutdown.
"""

from __future__ import annotations

import gc
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, reactor, task, threads
from twisted.logger import capturedLogs
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.helpers import DOMAIN, makeServer
from xmppcert.c2s import C2SServer, OnFirstRequest
from xmppcert.config import Config, configFromDict
from xmppcert.control import ControlService
from xmppcert.service import C2SService, IdleParserService, ServerService, StoreService, makeService
from xmppcert.store.sqlite import SQLiteStore
from xmppcert.testing import InMemoryAccountStore
from xmppcert.tls import TLSConfigurationError
from xmppcert.watch import ExpiredCertificatePruner, RevocationWatcher
from xmppcert.x509 import writeServerCertificate
from xmppcert.xmlstream import PARSER_IDLE_INTERVAL, HardenedElementStream, IdleParsers

LOOPBACK = "tcp:0:interface=127.0.0.1"


def makeTestConfig(directory: Path, **data: Any) -> Config:
    writeServerCertificate(directory / "server.crt", directory / "server.key", [DOMAIN])
    document: dict[str, Any] = {
        "domains": [DOMAIN],
        "data_dir": str(directory),
        "listen": {"starttls": [LOOPBACK], "direct_tls": [LOOPBACK], "https": []},
    }
    document.update(data)
    return configFromDict(document, directory)


def test_makeServiceChildren(tmp_path: Path) -> None:
    """
    makeService returns a MultiService named xmppcert with, in order: the
    store service, one listener per endpoint (STARTTLS, direct TLS,
    HTTPS), the revocation watcher, the
    expired-certificate pruner, the control channel (data_dir/control.sock
    by default), the idle parsers' sweep, and the C2S service last (so it
    stops first, before the store goes away).
    """
    store = InMemoryAccountStore()
    config = makeTestConfig(
        tmp_path, listen={"starttls": [LOOPBACK, LOOPBACK], "direct_tls": [LOOPBACK], "https": [LOOPBACK]}
    )
    root = makeService(config, store=store, reactor=task.Clock())
    assert isinstance(root, ServerService)
    assert isinstance(root, service.MultiService)
    assert root.name == "xmppcert"
    children = list(root)
    assert isinstance(children[0], StoreService)
    assert children[0].store is store
    assert [type(c) for c in children[1:5]] == [StreamServerEndpointService] * 4
    assert isinstance(children[5], RevocationWatcher)
    assert isinstance(children[6], ExpiredCertificatePruner)
    assert isinstance(children[-1], C2SService)
    assert isinstance(children[7], ControlService)
    assert children[7].path == tmp_path / "control.sock"
    assert isinstance(children[8], IdleParserService)
    assert children[8].parsers is cast(Any, root).c2s.idleParsers
    assert len(children) == 10
    for child in children:
        assert verifyObject(service.IService, child)
    server = cast(Any, root).c2s
    assert isinstance(server, C2SServer)
    assert children[-1].server is server
    assert server.store is store
    assert server.config is config
    assert server.sessions.domains == {DOMAIN}


def test_makeServiceNeedsIMStore(tmp_path: Path) -> None:
    """
    A store of an embedding application without the IM interfaces is
    refused at once, naming the interface it lacks.
    """
    from zope.interface import implementer

    from xmppcert.store.interfaces import IAccountStore, ICertificateStore

    @implementer(IAccountStore, ICertificateStore)
    class AccountsOnly:
        def __getattr__(self, name: str) -> Any:
            return getattr(InMemoryAccountStore(), name)

    with pytest.raises(ValueError, match="does not provide IRosterStore"):
        makeService(makeTestConfig(tmp_path), store=AccountsOnly(), reactor=task.Clock())


def test_makeServiceDefaultStore(tmp_path: Path) -> None:
    """
    Without a store argument, makeService uses SQLite at store.sqlite.
    """
    config = makeTestConfig(tmp_path)
    root = makeService(config, reactor=task.Clock())
    store = cast(Any, root).c2s.store
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "xmppcert.sqlite"


def test_makeServiceHandlersAndRegistry(tmp_path: Path) -> None:
    """
    Extra handler factories come after the default ones (core handlers,
    XEP-0257, the IM features: roster, carbons, blocking, offline, ...,
    then ad-hoc commands), which are made at a stream's first request
    (OnFirstRequest) and the extra ones at bind; a
    given registry is used; the IM stream features are announced with bind.
    """
    from xmppcert.handlers import defaultHandlers
    from xmppcert.sasl import MechanismRegistry

    def extra(authenticator: Any) -> list[Any]:
        return []

    registry = MechanismRegistry()
    root = makeService(
        makeTestConfig(tmp_path),
        store=InMemoryAccountStore(),
        reactor=task.Clock(),
        handlerFactories=[extra],
        registry=registry,
    )
    server = cast(Any, root).c2s
    assert server.handlerFactories[-1] is extra
    builtIn = server.handlerFactories[:-1]
    assert all(isinstance(f, OnFirstRequest) for f in builtIn)
    assert builtIn[0].factory is defaultHandlers
    im = cast(Any, root).im
    assert [f.factory for f in builtIn[2:-1]] == im.handlerFactories
    assert builtIn[-1].factory == cast(Any, root).commands.handlerFactory
    assert len(server.handlerFactories) == 4 + len(im.handlerFactories)
    assert [(f.namespace, f.name) for f in server.informationalFeatures] == [
        ("urn:xmpp:features:rosterver", "ver"),
        ("urn:xmpp:features:pre-approval", "sub"),
    ]
    assert server.registry is registry


@pytest.mark.parametrize("which", ["certificate", "key"])
def test_makeServiceBadCertificate(tmp_path: Path, which: str) -> None:
    """
    An unusable certificate or key path raises TLSConfigurationError
    naming it, before anything listens.
    """
    config = makeTestConfig(tmp_path, tls={which: "missing.pem"})
    with pytest.raises(TLSConfigurationError) as info:
        makeService(config, store=InMemoryAccountStore(), reactor=task.Clock())
    assert str(tmp_path / "missing.pem") in str(info.value)


# --- C2SService -----------------------------------------------------------


def test_c2sServiceSystemShutdown() -> None:
    """
    RFC 6120 §4.9.3.20: stopping the C2S service sends system-shutdown to
    every connected stream, bound or not (even one that sent no header
    yet), and waits until they are closed.
    """
    h = makeServer()
    silent = h.connect()
    started = h.connect()
    started.header()
    bound = h.connect()
    bound.bound()
    c2s = C2SService(h.server)
    c2s.startService()

    d = c2s.stopService()
    assert d is not None
    results: list[Any] = []
    d.addBoth(results.append)
    assert results == [None]
    for conn in (silent, started, bound):
        assert conn.received().streamError() == "system-shutdown"
        assert conn.closed
    assert h.server.streams == set()
    assert len(h.sessions) == 0
    assert not c2s.running


def test_c2sServiceNoStreams() -> None:
    """
    Stopping the C2S service without streams finishes at once.
    """
    c2s = C2SService(makeServer().server)
    c2s.startService()
    assert c2s.stopService() is None


def test_c2sServiceShutdownTimeout() -> None:
    """
    Shutdown: a peer that never closes its side does not hold up the
    shutdown for more than a few seconds, and no "Unhandled error in
    Deferred" is logged for it.
    """
    with capturedLogs() as events:
        h = makeServer()
        conn = h.connect()
        conn.header()
        conn.transport.lingering = True
        d = C2SService(h.server).stopService()
        assert d is not None
        results: list[Any] = []
        d.addBoth(results.append)
        assert conn.received().streamError() == "system-shutdown"
        assert results == []
        h.clock.advance(10)
        assert results == [None]
        assert conn.closed
        del h, conn, d
        gc.collect()
    assert [e for e in events if "log_failure" in e] == []


def test_serverServiceStopOrder() -> None:
    """
    Shutdown: the whole server closes its client streams first and waits
    for them, and only then closes the store (so nothing a stream still
    does meets a closed store).
    """
    h = makeServer()
    conn = h.connect()
    conn.bound()
    conn.transport.lingering = True
    root = ServerService()
    StoreService(h.store).setServiceParent(root)
    C2SService(h.server).setServiceParent(root)
    root.startService()
    results: list[Any] = []
    root.stopService().addBoth(results.append)
    assert conn.received().streamError() == "system-shutdown"
    assert results == []
    assert not h.store.closed
    h.clock.advance(10)
    assert results == [None]
    assert h.store.closed
    assert not root.running


# --- the whole service on the real reactor ----------------------------------


def readUntil(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def openStream(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
            f" to='{DOMAIN}' version='1.0'>"
        ).encode()
    )
    return sock, readUntil(sock, b"</stream:features>")


def readToEnd(sock: socket.socket) -> bytes:
    with sock:
        return readUntil(sock, b"\0never\0")


class RunningServiceTests(unittest.TestCase):
    """
    makeService on the real reactor: listening, serving a stream, stopping.
    """

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    async def test_startAndStop(self) -> None:
        """
        The service listens once started; on stop, a connected stream gets
        system-shutdown (RFC 6120 §4.9.3.20), the ports close and the store
        is closed.
        """
        store = InMemoryAccountStore()
        root = makeService(makeTestConfig(self.directory), store=store, reactor=reactor)
        root.startService()
        stopped = False
        self.addCleanup(lambda: None if stopped else root.stopService())
        listeners = [c for c in root if isinstance(c, StreamServerEndpointService)]
        ports = [await cast(Any, c)._waitingForPort for c in listeners]
        starttlsPort = ports[0].getHost().port

        sock, features = await threads.deferToThread(openStream, starttlsPort)
        assert b"urn:ietf:params:xml:ns:xmpp-tls" in features
        assert len(cast(Any, root).c2s.streams) == 1

        await root.stopService()
        stopped = True
        rest = await threads.deferToThread(readToEnd, sock)
        assert b"<system-shutdown" in rest
        assert rest.endswith(b"</stream:stream>")
        assert store.closed
        assert not root.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", starttlsPort), timeout=2).close()

    async def test_stopClosesSQLiteStore(self) -> None:
        """
        Stopping the service closes the default SQLite store.
        """
        root = makeService(makeTestConfig(self.directory), reactor=reactor)
        store = cast(Any, root).c2s.store
        assert isinstance(store, SQLiteStore)
        root.startService()
        assert await store.accountExists("alice@example.com") is False
        await root.stopService()
        assert store._closed
        from xmppcert.store import StoreError

        with pytest.raises(StoreError):
            await store.accountExists("alice@example.com")


def test_serverServiceStopStages() -> None:
    """
    Shutdown in stages: listeners first (no new stream may meet a closed
    store), then client streams, then background tasks, the store last;
    each stage waits for the one before.
    """
    order: list[str] = []

    class Recorder(service.Service):
        def __init__(self, label: str, wait: defer.Deferred[None] | None = None) -> None:
            self.label = label
            self.wait = wait

        def stopService(self) -> defer.Deferred[None] | None:
            service.Service.stopService(self)
            order.append(self.label)
            return self.wait

    class Listener(StreamServerEndpointService):
        def __init__(self) -> None:
            pass

        def startService(self) -> None:
            service.Service.startService(self)

        def stopService(self) -> defer.Deferred[None]:
            service.Service.stopService(self)
            order.append("listener")
            return listenerStopped

    class Streams(C2SService):
        def stopService(self) -> None:
            service.Service.stopService(self)
            order.append("streams")

    class Store(StoreService):
        def stopService(self) -> None:  # type: ignore[override]
            service.Service.stopService(self)
            order.append("store")

    listenerStopped: defer.Deferred[None] = defer.Deferred()
    taskStopped: defer.Deferred[None] = defer.Deferred()
    root = ServerService()
    Store(InMemoryAccountStore()).setServiceParent(root)
    Listener().setServiceParent(root)
    Recorder("task", taskStopped).setServiceParent(root)
    Streams(cast(Any, None)).setServiceParent(root)
    root.startService()
    stopped = root.stopService()
    assert order == ["listener"]
    listenerStopped.callback(None)
    assert order == ["listener", "streams", "task"]
    taskStopped.callback(None)
    assert order == ["listener", "streams", "task", "store"]
    assert stopped.called


def test_fakeCredentialSecretFromStore(tmp_path: Path) -> None:
    """
    RFC 5802 §5.1: the server uses the store's secret for made-up SCRAM
    credentials, so a restart (a new service on the same database) offers
    an unknown account the same salt as before.
    """
    config = makeTestConfig(tmp_path)
    first = cast(Any, makeService(config, reactor=task.Clock())).c2s
    second = cast(Any, makeService(config, reactor=task.Clock())).c2s
    secret = first.fakeCredentialSecret
    assert secret is not None and len(secret) == 32
    assert second.fakeCredentialSecret == secret
    store = InMemoryAccountStore()
    server = cast(Any, makeService(config, store=store, reactor=task.Clock())).c2s
    assert server.fakeCredentialSecret == store.fakeCredentialSecret()


# --- limits.listen_backlog -------------------------------------------------


def listenBacklogs(config: Config) -> list[tuple[int, int]]:
    """
    Start the service on a memory reactor; return each listener's port and
    listen backlog as the reactor was asked for them.
    """
    from twisted.internet.testing import MemoryReactorClock

    memory = MemoryReactorClock()
    root = makeService(config, store=InMemoryAccountStore(), reactor=memory)
    root.startService()
    try:
        return [(port, backlog) for port, _, backlog, _ in memory.tcpServers]
    finally:
        root.stopService()


def test_listenBacklogDefault(tmp_path: Path) -> None:
    """
    limits.listen_backlog: every listener (STARTTLS, direct TLS, HTTPS)
    listens with a backlog of 511 by default, not Twisted's 50.
    """
    config = makeTestConfig(
        tmp_path, listen={"starttls": ["tcp:5222"], "direct_tls": ["tcp:5223"], "https": ["tcp:5281"]}
    )
    assert listenBacklogs(config) == [(5222, 511), (5223, 511), (5281, 511)]


def test_listenBacklogConfiguredAndExplicit(tmp_path: Path) -> None:
    """
    limits.listen_backlog: the configured backlog applies to descriptions
    that do not say backlog= themselves; one that does keeps its own.
    """
    config = makeTestConfig(
        tmp_path,
        listen={
            "starttls": ["tcp:5222:backlog=7"], "direct_tls": [r"tcp6:5223:interface=\:\:1"], "https": [],
        },
        limits={"listen_backlog": 1024},
    )
    assert listenBacklogs(config) == [(5222, 7), (5223, 1024)]


@pytest.mark.parametrize(
    "description, expected",
    [
        ("tcp:5222", "tcp:5222:backlog=511"),
        ("tcp:5222:interface=127.0.0.1", "tcp:5222:interface=127.0.0.1:backlog=511"),
        ("tcp:5222:backlog=10", "tcp:5222:backlog=10"),
        (r"tcp6:5222:interface=\:\:1", r"tcp6:5222:interface=\:\:1:backlog=511"),
        (r"unix:/tmp/back\:log=1", r"unix:/tmp/back\:log=1:backlog=511"),
        ("unix:/run/x.sock:backlog=3", "unix:/run/x.sock:backlog=3"),
    ],
)
def test_withBacklog(description: str, expected: str) -> None:
    """
    limits.listen_backlog: added to an endpoint description unless it
    already has backlog= as a parameter (not inside an escaped value).
    """
    from xmppcert.service import withBacklog

    assert withBacklog(description, 511) == expected


def test_embeddersCertificateCheckerIsGuarded(tmp_path: Path) -> None:
    """
    XEP-0257 §2.4: a certificate checker an embedding application passes
    to makeService replaces the configured chain, but a certificate
    revoked in the store still never logs in through it: it runs behind
    the same look in the store.
    """
    from cryptography.hazmat.primitives.serialization import Encoding
    from twisted.cred.checkers import ICredentialsChecker
    from zope.interface import implementer

    from tests.helpers import failureOf, resultOf
    from xmppcert import x509
    from xmppcert.cred import (
        CertificateCheckerChain,
        ClientCertificate,
        IClientCertificate,
        SASLAuthFailure,
    )

    @implementer(ICredentialsChecker)
    class AcceptsAnyone:
        credentialInterfaces: tuple[Any, ...] = (IClientCertificate,)

        def requestAvatarId(self, credentials: Any) -> Any:
            return defer.succeed(b"alice@example.com")

    store = InMemoryAccountStore()
    resultOf(store.addAccount("alice@example.com", []))
    import time

    clock = task.Clock()
    clock.advance(time.time())
    root = makeService(makeTestConfig(tmp_path), store=store, reactor=clock, checkers=[AcceptsAnyone()])
    checker = cast(Any, root).c2s.portal.checkers[IClientCertificate]
    assert isinstance(checker, CertificateCheckerChain)
    certificate = x509.issueClientCertificate(["alice@example.com"], x509.generateClientKey())
    creds = ClientCertificate((certificate,), None, DOMAIN)
    assert resultOf(checker.requestAvatarId(creds)).jid.userhost() == "alice@example.com"
    fingerprint = x509.fingerprint(certificate)
    resultOf(store.addCertificate(
        "alice@example.com", "phone", certificate.public_bytes(Encoding.DER), fingerprint,
        certificate.not_valid_after_utc.timestamp(),
    ))
    resultOf(store.setCertificateStateByFingerprint(fingerprint, "revoked"))
    refusal = failureOf(checker.requestAvatarId(creds), SASLAuthFailure).value
    assert isinstance(refusal, SASLAuthFailure) and refusal.final

    # A chain without a store is guarded too; a checker for passwords and
    # certificates keeps its password side.
    from twisted.cred.credentials import IUsernamePassword

    @implementer(ICredentialsChecker)
    class Both(AcceptsAnyone):
        credentialInterfaces = (IUsernamePassword, IClientCertificate)

    both = Both()
    for extra in (CertificateCheckerChain([AcceptsAnyone()]), both):
        root = makeService(makeTestConfig(tmp_path), store=store, reactor=clock, checkers=[extra])
        portal = cast(Any, root).c2s.portal
        guarded = portal.checkers[IClientCertificate]
        assert isinstance(guarded, CertificateCheckerChain) and guarded.store is store
        failureOf(guarded.requestAvatarId(creds), SASLAuthFailure)
    assert portal.checkers[IUsernamePassword] is both


def test_SIGHUPHandledFromTheStart(tmp_path: Path) -> None:
    """
    SIGHUP reloads: its handler is in place as soon as the ports are
    opened (twistd does that before the reactor runs), so a SIGHUP then
    cannot kill the server with the signal's default action; a reactor
    that turns out not to handle signals gets the old handler back.
    """
    import signal

    from twisted.internet.testing import MemoryReactorClock

    class NotYetRunning(MemoryReactorClock):
        _installSignalHandlers = False

        def __init__(self) -> None:
            super().__init__()
            self.running = False
            self.whenRunning: list[Any] = []

        def callWhenRunning(self, f: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            self.whenRunning.append((f, args))

    reactor = NotYetRunning()
    before = signal.getsignal(signal.SIGHUP)
    root = cast(Any, makeService(makeTestConfig(tmp_path), store=InMemoryAccountStore(), reactor=reactor))
    root.startupChecks = None
    try:
        root.privilegedStartService()
        assert signal.getsignal(signal.SIGHUP) == root._onSIGHUP
        root.startService()
        assert signal.getsignal(signal.SIGHUP) == root._onSIGHUP
        for f, args in reactor.whenRunning:
            f(*args)
        assert signal.getsignal(signal.SIGHUP) == before
    finally:
        signal.signal(signal.SIGHUP, before)
        root.stopService()


def test_imFeatureReplaceable(tmp_path: Path) -> None:
    """
    docs/extending.md: an IM feature is taken out with uninstall() and its
    per-stream handler factory removed; its hooks no longer run.
    """
    from xmppcert.routing import INBOUND_BARE, PRESENCE_BROADCAST

    root = makeService(makeTestConfig(tmp_path), store=InMemoryAccountStore(), reactor=task.Clock())
    server = cast(Any, root)
    offline = server.im.offline
    sessions = server.c2s.sessions
    assert offline.storeIfOffline in sessions.hooks.handlers(INBOUND_BARE)
    offline.uninstall()
    server.c2s.handlerFactories.remove(offline.handlersFor)
    assert offline.storeIfOffline not in sessions.hooks.handlers(INBOUND_BARE)
    assert offline.presenceChanged not in sessions.hooks.handlers(PRESENCE_BROADCAST)
    assert offline.handlersFor not in server.c2s.handlerFactories


def test_imLimitsReachTheServices(tmp_path: Path) -> None:
    """
    [im] limits are what the IM services read (live: through the server's
    configuration, which reload replaces).
    """
    root = makeService(
        makeTestConfig(tmp_path, im={"max_vcard_bytes": 2048, "max_private_bytes": 4096}),
        store=InMemoryAccountStore(),
        reactor=task.Clock(),
    )
    im = cast(Any, root).im
    assert im.vcard.config().max_vcard_bytes == 2048
    assert im.private.config().max_private_bytes == 4096


def test_sessionCheckForgetsWhatIMKeeps(tmp_path: Path) -> None:
    """
    docs/operations.md (more than one server process on a store): each
    session check forgets the rosters and the block lists of accounts
    without sessions that the IM services keep, so a change made beside
    this process shows within C{certificates.session_check_interval}.
    """
    root = makeService(makeTestConfig(tmp_path), store=InMemoryAccountStore(), reactor=task.Clock())
    im = cast(Any, root).im
    [watcher] = [child for child in root if isinstance(child, RevocationWatcher)]
    im.roster._cache["alice@example.com"] = {}
    im.blocking._offline["bob@example.com"] = frozenset()
    assert watcher.onCheck is not None
    watcher.onCheck()
    assert im.roster._cache == {}
    assert dict(im.blocking._offline) == {}


def test_idleParserServiceSweeps() -> None:
    """
    Memory of idle sessions: while the server runs, a stream that received
    nothing for a whole sweep interval gives its parser back; the sweeps
    stop with the service.
    """
    clock = task.Clock()
    parsers = IdleParsers()
    stream = HardenedElementStream(1000, 10)
    stream.parse(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    parsers.add(stream)
    sweeper = IdleParserService(parsers, clock)
    sweeper.startService()
    clock.advance(PARSER_IDLE_INTERVAL)
    assert stream.parser is not None
    clock.advance(PARSER_IDLE_INTERVAL)
    assert stream.parser is None
    sweeper.stopService()
    assert clock.getDelayedCalls() == []
