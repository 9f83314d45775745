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

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

#: ALPN protocol identifier for client-to-server XMPP (XEP-0368 section 3).
ALPN_XMPP_CLIENT = b"xmpp-client"


class TLSConfigurationError(ValueError):
    """
    The server certificate or key cannot be used.
    """


def _loadCertificateOptions(certificatePath: Path, keyPath: Path) -> ssl.CertificateOptions:
    try:
        certPEM = certificatePath.read_bytes()
        keyPEM = keyPath.read_bytes()
    except OSError as e:
        raise TLSConfigurationError(f"cannot read {e.filename}: {e.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(certPEM)
    except ValueError as e:
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
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableProtocols=[ALPN_XMPP_CLIENT],
    )


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLSContextFactory:
    """
    Creates the server side of every client TLS connection.

    @ivar options: the wrapped L{ssl.CertificateOptions}.
    """

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self.options = options
        context = options.getContext()
        # Idle streams are the common case for XMPP: give the read/write
        # buffers of an idle connection back to the allocator.
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)

    @classmethod
    def fromFiles(cls, certificatePath: Path, keyPath: Path) -> ServerTLSContextFactory:
        """
        @param certificatePath: PEM file, leaf first, then any intermediates.
        @param keyPath: PEM file with the unencrypted private key.
        @raise TLSConfigurationError: the files are unreadable or do not match.
        """
        return cls(_loadCertificateOptions(certificatePath, keyPath))

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


__all__ = ["ALPN_XMPP_CLIENT", "ServerTLSContextFactory", "TLSConfigurationError"]
