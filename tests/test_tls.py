"""
Tests for L{xmppcert.tls}: loading the server certificate, the context
options, and a real handshake on loopback.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
from OpenSSL import SSL
from twisted.internet import endpoints, protocol, reactor, threads
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, ISSLTransport
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from xmppcert.tls import (
    _TLS_WRAPPER_DECLARATIONS,
    ALPN_XMPP_CLIENT,
    ServerTLSContextFactory,
    TLSConfigurationError,
)
from xmppcert.x509 import generateServerCertificate

DOMAIN = "example.com"


def writePair(directory: Path, name: str = "server", domains: tuple[str, ...] = (DOMAIN,)) -> tuple[Path, Path]:
    keyPEM, certPEM = generateServerCertificate(list(domains))
    certPath = directory / f"{name}.crt"
    keyPath = directory / f"{name}.key"
    certPath.write_bytes(certPEM)
    keyPath.write_bytes(keyPEM)
    return certPath, keyPath


def test_fromFiles(tmp_path: Path) -> None:
    """
    A generated certificate and key load into a context factory that
    provides IOpenSSLServerConnectionCreator and makes server connections.
    """
    certPath, keyPath = writePair(tmp_path)
    factory = ServerTLSContextFactory.fromFiles(certPath, keyPath)
    assert verifyObject(IOpenSSLServerConnectionCreator, factory)
    connection = factory.serverConnectionForTLS(object())
    assert isinstance(connection, SSL.Connection)
    assert connection.get_context() is factory.options.getContext()


def test_fromFilesWithChain(tmp_path: Path) -> None:
    """
    The certificate file may carry a chain: leaf first, then more
    certificates; the key must match the leaf.
    """
    certPath, keyPath = writePair(tmp_path)
    otherCert, _ = writePair(tmp_path, "other")
    certPath.write_bytes(certPath.read_bytes() + otherCert.read_bytes())
    ServerTLSContextFactory.fromFiles(certPath, keyPath)
    with pytest.raises(TLSConfigurationError):
        ServerTLSContextFactory.fromFiles(otherCert, keyPath)


def test_mismatchedKey(tmp_path: Path) -> None:
    """
    A key that is not the certificate's raises TLSConfigurationError naming
    both files.
    """
    certPath, _ = writePair(tmp_path, "first")
    _, otherKey = writePair(tmp_path, "second")
    with pytest.raises(TLSConfigurationError) as info:
        ServerTLSContextFactory.fromFiles(certPath, otherKey)
    assert str(otherKey) in str(info.value)
    assert str(certPath) in str(info.value)


@pytest.mark.parametrize("which", ["certificate", "key"])
def test_missingFile(tmp_path: Path, which: str) -> None:
    """
    An unreadable file raises TLSConfigurationError naming that file.
    """
    certPath, keyPath = writePair(tmp_path)
    missing = tmp_path / "missing.pem"
    args = (missing, keyPath) if which == "certificate" else (certPath, missing)
    with pytest.raises(TLSConfigurationError) as info:
        ServerTLSContextFactory.fromFiles(*args)
    assert str(missing) in str(info.value)


def test_directoryInsteadOfFile(tmp_path: Path) -> None:
    """
    A directory where a file should be raises TLSConfigurationError naming
    it.
    """
    _, keyPath = writePair(tmp_path)
    with pytest.raises(TLSConfigurationError) as info:
        ServerTLSContextFactory.fromFiles(tmp_path, keyPath)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("which", ["certificate", "key"])
@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"],
    ids=["empty", "garbage", "bad-pem-body"],
)
def test_garbagePEM(tmp_path: Path, which: str, content: bytes) -> None:
    """
    A file without a usable PEM certificate or key raises
    TLSConfigurationError naming it.
    """
    certPath, keyPath = writePair(tmp_path)
    target = certPath if which == "certificate" else keyPath
    target.write_bytes(content)
    with pytest.raises(TLSConfigurationError) as info:
        ServerTLSContextFactory.fromFiles(certPath, keyPath)
    assert str(target) in str(info.value)


def test_encryptedKey(tmp_path: Path) -> None:
    """
    An encrypted key cannot be used unattended: TLSConfigurationError.
    """
    from cryptography.hazmat.primitives import serialization

    certPath, keyPath = writePair(tmp_path)
    key = serialization.load_pem_private_key(keyPath.read_bytes(), password=None)
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSConfigurationError) as info:
        ServerTLSContextFactory.fromFiles(certPath, keyPath)
    assert str(keyPath) in str(info.value)


def test_releaseBuffers(tmp_path: Path) -> None:
    """
    Memory per idle stream: the context releases the buffers of idle
    connections (SSL_MODE_RELEASE_BUFFERS).
    """
    certPath, keyPath = writePair(tmp_path)
    context = ServerTLSContextFactory.fromFiles(certPath, keyPath).options.getContext()
    # set_mode ORs the bits in and returns the resulting mode; 0 adds nothing.
    mode = context.set_mode(0)
    if not isinstance(mode, int):
        pytest.skip("pyOpenSSL does not report the context mode")
    assert mode & SSL.MODE_RELEASE_BUFFERS


# --- a real handshake -------------------------------------------------------


class Probe(protocol.Protocol):
    """
    Records whether the transport it got is a TLS one, and greets.
    """

    def connectionMade(self) -> None:
        self.factory.secure.append(ISSLTransport.providedBy(self.transport))
        self.factory.declarations.append(getattr(self.transport, "__provides__", None))
        self.transport.write(b"hello")  # type: ignore[union-attr]


class ProbeFactory(protocol.Factory):
    protocol = Probe

    def __init__(self) -> None:
        self.secure: list[bool] = []
        self.declarations: list[object] = []


def clientHandshake(port: int, caFile: Path, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> dict[str, Any]:
    """
    Connect with the stdlib client (in a thread), verify the server's
    certificate for DOMAIN, and report the negotiated version and ALPN.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(caFile))
    context.minimum_version = minimum
    context.maximum_version = maximum
    if maximum < ssl.TLSVersion.TLSv1_2:
        # Let the client offer old versions at all, so the server refuses them.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.set_alpn_protocols(["xmpp-client"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tlsSocket:
            data = tlsSocket.recv(5)
            return {
                "version": tlsSocket.version(),
                "alpn": tlsSocket.selected_alpn_protocol(),
                "data": data,
            }


class HandshakeTests(unittest.TestCase):
    """
    A real TLS handshake on a loopback port with the server's factory.
    """

    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.certPath, keyPath = writePair(directory)
        self.factory = ServerTLSContextFactory.fromFiles(self.certPath, keyPath)
        self.probe = ProbeFactory()

    async def listen(self) -> int:
        endpoint = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1")
        port = await endpoint.listen(self.factory.wrapFactory(self.probe))
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    async def test_handshake(self) -> None:
        """
        XEP-0368 and RFC 7590: a client completes the handshake with TLS 1.2
        or later, verifies the certificate for the domain, and gets ALPN
        xmpp-client; the stream's transport provides ISSLTransport.
        """
        port = await self.listen()
        result = await threads.deferToThread(
            clientHandshake, port, self.certPath, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED
        )
        assert result["version"] in ("TLSv1.2", "TLSv1.3")
        assert result["alpn"] == ALPN_XMPP_CLIENT.decode()
        assert result["data"] == b"hello"
        assert self.probe.secure == [True]

    async def test_wrapperDeclarationsKept(self) -> None:
        """
        Login cost: the interface declarations Twisted's TLS wrapper makes
        for each connection are the ones held at import, not built again.
        """
        port = await self.listen()
        await threads.deferToThread(
            clientHandshake, port, self.certPath, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED
        )
        [declaration] = self.probe.declarations
        assert any(declaration is kept for kept in _TLS_WRAPPER_DECLARATIONS)

    async def test_tls12(self) -> None:
        """
        RFC 7590 §3.1: TLS 1.2 is supported.
        """
        port = await self.listen()
        result = await threads.deferToThread(
            clientHandshake, port, self.certPath, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2
        )
        assert result["version"] == "TLSv1.2"
        assert result["alpn"] == "xmpp-client"

    async def test_tls11Refused(self) -> None:
        """
        RFC 8996 / RFC 7590: TLS 1.1 is refused by the server (a protocol
        version alert, not a client-side refusal).
        """
        port = await self.listen()
        with pytest.raises(ssl.SSLError) as info:
            await threads.deferToThread(
                clientHandshake, port, self.certPath, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1
            )
        assert "NO_PROTOCOLS_AVAILABLE" not in str(info.value)
        assert "VERSION" in str(info.value).upper()
