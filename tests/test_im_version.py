"""
Tests for L{xmppcert.im.version}: Software Version (XEP-0092) answered by
the server.
"""

from __future__ import annotations

import pytest
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from wokkel.iwokkel import IDisco

import xmppcert
from tests.helpers import ALICE, BOB, DOMAIN, ClientConnection, makeServer, stanzaErrorCondition
from xmppcert.c2s import HandlerFactory
from xmppcert.handlers import defaultHandlers
from xmppcert.im.version import (
    NS_VERSION,
    SOFTWARE_NAME,
    VersionHandler,
    versionHandlers,
    versionHandlersWithOS,
)

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
FULL = "alice@example.com/phone"


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
    Send a C{jabber:iq:version} iq and return the answer.
    """
    attribute = f" to='{to}'" if to is not None else ""
    client.send(f"<iq type='{kind}' id='v1'{attribute}><query xmlns='{NS_VERSION}'/></iq>")
    return client.received().only("iq")


def fields(reply: domish.Element) -> dict[str, str]:
    """
    The children of the C{<query/>} of a result, by name.
    """
    assert reply["type"] == "result", reply.toXml()
    [query] = list(reply.elements())
    assert (query.uri, query.name) == (NS_VERSION, "query")
    children = list(query.elements())
    assert all(c.uri == NS_VERSION for c in children), reply.toXml()
    return {c.name: str(c) for c in children}


def features(client: ClientConnection, to: str | None) -> list[str]:
    attribute = f" to='{to}'" if to is not None else ""
    client.send(f"<iq type='get' id='d1'{attribute}><query xmlns='{NS_DISCO_INFO}'/></iq>")
    reply = client.received().only("iq")
    assert reply["type"] == "result", reply.toXml()
    return [f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")]


def test_get() -> None:
    """
    XEP-0092 section 2: a get to the server is answered, from the server to
    the asking resource, with C{<name/>} and C{<version/>} (both REQUIRED);
    without C{<os/>} by default, as section 5 lets the server keep the
    operating system to itself.
    """
    reply = ask(connected(versionHandlers))
    assert (reply["id"], reply["from"], reply["to"]) == ("v1", DOMAIN, FULL)
    assert fields(reply) == {"name": "xmppcert", "version": xmppcert.__version__}


def test_versionFromPackage(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    XEP-0092 section 2: C{<version/>} is the specific version of the
    software, the one C{xmppcert.__version__} says.
    """
    monkeypatch.setattr(xmppcert, "__version__", "9.8.7-test")
    assert fields(ask(connected(versionHandlers)))["version"] == "9.8.7-test"


def test_os() -> None:
    """
    XEP-0092 section 2: C{<os/>} is OPTIONAL; a deployment that chooses to
    reveal it gets it in the answer.
    """
    reply = ask(connected(versionHandlersWithOS("Plan 9")))
    assert fields(reply) == {"name": SOFTWARE_NAME, "version": xmppcert.__version__, "os": "Plan 9"}


def test_set() -> None:
    """
    XEP-0092 defines no iq set: one to the server is answered bad-request
    (RFC 6120 section 8.3.3.1).
    """
    reply = ask(connected(versionHandlers), kind="set")
    assert (reply["id"], reply["from"], reply["to"]) == ("v1", DOMAIN, FULL)
    assert stanzaErrorCondition(reply) == "bad-request"


@pytest.mark.parametrize("to", [None, ALICE, BOB])
def test_notForAccounts(to: str | None) -> None:
    """
    XEP-0092 section 3 and RFC 6120 section 10.3.3: a query without 'to',
    or to a bare JID, is for an account, not for the server, and no
    software runs at a bare JID: the answer is service-unavailable.
    """
    assert stanzaErrorCondition(ask(connected(versionHandlers), to=to)) == "service-unavailable"


def test_notInstalled() -> None:
    """
    XEP-0092 section 3: without the handler, a server that does not support
    the namespace answers service-unavailable (what L{test_get} relies on
    the handler to change).
    """
    assert stanzaErrorCondition(ask(connected())) == "service-unavailable"


def test_discoServer() -> None:
    """
    XEP-0092 section 4: the server advertises C{jabber:iq:version} in its
    disco#info, once; not without the handler.
    """
    assert features(connected(versionHandlers), DOMAIN).count(NS_VERSION) == 1
    assert NS_VERSION not in features(connected(), DOMAIN)


@pytest.mark.parametrize("to", [None, ALICE])
def test_discoAccount(to: str | None) -> None:
    """
    XEP-0092 section 4 and RFC 6120 section 10.3.3: the account's
    disco#info (no 'to', or the own bare JID) does not advertise
    C{jabber:iq:version}, which the account does not answer.
    """
    assert NS_VERSION not in features(connected(versionHandlers), to)


def test_discoNode() -> None:
    """
    XEP-0030: the feature belongs to the server's info, not to its nodes.
    """
    handler = VersionHandler()
    assert IDisco.providedBy(handler)
    assert handler.getDiscoInfo(jid.JID(FULL), jid.JID(DOMAIN), "some-node") == []
    assert handler.getDiscoItems(jid.JID(FULL), jid.JID(DOMAIN)) == []
