# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics: what the server counts, and the HTTP page that serves
them (docs/operations.md, "Metrics").

The parts of the server call small hooks on an L{IMetrics} provider
(C{metrics.loginFinished(mechanism, outcome, condition, seconds)} and the
like). L{ServerMetrics} records them in a C{CollectorRegistry} of its own,
never the global one, so several servers (or tests) in one process do not
clash; L{NullMetrics} records nothing and is what every part uses when no
metrics are configured, so no code path needs to ask.

Every label value comes from the server's own vocabulary (listener kinds,
registered mechanism names, RFC 6120 conditions, store method names), never
straight from the network, so the number of series stays bounded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import failure
from twisted.web import pages, resource, server
from twisted.web.iweb import IRequest
from twisted.words.protocols.jabber import error
from zope.interface import Interface, directlyProvides, implementer, providedBy

from xmppcert import _log

log = Logger(observer=_log.observer)

#: The kinds of client listener (C{[listen]} keys).
LISTENERS = ("starttls", "direct_tls", "bosh", "websocket")

#: The kinds of throttled login attempt (L{xmppcert.throttle}).
THROTTLE_KINDS = ("delayed", "locked")

#: Seconds, from C{<auth/>} to C{<success/>} or C{<failure/>}: SCRAM and
#: PLAIN hash in a thread (milliseconds), a throttled attempt waits up to
#: C{limits.login_failure_max_delay}, a CRL fetch up to its timeouts.
LOGIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Seconds of one store call: SQLite in a thread answers in well under a
#: millisecond to a few; a locked database waits for its busy timeout.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Idle seconds before the metrics listener drops an HTTP connection.
HTTP_IDLE_TIMEOUT = 60


class IMetrics(Interface):
    """
    The hooks the server calls as things happen. Label values are the
    server's own names (see the module docstring).
    """

    def connectionOpened(listener):  # type: ignore[no-untyped-def]
        """
        A client connection was accepted on a listener of kind C{listener}
        (one of L{LISTENERS}).
        """

    def connectionClosed(listener):  # type: ignore[no-untyped-def]
        """
        A connection that L{connectionOpened} counted is gone.
        """

    def sessionStarted(transport, mechanism):  # type: ignore[no-untyped-def]
        """
        A resource was bound on a stream of C{transport} (C{"tcp"}) that
        authenticated with the SASL mechanism C{mechanism}.
        """

    def sessionEnded(transport, mechanism):  # type: ignore[no-untyped-def]
        """
        A session that L{sessionStarted} counted ended.
        """

    def loginFinished(mechanism, outcome, condition, seconds):  # type: ignore[no-untyped-def]
        """
        A SASL attempt was answered.

        @param mechanism: a registered mechanism name; C{"other"} for a name
            the server does not know, C{""} when the client named none.
        @param outcome: C{"success"} or C{"failure"}.
        @param condition: the RFC 6120 section 6.5 condition of a failure;
            C{""} on success.
        @param seconds: from the C{<auth/>} to this answer, or C{None} when
            no C{<auth/>} started it (a stray C{<response/>}).
        """

    def certificateOperation(operation, result):  # type: ignore[no-untyped-def]
        """
        A XEP-0257 request was answered.

        @param operation: C{"items"}, C{"append"}, C{"disable"} or C{"revoke"}.
        @param result: C{"ok"}, or the condition of the stanza error sent.
        """

    def certificatesRevoked(count):  # type: ignore[no-untyped-def]
        """
        The revocation watcher saw C{count} newly revoked certificates.
        """

    def sessionsClosedByRevocation(count):  # type: ignore[no-untyped-def]
        """
        C{count} live sessions were closed because their certificate was
        revoked.
        """

    def loginThrottled(kind):  # type: ignore[no-untyped-def]
        """
        A password login was held back (C{"delayed"}) or refused by a
        lockout (C{"locked"}).
        """

    def storeCallFinished(method, seconds):  # type: ignore[no-untyped-def]
        """
        The store's C{method} answered (or failed) after C{seconds}.
        """

    def timedStore(store, clock):  # type: ignore[no-untyped-def]
        """
        @return: C{store}, or a proxy of it that reports the time of each of
            its calls to L{storeCallFinished}.
        """


@implementer(IMetrics)
class NullMetrics:
    """
    Records nothing: what every part of the server uses when no metrics are
    configured.
    """

    def connectionOpened(self, listener: str) -> None:
        pass

    def connectionClosed(self, listener: str) -> None:
        pass

    def sessionStarted(self, transport: str, mechanism: str) -> None:
        pass

    def sessionEnded(self, transport: str, mechanism: str) -> None:
        pass

    def loginFinished(self, mechanism: str, outcome: str, condition: str, seconds: float | None) -> None:
        pass

    def certificateOperation(self, operation: str, result: str) -> None:
        pass

    def certificatesRevoked(self, count: int) -> None:
        pass

    def sessionsClosedByRevocation(self, count: int) -> None:
        pass

    def loginThrottled(self, kind: str) -> None:
        pass

    def storeCallFinished(self, method: str, seconds: float) -> None:
        pass

    def timedStore(self, store: Any, clock: IReactorTime) -> Any:
        return store


@implementer(IMetrics)
class ServerMetrics:
    """
    The metrics of one server, in a registry of their own.

    @ivar registry: the C{CollectorRegistry} to expose (L{MetricsResource}).
    """

    def __init__(self, processMetrics: bool = True) -> None:
        """
        @param processMetrics: also export prometheus_client's C{process_*}
            metrics (memory, CPU, open files) of this process.
        """
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "xmppcert_connections", "Open client connections, by listener kind.", ["listener"], registry=r
        )
        self.sessions = Gauge(
            "xmppcert_sessions", "Bound client sessions, by transport and SASL mechanism.",
            ["transport", "mechanism"], registry=r,
        )
        self.logins = Counter(
            "xmppcert_logins", "SASL attempts answered, by mechanism, outcome and failure condition.",
            ["mechanism", "outcome", "condition"], registry=r,
        )
        self.loginDuration = Histogram(
            "xmppcert_login_duration_seconds", "Seconds from <auth/> to <success/> or <failure/>.",
            ["mechanism", "outcome"], buckets=LOGIN_BUCKETS, registry=r,
        )
        self.certificateOperations = Counter(
            "xmppcert_saslcert_requests", "XEP-0257 requests answered, by type and result.",
            ["type", "result"], registry=r,
        )
        self.revocations = Counter(
            "xmppcert_certificate_revocations", "Certificate revocations the revocation watcher saw.",
            registry=r,
        )
        self.revokedSessions = Counter(
            "xmppcert_revoked_sessions_closed", "Live sessions closed because their certificate was revoked.",
            registry=r,
        )
        self.throttled = Counter(
            "xmppcert_login_throttled", "Password logins delayed or refused by a lockout.", ["kind"], registry=r
        )
        self.storeDuration = Histogram(
            "xmppcert_store_call_duration_seconds", "Seconds each store call took, by method.",
            ["method"], buckets=STORE_BUCKETS, registry=r,
        )
        # Known label values exist from the start, at 0.
        for listener in LISTENERS:
            self.connections.labels(listener)
        for kind in THROTTLE_KINDS:
            self.throttled.labels(kind)
        if processMetrics:
            ProcessCollector(registry=r)

    def connectionOpened(self, listener: str) -> None:
        self.connections.labels(listener).inc()

    def connectionClosed(self, listener: str) -> None:
        self.connections.labels(listener).dec()

    def sessionStarted(self, transport: str, mechanism: str) -> None:
        self.sessions.labels(transport, mechanism).inc()

    def sessionEnded(self, transport: str, mechanism: str) -> None:
        self.sessions.labels(transport, mechanism).dec()

    def loginFinished(self, mechanism: str, outcome: str, condition: str, seconds: float | None) -> None:
        self.logins.labels(mechanism, outcome, condition).inc()
        if seconds is not None:
            # A clock that went back must not make a negative observation.
            self.loginDuration.labels(mechanism, outcome).observe(max(0.0, seconds))

    def certificateOperation(self, operation: str, result: str) -> None:
        self.certificateOperations.labels(operation, result).inc()

    def certificatesRevoked(self, count: int) -> None:
        self.revocations.inc(count)

    def sessionsClosedByRevocation(self, count: int) -> None:
        self.revokedSessions.inc(count)

    def loginThrottled(self, kind: str) -> None:
        self.throttled.labels(kind).inc()

    def storeCallFinished(self, method: str, seconds: float) -> None:
        self.storeDuration.labels(method).observe(max(0.0, seconds))

    def timedStore(self, store: Any, clock: IReactorTime) -> Any:
        return TimedStore(store, self, clock)


class _HasMetrics(Protocol):
    metrics: IMetrics


_Handler = TypeVar("_Handler", bound=_HasMetrics)


def requestOutcome(result: object) -> str:
    """
    @param result: what an C{IQHandlerMixin} request method's Deferred
        fired with.
    @return: C{"ok"} for a result; for a failure, the condition of the
        stanza error that C{IQHandlerMixin.handleRequest} answers it with.
    """
    if not isinstance(result, failure.Failure):
        return "ok"
    if isinstance(result.value, error.StanzaError):
        return str(result.value.condition)
    if isinstance(result.value, NotImplementedError):
        return "feature-not-implemented"
    return "internal-server-error"


def countedRequest(
    operation: str,
) -> Callable[[Callable[[_Handler, Any], Any]], Callable[[_Handler, Any], defer.Deferred[Any]]]:
    """
    Decorate a XEP-0257 request method of a handler (an C{IQHandlerMixin}
    with a C{metrics} attribute): each answer, whether a result or an
    error, is told to C{metrics.certificateOperation(operation, outcome)}
    (see L{requestOutcome}), a request that fails to parse included.
    """

    def decorate(method: Callable[[_Handler, Any], Any]) -> Callable[[_Handler, Any], defer.Deferred[Any]]:
        def counted(self: _Handler, iq: Any) -> defer.Deferred[Any]:
            def record(result: object) -> object:
                self.metrics.certificateOperation(operation, requestOutcome(result))
                return result

            return defer.maybeDeferred(method, self, iq).addBoth(record)

        counted.__name__ = method.__name__
        counted.__doc__ = method.__doc__
        return counted

    return decorate


class TimedStore:
    """
    A thin proxy of a store: each public method that returns a Deferred is
    timed from the call until the Deferred fires (either way), and reported
    to L{IMetrics.storeCallFinished} under the method's name. Everything
    else, results and failures included, passes through unchanged; the
    proxy provides the interfaces the store provides.
    """

    def __init__(self, store: Any, metrics: IMetrics, clock: IReactorTime) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        directlyProvides(self, providedBy(store))

    def __repr__(self) -> str:
        return f"<TimedStore of {self._store!r}>"

    def __getattr__(self, name: str) -> Any:
        if name in ("_store", "_metrics", "_clock"):
            raise AttributeError(name)
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self._clock.seconds()
            result = value(*args, **kwargs)
            if isinstance(result, defer.Deferred):
                result.addBoth(self._finished, name, started)
            return result

        timed.__name__ = name
        timed.__doc__ = value.__doc__
        return timed

    def _finished(self, result: object, name: str, started: float) -> object:
        self._metrics.storeCallFinished(name, self._clock.seconds() - started)
        return result


class MetricsPage(resource.Resource):
    """
    The text exposition of a registry, as Prometheus scrapes it.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def getChild(self, path: bytes, request: IRequest) -> resource.IResource:
        return pages.notFound()

    def render(self, request: server.Request) -> object:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return pages.errorPage(405, "Method Not Allowed", "Use GET.").render(request)
        return super().render(request)

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


class MetricsResource(resource.Resource):
    """
    The root of the metrics listener: L{MetricsPage} at C{/metrics},
    404 everywhere else.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.putChild(b"metrics", MetricsPage(registry))

    def getChild(self, path: bytes, request: IRequest) -> resource.IResource:
        return pages.notFound()


class _BodylessRequest(server.Request):
    """
    A request whose body, which no page here reads, is dropped as it
    arrives instead of being buffered (in memory or a temporary file).
    """

    def gotLength(self, length: int | None) -> None:
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        pass


class MetricsSite(server.Site):
    """
    The HTTP factory of the metrics listener: no access log line per scrape
    (a debug event instead), idle connections dropped after
    L{HTTP_IDLE_TIMEOUT} seconds, no tracebacks shown.
    """

    noisy = False
    displayTracebacks = False

    def __init__(self, registry: CollectorRegistry, reactor: Any = None) -> None:
        super().__init__(
            MetricsResource(registry), requestFactory=_BodylessRequest,
            timeout=HTTP_IDLE_TIMEOUT, reactor=reactor,
        )

    def log(self, request: Any) -> None:
        log.debug(
            "Metrics request {method} {uri} from {peer}: {code}",
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("ascii", "replace")[:200],
            peer=getattr(request.getClientAddress(), "host", "?"),
            code=request.code,
        )


__all__ = [
    "IMetrics",
    "LISTENERS",
    "MetricsPage",
    "MetricsResource",
    "MetricsSite",
    "NullMetrics",
    "ServerMetrics",
    "THROTTLE_KINDS",
    "TimedStore",
    "countedRequest",
    "requestOutcome",
]
