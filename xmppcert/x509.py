# -*- test-case-name: tests.test_x509 -*-
"""
X.509 certificates, made with the C{cryptography} library.

For now: a self-signed server certificate for the served domains, which
C{xmppcert init} writes so that the server can offer TLS at once. Clients
will not trust it; replace it with one from a CA (for example ACME) for
production use.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How far back notBefore is set, so that a peer whose clock is slightly
#: behind still accepts a certificate made just now.
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: Default validity in days: the longest that browsers and most TLS
#: libraries have accepted for server certificates (CA/B Forum, 2018).
DEFAULT_DAYS = 825

#: Longest value X.509 allows for a common name (RFC 5280, ub-common-name).
_MAX_COMMON_NAME = 64


def _aLabel(domain: str) -> str:
    # Certificates carry DNS names as ASCII (A-labels, RFC 5280 section 4.2.1.6).
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise ValueError(f"{domain!r} is not a valid domain name: {e}") from None


def generateServerCertificate(
    domains: Sequence[str],
    days: int = DEFAULT_DAYS,
    now: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """
    Make a new EC P-256 key and a self-signed server certificate for it.

    The subject CN is the first domain; every domain is a DNS name in
    subjectAltName, which is what clients check (RFC 6125, RFC 6120 section
    13.7.1.2). The certificate is an end-entity certificate (basicConstraints
    CA:FALSE) for TLS servers only (keyUsage digitalSignature,
    extendedKeyUsage serverAuth).

    @param domains: the served domains, at least one; internationalised
        names are converted to A-labels.
    @param days: validity in days from C{now}.
    @param now: the current time (timezone-aware); the system clock if
        C{None}.
    @return: (private key as unencrypted PKCS#8 PEM, certificate as PEM).
    @raise ValueError: no domains, a domain that cannot be encoded, or
        C{days} below 1.
    """
    if not domains:
        raise ValueError("at least one domain is required")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    names = list(dict.fromkeys(_aLabel(d) for d in domains))

    key = ec.generate_private_key(ec.SECP256R1())
    if len(names[0]) <= _MAX_COMMON_NAME:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    else:
        # A longer name cannot be a CN; subjectAltName carries it anyway.
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xmppcert")])
    publicKey = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(publicKey), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    keyPEM = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return keyPEM, certificate.public_bytes(serialization.Encoding.PEM)


def _writeFile(path: Path, data: bytes, mode: int) -> None:
    """
    Replace C{path} atomically with a new file of C{data}, created with
    C{mode} from the start: a reader sees the old file or the whole new one,
    and the content is never readable by others, even briefly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with O_EXCL and mode 0600.
    fd, tempName = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tempName, path)
    except BaseException:
        os.unlink(tempName)
        raise


def writeServerCertificate(
    certPath: Path,
    keyPath: Path,
    domains: Sequence[str],
    days: int = DEFAULT_DAYS,
) -> None:
    """
    Generate a key and self-signed certificate with
    L{generateServerCertificate} and write them, replacing existing files.

    Each file is replaced atomically. The key file has mode 0600 from its
    creation; the certificate 0644.

    @raise ValueError: see L{generateServerCertificate}.
    @raise OSError: a file cannot be written.
    """
    keyPEM, certPEM = generateServerCertificate(domains, days)
    _writeFile(Path(keyPath), keyPEM, 0o600)
    _writeFile(Path(certPath), certPEM, 0o644)


__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_DAYS",
    "generateServerCertificate",
    "writeServerCertificate",
]
