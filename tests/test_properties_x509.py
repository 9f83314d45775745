"""
Property-based robustness tests for X.509 parsing (L{xmppcert.x509}) and
the conversion of the TLS peer's certificates (L{xmppcert.tls}): random
bytes, mutated DER of real certificates, and certificates with huge or
odd subjectAltNames.

The rule: loading only ever raises L{x509.CertificateError}; for a
certificate that loads, L{x509.xmppAddrs} returns exactly the prepared user
JIDs of its id-on-xmppAddr names or raises L{x509.CertificateError}, and
L{x509.certificateFacts}, L{x509.hasClientAuth}, L{x509.validity} and
L{x509.fingerprint} never raise.

Also home of the certificate strategies that C{test_properties_saslcert}
uses.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509 as cx509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import event, example, given, reject
from hypothesis import strategies as st
from OpenSSL import SSL, crypto
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Protocol
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python import failure
from twisted.words.protocols.jabber import jid

from tests.test_properties_sasl import certificateHarness
from tests.test_properties_xmlstream import (
    FAST,
    SLOW,
    STARTTLS,
    assertStillServing,
    checkServerOutput,
    header,
    noUnexpectedLogs,
    streamErrors,
)
from xmppcert import tls, x509
from xmppcert.jids import parseJID

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
EC_KEY = x509.generateClientKey("ec")
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def der(certificate: cx509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


#: Real certificates to mutate: a client certificate naming two JIDs and an
#: e-mail address, an RSA one, a CA, a server certificate.
SEEDS: list[bytes] = [
    der(x509.issueClientCertificate(["alice@example.com", "bob@example.com/phone"], EC_KEY, now=NOW, emails=["a@example.com"])),
    der(x509.issueClientCertificate(["carol@example.com"], x509.generateClientKey("rsa", 2048), now=NOW)),
    der(x509.issueCACertificate("Example CA", ED_KEY, now=NOW)),
    der(cx509.load_pem_x509_certificate(x509.generateServerCertificate(["example.com"], now=NOW)[1])),
]

SAN_OID = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
EKU_OID = ExtensionOID.EXTENDED_KEY_USAGE


# --- strategies: mutated DER ------------------------------------------------------------


def derNodes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int]]:
    """
    The TLV nodes of DER data, recursively: (tag offset, value offset, end)
    of every node, also inside OCTET STRINGs that hold DER (extension
    values). Parsing stops quietly at anything that is not DER.
    """
    end = len(data) if end is None else end
    nodes: list[tuple[int, int, int]] = []
    i = start
    while i + 2 <= end:
        tag, first = data[i], data[i + 1]
        if first < 0x80:
            length, header = first, 2
        else:
            count = first & 0x7F
            if count == 0 or count > 3 or i + 2 + count > end:
                break
            length, header = int.from_bytes(data[i + 2 : i + 2 + count], "big"), 2 + count
        valueStart, valueEnd = i + header, i + header + length
        if valueEnd > end:
            break
        nodes.append((i, valueStart, valueEnd))
        if tag & 0x20 or tag == 0x04:
            nodes.extend(derNodes(data, valueStart, valueEnd))
        i = valueEnd
    return nodes


@st.composite
def mutatedDER(draw: st.DrawFn) -> bytes:
    """
    The DER of a real certificate with one to three mutations: either
    structure-aware (a field's tag, one byte of its value, or its whole
    value replaced, keeping every length right, so that the result often
    still parses and the change reaches the semantics: versions, serials,
    times, OIDs, extension contents), or raw (a byte flipped or replaced,
    truncated, a range deleted or duplicated, bytes inserted).
    """
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        if draw(st.integers(0, 3)):
            nodes = derNodes(bytes(data))
            if nodes:
                tagAt, valueStart, valueEnd = draw(st.sampled_from(nodes))
                op = draw(st.sampled_from(["tag", "byte", "value"]))
                if op == "tag" or valueEnd == valueStart or (op == "value" and data[tagAt] & 0x20):
                    data[tagAt] = draw(st.integers(0, 255))
                elif op == "byte":
                    data[draw(st.integers(valueStart, valueEnd - 1))] = draw(st.integers(0, 255))
                else:
                    n = valueEnd - valueStart
                    data[valueStart:valueEnd] = draw(st.binary(min_size=n, max_size=n))
                continue
        op = draw(st.sampled_from(["flip", "set", "truncate", "delete", "duplicate", "insert"]))
        p = draw(st.integers(0, len(data) - 1))
        n = draw(st.integers(1, 8))
        if op == "flip":
            data[p] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[p] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[p:]
        elif op == "delete":
            del data[p : p + n]
        elif op == "duplicate":
            data[p:p] = data[p : p + n]
        else:
            data[p:p] = draw(st.binary(min_size=1, max_size=n))
    return bytes(data)


def withVersion(data: bytes, version: int) -> bytes:
    """
    A certificate's DER with another X.509 version number (0 is v1, 2 is
    v3; RFC 5280 §4.1.2.1 knows no other).
    """
    at = data.index(b"\xa0\x03\x02\x01\x02")
    return data[: at + 4] + bytes([version]) + data[at + 5 :]


#: A v3 certificate whose version field says 4 (the value 3): OpenSSL
#: loads it, cryptography raises InvalidVersion, which is no ValueError.
VERSION_4 = withVersion(SEEDS[0], 3)

#: A certificate whose subject and issuer common names are BIT STRINGs:
#: it loads, but reading its subject raises TypeError.
BIT_STRING_NAMES = SEEDS[0].replace(b"\x06\x03\x55\x04\x03\x0c", b"\x06\x03\x55\x04\x03\x03")


def pem(data: bytes) -> bytes:
    body = base64.encodebytes(data)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


anyCertificateInput = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=40).map(lambda b: b"\x30\x82" + b),
    st.binary(max_size=200).map(pem),
    mutatedDER(),
    mutatedDER().map(pem),
    st.sampled_from(SEEDS).map(lambda d: pem(d)[:-30]),
    st.sampled_from([b"", b"-----BEGIN", b"-----BEGIN CERTIFICATE-----", b"-----BEGIN X-----\nAAAA\n-----END X-----"]),
)


def loaded(data: bytes) -> cx509.Certificate | None:
    """
    L{x509.loadCertificate}: a certificate, or C{None} for a
    CertificateError. Any other exception propagates.
    """
    try:
        return x509.loadCertificate(data)
    except x509.CertificateError:
        return None


def checkFacts(certificate: cx509.Certificate) -> None:
    """
    The documented results of everything the server asks of a certificate
    that loaded: xmppAddrs gives user JIDs or CertificateError, and the
    others never raise.
    """
    try:
        addrs: list[jid.JID] | None = x509.xmppAddrs(certificate)
    except x509.CertificateError:
        addrs = None
    if addrs is not None:
        assert all(isinstance(a, jid.JID) and a.user for a in addrs)
    facts = x509.certificateFacts(certificate)
    assert (facts.xmppAddrError is None) == (addrs is not None)
    if addrs is not None:
        assert [a.full() for a in facts.xmppAddrs] == [a.full() for a in addrs]
    assert isinstance(x509.hasClientAuth(certificate), bool)
    assert facts.clientAuth == x509.hasClientAuth(certificate)
    assert x509.clientCertificateProblem(certificate) == facts.clientProblem
    assert x509.validity(certificate, NOW) in set(x509.Validity)
    fingerprint = x509.fingerprint(certificate)
    assert fingerprint == facts.fingerprint == hashlib.sha256(der(certificate)).hexdigest()
    assert isinstance(x509.isSelfSigned(certificate), bool)


# --- loading --------------------------------------------------------------------------------


@FAST
@given(anyCertificateInput)
@example(VERSION_4)
@example(pem(VERSION_4))
def test_loadCertificateOnlyCertificateError(data: bytes) -> None:
    """
    x509.loadCertificate's contract (XEP-0257 uploads and certificate
    files): random bytes, PEM around random or mutated DER, and mutated DER
    of real certificates give a certificate or x509.CertificateError,
    never another exception.
    """
    certificate = loaded(data)
    event("loaded" if certificate is not None else "CertificateError")


@FAST
@given(mutatedDER())
def test_factsOfMutatedCertificates(data: bytes) -> None:
    """
    RFC 6120 §13.7.1.4 and x509.certificateFacts's contract: for a mutated
    certificate that still parses, xmppAddrs gives user JIDs or
    CertificateError, and certificateFacts, hasClientAuth, validity,
    fingerprint and isSelfSigned never raise.
    """
    try:
        certificate = cx509.load_der_x509_certificate(data)
    except Exception:
        reject()
    checkFacts(certificate)


@FAST
@given(mutatedDER())
@example(BIT_STRING_NAMES)
def test_emailAddressesOnlyCertificateError(data: bytes) -> None:
    """
    x509.emailAddresses's contract (the helper for custom checkers, which
    run in the login path): for a certificate that loads, it returns
    strings or raises x509.CertificateError, never another exception
    (which would make a custom checker's login fail unexpectedly, answered
    with temporary-auth-failure).
    """
    try:
        certificate = cx509.load_der_x509_certificate(data)
    except Exception:
        reject()
    try:
        addresses = x509.emailAddresses(certificate)
    except x509.CertificateError:
        return
    assert all(isinstance(a, str) for a in addresses)


# --- certificates with odd subjectAltNames -----------------------------------------------

#: Text for id-on-xmppAddr values: valid JIDs, JIDs without localpart, too
#: long parts, forbidden characters, characters preparation maps to
#: nothing, bidi, bad domains.
JID_TEXTS = [
    "alice@example.com", "Alice@Example.COM", "alice@example.com/phone", "ünïcode@example.com",
    "alice@bücher.example", "alice@xn--bcher-kva.example", "alice@example.com.", "example.com",
    "example.com/res", "@example.com", "alice@", "alice@example.com/", "a@b..c", "alice@.example.com",
    "al ice@example.com", 'a"b@example.com', "a&b@example.com", "a'b@example.com", "a:b@example.com",
    "a<b>@example.com", "a@b@example.com", "\u00ad@example.com", "a\u00ad@example.com", "\u05d0a@example.com",
    "\u05d0@example.com", "\U000e0001@example.com", "a\x00b@example.com", "a\tb@example.com",
    "a" * 1023 + "@example.com", "a" * 1024 + "@example.com", "alice@" + "d" * 64 + ".com",
    "alice@" + "d" * 63 + ".com", "alice@example.com/" + "r" * 1024, "alice@example.com/\u0085",
    "alice@ex ample.com", "alice@-example.com", "alice@exa_mple.com", "ａｌｉｃｅ@example.com", "",
]

jidText = st.one_of(
    st.sampled_from(JID_TEXTS),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.tuples(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10), st.sampled_from(["example.com", "bücher.example", "x"])).map(lambda t: f"{t[0]}@{t[1]}"),
)


def derLength(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + derLength(len(body)) + body


@dataclass(frozen=True)
class XmppAddr:
    """
    The value of an id-on-xmppAddr otherName, and the text it carries if it
    is exactly one DER UTF8String (else C{None}).
    """

    value: bytes
    text: str | None


@st.composite
def xmppAddrValue(draw: st.DrawFn) -> XmppAddr:
    """
    A proper DER UTF8String of a JID-like text, or the text in the wrong
    form: another string type, an OCTET STRING, a constructed or explicitly
    tagged encoding, invalid UTF-8, trailing data.
    """
    text = draw(jidText)
    encoded = text.encode("utf-8")
    form = draw(st.sampled_from(["utf8"] * 5 + ["ia5", "printable", "bmp", "octets", "constructed", "explicit", "badutf8", "sequence"]))
    if form == "utf8":
        return XmppAddr(asn1.encode_der(text), text)
    if form == "ia5":
        return XmppAddr(tlv(0x16, encoded), None)
    if form == "printable":
        return XmppAddr(tlv(0x13, encoded), None)
    if form == "bmp":
        return XmppAddr(tlv(0x1E, text.encode("utf-16-be")), None)
    if form == "octets":
        return XmppAddr(tlv(0x04, encoded), None)
    if form == "constructed":
        return XmppAddr(tlv(0x2C, tlv(0x0C, encoded)), None)
    if form == "explicit":
        return XmppAddr(tlv(0xA0, tlv(0x0C, encoded)), None)
    if form == "sequence":
        return XmppAddr(tlv(0x30, tlv(0x0C, encoded)), None)
    bad = encoded + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]))
    return XmppAddr(tlv(0x0C, bad), None)


OTHER_NAMES: list[cx509.GeneralName] = [
    cx509.DNSName("example.com"),
    cx509.DNSName("*.example.com"),
    cx509.DNSName("xn--bcher-kva.example"),
    cx509.RFC822Name("alice@example.com"),
    cx509.RFC822Name("not an address"),
    cx509.UniformResourceIdentifier("xmpp:alice@example.com"),
    cx509.IPAddress(ipaddress.ip_address("192.0.2.1")),
    cx509.IPAddress(ipaddress.ip_address("2001:db8::1")),
    cx509.RegisteredID(cx509.ObjectIdentifier("1.2.3.4")),
    cx509.DirectoryName(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "alice@example.com")])),
    # SRVName (RFC 4985) and a Microsoft UPN: otherNames that are not xmppAddrs.
    cx509.OtherName(cx509.ObjectIdentifier("1.3.6.1.5.5.7.8.7"), tlv(0x16, b"_xmpp-client.example.com")),
    cx509.OtherName(cx509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), asn1.encode_der("alice@example.com")),
    cx509.OtherName(cx509.ObjectIdentifier("1.3.6.1.5.5.7.8.5.1"), asn1.encode_der("alice@example.com")),
]


@dataclass(frozen=True)
class SANCertificate:
    """
    A certificate built with odd subjectAltNames, and what xmppAddrs must
    say about it: the JID texts of its xmppAddrs (C{None} when one of them
    is not a UTF8String, so CertificateError is the only right answer).
    """

    certificate: cx509.Certificate
    xmppTexts: list[str] | None
    clientAuth: bool


@st.composite
def sanCertificate(draw: st.DrawFn) -> SANCertificate:
    """
    A certificate whose subjectAltName mixes many id-on-xmppAddr otherNames
    (right, wrongly encoded, naming no user, too long, with forbidden
    characters) with DNS, e-mail, URI, IP, directory and other otherNames,
    repeated up to a few hundred times; or with an empty SAN, or none; and
    an extendedKeyUsage with or without clientAuth, or none.
    """
    entries = draw(st.lists(st.one_of(xmppAddrValue(), st.sampled_from(OTHER_NAMES)), max_size=6))
    repeat = draw(st.sampled_from([1, 1, 1, 2, 50, 200]))
    entries = entries * repeat
    names: list[cx509.GeneralName] = []
    texts: list[str] | None = []
    for entry in entries:
        if isinstance(entry, XmppAddr):
            names.append(cx509.OtherName(x509.XMPP_ADDR_OID, entry.value))
            if entry.text is None or texts is None:
                texts = None
            else:
                texts.append(entry.text)
        else:
            names.append(entry)
    builder = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "odd")]))
        .issuer_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "odd")]))
        .public_key(EC_KEY.public_key())
        .serial_number(draw(st.integers(1, 2**159 - 1)))
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    emptySAN = draw(st.booleans())
    if names or emptySAN:
        builder = builder.add_extension(cx509.SubjectAlternativeName(names), critical=draw(st.booleans()))
    usages = draw(
        st.one_of(
            st.none(),
            st.lists(
                st.sampled_from(
                    [
                        ExtendedKeyUsageOID.CLIENT_AUTH,
                        ExtendedKeyUsageOID.SERVER_AUTH,
                        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
                        ExtendedKeyUsageOID.CODE_SIGNING,
                        cx509.ObjectIdentifier("1.2.3.4.5"),
                    ]
                ),
                min_size=1,
                max_size=3,
                unique=True,
            ),
        )
    )
    if usages is not None:
        builder = builder.add_extension(cx509.ExtendedKeyUsage(usages), critical=False)
    clientAuth = usages is None or bool(
        {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(usages)
    )
    try:
        certificate = builder.sign(EC_KEY, hashes.SHA256())
    except ValueError:
        # cryptography refuses some values outright (not what is tested).
        reject()
    return SANCertificate(certificate, texts, clientAuth)


def expectedAddrs(texts: list[str] | None) -> list[str] | None:
    """
    The model of xmppAddrs (RFC 6120 §13.7.1.4, RFC 7622): every value a
    JID with a localpart, prepared, in order; else CertificateError
    (C{None}).
    """
    if texts is None:
        return None
    result = []
    for text in texts:
        try:
            parsed = parseJID(text)
        except jid.InvalidFormat:
            return None
        if not parsed.user:
            return None
        result.append(parsed.full())
    return result


@SLOW
@given(sanCertificate())
def test_oddSubjectAltNames(made: SANCertificate) -> None:
    """
    RFC 6120 §13.7.1.4 and XEP-0178: for certificates with huge or odd
    subjectAltNames (hundreds of xmppAddrs, values that are not DER
    UTF8Strings, JIDs without localpart, too long or with forbidden
    characters, mixed DNS/e-mail/URI/IP/other names, an empty SAN),
    xmppAddrs gives exactly the prepared user JIDs, in order, or
    CertificateError when any of them is not one; hasClientAuth follows
    RFC 5280 §4.2.1.12; loading the DER gives the same certificate or
    CertificateError (too large); the other facts never raise.
    """
    certificate = made.certificate
    expected = expectedAddrs(made.xmppTexts)
    try:
        actual: list[str] | None = [a.full() for a in x509.xmppAddrs(certificate)]
    except x509.CertificateError:
        actual = None
    assert actual == expected
    event(f"xmppAddrs: {'CertificateError' if actual is None else len(actual)}")
    assert x509.hasClientAuth(certificate) == made.clientAuth
    checkFacts(certificate)
    again = loaded(der(certificate))
    if again is None:
        assert len(der(certificate)) > x509.MAX_CERTIFICATE_SIZE
    else:
        assert der(again) == der(certificate)


#: The DER body of the id-on-xmppAddr OID, 1.3.6.1.5.5.7.8.5.
XMPP_ADDR_OID_DER = bytes([0x2B, 6, 1, 5, 5, 7, 8, 5])


def otherName(value: bytes) -> bytes:
    """
    A GeneralName otherName ([0] IMPLICIT) of type id-on-xmppAddr holding
    C{value} as its [0] EXPLICIT value, DER, whatever C{value} is.
    """
    return tlv(0xA0, tlv(0x06, XMPP_ADDR_OID_DER) + tlv(0xA0, value))


@st.composite
def rawExtensionCertificate(draw: st.DrawFn) -> cx509.Certificate:
    """
    A certificate whose subjectAltName or extendedKeyUsage extension holds
    raw bytes: random, an empty SEQUENCE, a SAN with a truncated or
    mis-tagged otherName, x400Address and ediPartyName (which cryptography
    does not support), or an xmppAddr with an indefinite or non-minimal
    length.
    """
    candidates = [
        b"\x30\x00",
        tlv(0x30, otherName(b"\x0c\x81\x05alice")),
        tlv(0x30, otherName(b"\x0c\x80alice@example.com\x00\x00")),
        tlv(0x30, otherName(tlv(0x0C, b"alice@example.com") + b"\x00")),
        tlv(0x30, otherName(b"")),
        tlv(0x30, tlv(0xA0, tlv(0x06, XMPP_ADDR_OID_DER))),
        tlv(0x30, tlv(0xA3, b"\x30\x00")),
        tlv(0x30, tlv(0xA5, tlv(0xA1, tlv(0x0C, b"x")))),
        tlv(0x30, tlv(0x82, b"example.com") + tlv(0x82, "bücher".encode())),
        tlv(0x30, tlv(0x81, b"\xff\xfe")),
        tlv(0x31, otherName(tlv(0x0C, b"alice@example.com"))),
    ]
    value = draw(st.one_of(st.sampled_from(candidates), st.binary(max_size=40)))
    extensionOID = draw(st.sampled_from([SAN_OID, SAN_OID, EKU_OID]))
    builder = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([]))
        .issuer_name(cx509.Name([]))
        .public_key(EC_KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(cx509.UnrecognizedExtension(extensionOID, value), critical=False)
    )
    return builder.sign(EC_KEY, hashes.SHA256())


@FAST
@given(rawExtensionCertificate())
def test_malformedExtensions(certificate: cx509.Certificate) -> None:
    """
    x509.xmppAddrs and hasClientAuth contracts: a certificate whose
    subjectAltName or extendedKeyUsage is malformed or unsupported gives
    CertificateError from xmppAddrs (never an empty list for an
    unparsable SAN) and False from hasClientAuth (failing closed); the
    other facts never raise.
    """
    try:
        extensions = list(certificate.extensions)
    except Exception:
        extensions = None
    checkFacts(certificate)
    if extensions is None:
        try:
            x509.xmppAddrs(certificate)
        except x509.CertificateError:
            pass
        else:
            raise AssertionError("xmppAddrs accepted unparsable extensions")
        assert x509.hasClientAuth(certificate) is False


# --- the TLS peer's certificates ------------------------------------------------------------


class FakeConnection(SSL.Connection):
    """
    A pyOpenSSL connection whose peer presented given certificates.
    """

    def __init__(self, leaf: crypto.X509 | None, chain: list[crypto.X509]) -> None:
        super().__init__(SSL.Context(SSL.TLS_SERVER_METHOD), None)
        self._leaf = leaf
        self._chain = chain

    def get_peer_certificate(self, *, as_cryptography: bool = False) -> crypto.X509 | None:  # type: ignore[override]
        return self._leaf

    def get_peer_cert_chain(self, *, as_cryptography: bool = False) -> list[crypto.X509]:  # type: ignore[override]
        return self._chain


def openSSLCertificate(data: bytes) -> crypto.X509 | None:
    """
    The certificate as OpenSSL loads it from a handshake, or C{None} when
    OpenSSL refuses it too (then it never reaches the server).
    """
    try:
        return crypto.load_certificate(crypto.FILETYPE_ASN1, data)
    except crypto.Error:
        return None


@FAST
@given(st.lists(mutatedDER(), min_size=1, max_size=3))
@example([VERSION_4])
@example([SEEDS[0], VERSION_4])
def test_peerCertificateChain(chain: list[bytes]) -> None:
    """
    RFC 6120 §13.7.2 / XEP-0178 and tls.peerCertificateChain's contract:
    certificates that OpenSSL accepts in a handshake but cryptography may
    not (mutated DER) become a list of cryptography certificates, the leaf
    first or nothing when the leaf is unreadable; never an exception, which
    would make the server answer the stream with internal-server-error.
    """
    certificates = [c for c in map(openSSLCertificate, chain) if c is not None]
    if not certificates:
        certificates = [crypto.X509.from_cryptography(cx509.load_der_x509_certificate(SEEDS[0]))]
    protocol = TLSMemoryBIOProtocol(None, Protocol())
    protocol._tlsConnection = FakeConnection(certificates[0], certificates[1:])
    result = tls.peerCertificateChain(protocol)
    assert all(isinstance(c, cx509.Certificate) for c in result)
    if result:
        assert der(result[0]) == crypto.dump_certificate(crypto.FILETYPE_ASN1, certificates[0])
    event(f"chain length {len(result)}")


class StubTLSProtocol(TLSMemoryBIOProtocol):
    """
    What Twisted's startTLS puts between the TCP transport and the stream,
    reduced to what the server asks of it: the pyOpenSSL connection with
    the peer's certificates.
    """

    def __init__(self, wrapped: IProtocol, connection: SSL.Connection) -> None:
        super().__init__(None, wrapped)
        self._tlsConnection = connection

    def connectionLost(self, reason: failure.Failure | None = None) -> None:
        self.wrappedProtocol.connectionLost(reason or failure.Failure(ConnectionDone()))


@FAST
@given(st.lists(mutatedDER(), min_size=1, max_size=3))
@example([VERSION_4])
def test_streamWithPeerCertificate(chain: list[bytes]) -> None:
    """
    RFC 6120 §5.4.3.3, §6.3.4 and XEP-0178 §2: whatever certificates a
    client presented in the TLS handshake (mutated DER that OpenSSL
    accepts), the restarted stream gets its SASL features, never an
    internal-server-error with "Could not prepare stream features" in the
    log, and the server keeps serving.
    """
    certificates = [c for c in map(openSSLCertificate, chain) if c is not None]
    if not certificates:
        certificates = [crypto.X509.from_cryptography(cx509.load_der_x509_certificate(SEEDS[0]))]
    h = certificateHarness()
    with noUnexpectedLogs():
        conn = h.connect()
        conn.send(header())
        conn.send(STARTTLS)
        stream = conn.transport.protocol
        assert stream is conn.xs
        conn.transport.protocol = StubTLSProtocol(stream, FakeConnection(certificates[0], certificates[1:]))
        conn.output()
        conn.send(header())
        received = checkServerOutput(conn.output())
        assert not streamErrors(received), received.raw
        features = received.only("features")
        assert [c.name for c in features.elements()] == ["mechanisms"], received.raw
        event(f"peer chain length {len(conn.authenticator.peerChain)}")
        assertStillServing(h)
