# -*- test-case-name: tests.test_xmlstream -*-
"""
A hardened XML stream parser and XMPP stream protocol.

Twisted's L{domish.ExpatElementStream} is not fit to face the network:

  1. It accepts a DOCTYPE with an internal subset and lets expat expand
     internal entities, so a few hundred bytes of nested entity definitions
     ("billion laughs"), sent before authentication, block the reactor for
     minutes.
  2. It appends each piece of character data to the element's text with
     string concatenation; expat reports every C{&amp;amp;} as a separate
     piece, so one long text node costs quadratic time even without a DTD.
  3. Its per-stanza limits (10 MiB, 100 000 elements) are far too generous.

RFC 6120 section 11.1 ("Restricted XML") says an XML stream MUST NOT contain
comments, processing instructions, internal or external DTD subsets, or
internal or external entity references other than the predefined entities,
and that a violation is answered with the C{<restricted-xml/>} stream error.
L{HardenedElementStream} refuses all of these as soon as expat reports them
(a DOCTYPE is refused at its start, before any entity is declared), collects
character data in a list joined once per element, and enforces small
per-stanza byte and element limits. L{HardenedXmlStream} uses it and answers
violations with the stream errors of RFC 6120 section 4.9.3:
C{<restricted-xml/>}, C{<policy-violation/>} for oversized stanzas and
C{<not-well-formed/>} for anything else expat rejects.
"""

from __future__ import annotations

import pyexpat
import re
import weakref
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.xish import domish

from xmppcert import _log as _xmppcertLog

# Expat errors that are, in substance, restricted XML: without a DTD every
# entity other than the predefined ones is undefined, and an XML declaration
# anywhere but at the very start is a processing instruction.
_RESTRICTED_EXPAT_ERRORS = frozenset(
    pyexpat.errors.codes[message]
    for message in (
        pyexpat.errors.XML_ERROR_UNDEFINED_ENTITY,
        pyexpat.errors.XML_ERROR_MISPLACED_XML_PI,
    )
)

# Largest piece of input handed to expat at once, so that the byte limit is
# checked often even when one read brings a huge chunk.
_PIECE_SIZE = 4096


#: The bytes of text expat hands over at most at once (its buffer on every
#: stream).
TEXT_BUFFER_SIZE = 1024

# A start tag as expat accepted it: quoted values may hold ">".
_START_TAG = re.compile(rb"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")

# Streams are parked (HardenedElementStream.park) only with a stream header
# of at most this many bytes, and at most this much whitespace pending.
_PARKABLE_HEADER = 4096
_PARKABLE_TAIL = 64


class RestrictedXMLError(domish.ParserError):
    """
    The peer sent XML that RFC 6120 section 11.1 forbids on an XML stream:
    a DTD, an entity declaration or reference, a comment or a processing
    instruction.
    """


class StanzaTooLargeError(domish.ParserError):
    """
    A stanza exceeded the byte limit or the element limit of the stream.
    """


class HardenedElementStream:
    """
    Incremental XML stream parser with the interface of
    L{domish.ExpatElementStream}, refusing restricted XML and oversized
    stanzas.

    The resulting L{domish.Element}s are built exactly as Twisted's parser
    builds them (qualified names, default namespaces, local prefixes,
    namespaced attributes).

    @ivar DocumentStartEvent: Called with the root element once its start tag
        has been parsed.
    @ivar ElementEvent: Called with each complete direct child of the root
        element (stanza).
    @ivar DocumentEndEvent: Called without arguments when the root element
        ends.
    @ivar maxStanzaSize: Maximum number of bytes from the end of the previous
        stanza (or the start of the stream, so the stream header counts
        toward the first stanza) to the end of the current one. Text between
        stanzas is not counted.
    @ivar maxStanzaElements: Maximum number of elements in one stanza,
        counting the stanza element itself.
    """

    def __init__(self, maxStanzaSize: int, maxStanzaElements: int) -> None:
        """
        @param maxStanzaSize: Per-stanza byte limit.
        @param maxStanzaElements: Per-stanza element limit.
        """
        self.DocumentStartEvent: Callable[[domish.Element], object] | None = None
        self.ElementEvent: Callable[[domish.Element], object] | None = None
        self.DocumentEndEvent: Callable[[], object] | None = None
        self.maxStanzaSize = maxStanzaSize
        self.maxStanzaElements = maxStanzaElements

        self.currElem: domish.Element | None = None
        self.defaultNsStack: list[str] = [""]
        self.documentStarted = False
        self.localPrefixes: dict[str, str] = {}

        # Character data of currElem since its last child element started;
        # joined once, so that many small pieces cost linear time.
        self._text: list[str] = []
        self._elementCount = 0
        # Bytes handed to expat since the end of the last stanza, and their
        # offset in the stream. Kept (at most maxStanzaSize plus one piece)
        # to find where a stanza's end tag ends, which expat does not report.
        self._window = bytearray()
        self._windowStart = 0
        # Set once parsing failed: expat must not be fed again afterwards.
        self._error: domish.ParserError | None = None
        # The root's start tag as it came, to bring a parked stream back
        # (see park); set once the root started. _ended once it ended.
        self._rootTag: bytes | None = None
        self._rootEnd = 0
        self._ended = False
        # Stream offset of what expat counts as byte 0: not 0 once a parked
        # stream resumed with a parser that read the root's tag again.
        self._indexBase = 0
        self._priming = False
        self._inCdata = False
        #: Whether data came since the last L{IdleParsers.sweep}.
        self.active = True

        self.parser: pyexpat.XMLParserType | None = self._createParser()

    def _createParser(self) -> pyexpat.XMLParserType:
        """
        Create an expat parser with every handler needed to refuse
        restricted XML.

        @return: A new parser.
        """
        parser = pyexpat.ParserCreate("UTF-8", " ")
        # Deliver contiguous text as one piece rather than one per line or
        # entity reference.
        parser.buffer_text = True
        # Expat allocates this much for the text it buffers, on every
        # stream for as long as it lives (8 KiB by default). Smaller pieces
        # of a long text cost nothing more: they are joined once.
        parser.buffer_size = TEXT_BUFFER_SIZE
        # Never read external DTD subsets or parameter entities. (This
        # Python's pyexpat offers no billion-laughs amplification limits;
        # refusing every DTD makes them unnecessary.)
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)

        parser.StartElementHandler = self._onStartElement
        parser.EndElementHandler = self._onEndElement
        parser.CharacterDataHandler = self._onCdata
        # Expat reports a CDATA section's text piece by piece: a park must
        # not fall inside one.
        parser.StartCdataSectionHandler = self._onStartCdataSection
        parser.EndCdataSectionHandler = self._onEndCdataSection
        parser.StartNamespaceDeclHandler = self._onStartNamespace
        parser.EndNamespaceDeclHandler = self._onEndNamespace

        # Expat reports a DOCTYPE when it sees its name, before the internal
        # subset, so no entity is ever declared. The declaration handlers
        # after it are defence in depth.
        parser.StartDoctypeDeclHandler = self._refuseDoctype
        parser.EntityDeclHandler = self._refuseEntityDecl
        parser.UnparsedEntityDeclHandler = self._refuseUnparsedEntityDecl
        parser.NotationDeclHandler = self._refuseNotationDecl
        parser.ElementDeclHandler = self._refuseElementDecl
        parser.AttlistDeclHandler = self._refuseAttlistDecl
        parser.ExternalEntityRefHandler = self._refuseExternalEntityRef
        parser.SkippedEntityHandler = self._refuseSkippedEntity
        # The XML declaration goes to XmlDeclHandler (not set: allowed), so
        # everything reaching this handler is a real processing instruction.
        parser.ProcessingInstructionHandler = self._refuseProcessingInstruction
        parser.CommentHandler = self._refuseComment
        return parser

    def parse(self, buffer: bytes) -> None:
        """
        Parse more of the stream.

        @param buffer: The next bytes of the stream.
        @raise RestrictedXMLError: The stream contains XML that RFC 6120
            section 11.1 forbids.
        @raise StanzaTooLargeError: A stanza exceeds C{maxStanzaSize} bytes or
            C{maxStanzaElements} elements.
        @raise domish.ParserError: The stream is not well-formed, or an
            earlier call raised an error.
        """
        if self._error is not None:
            raise type(self._error)(f"Parser closed after an earlier error: {self._error}")
        self.active = True
        data = memoryview(buffer)
        offset = 0
        try:
            parser = self.parser or self._resume()
            while offset < len(data):
                # Never feed more than one byte beyond the limit: either the
                # piece ends the stanza, or we stop right after it.
                allowance = self.maxStanzaSize - len(self._window)
                piece = data[offset : offset + min(_PIECE_SIZE, allowance + 1)]
                offset += len(piece)
                self._window += piece
                try:
                    parser.Parse(piece, False)
                except pyexpat.ExpatError as e:
                    if e.code in _RESTRICTED_EXPAT_ERRORS:
                        raise RestrictedXMLError(str(e)) from e
                    raise domish.ParserError(str(e)) from e
                if len(self._window) > self.maxStanzaSize:
                    raise StanzaTooLargeError("Maximum stanza size exceeded")
        except domish.ParserError as e:
            self._close(e)
            raise
        except BaseException:
            # A callback failed half-way through a Parse call: expat cannot
            # be resumed consistently.
            self._close(domish.ParserError("Parser aborted by an exception"))
            raise

    def park(self) -> bool:
        """
        Free the expat parser while the stream is idle between stanzas: it
        is the largest share of an idle session's memory (several KiB of
        buffers, name pools and hash tables). The next L{parse} makes a
        fresh parser and has it read the root's start tag again, so the
        stream goes on as if nothing happened: the same namespaces in
        scope, the same offsets for the stanza size limit.

        @return: whether the parser was freed; not when a stanza (or any
            markup) is only partly received, after an error or after the
            root ended.
        """
        if (
            self.parser is None
            or self._error is not None
            or self._ended
            or self._rootTag is None
            or self.currElem is not None
            or self._inCdata
        ):
            return False
        # Nothing but whitespace may follow the root's tag or the last
        # stanza: no markup is half-read. (Whitespace is reported, and
        # dropped, as it comes: a long tail is markup, refused uncopied.)
        start = max(0, self._rootEnd - self._windowStart)
        if len(self._window) - start > _PARKABLE_TAIL or self._window[start:].strip(b" \t\r\n"):
            return False
        if self._rootEnd <= self._windowStart:
            # Whitespace between stanzas: dropped, as expat would report it.
            self._advanceWindow(self._windowStart + len(self._window))
        self.parser = None
        self._text = []
        self.defaultNsStack = [""]
        return True

    def _resume(self) -> pyexpat.XMLParserType:
        """
        A parser for a parked stream, inside the root element again.
        """
        assert self._rootTag is not None
        parser = self._createParser()
        self._indexBase = self._windowStart + len(self._window) - len(self._rootTag)
        self._priming = True
        try:
            parser.Parse(self._rootTag, False)
        except pyexpat.ExpatError as e:
            # Read once already: cannot happen, but must not escape raw.
            raise domish.ParserError(f"Resuming the stream failed: {e}") from e
        finally:
            self._priming = False
        self.parser = parser
        return parser

    def _currentIndex(self) -> int:
        assert self.parser is not None
        return self._indexBase + self.parser.CurrentByteIndex

    def _close(self, reason: domish.ParserError) -> None:
        """
        Refuse all further input.

        @param reason: The error to repeat on later L{parse} calls.
        """
        self._error = reason
        self.currElem = None
        self._text = []
        self._window = bytearray()

    def _flushText(self) -> None:
        """
        Add the collected character data to the current element.
        """
        if self._text and self.currElem is not None:
            self.currElem.addContent("".join(self._text))
        self._text = []

    def _onStartElement(self, name: str, attrs: dict[str, str]) -> None:
        """
        Start a new element, or the document if this is the root element.

        @param name: Expat's name: C{"uri local"}, or C{"local"} without a
            namespace.
        @param attrs: The attributes, with namespaced ones named like
            elements.
        @raise StanzaTooLargeError: The stanza has too many elements.
        """
        if self._priming:
            # A resumed parser re-reading the root's start tag: only its
            # namespace declarations matter.
            self.localPrefixes = {}
            return
        uri, _, local = name.rpartition(" ")
        qname = (uri, local)

        # Namespaced attributes get (uri, name) keys and, as in Twisted, come
        # after the plain ones.
        newAttrs: dict[str | tuple[str, str], str] = {}
        namespaced: dict[str | tuple[str, str], str] = {}
        for key, value in attrs.items():
            attrUri, _, attrName = key.rpartition(" ")
            if attrUri:
                namespaced[(attrUri, attrName)] = value
            else:
                newAttrs[key] = value
        newAttrs.update(namespaced)

        element = domish.Element(qname, self.defaultNsStack[-1], newAttrs, self.localPrefixes)
        self.localPrefixes = {}

        if not self.documentStarted:
            self.documentStarted = True
            start = self._currentIndex() - self._windowStart
            tag = _START_TAG.match(self._window, start)
            # A stream whose header is unusually long is never parked: its
            # header is not worth keeping for the stream's life.
            if tag is not None and len(tag.group()) <= _PARKABLE_HEADER:
                self._rootTag = bytes(tag.group())
                self._rootEnd = self._windowStart + tag.end()
            if self.DocumentStartEvent is not None:
                self.DocumentStartEvent(element)
            return

        self._elementCount += 1
        if self._elementCount > self.maxStanzaElements:
            raise StanzaTooLargeError("Maximum element count exceeded")
        if self.currElem is not None:
            self._flushText()
            self.currElem.children.append(element)
            element.parent = self.currElem
        self.currElem = element

    def _onEndElement(self, name: str) -> None:
        """
        End the current element, stanza or document.

        @param name: Expat's name of the element.
        """
        if self.currElem is None:
            self._ended = True
            if self.DocumentEndEvent is not None:
                self.DocumentEndEvent()
            return

        self._flushText()
        if self.currElem.parent is None:
            stanza = self.currElem
            self.currElem = None
            self._elementCount = 0
            end = self._stanzaEnd(stanza)
            if end - self._windowStart > self.maxStanzaSize:
                raise StanzaTooLargeError("Maximum stanza size exceeded")
            self._advanceWindow(end)
            if self.ElementEvent is not None:
                self.ElementEvent(stanza)
        else:
            self.currElem = self.currElem.parent

    def _onCdata(self, data: str) -> None:
        """
        Collect character data of the current element.

        @param data: The text.
        """
        if self.currElem is not None:
            self._text.append(data)
        else:
            # Text between stanzas (whitespace keepalives) is dropped and not
            # counted toward the next stanza. With buffer_text, expat reports
            # it when the next event starts or the input runs out, so the
            # index is never past the end of the text.
            self._advanceWindow(self._currentIndex())

    def _stanzaEnd(self, stanza: domish.Element) -> int:
        """
        Find where the stanza that just ended ends in the stream.

        Expat reports the end event of an element closed by an end tag at the
        start of that tag, and of an empty-element tag (when a start handler
        is set) at the end of the tag.

        @param stanza: The stanza, with its content.
        @return: The stream offset just past the stanza.
        """
        index = self._currentIndex()
        relative = index - self._windowStart
        window = self._window
        isEndTag = window.startswith(b"</", relative) and (
            # Right after an empty stanza may come the root's end tag.
            bool(stanza.children) or not window.endswith(b"/>", 0, relative)
        )
        if isEndTag:
            # An end tag holds no quoted values, so its first ">" ends it.
            return self._windowStart + window.index(b">", relative) + 1
        return index

    def _advanceWindow(self, position: int) -> None:
        """
        Start counting the next stanza's bytes at a stream offset.

        @param position: The stream offset; ignored unless past the current
            start.
        """
        if position > self._windowStart:
            del self._window[: position - self._windowStart]
            self._windowStart = position

    def _onStartCdataSection(self) -> None:
        self._inCdata = True

    def _onEndCdataSection(self) -> None:
        self._inCdata = False

    def _onStartNamespace(self, prefix: str | None, uri: str) -> None:
        """
        Record a namespace declaration for the next element.

        @param prefix: The prefix, or L{None} for the default namespace.
        @param uri: The namespace URI.
        """
        if prefix is None:
            self.defaultNsStack.append(uri)
        else:
            self.localPrefixes[prefix] = uri

    def _onEndNamespace(self, prefix: str | None) -> None:
        """
        Leave the scope of a namespace declaration.

        @param prefix: The prefix, or L{None} for the default namespace.
        """
        if prefix is None:
            self.defaultNsStack.pop()

    def _refuseDoctype(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: a DOCTYPE is restricted XML.
        """
        raise RestrictedXMLError("DOCTYPE not allowed")

    def _refuseEntityDecl(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: an entity declaration is
            restricted XML.
        """
        raise RestrictedXMLError("Entity declaration not allowed")

    def _refuseUnparsedEntityDecl(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: an entity declaration is
            restricted XML.
        """
        raise RestrictedXMLError("Unparsed entity declaration not allowed")

    def _refuseNotationDecl(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: a notation declaration is
            restricted XML.
        """
        raise RestrictedXMLError("Notation declaration not allowed")

    def _refuseElementDecl(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: an element declaration is
            restricted XML.
        """
        raise RestrictedXMLError("Element declaration not allowed")

    def _refuseAttlistDecl(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: an attribute list declaration is
            restricted XML.
        """
        raise RestrictedXMLError("Attribute list declaration not allowed")

    def _refuseExternalEntityRef(self, *args: object) -> int:
        """
        @raise RestrictedXMLError: Always: an external entity reference is
            restricted XML.
        """
        raise RestrictedXMLError("External entity reference not allowed")

    def _refuseSkippedEntity(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: a reference to an entity expat did
            not expand is restricted XML.
        """
        raise RestrictedXMLError("Entity reference not allowed")

    def _refuseProcessingInstruction(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: a processing instruction is
            restricted XML.
        """
        raise RestrictedXMLError("Processing instruction not allowed")

    def _refuseComment(self, *args: object) -> None:
        """
        @raise RestrictedXMLError: Always: a comment is restricted XML.
        """
        raise RestrictedXMLError("Comment not allowed")


def _peerAddress(transport: Any) -> str | None:
    """
    Describe the peer of a transport for logging.

    @param transport: The transport, or L{None} when not connected.
    @return: C{"host:port"} for IP addresses, another description for other
        addresses, or L{None} if there is no transport.
    """
    # Typed Any: mypy misreads zope.interface methods such as getPeer.
    if transport is None:
        return None
    address = transport.getPeer()
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    return str(address)


#: Seconds between two L{IdleParsers.sweep}s: a stream that received
#: nothing for a whole interval gives its parser back.
PARSER_IDLE_INTERVAL = 10.0


class IdleParsers:
    """
    The parsers of a server's streams. L{sweep}, run every
    L{PARSER_IDLE_INTERVAL} seconds, parks those of the streams that received
    nothing since the previous sweep (L{HardenedElementStream.park}): most
    sessions are idle most of the time, and an active one never pays for
    making its parser again.
    """

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[HardenedElementStream] = weakref.WeakSet()

    def add(self, stream: HardenedElementStream) -> None:
        self._streams.add(stream)

    def sweep(self) -> int:
        """
        @return: how many parsers were freed.
        """
        parked = 0
        for stream in list(self._streams):
            if stream.active:
                stream.active = False
            elif stream.parser is not None and stream.park():
                parked += 1
        return parked


class HardenedXmlStream(xmlstream.XmlStream):
    """
    XMPP XML stream that parses with L{HardenedElementStream} and answers
    parse errors with a stream error instead of silently dropping the
    connection.

    @cvar maxStanzaSize: Per-stanza byte limit; may be overridden per
        instance before C{connectionMade}.
    @cvar maxStanzaElements: Per-stanza element limit; may be overridden per
        instance before C{connectionMade}.
    """

    maxStanzaSize = 256 * 1024
    maxStanzaElements = 2000
    #: Where new parsers are registered to be parked when idle; none if None.
    idleParsers: IdleParsers | None = None

    _log = Logger(observer=_xmppcertLog.observer)
    # Set once a stream error was sent for bad input: data still in flight
    # must not reach the parser again.
    _inputRefused = False

    def _initializeStream(self) -> None:
        """
        Set up a hardened XML parser; called on connect and on L{reset}.
        """
        stream = HardenedElementStream(self.maxStanzaSize, self.maxStanzaElements)
        stream.DocumentStartEvent = self.onDocumentStart
        stream.ElementEvent = self.onElement
        stream.DocumentEndEvent = self.onDocumentEnd
        self.stream = stream
        if self.idleParsers is not None:
            self.idleParsers.add(stream)

    def dataReceived(self, data: bytes) -> None:
        """
        Parse incoming data; answer bad XML with a stream error.

        Restricted XML gets C{restricted-xml}, oversized stanzas
        C{policy-violation} and other parse errors C{not-well-formed}.
        Observers of L{xmlstream.STREAM_ERROR_EVENT} are told first. Data
        arriving after the error, or after the connection was lost, is
        ignored.

        @param data: Bytes received from the peer.
        """
        if self._inputRefused or self.stream is None:
            return
        try:
            if self.rawDataInFn:
                self.rawDataInFn(data)
            self.stream.parse(data)
        except domish.ParserError as e:
            self._inputRefused = True
            self.dispatch(failure.Failure(), xmlstream.STREAM_ERROR_EVENT)
            self._refuseInput(e)

    def _refuseInput(self, reason: domish.ParserError) -> None:
        """
        Log a parse error and send the matching stream error.

        @param reason: The parser's error.
        """
        text: str | None = None
        if isinstance(reason, RestrictedXMLError):
            condition = "restricted-xml"
        elif isinstance(reason, StanzaTooLargeError):
            condition = "policy-violation"
            text = "Stanza too large"
        else:
            condition = "not-well-formed"

        peer = _peerAddress(self.transport)
        # Warn, never error: a remote peer must not be able to raise the
        # server's log level at will.
        self._log.warn(
            "Refusing XML stream from {peer}: {condition} ({reason})",
            condition=condition,
            peer=peer,
            reason=str(reason),
        )
        self.sendStreamError(error.StreamError(condition, text=text))


__all__ = [
    "HardenedElementStream",
    "HardenedXmlStream",
    "RestrictedXMLError",
    "StanzaTooLargeError",
]
