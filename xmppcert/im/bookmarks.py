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
  - writing compares the rooms written with the node's items, by the
    rooms' prepared JIDs: a new or changed room is published under its
    item id (so PEP clients are notified, section 5.2), a room no longer
    there is retracted, an unchanged one is left alone (no notification,
    as section 5 asks). Children of a conference in other namespaces
    become the item's C{<extensions/>} (XEP-0402 section 3); a client that
    writes none keeps those the item has. Items whose id is not a room's
    bare JID are neither shown nor touched. What is not a room with a
    valid JID stays in private XML storage, unchanged, so nothing a client
    wrote is lost. Before publishing, a node made with other settings is
    configured as section 3 wants (whitelist, C{max_items} C{max}): a
    room's password must not reach contacts, nor a room be dropped. The
    whole list is checked before anything changes.

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
from xmppcert.store.interfaces import MAX_PEP_ITEM_ID

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
        self,
        jid: str,
        name: str | None,
        autojoin: bool,
        nick: str | None,
        password: str | None,
        extensions: Sequence[domish.Element] = (),
    ) -> None:
        self.jid = jid
        self.name = name
        self.autojoin = autojoin
        self.nick = nick
        self.password = password
        #: Elements of other namespaces: a XEP-0402 item's <extensions/>,
        #: which a XEP-0048 conference carries as children of its own.
        self.extensions = list(extensions)

    def key(self) -> tuple[str, str | None, bool, str | None, str | None, tuple[str, ...]]:
        return (
            self.jid, self.name, self.autojoin, self.nick, self.password,
            tuple(e.toXml() for e in self.extensions),
        )

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
            [child for child in conference.elements() if child.uri != NS_LEGACY_BOOKMARKS],
        )

    @classmethod
    def fromItem(cls, roomJID: str, conference: domish.Element) -> Room:
        """
        A XEP-0402 item: its room's JID (the item id, prepared) and its
        C{<conference/>}.
        """
        extensions = [
            child
            for holder in conference.elements(NS_BOOKMARKS, "extensions")
            for child in holder.elements()
        ]
        return cls(
            roomJID,
            conference.getAttribute("name"),
            _isTrue(conference.getAttribute("autojoin")),
            _childText(conference, NS_BOOKMARKS, "nick"),
            _childText(conference, NS_BOOKMARKS, "password"),
            extensions,
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
        self._fill(conference, NS_LEGACY_BOOKMARKS)
        for extension in self.extensions:
            conference.addChild(_copy(extension))
        return conference

    def toPayload(self) -> domish.Element:
        conference = self._fill(domish.Element((NS_BOOKMARKS, "conference")), NS_BOOKMARKS)
        if self.extensions:
            holder = conference.addElement("extensions")
            for extension in self.extensions:
                holder.addChild(_copy(extension))
        return conference


def _conferenceOf(text: str) -> domish.Element | None:
    try:
        payload = parseStoredPayload(text)
    except ValueError:
        return None
    if payload is None or (payload.uri, payload.name) != (NS_BOOKMARKS, "conference"):
        return None
    return payload


def _copy(element: domish.Element) -> domish.Element:
    # An element belongs to one tree; a room's extensions go into several.
    copied = parseStoredPayload(element.toXml())
    assert copied is not None
    return copied


def _roomJID(itemId: str) -> str | None:
    """
    The prepared bare JID of a room an item id names, C{None} when it
    names none (such an item is left alone: XEP-0048 cannot show it).
    """
    try:
        room = parseJID(itemId)
    except jid.InvalidFormat:
        return None
    if room.user is None or room.resource is not None:
        return None
    return room.userhost()


class _Current:
    """
    The items of the bookmarks node that XEP-0048 can show, by room JID,
    each with its item id as stored.
    """

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.itemIds: dict[str, str] = {}


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

    async def _current(self, account: jid.JID) -> _Current:
        current = _Current()
        try:
            items = await self.pep.items(account, NS_BOOKMARKS, account)
        except error.StanzaError as e:
            if e.condition == "item-not-found":
                return current
            raise
        for item in items:
            roomJID = _roomJID(item.id)
            conference = _conferenceOf(item.payload)
            if roomJID is None or conference is None:
                continue
            current.rooms[roomJID] = Room.fromItem(roomJID, conference)
            current.itemIds[roomJID] = item.id
        return current

    def read(self, account: jid.JID, stored: list[domish.Element] | None) -> defer.Deferred[list[domish.Element] | None]:
        return defer.ensureDeferred(self._read(account, stored))

    async def _read(self, account: jid.JID, stored: list[domish.Element] | None) -> list[domish.Element] | None:
        current = await self._current(account)
        if not current.rooms and stored is None:
            return None
        storage = domish.Element((NS_LEGACY_BOOKMARKS, "storage"))
        for room in current.rooms.values():
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
        # Everything is checked before anything is published, so a refused
        # list changes nothing.
        limit = self.pep.maxItems()
        if len(written) > limit:
            raise error.StanzaError(
                "not-acceptable", type="modify", text=f"At most {limit} bookmarked rooms may be stored"
            )
        maxBytes = self.pep.maxItemBytes()
        for room in written.values():
            if len(room.jid) > MAX_PEP_ITEM_ID or len(room.toPayload().toXml().encode("utf-8")) > maxBytes:
                raise error.StanzaError(
                    "not-acceptable", type="modify", text=f"The bookmark of {room.jid[:64]} is too large"
                )
        current = await self._current(account)
        for room in written.values():
            previous = current.rooms.get(room.jid)
            if previous is not None and not room.extensions:
                # A XEP-0048 client that cannot carry them: kept.
                room.extensions = previous.extensions
        changed = [
            room for room in written.values()
            if room.jid not in current.rooms or current.rooms[room.jid].key() != room.key()
        ]
        removed = [roomJID for roomJID in current.rooms if roomJID not in written]
        options = await self._prepareNode(account, publisher) if changed else None
        for room in changed:
            itemId = current.itemIds.get(room.jid, room.jid)
            await self.pep.publish(account, NS_BOOKMARKS, itemId, room.toPayload(), publisher, options)
            # The node exists now, as XEP-0402 wants it.
            options = None
        for roomJID in removed:
            await self.pep.retract(account, NS_BOOKMARKS, current.itemIds[roomJID], account, notify=True)
        return [rest] if rest.children else []

    async def _prepareNode(self, account: jid.JID, publisher: jid.JID) -> dict[str, Any] | None:
        """
        Make the bookmarks node what XEP-0402 section 3 wants, so that
        rooms (with their passwords) are never published where contacts
        see them, nor dropped by a small C{pubsub#max_items}.

        @return: the publish-options to create it with, C{None} when it
            exists (now configured).
        """
        config = await self.pep.nodeConfig(account, NS_BOOKMARKS)
        if config is None:
            return dict(BOOKMARKS_OPTIONS)
        wrong = {var: value for var, value in BOOKMARKS_OPTIONS.items() if config.get(var) != value}
        if wrong:
            await self.pep.configure(account, NS_BOOKMARKS, publisher, wrong)
        return None


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
