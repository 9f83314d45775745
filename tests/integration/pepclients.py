"""
slixmpp clients for the personal eventing tests (PEP, avatars, bookmarks,
vCards): an L{IMClient} with slixmpp's own pubsub (xep_0060), PEP
(xep_0163), entity capabilities (xep_0115), avatar (xep_0084), bookmarks
(xep_0402), private storage (xep_0049) and vCard (xep_0054) plugins.

Each client advertises a feature of its own, so its capabilities hash is
its own and the server always asks it for its features (XEP-0115 §6.3);
L{PEPClient.settled} waits until that was answered, so that the server
knows what the client wants notifications for.
"""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from typing import Any

from slixmpp import JID
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.integration.imclients import NS_CLIENT, IMClient, isPresence

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_OMEMO = "eu.siacs.conversations.axolotl"
OMEMO_DEVICELIST = f"{NS_OMEMO}.devicelist"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

_unique = itertools.count(1)


class PEPClient(IMClient):
    """
    An L{IMClient} with the PEP plugins; C{interests} are the nodes it
    advertises C{+notify} for (besides the avatar metadata xep_0084 asks
    for when C{avatars} is true).
    """

    def __init__(self, *args: Any, interests: tuple[str, ...] = (), avatars: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for plugin in ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0049", "xep_0054", "xep_0402"):
            self.register_plugin(plugin)
        if avatars:
            self.register_plugin("xep_0084")
        self.interests = interests
        self.capsQueries: list[Any] = []
        self._queried = asyncio.Event()
        self.register_handler(
            Callback(
                "PEP test caps queries",
                MatchXPath(f"{{{NS_CLIENT}}}iq/{{{NS_DISCO_INFO}}}query"),
                self._onDiscoInfo,
            )
        )
        self.add_event_handler("session_bind", self._advertise)

    def _advertise(self, event: Any) -> None:
        disco = self.plugin["xep_0030"]
        disco.add_feature(f"urn:xmppcert:test:client:{next(_unique)}")
        for node in self.interests:
            disco.add_feature(f"{node}+notify")

    def _onDiscoInfo(self, iq: Any) -> None:
        if iq["type"] == "get" and iq["from"].bare == self.boundjid.domain:
            self.capsQueries.append(iq)
            self._queried.set()

    async def available(self) -> None:
        """
        Send initial presence with capabilities that are this client's own,
        wait for its echo, for the server's disco#info query (XEP-0115
        §6.3) and, with a ping afterwards, for the server to have read the
        answer.
        """
        await self.plugin["xep_0115"].update_caps(broadcast=False)
        await self.becomeInterested()
        self.presence()
        await self.inPresences.take(isPresence(self.full, None), what="the echo of its own presence")
        await asyncio.wait_for(self._queried.wait(), 10)
        await self.plugin["xep_0199"].ping(JID(self.boundjid.domain), timeout=10)

    async def publish(
        self,
        node: str,
        payload: ET.Element | None,
        itemID: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """
        Publish to the client's own PEP service (no 'to').
        """
        form = None
        if options is not None:
            form = Form()
            form["type"] = "submit"
            form.add_field(var="FORM_TYPE", ftype="hidden", value=f"{NS_PUBSUB}#publish-options")
            for var, value in options.items():
                form.add_field(var=var, value=value)
        return await self.plugin["xep_0060"].publish(None, node, id=itemID, payload=payload, options=form, timeout=10)

    async def items(self, owner: str, node: str, **kwargs: Any) -> list[ET.Element]:
        """
        The items of C{owner}'s node, as the server returned them.
        """
        result = await self.plugin["xep_0060"].get_items(owner, node, timeout=10, **kwargs)
        items = result.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}items")
        assert items is not None, str(result)
        return items.findall(f"{{{NS_PUBSUB}}}item")


NS_PRIVATE = "jabber:iq:private"


async def privateGet(client: IMClient, namespace: str, name: str) -> ET.Element:
    """
    A private XML storage get (XEP-0049 §2.3) of C{<name xmlns=namespace/>}.

    @return: what the result's query holds under that namespace.
    """
    iq = client.Iq(stype="get")
    query = ET.Element(f"{{{NS_PRIVATE}}}query")
    ET.SubElement(query, f"{{{namespace}}}{name}")
    iq.append(query)
    result = await iq.send(timeout=10)
    found = result.xml.find(f"{{{NS_PRIVATE}}}query/{{{namespace}}}{name}")
    assert found is not None, str(result)
    return found


async def privateSet(client: IMClient, element: ET.Element) -> None:
    """
    A private XML storage set (XEP-0049 §2.3) of one element.
    """
    iq = client.Iq(stype="set")
    query = ET.Element(f"{{{NS_PRIVATE}}}query")
    query.append(element)
    iq.append(query)
    await iq.send(timeout=10)


def eventItems(message: Any, node: str) -> list[ET.Element] | None:
    """
    The items of a PEP notification for C{node}, C{None} when C{message}
    is not one.
    """
    items = message.xml.find(f"{{{NS_PUBSUB_EVENT}}}event/{{{NS_PUBSUB_EVENT}}}items")
    if items is None or items.get("node") != node:
        return None
    return items.findall(f"{{{NS_PUBSUB_EVENT}}}item")


def isEvent(owner: str, node: str) -> Any:
    """
    Matches a notification of C{owner}'s node C{node}.
    """

    def match(message: Any) -> bool:
        return message.xml.get("from") == owner and eventItems(message, node) is not None

    return match


def iqError(failure: BaseException) -> tuple[str | None, str | None]:
    """
    The defined condition and the pubsub#errors (or other application)
    condition of an IqError.
    """
    iq = failure.iq  # type: ignore[attr-defined]
    error = iq.xml.find(f"{{{NS_CLIENT}}}error")
    assert error is not None, str(iq)
    condition = application = None
    for child in error:
        namespace, _, name = child.tag[1:].partition("}")
        if namespace == NS_STANZAS:
            if name != "text":
                condition = name
        else:
            application = name
    return condition, application


def publishOptions(**fields: str) -> dict[str, str]:
    """
    Publish options from keyword arguments: access_model="open" is
    pubsub#access_model.
    """
    return {f"pubsub#{name}": value for name, value in fields.items()}


__all__ = [
    "NS_AVATAR_DATA",
    "NS_AVATAR_METADATA",
    "NS_BOOKMARKS",
    "NS_CAPS",
    "NS_OMEMO",
    "NS_PUBSUB",
    "NS_PUBSUB_EVENT",
    "OMEMO_DEVICELIST",
    "PEPClient",
    "eventItems",
    "privateGet",
    "privateSet",
    "iqError",
    "isEvent",
    "publishOptions",
]
