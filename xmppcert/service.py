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
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import error

from xmppcert import _log
from xmppcert.c2s import C2SServer, HandlerFactory
from xmppcert.config import Config
from xmppcert.cred import makePortal
from xmppcert.handlers import defaultHandlers
from xmppcert.sasl import MechanismRegistry, defaultRegistry
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import IAccountStore
from xmppcert.store.sqlite import SQLiteStore
from xmppcert.tls import ServerTLSContextFactory

log = Logger(observer=_log.observer)


class StoreService(service.Service):
    """
    Closes the store (and its worker thread) when the server stops.
    """

    def __init__(self, store: IAccountStore) -> None:
        self.store = store

    def stopService(self) -> defer.Deferred[Any]:
        service.Service.stopService(self)
        return defer.maybeDeferred(self.store.close)


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
        waiting = [a.closed for a in streams]
        for authenticator in streams:
            authenticator.xmlstream.sendStreamError(error.StreamError("system-shutdown"))
        log.info("Closed {count} client streams for shutdown", count=len(streams))
        d: defer.Deferred[Any] = defer.DeferredList(waiting)
        # Do not let a peer that never reads hold up the shutdown.
        d.addTimeout(5, self.server.clock, onTimeoutCancel=lambda *a: None)
        d.addBoth(lambda _: None)
        return d


def makeService(
    config: Config,
    *,
    reactor: Any = None,
    store: IAccountStore | None = None,
    checkers: Sequence[ICredentialsChecker] = (),
    handlerFactories: Sequence[HandlerFactory] = (),
    registry: MechanismRegistry | None = None,
) -> service.MultiService:
    """
    Build the server.

    @param config: the validated configuration.
    @param reactor: provides C{IReactorTime} (and the reactor APIs the
        listeners use); the global reactor by default.
    @param store: the account store; an L{SQLiteStore} at the configured
        path by default.
    @param checkers: extra C{twisted.cred} checkers, tried for credential
        types the built-in ones do not handle.
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

    root = service.MultiService()
    root.setName("xmppcert")

    if store is None:
        store = SQLiteStore(config.store.sqlite, reactor=reactor)
    StoreService(store).setServiceParent(root)

    tlsFactory = ServerTLSContextFactory.fromFiles(config.tls.certificate, config.tls.key)
    sessions = SessionManager(config.domains, store)
    server = C2SServer(
        config=config,
        portal=makePortal(store, list(checkers)),
        store=store,
        sessions=sessions,
        tlsFactory=tlsFactory,
        registry=registry or defaultRegistry(),
        clock=clock,
        handlerFactories=[defaultHandlers, *handlerFactories],
    )
    factory = server.streamFactory()
    for description in config.listen.starttls:
        strports.service(description, factory, reactor=reactor).setServiceParent(root)
    for description in config.listen.direct_tls:
        wrapped = tlsFactory.wrapFactory(factory)  # type: ignore[arg-type]
        strports.service(description, wrapped, reactor=reactor).setServiceParent(root)
    # Added last, so stopped first: streams get their shutdown error before
    # the store goes away.
    C2SService(server).setServiceParent(root)
    root.c2s = server  # type: ignore[attr-defined]
    return root


__all__ = ["C2SService", "StoreService", "makeService"]
