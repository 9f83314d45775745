# -*- test-case-name: tests.test_im_entitytime -*-
"""
Entity Time (XEP-0202, v2.0, C{urn:xmpp:time}), answered by the server: an
iq get to a served domain holding C{<time xmlns='urn:xmpp:time'/>} is
answered with C{<tzo/>}, the numeric offset from UTC in the Time Zone
Definition of XEP-0082, and C{<utc/>}, the time in the XEP-0082 dateTime
profile expressed in UTC (both REQUIRED, XEP-0202 section 2).

The time is read from the server clock (C{IReactorTime.seconds()}). The
server speaks UTC: C{<tzo>+00:00</tzo>}, which reveals nothing of where it
runs (XEP-0202 section 6), and C{<utc/>} to the whole second, with C{Z}.

As for L{xmppcert.im.version}, only the server answers: a query without
C{to} or to the own bare JID is for the account and left for the stream to
answer C{service-unavailable}, and the C{urn:xmpp:time} feature is
advertised in the server's disco#info only (XEP-0202 section 4). XEP-0202
defines no iq set; one is answered C{bad-request}.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppcert.im.version import isToServer

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

NS_TIME = "urn:xmpp:time"

#: The server's offset from UTC (XEP-0082 TZD): it answers in UTC.
UTC_OFFSET = "+00:00"

TIME_GET = f"/iq[@type='get']/time[@xmlns='{NS_TIME}']"
TIME_SET = f"/iq[@type='set']/time[@xmlns='{NS_TIME}']"


def formatUTC(seconds: float) -> str:
    """
    A POSIX time in the XEP-0082 dateTime profile, in UTC, to the whole
    second (C{CCYY-MM-DDThh:mm:ssZ}).
    """
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@implementer(IDisco)
class EntityTimeHandler(XMPPHandler, IQHandlerMixin):
    """
    XEP-0202 for the server on one bound client stream.

    @ivar clock: where the time is read.
    """

    iqHandlers = {TIME_GET: "_onGet", TIME_SET: "_onSet"}

    def __init__(self, clock: IReactorTime) -> None:
        XMPPHandler.__init__(self)
        self.clock = clock

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
        XEP-0202 section 2: the result holds C{<tzo/>} and C{<utc/>}.
        """
        time = domish.Element((NS_TIME, "time"))
        time.addElement("tzo", content=UTC_OFFSET)
        time.addElement("utc", content=formatUTC(self.clock.seconds()))
        return time

    def _onSet(self, iq: domish.Element) -> None:
        raise error.StanzaError("bad-request", text="Entity Time (XEP-0202) has no iq set")

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0202 section 4: the server advertises C{urn:xmpp:time}; the
        account (no target, or a bare JID with a user) does not.
        """
        if nodeIdentifier or target is None or target.user is not None:
            return []
        return [disco.DiscoFeature(NS_TIME)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


def timeHandlers(clock: IReactorTime) -> Callable[[StreamContext], list[XMPPHandler]]:
    """
    A handler factory (C{handlerFactories}) giving each bound stream an
    L{EntityTimeHandler} reading C{clock}.
    """

    def makeHandlers(context: StreamContext) -> list[XMPPHandler]:
        return [EntityTimeHandler(clock)]

    return makeHandlers


__all__ = ["NS_TIME", "UTC_OFFSET", "EntityTimeHandler", "formatUTC", "timeHandlers"]
