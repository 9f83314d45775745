# -*- test-case-name: tests.test_handlers -*-
"""
The wokkel handlers every bound client stream gets: service discovery
(XEP-0030) for the server and the user's own account, and ping (XEP-0199).

Each handler that adds a feature says so through L{IDisco}, so a feature is
advertised exactly when its handler is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.words.protocols.jabber import jid
from wokkel import disco, ping
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

if TYPE_CHECKING:
    from xmppcert.c2s import StreamContext


@implementer(IDisco)
class ServerInfoHandler(XMPPHandler):
    """
    Identities and base features of the server and of the user's account
    (RFC 6120 section 10.3.3: iqs to the bare JID are the server's to answer).
    """

    def __init__(self, domain: str, account: jid.JID) -> None:
        XMPPHandler.__init__(self)
        self.domain = domain
        self.account = account

    def _isAccount(self, target: jid.JID | None) -> bool:
        return target is None or (target.user is not None and target.userhost() == self.account.userhost())

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        if nodeIdentifier:
            return []
        info: list[Any] = [
            disco.DiscoFeature(disco.NS_DISCO_INFO),
            disco.DiscoFeature(disco.NS_DISCO_ITEMS),
        ]
        if self._isAccount(target):
            info.insert(0, disco.DiscoIdentity("account", "registered"))
        else:
            info.insert(0, disco.DiscoIdentity("server", "im", "xmppcert"))
        return info

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


def defaultHandlers(context: StreamContext) -> list[XMPPHandler]:
    """
    @return: the handlers for one newly bound stream.
    """
    assert context.account is not None
    return [
        disco.DiscoHandler(),
        ServerInfoHandler(context.domain, context.account.jid),
        ping.PingHandler(),
    ]


__all__ = ["ServerInfoHandler", "defaultHandlers"]
