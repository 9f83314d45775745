"""
Property-based robustness tests for SASL (RFC 6120 §6): the base64 handling
of C{<auth/>} and C{<response/>} in L{xmppcert.c2s.ReceivingSASLFeature},
and the mechanisms of L{xmppcert.sasl} (PLAIN, EXTERNAL, SCRAM) on
arbitrary and near-valid client messages.

The rule: a client's SASL data only ever gets a challenge, a success, or a
C{<failure/>} with a documented RFC 6120 §6.5 condition; never an
unexpected exception, which the server would answer with
C{temporary-auth-failure} after logging "SASL mechanism ... failed
unexpectedly".
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509 as cx509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import event, given
from hypothesis import strategies as st
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.python import failure

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    PASSWORD,
    ClientConnection,
    ServerHarness,
    parseOutput,
    resultOf,
    syncDeferToThread,
)
from tests.test_properties_xmlstream import (
    FAST,
    SASL_FAILURES,
    SLOW,
    STARTTLS,
    assertStillServing,
    checkServerOutput,
    escapeText,
    header,
    noUnexpectedLogs,
    plainAuth,
    serverHarness,
    settle,
    splits,
    streamErrors,
    xmlText,
)
from xmppcert import x509
from xmppcert.cred import (
    AccountRealm,
    ScramChecker,
    StoredCertificateChecker,
    StoredPasswordChecker,
)
from xmppcert.sasl import NS_SASL, Challenge, MechanismContext, SASLFailure, Success
from xmppcert.sasl.external import External
from xmppcert.sasl.plain import Plain
from xmppcert.sasl.scram import ScramSHA1, ScramSHA256

# --- outcomes -----------------------------------------------------------------


def outcome(d: defer.Deferred[Any]) -> Challenge | Success | SASLFailure:
    """
    What a mechanism step gave: a challenge, a success, or a SASLFailure
    with a documented condition. Anything else fails the test, with the
    traceback.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the mechanism did not answer at once over an in-memory store"
    result = results[0]
    if isinstance(result, failure.Failure):
        assert result.check(SASLFailure), result.getTraceback()
        value = result.value
        assert isinstance(value, SASLFailure)
        assert value.condition in SASL_FAILURES, value.condition
        return value
    assert isinstance(result, Challenge | Success), result
    return result


def describeOutcome(result: Challenge | Success | SASLFailure) -> str:
    if isinstance(result, SASLFailure):
        return result.condition
    return type(result).__name__


def mechanismContext(h: ServerHarness, peerChain: tuple[cx509.Certificate, ...] = ()) -> MechanismContext:
    return MechanismContext(
        portal=h.server.portal,
        store=h.store,
        domain=DOMAIN,
        secure=True,
        peerAddress="192.0.2.7:40000",
        peerChain=peerChain,
    )


# --- certificates for EXTERNAL ------------------------------------------------------

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
_KEY = x509.generateClientKey("ec")
ALICE_CERTIFICATE = x509.issueClientCertificate([ALICE], _KEY, now=NOW - datetime.timedelta(days=1), days=30)
TWO_JIDS_CERTIFICATE = x509.issueClientCertificate(
    [ALICE, f"{ALICE}/phone"], _KEY, now=NOW - datetime.timedelta(days=1), days=30
)


def certificateHarness() -> ServerHarness:
    """
    A server offering EXTERNAL first, whose portal also checks stored
    certificates; L{ALICE_CERTIFICATE} and L{TWO_JIDS_CERTIFICATE} are
    registered to alice; the clock is now.
    """
    h = serverHarness(sasl={"mechanisms": ["EXTERNAL", "SCRAM-SHA-256", "PLAIN"]})
    h.clock.advance(NOW.timestamp())
    for name, certificate in (("Phone", ALICE_CERTIFICATE), ("Both", TWO_JIDS_CERTIFICATE)):
        facts = x509.certificateFacts(certificate)
        resultOf(
            h.store.addCertificate(
                ALICE, name, certificate.public_bytes(Encoding.DER), facts.fingerprint, facts.notAfter.timestamp()
            )
        )
    h.server.portal = Portal(
        AccountRealm(),
        [
            ScramChecker(),
            StoredPasswordChecker(h.store, deferToThread=syncDeferToThread),
            StoredCertificateChecker(h.store, h.clock, [DOMAIN]),
        ],
    )
    return h


# --- payload strategies -------------------------------------------------------------

#: Text that is (nearly) base64, as clients get it wrong.
SPECIAL_PAYLOADS = [
    "", "=", "==", "===", "====", "A", "AA", "AAA", "AA=", "A===", "=AAAA", "AA==AA==", "Zm9v\n",
    " ", "\t\n", "Zm9 v", "Zm9v====", "Zm9v=Zm9v", "Zm8", "Zm8=", "Zm8==", "____", "----", "+/+/",
    "٠١٢٣", "Zm9v\u00a0", "é", "&#65;&#65;&#65;&#65;", "AAAA&#x3D;",
]

AUTHCIDS = [
    "alice", "ALICE", "alice@example.com", "Alice@Example.COM", "bob", "nobody", "alice@other.example",
    "alice@example.com/res", "a@b@c", "", "\u00ad", "al ice", "x" * 256, "é", "\u0627\u0644a", "@example.com",
    "alice@", "alice@example..com", "\U000e0001",
]
AUTHZIDS = ["", "alice@example.com", "bob@example.com", "example.com", "alice@example.com/res", "\u00ad", "a@b@c", "x" * 300]
PASSWORDS = [PASSWORD, "wrong", "", "\u00ad", "p" * 256]


@st.composite
def plainMessage(draw: st.DrawFn) -> bytes:
    """
    An RFC 4616 message, right or wrong: fields from interesting values or
    arbitrary bytes, with the wrong number of NULs sometimes.
    """
    fields = [
        draw(st.one_of(st.sampled_from(AUTHZIDS).map(str.encode), st.binary(max_size=12))),
        draw(st.one_of(st.sampled_from(AUTHCIDS).map(str.encode), st.binary(max_size=12))),
        draw(st.one_of(st.sampled_from(PASSWORDS).map(str.encode), st.binary(max_size=12))),
    ]
    extra = draw(st.lists(st.binary(max_size=4), max_size=1))
    count = draw(st.sampled_from([3, 3, 3, 2, 1]))
    return b"\0".join(fields[:count] + extra)


@st.composite
def saslData(draw: st.DrawFn) -> bytes:
    """
    Bytes a client might send as SASL data: arbitrary, PLAIN-shaped,
    SCRAM-shaped or an authzid.
    """
    return draw(
        st.one_of(
            st.binary(max_size=64),
            plainMessage(),
            clientFirst().map(lambda first: first.data),
            st.sampled_from(AUTHZIDS).map(str.encode),
        )
    )


@st.composite
def elementText(draw: st.DrawFn) -> str:
    """
    The text of an C{<auth/>} or C{<response/>} as it appears in the XML:
    proper base64 (maybe wrapped in whitespace), broken base64, arbitrary
    text, or the special cases of RFC 6120 §6.4.2.
    """
    data = draw(saslData())
    encoded = base64.b64encode(data).decode("ascii")
    kind = draw(st.sampled_from(["base64", "base64", "spaced", "broken", "text", "special"]))
    if kind == "spaced" and encoded:
        at = draw(st.integers(0, len(encoded)))
        return encoded[:at] + draw(st.sampled_from([" ", "\n", "\r\n", "\t"])) + encoded[at:]
    if kind == "broken" and encoded:
        at = draw(st.integers(0, len(encoded) - 1))
        return encoded[:at] + draw(st.sampled_from(list("!*-_.=é\u0660"))) + encoded[at + 1 :]
    if kind == "text":
        return escapeText(draw(xmlText))
    if kind == "special":
        return draw(st.sampled_from(SPECIAL_PAYLOADS))
    return encoded


MECHANISM_NAMES = [
    "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "EXTERNAL", "SCRAM-SHA-256-PLUS", "DIGEST-MD5", "plain", "",
    "PLAIN ", "X" * 60,
]


@st.composite
def saslElement(draw: st.DrawFn) -> bytes:
    """
    One SASL element a client sends: auth (with or without data), response,
    abort, or one of them with extra child elements or attributes.
    """
    kind = draw(st.sampled_from(["auth", "auth", "auth-empty", "response", "response", "abort", "odd"]))
    mechanism = escapeText(draw(st.one_of(st.sampled_from(MECHANISM_NAMES), xmlText)), "'")
    text = draw(elementText())
    if kind == "auth":
        xml = f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{text}</auth>"
    elif kind == "auth-empty":
        xml = f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'/>"
    elif kind == "response":
        xml = f"<response xmlns='{NS_SASL}'>{text}</response>"
    elif kind == "abort":
        xml = f"<abort xmlns='{NS_SASL}'>{text}</abort>"
    else:
        xml = draw(
            st.sampled_from(
                [
                    f"<auth xmlns='{NS_SASL}'>{text}</auth>",
                    f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'><x/>{text}</auth>",
                    f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{text}<x>{text}</x></auth>",
                    f"<response xmlns='{NS_SASL}'><response>{text}</response></response>",
                    f"<auth xmlns='urn:other' mechanism='PLAIN'>{text}</auth>",
                    f"<challenge xmlns='{NS_SASL}'>{text}</challenge>",
                    f"<success xmlns='{NS_SASL}'/>",
                ]
            )
        )
    return xml.encode("utf-8")


# --- SCRAM client messages ------------------------------------------------------------


@dataclass(frozen=True)
class ClientFirst:
    """
    A generated SCRAM client-first message and what it was made of.

    @ivar valid: the grammar is right, the user is alice and there is no
        authzid: a login with the right proof must succeed.
    """

    data: bytes
    gs2Header: str
    bare: str
    clientNonce: str
    valid: bool


NONCES = ["fyko+d2lbbFgONRv9qkxdawL", "x", "abc=def", "~!@#$%^&*()", "é", "a b", "", "a,b", "\x7f"]

#: What can be wrong with a client-first message.
FIRST_DEFECTS = ["flag", "authzid", "user", "nonce", "swap", "no-n", "no-r", "twice", "mandatory", "bytes"]


@st.composite
def clientFirst(draw: st.DrawFn) -> ClientFirst:
    """
    RFC 5802 §7 client-first-message: right, or with a few defects: bad
    channel-binding flags (p=..., unknown), authzids, badly escaped or
    unknown user names, odd nonces, missing, repeated, reordered or
    mandatory-extension attributes, non-UTF-8 bytes. Unknown extensions
    (allowed by the grammar) are sometimes added to right messages too.
    """
    defects = draw(st.one_of(st.just(frozenset[str]()), st.frozensets(st.sampled_from(FIRST_DEFECTS), min_size=1, max_size=2)))
    flag = draw(st.sampled_from(["n", "y"]))
    if "flag" in defects:
        flag = draw(st.sampled_from(["p=tls-unique", "p=tls-server-end-point", "p=", "p", "x", "", "N"]))
    authzid = ""
    if "authzid" in defects:
        authzid = draw(st.sampled_from(["a=alice@example.com", "a=bob@example.com", "a=", "b=x", "a=x=", "a=x=2C"]))
    user = "alice"
    if "user" in defects:
        user = draw(st.one_of(st.sampled_from(AUTHCIDS + ["a=2Cb", "a=3D", "=", "a=x", "=2"]), xmlText))
    nonce = draw(st.sampled_from(NONCES[:4]))
    if "nonce" in defects:
        nonce = draw(st.one_of(st.sampled_from(NONCES), st.text(st.characters(codec="utf-8"), max_size=8)))
    attributes = [f"n={user}", f"r={nonce}"]
    if draw(st.booleans()):
        attributes.append("x=1")
    if "swap" in defects:
        attributes[0], attributes[1] = attributes[1], attributes[0]
    if "no-n" in defects:
        attributes = [a for a in attributes if not a.startswith("n=")]
    if "no-r" in defects:
        attributes = [a for a in attributes if not a.startswith("r=")]
    if "twice" in defects:
        attributes.append(attributes[0] if attributes else "n=alice")
    if "mandatory" in defects:
        attributes.insert(0, "m=ext")
    gs2Header = f"{flag},{authzid},"
    bare = ",".join(attributes)
    data = (gs2Header + bare).encode("utf-8")
    if "bytes" in defects:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])) + data[at:]
    return ClientFirst(data, gs2Header, bare, nonce, valid=not defects)


_saltedCache: dict[tuple[str, bytes, int], bytes] = {}


def saltedPassword(hashName: str, password: str, salt: bytes, iterations: int) -> bytes:
    key = (hashName, salt, iterations)
    if key not in _saltedCache:
        _saltedCache[key] = hashlib.pbkdf2_hmac(hashName, password.encode(), salt, iterations)
    return _saltedCache[key]


def parseAttributes(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(","))


#: What can be wrong with a client-final message.
FINAL_DEFECTS = ["binding", "nonce", "extension", "proof", "trailer", "order", "bytes"]


@dataclass(frozen=True)
class ClientFinal:
    """
    A generated SCRAM client-final message.

    @ivar wrong: the channel binding, the nonce or the proof is wrong, or
        the grammar is broken: it must never log in.
    @ivar right: everything is right, and so was the client-first message:
        it must log in.
    """

    data: bytes
    wrong: bool
    right: bool
    serverSignature: bytes


@st.composite
def clientFinal(draw: st.DrawFn, first: ClientFirst, serverFirst: str, hashName: str) -> ClientFinal:
    """
    RFC 5802 §7 client-final-message for a server-first message: the right
    channel binding, nonce and proof, or wrong ones (another GS2 header,
    bad base64, the client's nonce only, a flipped or truncated proof),
    missing, extra or reordered attributes, non-UTF-8 bytes.
    """
    attributes = parseAttributes(serverFirst)
    salt = base64.b64decode(attributes["s"])
    iterations = int(attributes["i"])
    combined = attributes["r"]

    defects = draw(st.one_of(st.just(frozenset[str]()), st.frozensets(st.sampled_from(FINAL_DEFECTS), min_size=1, max_size=2)))
    rightBinding = base64.b64encode(first.gs2Header.encode()).decode()
    binding: str | None = rightBinding
    if "binding" in defects:
        binding = draw(st.sampled_from(["biws", "eSws", "cD10bHMtdW5pcXVlLCw=", "b!ws", "", None]))
    nonce: str | None = combined
    if "nonce" in defects:
        nonce = draw(st.sampled_from([first.clientNonce, combined + "x", combined[:-1], "é", "", None]))
    extension = None
    if "extension" in defects:
        extension = draw(st.sampled_from(["x=1", "m=1"]))
    parts = [f"c={binding}"] if binding is not None else []
    if nonce is not None:
        parts.append(f"r={nonce}")
    if extension is not None:
        parts.append(extension)
    messageWithoutProof = ",".join(parts)

    salted = saltedPassword(hashName, PASSWORD, salt, iterations)
    clientKey = hmac.digest(salted, b"Client Key", hashName)
    storedKey = hashlib.new(hashName, clientKey).digest()
    serverKey = hmac.digest(salted, b"Server Key", hashName)
    authMessage = ",".join([first.bare, serverFirst, messageWithoutProof]).encode()
    signature = hmac.digest(storedKey, authMessage, hashName)
    rightProof = bytes(a ^ b for a, b in zip(clientKey, signature, strict=True))
    serverSignature = hmac.digest(serverKey, authMessage, hashName)

    proofKind = "right"
    if "proof" in defects:
        proofKind = draw(st.sampled_from(["flipped", "short", "long", "broken", "empty", "missing"]))
    proof = rightProof
    if proofKind == "flipped":
        at = draw(st.integers(0, len(rightProof) - 1))
        proof = rightProof[:at] + bytes([rightProof[at] ^ (1 << draw(st.integers(0, 7)))]) + rightProof[at + 1 :]
    elif proofKind == "short":
        proof = rightProof[:-1]
    elif proofKind == "long":
        proof = rightProof + b"\0"
    encodedProof = base64.b64encode(proof).decode()
    if proofKind == "broken":
        encodedProof = "!" + encodedProof[1:]
    elif proofKind == "empty":
        encodedProof = ""
    rightMessage = f"{messageWithoutProof},p={encodedProof}"
    message = messageWithoutProof if proofKind == "missing" else rightMessage
    if "trailer" in defects:
        message += draw(st.sampled_from([",", ",p=AAAA", ",x=1", ",c=biws"]))
    if "order" in defects:
        message = ",".join(draw(st.permutations(message.split(","))))
    data = message.encode("utf-8")
    if "bytes" in defects:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00"])) + data[at:]
    wrong = (
        binding != rightBinding
        or nonce != combined
        or extension == "m=1"
        or proofKind != "right"
        or data != rightMessage.encode()
    )
    right = first.valid and not defects
    return ClientFinal(data, wrong, right, serverSignature)


# --- mechanism level --------------------------------------------------------------------

MECHANISMS: dict[str, Callable[[MechanismContext], Any]] = {
    "PLAIN": Plain,
    "EXTERNAL": External,
    "SCRAM-SHA-1": ScramSHA1,
    "SCRAM-SHA-256": ScramSHA256,
}


@FAST
@given(
    st.sampled_from(sorted(MECHANISMS)),
    st.booleans(),
    st.one_of(st.none(), saslData()),
    st.lists(saslData(), max_size=3),
)
def test_mechanismArbitraryData(
    name: str, withCertificate: bool, initial: bytes | None, responses: list[bytes]
) -> None:
    """
    RFC 6120 §6.4 and §6.5, RFC 4616, RFC 4422 appendix A, RFC 5802: any
    initial response and any responses, to any mechanism, with or without a
    client certificate, give challenges, a success or a SASLFailure with a
    documented condition; never another exception (which the stream would
    answer with temporary-auth-failure).
    """
    h = certificateHarness()
    chain = (ALICE_CERTIFICATE,) if withCertificate else ()
    mechanism = MECHANISMS[name](mechanismContext(h, chain))
    with noUnexpectedLogs():
        result = outcome(mechanism.start(initial))
        for response in responses:
            if not isinstance(result, Challenge):
                break
            result = outcome(mechanism.step(response))
    event(f"{name}: {describeOutcome(result)}")


@FAST
@given(st.sampled_from([ScramSHA1, ScramSHA256]), st.data())
def test_scramNearValidMessages(mechanismClass: Any, data: st.DataObject) -> None:
    """
    RFC 5802 §5, §7 and RFC 6120 §6.3.8: near-valid SCRAM client-first and
    client-final messages (wrong nonces, bad channel-binding flags and
    data, missing, repeated or extra attributes, bad proofs, non-UTF-8)
    only ever get SASLFailure; a login with every part right succeeds with
    the right server signature; a wrong channel binding, nonce or proof
    never logs in; and nothing may follow the final message.
    """
    h = serverHarness()
    mechanism = mechanismClass(mechanismContext(h))
    hashName = "sha1" if mechanismClass is ScramSHA1 else "sha256"
    first = data.draw(clientFirst())
    with noUnexpectedLogs():
        result = outcome(mechanism.start(first.data))
        if first.valid:
            assert isinstance(result, Challenge), describeOutcome(result)
        if not isinstance(result, Challenge):
            assert isinstance(result, SASLFailure)
            event(f"client-first: {result.condition}")
            return
        serverFirst = result.data.decode()
        assert parseAttributes(serverFirst)["r"].startswith(first.clientNonce)
        final = data.draw(clientFinal(first, serverFirst, hashName))
        result = outcome(mechanism.step(final.data))
        event(f"client-final: {describeOutcome(result)}")
        if final.right:
            assert isinstance(result, Success), describeOutcome(result)
            assert result.account.jid.userhost() == ALICE
        if isinstance(result, Success):
            # The accounts whose password the proof was made with.
            assert result.account.jid.userhost() in (ALICE, BOB)
            assert result.additionalData == b"v=" + base64.b64encode(final.serverSignature)
        if final.wrong:
            assert isinstance(result, SASLFailure), "a wrong client-final message logged in"
        after = outcome(mechanism.step(final.data))
        assert isinstance(after, SASLFailure) and after.condition == "malformed-request"


# --- stream level -----------------------------------------------------------------------


def saslAnswers(raw: str) -> list[str]:
    received = parseOutput(raw)
    return [e.name for e in received.elements if e.uri == NS_SASL and e.name in ("challenge", "failure", "success")]


def saslStream(h: ServerHarness, chain: tuple[cx509.Certificate, ...] = ()) -> ClientConnection:
    """
    A stream past STARTTLS, its TLS handshake having presented C{chain}.
    """
    conn = h.connect()
    conn.authenticator.peerChain = chain
    conn.send(header())
    conn.send(STARTTLS)
    conn.send(header())
    conn.output()
    return conn


@SLOW
@given(st.booleans(), st.lists(saslElement(), min_size=1, max_size=4), st.data())
def test_streamSASLElements(withCertificate: bool, elements: list[bytes], data: st.DataObject) -> None:
    """
    RFC 6120 §6.4, §6.5 and docs/protocol.md: any sequence of SASL elements
    with arbitrary bodies (broken base64, odd mechanisms, stray children),
    in arbitrary pieces, gets exactly one challenge, success or documented
    failure per element while the stream is open, at most a documented
    stream error, and nothing in the log; a stream that is still open
    then logs in with a correct PLAIN, and the server serves a new client.
    """
    h = certificateHarness()
    with noUnexpectedLogs():
        conn = saslStream(h, (ALICE_CERTIFICATE,) if withCertificate else ())
        succeeded = False
        for element in elements:
            if conn.closed or succeeded:
                break
            for chunk in data.draw(splits(element, maxCuts=3)):
                conn.send(chunk)
            # Let a throttled failure's delay pass.
            h.clock.advance(h.server.config.limits.login_failure_max_delay)
            raw = conn.output()
            received = checkServerOutput(raw)
            answers = saslAnswers(raw)
            event(f"answers: {answers}")
            if streamErrors(received) or received.footer:
                assert len(answers) <= 1, raw
            elif element.startswith(f"<auth xmlns='{NS_SASL}'".encode()) or element.startswith(
                f"<response xmlns='{NS_SASL}'".encode()
            ) or element.startswith(f"<abort xmlns='{NS_SASL}'".encode()):
                assert len(answers) == 1, raw
            succeeded = "success" in answers
        if not conn.closed and not succeeded:
            conn.send(plainAuth())
            assert saslAnswers(conn.output()) == ["success"]
        settle(h, conn)
        assertStillServing(h)


@SLOW
@given(st.sampled_from([ALICE_CERTIFICATE, TWO_JIDS_CERTIFICATE]), st.one_of(st.none(), elementText()))
def test_streamExternalAuthzid(certificate: cx509.Certificate, text: str | None) -> None:
    """
    XEP-0178 §2, RFC 4422 appendix A and docs/protocol.md: EXTERNAL with a
    registered certificate and any authzid text gets a challenge (no data),
    a success, or a documented failure; the checkers' refusals
    (not-authorized, invalid-authzid) and a bad authzid (malformed-request)
    close the stream with the closing tag; nothing is logged as an error.
    """
    h = certificateHarness()
    with noUnexpectedLogs():
        conn = saslStream(h, (certificate,))
        body = "" if text is None else text
        conn.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{body}</auth>")
        raw = conn.output()
        received = checkServerOutput(raw)
        answers = saslAnswers(raw)
        assert len(answers) == 1, raw
        event(f"EXTERNAL: {answers[0]}")
        if answers[0] == "failure":
            condition = [c.name for c in received.only("failure").elements() if c.name != "text"][0]
            if condition in ("not-authorized", "invalid-authzid", "malformed-request"):
                assert received.footer and conn.closed, raw
        settle(h, conn)
        assertStillServing(h)


def test_outcomeIsStrict() -> None:
    """
    The outcome check the properties rely on can fail: an exception other
    than SASLFailure, and a temporary-auth-failure, are refused.
    """
    for d in (defer.fail(ValueError("boom")), defer.fail(SASLFailure("temporary-auth-failure"))):
        try:
            outcome(d)
        except AssertionError:
            continue
        raise AssertionError("accepted an unexpected outcome")
