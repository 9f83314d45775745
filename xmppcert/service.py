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

from collections.abc import Sequence
from typing import Any

from twisted.application import service, strports
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import error

from xmppcert import _log
from xmppcert.c2s import CLOSE_GRACE, C2SServer, HandlerFactory
from xmppcert.config import Config
from xmppcert.cred import (
    CertificateCheckerChain,
    IClientCertificate,
    loadCertificateCheckers,
    makePortal,
)
from xmppcert.handlers import defaultHandlers
from xmppcert.sasl import MechanismRegistry, defaultRegistry
from xmppcert.saslcert import CertificateManager, Requester, SASLCertHandler
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import IAccountStore
from xmppcert.store.sqlite import SQLiteStore
from xmppcert.tls import ServerTLSContextFactory, loadCABundle
from xmppcert.watch import ExpiredCertificatePruner, RevocationWatcher

log = Logger(observer=_log.observer)


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
            authenticator.xmlstream.sendStreamError(error.StreamError("system-shutdown"))
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
    The whole server. Stopping goes in stages, each awaited: the listeners
    (no new streams), the client streams, the background tasks, and the
    store last, so nothing still running meets a closed store.
    """

    c2s: C2SServer

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
        with the stream's authenticator once a resource is bound and
        returning wokkel handlers.
    @param registry: the SASL mechanisms known to the server.
    @raise xmppcert.tls.TLSConfigurationError: the server certificate or key
        is unusable.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    clock: IReactorTime = reactor
    _log.setLevel(config.log_level)

    root = ServerService()
    root.setName("xmppcert")

    if store is None:
        store = SQLiteStore(config.store.sqlite, reactor=reactor)
    StoreService(store).setServiceParent(root)

    certs = config.certificates
    bundles = [ca.bundle for ca in certs.ca]
    if certs.ca_bundle is not None and certs.ca_bundle not in bundles:
        bundles.append(certs.ca_bundle)
    clientCAs = [root for bundle in bundles for root in loadCABundle(bundle)]
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
    manager = CertificateManager(store, sessions, clock, certs.require_xmppaddr, certs.max_per_account)

    def saslcertHandlers(authenticator: Any) -> list[Any]:
        account = authenticator.account
        return [SASLCertHandler(manager, Requester(account.jid, account.canManageCertificates))]

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
        handlerFactories=[defaultHandlers, saslcertHandlers, *handlerFactories],
        fakeCredentialSecret=fakeSecret,
    )
    factory = server.streamFactory()
    backlog = config.limits.listen_backlog
    for description in config.listen.starttls:
        strports.service(withBacklog(description, backlog), factory, reactor=reactor).setServiceParent(root)
    for description in config.listen.direct_tls:
        wrapped = tlsFactory.wrapFactory(factory)  # type: ignore[arg-type]
        strports.service(withBacklog(description, backlog), wrapped, reactor=reactor).setServiceParent(root)
    RevocationWatcher(
        store, sessions, clock, certs.revocation_poll_interval, certs.session_check_interval
    ).setServiceParent(root)
    crls = certificateCheckers.revocationCheckers()
    if crls:
        RevocationListService(crls).setServiceParent(root)
    if certs.prune_expired_after:
        ExpiredCertificatePruner(store, clock, certs.prune_expired_after * 86400).setServiceParent(root)
    C2SService(server).setServiceParent(root)
    root.c2s = server
    return root


__all__ = ["C2SService", "ServerService", "StoreService", "makeService", "withBacklog"]
