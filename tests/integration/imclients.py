"""
slixmpp clients for the instant messaging tests (rosters, presence,
offline messages, carbons, blocking): a L{Client} with the IM plugins that
records every message, presence, roster push and block list push it gets,
and waits for them by predicate.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slixmpp import JID
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.integration.clients import Client

NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class Inbox:
    """
    Everything of one kind a client received, in order; L{take} removes
    the first one that matches (waiting for it), L{absent} checks that none
    matches.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[Any] = []
        self.total = 0
        self._arrived = asyncio.Event()

    def put(self, item: Any) -> None:
        self.items.append(item)
        self.total += 1
        self._arrived.set()

    def clear(self) -> None:
        self.items.clear()

    def matching(self, match: Callable[[Any], bool]) -> list[Any]:
        return [item for item in self.items if match(item)]

    async def take(self, match: Callable[[Any], bool], timeout: float = 5.0, what: str = "") -> Any:
        """
        @return: the first item that matches, once it arrived.
        @raise AssertionError: none did within C{timeout} seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, item in enumerate(self.items):
                if match(item):
                    del self.items[index]
                    return item
            remaining = deadline - loop.time()
            if remaining <= 0:
                shown = "\n".join(str(item) for item in self.items) or "nothing"
                raise AssertionError(f"no {what or 'matching ' + self.what} within {timeout} s; got:\n{shown}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def collect(
        self, match: Callable[[Any], bool], count: int, timeout: float = 5.0, what: str = ""
    ) -> list[Any]:
        """
        Wait for C{count} items that match; take and return them in the
        order they arrived.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.matching(match)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                shown = "\n".join(str(item) for item in self.items) or "nothing"
                raise AssertionError(f"not {count} {what or self.what} within {timeout} s; got:\n{shown}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
        found = self.matching(match)[:count]
        self.items = [item for item in self.items if not any(item is taken for taken in found)]
        return found

    async def absent(self, match: Callable[[Any], bool], within: float = 1.0, what: str = "") -> None:
        """
        Wait C{within} seconds, then check that nothing that matches is here.
        """
        await asyncio.sleep(within)
        found = self.matching(match)
        assert not found, f"unexpected {what or self.what}: " + "\n".join(str(item) for item in found)


class IMClient(Client):
    """
    A L{Client} with rosters, carbons (xep_0280), blocking (xep_0191) and
    delays (xep_0203); it answers no subscription request by itself (the
    tests do), and keeps what it receives in L{Inbox}es.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for plugin in ("xep_0297", "xep_0203", "xep_0191", "xep_0280"):
            self.register_plugin(plugin)
        # slixmpp approves and returns subscription requests on its own by
        # default; the tests drive the handshake themselves.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.inMessages = Inbox("message")
        self.inPresences = Inbox("presence")
        self.rosterPushes = Inbox("roster push")
        self.blockPushes = Inbox("block list push")
        self.register_handler(
            Callback("IM test messages", MatchXPath(f"{{{NS_CLIENT}}}message"), self.inMessages.put)
        )
        self.register_handler(
            Callback("IM test presences", MatchXPath(f"{{{NS_CLIENT}}}presence"), self.inPresences.put)
        )
        self.add_event_handler("roster_update", self._onRoster)
        self.add_event_handler("blocked", self.blockPushes.put)
        self.add_event_handler("unblocked", self.blockPushes.put)

    def _onRoster(self, iq: Any) -> None:
        if iq["type"] == "set":
            self.rosterPushes.put(iq)

    @property
    def bare(self) -> str:
        return str(self.boundjid.bare)

    @property
    def full(self) -> str:
        return str(self.boundjid.full)

    async def rosterItems(self) -> dict[str, dict[str, Any]]:
        """
        A roster get without 'ver'.

        @return: the items, by JID: their attributes, and their groups.
        """
        iq = self.Iq(stype="get")
        iq.append(ET.Element(f"{{{NS_ROSTER}}}query"))
        result = await iq.send(timeout=10)
        query = result.xml.find(f"{{{NS_ROSTER}}}query")
        assert query is not None, str(result)
        return {item.get("jid"): itemDict(item) for item in query.findall(f"{{{NS_ROSTER}}}item")}

    async def rosterGet(self, ver: str | None) -> ET.Element | None:
        """
        A roster get (with C{ver} when not C{None}).

        @return: the result's C{<query/>}, C{None} when it has none.
        """
        iq = self.Iq(stype="get")
        query = ET.Element(f"{{{NS_ROSTER}}}query")
        if ver is not None:
            query.set("ver", ver)
        iq.append(query)
        result = await iq.send(timeout=10)
        return result.xml.find(f"{{{NS_ROSTER}}}query")

    async def becomeInterested(self) -> str:
        """
        Ask for the roster (RFC 6121 §2.1.6: pushes come from now on).

        @return: its version.
        """
        query = await self.rosterGet(None)
        assert query is not None
        return query.get("ver", "")

    async def rosterSet(self, contact: str, name: str | None = None, groups: tuple[str, ...] = ()) -> None:
        """
        A roster set of one item (RFC 6121 §2.3).
        """
        iq = self.Iq(stype="set")
        query = ET.Element(f"{{{NS_ROSTER}}}query")
        item = ET.SubElement(query, f"{{{NS_ROSTER}}}item", {"jid": contact})
        if name is not None:
            item.set("name", name)
        for group in groups:
            ET.SubElement(item, f"{{{NS_ROSTER}}}group").text = group
        iq.append(query)
        await iq.send(timeout=10)

    def say(self, to: str, body: str, kind: str = "chat") -> None:
        self.send_message(mto=JID(to), mbody=body, mtype=kind)  # type: ignore[arg-type]

    def presence(self, to: str | None = None, kind: str | None = None, status: str | None = None) -> None:
        self.send_presence(pto=to, ptype=kind, pstatus=status)  # type: ignore[arg-type]


def itemDict(item: ET.Element) -> dict[str, Any]:
    found: dict[str, Any] = dict(item.attrib)
    found["groups"] = sorted(group.text or "" for group in item.findall(f"{{{NS_ROSTER}}}group"))
    return found


def pushedItem(iq: Any) -> dict[str, Any]:
    """
    The one item of a roster push.
    """
    items = iq.xml.findall(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item")
    assert len(items) == 1, str(iq)
    return itemDict(items[0])


def isPush(contact: str, subscription: str, ask: str | None = None) -> Callable[[Any], bool]:
    """
    Matches a roster push of C{contact}'s item in this state.
    """

    def match(iq: Any) -> bool:
        item = pushedItem(iq)
        return item.get("jid") == contact and item.get("subscription") == subscription and item.get("ask") == ask

    return match


def kindOf(stanza: Any) -> str | None:
    return stanza.xml.get("type")


def sender(stanza: Any) -> str:
    return stanza.xml.get("from", "")


def _fromMatches(source: str, frm: str) -> bool:
    # A full JID matches only itself; a bare JID itself and its resources.
    return source == frm or ("/" not in frm and source.split("/")[0] == frm)


def isPresence(frm: str, kind: str | None = None, status: str | None = None) -> Callable[[Any], bool]:
    """
    Matches presence from C{frm} (a full JID: only it; a bare JID: it or
    any of its resources) of type C{kind} (C{None}: available) and, when
    given, with this status.
    """

    def match(presence: Any) -> bool:
        if not _fromMatches(sender(presence), frm) or kindOf(presence) != kind:
            return False
        return status is None or presence.xml.findtext(f"{{{NS_CLIENT}}}status") == status

    return match


def isMessage(frm: str, body: str, kind: str | None = "chat") -> Callable[[Any], bool]:
    """
    Matches a message from C{frm} (as L{isPresence}) with this body.
    """

    def match(message: Any) -> bool:
        return (
            _fromMatches(sender(message), frm)
            and kindOf(message) == kind
            and message.xml.findtext(f"{{{NS_CLIENT}}}body") == body
        )

    return match


def errorCondition(stanza: Any) -> str | None:
    """
    The defined condition of an error stanza.
    """
    found = stanza.xml.find(f"{{{NS_CLIENT}}}error")
    if found is None:
        return None
    for child in found:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


def isError(body: str, condition: str | None = None) -> Callable[[Any], bool]:
    """
    Matches the error bounced for the message with C{body}.
    """

    def match(message: Any) -> bool:
        if kindOf(message) != "error" or message.xml.findtext(f"{{{NS_CLIENT}}}body") != body:
            return False
        return condition is None or errorCondition(message) == condition

    return match


def carbonOf(message: Any, direction: str) -> ET.Element | None:
    """
    The forwarded message of a XEP-0280 carbon in C{direction} ("sent",
    "received"), or C{None}.
    """
    return message.xml.find(f"{{{NS_CARBONS}}}{direction}/{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message")


async def imLogin(
    server: Any,
    jid: str,
    password: str = "",
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    timeout: float = 15,
    clientClass: type[IMClient] | None = None,
) -> Any:
    """
    Log in over STARTTLS: with a certificate (SASL EXTERNAL) when given,
    else with the password.
    """
    kwargs: dict[str, Any] = {}
    if certfile is not None:
        kwargs = {"sasl_mech": "EXTERNAL", "certfile": str(certfile), "keyfile": str(keyfile)}
    client = (clientClass or IMClient)(jid, password, server.caFile, **kwargs)
    client.enable_plaintext = False
    client.enable_direct_tls = False
    client.enable_starttls = True
    client.connect(host="127.0.0.1", port=server.starttlsPort)
    try:
        await asyncio.wait_for(asyncio.shield(client.started), timeout)
    except BaseException:
        client.disconnect()
        raise
    return client
