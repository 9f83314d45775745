# -*- test-case-name: tests.test_tls -*-
"""
TLS for client streams: one pyOpenSSL context factory, used both for STARTTLS
(RFC 6120 section 5) and for direct TLS (XEP-0368), so that both paths are
configured identically.

Twisted's L{CertificateOptions} keeps the defaults that matter (TLS >= 1.2,
its cipher list, ALPN); this module wraps it in an
L{IOpenSSLServerConnectionCreator} so each connection can be adjusted before
the handshake, which is where a client-certificate request is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet import ssl, tcp
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, ISSLTransport
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementedBy, implementer
from zope.interface.declarations import Provides

from xmppcert import _log

log = Logger(observer=_log.observer)

#: ALPN protocol identifier for client-to-server XMPP (XEP-0368 section 3).
ALPN_XMPP_CLIENT = b"xmpp-client"
#: ALPN protocol identifier of the HTTPS listener (BOSH, WebSocket):
#: HTTP/1.1 only, as WebSocket upgrades need it.
ALPN_HTTP1 = b"http/1.1"

#: Client-certificate policies (Openfire's names): never ask; ask, and let
#: clients without one use passwords; ask, and fail the handshake without one.
POLICIES = ("disabled", "wanted", "needed")

#: A client chain longer than this is not looked at (a bound on work per login).
MAX_CHAIN_LENGTH = 8

#: TLS 1.2 cipher suites: forward secret (ECDHE) AEAD only, no static RSA
#: key exchange, no CBC, no SHA-1 MACs (RFC 9325 section 4.2). TLS 1.3's
#: suites are all AEAD with forward secrecy and are left as OpenSSL has them.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

#: C{tls.min_version} to Twisted's names.
MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# Twisted's TLSMemoryBIOProtocol.makeConnection declares each interface of
# its TCP transport on itself, one at a time, and each declaration replaces
# the one before. zope.interface keeps such declarations in a cache only
# while something holds them, so every TLS connection built them afresh
# (their resolution order included): a busy server spent several percent
# of a login there. Held here, they are built once.
# (Direct TLS: ProtocolWrapper.makeConnection then declares them all at once.)
_TLS_WRAPPER_DECLARATIONS = tuple(
    Provides(TLSMemoryBIOFactory.protocol, interface)
    for interface in (ISSLTransport, *implementedBy(tcp.Server), implementedBy(tcp.Server))
)


class TLSConfigurationError(ValueError):
    """
    The server certificate or key cannot be used.
    """


def _loadCertificateOptions(
    certificatePath: Path, keyPath: Path, minVersion: str = "1.2", alpn: bytes = ALPN_XMPP_CLIENT
) -> ssl.CertificateOptions:
    try:
        certPEM = certificatePath.read_bytes()
        keyPEM = keyPath.read_bytes()
    except OSError as e:
        raise TLSConfigurationError(f"cannot read {e.filename}: {e.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(certPEM)
    except (ValueError, x509.InvalidVersion) as e:
        raise TLSConfigurationError(f"{certificatePath}: no PEM certificate ({e})") from None
    try:
        key = serialization.load_pem_private_key(keyPEM, password=None)
    except (ValueError, TypeError) as e:
        raise TLSConfigurationError(f"{keyPath}: not an unencrypted PEM private key ({e})") from None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise TLSConfigurationError(f"{keyPath} is not the key of the certificate in {certificatePath}")
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),  # type: ignore[arg-type]
        certificate=crypto.X509.from_cryptography(chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in chain[1:]],
        raiseMinimumTo=MIN_VERSIONS[minVersion],
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(TLS12_CIPHERS),
        acceptableProtocols=[alpn],
    )


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLSContextFactory:
    """
    Creates the server side of every client TLS connection.

    @ivar options: the wrapped L{ssl.CertificateOptions}.
    """

    def __init__(
        self,
        options: ssl.CertificateOptions,
        clientCertificates: str = "wanted",
        clientCAs: Sequence[x509.Certificate] = (),
    ) -> None:
        """
        @param clientCertificates: one of L{POLICIES}.
        @param clientCAs: CA certificates whose names are sent with the
            certificate request, to help clients pick a certificate.
        """
        if clientCertificates not in POLICIES:
            raise ValueError(f"unknown client certificate policy {clientCertificates!r}")
        self.options = options
        self.clientCertificates = clientCertificates
        context = options.getContext()
        # Idle streams are the common case for XMPP: give the read/write
        # buffers of an idle connection back to the allocator.
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        if clientCertificates != "disabled":
            mode = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
            if clientCertificates == "needed":
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            # Request a certificate, accept any: self-signed certificates must
            # reach SASL, where the checkers decide (XEP-0257 section 3).
            context.set_verify(mode, _acceptAnyCertificate)
            # OpenSSL refuses to resume sessions that requested a client
            # certificate unless a session id context is set.
            context.set_session_id(b"xmppcert-c2s")
            if clientCAs:
                context.set_client_ca_list(
                    [crypto.X509.from_cryptography(ca).get_subject() for ca in clientCAs]
                )

    @classmethod
    def fromFiles(
        cls,
        certificatePath: Path,
        keyPath: Path,
        clientCertificates: str = "wanted",
        clientCAs: Sequence[x509.Certificate] = (),
        minVersion: str = "1.2",
        alpn: bytes = ALPN_XMPP_CLIENT,
    ) -> ServerTLSContextFactory:
        """
        @param certificatePath: PEM file, leaf first, then any intermediates.
        @param keyPath: PEM file with the unencrypted private key.
        @param minVersion: C{"1.2"} or C{"1.3"}.
        @param alpn: the one ALPN protocol offered (L{ALPN_XMPP_CLIENT}, or
            L{ALPN_HTTP1} on the HTTPS listener).
        @raise TLSConfigurationError: the files are unreadable or do not match.
        """
        return cls(
            _loadCertificateOptions(certificatePath, keyPath, minVersion, alpn), clientCertificates, clientCAs
        )

    def replaceWith(self, other: ServerTLSContextFactory) -> None:
        """
        Serve every new connection with C{other}'s certificate, key and
        settings (a renewed certificate, new client CAs), in one step: a
        connection gets either the old context or the new one, never a mix.
        Connections already made keep the context they were made with.
        """
        self.options, self.clientCertificates = other.options, other.clientCertificates

    def certificate(self) -> x509.Certificate:
        """
        @return: the server certificate new connections are served with.
        """
        leaf = self.options.certificate
        assert leaf is not None
        return leaf.to_cryptography()

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """
        @return: a new server-side L{SSL.Connection} for one client.
        """
        return SSL.Connection(self.options.getContext(), None)

    def wrapFactory(self, factory: Factory) -> TLSMemoryBIOFactory:
        """
        Wrap a stream factory so its connections speak TLS from the first
        byte (XEP-0368 direct TLS).
        """
        return TLSMemoryBIOFactory(self, False, factory)


def _acceptAnyCertificate(
    connection: SSL.Connection, certificate: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    return True


def _tlsConnection(transport: object) -> SSL.Connection | None:
    # Direct TLS: the stream's transport is the TLS protocol itself. STARTTLS:
    # the TCP transport's protocol was replaced by the TLS protocol.
    for candidate in (transport, getattr(transport, "protocol", None)):
        if isinstance(candidate, TLSMemoryBIOProtocol):
            handle = candidate.getHandle()
            return handle if isinstance(handle, SSL.Connection) else None
    return None


def peerCertificateChain(transport: object) -> list[x509.Certificate]:
    """
    The client's certificate chain, leaf first, as presented in the
    handshake; empty when there was none (or no TLS).

    On the server side OpenSSL's peer chain does not include the leaf, so it
    is put in front here. Nothing in it has been verified. OpenSSL accepts
    encodings that C{cryptography} refuses (BER where DER is due): a leaf
    like that counts as no certificate, and such a certificate further up
    the chain is left out.
    """
    connection = _tlsConnection(transport)
    if connection is None:
        return []
    leaf = connection.get_peer_certificate()
    if leaf is None:
        return []
    converted = _toCryptography(leaf)
    if converted is None:
        log.info("Ignoring an unparsable client certificate")
        return []
    chain = [converted]
    for other in (connection.get_peer_cert_chain() or [])[: MAX_CHAIN_LENGTH + 1]:
        certificate = _toCryptography(other)
        if certificate is not None and certificate != converted and len(chain) < MAX_CHAIN_LENGTH:
            chain.append(certificate)
    return chain


def _toCryptography(certificate: crypto.X509) -> x509.Certificate | None:
    try:
        return certificate.to_cryptography()
    except (ValueError, x509.InvalidVersion):
        return None


def loadCABundle(path: Path) -> list[x509.Certificate]:
    """
    @raise TLSConfigurationError: unreadable, or no PEM certificate in it.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TLSConfigurationError(f"cannot read {path}: {e.strerror}") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as e:
        raise TLSConfigurationError(f"{path}: no PEM certificates ({e})") from None


__all__ = [
    "ALPN_HTTP1",
    "ALPN_XMPP_CLIENT",
    "POLICIES",
    "ServerTLSContextFactory",
    "TLS12_CIPHERS",
    "TLSConfigurationError",
    "loadCABundle",
    "peerCertificateChain",
]
