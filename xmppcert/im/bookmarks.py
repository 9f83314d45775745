# -*- test-case-name: tests.test_im_bookmarks -*-
"""
Bookmarks kept once, seen two ways (XEP-0402 section 5, "Compatibility"):
a client on PEP native bookmarks (XEP-0402) and a client still on bookmark
storage in private XML (XEP-0048 over XEP-0049, namespace
C{storage:bookmarks}) see the same chat rooms.

The chat rooms live in the account's personal eventing node
C{urn:xmpp:bookmarks:1}, one item per room (the item id is the room's
JID). L{BookmarksView} is the view of C{storage:bookmarks} in private XML
storage (L{xmppcert.im.private.IPrivateView}):

  - reading gives one C{<storage xmlns='storage:bookmarks'/>} with a
    C{<conference jid=...>} for each item of the node (name, autojoin,
    nick, password), followed by what private XML storage keeps of the
    namespace beside rooms (URL bookmarks, rooms whose JID is not valid);
  - writing compares the rooms written with the node's items: a new or
    changed room is published (so PEP clients are notified, section 5.2),
    a room no longer there is retracted, an unchanged one is left alone
    (no notification, as section 5 asks); an item's C{<extensions/>} (data
    a XEP-0048 client cannot carry) is kept. What is not a room with a
    valid JID stays in private XML storage, unchanged, so nothing a client
    wrote is lost.

The account advertises C{urn:xmpp:bookmarks:1#compat} on its bare JID.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel import disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppcert.im.pep.protocol import parseStoredPayload
from xmppcert.im.pep.service import PEPService
from xmppcert.im.private import IPrivateView, PrivateService
from xmppcert.jids import parseJID

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_BOOKMARKS_COMPAT = f"{NS_BOOKMARKS}#compat"
NS_LEGACY_BOOKMARKS = "storage:bookmarks"

#: The node configuration XEP-0402 section 3 asks clients to publish with,
#: used when the first room arrives through private XML storage.
BOOKMARKS_OPTIONS = {
    "pubsub#persist_items": "true",
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
    "pubsub#access_model": "whitelist",
}


def _isTrue(value: str | None) -> bool:
    return value in ("true", "1")


def _childText(element: domish.Element, uri: str, name: str) -> str | None:
    for child in element.elements(uri, name):
        return "".join(c for c in child.children if isinstance(c, str))
    return None


class Room:
    """
    A bookmarked chat room, as both formats can say it.
    """

    def __init__(
        self, jid: str, name: str | None, autojoin: bool, nick: str | None, password: str | None
    ) -> None:
        self.jid = jid
        self.name = name
        self.autojoin = autojoin
        self.nick = nick
        self.password = password

    def key(self) -> tuple[str, str | None, bool, str | None, str | None]:
        return (self.jid, self.name, self.autojoin, self.nick, self.password)

    @classmethod
    def fromLegacy(cls, conference: domish.Element) -> Room | None:
        """
        A XEP-0048 C{<conference/>}; C{None} when its C{jid} is not a valid
        bare JID (kept as it is, in private XML storage).
        """
        try:
            room = parseJID(conference.getAttribute("jid") or "")
        except jid.InvalidFormat:
            return None
        if room.user is None or room.resource is not None:
            return None
        return cls(
            room.userhost(),
            conference.getAttribute("name"),
            _isTrue(conference.getAttribute("autojoin")),
            _childText(conference, NS_LEGACY_BOOKMARKS, "nick"),
            _childText(conference, NS_LEGACY_BOOKMARKS, "password"),
        )

    @classmethod
    def fromItem(cls, itemId: str, conference: domish.Element) -> Room:
        """
        A XEP-0402 item: its id and its C{<conference/>}.
        """
        return cls(
            itemId,
            conference.getAttribute("name"),
            _isTrue(conference.getAttribute("autojoin")),
            _childText(conference, NS_BOOKMARKS, "nick"),
            _childText(conference, NS_BOOKMARKS, "password"),
        )

    def _fill(self, conference: domish.Element, uri: str) -> domish.Element:
        if self.name is not None:
            conference["name"] = self.name
        conference["autojoin"] = "true" if self.autojoin else "false"
        if self.nick is not None:
            conference.addElement((uri, "nick"), content=self.nick)
        if self.password is not None:
            conference.addElement((uri, "password"), content=self.password)
        return conference

    def toLegacy(self) -> domish.Element:
        conference = domish.Element((NS_LEGACY_BOOKMARKS, "conference"))
        conference["jid"] = self.jid
        return self._fill(conference, NS_LEGACY_BOOKMARKS)

    def toPayload(self, extensions: domish.Element | None = None) -> domish.Element:
        conference = self._fill(domish.Element((NS_BOOKMARKS, "conference")), NS_BOOKMARKS)
        if extensions is not None:
            conference.addChild(extensions)
        return conference


def _conferenceOf(payload: domish.Element | None) -> domish.Element | None:
    if payload is None or (payload.uri, payload.name) != (NS_BOOKMARKS, "conference"):
        return None
    return payload


@implementer(IPrivateView)
class BookmarksView:
    """
    C{storage:bookmarks} in private XML storage, kept in the PEP node
    C{urn:xmpp:bookmarks:1}.
    """

    def __init__(self, pep: PEPService, private: PrivateService) -> None:
        self.pep = pep
        self.private = private

    def install(self) -> None:
        self.private.addView(NS_LEGACY_BOOKMARKS, self)

    def uninstall(self) -> None:
        self.private.removeView(NS_LEGACY_BOOKMARKS)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory: the stream's L{BookmarksCompatDisco}.
        """
        return [BookmarksCompatDisco(context.session.jid)]

    async def _rooms(self, account: jid.JID) -> dict[str, tuple[Room, domish.Element]]:
        """
        The node's rooms by JID, with their C{<conference/>}; none when
        there is no node.
        """
        try:
            items = await self.pep.items(account, NS_BOOKMARKS, account)
        except error.StanzaError as e:
            if e.condition == "item-not-found":
                return {}
            raise
        rooms: dict[str, tuple[Room, domish.Element]] = {}
        for item in items:
            conference = _conferenceOf(parseStoredPayload(item.payload))
            if conference is not None:
                rooms[item.id] = (Room.fromItem(item.id, conference), conference)
        return rooms

    def read(self, account: jid.JID, stored: list[domish.Element] | None) -> defer.Deferred[list[domish.Element] | None]:
        return defer.ensureDeferred(self._read(account, stored))

    async def _read(self, account: jid.JID, stored: list[domish.Element] | None) -> list[domish.Element] | None:
        rooms = await self._rooms(account)
        if not rooms and stored is None:
            return None
        storage = domish.Element((NS_LEGACY_BOOKMARKS, "storage"))
        for room, _ in rooms.values():
            storage.addChild(room.toLegacy())
        for element in stored or ():
            for child in element.elements():
                storage.addChild(child)
        return [storage]

    def write(
        self, account: jid.JID, elements: Sequence[domish.Element], publisher: jid.JID
    ) -> defer.Deferred[list[domish.Element]]:
        return defer.ensureDeferred(self._write(account, elements, publisher))

    async def _write(
        self, account: jid.JID, elements: Sequence[domish.Element], publisher: jid.JID
    ) -> list[domish.Element]:
        written: dict[str, Room] = {}
        rest = domish.Element((NS_LEGACY_BOOKMARKS, "storage"))
        for storage in elements:
            if storage.name != "storage":
                raise error.StanzaError(
                    "not-acceptable", type="modify", text="storage:bookmarks holds one <storage/> element"
                )
            for child in storage.elements():
                room = Room.fromLegacy(child) if (child.uri, child.name) == (NS_LEGACY_BOOKMARKS, "conference") else None
                if room is None:
                    rest.addChild(child)
                else:
                    # A room written twice: the last one counts.
                    written[room.jid] = room
        limit = self.pep.maxItems()
        if len(written) > limit:
            raise error.StanzaError(
                "not-acceptable", type="modify", text=f"At most {limit} bookmarked rooms may be stored"
            )
        current = await self._rooms(account)
        options: dict[str, Any] | None = None if current else dict(BOOKMARKS_OPTIONS)
        for room in written.values():
            existing = current.get(room.jid)
            if existing is not None and existing[0].key() == room.key():
                continue
            extensions = None
            if existing is not None:
                for child in existing[1].elements(NS_BOOKMARKS, "extensions"):
                    extensions = child
            await self.pep.publish(account, NS_BOOKMARKS, room.jid, room.toPayload(extensions), publisher, options)
            # The node exists now; later rooms need no configuration.
            options = None
        for roomJID in current:
            if roomJID not in written:
                await self.pep.retract(account, NS_BOOKMARKS, roomJID, account, notify=True)
        return [rest] if rest.children else []


@implementer(IDisco)
class BookmarksCompatDisco(XMPPHandler):
    """
    C{urn:xmpp:bookmarks:1#compat} on the account's own bare JID.
    """

    def __init__(self, session: jid.JID) -> None:
        XMPPHandler.__init__(self)
        self.session = session

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        # No 'to' is the account itself (RFC 6120 section 10.3.3).
        own = target is None or (
            target.user is not None and target.resource is None and target.userhost() == self.session.userhost()
        )
        if nodeIdentifier or not own:
            return []
        return [disco.DiscoFeature(NS_BOOKMARKS_COMPAT)]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        return []


__all__ = [
    "BOOKMARKS_OPTIONS",
    "NS_BOOKMARKS",
    "NS_BOOKMARKS_COMPAT",
    "NS_LEGACY_BOOKMARKS",
    "BookmarksCompatDisco",
    "BookmarksView",
    "Room",
]
