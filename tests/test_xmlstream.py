# -*- test-case-name: tests.test_xmlstream -*-
"""
Tests for L{xmppcert.xmlstream}: the hardened XML stream parser and the XMPP
stream protocol that answers restricted XML (RFC 6120 section 11.1),
oversized stanzas and malformed XML with stream errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python import failure
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish

from xmppcert.xmlstream import (
    HardenedElementStream,
    HardenedXmlStream,
    IdleParsers,
    RestrictedXMLError,
    StanzaTooLargeError,
)

HEADER = (
    b"<stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.com' version='1.0'>"
)
FOOTER = b"</stream:stream>"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>
<message><body>&lol9;</body></message>"""

# Exercises names, default and prefixed namespaces, namespaced attributes,
# mixed content, predefined entities, character references, CDATA and UTF-8.
SAMPLE = (
    b"<?xml version='1.0'?>" + HEADER + b"\n  "
    b"<message to='juliet@example.com' type='chat' xml:lang='en' id='a&amp;b'>"
    b"<body>Caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80 &lt;tag&gt; &amp; &#65;&#x42;"
    b" &quot;q&quot; &apos;a&apos;</body>"
    b"<p>before<b>bold</b>after<br/>end</p>"
    b"<x xmlns='urn:example:x' xmlns:f='urn:example:f' f:attr='1' plain='2'>"
    b"<f:child f:other='3'><![CDATA[<raw> & stuff]]></f:child><inner/></x>"
    b"</message>\n"
    b"<presence/> <iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>" + FOOTER
)


class Collector:
    """
    Record what an element stream reports.
    """

    def __init__(self, stream: Any) -> None:
        self.roots: list[domish.Element] = []
        self.elements: list[domish.Element] = []
        self.ended = 0
        self.stream = stream
        stream.DocumentStartEvent = self.roots.append
        stream.ElementEvent = self.elements.append
        stream.DocumentEndEvent = self._onEnd

    def _onEnd(self) -> None:
        self.ended += 1

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.stream.parse(chunk)


def hardened(maxStanzaSize: int = 256 * 1024, maxStanzaElements: int = 2000) -> Collector:
    return Collector(HardenedElementStream(maxStanzaSize, maxStanzaElements))


def twisted() -> Collector:
    return Collector(domish.ExpatElementStream())


def describe(node: domish.Element | str) -> Any:
    """
    A comparable structure of everything the parser sets on an element.
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


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def paddedMessage(size: int) -> bytes:
    """
    A message stanza of exactly C{size} bytes.
    """
    empty = b"<message><body></body></message>"
    return empty[:15] + b"x" * (size - len(empty)) + empty[15:]


# Normal parsing


def test_sameElementsAsTwisted() -> None:
    """
    Compatibility: stanzas parse to elements identical to those of Twisted's
    ExpatElementStream (names, namespaces, prefixes, attributes, children,
    text, UTF-8).
    """
    ours = hardened()
    ours.feed(SAMPLE)
    theirs = twisted()
    theirs.feed(SAMPLE)

    assert [describe(e) for e in ours.roots] == [describe(e) for e in theirs.roots]
    assert [describe(e) for e in ours.elements] == [describe(e) for e in theirs.elements]
    assert [e.toXml() for e in ours.elements] == [e.toXml() for e in theirs.elements]
    assert ours.ended == theirs.ended == 1

    message = ours.elements[0]
    assert len(ours.elements) == 3
    assert message["id"] == "a&b"
    assert message[("http://www.w3.org/XML/1998/namespace", "lang")] == "en"
    assert str(message.body) == "Café ☃ 😀 <tag> & AB \"q\" 'a'"
    assert message.p.children[0] == "before"
    assert message.p.children[2] == "after"
    assert message.x[("urn:example:f", "attr")] == "1"


@pytest.mark.parametrize("size", [1, 2, 7, 100])
def test_splitAcrossParseCalls(size: int) -> None:
    """
    Streaming: stanzas split across many parse calls, down to single bytes
    (also inside multi-byte UTF-8 characters), give the same elements.
    """
    whole = hardened()
    whole.feed(SAMPLE)
    pieces = hardened()
    pieces.feed(*chunked(SAMPLE, size))

    assert [describe(e) for e in pieces.elements] == [describe(e) for e in whole.elements]
    assert pieces.ended == 1


def test_severalStanzasInOneChunk() -> None:
    """
    Streaming: one parse call may carry several complete stanzas; each is
    reported, in order.
    """
    stream = hardened()
    stream.feed(HEADER)
    stream.feed(b"".join(b"<message id='%d'/>" % i for i in range(50)))
    assert [e["id"] for e in stream.elements] == [str(i) for i in range(50)]


def test_whitespaceBetweenStanzasIgnored() -> None:
    """
    RFC 6120 §4.6.1: whitespace keepalives between stanzas are dropped and do
    not count toward the stanza size limit.
    """
    stream = hardened(maxStanzaSize=500)
    stream.feed(HEADER)
    for _ in range(5000):
        stream.feed(b" ")
    stream.feed(b"\n" * 100_000)
    stream.feed(paddedMessage(400))
    stream.feed(b" \r\n\t" * 1000)
    assert len(stream.elements) == 1
    assert stream.elements[0].children[0].children == ["x" * (400 - 32)]


def test_xmlDeclarationAllowed() -> None:
    """
    RFC 6120 §11.1: the XML declaration at the start is not a processing
    instruction and is accepted.
    """
    stream = hardened()
    stream.feed(b"<?xml version='1.0' encoding='UTF-8'?>" + HEADER + b"<presence/>")
    assert len(stream.roots) == 1
    assert len(stream.elements) == 1


def test_manyEntityReferences() -> None:
    """
    Character data of one text node is collected and joined once: 200 000
    &amp; (each reported separately by expat to Twisted's parser, which
    concatenates quadratically) give the right text.
    """
    stream = hardened(maxStanzaSize=2 * 1024 * 1024)
    stream.feed(HEADER + b"<message><body>" + b"&amp;" * 200_000 + b"</body></message>")
    body = stream.elements[0].body
    assert body.children == ["&" * 200_000]


# Restricted XML (RFC 6120 section 11.1)


def assertRestricted(*chunks: bytes) -> Collector:
    stream = hardened()
    with pytest.raises(RestrictedXMLError):
        stream.feed(*chunks)
    return stream


def test_billionLaughs() -> None:
    """
    RFC 6120 §11.1: a DOCTYPE with an internal subset of nested entity
    definitions ("billion laughs") MUST be refused with restricted-xml,
    before any entity is expanded.
    """
    stream = assertRestricted(BILLION_LAUGHS)
    assert stream.roots == []
    assert stream.elements == []


def test_doctypeWithoutSubset() -> None:
    """
    RFC 6120 §11.1: any DOCTYPE, even without an internal subset, MUST be
    refused with restricted-xml.
    """
    assertRestricted(b"<!DOCTYPE stream:stream>" + HEADER)


def test_externalEntity() -> None:
    """
    RFC 6120 §11.1: external entity declarations and references (XXE) MUST
    be refused with restricted-xml.
    """
    assertRestricted(b"<!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]><s><m>&xxe;</m></s>")
    assertRestricted(b"<!DOCTYPE s SYSTEM 'http://example.com/s.dtd'><s><m>&ext;</m></s>")


def test_undefinedEntityReference() -> None:
    """
    RFC 6120 §11.1: a reference to an entity other than the predefined ones
    MUST be refused with restricted-xml.
    """
    assertRestricted(HEADER + b"<message><body>&nbsp;</body></message>")
    assertRestricted(HEADER + b"<message to='&foo;'/>")


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml-stylesheet href='a'?>" + HEADER,
        HEADER + b"<?pi between?><presence/>",
        HEADER + b"<message><?pi inside?></message>",
        HEADER + b"<message><body><?xml version='1.0'?></body></message>",
    ],
    ids=["before-root", "between-stanzas", "inside-stanza", "misplaced-xml-decl"],
)
def test_processingInstruction(data: bytes) -> None:
    """
    RFC 6120 §11.1: processing instructions MUST be refused with
    restricted-xml, wherever they appear.
    """
    stream = assertRestricted(data)
    assert stream.elements == []


@pytest.mark.parametrize(
    "data",
    [
        b"<!-- hello -->" + HEADER,
        HEADER + b"<!-- between --><presence/>",
        HEADER + b"<message><!-- inside --></message>",
    ],
    ids=["before-root", "between-stanzas", "inside-stanza"],
)
def test_comment(data: bytes) -> None:
    """
    RFC 6120 §11.1: comments MUST be refused with restricted-xml, wherever
    they appear.
    """
    stream = assertRestricted(data)
    assert stream.elements == []


def test_errorIsFinal() -> None:
    """
    Robustness: after an error the parser is never fed again; later parse
    calls raise the same kind of error instead of crashing or parsing.
    """
    stream = assertRestricted(HEADER + b"<!-- c -->")
    for _ in range(3):
        with pytest.raises(RestrictedXMLError):
            stream.feed(b"<presence/>")
    assert stream.elements == []

    stream = hardened()
    with pytest.raises(domish.ParserError):
        stream.feed(HEADER + b"<a></b>")
    with pytest.raises(domish.ParserError):
        stream.feed(b"<presence/>")
    assert stream.elements == []


# Stanza limits


def firstStanzaOf(size: int) -> bytes:
    """
    A stream header and a first stanza of C{size} bytes in total.
    """
    return HEADER + paddedMessage(size - len(HEADER))


@pytest.mark.parametrize("chunkSize", [1, 13, 4099, 10**6])
def test_byteLimitFirstStanza(chunkSize: int) -> None:
    """
    Stanza size limit (policy-violation): the stream header counts toward
    the first stanza; exactly the limit passes, one byte more is refused,
    however the data is split.
    """
    stream = hardened(maxStanzaSize=5000)
    stream.feed(*chunked(firstStanzaOf(5000) + b"<presence/>", chunkSize))
    assert len(stream.elements) == 2

    stream = hardened(maxStanzaSize=5000)
    with pytest.raises(StanzaTooLargeError):
        stream.feed(*chunked(firstStanzaOf(5001) + b"<presence/>", chunkSize))
    assert stream.elements == []


@pytest.mark.parametrize("chunkSize", [1, 13, 4099, 10**6])
def test_byteLimitLaterStanza(chunkSize: int) -> None:
    """
    Stanza size limit (policy-violation): a later stanza of exactly the
    limit passes, of one byte more is refused; the end tag of the previous
    stanza does not count toward the next.
    """
    prefix = HEADER + b" " + paddedMessage(100)
    stream = hardened(maxStanzaSize=3000)
    stream.feed(*chunked(prefix + paddedMessage(3000) + paddedMessage(3000), chunkSize))
    assert len(stream.elements) == 3

    stream = hardened(maxStanzaSize=3000)
    with pytest.raises(StanzaTooLargeError):
        stream.feed(*chunked(prefix + paddedMessage(3001), chunkSize))
    assert len(stream.elements) == 1


@pytest.mark.parametrize("chunkSize", [1, 13, 10**6])
def test_byteLimitEmptyElementStanza(chunkSize: int) -> None:
    """
    Stanza size limit (policy-violation): an empty-element stanza of
    exactly the limit passes, also when the stream's end tag follows it; one
    byte more is refused.
    """

    def presence(size: int) -> bytes:
        return b"<presence status='" + b"s" * (size - 21) + b"'/>"

    prefix = HEADER + b"<presence/>"
    stream = hardened(maxStanzaSize=2000)
    stream.feed(*chunked(prefix + presence(2000) + presence(2000) + FOOTER, chunkSize))
    assert len(stream.elements) == 3
    assert stream.ended == 1

    stream = hardened(maxStanzaSize=2000)
    with pytest.raises(StanzaTooLargeError):
        stream.feed(*chunked(prefix + presence(2001) + FOOTER, chunkSize))
    assert len(stream.elements) == 1


def test_byteLimitResetsPerStanza() -> None:
    """
    Stanza size limit: the count restarts after each stanza, so many
    stanzas under the limit pass even though their total is far over it.
    """
    stream = hardened(maxStanzaSize=1000)
    stream.feed(HEADER)
    stanzas = paddedMessage(800) * 500
    stream.feed(stanzas)
    stream.feed(*chunked(stanzas, 333))
    assert len(stream.elements) == 1000


class CountingParser:
    """
    Proxy for an expat parser that counts the bytes handed to it.
    """

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self.fed = 0

    def Parse(self, data: Any, isFinal: bool = False) -> int:
        self.fed += len(data)
        return int(self._parser.Parse(data, isFinal))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def test_hugeChunkRefusedEarly() -> None:
    """
    Stanza size limit: a single huge chunk is refused after at most the
    limit plus one piece has been given to expat, not parsed in full.
    """
    stream = HardenedElementStream(10_000, 100)
    counting = CountingParser(stream.parser)
    stream.parser = counting  # type: ignore[assignment]
    with pytest.raises(StanzaTooLargeError):
        stream.parse(HEADER + b"<message><body>" + b"a" * 20_000_000)
    assert counting.fed <= 10_000 + 4096


def test_elementLimit() -> None:
    """
    Stanza element limit (policy-violation): a stanza with exactly the
    maximum number of elements (itself included) passes, one more is
    refused; the count restarts with each stanza.
    """

    def stanza(elements: int) -> bytes:
        return b"<message>" + b"<x/>" * (elements - 1) + b"</message>"

    stream = hardened(maxStanzaElements=10)
    stream.feed(HEADER + stanza(10) * 100)
    assert len(stream.elements) == 100

    stream = hardened(maxStanzaElements=10)
    with pytest.raises(StanzaTooLargeError):
        stream.feed(HEADER + stanza(10) + stanza(11))
    assert len(stream.elements) == 1

    stream = hardened(maxStanzaElements=10)
    with pytest.raises(StanzaTooLargeError):
        stream.feed(HEADER + b"<a>" * 11)


# Malformed XML


@pytest.mark.parametrize(
    "data",
    [
        HEADER + b"<message></presence>",
        HEADER + b"<message to='a' to='b'/>",
        HEADER + b"<message><body>\xff\xfe</body></message>",
        HEADER + b"<message>&#0;</message>",
        HEADER + b"<message><unbound:x/></message>",
        HEADER + FOOTER + b"<presence/>",
    ],
    ids=["mismatched", "duplicate-attr", "bad-utf8", "bad-charref", "unbound-prefix", "junk"],
)
def test_malformed(data: bytes) -> None:
    """
    RFC 6120 §4.9.3.13: XML that is not well-formed raises a plain
    ParserError (answered with not-well-formed), not a restricted-xml or
    size error.
    """
    stream = hardened()
    with pytest.raises(domish.ParserError) as info:
        stream.feed(data)
    assert type(info.value) is domish.ParserError


# The XMPP stream protocol


class StreamHarness:
    """
    A receiving L{HardenedXmlStream} over a L{StringTransport}.
    """

    def __init__(self, maxStanzaSize: int | None = None) -> None:
        self.xs = HardenedXmlStream(xmlstream.ListenAuthenticator())
        if maxStanzaSize is not None:
            self.xs.maxStanzaSize = maxStanzaSize
        self.transport = StringTransport()
        self.errors: list[failure.Failure] = []
        self.messages: list[domish.Element] = []
        self.raw: list[bytes] = []
        self.xs.addObserver(xmlstream.STREAM_ERROR_EVENT, self.errors.append)
        self.xs.addObserver("/message", self.messages.append)
        self.xs.rawDataInFn = self.raw.append
        self.xs.makeConnection(self.transport)

    def output(self) -> str:
        return self.transport.value().decode("utf-8")


STREAMS_NS = "urn:ietf:params:xml:ns:xmpp-streams"


def assertStreamError(harness: StreamHarness, condition: str) -> None:
    output = harness.output()
    assert "<stream:stream" in output
    assert f"<{condition} xmlns='{STREAMS_NS}'/>" in output
    assert output.endswith("</stream:stream>")
    assert harness.transport.disconnecting


def assertWarned(events: list[Any], condition: str) -> None:
    refusals = [e for e in events if e.get("condition") == condition]
    assert len(refusals) == 1
    assert refusals[0]["log_level"] == LogLevel.warn
    assert refusals[0]["peer"] == "192.168.1.1:54321"
    assert not [e for e in events if e["log_level"] in (LogLevel.error, LogLevel.critical)]


def test_streamDoctypeAtStart() -> None:
    """
    RFC 6120 §11.1 and §4.9.3.18: a DOCTYPE sent first is answered with our
    stream header, <restricted-xml/> and the closing tag; the connection is
    closed, observers of the stream error event are told, and the refusal
    is logged at warn level only.
    """
    harness = StreamHarness()
    with capturedLogs() as events:
        harness.xs.dataReceived(BILLION_LAUGHS)
    assertStreamError(harness, "restricted-xml")
    assert len(harness.errors) == 1
    assert harness.errors[0].check(RestrictedXMLError)
    assert harness.raw == [BILLION_LAUGHS]
    assertWarned(list(events), "restricted-xml")


def test_streamComment() -> None:
    """
    RFC 6120 §11.1: a comment after the stream header gets <restricted-xml/>.
    """
    harness = StreamHarness()
    harness.xs.dataReceived(HEADER)
    harness.xs.dataReceived(b"<!-- hi -->")
    assertStreamError(harness, "restricted-xml")
    assert harness.output().count("<stream:stream") == 1


def test_streamOversizedStanza() -> None:
    """
    RFC 6120 §4.9.3.12: a stanza over the size limit gets
    <policy-violation/> with a text, logged at warn level only.
    """
    harness = StreamHarness(maxStanzaSize=1000)
    with capturedLogs() as events:
        harness.xs.dataReceived(HEADER)
        harness.xs.dataReceived(paddedMessage(800))
        harness.xs.dataReceived(paddedMessage(5000))
    assert len(harness.messages) == 1
    assertStreamError(harness, "policy-violation")
    assert "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>" in harness.output()
    assert harness.errors[0].check(StanzaTooLargeError)
    assertWarned(list(events), "policy-violation")


def test_streamDefaultLimits() -> None:
    """
    Stanza size limit: the protocol's default per-stanza limits are 256 KiB
    and 2000 elements, much lower than Twisted's.
    """
    harness = StreamHarness()
    assert isinstance(harness.xs.stream, HardenedElementStream)
    assert harness.xs.stream.maxStanzaSize == 256 * 1024
    assert harness.xs.stream.maxStanzaElements == 2000
    harness.xs.dataReceived(HEADER + b"<message>" + b"<x/>" * 2000 + b"</message>")
    assertStreamError(harness, "policy-violation")


def test_streamMalformed() -> None:
    """
    RFC 6120 §4.9.3.13: malformed XML gets <not-well-formed/>, logged at warn
    level only.
    """
    harness = StreamHarness()
    with capturedLogs() as events:
        harness.xs.dataReceived(HEADER + b"<message></presence>")
    assertStreamError(harness, "not-well-formed")
    assertWarned(list(events), "not-well-formed")


def test_streamDataAfterErrorIgnored() -> None:
    """
    Robustness: data in flight after a stream error, or after the connection
    was lost, is ignored silently.
    """
    harness = StreamHarness()
    harness.xs.dataReceived(HEADER + b"<!-- x -->")
    sent = harness.transport.value()
    harness.xs.dataReceived(b"<message><body>late</body></message>")
    harness.xs.dataReceived(b"<!DOCTYPE x>")
    assert harness.transport.value() == sent
    assert harness.messages == []
    assert len(harness.errors) == 1

    harness.xs.connectionLost(failure.Failure(ConnectionError()))
    harness.xs.dataReceived(b"<presence/>")

    fresh = StreamHarness()
    fresh.xs.dataReceived(HEADER)
    fresh.xs.connectionLost(failure.Failure(ConnectionError()))
    fresh.xs.dataReceived(b"<message/>")
    assert fresh.messages == []


def test_streamDispatchesStanzas() -> None:
    """
    Compatibility: well-formed stanzas are dispatched to XPath observers as
    with Twisted's XmlStream, and no stream error is sent.
    """
    harness = StreamHarness()
    harness.xs.dataReceived(HEADER)
    harness.xs.dataReceived(b"<message to='a@example.com'><body>hi &amp; bye</body>")
    harness.xs.dataReceived(b"</message> <presence/>")
    assert len(harness.messages) == 1
    assert harness.messages[0]["to"] == "a@example.com"
    assert str(harness.messages[0].body) == "hi & bye"
    assert harness.xs.namespace == "jabber:client"
    assert harness.output() == ""
    assert not harness.transport.disconnecting


def test_streamResetKeepsHardening() -> None:
    """
    RFC 6120 §11.1: after a stream restart (reset, e.g. after TLS or SASL)
    the new parser is hardened too: a DOCTYPE gets <restricted-xml/>.
    """
    harness = StreamHarness(maxStanzaSize=4000)
    harness.xs.dataReceived(HEADER)
    first = harness.xs.stream
    harness.xs.reset()
    assert harness.xs.stream is not first
    assert isinstance(harness.xs.stream, HardenedElementStream)
    assert harness.xs.stream.maxStanzaSize == 4000
    harness.xs.dataReceived(b"<!DOCTYPE s [<!ENTITY a 'b'>]>" + HEADER)
    assertStreamError(harness, "restricted-xml")


# Parking the parser of an idle stream


def parkingFeed(collector: Collector, *chunks: bytes) -> list[bool]:
    """
    Feed chunks, trying to park the parser after each; which parks took.
    """
    parked = []
    for chunk in chunks:
        collector.stream.parse(chunk)
        parked.append(collector.stream.park())
    return parked


@pytest.mark.parametrize("size", [1, 7, 100, 10**6])
def test_parkedStreamParsesTheSame(size: int) -> None:
    """
    Memory of idle sessions: a stream whose parser was freed between
    stanzas, and made again for the next data, gives exactly the elements
    of a stream never parked (namespaces of the root in scope, prefixes,
    text), and its end.
    """
    whole = hardened()
    whole.feed(SAMPLE)
    parked = hardened()
    took = parkingFeed(parked, *chunked(SAMPLE, size))
    assert [describe(e) for e in parked.elements] == [describe(e) for e in whole.elements]
    assert [describe(e) for e in parked.roots] == [describe(e) for e in whole.roots]
    assert parked.ended == 1
    assert any(took) or size > len(SAMPLE) // 8


def test_parkOnlyBetweenStanzas() -> None:
    """
    A parser is freed only between stanzas: not before the root started,
    not inside a stanza or a tag, not after an error or the stream's end.
    """
    stream = hardened()
    assert parkingFeed(stream, b"<?xml version='1.0'?>") == [False]
    assert parkingFeed(stream, HEADER[:20], HEADER[20:]) == [False, True]
    assert parkingFeed(stream, b"<message><body>hi", b"</body></message>", b"  \n") == [False, True, True]
    assert parkingFeed(stream, b"<presence") == [False]
    assert parkingFeed(stream, b"/>") == [True]
    assert [e.name for e in stream.elements] == ["message", "presence"]
    assert parkingFeed(stream, FOOTER) == [False]
    assert stream.ended == 1

    broken = hardened()
    broken.feed(HEADER)
    with pytest.raises(domish.ParserError):
        broken.feed(b"<a></b>")
    assert not broken.stream.park()


def test_parkedRootPrefixes() -> None:
    """
    Prefixes the client declared on the stream's root (also with quotes and
    ">" in attribute values) stay declared for stanzas after a park.
    """
    header = (
        b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'"
        b" xmlns:x=\"urn:example:x\" to='example.com' note='a>b' version='1.0'>"
    )
    stanza = b"<message><x:data x:n='1'/></message>"
    whole = hardened()
    whole.feed(header, stanza, stanza, b"</s:stream>")
    parked = hardened()
    assert parkingFeed(parked, header, stanza, stanza, b"</s:stream>") == [True, True, True, False]
    assert [describe(e) for e in parked.elements] == [describe(e) for e in whole.elements]
    assert parked.ended == 1


@pytest.mark.parametrize("chunkSize", [1, 13, 10**6])
def test_parkedByteLimit(chunkSize: int) -> None:
    """
    Stanza size limit (policy-violation) after a park: a stanza of exactly
    the limit passes, one byte more is refused, counted from the end of the
    stanza before the park.
    """
    stream = hardened(maxStanzaSize=3000)
    assert parkingFeed(stream, HEADER + paddedMessage(100)) == [True]
    stream.feed(*chunked(paddedMessage(3000), chunkSize))
    assert stream.stream.park()
    with pytest.raises(StanzaTooLargeError):
        stream.feed(*chunked(paddedMessage(3001), chunkSize))
    assert len(stream.elements) == 2


def test_parkedRestrictedXML() -> None:
    """
    RFC 6120 section 11.1: restricted XML is refused after a park as before.
    """
    stream = hardened()
    assert parkingFeed(stream, HEADER) == [True]
    with pytest.raises(RestrictedXMLError):
        stream.feed(b"<!-- no -->")


def test_sweepParksIdleStreams() -> None:
    """
    IdleParsers.sweep frees the parser of a stream that received nothing
    for a whole interval, and leaves a stream that did alone; a parked
    stream goes on with the next data.
    """
    parsers = IdleParsers()
    idle, busy = hardened(), hardened()
    for collector in (idle, busy):
        collector.feed(HEADER)
        parsers.add(collector.stream)
    assert parsers.sweep() == 0
    busy.feed(b"<presence/>")
    assert parsers.sweep() == 1
    assert idle.stream.parser is None and busy.stream.parser is not None
    idle.feed(b"<message/>")
    assert idle.stream.parser is not None
    assert parsers.sweep() == 1
    assert [e.name for e in idle.elements] == ["message"]


def test_streamRegistersParsers() -> None:
    """
    A stream given IdleParsers registers its parser, also the new one made
    when the stream is reset (after STARTTLS or SASL).
    """
    parsers = IdleParsers()
    xs = HardenedXmlStream(xmlstream.Authenticator())
    xs.idleParsers = parsers
    xs.makeConnection(StringTransport())
    xs.dataReceived(HEADER)
    first = xs.stream
    xs.reset()
    assert set(parsers._streams) == {first, xs.stream}


def test_noParkInsideCDATA() -> None:
    """
    A CDATA section between stanzas (text of the root, reported piece by
    piece) is never cut by a park: its markup stays text.
    """
    stream = hardened()
    assert parkingFeed(stream, HEADER, b"<![CDATA[ ip", b" <message/> ", b"]]>", b"<presence/>") == [
        True, False, False, False, True,
    ]
    assert [e.name for e in stream.elements] == ["presence"]


def test_noParkWithLongHeaderOrTail() -> None:
    """
    Memory: a stream header longer than 4 KiB is not kept for the stream's
    life, so that stream is never parked; a long tail after the last
    stanza is markup in progress, refused without being copied.
    """
    stream = hardened()
    stream.feed(HEADER[:-1] + b" pad='" + b"x" * 5000 + b"'>")
    stream.feed(b"<presence/>")
    assert not stream.stream.park()

    other = hardened()
    other.feed(HEADER, b"<message to='" + b"a" * 200)
    assert not other.stream.park()
