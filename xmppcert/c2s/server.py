# -*- test-case-name: tests.test_c2s -*-
"""
What the client streams of one server share (L{C2SServer}), and the type of
the factories of per-stream handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.cred.portal import Portal
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish

from xmppcert import _log
from xmppcert.config import Config
from xmppcert.limits import AddressLimiter
from xmppcert.metrics import IMetrics, NullMetrics
from xmppcert.sasl import MechanismRegistry
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import IAccountStore
from xmppcert.throttle import LoginThrottle
from xmppcert.xmlstream import IdleParsers

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext
    from xmppcert.c2s.negotiation import C2SAuthenticator

log = Logger(observer=_log.observer, namespace="xmppcert.c2s")


#: Called once a resource is bound, with the stream's
#: L{xmppcert.c2s.bound.StreamContext}; returns the wokkel handlers for that
#: stream.
HandlerFactory = Callable[["StreamContext"], "Iterable[Any]"]


class InformationalFeature:
    """
    A stream feature that is only announced, never negotiated (e.g.
    C{<ver xmlns='urn:xmpp:features:rosterver'/>}).
    """

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name

    def featureElement(self) -> domish.Element:
        return domish.Element((self.namespace, self.name))


class C2SServer:
    """
    Everything the client streams of one server share: configuration,
    portal, store, session registry, TLS context, SASL mechanisms, the
    clock, the factories of per-stream handlers, and the limits on hostile
    clients.

    @ivar throttle: counts failed logins (L{xmppcert.throttle}).
    @ivar addressLimiter: counts unauthenticated connections per address.
    @ivar metrics: told about connections, logins and sessions.
    """

    def __init__(
        self,
        config: Config,
        portal: Portal,
        store: IAccountStore,
        sessions: SessionManager,
        tlsFactory: Any,
        registry: MechanismRegistry,
        clock: IReactorTime,
        handlerFactories: Sequence[HandlerFactory] = (),
        fakeCredentialSecret: bytes | None = None,
        throttle: LoginThrottle | None = None,
        metrics: IMetrics | None = None,
    ) -> None:
        """
        @param throttle: the failed-login throttle; by default one from
            C{config.limits}, for this server alone.
        @param metrics: L{xmppcert.metrics}; none recorded by default.
        """
        self.config = config
        self.fakeCredentialSecret = fakeCredentialSecret
        self.portal = portal
        self.store = store
        self.sessions = sessions
        self.tlsFactory = tlsFactory
        self.registry = registry
        self.clock = clock
        self.handlerFactories = list(handlerFactories)
        #: One error line a minute at most while the store fails logins.
        self.storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, 60.0)
        #: Every connected stream, bound or not.
        self.streams: set[C2SAuthenticator] = set()
        self.throttle = throttle if throttle is not None else LoginThrottle.fromConfig(config.limits, clock)
        self.addressLimiter = AddressLimiter(config.limits.max_unauthenticated_per_address, clock)
        self.metrics: IMetrics = metrics if metrics is not None else NullMetrics()
        #: Stream features offered with bind that need no negotiation
        #: (L{InformationalFeature}s: roster versioning, pre-approval).
        self.informationalFeatures: list[InformationalFeature] = []
        #: The TCP streams' parsers, parked when idle (swept by the service).
        self.idleParsers = IdleParsers()

    def newStream(self) -> C2SAuthenticator:
        """
        The negotiation of a new client stream, for a transport.
        """
        from xmppcert.c2s.negotiation import C2SAuthenticator

        return C2SAuthenticator(self)

    def stanzaLimits(self) -> tuple[int, int]:
        """
        The live configuration's C{(max_stanza_size, max_stanza_elements)}.
        """
        limits = self.config.limits
        return limits.max_stanza_size, limits.max_stanza_elements

    def streamFactory(self) -> xmlstream.XmlStreamServerFactory:
        """
        A protocol factory for client streams over TCP
        (L{xmppcert.transports.tcp.streamFactory}). Wrap it with
        C{tlsFactory.wrapFactory} for direct TLS.
        """
        # Imported here: transports sit above c2s.
        from xmppcert.transports import tcp

        return tcp.streamFactory(
            self.newStream, self.clock, lambda: self.tlsFactory, self.stanzaLimits, self.idleParsers
        )


__all__ = ["C2SServer", "HandlerFactory", "InformationalFeature"]
