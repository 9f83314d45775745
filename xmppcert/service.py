# -*- test-case-name: tests.test_service -*-
"""
Build the whole server as one Twisted service.

C{makeService(config)} returns a L{MultiService}; C{twistd xmppcert} uses it,
and so can any Twisted application that embeds xmppcert::

    from xmppcert.config import loadConfig
    from xmppcert.service import makeService

    makeService(loadConfig("xmppcert.toml")).setServiceParent(application)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.application import service, strports
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.internet import defer, endpoints, task
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import error

from xmppcert import _log, checks
from xmppcert.adhoc.admin import AdminCommands
from xmppcert.adhoc.certificates import CertificateCommands
from xmppcert.adhoc.framework import CommandService
from xmppcert.c2s import C2SServer, HandlerFactory, OnFirstRequest, StreamContext
from xmppcert.certificates import CertificateManager
from xmppcert.config import Config
from xmppcert.control import ControlChannel, ControlService
from xmppcert.cred import (
    CertificateCheckerChain,
    IClientCertificate,
    loadCertificateCheckers,
    makePortal,
)
from xmppcert.handlers import defaultHandlers
from xmppcert.im.services import installIM
from xmppcert.metrics import IMetrics, MetricsSite, NullMetrics, ServerMetrics
from xmppcert.reload import Reloader, ReloadResult
from xmppcert.sasl import MechanismRegistry, defaultRegistry
from xmppcert.saslcert import Requester, SASLCertBackend, SASLCertHandler
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import IAccountStore
from xmppcert.store.sqlite import SQLiteStore
from xmppcert.tls import ServerTLSContextFactory, loadCABundle
from xmppcert.transports.http import httpsContextFactory
from xmppcert.transports.tcp import CLOSE_GRACE
from xmppcert.transports.web import makeWebSite
from xmppcert.watch import ExpiredCertificatePruner, RevocationWatcher
from xmppcert.xmlstream import PARSER_IDLE_INTERVAL, IdleParsers

log = Logger(observer=_log.observer)

#: For the one line of a failed start: never filtered by C{log_level}.
_startLog = Logger(namespace=__name__)


class StartupError(Exception):
    """
    The server cannot start; the message is one line for the operator.
    """


def withBacklog(description: str, backlog: int) -> str:
    """
    Add C{backlog=} to a server endpoint description that does not set it.

    The kernel's listen queue holds connections the server has not accepted
    yet; Twisted's default (50) overflows under a burst of connections, and
    then new clients wait for SYN retransmissions.

    @param description: a C{tcp:}, C{tcp6:} or C{unix:} description, whose
        colons inside values are escaped with a backslash.
    """
    for parameter in _unescapedSplit(description, ":")[1:]:
        if parameter.startswith("backlog="):
            return description
    return f"{description}:backlog={backlog}"


def _unescapedSplit(text: str, separator: str) -> list[str]:
    # The endpoint syntax escapes with a backslash (twisted.internet.endpoints).
    parts = [""]
    escaped = False
    for character in text:
        if escaped:
            parts[-1] += "\\" + character
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == separator:
            parts.append("")
        else:
            parts[-1] += character
    return parts


class StoreService(service.Service):
    """
    Closes the store (and its worker thread) when the server stops.
    """

    def __init__(self, store: IAccountStore) -> None:
        self.store = store

    def stopService(self) -> defer.Deferred[Any]:
        service.Service.stopService(self)
        return defer.maybeDeferred(self.store.close)


class RevocationListService(service.Service):
    """
    Runs the background work of the CRL checkers (looking for changed CRL
    files) while the server runs.
    """

    def __init__(self, checkers: Sequence[Any]) -> None:
        self.checkers = list(checkers)

    def startService(self) -> None:
        service.Service.startService(self)
        for checker in self.checkers:
            checker.start()

    def stopService(self) -> None:
        service.Service.stopService(self)
        for checker in self.checkers:
            checker.stop()


class IdleParserService(service.Service):
    """
    Parks the parsers of idle streams (L{IdleParsers.sweep}) every
    L{PARSER_IDLE_INTERVAL} seconds while the server runs.
    """

    def __init__(self, parsers: IdleParsers, clock: IReactorTime, interval: float = PARSER_IDLE_INTERVAL) -> None:
        self.parsers = parsers
        self.clock = clock
        self.interval = interval
        self._loop: task.LoopingCall | None = None

    def startService(self) -> None:
        service.Service.startService(self)
        self._loop = task.LoopingCall(self.parsers.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        service.Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None


class C2SService(service.Service):
    """
    Owns the client streams: on shutdown every stream, bound or not, gets a
    C{system-shutdown} stream error (RFC 6120 section 4.9.3.20).
    """

    def __init__(self, server: C2SServer) -> None:
        self.server = server

    def stopService(self) -> defer.Deferred[None] | None:
        service.Service.stopService(self)
        streams = list(self.server.streams)
        if not streams:
            return None
        done: defer.Deferred[None] = defer.Deferred()
        remaining = set(streams)

        def closed(result: object, authenticator: object) -> object:
            remaining.discard(authenticator)
            if not remaining and not done.called:
                done.callback(None)
            return result

        for authenticator in streams:
            authenticator.closed.addBoth(closed, authenticator)
            authenticator.channel.sendStreamError(error.StreamError("system-shutdown"))
        log.info("Closed {count} client streams for shutdown", count=len(streams))
        # Do not let a peer that never reads hold up the shutdown; the
        # streams cut their own connections after CLOSE_GRACE.
        def giveUp() -> None:
            if not done.called:
                done.callback(None)

        timer = self.server.clock.callLater(CLOSE_GRACE + 1, giveUp)

        def stopTimer(result: None) -> None:
            if timer.active():
                timer.cancel()

        done.addCallback(stopTimer)
        return done


class ServerService(service.MultiService):
    """
    The whole server. Starting checks the files and the store first
    (L{startupChecks}); stopping goes in stages, each awaited: the listeners
    (no new streams), the client streams, the background tasks, and the
    store last, so nothing still running meets a closed store. L{reload}
    (and SIGHUP) applies a new configuration without dropping a session.
    """

    c2s: C2SServer
    #: What the server records (L{xmppcert.metrics}).
    metrics: IMetrics
    #: The reactor the server runs on (for the SIGHUP handler).
    reactor: Any = None
    #: The configuration file L{reload} reads; set by C{twistd xmppcert}
    #: and C{xmppcert run}, or by an embedding application.
    configPath: Path | None = None
    #: Applies a new configuration (L{reload}); set by L{makeService}.
    reloader: Reloader | None = None
    #: The HTTPS site's transports (L{xmppcert.transports.web.WebSite}),
    #: when C{[listen] https} names endpoints.
    web: Any = None
    #: The instant messaging services (L{xmppcert.im.services.IMServices}).
    im: Any = None
    #: The ad-hoc commands (L{xmppcert.adhoc.framework.CommandService}),
    #: to which an embedding application may add its own.
    commands: Any = None
    #: What the control channel and the administrators' commands act
    #: through (L{xmppcert.control.ControlChannel}).
    control: Any = None
    #: Run by L{startService} before anything starts, after twistd dropped
    #: privileges: findings (L{xmppcert.checks}) whose errors stop the start.
    startupChecks: Callable[[], list[checks.Finding]] | None = None
    #: Whether a failed start exits the process with status 1 after one
    #: log line (twistd), rather than raise L{StartupError} (embedding).
    exitOnStartupError = False
    #: Whether SIGHUP reloads the configuration (when the reactor handles
    #: signals: under twistd and C{xmppcert run}).
    reloadOnSIGHUP = True
    _previousSIGHUP: Any = None

    def privilegedStartService(self) -> None:
        # As MultiService's, with a listener that cannot listen (a port in
        # use, a port below 1024 without the right) reported in one line.
        self._installEarlySIGHUP()
        service.Service.privilegedStartService(self)
        for child in self:
            try:
                child.privilegedStartService()
            except CannotListenError as e:
                self._startFailed(self._listenProblem(e))

    def startService(self) -> None:
        """
        Check what the server needs (as the user it now runs as), then
        start every part; install the SIGHUP handler once the reactor runs.

        @raise StartupError: a check failed or a listener cannot listen
            (unless L{exitOnStartupError}: then the process exits).
        """
        if self.startupChecks is not None:
            findings = self.startupChecks()
            for finding in findings:
                if finding.level == checks.WARN:
                    log.warn("{message}", message=finding.message)
            problems = checks.errors(findings)
            if problems:
                self._startFailed("; ".join(p.message for p in problems))
        service.Service.startService(self)
        for child in self:
            try:
                child.startService()
            except CannotListenError as e:
                self._startFailed(self._listenProblem(e))
        callWhenRunning = getattr(self.reactor, "callWhenRunning", None)
        if callWhenRunning is not None and self.reloadOnSIGHUP:
            self._installEarlySIGHUP()
            callWhenRunning(self._installReloadSignal)

    def _installEarlySIGHUP(self) -> None:
        # Before the reactor runs: twistd and `xmppcert run` open the ports
        # first, and a SIGHUP in between must not kill the server (its
        # default action). Taken back by _installReloadSignal once the
        # reactor turns out not to handle signals itself.
        if self._previousSIGHUP is not None or not self.reloadOnSIGHUP:
            return
        if getattr(self.reactor, "callWhenRunning", None) is None or getattr(self.reactor, "running", False):
            return
        if threading.current_thread() is threading.main_thread():
            self._previousSIGHUP = signal.signal(signal.SIGHUP, self._onSIGHUP)

    def _listenProblem(self, e: CannotListenError) -> str:
        socketError = e.socketError
        reason = getattr(socketError, "strerror", None) or str(socketError)
        where = f"{e.interface or '*'}:{e.port}"
        server = getattr(self, "c2s", None)
        for key, description in checks.listeners(server.config) if server is not None else []:
            try:
                endpoint: Any = endpoints.serverFromString(None, description)
            except Exception:
                continue
            if getattr(endpoint, "_port", None) == e.port or getattr(endpoint, "_address", None) == e.port:
                return f"{key}: {description}: cannot listen: {reason}"
        return f"cannot listen on {where}: {reason}"

    def _startFailed(self, message: str) -> None:
        if self.exitOnStartupError:
            _startLog.error("Cannot start: {reason}", reason=message)
            raise SystemExit(1)
        raise StartupError(message)

    def _installReloadSignal(self) -> None:
        # Only where the reactor handles signals itself (twistd, xmppcert
        # run), not in a test or an application that runs it without.
        if not getattr(self.reactor, "_installSignalHandlers", False):
            self._restoreSIGHUP()
            return
        if not self.running or self._previousSIGHUP is not None:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self._previousSIGHUP = signal.signal(signal.SIGHUP, self._onSIGHUP)

    def _onSIGHUP(self, signum: int, frame: object) -> None:
        # Out of the signal handler, onto the reactor.
        self.reactor.callFromThread(self._reloadOnSignal)

    def _reloadOnSignal(self) -> None:
        if self.configPath is None:
            log.warn("SIGHUP: no configuration file to reload (configPath is not set)")
            return
        log.info("SIGHUP: reloading {path}", path=str(self.configPath))
        self.reload()

    def _restoreSIGHUP(self) -> None:
        previous, self._previousSIGHUP = self._previousSIGHUP, None
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)

    def reload(self, config: Config | Path | str | None = None) -> defer.Deferred[ReloadResult]:
        """
        Read the configuration again and apply what can change without
        dropping a session (see L{xmppcert.reload}). A bad configuration
        changes nothing; what happened is logged either way.

        @param config: a configuration, or the file to read; L{configPath}
            by default.
        @return: a Deferred firing with what was done (the files are read
            in a thread); it never fails.
        @raise ValueError: there is nothing to reload from.
        """
        source = config if config is not None else self.configPath
        if source is None or self.reloader is None:
            raise ValueError("no configuration file to reload: set configPath or pass a configuration")
        return self.reloader.reload(source)

    async def _stop(self) -> None:
        children = list(self)
        stores = [s for s in children if isinstance(s, StoreService)]
        streams = [s for s in children if isinstance(s, C2SService)]
        listeners = [s for s in children if isinstance(s, StreamServerEndpointService)]
        tasks = [s for s in reversed(children) if s not in stores + streams + listeners]
        service.Service.stopService(self)
        for stage in (listeners, streams, tasks, stores):
            await defer.DeferredList([defer.maybeDeferred(s.stopService) for s in stage if s.running])

    def stopService(self) -> defer.Deferred[None]:
        self._restoreSIGHUP()
        return defer.ensureDeferred(self._stop())


def _registerExtra(
    portal: Portal, checker: ICredentialsChecker, store: Any, config: Config, clock: IReactorTime
) -> None:
    """
    Register a checker of an embedding application: it replaces the
    built-in one for each of its credential interfaces, but for
    certificates only inside a chain with the store, so the rules every
    certificate login obeys still hold (a certificate disabled or revoked
    in the store never logs in, the stream's domain only,
    no-cert-management).
    """
    interfaces = tuple(checker.credentialInterfaces)
    others = [i for i in interfaces if i is not IClientCertificate]
    if others:
        portal.registerChecker(checker, *others)
    if IClientCertificate in interfaces:
        guarded = checker
        if not isinstance(checker, CertificateCheckerChain) or checker.store is None:
            guarded = CertificateCheckerChain([checker], store, config.domains, clock)
        portal.registerChecker(guarded, IClientCertificate)


def makeService(
    config: Config,
    *,
    reactor: Any = None,
    store: IAccountStore | None = None,
    checkers: Sequence[ICredentialsChecker] = (),
    handlerFactories: Sequence[HandlerFactory] = (),
    registry: MechanismRegistry | None = None,
    metrics: ServerMetrics | None = None,
) -> ServerService:
    """
    Build the server.

    @param config: the validated configuration.
    @param reactor: provides C{IReactorTime} (and the reactor APIs the
        listeners use); the global reactor by default.
    @param store: the account store; an L{SQLiteStore} at the configured
        path by default.
    @param checkers: extra C{twisted.cred} checkers; one for a credential
        interface the server already handles replaces the built-in one
        (for certificates, prefer C{[certificates] checkers} in the config;
        a certificate checker given here still runs behind the look in the
        store and the rules every certificate login obeys).
    @param handlerFactories: extra per-stream handler factories, each called
        with the stream's L{xmppcert.c2s.StreamContext} once a resource is
        bound (or, wrapped in L{xmppcert.c2s.OnFirstRequest}, at the
        stream's first request to the server) and returning wokkel
        handlers.
    @param registry: the SASL mechanisms known to the server.
    @param metrics: where to record metrics (an embedding application may
        serve its registry itself); a new L{ServerMetrics} when
        C{[metrics] listen} names endpoints, else none are recorded.
    @raise xmppcert.tls.TLSConfigurationError: the server certificate or key
        is unusable.
    @return: the server; its C{startService} checks the files and the
        store first (L{xmppcert.checks}) and raises L{StartupError} when
        one cannot be used; its C{reload()} applies a new configuration.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    clock: IReactorTime = reactor
    _log.setLevel(config.log_level)

    root = ServerService()
    root.setName("xmppcert")

    defaultStore = store is None
    if store is None:
        store = SQLiteStore(config.store.sqlite, reactor=reactor)
    StoreService(store).setServiceParent(root)
    if metrics is None and config.metrics.listen:
        metrics = ServerMetrics()
    tracked: IMetrics = metrics if metrics is not None else NullMetrics()
    store = tracked.timedStore(store, clock)

    certs = config.certificates
    clientCAs = [root for bundle in certs.clientCABundles() for root in loadCABundle(bundle)]
    tlsFactory = ServerTLSContextFactory.fromFiles(
        config.tls.certificate, config.tls.key, certs.policy, clientCAs, config.tls.min_version
    )
    sessions = SessionManager(config.domains, store)
    # Stable across restarts and nodes (see IAccountStore); a store of an
    # embedding application that lacks it gets a per-process secret.
    secretOf = getattr(store, "fakeCredentialSecret", None)
    fakeSecret: bytes | None = secretOf() if secretOf is not None else None
    if "EXTERNAL" in config.sasl.mechanisms and not callable(getattr(store, "isCertificateRevoked", None)):
        # Without it, a revoked certificate whose record was removed could
        # log in again through a CA or a custom checker.
        raise ValueError(
            f"the store {type(store).__name__} lacks ICertificateStore.isCertificateRevoked,"
            " which certificate logins need"
        )
    certificateCheckers = loadCertificateCheckers(certs.checkers, config=config, store=store, clock=clock)
    if "EXTERNAL" in config.sasl.mechanisms:
        log.info(
            "Certificate logins: {rule}", rule=certificateCheckers.describe(certs.checkers)
        )
    # The one certificate manager: XEP-0257, the ad-hoc commands and the
    # control channel act through it.
    manager = CertificateManager(
        store,
        clock,
        sessions,
        requireXmppAddr=certs.require_xmppaddr,
        maxPerAccount=certs.max_per_account,
        metrics=tracked,
    )
    saslcert = SASLCertBackend(manager)

    def saslcertHandlers(context: StreamContext) -> list[Any]:
        account = context.account
        # The session's full JID is the actor in the audit trail.
        requester = Requester(account.jid, account.canManageCertificates, context.session.jid)
        return [SASLCertHandler(saslcert, requester, tracked)]

    im = installIM(sessions, store, clock, lambda: server.config.im)
    # Ad-hoc commands (XEP-0050); commands are added once the control
    # channel they act through exists.
    commands = CommandService(clock, sessionTimeout=config.limits.command_session_timeout)
    portal = makePortal(store, [certificateCheckers], config.sasl.scram_iterations, fakeSecret)
    for checker in checkers:
        _registerExtra(portal, checker, store, config, clock)
    server = C2SServer(
        config=config,
        portal=portal,
        store=store,
        sessions=sessions,
        tlsFactory=tlsFactory,
        registry=registry or defaultRegistry(),
        clock=clock,
        # The built-in handlers only answer requests: made at a stream's
        # first request, not for every session at bind.
        handlerFactories=[
            *(
                OnFirstRequest(factory)
                for factory in [defaultHandlers, saslcertHandlers, *im.handlerFactories, commands.handlerFactory]
            ),
            *handlerFactories,
        ],
        fakeCredentialSecret=fakeSecret,
        metrics=tracked,
    )
    server.informationalFeatures.extend(im.features)
    factory = server.streamFactory()
    backlog = config.limits.listen_backlog
    for description in config.listen.starttls:
        strports.service(withBacklog(description, backlog), factory, reactor=reactor).setServiceParent(root)
    for description in config.listen.direct_tls:
        wrapped = tlsFactory.wrapFactory(factory)  # type: ignore[arg-type]
        strports.service(withBacklog(description, backlog), wrapped, reactor=reactor).setServiceParent(root)
    httpsFactory = None
    root.web = None
    if config.listen.https:
        httpsFactory = httpsContextFactory(config, clientCAs)
        web = makeWebSite(server.newStream, clock, lambda: server.config.http, server.stanzaLimits, reactor)
        for description in config.listen.https:
            wrapped = httpsFactory.wrapFactory(web.site)  # type: ignore[arg-type]
            strports.service(withBacklog(description, backlog), wrapped, reactor=reactor).setServiceParent(root)
        root.web = web
    if metrics is not None:
        for description in config.metrics.listen:
            site = MetricsSite(metrics.registry, reactor=reactor)
            strports.service(description, site, reactor=reactor).setServiceParent(root)
    RevocationWatcher(
        store, sessions, clock, certs.revocation_poll_interval, certs.session_check_interval, tracked,
        # Removed accounts leave the rosters kept for presence too.
        onCheck=im.forgetStored,
    ).setServiceParent(root)
    crls = certificateCheckers.revocationCheckers()
    if crls:
        RevocationListService(crls).setServiceParent(root)
    if certs.prune_expired_after:
        ExpiredCertificatePruner(store, clock, certs.prune_expired_after * 86400).setServiceParent(root)
    listeners = [("starttls", d) for d in config.listen.starttls]
    listeners += [("direct_tls", d) for d in config.listen.direct_tls]
    listeners += [("https", d) for d in config.listen.https]
    listeners += [("metrics", d) for d in (config.metrics.listen if metrics is not None else ())]
    if config.control.socket is not None:
        listeners.append(("control", str(config.control.socket)))
    # What the control socket and the administrators' commands do, with
    # immediate effect, whether or not the socket listens.
    channel = ControlChannel(sessions, store, clock, listeners, certificates=manager)
    if config.control.socket is not None:
        ControlService(config.control.socket, channel, reactor).setServiceParent(root)

    def isAdmin(who: Any) -> bool:
        # The configuration's, live: a reload changes who is one.
        return who.userhost() in server.config.admins

    AdminCommands(
        store,
        channel,
        isAdmin=isAdmin,
        clock=clock,
        scramIterations=config.sasl.scram_iterations,
        accountRemoved=im.forgetStored,
    ).install(commands)
    CertificateCommands(manager, channel, isAdmin).install(commands)
    IdleParserService(server.idleParsers, clock).setServiceParent(root)
    C2SService(server).setServiceParent(root)
    root.c2s = server
    root.im = im
    root.commands = commands
    root.control = channel
    root.metrics = tracked
    root.reactor = reactor
    root.reloader = Reloader(
        root, server, tlsFactory, portal, certificateCheckers, manager, store, clock, httpsFactory=httpsFactory
    )
    root.startupChecks = lambda: checks.startupFindings(config, store=defaultStore)
    return root


__all__ = ["C2SService", "ServerService", "StartupError", "StoreService", "makeService", "withBacklog"]
