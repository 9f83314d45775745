# -*- test-case-name: tests.test_transports_http -*-
"""
The HTTPS listener of web clients: a L{twisted.web} site carrying BOSH
(L{xmppcert.transports.bosh}), WebSocket
(L{xmppcert.transports.websocket}) and host-meta (XEP-0156).

What the XMPP transports need from HTTP lives here:

  - L{PeerConnection}: the facts of the TLS connection a request arrived
    on (address, the client certificate chain), read once per connection
    and pinned for its life;
  - L{XMPPHTTPChannel}: an HTTP/1.1 channel that bounds request bodies and
    can hand its connection over to another protocol (the WebSocket
    upgrade);
  - L{originOf}, L{applyCORS}: the one C{[http] allowed_origins} setting,
    as CORS for BOSH and as the WebSocket C{Origin} check;
  - L{HostMeta}: C{/.well-known/host-meta} and C{host-meta.json}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from twisted.internet.interfaces import IProtocol
from twisted.logger import Logger
from twisted.python import failure
from twisted.web import http, resource, server

from xmppcert import _log
from xmppcert.config import Config, HTTPConfig
from xmppcert.limits import peerHost
from xmppcert.tls import ALPN_HTTP1, ServerTLSContextFactory, peerCertificateChain

log = Logger(observer=_log.observer, namespace="xmppcert.http")

#: Where BOSH and WebSocket are served (the paths clients expect; XEP-0156
#: announces them).
BOSH_PATH = b"http-bind"
WEBSOCKET_PATH = b"xmpp-websocket"

NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
REL_BOSH = "urn:xmpp:alt-connections:xbosh"
REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket"


@dataclass(frozen=True)
class PeerConnection:
    """
    The facts of one HTTPS connection that a stream carried over it needs.

    @ivar host: the client's IP address, C{None} when unknown.
    @ivar port: the client's port, 0 when unknown.
    @ivar chain: the certificate chain the client presented in the TLS
        handshake (leaf first), empty when none.
    """

    host: str | None
    port: int
    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None

    def sameClientCertificate(self, other: PeerConnection) -> bool:
        """
        @return: whether both connections presented the same leaf
            certificate, or both none.
        """
        mine, theirs = self.leaf, other.leaf
        if mine is None or theirs is None:
            return mine is None and theirs is None
        return mine == theirs

    def label(self) -> str:
        """
        @return: C{host:port} for log lines, C{"?"} when unknown.
        """
        return f"{self.host}:{self.port}" if self.host is not None else "?"

    def address(self) -> str:
        """
        @return: C{host:port} (an IPv6 host in brackets), C{""} when unknown.
        """
        if self.host is None:
            return ""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def connectionOf(request: server.Request) -> PeerConnection:
    """
    @return: the L{PeerConnection} of the connection C{request} arrived on;
        read when first asked for (the TLS handshake is complete once a
        request was parsed) and kept for the connection's life.
    """
    channel: Any = request.channel
    known = getattr(channel, "peerConnection", None)
    if known is not None:
        return known
    transport = channel.transport
    try:
        address: Any = transport.getPeer()
        port = int(getattr(address, "port", 0) or 0)
    except Exception:
        address, port = None, 0
    facts = PeerConnection(
        host=peerHost(address) if address is not None else None,
        port=port,
        chain=tuple(peerCertificateChain(transport)),
    )
    if isinstance(channel, XMPPHTTPChannel):
        channel.peerConnection = facts
    return facts


class BoundedRequest(server.Request):
    """
    A request whose body may not exceed the channel's C{maxBodySize}: a
    larger one is answered with 413 and the connection closed, before the
    body is read.
    """

    _bodyBytes = 0
    _tooLarge = False

    def gotLength(self, length: int | None) -> None:
        limit = getattr(self.channel, "maxBodySize", None)
        if limit is not None and length is not None and length > limit:
            self._refuseTooLarge()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._tooLarge:
            return
        self._bodyBytes += len(data)
        limit = getattr(self.channel, "maxBodySize", None)
        if limit is not None and self._bodyBytes > limit:
            # Chunked encoding: the length is known only as it arrives.
            self._refuseTooLarge()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._tooLarge:
            return
        super().requestReceived(command, path, version)

    def _refuseTooLarge(self) -> None:
        self._tooLarge = True
        # Nothing may follow the 413 (HTTP answers Expect: 100-continue
        # after the length is known).
        self.requestHeaders.removeHeader(b"expect")
        channel: Any = self.channel
        log.info(
            "Refusing an HTTP request body over {limit} bytes from {peer}",
            limit=channel.maxBodySize,
            peer=connectionOf(self).label(),
        )
        transport = channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 25\r\nConnection: close\r\n\r\nrequest body is too large"
        )
        channel.loseConnection()


class XMPPHTTPChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel with bounded request bodies, that can hand its
    connection over to another protocol (L{switchProtocol}).

    @ivar peerConnection: the L{PeerConnection}, once read.
    @ivar maxBodySize: the largest request body, in bytes.
    """

    peerConnection: PeerConnection | None = None
    maxBodySize = HTTPConfig.max_body_size
    _switchedTo: IProtocol | None = None

    def switchProtocol(self, protocol: IProtocol) -> None:
        """
        From now on the connection is C{protocol}'s: it gets every byte
        that arrives and the connection's loss, and writes to the transport
        itself. HTTP's own timeouts are stopped. Called while the upgrading
        request is rendered, after the C{101} response's bytes were written.
        """
        self.setTimeout(None)
        self._switchedTo = protocol
        protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        if self._switchedTo is not None:
            self._switchedTo.dataReceived(data)
            return
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        # Bytes that came in the same read as the upgrade request are
        # handed on from inside HTTP's own parsing loop.
        if self._switchedTo is not None:
            self._switchedTo.dataReceived(data)
            return
        super().rawDataReceived(data)

    def connectionLost(self, reason: failure.Failure) -> None:  # type: ignore[override]
        if self._switchedTo is not None:
            self._switchedTo.connectionLost(reason)
            return
        super().connectionLost(reason)


def httpsContextFactory(config: Config, clientCAs: Any = ()) -> ServerTLSContextFactory:
    """
    The TLS context of the HTTPS listener: the C{[http]} certificate (by
    default the C{[tls]} one), the same client certificate request and
    minimum version as the XMPP listeners, ALPN C{http/1.1}.

    @raise xmppcert.tls.TLSConfigurationError: the files cannot be used.
    """
    certificate = config.http.certificate or config.tls.certificate
    key = config.http.key or config.tls.key
    return ServerTLSContextFactory.fromFiles(
        certificate, key, config.certificates.policy, clientCAs, config.tls.min_version, alpn=ALPN_HTTP1
    )


def originOf(request: server.Request) -> str | None:
    """
    @return: the request's C{Origin} header (what a browser page sends),
        C{None} when it has none.
    """
    value = request.getHeader(b"origin")
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def applyCORS(request: server.Request, settings: HTTPConfig, methods: bytes = b"GET, POST, OPTIONS") -> bool:
    """
    Answer the CORS side of a request (the Fetch standard) from
    C{[http] allowed_origins}.

    @return: whether the request may be served: it has no C{Origin}, or
        its origin is allowed (the response then carries the CORS headers
        that let the page read it).
    """
    origin = originOf(request)
    request.setHeader(b"vary", b"Origin")
    if origin is None:
        return True
    if not settings.allowsOrigin(origin):
        return False
    request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
    if origin.rstrip("/").lower() in settings.allowed_origins:
        # A listed origin may send credentialed requests: Firefox presents
        # the client certificate only on those (XMLHttpRequest
        # withCredentials). Never for "*": any page could then log its
        # visitor in with their certificate.
        request.setHeader(b"access-control-allow-credentials", b"true")
    request.setHeader(b"access-control-allow-methods", methods)
    request.setHeader(b"access-control-allow-headers", b"Content-Type")
    request.setHeader(b"access-control-max-age", b"86400")
    return True


class HostMeta(resource.Resource):
    """
    XEP-0156: C{/.well-known/host-meta} (XRD) and C{host-meta.json} (JRD),
    announcing the BOSH and WebSocket endpoints at the host and port the
    client used.

    @ivar settings: returns the live C{[http]} settings.
    """

    isLeaf = True

    def __init__(self, settings: Callable[[], HTTPConfig], asJSON: bool) -> None:
        super().__init__()
        self.settings = settings
        self.asJSON = asJSON

    def _links(self, authority: str) -> list[tuple[str, str]]:
        return [
            (REL_BOSH, f"https://{authority}/{BOSH_PATH.decode()}"),
            (REL_WEBSOCKET, f"wss://{authority}/{WEBSOCKET_PATH.decode()}"),
        ]

    def render_GET(self, request: server.Request) -> bytes:
        # Any page may read where the endpoints are (XEP-0156 section 3.3
        # asks for CORS here); using them is what allowed_origins decides.
        request.setHeader(b"access-control-allow-origin", b"*")
        authority = _authority(request)
        if authority is None:
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain")
            return b"bad Host header"
        links = self._links(authority)
        if self.asJSON:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]}).encode()
        request.setHeader(b"content-type", b"application/xrd+xml")
        lines = [f"<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='{NS_XRD}'>"]
        for rel, href in links:
            lines.append(f"  <Link rel='{rel}' href='{_escapeAttribute(href)}'/>")
        lines.append("</XRD>\n")
        return "\n".join(lines).encode("utf-8")


_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def _authority(request: server.Request) -> str | None:
    """
    @return: the host and port the client addressed (its C{Host} header,
        with the listener's port when it names none), C{None} when the
        header is missing or is not a host name or address.
    """
    raw = request.getHeader(b"host")
    if raw is None:
        return None
    host = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if _HOST.fullmatch(host) is None:
        return None
    if host.endswith("]") or ":" not in host:
        port = request.getHost().port
        return host if port == 443 else f"{host}:{port}"
    return host


def _escapeAttribute(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")
    )


class XMPPSite(server.Site):
    """
    The site of the HTTPS listener: L{XMPPHTTPChannel}s with bounded bodies,
    and no access log (every BOSH request would be a line).
    """

    requestFactory = BoundedRequest
    # HTTP/1.1 only (ALPN http/1.1): no HTTP/2 wrapper around the channel.
    protocol = XMPPHTTPChannel  # type: ignore[assignment]

    def __init__(self, root: resource.Resource, settings: Callable[[], HTTPConfig], **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.settings = settings

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.maxBodySize = self.settings().max_body_size
        return channel

    def log(self, request: http.Request) -> None:
        pass


__all__ = [
    "BOSH_PATH",
    "WEBSOCKET_PATH",
    "BoundedRequest",
    "HostMeta",
    "PeerConnection",
    "XMPPHTTPChannel",
    "XMPPSite",
    "applyCORS",
    "connectionOf",
    "httpsContextFactory",
    "originOf",
]
