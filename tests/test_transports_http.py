"""
Tests for L{xmppcert.transports.http} and L{xmppcert.transports.web}: the
HTTPS listener's facts of a connection, bounded bodies, the protocol
switch, CORS and host-meta.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from twisted.internet import endpoints, reactor, task, threads
from twisted.internet.testing import StringTransport
from twisted.python import failure
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.words.xish import domish

from tests.helpers import makeConfig
from xmppcert.config import HTTPConfig
from xmppcert.tls import ALPN_HTTP1
from xmppcert.transports.http import (
    BOSH_PATH,
    WEBSOCKET_PATH,
    HostMeta,
    PeerConnection,
    XMPPHTTPChannel,
    XMPPSite,
    applyCORS,
    connectionOf,
    httpsContextFactory,
)
from xmppcert.x509 import certificatePEM, generateClientKey, issueClientCertificate, privateKeyPEM


def selfSigned(name: str) -> x509.Certificate:
    return issueClientCertificate([f"{name}@localhost"], generateClientKey())


class Recorder(resource.Resource):
    """
    Records what it renders; answers "ok".
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[bytes] = []

    def render_POST(self, request: server.Request) -> bytes:
        assert request.content is not None
        self.rendered.append(request.content.read())
        return b"ok"

    def render_GET(self, request: server.Request) -> bytes:
        return b"ok"


def siteWith(child: resource.Resource, settings: HTTPConfig | None = None, clock: Any = None) -> XMPPSite:
    root = resource.Resource()
    root.putChild(b"r", child)
    config = settings or HTTPConfig()
    # A clock of its own: the channels' idle timeouts stay off the reactor.
    return XMPPSite(root, lambda: config, reactor=clock if clock is not None else task.Clock())


def _rooted(child: resource.Resource) -> resource.Resource:
    root = resource.Resource()
    root.putChild(b"r", child)
    return root


def connect(site: XMPPSite) -> tuple[XMPPHTTPChannel, StringTransport]:
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def test_sameClientCertificate() -> None:
    """
    Pinning a BOSH session: the same leaf, or no certificate on both, is
    the same client certificate; anything else is not.
    """
    alice, mallory = selfSigned("alice"), selfSigned("mallory")
    a1 = PeerConnection("127.0.0.1", 1, (alice,))
    a2 = PeerConnection("127.0.0.2", 2, (alice, mallory))
    m = PeerConnection("127.0.0.1", 3, (mallory,))
    none1 = PeerConnection("127.0.0.1", 4, ())
    none2 = PeerConnection("127.0.0.1", 5, ())
    assert a1.sameClientCertificate(a2)
    assert not a1.sameClientCertificate(m)
    assert not a1.sameClientCertificate(none1)
    assert not none1.sameClientCertificate(a1)
    assert none1.sameClientCertificate(none2)


def test_peerLabels() -> None:
    """
    Log lines and session lists name the peer as host:port, an IPv6 host
    in brackets for the address.
    """
    assert PeerConnection("::1", 5281, ()).address() == "[::1]:5281"
    assert PeerConnection("10.0.0.1", 5281, ()).address() == "10.0.0.1:5281"
    assert PeerConnection(None, 0, ()).address() == ""
    assert PeerConnection(None, 0, ()).label() == "?"


def test_bodyWithinLimitIsServed() -> None:
    """
    A body within [http] max_body_size reaches the resource.
    """
    recorder = Recorder()
    channel, transport = connect(siteWith(recorder, HTTPConfig(max_body_size=1024)))
    body = b"x" * 1024
    channel.dataReceived(b"POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 1024\r\n\r\n" + body)
    assert recorder.rendered == [body]
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_bodyOverLimitByLength() -> None:
    """
    A Content-Length over [http] max_body_size is answered with 413 and the
    connection closed, before any of the body is read or rendered.
    """
    recorder = Recorder()
    channel, transport = connect(siteWith(recorder, HTTPConfig(max_body_size=1024)))
    channel.dataReceived(b"POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 1025\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    channel.dataReceived(b"x" * 1025)
    assert recorder.rendered == []


def test_bodyOverLimitNoContinue() -> None:
    """
    A refused body is answered with the 413 alone: no 100 Continue follows
    it for a client that sent Expect: 100-continue.
    """
    recorder = Recorder()
    channel, transport = connect(siteWith(recorder, HTTPConfig(max_body_size=1024)))
    channel.dataReceived(
        b"POST /r HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n"
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in transport.value()


def test_bodyOverLimitChunked() -> None:
    """
    A chunked body is counted as it arrives: past [http] max_body_size it
    is answered with 413 and never rendered.
    """
    recorder = Recorder()
    channel, transport = connect(siteWith(recorder, HTTPConfig(max_body_size=1024)))
    channel.dataReceived(b"POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    channel.dataReceived(b"400\r\n" + b"x" * 1024 + b"\r\n")
    assert transport.value() == b""
    channel.dataReceived(b"1\r\nx\r\n0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert recorder.rendered == []


class Switcher(resource.Resource):
    """
    Hands the connection to a recording protocol.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytes] = []
        self.lost: list[failure.Failure] = []
        self.transport: Any = None

    def render_GET(self, request: server.Request) -> Any:
        switcher = self

        class Taken:
            def makeConnection(self, transport: Any) -> None:
                switcher.transport = transport

            def dataReceived(self, data: bytes) -> None:
                switcher.received.append(data)

            def connectionLost(self, reason: failure.Failure) -> None:
                switcher.lost.append(reason)

        channel: Any = request.channel
        channel.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        channel.switchProtocol(Taken())
        return server.NOT_DONE_YET


def test_switchProtocolKeepsPipelinedBytes() -> None:
    """
    Bytes that arrive in the same read as the upgrading request reach the
    new protocol, not HTTP's buffer.
    """
    switcher = Switcher()
    channel, transport = connect(siteWith(switcher))
    channel.dataReceived(b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n\x81\x05first")
    assert b"".join(switcher.received) == b"\x81\x05first"


def test_switchProtocol() -> None:
    """
    After switchProtocol every byte and the connection's loss go to the new
    protocol, which writes to the same transport; HTTP's idle timeout no
    longer closes the connection.
    """
    clock = task.Clock()
    switcher = Switcher()
    site = siteWith(switcher, clock=clock)
    site.timeOut = 10
    channel, transport = connect(site)
    channel.dataReceived(b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n")
    assert switcher.transport is transport
    channel.dataReceived(b"\x81\x00frames")
    assert switcher.received == [b"\x81\x00frames"]
    clock.advance(100)
    assert not transport.disconnecting
    channel.connectionLost(failure.Failure(ConnectionError("gone")))
    assert len(switcher.lost) == 1


class CORSProbe(resource.Resource):
    isLeaf = True

    def __init__(self, settings: HTTPConfig) -> None:
        super().__init__()
        self.settings = settings
        self.allowed: list[bool] = []

    def render_POST(self, request: server.Request) -> bytes:
        self.allowed.append(applyCORS(request, self.settings))
        return b""


def cors(settings: HTTPConfig, origin: bytes | None) -> tuple[bool, bytes]:
    probe = CORSProbe(settings)
    channel, transport = connect(siteWith(probe, settings))
    header = b"" if origin is None else b"Origin: " + origin + b"\r\n"
    channel.dataReceived(b"POST /r HTTP/1.1\r\nHost: h\r\n" + header + b"Content-Length: 0\r\n\r\n")
    return probe.allowed[0], transport.value().lower()


def test_corsNoOrigin() -> None:
    """
    A request without Origin (not a page in a browser) is served, with no
    CORS headers.
    """
    allowed, response = cors(HTTPConfig(), None)
    assert allowed
    assert b"access-control-allow-origin" not in response


def test_corsDisallowedOrigin() -> None:
    """
    http.allowed_origins: the generated configuration allows no page.
    """
    allowed, response = cors(HTTPConfig(), b"https://evil.example")
    assert not allowed
    assert b"access-control-allow-origin" not in response


def test_corsAllowedOrigin() -> None:
    """
    An allowed origin is told so (Fetch standard CORS headers), credentials
    included; the origin is compared without case.
    """
    settings = HTTPConfig(allowed_origins=("https://chat.example",))
    allowed, response = cors(settings, b"https://Chat.example")
    assert allowed
    assert b"access-control-allow-origin: https://chat.example" in response
    assert b"access-control-allow-credentials: true" in response
    assert b"vary: origin" in response


def test_corsAnyOrigin() -> None:
    """
    allowed_origins = ["*"] allows every page, but not credentialed
    requests.
    """
    allowed, response = cors(HTTPConfig(allowed_origins=("*",)), b"https://any.example")
    assert allowed
    assert b"access-control-allow-origin: https://any.example" in response
    # Credentialed requests (Firefox's client certificate) only for listed
    # origins.
    assert b"access-control-allow-credentials" not in response


def hostMeta(asJSON: bool, host: bytes = b"chat.example:5281") -> tuple[bytes, bytes]:
    root = resource.Resource()
    wellKnown = resource.Resource()
    wellKnown.putChild(b"host-meta", HostMeta(lambda: HTTPConfig(), asJSON=False))
    wellKnown.putChild(b"host-meta.json", HostMeta(lambda: HTTPConfig(), asJSON=True))
    root.putChild(b".well-known", wellKnown)
    site = XMPPSite(root, lambda: HTTPConfig(), reactor=task.Clock())
    channel, transport = connect(site)
    path = b"/.well-known/host-meta.json" if asJSON else b"/.well-known/host-meta"
    channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return head.lower(), body


def test_hostMetaXRD() -> None:
    """
    XEP-0156 section 3: /.well-known/host-meta is an XRD document with a
    Link per endpoint, readable by any page (CORS).
    """
    head, body = hostMeta(asJSON=False)
    assert b"content-type: application/xrd+xml" in head
    assert b"access-control-allow-origin: *" in head
    # The chunked framing of the response is around the document.
    document = body[body.index(b"<?xml"):body.rindex(b">") + 1]
    parsed = domish.elementStream()
    roots: list[domish.Element] = []
    children: list[domish.Element] = []
    parsed.DocumentStartEvent = roots.append
    parsed.ElementEvent = children.append
    parsed.DocumentEndEvent = lambda: None
    parsed.parse(document)
    links = {child["rel"]: child["href"] for child in children}
    assert links == {
        "urn:xmpp:alt-connections:xbosh": "https://chat.example:5281/http-bind",
        "urn:xmpp:alt-connections:websocket": "wss://chat.example:5281/xmpp-websocket",
    }


def test_hostMetaJSON() -> None:
    """
    XEP-0156 section 3: /.well-known/host-meta.json is the JRD form.
    """
    head, body = hostMeta(asJSON=True)
    assert b"content-type: application/json" in head
    document = body[body.index(b"{"):body.rindex(b"}") + 1]
    links = {link["rel"]: link["href"] for link in json.loads(document)["links"]}
    assert links["urn:xmpp:alt-connections:websocket"] == "wss://chat.example:5281/xmpp-websocket"
    assert links["urn:xmpp:alt-connections:xbosh"] == "https://chat.example:5281/http-bind"


def test_paths() -> None:
    """
    The endpoints are where web clients look by default.
    """
    assert BOSH_PATH == b"http-bind"
    assert WEBSOCKET_PATH == b"xmpp-websocket"


class ChainReporter(resource.Resource):
    """
    Answers with the SHA-256 of the client leaf connectionOf() sees.
    """

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        facts = connectionOf(request)
        if facts.leaf is None:
            return b"none"
        return facts.leaf.fingerprint(hashes.SHA256()).hex().encode()


class HTTPSListenerTests(unittest.TestCase):
    """
    The HTTPS listener over real TLS on loopback.
    """

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp, True)
        from xmppcert.x509 import writeServerCertificate

        writeServerCertificate(self.tmp / "server.crt", self.tmp / "server.key", ["localhost"])
        config = makeConfig(self.tmp, data_dir=str(self.tmp))
        factory = httpsContextFactory(config)
        site = XMPPSite(_rooted(ChainReporter()), lambda: HTTPConfig())
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        d = endpoint.listen(factory.wrapFactory(site))  # type: ignore[arg-type]

        def listening(port: Any) -> None:
            self.port = port
            self.addCleanup(port.stopListening)

        return d.addCallback(listening)

    def clientCertificate(self) -> tuple[Path, Path, x509.Certificate]:
        # A self-signed client certificate, as gencert makes.
        key = generateClientKey()
        certificate = issueClientCertificate(["alice@localhost"], key)
        certPath, keyPath = self.tmp / "c.crt", self.tmp / "c.key"
        certPath.write_bytes(certificatePEM(certificate))
        keyPath.write_bytes(privateKeyPEM(key))
        return certPath, keyPath, certificate

    def get(self, clientCert: tuple[Path, Path] | None) -> Any:
        port = self.port.getHost().port

        def fetch() -> tuple[str | None, bytes]:
            context = ssl.create_default_context(cafile=str(self.tmp / "server.crt"))
            context.set_alpn_protocols(["h2", "http/1.1"])
            if clientCert is not None:
                context.load_cert_chain(str(clientCert[0]), str(clientCert[1]))
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
                    return tls.selected_alpn_protocol(), data

        return threads.deferToThread(fetch)

    async def test_alpnHTTP1(self) -> None:
        """
        The HTTPS listener negotiates ALPN http/1.1 (not h2, not
        xmpp-client).
        """
        alpn, data = await self.get(None)
        assert alpn == ALPN_HTTP1.decode()
        assert data.startswith(b"HTTP/1.1 200 ")
        assert data.endswith(b"none")

    async def test_clientCertificateSeen(self) -> None:
        """
        The certificate the client presented in the HTTPS handshake is the
        request's connection's leaf.
        """
        certPath, keyPath, certificate = self.clientCertificate()
        alpn, data = await self.get((certPath, keyPath))
        assert data.endswith(certificate.fingerprint(hashes.SHA256()).hex().encode())
