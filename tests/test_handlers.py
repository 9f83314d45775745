"""
Tests for L{xmppcert.handlers}: what service discovery says about the
server and the user's own account, and the handlers each stream gets.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.words.protocols.jabber import jid
from zope.interface.verify import verifyObject

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import disco, ping
from wokkel.iwokkel import IDisco

from xmppcert.handlers import ServerInfoHandler, defaultHandlers

DOMAIN = "example.com"
ALICE = jid.JID("alice@example.com")
REQUESTOR = jid.JID("alice@example.com/phone")


def describe(info: list[object]) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    identities = [
        (i.category, i.type, i.name) for i in info if isinstance(i, disco.DiscoIdentity)
    ]
    features = [str(f) for f in info if isinstance(f, disco.DiscoFeature)]
    return identities, features


def handler() -> ServerInfoHandler:
    return ServerInfoHandler(DOMAIN, ALICE)


def test_interface() -> None:
    """
    XEP-0030: ServerInfoHandler provides IDisco, so the disco handler asks
    it.
    """
    assert verifyObject(IDisco, handler())


def test_serverInfo() -> None:
    """
    XEP-0030 §3.1 and the registry of categories: the server is identity
    server/im and supports disco#info and disco#items.
    """
    identities, features = describe(handler().getDiscoInfo(REQUESTOR, jid.JID(DOMAIN)))
    assert identities == [("server", "im", "xmppcert")]
    assert features == [disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS]


@pytest.mark.parametrize("target", [None, ALICE, jid.JID("Alice@EXAMPLE.com")])
def test_accountInfo(target: jid.JID | None) -> None:
    """
    RFC 6120 §10.3.3 and XEP-0030: a query without 'to', or to the user's
    own bare JID, is about the account: identity account/registered.
    """
    identities, features = describe(handler().getDiscoInfo(REQUESTOR, target))
    assert identities == [("account", "registered", None)]
    assert features == [disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS]


@pytest.mark.parametrize("target", [jid.JID(DOMAIN), None, ALICE])
def test_node(target: jid.JID | None) -> None:
    """
    XEP-0030 §3.2: the handler knows no nodes: info and items for a node
    are empty (so wokkel answers item-not-found).
    """
    h = handler()
    assert h.getDiscoInfo(REQUESTOR, target, "some-node") == []
    assert h.getDiscoItems(REQUESTOR, target, "some-node") == []


def test_noItems() -> None:
    """
    XEP-0030 §4: the server and the account have no items yet.
    """
    h = handler()
    assert h.getDiscoItems(REQUESTOR, jid.JID(DOMAIN)) == []
    assert h.getDiscoItems(REQUESTOR, None) == []


def test_defaultHandlers() -> None:
    """
    Every bound stream gets disco, the server/account information for its
    domain and account, and ping (XEP-0199).
    """
    authenticator = SimpleNamespace(domain=DOMAIN, account=SimpleNamespace(jid=ALICE))
    handlers = defaultHandlers(authenticator)  # type: ignore[arg-type]
    assert [type(h) for h in handlers] == [disco.DiscoHandler, ServerInfoHandler, ping.PingHandler]
    info = handlers[1]
    assert isinstance(info, ServerInfoHandler)
    assert (info.domain, info.account) == (DOMAIN, ALICE)
    # Two streams never share handler instances.
    assert all(a is not b for a, b in zip(handlers, defaultHandlers(authenticator), strict=True))  # type: ignore[arg-type]
