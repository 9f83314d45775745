# -*- test-case-name: tests.test_transports_bosh -*-
"""
BOSH (XEP-0124) as a transport of client streams (XEP-0206), for web
clients.

A BOSH session is one client stream spread over many HTTP requests: each
request carries a C{<body/>} wrapper with what the client sends, each
response what the server sent meanwhile. L{BOSHResource} answers the HTTP
side and owns the sessions; a L{BOSHSession} keeps its requests in C{rid}
order, holds them until there is something to say or C{wait} runs out, and
ends when the client stops coming back; its L{BOSHChannel} is what the
stream negotiation sees (L{xmppcert.c2s.channel.IStreamChannel}).

A session is pinned to the client certificate of the HTTPS connection that
created it (XEP-0124 section 19.1): a request arriving over a connection
with another certificate, or none where the session had one, is refused and
the session ends, so a stolen session id never rides on someone else's
certificate login. This module knows nothing of SASL or of bound sessions.
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.web import resource, server
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcert import _log
from xmppcert.c2s.channel import IStreamChannel, IStreamReceiver
from xmppcert.config import HTTPConfig
from xmppcert.transports.http import PeerConnection, applyCORS, connectionOf, originOf
from xmppcert.xmlstream import HardenedElementStream

log = Logger(observer=_log.observer, namespace="xmppcert.bosh")

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_CLIENT = "jabber:client"
NS_STREAMS = xmlstream.NS_STREAMS

#: The version of XEP-0124 implemented (offered as C{ver}).
BOSH_VERSION = (1, 11)

#: XEP-0124 section 14.1: request ids stay below 2**53.
MAX_RID = 2**53 - 1

#: Random bytes of a session id (XEP-0124 section 7.2: unpredictable).
SID_BYTES = 18

#: Seconds a session whose terminate is due waits for a request to carry
#: it, before it ends without one.
TERMINATE_GRACE = 5.0

#: Characters of output a session may have queued for a client that sends
#: no request to carry them; past it the session ends (policy-violation).
MAX_QUEUED = 4 * 1024 * 1024

#: Stream errors about the connection manager itself, which XEP-0124
#: section 17.2 has terminal binding conditions of its own for: constrained
#: clients read those, not a wrapped stream error.
BINDING_CONDITIONS = frozenset({"host-unknown", "host-gone", "system-shutdown"})

_CONTENT_TYPE = b"text/xml; charset=utf-8"
_METHODS = b"POST, OPTIONS"


# --- XML of the wrapper ---------------------------------------------------------


def serializePayload(element: domish.Element) -> str:
    """
    Serialize a top-level element for a response C{<body/>}.

    The body's default namespace is httpbind, so stanzas carry
    C{xmlns='jabber:client'} (XEP-0206 section 2), and stream elements use
    the C{stream:} prefix the body declares.

    @param element: what the server sent.
    @return: its XML.
    """
    restore = element.defaultUri is None
    if restore:
        # Made without a namespace (toResponse): on TCP it inherits the
        # stream's jabber:client, so it must say so here. Serialized at
        # once and put back: the element may be shared with other streams.
        element.defaultUri = NS_CLIENT
    try:
        xml: str = element.toXml(
            prefixes={NS_STREAMS: "stream"}, defaultUri=NS_HTTPBIND, prefixesInScope=[["stream"]]
        )
        return xml
    finally:
        if restore:
            element.defaultUri = None


def renderBody(attributes: list[tuple[str, str]], payloads: list[str]) -> bytes:
    """
    @param attributes: the wrapper's attributes, in order; names may have
        the C{xmpp:} prefix (C{urn:xmpp:xbosh}).
    @param payloads: serialized top-level elements.
    @return: the response's C{<body/>}, UTF-8.
    """
    parts = [f"<body xmlns='{NS_HTTPBIND}' xmlns:stream='{NS_STREAMS}'"]
    if any(name.startswith("xmpp:") for name, _ in attributes):
        parts.append(f" xmlns:xmpp='{NS_XBOSH}'")
    for name, value in attributes:
        parts.append(f" {name}='{domish.escapeToXml(value, 1)}'")
    if payloads:
        parts.append(">")
        parts.extend(payloads)
        parts.append("</body>")
    else:
        parts.append("/>")
    return "".join(parts).encode("utf-8")


def terminateBody(condition: str | None = None, payloads: list[str] | None = None) -> bytes:
    """
    @return: a C{type='terminate'} body with C{condition}, if any.
    """
    attributes = [("type", "terminate")]
    if condition is not None:
        attributes.append(("condition", condition))
    return renderBody(attributes, payloads or [])


def inClientNamespace(element: domish.Element) -> domish.Element:
    """
    Put a stanza the client left in the body's namespace in
    C{jabber:client}, with every descendant that inherits it (XEP-0206
    section 2: clients often omit C{xmlns}). The tree is the parser's own,
    so it is changed in place.

    @return: C{element}.
    """
    if element.uri != NS_HTTPBIND:
        return element
    stack = [element]
    while stack:
        current = stack.pop()
        if current.uri == NS_HTTPBIND:
            current.uri = NS_CLIENT
        if current.defaultUri == NS_HTTPBIND:
            current.defaultUri = NS_CLIENT
        stack.extend(c for c in current.children if isinstance(c, domish.Element))
    return element


@dataclass
class ParsedBody:
    """
    What one request carried.

    @ivar element: the C{<body/>} (without its children), once its start
        tag parsed.
    @ivar children: its child elements, in order.
    @ivar complete: whether the end tag was reached.
    @ivar error: why the body could not be read, or C{None}.
    """

    element: domish.Element | None = None
    children: list[domish.Element] = field(default_factory=list)
    complete: bool = False
    error: str | None = None

    def _started(self, element: domish.Element) -> None:
        self.element = element

    def _ended(self) -> None:
        self.complete = True


def parseBody(data: bytes, maxStanzaSize: int, maxStanzaElements: int) -> ParsedBody:
    """
    Parse a request body with the hardened parser (no DTD, entities,
    comments or processing instructions; stanza limits).

    @return: the L{ParsedBody}; its C{error} says what was wrong.
    """
    parsed = ParsedBody()
    stream = HardenedElementStream(maxStanzaSize, maxStanzaElements)
    stream.DocumentStartEvent = parsed._started
    stream.ElementEvent = parsed.children.append
    stream.DocumentEndEvent = parsed._ended
    try:
        stream.parse(data)
    except domish.ParserError as e:
        parsed.error = str(e) or type(e).__name__
    else:
        if not parsed.complete:
            parsed.error = "the body is incomplete"
    return parsed


def _number(value: str | None, maximum: int) -> int | None:
    # Digits only (no sign, no spaces, no other scripts' digits), bounded
    # before int() sees them.
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 16:
        return None
    number = int(value)
    return number if number <= maximum else None


def _boshVersion(asked: str | None) -> str:
    # XEP-0124 section 7.2: ours, or the client's if lower.
    ours = "%d.%d" % BOSH_VERSION
    if asked is None:
        return ours
    major, _, minor = asked.partition(".")
    parsed = _number(major, 999), _number(minor or "0", 999)
    if parsed[0] is None or parsed[1] is None:
        return ours
    version = (parsed[0], parsed[1])
    return "%d.%d" % version if version < BOSH_VERSION else ours


def _certificateLabel(connection: PeerConnection) -> str:
    leaf = connection.leaf
    if leaf is None:
        return "no certificate"
    return "certificate " + leaf.fingerprint(hashes.SHA256()).hex()[:16]


def _writeBody(request: server.Request, data: bytes, code: int = 200) -> None:
    # A request whose connection is gone cannot be answered.
    if request.finished or getattr(request, "_disconnected", False):
        return
    request.setResponseCode(code)
    request.setHeader(b"content-type", _CONTENT_TYPE)
    request.setHeader(b"content-length", b"%d" % len(data))
    request.write(data)
    request.finish()


def _abortRequest(request: server.Request) -> None:
    transport = getattr(getattr(request, "channel", None), "transport", None)
    if transport is None:
        return
    abort = getattr(transport, "abortConnection", None) or transport.loseConnection
    abort()


# --- the session ----------------------------------------------------------------


@dataclass(eq=False)
class _Request:
    """
    A request of a session not yet answered: held (processed) or pending
    (arrived before a lower rid).
    """

    request: server.Request
    rid: int
    timer: IDelayedCall | None = None
    body: ParsedBody | None = None

    def cancelTimer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


@implementer(IStreamChannel)
class BOSHChannel:
    """
    L{IStreamChannel} over a L{BOSHSession}. Secure when the creating
    request came over HTTPS; the peer is the connection that created the
    session, pinned for its life.

    @ivar session: the L{BOSHSession}.
    """

    canStartTLS = False
    listener = "bosh"
    transportName = "bosh"

    def __init__(self, session: BOSHSession) -> None:
        self.session = session
        self.secure = session.secure
        self.thisEntity: jid.JID | None = None
        self.sid: str | None = None

    @property
    def closing(self) -> bool:
        return self.session.closing

    def peerLabel(self) -> str:
        return self.session.creator.label()

    def peerAddress(self) -> str:
        return self.session.creator.address()

    def peerHost(self) -> str | None:
        return self.session.creator.host

    def peerChain(self) -> tuple[Any, ...]:
        return self.session.creator.chain

    def openStream(self, thisEntity: jid.JID, otherEntity: jid.JID | None) -> None:
        # No header goes out: the session creation response is BOSH's.
        self.thisEntity = thisEntity
        self.session.streamOpened(thisEntity)

    def send(self, obj: Any) -> None:
        self.session.send(obj)

    def sendFooter(self) -> None:
        self.session.closeStream(None, None)

    def sendStreamError(self, streamError: error.StreamError) -> None:
        condition = streamError.condition
        if condition in BINDING_CONDITIONS:
            self.session.closeStream(condition, None)
        else:
            # XEP-0206 section 6: the stream error itself, inside a
            # remote-stream-error terminate.
            self.session.closeStream("remote-stream-error", serializePayload(streamError.getElement()))

    def loseConnection(self) -> None:
        self.session.closeStream(None, None)

    def abortConnection(self) -> None:
        self.session.abort()

    def reset(self) -> None:
        self.session.restartDue = True

    def startTLS(self) -> None:
        raise NotImplementedError("BOSH runs over HTTPS: there is no STARTTLS")

    def streamBound(self) -> None:
        pass


class BOSHSession:
    """
    One BOSH session: one client stream over many HTTP requests.

    @ivar sid: the session id.
    @ivar receiver: the stream's L{IStreamReceiver}.
    @ivar channel: the L{BOSHChannel} the receiver talks to.
    @ivar creator: the L{PeerConnection} of the creating request.
    @ivar secure: whether the creating request came over HTTPS.
    @ivar rid: the highest rid processed (all lower ones were too).
    @ivar wait: seconds a request is held at most.
    @ivar hold: requests held at most.
    @ivar requests: requests the client may have unanswered at once.
    @ivar inactivity: seconds with no request held before the session ends.
    @ivar pollingInterval: the shortest interval between two empty
        requests of a polling session.
    @ivar polling: whether this is a polling session (C{hold} 0).
    @ivar held: the processed requests waiting for an answer, in rid order.
    @ivar pending: requests that came before a lower rid, by rid.
    @ivar responses: the last C{requests} responses by rid, to send again
        for a repeated rid (XEP-0124 section 14.3).
    @ivar restartDue: set by the negotiation (after SASL success) until the
        client's C{xmpp:restart}.
    @ivar ended: whether the session is over.
    """

    def __init__(
        self,
        owner: BOSHResource,
        sid: str,
        receiver: IStreamReceiver,
        creator: PeerConnection,
        secure: bool,
        rid: int,
        wait: int,
        hold: int,
        inactivity: float,
        pollingInterval: float,
        version: str,
        body: domish.Element,
    ) -> None:
        self.owner = owner
        self.clock: IReactorTime = owner.clock
        self.sid = sid
        self.receiver = receiver
        self.creator = creator
        self.secure = secure
        self.rid = rid
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.polling = hold == 0
        self.inactivity = inactivity
        self.pollingInterval = pollingInterval
        self.version = version
        # What the stream headers are made of; a restart may give new ones.
        self._to = body.getAttribute("to")
        self._lang = body.getAttribute((NS_XML, "lang"))
        self._xmppVersion = body.getAttribute((NS_XBOSH, "version"))
        self._from = body.getAttribute("from")
        self.channel = BOSHChannel(self)
        self.held: list[_Request] = []
        self.pending: dict[int, _Request] = {}
        self.responses: OrderedDict[int, bytes] = OrderedDict()
        #: Processed rids whose held request was lost before any answer:
        #: the client may send them again (section 14.3).
        self.unanswered: set[int] = set()
        self.outbox: list[str] = []
        #: Characters queued in L{outbox}, bounded by L{MAX_QUEUED}.
        self.queued = 0
        self.restartDue = False
        self.ended = False
        self._creationRid = rid
        self._streamFrom: str | None = None
        self._processing = False
        self._terminating = False
        self._terminateCondition: str | None = None
        self._errorPayload: str | None = None
        self._lastPoll: float | None = None
        self._flushCall: IDelayedCall | None = None
        self._inactivityCall: IDelayedCall | None = None
        self._graceCall: IDelayedCall | None = None

    @property
    def closing(self) -> bool:
        """
        Whether the stream is over for us: a terminate is due or went out.
        """
        return self._terminating or self.ended

    # --- requests -----------------------------------------------------------

    def start(self, request: server.Request, body: domish.Element) -> None:
        """
        Begin with the session creation request: it is held until the
        stream features (or a stream error) are there, or C{wait} runs out.
        """
        entry = _Request(request, self.rid)
        self._watch(request)
        self._hold(entry)
        self._processing = True
        try:
            self.receiver.channelOpened(self.channel)
            if not self.closing:
                self.receiver.streamStarted(self._header())
        finally:
            self._processing = False
        self._afterProcessing(trim=False)

    def requestReceived(self, request: server.Request, body: ParsedBody) -> None:
        """
        A request naming this session arrived.
        """
        peer = connectionOf(request)
        if not self.creator.sameClientCertificate(peer) or (self.secure and not request.isSecure()):
            self._pinningViolation(request, peer)
            return
        if body.error is not None:
            self._violation("bad-request", f"unreadable body ({body.error})", request)
            return
        element = body.element
        assert element is not None
        if self._terminating:
            # The terminate waited for a request to carry it: this one.
            self._watch(request)
            self.held.append(_Request(request, self.rid))
            self._deliverTerminate()
            return
        rid = _number(element.getAttribute("rid"), MAX_RID)
        if rid is None:
            self._violation("bad-request", "no valid rid", request)
            return
        if rid <= self.rid:
            self._repeated(request, rid)
            return
        if rid > self.rid + self.requests:
            # Section 14.2: beyond the window.
            self._violation("item-not-found", f"rid {rid} is beyond the window", request)
            return
        known = self.pending.get(rid)
        if known is not None:
            self._replace(known, request)
            return
        # Section 11: a terminate may be one request over the limit.
        allowed = self.requests + (1 if element.getAttribute("type") == "terminate" else 0)
        if len(self.held) + len(self.pending) + 1 > allowed:
            self._violation("policy-violation", "too many simultaneous requests", request)
            return
        self._cancelInactivity()
        entry = _Request(request, rid, body=body)
        self._watch(request)
        if rid != self.rid + 1:
            # Section 14.2: processed in rid order, once the gap is filled.
            entry.timer = self.clock.callLater(self.wait, self._pendingExpired, entry)
            self.pending[rid] = entry
            return
        self._process(entry, body)
        while not self.closing and self.rid + 1 in self.pending:
            entry = self.pending.pop(self.rid + 1)
            entry.cancelTimer()
            assert entry.body is not None
            self._process(entry, entry.body)

    def _repeated(self, request: server.Request, rid: int) -> None:
        # Section 14.3: a request sent again after a broken connection.
        cached = self.responses.get(rid)
        if cached is not None:
            _writeBody(request, cached)
            return
        for entry in self.held:
            if entry.rid == rid:
                self._replace(entry, request)
                return
        if rid in self.unanswered:
            # Its first copy was lost unanswered (a proxy timed out the long
            # poll): this one waits in its place.
            self.unanswered.discard(rid)
            self._cancelInactivity()
            self._watch(request)
            self._hold(_Request(request, rid))
            self._afterProcessing(trim=True)
            return
        self._violation("item-not-found", f"rid {rid} is no longer known", request)

    def _replace(self, entry: _Request, request: server.Request) -> None:
        # Section 14.3: the earlier copy of a request not yet answered gets
        # a recoverable error; the answer goes to the latest.
        old, entry.request = entry.request, request
        self._watch(request)
        _writeBody(old, renderBody([("type", "error")], []))

    def _process(self, entry: _Request, body: ParsedBody) -> None:
        element = body.element
        assert element is not None
        self.rid = entry.rid
        # xs:boolean (XEP-0206 schema): "true" or "1".
        restart = element.getAttribute((NS_XBOSH, "restart")) in ("true", "1")
        terminate = element.getAttribute("type") == "terminate"
        if self.polling:
            if body.children or restart or terminate:
                self._lastPoll = None
            else:
                # Section 12: two empty polls too close together, the
                # first answered with nothing.
                now = self.clock.seconds()
                if self._lastPoll is not None and now - self._lastPoll < self.pollingInterval:
                    self._violation("policy-violation", "polling too often", entry.request)
                    return
                self._lastPoll = now
        self._hold(entry)
        self._processing = True
        try:
            if restart:
                self._restart(element, body.children)
            else:
                self._dispatch(body.children)
            if terminate and not self.closing:
                # Section 13: the client ends the session, after its last
                # stanzas; like a closing tag on TCP.
                self.channel.sendFooter()
        finally:
            self._processing = False
        self._afterProcessing(trim=True)

    def _restart(self, element: domish.Element, children: list[domish.Element]) -> None:
        if not self.restartDue:
            self._violation("bad-request", "a stream restart when none is due")
            return
        self.restartDue = False
        if children:
            # XEP-0206 section 5: stanzas in a restart request are ignored.
            log.debug("Ignoring {count} elements in a BOSH restart request", count=len(children))
        # XEP-0206 section 5: the restart request may name them again.
        self._to = element.getAttribute("to") or self._to
        self._lang = element.getAttribute((NS_XML, "lang")) or self._lang
        self._from = element.getAttribute("from") or self._from
        self.receiver.streamStarted(self._header())

    def _dispatch(self, children: list[domish.Element]) -> None:
        for child in children:
            if self.closing:
                return
            if self.restartDue:
                # What follows <success/> belongs to the next stream, which
                # only the client's restart opens (as on TCP, nothing may be
                # pipelined across a restart).
                self._violation("bad-request", "stanzas before the stream restart")
                return
            self.receiver.elementReceived(inClientNamespace(child))

    def _header(self) -> domish.Element:
        # The stream header a TCP client would have sent. Without
        # xmpp:version there is no version: the negotiation refuses it.
        attributes: dict[Any, str] = {}
        if self._to:
            attributes["to"] = self._to
        if self._from:
            attributes["from"] = self._from
        if self._xmppVersion is not None:
            attributes["version"] = self._xmppVersion
        if self._lang:
            attributes[(NS_XML, "lang")] = self._lang
        return domish.Element((NS_STREAMS, "stream"), defaultUri=NS_CLIENT, attribs=attributes)

    def _hold(self, entry: _Request) -> None:
        self.held.append(entry)
        entry.timer = self.clock.callLater(self.wait, self._waitExpired, entry)

    def _watch(self, request: server.Request) -> None:
        def lost(reason: failure.Failure) -> None:
            self._requestGone(request)

        request.notifyFinish().addErrback(lost)

    def _requestGone(self, request: server.Request) -> None:
        # The client gave up on a request (or its connection broke): it
        # cannot be answered, so it no longer counts as held.
        if self.ended:
            return
        for entry in self.held:
            if entry.request is request:
                entry.cancelTimer()
                self.held.remove(entry)
                # Processed but never answered: a retransmission of this
                # rid must be held again, not refused.
                self.unanswered = {r for r in self.unanswered if r > self.rid - self.requests}
                self.unanswered.add(entry.rid)
                break
        else:
            for rid, entry in list(self.pending.items()):
                if entry.request is request:
                    entry.cancelTimer()
                    del self.pending[rid]
        if not self.held and not self.pending:
            self._startInactivity()

    def _waitExpired(self, entry: _Request) -> None:
        entry.timer = None
        if entry not in self.held:
            return
        # Answers go out in rid order.
        while self.held and self.held[0] is not entry:
            self._answer(self.held[0])
        self._answer(entry)

    def _pendingExpired(self, entry: _Request) -> None:
        # Section 17.3: a lower rid never came; a recoverable error makes
        # the client send the missing ones again.
        entry.timer = None
        if self.pending.get(entry.rid) is not entry:
            return
        del self.pending[entry.rid]
        _writeBody(entry.request, renderBody([("type", "error")], []))
        if not self.held and not self.pending:
            self._startInactivity()

    # --- output -------------------------------------------------------------

    def streamOpened(self, thisEntity: jid.JID) -> None:
        """
        The negotiation accepted the stream header.
        """
        self._streamFrom = thisEntity.full()

    def send(self, obj: Any) -> None:
        """
        Queue an element (or pre-serialized XML) for the client; dropped
        once closing. Whitespace keepalives are dropped: BOSH's own
        requests keep the connections alive.
        """
        if self.closing:
            return
        if domish.IElement.providedBy(obj):
            text = serializePayload(obj)  # type: ignore[arg-type]
        else:
            text = obj.decode("utf-8") if isinstance(obj, bytes) else str(obj)
            if not text.strip():
                return
        self.queued += len(text)
        if self.queued > MAX_QUEUED:
            # A client that stops asking while stanzas keep coming (as a
            # TCP peer that stops reading): end it rather than hold
            # everything until its inactivity runs out.
            log.info(
                "Ending a BOSH session of {peer}: over {limit} characters of output unread",
                peer=self.creator.label(), limit=MAX_QUEUED,
            )
            self.outbox, self.queued = [], 0
            self.closeStream("policy-violation", None)
            return
        self.outbox.append(text)
        self._scheduleFlush()

    def closeStream(self, condition: str | None, errorPayload: str | None) -> None:
        """
        Our side of the stream is over: a terminate (with C{condition},
        and the serialized stream error, if any) goes out on a held
        request, or on the next one; then the session ends.
        """
        if self.closing:
            return
        self._terminating = True
        self._terminateCondition = condition
        self._errorPayload = errorPayload
        # As on TCP once our closing tag is out: the stream is over.
        self.receiver.streamClosing()
        self._scheduleFlush()

    def terminate(self, condition: str | None) -> None:
        """
        End the session now: held requests are answered with a terminate
        (what is queued goes on the oldest), and the receiver is told.
        """
        if self.ended:
            return
        if not self._terminating:
            self._terminating = True
            self._terminateCondition = condition
            self._errorPayload = None
        self._answerTerminate()

    def abort(self) -> None:
        """
        End the session at once, saying nothing: the connections of
        unanswered requests are cut.
        """
        if self.ended:
            return
        entries = self.held + list(self.pending.values())
        self.held, self.pending = [], {}
        for entry in entries:
            entry.cancelTimer()
            _abortRequest(entry.request)
        self._end()

    def _scheduleFlush(self) -> None:
        # What is sent in one reactor turn (or while a request is
        # processed) goes out in one response.
        if self._processing or self.ended:
            return
        if self._flushCall is None or not self._flushCall.active():
            self._flushCall = self.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        if self.ended:
            return
        if self._terminating:
            self._deliverTerminate()
        elif self.outbox and self.held:
            self._answer(self.held[0])

    def _afterProcessing(self, trim: bool) -> None:
        if self.ended:
            return
        if self._terminating:
            self._deliverTerminate()
            return
        if trim:
            # Section 8: never more than 'hold' requests waiting; the
            # oldest goes, with whatever is queued.
            while len(self.held) > self.hold:
                self._answer(self.held[0])
        self._flush()

    def _answer(self, entry: _Request) -> None:
        self.held.remove(entry)
        entry.cancelTimer()
        payloads, self.outbox, self.queued = self.outbox, [], 0
        attributes = self._creationAttributes() if entry.rid == self._creationRid else []
        data = renderBody(attributes, payloads)
        self.responses[entry.rid] = data
        while len(self.responses) > self.requests:
            self.responses.popitem(last=False)
        if payloads and self.polling:
            self._lastPoll = None
        _writeBody(entry.request, data)
        if not self.held and not self.pending:
            self._startInactivity()

    def _creationAttributes(self) -> list[tuple[str, str]]:
        # XEP-0124 section 7.2, XEP-0206 section 4.
        attributes = [
            ("sid", self.sid),
            ("wait", str(self.wait)),
            ("hold", str(self.hold)),
            ("requests", str(self.requests)),
            # Advertised as whole seconds, in the client's favour.
            ("polling", str(math.ceil(self.pollingInterval))),
            ("inactivity", str(int(self.inactivity))),
            ("ver", self.version),
        ]
        if self._streamFrom is not None:
            attributes.append(("from", self._streamFrom))
        if self.channel.sid:
            attributes.append(("authid", self.channel.sid))
        attributes.append(("xmpp:version", "1.0"))
        attributes.append(("xmpp:restartlogic", "true"))
        return attributes

    def _deliverTerminate(self) -> None:
        if self.held or self.pending:
            self._answerTerminate()
        elif self._graceCall is None:
            self._graceCall = self.clock.callLater(TERMINATE_GRACE, self._end)

    def _answerTerminate(self) -> None:
        # The oldest request carries what is queued and the stream error;
        # any other is told the session is over.
        entries = self.held + sorted(self.pending.values(), key=lambda e: e.rid)
        self.held, self.pending = [], {}
        payloads, self.outbox, self.queued = self.outbox, [], 0
        if self._errorPayload is not None:
            payloads.append(self._errorPayload)
        for index, entry in enumerate(entries):
            entry.cancelTimer()
            _writeBody(entry.request, terminateBody(self._terminateCondition, payloads if index == 0 else []))
        self._end()

    # --- the end ------------------------------------------------------------

    def _startInactivity(self) -> None:
        if self.ended:
            return
        self._cancelInactivity()
        self._inactivityCall = self.clock.callLater(self.inactivity, self._inactive)

    def _cancelInactivity(self) -> None:
        if self._inactivityCall is not None and self._inactivityCall.active():
            self._inactivityCall.cancel()
        self._inactivityCall = None

    def _inactive(self) -> None:
        # Section 10: the client is gone; ended without telling it.
        self._inactivityCall = None
        log.debug(
            "Ending the BOSH session of {peer}: no request for {seconds:g} s",
            peer=self.creator.label(),
            seconds=self.inactivity,
        )
        self._end()

    def _violation(self, condition: str, why: str, request: server.Request | None = None) -> None:
        """
        The client broke the rules: terminate with C{condition}, on
        C{request} (not yet held) too.
        """
        self.owner.logLimited(
            f"violation:{condition}",
            LogLevel.warn,
            "Terminating the BOSH session of {peer} ({condition}): {why}",
            peer=self.creator.label(),
            condition=condition,
            why=why,
        )
        if request is not None:
            _writeBody(request, terminateBody(condition))
        self.terminate(condition)

    def _pinningViolation(self, request: server.Request, peer: PeerConnection) -> None:
        # Nothing of the session goes to this request. Unlike XEP-0124
        # section 19.1's "close the connection, keep the session", the
        # session ends too: its id has leaked to someone else.
        self.owner.logLimited(
            "pinning",
            LogLevel.info,
            "Refusing a BOSH request from {peer} ({peerCertificate}) for a session created by"
            " {creator} ({creatorCertificate}) over another client certificate or encryption;"
            " terminating the session",
            peer=peer.label(),
            peerCertificate=_certificateLabel(peer),
            creator=self.creator.label(),
            creatorCertificate=_certificateLabel(self.creator),
        )
        _writeBody(request, terminateBody("policy-violation"))
        self.terminate("policy-violation")

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.owner._forget(self)
        for call in (self._flushCall, self._inactivityCall, self._graceCall):
            if call is not None and call.active():
                call.cancel()
        self._flushCall = self._inactivityCall = self._graceCall = None
        # Every path answers or cuts its requests first; should one remain,
        # it must not hang until the client gives up.
        leftovers = self.held + list(self.pending.values())
        self.held, self.pending = [], {}
        for entry in leftovers:
            entry.cancelTimer()
            _writeBody(entry.request, terminateBody(self._terminateCondition))
        self.outbox = []
        self.receiver.channelClosed()


# --- the HTTP resource ----------------------------------------------------------


class BOSHResource(resource.Resource):
    """
    The BOSH endpoint (C{/http-bind}): the sessions of the listeners it is
    mounted on.

    @ivar sessions: the open L{BOSHSession}s by sid.
    """

    isLeaf = True

    def __init__(
        self,
        newReceiver: Callable[[], IStreamReceiver],
        clock: IReactorTime,
        settings: Callable[[], HTTPConfig],
        stanzaLimits: Callable[[], tuple[int, int]],
    ) -> None:
        """
        @param newReceiver: makes the L{IStreamReceiver} of a new session.
        @param clock: for every timer.
        @param settings: returns the live C{[http]} settings.
        @param stanzaLimits: returns the live C{(max_stanza_size,
            max_stanza_elements)}.
        """
        super().__init__()
        self.newReceiver = newReceiver
        self.clock = clock
        self.settings = settings
        self.stanzaLimits = stanzaLimits
        self.sessions: dict[str, BOSHSession] = {}
        self._limitedLogs: dict[str, _log.RateLimitedLog] = {}

    def logLimited(self, kind: str, level: LogLevel, format: str, **kwargs: Any) -> None:
        """
        Log a line a peer could make us repeat at will: at most one a minute
        of each C{kind} (our own vocabulary, never the peer's).
        """
        limited = self._limitedLogs.get(kind)
        if limited is None:
            limited = self._limitedLogs[kind] = _log.RateLimitedLog(log, level, self.clock)
        limited.emit(format, **kwargs)

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"xmppcert BOSH endpoint (XEP-0124, XEP-0206): POST a <body/> here.\n"

    def render_OPTIONS(self, request: server.Request) -> bytes:
        # The CORS preflight of a page's POST.
        if not applyCORS(request, self.settings(), _METHODS):
            self._refuseOrigin(request)
            return b""
        request.setResponseCode(204)
        return b""

    def render_POST(self, request: server.Request) -> int | bytes:
        if not applyCORS(request, self.settings(), _METHODS):
            self._refuseOrigin(request)
            return b""
        request.setHeader(b"content-type", _CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        content = request.content
        data = content.read() if content is not None else b""
        body = parseBody(data, *self.stanzaLimits())
        element = body.element
        peer = connectionOf(request)
        if element is None or (element.uri, element.name) != (NS_HTTPBIND, "body"):
            self.logLimited(
                "unreadable",
                LogLevel.warn,
                "Refusing a BOSH request from {peer}: not a BOSH body ({why})",
                peer=peer.label(),
                why=body.error or "another root element",
            )
            _writeBody(request, terminateBody("bad-request"), 400)
            return server.NOT_DONE_YET
        sid = element.getAttribute("sid")
        if sid is None:
            if body.error is not None:
                self.logLimited(
                    "unreadable",
                    LogLevel.warn,
                    "Refusing a BOSH session request from {peer}: {why}",
                    peer=peer.label(),
                    why=body.error,
                )
                _writeBody(request, terminateBody("bad-request"), 400)
            else:
                self._create(request, element, peer)
            return server.NOT_DONE_YET
        session = self.sessions.get(sid)
        if session is None:
            # Section 17.2 with HTTP 200: only a client that sent no 'ver'
            # expects 404, and no session says whether this one did.
            self.logLimited(
                "unknown", LogLevel.info, "Refusing a BOSH request from {peer}: no such session", peer=peer.label()
            )
            _writeBody(request, terminateBody("item-not-found"))
            return server.NOT_DONE_YET
        session.requestReceived(request, body)
        return server.NOT_DONE_YET

    def _refuseOrigin(self, request: server.Request) -> None:
        self.logLimited(
            "origin",
            LogLevel.info,
            "Refusing a BOSH request from {peer}: origin {origin} is not in [http] allowed_origins",
            peer=connectionOf(request).label(),
            origin=originOf(request),
        )
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")

    def _create(self, request: server.Request, element: domish.Element, peer: PeerConnection) -> None:
        # XEP-0124 section 7, XEP-0206 sections 3 and 4.
        settings = self.settings()
        if len(self.sessions) >= settings.bosh_max_sessions:
            self.logLimited(
                "cap",
                LogLevel.info,
                "Refusing a BOSH session to {peer}: {count} open, the most [http] bosh_max_sessions allows",
                peer=peer.label(),
                count=len(self.sessions),
            )
            _writeBody(request, terminateBody("remote-connection-failed"))
            return
        rid = _number(element.getAttribute("rid"), MAX_RID)
        waitAttribute, holdAttribute = element.getAttribute("wait"), element.getAttribute("hold")
        wait = _number(waitAttribute, 10**16) if waitAttribute is not None else int(settings.bosh_max_wait)
        hold = _number(holdAttribute, 10**16) if holdAttribute is not None else 1
        if not rid or wait is None or hold is None:
            self.logLimited(
                "unreadable",
                LogLevel.warn,
                "Refusing a BOSH session request from {peer}: rid, wait or hold is not a number",
                peer=peer.label(),
            )
            _writeBody(request, terminateBody("bad-request"), 400)
            return
        wait = min(wait, int(settings.bosh_max_wait))
        hold = min(hold, settings.bosh_max_hold)
        if wait == 0:
            # Section 7.1: a client that will not wait polls.
            hold = 0
        # Section 12: a polling session's inactivity exceeds its polling.
        inactivity = settings.bosh_max_inactivity + (settings.bosh_polling if hold == 0 else 0)
        sid = secrets.token_urlsafe(SID_BYTES)
        while sid in self.sessions:
            sid = secrets.token_urlsafe(SID_BYTES)
        session = BOSHSession(
            self,
            sid,
            self.newReceiver(),
            peer,
            request.isSecure(),
            rid,
            wait,
            hold,
            inactivity,
            settings.bosh_polling,
            _boshVersion(element.getAttribute("ver")),
            element,
        )
        self.sessions[sid] = session
        session.start(request, element)

    def _forget(self, session: BOSHSession) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def terminateAll(self, condition: str = "system-shutdown") -> int:
        """
        End every session now, telling clients that have a request held.

        @param condition: the terminal binding condition.
        @return: how many sessions there were.
        """
        sessions = list(self.sessions.values())
        for session in sessions:
            session.terminate(condition)
        if sessions:
            log.info("Terminated {count} BOSH sessions ({condition})", count=len(sessions), condition=condition)
        return len(sessions)


__all__ = [
    "BINDING_CONDITIONS",
    "BOSH_VERSION",
    "MAX_RID",
    "NS_HTTPBIND",
    "NS_XBOSH",
    "SID_BYTES",
    "MAX_QUEUED",
    "TERMINATE_GRACE",
    "BOSHChannel",
    "BOSHResource",
    "BOSHSession",
    "ParsedBody",
    "inClientNamespace",
    "parseBody",
    "renderBody",
    "serializePayload",
    "terminateBody",
]
