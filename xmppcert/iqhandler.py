# -*- test-case-name: tests.test_iqhandler -*-
"""
The base of the per-stream handlers that answer a client's requests
(XEP-0257, roster, vCard, private storage, ...): wokkel's C{IQHandlerMixin}
dispatch, with the requests of one stream handled strictly in order.

RFC 6120 section 10.1: a client may send a set and, without waiting, a get
that must see it. A lock around the work is not enough: it is released
when the work ends, before the answer is sent, so an immediate refusal of
the next request would overtake the previous answer. Here the next request
starts only once the answer to the one before is out.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish, xpath
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppcert import _log

log = Logger(observer=_log.observer, namespace="xmppcert.handlers")


class OrderedIQHandler(XMPPHandler, IQHandlerMixin):
    """
    A per-stream handler whose C{iqHandlers} (XPath query to method name)
    are answered one after the other, in the order the requests came.

    A method returns the payload of the result (an element, a list of
    them, or C{None}), or a Deferred of it; it raises (or fails with) a
    L{error.StanzaError} for an error answer.
    """

    iqHandlers: dict[str, str] = {}

    def __init__(self) -> None:
        XMPPHandler.__init__(self)
        # Made at the first request: most streams never send one to most
        # handlers, and a deque per handler and stream adds up.
        self._requests: deque[domish.Element] | None = None
        self._busy = False

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)

    def handleRequest(self, iq: domish.Element) -> None:
        iq.handled = True  # type: ignore[attr-defined]
        if self._requests is None:
            self._requests = deque()
        self._requests.append(iq)
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while self._requests:
            iq = self._requests.popleft()
            answered = self._answer(iq)
            if not answered.called:
                self._busy = True
                answered.addBoth(self._resume)
                return
        self._busy = False

    def _resume(self, result: object) -> None:
        self._busy = False
        self._next()

    def _answer(self, iq: domish.Element) -> defer.Deferred[None]:
        method = None
        for query, name in self.iqHandlers.items():
            if xpath.internQuery(query).matches(iq):
                method = getattr(self, name)
        if method is None:
            d: defer.Deferred[Any] = defer.fail(error.StanzaError("feature-not-implemented"))
        else:
            d = defer.maybeDeferred(method, iq)
        d.addCallback(_result, iq)
        d.addErrback(_stanzaError, iq)
        d.addErrback(self._otherError, iq)
        d.addCallback(self.send)
        return d

    def _otherError(self, f: failure.Failure, iq: domish.Element) -> domish.Element:
        # A bug, or a store failure a method did not turn into a stanza
        # error: the operator must see it; the client gets an answer.
        log.failure("Answering a {name} request failed", f, name=_payloadName(iq))
        return error.StanzaError("internal-server-error").toResponse(iq)


def _result(result: Any, iq: domish.Element) -> domish.Element:
    response = toResponse(iq, "result")
    if result:
        if domish.IElement.providedBy(result):
            response.addChild(result)
        else:
            for element in result:
                response.addChild(element)
    return response


def _stanzaError(f: failure.Failure, iq: domish.Element) -> domish.Element:
    f.trap(error.StanzaError)
    return f.value.toResponse(iq)  # type: ignore[union-attr]


def _payloadName(iq: domish.Element) -> str:
    child = iq.firstChildElement()
    return f"{{{child.uri}}}{child.name}" if child is not None else "?"


__all__ = ["OrderedIQHandler"]
