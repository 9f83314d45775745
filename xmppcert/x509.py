# -*- test-case-name: tests.test_x509 -*-
"""
X.509 certificates, made and read with the C{cryptography} library.

Server side: a self-signed server certificate for the served domains, which
C{xmppcert init} writes so that the server can offer TLS at once. Clients
will not trust it; replace it with one from a CA (for example ACME) for
production use.

Client side (SASL EXTERNAL, XEP-0178; certificate management, XEP-0257):
loading client certificates, their fingerprints (the key under which
accounts register them), the JIDs they name in id-on-xmppAddr
subjectAltNames (RFC 6120 section 13.7.1.4), the checks every certificate
login shares (validity window, extendedKeyUsage), and issuing client and CA
certificates and PKCS#12 bundles for users and tests.
"""

from __future__ import annotations

import binascii
import datetime
import enum
import os
import string
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.words.protocols.jabber import jid

from xmppcert.jids import parseJID

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
        _builder(subject, subject, publicKey, now, days)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_keyUsage(digitalSignature=True), critical=True)
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


# ---------------------------------------------------------------------------
# Reading client certificates
# ---------------------------------------------------------------------------

#: id-on-xmppAddr: the otherName type under which a certificate names a JID
#: (RFC 6120 section 13.7.1.4); its value is a UTF8String.
XMPP_ADDR_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")

#: The largest certificate (bytes of DER) accepted anywhere: real client
#: certificates are 1-3 KiB, and this bounds the work an upload or a login
#: can cause.
MAX_CERTIFICATE_SIZE = 16 * 1024

#: The largest input L{loadCertificate} looks at: PEM may carry explanatory
#: text or a whole chain around the certificate, but not without bound.
_MAX_INPUT_SIZE = 64 * MAX_CERTIFICATE_SIZE

#: RFC 7622 sections 3.2.1, 3.3.1 and 3.4.1: each part of a JID is at most
#: 1023 octets of UTF-8.

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def _pemCertificateBody(data: bytes) -> bytes | None:
    """
    The body of the first PEM CERTIFICATE block, C{None} when there is
    none. Linear in the input: a lazy regular expression would be tried
    again from every BEGIN marker, quadratic for many markers without an
    END.
    """
    begin = data.find(_PEM_BEGIN)
    if begin < 0:
        return None
    start = begin + len(_PEM_BEGIN)
    end = data.find(_PEM_END, start)
    if end < 0:
        # Without an END after the first BEGIN there is none after a later
        # one either.
        return None
    return data[start:end]

_ExtensionT = TypeVar("_ExtensionT", bound=x509.ExtensionType)
_T = TypeVar("_T")


class CertificateError(ValueError):
    """
    A certificate that cannot be used; the message says why, for users.
    """


def loadCertificate(data: bytes) -> x509.Certificate:
    """
    Parse one certificate, PEM or DER.

    For PEM the first C{CERTIFICATE} block is used; text and other blocks
    around it are allowed (RFC 7468 section 5.2), as in a chain file or
    C{openssl x509 -text} output. The DER, given directly or inside the PEM
    block, must be exactly one certificate: trailing bytes are refused.

    @param data: the certificate.
    @raise CertificateError: not a certificate, or its DER is larger than
        L{MAX_CERTIFICATE_SIZE}.
    """
    if len(data) > _MAX_INPUT_SIZE:
        raise CertificateError(f"too large to be a certificate ({len(data)} bytes)")
    # DER starts with a SEQUENCE whose length needs the long form (a
    # certificate is over 127 bytes); no text does. Deciding this first
    # keeps PEM markers inside a DER certificate's names from misleading.
    isDER = data[:1] == b"\x30" and data[1:2] >= b"\x80"
    block = None if isDER else _pemCertificateBody(data)
    if block is not None:
        # Strict base64, so that a damaged block is refused rather than
        # decoded into something else; line breaks and blanks are layout.
        body = b"".join(block.split())
        try:
            der = binascii.a2b_base64(body, strict_mode=True)
        except binascii.Error:
            raise CertificateError("the PEM CERTIFICATE block is not valid base64") from None
    elif data.startswith(b"-----BEGIN"):
        raise CertificateError("the PEM data holds no CERTIFICATE block")
    else:
        der = data
    if len(der) > MAX_CERTIFICATE_SIZE:
        raise CertificateError(
            f"the certificate is too large ({len(der)} bytes; at most "
            f"{MAX_CERTIFICATE_SIZE} are accepted)"
        )
    try:
        # load_der_x509_certificate refuses trailing data itself.
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        # InvalidVersion (a version field other than v1 or v3) is not a
        # ValueError, though what a peer sends decides it as much.
        raise CertificateError("not a valid X.509 certificate (PEM or DER)") from None


def loadCertificateFile(path: Path) -> x509.Certificate:
    """
    Read and parse a certificate file with L{loadCertificate}.

    @raise CertificateError: the file cannot be read or holds no usable
        certificate; the message names the file.
    """
    try:
        with open(path, "rb") as f:
            # Read one byte more than allowed, to tell "too large" apart.
            data = f.read(_MAX_INPUT_SIZE + 1)
    except OSError as e:
        raise CertificateError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return loadCertificate(data)
    except CertificateError as e:
        raise CertificateError(f"{path}: {e}") from None


#: Certificates whose facts (L{fingerprint}, L{xmppAddrs},
#: L{clientCertificateProblem}) are kept: a login asks for them several
#: times (to offer EXTERNAL, to check the login, to describe it), and a
#: device logs in again and again. Only what the certificate's bytes alone
#: decide is kept, never validity in time; a failure is not kept.
CERTIFICATE_FACTS_CACHE_SIZE = 1024


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


_cachedFingerprint = lru_cache(maxsize=CERTIFICATE_FACTS_CACHE_SIZE)(_fingerprint)


def fingerprint(cert: x509.Certificate) -> str:
    """
    The certificate's SHA-256 fingerprint: the key under which it is
    stored and looked up (XEP-0257).

    @return: the SHA-256 of the DER, 64 lower-case hex digits.
    """
    return _cachedFingerprint(cert)


def displayFingerprint(fp: str) -> str:
    """
    A fingerprint as people compare it: upper-case hex pairs separated by
    colons, as C{openssl x509 -fingerprint} and most clients show it.

    @param fp: hex digits, as from L{fingerprint}.
    @raise ValueError: C{fp} is empty, not hex, or of odd length.
    """
    if not fp or len(fp) % 2 or not all(c in string.hexdigits for c in fp):
        raise ValueError(f"{fp!r} is not a hex fingerprint")
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()


def _extensionValue(
    cert: x509.Certificate, extensionClass: type[_ExtensionT]
) -> _ExtensionT | None:
    """
    The value of one extension, or C{None} when the certificate lacks it.

    @raise CertificateError: the extensions cannot be parsed (a malformed
        or duplicated extension): nothing in them can be trusted then.
    """
    try:
        return cert.extensions.get_extension_for_class(extensionClass).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        # cryptography's messages are about DER internals, not for users.
        raise CertificateError(
            "the certificate's extensions (such as subjectAltName) are malformed"
        ) from None


def _prepareUserJID(text: str) -> jid.JID:
    """
    Parse and prepare a JID that names a user (it has a localpart).

    Twisted applies nodeprep, nameprep and resourceprep (RFC 6122; the
    string preparation RFC 7622 replaced, but for these purposes the same
    strictness). Checks Twisted leaves out are added: empty resourceparts and
    the RFC 7622 length limits.

    @raise ValueError: not a user JID; the message says why.
    """
    try:
        parsed = parseJID(text)
    except jid.InvalidFormat as e:
        raise ValueError(str(e)) from None
    if not parsed.user:
        raise ValueError(f"{text!r} is a domain, not a user's JID")
    return parsed


def _decodeXmppAddr(value: bytes) -> str:
    """
    Decode the DER value of an id-on-xmppAddr otherName.

    @raise CertificateError: not exactly one DER UTF8String of valid UTF-8.
    """
    try:
        # decode_der refuses another tag, a constructed encoding, trailing
        # bytes, indefinite or non-minimal lengths, and invalid UTF-8.
        return asn1.decode_der(str, value)
    except (ValueError, TypeError):
        raise CertificateError(
            "an id-on-xmppAddr subjectAltName is not a DER UTF8String "
            "(RFC 6120 section 13.7.1.4)"
        ) from None


def _xmppAddrs(cert: x509.Certificate) -> tuple[jid.JID, ...]:
    """
    L{xmppAddrs}, uncached.
    """
    san = _extensionValue(cert, x509.SubjectAlternativeName)
    if san is None:
        return ()
    result = []
    for name in san:
        if not isinstance(name, x509.OtherName) or name.type_id != XMPP_ADDR_OID:
            continue
        text = _decodeXmppAddr(name.value)
        try:
            result.append(_prepareUserJID(text))
        except ValueError as e:
            raise CertificateError(f"the certificate's id-on-xmppAddr: {e}") from None
    return tuple(result)


_cachedXmppAddrs = lru_cache(maxsize=CERTIFICATE_FACTS_CACHE_SIZE)(_xmppAddrs)


def xmppAddrs(cert: x509.Certificate) -> list[jid.JID]:
    """
    The JIDs a certificate names: every id-on-xmppAddr otherName in its
    subjectAltName, in order (RFC 6120 section 13.7.1.4, XEP-0178).

    Each value must be exactly a DER UTF8String and a valid JID with a
    localpart, returned prepared (case-folded localpart and so on). One bad
    value spoils the whole certificate rather than being skipped, so that a
    certificate never means something else to us than to its issuer.

    @return: the JIDs, or an empty list if the certificate names none.
    @raise CertificateError: a malformed subjectAltName or xmppAddr, an
        invalid JID, or a JID without a localpart.
    """
    return list(_cachedXmppAddrs(cert))


def _subjectEmails(cert: x509.Certificate) -> list[str]:
    """
    @raise CertificateError: the subject is malformed (cryptography parses
        it lazily, with ValueError or TypeError).
    """
    try:
        return [
            attribute.value
            for attribute in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
            if isinstance(attribute.value, str)
        ]
    except (ValueError, TypeError):
        raise CertificateError("the certificate's subject is malformed") from None


def emailAddresses(cert: x509.Certificate) -> list[str]:
    """
    The e-mail addresses a certificate carries, for custom checkers: the
    rfc822Name subjectAltNames, then the emailAddress attributes of the
    subject (the older place, used by the openssl recipe of the seeds).
    Duplicates are dropped; nothing is validated.

    @raise CertificateError: the extensions or the subject are malformed.
    """
    san = _extensionValue(cert, x509.SubjectAlternativeName)
    found = list(san.get_values_for_type(x509.RFC822Name)) if san is not None else []
    return list(dict.fromkeys(found + _subjectEmails(cert)))


class Validity(enum.Enum):
    """
    Where a moment lies relative to a certificate's validity period.
    """

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"


def validity(cert: x509.Certificate, now: datetime.datetime) -> Validity:
    """
    Whether C{now} is in the certificate's validity period, both bounds
    included (RFC 5280 section 4.1.2.5).

    @param now: the current time, timezone-aware.
    @raise ValueError: C{now} is naive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if now < cert.not_valid_before_utc:
        return Validity.NOT_YET_VALID
    if now > cert.not_valid_after_utc:
        return Validity.EXPIRED
    return Validity.VALID


def hasClientAuth(cert: x509.Certificate) -> bool:
    """
    Whether the certificate may be used for TLS client authentication
    (RFC 5280 section 4.2.1.12): it has no extendedKeyUsage, or that lists
    clientAuth or anyExtendedKeyUsage.

    A certificate whose extensions are malformed is refused (C{False}):
    failing closed, and without an exception in the login path.
    """
    try:
        usage = _extensionValue(cert, x509.ExtendedKeyUsage)
    except CertificateError:
        return False
    if usage is None:
        return True
    return (
        ExtendedKeyUsageOID.CLIENT_AUTH in usage
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usage
    )


def _clientCertificateProblem(cert: x509.Certificate) -> str | None:
    """
    Why C{cert} cannot be a TLS client certificate, or C{None} when it can:
    it must be an end-entity certificate (no basicConstraints CA:TRUE, RFC
    5280 section 4.2.1.9), its keyUsage, when present, must allow
    digitalSignature (the key signs the TLS handshake, RFC 5246 section
    7.4.8 and RFC 8446 section 4.4.3), and its extendedKeyUsage must allow
    clientAuth (L{hasClientAuth}).

    The one rule for the XEP-0257 append, C{xmppcert cert add} and every
    certificate login. Malformed extensions are a problem too (failing
    closed).
    """
    try:
        basic = _extensionValue(cert, x509.BasicConstraints)
        usage = _extensionValue(cert, x509.KeyUsage)
    except CertificateError as e:
        return str(e)
    if basic is not None and basic.ca:
        return "it is a CA certificate (basicConstraints CA:TRUE), not a client certificate"
    if usage is not None and not usage.digital_signature:
        return "its keyUsage does not allow digitalSignature, which a TLS client key needs"
    if not hasClientAuth(cert):
        return "its extendedKeyUsage does not allow client authentication"
    return None


_cachedClientCertificateProblem = lru_cache(maxsize=CERTIFICATE_FACTS_CACHE_SIZE)(_clientCertificateProblem)


def clientCertificateProblem(cert: x509.Certificate) -> str | None:
    """
    Why C{cert} cannot be a TLS client certificate, or C{None} when it can
    (L{_clientCertificateProblem}; kept per certificate).
    """
    return _cachedClientCertificateProblem(cert)


def isSelfSigned(cert: x509.Certificate) -> bool:
    """
    Whether the certificate is self-signed: its issuer is its subject and
    its own public key verifies its signature.
    """
    try:
        if cert.issuer != cert.subject:
            return False
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        # TypeError/UnsupportedAlgorithm: a key or signature algorithm
        # cryptography cannot verify; then we cannot say it is self-signed.
        return False
    return True


def _keyDescription(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        # The NIST names are what people know these curves by.
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _orDefault(compute: Callable[[], _T], default: _T) -> _T:
    # For certificateFacts only, which promises not to raise: a field that
    # cannot be computed from a strange certificate gets a placeholder.
    try:
        return compute()
    except Exception:
        return default


@dataclass(frozen=True)
class CertificateFacts:
    """
    What people and the management commands want to know about a
    certificate, computed once by L{certificateFacts}.

    @ivar fingerprint: see L{fingerprint}.
    @ivar subject: the subject as an RFC 4514 string.
    @ivar issuer: the issuer as an RFC 4514 string.
    @ivar serial: the serial number.
    @ivar notBefore: start of the validity period (UTC).
    @ivar notAfter: end of the validity period (UTC).
    @ivar xmppAddrs: see L{xmppAddrs}; empty when that raised.
    @ivar xmppAddrError: why L{xmppAddrs} raised, or C{None}.
    @ivar emails: see L{emailAddresses}.
    @ivar clientAuth: see L{hasClientAuth}.
    @ivar clientProblem: see L{clientCertificateProblem}.
    @ivar selfSigned: see L{isSelfSigned}.
    @ivar keyDescription: the public key, e.g. C{"EC P-256"}, C{"RSA 4096"}.
    """

    fingerprint: str
    subject: str
    issuer: str
    serial: int
    notBefore: datetime.datetime
    notAfter: datetime.datetime
    xmppAddrs: tuple[jid.JID, ...]
    xmppAddrError: str | None
    emails: tuple[str, ...]
    clientAuth: bool
    clientProblem: str | None
    selfSigned: bool
    keyDescription: str


def certificateFacts(cert: x509.Certificate) -> CertificateFacts:
    """
    Everything L{CertificateFacts} holds about C{cert}. Never raises for a
    parsed certificate: a malformed part is reported (C{xmppAddrError}) or
    shown as a placeholder instead.
    """
    try:
        addrs: tuple[jid.JID, ...] = tuple(xmppAddrs(cert))
        addrError = None
    except CertificateError as e:
        addrs, addrError = (), str(e)
    return CertificateFacts(
        fingerprint=fingerprint(cert),
        subject=_orDefault(lambda: cert.subject.rfc4514_string(), "(unreadable)"),
        issuer=_orDefault(lambda: cert.issuer.rfc4514_string(), "(unreadable)"),
        serial=cert.serial_number,
        notBefore=cert.not_valid_before_utc,
        notAfter=cert.not_valid_after_utc,
        xmppAddrs=addrs,
        xmppAddrError=addrError,
        # With malformed extensions, the subject's addresses are still known.
        emails=tuple(
            _orDefault(lambda: emailAddresses(cert), _orDefault(lambda: _subjectEmails(cert), []))
        ),
        clientAuth=hasClientAuth(cert),
        clientProblem=clientCertificateProblem(cert),
        selfSigned=isSelfSigned(cert),
        keyDescription=_orDefault(lambda: _keyDescription(cert), "unknown"),
    )


# ---------------------------------------------------------------------------
# Issuing client and CA certificates
# ---------------------------------------------------------------------------

#: The key types L{generateClientKey} makes.
ClientPrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def generateClientKey(keyType: str = "ec", rsaBits: int = 3072) -> ClientPrivateKey:
    """
    Make a private key for a client certificate.

    @param keyType: C{"ec"} for EC P-256 (small, fast, supported by every
        current TLS library), or C{"rsa"} for the rare client that needs it.
    @param rsaBits: RSA modulus size, at least 2048 (NIST SP 800-131A).
    @raise ValueError: an unknown C{keyType}, or C{rsaBits} below 2048.
    """
    if keyType == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if keyType == "rsa":
        if rsaBits < 2048:
            raise ValueError(f"RSA keys must have at least 2048 bits, not {rsaBits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsaBits)
    raise ValueError(f"unknown key type {keyType!r}: use 'ec' or 'rsa'")


def _signatureHash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; cryptography wants no hash for it.
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _checkTime(now: datetime.datetime | None, days: int) -> datetime.datetime:
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


def _issuer(
    subject: x509.Name,
    key: CertificateIssuerPrivateKeyTypes,
    issuerCertificate: x509.Certificate | None,
    issuerKey: CertificateIssuerPrivateKeyTypes | None,
) -> tuple[x509.Name, CertificateIssuerPrivateKeyTypes, x509.AuthorityKeyIdentifier]:
    """
    Who signs a new certificate: its issuer name, the signing key and the
    authorityKeyIdentifier (which cryptography's verifier requires, RFC
    5280 section 4.2.1.1, even on self-signed certificates).

    @raise ValueError: only one of C{issuerCertificate} and C{issuerKey}, a
        key that does not match the certificate, or an issuer that is not a
        CA.
    """
    if issuerCertificate is None and issuerKey is None:
        return subject, key, x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    if issuerCertificate is None or issuerKey is None:
        raise ValueError("issuerCertificate and issuerKey go together")
    if issuerKey.public_key() != issuerCertificate.public_key():
        raise ValueError("issuerKey is not the key of issuerCertificate")
    basic = _extensionValue(issuerCertificate, x509.BasicConstraints)
    if basic is None or not basic.ca:
        raise ValueError("issuerCertificate is not a CA certificate (basicConstraints CA:TRUE)")
    ski = _extensionValue(issuerCertificate, x509.SubjectKeyIdentifier)
    if ski is not None:
        # Reuse the issuer's own identifier, whatever method made it.
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuerKey.public_key())
    return issuerCertificate.subject, issuerKey, aki


def _builder(
    subject: x509.Name, issuer: x509.Name, publicKey: CertificatePublicKeyTypes, now: datetime.datetime, days: int
) -> x509.CertificateBuilder:
    """
    What every certificate made here starts with: names, key, a random
    serial, and a validity that starts a little in the past (clock skew).
    """
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _keyUsage(
    *, digitalSignature: bool = False, keyEncipherment: bool = False, ca: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digitalSignature,
        content_commitment=False,
        key_encipherment=keyEncipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


#: The subject CN of a client certificate when no JID can be it.
_DEFAULT_CLIENT_CN = "xmppcert client"


def _emailAddress(address: str) -> str:
    """
    Check an e-mail address for an rfc822Name, which holds ASCII only (RFC
    5280 section 4.2.1.6): an internationalised domain becomes its A-label.

    @raise ValueError: not a plausible address, or a non-ASCII localpart.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or "@" in local or not domain or any(c.isspace() for c in address):
        raise ValueError(f"{address!r} is not an e-mail address")
    if not local.isascii():
        raise ValueError(f"{address!r}: an rfc822Name cannot hold a non-ASCII localpart")
    return f"{local}@{_aLabel(domain)}"


def issueClientCertificate(
    jids: Sequence[str],
    key: CertificateIssuerPrivateKeyTypes,
    *,
    days: int = 365,
    now: datetime.datetime | None = None,
    issuerCertificate: x509.Certificate | None = None,
    issuerKey: CertificateIssuerPrivateKeyTypes | None = None,
    commonName: str | None = None,
    emails: Sequence[str] = (),
) -> x509.Certificate:
    """
    Issue a TLS client certificate naming C{jids} for SASL EXTERNAL.

    Each JID is prepared and written as an id-on-xmppAddr otherName (a DER
    UTF8String, RFC 6120 section 13.7.1.4), which is what L{xmppAddrs} and
    XEP-0178 servers read; then each of C{emails} as an rfc822Name, for
    custom checkers that map addresses to accounts (see
    L{emailAddresses}). The certificate is an end-entity certificate
    (basicConstraints CA:FALSE) for client authentication only (keyUsage
    digitalSignature, plus keyEncipherment for RSA keys; extendedKeyUsage
    clientAuth), with subject and authority key identifiers, signed with
    SHA-256 (or EdDSA for Ed25519/Ed448 issuer keys).

    @param jids: JIDs with a localpart; a full JID limits the certificate
        to that resource (XEP-0257 section 3). May be empty, for
        certificates that name their user otherwise (C{emails}, or a
        fingerprint registered with the account) and for tests of
        certificates that name nobody.
    @param key: the subject's key; it signs the certificate when there is
        no issuer.
    @param days: validity in days from C{now}; notBefore is L{CLOCK_SKEW}
        earlier.
    @param now: the current time (timezone-aware); the system clock if
        C{None}.
    @param issuerCertificate: the CA certificate to issue from; self-signed
        when C{None}.
    @param issuerKey: the CA's private key, with C{issuerCertificate}.
    @param commonName: the subject CN; by default the first (prepared) JID,
        or L{_DEFAULT_CLIENT_CN} without JIDs or when it is too long.
    @param emails: e-mail addresses (ASCII localparts; internationalised
        domains are converted to A-labels).
    @raise ValueError: an invalid or domain-only JID, an invalid e-mail
        address, bad C{days} or C{now}, a C{commonName} that is empty or
        longer than 64 characters, or see L{_issuer}.
    """
    now = _checkTime(now, days)
    prepared = list(dict.fromkeys(_prepareUserJID(j).full() for j in jids))
    addresses = list(dict.fromkeys(_emailAddress(e) for e in emails))
    if commonName is not None:
        if not 1 <= len(commonName) <= _MAX_COMMON_NAME:
            raise ValueError(f"the common name must have 1 to {_MAX_COMMON_NAME} characters")
        cn = commonName
    elif prepared and len(prepared[0]) <= _MAX_COMMON_NAME:
        cn = prepared[0]
    else:
        # A long JID cannot be a CN; subjectAltName carries it anyway.
        cn = _DEFAULT_CLIENT_CN
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuerName, signingKey, aki = _issuer(subject, key, issuerCertificate, issuerKey)
    publicKey = key.public_key()
    # encode_der writes a Python str as a DER UTF8String.
    names: list[x509.GeneralName] = [
        x509.OtherName(XMPP_ADDR_OID, asn1.encode_der(j)) for j in prepared
    ]
    names.extend(x509.RFC822Name(a) for a in addresses)
    builder = _builder(subject, issuerName, publicKey, now, days)
    if names:
        # RFC 5280 section 4.2.1.6: the extension, when present, is not empty.
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return (
        builder
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _keyUsage(digitalSignature=True, keyEncipherment=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
        .add_extension(aki, critical=False)
        .sign(signingKey, _signatureHash(signingKey))
    )


def issueCACertificate(
    commonName: str,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    days: int = 3650,
    now: datetime.datetime | None = None,
    issuerCertificate: x509.Certificate | None = None,
    issuerKey: CertificateIssuerPrivateKeyTypes | None = None,
    pathLength: int | None = None,
) -> x509.Certificate:
    """
    Issue a CA certificate: a root when no issuer is given, else an
    intermediate. For operators who run their own client CA (XEP-0257
    section 3, the server's CA mode) and for tests.

    It has basicConstraints CA:TRUE and keyUsage keyCertSign and cRLSign
    (both critical), and subject and authority key identifiers, as RFC 5280
    and cryptography's verifier require.

    @param commonName: the subject CN, 1 to 64 characters.
    @param key: the CA's key; it signs the certificate when there is no
        issuer.
    @param pathLength: how many intermediates may follow; unlimited if
        C{None}.
    @raise ValueError: bad arguments; see L{issueClientCertificate}.
    """
    if not 1 <= len(commonName) <= _MAX_COMMON_NAME:
        raise ValueError(f"the common name must have 1 to {_MAX_COMMON_NAME} characters")
    if pathLength is not None and pathLength < 0:
        raise ValueError(f"pathLength must not be negative, not {pathLength}")
    now = _checkTime(now, days)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    issuerName, signingKey, aki = _issuer(subject, key, issuerCertificate, issuerKey)
    publicKey = key.public_key()
    return (
        _builder(subject, issuerName, publicKey, now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=pathLength), critical=True)
        .add_extension(_keyUsage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
        .add_extension(aki, critical=False)
        .sign(signingKey, _signatureHash(signingKey))
    )


def certificatePEM(cert: x509.Certificate) -> bytes:
    """
    The certificate as PEM.
    """
    return cert.public_bytes(serialization.Encoding.PEM)


def privateKeyPEM(key: PrivateKeyTypes) -> bytes:
    """
    The private key as unencrypted PKCS#8 PEM; store it with
    L{writePrivateKey}.
    """
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


#: PBKDF2 iterations for the key and certificates in PKCS#12 files: far
#: above OpenSSL's default of 2048 against passphrase guessing, yet an import
#: on a phone still takes well under a second. (cryptography keeps 2048 for
#: the MAC, which protects integrity, not the key.)
_PKCS12_KDF_ROUNDS = 100_000

#: Iterations for the legacy (3DES) format, as in cryptography's own example
#: of PKCS#12 for older clients.
_PKCS12_LEGACY_ROUNDS = 50_000


def toPKCS12(
    key: pkcs12.PKCS12PrivateKeyTypes,
    cert: x509.Certificate,
    *,
    friendlyName: str,
    passphrase: bytes | None,
    caCertificates: Sequence[x509.Certificate] = (),
    legacy: bool = False,
) -> bytes:
    """
    Bundle a key and its certificate as PKCS#12 (a C{.p12}/C{.pfx} file),
    the format clients and operating systems import client certificates in.

    Client compatibility: by default the key and certificates are encrypted
    with PBES2 (PBKDF2-SHA256, AES-256-CBC) and the file has a SHA-256 MAC.
    OpenSSL 1.1.1 and 3.x and current operating systems and Java read
    that. Some older importers (for example Windows before 10 version 1709
    and older macOS/iOS keychains and Java releases) only know the legacy
    scheme: pass C{legacy=True} for PBES1 SHA-1 + 3DES with a SHA-1 MAC,
    which is weaker against passphrase guessing, so keep such files to
    yourself. Some importers refuse files without a passphrase.

    @param friendlyName: the label importers show, e.g. the JID.
    @param passphrase: encrypts the file; C{None} for no encryption.
    @param caCertificates: issuer certificates to include (a chain).
    @param legacy: use the legacy encryption described above.
    @raise ValueError: C{key} is not the certificate's key, an empty
        passphrase, or C{legacy} without a passphrase.
    """
    if key.public_key() != cert.public_key():
        raise ValueError("the key does not belong to the certificate")
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        if legacy:
            raise ValueError("legacy encryption needs a passphrase")
        encryption = serialization.NoEncryption()
    elif not passphrase:
        raise ValueError("the passphrase is empty: give None for an unencrypted file")
    elif legacy:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(_PKCS12_LEGACY_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(passphrase)
        )
    else:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(_PKCS12_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(passphrase)
        )
    return pkcs12.serialize_key_and_certificates(
        friendlyName.encode("utf-8"), key, cert, list(caCertificates) or None, encryption
    )


def writePrivateKey(path: Path, key: PrivateKeyTypes) -> None:
    """
    Write C{key} as unencrypted PKCS#8 PEM, replacing C{path} atomically;
    the file has mode 0600 from its creation.

    @raise OSError: the file cannot be written.
    """
    _writeFile(Path(path), privateKeyPEM(key), 0o600)


__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_DAYS",
    "MAX_CERTIFICATE_SIZE",
    "XMPP_ADDR_OID",
    "CertificateError",
    "CertificateFacts",
    "ClientPrivateKey",
    "Validity",
    "certificateFacts",
    "certificatePEM",
    "displayFingerprint",
    "emailAddresses",
    "fingerprint",
    "generateClientKey",
    "generateServerCertificate",
    "clientCertificateProblem",
    "hasClientAuth",
    "isSelfSigned",
    "issueCACertificate",
    "issueClientCertificate",
    "loadCertificate",
    "loadCertificateFile",
    "privateKeyPEM",
    "toPKCS12",
    "validity",
    "writePrivateKey",
    "writeServerCertificate",
    "xmppAddrs",
]
