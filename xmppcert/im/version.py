# -*- test-case-name: tests.test_im_version -*-
"""
Software Version (XEP-0092, v1.1, C{jabber:iq:version}), answered by the
server: an iq get to a served domain holding C{<query
xmlns='jabber:iq:version'/>} is answered with the software's C{<name/>}
and C{<version/>} (both REQUIRED in a result, XEP-0092 section 2) and, only
when configured, C{<os/>} (OPTIONAL): by default the operating system is
not revealed, since section 5 warns that it may open the system to attacks
and requires a way to disable sharing it.

Only the server answers: a query without C{to}, or to the user's own bare
JID, is not one to the server (RFC 6120 section 10.3.3: it is to the
account, which runs no software), and is left for the stream to answer
C{service-unavailable}, as for any other account's bare JID. Queries to
full JIDs are routed to the clients. The C{jabber:iq:version} feature is
advertised in the server's disco#info only (XEP-0092 section 4).

XEP-0092 defines no iq set; one is answered C{bad-request}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

import xmppcert

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

NS_VERSION = "jabber:iq:version"

#: The software name given in C{<name/>}.
SOFTWARE_NAME = "xmppcert"

VERSION_GET = f"/iq[@type='get']/query[@xmlns='{NS_VERSION}']"
VERSION_SET = f"/iq[@type='set']/query[@xmlns='{NS_VERSION}']"


def isToServer(iq: domish.Element) -> bool:
    """
    Whether C{iq} is addressed to a served domain rather than to the
    account (no C{to}, or the own bare JID).

    The stream hands its handlers only stanzas for the server or the
    account, with C{to} already prepared, so a C{to} without a user part is
    a served domain.
    """
    to = iq.getAttribute("to")
    if to is None:
        return False
    try:
        target = jid.internJID(to)
    except jid.InvalidFormat:
        return False
    return target.user is None and target.resource is None


@implementer(IDisco)
class VersionHandler(XMPPHandler, IQHandlerMixin):
    """
    XEP-0092 for the server on one bound client stream.

    @ivar name: the software name (C{<name/>}).
    @ivar version: the software version (C{<version/>}).
    @ivar os: the operating system (C{<os/>}), or C{None} to leave it out.
    """

    iqHandlers = {VERSION_GET: "_onGet", VERSION_SET: "_onSet"}

    def __init__(self, name: str = SOFTWARE_NAME, version: str | None = None, os: str | None = None) -> None:
        """
        @param version: by default L{xmppcert.version}.
        @param os: what to say in C{<os/>}; by default nothing, and no
            C{<os/>} element is sent.
        """
        XMPPHandler.__init__(self)
        self.name = name
        self.version = version if version is not None else xmppcert.version()
        self.os = os

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self._onRequest)

    def _onRequest(self, iq: domish.Element) -> None:
        # Not to the server: left unhandled, so the stream answers
        # service-unavailable.
        if isToServer(iq):
            self.handleRequest(iq)

    def _onGet(self, iq: domish.Element) -> domish.Element:
        """
        XEP-0092 section 2: the result holds C{<name/>} and C{<version/>},
        and C{<os/>} only if configured.
        """
        query = domish.Element((NS_VERSION, "query"))
        query.addElement("name", content=self.name)
        query.addElement("version", content=self.version)
        if self.os is not None:
            query.addElement("os", content=self.os)
        return query

    def _onSet(self, iq: domish.Element) -> None:
        raise error.StanzaError("bad-request", text="Software Version (XEP-0092) has no iq set")

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0092 section 4: the server advertises C{jabber:iq:version}; the
        account (no target, or a bare JID with a user) does not.
        """
        if nodeIdentifier or target is None or target.user is not None:
            return []
        return [disco.DiscoFeature(NS_VERSION)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


def versionHandlers(context: StreamContext) -> list[XMPPHandler]:
    """
    A handler factory (C{handlerFactories}) giving each bound stream a
    L{VersionHandler} that names xmppcert and its version, without the
    operating system.
    """
    return [VersionHandler()]


def versionHandlersWithOS(os: str) -> Callable[[StreamContext], list[XMPPHandler]]:
    """
    A handler factory like L{versionHandlers} whose answers also give
    C{<os/>}, for a deployment that chooses to reveal it (XEP-0092 section
    5).

    @param os: the text of C{<os/>}, e.g. C{platform.system()}.
    """

    def makeHandlers(context: StreamContext) -> list[XMPPHandler]:
        return [VersionHandler(os=os)]

    return makeHandlers


__all__ = [
    "NS_VERSION",
    "SOFTWARE_NAME",
    "VersionHandler",
    "isToServer",
    "versionHandlers",
    "versionHandlersWithOS",
]
