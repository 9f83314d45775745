"""
Tests for L{xmppcert.im.entitytime}: Entity Time (XEP-0202) answered by
the server.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterator

import pytest
from twisted.internet import task
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from wokkel.iwokkel import IDisco

from tests.helpers import ALICE, BOB, DOMAIN, ClientConnection, makeServer, stanzaErrorCondition
from xmppcert.c2s import HandlerFactory
from xmppcert.handlers import defaultHandlers
from xmppcert.im.entitytime import NS_TIME, EntityTimeHandler, formatUTC, timeHandlers

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
FULL = "alice@example.com/phone"

#: 2024-02-29T12:34:56Z: a leap day, so a wrong calendar shows.
KNOWN = datetime.datetime(2024, 2, 29, 12, 34, 56, tzinfo=datetime.UTC).timestamp()

#: XEP-0082 section 3.2, the dateTime profile (CCYY-MM-DDThh:mm:ss[.sss]TZD),
#: expressed in UTC as XEP-0202 section 2 requires.
UTC_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
#: XEP-0082 section 2.2, the TZD: Z or (+|-)hh:mm.
TZD = re.compile(r"Z|[+-]\d{2}:\d{2}")


def connected(*factories: HandlerFactory) -> ClientConnection:
    """
    A bound client of a server whose streams get the default handlers and
    C{factories}.
    """
    h = makeServer(handlerFactories=[defaultHandlers, *factories])
    client = h.connect()
    client.bound("phone")
    return client


def ask(client: ClientConnection, kind: str = "get", to: str | None = DOMAIN) -> domish.Element:
    """
    Send an C{urn:xmpp:time} iq and return the answer.
    """
    attribute = f" to='{to}'" if to is not None else ""
    client.send(f"<iq type='{kind}' id='t1'{attribute}><time xmlns='{NS_TIME}'/></iq>")
    return client.received().only("iq")


def fields(reply: domish.Element) -> dict[str, str]:
    """
    The children of the C{<time/>} of a result, by name.
    """
    assert reply["type"] == "result", reply.toXml()
    [time] = list(reply.elements())
    assert (time.uri, time.name) == (NS_TIME, "time")
    children = list(time.elements())
    assert all(c.uri == NS_TIME for c in children), reply.toXml()
    return {c.name: str(c) for c in children}


def features(client: ClientConnection, to: str | None) -> list[str]:
    attribute = f" to='{to}'" if to is not None else ""
    client.send(f"<iq type='get' id='d1'{attribute}><query xmlns='{NS_DISCO_INFO}'/></iq>")
    reply = client.received().only("iq")
    assert reply["type"] == "result", reply.toXml()
    return [f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")]


def test_get() -> None:
    """
    XEP-0202 section 2: a get to the server is answered, from the server to
    the asking resource, with C{<tzo/>} (a XEP-0082 TZD: the server speaks
    UTC) and C{<utc/>}, the injected clock's time in the XEP-0082 dateTime
    profile, expressed in UTC.
    """
    clock = task.Clock()
    clock.advance(KNOWN + 0.75)
    reply = ask(connected(timeHandlers(clock)))
    assert (reply["id"], reply["from"], reply["to"]) == ("t1", DOMAIN, FULL)
    answer = fields(reply)
    assert answer == {"tzo": "+00:00", "utc": "2024-02-29T12:34:56Z"}
    assert TZD.fullmatch(answer["tzo"])
    assert UTC_DATETIME.fullmatch(answer["utc"])


def test_clockReadPerRequest() -> None:
    """
    XEP-0202 section 2: C{<utc/>} is the time when the query is answered,
    read from the clock each time.
    """
    clock = task.Clock()
    clock.advance(KNOWN)
    client = connected(timeHandlers(clock))
    assert fields(ask(client))["utc"] == "2024-02-29T12:34:56Z"
    clock.advance(86400 + 3661)
    assert fields(ask(client))["utc"] == "2024-03-01T13:35:57Z"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (KNOWN + 0.999, "2024-02-29T12:34:56Z"),
        (4102444799, "2099-12-31T23:59:59Z"),
    ],
)
def test_formatUTC(seconds: float, text: str) -> None:
    """
    XEP-0082 section 3.2: the dateTime profile, in UTC (C{Z}), to the whole
    second.
    """
    assert formatUTC(seconds) == text
    assert UTC_DATETIME.fullmatch(text)


@pytest.fixture
def farFromUTC(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    The process's local time zone five hours west of UTC (a POSIX TZ, no
    time zone database needed), restored afterwards.
    """
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available")
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("farFromUTC")
def test_localTimeZoneIgnored() -> None:
    """
    XEP-0202 section 2: C{<utc/>} MUST be expressed in UTC, and C{<tzo/>}
    says the server's offset: whatever the host's local time zone, the
    server answers in UTC with offset C{+00:00}.
    """
    assert time.localtime(0).tm_hour == 19
    assert formatUTC(0) == "1970-01-01T00:00:00Z"
    clock = task.Clock()
    clock.advance(KNOWN)
    assert fields(ask(connected(timeHandlers(clock)))) == {"tzo": "+00:00", "utc": "2024-02-29T12:34:56Z"}


def test_set() -> None:
    """
    XEP-0202 defines no iq set: one to the server is answered bad-request
    (RFC 6120 section 8.3.3.1).
    """
    reply = ask(connected(timeHandlers(task.Clock())), kind="set")
    assert (reply["id"], reply["from"], reply["to"]) == ("t1", DOMAIN, FULL)
    assert stanzaErrorCondition(reply) == "bad-request"


@pytest.mark.parametrize("to", [None, ALICE, BOB])
def test_notForAccounts(to: str | None) -> None:
    """
    XEP-0202 section 3 and RFC 6120 section 10.3.3: a query without 'to',
    or to a bare JID, is for an account, not for the server: the answer is
    service-unavailable.
    """
    reply = ask(connected(timeHandlers(task.Clock())), to=to)
    assert stanzaErrorCondition(reply) == "service-unavailable"


def test_notInstalled() -> None:
    """
    XEP-0202 section 3: without the handler, a server that does not support
    the namespace answers service-unavailable (what L{test_get} relies on
    the handler to change).
    """
    assert stanzaErrorCondition(ask(connected())) == "service-unavailable"


def test_discoServer() -> None:
    """
    XEP-0202 section 4: a server that supports Entity Time MUST advertise
    C{urn:xmpp:time} in its disco#info; once, and not without the handler.
    """
    assert features(connected(timeHandlers(task.Clock())), DOMAIN).count(NS_TIME) == 1
    assert NS_TIME not in features(connected(), DOMAIN)


@pytest.mark.parametrize("to", [None, ALICE])
def test_discoAccount(to: str | None) -> None:
    """
    XEP-0202 section 4 and RFC 6120 section 10.3.3: the account's
    disco#info (no 'to', or the own bare JID) does not advertise
    C{urn:xmpp:time}, which the account does not answer.
    """
    assert NS_TIME not in features(connected(timeHandlers(task.Clock())), to)


def test_discoNode() -> None:
    """
    XEP-0030: the feature belongs to the server's info, not to its nodes.
    """
    handler = EntityTimeHandler(task.Clock())
    assert IDisco.providedBy(handler)
    assert handler.getDiscoInfo(jid.JID(FULL), jid.JID(DOMAIN), "some-node") == []
    assert handler.getDiscoItems(jid.JID(FULL), jid.JID(DOMAIN)) == []
