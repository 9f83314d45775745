"""
Property-based robustness tests for what a remote peer's bytes reach first:
the hardened XML parser (L{xmppcert.xmlstream.HardenedElementStream}), the
stream protocol around it and the client stream (L{xmppcert.c2s}).

The rule everywhere: only the documented outcomes (stanzas, SASL answers,
the stream errors of docs/protocol.md) ever come out, never an uncaught
exception or an error in the log, and the server keeps serving.

Also home of the small helpers the other C{test_properties_*} modules share
(hypothesis settings, log capture, an in-memory server with the XEP-0257
handler attached).
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from tests.helpers import (
    DOMAIN,
    NS_BIND,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    NS_TLS,
    PASSWORD,
    ClientConnection,
    Received,
    ServerHarness,
    makeConfig,
    makeServer,
    parseOutput,
)
from tests.test_saslcert import CertificateManager
from xmppcert.c2s import CLOSE_GRACE
from xmppcert.handlers import defaultHandlers
from xmppcert.sasl import NS_SASL
from xmppcert.saslcert import Requester, SASLCertHandler
from xmppcert.xmlstream import HardenedElementStream, StanzaTooLargeError

# --- shared helpers ---------------------------------------------------------------

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    # Hypothesis's caches (Unicode tables, constants) go to the temporary
    # directory, never into the working tree.
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "xmppcert-hypothesis")

#: No example database: nothing is written into the working tree.
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SLOW = settings(FAST, max_examples=200)

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]

#: docs/protocol.md, "Stream errors the server sends", minus those that need
#: a failing store, a second login, a revocation, the clock or a shutdown.
STREAM_ERRORS = frozenset(
    {
        "invalid-namespace",
        "unsupported-version",
        "host-unknown",
        "not-authorized",
        "policy-violation",
        "restricted-xml",
        "not-well-formed",
        "unsupported-stanza-type",
        "invalid-from",
    }
)

#: docs/protocol.md, "Failure conditions sent", without temporary-auth-failure:
#: that one only answers an unexpected internal error.
SASL_FAILURES = frozenset(
    {
        "aborted",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "not-authorized",
    }
)


def badEvents(events: Sequence[Any]) -> list[str]:
    """
    The captured log events that mean an unexpected error: anything carrying
    a failure, or logged at error level or above.
    """
    return [
        (formatEvent(e) or repr(e)) + ("\n" + e["log_failure"].getTraceback() if "log_failure" in e else "")
        for e in events
        if "log_failure" in e or e.get("log_level") in (LogLevel.error, LogLevel.critical)
    ]


@contextmanager
def noUnexpectedLogs() -> Iterator[Sequence[Any]]:
    """
    Capture the global log; fail if an error or a failure was logged (an
    uncaught exception in a callback, a handler or a Deferred).
    """
    with capturedLogs() as events:
        yield events
    bad = badEvents(events)
    assert not bad, "\n".join(bad)


def serverHarness(**config: Any) -> ServerHarness:
    """
    An in-memory server offering L{MECHANISMS}, with the default handlers
    and the XEP-0257 handler (as L{xmppcert.service} attaches it) on bound
    streams.
    """
    config.setdefault("sasl", {"mechanisms": MECHANISMS})
    h = makeServer(makeConfig(**config))
    manager = CertificateManager(h.store, h.sessions, h.clock)

    def saslcertHandlers(authenticator: Any) -> list[Any]:
        account = authenticator.account
        return [SASLCertHandler(manager, Requester(account.jid, account.canManageCertificates))]

    h.server.handlerFactories = [defaultHandlers, saslcertHandlers]
    return h


def streamErrors(received: Received) -> list[str]:
    """
    The conditions of every stream error in some server output.
    """
    found: list[str] = []
    for e in received.elements:
        if (e.uri, e.name) == (NS_STREAMS, "error"):
            found.extend(c.name for c in e.elements() if c.uri == NS_STREAM_ERRORS and c.name != "text")
    return found


def checkServerOutput(raw: str, streamErrorsAllowed: frozenset[str] = STREAM_ERRORS) -> Received:
    """
    Whatever a peer sent, the server's own output is well-formed, its stream
    errors (at most one, followed by the closing tag) and SASL failures have
    documented conditions, and no answer is an internal-server-error.
    """
    received = parseOutput(raw)
    errors = streamErrors(received)
    assert len(errors) <= 1, raw
    for condition in errors:
        assert condition in streamErrorsAllowed, raw
        assert received.footer, raw
    for e in received.elements:
        if (e.uri, e.name) == (NS_SASL, "failure"):
            conditions = [c.name for c in e.elements() if c.name != "text"]
            assert len(conditions) == 1 and conditions[0] in SASL_FAILURES, raw
    assert "internal-server-error" not in raw, raw
    return received


def splitAt(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """
    C{data} cut at the given offsets (any order, duplicates and out-of-range
    values ignored), so that the pieces join to C{data}.
    """
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@st.composite
def splits(draw: st.DrawFn, data: bytes, maxCuts: int = 12) -> list[bytes]:
    """
    C{data} split at hypothesis-chosen byte offsets (inside multi-byte UTF-8
    characters too).
    """
    if len(data) < 2:
        return [data]
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=maxCuts))
    return splitAt(data, cuts)


def header(to: str = DOMAIN) -> bytes:
    return (
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        f" to='{to}' version='1.0'>"
    ).encode()


FOOTER = b"</stream:stream>"
STARTTLS = f"<starttls xmlns='{NS_TLS}'/>".encode()


def plainAuth(user: str = "alice", password: str = PASSWORD) -> bytes:
    payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>".encode()


def bindRequest(resource: str, iqID: str = "bind1") -> bytes:
    escaped = domish.escapeToXml(resource)
    return f"<iq type='set' id='{iqID}'><bind xmlns='{NS_BIND}'><resource>{escaped}</resource></bind></iq>".encode()


def featuresOf(received: Received) -> list[tuple[str, str]]:
    features = received.only("features")
    return [(c.uri, c.name) for c in features.elements()]


def assertStillServing(h: ServerHarness, resource: str = "still-serving") -> None:
    """
    A well-behaved client still gets its features from the same server, logs
    in and binds.
    """
    conn = h.connect()
    assert featuresOf(conn.header()) == [(NS_TLS, "starttls")]
    conn.send(STARTTLS)
    assert conn.received().only().name == "proceed"
    assert (NS_SASL, "mechanisms") in featuresOf(conn.header())
    conn.send(plainAuth())
    assert conn.received().only().name == "success"
    assert featuresOf(conn.header()) == [(NS_BIND, "bind")]
    conn.send(bindRequest(resource))
    answer = conn.received().only("iq")
    assert answer["type"] == "result", answer.toXml()
    assert jid.JID(str(answer.bind.jid)).resource == resource


def settle(h: ServerHarness, conn: ClientConnection) -> None:
    """
    Let the close deadline pass, then check that a closed stream left
    nothing behind: it is no longer a stream of the server and holds no
    session.
    """
    h.clock.advance(CLOSE_GRACE + 1)
    if conn.closed:
        assert conn.authenticator not in h.server.streams
        assert not conn.authenticator.connected
        session = conn.authenticator.session
        if session is not None:
            assert h.sessions.sessionFor(session.jid) is not session


# --- strategies for XML ---------------------------------------------------------------


#: Characters XML 1.0 allows, weighted towards the interesting ones: markup,
#: entities' characters, whitespace and multi-byte UTF-8 (2, 3 and 4 bytes).
xmlChars = st.one_of(
    st.sampled_from(list("<>&'\"]\t\n\r =/;#éß☃€\U0001f600\u00a0\u200b")),
    st.characters(codec="utf-8", min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"),
)
xmlText = st.text(xmlChars, max_size=24)
NAMES = ["a", "b", "message", "body", "x-y", "n.1", "_u", "A9", "é", "日本", "ab·c"]
NAMESPACES = [None, "", "jabber:client", "urn:example:a", "urn:é"]


def escapeText(text: str, quote: str | None = None) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote is not None:
        text = text.replace(quote, "&apos;" if quote == "'" else "&quot;")
    return text


@st.composite
def textPiece(draw: st.DrawFn) -> str:
    """
    Character data written as plain escaped text, a CDATA section, or
    character references.
    """
    text = draw(xmlText)
    form = draw(st.sampled_from(["escaped", "cdata", "charrefs"]))
    if form == "cdata" and "]]>" not in text and "\r" not in text:
        return f"<![CDATA[{text}]]>"
    if form == "charrefs":
        hexadecimal = draw(st.booleans())
        return "".join(f"&#x{ord(c):X};" if hexadecimal else f"&#{ord(c)};" for c in text)
    return escapeText(text)


@st.composite
def elementXML(draw: st.DrawFn, depth: int = 0) -> str:
    """
    One well-formed element: random names (non-ASCII too), default and
    prefixed namespaces, plain and namespaced attributes, mixed content,
    CDATA, references.
    """
    name = draw(st.sampled_from(NAMES))
    prefixed = draw(st.booleans())
    parts = []
    if prefixed:
        parts.append(f"xmlns:p='{draw(st.sampled_from(['urn:p', 'urn:é:p']))}'")
        name = "p:" + name
    namespace = draw(st.sampled_from(NAMESPACES))
    if namespace is not None:
        parts.append(f"xmlns='{namespace}'")
    attributeNames = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
    for attribute in attributeNames:
        quote = draw(st.sampled_from(["'", '"']))
        if prefixed and draw(st.booleans()):
            attribute = "p:" + attribute
        parts.append(f"{attribute}={quote}{escapeText(draw(xmlText), quote)}{quote}")
    start = " ".join([name, *parts])
    children: list[str] = []
    if depth < 3:
        children = draw(st.lists(st.one_of(textPiece(), elementXML(depth + 1)), max_size=4))
    if not children and draw(st.booleans()):
        return f"<{start}/>"
    return f"<{start}>{''.join(children)}</{name}>"


whitespace = st.text(st.sampled_from(" \t\r\n"), max_size=4)


@st.composite
def streamDocument(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """
    A stream header, well-formed stanzas separated by optional whitespace,
    maybe the closing tag; returns the document and its stanzas.
    """
    stanzas = [s.encode("utf-8") for s in draw(st.lists(elementXML(), min_size=1, max_size=5))]
    data = b"<?xml version='1.0'?>" if draw(st.booleans()) else b""
    data += header()
    for stanza in stanzas:
        data += draw(whitespace).encode() + stanza
    data += draw(whitespace).encode()
    if draw(st.booleans()):
        data += FOOTER
    return data, stanzas


def describe(node: domish.Element | str) -> Any:
    """
    Everything the parser sets on an element, comparable.
    """
    if isinstance(node, str):
        return node
    return (
        node.uri,
        node.name,
        node.defaultUri,
        dict(node.attributes),
        list(node.attributes),
        dict(node.localPrefixes),
        [describe(child) for child in node.children],
    )


def runParser(stream: Any, chunks: Sequence[bytes]) -> list[Any]:
    """
    Feed chunks to an element stream; return what it reported, in order,
    ending with the class of the parse error if there was one. Any other
    exception propagates.
    """
    events: list[Any] = []
    stream.DocumentStartEvent = lambda root: events.append(("root", describe(root)))
    stream.ElementEvent = lambda element: events.append(("stanza", describe(element)))
    stream.DocumentEndEvent = lambda: events.append(("end",))
    for chunk in chunks:
        try:
            stream.parse(chunk)
        except domish.ParserError as e:
            events.append(("error", type(e).__name__))
            break
    return events


# --- (a) splitting changes nothing ------------------------------------------------------


@FAST
@given(st.data())
def test_elementStreamSplitInvariant(data: st.DataObject) -> None:
    """
    RFC 6120 §4.2 (a stream is one XML document, delivered in arbitrary TCP
    segments): a stanza sequence split at arbitrary byte offsets, also
    inside multi-byte UTF-8 characters, gives exactly the elements of the
    unsplit stream, and the same as Twisted's own parser.
    """
    document, _ = data.draw(streamDocument())
    whole = runParser(HardenedElementStream(256 * 1024, 2000), [document])
    assert whole and whole[0][0] == "root"
    assert ("error", "ParserError") not in whole, whole
    pieces = data.draw(splits(document, maxCuts=30))
    assert runParser(HardenedElementStream(256 * 1024, 2000), pieces) == whole
    assert runParser(domish.ExpatElementStream(), [document]) == whole


@FAST
@given(st.data())
def test_elementStreamLimitsSplitInvariant(data: st.DataObject) -> None:
    """
    Stanza size and element limits (xmlstream.HardenedElementStream, RFC
    6120 §13.12): whether a stanza is refused, and after which stanzas,
    does not depend on how the bytes were split; whitespace between stanzas
    never counts. Limits are chosen around the stanzas' real sizes.
    """
    document, stanzas = data.draw(streamDocument())
    target = data.draw(st.sampled_from(stanzas))
    maxSize = max(1, len(target) + data.draw(st.integers(-3, 3)))
    if target is stanzas[0]:
        maxSize += len(document[: document.index(stanzas[0])].rstrip(b" \t\r\n"))
    maxElements = data.draw(st.integers(1, 12))
    whole = runParser(HardenedElementStream(maxSize, maxElements), [document])
    pieces = data.draw(splits(document, maxCuts=30))
    split = runParser(HardenedElementStream(maxSize, maxElements), pieces)
    assert split == whole, (maxSize, maxElements)
    event(f"outcome: {whole[-1][0]}")
    if whole[-1][0] == "error":
        assert whole[-1][1] == StanzaTooLargeError.__name__


@FAST
@given(st.data())
def test_elementStreamGarbageOnlyParserErrors(data: st.DataObject) -> None:
    """
    RFC 6120 §11.1, §4.9.3.13, §4.9.3.18: arbitrary bytes after a valid
    header, in arbitrary pieces, only ever raise domish.ParserError (or its
    RestrictedXMLError and StanzaTooLargeError), and once raised, every
    later parse call raises it again.
    """
    garbage = data.draw(garbageBytes())
    stream = HardenedElementStream(data.draw(st.sampled_from([64, 512, 256 * 1024])), 20)
    events = runParser(stream, [header(), *data.draw(splits(garbage))])
    if events[-1][0] == "error":
        for later in (b"", b"<a/>", garbage):
            try:
                stream.parse(later)
            except domish.ParserError:
                continue
            raise AssertionError("the parser accepted input after an error")


# --- garbage ----------------------------------------------------------------------

#: Pieces of markup, right and wrong, that random bytes rarely hit.
TOKENS = [
    b"<", b">", b"/>", b"</", b"='", b"'", b'"', b"=", b" ", b"\n", b"a", b"b:c", b"\xc3\xa9",
    b"<message>", b"</message>", b"<message to='bob@example.com'><body>", b"</body>",
    b"<presence/>", b"<presence from='mallory@example.com'/>", b"<iq type='get' id='1'>",
    b"<iq type='set' id='2'>", b"</iq>", b"<iq type='get' id='3' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
    b"<query xmlns='http://jabber.org/protocol/disco#info'/>",
    b"<items xmlns='urn:xmpp:saslcert:1'/>", b"<append xmlns='urn:xmpp:saslcert:1'><name>n</name><x509cert>",
    b"</x509cert></append>", b"<revoke xmlns='urn:xmpp:saslcert:1'><name>n</name></revoke>",
    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>", b"</auth>",
    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>",
    b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", b"</response>",
    b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", b"AGFsaWNlAHg=", b"=",
    b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind>",
    b"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    b"<stream:features/>", b"</stream:stream>", header(), b"<stream:stream>",
    b"<?xml version='1.0'?>", b"<?pi x?>", b"<!DOCTYPE x>", b"<!DOCTYPE x [<!ENTITY e 'v'>]>",
    b"<!ENTITY e SYSTEM 'file:///etc/passwd'>", b"<!-- c -->", b"<!--", b"-->",
    b"<![CDATA[", b"]]>", b"&amp;", b"&lt;", b"&e;", b"&#0;", b"&#65;", b"&#x1F600;", b"&#xD800;",
    b"&#x110000;", b"xmlns='urn:x'", b"xmlns:p='urn:p'", b"xmlns:p=''", b"p:x", b"xml:lang='en'",
    b"\x00", b"\x0b", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xf4\x90\x80\x80",
    b"\xe2\x98", b"\xf0\x9f\x98\x80", b"<\xc3\xa9/>", b"<a\xcc\x81/>",
]


@st.composite
def garbageBytes(draw: st.DrawFn) -> bytes:
    """
    Arbitrary bytes, mostly built from markup tokens so that they get past
    the first few bytes of the parser.
    """
    items = draw(st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)), max_size=40))
    return b"".join(items)


#: Where in the conversation the garbage comes.
STAGES = ["tls", "sasl", "bound"]


def connectAt(h: ServerHarness, stage: str) -> ClientConnection:
    conn = h.connect()
    conn.send(header())
    if stage in ("sasl", "bound"):
        conn.send(STARTTLS)
        conn.send(header())
    if stage == "bound":
        conn.send(plainAuth())
        conn.send(header())
        conn.send(bindRequest("garbage"))
    received = parseOutput(conn.output())
    assert not streamErrors(received), received.raw
    if stage == "bound":
        assert received.named("iq")[-1]["type"] == "result"
    return conn


@SLOW
@given(st.sampled_from(STAGES), st.data())
def test_garbageAfterHeader(stage: str, data: st.DataObject) -> None:
    """
    RFC 6120 §4.9 and docs/protocol.md: arbitrary bytes after a valid
    header, at any stage of the negotiation, are answered at most with a
    documented stream error (followed by the closing tag), documented SASL
    failures or stanza errors; no exception escapes dataReceived, nothing
    is logged as an error, a closed stream leaves nothing behind, and a
    well-behaved client is then served by the same server.
    """
    h = serverHarness()
    with noUnexpectedLogs():
        conn = connectAt(h, stage)
        for chunk in data.draw(splits(data.draw(garbageBytes()))):
            conn.send(chunk)
        received = checkServerOutput(conn.output())
        event(f"stream errors: {streamErrors(received)}")
        settle(h, conn)
        assertStillServing(h)


# --- (a) the same for the whole client stream --------------------------------------


@st.composite
def boundStanzas(draw: st.DrawFn) -> bytes:
    """
    Well-formed stanzas a bound client sends: messages with non-ASCII
    bodies, presence, pings, disco, XEP-0257 requests, an iq with a bad
    type.
    """
    body = escapeText(draw(xmlText))
    choices = [
        f"<message to='bob@example.com' type='chat'><body>{body}</body></message>",
        f"<message><body>{body}</body></message>",
        "<presence/>",
        f"<presence><status>{body}</status></presence>",
        "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='get' id='d1' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        "<iq type='get' id='c1'><items xmlns='urn:xmpp:saslcert:1'/></iq>",
        f"<iq type='set' id='c2'><disable xmlns='urn:xmpp:saslcert:1'><name>{body}</name></disable></iq>",
        "<iq type='bogus' id='x1'/>",
    ]
    picked = draw(st.lists(st.sampled_from(choices), max_size=6))
    return "".join(s + draw(whitespace) for s in picked).encode("utf-8")


@st.composite
def loginConversation(draw: st.DrawFn) -> list[bytes]:
    """
    A valid login, one segment per stream (each ends where the client must
    wait for the server before restarting): header and STARTTLS; header and
    PLAIN; header, bind and stanzas, maybe the closing tag.
    """
    resource = draw(st.sampled_from(["phone", "Téléphone", "☃ snow", "a b", "日本"]))
    last = header() + bindRequest(resource) + draw(boundStanzas())
    if draw(st.booleans()):
        last += FOOTER
    return [header() + draw(whitespace).encode() + STARTTLS, header() + plainAuth(), last]


_STREAM_ID = re.compile(r"(<stream:stream [^>]*?) id='[a-z2-7]+'")


def normalized(raw: str) -> str:
    """
    Server output without the random stream ids.
    """
    return _STREAM_ID.sub(r"\1", raw)


def converse(h: ServerHarness, segments: Sequence[Sequence[bytes]]) -> tuple[str, ClientConnection]:
    conn = h.connect()
    for chunks in segments:
        for chunk in chunks:
            conn.send(chunk)
    return conn.output(), conn


@SLOW
@given(st.data())
def test_loginSplitInvariant(data: st.DataObject) -> None:
    """
    RFC 6120 §4.2: a whole client conversation (STARTTLS, SASL PLAIN,
    binding, stanzas with non-ASCII text), each stream's bytes split at
    arbitrary offsets, gets exactly the answers of the unsplit
    conversation.
    """
    segments = data.draw(loginConversation())
    with noUnexpectedLogs():
        whole, _ = converse(serverHarness(), [[s] for s in segments])
        split, conn = converse(serverHarness(), [data.draw(splits(s)) for s in segments])
    assert normalized(split) == normalized(whole)
    received = checkServerOutput(whole)
    assert received.named("success"), whole
    assert [e["type"] for e in received.named("iq") if e.getAttribute("id") == "bind1"] == ["result"]


# --- (c) mutated login conversations -----------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, segments: list[bytes]) -> list[bytes]:
    """
    A conversation with a few mutations: bytes flipped or replaced, a
    segment truncated, a range deleted or duplicated, random bytes or
    markup inserted, a segment duplicated, dropped or moved.
    """
    segments = list(segments)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(["flip", "set", "truncate", "delete", "duplicate", "insert", "again", "drop", "swap"])
        )
        i = draw(st.integers(0, len(segments) - 1))
        s = bytearray(segments[i])
        if op in ("again", "drop", "swap"):
            if op == "again":
                segments.insert(i, bytes(s))
            elif op == "drop" and len(segments) > 1:
                del segments[i]
            elif op == "swap":
                j = draw(st.integers(0, len(segments) - 1))
                segments[i], segments[j] = segments[j], segments[i]
            continue
        if not s:
            continue
        p = draw(st.integers(0, len(s) - 1))
        n = draw(st.integers(1, 16))
        if op == "flip":
            s[p] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            s[p] = draw(st.integers(0, 255))
        elif op == "truncate":
            del s[p:]
        elif op == "delete":
            del s[p : p + n]
        elif op == "duplicate":
            s[p:p] = s[p : p + n]
        else:
            s[p:p] = draw(st.one_of(st.binary(min_size=1, max_size=6), st.sampled_from(TOKENS)))
        segments[i] = bytes(s)
    return segments


@SLOW
@given(st.data())
def test_mutatedLogin(data: st.DataObject) -> None:
    """
    RFC 6120 §4.9, §6.4, §7 and docs/protocol.md: a valid login
    conversation with bytes flipped, truncated, duplicated, inserted or
    whole segments repeated, dropped or reordered, in arbitrary pieces,
    only ever gets documented stream errors and SASL failures; nothing
    escapes or is logged as an error, a closed stream leaves no session,
    and the server still serves a well-behaved client.
    """
    segments = data.draw(mutated(data.draw(loginConversation())))
    h = serverHarness()
    with noUnexpectedLogs():
        raw, conn = converse(h, [data.draw(splits(s, maxCuts=4)) for s in segments])
        received = checkServerOutput(raw)
        event(f"stream errors: {streamErrors(received)}")
        settle(h, conn)
        assertStillServing(h)


def test_outputCheckIsStrict() -> None:
    """
    The output check the properties rely on can fail: a stream error
    outside the documented list, or a SASL temporary-auth-failure (the
    answer to an unexpected internal error), is refused.
    """
    streamError = (
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        "<stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        "</stream:stream>"
    )
    saslFailure = f"<failure xmlns='{NS_SASL}'><temporary-auth-failure/></failure>"
    for raw in (streamError, saslFailure):
        try:
            checkServerOutput(raw)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {raw}")
