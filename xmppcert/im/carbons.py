# -*- test-case-name: tests.test_im_carbons -*-
"""
Message Carbons (XEP-0280, v1.0.1, C{urn:xmpp:carbons:2}): each resource
that enables carbons gets a copy of the messages its account's other
resources send and receive, so every device sees both sides of every
conversation.

A client enables or disables carbons for its own session with an iq set
without C{to} (or to its own bare JID) holding C{<enable/>} or
C{<disable/>} (XEP-0280 sections 4 and 5); L{CarbonsHandler} answers it and
records the state in the session's L{Session.info}. L{CarbonsService} joins
local delivery through the hooks of L{xmppcert.routing}:

  - a message a local resource sends (L{OUTBOUND}) is copied, wrapped in
    C{<sent/>}, to the account's other carbons-enabled resources (section
    7), whether or not the sender enabled carbons;
  - a message for a local account (L{INBOUND_FULL}, L{INBOUND_BARE}) is
    copied, wrapped in C{<received/>}, to its carbons-enabled resources
    that do not get it by the delivery rules of RFC 6121 (section 6).

Each copy is a message from the account's bare JID to the resource's full
JID, of the original's type, holding the original in a XEP-0297
C{<forwarded/>}. Which messages are copied follows the rules suggested in
section 5 (L{isEligible}).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppcert.routing import INBOUND_BARE, INBOUND_FULL, MESSAGES, OUTBOUND, Inbound, Outbound
from xmppcert.sessions import Session, SessionManager

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

NS_CLIENT = "jabber:client"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

ENABLE = f"/iq[@type='set']/enable[@xmlns='{NS_CARBONS}']"
DISABLE = f"/iq[@type='set']/disable[@xmlns='{NS_CARBONS}']"

#: Above the session registry's default delivery (0), which handles what it
#: delivers: copies are made first, and the handlers never handle. Below
#: blocking (L{xmppcert.im.blocking.BLOCKING_PRIORITY}): a refused stanza is
#: never copied.
CARBONS_PRIORITY = 10

#: Where a session's L{Session.info} records whether it enabled carbons.
ENABLED_KEY = "carbons"


def isEnabled(session: Session) -> bool:
    """
    Whether C{session} has enabled carbons.
    """
    return bool(session.info.get(ENABLED_KEY, False))


def _has(message: domish.Element, uri: str, name: str) -> bool:
    return any(True for _ in message.elements(uri, name))


def isPrivate(message: domish.Element) -> bool:
    """
    XEP-0280 section 8: C{<private/>} keeps a message from being copied;
    so does the XEP-0334 C{<no-copy/>} hint.
    """
    return _has(message, NS_CARBONS, "private") or _has(message, NS_HINTS, "no-copy")


def isEligible(message: domish.Element, outbound: bool) -> bool:
    """
    Whether a message is copied (XEP-0280 section 5, the suggested rules):
    type C{chat}, or type C{normal} (or none) with a C{<body/>}; never one
    marked private (L{isPrivate}), a C{groupchat} one, nor, inbound, a
    private message from a MUC occupant (a C{muc#user} payload sent to a
    full JID). Errors are not copied: matching them to the messages they
    answer would need tracking (section 5 says as much).

    @param outbound: whether a local resource sends it (C{<sent/>}) rather
        than receives it (C{<received/>}).
    """
    if message.name != "message" or isPrivate(message):
        return False
    if not outbound and "/" in (message.getAttribute("to") or "") and _has(message, NS_MUC_USER, "x"):
        return False
    kind = message.getAttribute("type") or "normal"
    if kind == "chat":
        return True
    return kind == "normal" and _has(message, NS_CLIENT, "body")


def copyElement(element: domish.Element) -> domish.Element:
    """
    A deep copy of C{element}: a copy shares no child with the original,
    so neither changes with the other.
    """
    copy = domish.Element((element.uri, element.name), element.defaultUri, dict(element.attributes))
    copy.localPrefixes = dict(element.localPrefixes)
    for child in element.children:
        if isinstance(child, domish.Element):
            copy.addChild(copyElement(child))
        else:
            copy.addContent(str(child))
    return copy


def wrapCarbon(message: domish.Element, direction: str, account: jid.JID, to: jid.JID) -> domish.Element:
    """
    The carbon copy of C{message} for the resource C{to} (XEP-0280 sections
    6 and 7): from the account's bare JID, of the original's type, with the
    original in C{<forwarded xmlns='urn:xmpp:forward:0'/>} (XEP-0297) in
    C{<sent/>} or C{<received/>}.

    @param direction: C{"sent"} or C{"received"}.
    """
    carbon = domish.Element((NS_CLIENT, "message"))
    carbon["from"] = account.userhost()
    carbon["to"] = to.full()
    kind = message.getAttribute("type")
    if kind is not None:
        carbon["type"] = kind
    wrapper = carbon.addElement((NS_CARBONS, direction))
    forwarded = wrapper.addElement((NS_FORWARD, "forwarded"))
    forwarded.addChild(copyElement(message))
    return carbon


def _bareOf(address: str | None) -> str | None:
    if not address:
        return None
    return address.split("/", 1)[0]


@implementer(IDisco)
class CarbonsHandler(XMPPHandler, IQHandlerMixin):
    """
    XEP-0280 on one bound client stream: C{<enable/>} and C{<disable/>}
    for its own session, and the C{urn:xmpp:carbons:2} feature.
    """

    iqHandlers = {ENABLE: "_onEnable", DISABLE: "_onDisable"}

    def __init__(self, service: CarbonsService, session: Session) -> None:
        XMPPHandler.__init__(self)
        self.service = service
        self.session = session

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self._onRequest)

    def _onRequest(self, iq: domish.Element) -> None:
        # XEP-0280 sections 4 and 5: the request has no 'to'; to the user's
        # own bare JID is the same (RFC 6120 section 10.3.3). To the server
        # domain, it is left for the stream to answer service-unavailable.
        to = iq.getAttribute("to")
        if to is not None and to != self.session.jid.userhost():
            return
        self.handleRequest(iq)

    def _onEnable(self, iq: domish.Element) -> None:
        # Section 10.1: enabling twice is no error.
        self.service.enable(self.session)

    def _onDisable(self, iq: domish.Element) -> None:
        self.service.disable(self.session)

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0280 section 3: the server advertises C{urn:xmpp:carbons:2}.
        """
        if nodeIdentifier or target is None or target.user is not None:
            return []
        return [disco.DiscoFeature(NS_CARBONS)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


class CarbonsService:
    """
    The server-wide side of XEP-0280: which sessions enabled carbons, and
    the copies.

    @ivar sessions: the session registry whose hooks it joins.
    """

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions

    # --- wiring -----------------------------------------------------------

    def install(self) -> None:
        """
        Join local delivery at L{CARBONS_PRIORITY}: L{OUTBOUND} for
        C{<sent/>} copies, L{INBOUND_FULL} and L{INBOUND_BARE} for
        C{<received/>} copies. The handlers never handle a stanza.
        """
        hooks = self.sessions.hooks
        hooks.add(OUTBOUND, self.copySent, CARBONS_PRIORITY, names=MESSAGES)
        hooks.add(INBOUND_FULL, self.copyReceivedByFull, CARBONS_PRIORITY, names=MESSAGES)
        hooks.add(INBOUND_BARE, self.copyReceivedByBare, CARBONS_PRIORITY, names=MESSAGES)

    def uninstall(self) -> None:
        """
        Leave local delivery.
        """
        hooks = self.sessions.hooks
        hooks.remove(OUTBOUND, self.copySent)
        hooks.remove(INBOUND_FULL, self.copyReceivedByFull)
        hooks.remove(INBOUND_BARE, self.copyReceivedByBare)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the stream's
        L{CarbonsHandler}.
        """
        return [CarbonsHandler(self, context.session)]

    # --- state ------------------------------------------------------------

    def enable(self, session: Session) -> None:
        session.info[ENABLED_KEY] = True

    def disable(self, session: Session) -> None:
        session.info[ENABLED_KEY] = False

    def _copyTo(self, account: jid.JID, skip: Collection[Session]) -> list[Session]:
        return [s for s in self.sessions.sessionsOf(account) if isEnabled(s) and not s.closed and s not in skip]

    def _send(self, message: domish.Element, direction: str, account: jid.JID, sessions: list[Session]) -> None:
        for session in sessions:
            session.send(wrapCarbon(message, direction, account, session.jid))

    # --- hooks ------------------------------------------------------------

    def copySent(self, event: Outbound) -> bool:
        """
        The L{OUTBOUND} handler: a copy of an eligible message to every
        other carbons-enabled resource of the sender's account (section 7;
        never to the sender, whether or not it enabled carbons).

        @return: C{False}: the message goes on.
        """
        message = event.stanza
        if message.name == "message" and isEligible(message, outbound=True):
            account = event.sender.jid.userhostJID()
            self._send(message, "sent", account, self._copyTo(account, [event.sender]))
        return False

    def copyReceivedByFull(self, event: Inbound) -> bool:
        """
        The L{INBOUND_FULL} handler: a message for a connected resource is
        copied to the account's other carbons-enabled resources (section
        6). One for a resource that is not connected goes on to the bare
        JID, whose handler copies it.

        @return: C{False}: the message goes on.
        """
        if event.stanza.name != "message":
            return False
        recipient = self.sessions.sessionFor(event.target)
        if recipient is not None:
            self._copyReceived(event, [recipient])
        return False

    def copyReceivedByBare(self, event: Inbound) -> bool:
        """
        The L{INBOUND_BARE} handler: a message for the bare JID goes to the
        available resources of non-negative priority (RFC 6121 section
        8.5.2.1.1); the other carbons-enabled resources get a copy (section
        6).

        @return: C{False}: the message goes on.
        """
        if event.stanza.name != "message":
            return False
        receivers = [s for s in self.sessions.sessionsOf(event.target) if s.available and s.priority >= 0]
        if not receivers:
            # No resource takes it: it is stored (or bounced), and a stored
            # message reaches the carbons-enabled resources when they become
            # available; a copy now would deliver it twice.
            return False
        self._copyReceived(event, receivers)
        return False

    def _copyReceived(self, event: Inbound, receivers: list[Session]) -> None:
        message = event.stanza
        account = event.target.userhostJID()
        if _has(message, NS_CARBONS, "private"):
            # Section 8: the receiving server SHOULD remove it.
            message.children = [
                c
                for c in message.children
                if not (isinstance(c, domish.Element) and (c.uri, c.name) == (NS_CARBONS, "private"))
            ]
            return
        if _bareOf(message.getAttribute("from")) == account.userhost():
            # Between the account's own resources: the <sent/> copies tell
            # the others already.
            return
        if not isEligible(message, outbound=False):
            return
        self._send(message, "received", account, self._copyTo(account, receivers))


__all__ = [
    "CARBONS_PRIORITY",
    "DISABLE",
    "ENABLE",
    "ENABLED_KEY",
    "NS_CARBONS",
    "NS_FORWARD",
    "CarbonsHandler",
    "CarbonsService",
    "copyElement",
    "isEligible",
    "isEnabled",
    "isPrivate",
    "wrapCarbon",
]
