"""
Tests for L{xmppcert.iqhandler}: a stream's requests answered strictly in
order.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import error
from twisted.words.xish import domish, utility

from tests.helpers import parseOutput, stanzaErrorCondition
from xmppcert.iqhandler import OrderedIQHandler

NS = "urn:example:test"


class Stream(utility.EventDispatcher):
    def __init__(self) -> None:
        utility.EventDispatcher.__init__(self)
        self.sent: list[domish.Element] = []

    def send(self, element: domish.Element) -> None:
        self.sent.append(element)


class Handler(OrderedIQHandler):
    iqHandlers = {f"/iq[@type='get']/query[@xmlns='{NS}']": "_onGet", f"/iq[@type='set']/query[@xmlns='{NS}']": "_onSet"}

    def __init__(self) -> None:
        super().__init__()
        self.waiting: defer.Deferred[Any] | None = None

    def _onGet(self, iq: domish.Element) -> Any:
        if iq.query.getAttribute("slow"):
            self.waiting = defer.Deferred()
            return self.waiting
        if iq.query.getAttribute("broken"):
            raise RuntimeError("a bug")
        return domish.Element((NS, "answer"))

    def _onSet(self, iq: domish.Element) -> None:
        raise error.StanzaError("forbidden")


def handler() -> tuple[Handler, Stream]:
    stream = Stream()
    h = Handler()
    # Answers go out through the parent, as in a handler collection.
    h.parent = stream
    h.makeConnection(stream)
    h.connectionInitialized()
    return h, stream


def request(stream: Stream, xml: str) -> None:
    stream.dispatch(parseOutput(xml).only())


def test_answersInOrder() -> None:
    """
    RFC 6120 section 10.1: a request refused at once waits until the answer
    to a slower request sent before it is out.
    """
    h, stream = handler()
    request(stream, f"<iq type='get' id='1'><query xmlns='{NS}' slow='1'/></iq>")
    request(stream, f"<iq type='set' id='2'><query xmlns='{NS}'/></iq>")
    assert stream.sent == []
    assert h.waiting is not None
    h.waiting.callback([domish.Element((NS, "late"))])
    assert [(e["id"], e["type"]) for e in stream.sent] == [("1", "result"), ("2", "error")]
    assert stanzaErrorCondition(stream.sent[1]) == "forbidden"
    assert stream.sent[0].firstChildElement().name == "late"


def test_resultPayload() -> None:
    """
    A method's element becomes the result's payload.
    """
    h, stream = handler()
    request(stream, f"<iq type='get' id='1'><query xmlns='{NS}'/></iq>")
    [answer] = stream.sent
    assert answer["type"] == "result" and answer.firstChildElement().name == "answer"


def test_bugAnsweredAndLogged() -> None:
    """
    RFC 6120 section 8.3.3.7: a request whose method fails unexpectedly
    gets internal-server-error, and the failure is logged for the operator;
    the next request is still answered.
    """
    h, stream = handler()
    with capturedLogs() as events:
        request(stream, f"<iq type='get' id='1'><query xmlns='{NS}' broken='1'/></iq>")
        request(stream, f"<iq type='get' id='2'><query xmlns='{NS}'/></iq>")
    assert stanzaErrorCondition(stream.sent[0]) == "internal-server-error"
    assert stream.sent[1]["type"] == "result"
    assert [e["log_level"] for e in events if e.get("log_failure")] == [LogLevel.critical]
