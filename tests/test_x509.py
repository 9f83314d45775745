# -*- test-case-name: tests.test_x509 -*-
"""
Tests for L{xmppcert.x509}.
"""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL

from xmppcert.x509 import CLOCK_SKEW, generateServerCertificate, writeServerCertificate

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def generated() -> tuple[bytes, bytes]:
    return generateServerCertificate(["example.com", "chat.example.org"], days=30, now=NOW)


def test_parsesWithNames(generated: tuple[bytes, bytes]) -> None:
    """
    The certificate parses; CN is the first domain and subjectAltName holds
    every domain as a DNS name.
    """
    cert = x509.load_pem_x509_certificate(generated[1])
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["example.com"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.com", "chat.example.org"]


def test_selfSigned(generated: tuple[bytes, bytes]) -> None:
    """
    The certificate is self-signed: issuer is subject, and its own key
    verifies its signature.
    """
    cert = x509.load_pem_x509_certificate(generated[1])
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)


def test_keyMatches(generated: tuple[bytes, bytes]) -> None:
    """
    The key is an unencrypted PKCS#8 EC P-256 key whose public half is the
    certificate's.
    """
    keyPEM, certPEM = generated
    assert keyPEM.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(keyPEM, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    cert = x509.load_pem_x509_certificate(certPEM)
    assert cert.public_key() == key.public_key()


def test_extensions(generated: tuple[bytes, bytes]) -> None:
    """
    An end-entity TLS server certificate: basicConstraints CA:FALSE and
    keyUsage digitalSignature (both critical), extendedKeyUsage serverAuth,
    and a subjectKeyIdentifier of its key.
    """
    cert = x509.load_pem_x509_certificate(generated[1])
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_validity(generated: tuple[bytes, bytes]) -> None:
    """
    notBefore is five minutes before now (clock skew), notAfter now + days,
    and serials are random.
    """
    cert = x509.load_pem_x509_certificate(generated[1])
    assert CLOCK_SKEW == datetime.timedelta(minutes=5)
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=30)
    other = x509.load_pem_x509_certificate(generateServerCertificate(["example.com"])[1])
    assert other.serial_number != cert.serial_number


def test_defaultValidity() -> None:
    """
    By default the certificate is valid from (about) now for 825 days.
    """
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = x509.load_pem_x509_certificate(generateServerCertificate(["example.com"])[1])
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=825) + CLOCK_SKEW
    assert cert.not_valid_before_utc <= before - CLOCK_SKEW + datetime.timedelta(seconds=5)


def test_internationalisedDomain() -> None:
    """
    An internationalised domain is written as its A-label.
    """
    cert = x509.load_pem_x509_certificate(generateServerCertificate(["bücher.example"])[1])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example"]


def test_badArguments() -> None:
    """
    No domains, or a validity below one day, raise ValueError.
    """
    with pytest.raises(ValueError):
        generateServerCertificate([])
    with pytest.raises(ValueError):
        generateServerCertificate(["example.com"], days=0)


def test_writeFiles(tmp_path: Path) -> None:
    """
    writeServerCertificate writes the key with mode 0600 (even over an
    existing world-readable file), leaves no temporary files, and OpenSSL
    loads the pair as matching.
    """
    certPath, keyPath = tmp_path / "tls" / "server.crt", tmp_path / "tls" / "server.key"
    keyPath.parent.mkdir()
    keyPath.write_text("old")
    keyPath.chmod(0o644)
    writeServerCertificate(certPath, keyPath, ["example.com"])
    assert stat.S_IMODE(keyPath.stat().st_mode) == 0o600
    assert stat.S_IMODE(certPath.stat().st_mode) == 0o644
    assert sorted(p.name for p in keyPath.parent.iterdir()) == ["server.crt", "server.key"]
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate_file(str(certPath))
    context.use_privatekey_file(str(keyPath))
    context.check_privatekey()
