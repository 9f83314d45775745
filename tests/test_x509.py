# -*- test-case-name: tests.test_x509 -*-
"""
Tests for L{xmppcert.x509}.
"""

from __future__ import annotations

import datetime
import hashlib
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.words.protocols.jabber import jid

from xmppcert.x509 import (
    CLOCK_SKEW,
    MAX_CERTIFICATE_SIZE,
    XMPP_ADDR_OID,
    CertificateError,
    Validity,
    _decodeXmppAddr,
    certificateFacts,
    certificatePEM,
    displayFingerprint,
    emailAddresses,
    fingerprint,
    generateClientKey,
    generateServerCertificate,
    hasClientAuth,
    isSelfSigned,
    issueCACertificate,
    issueClientCertificate,
    loadCertificate,
    loadCertificateFile,
    privateKeyPEM,
    toPKCS12,
    validity,
    writePrivateKey,
    writeServerCertificate,
    xmppAddrs,
)

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


# ---------------------------------------------------------------------------
# Client certificates
# ---------------------------------------------------------------------------

requiresOpenSSL = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command-line tool is not installed"
)

#: One key for the many certificates the tests make: generating is slow.
KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsaKey() -> rsa.RSAPrivateKey:
    key = generateClientKey("rsa", rsaBits=2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _tlv(tag: int, content: bytes) -> bytes:
    """
    DER tag-length-value, for certificates built byte by byte.
    """
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _handMade(
    names: Sequence[x509.GeneralName] | None,
    *,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """
    A self-signed certificate with exactly the given subjectAltName (none
    if C{None}) and extendedKeyUsage, and nothing else.
    """
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hand made")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - CLOCK_SKEW)
        .not_valid_after(NOW + datetime.timedelta(days=30))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(KEY, hashes.SHA256())


def _withXmppAddr(value: str) -> x509.Certificate:
    """
    A certificate whose one xmppAddr is C{value} as a DER UTF8String,
    without the checks issueClientCertificate makes.
    """
    return _handMade([x509.OtherName(XMPP_ADDR_OID, asn1.encode_der(value))])


def _withRawXmppAddr(value: bytes) -> x509.Certificate:
    """
    A correctly signed certificate whose xmppAddr otherName holds exactly
    C{value}, even bytes that are not one DER value.

    cryptography's builder refuses such values, so the certificate is made
    with a placeholder of the same length, patched, and signed again.
    """
    assert 2 <= len(value) < 0x80
    placeholder = _tlv(0x04, b"\xaa" * (len(value) - 2))
    cert = _handMade([x509.OtherName(XMPP_ADDR_OID, placeholder)])
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(placeholder) == 1
    patched = tbs.replace(placeholder, value)
    der = cert.public_bytes(serialization.Encoding.DER)
    rest = der[der.index(tbs) + len(tbs) :]
    signatureAlgorithm = rest[: 2 + rest[1]]
    signature = KEY.sign(patched, ec.ECDSA(hashes.SHA256()))
    return x509.load_der_x509_certificate(
        _tlv(0x30, patched + signatureAlgorithm + _tlv(0x03, b"\x00" + signature))
    )


def _jids(*texts: str) -> list[jid.JID]:
    return [jid.JID(t) for t in texts]


# xmppAddrs of issued certificates


def test_xmppAddrsOne() -> None:
    """
    RFC 6120 section 13.7.1.4: id-on-xmppAddr is a UTF8String in an
    otherName; an issued certificate carries its JID that way, and
    xmppAddrs reads it back as a JID.
    """
    cert = issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.OtherName) == [
        x509.OtherName(XMPP_ADDR_OID, b"\x0c\x16hamlet@shakespeare.lit")
    ]
    addrs = xmppAddrs(cert)
    assert addrs == _jids("hamlet@shakespeare.lit")
    assert all(isinstance(a, jid.JID) for a in addrs)


def test_xmppAddrsSeveral() -> None:
    """
    XEP-0178 section 2: a certificate may name several JIDs; all come back
    in order, full JIDs (XEP-0257 section 3) with their resource.
    """
    cert = issueClientCertificate(
        ["hamlet@shakespeare.lit", "horatio@shakespeare.lit/Elsinore", "ophelia@denmark.lit"],
        KEY,
        now=NOW,
    )
    assert xmppAddrs(cert) == _jids(
        "hamlet@shakespeare.lit", "horatio@shakespeare.lit/Elsinore", "ophelia@denmark.lit"
    )
    assert xmppAddrs(cert)[1].resource == "Elsinore"


def test_xmppAddrsPrepared() -> None:
    """
    RFC 7622 section 3.3 (nodeprep in Twisted): the localpart is
    case-folded; issued certificates store the prepared form, and a
    certificate that stores another form still yields the prepared JID.
    Duplicates after preparation are issued once.
    """
    cert = issueClientCertificate(["Hamlet@Shakespeare.LIT", "hamlet@shakespeare.lit"], KEY, now=NOW)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [o.value for o in san.get_values_for_type(x509.OtherName)] == [
        asn1.encode_der("hamlet@shakespeare.lit")
    ]
    assert xmppAddrs(cert) == _jids("hamlet@shakespeare.lit")
    assert xmppAddrs(_withXmppAddr("HAMLET@Shakespeare.Lit/Res")) == _jids(
        "hamlet@shakespeare.lit/Res"
    )


def test_xmppAddrsInternationalised() -> None:
    """
    RFC 6120 section 13.7.1.4 / RFC 7622: JIDs are Unicode; a non-ASCII
    localpart survives encoding (UTF-8 in the UTF8String) and preparation,
    case-folded but otherwise unchanged.
    """
    cert = issueClientCertificate(["JÜRGEN@münchen.example"], KEY, now=NOW)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.OtherName)[0].value == asn1.encode_der(
        "jürgen@münchen.example"
    )
    (addr,) = xmppAddrs(cert)
    assert addr.user == "jürgen"
    assert addr.host == "münchen.example"


def test_xmppAddrsNone() -> None:
    """
    XEP-0178 section 2: a certificate without subjectAltName, or with only
    DNS names and other otherName types, names no JID: an empty list, not
    an error.
    """
    assert xmppAddrs(_handMade(None)) == []
    assert xmppAddrs(_handMade([x509.DNSName("shakespeare.lit")])) == []
    upn = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
    assert xmppAddrs(_handMade([x509.OtherName(upn, asn1.encode_der("hamlet@ad.lit"))])) == []
    mixed = _handMade(
        [
            x509.DNSName("shakespeare.lit"),
            x509.OtherName(upn, asn1.encode_der("x")),
            x509.OtherName(XMPP_ADDR_OID, asn1.encode_der("hamlet@shakespeare.lit")),
        ]
    )
    assert xmppAddrs(mixed) == _jids("hamlet@shakespeare.lit")


# Strictness

#: Values of an xmppAddr that are not a DER UTF8String, and why.
BAD_DER = {
    "IA5String instead of UTF8String": b"\x16\x16hamlet@shakespeare.lit",
    "UTF8String with trailing bytes": b"\x0c\x16hamlet@shakespeare.lit\x05\x00",
    "invalid UTF-8": b"\x0c\x09hamlet@\xff\xfe",
    "UTF-8 surrogate": b"\x0c\x0ahamlet@\xed\xa0\x80",
    "length byte too large": b"\x0c\x17hamlet@shakespeare.lit",
    "length byte too small": b"\x0c\x15hamlet@shakespeare.lit",
    "indefinite length": b"\x0c\x80hamlet@shakespeare.lit\x00\x00",
    "non-minimal long length": b"\x0c\x81\x16hamlet@shakespeare.lit",
    "constructed UTF8String": b"\x2c\x18\x0c\x16hamlet@shakespeare.lit",
}


@pytest.mark.parametrize("value", BAD_DER.values(), ids=list(BAD_DER))
def test_strictDecoding(value: bytes) -> None:
    """
    RFC 6120 section 13.7.1.4 and X.690 (DER): the value of an xmppAddr is
    exactly one DER UTF8String of valid UTF-8; anything else is refused,
    by the decoder itself and for a whole certificate, and certificateFacts
    reports it instead of raising.
    """
    with pytest.raises(CertificateError):
        _decodeXmppAddr(value)
    cert = _withRawXmppAddr(value)
    assert isSelfSigned(cert)  # a proper certificate apart from that value
    with pytest.raises(CertificateError):
        xmppAddrs(cert)
    facts = certificateFacts(cert)
    assert facts.xmppAddrs == ()
    assert facts.xmppAddrError


def test_strictDecodingAccepts() -> None:
    """
    The counterpart of the strictness tests: the well-formed encoding of
    the same JID decodes, by the same path.
    """
    value = b"\x0c\x16hamlet@shakespeare.lit"
    assert _decodeXmppAddr(value) == "hamlet@shakespeare.lit"
    assert xmppAddrs(_withRawXmppAddr(value)) == _jids("hamlet@shakespeare.lit")


BAD_JIDS = {
    "domain-only": "shakespeare.lit",
    "empty localpart": "@shakespeare.lit",
    "two at signs": "a@b@c",
    "space in domain": "hamlet@shake speare.lit",
    "space in localpart": "ham let@shakespeare.lit",
    "empty label": "hamlet@shakespeare..lit",
    "empty resource": "hamlet@shakespeare.lit/",
    "empty": "",
    "NUL": "ham\x00let@shakespeare.lit",
    "localpart too long": "h" * 1024 + "@shakespeare.lit",
}


@pytest.mark.parametrize("text", BAD_JIDS.values(), ids=list(BAD_JIDS))
def test_invalidJID(text: str) -> None:
    """
    RFC 7622 (as applied by Twisted's JID preparation) and XEP-0178: an
    xmppAddr must be a valid JID naming a user; a domain-only or invalid
    one makes the certificate unusable, and issueClientCertificate refuses
    to write it.
    """
    cert = _withXmppAddr(text)
    with pytest.raises(CertificateError):
        xmppAddrs(cert)
    facts = certificateFacts(cert)
    assert facts.xmppAddrs == ()
    assert facts.xmppAddrError
    with pytest.raises(ValueError):
        issueClientCertificate([text], KEY, now=NOW)


def test_oneBadSpoilsAll() -> None:
    """
    Strictness: one bad xmppAddr among good ones refuses the certificate
    rather than silently using the others.
    """
    cert = _handMade(
        [
            x509.OtherName(XMPP_ADDR_OID, asn1.encode_der("hamlet@shakespeare.lit")),
            x509.OtherName(XMPP_ADDR_OID, b"\x16\x05a@b.c"),
        ]
    )
    with pytest.raises(CertificateError, match="UTF8String"):
        xmppAddrs(cert)


# The seeds' openssl recipe

CLIENT_CNF = """\
[req]
prompt = no
x509_extensions = v3_extensions
req_extensions = v3_extensions
distinguished_name = distinguished_name

[v3_extensions]
extendedKeyUsage = clientAuth
keyUsage = digitalSignature,keyEncipherment
basicConstraints = CA:FALSE
subjectAltName = @subject_alternative_name

[subject_alternative_name]
{otherNames}

[distinguished_name]
commonName = Your Name
emailAddress = hamlet@shakespeare.lit
"""


def _openssl(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        ["openssl", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _opensslRecipe(tmp_path: Path, *otherNames: str) -> x509.Certificate:
    """
    Run the recipe of the seeds (genrsa, req, x509 -req -signkey) with
    the given otherName lines, and load the certificate it makes.
    """
    (tmp_path / "client.cnf").write_text(CLIENT_CNF.format(otherNames="\n".join(otherNames)))
    _openssl(tmp_path, "genrsa", "-out", "client.key", "2048")
    _openssl(
        tmp_path, "req", "-key", "client.key", "-new", "-out", "client.req",
        "-config", "client.cnf", "-extensions", "v3_extensions",
    )  # fmt: skip
    _openssl(
        tmp_path, "x509", "-req", "-days", "365", "-in", "client.req", "-signkey", "client.key",
        "-out", "client.crt", "-extfile", "client.cnf", "-extensions", "v3_extensions",
    )  # fmt: skip
    return loadCertificateFile(tmp_path / "client.crt")


@requiresOpenSSL
def test_opensslRecipe(tmp_path: Path) -> None:
    """
    RFC 6120 section 13.7.1.4 / XEP-0178: the certificate of the seeds'
    openssl recipe (otherName FORMAT:UTF8) names hamlet@shakespeare.lit, is
    for clientAuth, self-signed, carries the e-mail address, and reads
    exactly like one issueClientCertificate makes.
    """
    cert = _opensslRecipe(
        tmp_path, "otherName.0 = 1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:hamlet@shakespeare.lit"
    )
    assert xmppAddrs(cert) == _jids("hamlet@shakespeare.lit")
    assert hasClientAuth(cert)
    assert isSelfSigned(cert)
    assert "hamlet@shakespeare.lit" in emailAddresses(cert)
    facts = certificateFacts(cert)
    assert facts.xmppAddrError is None
    assert facts.emails == ("hamlet@shakespeare.lit",)
    assert facts.keyDescription == "RSA 2048"
    assert facts.subject == "1.2.840.113549.1.9.1=hamlet@shakespeare.lit,CN=Your Name"
    ours = certificateFacts(issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW))
    assert (ours.xmppAddrs, ours.clientAuth, ours.selfSigned) == (
        facts.xmppAddrs,
        facts.clientAuth,
        facts.selfSigned,
    )
    # Our fingerprint display matches what openssl shows people.
    shown = _openssl(tmp_path, "x509", "-in", "client.crt", "-noout", "-fingerprint", "-sha256")
    assert shown.strip().endswith("=" + displayFingerprint(facts.fingerprint))


@requiresOpenSSL
def test_opensslRecipeTwoJIDs(tmp_path: Path) -> None:
    """
    XEP-0178 section 2: the recipe with otherName.1 names two JIDs, in order.
    """
    cert = _opensslRecipe(
        tmp_path,
        "otherName.0 = 1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:hamlet@shakespeare.lit",
        "otherName.1 = 1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:horatio@shakespeare.lit",
    )
    assert xmppAddrs(cert) == _jids("hamlet@shakespeare.lit", "horatio@shakespeare.lit")
    ours = issueClientCertificate(["hamlet@shakespeare.lit", "horatio@shakespeare.lit"], KEY)
    assert xmppAddrs(ours) == xmppAddrs(cert)


@requiresOpenSSL
def test_opensslRecipeFullJID(tmp_path: Path) -> None:
    """
    XEP-0257 section 3: the recipe with a full JID keeps the resource.
    """
    cert = _opensslRecipe(
        tmp_path, "otherName.0 = 1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:hamlet@shakespeare.lit/Elsinore"
    )
    assert xmppAddrs(cert) == _jids("hamlet@shakespeare.lit/Elsinore")


@requiresOpenSSL
def test_opensslRecipeIA5(tmp_path: Path) -> None:
    """
    RFC 6120 section 13.7.1.4: a common slip in the recipe, IA5 instead of
    UTF8, makes an xmppAddr that is not a UTF8String; it is refused.
    """
    cert = _opensslRecipe(tmp_path, "otherName.0 = 1.3.6.1.5.5.7.8.5;IA5:hamlet@shakespeare.lit")
    with pytest.raises(CertificateError, match="UTF8String"):
        xmppAddrs(cert)
    assert certificateFacts(cert).xmppAddrError


# Fingerprints and loading


def test_fingerprint() -> None:
    """
    XEP-0257: the storage key is the SHA-256 of the DER, 64 lower-case hex
    digits without separators.
    """
    cert = issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW)
    der = cert.public_bytes(serialization.Encoding.DER)
    fp = fingerprint(cert)
    assert fp == hashlib.sha256(der).hexdigest()
    assert len(fp) == 64 and fp == fp.lower()


def test_displayFingerprint() -> None:
    """
    Display: colon-separated upper-case pairs, as openssl shows them;
    anything that is not hex is refused.
    """
    assert displayFingerprint("ab01cd") == "AB:01:CD"
    fp = hashlib.sha256(b"x").hexdigest()
    shown = displayFingerprint(fp)
    assert len(shown) == 64 + 31
    assert shown.replace(":", "").lower() == fp
    for bad in ["", "abc", "zz", "ab:cd"]:
        with pytest.raises(ValueError):
            displayFingerprint(bad)


@pytest.fixture(scope="module")
def clientCert() -> x509.Certificate:
    return issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW)


def test_loadPEMAndDER(clientCert: x509.Certificate) -> None:
    """
    Loading: PEM (the first CERTIFICATE block, text and other blocks
    around it allowed, RFC 7468 section 5.2) and DER give the same
    certificate, even DER that happens to contain PEM markers.
    """
    pem = certificatePEM(clientCert)
    der = clientCert.public_bytes(serialization.Encoding.DER)
    assert loadCertificate(pem) == clientCert
    assert loadCertificate(der) == clientCert
    other = issueClientCertificate(["horatio@shakespeare.lit"], KEY, now=NOW)
    bundle = b"Subject: hamlet\n" + privateKeyPEM(KEY) + pem + certificatePEM(other) + b"bye\n"
    assert loadCertificate(bundle) == clientCert
    assert loadCertificate(pem.replace(b"\n", b"\r\n")) == clientCert
    marker = "-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----"
    tricky = _handMade(None, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, marker)]))
    assert loadCertificate(tricky.public_bytes(serialization.Encoding.DER)) == tricky


def test_loadGarbage(clientCert: x509.Certificate) -> None:
    """
    Loading: garbage, trailing bytes after the DER (also inside a PEM
    block), damaged base64, and PEM without a certificate raise
    CertificateError.
    """
    der = clientCert.public_bytes(serialization.Encoding.DER)
    pem = certificatePEM(clientCert)
    lines = pem.splitlines()
    damaged = b"\n".join([lines[0], b"!!" + lines[1][2:], *lines[2:]])
    import base64

    junkPEM = (
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(der + b"\x00")
        + b"-----END CERTIFICATE-----\n"
    )
    for bad in [b"", b"hello", b"\x30\x03\x02\x01\x01", der + b"\x00", der[:-1], damaged,
                junkPEM, privateKeyPEM(KEY)]:  # fmt: skip
        with pytest.raises(CertificateError):
            loadCertificate(bad)


def test_loadOversized() -> None:
    """
    Loading: a certificate larger than MAX_CERTIFICATE_SIZE (16 KiB of
    DER) is refused, as DER and as PEM, before it is parsed.
    """
    names = [x509.DNSName(f"host{i:04}.a-rather-long-domain.example") for i in range(600)]
    big = _handMade(names)
    der = big.public_bytes(serialization.Encoding.DER)
    assert len(der) > MAX_CERTIFICATE_SIZE
    for data in [der, certificatePEM(big), b"\x30" * (10 * 1024 * 1024)]:
        with pytest.raises(CertificateError, match="too large"):
            loadCertificate(data)


def test_loadFile(tmp_path: Path, clientCert: x509.Certificate) -> None:
    """
    Loading a file: works, and errors name the file.
    """
    path = tmp_path / "client.crt"
    path.write_bytes(certificatePEM(clientCert))
    assert loadCertificateFile(path) == clientCert
    with pytest.raises(CertificateError, match="missing.crt"):
        loadCertificateFile(tmp_path / "missing.crt")
    path.write_bytes(b"garbage")
    with pytest.raises(CertificateError, match="client.crt"):
        loadCertificateFile(path)


# Validity, usage, self-signed


def test_validityBoundaries(clientCert: x509.Certificate) -> None:
    """
    RFC 5280 section 4.1.2.5: the validity period includes both notBefore
    and notAfter; a naive time is refused.
    """
    start, end = clientCert.not_valid_before_utc, clientCert.not_valid_after_utc
    tick = datetime.timedelta(microseconds=1)
    assert validity(clientCert, start - tick) is Validity.NOT_YET_VALID
    assert validity(clientCert, start) is Validity.VALID
    assert validity(clientCert, NOW) is Validity.VALID
    assert validity(clientCert, end) is Validity.VALID
    assert validity(clientCert, end + tick) is Validity.EXPIRED
    assert Validity.NOT_YET_VALID.value == "not-yet-valid"
    with pytest.raises(ValueError):
        validity(clientCert, NOW.replace(tzinfo=None))


def test_hasClientAuth() -> None:
    """
    RFC 5280 section 4.2.1.12: without extendedKeyUsage any use is
    allowed; with it, clientAuth or anyExtendedKeyUsage must be listed.
    """
    assert hasClientAuth(_handMade(None))
    assert hasClientAuth(_handMade(None, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]))
    assert not hasClientAuth(_handMade(None, eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    assert hasClientAuth(_handMade(None, eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]))
    assert hasClientAuth(
        _handMade(None, eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    )
    server = x509.load_pem_x509_certificate(generateServerCertificate(["shakespeare.lit"])[1])
    assert not hasClientAuth(server)


def test_isSelfSigned() -> None:
    """
    Self-signed: issuer is subject and the own key verifies the signature;
    a certificate from a CA, or one whose issuer name is its subject but
    signed by another key, is not.
    """
    rootKey = generateClientKey()
    root = issueCACertificate("Root", rootKey, now=NOW)
    assert isSelfSigned(root)
    assert isSelfSigned(issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW))
    issued = issueClientCertificate(
        ["hamlet@shakespeare.lit"], KEY, now=NOW, issuerCertificate=root, issuerKey=rootKey
    )
    assert not isSelfSigned(issued)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")])
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .sign(rootKey, hashes.SHA256())
    )
    assert not isSelfSigned(forged)


def test_emailAddresses() -> None:
    """
    For custom checkers: rfc822Name subjectAltNames, then emailAddress
    attributes of the subject, each once.
    """
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Hamlet"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "prince@denmark.lit"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "hamlet@shakespeare.lit"),
        ]
    )
    cert = _handMade([x509.RFC822Name("hamlet@shakespeare.lit")], subject=subject)
    assert emailAddresses(cert) == ["hamlet@shakespeare.lit", "prince@denmark.lit"]
    assert emailAddresses(_handMade(None)) == []


def test_certificateFacts(rsaKey: rsa.RSAPrivateKey) -> None:
    """
    certificateFacts collects what the other functions say, for display.
    """
    cert = issueClientCertificate(
        ["hamlet@shakespeare.lit", "hamlet@denmark.lit/Castle"], KEY, now=NOW, commonName="Hamlet"
    )
    facts = certificateFacts(cert)
    assert facts.fingerprint == fingerprint(cert)
    assert facts.subject == facts.issuer == "CN=Hamlet"
    assert facts.serial == cert.serial_number
    assert facts.notBefore == NOW - CLOCK_SKEW
    assert facts.notAfter == NOW + datetime.timedelta(days=365)
    assert facts.xmppAddrs == tuple(_jids("hamlet@shakespeare.lit", "hamlet@denmark.lit/Castle"))
    assert facts.xmppAddrError is None
    assert facts.emails == ()
    assert facts.clientAuth and facts.selfSigned
    assert facts.keyDescription == "EC P-256"
    rsaCert = issueClientCertificate(["hamlet@shakespeare.lit"], rsaKey, now=NOW)
    assert certificateFacts(rsaCert).keyDescription == "RSA 2048"
    with pytest.raises(AttributeError):
        facts.serial = 1  # type: ignore[misc]


# Issuing


def test_generateClientKey(rsaKey: rsa.RSAPrivateKey) -> None:
    """
    Keys: EC P-256 by default, RSA on request with at least 2048 bits.
    """
    key = generateClientKey()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert rsaKey.key_size == 2048
    for keyType, bits in [("dsa", 3072), ("rsa", 1024), ("", 3072)]:
        with pytest.raises(ValueError):
            generateClientKey(keyType, bits)


def test_clientExtensions(rsaKey: rsa.RSAPrivateKey) -> None:
    """
    RFC 5280 for a TLS client end-entity certificate: basicConstraints
    CA:FALSE and keyUsage digitalSignature (+keyEncipherment for RSA),
    both critical; extendedKeyUsage clientAuth; subject and authority key
    identifiers; SHA-256; notBefore now - 5 minutes; random serials; CN the
    first JID unless given.
    """
    cert = issueClientCertificate(["Hamlet@shakespeare.lit", "a@b.c"], KEY, now=NOW, days=10)
    ext = cert.extensions
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_encipherment and not usage.value.key_cert_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(KEY.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=10)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "hamlet@shakespeare.lit"
    )
    again = issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW, commonName="Hamlet")
    assert again.serial_number != cert.serial_number
    assert again.subject.rfc4514_string() == "CN=Hamlet"
    rsaCert = issueClientCertificate(["hamlet@shakespeare.lit"], rsaKey, now=NOW)
    rsaUsage = rsaCert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert rsaUsage.digital_signature and rsaUsage.key_encipherment
    longJID = "h" * 60 + "@shakespeare.lit"
    longCert = issueClientCertificate([longJID], KEY, now=NOW)
    assert xmppAddrs(longCert) == _jids(longJID)
    assert longCert.subject.rfc4514_string() == "CN=xmppcert client"


def test_issueWithEmails(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    RFC 5280 section 4.2.1.6: e-mail addresses go into subjectAltName as
    rfc822Names (ASCII, A-label domains) after the xmppAddrs, for custom
    checkers; a certificate may name its user by address only, and such a
    CA-issued one still passes the client verifier. A certificate may also name nobody at all (no
    subjectAltName; for fingerprint-only registration and tests).
    """
    cert = issueClientCertificate(
        ["hamlet@shakespeare.lit"], KEY, now=NOW, emails=["prince@dänemark.lit", "h@x.lit"]
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [type(n) for n in san] == [x509.OtherName, x509.RFC822Name, x509.RFC822Name]
    assert emailAddresses(cert) == ["prince@xn--dnemark-5wa.lit", "h@x.lit"]
    assert xmppAddrs(cert) == _jids("hamlet@shakespeare.lit")
    root, inter, _ = caChain
    byMail = issueClientCertificate(
        [], KEY, now=NOW, commonName="Frank", emails=["frank@localhost"],
        issuerCertificate=inter, issuerKey=_INTER_KEY,
    )  # fmt: skip
    assert xmppAddrs(byMail) == []
    assert emailAddresses(byMail) == ["frank@localhost"]
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .time(NOW)
        .build_client_verifier()
    )
    assert verifier.verify(byMail, [inter]).subjects == [x509.RFC822Name("frank@localhost")]
    for nameless in [
        issueClientCertificate([], KEY, now=NOW, commonName="Frank"),
        issueClientCertificate([], KEY, now=NOW),
    ]:
        with pytest.raises(x509.ExtensionNotFound):
            nameless.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert xmppAddrs(nameless) == []
        assert nameless.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    for bad in ["frank", "@localhost", "frank@", "fränk@localhost", "a@b@c", "fr ank@localhost"]:
        with pytest.raises(ValueError):
            issueClientCertificate(["hamlet@shakespeare.lit"], KEY, emails=[bad])


def test_issueBadArguments() -> None:
    """
    issueClientCertificate refuses bad validity, a naive time, an empty or
    too long CN (X.520 ub-common-name 64), and an issuer that is
    incomplete, mismatched or not a CA.
    """
    rootKey = generateClientKey()
    root = issueCACertificate("Root", rootKey, now=NOW)
    leaf = issueClientCertificate(["a@b.c"], KEY, now=NOW)
    for kwargs in [
        {"days": 0},
        {"now": NOW.replace(tzinfo=None)},
        {"commonName": "x" * 65},
        {"commonName": ""},
        {"issuerCertificate": root},
        {"issuerKey": rootKey},
        {"issuerCertificate": root, "issuerKey": KEY},
        {"issuerCertificate": leaf, "issuerKey": KEY},
    ]:
        with pytest.raises(ValueError):
            issueClientCertificate(["hamlet@shakespeare.lit"], KEY, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        issueCACertificate("Root", rootKey, pathLength=-1)


#: The key of the intermediate CA of caChain, to issue more from it.
_INTER_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def caChain() -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    """
    Root, intermediate (pathLength 0) and a leaf naming two JIDs.
    """
    rootKey = generateClientKey()
    root = issueCACertificate("Shakespeare Root CA", rootKey, now=NOW)
    inter = issueCACertificate(
        "Shakespeare Users CA", _INTER_KEY, now=NOW, issuerCertificate=root, issuerKey=rootKey,
        pathLength=0,
    )  # fmt: skip
    leaf = issueClientCertificate(
        ["hamlet@shakespeare.lit", "hamlet@shakespeare.lit/Elsinore"], KEY, now=NOW,
        issuerCertificate=inter, issuerKey=_INTER_KEY,
    )  # fmt: skip
    return root, inter, leaf


def test_caExtensions(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    RFC 5280 for CA certificates: basicConstraints CA:TRUE (with the path
    length) and keyUsage keyCertSign + cRLSign, both critical; the
    authority key identifier is the issuer's subject key identifier; names
    chain up.
    """
    root, inter, leaf = caChain
    for cert, pathLength in [(root, None), (inter, 0)]:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical and basic.value.ca and basic.value.path_length == pathLength
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert not usage.value.digital_signature
    assert isSelfSigned(root) and not isSelfSigned(inter) and not isSelfSigned(leaf)
    for child, parent in [(inter, root), (leaf, inter)]:
        child.verify_directly_issued_by(parent)
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest


def test_chainVerifies(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    CA mode (XEP-0178 with a company CA): a leaf issued by an intermediate
    issued by a root passes cryptography's client verifier, and the
    verified subjects include its id-on-xmppAddr names.
    """
    root, inter, leaf = caChain
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .time(NOW)
        .build_client_verifier()
    )
    verified = verifier.verify(leaf, [inter])
    assert verified.chain == [leaf, inter, root]
    assert verified.subjects is not None
    addrs = [
        asn1.decode_der(str, name.value)
        for name in verified.subjects
        if isinstance(name, x509.OtherName) and name.type_id == XMPP_ADDR_OID
    ]
    assert addrs == ["hamlet@shakespeare.lit", "hamlet@shakespeare.lit/Elsinore"]
    assert xmppAddrs(verified.chain[0]) == _jids(*addrs)


def test_selfSignedDoesNotVerify(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    CA mode: a self-signed client certificate does not verify against an
    unrelated root, nor does the chain without its intermediate.
    """
    root, inter, leaf = caChain
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .time(NOW)
        .build_client_verifier()
    )
    selfSigned = issueClientCertificate(["hamlet@shakespeare.lit"], KEY, now=NOW)
    with pytest.raises(verification.VerificationError):
        verifier.verify(selfSigned, [])
    with pytest.raises(verification.VerificationError):
        verifier.verify(leaf, [])


# PKCS#12 and files


def test_pkcs12RoundTrip(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    PKCS#12 (RFC 7292): with and without a passphrase, the key, the
    certificate, the chain and the friendly name come back; a wrong
    passphrase fails.
    """
    root, inter, leaf = caChain
    for passphrase in [b"to be or not", None]:
        data = toPKCS12(
            KEY, leaf, friendlyName="hamlet@shakespeare.lit", passphrase=passphrase,
            caCertificates=[inter, root],
        )  # fmt: skip
        loaded = pkcs12.load_pkcs12(data, passphrase)
        assert loaded.key is not None and loaded.key.public_key() == KEY.public_key()
        assert loaded.cert is not None and loaded.cert.certificate == leaf
        assert loaded.cert.friendly_name == b"hamlet@shakespeare.lit"
        assert [c.certificate for c in loaded.additional_certs] == [inter, root]
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
        assert cert == leaf and extra == [inter, root]
    data = toPKCS12(KEY, leaf, friendlyName="hamlet", passphrase=b"to be or not")
    for wrong in [b"not to be", None]:
        with pytest.raises(ValueError):
            pkcs12.load_key_and_certificates(data, wrong)


def test_pkcs12Legacy(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    PKCS#12 for older clients: the legacy variant (PBES1 SHA-1 3DES, SHA-1
    MAC) loads too.
    """
    leaf = caChain[2]
    data = toPKCS12(KEY, leaf, friendlyName="hamlet", passphrase=b"secret", legacy=True)
    key, cert, _ = pkcs12.load_key_and_certificates(data, b"secret")
    assert cert == leaf and key is not None


def test_pkcs12BadArguments(caChain: tuple[x509.Certificate, ...], rsaKey: rsa.RSAPrivateKey) -> None:
    """
    PKCS#12: a key that is not the certificate's, an empty passphrase, and
    legacy without a passphrase are refused.
    """
    leaf = caChain[2]
    for key, kwargs in [
        (rsaKey, {"passphrase": b"x"}),
        (KEY, {"passphrase": b""}),
        (KEY, {"passphrase": None, "legacy": True}),
    ]:
        with pytest.raises(ValueError):
            toPKCS12(key, leaf, friendlyName="x", **kwargs)  # type: ignore[arg-type]


@requiresOpenSSL
@pytest.mark.parametrize("legacy", [False, True], ids=["default", "legacy"])
def test_pkcs12OpenSSL(tmp_path: Path, caChain: tuple[x509.Certificate, ...], legacy: bool) -> None:
    """
    PKCS#12 interoperability: the openssl tool reads our files with the
    passphrase, without its -legacy switch, and finds the certificate.
    """
    leaf = caChain[2]
    path = tmp_path / "f.p12"
    path.write_bytes(
        toPKCS12(KEY, leaf, friendlyName="hamlet", passphrase=b"to be", legacy=legacy)
    )
    out = _openssl(tmp_path, "pkcs12", "-in", "f.p12", "-passin", "pass:to be", "-nokeys")
    assert loadCertificate(out.encode()) == leaf


def test_pemHelpers(caChain: tuple[x509.Certificate, ...]) -> None:
    """
    PEM: certificates as PEM, keys as unencrypted PKCS#8 PEM.
    """
    leaf = caChain[2]
    assert x509.load_pem_x509_certificate(certificatePEM(leaf)) == leaf
    pem = privateKeyPEM(KEY)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert loaded.public_key() == KEY.public_key()


def test_writePrivateKey(tmp_path: Path) -> None:
    """
    Keys are written with mode 0600 from creation, replacing an existing
    world-readable file.
    """
    path = tmp_path / "keys" / "client.key"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    writePrivateKey(path, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == privateKeyPEM(KEY)
    assert [p.name for p in path.parent.iterdir()] == ["client.key"]



def test_beginMarkersWithoutEnd(clientCert: x509.Certificate) -> None:
    """
    RFC 7468 §2: a block runs from BEGIN to the first END after it; many
    BEGIN markers without an END (a hostile paste of 9000 of them, which
    a lazy regular expression took seconds over) are no CERTIFICATE
    block, and a second BEGIN inside the first block makes it invalid
    base64, as before.
    """
    with pytest.raises(CertificateError, match="no CERTIFICATE block"):
        loadCertificate(b"-----BEGIN CERTIFICATE-----\n" * 9000)
    pem = certificatePEM(clientCert)
    with pytest.raises(CertificateError, match="not valid base64"):
        loadCertificate(b"-----BEGIN CERTIFICATE-----\nxx\n" + pem)
    assert loadCertificate(b"text before\n" + pem + pem) == clientCert


def test_certificateFactsKept(clientCert: x509.Certificate) -> None:
    """
    What a certificate's bytes alone decide is worked out once per
    certificate (a login asks several times): the same JIDs and the same
    client-certificate verdict for an equal certificate, and a caller
    changing the list it got does not change what the next one gets.
    """
    from xmppcert.x509 import clientCertificateProblem, xmppAddrs

    again = x509.load_der_x509_certificate(clientCert.public_bytes(serialization.Encoding.DER))
    first = xmppAddrs(clientCert)
    first.append(first[0])
    assert xmppAddrs(again) == first[:-1]
    assert clientCertificateProblem(again) is clientCertificateProblem(clientCert) is None
